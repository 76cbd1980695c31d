//! Call pickup through the phone harness: group (`*8`) and directed (`**EXT`) pickup of
//! a call ringing at another extension; what may not be picked up is not.

use std::time::Duration;

use super::calls::{our_port, two_phones};
use super::harness::{cdr_line, story_lines, Pbx, Phone};
use crate::sip::msg::{Method, StatusCode};

/// Alice calls 1002, whose phone rings (180): Alice's call and Bob's ringing one.
fn ringing(
    pbx: &mut Pbx,
    alice: &mut Phone,
    bob: &mut Phone,
) -> (super::harness::CallRef, super::harness::CallRef) {
    let a = alice.call(pbx, "1002");
    let b = bob.incoming(pbx);
    bob.respond(pbx, &b, 180);
    alice.clear(pbx);
    (a, b)
}

/// `phone` dials `code` and is answered 404: nothing to pick up.
fn refused(pbx: &mut Pbx, phone: &mut Phone, code: &str) -> bool {
    phone.call(pbx, code);
    phone
        .take(pbx)
        .iter()
        .any(|m| m.status().is_some_and(|s| s.as_u16() == 404))
}

#[test]
fn a_colleague_picks_up_a_ringing_call_by_group_or_by_extension() {
    for code in ["*8", "**1002"] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let mut carol = Phone::new("1003", 5074);
        let (a, b) = ringing(&mut pbx, &mut alice, &mut bob);
        pbx.advance(Duration::from_secs(4));
        // Carol picks it up from her own phone: answered at once ...
        let c = carol.call(&mut pbx, code);
        carol.ack(&mut pbx, &c);
        // ... Bob's phone stops ringing ...
        let cancel = bob.expect_request(&mut pbx, Method::Cancel);
        bob.reply(&mut pbx, &cancel, 200);
        bob.respond(&mut pbx, &b, 487);
        // ... and Alice is answered, talking to Carol.
        let ok = alice.expect(&mut pbx, "200 to INVITE", |m| {
            m.status().is_some_and(StatusCode::is_success)
        });
        alice.ack_this(&mut pbx, &a, &ok);
        assert!(
            pbx.model
                .bridged(our_port(&alice, &a), our_port(&carol, &c)),
            "{code}: {:?}",
            pbx.model
        );
        let v = pbx.calls();
        assert_eq!((v.len(), v[0].state.as_str()), (1, "bridged"), "{code}");
        assert!(pbx.ep.in_use.contains_key("1003"), "{:?}", pbx.ep.in_use);
        pbx.advance(Duration::from_secs(6));
        carol.bye(&mut pbx, &c);
        let bye = alice.expect_request(&mut pbx, Method::Bye);
        alice.reply(&mut pbx, &bye, 200);
        assert_eq!(pbx.live(), (0, 0, 0), "{code}: calls, legs, dialogs");
        assert!(pbx.ep.in_use.is_empty(), "{:?}", pbx.ep.in_use);
        let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
        assert_eq!(
            lines,
            [
                format!("1003 -> {code} did=- trunk=- start=4000 answer=4000 end=4000 answered 200 by caller"),
                "1001 -> 1002 did=- trunk=- start=0 answer=4000 end=10000 answered 200 by callee".into(),
            ],
            "{code}"
        );
        assert_eq!(
            story_lines(&pbx, 1),
            [
                "0 started 1001 -> 1002",
                "0 dialled 1002",
                "4000 answered",
                "4000 picked up at 1002 by 1003",
                "4000 bridged 1003",
                "10000 ended answered 200 by callee"
            ],
            "{code}"
        );
    }
}

#[test]
fn only_a_call_ringing_in_the_pickers_group_or_at_the_extension_named_is_picked_up() {
    // Carol is in another pickup group than Bob.
    let config = crate::config::EMBEDDED.replace(
        "skills = { billing = 2, spanish = 3 }",
        "skills = { billing = 2, spanish = 3 }\npickup_group = \"front-desk\"",
    );
    let mut pbx = Pbx::with_config(&config);
    let mut alice = Phone::new("1001", 5070);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    let mut carol = Phone::new("1003", 5074);
    // Nothing rings at all.
    assert!(refused(&mut pbx, &mut carol, "*8"));
    let (_a, _b) = ringing(&mut pbx, &mut alice, &mut bob);
    // Bob's call rings outside Carol's group, and at an extension other than the one
    // she names; Bob cannot pick up a call ringing at his own phone.
    assert!(refused(&mut pbx, &mut carol, "*8"));
    assert!(refused(&mut pbx, &mut carol, "**1001"));
    let mut desk = Phone::new("1002", 5076);
    assert!(refused(&mut pbx, &mut desk, "**1002"));
    assert!(bob.take(&mut pbx).is_empty(), "still ringing");
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "ringing"), "{v:?}");
    // Named, it is hers to take.
    let c = carol.call(&mut pbx, "**1002");
    carol.ack(&mut pbx, &c);
    bob.expect_request(&mut pbx, Method::Cancel);
    assert_eq!(pbx.calls()[0].state, "bridged");
}

#[test]
fn a_call_in_conversation_is_not_picked_up() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    // Alice and Bob talk: nothing rings.
    super::calls::answered(&mut pbx, &mut alice, &mut bob);
    assert!(refused(&mut pbx, &mut carol, "*8"));
    assert!(refused(&mut pbx, &mut carol, "**1002"));
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "bridged"), "{v:?}");
}

#[test]
fn a_queue_callers_offer_ringing_an_agent_is_picked_up_and_the_agent_is_free_again() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    // Alice waits in the support queue; its agent on 1002 is offered the call.
    let (a, _, _) = super::calls::answered_here(&mut pbx, &mut alice, "700");
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 180);
    pbx.advance(Duration::from_secs(3));
    // Carol takes it from the agent's ringing phone.
    let c = carol.call(&mut pbx, "**1002");
    carol.ack(&mut pbx, &c);
    let cancel = bob.expect_request(&mut pbx, Method::Cancel);
    bob.reply(&mut pbx, &cancel, 200);
    bob.respond(&mut pbx, &offer, 487);
    assert!(pbx
        .model
        .bridged(our_port(&alice, &a), our_port(&carol, &c)));
    assert_eq!(pbx.calls()[0].state, "bridged");
    // The queue counts the caller answered, logs who took it, and its agent is free:
    // the next caller is offered to Bob at once.
    let pickup = pbx
        .queue_log
        .iter()
        .find(|l| l.contains("\"pickup\""))
        .unwrap_or_else(|| panic!("{:?}", pbx.queue_log));
    assert!(pickup.contains(r#""by":"1003""#), "{pickup}");
    let q = &pbx.ep.queues(pbx.now)[0];
    assert_eq!((q.stats.answered, q.stats.abandoned), (1, 0));
    let mut dave = Phone::new("1001", 5078);
    super::calls::answered_here(&mut pbx, &mut dave, "700");
    bob.incoming(&mut pbx);
    // Carol's call with Alice is an ordinary call now: its end is no queue event.
    let before = pbx.queue_log.len();
    carol.bye(&mut pbx, &c);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.queue_log.len(), before, "{:?}", pbx.queue_log);
    assert!(story_lines(&pbx, 1).contains(&"3000 picked up at 1002 by 1003".to_string()));
}
