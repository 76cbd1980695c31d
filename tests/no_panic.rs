//! No byte sequence may panic the parser: random bytes, mutated real messages, and
//! arbitrary stream chunkings, via proptest (coverage-guided fuzzing with cargo-fuzz needs
//! a nightly toolchain; these run on stable in every CI run).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use switchboard::sip::{parse_datagram, parse_stream, Limits};

const SEED: &str = "INVITE sip:bob@example.com;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n\
Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKdef\r\n\
From: \"Alice \\\"A\\\"\" <sip:alice@example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.1>;expires=60, \"B\" <sip:b@h>\r\n\
Max-Forwards: 70\r\n\
Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:b\", response=\"x\"\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

/// Exercises everything downstream of a successful parse too.
fn touch(m: &switchboard::sip::Message) {
    let _ = m.top_via();
    let _ = m.cseq();
    let _ = m.from_hdr();
    let _ = m.to_hdr();
    let _ = m.to_bytes();
    for h in &m.headers {
        let _ = switchboard::sip::header::parse_contact_list(&h.value);
        let _ = switchboard::sip::header::parse_via_list(&h.value);
        let _ = switchboard::sip::auth::parse_credentials(&h.value);
    }
}

proptest! {
    // Cases that failed once are kept in no_panic.proptest-regressions and replayed first.
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = parse_datagram(Bytes::from(data.clone()), &Limits::default()) { touch(&m) }
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = parse_stream(&mut buf, &Limits::default()) {}
    }

    #[test]
    fn mutated_messages_never_panic(
        edits in proptest::collection::vec((0usize..SEED.len(), any::<u8>(), 0u8..3), 1..12)
    ) {
        let mut data = SEED.as_bytes().to_vec();
        for (pos, byte, op) in edits {
            let pos = pos.min(data.len());
            match op {
                0 => { if pos < data.len() { data[pos] = byte } }
                1 => data.insert(pos, byte),
                _ => { if pos < data.len() { data.remove(pos); } }
            }
        }
        match parse_datagram(Bytes::from(data.clone()), &Limits::default()) {
            Ok(m) => touch(&m),
            Err(e) => { let _ = e.response().map(|r| r.to_bytes()); }
        }
    }

    #[test]
    fn seed_is_valid(_x in 0u8..1) {
        prop_assert!(parse_datagram(Bytes::from_static(SEED.as_bytes()), &Limits::default()).is_ok());
    }

    #[test]
    fn any_chunking_of_a_stream_frames_the_same(cuts in proptest::collection::vec(1usize..200, 1..20)) {
        let whole = format!("{SEED}{SEED}");
        let mut buf = BytesMut::new();
        let mut got = 0;
        let mut rest = whole.as_bytes();
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break }
            let n = (*c).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Ok(Some(_)) = parse_stream(&mut buf, &Limits::default()) { got += 1 }
        }
        prop_assert_eq!(got, 2);
    }
}
