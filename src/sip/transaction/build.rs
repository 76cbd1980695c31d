//! The messages the transaction layer and its users build from others: a response to a
//! request, the ACK of a non-2xx, a CANCEL for a pending INVITE, and fresh branches.

use bytes::Bytes;

use super::MAGIC_COOKIE;
use crate::sip::msg::{Header, HeaderName, Message, Method, StartLine, StatusCode, StatusLine};
use crate::sip::Uri;

/// Builds a response to `req` (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied;
/// a To tag added when given and none is present.
pub fn response_to(req: &Message, code: StatusCode, to_tag: Option<&str>) -> Message {
    let mut resp = Message {
        start: StartLine::Response(StatusLine {
            code,
            reason: Bytes::from_static(code.reason().as_bytes()),
        }),
        headers: Vec::with_capacity(8),
        body: Bytes::new(),
    };
    for h in &req.headers {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                resp.headers.push(h.clone());
            }
            HeaderName::To => {
                let has_tag = req.to_hdr().ok().and_then(|t| t.tag().cloned()).is_some();
                match to_tag {
                    Some(tag) if !has_tag && code != StatusCode::TRYING => {
                        let mut v = h.value.to_vec();
                        v.extend_from_slice(b";tag=");
                        v.extend_from_slice(tag.as_bytes());
                        resp.headers.push(Header {
                            name: HeaderName::To,
                            value: Bytes::from(v),
                        });
                    }
                    _ => resp.headers.push(h.clone()),
                }
            }
            _ => {}
        }
    }
    resp
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
pub(super) fn ack_for(invite: &Message, resp: &Message) -> Message {
    let uri = match &invite.start {
        StartLine::Request(r) => r.uri.clone(),
        StartLine::Response(_) => unreachable_uri(),
    };
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(v) = invite.header(&HeaderName::Via) {
        // Only the top Via entry.
        let top = crate::sip::header::split_list(v)
            .ok()
            .and_then(|l| l.into_iter().next())
            .unwrap_or_else(|| v.clone());
        ack.push_header(HeaderName::Via, top);
    }
    for name in [HeaderName::From, HeaderName::CallId] {
        if let Some(v) = invite.header(&name) {
            ack.push_header(name, v.clone());
        }
    }
    if let Some(v) = resp.header(&HeaderName::To) {
        ack.push_header(HeaderName::To, v.clone());
    }
    for r in invite.headers_named(&HeaderName::Route) {
        ack.push_header(HeaderName::Route, r.clone());
    }
    if let Ok(c) = invite.cseq() {
        ack.push_header(HeaderName::CSeq, format!("{} ACK", c.seq));
    }
    ack.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    ack
}

fn unreachable_uri() -> Uri {
    Uri::sip(None, "invalid", None)
}

/// A CANCEL for a pending client INVITE (RFC 3261 §9.1): same Request-URI, Call-ID, From,
/// To, top Via (so the same branch), CSeq number, and Route.
pub fn cancel_for(invite: &Message) -> Option<Message> {
    let uri = invite.request_line()?.uri.clone();
    let mut c = Message::request(Method::Cancel, uri);
    let top = crate::sip::header::split_list(invite.header(&HeaderName::Via)?)
        .ok()?
        .into_iter()
        .next()?;
    c.push_header(HeaderName::Via, top);
    for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        c.push_header(name.clone(), invite.header(&name)?.clone());
    }
    for r in invite.headers_named(&HeaderName::Route) {
        c.push_header(HeaderName::Route, r.clone());
    }
    c.push_header(
        HeaderName::CSeq,
        format!("{} CANCEL", invite.cseq().ok()?.seq),
    );
    c.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    Some(c)
}

/// A fresh RFC 3261 branch from 64 random bits the caller supplies (the core holds no RNG
/// of its own, so runs are reproducible with a seeded one).
pub fn new_branch(random: u64) -> String {
    format!("{MAGIC_COOKIE}{random:016x}")
}
