//! Attended transfer through the phone harness: a phone with a held call and a
//! consultation joins the two other parties (REFER with Replaces), on either dialog,
//! answered or still ringing; what is not its own to join is refused.

use std::time::Duration;

use super::calls::{answered, call_state, hold, methods, our_port, refer_answer, two_phones};
use super::harness::{cdr_line, hang_up_all_clear, story_lines, CallRef, Pbx, Phone};
use super::media_model::Hears;
use crate::sdp::{Direction, Sdp};
use crate::sip::msg::{HeaderName, Message, Method};

/// Bob (1002) answered Alice (1001), put her on hold, and called Carol (1003), who
/// answered: each phone's calls, and the time is 15 s.
fn consulting(pbx: &mut Pbx, alice: &mut Phone, bob: &mut Phone, carol: &mut Phone) -> Calls {
    let (a, b) = answered(pbx, alice, bob);
    pbx.advance(Duration::from_secs(10));
    hold(pbx, bob, &b, alice);
    alice.clear(pbx);
    let bc = bob.call(pbx, "1003");
    let c = carol.incoming(pbx);
    carol.respond(pbx, &c, 180);
    pbx.advance(Duration::from_secs(2));
    carol.respond(pbx, &c, 200);
    carol.expect_request(pbx, Method::Ack);
    bob.ack(pbx, &bc);
    bob.clear(pbx);
    pbx.advance(Duration::from_secs(3));
    Calls { a, b, bc, c }
}

struct Calls {
    /// Alice's call, and Bob's side of it.
    a: CallRef,
    b: CallRef,
    /// Bob's consultation, and Carol's side of it.
    bc: CallRef,
    c: CallRef,
}

/// The transferor is told the transfer is done and hung up on both its calls; its
/// consultation is refused instead if it was never answered.
pub(super) fn transferor_released(pbx: &mut Pbx, bob: &mut Phone, consult_answered: bool) {
    bob.expect_status(pbx, Method::Refer, 202);
    let notify = bob.expect_request(pbx, Method::Notify);
    assert_eq!(&notify.body[..], b"SIP/2.0 200 OK\r\n");
    bob.reply(pbx, &notify, 200);
    let got = bob.take(pbx);
    let byes: Vec<&Message> = got
        .iter()
        .filter(|m| m.method() == Some(Method::Bye) && m.is_request())
        .collect();
    assert_eq!(
        byes.len(),
        if consult_answered { 2 } else { 1 },
        "{:?}",
        methods(&got)
    );
    for bye in byes {
        bob.reply(pbx, bye, 200);
    }
    if !consult_answered {
        assert!(
            got.iter()
                .any(|m| m.status().is_some_and(|s| s.as_u16() == 487)),
            "{:?}",
            got.iter().map(super::harness::summary).collect::<Vec<_>>()
        );
    }
}

/// The held party is offered sendrecv again: its phone would send nothing otherwise.
pub(super) fn taken_off_hold(pbx: &mut Pbx, phone: &mut Phone) {
    let reinv = phone.expect_request(pbx, Method::Invite);
    assert_eq!(
        Sdp::parse(&reinv.body).unwrap().direction(),
        Direction::SendRecv
    );
    phone.reply(pbx, &reinv, 200);
    phone.expect_request(pbx, Method::Ack);
}

