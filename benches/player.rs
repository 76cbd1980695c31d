//! The prompt player's pacing: plays a long prompt through a real media leg and
//! timestamps every RTP packet as it arrives on a loopback socket. Reports how far the
//! last packet drifted from where 20 ms per packet puts it, and the jitter of the gaps.
//! `PLAYER_SECS=600 cargo bench --bench player` (default 60 s; 2 s when `cargo test`
//! runs it); figures go to BENCHMARKS.md.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use switchboard::media::{LegKey, MediaCommand, MediaEvent};

mod util;

fn main() {
    let secs: u64 = std::env::var("PLAYER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if util::measuring() { 60 } else { 2 });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..(secs * 8000) {
        w.write_sample((3000.0 * (i as f32 * 0.345).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let relay = switchboard::driver::media::start("127.0.0.1".parse().unwrap(), ev_tx);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let leg = LegKey(1);
    relay.send(MediaCommand::LegOpen {
        leg,
        port: util::free_pairs(1)[0],
        remote: Some(rx.local_addr().unwrap()),
        pt: Some(0),
        keys: None,
    });
    relay.send(MediaCommand::Play {
        leg,
        path,
        barge_in: false,
        seq: 1,
    });
    let mut arrivals = Vec::with_capacity((secs * 50) as usize);
    let mut buf = [0u8; 2048];
    let deadline = util::deadline(secs * 2 + 10);
    while let Ok(n) = rx.recv(&mut buf) {
        util::before(deadline, "playing");
        if n >= 12 {
            arrivals.push(Instant::now());
        }
    }
    let done =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), ev_rx.recv()).await });
    assert!(
        matches!(done, Ok(Some(MediaEvent::PlayDone { .. }))),
        "the player reported its end"
    );
    let n = arrivals.len();
    let first = arrivals[0];
    let expected_last = Duration::from_millis(20 * (n as u64 - 1));
    let actual_last = arrivals[n - 1] - first;
    let drift_ms = actual_last.as_secs_f64() * 1000.0 - expected_last.as_secs_f64() * 1000.0;
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let jitter = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    println!("played {secs} s: {n} packets (expected {}), drift of the last packet {drift_ms:+.2} ms, mean gap {mean:.4} ms, jitter (std dev) {jitter:.3} ms, worst gap {worst:.2} ms", secs * 50);
}
