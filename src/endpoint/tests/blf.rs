//! Busy lamps through the phone harness: a phone watching a line (RFC 4235 dialog
//! package) is told at once and on every change whether it is idle, ringing or busy;
//! a parking slot's lamp shows a parked call.

use super::calls::{answered, two_phones};
use super::harness::{Pbx, Phone};
use crate::sip::msg::Method;

/// The `<state>` and `version` of a dialog-info document.
fn lamp(doc: &str) -> (String, String) {
    let info = doc.split("<dialog-info").nth(1).unwrap_or_default();
    let between = |a: &str, b: &str| {
        let s = info.split(a).nth(1).unwrap_or_default();
        s.split(b).next().unwrap_or_default().to_string()
    };
    assert!(doc.contains("state=\"full\""), "{doc}");
    (between("<state>", "</state>"), between(" version=\"", "\""))
}

#[test]
fn a_watched_extension_shows_idle_ringing_busy_and_idle_again() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut desk = Phone::new("1003", 5074);
    assert_eq!(desk.subscribe(&mut pbx, "1002", "dialog"), 200);
    let first = desk.notified(&mut pbx);
    assert!(
        first.contains("entity=\"sip:1002@switchboard.local\""),
        "{first}"
    );
    assert_eq!(lamp(&first), ("terminated".into(), "0".into()));
    let a = alice.call(&mut pbx, "1002");
    let ringing = desk.notified(&mut pbx);
    assert_eq!(lamp(&ringing), ("early".into(), "1".into()));
    // The ringing dialog is named, for a phone that would pick it up.
    assert!(
        ringing.contains("call-id=\"") && ringing.contains("direction=\"recipient\""),
        "{ringing}"
    );
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    let tagged = desk.notified(&mut pbx);
    assert_eq!(lamp(&tagged).0, "early");
    assert!(tagged.contains("remote-tag=\""), "{tagged}");
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    assert_eq!(
        lamp(&desk.notified(&mut pbx)),
        ("confirmed".into(), "3".into())
    );
    bob.bye(&mut pbx, &b);
    assert_eq!(
        lamp(&desk.notified(&mut pbx)),
        ("terminated".into(), "4".into())
    );
    // Changes while a NOTIFY waits for its answer are sent after it, as the state then
    // is: the ringing's new tag is passed over for the answer, never shown last.
    let (_a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let mut shown = Vec::new();
    loop {
        let got = desk.take(&mut pbx);
        if got.is_empty() {
            break;
        }
        for n in got.iter().filter(|m| m.method() == Some(Method::Notify)) {
            desk.reply(&mut pbx, n, 200);
            shown.push(lamp(&String::from_utf8_lossy(&n.body)).0);
        }
    }
    assert_eq!(shown, ["early", "confirmed"]);
    bob.bye(&mut pbx, &b);
    assert_eq!(lamp(&desk.notified(&mut pbx)).0, "terminated");
}

#[test]
fn a_parking_slots_lamp_lights_while_a_call_waits_there() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut desk = Phone::new("1003", 5074);
    assert_eq!(desk.subscribe(&mut pbx, "71", "dialog"), 200);
    assert_eq!(lamp(&desk.notified(&mut pbx)).0, "terminated");
    let (_a, b) = answered(&mut pbx, &mut alice, &mut bob);
    super::calls::transferred(&mut pbx, &mut bob, &b, "70");
    assert_eq!(lamp(&desk.notified(&mut pbx)).0, "confirmed");
    // The receptionist takes it from the slot: the lamp goes out.
    let c = desk.call(&mut pbx, "71");
    desk.ack(&mut pbx, &c);
    assert_eq!(lamp(&desk.notified(&mut pbx)).0, "terminated");
}

#[test]
fn a_lamp_is_refused_for_what_is_no_line_and_for_other_packages() {
    let mut pbx = Pbx::new();
    let mut desk = Phone::new("1003", 5074);
    assert_eq!(desk.subscribe(&mut pbx, "nobody", "dialog"), 404);
    assert_eq!(desk.subscribe(&mut pbx, "1002", "presence"), 489);
    let mut stranger = Phone::at("1003", "wrong-password", "127.0.0.1:5090");
    assert_eq!(stranger.subscribe(&mut pbx, "1002", "dialog"), 403);
    assert!(desk.take(&mut pbx).is_empty(), "no NOTIFY for any of them");
}

