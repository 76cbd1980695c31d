//! A party that went silent, through the phone harness: answered parties' media legs are
//! watched for `rtp_timeout_s`; the engine's report of silence ends an answered call
//! nobody holds, with a BYE to each party, and is ignored while a hold is on, while the
//! call still rings, and once the timeout is off.

use std::time::Duration;

use super::calls::{answered, our_port, two_phones};
use super::harness::{cdr_line, Pbx, Phone};
use crate::media::{MediaCommand, MediaEvent};
use crate::sip::msg::Method;

/// Durations every watch asked for, in order.
fn watches(pbx: &mut Pbx) -> Vec<u64> {
    pbx.take_media()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::LegWatch { after, .. } => Some(after.as_secs()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_party_of_an_answered_call_is_hung_up_with_the_other() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    assert_eq!(watches(&mut pbx), [120, 120], "both parties, on answer");
    let bob_leg = pbx.model.legs_on_port_key(our_port(&bob, &b)).unwrap();
    let alice_leg = pbx.model.legs_on_port_key(our_port(&alice, &a)).unwrap();
    assert_eq!(
        pbx.model.on_port(our_port(&bob, &b)).unwrap().watched,
        Some(Duration::from_secs(120))
    );
    // Alice holds Bob: silence from either is expected, and ignored.
    alice.hold(&mut pbx, &a);
    let reinv = bob.expect_request(&mut pbx, Method::Invite);
    bob.reply(&mut pbx, &reinv, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    alice.clear(&mut pbx);
    pbx.advance(Duration::from_secs(150));
    for leg in [bob_leg, alice_leg] {
        pbx.media_event(MediaEvent::Inactive { leg });
    }
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    assert_eq!(pbx.calls()[0].state, "bridged");
    // Resumed: both are watched afresh; then Bob's phone is gone.
    pbx.take_media();
    alice.resume(&mut pbx, &a);
    let reinv = bob.expect_request(&mut pbx, Method::Invite);
    bob.reply(&mut pbx, &reinv, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    alice.clear(&mut pbx);
    assert_eq!(watches(&mut pbx), [120, 120]);
    pbx.advance(Duration::from_secs(120));
    pbx.media_event(MediaEvent::Inactive { leg: bob_leg });
    for phone in [&mut alice, &mut bob] {
        let bye = phone.expect_request(&mut pbx, Method::Bye);
        phone.reply(&mut pbx, &bye, 200);
    }
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=270000 answered 408 by system"
    );
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn silence_while_ringing_is_no_reason_and_the_timeout_can_be_turned_off() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    assert!(
        watches(&mut pbx).is_empty(),
        "nothing is watched while it rings"
    );
    let ringing = pbx.model.legs_on_port_key(our_port(&bob, &b)).unwrap();
    pbx.media_event(MediaEvent::Inactive { leg: ringing });
    alice.clear(&mut pbx);
    assert!(bob.take(&mut pbx).is_empty());
    assert_eq!(pbx.calls()[0].state, "ringing");
    // Off: an answered call's parties are never watched.
    let config = crate::config::EMBEDDED.replace("rtp_timeout_s = 120", "rtp_timeout_s = 0");
    let mut pbx = Pbx::with_config(&config);
    let mut alice = Phone::new("1001", 5070);
    bob.register(&mut pbx);
    pbx.take_media();
    answered(&mut pbx, &mut alice, &mut bob);
    assert!(watches(&mut pbx).is_empty());
}

#[test]
fn a_caller_answered_here_is_watched_too() {
    let (mut pbx, mut alice, _bob) = two_phones();
    let (a, _, _) = super::calls::answered_here(&mut pbx, &mut alice, "602");
    let leg = pbx.model.legs_on_port_key(our_port(&alice, &a)).unwrap();
    assert!(pbx
        .model
        .on_port(our_port(&alice, &a))
        .unwrap()
        .watched
        .is_some());
    pbx.media_event(MediaEvent::Inactive { leg });
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.cdrs[0].sip_code, 408);
}
