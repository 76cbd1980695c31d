//! Bytes to [`Message`]: the SIP message parser and stream framing.
//!
//! One receive buffer becomes one `Bytes`; the parser indexes it and every header value is
//! a slice of it (only a folded header line is copied, to unfold it). After splitting, the
//! headers every SIP element depends on are validated (Via, From, To, Call-ID, CSeq,
//! Max-Forwards, Content-Length, Contact, Expires), so the layers above never see a request
//! they cannot answer. A failure carries what is needed to answer it: [`ParseError::status`]
//! is the one right response code (400/413/414/505) or `None` where RFC 3261 says to drop
//! (responses, and requests too broken to answer). This module never panics on any input;
//! property tests over random and mutated input hold it to that (tests/no_panic.rs).

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::header::{self, is_token_char, Contact};
use super::msg::{
    Header, HeaderName, Message, Method, RequestLine, StartLine, StatusCode, StatusLine,
};
use super::uri::Uri;
use super::HeaderError;

/// Size limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest Request-URI accepted (longer gets 414).
    pub max_uri_len: usize,
    /// Largest header section (start line and headers) accepted (larger gets 413).
    pub max_header_bytes: usize,
    /// Largest body accepted on a stream (larger gets 413).
    pub max_body_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_uri_len: 4096,
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_headers: 256,
        }
    }
}

/// What was wrong with a message.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The buffer held only whitespace.
    #[error("empty message")]
    Empty,
    /// No blank line ends the header section.
    #[error("header section not terminated")]
    Unterminated,
    /// The start line is neither a request line nor a status line.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP version is not 2.0.
    #[error("SIP version not supported")]
    Version,
    /// The Request-URI is longer than the limit.
    #[error("Request-URI too long")]
    UriTooLong,
    /// The Request-URI does not parse.
    #[error("bad Request-URI: {0}")]
    Uri(HeaderError),
    /// The status code is not 100..=699.
    #[error("bad status code")]
    StatusCode,
    /// A header line has no colon or a bad name.
    #[error("malformed header line")]
    HeaderLine,
    /// Too many header fields.
    #[error("too many header fields")]
    TooManyHeaders,
    /// The header section exceeds the limit.
    #[error("header section too large")]
    HeadersTooLarge,
    /// A body larger than the limit.
    #[error("body too large")]
    BodyTooLarge,
    /// A mandatory header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header value is malformed.
    #[error("bad {name} header: {err}")]
    Header {
        /// Which header.
        name: &'static str,
        /// What is wrong with it.
        err: HeaderError,
    },
    /// Content-Length says more than the datagram holds, or is missing on a stream.
    #[error("Content-Length does not match the body")]
    ContentLength,
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}

/// A message that could not be parsed, with what is needed to answer it.
#[derive(Clone, Debug, Error)]
#[error("{kind}")]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// For a request whose Via, From, To, Call-ID and CSeq lines could be found, those raw
    /// headers, so an error response can be built; `None` means the message is dropped.
    pub reply_to: Option<Vec<Header>>,
}

impl ParseError {
    fn bare(kind: ParseErrorKind) -> Self {
        Self {
            kind,
            reply_to: None,
        }
    }

    /// The one right response to send, or `None` to drop the message silently.
    pub fn status(&self) -> Option<StatusCode> {
        self.reply_to.as_ref()?;
        Some(match self.kind {
            ParseErrorKind::Version => StatusCode::VERSION_NOT_SUPPORTED,
            ParseErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ParseErrorKind::BodyTooLarge | ParseErrorKind::HeadersTooLarge => {
                StatusCode::ENTITY_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        })
    }

    /// Builds the error response (with the reason phrase naming the problem), if any.
    pub fn response(&self) -> Option<Message> {
        let code = self.status()?;
        let headers = self.reply_to.as_ref()?;
        let mut reason = format!("{} ({})", code.reason(), self.kind);
        reason.retain(|c| c != '\r' && c != '\n');
        let mut resp = Message {
            start: StartLine::Response(StatusLine {
                code,
                reason: Bytes::from(reason),
            }),
            headers: Vec::with_capacity(headers.len() + 1),
            body: Bytes::new(),
        };
        resp.headers.extend(headers.iter().cloned());
        Some(resp)
    }
}

/// A unit read off a stream transport.
// Pings are rare and a frame is consumed at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); answer with CRLF.
    Ping,
}

