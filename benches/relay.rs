//! The RTP relay's forward path on real loopback sockets: nanoseconds and heap
//! allocations per relayed packet, same-law and with G.711 transcoding, against the bare
//! kernel path (socket to socket, no relay) measured in the same run.
//! `cargo bench --bench relay`; figures go to BENCHMARKS.md.

// Counting allocations needs a global allocator, which is unsafe to implement; the
// library itself forbids unsafe code.
#![allow(unsafe_code)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use switchboard::media::{BridgeKey, LegKey, MediaCommand, Tech};

mod util;

#[path = "../tests/alloc_count/mod.rs"]
mod alloc_count;

/// Packets per measurement: the full count under `cargo bench`, a few under `cargo test`.
fn packets() -> usize {
    if util::measuring() {
        50_000
    } else {
        2_000
    }
}
const BURST: usize = 32;

/// Sends PACKETS in bursts from `tx` to `to` and reads them at `rx`; returns ns/packet
/// and allocations/packet over the whole process. Panics if the packets stop arriving.
fn pump(tx: &UdpSocket, to: std::net::SocketAddr, rx: &UdpSocket) -> (f64, f64) {
    let mut buf = [0u8; 2048];
    let total = packets();
    let deadline = util::deadline(60);
    let a0 = alloc_count::allocations();
    let t0 = Instant::now();
    let mut got = 0;
    let mut seq = 0u16;
    while got < total {
        util::before(deadline, "relaying");
        for _ in 0..BURST {
            seq = seq.wrapping_add(1);
            tx.send_to(&alloc_count::rtp(0, seq), to).unwrap();
        }
        for _ in 0..BURST {
            match rx.recv(&mut buf) {
                Ok(_) => got += 1,
                Err(_) => break,
            }
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / got as f64;
    let allocs = (alloc_count::allocations() - a0) as f64 / got as f64;
    (ns, allocs)
}

fn sock() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let relay = switchboard::driver::media::start("127.0.0.1".parse().unwrap(), ev_tx);

    // Baseline: the kernel alone, A straight to B.
    let (a, b) = (sock(), sock());
    let (base_ns, base_allocs) = pump(&a, b.local_addr().unwrap(), &b);

    let mut results = Vec::new();
    let ports = util::free_pairs(4);
    for (i, (name, transcode)) in [("relay, same law", false), ("relay, PCMU to PCMA", true)]
        .into_iter()
        .enumerate()
    {
        let (a, b) = (sock(), sock());
        let port = ports[2 * i];
        let (la, lb, bridge) = (
            LegKey(2 * i as u64),
            LegKey(2 * i as u64 + 1),
            BridgeKey(i as u64),
        );
        for (leg, port, remote, pt) in [
            (la, port, a.local_addr().unwrap(), 0),
            (
                lb,
                ports[2 * i + 1],
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
        std::thread::sleep(Duration::from_millis(100));
        let to = format!("127.0.0.1:{port}").parse().unwrap();
        // Warm up (latching, page faults), then measure.
        let _ = pump(&a, to, &b);
        let (ns, allocs) = pump(&a, to, &b);
        relay.send(MediaCommand::LegClose { leg: la });
        relay.send(MediaCommand::LegClose { leg: lb });
        relay.send(MediaCommand::BridgeClose { bridge });
        results.push((name, ns, allocs));
    }
    println!(
        "{:<22} {:>10} {:>14} {:>16}",
        "path", "ns/packet", "allocs/packet", "vs kernel alone"
    );
    println!(
        "{:<22} {:>10.0} {:>14.3} {:>16}",
        "kernel alone", base_ns, base_allocs, "1.00"
    );
    for (name, ns, allocs) in results {
        println!(
            "{name:<22} {ns:>10.0} {allocs:>14.3} {:>16.2}",
            ns / base_ns
        );
    }
}
