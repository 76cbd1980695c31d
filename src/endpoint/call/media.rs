//! The call layer's one emitter of media commands, and the owner of media legs' ports
//! and keys: a media leg is reserved (a port pair and a key), opened in the engine,
//! joined to and taken out of the call's bridge, and closed (its port back in the
//! pool). Today's flows are moves of legs: answered here, the caller's leg alone; a dial,
//! the callee's leg opened; an answer, both joined in the call's bridge; hold, the held
//! leg out of the bridge with music. It must not decide when a flow happens, only how the
//! media engine is told.

use std::net::SocketAddr;

use super::state::{Bridge, CallId, LegId, MediaLeg};
use super::Calls;
use crate::media::{BridgeKey, Keys, LegKey, MediaCommand, Tech};

impl Calls {
    pub(super) fn media(&mut self, cmd: MediaCommand) {
        self.media_out.push_back(cmd);
    }

    /// A port pair and a key for a media leg of call `id`, not open yet; `None` when
    /// the port range is spent (logged).
    pub(super) fn reserve_media(&mut self, id: CallId) -> Option<MediaLeg> {
        let Some(port) = self.ports.take() else {
            tracing::warn!(call = %id, "RTP port range exhausted");
            return None;
        };
        self.next_media += 1;
        let key = LegKey(self.next_media);
        self.media_calls.insert(key, id);
        Some(MediaLeg { key, port })
    }

    /// Gives back a media leg that was reserved and never opened.
    pub(super) fn release_media(&mut self, m: MediaLeg) {
        self.media_calls.remove(&m.key);
        self.ports.give(m.port);
    }

    /// Closes an open media leg (leaving its bridge; a recording under way is saved)
    /// and gives its port back.
    pub(super) fn close_media(&mut self, m: MediaLeg) {
        self.media(MediaCommand::LegClose { leg: m.key });
        let bridge = self
            .media_calls
            .get(&m.key)
            .and_then(|id| self.calls.get_mut(id))
            .and_then(|c| c.bridge.as_mut());
        if let Some(b) = bridge {
            b.members.retain(|&l| l != m.key);
        }
        self.release_media(m);
    }

    /// The call a media leg serves, and whether it is the caller's: what the engine's
    /// reports about it are for.
    pub(super) fn media_owner(&self, key: LegKey) -> Option<(CallId, bool)> {
        let id = *self.media_calls.get(&key)?;
        let caller = self.caller(id).and_then(|l| l.media).map(|m| m.key) == Some(key);
        Some((id, caller))
    }

    /// The party of call `id` whose media leg is `key`.
    pub(super) fn party_of_media(&self, id: CallId, key: LegKey) -> Option<LegId> {
        let c = self.calls.get(&id)?;
        c.legs
            .iter()
            .map(|&(l, _)| l)
            .find(|&l| self.legs.get(l).and_then(|l| l.media).map(|m| m.key) == Some(key))
    }

    /// A party answered here, alone on its leg (`pt` agreed, if one was; keys listened
    /// for as it offered them).
    pub(super) fn open_alone(
        &mut self,
        m: MediaLeg,
        remote: Option<SocketAddr>,
        pt: Option<u8>,
        te_pt: Option<u8>,
    ) {
        self.media(MediaCommand::LegOpen {
            leg: m.key,
            port: m.port,
            remote,
            pt,
            keys: Some(te_pt.map_or(Keys::Inband, Keys::Events)),
        });
    }

    /// A leg whose audio only a bridge will carry (a relayed party, a callee being rung):
    /// parked until it joins one.
    pub(super) fn open_parked(&mut self, m: MediaLeg, remote: Option<SocketAddr>) {
        self.media(MediaCommand::LegOpen {
            leg: m.key,
            port: m.port,
            remote,
            pt: None,
            keys: None,
        });
    }

