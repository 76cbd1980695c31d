//! The endpoint on a virtual clock: registration with digest auth end to end, in memory.

use super::*;
use crate::config::EMBEDDED;
use crate::sip::auth::{ha1, response, Algorithm};
use crate::sip::header::Transport;
use crate::sip::parse::parse_datagram;
use std::time::Duration;

const PW: &str = "demo-1001-change-me";

/// The shipped config, offering SHA-256 as well as MD5.
fn endpoint(t0: Instant) -> Endpoint {
    let text = EMBEDDED.replace(
        "algorithms = [\"MD5\"]",
        "algorithms = [\"SHA-256\", \"MD5\"]",
    );
    assert_ne!(text, EMBEDDED);
    let cfg = Config::from_str(&text, "embedded").unwrap();
    Endpoint::new(&cfg, t0, 1_700_000_000_000, 1, [9; 32])
}

fn peer(ip: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: format!("{ip}:5070").parse().unwrap(),
    }
}

fn register(user: &str, cseq: u32, expires: u32, auth: Option<String>) -> Bytes {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "REGISTER sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKr{cseq};rport\r\n\
From: <sip:{user}@switchboard.local>;tag=x\r\nTo: <sip:{user}@switchboard.local>\r\nCall-ID: reg-{user}\r\n\
CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:5070>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
    ))
}

fn send(ep: &mut Endpoint, now: Instant, bytes: Bytes, p: &Peer) -> Vec<Message> {
    ep.handle_datagram(now, bytes, p.clone());
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|t| parse_datagram(t.bytes, &Limits::default()).unwrap())
        .collect()
}

/// Answers a challenge the way a phone does.
fn answer(chal: &Message, alg: Algorithm, user: &str, pw: &str, nc: u32) -> String {
    let want = alg.as_str();
    let c = chal
        .headers_named(&HeaderName::WwwAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .find(|v| v.contains(&format!("algorithm={want},")))
        .unwrap();
    let nonce = c
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let h = ha1(alg, user, "switchboard.local", pw);
    let nc = format!("{nc:08x}");
    let r = response(
        alg,
        &h,
        "REGISTER",
        "sip:switchboard.local",
        &nonce,
        Some((&nc, "c0ffee")),
    );
    format!("Digest username=\"{user}\", realm=\"switchboard.local\", nonce=\"{nonce}\", uri=\"sip:switchboard.local\", response=\"{r}\", algorithm={want}, cnonce=\"c0ffee\", qop=auth, nc={nc}")
}

#[test]
fn register_with_md5_and_sha256_then_refresh_and_unregister() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    for (i, alg) in [Algorithm::Md5, Algorithm::Sha256].into_iter().enumerate() {
        let base = 10 * i as u32;
        let r = send(&mut ep, t0, register("1001", base + 1, 120, None), &p);
        assert_eq!(r[0].status(), Some(StatusCode::UNAUTHORIZED));
        let a = answer(&r[0], alg, "1001", PW, 1);
        let r = send(&mut ep, t0, register("1001", base + 2, 120, Some(a)), &p);
        assert_eq!(r[0].status(), Some(StatusCode::OK), "{alg:?}");
        assert!(
            String::from_utf8_lossy(r[0].header(&HeaderName::Contact).unwrap())
                .contains("expires=120")
        );
    }
    assert_eq!(ep.registrations(t0).len(), 1);
    // Un-REGISTER.
    let r = send(&mut ep, t0, register("1001", 30, 0, None), &p);
    let a = answer(&r[0], Algorithm::Md5, "1001", PW, 1);
    let r = send(&mut ep, t0, register("1001", 31, 0, Some(a)), &p);
    assert_eq!(r[0].status(), Some(StatusCode::OK));
    assert!(ep.registrations(t0).is_empty());
}

#[test]
fn wrong_password_unknown_user_and_other_extension_are_forbidden() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let known = send(&mut ep, t0, register("1001", 1, 120, None), &p);
    let unknown = send(&mut ep, t0, register("9999", 1, 120, None), &p);
    // Same challenge shape for a user that exists and one that does not.
    let shape = |m: &Message| {
        m.headers_named(&HeaderName::WwwAuthenticate)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .split("nonce=")
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&known[0]), shape(&unknown[0]));
    assert_eq!(known[0].status(), unknown[0].status());
    let bad = answer(&known[0], Algorithm::Md5, "1001", "wrong-password", 1);
    assert_eq!(
        send(&mut ep, t0, register("1001", 2, 120, Some(bad)), &p)[0].status(),
        Some(StatusCode::FORBIDDEN)
    );
    let ghost = answer(&unknown[0], Algorithm::Md5, "9999", "whatever1", 1);
    assert_eq!(
        send(&mut ep, t0, register("9999", 2, 120, Some(ghost)), &p)[0].status(),
        Some(StatusCode::FORBIDDEN)
    );
    // 1002's credentials cannot register 1001.
    let other = answer(&known[0], Algorithm::Md5, "1002", "demo-1002-change-me", 1);
    assert_eq!(
        send(&mut ep, t0, register("1001", 3, 120, Some(other)), &p)[0].status(),
        Some(StatusCode::FORBIDDEN)
    );
    assert!(ep.registrations(t0).is_empty());
}

