//! A bridge between two parties: RTP and RTCP relayed both ways without a copy, each side
//! latched to where its packets come from, G.711 converted when the laws differ, and on
//! hold the held party's music played in place of the other's audio. Owns its sockets;
//! changes arrive on its watch channels.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::sound::{frame_ticker, load_off_task, Packetiser, PromptCache, FRAME};
use super::Counters;
use crate::media::{g711, Party};

/// RTCP goes to the port above the RTP one unless latched otherwise (RFC 3550 §11).
pub(super) fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

/// What the SIP side changes in a running bridge, and the music it may play.
pub(super) struct BridgeCtl {
    /// Where B wants RTP, from its SDP (until latched).
    b_sdp: watch::Receiver<Option<SocketAddr>>,
    /// G.711 conversion (A's payload type, B's).
    transcode: watch::Receiver<Option<(u8, u8)>>,
    /// The party on hold and its music.
    hold: watch::Receiver<Option<(Party, std::path::PathBuf)>>,
    prompts: PromptCache,
}

/// The session's ends of a bridge's watch channels.
pub(super) struct BridgeTx {
    pub(super) remote_b: watch::Sender<Option<SocketAddr>>,
    pub(super) transcode: watch::Sender<Option<(u8, u8)>>,
    pub(super) hold: watch::Sender<Option<(Party, std::path::PathBuf)>>,
}

impl BridgeCtl {
    /// A bridge's controls, and the senders the session keeps.
    pub(super) fn new(prompts: &PromptCache) -> (Self, BridgeTx) {
        let (remote_b, b_sdp) = watch::channel(None);
        let (transcode, tc) = watch::channel(None);
        let (hold, held) = watch::channel(None);
        let ctl = Self {
            b_sdp,
            transcode: tc,
            hold: held,
            prompts: prompts.clone(),
        };
        let tx = BridgeTx {
            remote_b,
            transcode,
            hold,
        };
        (ctl, tx)
    }
}

/// The last G.711 payload type a party sent: what it is spoken to in (music on hold).
fn note_law(pkt: &[u8], law: &mut Option<u8>) {
    if let Some(&b) = pkt.get(1) {
        if matches!(b & 0x7f, 0 | 8) {
            *law = Some(b & 0x7f);
        }
    }
}

/// Music on hold playing to one party of a bridge.
struct Held {
    party: Party,
    music: Option<Arc<[i16]>>,
    pos: usize,
}

pub(super) async fn bridge(
    a: (UdpSocket, UdpSocket),
    b: (UdpSocket, UdpSocket),
    a_sdp: Option<SocketAddr>,
    ctl: BridgeCtl,
    c: Arc<Counters>,
) {
    let BridgeCtl {
        mut b_sdp,
        mut transcode,
        mut hold,
        prompts,
    } = ctl;
    let mut tc: Option<(u8, u8)> = None;
    let (a_rtp, a_rtcp) = a;
    let (b_rtp, b_rtcp) = b;
    // Where to send to each side: from SDP until the side's own packets say otherwise.
    let mut to_a = a_sdp;
    let mut to_a_rtcp = a_sdp.map(rtcp_of);
    let mut to_b: Option<SocketAddr> = None;
    let mut to_b_rtcp: Option<SocketAddr> = None;
    let (mut a_latched, mut b_latched) = (false, false);
    // While on hold nothing is relayed either way: the held party hears our music (in the
    // law it speaks), the holder nothing (it asked for nothing).
    let mut held: Option<Held> = None;
    let (mut a_law, mut b_law) = (None, None);
    let mut music = Packetiser::new();
    let mut tick = frame_ticker();
    let mut buf_a = [0u8; 2048];
    let mut buf_b = [0u8; 2048];
    let mut buf_ac = [0u8; 2048];
    let mut buf_bc = [0u8; 2048];
    loop {
        tokio::select! {
            r = a_rtp.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                if !a_latched { to_a = Some(from); a_latched = true; }
                note_law(&buf_a[..n], &mut a_law);
                if let (Some(dst), None) = (to_b, &held) {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_a[..n], a_pt, b_pt);
                    }
                    let _ = b_rtp.try_send_to(&buf_a[..n], dst);
                    c.a_to_b.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = b_rtp.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                if !b_latched { to_b = Some(from); b_latched = true; }
                note_law(&buf_b[..n], &mut b_law);
                if let (Some(dst), None) = (to_a, &held) {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_b[..n], b_pt, a_pt);
                    }
                    let _ = a_rtp.try_send_to(&buf_b[..n], dst);
                    c.b_to_a.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = a_rtcp.recv_from(&mut buf_ac) => {
                let Ok((n, from)) = r else { continue };
                to_a_rtcp = Some(from);
                if let (Some(dst), None) = (to_b_rtcp, &held) { let _ = b_rtcp.try_send_to(&buf_ac[..n], dst); }
            }
            r = b_rtcp.recv_from(&mut buf_bc) => {
                let Ok((n, from)) = r else { continue };
                to_b_rtcp = Some(from);
                if let (Some(dst), None) = (to_a_rtcp, &held) { let _ = a_rtcp.try_send_to(&buf_bc[..n], dst); }
            }
            _ = tick.tick(), if held.is_some() => {
                let Some(h) = held.as_mut() else { continue };
                let Some(samples) = h.music.as_deref().filter(|m| !m.is_empty()) else { continue };
                if h.pos >= samples.len() {
                    h.pos = 0;
                }
                // The held party's own law; through a transcoding bridge, its side's.
                let (dst, sock, law, counter) = match h.party {
                    Party::A => (to_a, &a_rtp, tc.map(|t| t.0).or(a_law).or(b_law), &c.b_to_a),
                    Party::B => (to_b, &b_rtp, tc.map(|t| t.1).or(b_law).or(a_law), &c.a_to_b),
                };
                let pkt = music.frame(&samples[h.pos..], law.unwrap_or(0));
                h.pos += FRAME;
                if let Some(dst) = dst {
                    let _ = sock.try_send_to(pkt, dst);
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            ch = hold.changed() => {
                if ch.is_err() { return; }
                let now = hold.borrow_and_update().clone();
                held = match now {
                    Some((party, path)) => {
                        // Read (once, then from the cache) while nothing is relayed anyway.
                        let music = load_off_task(&prompts, path).await;
                        tick.reset();
                        Some(Held { party, music, pos: 0 })
                    }
                    None => None,
                };
            }
            ch = transcode.changed() => {
                if ch.is_err() { return; }
                tc = *transcode.borrow();
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
