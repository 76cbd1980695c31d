//! Answering the caller ourselves: our 2xx with our SDP, retransmitted until A's ACK
//! (RFC 3261 §13.3.1.4), and the answers the call gives to A's INVITE.

use bytes::Bytes;
use std::time::Instant;

use super::super::{code, Endpoint};
use super::reliable;
use super::resend::Retransmit2xx;
use super::state::{CallId, CallTimer, Role};
use crate::cdr::Disposition;
use crate::sdp::Codec;
use crate::sip::msg::{HeaderName, Message, StatusCode};
use crate::sip::transaction::response_to;
use crate::story::Event;

impl Endpoint {
    /// Sends `code` (with `sdp`) to the caller's INVITE: a provisional reliably to a
    /// caller that takes that (or kept until the one before is acknowledged, and then
    /// `None`); the bytes sent.
    pub(super) fn respond_a(
        &mut self,
        now: Instant,
        id: CallId,
        code: StatusCode,
        sdp: Option<Bytes>,
    ) -> Option<Bytes> {
        let a = self.calls.caller_mut(id)?;
        let reliable = code.is_provisional()
            && code != StatusCode::TRYING
            && reliable::caller_takes_100rel(&a.invite);
        if !code.is_provisional() {
            if let Some(rel) = a.rel.as_mut() {
                rel.finished();
            }
        } else if let Some(rel) = a.rel.as_mut().filter(|r| reliable && r.waiting()) {
            rel.queue(code, sdp);
            return None;
        }
        let timer = if code.is_success() {
            self.caller_session_timer(now, id)
        } else {
            Vec::new()
        };
        let a = self.calls.caller(id)?;
        let tag = String::from_utf8_lossy(&a.dialog.local_tag).into_owned();
        let mut resp = response_to(&a.invite, code, Some(&tag));
        if code != StatusCode::TRYING {
            resp.push_header(HeaderName::Contact, self.contact_value(&a.dialog.peer));
        }
        for rr in a.invite.headers_named(&HeaderName::RecordRoute) {
            resp.push_header(HeaderName::RecordRoute, rr.clone());
        }
        resp.push_header(HeaderName::Server, self.server_name.clone());
        if code.is_success() {
            resp.push_header(
                HeaderName::Allow,
                Bytes::from_static(crate::endpoint::ALLOW.as_bytes()),
            );
        }
        for (n, v) in timer {
            resp.push_header(n, v);
        }
        if code != StatusCode::TRYING {
            resp.push_header(
                HeaderName::Supported,
                Bytes::from_static(self.supported().as_bytes()),
            );
        }
        let has_sdp = sdp.is_some();
        if let Some(body) = sdp {
            resp.push_header(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            resp.body = body;
        }
        let key = a.invite_key.clone();
        let rseq = if reliable {
            self.make_reliable(id, &mut resp)
        } else {
            None
        };
        let bytes = resp.to_bytes();
        if let Err(e) = self.tx.respond(now, &key, resp) {
            tracing::debug!(error = %e, "response to caller not sent");
            return Some(bytes);
        }
        if let Some(rseq) = rseq {
            self.sent_reliable(now, id, rseq, has_sdp, bytes.clone());
        }
        Some(bytes)
    }

    /// Answers A with our own media (echo, prompts). False if the call had to end.
    pub(super) fn answer_locally(&mut self, now: Instant, id: CallId) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        if c.answered {
            return true;
        }
        let Some(ma) = self.calls.reserve_media(id) else {
            self.fail_call(
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                Disposition::Failed,
            );
            return false;
        };
        let Some((peer, offer)) = self
            .calls
            .caller(id)
            .and_then(|a| Some((a.dialog.peer.clone(), a.sdp.clone()?)))
        else {
            self.calls.release_media(ma);
            return false;
        };
        let answer = match offer.answer_for(self.media_ip(&peer), ma.port, id.0) {
            Ok(a) => a,
            Err(_) => {
                self.calls.release_media(ma);
                self.fail_call(now, id, code(488), Disposition::Failed);
                return false;
            }
        };
        let pt = answer
            .audio()
            .and_then(|m| {
                m.formats
                    .iter()
                    .find(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
            })
            .map_or(0, |f| f.pt);
        let te_pt = answer.audio().and_then(|m| {
            m.formats
                .iter()
                .find(|f| f.codec() == Some(Codec::TelephoneEvent))
                .map(|f| f.pt)
        });
        let a_remote = offer.audio_target();
        self.calls.open_alone(ma, a_remote, Some(pt), te_pt);
        let body = Bytes::from(answer.to_bytes());
        if let Some(a) = self.calls.caller_mut(id) {
            a.media = Some(ma);
            a.pt = pt;
            a.te_pt = te_pt;
            a.dialog.sdp_sent = Some(body.clone());
        }
        self.answer_a(now, id, body);
        self.conversation_on(id);
        true
    }

    /// Answers A: the call is answered now, and our 200 goes out (once A has
    /// acknowledged a reliable provisional that carried SDP, RFC 3262 §3).
    pub(super) fn answer_a(&mut self, now: Instant, id: CallId, body: Bytes) {
        if self.calls.caller(id).is_none() {
            return;
        }
        let unix = self.unix_ms(now);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.answered = true;
            c.story.tell(unix, Event::Answered);
        }
        tracing::info!(call = %id, "answered");
        match self
            .calls
            .caller_mut(id)
            .and_then(|a| a.rel.as_mut())
            .filter(|r| r.holds_2xx())
        {
            Some(rel) => rel.defer_ok(body),
            None => self.send_ok_a(now, id, body),
        }
    }

    /// Sends our 200 to A and starts retransmitting it until A's ACK.
    pub(super) fn send_ok_a(&mut self, now: Instant, id: CallId, body: Bytes) {
        let Some(bytes) = self.respond_a(now, id, StatusCode::OK, Some(body)) else {
            return;
        };
        let ok = Retransmit2xx::new(bytes, now, self.cfg_t1);
        let first = ok.first(now);
        if let Some(a) = self.calls.caller_mut(id) {
            a.ok = Some(ok);
        }
        self.calls.arm(id, CallTimer::OkRetransmit, first);
    }

    /// An ACK outside any transaction: a party's ACK for our 2xx (the caller's to its
    /// INVITE, or either's to a re-INVITE).
    pub(in crate::endpoint) fn on_call_ack(&mut self, msg: &Message) {
        let (Ok(cid), Some(tag)) = (
            msg.call_id(),
            msg.to_hdr().ok().and_then(|t| t.tag().cloned()),
        ) else {
            return;
        };
        let Some((id, leg)) = self.calls.dialog_of(cid, &tag) else {
            return;
        };
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let timer = match c.role(leg) {
            Some(Role::Caller) => CallTimer::OkRetransmit,
            Some(Role::Callee) => CallTimer::CalleeOkRetransmit,
            None => return,
        };
        c.timers.stop(timer);
        if let Some(a) = self.calls.legs.get_mut(leg) {
            a.ok = None;
        }
    }
}
