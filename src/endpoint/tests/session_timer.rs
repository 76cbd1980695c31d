//! Session timers negotiated with RFC 4028's headers, through the phone harness: each
//! leg keeps the interval and refresher it agreed, refreshes by UPDATE where it can, and a
//! party that should refresh and does not is hung up on before its interval runs out.

use bytes::Bytes;
use std::time::Duration;

use super::calls::two_phones;
use super::harness::{cdr_line, CallRef, Pbx, Phone};
use crate::sip::msg::{HeaderName, Message, Method};

fn header(m: &Message, name: HeaderName) -> Option<String> {
    m.header(&name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Alice's INVITE with `headers` to Bob, who answers plainly: Alice's 2xx and the call.
fn call_with(headers: &[(HeaderName, &'static str)]) -> (Pbx, Phone, Phone, CallRef, Message) {
    let (mut pbx, mut alice, mut bob) = two_phones();
    for (n, v) in headers {
        alice
            .invite_headers
            .push((n.clone(), Bytes::from_static(v.as_bytes())));
    }
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    let ok = alice.expect_status(&mut pbx, Method::Invite, 200);
    alice.ack_this(&mut pbx, &a, &ok);
    alice.clear(&mut pbx);
    bob.clear(&mut pbx);
    (pbx, alice, bob, a, ok)
}

/// Alice's UPDATE without a body on `a`, carrying `se`.
fn update(pbx: &mut Pbx, alice: &mut Phone, a: &CallRef, se: &str) -> Message {
    let mut m = alice.in_dialog(a, Method::Update);
    m.push_header(HeaderName::SessionExpires, se.to_string());
    m.push_header(HeaderName::Supported, "timer");
    pbx.deliver(&alice.peer, &m);
    alice.expect_status(pbx, Method::Update, 200)
}

#[test]
fn a_caller_that_refreshes_by_update_keeps_its_call_until_it_stops() {
    let (mut pbx, mut alice, mut bob, a, ok) = call_with(&[
        (HeaderName::Supported, "timer"),
        (HeaderName::SessionExpires, "120;refresher=uac"),
    ]);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(header(&ok, HeaderName::Require).as_deref(), Some("timer"));
    // Alice refreshes at 60 s: answered with the interval, no body, nothing relayed.
    pbx.advance(Duration::from_secs(60));
    let r = update(&mut pbx, &mut alice, &a, "120;refresher=uac");
    assert_eq!(
        header(&r, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uac")
    );
    assert!(r.body.is_empty());
    assert!(bob.take(&mut pbx).is_empty());
    // Then she falls silent: at 60 + 120 - 32 s (the sweep's 3 s step later at most)
    // both are hung up on.
    pbx.advance(Duration::from_secs(87));
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    pbx.advance(Duration::from_secs(3));
    for phone in [&mut alice, &mut bob] {
        let bye = phone.expect_request(&mut pbx, Method::Bye);
        phone.reply(&mut pbx, &bye, 200);
    }
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=150000 answered 408 by system"
    );
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn an_interval_below_90_s_is_refused_with_422_and_our_min_se() {
    let (mut pbx, mut alice, _bob) = two_phones();
    alice
        .invite_headers
        .push((HeaderName::SessionExpires, Bytes::from_static(b"60")));
    alice.call(&mut pbx, "1002");
    let r = alice.expect_status(&mut pbx, Method::Invite, 422);
    assert_eq!(header(&r, HeaderName::MinSe).as_deref(), Some("90"));
    assert_eq!(pbx.calls().len(), 0);
}

#[test]
fn we_refresh_a_caller_that_left_it_to_us_by_update_and_one_gone_ends_the_call() {
    let (mut pbx, mut alice, mut bob, _a, ok) = call_with(&[
        (HeaderName::Supported, "timer"),
        (HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, UPDATE"),
    ]);
    // Twice our refresh interval, refreshed by us.
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uas")
    );
    pbx.advance(Duration::from_secs(900));
    let up = alice.expect_request(&mut pbx, Method::Update);
    assert!(up.body.is_empty());
    assert_eq!(
        header(&up, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uac")
    );
    alice.reply(&mut pbx, &up, 200);
    // Bob negotiated nothing: he gets the plain refresh.
    let reinv = bob.expect_request(&mut pbx, Method::Invite);
    bob.reply(&mut pbx, &reinv, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    // At 1800 s Alice's phone is gone: the UPDATE times out and the call ends.
    pbx.advance(Duration::from_secs(900));
    let reinv = bob.expect_request(&mut pbx, Method::Invite);
    bob.reply(&mut pbx, &reinv, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.expect_request(&mut pbx, Method::Update);
    pbx.advance(Duration::from_secs(32));
    let reinv = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &reinv, 200);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=1832000 answered 408 by system"
    );
}

#[test]
fn a_callee_that_chose_to_refresh_and_stops_is_hung_up_on() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    let inv = pbx
        .last_sent(bob.peer.addr, Method::Invite)
        .expect("our INVITE");
    assert_eq!(
        header(&inv, HeaderName::SessionExpires).as_deref(),
        Some("1800")
    );
    assert!(header(&inv, HeaderName::Supported).is_some_and(|s| s.contains("timer")));
    bob.respond_with(
        &mut pbx,
        &b,
        200,
        true,
        &[
            (HeaderName::SessionExpires, "1800;refresher=uas"),
            (HeaderName::Require, "timer"),
        ],
    );
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    alice.clear(&mut pbx);
    // At 900 s Alice (no timer) gets the plain refresh; Bob, who refreshes, nothing.
    pbx.advance(Duration::from_secs(900));
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    alice.reply(&mut pbx, &reinv, 200);
    assert!(bob.take(&mut pbx).is_empty());
    // Bob's refresh keeps the call; the relayed re-INVITE carries Alice no timer.
    pbx.advance(Duration::from_secs(600));
    alice.clear(&mut pbx);
    let mut m = bob.in_dialog(&b, Method::Update);
    m.push_header(HeaderName::SessionExpires, "1800;refresher=uac");
    pbx.deliver(&bob.peer, &m);
    let r = bob.expect_status(&mut pbx, Method::Update, 200);
    assert_eq!(
        header(&r, HeaderName::SessionExpires).as_deref(),
        Some("1800;refresher=uac")
    );
    // He is silent from 1500 s: hung up on at 1500 + 1800 - 32 s (within a sweep),
    // while Alice answers her refreshes.
    for step in [300, 900] {
        pbx.advance(Duration::from_secs(step));
        let reinv = alice.expect_request(&mut pbx, Method::Invite);
        alice.reply(&mut pbx, &reinv, 200);
    }
    pbx.advance(Duration::from_secs(567));
    alice.clear(&mut pbx);
    assert!(bob.take(&mut pbx).is_empty());
    pbx.advance(Duration::from_secs(3));
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.cdrs[0].sip_code, 408);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn what_a_caller_may_ask_for_and_what_it_is_granted() {
    // A plain caller is granted nothing: no header, the plain refresh goes on.
    let (_, _, _, _, ok) = call_with(&[]);
    assert_eq!(header(&ok, HeaderName::SessionExpires), None);
    assert_eq!(header(&ok, HeaderName::Require), None);
    // A proxy asked for a timer on behalf of a caller that does not support it: we
    // refresh, whatever the request said, and require nothing of it.
    let (_, _, _, _, ok) = call_with(&[(HeaderName::SessionExpires, "120;refresher=uac")]);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("120;refresher=uas")
    );
    assert_eq!(header(&ok, HeaderName::Require), None);
    // 90 s is the least allowed, and allowed.
    let (_, _, _, _, ok) = call_with(&[
        (HeaderName::Supported, "timer"),
        (HeaderName::SessionExpires, "90"),
    ]);
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uas")
    );
}

#[test]
fn a_callers_min_se_raises_the_interval_we_would_choose() {
    let config =
        crate::config::EMBEDDED.replace("session_refresh_s = 900", "session_refresh_s = 100");
    let mut pbx = Pbx::with_config(&config);
    let mut alice = Phone::new("1001", 5070);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    for (n, v) in [(HeaderName::Supported, "timer"), (HeaderName::MinSe, "600")] {
        alice
            .invite_headers
            .push((n, Bytes::from_static(v.as_bytes())));
    }
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 200);
    let ok = alice.expect_status(&mut pbx, Method::Invite, 200);
    alice.ack_this(&mut pbx, &a, &ok);
    // Twice 100 s would be 200: below the caller's 600.
    assert_eq!(
        header(&ok, HeaderName::SessionExpires).as_deref(),
        Some("600;refresher=uas")
    );
}

#[test]
fn a_90_s_timer_the_caller_refreshes_is_given_a_third_of_it_from_its_last_refresh() {
    let (mut pbx, mut alice, mut bob, a, _) = call_with(&[
        (HeaderName::Supported, "timer"),
        (HeaderName::SessionExpires, "90;refresher=uac"),
    ]);
    // Refreshed at 44 s: due at 44 + 90 - 30 = 104 s, so the sweep at 102 s leaves the
    // call and the one at 105 s ends it.
    pbx.advance(Duration::from_secs(44));
    update(&mut pbx, &mut alice, &a, "90;refresher=uac");
    pbx.advance(Duration::from_secs(58));
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    pbx.advance(Duration::from_secs(3));
    alice.expect_request(&mut pbx, Method::Bye);
    bob.expect_request(&mut pbx, Method::Bye);
}

#[test]
fn each_of_our_refreshes_takes_the_next_cseq() {
    let (mut pbx, mut alice, mut bob, _a, _) = call_with(&[
        (HeaderName::Supported, "timer"),
        (HeaderName::Allow, "INVITE, ACK, BYE, CANCEL, UPDATE"),
    ]);
    let mut seqs = Vec::new();
    for _ in 0..2 {
        pbx.advance(Duration::from_secs(900));
        // Bob, with no timer, has his plain refresh meanwhile.
        let reinv = bob.expect_request(&mut pbx, Method::Invite);
        bob.reply(&mut pbx, &reinv, 200);
        bob.expect_request(&mut pbx, Method::Ack);
        let up = alice.expect_request(&mut pbx, Method::Update);
        seqs.push(up.cseq().unwrap().seq);
        alice.reply(&mut pbx, &up, 200);
    }
    assert_eq!(seqs[1], seqs[0] + 1, "{seqs:?}");
}
