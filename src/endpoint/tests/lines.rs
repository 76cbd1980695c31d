//! Do not disturb and call forwarding through the phone harness: each set by the
//! extension's own feature code, each as a caller meets it, and kept for a restart.

use std::time::Duration;

use super::calls::{our_port, two_phones};
use super::harness::{story_lines, Pbx, Phone};
use crate::sip::msg::{Method, StatusCode};

/// `phone` dials the feature code `code`: what it hears, before it is hung up on.
fn feature(pbx: &mut Pbx, phone: &mut Phone, code: &str) -> Vec<String> {
    let c = phone.call(pbx, code);
    phone.ack(pbx, &c);
    let port = our_port(phone, &c);
    let mut heard = Vec::new();
    while let Some(p) = pbx.prompt_ends(port) {
        heard.push(p.display().to_string());
    }
    let bye = phone.expect_request(pbx, Method::Bye);
    phone.reply(pbx, &bye, 200);
    phone.clear(pbx);
    heard
}

/// Alice calls 1002: the final status she is answered, if she is refused.
fn refused(pbx: &mut Pbx, alice: &mut Phone) -> Option<u16> {
    alice.call(pbx, "1002");
    alice
        .take(pbx)
        .iter()
        .filter_map(|m| m.status().map(StatusCode::as_u16))
        .find(|&s| s >= 300)
}

#[test]
fn do_not_disturb_refuses_calls_as_busy_until_it_is_turned_off() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    assert_eq!(feature(&mut pbx, &mut bob, "*78"), ["sounds/dnd-on.wav"]);
    assert_eq!(refused(&mut pbx, &mut alice), Some(486));
    assert!(bob.take(&mut pbx).is_empty(), "Bob's phone did not ring");
    assert_eq!(pbx.ep.lines(pbx.now)[1].state, "idle");
    assert!(pbx.ep.lines(pbx.now)[1].settings.dnd);
    assert_eq!(feature(&mut pbx, &mut bob, "*79"), ["sounds/dnd-off.wav"]);
    alice.call(&mut pbx, "1002");
    bob.expect_request(&mut pbx, Method::Invite);
}

#[test]
fn a_forward_sends_every_call_or_the_busy_or_unanswered_one_to_its_number() {
    for (code, why) in [
        ("*721003", "all"),
        ("*901003", "busy"),
        ("*521003", "noanswer"),
    ] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let mut carol = Phone::new("1003", 5074);
        carol.register(&mut pbx);
        assert_eq!(
            feature(&mut pbx, &mut bob, code),
            ["sounds/forward-on.wav"],
            "{code}"
        );
        let a = alice.call(&mut pbx, "1002");
        match why {
            "busy" => {
                let b = bob.incoming(&mut pbx);
                bob.respond(&mut pbx, &b, 486);
            }
            "noanswer" => {
                let b = bob.incoming(&mut pbx);
                bob.respond(&mut pbx, &b, 180);
                pbx.advance(Duration::from_secs(30));
                let cancel = bob.expect_request(&mut pbx, Method::Cancel);
                bob.reply(&mut pbx, &cancel, 200);
            }
            _ => {}
        }
        // Carol rings instead, and takes the call.
        let c = carol.incoming(&mut pbx);
        carol.respond(&mut pbx, &c, 200);
        carol.expect_request(&mut pbx, Method::Ack);
        alice.ack(&mut pbx, &a);
        assert!(
            pbx.model
                .bridged(our_port(&alice, &a), our_port(&carol, &c)),
            "{code}"
        );
        carol.bye(&mut pbx, &c);
        let story = story_lines(&pbx, 1);
        assert!(
            story
                .iter()
                .any(|l| l.ends_with(&format!("forwarded {why} from 1002 to 1003"))),
            "{code}: {story:?}"
        );
        assert!(
            story.iter().any(|l| l.ends_with("bridged 1003")),
            "{story:?}"
        );
    }
}

