//! SIP methods and status codes: the two small vocabularies every other part of the stack
//! names. A leaf: it imports nothing else of the stack, so headers (CSeq names a method)
//! and the message model can both build on it.

use bytes::Bytes;
use std::fmt;

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
    /// 406 Not Acceptable.
    pub const NOT_ACCEPTABLE: Self = Self(406);
    /// 407 Proxy Authentication Required.
    pub const PROXY_AUTH_REQUIRED: Self = Self(407);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 413 Request Entity Too Large.
    pub const ENTITY_TOO_LARGE: Self = Self(413);
    /// 414 Request-URI Too Long.
    pub const URI_TOO_LONG: Self = Self(414);
    /// 415 Unsupported Media Type.
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self(415);
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
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            489 => "Bad Event",
            491 => "Request Pending",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            // A code of no listed meaning is read by its class (RFC 3261 §21).
            _ => match self.0 / 100 {
                1 => "Provisional",
                2 => "Successful",
                3 => "Redirection",
                4 => "Request Failure",
                5 => "Server Failure",
                _ => "Global Failure",
            },
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
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
        // RFC 3261 §21 (RFC 3265 for 202 and 489, RFC 4028 for 422).
        for (code, phrase) in [
            (100, "Trying"),
            (180, "Ringing"),
            (181, "Call Is Being Forwarded"),
            (182, "Queued"),
            (183, "Session Progress"),
            (200, "OK"),
            (202, "Accepted"),
            (301, "Moved Permanently"),
            (302, "Moved Temporarily"),
            (380, "Alternative Service"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (406, "Not Acceptable"),
            (407, "Proxy Authentication Required"),
            (408, "Request Timeout"),
            (410, "Gone"),
            (413, "Request Entity Too Large"),
            (414, "Request-URI Too Long"),
            (415, "Unsupported Media Type"),
            (416, "Unsupported URI Scheme"),
            (420, "Bad Extension"),
            (421, "Extension Required"),
            (422, "Session Interval Too Small"),
            (423, "Interval Too Brief"),
            (480, "Temporarily Unavailable"),
            (481, "Call/Transaction Does Not Exist"),
            (482, "Loop Detected"),
            (483, "Too Many Hops"),
            (484, "Address Incomplete"),
            (485, "Ambiguous"),
            (486, "Busy Here"),
            (487, "Request Terminated"),
            (488, "Not Acceptable Here"),
            (489, "Bad Event"),
            (491, "Request Pending"),
            (500, "Server Internal Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Server Time-out"),
            (505, "Version Not Supported"),
            (513, "Message Too Large"),
            (600, "Busy Everywhere"),
            (603, "Decline"),
            (604, "Does Not Exist Anywhere"),
            (606, "Not Acceptable"),
        ] {
            let c = StatusCode::new(code).unwrap();
            assert_eq!(c.reason(), phrase, "{code}");
            assert_eq!(c.to_string(), format!("{code} {phrase}"));
        }
        for (code, class) in [
            (199, "Provisional"),
            (299, "Successful"),
            (399, "Redirection"),
            (499, "Request Failure"),
            (599, "Server Failure"),
            (699, "Global Failure"),
        ] {
            assert_eq!(StatusCode::new(code).unwrap().reason(), class, "{code}");
        }
    }
}
