//! In-band DTMF: a Goertzel detector for phones that send keys as tones in the audio
//! (no RFC 4733). Sans-IO: 8 kHz samples in, keys out.
//!
//! Each 102-sample block (12.75 ms) is measured at the eight DTMF frequencies. A block
//! holds a key when the strongest row and column tones together carry most of the
//! block's energy, each beats the others of its group by 8 dB, their levels are within
//! the allowed twist, and the signal is loud enough. A key is reported once, after it has
//! held for three consecutive blocks (about 38 ms, inside the 40 ms ITU-T Q.24 minimum),
//! and again only after a gap: speech and music, whose energy is spread or moves, do not
//! pass all of that for long.

const RATE: f32 = 8000.0;
const BLOCK: usize = 102;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Blocks a key must hold before it counts.
const HOLD: u32 = 3;
/// Below this mean square per sample (about -40 dBm0), nothing counts.
const MIN_ENERGY: f32 = 1.0e4;
/// Normal twist (row tone louder than column) and reverse twist allowed, as power ratios.
const TWIST_NORMAL: f32 = 6.3; // 8 dB
const TWIST_REVERSE: f32 = 2.5; // 4 dB
/// How much the winning tone of a group must beat the others (power ratio, 8 dB).
const DOMINANCE: f32 = 6.3;
/// Share of the block's energy the two tones must hold.
const PURITY: f32 = 0.6;

/// The detector's state for one stream.
#[derive(Debug)]
pub struct InbandDtmf {
    coeffs: [f32; 8],
    buf: [f32; BLOCK],
    len: usize,
    candidate: Option<char>,
    held: u32,
    reported: bool,
}

impl Default for InbandDtmf {
    fn default() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(COLS.iter())) {
            // Goertzel at the exact frequency (not the nearest DFT bin: with short blocks
            // the bins fall up to 40 Hz off the DTMF tones).
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / RATE).cos();
        }
        Self {
            coeffs,
            buf: [0.0; BLOCK],
            len: 0,
            candidate: None,
            held: 0,
            reported: false,
        }
    }
}

impl InbandDtmf {
    /// Feeds samples; returns the keys that started in them.
    pub fn samples(&mut self, s: &[i16], out: &mut Vec<char>) {
        for &x in s {
            self.buf[self.len] = f32::from(x);
            self.len += 1;
            if self.len == BLOCK {
                self.len = 0;
                let key = self.block();
                self.track(key, out);
            }
        }
    }

    fn track(&mut self, key: Option<char>, out: &mut Vec<char>) {
        if key.is_some() && key == self.candidate {
            self.held += 1;
        } else {
            self.candidate = key;
            self.held = u32::from(key.is_some());
            self.reported = false;
        }
        if let Some(k) = self.candidate {
            if self.held >= HOLD && !self.reported {
                self.reported = true;
                out.push(k);
            }
        }
    }