#[test]
fn replayed_credentials_are_refused_and_stale_nonces_rechallenged() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let chal = send(&mut ep, t0, register("1001", 1, 120, None), &p);
    let a = answer(&chal[0], Algorithm::Md5, "1001", PW, 1);
    assert_eq!(
        send(&mut ep, t0, register("1001", 2, 120, Some(a.clone())), &p)[0].status(),
        Some(StatusCode::OK)
    );
    // A captured request replayed (new branch, same nonce count) is refused.
    assert_eq!(
        send(&mut ep, t0, register("1001", 3, 120, Some(a)), &p)[0].status(),
        Some(StatusCode::FORBIDDEN)
    );
    // After the nonce lifetime (300 s), the right password gets stale=true.
    let later = t0 + Duration::from_secs(301);
    let a = answer(&chal[0], Algorithm::Md5, "1001", PW, 2);
    let r = send(&mut ep, later, register("1001", 4, 120, Some(a)), &p);
    assert_eq!(r[0].status(), Some(StatusCode::UNAUTHORIZED));
    assert!(
        String::from_utf8_lossy(r[0].header(&HeaderName::WwwAuthenticate).unwrap())
            .contains("stale=true")
    );
}

#[test]
fn demo_password_refused_from_beyond_loopback() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("192.0.2.7");
    let chal = send(&mut ep, t0, register("1001", 1, 120, None), &p);
    let a = answer(&chal[0], Algorithm::Md5, "1001", PW, 1);
    assert_eq!(
        send(&mut ep, t0, register("1001", 2, 120, Some(a)), &p)[0].status(),
        Some(StatusCode::FORBIDDEN)
    );
}

#[test]
fn options_needs_no_auth_and_validation_precedes_challenge() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let opt = Bytes::from_static(b"OPTIONS sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:switchboard.local>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let r = send(&mut ep, t0, opt, &p);
    assert_eq!(r[0].status(), Some(StatusCode::OK));
    assert!(r[0].header(&HeaderName::Allow).is_some());
    // A REGISTER with a broken CSeq gets 400, not a challenge.
    let bad = Bytes::from(
        String::from_utf8_lossy(&register("1001", 1, 120, None))
            .replace("CSeq: 1 REGISTER", "CSeq: x REGISTER"),
    );
    ep.handle_datagram(t0, bad, p.clone());
    let raw = ep.poll_transmit().unwrap().bytes;
    assert!(raw.starts_with(b"SIP/2.0 400 "), "{raw:?}");
    // Require: unknown extension → 420 before auth.
    let req = Bytes::from(
        String::from_utf8_lossy(&register("1001", 1, 120, None))
            .replace("Max-Forwards", "Require: foo\r\nMax-Forwards"),
    );
    let r = send(&mut ep, t0, req, &p);
    assert_eq!(r[0].status(), Some(StatusCode::BAD_EXTENSION));
    assert_eq!(
        r[0].header(&HeaderName::Unsupported).unwrap().as_ref(),
        b"foo"
    );
    // Unsupported scheme → 416.
    let req = Bytes::from(
        String::from_utf8_lossy(&register("1001", 2, 120, None)).replace(
            "REGISTER sip:switchboard.local",
            "REGISTER http:switchboard.local",
        ),
    );
    assert_eq!(
        send(&mut ep, t0, req, &p)[0].status(),
        Some(StatusCode::UNSUPPORTED_URI_SCHEME)
    );
    // Garbage is dropped, and the endpoint still answers afterwards.
    assert!(send(&mut ep, t0, Bytes::from_static(b"\x00\x01garbage"), &p).is_empty());
    assert_eq!(ep.stats().parse_errors, 2);
}

#[test]
fn too_brief_interval_gets_423_with_min_expires() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let chal = send(&mut ep, t0, register("1001", 1, 10, None), &p);
    let a = answer(&chal[0], Algorithm::Md5, "1001", PW, 1);
    let r = send(&mut ep, t0, register("1001", 2, 10, Some(a)), &p);
    assert_eq!(r[0].status(), Some(StatusCode::INTERVAL_TOO_BRIEF));
    assert_eq!(
        r[0].header(&HeaderName::MinExpires).unwrap().as_ref(),
        b"60"
    );
}

#[test]
fn registration_lapses_on_the_virtual_clock() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let chal = send(&mut ep, t0, register("1002", 1, 60, None), &p);
    let a = answer(&chal[0], Algorithm::Md5, "1002", "demo-1002-change-me", 1);
    assert_eq!(
        send(&mut ep, t0, register("1002", 2, 60, Some(a)), &p)[0].status(),
        Some(StatusCode::OK)
    );
    let mut now = t0;
    while let Some(at) = ep.poll_timeout() {
        now = at;
        ep.handle_timeout(at);
        while ep.poll_transmit().is_some() {}
    }
    assert!(now >= t0 + Duration::from_secs(60));
    assert!(ep.registrations(now).is_empty());
}