#[test]
fn line_settings_are_kept_for_a_restart_and_forwards_do_not_loop() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    feature(&mut pbx, &mut bob, "*721003");
    feature(&mut pbx, &mut carol, "*721002");
    // Forwarding to itself is refused.
    assert_eq!(
        feature(&mut pbx, &mut bob, "*901002"),
        ["sounds/invalid-option.wav"]
    );
    // 1002 and 1003 forward to each other: a few hops, then the phone at the end of the
    // chain rings rather than the call going round for ever.
    alice.call(&mut pbx, "1002");
    let rung = bob.take(&mut pbx).len() + carol.take(&mut pbx).len();
    assert!(rung > 0, "someone rings");
    let forwards = pbx.ep.calls.calls.values().next().unwrap().cursor.vars["forwards"].clone();
    assert_eq!(
        forwards, "5",
        "five forwards, then the last extension rings"
    );
    // What a restart reads back.
    let saved = pbx
        .lines_saved
        .clone()
        .expect("settings handed out to keep");
    let mut again = Pbx::new();
    assert_eq!(again.ep.restore_lines(again.now, &saved), Ok(2));
    // Taken back whole: nothing new to keep.
    assert_eq!(again.ep.poll_lines_saved(), None);
    let lines = again.ep.lines(again.now);
    assert_eq!(lines[1].settings.forward_all.as_deref(), Some("1003"));
    assert_eq!(lines[2].settings.forward_all.as_deref(), Some("1002"));
    assert!(again.ep.restore_lines(again.now, "not json").is_err());
    // Settings of an extension no longer configured are dropped.
    assert_eq!(
        again
            .ep
            .restore_lines(again.now, r#"{"9999":{"dnd":true},"1001":{"dnd":true}}"#),
        Ok(1)
    );
    // The file is written again without the dropped extension.
    let kept = again.ep.poll_lines_saved().expect("settings to keep again");
    assert!(kept.contains("1001") && !kept.contains("9999"), "{kept}");
}

#[test]
fn an_agents_do_not_disturb_pauses_it_in_its_queues_and_turning_it_off_brings_it_back() {
    use crate::acd::AgentState;
    let (mut pbx, mut alice, mut bob) = two_phones();
    // Bob (1002) is a member of the support queue: on do not disturb he is paused, not
    // offered calls he would refuse.
    feature(&mut pbx, &mut bob, "*78");
    assert_eq!(
        pbx.ep.acd.agent_state("1002"),
        AgentState::Paused("dnd".into())
    );
    let (a, _, _) = super::calls::answered_here(&mut pbx, &mut alice, "700");
    pbx.advance(Duration::from_secs(5));
    assert!(bob.take(&mut pbx).is_empty(), "not offered");
    assert!(pbx
        .queue_log
        .iter()
        .any(|l| l.contains(r#""reason":"dnd""#)));
    // Off: back, and offered the waiting caller.
    feature(&mut pbx, &mut bob, "*79");
    assert_ne!(
        pbx.ep.acd.agent_state("1002"),
        AgentState::Paused("dnd".into())
    );
    pbx.advance(Duration::from_secs(5));
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 486);
    alice.bye(&mut pbx, &a);
    // A pause for another reason is his own: do not disturb going off leaves it.
    feature(&mut pbx, &mut bob, "*78");
    pbx.ep
        .agent_action(pbx.now, "1002", crate::acd::AgentOp::Pause("lunch".into()))
        .unwrap();
    feature(&mut pbx, &mut bob, "*79");
    assert_eq!(
        pbx.ep.acd.agent_state("1002"),
        AgentState::Paused("lunch".into())
    );
    // Kept for a restart: the agent starts paused.
    feature(&mut pbx, &mut bob, "*78");
    let saved = pbx.lines_saved.clone().expect("settings to keep");
    let mut again = Pbx::new();
    again.ep.restore_lines(again.now, &saved).unwrap();
    assert_eq!(
        again.ep.acd.agent_state("1002"),
        AgentState::Paused("dnd".into())
    );
}

#[test]
fn a_call_forwarded_out_through_a_trunk_no_longer_rings_at_the_extension() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    feature(&mut pbx, &mut bob, "*5295557654321");
    let a = alice.call(&mut pbx, "1002");
    bob.incoming(&mut pbx);
    // Unanswered at 1002: forwarded out, ringing at the provider now.
    pbx.advance(Duration::from_secs(30));
    bob.clear(&mut pbx);
    let inv = provider.expect_request(&mut pbx, Method::Invite);
    let p = provider.accept(inv);
    provider.respond(&mut pbx, &p, 180);
    // Nobody may take it as a call ringing at 1002, and its lamp is out.
    assert_eq!(pbx.ep.lines(pbx.now)[1].state, "idle");
    let c = carol.call(&mut pbx, "**1002");
    let refused = carol
        .take(&mut pbx)
        .iter()
        .any(|m| m.status().is_some_and(|s| s.as_u16() == 404));
    assert!(refused, "not picked up: {c:?}");
    // The outside party, once it answers, is no extension: its REFER is refused.
    provider.respond(&mut pbx, &p, 200);
    provider.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    let mut refer = provider.in_dialog(&p, Method::Refer);
    refer.push_header(
        crate::sip::msg::HeaderName::Other(bytes::Bytes::from_static(b"Refer-To")),
        "<sip:9001144207946000@switchboard.local>",
    );
    pbx.deliver(&provider.peer, &refer);
    let r = provider.expect(&mut pbx, "an answer to REFER", |m| {
        m.method() == Some(Method::Refer) && m.status().is_some()
    });
    assert!(r.status().unwrap().as_u16() >= 400, "{r:?}");
}
