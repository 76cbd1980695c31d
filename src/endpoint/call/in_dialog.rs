//! Requests inside a call's dialogs: BYE ending the other side, INFO keys, re-INVITE and
//! UPDATE relayed from one leg to the other (hold, resume, a new address; what hold does
//! to the media is [`super::hold`]'s), REFER handed to [`super::transfer`], and a CANCEL
//! from the caller.

use bytes::Bytes;
use std::time::Instant;

use super::super::owner::{CallTx, TxOwner};
use super::super::{code, Endpoint, ALLOW};
use super::collect::info_digit;
use super::hold::{held_answer, hold_change};
use super::resend::Retransmit2xx;
use super::state::{CallId, CallTimer, HoldChange, LegId, Reoffer};
use crate::cdr::{Disposition, HangupBy};
use crate::sdp::{Direction, Sdp};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{response_to, Transmit, TxKey};

impl Endpoint {
    /// The caller's CANCEL matched its INVITE: the endpoint already sent 200 and 487.
    pub(in crate::endpoint) fn on_caller_cancel(&mut self, now: Instant, invite_key: &TxKey) {
        let Some(&id) = self.calls.by_a_invite.get(invite_key) else {
            return;
        };
        self.finish(now, id, Disposition::Cancelled, 487, HangupBy::Caller);
    }

    /// Sends BYE to the caller of call `id`.
    pub(super) fn bye_caller(&mut self, now: Instant, id: CallId) {
        if let Some(a) = self.calls.calls.get(&id).and_then(|c| c.caller()) {
            self.send_bye(now, a);
        }
    }

    /// Sends BYE to the callee of call `id`, if it answered.
    pub(super) fn bye_callee(&mut self, now: Instant, id: CallId) {
        if let Some(b) = self.calls.calls.get(&id).and_then(|c| c.callee()) {
            self.send_bye(now, b);
        }
    }

    /// Sends BYE on `leg`.
    pub(super) fn send_bye(&mut self, now: Instant, leg: LegId) {
        // A consultation's caller goes back to the party it put aside instead: only the
        // consultation ends.
        if self.consulter_back(now, leg) {
            return;
        }
        let Some(id) = self.calls.legs.get(leg).map(|l| l.call) else {
            return;
        };
        let Some(leg) = self.calls.legs.get_mut(leg) else {
            return;
        };
        leg.dialog.cseq += 1;
        let (leg, cseq) = (leg.dialog.clone(), leg.dialog.cseq);
        let mut bye = self.leg_request(Method::Bye, &leg, cseq);
        bye.push_header(HeaderName::UserAgent, self.server_name.clone());
        match self.tx.send_request(now, bye, leg.peer) {
            Ok(k) => {
                self.owners.insert(k, TxOwner::Call(id, CallTx::Bye));
            }
            Err(e) => tracing::debug!(error = %e, "BYE not sent"),
        }
    }

