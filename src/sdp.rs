//! SDP (RFC 4566) for audio offer/answer (RFC 3264), as a B2BUA in the media path needs it.
//!
//! [`Sdp::parse`] reads a session description; [`Sdp::to_bytes`] prints one. The B2BUA
//! never forwards a peer's description as it is: [`Sdp::relayed`] rewrites the connection
//! address and audio port to switchboard's relay and keeps only codecs we can relay
//! (G.711 μ-law and A-law, and RFC 4733 telephone-event). Sans-IO and allocation-light;
//! it owns no state.

use std::fmt::Write as _;
use std::net::IpAddr;
use thiserror::Error;

/// Why a body is not an acceptable SDP.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP is not text")]
    NotText,
    /// A line is not `x=value`.
    #[error("malformed SDP line {0}")]
    Line(usize),
    /// A required field is missing or malformed.
    #[error("bad or missing SDP {0}")]
    Field(&'static str),
    /// No audio stream with a codec we relay.
    #[error("no acceptable audio codec (switchboard relays PCMU and PCMA)")]
    NoCodec,
}

/// Media direction attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly` (we are put on hold by the sender).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction an answer to an offer with this one gives (RFC 3264 §6.1).
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// A codec we can relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// RFC 4733 DTMF events.
    TelephoneEvent,
}

/// One payload type in an `m=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    /// RTP payload type.
    pub pt: u8,
    /// `a=rtpmap` encoding name, e.g. `PCMU`.
    pub name: String,
    /// Clock rate.
    pub rate: u32,
    /// `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl Format {
    /// The codec, if it is one we relay.
    pub fn codec(&self) -> Option<Codec> {
        match (self.name.to_ascii_uppercase().as_str(), self.rate) {
            ("PCMU", 8000) => Some(Codec::Pcmu),
            ("PCMA", 8000) => Some(Codec::Pcma),
            ("TELEPHONE-EVENT", 8000) => Some(Codec::TelephoneEvent),
            _ => None,
        }
    }
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// Port; 0 means the stream is rejected.
    pub port: u16,
    /// `RTP/AVP`, ...
    pub proto: String,
    /// Payload types in preference order.
    pub formats: Vec<Format>,
    /// Media-level `c=` address.
    pub addr: Option<IpAddr>,
    /// Direction.
    pub direction: Direction,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
}

/// A session description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp {
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version.
    pub version: u64,
    /// Session-level `c=` address.
    pub addr: Option<IpAddr>,
    /// Media sections.
    pub media: Vec<Media>,
}

fn parse_addr(v: &str) -> Option<IpAddr> {
    // c=IN IP4 192.0.2.1  /  c=IN IP6 ::1
    let mut it = v.split_whitespace();
    let (Some("IN"), Some(_), Some(a)) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    a.split('/').next()?.parse().ok()
}

