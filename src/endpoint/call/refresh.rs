//! Session refresh: every `[calls] session_refresh_s`, each answered party of a call is
//! sent a re-INVITE repeating what it agreed (the same description, the same version:
//! nothing changes for it), in the spirit of RFC 4028's refresh. A phone that is still
//! there answers 200; one that vanished (unplugged, crashed, its network gone) answers
//! nothing or 481, and the call ends at once, with a BYE to the other party and its
//! record, instead of staying up, and billed, for ever.
//!
//! Owns the refresh timer's work and the answer to it; ending a call is [`super::end`]'s.

use std::time::Instant;

use super::state::{CallId, LegId, Role};
use super::Calls;
use crate::cdr::{Disposition, HangupBy};
use crate::endpoint::owner::{CallTx, TxOwner};
use crate::endpoint::Endpoint;
use crate::sdp::Sdp;
use crate::sip::msg::{HeaderName, Message, Method};
use crate::sip::transaction::{Transmit, TxKey};

impl Endpoint {
    /// The calls' sweep: each whose refresh is due has its answered parties asked, and
    /// is due again an interval later; the next sweep, while there are calls.
    pub(super) fn refresh_sweep(&mut self, now: Instant) {
        let Some(every) = self.calls.session_refresh else {
            self.calls.sweep_at = None;
            return;
        };
        let due: Vec<CallId> = self
            .calls
            .calls
            .iter()
            .filter(|(_, c)| c.refresh_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.refresh_at = Some(now + every);
            }
            self.refresh_session(now, id);
        }
        self.session_timers_due(now);
        self.calls.sweep_at =
            (!self.calls.calls.is_empty()).then(|| now + Calls::sweep_step(every));
    }

    /// Call `id`'s refresh is due: each answered party whose dialog is quiet gets its
    /// re-INVITE.
    fn refresh_session(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get(&id).filter(|c| c.answered) else {
            return;
        };
        // An offer already in flight on the call answers the question: none is added.
        let legs: Vec<LegId> = c.legs.iter().map(|&(l, _)| l).collect();
        let busy = legs
            .iter()
            .any(|&l| self.calls.legs.get(l).is_some_and(|l| l.reoffer.is_some()));
        if busy {
            return;
        }
        for leg in legs {
            // A leg with a negotiated timer keeps its own interval (session_timer.rs).
            if self.calls.legs.get(leg).is_some_and(|l| l.timer.is_none()) {
                self.send_refresh(now, id, leg);
            }
        }
    }

    /// The re-INVITE repeating what `leg` agreed.
    fn send_refresh(&mut self, now: Instant, id: CallId, leg: LegId) {
        let Some(l) = self.calls.legs.get(leg) else {
            return;
        };
        if let (Some(body), Some(_)) = (l.dialog.sdp_sent.clone(), l.dialog.remote_tag.as_ref()) {
            self.send_our_reinvite(now, id, leg, body, CallTx::Refresh(leg), Vec::new());
        }
    }

    /// Sends a re-INVITE of ours on `leg` of call `id` offering `body`, its transaction
    /// owned as `what` (the answer is ACKed by [`Self::ack_our_reinvite`]).
    pub(super) fn send_our_reinvite(
        &mut self,
        now: Instant,
        id: CallId,
        leg: LegId,
        body: bytes::Bytes,
        what: CallTx,
        extra: Vec<(HeaderName, bytes::Bytes)>,
    ) {
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        l.dialog.cseq += 1;
        let dialog = l.dialog.clone();
        let mut req = self.leg_request(Method::Invite, &dialog, dialog.cseq);
        req.push_header(HeaderName::Contact, self.contact_value(&dialog.peer));
        for (n, v) in extra {
            req.push_header(n, v);
        }
        req.push_header(
            HeaderName::ContentType,
            bytes::Bytes::from_static(b"application/sdp"),
        );
        req.body = body;
        match self.tx.send_request(now, req, dialog.peer) {
            Ok(k) => self.owners.insert(k, TxOwner::Call(id, what)),
            Err(e) => tracing::debug!(error = %e, ?what, "re-INVITE not sent"),
        }
    }

    /// The answer to a re-INVITE of ours (`what`: off hold, or a refresh) on a leg of
    /// call `id`: a 2xx is ACKed. A refresh answered 481 or 408 (the dialog is gone, or
    /// the party) ends the call; anything else (491 glare, say) is the party still being
    /// there. A refused re-INVITE off hold leaves the call as it is.
    pub(super) fn our_reinvite_answered(
        &mut self,
        now: Instant,
        id: CallId,
        what: CallTx,
        key: &TxKey,
        resp: &Message,
    ) {
        let (CallTx::Unhold(leg) | CallTx::Refresh(leg)) = what else {
            return;
        };
        let Some(status) = resp.status() else { return };
        if status.is_provisional() {
            return;
        }
        self.owners.remove(key);
        if status.is_success() {
            if key.method == Method::Invite {
                self.ack_our_reinvite(leg, resp);
            }
            self.session_timer_answered(now, leg, resp);
        } else if matches!(what, CallTx::Unhold(_)) {
            tracing::info!(code = status.as_u16(), "re-INVITE off hold refused");
        } else if matches!(status.as_u16(), 408 | 481) {
            self.party_gone(now, id, leg, status.as_u16());
        }
    }

    /// ACKs the 2xx `resp` to a re-INVITE of ours on `leg`, and sends the party's RTP
    /// where its answer says.
    pub(super) fn ack_our_reinvite(&mut self, leg: LegId, resp: &Message) {
        let Some((dialog, media)) = self
            .calls
            .legs
            .get(leg)
            .map(|l| (l.dialog.clone(), l.media))
        else {
            return;
        };
        let seq = resp.cseq().map_or(dialog.cseq, |c| c.seq);
        let bytes = self.leg_request(Method::Ack, &dialog, seq).to_bytes();
        if let Some(l) = self.calls.legs.get_mut(leg) {
            l.ack = Some(bytes.clone());
        }
        self.out.push_back(Transmit {
            peer: dialog.peer,
            bytes,
        });
        let addr = Sdp::parse(&resp.body).ok().and_then(|s| s.audio_target());
        if let (Some(addr), Some(m)) = (addr, media) {
            self.calls.remote(m.key, addr);
        }
    }

    /// The party on `leg` of call `id` is gone (`code`: why): the others are hung up and
    /// the call ends, by the system.
    pub(super) fn party_gone(&mut self, now: Instant, id: CallId, leg: LegId, code: u16) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let Some(role) = c.role(leg) else {
            return;
        };
        let others: Vec<LegId> = c
            .legs
            .iter()
            .map(|&(l, _)| l)
            .filter(|&l| l != leg)
            .collect();
        let party = match role {
            Role::Caller => "caller",
            Role::Callee => "callee",
        };
        tracing::warn!(call = %id, party, code, "a party no longer answers; ending the call");
        for other in others {
            self.send_bye(now, other);
        }
        self.finish(now, id, Disposition::Answered, code, HangupBy::System);
    }
}
