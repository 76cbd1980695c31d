//! Whether switchboard takes a request up at all, decided from the request alone and
//! before any authentication: a request it would refuse anyway never costs a challenge,
//! and its sender learns what is wrong without a round of digest (RFC 4475 §3.3). In
//! order: the Request-URI's scheme (416), a Require it does not carry out (420), and
//! for a request whose body would be read as an offer, that body's type (415, with the
//! type it reads) and whether the answer may carry the SDP every answer to an INVITE
//! does (406).
//!
//! It reads the request and the option tags in force; the endpoint sends the refusal.

use bytes::Bytes;

use crate::sip::header;
use crate::sip::uri::Scheme;
use crate::sip::{HeaderName, Message, Method, StatusCode};

/// The answer to a request switchboard does not take up.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) code: StatusCode,
    /// Headers the code calls for (Unsupported, Accept).
    pub(super) extra: Vec<(HeaderName, Bytes)>,
}

impl Refusal {
    fn new(code: StatusCode) -> Self {
        Self {
            code,
            extra: Vec::new(),
        }
    }
}

const SDP: &str = "application/sdp";

/// Why `msg` (a request other than CANCEL) is refused before anything else, if it is;
/// `supported` is the option tags switchboard carries out, as its Supported lists them.
pub(super) fn refusal(msg: &Message, supported: &str) -> Option<Refusal> {
    let rl = msg.request_line()?;
    if !matches!(rl.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
        return Some(Refusal::new(StatusCode::UNSUPPORTED_URI_SCHEME));
    }
    // A Require we do not carry out is refused (RFC 3261 §8.2.2.3); Proxy-Require is a
    // proxy's business and ignored here.
    let required: Vec<Bytes> = msg
        .headers_named(&HeaderName::Require)
        .filter_map(|v| header::parse_token_list(v).ok())
        .flatten()
        .filter(|t| {
            !supported
                .split(", ")
                .any(|s| s.as_bytes().eq_ignore_ascii_case(t))
        })
        .collect();
    if !required.is_empty() {
        let list = required
            .iter()
            .map(|b| String::from_utf8_lossy(b))
            .collect::<Vec<_>>()
            .join(", ");
        let mut r = Refusal::new(StatusCode::BAD_EXTENSION);
        r.extra.push((HeaderName::Unsupported, Bytes::from(list)));
        return Some(r);
    }
    if !matches!(rl.method, Method::Invite | Method::Update) {
        return None;
    }
    // An offer in a body we cannot read (RFC 3261 §8.2.3): say which type we read.
    let typed = msg.header(&HeaderName::ContentType);
    if !msg.body.is_empty() && typed.is_some_and(|t| !header::is_media_type(t, SDP)) {
        let mut r = Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        r.extra
            .push((HeaderName::Accept, Bytes::from_static(SDP.as_bytes())));
        return Some(r);
    }
    // Every answer to an INVITE carries SDP; a caller that accepts none cannot take it
    // (RFC 4475 §3.3.15).
    if rl.method == Method::Invite && !header::accepts(msg.headers_named(&HeaderName::Accept), SDP)
    {
        return Some(Refusal::new(StatusCode::NOT_ACCEPTABLE));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse_datagram, Limits};

    const SUPPORTED: &str = "100rel, replaces";

    fn request(method: &str, uri: &str, extra: &str, body: &str) -> Message {
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        parse_datagram(Bytes::from(text), &Limits::default()).unwrap()
    }

    fn code(m: &Message) -> Option<u16> {
        refusal(m, SUPPORTED).map(|r| r.code.as_u16())
    }

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

    #[test]
    fn a_plain_call_and_an_options_are_taken_up() {
        let sdp = "Content-Type: application/sdp\r\n";
        assert_eq!(
            code(&request("INVITE", "sip:b@example.com", sdp, OFFER)),
            None
        );
        assert_eq!(code(&request("INVITE", "tel:+15551234", "", "")), None);
        assert_eq!(code(&request("OPTIONS", "sip:b@example.com", "", "")), None);
        // The type's case and parameters do not matter, nor an Accept that lets SDP in.
        for accept in [
            "Accept: application/sdp\r\n",
            "Accept: text/plain, Application/SDP;level=1\r\n",
            "Accept: application/*\r\n",
            "Accept: */*\r\n",
        ] {
            let extra = format!("Content-Type: Application/SDP; charset=utf-8\r\n{accept}");
            assert_eq!(
                code(&request("INVITE", "sip:b@example.com", &extra, OFFER)),
                None,
                "{accept}"
            );
        }
    }

    #[test]
    fn an_unknown_scheme_is_416_and_an_unknown_requirement_420_naming_it() {
        let m = request("OPTIONS", "soap.beep://192.0.2.103:3002", "", "");
        assert_eq!(code(&m), Some(416));
        let m = request(
            "OPTIONS",
            "sip:b@example.com",
            "Require: 100rel, nothingSupportsThis\r\nProxy-Require: noProxy\r\n",
            "",
        );
        let r = refusal(&m, SUPPORTED).unwrap();
        assert_eq!(r.code, StatusCode::BAD_EXTENSION);
        assert_eq!(
            r.extra,
            [(
                HeaderName::Unsupported,
                Bytes::from_static(b"nothingSupportsThis")
            )]
        );
        // The scheme is looked at first.
        let m = request("OPTIONS", "urn:x:y", "Require: nothingSupportsThis\r\n", "");
        assert_eq!(code(&m), Some(416));
    }

    #[test]
    fn an_offer_we_cannot_read_is_415_with_the_type_we_read() {
        for method in ["INVITE", "UPDATE"] {
            let m = request(
                method,
                "sip:b@example.com",
                "Content-Type: application/unknownformat\r\n",
                "<audio/>",
            );
            let r = refusal(&m, SUPPORTED).unwrap();
            assert_eq!(r.code, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{method}");
            assert_eq!(
                r.extra,
                [(HeaderName::Accept, Bytes::from_static(b"application/sdp"))]
            );
        }
        // Other requests carry bodies of their own (INFO's keys, NOTIFY's sipfrag).
        let m = request(
            "INFO",
            "sip:b@example.com",
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\n",
        );
        assert_eq!(code(&m), None);
        // A type with no body to read is no offer.
        let m = request(
            "INVITE",
            "sip:b@example.com",
            "Content-Type: text/plain\r\n",
            "",
        );
        assert_eq!(code(&m), None);
    }

    #[test]
    fn a_caller_that_accepts_no_sdp_is_406() {
        for accept in ["Accept: text/nobodyKnowsThis\r\n", "Accept: \r\n"] {
            let extra = format!("Content-Type: application/sdp\r\n{accept}");
            let m = request("INVITE", "sip:b@example.com", &extra, OFFER);
            assert_eq!(code(&m), Some(406), "{accept}");
        }
        // Two Accept headers are one list.
        let extra = "Accept: text/plain\r\nAccept: application/sdp\r\n";
        let m = request("INVITE", "sip:b@example.com", extra, "");
        assert_eq!(code(&m), None);
        // An UPDATE without an offer is answered without SDP.
        let m = request("UPDATE", "sip:b@example.com", "Accept: text/plain\r\n", "");
        assert_eq!(code(&m), None);
    }
}
