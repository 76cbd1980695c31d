//! The endpoint on a virtual clock: registration with digest auth end to end, in memory;
//! the call layer through a harness of phones ([`harness`], tests in [`calls`]).

mod attended;
mod bans;
mod blf;
mod calls;
mod consult;
mod features;
mod harness;
mod inactive;
mod lines;
mod media_model;
mod park;
mod pickup;
mod pins;
mod prack;
mod refresh;
mod session_timer;
mod toll;

use super::*;
use crate::config::EMBEDDED;
use crate::sip::auth::{ha1, response, Algorithm};
use crate::sip::header::Transport;
use crate::sip::parse::parse_datagram;
use crate::sip::transaction::response_to;
use call::state::Status;
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

/// What the endpoint sends, drained through `poll_output` as the driver does (the other
/// outputs do not concern these tests).
fn transmits(ep: &mut Endpoint) -> Vec<crate::sip::transaction::Transmit> {
    std::iter::from_fn(|| ep.poll_output())
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn send(ep: &mut Endpoint, now: Instant, bytes: Bytes, p: &Peer) -> Vec<Message> {
    ep.handle_datagram(now, bytes, p.clone());
    transmits(ep)
        .into_iter()
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
    let raw = transmits(&mut ep).remove(0).bytes;
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
fn a_register_for_no_sip_address_is_400_saying_why_and_an_unknown_scheme_is_challenged() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let reg = |cseq, from: &str, to: &str| {
        Bytes::from(
            String::from_utf8_lossy(&register("1001", cseq, 120, None))
                .replace("To: <sip:1001@switchboard.local>", to)
                .replace("From: <sip:1001@switchboard.local>", from),
        )
    };
    let from = "From: <sip:1001@switchboard.local>";
    let to = "To: <sip:1001@switchboard.local>";
    for (cseq, from, to) in [
        (1, from, "To: isbn:2983792873"),
        (2, "From: <http://www.example.com>", to),
    ] {
        ep.handle_datagram(t0, reg(cseq, from, to), p.clone());
        let raw = transmits(&mut ep).remove(0).bytes;
        assert!(
            raw.starts_with(b"SIP/2.0 400 Bad Request (To and From must be SIP or SIPS URIs)\r\n"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    // Credentials of a scheme we do not know are met with our Digest challenge.
    let r = send(
        &mut ep,
        t0,
        register(
            "1001",
            3,
            120,
            Some("NoOneKnowsThisScheme opaque-data=here".into()),
        ),
        &p,
    );
    assert_eq!(r[0].status(), Some(StatusCode::UNAUTHORIZED));
    let challenge = r[0].header(&HeaderName::WwwAuthenticate).unwrap();
    assert!(challenge.starts_with(b"Digest "), "{challenge:?}");
    assert_eq!(ep.stats().auth_failures, 0);
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
        transmits(&mut ep);
    }
    assert!(now >= t0 + Duration::from_secs(60));
    assert!(ep.registrations(now).is_empty());
}

// ---- Agents, callbacks and reload (calls themselves are in calls.rs) -----------------

/// 1001's MD5 digest answer with `pw` to the challenge in `chal`'s `header`, for `method`
/// on `uri`.
fn md5_answer_1001(
    chal: &Message,
    header: &HeaderName,
    method: &str,
    uri: &str,
    pw: &str,
) -> String {
    let c = String::from_utf8_lossy(chal.header(header).unwrap()).into_owned();
    let nonce = c
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let h = ha1(Algorithm::Md5, "1001", "switchboard.local", pw);
    let r = response(
        Algorithm::Md5,
        &h,
        method,
        uri,
        &nonce,
        Some(("00000001", "ab")),
    );
    format!("Digest username=\"1001\", realm=\"switchboard.local\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", algorithm=MD5, cnonce=\"ab\", qop=auth, nc=00000001")
}

/// Everything the endpoint sent, parsed, with where it went.
fn outputs(ep: &mut Endpoint) -> Vec<(Peer, Message)> {
    transmits(ep)
        .into_iter()
        .filter_map(|t| Some((t.peer, parse_datagram(t.bytes, &Limits::default()).ok()?)))
        .collect()
}

fn run_until(ep: &mut Endpoint, until: Instant) -> Vec<(Instant, Peer, Message)> {
    let mut got = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        if at > until {
            break;
        }
        ep.handle_timeout(at);
        got.extend(outputs(ep).into_iter().map(|(p, m)| (at, p, m)));
    }
    got
}

#[test]
fn an_agent_logs_in_by_id_and_pin_at_a_phone_and_wrong_pins_lock_the_phone_not_the_id() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let state = |ep: &Endpoint| ep.acd.agent_state("5001");
    assert_eq!(state(&ep), crate::acd::AgentState::LoggedOut);
    // The shipped demo PIN is public: loopback only.
    assert_eq!(
        ep.agent_login_pin(t0, "1001", false, "5001", "45001"),
        Status::Failed
    );
    assert_eq!(
        ep.agent_login_pin(t0, "1001", true, "9999", "45001"),
        Status::Failed
    );
    // A phone whose own extension is a logged-in agent takes no other agent.
    assert_eq!(
        ep.agent_login_pin(t0, "1002", true, "5001", "45001"),
        Status::Busy
    );
    // Five wrong PINs (the demo PIN from afar and an ID that does not exist counted
    // alike) lock the phone that keyed them, right PIN or not, for five minutes, and the
    // same for an ID that does not exist: nothing tells an ID that exists from one that
    // does not.
    for _ in 0..3 {
        assert_eq!(
            ep.agent_login_pin(t0, "1001", true, "5001", "0000"),
            Status::Failed
        );
    }
    for id in ["5001", "9999"] {
        assert_eq!(
            ep.agent_login_pin(t0, "1001", true, id, "45001"),
            Status::Locked
        );
    }
    // The agent is not locked out: from another phone its PIN works (and a right PIN
    // there clears that phone's own wrong one).
    ep.agent_action(t0, "1003", crate::acd::AgentOp::Logout)
        .unwrap();
    assert_eq!(
        ep.agent_login_pin(t0, "1003", true, "5001", "1234"),
        Status::Failed
    );
    assert_eq!(
        ep.agent_login_pin(t0, "1003", true, "5001", "45001"),
        Status::Ok
    );
    assert_eq!(ep.agent_phone("5001"), "1003");
    ep.agent_action(t0, "5001", crate::acd::AgentOp::Logout)
        .unwrap();
    let later = t0 + Duration::from_secs(301);
    assert_eq!(
        ep.agent_login_pin(later, "1001", true, "5001", "45001"),
        Status::Ok
    );
    assert_eq!(state(&ep), crate::acd::AgentState::Available);
    let view = ep.agents(later);
    let a = view.iter().find(|a| a.agent == "5001").unwrap();
    assert_eq!(a.phone.as_deref(), Some("1001"));
    assert_eq!(a.queues, ["support"]);
    assert!(!a.reachable, "1001 has no phone registered");
    assert_eq!(ep.agent_phone("5001"), "1001");
    // Codes from that phone act for the agent; a logout ends its stay there.
    ep.agent_action(later, "1001", crate::acd::AgentOp::Pause("02".into()))
        .unwrap();
    assert_eq!(state(&ep), crate::acd::AgentState::Paused("02".into()));
    ep.agent_action(later, "1001", crate::acd::AgentOp::Logout)
        .unwrap();
    assert_eq!(state(&ep), crate::acd::AgentState::LoggedOut);
    assert_eq!(ep.agent_phone("5001"), "5001");
    let e = ep
        .agent_action(later, "5001", crate::acd::AgentOp::Login)
        .unwrap_err();
    assert!(e.contains("not at a phone"), "{e}");
}

#[test]
fn only_our_extensions_and_numbers_the_trunk_allows_are_called_back() {
    let ep = endpoint(Instant::now());
    assert!(ep.may_call_back("1001", None));
    assert!(!ep.may_call_back("9999", None), "no such extension");
    assert!(ep.may_call_back("+15557654321", Some("demo")));
    for claimed in ["+19005551234", "911", "+1555", "1001", "+15557654321;x"] {
        assert!(!ep.may_call_back(claimed, Some("demo")), "{claimed}");
    }
    assert!(
        !ep.may_call_back("+15557654321", Some("nope")),
        "unknown trunk"
    );
}

#[test]
fn a_reload_making_an_occupied_phone_a_member_keeps_one_agent_on_it() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    assert_eq!(
        ep.agent_login_pin(t0, "1001", true, "5001", "45001"),
        Status::Ok
    );
    let text = EMBEDDED.replace(
        "members = [\"1002\", \"1003\"]",
        "members = [\"1001\", \"1002\", \"1003\"]",
    );
    let cfg = Config::from_str(&text, "embedded").unwrap();
    ep.reload(t0, &cfg);
    assert_eq!(
        ep.acd.agent_state("1001"),
        crate::acd::AgentState::LoggedOut
    );
    assert_eq!(
        ep.acd.agent_state("5001"),
        crate::acd::AgentState::Available
    );
    assert_eq!(ep.agent_phone("5001"), "1001");
}

