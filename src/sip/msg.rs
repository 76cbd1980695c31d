//! The SIP message model: header names and the message itself (methods and status codes
//! are [`crate::sip::method`]'s).
//!
//! A parsed [`Message`] keeps every header value as a slice of the one receive buffer
//! (`Bytes`), so parsing copies nothing but the small header index. Typed views of the
//! headers the stack itself needs (Via, From/To, CSeq, Contact, ...) are parsed on demand
//! by [`crate::sip::header`]. This module owns the shape of a message; it does no IO.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::header::{self, CSeq, NameAddr, Via};
pub use super::method::{Method, StatusCode};
use super::uri::Uri;
use super::HeaderError;

/// A header field name. Compact forms (RFC 3261 §7.3.3) map to the same variant.
///
/// Names are compared without regard to case (RFC 3261 §7.3.1), the names we know and
/// those we keep as `Other` alike.
#[derive(Clone, Debug)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    ContentLength,
    ContentType,
    Expires,
    MinExpires,
    Authorization,
    WwwAuthenticate,
    ProxyAuthorization,
    ProxyAuthenticate,
    AuthenticationInfo,
    Require,
    ProxyRequire,
    Supported,
    Unsupported,
    Allow,
    Route,
    RecordRoute,
    UserAgent,
    Server,
    Date,
    Event,
    Subject,
    Accept,
    /// RFC 3262.
    RSeq,
    RAck,
    /// RFC 4028.
    SessionExpires,
    MinSe,
    /// Any other header, with its name as received.
    Other(Bytes),
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Other(a), Self::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let Self::Other(b) = self {
            for c in b.iter() {
                state.write_u8(c.to_ascii_lowercase());
            }
        }
    }
}

impl HeaderName {
    /// Recognises a header name, case-insensitively, including compact forms.
    pub fn from_bytes(name: &Bytes) -> Self {
        let n = name.as_ref();
        if n.len() == 1 {
            return match n[0].to_ascii_lowercase() {
                b'v' => Self::Via,
                b'f' => Self::From,
                b't' => Self::To,
                b'i' => Self::CallId,
                b'm' => Self::Contact,
                b'l' => Self::ContentLength,
                b'c' => Self::ContentType,
                b'k' => Self::Supported,
                b'o' => Self::Event,
                b's' => Self::Subject,
                b'x' => Self::SessionExpires,
                // RFC 3515 and RFC 3892.
                b'r' => Self::Other(Bytes::from_static(b"Refer-To")),
                b'b' => Self::Other(Bytes::from_static(b"Referred-By")),
                _ => Self::Other(name.clone()),
            };
        }
        const TABLE: &[(&[u8], HeaderName)] = &[
            (b"via", HeaderName::Via),
            (b"from", HeaderName::From),
            (b"to", HeaderName::To),
            (b"call-id", HeaderName::CallId),
            (b"cseq", HeaderName::CSeq),
            (b"contact", HeaderName::Contact),
            (b"max-forwards", HeaderName::MaxForwards),
            (b"content-length", HeaderName::ContentLength),
            (b"content-type", HeaderName::ContentType),
            (b"expires", HeaderName::Expires),
            (b"min-expires", HeaderName::MinExpires),
            (b"authorization", HeaderName::Authorization),
            (b"www-authenticate", HeaderName::WwwAuthenticate),
            (b"proxy-authorization", HeaderName::ProxyAuthorization),
            (b"proxy-authenticate", HeaderName::ProxyAuthenticate),
            (b"authentication-info", HeaderName::AuthenticationInfo),
            (b"require", HeaderName::Require),
            (b"proxy-require", HeaderName::ProxyRequire),
            (b"supported", HeaderName::Supported),
            (b"unsupported", HeaderName::Unsupported),
            (b"allow", HeaderName::Allow),
            (b"route", HeaderName::Route),
            (b"record-route", HeaderName::RecordRoute),
            (b"user-agent", HeaderName::UserAgent),
            (b"server", HeaderName::Server),
            (b"date", HeaderName::Date),
            (b"event", HeaderName::Event),
            (b"subject", HeaderName::Subject),
            (b"accept", HeaderName::Accept),
            (b"rseq", HeaderName::RSeq),
            (b"rack", HeaderName::RAck),
            (b"session-expires", HeaderName::SessionExpires),
            (b"min-se", HeaderName::MinSe),
        ];
        // Compare only names of the same length whose first letters agree: most lookups
        // then touch one or two entries instead of the whole table.
        let Some(first) = n.first().map(u8::to_ascii_lowercase) else {
            return Self::Other(name.clone());
        };
        for (k, v) in TABLE {
            if k.len() == n.len() && k[0] == first && k.eq_ignore_ascii_case(n) {
                return v.clone();
            }
        }
        Self::Other(name.clone())
    }

