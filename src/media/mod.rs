//! Media relay control, sans-IO: which RTP ports a call holds, and the commands the
//! driver's relay executes. The relay itself (sockets, forwarding) lives in
//! `driver::media`; this module decides nothing about packets.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// Identifies one relayed session (one call's media).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What the relay must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaCommand {
    /// Open a session: RTP arriving on `a_port` goes to the B side's peer and RTP arriving
    /// on `b_port` to the A side's; RTCP likewise on the ports above them.
    Open {
        /// Session.
        id: SessionId,
        /// Port the A party (caller) sends to.
        a_port: u16,
        /// Port the B party (callee) sends to.
        b_port: u16,
        /// Where the A party wants RTP, from its SDP (until latched).
        a_remote: Option<SocketAddr>,
    },
    /// The B party's SDP arrived: where it wants RTP (until latched).
    SetRemoteB {
        /// Session.
        id: SessionId,
        /// Address from the SDP.
        addr: SocketAddr,
    },
    /// Close the session and free its sockets.
    Close {
        /// Session.
        id: SessionId,
    },
    /// Open a session with the caller alone (switchboard answered it itself): it then
    /// echoes or plays prompts as told. RTP sent to it uses payload type `pt`.
    Local {
        /// Session.
        id: SessionId,
        /// Port the caller sends to.
        a_port: u16,
        /// Where the caller wants RTP, from its SDP (until latched).
        a_remote: Option<SocketAddr>,
        /// Payload type agreed with the caller (0 = PCMU, 8 = PCMA).
        pt: u8,
    },
    /// In a local session: send everything the caller sends straight back.
    Echo {
        /// Session.
        id: SessionId,
    },
    /// In a local session: play a WAV file, then report [`MediaEvent::PlayDone`].
    Play {
        /// Session.
        id: SessionId,
        /// The file (16-bit PCM, 8 kHz, mono).
        path: std::path::PathBuf,
    },
}

/// What the relay reports back to the call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A `Play` finished (or could not start: the file is missing or unreadable, which is
    /// logged; the call goes on rather than sit in silence).
    PlayDone {
        /// Session.
        id: SessionId,
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

    /// μ-law to 16-bit linear (for tests and, later, transcoding).
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
