//! Call pickup: an extension answers, from its own phone, a call ringing at another's:
//! directed (the extension named) or by group (any extension of its pickup group, the
//! call ringing longest first). The ringing phones stop, the caller is answered if it
//! was not yet, and the picker's leg joins the call as its callee; the picker's own call
//! (to the pickup code) ends there.
//!
//! Owns the choice of call and the hand-over; the leg's move is [`super::moving`]'s.

use bytes::Bytes;
use std::time::Instant;

use super::script::Flow;
use super::state::{CallId, Role, State, Status};
use crate::cdr::{Disposition, HangupBy};
use crate::endpoint::Endpoint;
use crate::media::LegKey;
use crate::sdp::Codec;
use crate::story::Event;

impl Endpoint {
    /// `pickup ["EXT"]` for call `id`: `$status` `unavailable` at once if nothing the
    /// caller may take rings.
    pub(super) fn pickup(&mut self, now: Instant, id: CallId, at: Option<&str>) -> Flow {
        let Some(q) = self.ringing_for_pickup(id, at) else {
            self.set_status(id, Status::Unavailable);
            return Flow::Next;
        };
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        let Some(leg) = self.calls.calls.get(&id).and_then(|c| c.caller()) else {
            return Flow::Wait;
        };
        let rang_at = self
            .calls
            .calls
            .get(&q)
            .and_then(|c| c.b_ext.clone())
            .unwrap_or_default();
        let Some(m) = self.take_party(id, leg, q) else {
            return Flow::Wait;
        };
        let by = m.number.clone();
        tracing::info!(call = %q, at = %rang_at, %by, "picked up");
        let picked = Event::PickedUp { at: rang_at, by };
        self.tell(now, id, picked.clone());
        self.finish(now, id, Disposition::Answered, 200, HangupBy::Caller);
        self.stop_ringing_for_pickup(now, q, &m.number);
        self.put_party(now, q, &m, Role::Callee, None);
        if let Some(r) = m.media {
            self.picked_up(now, q, r.key, picked);
        }
        Flow::Wait
    }

    /// Ringing call `q` is being picked up by extension `by`: the phones ringing for it
    /// stop, and its caller has its answer, from us. A queue's offer is over: the caller
    /// leaves its queue answered, and the agent is free again with no miss (the queue
    /// log says who took it).
    pub(super) fn stop_ringing_for_pickup(&mut self, now: Instant, q: CallId, by: &str) {
        let offered = self
            .calls
            .calls
            .get_mut(&q)
            .and_then(|c| c.queue.take_if(|qc| qc.offering.is_some()));
        if offered.is_some() {
            self.acd.handle(
                now,
                crate::acd::Event::PickedUp {
                    caller: q.0,
                    by: by.to_string(),
                },
            );
        }
        self.detach_b(now, q);
        if let Some(mb) = self
            .calls
            .calls
            .get_mut(&q)
            .and_then(|c| c.dial_media.take())
        {
            self.calls.close_media(mb);
        }
        self.answer_picked_caller(now, q);
    }

    /// The picker's leg (its media leg `picker`) is call `q`'s callee now: the two are
    /// bridged, and the story tells it (`picked`, then who is bridged).
    pub(super) fn picked_up(&mut self, now: Instant, q: CallId, picker: LegKey, picked: Event) {
        self.set_state(q, State::Bridged);
        if let Some(a) = self.calls.caller_media(q) {
            self.calls.join(q, [a, picker]);
        }
        let Event::PickedUp { by, .. } = &picked else {
            return;
        };
        let party = by.clone();
        self.tell(now, q, picked);
        self.tell(now, q, Event::Bridged { party });
    }

    /// The call ringing that call `id`'s caller may pick up: at extension `at`, or at any
    /// extension of its own pickup group; the one ringing longest.
    fn ringing_for_pickup(&self, id: CallId, at: Option<&str>) -> Option<CallId> {
        let c = self.calls.calls.get(&id)?;
        let picker = c.caller_number();
        // Only our own extensions pick calls up.
        let me = self.users.get(picker).filter(|_| c.from_trunk.is_none())?;
        self.calls
            .calls
            .iter()
            .filter(|(q, c)| {
                // A call ringing an extension, or a queue's caller offered to an agent.
                let rings = match &c.queue {
                    None => matches!(c.state, State::Ringing),
                    Some(qc) => qc.offering.is_some() && matches!(c.state, State::Queued),
                };
                **q != id && rings && !c.dialing.is_empty() && c.callback.is_none()
            })
            .filter(|(_, c)| {
                let Some(ringing) = c.b_ext.as_deref().filter(|&e| e != picker) else {
                    return false;
                };
                match at {
                    Some(at) => ringing == at,
                    None => self
                        .users
                        .get(ringing)
                        .is_some_and(|u| u.pickup_group == me.pickup_group),
                }
            })
            .min_by_key(|(q, c)| (c.started, **q))
            .map(|(q, _)| *q)
    }

    /// The caller of picked-up call `q`, if its INVITE was still unanswered, is answered
    /// now on the media leg it already has (opened when the dial began).
    pub(super) fn answer_picked_caller(&mut self, now: Instant, q: CallId) {
        if self.calls.calls.get(&q).is_none_or(|c| c.answered) {
            return;
        }
        let Some((peer, offer, ma)) = self
            .calls
            .caller(q)
            .and_then(|a| Some((a.dialog.peer.clone(), a.sdp.clone()?, a.media?)))
        else {
            return;
        };
        let Ok(answer) = offer.answer_for(self.media_ip(&peer), ma.port, q.0) else {
            return;
        };
        let pt = answer.audio().and_then(|m| {
            m.formats
                .iter()
                .find(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
                .map(|f| f.pt)
        });
        if let Some(pt) = pt {
            self.calls.law(ma.key, pt);
        }
        let body = Bytes::from(answer.to_bytes());
        if let Some(a) = self.calls.caller_mut(q) {
            a.dialog.sdp_sent = Some(body.clone());
        }
        self.answer_a(now, q, body);
    }
}
