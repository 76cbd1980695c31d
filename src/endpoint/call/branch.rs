//! Responses to the INVITEs we sent: a branch ringing, failing or answering (the first 2xx
//! bridges, the others are cancelled), B legs given up on (detached: cancelled, and hung
//! up should they answer anyway), and transaction timeouts on a call's client side.

use bytes::Bytes;
use std::time::Instant;

use super::super::owner::{CallTx, TxOwner};
use super::super::{code, Endpoint};
use super::state::{CallId, CallTimer, Detached, LegId, Role, State, Status};
use crate::cdr::{Disposition, HangupBy};
use crate::sdp::Sdp;
use crate::sip::dialog::{contact_uri, route_set, Dialog};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{cancel_for, Peer, Transmit, TxKey};
use crate::story::Event;

impl Endpoint {
    /// Gives up on every B leg still ringing.
    pub(in crate::endpoint) fn detach_b(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.timers.stop(CallTimer::RingTimeout);
        let rang = c.b_ext.clone().filter(|_| !c.dialing.is_empty());
        for d in std::mem::take(&mut c.dialing) {
            self.detach_branch(now, d);
        }
        if let Some(ext) = rang {
            // It rings no more.
            self.notify_line(now, &ext);
        }
    }

    /// Gives up on one ringing B leg: CANCEL it (now, or at its first provisional) and keep
    /// watching its INVITE so a late answer is ACKed and hung up.
    pub(super) fn detach_branch(&mut self, now: Instant, leg: LegId) {
        let Some(mut leg) = self.calls.remove_leg(leg) else {
            return;
        };
        let provisional = leg.ringing().is_some_and(|r| r.provisional);
        self.owners.forget_call_tx(&leg.invite_key);
        if self.tx.request_of(&leg.invite_key).is_none() {
            return;
        }
        let mut det = Detached {
            invite: leg.invite,
            peer: leg.dialog.peer,
            cancel_sent: false,
        };
        if provisional {
            self.send_cancel(now, &mut det);
        }
        self.owners
            .insert(leg.invite_key, TxOwner::Detached(Box::new(det)));
    }

    pub(super) fn send_cancel(&mut self, now: Instant, det: &mut Detached) {
        det.cancel_sent = true;
        if let Some(cancel) = cancel_for(&det.invite) {
            if let Err(e) = self.tx.send_request(now, cancel, det.peer.clone()) {
                tracing::debug!(error = %e, "CANCEL not sent");
            }
        }
    }

    /// A response on one of our client transactions; false if no call knows it.
    pub(in crate::endpoint) fn on_call_response(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: Message,
    ) -> bool {
        let Some(status) = msg.status() else {
            return true;
        };
        if let Some(mut det) = self.owners.take_detached(key) {
            if status.is_success() {
                self.orphan_2xx(now, &msg, det.peer.clone());
            } else if status.is_provisional() {
                if status != StatusCode::TRYING && !det.cancel_sent {
                    self.send_cancel(now, &mut det);
                }
                self.owners
                    .insert(key.clone(), TxOwner::Detached(Box::new(det)));
            }
            return true;
        }
        let Some((id, role)) = self.owners.call(key) else {
            return false;
        };
        match role {
            CallTx::Reoffer => {
                self.reoffer_answered(now, id, key, &msg);
                return true;
            }
            // Responses to our BYE, NOTIFY or PRACK need nothing more.
            CallTx::Bye | CallTx::Notify | CallTx::Prack => return true,
            what @ (CallTx::Unhold(_) | CallTx::Refresh(_)) => {
                self.our_reinvite_answered(now, id, what, key, &msg);
                return true;
            }
            CallTx::Customer => {
                self.customer_response(now, id, key, &msg, status);
                return true;
            }
            CallTx::Branch => {}
        }
        let bridged = self.calls.calls.get(&id).is_some_and(|c| c.bridged());
        if bridged {
            if status.is_success() {
                // A retransmitted 2xx: our ACK was lost, so send it again.
                if let Some((ack, peer)) = self
                    .calls
                    .callee(id)
                    .and_then(|b| Some((b.ack.clone()?, b.dialog.peer.clone())))
                {
                    self.out.push_back(Transmit { peer, bytes: ack });
                }
            }
            return true;
        }
        if status == StatusCode::TRYING {
            // Nothing to relay: we sent our own 100 to the caller already.
        } else if status.is_provisional() {
            self.b_provisional(now, id, key, &msg);
        } else if status.is_success() {
            self.b_answered(now, id, key, &msg);
        } else if matches!(status.as_u16(), 401 | 407)
            && self.retry_with_credentials(now, id, key, &msg)
        {
            // Sent again with credentials; the dial goes on.
        } else {
            tracing::info!(call = %id, code = status.as_u16(), "callee refused");
            self.branch_failed(now, id, key, status.as_u16());
        }
        true
    }