#[test]
fn an_attended_transfer_joins_the_held_caller_with_the_consulted_party_from_either_dialog() {
    for on_consultation in [false, true] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let mut carol = Phone::new("1003", 5074);
        carol.register(&mut pbx);
        let k = consulting(&mut pbx, &mut alice, &mut bob, &mut carol);
        let (to_alice, to_carol) = (our_port(&alice, &k.a), our_port(&carol, &k.c));
        if on_consultation {
            bob.refer_replacing(&mut pbx, &k.bc, &k.b);
        } else {
            bob.refer_replacing(&mut pbx, &k.b, &k.bc);
        }
        transferor_released(&mut pbx, &mut bob, true);
        taken_off_hold(&mut pbx, &mut alice);
        // Alice and Carol talk, on the ports their phones had all along; Carol's phone
        // saw nothing of it.
        assert!(
            pbx.model.bridged(to_alice, to_carol),
            "{on_consultation}: {:?}",
            pbx.model
        );
        assert_eq!(pbx.model.on_port(to_alice).unwrap().hears, Hears::Nothing);
        assert!(carol.take(&mut pbx).is_empty(), "{on_consultation}");
        assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
        assert_eq!(pbx.calls()[0].caller, "1001");
        assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
        pbx.advance(Duration::from_secs(20));
        hang_up_all_clear(&mut pbx, &mut carol, &k.c, &mut alice);
        // The consultation ends when Bob leaves; Alice's call goes on with Carol in it.
        let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
        assert_eq!(
            lines,
            [
                "1002 -> 1003 did=- trunk=- start=10000 answer=12000 end=15000 answered 200 by caller",
                "1001 -> 1002 did=- trunk=- start=0 answer=0 end=35000 answered 200 by callee",
            ],
            "{on_consultation}"
        );
        assert_eq!(
            story_lines(&pbx, 0)[4..],
            [
                "15000 transferred to 1001 by caller (attended)",
                "15000 ended answered 200 by caller"
            ]
        );
        assert_eq!(
            story_lines(&pbx, 1)[4..],
            [
                "10000 held caller",
                "15000 transferred to 1003 by callee (attended)",
                "15000 bridged 1003",
                "35000 ended answered 200 by callee"
            ]
        );
    }
}

#[test]
fn a_consultation_still_ringing_is_handed_to_the_held_caller_who_hears_ringback() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    pbx.advance(Duration::from_secs(10));
    hold(&mut pbx, &mut bob, &b, &mut alice);
    alice.clear(&mut pbx);
    let bc = bob.call(&mut pbx, "1003");
    let c = carol.incoming(&mut pbx);
    carol.respond(&mut pbx, &c, 180);
    bob.clear(&mut pbx);
    pbx.advance(Duration::from_secs(2));
    // Bob transfers before Carol answers (RFC 5589 §7.5).
    bob.refer_replacing(&mut pbx, &b, &bc);
    transferor_released(&mut pbx, &mut bob, false);
    taken_off_hold(&mut pbx, &mut alice);
    let to_alice = our_port(&alice, &a);
    assert_eq!(
        pbx.model.on_port(to_alice).unwrap().hears,
        Hears::Music("sounds/ringback.wav".into())
    );
    assert_eq!(call_state(&pbx), ("ringing".into(), true, 1));
    assert_eq!(pbx.calls()[0].caller, "1001");
    pbx.advance(Duration::from_secs(3));
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(
        alice.take(&mut pbx).is_empty(),
        "Alice's call is up already"
    );
    assert!(
        pbx.model.bridged(to_alice, our_port(&carol, &c)),
        "{:?}",
        pbx.model
    );
    assert_eq!(pbx.model.on_port(to_alice).unwrap().hears, Hears::Nothing);
    pbx.advance(Duration::from_secs(10));
    hang_up_all_clear(&mut pbx, &mut alice, &a, &mut carol);
    let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    assert_eq!(
        lines,
        [
            "1001 -> 1002 did=- trunk=- start=0 answer=0 end=12000 answered 200 by callee",
            "1002 -> 1003 did=- trunk=- start=10000 answer=15000 end=25000 answered 200 by caller",
        ]
    );
    assert_eq!(
        story_lines(&pbx, 1),
        [
            "10000 started 1002 -> 1003",
            "10000 dialled 1003",
            "12000 transferred to 1001 by caller (attended)",
            "15000 bridged 1003",
            "15000 answered",
            "25000 ended answered 200 by caller"
        ]
    );
}