/// Parses one datagram. Extra bytes after Content-Length are ignored (RFC 4475 dblreq);
/// a Content-Length larger than the datagram is an error (RFC 3261 §18.3).
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
    let start = skip_crlf(&buf, 0);
    if start >= buf.len() {
        return Err(ParseError::bare(ParseErrorKind::Empty));
    }
    // A datagram is a whole message, so one that ends without the blank line is read as
    // a header section with no body (RFC 4475 baddn is such a datagram, and deserves its
    // 400 rather than silence).
    let (hdr_end, body_start) = match find_header_end(&buf, start) {
        Some(ends) => ends,
        None if buf.ends_with(b"\n") => (buf.len(), buf.len()),
        None => return Err(ParseError::bare(ParseErrorKind::Unterminated)),
    };
    if hdr_end - start > limits.max_header_bytes {
        return Err(ParseError::bare(ParseErrorKind::HeadersTooLarge));
    }
    parse_parts(&buf, start, hdr_end, body_start, false, limits)
}

/// Takes one frame off a stream buffer (TCP, TLS). `Ok(None)` means more bytes are needed;
/// an error means the stream cannot be resynchronised and should be closed after sending
/// [`ParseError::response`].
pub fn parse_stream(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, ParseError> {
    if buf.starts_with(b"\r\n\r\n") {
        let _ = buf.split_to(4);
        return Ok(Some(Frame::Ping));
    }
    let lead = skip_crlf(buf, 0);
    if lead == buf.len() {
        // Only CRLFs so far (a pong, or the start of a ping): keep at most the last three.
        if lead > 3 {
            let _ = buf.split_to(lead - 3);
        }
        return Ok(None);
    }
    if lead > 0 {
        let _ = buf.split_to(lead);
    }
    let Some((hdr_end, body_start)) = find_header_end(buf, 0) else {
        if buf.len() > limits.max_header_bytes {
            return Err(ParseError::bare(ParseErrorKind::HeadersTooLarge));
        }
        return Ok(None);
    };
    if hdr_end > limits.max_header_bytes {
        return Err(ParseError::bare(ParseErrorKind::HeadersTooLarge));
    }
    let clen = content_length_of(&buf[..hdr_end]);
    let clen = match clen {
        Some(Ok(n)) => n,
        // Parse the head alone so the error carries reply headers.
        _ => {
            let head = Bytes::copy_from_slice(&buf[..body_start]);
            let err = parse_parts(&head, 0, hdr_end, body_start, true, limits)
                .err()
                .unwrap_or(ParseError::bare(ParseErrorKind::ContentLength));
            return Err(err);
        }
    };
    if clen > limits.max_body_bytes {
        let head = Bytes::copy_from_slice(&buf[..body_start]);
        let mut err = ParseError::bare(ParseErrorKind::BodyTooLarge);
        err.reply_to = reply_headers(&head, 0, hdr_end);
        return Err(err);
    }
    if buf.len() < body_start + clen {
        return Ok(None);
    }
    let whole = buf.split_to(body_start + clen).freeze();
    parse_parts(&whole, 0, hdr_end, body_start, true, limits).map(|m| Some(Frame::Message(m)))
}

fn skip_crlf(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b'\r' || b[i] == b'\n') {
        i += 1;
    }
    i
}

/// Finds the blank line: returns (end of last header line, start of body).
fn find_header_end(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(p) = memchr::memchr(b'\n', &b[i..]) {
        let nl = i + p;
        // Next line empty?
        let next = nl + 1;
        if b.get(next) == Some(&b'\n') {
            return Some((nl + 1, next + 1));
        }
        if b.get(next) == Some(&b'\r') && b.get(next + 1) == Some(&b'\n') {
            return Some((nl + 1, next + 2));
        }
        i = next;
    }
    None
}

/// Reads Content-Length from a raw header section without a full parse (stream framing).
fn content_length_of(head: &[u8]) -> Option<Result<usize, ()>> {
    let mut found = None;
    for line in head.split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = trim(&line[colon + 1..]);
            found = Some(header::parse_u32(v).map(|n| n as usize).ok_or(()));
        }
    }
    found
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Splits `b[start..hdr_end]` into lines without their line ending.
fn lines(b: &[u8], start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = start;
    std::iter::from_fn(move || {
        if i >= end {
            return None;
        }
        let nl = memchr::memchr(b'\n', &b[i..end]).map_or(end, |p| i + p);
        let mut e = nl;
        if e > i && b[e - 1] == b'\r' {
            e -= 1;
        }
        let s = i;
        i = nl + 1;
        Some((s, e))
    })
}