    /// One rung device said no (or never answered). When none is left ringing, the dial is
    /// over: `$status` from the most telling failure (busy beats no answer beats
    /// unavailable), and the dialplan goes on.
    pub(super) fn branch_failed(&mut self, now: Instant, id: CallId, key: &TxKey, code: u16) {
        self.owners.forget_call_tx(key);
        if let Some(i) = self.calls.branch_index(id, key) {
            if let Some(d) = self.calls.calls.get_mut(&id).map(|c| c.dialing.remove(i)) {
                self.calls.remove_leg(d);
            }
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.failures.push(code);
        if !c.dialing.is_empty() {
            return;
        }
        if let Some(ext) = c.b_ext.clone() {
            self.notify_line(now, &ext);
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.timers.stop(CallTimer::RingTimeout);
        let status = std::mem::take(&mut c.failures)
            .into_iter()
            .map(Status::of_dial_failure)
            .min_by_key(|s| s.dial_rank())
            .unwrap_or(Status::Failed);
        self.unbridge(id);
        self.dial_failed(now, id, status);
        self.run_dialplan(now, id);
    }

    /// A dial is over with nobody answering: its story says why, and `$status` does.
    pub(super) fn dial_failed(&mut self, now: Instant, id: CallId, status: Status) {
        let why = status.as_str().to_string();
        self.tell(now, id, Event::DialFailed { status: why });
        self.set_status(id, status);
        if let Some(ext) = self.calls.calls.get(&id).and_then(|c| c.b_ext.clone()) {
            self.forward_failed_dial(now, id, &ext, status);
        }
    }

    pub(super) fn b_provisional(&mut self, now: Instant, id: CallId, key: &TxKey, msg: &Message) {
        if !self.prack_ring(now, id, key, msg) {
            return;
        }
        let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        let Some(leg) = self.calls.branch(id, key) else {
            return;
        };
        if let Some(r) = leg.ringing() {
            r.provisional = true;
        }
        leg.early(tag);
        // A lamp watching the line learns the ringing dialog's other tag.
        if let Some(ext) = self.calls.calls.get(&id).and_then(|c| c.b_ext.clone()) {
            self.notify_line(now, &ext);
        }
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.answered {
            // The caller hears our media already; nothing to relay.
            return;
        }
        // Early media: relay 183's SDP, rewritten to our caller-side port.
        let mut early = None;
        let pa = self.calls.caller(id).and_then(|a| a.media).map(|m| m.port);
        if let (Ok(sdp), Some(pa), Some(mb)) = (Sdp::parse(&msg.body), pa, c.dial_media) {
            if let Some(addr) = sdp.audio_target() {
                self.calls.remote(mb.key, addr);
            }
            let peer = self.calls.caller(id).map(|a| a.dialog.peer.clone());
            if let Some(Ok(r)) = peer.map(|p| sdp.relayed(self.media_ip(&p), pa, id.0, 1)) {
                let body = Bytes::from(r.to_bytes());
                if let Some(a) = self.calls.caller_mut(id) {
                    a.dialog.sdp_sent = Some(body.clone());
                }
                early = Some(body);
            }
        }
        let relay = if early.is_some() {
            code(183)
        } else {
            StatusCode::RINGING
        };
        self.respond_a(now, id, relay, early);
    }

    pub(super) fn b_answered(&mut self, now: Instant, id: CallId, key: &TxKey, msg: &Message) {
        let i = self.calls.branch_index(id, key);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.timers.stop(CallTimer::RingTimeout);
        let Some(i) = i else {
            return;
        };
        // This device won: the others stop ringing, and its leg is the callee's.
        let d = c.dialing.remove(i);
        let others = std::mem::take(&mut c.dialing);
        c.legs.push((d, Role::Callee));
        let mb = c.dial_media.take();
        if let Some(l) = self.calls.legs.get_mut(d) {
            l.media = mb;
            if let Some(r) = l.controller.ring() {
                r.answered = true;
            }
        }
        for other in others {
            self.detach_branch(now, other);
        }
        self.confirm_leg(d, msg);
        self.session_timer_answered(now, d, msg);
        // Whom the answer is relayed to: the caller; a callback's agent's answer goes
        // on to the customer, rewritten again for its network when it is called.
        let a_peer = self
            .calls
            .caller(id)
            .or_else(|| self.calls.legs.get(d))
            .map(|a| a.dialog.peer.clone());
        let (Some(a_peer), Some(c)) = (a_peer, self.calls.calls.get_mut(&id)) else {
            return;
        };
        let answered_before = c.answered;
        let (Some((offer, Some(ma))), Some(mb)) = (self.calls.origin(id), mb) else {
            return;
        };
        let pa = ma.port;
        let answer = Sdp::parse(&msg.body).ok();
        if let Some(l) = self.calls.legs.get_mut(d) {
            l.sdp.clone_from(&answer);
        }
        let target = answer.as_ref().and_then(Sdp::audio_target);
        // If the callee chose the law the caller did not offer, the caller gets its own
        // first law and the relay converts between them.
        let b_law = answer.as_ref().and_then(Sdp::first_g711);
        let transcode = match (b_law, offer.first_g711()) {
            (Some((bc, bpt)), Some((_, apt))) if !offer.offers(bc) => Some((apt, bpt)),
            _ => None,
        };
        let a_ip = self.media_ip(&a_peer);
        let a_body = match transcode {
            Some(_) => offer.answer_for(a_ip, pa, id.0).ok(),
            None => answer.and_then(|s| s.relayed(a_ip, pa, id.0, 1).ok()),
        }
        .map(|s| Bytes::from(s.to_bytes()));
        match (target, a_body) {
            (Some(addr), Some(body)) => {
                self.calls.remote(mb.key, addr);
                if let Some((a_pt, _)) = transcode {
                    self.calls.law(ma.key, a_pt);
                }
                if let Some((_, b_pt)) = b_law {
                    // What the callee hears from us (a callback's ringback, music on
                    // hold) is in its law, and a bridge converts where the caller's
                    // differs (it was answered here in the other, or is transcoded).
                    self.calls.law(mb.key, b_pt);
                }
                if let Some((a_pt, b_pt)) = transcode {
                    tracing::info!(call = %id, a_pt, b_pt, "transcoding G.711");
                }
                let callback = self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.callback.is_some());
                // A callback's agent waits while its customer's phone rings.
                let state = if callback {
                    State::Ringing
                } else {
                    State::Bridged
                };
                self.set_state(id, state);
                if !callback {
                    // (A callback's agent is bridged once the customer answers.)
                    let party = self
                        .calls
                        .calls
                        .get(&id)
                        .and_then(|c| c.story.last_dialled());
                    let party = party.unwrap_or_default().to_string();
                    self.tell(now, id, Event::Bridged { party });
                }
                if callback {
                    // A callback's agent hears ringback on its own leg until the
                    // customer answers.
                } else if answered_before {
                    // The caller's music or ringback stops only now.
                    self.calls.join(id, [ma.key, mb.key]);
                    let handed = self
                        .calls
                        .calls
                        .get(&id)
                        .is_some_and(|c| !c.story.answered());
                    if handed {
                        // A caller answered in another call and handed this one (an
                        // attended transfer while it rang) has its answer now.
                        self.tell(now, id, Event::Answered);
                    }
                } else {
                    if let Some(a) = self.calls.caller_mut(id) {
                        a.dialog.sdp_sent = Some(body.clone());
                    }
                    self.answer_a(now, id, body.clone());
                }
                tracing::info!(call = %id, "bridged");
                if let Some(ext) = self.calls.calls.get(&id).and_then(|c| c.b_ext.clone()) {
                    self.device_in_use(now, id, &ext);
                }
                self.queue_answered(now, id);
                if callback {
                    // The agent took a callback: now the customer is called, offered
                    // what the agent answered.
                    self.call_customer(now, id, body);
                    self.callback_ringback(id);
                }
            }
            _ => {
                tracing::info!(call = %id, "callee answered with unusable SDP");
                self.bye_callee(now, id);
                if answered_before {
                    self.bye_caller(now, id);
                    self.finish(now, id, Disposition::Failed, 488, HangupBy::System);
                } else {
                    self.fail_call(now, id, code(488), Disposition::Failed);
                }
            }
        }
    }

    /// Closes the media of a dial that failed or was given up; a later dial opens its own.
    /// A caller answered here before the dial never left its own leg, which goes on as it
    /// was; a relayed caller's leg and the bridge close with the dial's.
    pub(in crate::endpoint) fn unbridge(&mut self, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(mb) = c.dial_media.take() else {
            return;
        };
        if c.answered {
            let ringing = matches!(c.state, State::Ringing);
            if ringing {
                // The ringback ends with the dial; its end report is not awaited.
                c.play_seq += 1;
            }
            self.calls.close_media(mb);
            if let (true, Some(a)) = (ringing, self.calls.caller_media(id)) {
                self.calls.stop_play_on(a);
            }
        } else {
            self.calls.close_media(mb);
            if let Some(ma) = self.calls.caller_mut(id).and_then(|a| a.media.take()) {
                self.calls.close_media(ma);
            }
            self.calls.close_bridge(id);
        }
    }

    /// ACK and BYE for a 2xx that arrives after the caller gave up (it cancelled, or the
    /// ring timer fired, while the callee was answering): the callee must not be left in
    /// a call nobody hears.
    pub(super) fn orphan_2xx(&mut self, now: Instant, resp: &Message, peer: Peer) {
        let (Ok(cid), Some(target)) = (resp.call_id(), contact_uri(resp)) else {
            return;
        };
        tracing::info!("callee answered a call already given up; hanging it up");
        let leg = Dialog {
            call_id: cid.clone(),
            local_tag: Bytes::new(),
            local_hdr: resp.header(&HeaderName::From).cloned().unwrap_or_default(),
            remote_hdr: resp.header(&HeaderName::To).cloned().unwrap_or_default(),
            remote_tag: None,
            target,
            routes: route_set(resp, true),
            cseq: 1,
            peer: peer.clone(),
            sdp_sent: None,
            sdp_version: 1,
        };
        let ack = self.leg_request(Method::Ack, &leg, 1);
        self.out.push_back(Transmit {
            peer: peer.clone(),
            bytes: ack.to_bytes(),
        });
        let bye = self.leg_request(Method::Bye, &leg, 2);
        if let Err(e) = self.tx.send_request(now, bye, peer) {
            tracing::debug!(error = %e, "BYE for a late answer not sent");
        }
    }

    /// A client transaction got no response at all (Timer B or F).
    pub(in crate::endpoint) fn on_call_tx_timeout(&mut self, now: Instant, key: &TxKey) {
        if self.owners.take_detached(key).is_some() {
            return;
        }
        let Some((id, role)) = self.owners.call(key) else {
            return;
        };
        match role {
            CallTx::Reoffer | CallTx::Bye | CallTx::Notify | CallTx::Prack | CallTx::Unhold(_) => {
                self.owners.remove(key);
                return;
            }
            CallTx::Refresh(leg) => {
                self.owners.remove(key);
                self.party_gone(now, id, leg, 408);
                return;
            }
            CallTx::Customer => {
                let ringing = self
                    .calls
                    .calls
                    .get(&id)
                    .and_then(|c| c.callback.as_ref())
                    .and_then(|cb| cb.ringing)
                    .and_then(|d| self.calls.legs.get(d))
                    .is_some_and(|l| &l.invite_key == key);
                if ringing {
                    self.customer_failed(now, id, 408);
                } else {
                    self.owners.remove(key);
                }
                return;
            }
            CallTx::Branch => {}
        }
        if self.calls.branch_index(id, key).is_some() {
            // A device that never answered at all counts as not answering.
            self.branch_failed(now, id, key, 408);
        } else {
            self.owners.remove(key);
        }
    }

    /// A client transaction ended: forget it.
    pub(in crate::endpoint) fn calls_forget_tx(&mut self, key: &TxKey) {
        if self.owners.take_detached(key).is_none() && key.method != Method::Invite {
            self.owners.forget_call_tx(key);
        }
    }
}
