//! The relay's forward path allocates nothing per packet (README, BENCHMARKS.md): packets
//! relayed through a real bridge of two legs on loopback, same law and transcoding, with
//! every heap allocation in the process counted. The bench measures the same path for speed; this
//! test holds the claim.

// Counting allocations needs a global allocator, which is unsafe to implement; the
// library itself forbids unsafe code.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use switchboard::media::{BridgeKey, LegKey, MediaCommand, Tech};

mod common;

mod alloc_count;

/// Sends `n` packets one at a time from `tx` through the relay at `to` and reads each at
/// `rx`, so the count is not blurred by loss; returns the allocations meanwhile and the
/// payload type of the last packet received.
fn relay_n(tx: &UdpSocket, to: std::net::SocketAddr, rx: &UdpSocket, n: u16) -> (u64, u8) {
    let mut buf = [0u8; 2048];
    let mut pt = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let a0 = alloc_count::allocations();
    for seq in 0..n {
        let pkt = alloc_count::rtp(0, seq);
        loop {
            assert!(Instant::now() < deadline, "the relay stopped forwarding");
            tx.send_to(&pkt, to).unwrap();
            if let Ok(len) = rx.recv(&mut buf) {
                assert_eq!(len, pkt.len());
                pt = buf[1] & 0x7f;
                break;
            }
        }
    }
    (alloc_count::allocations() - a0, pt)
}

#[test]
fn the_relay_forwards_and_transcodes_without_allocating_per_packet() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    // The counter sees allocations at all (a positive control).
    let before = alloc_count::allocations();
    std::hint::black_box(vec![0u8; 64]);
    assert!(alloc_count::allocations() > before);
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let relay = switchboard::driver::media::start("127.0.0.1".parse().unwrap(), ev_tx);
    for (id, transcode) in [(1u64, false), (2, true)] {
        let sock = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s
        };
        let (a, b) = (sock(), sock());
        let ports: u16 = common::rtp_range()
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (la, lb, bridge) = (LegKey(2 * id), LegKey(2 * id + 1), BridgeKey(id));
        for (leg, port, remote, pt) in [
            (la, ports, a.local_addr().unwrap(), 0),
            (
                lb,
                ports + 2,
                b.local_addr().unwrap(),
                if transcode { 8 } else { 0 },
            ),
        ] {
            relay.send(MediaCommand::LegOpen {
                leg,
                port,
                remote: Some(remote),
                pt: Some(pt),
                keys: None,
            });
        }
        relay.send(MediaCommand::BridgeOpen {
            bridge,
            tech: Tech::Relay,
        });
        relay.send(MediaCommand::BridgeJoin { bridge, leg: la });
        relay.send(MediaCommand::BridgeJoin { bridge, leg: lb });
        let to = format!("127.0.0.1:{ports}").parse().unwrap();
        // Warm up: latching, the first buffers, page faults.
        let (_, pt) = relay_n(&a, to, &b, 200);
        assert_eq!(pt, if transcode { 8 } else { 0 }, "the relay's own rewrite");
        let (allocs, _) = relay_n(&a, to, &b, 5_000);
        // The test thread's own sends and receives allocate nothing either, so any
        // allocation here is the relay's; a handful over 5,000 packets would be the
        // runtime's own housekeeping, one per packet would be thousands.
        assert!(
            allocs < 50,
            "{allocs} allocations while relaying 5,000 packets (transcoding: {transcode})"
        );
        relay.send(MediaCommand::LegClose { leg: la });
        relay.send(MediaCommand::LegClose { leg: lb });
        relay.send(MediaCommand::BridgeClose { bridge });
    }
}
