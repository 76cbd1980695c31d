//! Feature codes during a conversation: keys an extension presses on a bridged call (RFC
//! 4733 events the bridge reports, or SIP INFO) that ask switchboard itself for a
//! transfer, for phones without a transfer key or whose key does something else. The
//! transfer code (`[calls] transfer_code`, `##` by default) or the attended code
//! (`attended_code`, `*2`), then the number and `#`: the other party hears music while
//! the number is entered (the transferor hears "enter extension"). Blind, the transfer is
//! then carried out as for a REFER and the transferor is hung up on (after hearing the
//! slot, if the party was parked); attended, the transferor calls the number first
//! (`consult`). `#` alone, or no key for a while, puts the two back together; a number
//! the transferor may not send the party to (or call) is answered with "invalid option",
//! and another may be entered.
//!
//! Owns the call's `feature` (the keys pressed so far, the number being entered) and its
//! `FeatureEntry` timer; the transfer itself is `transfer`'s, the consultation
//! `consult`'s.

use std::time::{Duration, Instant};

use super::state::{CallId, CallTimer, Consult, Feature, LegId, State, TransferKind};
use super::transfer::{Parting, Refusal};
use crate::endpoint::Endpoint;
use crate::media::{Keys, MediaCommand};
use crate::sdp::Codec;

/// Keys of a code pressed further apart than this are not taken for one.
const BETWEEN_CODE_KEYS: Duration = Duration::from_secs(2);
/// How long the transferor may think before the next key of the number; with none
/// entered yet, the first.
const NUMBER_KEY: Duration = Duration::from_secs(5);
const FIRST_KEY: Duration = Duration::from_secs(10);

