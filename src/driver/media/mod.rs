//! The RTP/RTCP media engine's driver: legs (our port pair facing one party) and bridges
//! (legs whose audio is joined), run as tasks; commands arrive from the SIP task over a
//! channel and never block it. This file owns where each leg's sockets are: parked here
//! (open, read by nobody), in the leg's own task ([`local`]: echo, prompts, music,
//! recording, keys) or in a bridge's task ([`bridge`]); joining and leaving a bridge move
//! them. [`sound`] is what legs play (decoded prompts, our own RTP stream).
//!
//! Forwarding in a bridge receives into a buffer on the task's stack and sends the same
//! bytes on: no copy of the payload and no allocation per packet. Each leg latches onto
//! the address its packets really come from (symmetric RTP), so phones behind NAT get
//! their audio back; until the first packet, the address from the SDP is used. The latch
//! travels with the leg from task to task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::media::{BridgeKey, Keys, LegKey, MediaCommand, MediaEvent, Tech};

mod bridge;
mod local;
mod sound;
mod stream;

use bridge::{bridge, BridgeCmd};
use local::{local, LocalCmd, Recording};
use sound::PromptCache;

/// Packet counters of one leg, readable by `ctl calls` while its task writes them.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets received from the party.
    pub rx: AtomicU64,
    /// RTCP packets received from the party (a sign of life from a phone that sends no
    /// audio in silence or on hold).
    pub rtcp: AtomicU64,
}

impl Counters {
    /// Every packet the party sent, RTP and RTCP.
    fn heard(&self) -> u64 {
        self.rx.load(Ordering::Relaxed) + self.rtcp.load(Ordering::Relaxed)
    }
}

/// The engine's public face: the SIP task sends commands, `ctl` reads counters.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<MediaCommand>,
    counters: CounterMap,
}

impl MediaHandle {
    /// Queues a command (never blocks the caller).
    pub fn send(&self, cmd: MediaCommand) {
        let _ = self.tx.send(cmd);
    }

    /// RTP packets received so far on a leg; `None` if it is not open.
    pub fn packets(&self, leg: LegKey) -> Option<u64> {
        let map = self.counters.lock().ok()?;
        map.get(&leg).map(|c| c.rx.load(Ordering::Relaxed))
    }
}

/// Starts the engine; its sockets bind on `ip`; events go to `events`.
pub fn start(ip: IpAddr, events: mpsc::UnboundedSender<MediaEvent>) -> MediaHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Mutex::new(HashMap::new()));
    let engine = Engine {
        ip,
        legs: HashMap::new(),
        watched: HashMap::new(),
        bridges: HashMap::new(),
        prompts: PromptCache::default(),
        counters: counters.clone(),
        events,
    };
    tokio::spawn(engine.run(rx));
    MediaHandle { tx, counters }
}

type CounterMap = Arc<Mutex<HashMap<LegKey, Arc<Counters>>>>;

/// One leg's sockets and what travels with them from task to task.
pub(super) struct LegMedia {
    pub(super) key: LegKey,
    pub(super) rtp: UdpSocket,
    pub(super) rtcp: UdpSocket,
    /// Where the party wants RTP and RTCP: from its SDP until its packets say otherwise.
    pub(super) to: Option<SocketAddr>,
    pub(super) to_rtcp: Option<SocketAddr>,
    /// Its packets came: `to` is where they come from, not the SDP's word.
    pub(super) latched: bool,
    /// The G.711 law agreed with it, and the last one it was heard speaking.
    pub(super) pt: Option<u8>,
    pub(super) heard: Option<u8>,
    pub(super) keys: Option<Keys>,
    /// Where the party's RFC 4733 press stands, so a press under way when the leg moves
    /// is not reported twice.
    pub(super) dtmf: crate::media::DtmfRx,
    pub(super) counters: Arc<Counters>,
    /// What the party hears from us, as one stream whatever its source.
    pub(super) out: stream::OutStream,
}

impl LegMedia {
    /// The SDP's address, unless the party's packets have already said where it is.
    pub(super) fn set_remote(&mut self, addr: SocketAddr) {
        if !self.latched {
            self.to = Some(addr);
            self.to_rtcp = Some(rtcp_of(addr));
        }
    }

    /// The law to speak to the party in: the agreed one, else the one it speaks.
    pub(super) fn law(&self) -> u8 {
        self.pt.or(self.heard).unwrap_or(0)
    }

