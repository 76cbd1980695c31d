//! What the media engine would hold after the commands the endpoint sent, for tests to
//! ask about (which ports are bridged together, what a party hears), with the engine's
//! rules checked on every command: a leg is opened once on a free port, joins a bridge
//! that is open and has room, and is told nothing while it is not open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::media::{BridgeKey, Keys, LegKey, MediaCommand};

/// What a leg's party hears from a leg out of any bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hears {
    Nothing,
    Echo,
    Prompt(PathBuf),
    Music(PathBuf),
}

#[derive(Clone, Debug)]
pub(crate) struct ModelLeg {
    pub(crate) port: u16,
    pub(crate) bridge: Option<BridgeKey>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) law: Option<u8>,
    pub(crate) hears: Hears,
    /// A recording of its party is under way.
    pub(crate) recording: bool,
    /// The number of the last prompt played to it.
    pub(crate) seq: u64,
    /// Watched for its party's silence, this long.
    pub(crate) watched: Option<std::time::Duration>,
    /// How its party's keys are listened for (in a bridge too), if they are.
    pub(crate) keys: Option<Keys>,
}

#[derive(Default, Debug)]
pub(crate) struct MediaModel {
    legs: HashMap<LegKey, ModelLeg>,
    bridges: HashMap<BridgeKey, Vec<LegKey>>,
}

impl MediaModel {
    /// The prompt playing on our port `port`: its leg, its number and its file.
    pub(crate) fn prompt_on(&self, port: u16) -> Option<(LegKey, u64, PathBuf)> {
        self.legs.iter().find_map(|(k, l)| match &l.hears {
            Hears::Prompt(p) if l.port == port => Some((*k, l.seq, p.clone())),
            _ => None,
        })
    }

    /// Applies one command, panicking where the engine's rules are broken.
    pub(crate) fn apply(&mut self, cmd: &MediaCommand) {
        match cmd {
            MediaCommand::LegOpen {
                leg,
                port,
                remote,
                pt,
                keys,
            } => {
                assert!(
                    self.legs.values().all(|l| l.port != *port),
                    "port {port} opened twice"
                );
                let old = self.legs.insert(
                    *leg,
                    ModelLeg {
                        port: *port,
                        bridge: None,
                        remote: *remote,
                        law: *pt,
                        hears: Hears::Nothing,
                        recording: false,
                        seq: 0,
                        watched: None,
                        keys: *keys,
                    },
                );
                assert!(old.is_none(), "{leg:?} opened twice");
            }
            MediaCommand::LegRemote { leg, addr } => self.leg(leg).remote = Some(*addr),
            MediaCommand::LegLaw { leg, pt } => self.leg(leg).law = Some(*pt),
            MediaCommand::LegKeys { leg, keys } => self.leg(leg).keys = *keys,
            MediaCommand::LegWatch { leg, after } => self.leg(leg).watched = Some(*after),
            MediaCommand::LegClose { leg } => {
                let l = self.legs.remove(leg).expect("closing a leg that is open");
                if let Some(b) = l.bridge {
                    self.bridges.entry(b).or_default().retain(|m| m != leg);
                }
            }
            MediaCommand::Echo { leg } => self.alone(leg).hears = Hears::Echo,
            MediaCommand::Play { leg, path, seq, .. } => {
                if let Some(l) = self.legs.get_mut(leg).filter(|l| l.bridge.is_none()) {
                    l.hears = Hears::Prompt(path.clone());
                    l.seq = *seq;
                }
            }
            MediaCommand::Music { leg, path } => self.alone(leg).hears = Hears::Music(path.clone()),
            MediaCommand::StopPlay { leg } => {
                if let Some(l) = self.legs.get_mut(leg) {
                    if matches!(l.hears, Hears::Prompt(_) | Hears::Music(_)) {
                        l.hears = Hears::Nothing;
                    }
                }
            }
            MediaCommand::Record { leg, .. } => self.alone(leg).recording = true,
            MediaCommand::StopRecord { leg } => self.alone(leg).recording = false,
            MediaCommand::BridgeOpen { bridge, .. } => {
                let old = self.bridges.insert(*bridge, Vec::new());
                assert!(old.is_none(), "{bridge:?} opened twice");
            }
            MediaCommand::BridgeJoin { bridge, leg } => {
                let members = self
                    .bridges
                    .get_mut(bridge)
                    .expect("joining an open bridge");
                if members.contains(leg) {
                    return;
                }
                assert!(members.len() < 2, "a third leg in a relay bridge");
                members.push(*leg);
                let l = self.legs.get_mut(leg).expect("joining with an open leg");
                assert_eq!(l.bridge, None, "{leg:?} in two bridges");
                l.bridge = Some(*bridge);
                l.hears = Hears::Nothing;
                l.recording = false;
            }
            MediaCommand::BridgeLeave { bridge, leg } => {
                let l = self.leg(leg);
                assert_eq!(
                    l.bridge,
                    Some(*bridge),
                    "{leg:?} leaving a bridge it is not in"
                );
                l.bridge = None;
                self.bridges
                    .entry(*bridge)
                    .or_default()
                    .retain(|m| m != leg);
            }
            MediaCommand::BridgeClose { bridge } => {
                for leg in self.bridges.remove(bridge).unwrap_or_default() {
                    self.leg(&leg).bridge = None;
                }
            }
        }
    }

    fn leg(&mut self, leg: &LegKey) -> &mut ModelLeg {
        self.legs
            .get_mut(leg)
            .unwrap_or_else(|| panic!("{leg:?} is not open"))
    }

    fn alone(&mut self, leg: &LegKey) -> &mut ModelLeg {
        let l = self.leg(leg);
        assert_eq!(l.bridge, None, "{leg:?} is in a bridge");
        l
    }

    /// The open leg on our port `port`.
    pub(crate) fn on_port(&self, port: u16) -> Option<&ModelLeg> {
        self.legs.values().find(|l| l.port == port)
    }

    /// The key of the open leg on our port `port`.
    pub(crate) fn legs_on_port_key(&self, port: u16) -> Option<LegKey> {
        self.legs
            .iter()
            .find(|(_, l)| l.port == port)
            .map(|(k, _)| *k)
    }

    /// Whether our ports `a` and `b` are legs of one bridge.
    pub(crate) fn bridged(&self, a: u16, b: u16) -> bool {
        match (self.on_port(a), self.on_port(b)) {
            (Some(x), Some(y)) => x.bridge.is_some() && x.bridge == y.bridge,
            _ => false,
        }
    }

    /// Our ports whose legs are in bridge `b` (numbered as its call).
    pub(crate) fn legs_on_bridge(&self, b: u64) -> Vec<u16> {
        let members = self.bridges.get(&BridgeKey(b)).cloned().unwrap_or_default();
        members
            .iter()
            .filter_map(|l| self.legs.get(l))
            .map(|l| l.port)
            .collect()
    }

    /// Open legs and bridges.
    pub(crate) fn open(&self) -> (usize, usize) {
        (self.legs.len(), self.bridges.len())
    }
}