/// Collects the raw headers needed to answer a broken request, if it is a request at all.
fn reply_headers(buf: &Bytes, start: usize, hdr_end: usize) -> Option<Vec<Header>> {
    let mut it = lines(buf, start, hdr_end);
    let (ls, le) = it.next()?;
    if buf[ls..le].starts_with(b"SIP/") {
        return None;
    }
    let mut out: Vec<Header> = Vec::new();
    let mut last_kept = false;
    for (s, e) in it {
        let line = &buf[s..e];
        if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
            if last_kept {
                let prev = out.last_mut()?;
                let mut v = prev.value.to_vec();
                v.push(b' ');
                v.extend_from_slice(trim(line));
                prev.value = Bytes::from(v);
            }
            continue;
        }
        last_kept = false;
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&Bytes::copy_from_slice(trim(&line[..colon])));
        if matches!(
            name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            let v = trim(&line[colon + 1..]);
            let off = v.as_ptr() as usize - buf.as_ptr() as usize;
            out.push(Header {
                name,
                value: buf.slice(off..off + v.len()),
            });
            last_kept = true;
        }
    }
    let has = |n: HeaderName| out.iter().any(|h| h.name == n);
    (has(HeaderName::Via)
        && has(HeaderName::From)
        && has(HeaderName::To)
        && has(HeaderName::CallId)
        && has(HeaderName::CSeq))
    .then_some(out)
}

fn parse_parts(
    buf: &Bytes,
    start: usize,
    hdr_end: usize,
    body_start: usize,
    stream: bool,
    limits: &Limits,
) -> Result<Message, ParseError> {
    parse_inner(buf, start, hdr_end, body_start, stream, limits).map_err(|kind| {
        // Only requests are answered; a response that fails is dropped (RFC 3261 §18.1.2).
        let reply_to = match kind {
            ParseErrorKind::Empty | ParseErrorKind::Unterminated | ParseErrorKind::StatusCode => {
                None
            }
            _ => reply_headers(buf, start, hdr_end),
        };
        ParseError { kind, reply_to }
    })
}

fn parse_inner(
    buf: &Bytes,
    start: usize,
    hdr_end: usize,
    body_start: usize,
    stream: bool,
    limits: &Limits,
) -> Result<Message, ParseErrorKind> {
    let mut it = lines(buf, start, hdr_end).peekable();
    let (ls, le) = it.next().ok_or(ParseErrorKind::Empty)?;
    let start_line = parse_start_line(buf, ls, le, limits)?;

    let mut headers: Vec<Header> = Vec::with_capacity(16);
    while let Some((s, e)) = it.next() {
        let line = &buf[s..e];
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A continuation line with nothing to continue.
            return Err(ParseErrorKind::HeaderLine);
        }
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .ok_or(ParseErrorKind::HeaderLine)?;
        let name_end = {
            let mut n = colon;
            while n > 0 && (line[n - 1] == b' ' || line[n - 1] == b'\t') {
                n -= 1;
            }
            n
        };
        if name_end == 0 || !line[..name_end].iter().all(|&c| is_token_char(c)) {
            return Err(ParseErrorKind::HeaderLine);
        }
        let name = HeaderName::from_bytes(&buf.slice(s..s + name_end));
        let mut vs = s + colon + 1;
        while vs < e && (buf[vs] == b' ' || buf[vs] == b'\t') {
            vs += 1;
        }
        let mut ve = e;
        // Folded continuation lines (RFC 3261 §7.3.1): join with one space. Rare, so the
        // copy is paid only here.
        let mut folded: Option<Vec<u8>> = None;
        while let Some(&(ns, ne)) = it.peek() {
            if ns < ne && (buf[ns] == b' ' || buf[ns] == b'\t') {
                let f = folded.get_or_insert_with(|| trim(&buf[vs..ve]).to_vec());
                let cont = trim(&buf[ns..ne]);
                if !cont.is_empty() {
                    if !f.is_empty() {
                        f.push(b' ');
                    }
                    f.extend_from_slice(cont);
                }
                it.next();
            } else {
                break;
            }
        }
        while ve > vs && (buf[ve - 1] == b' ' || buf[ve - 1] == b'\t') {
            ve -= 1;
        }
        let value = match folded {
            Some(f) => Bytes::from(f),
            None => buf.slice(vs..ve),
        };
        if headers.len() >= limits.max_headers {
            return Err(ParseErrorKind::TooManyHeaders);
        }
        headers.push(Header { name, value });
    }

    // Body framing.
    let avail = buf.len() - body_start.min(buf.len());
    let mut clen = None;
    for h in headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        let n = header::parse_u32(&h.value).ok_or(ParseErrorKind::Header {
            name: "Content-Length",
            err: HeaderError::Syntax("not a non-negative number"),
        })? as usize;
        if clen.is_some_and(|c| c != n) {
            return Err(ParseErrorKind::ContentLength);
        }
        clen = Some(n);
    }
    let body_len = match clen {
        Some(n) if n > avail => return Err(ParseErrorKind::ContentLength),
        Some(n) => n,
        None if stream => return Err(ParseErrorKind::ContentLength),
        None => avail,
    };
    let body = buf.slice(body_start.min(buf.len())..body_start.min(buf.len()) + body_len);
    let msg = Message {
        start: start_line,
        headers,
        body,
    };
    validate(&msg)?;
    Ok(msg)
}

