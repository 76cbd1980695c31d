//! The SIP message model: methods, status codes, header names and the message itself.
//!
//! A parsed [`Message`] keeps every header value as a slice of the one receive buffer
//! (`Bytes`), so parsing copies nothing but the small header index. Typed views of the
//! headers the stack itself needs (Via, From/To, CSeq, Contact, ...) are parsed on demand
//! by [`crate::sip::header`]. This module owns the shape of a message; it does no IO.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::header::{self, CSeq, NameAddr, Via};
use super::uri::Uri;
use super::HeaderError;

/// A SIP request method. Unknown extension methods are kept as their token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// RFC 3261 INVITE.
    Invite,
    /// RFC 3261 ACK.
    Ack,
    /// RFC 3261 BYE.
    Bye,
    /// RFC 3261 CANCEL.
    Cancel,
    /// RFC 3261 REGISTER.
    Register,
    /// RFC 3261 OPTIONS.
    Options,
    /// RFC 6086 INFO.
    Info,
    /// RFC 3311 UPDATE.
    Update,
    /// RFC 3262 PRACK.
    Prack,
    /// RFC 6665 SUBSCRIBE.
    Subscribe,
    /// RFC 6665 NOTIFY.
    Notify,
    /// RFC 3515 REFER.
    Refer,
    /// RFC 3428 MESSAGE.
    Message,
    /// RFC 3903 PUBLISH.
    Publish,
    /// Any other token; methods are case-sensitive (RFC 3261 §7.1).
    Other(Bytes),
}

impl Method {
    /// Maps a method token to a method; never fails (unknown tokens become `Other`).
    pub fn from_token(tok: &Bytes) -> Self {
        match tok.as_ref() {
            b"INVITE" => Self::Invite,
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"REGISTER" => Self::Register,
            b"OPTIONS" => Self::Options,
            b"INFO" => Self::Info,
            b"UPDATE" => Self::Update,
            b"PRACK" => Self::Prack,
            b"SUBSCRIBE" => Self::Subscribe,
            b"NOTIFY" => Self::Notify,
            b"REFER" => Self::Refer,
            b"MESSAGE" => Self::Message,
            b"PUBLISH" => Self::Publish,
            _ => Self::Other(tok.clone()),
        }
    }

    /// The method's token as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Invite => b"INVITE",
            Self::Ack => b"ACK",
            Self::Bye => b"BYE",
            Self::Cancel => b"CANCEL",
            Self::Register => b"REGISTER",
            Self::Options => b"OPTIONS",
            Self::Info => b"INFO",
            Self::Update => b"UPDATE",
            Self::Prack => b"PRACK",
            Self::Subscribe => b"SUBSCRIBE",
            Self::Notify => b"NOTIFY",
            Self::Refer => b"REFER",
            Self::Message => b"MESSAGE",
            Self::Publish => b"PUBLISH",
            Self::Other(b) => b,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A SIP status code, 100..=699.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 100 Trying.
    pub const TRYING: Self = Self(100);
    /// 180 Ringing.
    pub const RINGING: Self = Self(180);
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 407 Proxy Authentication Required.
    pub const PROXY_AUTH_REQUIRED: Self = Self(407);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 413 Request Entity Too Large.
    pub const ENTITY_TOO_LARGE: Self = Self(413);
    /// 414 Request-URI Too Long.
    pub const URI_TOO_LONG: Self = Self(414);
    /// 416 Unsupported URI Scheme.
    pub const UNSUPPORTED_URI_SCHEME: Self = Self(416);
    /// 420 Bad Extension.
    pub const BAD_EXTENSION: Self = Self(420);
    /// 423 Interval Too Brief.
    pub const INTERVAL_TOO_BRIEF: Self = Self(423);
    /// 481 Call/Transaction Does Not Exist.
    pub const CALL_DOES_NOT_EXIST: Self = Self(481);
    /// 483 Too Many Hops.
    pub const TOO_MANY_HOPS: Self = Self(483);
    /// 487 Request Terminated.
    pub const REQUEST_TERMINATED: Self = Self(487);
    /// 500 Server Internal Error.
    pub const SERVER_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 505 Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);

    /// A status code from its number; `None` outside 100..=699.
    pub fn new(code: u16) -> Option<Self> {
        (100..=699).contains(&code).then_some(Self(code))
    }

    /// The number.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// The RFC's reason phrase, used when we build a response.
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "Version Not Supported",
            603 => "Decline",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// A header field name. Compact forms (RFC 3261 §7.3.3) map to the same variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// Any other header, with its name as received.
    Other(Bytes),
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

    /// Removes every value of a header.
    pub fn remove_header(&mut self, name: &HeaderName) {
        self.headers.retain(|h| &h.name != name);
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
    fn every_method_token_maps_both_ways_and_others_are_kept_as_sent() {
        let all = [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "REGISTER",
            "OPTIONS",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
        ];
        for t in all {
            let m = Method::from_token(&Bytes::from_static(t.as_bytes()));
            assert!(!matches!(m, Method::Other(_)), "{t} is known");
            assert_eq!(m.as_bytes(), t.as_bytes());
        }
        // Case-sensitive (RFC 3261 §7.1): `invite` is some other method.
        let m = Method::from_token(&Bytes::from_static(b"invite"));
        assert_eq!(m, Method::Other(Bytes::from_static(b"invite")));
        assert_eq!(m.to_string(), "invite");
    }

    #[test]
    fn reason_phrases_are_the_rfcs() {
        // RFC 3261 §21 (and RFC 3265 for 202).
        for (code, phrase) in [
            (100, "Trying"),
            (180, "Ringing"),
            (183, "Session Progress"),
            (200, "OK"),
            (202, "Accepted"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (407, "Proxy Authentication Required"),
            (408, "Request Timeout"),
            (413, "Request Entity Too Large"),
            (414, "Request-URI Too Long"),
            (415, "Unsupported Media Type"),
            (416, "Unsupported URI Scheme"),
            (420, "Bad Extension"),
            (423, "Interval Too Brief"),
            (480, "Temporarily Unavailable"),
            (481, "Call/Transaction Does Not Exist"),
            (482, "Loop Detected"),
            (483, "Too Many Hops"),
            (486, "Busy Here"),
            (487, "Request Terminated"),
            (488, "Not Acceptable Here"),
            (500, "Server Internal Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "Version Not Supported"),
            (603, "Decline"),
        ] {
            let c = StatusCode::new(code).unwrap();
            assert_eq!(c.reason(), phrase, "{code}");
            assert_eq!(c.to_string(), format!("{code} {phrase}"));
        }
        assert_eq!(StatusCode::new(499).unwrap().reason(), "Unknown");
    }

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
}
