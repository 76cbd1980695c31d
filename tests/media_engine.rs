//! The media engine's legs and bridges over real sockets on loopback: a leg's sockets
//! move from the leg alone to a bridge and back (hold and resume) without losing where
//! its party is, a bridge relays only while it holds two legs, a third leg is refused,
//! and a closed leg's port is free again.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use switchboard::media::{BridgeKey, Keys, LegKey, MediaCommand, MediaEvent, Tech};

mod common;

/// The media engine on loopback, on a runtime of its own with one worker: the engine,
/// its reports, and the first port of a relay range free for this test.
fn engine() -> (
    tokio::runtime::Runtime,
    switchboard::driver::media::MediaHandle,
    tokio::sync::mpsc::UnboundedReceiver<MediaEvent>,
    u16,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = {
        let _g = rt.enter();
        switchboard::driver::media::start("127.0.0.1".parse().unwrap(), ev_tx)
    };
    let low: u16 = common::rtp_range()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (rt, engine, ev_rx, low)
}

/// A phone's RTP socket on loopback.
fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    s
}

/// An RTP packet: G.711 payload type `pt`, sequence `seq`, 160 bytes of `fill`.
fn rtp(pt: u8, seq: u16, fill: u8) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend(std::iter::repeat_n(fill, 160));
    p
}

/// Packets `rx` receives in `window` (their payload types and first payload bytes) while
/// `tx` sends to `to` every 20 ms, if `tx` is given.
fn exchange(
    tx: Option<(&UdpSocket, SocketAddr, u8)>,
    rx: &UdpSocket,
    window: Duration,
) -> Vec<(u8, u8)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + window;
    let mut seq = 0u16;
    while Instant::now() < end {
        if let Some((s, to, fill)) = tx {
            s.send_to(&rtp(0, seq, fill), to).unwrap();
            seq += 1;
        }
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            if let Ok(n) = rx.recv(&mut buf) {
                if n > 12 {
                    got.push((buf[1] & 0x7f, buf[12]));
                }
            }
        }
    }
    got
}

