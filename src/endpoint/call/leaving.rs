//! A transferor on its way out: a party that sent the other elsewhere by feature code
//! is no longer one of its call's parties, but its phone knows nothing of the transfer,
//! so switchboard tells it what became of the other party (a parked call's slot) and
//! then hangs up on it. Its phone hanging up first ends it as well.
//!
//! Owns the call's `leaving` leg from the transfer to its BYE; the transfer itself is
//! `transfer`'s, the slot `park`'s.

use std::time::Instant;

use super::state::{CallId, State};
use crate::endpoint::Endpoint;
use crate::media::LegKey;
use crate::sip::msg::{Message, StatusCode};
use crate::sip::transaction::TxKey;

/// Our prompts to a leaving leg are numbered apart from the call's own.
const LEAVING_SEQ: u64 = u64::MAX - 1;

impl Endpoint {
    /// The dialplan has run for the party a feature code sent away from call `id`: if it
    /// is parked, its transferor hears the slot before it is hung up on; else it is hung
    /// up on now.
    pub(super) fn tell_the_slot(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let (Some(leaving), State::Parked(slot)) = (&c.leaving, &c.state) else {
            return self.hang_up_leaving(now, id);
        };
        let leg = leaving.leg;
        let mut prompts = self.slot_prompts(slot);
        let (Some(first), Some(m)) = (
            prompts.pop_front(),
            self.calls.legs.get(leg).and_then(|l| l.media),
        ) else {
            return self.hang_up_leaving(now, id);
        };
        tracing::info!(call = %id, %slot, "the parker hears the slot");
        if let Some(l) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.leaving.as_mut())
        {
            l.prompts = prompts;
        }
        self.calls.play_to(m.key, first, false, LEAVING_SEQ);
    }

    /// Prompt `seq` ended on media leg `key` of call `id`: true if it was one told to
    /// the leaving leg (its next prompt plays, or after the last it is hung up on).
    pub(super) fn leaving_prompt_done(
        &mut self,
        now: Instant,
        id: CallId,
        key: LegKey,
        seq: u64,
    ) -> bool {
        if seq != LEAVING_SEQ {
            return false;
        }
        let Some(leaving) = self.calls.calls.get(&id).and_then(|c| c.leaving.as_ref()) else {
            return false;
        };
        if self
            .calls
            .legs
            .get(leaving.leg)
            .and_then(|l| l.media)
            .map(|m| m.key)
            != Some(key)
        {
            return false;
        }
        let next = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.leaving.as_mut())
            .and_then(|l| l.prompts.pop_front());
        match next {
            Some(p) => self.calls.play_to(key, p, false, LEAVING_SEQ),
            None => self.hang_up_leaving(now, id),
        }
        true
    }

    /// A request in the dialog of call `id`'s leaving leg, if `leg` is it: a BYE ends
    /// it, INFO and OPTIONS are answered 200 and ignored, anything else is answered 481
    /// (it is in no call). False if `leg` is not leaving.
    pub(super) fn request_to_leaving(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
        id: CallId,
        leg: super::state::LegId,
    ) -> bool {
        let leaving = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.leaving.as_ref())
            .is_some_and(|l| l.leg == leg);
        if !leaving {
            return false;
        }
        match msg.method() {
            Some(crate::sip::msg::Method::Bye) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.leaving = None;
                }
                self.leaving_gone(leg);
            }
            Some(crate::sip::msg::Method::Ack) => {}
            // Keys and pings are taken and let go: the phone need not think its call
            // lost before it is hung up on.
            Some(crate::sip::msg::Method::Info | crate::sip::msg::Method::Options) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
            }
            _ => self.reply(now, key, msg, crate::endpoint::code(481), vec![]),
        }
        true
    }

    /// Call `id`'s leaving leg, if it has one, is hung up on and gone.
    pub(super) fn hang_up_leaving(&mut self, now: Instant, id: CallId) {
        let Some(l) = self.calls.calls.get_mut(&id).and_then(|c| c.leaving.take()) else {
            return;
        };
        self.send_bye(now, l.leg);
        self.leaving_gone(l.leg);
    }

    /// A leaving leg's dialog and media are over.
    pub(super) fn leaving_gone(&mut self, leg: super::state::LegId) {
        if let Some(l) = self.calls.remove_leg(leg) {
            self.owners.forget_call_tx(&l.invite_key);
        }
    }
}