#[test]
fn an_attended_transfer_not_the_transferors_to_make_is_refused_and_both_calls_go_on() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let k = consulting(&mut pbx, &mut alice, &mut bob, &mut carol);
    // A dialog that does not exist; the REFER's own dialog; Carol naming Bob's dialogs
    // (she has no other call: nobody joins parties of calls that are not its own).
    refer_to(
        &mut pbx,
        &mut bob,
        &k.b,
        "sip:1003@switchboard.local?Replaces=nosuch%40pbx%3Bto-tag%3D1%3Bfrom-tag%3D2",
    );
    let (status, warning) = refer_answer(&mut pbx, &mut bob);
    assert_eq!(status, 403);
    assert!(warning.contains("no dialog"), "{warning}");
    bob.refer_replacing(&mut pbx, &k.b, &k.b);
    let (status, warning) = refer_answer(&mut pbx, &mut bob);
    assert_eq!(status, 403);
    assert!(warning.contains("itself"), "{warning}");
    // Carol's phone knows the consultation's dialog as its own; asking to join Bob's
    // parties through it names a dialog of Bob's, not hers.
    let b_leg = bob.call_state(&k.b).leg.clone();
    let uri = format!(
        "sip:1001@switchboard.local?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
        String::from_utf8_lossy(&b_leg.call_id).replace('@', "%40"),
        String::from_utf8_lossy(b_leg.remote_tag.as_ref().unwrap()),
        String::from_utf8_lossy(&b_leg.local_tag),
    );
    refer_to(&mut pbx, &mut carol, &k.c, &uri);
    let (status, warning) = refer_answer(&mut pbx, &mut carol);
    assert_eq!(status, 403);
    assert!(warning.contains("not the transferor's"), "{warning}");
    // A consultation that is neither answered nor ringing: Bob talks to the echo test.
    let echo = bob.call(&mut pbx, "600");
    bob.ack(&mut pbx, &echo);
    bob.clear(&mut pbx);
    bob.refer_replacing(&mut pbx, &k.b, &echo);
    let (status, warning) = refer_answer(&mut pbx, &mut bob);
    assert_eq!(status, 501);
    assert!(warning.contains("neither answered"), "{warning}");
    bob.bye(&mut pbx, &echo);
    bob.clear(&mut pbx);
    // Nothing changed: two calls, each as it was.
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    let v = pbx.calls();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|c| c.state == "bridged"), "{v:?}");
}

/// `phone` sends a REFER on `c` with Refer-To `uri`, as it is.
fn refer_to(pbx: &mut Pbx, phone: &mut Phone, c: &CallRef, uri: &str) {
    let mut refer = phone.in_dialog(c, Method::Refer);
    refer.push_header(HeaderName::Contact, phone.contact());
    refer.push_header(
        HeaderName::Other(bytes::Bytes::from_static(b"Refer-To")),
        format!("<{uri}>"),
    );
    pbx.deliver(&phone.peer, &refer);
}

#[test]
fn an_agent_joins_its_queue_caller_with_a_colleague_and_is_done_with_the_call() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, _, _) = super::calls::answered_here(&mut pbx, &mut alice, "700");
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    pbx.advance(Duration::from_secs(10));
    hold(&mut pbx, &mut bob, &offer, &mut alice);
    alice.clear(&mut pbx);
    let bc = bob.call(&mut pbx, "1003");
    let c = carol.incoming(&mut pbx);
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    bob.ack(&mut pbx, &bc);
    bob.clear(&mut pbx);
    pbx.advance(Duration::from_secs(5));
    // From the consultation this time: the queue call still goes on.
    bob.refer_replacing(&mut pbx, &bc, &offer);
    transferor_released(&mut pbx, &mut bob, true);
    taken_off_hold(&mut pbx, &mut alice);
    assert!(pbx
        .model
        .bridged(our_port(&alice, &a), our_port(&carol, &c)));
    // The agent's talk ends with the transfer, logged and counted; its phone is free.
    agent_transferred(&pbx, "1003", 15000);
    hang_up_all_clear(&mut pbx, &mut alice, &a, &mut carol);
    let queue_call = pbx.cdrs.iter().position(|c| c.caller == "1001").unwrap();
    assert_eq!(
        story_lines(&pbx, queue_call)[6..],
        [
            "10000 held caller",
            "15000 transferred to 1003 by callee (attended)",
            "15000 bridged 1003",
            "15000 ended answered 200 by caller"
        ]
    );
}

/// Agent 1002 of queue `support` handed its one call over to `to` after `talk_ms` of
/// talk: the queue log's `transfer`, the queue's `transferred`, its phone free and the
/// target's busy.
pub(super) fn agent_transferred(pbx: &Pbx, to: &str, talk_ms: u64) {
    let log: Vec<&String> = pbx
        .queue_log
        .iter()
        .filter(|l| l.contains("\"transfer\"") || l.contains("\"complete\""))
        .collect();
    assert_eq!(log.len(), 1, "{:?}", pbx.queue_log);
    let want = format!(
        r#""event":"transfer","queue":"support","agent":"1002","to":"{to}","talk_ms":"{talk_ms}""#
    );
    assert!(log[0].contains(&want), "{}", log[0]);
    let stats = &pbx.ep.queues(pbx.now)[0].stats;
    assert_eq!((stats.handled, stats.transferred), (1, 1), "{stats:?}");
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    assert!(pbx.ep.in_use.contains_key(to), "{:?}", pbx.ep.in_use);
}

