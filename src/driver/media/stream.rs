//! What one party hears from us, as one RTP stream (RFC 3550 §5.1): a single SSRC whose
//! sequence numbers and timestamps run on across every change of source (another party
//! relayed, our prompts and music, a party transferred in), as a B2BUA's media should.
//! Relayed packets keep their own pacing and order, shifted onto the stream; at each
//! change the stream goes on one number and the time elapsed later, with the marker bit
//! set. Without it a phone's jitter buffer meets a new stream at every change, and one
//! coming back "from the past" after a hold (the held party's own numbers, older than
//! the music's) is dropped as too old: the caller hears nothing once resumed.
//!
//! Sans-IO: packets in, rewritten in place, with `now`. Owns the leg's outgoing
//! numbering only; RTCP is relayed as it is.

use std::time::{Duration, Instant};

/// One 20 ms frame at 8 kHz, in RTP timestamp units.
const FRAME_TS: u32 = 160;

/// A party's incoming stream, as we send it.
#[derive(Debug)]
pub(in crate::driver) struct OutStream {
    ssrc: u32,
    /// The last packet sent: its sequence number, timestamp, and when.
    seq: u16,
    ts: u32,
    at: Option<Instant>,
    /// The relayed source mapped onto the stream now, if one is.
    source: Option<Source>,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq_off: u16,
    ts_off: u32,
}

impl OutStream {
    pub(super) fn new() -> Self {
        Self {
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
            at: None,
            source: None,
        }
    }

    /// How far the timestamp moves for a packet after a change of source at `now`: the
    /// time since the last packet went (a frame if that is less, or if none went yet).
    fn step(&self, now: Instant) -> u32 {
        let gap = self
            .at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        // A frame's worth of pacing jitter is not a gap.
        if gap < Duration::from_millis(30) {
            FRAME_TS
        } else {
            (gap.as_micros() as u64 * 8 / 1000).min(u64::from(u32::MAX / 2)) as u32
        }
    }

