//! Reliable provisional responses (RFC 3262) through the phone harness: to a caller that
//! takes them, our ringing and early media are sent until acknowledged, one at a time,
//! and our answer waits for the PRACK of an early offer; a callee that sends them gets a
//! PRACK for each, once.

use bytes::Bytes;
use std::time::Duration;

use super::calls::{statuses, two_phones};
use super::harness::{cdr_line, Phone};
use crate::sip::msg::{HeaderName, Message, Method};

fn rseq(m: &Message) -> u32 {
    let v = m.header(&HeaderName::RSeq).expect("an RSeq");
    std::str::from_utf8(v).unwrap().parse().unwrap()
}

fn requires_100rel(m: &Message) -> bool {
    m.header(&HeaderName::Require).map(Bytes::as_ref) == Some(b"100rel".as_ref())
}

/// A caller whose INVITE carries `header: 100rel`.
fn taking_100rel(header: HeaderName) -> Phone {
    let mut alice = Phone::new("1001", 5070);
    alice
        .invite_headers
        .push((header, Bytes::from_static(b"100rel")));
    alice
}

#[test]
fn a_caller_taking_100rel_acknowledges_ringing_and_early_media_before_the_answer() {
    for header in [HeaderName::Supported, HeaderName::Require] {
        let (mut pbx, _, mut bob) = two_phones();
        let mut alice = taking_100rel(header.clone());
        let a = alice.call(&mut pbx, "1002");
        let b = bob.incoming(&mut pbx);
        bob.respond(&mut pbx, &b, 180);
        let ringing = alice.expect_status(&mut pbx, Method::Invite, 180);
        assert!(requires_100rel(&ringing), "{header:?}");
        let first = rseq(&ringing);
        assert!((1..=0x7fff_ffff).contains(&first));
        // Early media comes before the PRACK: it waits for it, and the ringing is sent
        // again after T1.
        bob.respond_with(&mut pbx, &b, 183, true, &[]);
        assert_eq!(statuses(&alice.take(&mut pbx)), [100]);
        pbx.advance(Duration::from_millis(500));
        let again = alice.expect_status(&mut pbx, Method::Invite, 180);
        assert_eq!(again.to_bytes(), ringing.to_bytes(), "the same response");
        // A PRACK for something never sent gets 481.
        let mut wrong = alice.in_dialog(&a, Method::Prack);
        wrong.push_header(HeaderName::RAck, format!("{} 2 INVITE", first + 5));
        pbx.deliver(&alice.peer, &wrong);
        alice.expect_status(&mut pbx, Method::Prack, 481);
        alice.prack(&mut pbx, &a, &ringing);
        alice.expect_status(&mut pbx, Method::Prack, 200);
        let early = alice.expect_status(&mut pbx, Method::Invite, 183);
        assert_eq!(rseq(&early), first + 1);
        assert!(!early.body.is_empty(), "early media's SDP");
        // Bob answers before Alice acknowledged the early offer: our 200 waits.
        bob.respond(&mut pbx, &b, 200);
        bob.expect_request(&mut pbx, Method::Ack);
        assert!(alice.take(&mut pbx).is_empty());
        alice.prack(&mut pbx, &a, &early);
        let got = alice.take(&mut pbx);
        assert_eq!(statuses(&got), [200, 200], "PRACK, then INVITE");
        let ok = got[1].clone();
        assert_eq!(ok.method(), Some(Method::Invite));
        alice.ack_this(&mut pbx, &a, &ok);
        assert_eq!(pbx.calls()[0].state, "bridged");
        // Nothing more is sent again: the provisionals and the 2xx were acknowledged.
        pbx.advance(Duration::from_secs(40));
        assert!(alice.take(&mut pbx).is_empty());
        alice.bye(&mut pbx, &a);
        alice.expect_status(&mut pbx, Method::Bye, 200);
        let bye = bob.expect_request(&mut pbx, Method::Bye);
        bob.reply(&mut pbx, &bye, 200);
        assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    }
}