/// The shipped config with the demo trunk registering as acct-77 (password trunk-secret).
fn registering_endpoint(t0: Instant) -> Endpoint {
    let text = EMBEDDED.replace(
        "address = \"127.0.0.2:5060\"",
        "address = \"127.0.0.2:5060\"\nusername = \"acct-77\"\npassword = \"trunk-secret\"\nregister = true\nregister_expires_s = 600",
    );
    assert_ne!(text, EMBEDDED);
    let cfg = Config::from_str(&text, "embedded").unwrap();
    Endpoint::new(&cfg, t0, 1_700_000_000_000, 1, [9; 32])
}

/// Steps the endpoint's clock from timer to timer until it sends a new REGISTER (returned
/// with the instant it went out; retransmissions of `prev` are passed over), failing past
/// `limit`.
fn next_register(ep: &mut Endpoint, limit: Instant, prev: Option<&Message>) -> (Instant, Message) {
    let prev_seq = prev.map(|m| m.cseq().unwrap().seq);
    loop {
        let at = ep.poll_timeout().expect("a timer is armed");
        assert!(at <= limit, "no REGISTER before the limit");
        ep.handle_timeout(at);
        let regs: Vec<Message> = transmits(ep)
            .into_iter()
            .map(|t| {
                assert_eq!(t.peer.addr, "127.0.0.2:5060".parse().unwrap());
                parse_datagram(t.bytes, &Limits::default()).unwrap()
            })
            .filter(|m| {
                m.request_line()
                    .is_some_and(|r| r.method == Method::Register)
            })
            .filter(|m| Some(m.cseq().unwrap().seq) != prev_seq)
            .collect();
        if let Some(m) = regs.into_iter().next() {
            return (at, m);
        }
    }
}