    /// Our own next frame (a prompt's or music's) at `now`: its sequence number,
    /// timestamp and SSRC, and whether it starts anew after a relayed source.
    pub(super) fn own(&mut self, now: Instant) -> (u16, u32, u32, bool) {
        let changed = self.source.take().is_some();
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.step(now));
        self.at = Some(now);
        (self.seq, self.ts, self.ssrc, changed)
    }

    /// Rewrites relayed packet `pkt` (another party's, or the same after a change) in
    /// place onto the stream at `now`. Anything shorter than an RTP header, or not RTP
    /// version 2, passes as it is.
    pub(super) fn relay(&mut self, pkt: &mut [u8], now: Instant) {
        if pkt.len() < 12 || pkt[0] >> 6 != 2 {
            return;
        }
        let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
        let ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
        let src = match self.source {
            Some(s) if s.ssrc == ssrc => s,
            _ => {
                // A new source (or the same one back after our own frames): it goes on
                // from where the stream is.
                let next_seq = self.seq.wrapping_add(1);
                let next_ts = self.ts.wrapping_add(self.step(now));
                let s = Source {
                    ssrc,
                    seq_off: next_seq.wrapping_sub(seq),
                    ts_off: next_ts.wrapping_sub(ts),
                };
                self.source = Some(s);
                pkt[1] |= 0x80;
                s
            }
        };
        let (seq, ts) = (seq.wrapping_add(src.seq_off), ts.wrapping_add(src.ts_off));
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&ts.to_be_bytes());
        pkt[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        // A late packet (reordered) keeps its place; the stream's end is the newest.
        if seq.wrapping_sub(self.seq) < 0x8000 {
            self.seq = seq;
            self.ts = ts;
        }
        self.at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend([0xFF; 160]);
        p
    }

    fn fields(p: &[u8]) -> (bool, u16, u32, u32) {
        (
            p[1] & 0x80 != 0,
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        )
    }

    /// Relays `n` packets of a source from (`seq`, `ts`), 20 ms apart from `t`.
    fn relay_run(
        out: &mut OutStream,
        t: &mut Instant,
        (seq, ts, ssrc): (u16, u32, u32),
        n: u16,
    ) -> Vec<(bool, u16, u32, u32)> {
        (0..n)
            .map(|i| {
                let mut p = packet(
                    seq.wrapping_add(i),
                    ts.wrapping_add(u32::from(i) * 160),
                    ssrc,
                );
                *t += Duration::from_millis(20);
                out.relay(&mut p, *t);
                fields(&p)
            })
            .collect()
    }

    #[test]
    fn every_source_goes_on_one_stream_numbered_on_without_a_step_back() {
        let mut out = OutStream::new();
        let mut t = Instant::now();
        let mut seen = relay_run(&mut out, &mut t, (65530, u32::MAX - 300, 0xB0B), 10);
        // Music on hold: our own frames, 20 ms apart, for 3 s.
        for _ in 0..150 {
            t += Duration::from_millis(20);
            let (seq, ts, ssrc, _) = out.own(t);
            seen.push((false, seq, ts, ssrc));
        }
        // The held party back, its numbers where they were (it sent nothing meanwhile),
        // then another party 1 s of silence later.
        seen.extend(relay_run(&mut out, &mut t, (5, u32::MAX - 140, 0xB0B), 10));
        t += Duration::from_secs(1);
        seen.extend(relay_run(&mut out, &mut t, (40000, 7, 0xCA01), 10));
        let ssrc = seen[0].3;
        assert!(seen.iter().all(|s| s.3 == ssrc), "one SSRC");
        for w in seen.windows(2) {
            let ((_, s0, t0, _), (_, s1, t1, _)) = (w[0], w[1]);
            assert_eq!(s1, s0.wrapping_add(1), "{w:?}");
            let step = t1.wrapping_sub(t0);
            assert!(step == 160 || step == 8160, "{w:?}");
        }
        // The marker bit where a source starts: the first packet, the return, Carol.
        let marked: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].0).collect();
        assert_eq!(marked, [0, 160, 170]);
    }

    #[test]
    fn a_late_packet_keeps_its_place_and_the_source_its_own_pacing() {
        let mut out = OutStream::new();
        let t = Instant::now();
        let mut a = packet(100, 1000, 1);
        out.relay(&mut a, t);
        let (mut c, mut b) = (packet(102, 1320, 1), packet(101, 1160, 1));
        out.relay(&mut c, t + Duration::from_millis(40));
        out.relay(&mut b, t + Duration::from_millis(45));
        let (a, b, c) = (fields(&a), fields(&b), fields(&c));
        assert_eq!((b.1.wrapping_sub(a.1), c.1.wrapping_sub(a.1)), (1, 2));
        assert_eq!((b.2.wrapping_sub(a.2), c.2.wrapping_sub(a.2)), (160, 320));
        assert!(!b.0 && !c.0, "no change of source");
        // The stream goes on after the newest, not the late one.
        let (seq, ts, _, changed) = out.own(t + Duration::from_millis(60));
        assert_eq!(
            (seq, ts.wrapping_sub(c.2), changed),
            (c.1.wrapping_add(1), 160, true)
        );
    }

    #[test]
    fn a_change_after_a_pause_is_as_late_as_the_pause_and_a_bare_header_is_rtp_too() {
        let mut out = OutStream::new();
        let t = Instant::now();
        let (_, ts0, _, _) = out.own(t);
        // 30 ms is a pause, not pacing jitter: 240 samples on, not a frame.
        let mut p = packet(9, 9, 9);
        p.truncate(12);
        out.relay(&mut p, t + Duration::from_millis(30));
        let (marked, _, ts, ssrc) = fields(&p);
        assert!(marked);
        assert_eq!((ts.wrapping_sub(ts0), ssrc), (240, out.ssrc));
        // Exactly half the sequence space ahead is behind: the stream's end stays.
        let mut far = packet(9u16.wrapping_add(0x8000), 9, 9);
        let before = (out.seq, out.ts);
        out.relay(&mut far, t + Duration::from_millis(50));
        assert_eq!((out.seq, out.ts), before);
    }

    #[test]
    fn what_is_not_rtp_passes_as_it_is() {
        let mut out = OutStream::new();
        for mut p in [vec![0x80; 11], {
            let mut p = packet(1, 2, 3);
            p[0] = 0x40;
            p
        }] {
            let before = p.clone();
            out.relay(&mut p, Instant::now());
            assert_eq!(p, before);
        }
    }
}
