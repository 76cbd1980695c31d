//! The media engine's vocabulary, sans-IO: legs and bridges and the commands and reports
//! about them, the port pool, and the codecs and formats the engine reads and writes
//! (G.711, RTP headers, WAV, in-band keys). The engine itself (sockets, tasks,
//! forwarding) lives in `driver::media`; this module decides nothing about packets.

pub mod inband;
pub mod rtp;
pub mod wav;

use std::collections::VecDeque;
use std::net::SocketAddr;

/// One media leg: our RTP/RTCP port pair facing one party, for as long as it is open.
/// Chosen by the call layer, unique among open legs and never reused within a run, so a
/// late report about a closed leg is not taken for a newer one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegKey(pub u64);

/// One bridge: the legs whose audio is joined. Chosen by the call layer, like [`LegKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BridgeKey(pub u64);

/// How a leg's keys reach us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// RFC 4733 telephone-events, with this payload type.
    Events(u8),
    /// Tones in the audio (the party offered no telephone-event).
    Inband,
}

/// How a bridge joins its legs' audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tech {
    /// Two legs, each one's packets sent on to the other as they are (G.711 converted where
    /// the two laws differ): no decode, no copy.
    Relay,
}

/// What the media engine must do. A leg's sockets are always in exactly one place: parked
/// (open, heard by nobody), with the leg alone (playing, echoing, recording, listening for
/// keys), or in one bridge; joining and leaving move them, keeping where the party was
/// last heard from (symmetric RTP) and the law it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaCommand {
    /// Bind a leg's port pair (`port`, `port + 1`). Until it joins a bridge or is given
    /// something to play, nobody hears it; a leg that listens for `keys` is listened to at
    /// once, reporting [`MediaEvent::Digit`].
    LegOpen {
        /// Leg.
        leg: LegKey,
        /// Our RTP port facing the party.
        port: u16,
        /// Where the party wants RTP, from its SDP (until latched).
        remote: Option<SocketAddr>,
        /// The G.711 payload type agreed with it (0 = PCMU, 8 = PCMA), if one was.
        pt: Option<u8>,
        /// How its keys come, if they are listened for.
        keys: Option<Keys>,
    },
    /// The party's SDP says where it wants RTP now (until latched).
    LegRemote {
        /// Leg.
        leg: LegKey,
        /// Address from the SDP.
        addr: SocketAddr,
    },
    /// Listen for the party's keys (or stop: `None`) wherever its leg is: alone, or in a
    /// bridge, where RFC 4733 events are reported as [`MediaEvent::Digit`] and still
    /// relayed to the other party (tones in the audio are heard only alone: a bridge
    /// does not decode).
    LegKeys {
        /// Leg.
        leg: LegKey,
        /// How its keys come.
        keys: Option<Keys>,
    },
    /// The G.711 law the party speaks: a bridge converts between two legs whose laws
    /// differ, and what is played to the leg is encoded in it.
    LegLaw {
        /// Leg.
        leg: LegKey,
        /// 0 = PCMU, 8 = PCMA.
        pt: u8,
    },
    /// Close a leg and free its sockets (leaving its bridge; a recording under way is
    /// saved).
    LegClose {
        /// Leg.
        leg: LegKey,
    },
    /// To a leg not in a bridge: send everything the party sends straight back.
    Echo {
        /// Leg.
        leg: LegKey,
    },
    /// To a leg not in a bridge: play a WAV file, then report [`MediaEvent::PlayDone`]
    /// (at once, as not played, for a leg in a bridge).
    Play {
        /// Leg.
        leg: LegKey,
        /// The file (16-bit PCM, 8 kHz, mono).
        path: std::path::PathBuf,
        /// Stop at the first key press (barge-in).
        barge_in: bool,
        /// Echoed in [`MediaEvent::PlayDone`], so a late report of an earlier prompt is
        /// not taken for this one's.
        seq: u64,
    },
    /// To a leg not in a bridge: play a WAV file round and round (music on hold) until
    /// something else is asked of the leg; nothing is reported.
    Music {
        /// Leg.
        leg: LegKey,
        /// The file (16-bit PCM, 8 kHz, mono).
        path: std::path::PathBuf,
    },
    /// Stop what plays to a leg now (a key came another way, SIP INFO).
    StopPlay {
        /// Leg.
        leg: LegKey,
    },
    /// To a leg not in a bridge: record the party to `path` (8 kHz 16-bit WAV) until a
    /// `#`, `max`, `silence` of quiet, [`MediaCommand::StopRecord`], the leg joining a
    /// bridge or its end (what was said is kept even if the party hangs up), then report
    /// [`MediaEvent::RecordDone`]. With `index`, a line is appended to that file once the
    /// recording is on disk (a voicemail box's list of messages).
    Record {
        /// Leg.
        leg: LegKey,
        /// Where the recording goes.
        path: std::path::PathBuf,
        /// Longest recording.
        max: std::time::Duration,
        /// Quiet this long ends it.
        silence: std::time::Duration,
        /// The index file and the JSON line to append to it, if any.
        index: Option<(std::path::PathBuf, String)>,
        /// Echoed in the report.
        seq: u64,
    },
    /// End a leg's recording now (a key came by SIP INFO).
    StopRecord {
        /// Leg.
        leg: LegKey,
    },
    /// Watch a leg for its party's silence from now on: no RTP or RTCP from it for
    /// `after` reports [`MediaEvent::Inactive`], again each `after` while it lasts (so the
    /// call may ignore it while silence is expected, on hold). Sent again, the watch starts
    /// over (a party just answered has had no time to send).
    LegWatch {
        /// Leg.
        leg: LegKey,
        /// Silence this long is reported.
        after: std::time::Duration,
    },
    /// Open a bridge, empty.
    BridgeOpen {
        /// Bridge.
        bridge: BridgeKey,
        /// How it joins its legs.
        tech: Tech,
    },
    /// A leg joins a bridge: what it played or recorded ends, and it hears the bridge.
    BridgeJoin {
        /// Bridge.
        bridge: BridgeKey,
        /// Leg.
        leg: LegKey,
    },
    /// A leg leaves its bridge and is alone again (parked, or listened to for keys); the
    /// others stay (on hold: it is given music next).
    BridgeLeave {
        /// Bridge.
        bridge: BridgeKey,
        /// Leg.
        leg: LegKey,
    },
    /// Close a bridge; its legs are alone again.
    BridgeClose {
        /// Bridge.
        bridge: BridgeKey,
    },
}

