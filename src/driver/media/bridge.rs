//! A relay bridge: the legs it holds, and with two of them RTP and RTCP relayed both ways
//! without a copy, G.711 converted when their laws differ. The keys of a leg listened to
//! (RFC 4733 events) are reported as they pass, for feature codes. A leg alone in it (its party
//! put the other on hold) is read and nobody hears it, so no backlog waits for the
//! other's return. Owns its members' sockets; changes arrive on its channel.

use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};

use super::LegMedia;
use crate::media::{g711, Keys, LegKey, MediaEvent};

/// What the engine changes in a running bridge.
pub(super) enum BridgeCmd {
    /// A leg's sockets, to relay.
    Join(Box<LegMedia>),
    /// Give a leg's sockets back.
    Leave(LegKey, oneshot::Sender<Box<LegMedia>>),
    /// A leg is closed: drop its sockets.
    Drop(LegKey),
    /// Where a leg's party wants RTP, from its SDP.
    Remote(LegKey, SocketAddr),
    /// A leg's law.
    Law(LegKey, u8),
    /// How a leg's keys come, if they are listened for.
    Keys(LegKey, Option<Keys>),
}

pub(super) async fn bridge(
    mut cmds: mpsc::UnboundedReceiver<BridgeCmd>,
    events: mpsc::UnboundedSender<MediaEvent>,
) {
    let mut members: Vec<Box<LegMedia>> = Vec::with_capacity(2);
    loop {
        let cmd = match &mut members[..] {
            [a, b] => relay(a, b, &mut cmds, &events).await,
            [one] => alone(one, &mut cmds, &events).await,
            _ => cmds.recv().await,
        };
        // The engine dropped the bridge: its legs' sockets close with it.
        let Some(cmd) = cmd else { return };
        let find = |members: &mut Vec<Box<LegMedia>>, leg: LegKey| {
            members.iter().position(|m| m.key == leg)
        };
        match cmd {
            BridgeCmd::Join(m) => members.push(m),
            BridgeCmd::Leave(leg, back) => {
                if let Some(i) = find(&mut members, leg) {
                    let _ = back.send(members.swap_remove(i));
                }
            }
            BridgeCmd::Drop(leg) => {
                if let Some(i) = find(&mut members, leg) {
                    members.swap_remove(i);
                }
            }
            BridgeCmd::Remote(leg, addr) => {
                if let Some(i) = find(&mut members, leg) {
                    members[i].set_remote(addr);
                }
            }
            BridgeCmd::Law(leg, pt) => {
                if let Some(i) = find(&mut members, leg) {
                    members[i].pt = Some(pt);
                }
            }
            BridgeCmd::Keys(leg, keys) => {
                if let Some(i) = find(&mut members, leg) {
                    members[i].keys = keys;
                }
            }
        }
    }
}

/// Relays between two legs until a command comes, and returns it.
async fn relay(
    a: &mut LegMedia,
    b: &mut LegMedia,
    cmds: &mut mpsc::UnboundedReceiver<BridgeCmd>,
    events: &mpsc::UnboundedSender<MediaEvent>,
) -> Option<BridgeCmd> {
    // Converted only where both laws are known and differ; anything else passes as is.
    let tc = match (a.pt, b.pt) {
        (Some(x), Some(y)) if x != y => Some((x, y)),
        _ => None,
    };
    let mut buf_a = [0u8; 2048];
    let mut buf_b = [0u8; 2048];
    let mut buf_ac = [0u8; 2048];
    let mut buf_bc = [0u8; 2048];
    loop {
        tokio::select! {
            r = a.rtp.recv_from(&mut buf_a) => {
                let Ok((n, from)) = r else { continue };
                a.heard(&buf_a[..n], from);
                if let Some(digit) = a.key(&buf_a[..n]) {
                    let _ = events.send(MediaEvent::Digit { leg: a.key, digit });
                }
                if let Some(dst) = b.to {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_a[..n], a_pt, b_pt);
                    }
                    b.out.relay(&mut buf_a[..n], std::time::Instant::now());
                    let _ = b.rtp.try_send_to(&buf_a[..n], dst);
                }
            }
            r = b.rtp.recv_from(&mut buf_b) => {
                let Ok((n, from)) = r else { continue };
                b.heard(&buf_b[..n], from);
                if let Some(digit) = b.key(&buf_b[..n]) {
                    let _ = events.send(MediaEvent::Digit { leg: b.key, digit });
                }
                if let Some(dst) = a.to {
                    if let Some((a_pt, b_pt)) = tc {
                        g711::transcode_rtp(&mut buf_b[..n], b_pt, a_pt);
                    }
                    a.out.relay(&mut buf_b[..n], std::time::Instant::now());
                    let _ = a.rtp.try_send_to(&buf_b[..n], dst);
                }
            }
            r = a.rtcp.recv_from(&mut buf_ac) => {
                let Ok((n, from)) = r else { continue };
                a.heard_rtcp(from);
                if let Some(dst) = b.to_rtcp { let _ = b.rtcp.try_send_to(&buf_ac[..n], dst); }
            }
            r = b.rtcp.recv_from(&mut buf_bc) => {
                let Ok((n, from)) = r else { continue };
                b.heard_rtcp(from);
                if let Some(dst) = a.to_rtcp { let _ = a.rtcp.try_send_to(&buf_bc[..n], dst); }
            }
            cmd = cmds.recv() => return cmd,
        }
    }
}

/// Reads a lone leg (noting where it is, what it speaks and its keys) until a command
/// comes.
async fn alone(
    m: &mut LegMedia,
    cmds: &mut mpsc::UnboundedReceiver<BridgeCmd>,
    events: &mpsc::UnboundedSender<MediaEvent>,
) -> Option<BridgeCmd> {
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u8; 2048];
    loop {
        tokio::select! {
            r = m.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                m.heard(&buf[..n], from);
                if let Some(digit) = m.key(&buf[..n]) {
                    let _ = events.send(MediaEvent::Digit { leg: m.key, digit });
                }
            }
            r = m.rtcp.recv_from(&mut cbuf) => {
                if let Ok((_, from)) = r { m.heard_rtcp(from); }
            }
            cmd = cmds.recv() => return cmd,
        }
    }
}
