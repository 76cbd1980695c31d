//! Attended transfer by feature code, through the phone harness: the attended code, a
//! number and `#` put the other party aside (music) while the transferor calls the
//! number on a call of its own; hanging up hands the party over (answered, ringing,
//! parked, or elsewhere by a blind transfer), the code again or the target hanging up
//! brings the transferor back.

use std::path::PathBuf;

use super::calls::{answered, our_port, two_phones};
use super::harness::{story_lines, CallRef, Pbx, Phone};
use super::media_model::Hears;
use crate::sip::msg::Method;

fn hears(pbx: &Pbx, port: u16) -> Hears {
    pbx.model.on_port(port).unwrap().hears.clone()
}

fn moh() -> Hears {
    Hears::Music(PathBuf::from("sounds/moh/default.wav"))
}

fn ringback() -> Hears {
    Hears::Music(PathBuf::from("sounds/ringback.wav"))
}

fn states(pbx: &Pbx) -> Vec<String> {
    let mut v: Vec<String> = pbx.calls().into_iter().map(|c| c.state).collect();
    v.sort();
    v
}

/// Alice calls Bob, Bob (1002) consults Carol (1003) by code: her phone rings.
fn consulting() -> (Pbx, [Phone; 3], [CallRef; 3]) {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_bob, "*2");
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(
        hears(&pbx, to_bob),
        Hears::Prompt(PathBuf::from("sounds/enter-extension.wav"))
    );
    pbx.press(to_bob, "1003#");
    let c = carol.incoming(&mut pbx);
    carol.respond(&mut pbx, &c, 180);
    assert_eq!(hears(&pbx, to_bob), ringback());
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(states(&pbx), ["held", "ringing"]);
    (pbx, [alice, bob, carol], [a, b, c])
}

/// Carol answers the consultation: she and Bob talk, Alice still waits.
fn carol_answers(pbx: &mut Pbx, carol: &mut Phone, c: &CallRef, to_bob: u16) -> u16 {
    carol.respond(pbx, c, 200);
    carol.expect_request(pbx, Method::Ack);
    let to_carol = our_port(carol, c);
    assert!(pbx.model.bridged(to_bob, to_carol), "{:?}", pbx.model);
    to_carol
}

#[test]
fn the_attended_code_consults_and_hanging_up_hands_the_party_over() {
    let (mut pbx, [mut alice, mut bob, mut carol], [a, b, c]) = consulting();
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    let to_carol = carol_answers(&mut pbx, &mut carol, &c, to_bob);
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(states(&pbx), ["bridged", "held"]);
    // Bob hangs up: Alice and Carol talk, in Alice's call; neither phone saw a thing.
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    assert!(pbx.model.bridged(to_alice, to_carol), "{:?}", pbx.model);
    assert_eq!(hears(&pbx, to_alice), Hears::Nothing);
    assert_eq!(states(&pbx), ["bridged"]);
    // `ctl calls` tells how the call moved.
    let moves: Vec<String> = pbx.calls()[0].moves.iter().map(|m| m.line()).collect();
    assert_eq!(moves, ["transferred to 1003 by the callee, attended"]);
    assert!(alice.take(&mut pbx).is_empty() && carol.take(&mut pbx).is_empty());
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    carol.bye(&mut pbx, &c);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    // The consultation has its own record; Alice's call says what became of it.
    assert_eq!(
        story_lines(&pbx, 0),
        [
            "0 started 1002 -> 1003",
            "0 dialled 1003",
            "0 bridged 1003",
            "0 answered",
            "0 transferred to 1001 by caller (attended)",
            "0 ended answered 200 by caller"
        ]
    );
    assert_eq!(
        story_lines(&pbx, 1)[4..],
        [
            "0 transferred to 1003 by callee (attended)",
            "0 bridged 1003",
            "0 ended answered 200 by callee"
        ]
    );
}

#[test]
fn hanging_up_while_the_consultation_rings_leaves_the_party_hearing_it_ring() {
    let (mut pbx, [mut alice, mut bob, mut carol], [a, b, c]) = consulting();
    let to_alice = our_port(&alice, &a);
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    assert_eq!(hears(&pbx, to_alice), ringback());
    assert_eq!(states(&pbx), ["ringing"]);
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&carol, &c)));
    assert!(alice.take(&mut pbx).is_empty());
    alice.bye(&mut pbx, &a);
    carol.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(pbx.ep.in_use.is_empty(), "{:?}", pbx.ep.in_use);
    // Alice's first call ended with Bob's hand-over; the consultation went on with her.
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        [
            "0 transferred to 1003 by callee (attended)",
            "0 ended answered 200 by callee"
        ]
    );
    assert_eq!(
        story_lines(&pbx, 1)[2..],
        [
            "0 transferred to 1001 by caller (attended)",
            "0 bridged 1003",
            "0 answered",
            "0 ended answered 200 by caller"
        ]
    );
}

