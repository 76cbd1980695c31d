//! The call layer's one emitter of media commands: which media legs and bridge stand for a
//! call's parties, and today's flows as moves of legs (answered here: the caller's leg
//! alone; a dial: the callee's leg opened; an answer: both joined in the call's bridge;
//! hold: the held leg out of the bridge with music). Owns nothing but the outgoing queue;
//! it must not decide when a flow happens, only how the media engine is told.

use std::net::SocketAddr;

use super::state::CallId;
use super::Calls;
use crate::media::{Keys, LegKey, MediaCommand, Tech};

impl Calls {
    fn media(&mut self, cmd: MediaCommand) {
        self.media_out.push_back(cmd);
    }

    /// The caller, answered here, alone on its leg (`pt` agreed, if one was; keys
    /// listened for as it offered them).
    pub(super) fn open_alone(
        &mut self,
        id: CallId,
        port: u16,
        remote: Option<SocketAddr>,
        pt: Option<u8>,
        te_pt: Option<u8>,
    ) {
        self.media(MediaCommand::LegOpen {
            leg: id.media_leg(true),
            port,
            remote,
            pt,
            keys: Some(te_pt.map_or(Keys::Inband, Keys::Events)),
        });
    }

    /// A dial from a caller already on its own leg: the callee's leg, parked until the
    /// answer joins the two.
    pub(super) fn open_callee(&mut self, id: CallId, port: u16) {
        self.media(MediaCommand::LegOpen {
            leg: id.media_leg(false),
            port,
            remote: None,
            pt: None,
            keys: None,
        });
    }

    /// A dial relayed from a caller not answered here: both legs in the call's bridge at
    /// once, so early media reaches the caller.
    pub(super) fn open_relay(
        &mut self,
        id: CallId,
        a_port: u16,
        a_remote: Option<SocketAddr>,
        b_port: u16,
    ) {
        self.media(MediaCommand::LegOpen {
            leg: id.media_leg(true),
            port: a_port,
            remote: a_remote,
            pt: None,
            keys: None,
        });
        self.open_callee(id, b_port);
        self.connect(id);
    }

    /// The call's two legs join its bridge (what the caller heard alone stops).
    pub(super) fn connect(&mut self, id: CallId) {
        let bridge = id.bridge();
        self.media(MediaCommand::BridgeOpen {
            bridge,
            tech: Tech::Relay,
        });
        for caller in [true, false] {
            self.media(MediaCommand::BridgeJoin {
                bridge,
                leg: id.media_leg(caller),
            });
        }
    }

    /// The callee's leg closes (a dial from a caller answered here failed; the caller
    /// goes on hearing what it heard).
    pub(super) fn close_callee(&mut self, id: CallId) {
        self.media(MediaCommand::LegClose {
            leg: id.media_leg(false),
        });
    }

    /// All of the call's media closes: the caller's leg, and the callee's (`callee`)
    /// with the bridge, if a dial opened them.
    pub(super) fn close_media(&mut self, id: CallId, callee: bool) {
        self.media(MediaCommand::LegClose {
            leg: id.media_leg(true),
        });
        if callee {
            self.close_callee(id);
            self.media(MediaCommand::BridgeClose {
                bridge: id.bridge(),
            });
        }
    }

    /// The party facing the caller's leg (`caller`) or the callee's says, in its SDP,
    /// where it wants RTP.
    pub(super) fn remote(&mut self, id: CallId, caller: bool, addr: SocketAddr) {
        self.media(MediaCommand::LegRemote {
            leg: id.media_leg(caller),
            addr,
        });
    }

    /// The two parties share no G.711 law: each leg's own, for the bridge to convert.
    pub(super) fn laws(&mut self, id: CallId, a_pt: u8, b_pt: u8) {
        self.media(MediaCommand::LegLaw {
            leg: id.media_leg(true),
            pt: a_pt,
        });
        self.law(id, false, b_pt);
    }

    /// The law one party speaks (what is played to it is encoded in it).
    pub(super) fn law(&mut self, id: CallId, caller: bool, pt: u8) {
        self.media(MediaCommand::LegLaw {
            leg: id.media_leg(caller),
            pt,
        });
    }

    /// A party put on hold leaves the bridge and hears `music`; the holder stays, hearing
    /// nothing.
    pub(super) fn suspend(&mut self, id: CallId, caller: bool, music: std::path::PathBuf) {
        let leg = id.media_leg(caller);
        self.media(MediaCommand::BridgeLeave {
            bridge: id.bridge(),
            leg,
        });
        self.media(MediaCommand::Music { leg, path: music });
    }

    /// The held party is back in the bridge (its music ends).
    pub(super) fn unsuspend(&mut self, id: CallId, caller: bool) {
        self.media(MediaCommand::BridgeJoin {
            bridge: id.bridge(),
            leg: id.media_leg(caller),
        });
    }

    /// The leg prompts play to: the caller's, but a callback's agent (the callee) while
    /// the customer's phone rings, and hears ringback.
    pub(super) fn prompt_leg(&self, id: CallId) -> LegKey {
        let agent = self
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.ringing.is_some() && !cb.up);
        id.media_leg(!agent)
    }

    /// Plays `path` to the call (see [`Calls::prompt_leg`]), numbered `seq`.
    pub(super) fn play_to(
        &mut self,
        id: CallId,
        path: std::path::PathBuf,
        barge_in: bool,
        seq: u64,
    ) {
        let leg = self.prompt_leg(id);
        self.media(MediaCommand::Play {
            leg,
            path,
            barge_in,
            seq,
        });
    }

    /// Stops what plays to `leg`.
    pub(super) fn stop_play_on(&mut self, leg: LegKey) {
        self.media(MediaCommand::StopPlay { leg });
    }

    /// The caller's leg echoes it.
    pub(super) fn echo(&mut self, id: CallId) {
        self.media(MediaCommand::Echo {
            leg: id.media_leg(true),
        });
    }

    /// The caller's recording ends now.
    pub(super) fn stop_record(&mut self, id: CallId) {
        self.media(MediaCommand::StopRecord {
            leg: id.media_leg(true),
        });
    }

    /// Records the caller (see [`MediaCommand::Record`]).
    pub(super) fn record(
        &mut self,
        id: CallId,
        path: std::path::PathBuf,
        max: std::time::Duration,
        silence: std::time::Duration,
        index: Option<(std::path::PathBuf, String)>,
        seq: u64,
    ) {
        self.media(MediaCommand::Record {
            leg: id.media_leg(true),
            path,
            max,
            silence,
            index,
            seq,
        });
    }
}