    fn power(&self, coeff: f32) -> f32 {
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in &self.buf {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    }

    fn block(&self) -> Option<char> {
        let energy: f32 = self.buf.iter().map(|x| x * x).sum();
        if energy / (BLOCK as f32) < MIN_ENERGY {
            return None;
        }
        let p: Vec<f32> = self.coeffs.iter().map(|&c| self.power(c)).collect();
        let best = |ps: &[f32]| {
            let (i, &m) = ps.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
            ps.iter()
                .enumerate()
                .all(|(j, &v)| j == i || m > v * DOMINANCE)
                .then_some((i, m))
        };
        let (r, pr) = best(&p[..4])?;
        let (c, pc) = best(&p[4..])?;
        // Normal twist: the row (low) tone louder, as lines lose more of the high tones.
        if pr > pc * TWIST_NORMAL || pc > pr * TWIST_REVERSE {
            return None;
        }
        // A tone's Goertzel power is about N/2 times its share of the block's energy.
        let tones = 2.0 * (pr + pc) / BLOCK as f32;
        if tones < PURITY * energy {
            return None;
        }
        Some(KEYS[r][c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as tones: `dbm0` level of each tone, `twist_db` column minus row, `ms` long,
    /// plus white noise at `noise` amplitude, then 60 ms of silence.
    fn key(k: char, dbm0: f32, twist_db: f32, ms: usize, noise: f32, seed: &mut u32) -> Vec<i16> {
        let (r, c) = KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&x| x == k).map(|c| (r, c)))
            .unwrap();
        // 0 dBm0 for G.711 is a sine of amplitude about 22,700 (3.14 dB below full scale).
        let amp = 22_700.0 * 10f32.powf(dbm0 / 20.0);
        let (ar, ac) = (
            amp * 10f32.powf(-twist_db / 40.0),
            amp * 10f32.powf(twist_db / 40.0),
        );
        let n = ms * 8;
        let mut out = Vec::with_capacity(n + 480);
        for i in 0..n + 480 {
            let t = i as f32 / RATE;
            let tone = if i < n {
                ar * (2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                    + ac * (2.0 * std::f32::consts::PI * COLS[c] * t).sin()
            } else {
                0.0
            };
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let nz = ((*seed >> 16) as f32 / 32768.0 - 1.0) * noise;
            out.push((tone + nz).clamp(-32768.0, 32767.0) as i16);
        }
        out
    }

    fn detect(s: &[i16]) -> String {
        let mut d = InbandDtmf::default();
        let mut out = Vec::new();
        // As RTP delivers them: 160 samples at a time.
        for chunk in s.chunks(160) {
            d.samples(chunk, &mut out);
        }
        out.into_iter().collect()
    }

    #[test]
    fn every_key_at_levels_and_twists_with_noise() {
        let mut seed = 1;
        for k in "0123456789*#ABCD".chars() {
            for (level, twist) in [(-3.0, 0.0), (-10.0, 3.0), (-20.0, -6.0), (-30.0, 0.0)] {
                let s = key(k, level, twist, 60, 200.0, &mut seed);
                assert_eq!(
                    detect(&s),
                    k.to_string(),
                    "{k} at {level} dBm0, twist {twist} dB"
                );
            }
        }
    }

    #[test]
    fn a_long_key_counts_once_and_repeats_count_again() {
        let mut seed = 7;
        let mut s = key('5', -10.0, 0.0, 400, 100.0, &mut seed);
        s.extend(key('5', -10.0, 0.0, 60, 100.0, &mut seed));
        s.extend(key('9', -10.0, 0.0, 60, 100.0, &mut seed));
        assert_eq!(detect(&s), "559");
    }

    #[test]
    fn too_short_too_quiet_or_too_twisted_is_not_a_key() {
        let mut seed = 3;
        assert_eq!(
            detect(&key('1', -10.0, 0.0, 20, 0.0, &mut seed)),
            "",
            "20 ms is too short"
        );
        assert_eq!(
            detect(&key('1', -50.0, 0.0, 80, 0.0, &mut seed)),
            "",
            "too quiet"
        );
        assert_eq!(
            detect(&key('1', -10.0, 12.0, 80, 0.0, &mut seed)),
            "",
            "12 dB twist"
        );
        assert_eq!(
            detect(&key('1', -20.0, 0.0, 80, 6000.0, &mut seed)),
            "",
            "buried in noise"
        );
        // A single tone is not a key.
        let single: Vec<i16> = (0..800)
            .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * 770.0 * i as f32 / RATE).sin()) as i16)
            .collect();
        assert_eq!(detect(&single), "");
    }

    /// `s` with a sine of amplitude `amp` at `hz` added over its first `n` samples.
    fn plus_tone(mut s: Vec<i16>, hz: f32, amp: f32, n: usize) -> Vec<i16> {
        for (i, x) in s.iter_mut().take(n).enumerate() {
            let v = f32::from(*x) + amp * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE).sin();
            *x = v.clamp(-32768.0, 32767.0) as i16;
        }
        s
    }

    /// Each rule on either side of its limit: twist either way, a rival tone in the row
    /// group (dominance), and sound outside the DTMF bands (purity).
    #[test]
    fn each_rule_lets_a_key_through_on_one_side_of_its_limit_and_not_the_other() {
        let mut seed = 11;
        let mut k = |twist: f32| detect(&key('5', -10.0, twist, 80, 0.0, &mut seed));
        assert_eq!(
            k(-7.0),
            "5",
            "row 7 dB louder: within the 8 dB normal twist"
        );
        assert_eq!(k(-10.0), "", "row 10 dB louder");
        assert_eq!(
            k(3.0),
            "5",
            "column 3 dB louder: within the 4 dB reverse twist"
        );
        assert_eq!(k(6.0), "", "column 6 dB louder");
        // Key 5 is 770 + 1336 Hz, each tone at amplitude about 7,180 (-10 dBm0).
        let base = || key('5', -10.0, 0.0, 80, 0.0, &mut 5);
        let n = 640;
        assert_eq!(
            detect(&plus_tone(base(), 852.0, 7180.0 / 4.0, n)),
            "5",
            "rival 12 dB down"
        );
        assert_eq!(
            detect(&plus_tone(base(), 852.0, 7180.0 / 1.6, n)),
            "",
            "rival 4 dB down"
        );
        // Another sound at 3 kHz: a quarter of the pair's power passes, as much fails.
        let pair = 7180.0 * std::f32::consts::SQRT_2;
        assert_eq!(
            detect(&plus_tone(base(), 3000.0, pair / 2.0, n)),
            "5",
            "a quarter"
        );
        assert_eq!(
            detect(&plus_tone(base(), 3000.0, pair, n)),
            "",
            "as much as the key"
        );
    }

    /// Talk-off: generated speech (the shipped prompt, flite) must produce no key.
    #[test]
    fn speech_does_not_talk_off() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sounds/demo-welcome.wav");
        let speech = crate::media::wav::decode(&std::fs::read(p).unwrap()).unwrap();
        assert!(speech.len() > 20_000);
        for gain in [0.5f32, 1.0, 2.0] {
            let s: Vec<i16> = speech
                .iter()
                .map(|&x| (f32::from(x) * gain).clamp(-32768.0, 32767.0) as i16)
                .collect();
            assert_eq!(detect(&s), "", "talk-off at gain {gain}");
        }
    }
}