#[test]
fn the_code_again_or_the_target_hanging_up_brings_the_transferor_back() {
    let (mut pbx, [mut alice, mut bob, mut carol], [a, b, c]) = consulting();
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    // While Carol rings: her phone is cancelled.
    pbx.press(to_bob, "*2");
    let cancel = carol.expect_request(&mut pbx, Method::Cancel);
    carol.reply(&mut pbx, &cancel, 200);
    carol.respond(&mut pbx, &c, 487);
    assert!(pbx.model.bridged(to_alice, to_bob));
    assert_eq!(states(&pbx), ["bridged"]);
    // Once she answered: she is hung up on.
    pbx.press(to_bob, "*2");
    pbx.press(to_bob, "1003#");
    let c = carol.incoming(&mut pbx);
    carol_answers(&mut pbx, &mut carol, &c, to_bob);
    pbx.press(to_bob, "*2");
    let bye = carol.expect_request(&mut pbx, Method::Bye);
    carol.reply(&mut pbx, &bye, 200);
    assert!(pbx.model.bridged(to_alice, to_bob));
    // She hangs up herself: the same.
    pbx.press(to_bob, "*2");
    pbx.press(to_bob, "1003#");
    let c = carol.incoming(&mut pbx);
    carol_answers(&mut pbx, &mut carol, &c, to_bob);
    carol.bye(&mut pbx, &c);
    carol.expect_status(&mut pbx, Method::Bye, 200);
    assert!(pbx.model.bridged(to_alice, to_bob));
    assert_eq!(states(&pbx), ["bridged"]);
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    // And the call is Alice's and Bob's as before: either may hang up.
    alice.bye(&mut pbx, &a);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(pbx.ep.in_use.is_empty(), "{:?}", pbx.ep.in_use);
    // Three consultations with records of their own, and Alice's call; the one
    // given up while it rang was cancelled.
    assert_eq!(pbx.stories.len(), 4);
    let ends: Vec<String> = (0..4)
        .map(|i| story_lines(&pbx, i).last().unwrap().to_string())
        .collect();
    assert_eq!(
        ends,
        [
            "0 ended cancelled 487 by caller",
            "0 ended answered 200 by caller",
            "0 ended answered 200 by callee",
            "0 ended answered 200 by caller"
        ]
    );
}

#[test]
fn the_waiting_party_hanging_up_leaves_the_consultation_a_call_of_its_own() {
    let (mut pbx, [mut alice, mut bob, mut carol], [a, b, c]) = consulting();
    let to_bob = our_port(&bob, &b);
    let to_carol = carol_answers(&mut pbx, &mut carol, &c, to_bob);
    alice.bye(&mut pbx, &a);
    alice.expect_status(&mut pbx, Method::Bye, 200);
    assert_eq!(states(&pbx), ["bridged"]);
    assert!(pbx.model.bridged(to_bob, to_carol));
    // A call like any: Bob's codes work in it (`##` puts Carol on music).
    pbx.press(to_bob, "##");
    assert_eq!(hears(&pbx, to_carol), moh());
    pbx.press(to_bob, "#");
    assert!(pbx.model.bridged(to_bob, to_carol));
    // Bob's hanging up now only ends his call with Carol.
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    carol.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn consulting_the_park_then_hanging_up_leaves_the_party_in_the_slot() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_bob, "*270#");
    // Bob hears the slot; Alice waits with music.
    let mut heard = Vec::new();
    while let Some(p) = pbx.prompt_ends(to_bob) {
        heard.push(p.display().to_string());
    }
    assert_eq!(
        heard,
        [
            "sounds/parked-at.wav",
            "sounds/digits/7.wav",
            "sounds/digits/1.wav"
        ]
    );
    assert_eq!(states(&pbx), ["held", "parked"]);
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    assert_eq!(states(&pbx), ["parked"]);
    assert_eq!(hears(&pbx, to_alice), moh());
    // The slot's call is Alice's now: she hanging up frees it.
    alice.bye(&mut pbx, &a);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(pbx.ep.calls.parked.is_empty());
}