#[test]
fn a_caller_that_never_acknowledges_gets_504_after_64_t1_and_the_callee_a_bye() {
    let (mut pbx, _, mut bob) = two_phones();
    let mut alice = taking_100rel(HeaderName::Supported);
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond_with(&mut pbx, &b, 183, true, &[]);
    alice.expect_status(&mut pbx, Method::Invite, 183);
    let mut copies = 0;
    for step in 1..=64 {
        pbx.advance(Duration::from_millis(500));
        if step == 40 {
            // Bob answers at 20 s; our 200 waits for the PRACK of the early offer.
            bob.respond(&mut pbx, &b, 200);
            bob.expect_request(&mut pbx, Method::Ack);
        }
        copies += alice
            .take(&mut pbx)
            .iter()
            .filter(|m| m.status().map(|s| s.as_u16()) == Some(183))
            .count();
    }
    // At 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: doubling with no T2 cap; 64 T1 ends it.
    assert_eq!(copies, 6);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    let last = pbx
        .last_sent(alice.peer.addr, Method::Invite)
        .map(|m| m.status().map(|s| s.as_u16()));
    assert_eq!(last, Some(Some(504)), "never a 200");
    // Bob did answer, but the caller never heard it: the call failed.
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=20000 end=32000 failed 504 by system"
    );
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn a_callee_sending_reliable_provisionals_gets_one_prack_each_in_order() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    let inv = pbx
        .last_sent(bob.peer.addr, Method::Invite)
        .expect("our INVITE");
    let supported = inv.header(&HeaderName::Supported).expect("Supported");
    assert!(supported.starts_with(b"100rel"), "{supported:?}");
    let reliable = |n: &'static str| [(HeaderName::Require, "100rel"), (HeaderName::RSeq, n)];
    bob.respond_with(&mut pbx, &b, 180, false, &reliable("7"));
    let prack = bob.expect_request(&mut pbx, Method::Prack);
    assert_eq!(
        prack.header(&HeaderName::RAck).map(Bytes::as_ref),
        Some(b"7 1 INVITE".as_ref())
    );
    assert_eq!(
        prack.request_line().unwrap().uri.to_string(),
        "sip:1002@127.0.0.1:5072",
        "sent to the 180's Contact"
    );
    assert_eq!(prack.cseq().unwrap().seq, 2);
    bob.reply(&mut pbx, &prack, 200);
    // Alice does not take 100rel: she hears of the ringing once, unreliably.
    let ringing = alice.expect_status(&mut pbx, Method::Invite, 180);
    assert!(ringing.header(&HeaderName::RSeq).is_none());
    alice.clear(&mut pbx);
    // The same 180 again (our PRACK crossed it), and one out of order: neither is
    // acknowledged nor passed on.
    bob.respond_with(&mut pbx, &b, 180, false, &reliable("7"));
    bob.respond_with(&mut pbx, &b, 183, true, &reliable("9"));
    assert!(bob.take(&mut pbx).is_empty());
    assert!(alice.take(&mut pbx).is_empty());
    bob.respond_with(&mut pbx, &b, 183, true, &reliable("8"));
    let prack = bob.expect_request(&mut pbx, Method::Prack);
    assert_eq!(
        prack.header(&HeaderName::RAck).map(Bytes::as_ref),
        Some(b"8 1 INVITE".as_ref())
    );
    bob.reply(&mut pbx, &prack, 200);
    alice.expect_status(&mut pbx, Method::Invite, 183);
    // The answer is ACKed with the INVITE's CSeq, not the PRACKs'.
    bob.respond(&mut pbx, &b, 200);
    let ack = bob.expect_request(&mut pbx, Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, 1);
    alice.ack(&mut pbx, &a);
    alice.bye(&mut pbx, &a);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    assert_eq!(bye.cseq().unwrap().seq, 4);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn ringing_without_sdp_does_not_hold_the_answer_and_nothing_is_resent_after_it() {
    let (mut pbx, _, mut bob) = two_phones();
    let mut alice = taking_100rel(HeaderName::Supported);
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    let ringing = alice.expect_status(&mut pbx, Method::Invite, 180);
    // A PRACK naming the right RSeq for another request is no acknowledgement.
    let mut wrong = alice.in_dialog(&a, Method::Prack);
    wrong.push_header(HeaderName::RAck, format!("{} 7 INVITE", rseq(&ringing)));
    pbx.deliver(&alice.peer, &wrong);
    alice.expect_status(&mut pbx, Method::Prack, 481);
    // Bob answers before Alice acknowledged the 180: it carried no SDP, so the 200 goes
    // at once, and the 180 is not sent again after it.
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    alice.clear(&mut pbx);
    pbx.advance(Duration::from_secs(40));
    assert!(alice.take(&mut pbx).is_empty());
}

#[test]
fn each_call_starts_its_rseq_at_random_in_1_to_2_31_minus_1() {
    let (mut pbx, _, mut bob) = two_phones();
    let mut alice = taking_100rel(HeaderName::Supported);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        alice.call(&mut pbx, "1002");
        let b = bob.incoming(&mut pbx);
        bob.respond(&mut pbx, &b, 180);
        let first = rseq(&alice.expect_status(&mut pbx, Method::Invite, 180));
        assert!((1..=0x7fff_ffff).contains(&first), "{first}");
        seen.insert(first);
        bob.respond(&mut pbx, &b, 486);
        bob.clear(&mut pbx);
        alice.clear(&mut pbx);
    }
    assert!(seen.len() > 15, "{seen:?}");
}
