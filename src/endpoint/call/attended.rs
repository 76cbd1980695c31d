//! Attended transfer (REFER with Replaces, RFC 3515 and RFC 3891, as RFC 5589 §7 has
//! phones do it): a phone with two calls through us (the party it put on hold, and the
//! one it called to consult) asks, on either dialog, that the two other parties talk to
//! each other. The transferor's two legs leave; one call goes on with the two parties,
//! the other ends.
//!
//! The call that goes on is the one still ringing if the consultation has not been
//! answered yet (its dial is what will connect them), else the older: the first party's
//! call (a customer's from a queue among them) keeps its story. The party
//! of the call that ends moves into it, taking the transferor's place and role; its
//! dialog, media leg and port stay as they were, and a party that was on hold is offered
//! `sendrecv` again.
//!
//! Owns the move; the blind transfer's refusals and the transferor's leaving are
//! [`super::transfer`]'s, media commands [`super::media`]'s.

use std::time::Instant;

use super::state::{CallId, LegId, Role, State};
use super::transfer::Refusal;
use crate::cdr::{Disposition, HangupBy};
use crate::endpoint::{code, Endpoint};
use crate::sip::replaces::Replaces;
use crate::story::{Event, Party};

/// One side of an attended transfer: a call of the transferor's, its leg in it, and the
/// party it has there (none while that party's phone still rings).
#[derive(Clone, Copy, Debug)]
struct Side {
    call: CallId,
    transferor: LegId,
    party: Option<LegId>,
}

impl Endpoint {
    /// The REFER on `leg` of call `id` (from `by`) names, in its Replaces, another dialog
    /// of the transferor's: the two other parties are joined. A REFER we cannot carry
    /// out is refused before anything changes.
    pub(super) fn attended_transfer(
        &mut self,
        now: Instant,
        key: &crate::sip::transaction::TxKey,
        msg: &crate::sip::msg::Message,
        id: CallId,
        leg: LegId,
        replaces: &Replaces,
    ) -> Result<(), Refusal> {
        let (stay, go) = self.attended_sides(id, leg, replaces)?;
        self.reply(now, key, msg, code(202), vec![]);
        // The transferor is told at once: the transfer is ours to carry out from here.
        self.notify_transfer(now, id, leg);
        let Some(moving) = go.party else {
            return Ok(());
        };
        tracing::info!(call = %stay.call, from = %go.call, "attended transfer");
        self.transferor_hung_up(now, stay);
        self.transferor_hung_up(now, go);
        self.move_party(now, go, stay, moving);
        Ok(())
    }

    /// Which call goes on and which ends, or why the transfer is refused.
    fn attended_sides(
        &self,
        id: CallId,
        leg: LegId,
        replaces: &Replaces,
    ) -> Result<(Side, Side), Refusal> {
        let (other_id, replaced) = self
            .replaced_dialog(replaces)
            .ok_or(Refusal(403, "no dialog of the transferor's to replace"))?;
        if other_id == id {
            return Err(Refusal(403, "a call cannot replace itself"));
        }
        let (Some(c), Some(o)) = (self.calls.calls.get(&id), self.calls.calls.get(&other_id))
        else {
            return Err(Refusal(481, "no such call"));
        };
        // Both dialogs must be the same extension's: nobody joins parties of calls that
        // are not its own.
        let mine = c.party_ext(leg);
        if mine.is_none() || o.party_ext(replaced) != mine {
            return Err(Refusal(
                403,
                "the dialog to replace is not the transferor's",
            ));
        }
        if o.callback.is_some() {
            return Err(Refusal(501, "a callback cannot be transferred yet"));
        }
        let here = Side {
            call: id,
            transferor: leg,
            party: c.other(leg),
        };
        let there = Side {
            call: other_id,
            transferor: replaced,
            party: o.other(replaced),
        };
        if here.party.is_none() {
            return Err(Refusal(403, "nobody to transfer"));
        }
        match there.party {
            // The consultation still rings, or parked the transferor: the transferee
            // takes the transferor's place as its caller, hearing ringback or music.
            None if o.is_caller(replaced)
                && matches!(o.state, State::Ringing | State::Parked(_)) =>
            {
                Ok((there, here))
            }
            None => Err(Refusal(
                501,
                "the consultation call is neither answered, ringing nor parked",
            )),
            Some(_) => {
                // The older call is the first party's (a queue call among them: an agent
                // on a call is offered none, so its consultation is always the newer).
                let keep_here = c.started <= o.started;
                Ok(if keep_here {
                    (here, there)
                } else {
                    (there, here)
                })
            }
        }
    }

