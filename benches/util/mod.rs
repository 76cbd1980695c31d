//! What the hand-timed benches share: whether `cargo bench` runs them (a full
//! measurement) or `cargo test --all-targets` does (a short run that only proves the bench
//! still works), and free RTP port pairs.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// True under `cargo bench`, which passes `--bench`; `cargo test` passes nothing.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `n` distinct ports each of whose pair (RTP, RTCP) is free now, below the kernel's ephemeral range
/// (32768 and up), so no outgoing socket of another process is handed it meanwhile; the
/// test harness uses 21000-32699, so benches take 20000-20999.
pub fn free_pairs(n: usize) -> Vec<u16> {
    let start = (std::process::id() % 250) as u16;
    let found: Vec<u16> = (0..250u16)
        .map(|i| 20_000 + (start + i) % 250 * 4)
        .filter(|&p| {
            UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        })
        .take(n)
        .collect();
    assert_eq!(found.len(), n, "no {n} free RTP port pairs in 20000-20999");
    found
}

/// Panics with `what` once `deadline` has passed, so a bench loop that stops making
/// progress ends instead of hanging the run.
pub fn before(deadline: Instant, what: &str) {
    assert!(
        Instant::now() < deadline,
        "{what}: no progress before the deadline"
    );
}

/// A deadline `secs` from now.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}