    /// Legs of call `id` join its bridge, opened now if it is not yet (what they heard
    /// alone stops).
    pub(super) fn join<const N: usize>(&mut self, id: CallId, legs: [LegKey; N]) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let opened = c.bridge.is_none();
        let b = c.bridge.get_or_insert_with(|| Bridge {
            key: BridgeKey(id.0),
            members: Vec::with_capacity(2),
        });
        let bridge = b.key;
        for leg in legs {
            if !b.members.contains(&leg) {
                b.members.push(leg);
            }
        }
        if opened {
            self.media(MediaCommand::BridgeOpen {
                bridge,
                tech: Tech::Relay,
            });
        }
        for leg in legs {
            self.media(MediaCommand::BridgeJoin { bridge, leg });
        }
    }

    /// `leg` leaves call `id`'s bridge, staying open alone (it is on its way to another
    /// call's).
    pub(super) fn leave_bridge(&mut self, id: CallId, leg: LegKey) {
        let Some(b) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        if b.members.contains(&leg) {
            b.members.retain(|&l| l != leg);
            let bridge = b.key;
            self.media(MediaCommand::BridgeLeave { bridge, leg });
        }
    }

    /// The open media leg `leg` serves call `id` from now on: the engine's reports about
    /// it (keys, a prompt's end) go there.
    pub(super) fn hand_media(&mut self, leg: LegKey, id: CallId) {
        if let Some(owner) = self.media_calls.get_mut(&leg) {
            *owner = id;
        }
    }

    /// Call `id`'s bridge closes, if it has one (its legs stay open, alone).
    pub(super) fn close_bridge(&mut self, id: CallId) {
        if let Some(b) = self.calls.get_mut(&id).and_then(|c| c.bridge.take()) {
            self.drop_bridge(b.key);
        }
    }

    /// A bridge closes (its call is gone from the table already).
    pub(super) fn drop_bridge(&mut self, bridge: BridgeKey) {
        self.media(MediaCommand::BridgeClose { bridge });
    }

    /// A party says, in its SDP, where it wants RTP.
    pub(super) fn remote(&mut self, leg: LegKey, addr: SocketAddr) {
        self.media(MediaCommand::LegRemote { leg, addr });
    }

    /// The G.711 law a party speaks (what is played to it is encoded in it, and a bridge
    /// converts between two legs whose laws differ).
    pub(super) fn law(&mut self, leg: LegKey, pt: u8) {
        self.media(MediaCommand::LegLaw { leg, pt });
    }

    /// A party put on hold leaves call `id`'s bridge and hears `music`; the holder stays,
    /// hearing nothing.
    pub(super) fn suspend(&mut self, id: CallId, leg: LegKey, music: std::path::PathBuf) {
        let Some(b) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        let bridge = b.key;
        b.members.retain(|&l| l != leg);
        self.media(MediaCommand::BridgeLeave { bridge, leg });
        self.media(MediaCommand::Music { leg, path: music });
    }

    /// The held party is back in call `id`'s bridge (its music ends).
    pub(super) fn unsuspend(&mut self, id: CallId, leg: LegKey) {
        if self.calls.get(&id).is_some_and(|c| c.bridge.is_some()) {
            self.join(id, [leg]);
        }
    }

    /// The media leg prompts play to: the caller's, but a callback's agent's until the
    /// customer answers (it hears ringback while the customer's phone rings).
    pub(super) fn prompt_leg(&self, id: CallId) -> Option<LegKey> {
        let c = self.calls.get(&id)?;
        let leg = c
            .caller()
            .or_else(|| c.callee().filter(|_| c.callback.is_some()))?;
        Some(self.legs.get(leg)?.media?.key)
    }

    /// The caller's media leg, if it has one.
    pub(super) fn caller_media(&self, id: CallId) -> Option<LegKey> {
        Some(self.caller(id)?.media?.key)
    }

    /// Plays `path` to `leg`, numbered `seq`.
    pub(super) fn play_to(
        &mut self,
        leg: LegKey,
        path: std::path::PathBuf,
        barge_in: bool,
        seq: u64,
    ) {
        self.media(MediaCommand::Play {
            leg,
            path,
            barge_in,
            seq,
        });
    }

    /// Plays `path` round and round to `leg` until something else is asked of it.
    pub(super) fn music(&mut self, leg: LegKey, path: std::path::PathBuf) {
        self.media(MediaCommand::Music { leg, path });
    }

    /// Stops what plays to `leg`.
    pub(super) fn stop_play_on(&mut self, leg: LegKey) {
        self.media(MediaCommand::StopPlay { leg });
    }

    /// `leg` echoes its party.
    pub(super) fn echo(&mut self, leg: LegKey) {
        self.media(MediaCommand::Echo { leg });
    }

    /// The recording of `leg` ends now.
    pub(super) fn stop_record(&mut self, leg: LegKey) {
        self.media(MediaCommand::StopRecord { leg });
    }

    /// Records `leg`'s party (see [`MediaCommand::Record`]).
    pub(super) fn record(
        &mut self,
        leg: LegKey,
        path: std::path::PathBuf,
        max: std::time::Duration,
        silence: std::time::Duration,
        index: Option<(std::path::PathBuf, String)>,
        seq: u64,
    ) {
        self.media(MediaCommand::Record {
            leg,
            path,
            max,
            silence,
            index,
            seq,
        });
    }
}