fn parse_start_line(
    buf: &Bytes,
    s: usize,
    e: usize,
    limits: &Limits,
) -> Result<StartLine, ParseErrorKind> {
    let line = &buf[s..e];
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or(ParseErrorKind::StartLine("no status code"))?;
        check_version(&rest[..sp])?;
        let after = &rest[sp + 1..];
        if after.len() < 3 || !after[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseErrorKind::StatusCode);
        }
        if after.len() > 3 && after[3] != b' ' {
            return Err(ParseErrorKind::StatusCode);
        }
        let n = u16::from(after[0] - b'0') * 100
            + u16::from(after[1] - b'0') * 10
            + u16::from(after[2] - b'0');
        let code = StatusCode::new(n).ok_or(ParseErrorKind::StatusCode)?;
        let rs = s + 4 + sp + 1 + 3 + usize::from(after.len() > 3);
        return Ok(StartLine::Response(StatusLine {
            code,
            reason: buf.slice(rs..e),
        }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces exactly
    // (RFC 4475 lwsstart, trws, lwsruri).
    let sp1 = line
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseErrorKind::StartLine("no Request-URI"))?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&c| is_token_char(c)) {
        return Err(ParseErrorKind::StartLine("bad method"));
    }
    let rest = &line[sp1 + 1..];
    let sp2 = rest
        .iter()
        .position(|&c| c == b' ')
        .ok_or(ParseErrorKind::StartLine("no SIP version"))?;
    let version = &rest[sp2 + 1..];
    if version.contains(&b' ') {
        return Err(ParseErrorKind::StartLine(
            "extra whitespace in request line",
        ));
    }
    if sp2 == 0 {
        return Err(ParseErrorKind::StartLine(
            "extra whitespace in request line",
        ));
    }
    if !version.starts_with(b"SIP/") {
        return Err(ParseErrorKind::StartLine("bad SIP version"));
    }
    check_version(&version[4..])?;
    if sp2 > limits.max_uri_len {
        return Err(ParseErrorKind::UriTooLong);
    }
    let us = s + sp1 + 1;
    let uri = Uri::parse(&buf.slice(us..us + sp2)).map_err(ParseErrorKind::Uri)?;
    if uri.headers.is_some() {
        // Headers in a Request-URI are meaningless and forbidden (RFC 4475 escruri).
        return Err(ParseErrorKind::Uri(HeaderError::BadUri(
            "headers not allowed in Request-URI",
        )));
    }
    Ok(StartLine::Request(RequestLine {
        method: Method::from_token(&buf.slice(s..s + sp1)),
        uri,
    }))
}

fn check_version(v: &[u8]) -> Result<(), ParseErrorKind> {
    if v == b"2.0" {
        return Ok(());
    }
    let ok_shape = v.iter().filter(|&&c| c == b'.').count() == 1
        && v.iter().all(|&c| c.is_ascii_digit() || c == b'.')
        && v.first() != Some(&b'.')
        && v.last() != Some(&b'.');
    if ok_shape {
        Err(ParseErrorKind::Version)
    } else {
        Err(ParseErrorKind::StartLine("bad SIP version"))
    }
}

fn hdr_err(name: &'static str) -> impl Fn(HeaderError) -> ParseErrorKind {
    move |err| ParseErrorKind::Header { name, err }
}

