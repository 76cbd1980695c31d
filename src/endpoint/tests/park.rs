//! Parking through the phone harness: a call parked by a blind or an attended transfer to
//! the park number hears its slot (or the parker does) then music; any phone dialling
//! the slot takes it; nobody taking it rings the parker again.

use std::path::PathBuf;
use std::time::Duration;

use super::attended::{taken_off_hold, transferor_released};
use super::calls::{answered, hold, our_port, two_phones};
use super::harness::{cdr_line, hang_up_all_clear, story_lines, Pbx, Phone};
use super::media_model::Hears;
use crate::sip::msg::Method;

/// The prompts played on our port `port`, each ended as it starts, until music plays.
fn heard_until_music(pbx: &mut Pbx, port: u16) -> Vec<String> {
    let mut heard = Vec::new();
    while let Some(p) = pbx.prompt_ends(port) {
        heard.push(p.display().to_string());
    }
    heard
}

fn hears(pbx: &Pbx, port: u16) -> Hears {
    pbx.model.on_port(port).unwrap().hears.clone()
}

fn moh() -> Hears {
    Hears::Music(PathBuf::from("sounds/moh/default.wav"))
}

#[test]
fn a_call_transferred_to_the_park_number_waits_in_a_slot_any_phone_takes_it_from() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_alice = our_port(&alice, &a);
    pbx.advance(Duration::from_secs(5));
    super::calls::transferred(&mut pbx, &mut bob, &b, "70");
    // Alice hears where she waits, then music; her phone saw nothing.
    assert_eq!(
        heard_until_music(&mut pbx, to_alice),
        [
            "sounds/parked-at.wav",
            "sounds/digits/7.wav",
            "sounds/digits/1.wav"
        ]
    );
    assert_eq!(hears(&pbx, to_alice), moh());
    assert!(alice.take(&mut pbx).is_empty());
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "parked"));
    // Bob parked her, not Alice herself: a time-out would ring Bob.
    let parked = pbx.ep.calls.calls.values().next().unwrap();
    assert_eq!(
        parked.cursor.vars.get("parked_by").map(String::as_str),
        Some("1002")
    );
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    // Carol dials the slot and has the call.
    pbx.advance(Duration::from_secs(10));
    let c = carol.call(&mut pbx, "71");
    carol.ack(&mut pbx, &c);
    assert!(
        pbx.model.bridged(to_alice, our_port(&carol, &c)),
        "{:?}",
        pbx.model
    );
    assert_eq!(hears(&pbx, to_alice), Hears::Nothing);
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "bridged"), "{v:?}");
    // The slot is free again: nothing to take there now.
    let mut dave = Phone::new("1001", 5076);
    dave.call(&mut pbx, "71");
    assert!(
        dave.take(&mut pbx)
            .iter()
            .any(|m| m.status().is_some_and(|s| s.as_u16() == 404)),
        "an empty slot"
    );
    pbx.advance(Duration::from_secs(20));
    hang_up_all_clear(&mut pbx, &mut alice, &a, &mut carol);
    let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    assert_eq!(
        lines,
        [
            "1003 -> 71 did=- trunk=- start=15000 answer=15000 end=15000 answered 200 by caller",
            "1001 -> 71 did=- trunk=- start=15000 answer=- end=15000 unavailable 404 by system",
            "1001 -> 1002 did=- trunk=- start=0 answer=0 end=35000 answered 200 by caller",
        ]
    );
    assert_eq!(
        story_lines(&pbx, 2)[4..],
        [
            "5000 transferred to 70 by callee",
            "5000 parked 71",
            "15000 retrieved 71 by 1003",
            "15000 bridged 1003",
            "35000 ended answered 200 by caller"
        ]
    );
}

#[test]
fn a_phone_parks_its_held_caller_by_attended_transfer_and_nobody_taking_it_rings_it_back() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_alice = our_port(&alice, &a);
    pbx.advance(Duration::from_secs(5));
    hold(&mut pbx, &mut bob, &b, &mut alice);
    alice.clear(&mut pbx);
    // Bob dials the park number himself and hears the slot ...
    let p = bob.call(&mut pbx, "70");
    bob.ack(&mut pbx, &p);
    bob.clear(&mut pbx);
    let to_bob = our_port(&bob, &p);
    assert_eq!(heard_until_music(&mut pbx, to_bob).len(), 3);
    // ... then transfers Alice there.
    bob.refer_replacing(&mut pbx, &b, &p);
    transferor_released(&mut pbx, &mut bob, true);
    taken_off_hold(&mut pbx, &mut alice);
    assert_eq!(hears(&pbx, to_alice), moh());
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "parked"), "{v:?}");
    assert_eq!(v[0].caller, "1001");
    // Nobody takes it in 45 s: Bob, who parked it, is rung again, and takes it.
    pbx.advance(Duration::from_secs(44));
    assert!(bob.take(&mut pbx).is_empty());
    pbx.advance(Duration::from_secs(1));
    let back = bob.incoming(&mut pbx);
    assert!(pbx.ep.calls.parked.is_empty(), "the slot is free again");
    assert_eq!(
        hears(&pbx, to_alice),
        Hears::Music("sounds/ringback.wav".into())
    );
    bob.respond(&mut pbx, &back, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&bob, &back)));
    hang_up_all_clear(&mut pbx, &mut bob, &back, &mut alice);
    let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    assert_eq!(
        lines,
        [
            "1001 -> 1002 did=- trunk=- start=0 answer=0 end=5000 answered 200 by callee",
            "1002 -> 70 did=- trunk=- start=5000 answer=5000 end=50000 answered 200 by callee",
        ]
    );
    assert_eq!(
        story_lines(&pbx, 1),
        [
            "5000 started 1002 -> 70",
            "5000 answered",
            "5000 parked 71",
            "5000 transferred to 1001 by caller (attended)",
            "50000 dialled 1002",
            "50000 bridged 1002",
            "50000 ended answered 200 by callee"
        ]
    );
}