    /// The canonical long name we print.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Via => b"Via",
            Self::From => b"From",
            Self::To => b"To",
            Self::CallId => b"Call-ID",
            Self::CSeq => b"CSeq",
            Self::Contact => b"Contact",
            Self::MaxForwards => b"Max-Forwards",
            Self::ContentLength => b"Content-Length",
            Self::ContentType => b"Content-Type",
            Self::Expires => b"Expires",
            Self::MinExpires => b"Min-Expires",
            Self::Authorization => b"Authorization",
            Self::WwwAuthenticate => b"WWW-Authenticate",
            Self::ProxyAuthorization => b"Proxy-Authorization",
            Self::ProxyAuthenticate => b"Proxy-Authenticate",
            Self::AuthenticationInfo => b"Authentication-Info",
            Self::Require => b"Require",
            Self::ProxyRequire => b"Proxy-Require",
            Self::Supported => b"Supported",
            Self::Unsupported => b"Unsupported",
            Self::Allow => b"Allow",
            Self::Route => b"Route",
            Self::RecordRoute => b"Record-Route",
            Self::UserAgent => b"User-Agent",
            Self::Server => b"Server",
            Self::Date => b"Date",
            Self::Event => b"Event",
            Self::Subject => b"Subject",
            Self::Accept => b"Accept",
            Self::RSeq => b"RSeq",
            Self::RAck => b"RAck",
            Self::SessionExpires => b"Session-Expires",
            Self::MinSe => b"Min-SE",
            Self::Other(b) => b,
        }
    }
}

/// One header field: its name and its value with surrounding whitespace trimmed and any
/// line folding replaced by a single space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The recognised name.
    pub name: HeaderName,
    /// The value, a slice of the receive buffer unless the line was folded.
    pub value: Bytes,
}

/// The request line of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLine {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
}

/// The status line of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusLine {
    /// The status code.
    pub code: StatusCode,
    /// The reason phrase as received (may be empty or any UTF-8).
    pub reason: Bytes,
}

/// The first line of a message.
// Every message carries exactly one of these; boxing the request line would add an
// allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// A request.
    Request(RequestLine),
    /// A response.
    Response(StatusLine),
}

/// A SIP message: a request or a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Request line or status line.
    pub start: StartLine,
    /// Header fields in order; repeated names stay separate entries.
    pub headers: Vec<Header>,
    /// The body, exactly Content-Length bytes.
    pub body: Bytes,
}

impl Message {
    /// A new request with no headers yet.
    pub fn request(method: Method, uri: Uri) -> Self {
        Self {
            start: StartLine::Request(RequestLine { method, uri }),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    /// The request line, for requests.
    pub fn request_line(&self) -> Option<&RequestLine> {
        match &self.start {
            StartLine::Request(r) => Some(r),
            StartLine::Response(_) => None,
        }
    }

    /// The status code, for responses.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.start {
            StartLine::Response(s) => Some(s.code),
            StartLine::Request(_) => None,
        }
    }

    /// The method of a request, or of the request a response answers (from CSeq).
    pub fn method(&self) -> Option<Method> {
        match &self.start {
            StartLine::Request(r) => Some(r.method.clone()),
            StartLine::Response(_) => self.cseq().ok().map(|c| c.method),
        }
    }

