//! The brute-force guard seen from outside: sources failing authentication banned by
//! address, answered as the policy says, listed and lifted, exempt networks spared.

use super::*;

/// The shipped config with a guard that bans after `after` failures for a minute.
fn guarded(t0: Instant, after: u32, answer: &str) -> (Endpoint, String) {
    let text = EMBEDDED
        .replace(
            "ban_after_failures = 10",
            &format!("ban_after_failures = {after}"),
        )
        .replace("ban_time_s = 600", "ban_time_s = 60")
        .replace(
            "ban_answer = \"drop\"",
            &format!("ban_answer = \"{answer}\""),
        )
        .replace("ban_exempt = []", "ban_exempt = [\"127.0.9.0/24\"]");
    let cfg = Config::from_str(&text, "embedded").unwrap();
    (Endpoint::new(&cfg, t0, 1_700_000_000_000, 1, [9; 32]), text)
}

/// One guess at 1001's password from `p`: the challenge, then a wrong answer; what the
/// endpoint sent back to each. `n` numbers the guess across the test (it makes the
/// branches, which would otherwise match an earlier guess's transaction).
fn guess(ep: &mut Endpoint, now: Instant, p: &Peer, n: u32) -> Vec<u16> {
    let codes = |m: &[Message]| -> Vec<u16> {
        m.iter()
            .filter_map(|m| m.status())
            .map(|s| s.as_u16())
            .collect()
    };
    let chal = send(ep, now, register("1001", 100 + 2 * n, 120, None), p);
    let mut got = codes(&chal);
    if let Some(c) = chal
        .first()
        .filter(|c| c.status() == Some(StatusCode::UNAUTHORIZED))
    {
        let bad = answer(c, Algorithm::Md5, "1001", &format!("guess-{n}"), 1);
        got.extend(codes(&send(
            ep,
            now,
            register("1001", 101 + 2 * n, 120, Some(bad)),
            p,
        )));
    }
    got
}

#[test]
fn a_source_guessing_passwords_is_dropped_while_the_real_phone_registers() {
    let t0 = Instant::now();
    let (mut ep, _) = guarded(t0, 3, "drop");
    let attacker = peer("127.0.0.5");
    for n in 1..=3 {
        assert_eq!(guess(&mut ep, t0, &attacker, n), [401, 403], "guess {n}");
    }
    assert_eq!(ep.stats().bans, 1);
    // Banned: nothing comes back, not even a challenge.
    assert!(guess(&mut ep, t0, &attacker, 4).is_empty());
    assert_eq!(ep.stats().banned_messages, 1);
    let listed = ep.bans(t0);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].addr, listed[0].banned_for_s, listed[0].bans),
        ("127.0.0.5".parse().unwrap(), 60, 1)
    );
    // The extension's own phone, elsewhere, is not shut out.
    let phone = peer("127.0.0.1");
    let chal = send(&mut ep, t0, register("1001", 1, 120, None), &phone);
    let ok = answer(&chal[0], Algorithm::Md5, "1001", PW, 1);
    let r = send(&mut ep, t0, register("1001", 2, 120, Some(ok)), &phone);
    assert_eq!(r[0].status(), Some(StatusCode::OK));
    // The ban ends on its own; the next round of failures bans for twice as long.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(guess(&mut ep, later, &attacker, 5), [401, 403]);
    guess(&mut ep, later, &attacker, 6);
    guess(&mut ep, later, &attacker, 7);
    assert_eq!(ep.bans(later)[0].banned_for_s, 120);
    // Lifted by hand, it is challenged again at once.
    assert!(ep.unban("127.0.0.5".parse().unwrap()));
    assert!(!ep.unban("127.0.0.5".parse().unwrap()));
    assert_eq!(guess(&mut ep, later, &attacker, 8), [401, 403]);
}

#[test]
fn a_banned_source_may_be_told_403_and_exempt_networks_are_never_banned() {
    let t0 = Instant::now();
    let (mut ep, text) = guarded(t0, 2, "403");
    let office = peer("127.0.9.20");
    for n in 1..=5 {
        assert_eq!(guess(&mut ep, t0, &office, n), [401, 403], "guess {n}");
    }
    assert!(ep.bans(t0).is_empty());
    let attacker = peer("127.0.0.5");
    guess(&mut ep, t0, &attacker, 11);
    guess(&mut ep, t0, &attacker, 12);
    // Every request is refused 403 before anything else, with no transaction kept...
    let before = ep.transaction_count();
    assert_eq!(guess(&mut ep, t0, &attacker, 13), [403]);
    assert_eq!(ep.transaction_count(), before);
    // ... and an ACK or a response gets nothing.
    let ack = Bytes::from_static(
        b"ACK sip:1001@switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.5:5070;branch=z9hG4bKk\r\n\
From: <sip:x@y>;tag=1\r\nTo: <sip:1001@switchboard.local>;tag=2\r\nCall-ID: a1\r\nCSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n",
    );
    assert!(send(&mut ep, t0, ack, &attacker).is_empty());
    // A reload keeps the ban; one that exempts the source lifts it.
    let cfg = Config::from_str(&text, "embedded").unwrap();
    ep.reload(t0, &cfg);
    assert_eq!(guess(&mut ep, t0, &attacker, 14), [403]);
    let cfg = Config::from_str(
        &text.replace("[\"127.0.9.0/24\"]", "[\"127.0.9.0/24\", \"127.0.0.5\"]"),
        "embedded",
    )
    .unwrap();
    ep.reload(t0, &cfg);
    assert_eq!(guess(&mut ep, t0, &attacker, 15), [401, 403]);
    assert_eq!(ep.stats().banned_messages, 3);
}