#[test]
fn a_lamp_key_picks_up_the_ringing_call_it_shows_with_an_invite_with_replaces() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut desk = Phone::new("1003", 5074);
    assert_eq!(desk.subscribe(&mut pbx, "1002", "dialog"), 200);
    desk.notified(&mut pbx);
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    desk.notified(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    let doc = desk.notified(&mut pbx);
    let attr = |name: &str| {
        let s = doc.split(&format!(" {name}=\"")).nth(1).unwrap_or_default();
        s.split('"').next().unwrap_or_default().to_string()
    };
    // The phone replaces the early dialog the lamp named: ours with Bob's phone.
    let replaces = format!(
        "{};to-tag={};from-tag={};early-only",
        attr("call-id"),
        attr("remote-tag"),
        attr("local-tag")
    );
    desk.invite_headers = vec![(
        crate::sip::msg::HeaderName::Other("Replaces".into()),
        bytes::Bytes::from(replaces),
    )];
    let d = desk.call(&mut pbx, "1002");
    desk.ack(&mut pbx, &d);
    let cancel = bob.expect_request(&mut pbx, Method::Cancel);
    bob.reply(&mut pbx, &cancel, 200);
    bob.respond(&mut pbx, &b, 487);
    let ok = alice.expect(&mut pbx, "200 to INVITE", |m| {
        m.status()
            .is_some_and(crate::sip::msg::StatusCode::is_success)
    });
    alice.ack_this(&mut pbx, &a, &ok);
    assert!(
        pbx.model.bridged(
            super::calls::our_port(&alice, &a),
            super::calls::our_port(&desk, &d)
        ),
        "{:?}",
        pbx.model
    );
    let v = pbx.calls();
    assert_eq!((v.len(), v[0].state.as_str()), (1, "bridged"), "{v:?}");
    desk.bye(&mut pbx, &d);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        super::harness::story_lines(&pbx, 0)[2..],
        [
            "0 answered",
            "0 picked up at 1002 by 1003",
            "0 bridged 1003",
            "0 ended answered 200 by callee"
        ]
    );
}

#[test]
fn a_phone_cannot_pick_up_a_call_ringing_at_its_own_extension_by_replaces() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    let leg = &pbx.calls()[0].legs;
    let ringing = leg.iter().find(|l| l.role == "ringing").unwrap().clone();
    let replaces = |extra: &str| {
        bytes::Bytes::from(format!(
            "{};to-tag={};from-tag={}{extra}",
            ringing.sip_call_id,
            ringing.remote_tag.clone().unwrap(),
            ringing.tag
        ))
    };
    // Bob's other phone: the call rings at its own extension already.
    let mut soft = Phone::new("1002", 5076);
    soft.invite_headers = vec![(
        crate::sip::msg::HeaderName::Other("Replaces".into()),
        replaces(""),
    )];
    soft.call(&mut pbx, "1002");
    let got = soft.take(&mut pbx);
    assert!(
        got.iter()
            .any(|m| m.status().is_some_and(|s| s.as_u16() == 403)),
        "{:?}",
        got.iter().map(super::harness::summary).collect::<Vec<_>>()
    );
    assert_eq!(pbx.calls()[0].state, "ringing");
}

#[test]
fn a_lamp_on_an_agents_id_shows_it_ready_offered_busy_and_paused() {
    use crate::acd::AgentOp;
    let (mut pbx, mut alice, _bob) = two_phones();
    alice.register(&mut pbx);
    // Only agent 5001 takes the support queue's calls: its static members are paused.
    for member in ["1002", "1003"] {
        pbx.ep
            .agent_action(pbx.now, member, AgentOp::Pause("lunch".into()))
            .unwrap();
    }
    let mut supervisor = Phone::new("1001", 5080);
    assert_eq!(supervisor.subscribe(&mut pbx, "5001", "dialog"), 200);
    // Logged out: not available.
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "confirmed");
    // Logged in at Alice's phone: ready.
    assert_eq!(
        pbx.ep
            .agent_login_pin(pbx.now, "1001", true, "5001", "45001"),
        crate::endpoint::call::state::Status::Ok
    );
    pbx.settle();
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "terminated");
    // A queue caller is offered to it, then taken.
    let mut carol = Phone::new("1003", 5074);
    let (c, _, _) = super::calls::answered_here(&mut pbx, &mut carol, "700");
    let offer = alice.incoming(&mut pbx);
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "early");
    alice.respond(&mut pbx, &offer, 200);
    alice.expect_request(&mut pbx, Method::Ack);
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "confirmed");
    // The call ends; after its wrap-up it is ready again.
    carol.bye(&mut pbx, &c);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert!(
        supervisor.take(&mut pbx).is_empty(),
        "wrap-up: still not available"
    );
    pbx.advance(std::time::Duration::from_secs(5));
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "terminated");
    // Paused.
    pbx.ep
        .agent_action(pbx.now, "5001", AgentOp::Pause("break".into()))
        .unwrap();
    pbx.settle();
    assert_eq!(lamp(&supervisor.notified(&mut pbx)).0, "confirmed");
}
