//! The RTP/RTCP relay: one task per session, owning its sockets; commands arrive from the
//! SIP task over a channel and never block it. This file owns the sessions and turns
//! commands into their tasks: a bridge between two parties ([`bridge`]) or a session with
//! the caller alone ([`local`]: echo, prompts, recording, keys); [`sound`] is what both
//! play (decoded prompts, our own RTP stream).
//!
//! Forwarding receives into a buffer on the task's stack and sends the same bytes on:
//! no copy of the payload and no allocation per packet. Each side latches onto the
//! address its packets really come from (symmetric RTP), so phones behind NAT get their
//! audio back; until the first packet, the address from the SDP is used.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::media::{MediaCommand, MediaEvent, SessionId};

mod bridge;
mod local;
mod sound;

use bridge::{bridge, BridgeCtl, BridgeTx};
use local::{local, LocalCmd, LocalMedia, Recording};
use sound::PromptCache;

/// Packet counters of one session, readable by `ctl calls` while the relay writes them.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets from the A party forwarded to B (or echoed back).
    pub a_to_b: AtomicU64,
    /// RTP packets from the B party forwarded to A.
    pub b_to_a: AtomicU64,
}

/// The relay's public face: the SIP task sends commands, `ctl` reads counters.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<MediaCommand>,
    counters: Arc<Mutex<HashMap<SessionId, Arc<Counters>>>>,
}

impl MediaHandle {
    /// Queues a command (never blocks the caller).
    pub fn send(&self, cmd: MediaCommand) {
        let _ = self.tx.send(cmd);
    }

    /// Packets relayed so far in a session, (A to B, B to A).
    pub fn packets(&self, id: SessionId) -> Option<(u64, u64)> {
        let map = self.counters.lock().ok()?;
        let c = map.get(&id)?;
        Some((
            c.a_to_b.load(Ordering::Relaxed),
            c.b_to_a.load(Ordering::Relaxed),
        ))
    }
}

/// Starts the relay; its sockets bind on `ip`; events go to `events`.
pub fn start(ip: IpAddr, events: mpsc::UnboundedSender<MediaEvent>) -> MediaHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(run(ip, rx, counters.clone(), events));
    MediaHandle { tx, counters }
}

struct Session {
    /// What changes a bridge: B's address, transcoding, hold.
    bridge: BridgeTx,
    /// Commands for a local session (echo, play).
    local: Option<mpsc::UnboundedSender<LocalCmd>>,
    task: tokio::task::JoinHandle<()>,
    /// A dial from the local session: its B side, bound and waiting for the caller's
    /// sockets, which the local session keeps until B answers.
    dialing: Option<Dialing>,
}

/// The B side of a bridge whose caller is still in its local session.
struct Dialing {
    task: tokio::task::JoinHandle<()>,
    handover: oneshot::Sender<ASide>,
    counters: Arc<Counters>,
}

/// What a local session hands its bridge: the caller's RTP and RTCP sockets and where the
/// caller's RTP was last heard from.
type ASide = ((UdpSocket, UdpSocket), Option<SocketAddr>);

type CounterMap = Arc<Mutex<HashMap<SessionId, Arc<Counters>>>>;

