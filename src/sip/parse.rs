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

/// Collects the raw headers needed to answer a broken request, if it is a request at all
/// and one that is answered (never an ACK, RFC 3261 §17.1.1.3). A Via to route the answer
/// by (§18.2.2) and a CSeq for the client to match it on (§17.1.3) are enough: a request
/// missing From, To or Call-ID still learns it is bad (RFC 4475 §3.3.1 `insuf`), and what
/// it lacked is not invented.
fn reply_headers(buf: &Bytes, start: usize, hdr_end: usize) -> Option<Vec<Header>> {
    let mut it = lines(buf, start, hdr_end);
    let (ls, le) = it.next()?;
    if buf[ls..le].starts_with(b"SIP/") || buf[ls..le].starts_with(b"ACK ") {
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
    (has(HeaderName::Via) && has(HeaderName::CSeq)).then_some(out)
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
mod tests;