#[test]
fn legs_move_between_their_own_task_and_a_bridge() {
    let (rt, engine, mut ev_rx, low) = engine();
    let _g = rt.enter();
    let (alice, bob) = (phone(), phone());
    let (la, lb, lc, x) = (LegKey(1), LegKey(2), LegKey(3), BridgeKey(1));
    let port = |l: LegKey| low + 2 * l.0 as u16;
    let ours = |l: LegKey| -> SocketAddr { format!("127.0.0.1:{}", port(l)).parse().unwrap() };
    // Alice's leg knows her from her SDP only; Bob's and Carol's latch onto their packets.
    for (leg, remote) in [
        (la, Some(alice.local_addr().unwrap())),
        (lb, None),
        (lc, None),
    ] {
        engine.send(MediaCommand::LegOpen {
            leg,
            port: port(leg),
            remote,
            pt: None,
            keys: None,
        });
    }
    engine.send(MediaCommand::BridgeOpen {
        bridge: x,
        tech: Tech::Relay,
    });
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: la });
    // Alone in the bridge, Alice is heard by nobody.
    let got = exchange(
        Some((&alice, ours(la), 1)),
        &bob,
        Duration::from_millis(200),
    );
    assert!(got.is_empty(), "{got:?}");
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: lb });
    // Bob speaks first (so his leg latches), then each hears the other.
    let got = exchange(
        Some((&bob, ours(lb), 2)),
        &alice,
        Duration::from_millis(300),
    );
    assert!(
        got.len() >= 10 && got.iter().all(|&p| p == (0, 2)),
        "{got:?}"
    );
    let got = exchange(
        Some((&alice, ours(la), 1)),
        &bob,
        Duration::from_millis(300),
    );
    assert!(
        got.len() >= 10 && got.iter().all(|&p| p == (0, 1)),
        "{got:?}"
    );
    // A third leg is refused: the relay stays between Alice and Bob.
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: lc });
    let got = exchange(
        Some((&alice, ours(la), 1)),
        &bob,
        Duration::from_millis(200),
    );
    assert!(got.len() >= 5, "{got:?}");
    // Bob is put on hold: out of the bridge, he hears music (in his law, PCMA from now),
    // not Alice, whose packets go nowhere.
    let music = std::fs::canonicalize("sounds/moh/default.wav").unwrap();
    engine.send(MediaCommand::LegLaw { leg: lb, pt: 8 });
    engine.send(MediaCommand::BridgeLeave { bridge: x, leg: lb });
    engine.send(MediaCommand::Music {
        leg: lb,
        path: music,
    });
    std::thread::sleep(Duration::from_millis(200));
    // What Bob was sent before the hold and has not read is not the hold's doing.
    while bob.recv(&mut [0u8; 2048]).is_ok() {}
    let got = exchange(Some((&alice, ours(la), 1)), &bob, Duration::from_secs(1));
    let music_packets = got.iter().filter(|p| p.0 == 8).count();
    assert!(
        (40..=60).contains(&music_packets) && !got.contains(&(0, 1)),
        "{music_packets} music packets in 1 s: {got:?}"
    );
    // Resumed: the music stops and the two hear each other again, with no backlog of
    // what Alice said meanwhile.
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: lb });
    std::thread::sleep(Duration::from_millis(100));
    while bob.recv(&mut [0u8; 2048]).is_ok() {}
    let got = exchange(
        Some((&alice, ours(la), 3)),
        &bob,
        Duration::from_millis(300),
    );
    assert!(
        got.len() >= 10 && got.iter().all(|&p| p == (0, 3)),
        "{got:?}"
    );
    let got = exchange(
        Some((&bob, ours(lb), 4)),
        &alice,
        Duration::from_millis(300),
    );
    assert!(
        got.len() >= 10 && got.iter().all(|&p| p == (0, 4)),
        "{got:?}"
    );
    // Closing frees the ports (the engine binds them again for a new leg at once).
    for leg in [la, lb, lc] {
        engine.send(MediaCommand::LegClose { leg });
    }
    engine.send(MediaCommand::BridgeClose { bridge: x });
    let again = LegKey(4);
    engine.send(MediaCommand::LegOpen {
        leg: again,
        port: port(la),
        remote: Some(alice.local_addr().unwrap()),
        pt: Some(0),
        keys: None,
    });
    engine.send(MediaCommand::Play {
        leg: again,
        path: std::fs::canonicalize("sounds/beep.wav").unwrap(),
        barge_in: false,
        seq: 9,
    });
    let got = exchange(None, &alice, Duration::from_millis(300));
    assert!(!got.is_empty(), "the reopened port plays");
    // A prompt asked of a leg in a bridge is reported at once as not played.
    engine.send(MediaCommand::LegOpen {
        leg: LegKey(5),
        port: port(LegKey(5)),
        remote: None,
        pt: None,
        keys: None,
    });
    engine.send(MediaCommand::BridgeOpen {
        bridge: BridgeKey(2),
        tech: Tech::Relay,
    });
    engine.send(MediaCommand::BridgeJoin {
        bridge: BridgeKey(2),
        leg: LegKey(5),
    });
    engine.send(MediaCommand::Play {
        leg: LegKey(5),
        path: std::fs::canonicalize("sounds/beep.wav").unwrap(),
        barge_in: false,
        seq: 1,
    });
    let events: Vec<MediaEvent> = rt.block_on(async {
        let mut v = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(e)) = tokio::time::timeout_at(end, ev_rx.recv()).await {
            v.push(e);
        }
        v
    });
    assert!(
        events.contains(&MediaEvent::PlayDone {
            leg: LegKey(5),
            seq: 1,
            played: false
        }),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            MediaEvent::PlayDone {
                leg: LegKey(4),
                seq: 9,
                played: true
            }
        )),
        "{events:?}"
    );
}

/// A watched leg whose party sends nothing is reported silent, again each period while it
/// lasts; RTP keeps a leg alive, and so does RTCP alone (a phone sending no audio in
/// silence); a closed leg is no longer watched.
#[test]
fn a_watched_leg_is_reported_silent_and_rtp_or_rtcp_keep_one_alive() {
    let (rt, engine, mut ev_rx, low) = engine();
    let _g = rt.enter();
    let (alice, bob) = (phone(), phone());
    let (la, lb, lc, x) = (LegKey(1), LegKey(2), LegKey(3), BridgeKey(1));
    let port = |l: LegKey| low + 2 * l.0 as u16;
    for leg in [la, lb, lc] {
        engine.send(MediaCommand::LegOpen {
            leg,
            port: port(leg),
            remote: None,
            pt: None,
            keys: None,
        });
    }
    engine.send(MediaCommand::BridgeOpen {
        bridge: x,
        tech: Tech::Relay,
    });
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: la });
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: lb });
    // Carol's leg is alone, echoing: read, but she sends nothing.
    engine.send(MediaCommand::Echo { leg: lc });
    for leg in [la, lb, lc] {
        engine.send(MediaCommand::LegWatch {
            leg,
            after: Duration::from_secs(2),
        });
    }
    // 4.5 s: Alice sends RTP, Bob only RTCP (every 500 ms), Carol nothing.
    let start = Instant::now();
    let mut seq = 0u16;
    let rtcp_b: SocketAddr = format!("127.0.0.1:{}", port(lb) + 1).parse().unwrap();
    let rtp_a: SocketAddr = format!("127.0.0.1:{}", port(la)).parse().unwrap();
    while start.elapsed() < Duration::from_millis(4500) {
        alice.send_to(&rtp(0, seq, 1), rtp_a).unwrap();
        if seq % 25 == 0 {
            // An RTCP receiver report with no blocks.
            bob.send_to(&[0x80, 201, 0, 1, 0, 0, 0, 9], rtcp_b).unwrap();
        }
        seq = seq.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut silent = Vec::new();
    while let Ok(ev) = ev_rx.try_recv() {
        if let MediaEvent::Inactive { leg } = ev {
            silent.push(leg);
        }
    }
    // Carol once or twice (at 2 to 3 s, and again 2 s later), never Alice or Bob.
    assert!(
        (1..=2).contains(&silent.len()) && silent.iter().all(|&l| l == lc),
        "{silent:?}"
    );
    engine.send(MediaCommand::LegClose { leg: lc });
    std::thread::sleep(Duration::from_millis(2500));
    let mut after_close = Vec::new();
    while let Ok(ev) = ev_rx.try_recv() {
        if let MediaEvent::Inactive { leg } = ev {
            after_close.push(leg);
        }
    }
    // (Alice and Bob have fallen silent too by now; Carol is gone.)
    assert!(!after_close.contains(&lc), "{after_close:?}");
}

