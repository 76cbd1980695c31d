//! Attended transfer by feature code: an extension in a conversation presses the
//! attended code (`[calls] attended_code`), a number and `#`; the other party waits with
//! music while the extension calls the number on a call of its own (the consultation,
//! run by the dialplan from the extension's context, with a CDR of its own). Then:
//!
//! - the transferor hangs up: the two others are joined. If the consultation was
//!   answered, its party moves into the first call in the transferor's place (the older
//!   call goes on, as with an attended REFER); if it still rings, or parked the
//!   transferor, the waiting party takes the transferor's place in it (ringback, or the
//!   slot's music); anywhere else (a queue, a menu, voicemail) the waiting party is sent
//!   to the number as by a blind transfer;
//! - the transferor presses the attended code again, or the consultation hangs up on
//!   it (the target hangs up, is busy and the dialplan ends): it is back with the
//!   waiting party, and the consultation ends;
//! - the waiting party hangs up: its call ends, the consultation goes on as a call.
//!
//! Owns the two calls' `consult` links and the moves between them; the keys are
//! `features`'s, the moves' bookkeeping `moving`'s.

use std::sync::Arc;
use std::time::Instant;

use super::attended::party;
use super::state::{Call, CallId, Consult, LegId, Role, State};
use super::transfer::{Parting, Refusal};
use crate::cdr::{Disposition, HangupBy};
use crate::dialplan::{Cursor, Dialplan};
use crate::endpoint::Endpoint;
use crate::story::{Event, Party, Start, Story};

impl Endpoint {
    /// Where the consultation of the extension on `leg` of call `id` starts: the number
    /// in the extensions' context, dialled by it; refused if there is no route.
    pub(super) fn consult_cursor(
        &self,
        id: CallId,
        leg: LegId,
        number: &str,
    ) -> Result<(Arc<Dialplan>, Cursor), Refusal> {
        let c = self
            .calls
            .calls
            .get(&id)
            .ok_or(Refusal(481, "no such call"))?;
        let ext = c
            .party_ext(leg)
            .ok_or(Refusal(403, "only an extension consults"))?;
        let plan = self.dialplan.clone();
        let cursor = plan
            .start(&self.default_context, number, ext)
            .ok_or(Refusal(403, "no route to the number for the transferor"))?;
        Ok((plan, cursor))
    }