impl Endpoint {
    /// A key from the party on `leg` of call `id`: true if it was a feature's (the
    /// dialplan does not see it).
    pub(super) fn feature_key(&mut self, now: Instant, id: CallId, leg: LegId, key: char) -> bool {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return false;
        };
        match &mut c.feature {
            Feature::Number { leg: l, number, .. } if *l == leg => {
                if key == '#' {
                    let number = std::mem::take(number);
                    self.number_entered(now, id, number);
                } else {
                    number.push(key);
                    self.calls
                        .arm(id, CallTimer::FeatureEntry, now + NUMBER_KEY);
                    // The prompt stops at the first key.
                    if let Some(m) = self.calls.legs.get(leg).and_then(|l| l.media) {
                        self.calls.stop_play_on(m.key);
                    }
                }
                return true;
            }
            Feature::Number { .. } => return false,
            _ => {}
        }
        match c.consult {
            // A consultation's caller may press the attended code again, in any state
            // of it, to go back to the party it put aside.
            Some(Consult::Consulting { .. }) => {
                if c.is_caller(leg) {
                    let code = self.calls.attended_code.clone();
                    if self
                        .code_key(now, id, leg, key, &[(&code, TransferKind::Attended)])
                        .is_some()
                    {
                        self.back_to_held(now, id);
                    }
                }
                return false;
            }
            Some(Consult::Held { .. }) => return false,
            None => {}
        }
        if !matches!(c.state, State::Bridged)
            || c.on_hold.is_some()
            || self.transferor_party(id, leg).is_err()
        {
            return false;
        }
        let (blind, attended) = (
            self.calls.transfer_code.clone(),
            self.calls.attended_code.clone(),
        );
        let codes = [
            (&blind, TransferKind::Blind),
            (&attended, TransferKind::Attended),
        ];
        if let Some(kind) = self.code_key(now, id, leg, key, &codes) {
            self.start_number(now, id, leg, kind);
        }
        // The keys went to the other party too (the relay passes them on): feature keys
        // are not kept from it, only acted on.
        false
    }

    /// `key` from `leg` of call `id`, on the way to one of `codes` (those not empty):
    /// the kind of the code it completes, if it does.
    fn code_key(
        &mut self,
        now: Instant,
        id: CallId,
        leg: LegId,
        key: char,
        codes: &[(&String, TransferKind)],
    ) -> Option<TransferKind> {
        let c = self.calls.calls.get_mut(&id)?;
        let begins = |keys: &str| {
            codes
                .iter()
                .any(|(code, _)| !code.is_empty() && code.starts_with(keys))
        };
        let mut keys = match std::mem::take(&mut c.feature) {
            Feature::Code { leg: l, keys, at } if l == leg && now - at <= BETWEEN_CODE_KEYS => keys,
            _ => String::new(),
        };
        keys.push(key);
        if !begins(&keys) {
            // A false start: the key may still begin a code afresh.
            keys = key.to_string();
            if !begins(&keys) {
                return None;
            }
        }
        match codes.iter().find(|(code, _)| **code == keys) {
            Some(&(_, kind)) => Some(kind),
            None => {
                c.feature = Feature::Code { leg, keys, at: now };
                None
            }
        }
    }

    /// `leg` pressed a transfer code: the other party hears music, the transferor is
    /// asked for the number.
    fn start_number(&mut self, now: Instant, id: CallId, leg: LegId, kind: TransferKind) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(other) = c.other(leg) else {
            return;
        };
        c.feature = Feature::Number {
            leg,
            number: String::new(),
            kind,
        };
        tracing::info!(call = %id, ?kind, "transfer code pressed");
        let music = self.music_on_hold(id, leg);
        let media = |l: LegId| self.calls.legs.get(l).and_then(|l| l.media).map(|m| m.key);
        let (mine, theirs) = (media(leg), media(other));
        if let Some(m) = theirs {
            self.calls.suspend(id, m, music);
        }
        if let Some(m) = mine {
            self.calls.leave_bridge(id, m);
            let prompt = self.sounds_dir.join("enter-extension.wav");
            // Numbered apart from the dialplan's prompts: its end means nothing to it.
            self.calls.play_to(m, prompt, true, u64::MAX);
        }
        self.calls.arm(id, CallTimer::FeatureEntry, now + FIRST_KEY);
    }

    /// The transferor of call `id` waited too long for the next key of the number: what
    /// is entered is the number.
    pub(super) fn feature_timeout(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if let Feature::Number { number, .. } = &mut c.feature {
            let number = std::mem::take(number);
            self.number_entered(now, id, number);
        }
    }

    /// The number is entered: the transfer is carried out, or the transferor hears why
    /// not and may enter another; none at all puts the two parties back together.
    fn number_entered(&mut self, now: Instant, id: CallId, number: String) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Feature::Number { leg, kind, .. } = c.feature else {
            return;
        };
        c.timers.stop(CallTimer::FeatureEntry);
        if number.is_empty() {
            c.feature = Feature::None;
            tracing::info!(call = %id, "transfer abandoned");
            self.feature_back_together(id, leg);
            return;
        }
        let result = self.transferor_party(id, leg).and_then(|by| {
            let (plan, cursor) = match kind {
                TransferKind::Blind => self.transfer_cursor(id, by, &number)?,
                TransferKind::Attended => self.consult_cursor(id, leg, &number)?,
            };
            Ok((by, plan, cursor))
        });
        match result {
            Ok((by, plan, cursor)) => {
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.feature = Feature::None;
                }
                match kind {
                    TransferKind::Blind => {
                        tracing::info!(call = %id, target = %number, "blind transfer by feature code");
                        self.carry_out_blind(
                            now,
                            id,
                            leg,
                            by,
                            number,
                            plan,
                            cursor,
                            Parting::AfterSlot,
                        );
                    }
                    TransferKind::Attended => {
                        self.start_consultation(now, id, leg, number, (plan, cursor));
                    }
                }
            }
            Err(Refusal(status, why)) => {
                tracing::info!(call = %id, status, why, "transfer by feature code refused");
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.feature = Feature::Number {
                        leg,
                        number: String::new(),
                        kind,
                    };
                }
                if let Some(m) = self.calls.legs.get(leg).and_then(|l| l.media) {
                    let prompt = self.sounds_dir.join("invalid-option.wav");
                    self.calls.play_to(m.key, prompt, true, u64::MAX);
                }
                self.calls.arm(id, CallTimer::FeatureEntry, now + FIRST_KEY);
            }
        }
    }

    /// The transferor on `leg` and the other party of call `id` talk again.
    fn feature_back_together(&mut self, id: CallId, leg: LegId) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let media = |l: Option<LegId>| {
            l.and_then(|l| self.calls.legs.get(l))
                .and_then(|l| l.media)
                .map(|m| m.key)
        };
        if let (Some(a), Some(b)) = (media(Some(leg)), media(c.other(leg))) {
            self.calls.join(id, [a, b]);
        }
    }

    /// The parties of call `id` who may press feature codes have their keys listened to
    /// in the bridge (RFC 4733 events; a phone that sends keys only as tones in the
    /// audio must use its transfer key or SIP INFO).
    pub(super) fn listen_for_codes(&mut self, id: CallId) {
        if self.calls.transfer_code.is_empty() && self.calls.attended_code.is_empty() {
            return;
        }
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let parties: Vec<LegId> = c.legs.iter().map(|&(l, _)| l).collect();
        for leg in parties {
            if self.transferor_party(id, leg).is_err() {
                continue;
            }
            let Some(l) = self.calls.legs.get(leg) else {
                continue;
            };
            // Ours in an answer of ours; else the party's own (a relayed party sends
            // with the numbers both sides agreed, in practice the same).
            let te = l.te_pt.or_else(|| {
                let audio = l.sdp.as_ref()?.audio()?;
                let mut formats = audio.formats.iter();
                formats
                    .find(|f| f.codec() == Some(Codec::TelephoneEvent))
                    .map(|f| f.pt)
            });
            if let (Some(m), Some(te)) = (l.media, te) {
                self.calls.media(MediaCommand::LegKeys {
                    leg: m.key,
                    keys: Some(Keys::Events(te)),
                });
            }
        }
    }
}