/// Receives RFC 4733 telephone-events and reports each key press once, at its first
/// packet (so a prompt can stop at once), however many times the end packet is repeated.
#[derive(Debug, Default)]
pub struct DtmfRx {
    last: Option<(u32, u8)>,
    ended: bool,
}

/// The key an RFC 4733 event code stands for (0-9, *, #, A-D).
pub fn dtmf_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

impl DtmfRx {
    /// Feeds one RTP packet; `te_pt` is the negotiated telephone-event payload type.
    /// Returns the key when this packet starts a new press.
    pub fn packet(&mut self, pkt: &[u8], te_pt: u8) -> Option<char> {
        let h = rtp::read(pkt)?;
        if h.pt != te_pt {
            return None;
        }
        let payload = pkt[h.payload].get(..4)?;
        let (event, end) = (payload[0], payload[1] & 0x80 != 0);
        let (marker, ts) = (h.marker, h.ts);
        // A new press: a new timestamp or event, the marker bit, or a fresh (non-end)
        // packet after the previous press ended (senders may reuse the timestamp).
        let new = self.last != Some((ts, event)) || marker || (self.ended && !end);
        if new {
            self.last = Some((ts, event));
            self.ended = end;
            dtmf_char(event)
        } else {
            self.ended |= end;
            None
        }
    }
}

