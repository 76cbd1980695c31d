//! Session refresh through the phone harness: answered parties are asked, every
//! `session_refresh_s`, to confirm their dialogs with what they agreed; one that no
//! longer answers (or has forgotten the dialog) ends the call.

use std::time::Duration;

use super::calls::{answered, two_phones};
use super::harness::{cdr_line, Pbx, Phone};
use crate::sip::msg::{Message, Method};

/// The refresh re-INVITE `phone` got, checked to repeat what it agreed.
fn refresh_to(pbx: &mut Pbx, phone: &mut Phone, c: &super::harness::CallRef) -> Message {
    let before = phone
        .call_state(c)
        .remote_sdp
        .clone()
        .expect("an agreed description");
    let reinv = phone.expect_request(pbx, Method::Invite);
    let sdp = crate::sdp::Sdp::parse(&reinv.body).expect("an offer");
    assert_eq!(sdp, before, "the same description, the same version");
    reinv
}

#[test]
fn answered_parties_confirm_their_dialogs_and_one_that_is_gone_ends_the_call() {
    for gone_by_481 in [false, true] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
        pbx.advance(Duration::from_secs(899));
        assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
        // At 900 s both are asked, both answer: the call goes on.
        pbx.advance(Duration::from_secs(1));
        for (phone, c) in [(&mut alice, &a), (&mut bob, &b)] {
            let reinv = refresh_to(&mut pbx, phone, c);
            phone.reply(&mut pbx, &reinv, 200);
            phone.expect_request(&mut pbx, Method::Ack);
        }
        assert_eq!(pbx.calls()[0].state, "bridged");
        // At 1800 s Bob's phone is gone: silence, or it no longer knows the dialog.
        pbx.advance(Duration::from_secs(900));
        let reinv = refresh_to(&mut pbx, &mut alice, &a);
        alice.reply(&mut pbx, &reinv, 200);
        let to_bob = refresh_to(&mut pbx, &mut bob, &b);
        let lasted = if gone_by_481 {
            bob.reply(&mut pbx, &to_bob, 481);
            1800
        } else {
            pbx.advance(Duration::from_secs(32));
            bob.clear(&mut pbx);
            1832
        };
        let bye = alice.expect(&mut pbx, "a BYE", |m| {
            m.method() == Some(Method::Bye) && m.is_request()
        });
        alice.reply(&mut pbx, &bye, 200);
        assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
        let code = if gone_by_481 { 481 } else { 408 };
        assert_eq!(
            cdr_line(&pbx.cdrs[0]),
            format!(
                "1001 -> 1002 did=- trunk=- start=0 answer=0 end={}000 answered {code} by system",
                lasted
            )
        );
    }
}

#[test]
fn a_call_not_answered_is_not_refreshed_and_refreshes_can_be_turned_off() {
    // Ringing for longer than the refresh: nothing is asked of anybody.
    let config = crate::config::EMBEDDED
        .replace("ring_timeout_s = 30", "ring_timeout_s = 600")
        .replace("session_refresh_s = 900", "session_refresh_s = 5");
    let mut pbx = Pbx::with_config(&config);
    let mut alice = Phone::new("1001", 5070);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    alice.clear(&mut pbx);
    pbx.advance(Duration::from_secs(12));
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    // Off: an answered call is never asked.
    let config =
        crate::config::EMBEDDED.replace("session_refresh_s = 900", "session_refresh_s = 0");
    let mut pbx = Pbx::with_config(&config);
    bob.register(&mut pbx);
    answered(&mut pbx, &mut alice, &mut bob);
    pbx.advance(Duration::from_secs(7200));
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    assert_eq!(pbx.calls()[0].state, "bridged");
}
