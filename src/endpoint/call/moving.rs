//! A party's leg moving from one call to another (an attended transfer, a parked call
//! retrieved): taken out of the call it was in with what it is (its number, its
//! extension, whether it was held, its media leg), then put into the other in a role.
//! Its dialog, media leg and port do not change, so its phone sees no SIP for the move.
//!
//! Owns the bookkeeping of the move only (the calls' party lists, identities, busy
//! devices, the media leg's owner); when a move happens, and what the calls tell their
//! stories, is the callers'.

use super::state::{CallId, CallTimer, Controller, LegId, MediaLeg, Ring, Role};
use crate::endpoint::Endpoint;

/// A party's leg taken out of its call, on its way into another.
pub(super) struct Moving {
    pub(super) leg: LegId,
    /// Who it is: its extension or number, and the trunk it is reached through.
    pub(super) number: String,
    pub(super) trunk: Option<String>,
    /// Its extension, if it is one of ours: its phone stays busy, for the new call.
    pub(super) ext: Option<String>,
    /// It was on hold (hearing music) in the call it left.
    pub(super) was_held: bool,
    pub(super) media: Option<MediaLeg>,
}

impl Endpoint {
    /// Takes `leg`, a party of call `from`, out of it for call `to`: out of `from`'s
    /// parties, devices and bridge, its media leg and its leg `to`'s from now on.
    pub(super) fn take_party(&mut self, from: CallId, leg: LegId, to: CallId) -> Option<Moving> {
        let f = self.calls.calls.get_mut(&from)?;
        let (number, trunk) = f.party_number(leg);
        let ext = f.party_ext(leg).map(str::to_string);
        let was_held = f.on_hold == Some(leg);
        if was_held {
            f.on_hold = None;
        }
        f.legs.retain(|&(l, _)| l != leg);
        if let Some(e) = &ext {
            if let Some(i) = f.devices.iter().position(|d| d == e) {
                f.devices.remove(i);
            }
        }
        let media = self.calls.legs.get(leg).and_then(|l| l.media);
        if let Some(m) = media {
            self.calls.leave_bridge(from, m.key);
            self.calls.hand_media(m.key, to);
        }
        if let Some(l) = self.calls.legs.get_mut(leg) {
            l.call = to;
            // Its INVITE was answered long ago: nothing will cancel it, and its
            // transaction is nobody's now.
            let invite = l.invite_key.clone();
            self.calls.by_a_invite.remove(&invite);
            self.owners.forget_call_tx(&invite);
        }
        Some(Moving {
            leg,
            number,
            trunk,
            ext,
            was_held,
            media,
        })
    }

    /// Puts `m` into call `to` in `role`, in place of leg `replacing` if given (which
    /// stays in the table for the caller to end). As the caller it is who the call is
    /// from now on; as the callee, whom it reached.
    pub(super) fn put_party(
        &mut self,
        now: std::time::Instant,
        to: CallId,
        m: &Moving,
        role: Role,
        replacing: Option<LegId>,
    ) {
        let Some(t) = self.calls.calls.get_mut(&to) else {
            return;
        };
        match replacing {
            Some(old) => {
                for (l, _) in t.legs.iter_mut().filter(|(l, _)| *l == old) {
                    *l = m.leg;
                }
            }
            None => t.legs.push((m.leg, role)),
        }
        match role {
            Role::Caller => {
                t.caller_id = Some(m.number.clone());
                t.from_trunk.clone_from(&m.trunk);
                t.privacy = false;
                // Answered in the call it came from: a dial's answer is bridged to it,
                // not relayed.
                t.answered = true;
            }
            Role::Callee => t.b_ext.clone_from(&m.ext),
        }
        if let Some(e) = &m.ext {
            if !t.devices.iter().any(|d| d == e) {
                t.devices.push(e.clone());
            }
        }
        let unacked = self.calls.legs.get(m.leg).is_some_and(|l| l.ok.is_some());
        if unacked {
            // Our 2xx to it is still to be ACKed: sent again from this call now.
            let timer = match role {
                Role::Caller => CallTimer::OkRetransmit,
                Role::Callee => CallTimer::CalleeOkRetransmit,
            };
            let at = self
                .calls
                .legs
                .get(m.leg)
                .and_then(|l| l.ok.as_ref())
                .map(|ok| ok.first(now));
            if let Some(at) = at {
                self.calls.arm(to, timer, at);
            }
        }
        if let Some(l) = self.calls.legs.get_mut(m.leg) {
            l.controller = match role {
                Role::Caller => Controller::Script,
                Role::Callee => Controller::Dial(Ring {
                    answered: true,
                    ..Ring::default()
                }),
            };
        }
    }
}