#[test]
fn challenges_and_refusals_keep_no_transaction_so_a_flood_costs_no_memory() {
    let t0 = Instant::now();
    let text = EMBEDDED.replace("rate_per_source = 100", "rate_per_source = 0");
    let cfg = Config::from_str(&text, "embedded").unwrap();
    let mut ep = Endpoint::new(&cfg, t0, 1_700_000_000_000, 1, [9; 32]);
    let p = peer("127.0.0.1");
    // A phone looping on REGISTER (or SUBSCRIBE) without credentials (no rate limit
    // here, to see what each costs): each is challenged, and nothing is kept to absorb
    // a retransmission.
    for n in 0..1000 {
        let r = send(&mut ep, t0, register("1001", n, 120, None), &p);
        assert_eq!(r[0].status(), Some(StatusCode::UNAUTHORIZED));
    }
    assert_eq!(ep.transaction_count(), 0);
    // A retransmission is challenged afresh.
    let again = send(&mut ep, t0, register("1001", 7, 120, None), &p);
    assert_eq!(again[0].status(), Some(StatusCode::UNAUTHORIZED));
    // A refused answer keeps nothing either.
    let chal = send(&mut ep, t0, register("1001", 2000, 120, None), &p);
    let bad = answer(&chal[0], Algorithm::Md5, "1001", "wrong", 1);
    let r = send(&mut ep, t0, register("1001", 2001, 120, Some(bad)), &p);
    assert_eq!(r[0].status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(ep.transaction_count(), 0);
    // An INVITE without credentials: 100 and 407, then nothing more to send (the
    // challenge is not retransmitted to a source that may be spoofed), and its ACK is
    // absorbed.
    let invite = Bytes::from_static(
        b"INVITE sip:1002@switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKi1\r\n\
From: <sip:1001@switchboard.local>;tag=i1\r\nTo: <sip:1002@switchboard.local>\r\nCall-ID: flood-i1\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
    );
    let r = send(&mut ep, t0, invite, &p);
    let codes: Vec<u16> = r
        .iter()
        .filter_map(|m| m.status())
        .map(|s| s.as_u16())
        .collect();
    assert_eq!(codes, [100, 407]);
    assert_eq!(ep.transaction_count(), 0);
    ep.handle_timeout(t0 + Duration::from_secs(10));
    assert!(transmits(&mut ep).is_empty(), "no retransmitted 407");
}

#[test]
fn a_source_beyond_its_rate_is_dropped_and_others_are_answered() {
    let t0 = Instant::now();
    let text = EMBEDDED
        .replace("rate_per_source = 100", "rate_per_source = 10")
        .replace("rate_burst = 300", "rate_burst = 20")
        .replace("ban_exempt = []", "ban_exempt = [\"127.0.9.0/24\"]");
    let cfg = Config::from_str(&text, "embedded").unwrap();
    let mut ep = Endpoint::new(&cfg, t0, 1_700_000_000_000, 1, [9; 32]);
    let options = |n: u32| {
        Bytes::from(format!(
            "OPTIONS sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKo{n}\r\n\
From: <sip:x@y>;tag=1\r\nTo: <sip:switchboard.local>\r\nCall-ID: o{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    let answered = |ep: &mut Endpoint, now: Instant, p: &Peer, range: std::ops::Range<u32>| {
        range
            .filter(|n| !send(ep, now, options(*n), p).is_empty())
            .count()
    };
    let (flood, phone, office) = (peer("127.0.0.5"), peer("127.0.0.1"), peer("127.0.9.9"));
    assert_eq!(answered(&mut ep, t0, &flood, 0..100), 20);
    assert_eq!(ep.stats().rate_limited, 80);
    assert_eq!(answered(&mut ep, t0, &phone, 100..105), 5);
    assert_eq!(answered(&mut ep, t0, &office, 200..300), 100, "exempt");
    // A second on, ten more from the flooding source.
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(answered(&mut ep, t1, &flood, 300..400), 10);
    // Responses are never held back: they answer what we sent.
    let before = ep.stats().rate_limited;
    let stray = Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: s1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    send(&mut ep, t1, stray, &flood);
    assert_eq!(ep.stats().rate_limited, before);
}