/// The provider's answer to `req`: `code`, with a challenge for 401 (nonce `nonce`) or a
/// grant of `expires` s for 200. Returns what the endpoint sent in reply.
fn provider_says(
    ep: &mut Endpoint,
    now: Instant,
    req: &Message,
    code: u16,
    extra: &str,
) -> Vec<Message> {
    let mut resp = response_to(
        req,
        crate::sip::StatusCode::new(code).unwrap(),
        Some("prov"),
    );
    for line in extra.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap();
        resp.set_header(
            HeaderName::from_bytes(&Bytes::copy_from_slice(name.as_bytes())),
            value.to_string(),
        );
    }
    let p = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.2:5060".parse().unwrap(),
    };
    send(ep, now, resp.to_bytes(), &p)
        .into_iter()
        .filter(|m| m.request_line().is_some())
        .collect()
}

/// Checks the REGISTER's digest against the trunk's password.
fn assert_digest(reg: &Message, nonce: &str) {
    let a = String::from_utf8_lossy(reg.header(&HeaderName::Authorization).expect("answered"))
        .into_owned();
    let param = |name: &str| {
        a.split(&format!("{name}="))
            .nth(1)
            .unwrap()
            .split([',', ' '])
            .next()
            .unwrap()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(param("nonce"), nonce);
    let h = ha1(Algorithm::Md5, "acct-77", "trunk.example", "trunk-secret");
    let want = response(
        Algorithm::Md5,
        &h,
        "REGISTER",
        &param("uri"),
        nonce,
        Some((&param("nc"), &param("cnonce"))),
    );
    assert_eq!(param("response"), want, "{a}");
}

fn trunk_state(ep: &Endpoint, now: Instant) -> (String, u64) {
    let v = ep.trunk_registrations(now);
    (v[0].state.clone(), v[0].expires_in)
}

#[test]
fn a_trunk_registration_refreshes_is_challenged_again_and_retries_after_403_and_silence() {
    let t0 = Instant::now();
    let mut ep = registering_endpoint(t0);
    let s = Duration::from_secs;
    let challenge = |nonce: &str| {
        format!("WWW-Authenticate: Digest realm=\"trunk.example\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"")
    };
    // First REGISTER, challenged, answered with the right digest, granted 100 s.
    let (at, reg) = next_register(&mut ep, t0 + s(5), None);
    let again = provider_says(&mut ep, at, &reg, 401, &challenge("n1"));
    assert_eq!(again.len(), 1);
    assert_digest(&again[0], "n1");
    assert!(provider_says(&mut ep, at, &again[0], 200, "Expires: 100").is_empty());
    assert_eq!(trunk_state(&ep, at), ("registered".into(), 100));
    // Refreshed at four fifths of the grant, and challenged again with a new nonce.
    let (refresh, reg) = next_register(&mut ep, at + s(200), Some(&again[0]));
    assert_eq!(refresh - at, s(80));
    let again = provider_says(&mut ep, refresh, &reg, 401, &challenge("n2"));
    assert_digest(&again[0], "n2");
    // Refused: failed, tried again 60 s later (not in a loop).
    assert!(provider_says(&mut ep, refresh, &again[0], 403, "").is_empty());
    assert!(
        trunk_state(&ep, refresh).0.starts_with("failed: 403"),
        "{:?}",
        trunk_state(&ep, refresh)
    );
    let (retry, reg) = next_register(&mut ep, refresh + s(200), Some(&again[0]));
    assert_eq!(retry - refresh, s(60));
    // A challenge to the answer itself (a wrong password) is not answered a second time.
    let again = provider_says(&mut ep, retry, &reg, 401, &challenge("n3"));
    assert_eq!(again.len(), 1);
    assert!(provider_says(&mut ep, retry, &again[0], 401, &challenge("n4")).is_empty());
    assert!(trunk_state(&ep, retry).0.starts_with("failed: 401"));
    // No answer at all: failed once the transaction times out (64*T1), retried 60 s on.
    let (silent, first) = next_register(&mut ep, retry + s(200), Some(&again[0]));
    assert_eq!(silent - retry, s(60));
    let (after, reg) = next_register(&mut ep, silent + s(200), Some(&first));
    assert_eq!(trunk_state(&ep, after).0, "failed: no response");
    assert_eq!(after - silent, s(32 + 60));
    // And it recovers.
    let again = provider_says(&mut ep, after, &reg, 401, &challenge("n5"));
    assert_digest(&again[0], "n5");
    provider_says(&mut ep, after, &again[0], 200, "Expires: 600");
    assert_eq!(trunk_state(&ep, after), ("registered".into(), 600));
}

// ---- Message-waiting subscriptions on a virtual clock --------------------------------

fn subscribe(mailbox: &str, cseq: u32, event: &str, expires: u32, auth: Option<String>) -> Bytes {
    // Each request its own transaction.
    static BRANCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let b = BRANCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "SUBSCRIBE sip:{mailbox}@switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKs{b};rport\r\n\
From: <sip:1001@switchboard.local>;tag=phone\r\nTo: <sip:{mailbox}@switchboard.local>\r\nCall-ID: mwi-{mailbox}-{expires}\r\n\
CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:1001@127.0.0.1:5070>\r\nEvent: {event}\r\nExpires: {expires}\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
    ))
}