async fn run(
    ip: IpAddr,
    mut rx: mpsc::UnboundedReceiver<MediaCommand>,
    counters: CounterMap,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut sessions: HashMap<SessionId, Session> = HashMap::new();
    let prompts = PromptCache::default();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            MediaCommand::Open {
                id,
                a_port,
                b_port,
                a_remote,
            } => {
                if let Some(s) = sessions.get_mut(&id).filter(|s| s.local.is_some()) {
                    // The caller stays with its local session until B answers. An earlier
                    // dial's B side is gone before this one binds (its port is free again).
                    if let Some(old) = s.dialing.take() {
                        old.task.abort();
                        let _ = old.task.await;
                    }
                    let b = match bind_pair(ip, b_port) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(session = id.0, b_port, error = %e, "cannot bind RTP ports; this call has no audio once answered");
                            continue;
                        }
                    };
                    let (ctl, tx) = BridgeCtl::new(&prompts);
                    let (handover, a_rx) = oneshot::channel();
                    let counters = Arc::new(Counters::default());
                    let c = counters.clone();
                    let task = tokio::spawn(async move {
                        let Some((a, a_remote)) = wait_for_caller(a_rx, &b).await else {
                            return;
                        };
                        bridge(a, b, a_remote, ctl, c).await;
                    });
                    s.bridge = tx;
                    s.dialing = Some(Dialing {
                        task,
                        handover,
                        counters,
                    });
                    continue;
                }
                if let Some(old) = sessions.remove(&id) {
                    old.task.abort();
                    let _ = old.task.await;
                }
                let socks = match bind_pair(ip, a_port)
                    .and_then(|a| Ok((a, bind_pair(ip, b_port)?)))
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, b_port, error = %e, "cannot bind RTP ports; this call has no audio");
                        continue;
                    }
                };
                let c = Arc::new(Counters::default());
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let (ctl, tx) = BridgeCtl::new(&prompts);
                let task = tokio::spawn(bridge(socks.0, socks.1, a_remote, ctl, c));
                sessions.insert(
                    id,
                    Session {
                        bridge: tx,
                        local: None,
                        task,
                        dialing: None,
                    },
                );
            }
            MediaCommand::Local {
                id,
                a_port,
                a_remote,
                pt,
                te_pt,
            } => {
                let (rtp, rtcp) = match bind_pair(ip, a_port) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, error = %e, "cannot bind RTP port");
                        continue;
                    }
                };
                let c = Arc::new(Counters::default());
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let (ltx, lrx) = mpsc::unbounded_channel();
                let media = LocalMedia {
                    pt,
                    te_pt,
                    a_remote,
                    prompts: prompts.clone(),
                };
                let task = tokio::spawn(local(id, (rtp, rtcp), media, lrx, events.clone(), c));
                sessions.insert(
                    id,
                    Session {
                        bridge: BridgeCtl::new(&prompts).1,
                        local: Some(ltx),
                        task,
                        dialing: None,
                    },
                );
            }
            MediaCommand::LocalPeer { id, addr, pt } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Peer(addr, pt));
                }
            }
            MediaCommand::Echo { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Echo);
                }
            }
            MediaCommand::Play {
                id,
                path,
                barge_in,
                seq,
            } => match sessions.get(&id).and_then(|s| s.local.as_ref()) {
                Some(l) => {
                    let _ = l.send(LocalCmd::Play(path, barge_in, seq));
                }
                None => {
                    let _ = events.send(MediaEvent::PlayDone {
                        id,
                        seq,
                        played: false,
                    });
                }
            },
            MediaCommand::Record {
                id,
                path,
                max,
                silence,
                index,
                seq,
            } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Record(Recording::new(
                        path, max, silence, index, seq,
                    )));
                }
            }
            MediaCommand::StopRecord { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::StopRecord);
                }
            }
            MediaCommand::StopPlay { id } => {
                if let Some(l) = sessions.get(&id).and_then(|s| s.local.as_ref()) {
                    let _ = l.send(LocalCmd::Stop);
                }
            }
            MediaCommand::SetRemoteB { id, addr } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.bridge.remote_b.send(Some(addr));
                }
            }
            MediaCommand::Transcode { id, a_pt, b_pt } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.bridge.transcode.send(Some((a_pt, b_pt)));
                }
            }
            MediaCommand::Hold { id, held, music } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.bridge.hold.send(Some((held, music)));
                }
            }
            MediaCommand::Resume { id } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.bridge.hold.send(None);
                }
            }
            MediaCommand::Connect { id } => {
                let Some(s) = sessions.get_mut(&id) else {
                    continue;
                };
                let (Some(d), Some(l)) = (s.dialing.take(), s.local.take()) else {
                    tracing::warn!(session = id.0, "nothing to connect: no bridge waiting");
                    continue;
                };
                let _ = l.send(LocalCmd::Handover(d.handover));
                // The local task ends by itself once it has handed over.
                s.task = d.task;
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, d.counters);
                }
            }
            MediaCommand::CloseB { id } => {
                // Awaited, so the B port is unbound before the endpoint hands it out again.
                if let Some(d) = sessions.get_mut(&id).and_then(|s| s.dialing.take()) {
                    d.task.abort();
                    let _ = d.task.await;
                }
            }
            MediaCommand::Close { id } => {
                if let Some(s) = sessions.remove(&id) {
                    if let Some(d) = s.dialing {
                        d.task.abort();
                        let _ = d.task.await;
                    }
                    match s.local {
                        // A local session ends by itself, saving a recording under way.
                        Some(l) if l.send(LocalCmd::Close).is_ok() => {}
                        _ => s.task.abort(),
                    }
                }
                if let Ok(mut m) = counters.lock() {
                    m.remove(&id);
                }
            }
        }
    }
}

/// Until the local session hands the caller's sockets over: B's packets (early media,
/// which a caller already answered does not hear) are read and dropped, so the bridge
/// does not start with a backlog of them. `None` if the local session ended instead.
async fn wait_for_caller(
    mut a: oneshot::Receiver<ASide>,
    (b_rtp, b_rtcp): &(UdpSocket, UdpSocket),
) -> Option<ASide> {
    let (mut buf, mut cbuf) = ([0u8; 2048], [0u8; 2048]);
    loop {
        tokio::select! {
            r = &mut a => return r.ok(),
            _ = b_rtp.recv_from(&mut buf) => {}
            _ = b_rtcp.recv_from(&mut cbuf) => {}
        }
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let bind = |p: u16| -> std::io::Result<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(ip, p))?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s)
    };
    Ok((bind(port)?, bind(port + 1)?))
}
