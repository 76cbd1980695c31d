//! A party that went silent: with `[calls] rtp_timeout_s`, each answered party's media
//! leg is watched by the media engine, which reports a party that sends no RTP and no
//! RTCP for that long. Such a party of an answered call, when nobody is on hold (then
//! silence is expected: the held phone only listens, the holder may send nothing), is
//! taken for gone, as a phone without session timers that lost power or its network
//! would be: it gets a BYE (it may be back), the others too, and the call ends with its
//! record (408, by the system).
//!
//! Owns when legs are watched and what a report of silence does; the counting is the
//! media engine's.

use std::time::Instant;

use super::state::{CallId, LegId};
use crate::endpoint::Endpoint;
use crate::media::{LegKey, MediaCommand};

impl Endpoint {
    /// Starts (or starts over) the watch on the media of call `id`'s parties: on answer,
    /// and once a hold ends.
    pub(super) fn watch_parties(&mut self, id: CallId) {
        let Some(after) = self.calls.rtp_timeout else {
            return;
        };
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        let keys: Vec<LegKey> = c
            .legs
            .iter()
            .filter_map(|&(l, _)| self.calls.legs.get(l).and_then(|l| l.media))
            .map(|m| m.key)
            .collect();
        for leg in keys {
            self.calls.media(MediaCommand::LegWatch { leg, after });
        }
    }

    /// The media engine heard nothing from the party on media leg `key` for the timeout.
    pub(super) fn on_media_silence(&mut self, now: Instant, key: LegKey) {
        let Some((id, _)) = self.calls.media_owner(key) else {
            return;
        };
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if !c.answered || c.on_hold.is_some() {
            return;
        }
        let party: Option<LegId> = c.legs.iter().map(|&(l, _)| l).find(|&l| {
            self.calls
                .legs
                .get(l)
                .and_then(|l| l.media)
                .is_some_and(|m| m.key == key)
        });
        let Some(party) = party else {
            return;
        };
        tracing::info!(call = %id, "no RTP or RTCP from a party");
        self.send_bye(now, party);
        self.party_gone(now, id, party, 408);
    }
}