/// What the relay reports back to the call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A `Play` finished (or could not start: the file is missing or unreadable, which is
    /// logged; the call goes on rather than sit in silence), or a key press cut it short.
    PlayDone {
        /// Leg it played to.
        leg: LegKey,
        /// The `seq` of the `Play` it reports.
        seq: u64,
        /// False when the file could not be played at all: whoever plays it round (music
        /// on hold, ringback) must not ask again at once.
        played: bool,
    },
    /// A recording ended (`ms` long; 0 if nothing was said).
    RecordDone {
        /// Leg it recorded.
        leg: LegKey,
        /// The `seq` of the `Record`.
        seq: u64,
        /// Length kept, in milliseconds.
        ms: u64,
        /// Whether a file was written (not when nothing was said or the disk refused it).
        saved: bool,
    },
    /// A party pressed a key (RFC 4733 telephone-event or a tone in the audio).
    Digit {
        /// Leg that pressed it.
        leg: LegKey,
        /// 0-9, *, #, A-D.
        digit: char,
    },
    /// A watched leg's party sent no RTP or RTCP for its `after` (see
    /// [`MediaCommand::LegWatch`]).
    Inactive {
        /// Leg.
        leg: LegKey,
    },
}

/// G.711 encoders (ITU-T G.711), for prompts played to callers.
pub mod g711 {
    /// 16-bit linear to μ-law.
    pub fn ulaw(sample: i16) -> u8 {
        const BIAS: i32 = 0x84;
        const CLIP: i32 = 32635;
        let mut s = i32::from(sample);
        let sign = if s < 0 { 0x80 } else { 0 };
        if s < 0 {
            s = -s;
        }
        s = s.min(CLIP) + BIAS;
        let exponent = (7 - (s as u32).leading_zeros().saturating_sub(17)).min(7) as i32;
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        !(sign | (exponent << 4) as u8 | mantissa as u8)
    }

    /// 16-bit linear to A-law.
    pub fn alaw(sample: i16) -> u8 {
        let mut s = i32::from(sample) >> 3;
        let sign = if s >= 0 { 0x80 } else { 0 };
        if s < 0 {
            s = -s - 1;
        }
        let s = s.min(0xFFF);
        let out = if s < 32 {
            (s >> 1) as u8
        } else {
            let exponent = 31 - (s as u32).leading_zeros() - 4;
            let mantissa = (s >> exponent) & 0x0F;
            ((exponent << 4) as u8) | mantissa as u8
        };
        (out | sign) ^ 0x55
    }

    /// Conversion tables between the laws, built once: transcoding then costs one table
    /// lookup per byte, in place.
    pub fn tables() -> &'static ([u8; 256], [u8; 256]) {
        static T: std::sync::OnceLock<([u8; 256], [u8; 256])> = std::sync::OnceLock::new();
        T.get_or_init(|| {
            let mut u2a = [0u8; 256];
            let mut a2u = [0u8; 256];
            for i in 0..=255u8 {
                u2a[usize::from(i)] = alaw(ulaw_decode(i));
                a2u[usize::from(i)] = ulaw(alaw_decode(i));
            }
            (u2a, a2u)
        })
    }

    /// Rewrites an RTP packet's G.711 payload from payload type `from` to `to` in place
    /// (CSRCs, header extension and padding respected). Packets of other payload types
    /// (telephone-event, comfort noise) are left alone.
    pub fn transcode_rtp(pkt: &mut [u8], from: u8, to: u8) {
        let Some(h) = super::rtp::read(pkt).filter(|h| h.pt == from) else {
            return;
        };
        let (u2a, a2u) = tables();
        let table = match (from, to) {
            (0, 8) => u2a,
            (8, 0) => a2u,
            _ => return,
        };
        for b in &mut pkt[h.payload] {
            *b = table[usize::from(*b)];
        }
        pkt[1] = (pkt[1] & 0x80) | to;
    }

    /// μ-law to 16-bit linear.
    pub fn ulaw_decode(u: u8) -> i16 {
        let u = !u;
        let sign = u & 0x80;
        let exponent = (u >> 4) & 0x07;
        let mantissa = u & 0x0F;
        let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
        let v = magnitude - 0x84;
        (if sign != 0 { -v } else { v }) as i16
    }

    /// A-law to 16-bit linear.
    pub fn alaw_decode(a: u8) -> i16 {
        let a = a ^ 0x55;
        let sign = a & 0x80;
        let exponent = (a >> 4) & 0x07;
        let mantissa = i32::from(a & 0x0F);
        let v = if exponent == 0 {
            (mantissa << 4) + 8
        } else {
            ((mantissa << 4) + 0x108) << (exponent - 1)
        };
        (if sign != 0 { v } else { -v }) as i16
    }
}