    /// A request inside a dialog (To tag present). Returns false when no call knows it.
    pub(in crate::endpoint) fn on_in_dialog(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
    ) -> bool {
        let (Ok(cid), Some(tag)) = (
            msg.call_id(),
            msg.to_hdr().ok().and_then(|t| t.tag().cloned()),
        ) else {
            return false;
        };
        let Some((id, leg)) = self.calls.dialog_of(cid, &tag) else {
            return false;
        };
        let method = msg.request_line().map(|r| r.method.clone());
        let Some((up, caller, other)) = self
            .calls
            .calls
            .get(&id)
            .map(|c| (c.role(leg).is_some(), c.is_caller(leg), c.other(leg)))
        else {
            return false;
        };
        if !up {
            if self.request_to_leaving(now, key, msg, id, leg) {
                return true;
            }
            // A device still ringing has only an early dialog: nothing in it is ours to
            // carry out (a BYE before its 2xx is not one RFC 3261 lets a callee send).
            if method != Some(Method::Ack) {
                self.reply(now, key, msg, code(481), vec![]);
            }
            return true;
        }
        match method {
            Some(Method::Bye) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
                if self.consulter_hung_up(now, id, leg) {
                    return true;
                }
                let by = if caller {
                    HangupBy::Caller
                } else {
                    HangupBy::Callee
                };
                if let Some(other) = other {
                    self.send_bye(now, other);
                }
                let answered = self.calls.calls.get(&id).is_some_and(|c| c.answered);
                let disp = if answered {
                    Disposition::Answered
                } else {
                    Disposition::Cancelled
                };
                self.finish(now, id, disp, 200, by);
            }
            Some(Method::Invite) | Some(Method::Update) => {
                self.party_refreshed(now, leg, msg);
                self.on_reoffer(now, key, msg, id, leg);
            }
            Some(Method::Refer) => self.on_refer(now, key, msg, id, leg),
            Some(Method::Prack) => self.on_prack(now, key, msg, id, leg),
            Some(Method::Info) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
                if let Some(d) = info_digit(msg) {
                    if !self.feature_key(now, id, leg, d) && caller {
                        self.on_digit(now, id, d);
                    }
                }
            }
            Some(Method::Options) => {
                let allow = vec![(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()))];
                self.reply(now, key, msg, StatusCode::OK, allow);
            }
            Some(Method::Ack) | None => {}
            Some(m) => {
                // Never a 200 for what is not done; the call goes on as it was.
                let code = StatusCode::NOT_IMPLEMENTED;
                tracing::info!(call = %id, method = %m, code = code.as_u16(), "in-dialog request refused");
                let allow = vec![(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()))];
                self.reply(now, key, msg, code, allow);
            }
        }
        true
    }

    /// A re-INVITE or UPDATE inside a call: relayed to the other party with the SDP
    /// rewritten to our relay ports, so hold, resume and address changes reach it (RFC
    /// 3264 §8). A call with nobody on the other side (echo, prompts) answers it itself.
    pub(super) fn on_reoffer(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
        id: CallId,
        from: LegId,
    ) {
        let sdp_type = || {
            vec![(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            )]
        };
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let relaying = c
            .legs
            .iter()
            .any(|&(l, _)| self.calls.legs.get(l).is_some_and(|l| l.reoffer.is_some()));
        if relaying {
            // Glare: one offer at a time across the two legs (RFC 3261 §14.2).
            self.reply(now, key, msg, code(491), vec![]);
            return;
        }
        let offer = Sdp::parse(&msg.body).ok();
        let timer = self.timer_response_headers(from);
        if offer.is_none() && msg.method() == Some(Method::Update) {
            // A session refresh by UPDATE: no offer, so no answer (RFC 3311 §5.2).
            self.reply(now, key, msg, StatusCode::OK, timer);
            return;
        }
        if c.other(from).is_none() || offer.is_none() {
            // Nothing to relay to, or no offer in it (a session refresh): repeat what this
            // leg already agreed, in the direction the offer asks.
            let sdp = self.answer_here(from, offer.as_ref());
            let mut headers = sdp_type();
            headers.extend(timer);
            self.reply_with_body(
                now,
                key,
                msg,
                StatusCode::OK,
                headers,
                sdp.unwrap_or_default(),
            );
            return;
        }
        let Some(offer) = offer.filter(Sdp::is_relayable) else {
            self.reply(now, key, msg, code(488), vec![]);
            return;
        };
        let Some(to) = c.other(from) else { return };
        let Some(mut leg) = self.calls.legs.get(to).map(|l| l.dialog.clone()) else {
            return;
        };
        let sender_media = self.calls.legs.get(from).and_then(|l| l.media);
        let new_addr = offer.audio_target().zip(sender_media.map(|m| m.key));
        // Our port facing the party the offer is relayed to.
        let Some(port) = self
            .calls
            .legs
            .get(to)
            .and_then(|l| l.media)
            .map(|m| m.port)
        else {
            self.reply(now, key, msg, code(488), vec![]);
            return;
        };
        leg.sdp_version += 1;
        let Ok(mut relayed) = offer.relayed(self.media_ip(&leg.peer), port, id.0, leg.sdp_version)
        else {
            self.reply(now, key, msg, code(488), vec![]);
            return;
        };
        let hold = hold_change(&offer, from, c.on_hold);
        // The sender's new address, until its packets latch its leg anyway.
        if let Some((addr, sender)) = new_addr {
            self.calls.remote(sender, addr);
        }
        if let HoldChange::Hold(_) = hold {
            // The held party gets our music: to it, we send and do not listen.
            relayed.set_direction(Direction::SendOnly);
        }
        let method = msg.method().unwrap_or(Method::Invite);
        leg.cseq += 1;
        let mut req = self.leg_request(method, &leg, leg.cseq);
        req.push_header(HeaderName::Contact, self.contact_value(&leg.peer));
        for (n, v) in self.timer_request_headers(to) {
            req.push_header(n, v);
        }
        req.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        req.body = Bytes::from(relayed.to_bytes());
        let peer = leg.peer.clone();
        let forwarded = match self.tx.send_request(now, req, peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not relay re-offer");
                self.reply(now, key, msg, StatusCode::SERVER_ERROR, vec![]);
                return;
            }
        };
        tracing::info!(call = %id, ?from, ?hold, "relaying a mid-call offer");
        self.owners
            .insert(forwarded.clone(), TxOwner::Call(id, CallTx::Reoffer));
        if let Some(l) = self.calls.legs.get_mut(to) {
            l.dialog = leg;
        }
        if let Some(l) = self.calls.legs.get_mut(from) {
            l.reoffer = Some(Box::new(Reoffer {
                hold,
                key: key.clone(),
                request: msg.clone(),
                forwarded,
            }));
        }
    }

    /// The other party's answer to a relayed re-offer: ACK it, and answer the sender.
    pub(super) fn reoffer_answered(
        &mut self,
        now: Instant,
        id: CallId,
        key: &TxKey,
        resp: &Message,
    ) {
        let Some(status) = resp.status() else { return };
        if status.is_provisional() {
            return;
        }
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        self.owners.remove(key);
        // The leg whose offer this answers.
        let Some(from) = c.legs.iter().map(|&(l, _)| l).find(|&l| {
            self.calls
                .legs
                .get(l)
                .and_then(|l| l.reoffer.as_ref())
                .is_some_and(|r| &r.forwarded == key)
        }) else {
            return;
        };
        let (from_caller, answering_leg) = (c.is_caller(from), c.other(from));
        let media_of =
            |l: Option<LegId>| l.and_then(|l| self.calls.legs.get(l)).and_then(|l| l.media);
        let (Some(sender_media), answering_media) = (media_of(Some(from)), media_of(answering_leg))
        else {
            return;
        };
        let Some(p) = self.calls.legs.get_mut(from).and_then(|l| l.reoffer.take()) else {
            return;
        };
        let answering = answering_leg
            .and_then(|l| self.calls.legs.get(l))
            .map(|l| l.dialog.clone());
        let Some(sender_peer) = self
            .calls
            .legs
            .get(from)
            .or_else(|| self.calls.caller(id))
            .map(|l| l.dialog.peer.clone())
        else {
            return;
        };
        if status.is_success() && key.method == Method::Invite {
            if let Some(leg) = &answering {
                let ack = self.leg_request(Method::Ack, leg, leg.cseq).to_bytes();
                self.out.push_back(Transmit {
                    peer: leg.peer.clone(),
                    bytes: ack.clone(),
                });
                // Kept to send again should the answering leg's 2xx come again.
                if let Some(l) = answering_leg.and_then(|l| self.calls.legs.get_mut(l)) {
                    l.ack = Some(ack);
                }
            }
        }
        let answer = Sdp::parse(&resp.body).ok().filter(|_| status.is_success());
        if let (Some(addr), Some(m)) =
            (answer.as_ref().and_then(Sdp::audio_target), answering_media)
        {
            // The answering party's (maybe) new address.
            self.calls.remote(m.key, addr);
        }
        // Our port facing the party whose offer this answers.
        let port = sender_media.port;
        let version = self.calls.legs.get_mut(from).map(|l| {
            l.dialog.sdp_version += 1;
            l.dialog.sdp_version
        });
        let relayed = answer.and_then(|a| {
            a.relayed(
                self.media_ip(&sender_peer),
                port,
                id.0,
                version.unwrap_or(2),
            )
            .ok()
        });
        let body = relayed
            .map(|mut a| {
                if let HoldChange::Hold(asked) = p.hold {
                    // What the holder asked for, whatever the held party answered us.
                    a.set_direction(held_answer(asked));
                }
                a
            })
            .map(|a| Bytes::from(a.to_bytes()));
        if status.is_success() && body.is_some() {
            self.hold_changed(now, id, from, p.hold);
        }
        let to_sender = if status.is_success() && body.is_none() {
            code(488)
        } else {
            status
        };
        let tag = self.calls.calls.get(&id).map(|_| {
            self.calls
                .legs
                .get(from)
                .map(|l| l.dialog.local_tag.clone())
                .unwrap_or_default()
        });
        let tag = tag.map(|t| String::from_utf8_lossy(&t).into_owned());
        let mut r = response_to(&p.request, to_sender, tag.as_deref());
        r.push_header(HeaderName::Contact, self.contact_value(&sender_peer));
        r.push_header(HeaderName::Server, self.server_name.clone());
        if to_sender.is_success() {
            for (n, v) in self.timer_response_headers(from) {
                r.push_header(n, v);
            }
            // The answering party's session is refreshed by this exchange too.
            if let Some(l) = answering_leg {
                self.session_timer_answered(now, l, resp);
            }
        }
        if let Some(b) = body.clone().filter(|_| to_sender.is_success()) {
            r.push_header(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            r.body = b.clone();
            if let Some(l) = self.calls.legs.get_mut(from) {
                l.dialog.sdp_sent = Some(b);
            }
        }
        let bytes = r.to_bytes();
        if let Err(e) = self.tx.respond(now, &p.key, r) {
            tracing::debug!(error = %e, "answer to a re-offer not sent");
        }
        // Our 2xx to a re-INVITE is retransmitted until its ACK, like the first.
        if to_sender.is_success() && p.key.method == Method::Invite {
            let ok = Retransmit2xx::new(bytes, now, self.cfg_t1);
            let first = ok.first(now);
            if let Some(l) = self.calls.legs.get_mut(from) {
                l.ok = Some(ok);
            }
            let timer = if from_caller {
                CallTimer::OkRetransmit
            } else {
                CallTimer::CalleeOkRetransmit
            };
            self.calls.arm(id, timer, first);
        }
    }
}