/// The Replaces value naming `phone`'s call `c`, as the phone sees its tags.
fn replaces_of(phone: &Phone, c: &CallRef, extra: &str) -> bytes::Bytes {
    let leg = &phone.call_state(c).leg;
    bytes::Bytes::from(format!(
        "{};to-tag={};from-tag={}{extra}",
        String::from_utf8_lossy(&leg.call_id),
        String::from_utf8_lossy(leg.remote_tag.as_ref().unwrap()),
        String::from_utf8_lossy(&leg.local_tag),
    ))
}

#[test]
fn another_phone_of_the_extension_takes_over_its_call_with_an_invite_with_replaces() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_alice = our_port(&alice, &a);
    pbx.advance(Duration::from_secs(5));
    // Bob's softphone, same extension, takes the call from his desk phone.
    let mut soft = Phone::new("1002", 5076);
    soft.invite_headers = vec![
        (
            HeaderName::Other("Replaces".into()),
            replaces_of(&bob, &b, ""),
        ),
        (HeaderName::Supported, "timer".into()),
    ];
    let s = soft.call(&mut pbx, "1001");
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    // The new phone's session timer is negotiated as a caller's would be.
    let ok = soft.expect_status(&mut pbx, Method::Invite, 200);
    assert_eq!(
        ok.header(&HeaderName::SessionExpires).map(|v| v.as_ref()),
        Some(b"1800;refresher=uas".as_ref())
    );
    soft.ack_this(&mut pbx, &s, &ok);
    let to_soft = our_port(&soft, &s);
    assert_ne!(to_soft, our_port(&bob, &b));
    assert!(pbx.model.bridged(to_alice, to_soft), "{:?}", pbx.model);
    // The new phone's silence would be noticed like the old one's.
    assert!(pbx.model.on_port(to_soft).unwrap().watched.is_some());
    assert!(
        alice.take(&mut pbx).is_empty(),
        "Alice's phone sees nothing"
    );
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    assert!(pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    pbx.advance(Duration::from_secs(5));
    hang_up_all_clear(&mut pbx, &mut soft, &s, &mut alice);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=10000 answered 200 by callee"
    );
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        ["5000 replaced callee", "10000 ended answered 200 by callee"]
    );
}

#[test]
fn an_invite_with_replaces_not_to_be_carried_out_is_refused_and_the_call_goes_on() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (_a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let cases = [
        // (the phone's extension, Replaces, status, Warning)
        (
            "1002",
            replaces_of(&bob, &b, ";early-only"),
            486,
            "answered already",
        ),
        (
            "1003",
            replaces_of(&bob, &b, ""),
            403,
            "not the caller's own",
        ),
        (
            "1002",
            bytes::Bytes::from("nosuch;to-tag=1;from-tag=2"),
            481,
            "no such dialog",
        ),
        (
            "1002",
            bytes::Bytes::from("nosuch;to-tag=1"),
            400,
            "unreadable",
        ),
    ];
    for (i, (user, replaces, status, why)) in cases.into_iter().enumerate() {
        let mut other = Phone::new(user, 5080 + 2 * i as u16);
        other.invite_headers = vec![(HeaderName::Other("Replaces".into()), replaces)];
        other.call(&mut pbx, "1001");
        let got = other.take(&mut pbx);
        let refusal = got
            .iter()
            .find(|m| m.status().is_some_and(|s| s.as_u16() >= 300))
            .unwrap_or_else(|| panic!("{user} {status}: {got:?}"));
        assert_eq!(refusal.status().unwrap().as_u16(), status, "{why}");
        let warning = refusal
            .header(&HeaderName::Other("Warning".into()))
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .unwrap_or_default();
        assert!(warning.contains(why), "{status}: {warning}");
    }
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    assert_eq!(pbx.live().0, 1);
}
