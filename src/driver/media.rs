//! The RTP/RTCP relay: one task per session, owning its sockets; commands arrive from the
//! SIP task over a channel and never block it.
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
use tokio::sync::{mpsc, watch};

use crate::media::{MediaCommand, SessionId};

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

/// Starts the relay; its sockets bind on `ip`.
pub fn start(ip: IpAddr) -> MediaHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(run(ip, rx, counters.clone()));
    MediaHandle { tx, counters }
}

struct Session {
    remote_b: watch::Sender<Option<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

async fn run(
    ip: IpAddr,
    mut rx: mpsc::UnboundedReceiver<MediaCommand>,
    counters: Arc<Mutex<HashMap<SessionId, Arc<Counters>>>>,
) {
    let mut sessions: HashMap<SessionId, Session> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            MediaCommand::Open {
                id,
                a_port,
                b_port,
                a_remote,
            } => {
                let c = Arc::new(Counters::default());
                let socks = match bind_pair(ip, a_port)
                    .and_then(|a| Ok((a, bind_pair(ip, b_port)?)))
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, b_port, error = %e, "cannot bind RTP ports; this call has no audio");
                        continue;
                    }
                };
                let (wtx, wrx) = watch::channel(None);
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let task = tokio::spawn(bridge(socks.0, socks.1, a_remote, wrx, c));
                sessions.insert(
                    id,
                    Session {
                        remote_b: wtx,
                        task,
                    },
                );
            }
            MediaCommand::Echo {
                id,
                a_port,
                a_remote,
            } => {
                let c = Arc::new(Counters::default());
                let (rtp, rtcp) = match bind_pair(ip, a_port) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(session = id.0, a_port, error = %e, "cannot bind RTP port for echo");
                        continue;
                    }
                };
                if let Ok(mut m) = counters.lock() {
                    m.insert(id, c.clone());
                }
                let (wtx, _) = watch::channel(None);
                let task = tokio::spawn(echo(rtp, rtcp, a_remote, c));
                sessions.insert(
                    id,
                    Session {
                        remote_b: wtx,
                        task,
                    },
                );
            }
            MediaCommand::SetRemoteB { id, addr } => {
                if let Some(s) = sessions.get(&id) {
                    let _ = s.remote_b.send(Some(addr));
                }
            }
            MediaCommand::Close { id } => {
                if let Some(s) = sessions.remove(&id) {
                    s.task.abort();
                }
                if let Ok(mut m) = counters.lock() {
                    m.remove(&id);
                }
            }
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

/// RTCP goes to the port above the RTP one unless latched otherwise (RFC 3550 §11).
fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

async fn bridge(
    a: (UdpSocket, UdpSocket),
    b: (UdpSocket, UdpSocket),
    a_sdp: Option<SocketAddr>,
    mut b_sdp: watch::Receiver<Option<SocketAddr>>,
    c: Arc<Counters>,
) {
    let (a_rtp, a_rtcp) = a;
    let (b_rtp, b_rtcp) = b;
    // Where to send to each side: from SDP until the side's own packets say otherwise.
    let mut to_a = a_sdp;
    let mut to_a_rtcp = a_sdp.map(rtcp_of);
    let mut to_b: Option<SocketAddr> = None;
    let mut to_b_rtcp: Option<SocketAddr> = None;
    let (mut a_latched, mut b_latched) = (false, false);
    let mut buf_a = [0u8; 2048];
    let mut buf_b = [0u8; 2048];
    let mut buf_ac = [0u8; 2048];
    let mut buf_bc = [0u8; 2048];
    loop {
        tokio::select! {
            r = a_rtp.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if !a_latched { to_a = Some(from); a_latched = true; }
                if let Some(dst) = to_b {
                    let _ = b_rtp.try_send_to(&buf_a[..n], dst);
                    c.a_to_b.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = b_rtp.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if !b_latched { to_b = Some(from); b_latched = true; }
                if let Some(dst) = to_a {
                    let _ = a_rtp.try_send_to(&buf_b[..n], dst);
                    c.b_to_a.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = a_rtcp.recv_from(&mut buf_ac) => {
                let Ok((n, from)) = r else { continue };
                to_a_rtcp = Some(from);
                if let Some(dst) = to_b_rtcp { let _ = b_rtcp.try_send_to(&buf_ac[..n], dst); }
            }
            r = b_rtcp.recv_from(&mut buf_bc) => {
                let Ok((n, from)) = r else { continue };
                to_b_rtcp = Some(from);
                if let Some(dst) = to_a_rtcp { let _ = a_rtcp.try_send_to(&buf_bc[..n], dst); }
            }
            ch = b_sdp.changed() => {
                if ch.is_err() { return; }
                let addr = *b_sdp.borrow();
                if !b_latched {
                    to_b = addr;
                    to_b_rtcp = addr.map(rtcp_of);
                }
            }
        }
    }
}

async fn echo(rtp: UdpSocket, rtcp: UdpSocket, _sdp: Option<SocketAddr>, c: Arc<Counters>) {
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u8; 2048];
    loop {
        tokio::select! {
            r = rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let _ = rtp.try_send_to(&buf[..n], from);
                c.a_to_b.fetch_add(1, Ordering::Relaxed);
            }
            r = rtcp.recv_from(&mut cbuf) => {
                let Ok((n, from)) = r else { continue };
                let _ = rtcp.try_send_to(&cbuf[..n], from);
            }
        }
    }
}