/// 1001 (with `pw`) subscribes to `mailbox`'s message summary; every answer and request
/// the endpoint sent back.
fn subscribe_as_1001(
    ep: &mut Endpoint,
    now: Instant,
    mailbox: &str,
    expires: u32,
    pw: &str,
) -> Vec<Message> {
    let chal = send(
        ep,
        now,
        subscribe(mailbox, 1, "message-summary", expires, None),
        &peer("127.0.0.1"),
    );
    assert_eq!(chal[0].status(), Some(StatusCode::UNAUTHORIZED));
    let uri = format!("sip:{mailbox}@switchboard.local");
    let auth = md5_answer_1001(
        &chal[0],
        &HeaderName::WwwAuthenticate,
        "SUBSCRIBE",
        &uri,
        pw,
    );
    send(
        ep,
        now,
        subscribe(mailbox, 2, "message-summary", expires, Some(auth)),
        &peer("127.0.0.1"),
    )
}

/// A refresh inside the subscription that `ok` (its 200) set up.
fn refresh(ep: &mut Endpoint, now: Instant, ok: &Message, expires: u32) -> Vec<Message> {
    let call_id = String::from_utf8_lossy(ok.call_id().unwrap()).into_owned();
    let to = String::from_utf8_lossy(ok.header(&HeaderName::To).unwrap()).into_owned();
    let bytes = Bytes::from(format!(
        "SUBSCRIBE sip:1001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrf{call_id}{expires};rport\r\n\
From: <sip:1001@switchboard.local>;tag=phone\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
CSeq: 3 SUBSCRIBE\r\nContact: <sip:1001@127.0.0.1:5070>\r\nEvent: message-summary\r\nExpires: {expires}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    send(ep, now, bytes, &peer("127.0.0.1"))
}

fn header(m: &Message, name: &str) -> String {
    let n = HeaderName::Other(Bytes::copy_from_slice(name.as_bytes()));
    m.header(&n)
        .or_else(|| match name {
            "Expires" => m.header(&HeaderName::Expires),
            _ => None,
        })
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn notifies(out: &[Message]) -> Vec<&Message> {
    out.iter()
        .filter(|m| m.method() == Some(Method::Notify))
        .collect()
}

/// The phone answers a NOTIFY with `code`.
fn phone_answers(ep: &mut Endpoint, now: Instant, notify: &Message, code: u16) -> Vec<Message> {
    let r = response_to(notify, StatusCode::new(code).unwrap(), None);
    send(ep, now, r.to_bytes(), &peer("127.0.0.1"))
}

#[test]
fn message_waiting_is_refused_for_other_packages_other_boxes_and_wrong_passwords() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    let p = peer("127.0.0.1");
    let r = send(&mut ep, t0, subscribe("1001", 1, "presence", 600, None), &p);
    assert_eq!(
        r[0].status(),
        StatusCode::new(489),
        "an event package we do not serve"
    );
    assert_eq!(header(&r[0], "Allow-Events"), "message-summary, dialog");
    let r = subscribe_as_1001(&mut ep, t0, "1002", 600, PW);
    assert_eq!(
        r[0].status(),
        Some(StatusCode::FORBIDDEN),
        "another phone's box"
    );
    assert!(notifies(&r).is_empty());
    let r = subscribe_as_1001(&mut ep, t0, "1001", 600, "wrong-password");
    assert_eq!(
        r[0].status(),
        Some(StatusCode::FORBIDDEN),
        "a wrong password"
    );
    assert!(notifies(&r).is_empty());
    // The positive control: the same request with the right password is served.
    let r = subscribe_as_1001(&mut ep, t0, "1001", 600, PW);
    assert_eq!(r[0].status(), Some(StatusCode::OK));
    assert_eq!(header(&r[0], "Expires"), "600");
    assert_eq!(notifies(&r).len(), 1);
}

#[test]
fn message_waiting_lapses_unless_refreshed_and_a_phone_refusing_a_notify_is_dropped() {
    let t0 = Instant::now();
    let mut ep = endpoint(t0);
    // Ten seconds asked, the least granted is a minute.
    let r = subscribe_as_1001(&mut ep, t0, "1001", 10, PW);
    assert_eq!(r[0].status(), Some(StatusCode::OK));
    assert_eq!(header(&r[0], "Expires"), "60");
    let first = notifies(&r);
    assert_eq!(header(first[0], "Subscription-State"), "active;expires=60");
    assert!(String::from_utf8_lossy(&first[0].body).contains("Messages-Waiting: no"));
    phone_answers(&mut ep, t0, first[0], 200);
    // Nothing until the minute is up; then the last NOTIFY says it ended.
    let quiet = run_until(&mut ep, t0 + Duration::from_millis(59_999));
    assert!(
        quiet
            .iter()
            .all(|(_, _, m)| m.method() != Some(Method::Notify)),
        "{quiet:?}"
    );
    let last = run_until(&mut ep, t0 + Duration::from_secs(60));
    let ends: Vec<_> = last
        .iter()
        .filter(|(_, _, m)| m.method() == Some(Method::Notify))
        .collect();
    assert_eq!(ends.len(), 1, "{last:?}");
    assert_eq!(ends[0].0, t0 + Duration::from_secs(60));
    assert_eq!(
        header(&ends[0].2, "Subscription-State"),
        "terminated;reason=timeout"
    );
    let ended = ends[0].2.clone();
    phone_answers(&mut ep, t0 + Duration::from_secs(60), &ended, 200);

    // A new message: a live subscription hears of it; one whose phone answered 481 does
    // not.
    let now = t0 + Duration::from_secs(61);
    let refusing = subscribe_as_1001(&mut ep, now, "1001", 600, PW);
    phone_answers(&mut ep, now, notifies(&refusing)[0], 481);
    let listening = subscribe_as_1001(&mut ep, now, "1001", 3600, PW);
    phone_answers(&mut ep, now, notifies(&listening)[0], 200);
    ep.mailboxes.insert(
        "1001".into(),
        crate::voicemail::Mailbox {
            messages: vec![crate::voicemail::VmMessage {
                file: "1.wav".into(),
                caller: "1002".into(),
                at_ms: 1,
                ms: 1000,
                heard: false,
            }],
            greeting: false,
        },
    );
    ep.mailbox_changed(now, "1001");
    // What a handler does after any change: what the transactions have to send goes out.
    ep.handle_timeout(now);
    let out: Vec<Message> = outputs(&mut ep).into_iter().map(|(_, m)| m).collect();
    let told = notifies(&out);
    assert_eq!(
        told.len(),
        1,
        "only the subscription still standing: {out:?}"
    );
    assert_eq!(told[0].call_id(), listening[0].call_id());
    assert!(String::from_utf8_lossy(&told[0].body).contains("Voice-Message: 1/0"));
    phone_answers(&mut ep, now, told[0], 200);
    // The refused one is gone: its refresh finds no subscription; the other's is served.
    let r = refresh(&mut ep, now, &refusing[0], 600);
    assert_eq!(r[0].status(), StatusCode::new(481), "{r:?}");
    let r = refresh(&mut ep, now, &listening[0], 3600);
    assert_eq!(r[0].status(), Some(StatusCode::OK), "{r:?}");
}