impl Sdp {
    /// Parses a body.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut sdp = Self {
            session_id: 0,
            version: 0,
            addr: None,
            media: Vec::new(),
        };
        let mut saw_v = false;
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' {
                return Err(SdpError::Line(i + 1));
            }
            let v = &line[2..];
            match (b[0], sdp.media.last_mut()) {
                (b'v', _) => saw_v = v == "0",
                (b'o', None) => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() != 6 {
                        return Err(SdpError::Field("o="));
                    }
                    sdp.session_id = f[1].parse().unwrap_or(0);
                    sdp.version = f[2].parse().unwrap_or(0);
                }
                (b'c', None) => sdp.addr = Some(parse_addr(v).ok_or(SdpError::Field("c="))?),
                (b'c', Some(m)) => m.addr = Some(parse_addr(v).ok_or(SdpError::Field("c="))?),
                (b'm', _) => {
                    let f: Vec<&str> = v.split_whitespace().collect();
                    if f.len() < 4 {
                        return Err(SdpError::Field("m="));
                    }
                    let port = f[1]
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Field("m= port"))?;
                    let mut formats = Vec::new();
                    for pt in &f[3..] {
                        let Ok(pt) = pt.parse::<u8>() else {
                            // Non-RTP formats (e.g. T.38 "t38") are kept out of audio.
                            continue;
                        };
                        // Static payload types need no rtpmap (RFC 3551).
                        let (name, rate) = match pt {
                            0 => ("PCMU", 8000),
                            8 => ("PCMA", 8000),
                            _ => ("", 0),
                        };
                        formats.push(Format {
                            pt,
                            name: name.into(),
                            rate,
                            fmtp: None,
                        });
                    }
                    sdp.media.push(Media {
                        kind: f[0].to_string(),
                        port,
                        proto: f[2].to_string(),
                        formats,
                        addr: None,
                        direction: Direction::SendRecv,
                        ptime: None,
                        rtcp_mux: false,
                    });
                }
                (b'a', Some(m)) => {
                    let (name, val) = v.split_once(':').unwrap_or((v, ""));
                    match name {
                        "rtpmap" => {
                            let (pt, enc) =
                                val.split_once(' ').ok_or(SdpError::Field("a=rtpmap"))?;
                            let pt: u8 = pt.parse().map_err(|_| SdpError::Field("a=rtpmap"))?;
                            let mut parts = enc.split('/');
                            let name = parts.next().unwrap_or_default().to_string();
                            let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                            if let Some(f) = m.formats.iter_mut().find(|f| f.pt == pt) {
                                f.name = name;
                                f.rate = rate;
                            }
                        }
                        "fmtp" => {
                            if let Some((pt, params)) = val.split_once(' ') {
                                if let Some(f) =
                                    m.formats.iter_mut().find(|f| pt.parse() == Ok(f.pt))
                                {
                                    f.fmtp = Some(params.to_string());
                                }
                            }
                        }
                        "sendrecv" => m.direction = Direction::SendRecv,
                        "sendonly" => m.direction = Direction::SendOnly,
                        "recvonly" => m.direction = Direction::RecvOnly,
                        "inactive" => m.direction = Direction::Inactive,
                        "ptime" => m.ptime = val.parse().ok(),
                        "rtcp-mux" => m.rtcp_mux = true,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_v {
            return Err(SdpError::Field("v=0"));
        }
        Ok(sdp)
    }

    /// Whether switchboard can take part in this session: an audio stream offering PCMU or
    /// PCMA (anything else is answered 488).
    pub fn is_relayable(&self) -> bool {
        self.audio().is_some_and(|m| {
            m.formats
                .iter()
                .any(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
        })
    }

    /// The first audio stream that is not rejected.
    pub fn audio(&self) -> Option<&Media> {
        self.media.iter().find(|m| m.kind == "audio" && m.port != 0)
    }

    /// Where the audio stream wants RTP sent; none for the old hold form's `0.0.0.0`.
    pub fn audio_target(&self) -> Option<std::net::SocketAddr> {
        let m = self.audio()?;
        let ip = m.addr.or(self.addr).filter(|ip| !ip.is_unspecified())?;
        Some(std::net::SocketAddr::new(ip, m.port))
    }

    /// The audio stream's direction (sendrecv when there is none).
    pub fn direction(&self) -> Direction {
        self.audio().map_or(Direction::SendRecv, |m| m.direction)
    }

    /// Sets the audio stream's direction.
    pub fn set_direction(&mut self, d: Direction) {
        if let Some(m) = self
            .media
            .iter_mut()
            .find(|m| m.kind == "audio" && m.port != 0)
        {
            m.direction = d;
        }
    }

    /// Whether this offer puts the other party on hold: the sender will not receive audio
    /// (`a=sendonly` or `a=inactive`, RFC 3264 §8.4), or asks for it at `0.0.0.0`, the
    /// older form RFC 3264 still asks answerers to understand.
    pub fn holds(&self) -> bool {
        let Some(m) = self.audio() else { return false };
        let unspecified = m.addr.or(self.addr).is_some_and(|ip| ip.is_unspecified());
        matches!(m.direction, Direction::SendOnly | Direction::Inactive) || unspecified
    }

    /// The description switchboard sends on the other leg: same codecs we can relay (in
    /// the sender's order), same direction and ptime, but our relay `addr:port`. Other
    /// streams (video, ...) are declined with port 0, as RFC 3264 §6 requires.
    pub fn relayed(
        &self,
        addr: IpAddr,
        port: u16,
        session_id: u64,
        version: u64,
    ) -> Result<Self, SdpError> {
        let mut out = Self {
            session_id,
            version,
            addr: Some(addr),
            media: Vec::new(),
        };
        let mut have_audio = false;
        for m in &self.media {
            let mut nm = m.clone();
            nm.addr = None;
            if m.kind == "audio" && m.port != 0 && !have_audio {
                nm.formats.retain(|f| f.codec().is_some());
                if !nm
                    .formats
                    .iter()
                    .any(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
                {
                    return Err(SdpError::NoCodec);
                }
                nm.port = port;
                nm.rtcp_mux = false;
                have_audio = true;
            } else {
                nm.port = 0;
            }
            out.media.push(nm);
        }
        if !have_audio {
            return Err(SdpError::NoCodec);
        }
        Ok(out)
    }

    /// This offer with both G.711 laws in its audio stream (the missing one appended), so
    /// a callee that knows only the other law can still answer: the relay transcodes.
    pub fn with_both_g711(mut self) -> Self {
        for m in self
            .media
            .iter_mut()
            .filter(|m| m.kind == "audio" && m.port != 0)
        {
            let has = |c: Codec| m.formats.iter().any(|f| f.codec() == Some(c));
            let add = match (has(Codec::Pcmu), has(Codec::Pcma)) {
                (true, false) => Some((8, "PCMA")),
                (false, true) => Some((0, "PCMU")),
                _ => None,
            };
            if let Some((pt, name)) = add {
                // After the offered voice codecs, before telephone-event.
                let at = m
                    .formats
                    .iter()
                    .rposition(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
                    .map_or(0, |i| i + 1);
                m.formats.insert(
                    at,
                    Format {
                        pt,
                        name: name.into(),
                        rate: 8000,
                        fmtp: None,
                    },
                );
            }
        }
        self
    }

    /// The first G.711 codec of the audio stream and its payload type.
    pub fn first_g711(&self) -> Option<(Codec, u8)> {
        self.audio()?.formats.iter().find_map(|f| match f.codec() {
            Some(c @ (Codec::Pcmu | Codec::Pcma)) => Some((c, f.pt)),
            _ => None,
        })
    }

    /// Whether the audio stream offers `codec`.
    pub fn offers(&self, codec: Codec) -> bool {
        self.audio()
            .is_some_and(|m| m.formats.iter().any(|f| f.codec() == Some(codec)))
    }

    /// An answer to this offer from switchboard itself (echo, prompts): the first G.711
    /// codec offered, plus telephone-event if offered, at `addr:port`.
    pub fn answer_for(&self, addr: IpAddr, port: u16, session_id: u64) -> Result<Self, SdpError> {
        let mut ans = self.relayed(addr, port, session_id, 1)?;
        for m in ans.media.iter_mut().filter(|m| m.port != 0) {
            let voice = m
                .formats
                .iter()
                .find(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
                .cloned();
            let te = m
                .formats
                .iter()
                .find(|f| f.codec() == Some(Codec::TelephoneEvent))
                .cloned();
            m.formats = voice.into_iter().chain(te).collect();
            m.direction = m.direction.answer();
        }
        Ok(ans)
    }

    /// Prints the description (CRLF line ends).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256);
        let (fam, ip) = match self.addr {
            Some(IpAddr::V6(a)) => ("IP6", a.to_string()),
            Some(IpAddr::V4(a)) => ("IP4", a.to_string()),
            None => ("IP4", "0.0.0.0".to_string()),
        };
        let _ = write!(
            s,
            "v=0\r\no=switchboard {} {} IN {fam} {ip}\r\ns=switchboard\r\nc=IN {fam} {ip}\r\nt=0 0\r\n",
            self.session_id, self.version
        );
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.kind, m.port, m.proto);
            if m.formats.is_empty() {
                s.push_str(" 0");
            }
            for f in &m.formats {
                let _ = write!(s, " {}", f.pt);
            }
            s.push_str("\r\n");
            if m.port == 0 {
                continue;
            }
            for f in &m.formats {
                if !f.name.is_empty() {
                    let _ = write!(s, "a=rtpmap:{} {}/{}\r\n", f.pt, f.name, f.rate);
                }
                if let Some(p) = &f.fmtp {
                    let _ = write!(s, "a=fmtp:{} {p}\r\n", f.pt);
                }
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            let _ = write!(s, "a={}\r\n", m.direction.as_str());
        }
        s.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1234 5678 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 27000 RTP/AVP 0 8 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\nm=video 27010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    #[test]
    fn parses_and_relays_with_our_address() {
        let s = Sdp::parse(BARESIP.as_bytes()).unwrap();
        assert_eq!(
            s.audio_target().unwrap(),
            "127.0.0.1:27000".parse().unwrap()
        );
        let r = s
            .relayed("127.0.0.1".parse().unwrap(), 20000, 7, 1)
            .unwrap();
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{text}");
        assert!(
            text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"),
            "{text}"
        );
        assert!(!text.contains("G722"), "codecs we cannot relay are dropped");
        assert!(
            text.contains("m=video 0 RTP/AVP 96\r\n"),
            "other streams declined: {text}"
        );
        let again = Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(
            again.audio_target().unwrap(),
            "127.0.0.1:20000".parse().unwrap()
        );
        assert_eq!(again.audio().unwrap().ptime, Some(20));
    }

    #[test]
    fn both_laws_are_offered_for_transcoding() {
        let s = Sdp::parse(b"v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
        let both = s.clone().with_both_g711();
        let pts: Vec<u8> = both.audio().unwrap().formats.iter().map(|f| f.pt).collect();
        assert_eq!(pts, vec![0, 8, 101]);
        assert!(both.offers(Codec::Pcma) && !s.offers(Codec::Pcma));
        assert_eq!(s.first_g711(), Some((Codec::Pcmu, 0)));
    }

    #[test]
    fn hold_and_media_level_address() {
        let s = Sdp::parse(b"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 192.0.2.5\r\na=sendonly\r\n").unwrap();
        let a = s.audio().unwrap();
        assert_eq!(a.direction, Direction::SendOnly);
        assert_eq!(s.audio_target().unwrap(), "192.0.2.5:4000".parse().unwrap());
        assert_eq!(a.formats[0].codec(), Some(Codec::Pcma));
    }

    #[test]
    fn rejects_what_cannot_be_relayed() {
        let g729 = b"v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        let s = Sdp::parse(g729).unwrap();
        assert_eq!(
            s.relayed("127.0.0.1".parse().unwrap(), 1, 1, 1),
            Err(SdpError::NoCodec)
        );
        assert!(Sdp::parse(b"garbage").is_err());
        assert!(Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(Sdp::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn every_direction_is_read_printed_and_mirrored_in_our_answer() {
        for (offer, answer) in [
            ("sendrecv", "sendrecv"),
            ("sendonly", "recvonly"),
            ("recvonly", "sendonly"),
            ("inactive", "inactive"),
        ] {
            let text = format!(
                "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={offer}\r\n"
            );
            let s = Sdp::parse(text.as_bytes()).unwrap();
            let printed = String::from_utf8(s.to_bytes()).unwrap();
            assert!(printed.contains(&format!("\r\na={offer}\r\n")), "{printed}");
            let ans = s
                .answer_for("127.0.0.1".parse().unwrap(), 30000, 7)
                .unwrap();
            let printed = String::from_utf8(ans.to_bytes()).unwrap();
            assert!(
                printed.contains(&format!("\r\na={answer}\r\n")),
                "{offer}: {printed}"
            );
        }
    }

    #[test]
    fn hold_is_sendonly_inactive_or_the_old_zero_address() {
        let sdp = |c: &str, dir: &str| {
            Sdp::parse(
                format!(
                    "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0\r\n{dir}"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        for (c, dir, holds) in [
            ("192.0.2.5", "", false),
            ("192.0.2.5", "a=sendrecv\r\n", false),
            ("192.0.2.5", "a=recvonly\r\n", false),
            ("192.0.2.5", "a=sendonly\r\n", true),
            ("192.0.2.5", "a=inactive\r\n", true),
            ("0.0.0.0", "", true),
        ] {
            assert_eq!(sdp(c, dir).holds(), holds, "c={c} {dir}");
        }
        // The old form names no address to send to.
        assert_eq!(sdp("0.0.0.0", "").audio_target(), None);
        assert_eq!(
            sdp("192.0.2.5", "").audio_target(),
            Some("192.0.2.5:4000".parse().unwrap())
        );
        let mut s = sdp("192.0.2.5", "");
        s.set_direction(Direction::SendOnly);
        assert_eq!(s.direction(), Direction::SendOnly);
        assert!(String::from_utf8(s.to_bytes())
            .unwrap()
            .contains("a=sendonly\r\n"));
    }

    #[test]
    fn line_errors_name_the_line_and_the_origin_is_read() {
        let head = "v=0\r\no=- 42 7 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n";
        let ok = Sdp::parse(format!("{head}m=audio 4000 RTP/AVP 0\r\ni=\r\n").as_bytes()).unwrap();
        assert_eq!(
            (ok.session_id, ok.version),
            (42, 7),
            "a two-byte line is a line"
        );
        for (bad, line) in [("x", 6), ("ab", 6), ("m", 6)] {
            assert_eq!(
                Sdp::parse(format!("{head}{bad}\r\nm=audio 4000 RTP/AVP 0\r\n").as_bytes()),
                Err(SdpError::Line(line)),
                "{bad:?}"
            );
        }
        assert_eq!(
            Sdp::parse(b"v=0\r\no=- 42 IN IP4 192.0.2.5\r\ns=-\r\nt=0 0\r\n"),
            Err(SdpError::Field("o="))
        );
    }

    #[test]
    fn streams_are_picked_declined_and_completed_by_kind_port_and_law() {
        let head = "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n";
        let parse = |body: &str| Sdp::parse(format!("{head}{body}").as_bytes()).unwrap();
        let ports = |s: &Sdp| s.media.iter().map(|m| m.port).collect::<Vec<_>>();
        let pts = |m: &Media| m.formats.iter().map(|f| f.pt).collect::<Vec<_>>();
        // A live video stream, a rejected audio stream, then the audio to use, then a
        // second audio stream: only the third is ours, the others are declined.
        let s = parse(
            "m=video 5000 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 8 101\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\nm=audio 4002 RTP/AVP 0\r\n",
        );
        assert_eq!(s.audio().unwrap().port, 4000);
        assert!(s.audio().unwrap().rtcp_mux, "a=rtcp-mux is read");
        assert!(s.is_relayable());
        let r = s
            .relayed("127.0.0.1".parse().unwrap(), 30000, 1, 1)
            .unwrap();
        assert_eq!(ports(&r), [0, 0, 30000, 0]);
        assert!(!r.media[2].rtcp_mux, "our relay does not multiplex RTCP");
        // Both laws: PCMU is added to a PCMA offer, and the declined streams are left be.
        let both = s.clone().with_both_g711();
        assert_eq!(pts(both.audio().unwrap()), [8, 0, 101]);
        assert_eq!(pts(&both.media[0]), [0], "video untouched");
        assert_eq!(pts(&both.media[1]), [0], "the rejected stream untouched");
        // Our own answer: the first law offered and telephone-event, nothing else.
        let ans = parse("m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
            .answer_for("127.0.0.1".parse().unwrap(), 30000, 7)
            .unwrap();
        assert_eq!(pts(ans.audio().unwrap()), [0, 101]);
        // Nothing to relay: no G.711, or no live audio stream.
        assert!(!parse("m=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n").is_relayable());
        assert!(!parse("m=audio 0 RTP/AVP 0\r\nm=video 5000 RTP/AVP 0\r\n").is_relayable());
    }
}