#[test]
fn hanging_up_in_a_consultation_elsewhere_sends_the_party_there() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    // 602: a menu asking for an extension.
    pbx.press(to_bob, "*2602#");
    assert_eq!(
        hears(&pbx, to_bob),
        Hears::Prompt(PathBuf::from("sounds/demo-welcome.wav"))
    );
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    // Alice is sent there herself, and keys an extension.
    assert_eq!(
        hears(&pbx, to_alice),
        Hears::Prompt(PathBuf::from("sounds/demo-welcome.wav"))
    );
    assert_eq!(states(&pbx), ["collecting"]);
    pbx.press(to_alice, "1002#");
    let b2 = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b2, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&bob, &b2)));
    alice.bye(&mut pbx, &a);
    bob.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    // Alice's call says Bob sent her on (blind: nobody answered him there).
    let alices = story_lines(&pbx, 1);
    assert!(
        alices.contains(&"0 transferred to 602 by callee".to_string()),
        "{alices:?}"
    );
}

#[test]
fn either_code_works_alone_and_keys_before_a_code_do_not_spoil_it() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    // Blind transfers off: the attended code is still listened for and works.
    pbx.ep.calls.transfer_code = String::new();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_bob, "##");
    assert!(pbx.model.bridged(to_alice, to_bob), "no blind code");
    // A key just before the code (within its 2 s) does not stop it.
    pbx.press(to_bob, "5*2");
    assert_eq!(hears(&pbx, to_alice), moh());
    pbx.press(to_bob, "#");
    assert!(pbx.model.bridged(to_alice, to_bob));
    // Attended off, blind on: a key before `##` does not spoil it either.
    pbx.ep.calls.transfer_code = "##".into();
    pbx.ep.calls.attended_code = String::new();
    pbx.press(to_bob, "*2");
    assert!(pbx.model.bridged(to_alice, to_bob), "no attended code");
    pbx.press(to_bob, "1##1003#");
    carol.incoming(&mut pbx);
    bob.expect_request(&mut pbx, Method::Bye);
}

#[test]
fn a_number_the_transferor_may_not_call_is_refused_and_the_party_still_waits() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_bob, "*2555#");
    assert_eq!(
        hears(&pbx, to_bob),
        Hears::Prompt(PathBuf::from("sounds/invalid-option.wav"))
    );
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(states(&pbx), ["bridged"]);
    pbx.press(to_bob, "#");
    assert!(pbx.model.bridged(to_alice, to_bob));
}

#[test]
fn the_caller_may_consult_too_and_the_target_becomes_the_caller() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_alice, "*21003#");
    assert_eq!(hears(&pbx, to_bob), moh());
    let c = carol.incoming(&mut pbx);
    let to_carol = carol_answers(&mut pbx, &mut carol, &c, to_alice);
    // Cancelled and consulted again: still Alice's call with Bob, in their roles.
    pbx.press(to_alice, "*2");
    let bye = carol.expect_request(&mut pbx, Method::Bye);
    carol.reply(&mut pbx, &bye, 200);
    assert!(pbx.model.bridged(to_alice, to_bob));
    pbx.press(to_alice, "*21003#");
    let c = carol.incoming(&mut pbx);
    let to_carol2 = carol_answers(&mut pbx, &mut carol, &c, to_alice);
    assert_ne!(to_carol, to_carol2);
    alice.bye(&mut pbx, &a);
    alice.expect_status(&mut pbx, Method::Bye, 200);
    assert!(pbx.model.bridged(to_bob, to_carol2));
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "bridged"));
    // Carol is the call's caller now: Bob hanging up ends it as its callee.
    bob.bye(&mut pbx, &b);
    carol.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let last = story_lines(&pbx, pbx.stories.len() - 1);
    assert_eq!(
        last[last.len() - 3..],
        [
            "0 transferred to 1003 by caller (attended)",
            "0 bridged 1003",
            "0 ended answered 200 by callee"
        ]
    );
}

#[test]
fn an_agent_consults_a_colleague_by_code_and_is_done_with_the_queue_call() {
    use std::time::Duration;
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, _, _) = super::calls::answered_here(&mut pbx, &mut alice, "700");
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &offer));
    assert!(pbx.model.bridged(to_alice, to_bob));
    pbx.advance(Duration::from_secs(10));
    pbx.press(to_bob, "*21003#");
    // The queue's music while the agent consults.
    assert!(
        matches!(hears(&pbx, to_alice), Hears::Music(_)),
        "{:?}",
        hears(&pbx, to_alice)
    );
    let c = carol.incoming(&mut pbx);
    let to_carol = carol_answers(&mut pbx, &mut carol, &c, to_bob);
    pbx.advance(Duration::from_secs(5));
    bob.bye(&mut pbx, &offer);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    assert!(pbx.model.bridged(to_alice, to_carol));
    // The agent's talk ends with the transfer, logged and counted; its phone is free.
    super::attended::agent_transferred(&pbx, "1003", 15000);
    alice.bye(&mut pbx, &a);
    carol.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(pbx.ep.in_use.is_empty(), "{:?}", pbx.ep.in_use);
}