/// An RFC 4733 event packet: key `event`, RTP timestamp `ts`, ending or not.
fn key_event(pt: u8, seq: u16, ts: u32, event: u8, end: bool) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend([event, if end { 0x80 | 10 } else { 10 }, 0, 160]);
    p
}

/// Keys pressed on a bridged leg that is listened to are reported once per press (its
/// end packets sent three times, as RFC 4733 has it) and still reach the other party;
/// the other leg, not listened to, reports nothing; a leg told to stop listening stops.
#[test]
fn a_bridge_reports_the_keys_of_a_leg_listened_to_and_relays_them() {
    let (rt, engine, mut ev_rx, low) = engine();
    let _g = rt.enter();
    let (alice, bob) = (phone(), phone());
    let (la, lb, x) = (LegKey(1), LegKey(2), BridgeKey(1));
    let port = |l: LegKey| low + 2 * l.0 as u16;
    let ours = |l: LegKey| -> SocketAddr { format!("127.0.0.1:{}", port(l)).parse().unwrap() };
    for (leg, remote) in [
        (la, alice.local_addr().unwrap()),
        (lb, bob.local_addr().unwrap()),
    ] {
        engine.send(MediaCommand::LegOpen {
            leg,
            port: port(leg),
            remote: Some(remote),
            pt: Some(0),
            keys: None,
        });
    }
    engine.send(MediaCommand::BridgeOpen {
        bridge: x,
        tech: Tech::Relay,
    });
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: la });
    engine.send(MediaCommand::BridgeJoin { bridge: x, leg: lb });
    engine.send(MediaCommand::LegKeys {
        leg: la,
        keys: Some(Keys::Events(101)),
    });
    std::thread::sleep(Duration::from_millis(100));
    // Alice presses #, #, 7 (each: a start, a middle, three ends); Bob presses 5.
    let mut seq = 0u16;
    let mut press = |from: &UdpSocket, to: SocketAddr, ts: u32, event: u8| {
        for end in [false, false, true, true, true] {
            from.send_to(&key_event(101, seq, ts, event, end), to)
                .unwrap();
            seq += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    press(&alice, ours(la), 1000, 11);
    press(&alice, ours(la), 3000, 11);
    press(&bob, ours(lb), 4000, 5);
    press(&alice, ours(la), 5000, 7);
    std::thread::sleep(Duration::from_millis(100));
    let digits = |ev_rx: &mut tokio::sync::mpsc::UnboundedReceiver<MediaEvent>| {
        let mut got = Vec::new();
        while let Ok(ev) = ev_rx.try_recv() {
            if let MediaEvent::Digit { leg, digit } = ev {
                got.push((leg, digit));
            }
        }
        got
    };
    assert_eq!(digits(&mut ev_rx), [(la, '#'), (la, '#'), (la, '7')]);
    // Bob received all 15 of Alice's event packets, as they were sent.
    let mut buf = [0u8; 2048];
    let mut relayed = 0;
    while let Ok(n) = bob.recv(&mut buf) {
        relayed += usize::from(n == 16 && buf[1] & 0x7f == 101);
    }
    assert_eq!(relayed, 15);
    engine.send(MediaCommand::LegKeys {
        leg: la,
        keys: None,
    });
    std::thread::sleep(Duration::from_millis(50));
    press(&alice, ours(la), 7000, 3);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(digits(&mut ev_rx), []);
}