/// Checks the headers every element relies on.
fn validate(m: &Message) -> Result<(), ParseErrorKind> {
    let mut seen = [false; 5];
    for h in &m.headers {
        match h.name {
            HeaderName::Via => {
                header::parse_via_list(&h.value).map_err(hdr_err("Via"))?;
                seen[0] = true;
            }
            HeaderName::From => {
                header::parse_name_addr(&h.value).map_err(hdr_err("From"))?;
                if seen[1] {
                    return Err(hdr_err("From")(HeaderError::Syntax("more than one")));
                }
                seen[1] = true;
            }
            HeaderName::To => {
                header::parse_name_addr(&h.value).map_err(hdr_err("To"))?;
                if seen[2] {
                    return Err(hdr_err("To")(HeaderError::Syntax("more than one")));
                }
                seen[2] = true;
            }
            HeaderName::CallId => {
                header::check_call_id(&h.value).map_err(hdr_err("Call-ID"))?;
                if seen[3] {
                    return Err(hdr_err("Call-ID")(HeaderError::Syntax("more than one")));
                }
                seen[3] = true;
            }
            HeaderName::CSeq => {
                let c = header::parse_cseq(&h.value).map_err(hdr_err("CSeq"))?;
                if seen[4] {
                    return Err(hdr_err("CSeq")(HeaderError::Syntax("more than one")));
                }
                seen[4] = true;
                if let StartLine::Request(r) = &m.start {
                    if c.method != r.method {
                        return Err(ParseErrorKind::CSeqMismatch);
                    }
                }
            }
            HeaderName::MaxForwards => {
                header::parse_max_forwards(&h.value).map_err(hdr_err("Max-Forwards"))?;
            }
            HeaderName::Expires => {
                header::parse_delta_seconds(&h.value).map_err(hdr_err("Expires"))?;
            }
            HeaderName::Contact => {
                for c in header::parse_contact_list(&h.value).map_err(hdr_err("Contact"))? {
                    if let Contact::Addr(na) = c {
                        if let Some(e) = header::param(&na.params, "expires") {
                            let e = e.ok_or(HeaderError::Syntax("expires without value"));
                            e.and_then(|e| header::parse_delta_seconds(e))
                                .map_err(hdr_err("Contact"))?;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    const NAMES: [&str; 5] = ["Via", "From", "To", "Call-ID", "CSeq"];
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(ParseErrorKind::Missing(NAMES[i]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: &str = "REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
From: <sip:1001@example.com>;tag=a\r\n\
To: <sip:1001@example.com>\r\n\
Call-ID: abc@host\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:1001@127.0.0.1:5070>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn dgram(s: &str) -> Result<Message, ParseError> {
        parse_datagram(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
    }

    #[test]
    fn parses_register() {
        let m = dgram(REG).unwrap();
        assert_eq!(m.request_line().unwrap().method, Method::Register);
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.top_via().unwrap().branch().unwrap().as_ref(), b"z9hG4bK1");
        assert_eq!(m.headers.len(), 8);
    }

    #[test]
    fn print_then_parse_is_identity() {
        let m = dgram(REG).unwrap();
        let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(m.headers, again.headers);
        assert_eq!(m.start, again.start);
    }

    #[test]
    fn stream_framing_waits_and_splits() {
        let two = format!("{REG}{REG}");
        let mut buf = BytesMut::from(&two.as_bytes()[..10]);
        assert!(parse_stream(&mut buf, &Limits::default())
            .unwrap()
            .is_none());
        let mut buf = BytesMut::from(two.as_bytes());
        assert!(matches!(
            parse_stream(&mut buf, &Limits::default()),
            Ok(Some(Frame::Message(_)))
        ));
        assert!(matches!(
            parse_stream(&mut buf, &Limits::default()),
            Ok(Some(Frame::Message(_)))
        ));
        assert!(buf.is_empty());
        let mut ping = BytesMut::from(&b"\r\n\r\n"[..]);
        assert!(matches!(
            parse_stream(&mut ping, &Limits::default()),
            Ok(Some(Frame::Ping))
        ));
    }

    #[test]
    fn stream_without_content_length_is_answered() {
        let no_cl = REG.replace("Content-Length: 0\r\n", "");
        let mut buf = BytesMut::from(no_cl.as_bytes());
        let e = parse_stream(&mut buf, &Limits::default()).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn oversized_stream_messages_get_413() {
        let limits = Limits {
            max_body_bytes: 100,
            max_header_bytes: 2048,
            ..Limits::default()
        };
        let big_body = REG.replace("Content-Length: 0", "Content-Length: 101");
        let mut buf = BytesMut::from(big_body.as_bytes());
        let e = parse_stream(&mut buf, &limits).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::ENTITY_TOO_LARGE));
        assert!(e.response().is_some());
        // A header section that never ends within the limit: refused without a reply
        // (there is no complete request to answer), and the connection is closed.
        let mut buf = BytesMut::from(
            format!("{}X-Pad: {}\r\n", &REG[..REG.len() - 2], "a".repeat(4096)).as_bytes(),
        );
        let e = parse_stream(&mut buf, &limits).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::HeadersTooLarge);
    }

    #[test]
    fn errors_map_to_one_response() {
        let e = dgram(&REG.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::VERSION_NOT_SUPPORTED));
        let r = e.response().unwrap();
        assert_eq!(r.status(), Some(StatusCode::VERSION_NOT_SUPPORTED));
        assert!(r.header(&HeaderName::Via).is_some());
        let e = dgram(&REG.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE")).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::CSeqMismatch);
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
        let long = format!("sip:{}@example.com", "a".repeat(5000));
        let e = dgram(&REG.replace("sip:example.com SIP", &format!("{long} SIP"))).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::URI_TOO_LONG));
        // A request without a Via cannot be answered: dropped.
        let e = dgram(&REG.replace(
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n",
            "",
        ))
        .unwrap_err();
        assert_eq!(e.status(), None);
        // A broken response is dropped.
        let e = dgram("SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), None);
    }

    #[test]
    fn header_ends_crlf_runs_unterminated_datagrams_and_bodies_in_pieces() {
        assert_eq!(find_header_end(b"A\r\nBB\r\n\r\nbody", 0), Some((7, 9)));
        assert_eq!(find_header_end(b"A\nBB\n\nbody", 0), Some((5, 6)));
        assert_eq!(find_header_end(b"A\r\nBB\r\n", 0), None);
        assert_eq!(skip_crlf(b"\r\n\n\rX", 0), 4);
        assert_eq!(skip_crlf(b"\nX", 0), 1);
        let l = Limits::default();
        // Leading blank lines (keep-alives) before a datagram are skipped.
        let m = parse_datagram(Bytes::from(format!("\n\r\n{REG}")), &l).unwrap();
        assert_eq!(m.method(), Some(Method::Register));
        // No blank line: a datagram that ends its last line is all head; one cut inside a
        // line is not a message.
        let head = REG.trim_end_matches("\r\n").to_string() + "\r\n";
        assert!(parse_datagram(Bytes::from(head.clone()), &l).is_ok());
        let cut = head.trim_end_matches("\r\n").to_string();
        assert!(parse_datagram(Bytes::from(cut), &l).is_err());
        // A body that arrives in two pieces on a stream waits for the second.
        let msg = REG.replace("Content-Length: 0", "Content-Length: 10") + "0123456789";
        let (a, b) = msg.split_at(msg.len() - 4);
        let mut buf = BytesMut::from(a);
        assert!(matches!(parse_stream(&mut buf, &l), Ok(None)));
        buf.extend_from_slice(b.as_bytes());
        let Ok(Some(Frame::Message(m))) = parse_stream(&mut buf, &l) else {
            panic!("one message");
        };
        assert_eq!(&m.body[..], b"0123456789");
        assert!(buf.is_empty());
    }

    #[test]
    fn start_lines_and_header_names_are_held_to_their_grammar() {
        let l = Limits::default();
        let resp = |line: &str| {
            let m = format!(
                "{line}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
                 To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
            );
            parse_datagram(Bytes::from(m), &l)
        };
        let m = resp("SIP/2.0 180 Ringing").unwrap();
        let StartLine::Response(sl) = &m.start else {
            panic!()
        };
        assert_eq!((sl.code.as_u16(), &sl.reason[..]), (180, &b"Ringing"[..]));
        let m = resp("SIP/2.0 200").unwrap();
        let StartLine::Response(sl) = &m.start else {
            panic!()
        };
        assert_eq!(
            (sl.code.as_u16(), &sl.reason[..]),
            (200, &b""[..]),
            "no reason phrase"
        );
        assert!(resp("SIP/2.0 2000 OK").is_err());
        assert!(resp("SIP/2.0 20 OK").is_err());
        // Another version well formed is 505's business; a garbled one is not a version.
        let kind = |r: Result<Message, ParseError>| r.unwrap_err().kind;
        let req = |line: &str| {
            parse_datagram(
                Bytes::from(REG.replacen("REGISTER sip:example.com SIP/2.0", line, 1)),
                &l,
            )
        };
        assert_eq!(
            kind(req("REGISTER sip:example.com SIP/3.0")),
            ParseErrorKind::Version
        );
        assert_eq!(
            kind(req("REGISTER sip:example.com SIP/2.x")),
            ParseErrorKind::StartLine("bad SIP version")
        );
        assert_eq!(
            kind(req("REGISTER sip:example.com SIP/.20")),
            ParseErrorKind::StartLine("bad SIP version")
        );
        assert_eq!(
            kind(req("REG@STER sip:example.com SIP/2.0")),
            ParseErrorKind::StartLine("bad method")
        );
        // A header line with no name, or a name with a space in it.
        for bad in [": x", "Bad Name: x"] {
            let m = REG.replacen("Max-Forwards: 70", bad, 1);
            assert_eq!(
                kind(parse_datagram(Bytes::from(m), &l)),
                ParseErrorKind::HeaderLine,
                "{bad}"
            );
        }
    }

    fn with_limits(s: &str, limits: &Limits) -> Result<Message, ParseError> {
        parse_datagram(Bytes::copy_from_slice(s.as_bytes()), limits)
    }

    #[test]
    fn every_limit_takes_exactly_its_size_and_refuses_one_more() {
        let head = REG.len() - 2; // the header section up to its blank line
        let at = |n: usize| Limits {
            max_header_bytes: n,
            ..Limits::default()
        };
        assert!(with_limits(REG, &at(head)).is_ok());
        assert!(
            with_limits(&format!("\r\n\r\n{REG}"), &at(head)).is_ok(),
            "leading CRLFs are not counted"
        );
        assert_eq!(
            with_limits(REG, &at(head - 1)).unwrap_err().kind,
            ParseErrorKind::HeadersTooLarge
        );
        let uri = |n: usize| Limits {
            max_uri_len: n,
            ..Limits::default()
        };
        let len = "sip:example.com".len();
        assert!(with_limits(REG, &uri(len)).is_ok());
        assert_eq!(
            with_limits(REG, &uri(len - 1)).unwrap_err().kind,
            ParseErrorKind::UriTooLong
        );

        // On a stream: a complete head of exactly the limit, a body of exactly the limit.
        let body = "v=0\r\n";
        let msg = REG.replace(
            "Content-Length: 0",
            &format!("Content-Length: {}", body.len()),
        ) + body;
        let head = msg.len() - body.len();
        let stream = |l: &Limits| {
            let mut b = BytesMut::from(msg.as_bytes());
            parse_stream(&mut b, l).map(|f| matches!(f, Some(Frame::Message(_))))
        };
        let limits = Limits {
            max_header_bytes: head - 2,
            max_body_bytes: body.len(),
            ..Limits::default()
        };
        assert!(stream(&limits).unwrap());
        let small_body = Limits {
            max_body_bytes: body.len() - 1,
            ..limits
        };
        assert_eq!(
            stream(&small_body).unwrap_err().kind,
            ParseErrorKind::BodyTooLarge
        );
        let small_head = Limits {
            max_header_bytes: head - 3,
            ..limits
        };
        assert_eq!(
            stream(&small_head).unwrap_err().kind,
            ParseErrorKind::HeadersTooLarge
        );
        // An unfinished head waits until it is longer than the limit.
        let part = &msg.as_bytes()[..40];
        let mut b = BytesMut::from(part);
        assert!(parse_stream(
            &mut b,
            &Limits {
                max_header_bytes: 40,
                ..limits
            }
        )
        .unwrap()
        .is_none());
        let mut b = BytesMut::from(part);
        assert_eq!(
            parse_stream(
                &mut b,
                &Limits {
                    max_header_bytes: 39,
                    ..limits
                }
            )
            .unwrap_err()
            .kind,
            ParseErrorKind::HeadersTooLarge
        );
    }

    #[test]
    fn a_stream_keeps_at_most_three_bytes_of_blank_lines_and_drops_them_before_a_message() {
        for n in 1..=7 {
            let mut b = BytesMut::from("\n".repeat(n).as_bytes());
            assert!(
                parse_stream(&mut b, &Limits::default()).unwrap().is_none(),
                "{n}"
            );
            assert_eq!(b.len(), n.min(3), "{n} line feeds");
        }
        let mut b = BytesMut::from(format!("\r\n{REG}").as_bytes());
        let f = parse_stream(&mut b, &Limits::default()).unwrap();
        assert!(matches!(f, Some(Frame::Message(_))));
        assert!(b.is_empty());
    }

    #[test]
    fn header_names_and_values_are_trimmed_and_framing_headers_checked() {
        let m = dgram(&REG.replace("Max-Forwards: 70", "Subject \t:\t  hello there \t")).unwrap();
        let v = m.header(&HeaderName::Subject).unwrap();
        assert_eq!(&v[..], b"hello there");
        let e = dgram(&REG.replace("Via:", "\tVia:")).unwrap_err();
        assert_eq!(
            e.kind,
            ParseErrorKind::HeaderLine,
            "a first line that continues nothing"
        );
        // Content-Length: absent on a datagram means the rest; twice the same is fine;
        // two values, or more than the datagram holds, are refused.
        let body = "v=0\r\n";
        let m = dgram(&(REG.replace("Content-Length: 0\r\n", "") + body)).unwrap();
        assert_eq!(&m.body[..], body.as_bytes());
        let twice = REG.replace(
            "Content-Length: 0",
            "Content-Length: 5\r\nContent-Length: 5",
        ) + body;
        assert_eq!(&dgram(&twice).unwrap().body[..], body.as_bytes());
        let differ = REG.replace(
            "Content-Length: 0",
            "Content-Length: 5\r\nContent-Length: 4",
        ) + body;
        assert_eq!(
            dgram(&differ).unwrap_err().kind,
            ParseErrorKind::ContentLength
        );
        let short = REG.replace("Content-Length: 0", "Content-Length: 9") + body;
        assert_eq!(
            dgram(&short).unwrap_err().kind,
            ParseErrorKind::ContentLength
        );
        for bad in ["Max-Forwards: many", "Max-Forwards: 70\r\nExpires: soon"] {
            let e = dgram(&REG.replace("Max-Forwards: 70", bad)).unwrap_err();
            assert!(
                matches!(e.kind, ParseErrorKind::Header { .. }),
                "{bad}: {e:?}"
            );
        }
        assert_eq!(
            dgram("SIP/2.0 20\r\nCall-ID: x\r\n\r\n").unwrap_err().kind,
            ParseErrorKind::StatusCode
        );
    }

    #[test]
    fn an_error_response_names_the_problem_and_keeps_a_folded_via_whole() {
        let bad = REG
            .replace(
                "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport",
                "Via: SIP/2.0/UDP 127.0.0.1:5070\r\n ;branch=z9hG4bK1;rport",
            )
            .replace("Max-Forwards: 70", "Max-Forwards: many");
        let e = dgram(&bad).unwrap_err();
        let resp = e.response().unwrap();
        let StartLine::Response(sl) = &resp.start else {
            panic!("{resp}")
        };
        assert_eq!(
            std::str::from_utf8(&sl.reason).unwrap(),
            format!("Bad Request ({})", e.kind)
        );
        assert_eq!(
            &resp.header(&HeaderName::Via).unwrap()[..],
            b"SIP/2.0/UDP 127.0.0.1:5070 ;branch=z9hG4bK1;rport"
        );
    }

    /// REG with `extra` header lines put before Content-Length.
    fn reg_with(extra: &str) -> String {
        REG.replace(
            "Content-Length: 0\r\n",
            &format!("{extra}Content-Length: 0\r\n"),
        )
    }

    fn subject(m: &Message) -> Vec<u8> {
        let name = HeaderName::from_bytes(&Bytes::from_static(b"Subject"));
        m.header(&name).unwrap().to_vec()
    }

    #[test]
    fn folded_and_blank_header_values() {
        let m = dgram(&reg_with("Subject: one\r\n  two\r\n\tthree\r\n")).unwrap();
        assert_eq!(subject(&m), b"one two three", "folds joined with one space");
        let m = dgram(&reg_with("Subject:\r\n two\r\n")).unwrap();
        assert_eq!(subject(&m), b"two", "no space before the first word");
        let m = dgram(&reg_with("Subject: one\r\n \r\n")).unwrap();
        assert_eq!(subject(&m), b"one", "a blank fold adds nothing");
        let m = dgram(&reg_with("Subject:    \r\n")).unwrap();
        assert_eq!(subject(&m), b"", "only spaces after the colon");
    }

    #[test]
    fn bare_line_feeds_end_lines_without_eating_a_character() {
        let lf = reg_with("Subject: abc\r\n").replace("\r\n", "\n");
        let m = dgram(&lf).unwrap();
        assert_eq!(subject(&m), b"abc");
        assert_eq!(m.cseq().unwrap().seq, 1);
    }

    #[test]
    fn a_line_that_only_looks_like_the_headers_end_is_an_error() {
        // A one-character line ended by a bare LF, and a line starting with CR: neither
        // is the empty line that ends the headers, and neither is a header.
        assert!(dgram(&reg_with("X\nSubject: y\r\n")).is_err());
        assert!(dgram(&reg_with("\rX: y\r\n")).is_err());
    }

    #[test]
    fn status_codes_are_read_digit_by_digit() {
        for code in [183u16, 486, 202, 999] {
            let r = format!(
                "SIP/2.0 {code} Whatever\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let got = dgram(&r).map(|m| m.status().map(|s| s.as_u16()));
            match code {
                999 => assert!(got.is_err(), "{got:?}"),
                _ => assert_eq!(got.unwrap(), Some(code)),
            }
        }
    }

    #[test]
    fn a_malformed_response_is_never_answered() {
        // RFC 3261 §18.1.2: a response that fails to parse is dropped, whatever is wrong.
        let bad = "SIP/2.0 2x0 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let e = dgram(bad).unwrap_err();
        assert!(e.response().is_none(), "{e}");
        // A request broken the same way is answered (the positive control).
        let e = dgram(&REG.replacen("Max-Forwards: 70", "Max-Forwards: x", 1)).unwrap_err();
        assert!(e.response().is_some(), "{e}");
    }

    #[test]
    fn a_contact_expires_that_is_no_number_is_refused() {
        let bad = REG.replace(
            "Contact: <sip:1001@127.0.0.1:5070>",
            "Contact: <sip:1001@127.0.0.1:5070>;expires=soon",
        );
        let e = dgram(&bad).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST), "{e}");
        let good = REG.replace(
            "Contact: <sip:1001@127.0.0.1:5070>",
            "Contact: <sip:1001@127.0.0.1:5070>;expires=60",
        );
        assert!(dgram(&good).is_ok());
    }

    #[test]
    fn quoted_parameter_values_parse() {
        let m = REG.replace(
            "From: <sip:1001@example.com>;tag=a",
            "From: <sip:1001@example.com>;tag=a;note=\"two words\"",
        );
        assert!(dgram(&m).is_ok());
    }
}