/// Even RTP ports of the configured range not in use by us; RTCP takes port + 1.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    /// All even ports of `low..=high` whose odd partner is in range too.
    pub fn new(low: u16, high: u16) -> Self {
        let start = low + (low % 2);
        let free = (start..high).step_by(2).collect();
        Self { free }
    }

    /// Takes a port (least recently freed first, so a late packet for an ended call does
    /// not land in a new one).
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Returns a port.
    pub fn give(&mut self, port: u16) {
        self.free.push_back(port);
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_round_trips_within_quantisation() {
        for s in [
            -32768i16, -20000, -1000, -100, -1, 0, 1, 100, 1000, 20000, 32767,
        ] {
            let u = g711::ulaw_decode(g711::ulaw(s));
            let a = g711::alaw_decode(g711::alaw(s));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= tol,
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= tol.max(32),
                "alaw {s} -> {a}"
            );
        }
        // Reference points from G.711: silence encodes as 0xFF (μ) and 0xD5 (A).
        assert_eq!(g711::ulaw(0), 0xFF);
        assert_eq!(g711::alaw(0), 0xD5);
    }

    #[test]
    fn rtp_payload_is_transcoded_in_place() {
        let mut pkt = vec![0x80, 0x00, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        pkt.extend((0..160).map(|i| g711::ulaw((i as i16 - 80) * 300)));
        let orig = pkt.clone();
        g711::transcode_rtp(&mut pkt, 0, 8);
        assert_eq!(pkt[1], 8);
        for (i, (&a, &u)) in pkt[12..].iter().zip(&orig[12..]).enumerate() {
            let (la, lu) = (
                i32::from(g711::alaw_decode(a)),
                i32::from(g711::ulaw_decode(u)),
            );
            assert!(
                (la - lu).abs() <= lu.abs() / 8 + 16,
                "sample {i}: {la} vs {lu}"
            );
        }
        // Telephone-event (PT 101) passes untouched; a marker bit survives.
        let mut te = vec![0x80, 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 5, 0x80, 0, 160];
        let before = te.clone();
        g711::transcode_rtp(&mut te, 0, 8);
        assert_eq!(te, before);
        let mut marked = orig.clone();
        marked[1] |= 0x80;
        g711::transcode_rtp(&mut marked, 0, 8);
        assert_eq!(marked[1], 0x88);
        // A packet of header alone is still relabelled.
        let mut bare = vec![0x80, 0x00, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        g711::transcode_rtp(&mut bare, 0, 8);
        assert_eq!(bare[1], 8);
        // Short or malformed packets are left alone, never a panic.
        for n in 0..14 {
            let mut p = vec![0x9f; n];
            g711::transcode_rtp(&mut p, 0, 8);
        }
    }

    /// Every code of both laws, against G.711's own shape: reference levels at the ends
    /// and the middle, levels strictly ordered by code, every code back to itself, and
    /// every 16-bit sample encoded to the level nearest to it.
    #[test]
    fn every_g711_code_and_sample_meets_the_standard() {
        use g711::{alaw, alaw_decode, ulaw, ulaw_decode};
        // μ-law: 0x00 is the most negative level, 0x7F and 0xFF are the two zeros.
        let u: Vec<i32> = (0..=255u8).map(|c| i32::from(ulaw_decode(c))).collect();
        assert_eq!(
            (u[0x00], u[0x0F], u[0x70], u[0x7E], u[0x7F]),
            (-32124, -16764, -120, -8, 0)
        );
        assert_eq!((u[0x80], u[0xEF], u[0xFE], u[0xFF]), (32124, 132, 8, 0));
        // A-law: even bits inverted, 0xD5 and 0x55 are the two smallest levels.
        let a: Vec<i32> = (0..=255u8).map(|c| i32::from(alaw_decode(c))).collect();
        assert_eq!((a[0xD5], a[0x55], a[0xAA], a[0x2A]), (8, -8, 32256, -32256));
        assert_eq!((a[0xD4], a[0xC5], a[0xF5], a[0xE5]), (24, 264, 528, 1056));
        // Known answers at the smallest steps, where a negative sample is one less in
        // magnitude before it is shifted (G.711's own rounding).
        let codes: Vec<u8> = [-24i16, -16, -8, 0, 7, 8, 16]
            .into_iter()
            .map(alaw)
            .collect();
        assert_eq!(codes, [0x54, 0x55, 0x55, 0xD5, 0xD5, 0xD5, 0xD4]);
        // In code order the levels fall (μ-law: from +max to +0 and from -max to -0).
        for half in [0x00..0x80usize, 0x80..0x100] {
            let levels: Vec<i32> = half.map(|c| u[c]).collect();
            let rising = levels[0] < 0;
            assert!(
                levels
                    .windows(2)
                    .all(|w| if rising { w[0] < w[1] } else { w[0] > w[1] }),
                "μ-law levels in order: {levels:?}"
            );
        }
        for c in 0..=255u8 {
            if c != 0x7F {
                assert_eq!(ulaw(ulaw_decode(c)), c, "μ-law code {c:#04x}");
            }
            assert_eq!(alaw(alaw_decode(c)), c, "A-law code {c:#04x}");
        }
        // Each sample goes to the level of the interval it falls in: within half that
        // interval (the wider gap beside the level, as intervals double at segment
        // edges), give or take the 13 or 14 bits the laws keep.
        let within = |levels: &[i32], x: i32, y: i32| {
            let i = levels.binary_search(&y).expect("a level");
            let below = if i > 0 { y - levels[i - 1] } else { 0 };
            let above = levels.get(i + 1).map_or(0, |l| l - y);
            (y - x).abs() <= below.max(above) / 2 + 8
        };
        let mut ul: Vec<i32> = u.clone();
        ul.sort_unstable();
        ul.dedup();
        let mut al: Vec<i32> = a.clone();
        al.sort_unstable();
        al.dedup();
        for x in i16::MIN..=i16::MAX {
            let xi = i32::from(x);
            let yu = i32::from(ulaw_decode(ulaw(x)));
            if xi.abs() <= 32124 {
                assert!(within(&ul, xi, yu), "μ-law {x} -> {yu}");
            }
            let ya = i32::from(alaw_decode(alaw(x)));
            if xi.abs() <= 32256 {
                assert!(within(&al, xi, ya), "A-law {x} -> {ya}");
            }
        }
        // Between the laws and back, a code moves by one level at most.
        let (u2a, a2u) = g711::tables();
        for c in 0..=255u8 {
            let back = a2u[usize::from(u2a[usize::from(c)])];
            let step = (u[usize::from(back)] - u[usize::from(c)]).abs();
            assert!(
                step <= (u[usize::from(c)].abs() / 8).max(16),
                "μ {c:#04x} -> {back:#04x}"
            );
        }
    }

    #[test]
    fn transcoding_rewrites_the_payload_only_and_either_way() {
        // Version 2, padding, an extension, two CSRCs, PCMA.
        let mut pkt = vec![0xB2, 8, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        pkt.extend([9; 8]); // CSRCs
        pkt.extend([0xBE, 0xDE, 0, 2, 7, 7, 7, 7, 7, 7, 7, 7]); // two words of extension
        let payload: Vec<u8> = (0..40)
            .map(|i| g711::alaw((i as i16 - 20) * 1000))
            .collect();
        pkt.extend(&payload);
        pkt.extend([0, 0, 0, 4]); // padding, its count last
        let orig = pkt.clone();
        g711::transcode_rtp(&mut pkt, 8, 0);
        assert_eq!(pkt[1], 0);
        assert_eq!(
            pkt[2..32],
            orig[2..32],
            "header, CSRCs and extension untouched"
        );
        assert_eq!(pkt[72..], orig[72..], "padding untouched");
        let (_, a2u) = g711::tables();
        let want: Vec<u8> = payload.iter().map(|b| a2u[usize::from(*b)]).collect();
        assert_eq!(pkt[32..72], want[..]);
        // Other pairs, and padding longer than the packet, leave it be.
        for (from, to) in [(0, 9), (8, 8)] {
            let mut p = orig.clone();
            p[1] = from;
            let before = p.clone();
            g711::transcode_rtp(&mut p, from, to);
            assert_eq!(p, before, "{from} -> {to}");
        }
        let mut p = orig.clone();
        *p.last_mut().unwrap() = 200;
        let before = p.clone();
        g711::transcode_rtp(&mut p, 8, 0);
        assert_eq!(p, before, "padding longer than the packet");
    }

    fn te(seq: u16, ts: u32, event: u8, end: bool, marker: bool) -> Vec<u8> {
        let mut p = vec![0x80, 101 | if marker { 0x80 } else { 0 }];
        p.extend(seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend([0, 0, 0, 1, event, if end { 0x80 } else { 0 } | 10, 0, 160]);
        p
    }

    #[test]
    fn each_key_press_is_reported_once() {
        let mut rx = DtmfRx::default();
        let mut got = String::new();
        // "1": start (marker), continuation, three end packets; then "0" twice with the same
        // timestamp (as a sender replaying a recording does), then "#".
        let stream = [
            te(1, 100, 1, false, true),
            te(2, 100, 1, false, false),
            te(3, 100, 1, true, false),
            te(3, 100, 1, true, false),
            te(3, 100, 1, true, false),
            te(4, 900, 0, false, false),
            te(5, 900, 0, true, false),
            te(5, 900, 0, true, false),
            te(6, 900, 0, false, false),
            te(7, 900, 0, true, false),
            te(8, 1700, 11, false, true),
            te(9, 1700, 11, true, false),
        ];
        for p in &stream {
            got.extend(rx.packet(p, 101));
        }
        assert_eq!(got, "100#");
        // A new key whose start packet was lost (no marker) and whose predecessor's end
        // packets never came: its new timestamp alone makes it a press.
        let mut rx = DtmfRx::default();
        let got: String = [te(1, 100, 1, false, true), te(2, 900, 2, false, false)]
            .iter()
            .filter_map(|p| rx.packet(p, 101))
            .collect();
        assert_eq!(got, "12");
        // Other payload types and short packets are not events.
        assert_eq!(
            rx.packet(&[0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4], 101),
            None
        );
        assert_eq!(rx.packet(&[0x80, 101, 0], 101), None);
        assert_eq!(dtmf_char(15), Some('D'));
        assert_eq!(dtmf_char(16), None);
    }

    #[test]
    fn every_event_code_has_its_key_and_the_header_is_read_to_the_payload() {
        let keys: String = (0..=15).filter_map(dtmf_char).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert!((16..=255).all(|e| dtmf_char(e).is_none()));
        // Two CSRCs and a one-word header extension before the event.
        let mut p = vec![0x92, 101 | 0x80, 0, 1, 0, 0, 0, 160, 0, 0, 0, 1];
        p.extend([0xAA; 8]);
        p.extend([0xBE, 0xDE, 0, 2, 3, 3, 3, 3, 3, 3, 3, 3]);
        p.extend([11, 10, 0, 160]);
        assert_eq!(DtmfRx::default().packet(&p, 101), Some('#'));
        // Cut inside the extension or before the event: nothing, never a panic.
        for n in [16, 22, 26, 33, 35] {
            assert_eq!(DtmfRx::default().packet(&p[..n], 101), None, "{n} bytes");
        }
        // Not version 2, or another payload type.
        let mut v1 = te(1, 160, 5, false, true);
        v1[0] = 0x40;
        assert_eq!(DtmfRx::default().packet(&v1, 101), None);
        assert_eq!(
            DtmfRx::default().packet(&te(1, 160, 5, false, true), 100),
            None
        );
        // The shortest packet that holds an event.
        assert_eq!(
            DtmfRx::default().packet(&te(1, 160, 5, false, true), 101),
            Some('5')
        );
    }

    #[test]
    fn pool_hands_out_even_ports_and_reuses_last() {
        let mut p = PortPool::new(20001, 20008);
        assert_eq!(p.available(), 3);
        let a = p.take().unwrap();
        assert_eq!(a, 20002);
        p.give(a);
        assert_eq!(p.take(), Some(20004));
        assert_eq!(p.take(), Some(20006));
        assert_eq!(p.take(), Some(20002));
        assert_eq!(p.take(), None);
    }
}