    /// The first value of a header.
    pub fn header(&self, name: &HeaderName) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| &h.name == name)
            .map(|h| &h.value)
    }

    /// Whether any value of the token-list header `name` (Require, Supported, Allow)
    /// lists `token`, in any case.
    pub fn lists(&self, name: &HeaderName, token: &[u8]) -> bool {
        self.headers_named(name)
            .filter_map(|v| header::parse_token_list(v).ok())
            .flatten()
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// All values of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> {
        self.headers
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    /// Appends a header.
    pub fn push_header(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.headers.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Replaces every value of a header by one value (appends if absent).
    pub fn set_header(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        if let Some(pos) = self.headers.iter().position(|h| h.name == name) {
            self.headers[pos].value = value;
            let mut i = pos + 1;
            while i < self.headers.len() {
                if self.headers[i].name == name {
                    self.headers.remove(i);
                } else {
                    i += 1;
                }
            }
        } else {
            self.push_header(name, value);
        }
    }

    /// The topmost Via entry.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let v = self
            .header(&HeaderName::Via)
            .ok_or(HeaderError::Missing("Via"))?;
        header::parse_via_list(v)?
            .into_iter()
            .next()
            .ok_or(HeaderError::Missing("Via"))
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        let v = self
            .header(&HeaderName::CSeq)
            .ok_or(HeaderError::Missing("CSeq"))?;
        header::parse_cseq(v)
    }

    /// The From header.
    pub fn from_hdr(&self) -> Result<NameAddr, HeaderError> {
        let v = self
            .header(&HeaderName::From)
            .ok_or(HeaderError::Missing("From"))?;
        header::parse_name_addr(v)
    }

    /// The To header.
    pub fn to_hdr(&self) -> Result<NameAddr, HeaderError> {
        let v = self
            .header(&HeaderName::To)
            .ok_or(HeaderError::Missing("To"))?;
        header::parse_name_addr(v)
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> Result<&Bytes, HeaderError> {
        self.header(&HeaderName::CallId)
            .ok_or(HeaderError::Missing("Call-ID"))
    }

    /// Serialises the message. Content-Length is always written from the body's length, so
    /// a message can never lie about its own framing.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.wire_len_hint());
        self.write_to(&mut out);
        out.freeze()
    }

    fn wire_len_hint(&self) -> usize {
        64 + self.body.len()
            + self
                .headers
                .iter()
                .map(|h| h.name.as_bytes().len() + h.value.len() + 4)
                .sum::<usize>()
    }

    /// Serialises the message into `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request(r) => {
                out.put_slice(r.method.as_bytes());
                out.put_u8(b' ');
                r.uri.write_to(out);
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response(s) => {
                out.put_slice(b"SIP/2.0 ");
                put_u64(out, u64::from(s.code.as_u16()));
                out.put_u8(b' ');
                out.put_slice(&s.reason);
                out.put_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            if h.name == HeaderName::ContentLength {
                continue;
            }
            out.put_slice(h.name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(&h.value);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Length: ");
        put_u64(out, self.body.len() as u64);
        out.put_slice(b"\r\n\r\n");
        out.put_slice(&self.body);
    }
}

/// Writes a decimal number without going through `fmt` (hot path for every message).
pub(crate) fn put_u64(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_header_names_a_responses_method_and_set_header() {
        let compact = [
            ("v", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("o", HeaderName::Event),
            ("s", HeaderName::Subject),
            ("x", HeaderName::SessionExpires),
            ("r", HeaderName::Other(Bytes::from_static(b"Refer-To"))),
            ("b", HeaderName::Other(Bytes::from_static(b"Referred-By"))),
        ];
        for (short, name) in compact {
            assert_eq!(
                HeaderName::from_bytes(&Bytes::from_static(short.as_bytes())),
                name
            );
            let upper = short.to_ascii_uppercase();
            assert_eq!(HeaderName::from_bytes(&Bytes::from(upper)), name, "{short}");
        }
        let m = crate::sip::parse::parse_datagram(
            Bytes::from_static(
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
                  To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 7 BYE\r\nX: 1\r\nY: 2\r\nX: 3\r\n\
                  Content-Length: 0\r\n\r\n",
            ),
            &crate::sip::parse::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            m.method(),
            Some(Method::Bye),
            "a response's method is its CSeq's"
        );
        let mut m = m;
        let x = HeaderName::Other(Bytes::from_static(b"X"));
        m.set_header(x.clone(), "9");
        assert_eq!(
            m.headers_named(&x).collect::<Vec<_>>(),
            [&Bytes::from_static(b"9")]
        );
        let y = HeaderName::Other(Bytes::from_static(b"Y"));
        assert_eq!(
            m.header(&y),
            Some(&Bytes::from_static(b"2")),
            "others untouched"
        );
    }

    #[test]
    fn names_we_keep_as_received_match_in_any_case_and_hash_alike() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |n: &HeaderName| {
            let mut h = DefaultHasher::new();
            n.hash(&mut h);
            h.finish()
        };
        let sent = HeaderName::from_bytes(&Bytes::from_static(b"refer-TO"));
        let ours = HeaderName::Other(Bytes::from_static(b"Refer-To"));
        assert_eq!(sent, ours);
        assert_eq!(hash(&sent), hash(&ours));
        assert_ne!(ours, HeaderName::Other(Bytes::from_static(b"Referred-By")));
        assert_ne!(HeaderName::RSeq, HeaderName::RAck);
        assert_eq!(
            HeaderName::from_bytes(&Bytes::from_static(b"RACK")),
            HeaderName::RAck
        );
        assert_eq!(
            HeaderName::from_bytes(&Bytes::from_static(b"Min-se")).as_bytes(),
            b"Min-SE"
        );
    }

    #[test]
    fn call_id_and_display_are_the_messages_own() {
        let raw: &[u8] = b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: abc@h\r\nCSeq: 1 OPTIONS\r\n\
              Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let limits = crate::sip::parse::Limits::default();
        let mut m = crate::sip::parse::parse_datagram(Bytes::from_static(raw), &limits).unwrap();
        assert_eq!(m.call_id().unwrap().as_ref(), b"abc@h");
        assert_eq!(m.to_string().as_bytes(), &m.to_bytes()[..]);
        assert_eq!(&m.to_bytes()[..], raw, "printed as parsed");
        m.headers.retain(|h| h.name != HeaderName::CallId);
        assert_eq!(m.call_id(), Err(HeaderError::Missing("Call-ID")));
    }
}