    /// The extension on `leg` of call `id` calls `number` (its dialplan at `start`) on
    /// a consultation of its own; the other party waits, hearing the music it hears.
    pub(super) fn start_consultation(
        &mut self,
        now: Instant,
        id: CallId,
        leg: LegId,
        number: String,
        start: (Arc<Dialplan>, Cursor),
    ) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let (Some(role), Some(ext)) = (c.role(leg), c.party_ext(leg).map(str::to_string)) else {
            return;
        };
        let Some(sip_call_id) = self
            .calls
            .legs
            .get(leg)
            .map(|l| String::from_utf8_lossy(&l.dialog.call_id).into_owned())
        else {
            return;
        };
        let consult = self.calls.new_id();
        let story = Story::begin(
            consult.0,
            Start {
                sip_call_id,
                caller: ext,
                callee: number.clone(),
                did: None,
                trunk: None,
                callback_of: None,
            },
            self.unix_ms(now),
        );
        let call = Call::new(now, None, start, 70, story);
        self.calls.calls.insert(
            consult,
            Box::new(Call {
                consult: Some(Consult::Consulting {
                    call: id,
                    number: number.clone(),
                }),
                ..call
            }),
        );
        let Some(m) = self.take_party(id, leg, consult) else {
            self.calls.calls.remove(&consult);
            return;
        };
        self.put_party(now, consult, &m, Role::Caller, None);
        if let Some(media) = m.media {
            // "Enter extension" may still be playing.
            self.calls.stop_play_on(media.key);
        }
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.consult = Some(Consult::Held {
                call: consult,
                role,
            });
            c.state = State::Held;
        }
        tracing::info!(call = %id, consultation = %consult, %number, "consulting");
        self.calls.refresh_later(consult, now);
        self.run_dialplan(now, consult);
    }

    /// The consultation `consult`'s caller pressed the attended code again: back to the
    /// party it put aside; the consultation ends.
    pub(super) fn back_to_held(&mut self, now: Instant, consult: CallId) {
        let Some(c) = self.calls.calls.get(&consult) else {
            return;
        };
        let (Some(x), target) = (c.caller(), c.callee()) else {
            return;
        };
        let (disp, status) = if target.is_some() {
            (Disposition::Answered, 200)
        } else if !c.dialing.is_empty() {
            (Disposition::Cancelled, 487)
        } else {
            (Disposition::Answered, 200)
        };
        if !self.consulter_back(now, x) {
            return;
        }
        if let Some(t) = target {
            self.send_bye(now, t);
        }
        self.finish(now, consult, disp, status, HangupBy::Caller);
    }

    /// Switchboard would hang up on `leg`: if it is a consultation's caller, it goes back
    /// to the party it put aside instead (true), out of the consultation, which ends
    /// without it as its caller would.
    pub(super) fn consulter_back(&mut self, now: Instant, leg: LegId) -> bool {
        let Some((consult, held, role)) = self.consultation_of(leg) else {
            return false;
        };
        self.unlink(consult, held);
        let Some(m) = self.take_party(consult, leg, held) else {
            return false;
        };
        self.put_party(now, held, &m, role, None);
        let media = |l: Option<LegId>| {
            l.and_then(|l| self.calls.legs.get(l))
                .and_then(|l| l.media)
                .map(|m| m.key)
        };
        let other = self.calls.calls.get(&held).and_then(|c| c.other(leg));
        if let (Some(a), Some(b)) = (media(Some(leg)), media(other)) {
            self.calls.join(held, [a, b]);
        }
        tracing::info!(call = %held, consultation = %consult, "back from the consultation");
        self.set_state(held, State::Bridged);
        true
    }

    /// `leg`, the caller of consultation `consult`, hung up (its BYE answered): the two
    /// others are joined. False if `leg` is no consultation's caller.
    pub(super) fn consulter_hung_up(&mut self, now: Instant, consult: CallId, leg: LegId) -> bool {
        let Some((_, held, role)) = self.consultation_of(leg).filter(|&(c, _, _)| c == consult)
        else {
            return false;
        };
        let Some(Consult::Consulting { number, .. }) = self.unlink(consult, held) else {
            return false;
        };
        let state = self.calls.calls.get(&consult).map(|c| {
            (
                c.callee().is_some(),
                matches!(c.state, State::Ringing | State::Parked(_)),
            )
        });
        match state {
            Some((true, _)) => self.target_to_held(now, held, consult, role),
            Some((false, true)) => {
                self.held_to_consultation(now, held, consult, leg, role, &number)
            }
            _ => self.held_sent_on(now, held, consult, leg, role, number),
        }
        true
    }

    /// The consultation `leg` is the caller of, the call it put aside, and its role there.
    fn consultation_of(&self, leg: LegId) -> Option<(CallId, CallId, Role)> {
        let consult = self.calls.legs.get(leg)?.call;
        let c = self.calls.calls.get(&consult)?;
        let Some(Consult::Consulting { call: held, .. }) = c.consult else {
            return None;
        };
        if !c.is_caller(leg) {
            return None;
        }
        // The two links are made and undone together.
        match self.calls.calls.get(&held)?.consult {
            Some(Consult::Held { role, .. }) => Some((consult, held, role)),
            _ => None,
        }
    }

    /// The consultation and the call it put aside are linked no more; the
    /// consultation's side of the link.
    fn unlink(&mut self, consult: CallId, held: CallId) -> Option<Consult> {
        if let Some(h) = self.calls.calls.get_mut(&held) {
            h.consult = None;
        }
        self.calls
            .calls
            .get_mut(&consult)
            .and_then(|c| c.consult.take())
    }

    /// The consultation was answered: its party takes the transferor's place (`role`)
    /// in the call put aside, which goes on; the consultation ends.
    fn target_to_held(&mut self, now: Instant, held: CallId, consult: CallId, role: Role) {
        let (Some(h), Some(c)) = (self.calls.calls.get(&held), self.calls.calls.get(&consult))
        else {
            return;
        };
        let (Some(t), Some(p)) = (c.callee(), h.legs.first().map(|&(l, _)| l)) else {
            return;
        };
        let (t_number, _) = c.party_number(t);
        let (p_number, _) = h.party_number(p);
        let Some(m) = self.take_party(consult, t, held) else {
            return;
        };
        tracing::info!(call = %held, consultation = %consult, "attended transfer by feature code");
        self.tell(
            now,
            consult,
            Event::Transferred {
                by: Party::Caller,
                to: p_number,
                attended: true,
            },
        );
        self.finish(now, consult, Disposition::Answered, 200, HangupBy::Caller);
        self.put_party(now, held, &m, role, None);
        self.handed_over(now, held, role, &t_number);
        let theirs = self.calls.legs.get(p).and_then(|l| l.media);
        if let (Some(a), Some(b)) = (theirs, m.media) {
            self.calls.join(held, [a.key, b.key]);
        }
        self.set_state(held, State::Bridged);
        self.tell(now, held, Event::Bridged { party: t_number });
        if m.was_held {
            self.offer_sendrecv(now, held, t);
        }
    }

    /// The consultation still rings (or parked the transferor): the waiting party takes
    /// the transferor's place in it; the call put aside ends.
    fn held_to_consultation(
        &mut self,
        now: Instant,
        held: CallId,
        consult: CallId,
        leg: LegId,
        role: Role,
        number: &str,
    ) {
        let (Some(h), Some(c)) = (self.calls.calls.get(&held), self.calls.calls.get(&consult))
        else {
            return;
        };
        let Some(p) = h.legs.first().map(|&(l, _)| l) else {
            return;
        };
        let (p_number, _) = h.party_number(p);
        let ext = c.party_ext(leg).map(str::to_string);
        tracing::info!(call = %consult, from = %held, "attended transfer by feature code while it rings");
        self.handed_over(now, held, role, number);
        let Some(m) = self.take_party(held, p, consult) else {
            return;
        };
        let by = match role {
            Role::Caller => HangupBy::Caller,
            Role::Callee => HangupBy::Callee,
        };
        self.finish(now, held, Disposition::Answered, 200, by);
        self.put_party(now, consult, &m, Role::Caller, Some(leg));
        if let Some(l) = self.calls.remove_leg(leg) {
            self.owners.forget_call_tx(&l.invite_key);
        }
        if let Some(e) = ext {
            if let Some(c) = self.calls.calls.get_mut(&consult) {
                if let Some(i) = c.devices.iter().position(|d| *d == e) {
                    c.devices.remove(i);
                }
            }
            self.device_free(now, &e);
        }
        self.tell(
            now,
            consult,
            Event::Transferred {
                by: Party::Caller,
                to: p_number,
                attended: true,
            },
        );
        let parked = self
            .calls
            .calls
            .get_mut(&consult)
            .filter(|c| matches!(c.state, State::Parked(_)));
        match parked {
            Some(c) => {
                c.play_queue.clear();
                self.park_music(consult);
            }
            None => self.ringback(consult),
        }
    }

    /// The transferor, in `role` in call `held` until it consulted, handed the waiting
    /// party over to `to`: its talk in a queue call ends as a transfer (its phone was
    /// freed with the consultation), and the call tells it.
    fn handed_over(&mut self, now: Instant, held: CallId, role: Role, to: &str) {
        let queue = match role {
            Role::Callee => self.calls.calls.get_mut(&held).and_then(|h| h.queue.take()),
            Role::Caller => None,
        };
        self.transferor_done(now, held, None, queue, to);
        self.tell(
            now,
            held,
            Event::Transferred {
                by: party(role == Role::Caller),
                to: to.to_string(),
                attended: true,
            },
        );
    }

    /// The consultation is somewhere no party can be moved into (a queue, a menu,
    /// voicemail): it ends, and the waiting party is sent to the number as by a blind
    /// transfer of the transferor's.
    fn held_sent_on(
        &mut self,
        now: Instant,
        held: CallId,
        consult: CallId,
        leg: LegId,
        role: Role,
        number: String,
    ) {
        let Some(m) = self.take_party(consult, leg, held) else {
            return;
        };
        self.put_party(now, held, &m, role, None);
        self.finish(now, consult, Disposition::Answered, 200, HangupBy::Caller);
        let by = party(role == Role::Caller);
        match self.transfer_cursor(held, by, &number) {
            Ok((plan, cursor)) => {
                tracing::info!(call = %held, %number, "consultation ended: the party sent on");
                self.carry_out_blind(now, held, leg, by, number, plan, cursor, Parting::Gone);
            }
            Err(Refusal(status, why)) => {
                // Its dialplan has no route for the party where it had one for the
                // transferor: nobody is left to talk to it.
                tracing::warn!(call = %held, status, why, "the waiting party cannot be sent on");
                let other = self.calls.calls.get(&held).and_then(|c| c.other(leg));
                if let Some(o) = other {
                    self.send_bye(now, o);
                }
                let hangup = match role {
                    Role::Caller => HangupBy::Caller,
                    Role::Callee => HangupBy::Callee,
                };
                self.finish(now, held, Disposition::Answered, 200, hangup);
            }
        }
    }

    /// Call `id` ends: the call linked to it by a consultation goes on alone (a
    /// consultation as a call of its own; a call put aside whose transferor never came
    /// back has nobody to wait for, and is hung up on).
    pub(super) fn consult_ended(&mut self, now: Instant, link: Option<Consult>) {
        match link {
            Some(Consult::Held { call, .. }) => {
                if let Some(c) = self.calls.calls.get_mut(&call) {
                    c.consult = None;
                }
            }
            Some(Consult::Consulting { call, .. }) => {
                let waiting = self.calls.calls.get_mut(&call).is_some_and(|c| {
                    c.consult = None;
                    matches!(c.state, State::Held)
                });
                if waiting {
                    tracing::warn!(call = %call, "its transferor did not come back; ending it");
                    let legs: Vec<LegId> = self
                        .calls
                        .calls
                        .get(&call)
                        .map(|c| c.legs.iter().map(|&(l, _)| l).collect())
                        .unwrap_or_default();
                    for l in legs {
                        self.send_bye(now, l);
                    }
                    self.finish(now, call, Disposition::Answered, 200, HangupBy::System);
                }
            }
            None => {}
        }
    }
}
