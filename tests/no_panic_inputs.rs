//! No input from outside may panic the process: SDP bodies, RTP packets (RFC 4733 events
//! and G.711 transcoding read their headers: CSRCs, extensions, padding), WAV files
//! (prompts, greetings, recordings an admin replaces), in-band audio, the config file,
//! the dialplan and a voicemail index. Random bytes, and real inputs mutated byte by byte,
//! via proptest; cases failing in the past are kept beside this file and replayed first.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use switchboard::media::{g711, wav, DtmfRx};

/// A real offer, as baresip sends it.
const SDP: &str = "v=0\r\no=- 1234 5678 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

/// `seed` with each (position, byte, op) applied: 0 replaces, 1 inserts, 2 deletes.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for &(pos, byte, op) in edits {
        let pos = pos % (data.len() + 1);
        match op {
            0 if pos < data.len() => data[pos] = byte,
            1 => data.insert(pos, byte),
            _ if pos < data.len() => {
                data.remove(pos);
            }
            _ => {}
        }
    }
    data
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..12)
}

/// Everything done with an SDP body once it parses.
fn touch_sdp(body: &[u8]) {
    if let Ok(s) = switchboard::sdp::Sdp::parse(body) {
        let _ = s.audio_target();
        let _ = s.first_g711();
        let _ = s.is_relayable();
        let _ = s.to_bytes();
        if let Ok(a) = s.answer_for("127.0.0.1".parse().unwrap(), 30000, 1) {
            let _ = a.to_bytes();
        }
        let _ = s.clone().with_both_g711().to_bytes();
    }
}

/// Everything done with an RTP packet on its way through the relay or a local session.
fn touch_rtp(pkt: &[u8]) {
    let mut rx = DtmfRx::default();
    let _ = rx.packet(pkt, 101);
    let _ = rx.packet(pkt, pkt.get(1).map_or(0, |b| b & 0x7f));
    for (from, to) in [(0, 8), (8, 0)] {
        let mut p = pkt.to_vec();
        g711::transcode_rtp(&mut p, from, to);
        assert_eq!(p.len(), pkt.len(), "transcoding keeps the packet's length");
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn sdp_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), e in edits()) {
        touch_sdp(&data);
        touch_sdp(&mutate(SDP.as_bytes(), &e));
    }

    #[test]
    fn rtp_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        touch_rtp(&data);
        // Version 2 with random flags, CSRC count, extension length and padding byte.
        let mut v2 = data.clone();
        if let Some(b) = v2.first_mut() {
            *b = 0x80 | (*b & 0x3f);
        }
        touch_rtp(&v2);
    }

    #[test]
    fn wav_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400), e in edits()) {
        let _ = wav::decode(&data);
        let real = wav::encode_pcm16(&[0, 1000, -1000, 32767, -32768, 5]);
        let _ = wav::decode(&mutate(&real, &e));
    }

    #[test]
    fn inband_audio_never_panics(s in proptest::collection::vec(any::<i16>(), 0..2000)) {
        let mut d = switchboard::media::inband::InbandDtmf::default();
        let mut keys = Vec::new();
        d.samples(&s, &mut keys);
    }

    #[test]
    fn a_voicemail_index_never_panics(e in edits()) {
        let real = "{\"name\":\"msg-1\",\"from\":\"1001\",\"at\":1,\"secs\":3}\n{\"name\":\"msg-1\",\"heard\":true}\n";
        let text = String::from_utf8_lossy(&mutate(real.as_bytes(), &e)).into_owned();
        let _ = switchboard::voicemail::fold(&text);
    }
}

proptest! {
    // The config and the dialplan are long texts: fewer cases, each mutating the shipped
    // file an admin starts from.
    #![proptest_config(config(300))]

    #[test]
    fn the_config_never_panics(e in edits()) {
        let real = include_str!("../config/switchboard.toml");
        let text = String::from_utf8_lossy(&mutate(real.as_bytes(), &e)).into_owned();
        if let Err(err) = switchboard::config::Config::from_str(&text, "switchboard.toml") {
            let _ = err.to_string();
        }
    }

    #[test]
    fn the_dialplan_never_panics(e in edits()) {
        let real = include_str!("../dialplans/default.dp");
        let text = String::from_utf8_lossy(&mutate(real.as_bytes(), &e)).into_owned();
        match switchboard::dialplan::parse(&text, "default.dp") {
            Ok(d) => {
                let _ = d.unreachable();
                let _ = d.unused_menus();
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
    }
}