    /// The key a telephone-event packet from the party starts, if its keys are listened
    /// for as events.
    pub(super) fn key(&mut self, pkt: &[u8]) -> Option<char> {
        let Some(Keys::Events(te)) = self.keys else {
            return None;
        };
        // Audio, nearly every packet, is passed over on one byte.
        if pkt.get(1).map(|b| b & 0x7f) != Some(te) {
            return None;
        }
        self.dtmf.packet(pkt, te)
    }

    /// Notes an RTCP packet from the party, received from `from`: counted, and where its
    /// RTCP goes back to.
    pub(super) fn heard_rtcp(&mut self, from: SocketAddr) {
        self.to_rtcp = Some(from);
        self.counters.rtcp.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes an RTP packet from the party, received from `from`: counted, its law kept,
    /// and, the first time, where the party is.
    pub(super) fn heard(&mut self, pkt: &[u8], from: SocketAddr) {
        if !self.latched {
            self.to = Some(from);
            self.latched = true;
        }
        if let Some(&b) = pkt.get(1) {
            if matches!(b & 0x7f, 0 | 8) {
                self.heard = Some(b & 0x7f);
            }
        }
        self.counters.rx.fetch_add(1, Ordering::Relaxed);
    }
}

/// RTCP goes to the port above the RTP one unless latched otherwise (RFC 3550 §11).
pub(super) fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

/// Where a leg's sockets are.
enum At {
    /// Here, read by nobody.
    Parked(Box<LegMedia>),
    /// In the leg's own task.
    Alone { tx: mpsc::UnboundedSender<LocalCmd> },
    /// In a bridge's task.
    Bridged(BridgeKey),
}

struct BridgeSlot {
    tx: mpsc::UnboundedSender<BridgeCmd>,
    members: Vec<LegKey>,
}

/// A leg watched for its party's silence: the packets heard when last looked, and since
/// when that count has not moved.
struct Watch {
    after: std::time::Duration,
    heard: u64,
    since: tokio::time::Instant,
}

/// The one owner of legs and bridges.
struct Engine {
    ip: IpAddr,
    legs: HashMap<LegKey, At>,
    watched: HashMap<LegKey, Watch>,
    bridges: HashMap<BridgeKey, BridgeSlot>,
    prompts: PromptCache,
    counters: CounterMap,
    events: mpsc::UnboundedSender<MediaEvent>,
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<MediaCommand>) {
        // Silence is looked for once a second: the counters are the tasks' own, so the
        // packet paths pay nothing for it.
        let mut look = tokio::time::interval(std::time::Duration::from_secs(1));
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                _ = look.tick(), if !self.watched.is_empty() => self.look_for_silence(),
            }
        }
    }

    /// Reports each watched leg silent for its `after`, and starts its count again.
    fn look_for_silence(&mut self) {
        let now = tokio::time::Instant::now();
        let Ok(counters) = self.counters.lock() else {
            return;
        };
        for (leg, w) in &mut self.watched {
            let Some(heard) = counters.get(leg).map(|c| c.heard()) else {
                continue;
            };
            if heard != w.heard {
                w.heard = heard;
                w.since = now;
            } else if now.duration_since(w.since) >= w.after {
                w.since = now;
                let _ = self.events.send(MediaEvent::Inactive { leg: *leg });
            }
        }
    }

    /// Starts watching `leg` for silence from now.
    fn watch(&mut self, leg: LegKey, after: std::time::Duration) {
        let heard = self
            .counters
            .lock()
            .ok()
            .and_then(|c| c.get(&leg).map(|c| c.heard()));
        let Some(heard) = heard else {
            return;
        };
        self.watched.insert(
            leg,
            Watch {
                after,
                heard,
                since: tokio::time::Instant::now(),
            },
        );
    }

    async fn command(&mut self, cmd: MediaCommand) {
        match cmd {
            MediaCommand::LegOpen {
                leg,
                port,
                remote,
                pt,
                keys,
            } => self.open(leg, port, remote, pt, keys).await,
            MediaCommand::LegRemote { leg, addr } => match self.legs.get_mut(&leg) {
                Some(At::Parked(m)) => m.set_remote(addr),
                Some(At::Alone { tx }) => {
                    let _ = tx.send(LocalCmd::Remote(addr));
                }
                Some(At::Bridged(b)) => send(&self.bridges, *b, BridgeCmd::Remote(leg, addr)),
                None => {}
            },
            MediaCommand::LegKeys { leg, keys } => match self.legs.remove(&leg) {
                Some(At::Parked(mut m)) => {
                    // Listened to from now on if keys are wanted.
                    m.keys = keys;
                    self.put_alone(m);
                }
                Some(at) => {
                    match &at {
                        At::Alone { tx } => {
                            let _ = tx.send(LocalCmd::Keys(keys));
                        }
                        At::Bridged(b) => send(&self.bridges, *b, BridgeCmd::Keys(leg, keys)),
                        At::Parked(_) => {}
                    }
                    self.legs.insert(leg, at);
                }
                None => {}
            },
            MediaCommand::LegLaw { leg, pt } => match self.legs.get_mut(&leg) {
                Some(At::Parked(m)) => m.pt = Some(pt),
                Some(At::Alone { tx }) => {
                    let _ = tx.send(LocalCmd::Law(pt));
                }
                Some(At::Bridged(b)) => send(&self.bridges, *b, BridgeCmd::Law(leg, pt)),
                None => {}
            },
            MediaCommand::LegClose { leg } => {
                self.watched.remove(&leg);
                self.close(leg);
            }
            MediaCommand::LegWatch { leg, after } => self.watch(leg, after),
            MediaCommand::Echo { leg } => self.tell_local(leg, LocalCmd::Echo),
            MediaCommand::Play {
                leg,
                path,
                barge_in,
                seq,
            } => {
                if matches!(self.legs.get(&leg), None | Some(At::Bridged(_))) {
                    // Nobody to play to: said so at once, so the call does not wait on it.
                    let _ = self.events.send(MediaEvent::PlayDone {
                        leg,
                        seq,
                        played: false,
                    });
                } else {
                    self.tell_local(leg, LocalCmd::Play(path, barge_in, seq));
                }
            }
            MediaCommand::Music { leg, path } => self.tell_local(leg, LocalCmd::Music(path)),
            MediaCommand::Record {
                leg,
                path,
                max,
                silence,
                index,
                seq,
            } => self.tell_local(
                leg,
                LocalCmd::Record(Recording::new(path, max, silence, index, seq)),
            ),
            // Nothing plays or records in a parked leg: nothing to stop.
            MediaCommand::StopPlay { leg } => {
                if let Some(At::Alone { tx }) = self.legs.get(&leg) {
                    let _ = tx.send(LocalCmd::Stop);
                }
            }
            MediaCommand::StopRecord { leg } => {
                if let Some(At::Alone { tx }) = self.legs.get(&leg) {
                    let _ = tx.send(LocalCmd::StopRecord);
                }
            }
            MediaCommand::BridgeOpen { bridge: b, tech } => {
                let Tech::Relay = tech;
                if self.bridges.contains_key(&b) {
                    tracing::warn!(bridge = b.0, "bridge already open");
                    return;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(bridge(rx, self.events.clone()));
                self.bridges.insert(
                    b,
                    BridgeSlot {
                        tx,
                        members: Vec::with_capacity(2),
                    },
                );
            }
            MediaCommand::BridgeJoin { bridge: b, leg } => self.join(b, leg).await,
            MediaCommand::BridgeLeave { bridge: b, leg } => {
                if matches!(self.legs.get(&leg), Some(At::Bridged(x)) if *x == b) {
                    if let Some(m) = self.take(leg).await {
                        self.put_alone(m);
                    }
                }
            }
            MediaCommand::BridgeClose { bridge: b } => {
                let members = self
                    .bridges
                    .get(&b)
                    .map(|s| s.members.clone())
                    .unwrap_or_default();
                for leg in members {
                    if let Some(m) = self.take(leg).await {
                        self.put_alone(m);
                    }
                }
                // Its task ends with its channel.
                self.bridges.remove(&b);
            }
        }
    }

    async fn open(
        &mut self,
        leg: LegKey,
        port: u16,
        remote: Option<SocketAddr>,
        pt: Option<u8>,
        keys: Option<Keys>,
    ) {
        if self.legs.contains_key(&leg) {
            tracing::warn!(leg = leg.0, "leg opened twice; the first closed");
            self.close(leg);
        }
        let (rtp, rtcp) = match bind_pair(self.ip, port).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(leg = leg.0, port, error = %e, "cannot bind RTP ports; this party has no audio");
                return;
            }
        };
        let counters = Arc::new(Counters::default());
        if let Ok(mut m) = self.counters.lock() {
            m.insert(leg, counters.clone());
        }
        self.put_alone(Box::new(LegMedia {
            key: leg,
            rtp,
            rtcp,
            to: remote,
            to_rtcp: remote.map(rtcp_of),
            latched: false,
            pt,
            heard: None,
            keys,
            dtmf: crate::media::DtmfRx::default(),
            counters,
            out: stream::OutStream::new(),
        }));
    }

    /// A leg out of any bridge: listened to in its own task if it listens for keys (a
    /// caller in a menu is heard at once), parked otherwise.
    fn put_alone(&mut self, m: Box<LegMedia>) {
        let leg = m.key;
        let at = if m.keys.is_some() {
            At::Alone {
                tx: self.spawn_local(m),
            }
        } else {
            At::Parked(m)
        };
        self.legs.insert(leg, at);
    }

    fn spawn_local(&self, m: Box<LegMedia>) -> mpsc::UnboundedSender<LocalCmd> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(local(m, rx, self.events.clone(), self.prompts.clone()));
        tx
    }

    /// Hands `cmd` to the leg's own task, starting one for a parked leg; a leg in a
    /// bridge plays nothing of its own.
    fn tell_local(&mut self, leg: LegKey, cmd: LocalCmd) {
        let at = match self.legs.remove(&leg) {
            Some(At::Parked(m)) => At::Alone {
                tx: self.spawn_local(m),
            },
            Some(at) => at,
            None => return,
        };
        if let At::Alone { tx } = &at {
            let _ = tx.send(cmd);
        }
        self.legs.insert(leg, at);
    }

    /// Takes a leg's sockets from wherever they are (its task or bridge hands them back
    /// at once), leaving it nowhere until they are put somewhere.
    async fn take(&mut self, leg: LegKey) -> Option<Box<LegMedia>> {
        let (back, rx) = oneshot::channel();
        match self.legs.remove(&leg)? {
            At::Parked(m) => return Some(m),
            At::Alone { tx } => {
                let _ = tx.send(LocalCmd::Handover(back));
            }
            At::Bridged(b) => {
                let slot = self.bridges.get_mut(&b)?;
                slot.members.retain(|&l| l != leg);
                let _ = slot.tx.send(BridgeCmd::Leave(leg, back));
            }
        }
        let m = rx.await.ok();
        if m.is_none() {
            tracing::error!(leg = leg.0, "a media task ended holding a leg's sockets");
        }
        m
    }

    async fn join(&mut self, b: BridgeKey, leg: LegKey) {
        match (self.bridges.get(&b), self.legs.get(&leg)) {
            (None, _) | (_, None) => {
                tracing::warn!(bridge = b.0, leg = leg.0, "join: no such bridge or leg");
                return;
            }
            (_, Some(At::Bridged(x))) if *x == b => return,
            (Some(s), _) if s.members.len() >= 2 => {
                tracing::error!(
                    bridge = b.0,
                    leg = leg.0,
                    "a relay bridge joins two legs; the leg stays where it is"
                );
                return;
            }
            _ => {}
        }
        let parked = matches!(self.legs.get(&leg), Some(At::Parked(_)));
        let Some(m) = self.take(leg).await else {
            return;
        };
        if parked {
            // What the party sent while nobody listened is stale: the bridge must not
            // start by forwarding a backlog of it.
            drain(&m.rtp);
            drain(&m.rtcp);
        }
        let Some(slot) = self.bridges.get_mut(&b) else {
            self.put_alone(m);
            return;
        };
        slot.members.push(leg);
        let _ = slot.tx.send(BridgeCmd::Join(m));
        self.legs.insert(leg, At::Bridged(b));
    }

    fn close(&mut self, leg: LegKey) {
        match self.legs.remove(&leg) {
            // The sockets close here and now.
            Some(At::Parked(_)) | None => {}
            // The task saves a recording under way, then ends.
            Some(At::Alone { tx }) => {
                let _ = tx.send(LocalCmd::Close);
            }
            Some(At::Bridged(b)) => {
                if let Some(slot) = self.bridges.get_mut(&b) {
                    slot.members.retain(|&l| l != leg);
                    let _ = slot.tx.send(BridgeCmd::Drop(leg));
                }
            }
        }
        if let Ok(mut m) = self.counters.lock() {
            m.remove(&leg);
        }
    }
}

fn send(bridges: &HashMap<BridgeKey, BridgeSlot>, b: BridgeKey, cmd: BridgeCmd) {
    if let Some(s) = bridges.get(&b) {
        let _ = s.tx.send(cmd);
    }
}

/// Reads and drops what is queued on a socket.
fn drain(s: &UdpSocket) {
    let mut buf = [0u8; 2048];
    while s.try_recv_from(&mut buf).is_ok() {}
}

/// Binds a leg's RTP and RTCP sockets. A port just closed may still be held by a task
/// that is ending (the endpoint hands a freed port out again only after the rest of the
/// range, but a small range comes round quickly): a few short retries cover that.
async fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let bind = |p: u16| -> std::io::Result<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, p))?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s)
    };
    let mut tries = 0;
    loop {
        match bind(port).and_then(|a| Ok((a, bind(port + 1)?))) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            r => return r,
        }
    }
}