    /// The leg of ours a Replaces names, and its call: its Call-ID and our tag, with the
    /// other tag the party's (either way round, as phones differ in which tag they call
    /// which for a dialog they did not begin).
    pub(super) fn replaced_dialog(&self, r: &Replaces) -> Option<(CallId, LegId)> {
        [(&r.to_tag, &r.from_tag), (&r.from_tag, &r.to_tag)]
            .into_iter()
            .find_map(|(ours, theirs)| {
                let (id, leg) = self.calls.dialog_of(&r.call_id, ours)?;
                let l = self.calls.legs.get(leg)?;
                (l.dialog.remote_tag.as_ref() == Some(theirs)).then_some((id, leg))
            })
    }

    /// The transferor's leg of `side` is ended: hung up, or its INVITE refused if we had
    /// not answered it yet (a consultation still ringing).
    fn transferor_hung_up(&mut self, now: Instant, side: Side) {
        let unanswered = self
            .calls
            .calls
            .get(&side.call)
            .is_some_and(|c| !c.answered && c.is_caller(side.transferor));
        if unanswered {
            self.respond_a(now, side.call, code(487), None);
        } else {
            self.send_bye(now, side.transferor);
        }
    }

    /// `moving`, the party of `from`, takes the transferor's place in `to`; `from` ends.
    fn move_party(&mut self, now: Instant, from: Side, to: Side, moving: LegId) {
        let Some(t) = self.calls.calls.get(&to.call) else {
            return;
        };
        let (joined, _) = match to.party {
            Some(p) => t.party_number(p),
            None => (t.story.start().callee.clone(), None),
        };
        let Some(role) = t.role(to.transferor) else {
            return;
        };
        let to_by = party(role == Role::Caller);
        let transferor_ext = t.party_ext(to.transferor).map(str::to_string);
        let other_held = to.party.filter(|&p| t.on_hold == Some(p));
        let Some(from_by) = self
            .calls
            .calls
            .get(&from.call)
            .map(|f| party(f.is_caller(from.transferor)))
        else {
            return;
        };
        let Some(m) = self.take_party(from.call, moving, to.call) else {
            return;
        };
        // The ending call tells what became of its party, and ends with the transferor's
        // hang-up.
        self.tell(
            now,
            from.call,
            Event::Transferred {
                by: from_by,
                to: joined,
                attended: true,
            },
        );
        let hangup = match from_by {
            Party::Caller => HangupBy::Caller,
            Party::Callee => HangupBy::Callee,
        };
        self.finish(now, from.call, Disposition::Answered, 200, hangup);
        // The transferor leaves the call that goes on, and the party takes its place.
        self.put_party(now, to.call, &m, role, Some(to.transferor));
        let Some(t) = self.calls.calls.get_mut(&to.call) else {
            return;
        };
        t.on_hold = None;
        if let Some(e) = &transferor_ext {
            if let Some(i) = t.devices.iter().position(|d| d == e) {
                t.devices.remove(i);
            }
        }
        // A queue call's agent is done with it; a caller who transfers the agent it
        // reached is not the queue's business.
        let queue = match role {
            Role::Callee => t.queue.take(),
            Role::Caller => None,
        };
        if let Some(l) = self.calls.remove_leg(to.transferor) {
            self.calls.by_a_invite.remove(&l.invite_key);
            self.owners.forget_call_tx(&l.invite_key);
        }
        let number = m.number.clone();
        self.transferor_done(now, to.call, transferor_ext, queue, &number);
        self.tell(
            now,
            to.call,
            Event::Transferred {
                by: to_by,
                to: number.clone(),
                attended: true,
            },
        );
        let (media, was_held) = (m.media, m.was_held);
        match (to.party, media) {
            (Some(p), Some(m)) => {
                let theirs = self.calls.legs.get(p).and_then(|l| l.media);
                if let Some(o) = theirs {
                    self.calls.join(to.call, [m.key, o.key]);
                }
                self.set_state(to.call, State::Bridged);
                self.tell(now, to.call, Event::Bridged { party: number });
            }
            // The consultation parked the transferor (who heard the slot): the
            // transferee waits there, hearing the music.
            _ if self
                .calls
                .calls
                .get(&to.call)
                .is_some_and(|c| matches!(c.state, State::Parked(_))) =>
            {
                if let Some(c) = self.calls.calls.get_mut(&to.call) {
                    c.play_queue.clear();
                }
                self.park_music(to.call);
            }
            // The consultation still rings: ringback until it answers, then the dial
            // bridges the two.
            _ => self.ringback(to.call),
        }
        if was_held {
            self.offer_sendrecv(now, to.call, moving);
        }
        if let Some(p) = other_held {
            self.offer_sendrecv(now, to.call, p);
        }
    }
}

/// The party a leg is, by whether it is its call's caller.
pub(super) fn party(caller: bool) -> Party {
    if caller {
        Party::Caller
    } else {
        Party::Callee
    }
}
