//! Feature codes during a conversation, through the phone harness: the transfer code,
//! a number and `#` send the other party elsewhere as a REFER would, the other party
//! hearing music meanwhile and the transferor a prompt; `#` alone or silence puts the
//! two back together; a refused number may be followed by another.

use std::path::PathBuf;
use std::time::Duration;

use super::calls::{answered, hold, our_port, two_phones};
use super::harness::{story_lines, CallRef, Pbx, Phone};
use super::media_model::Hears;
use crate::media::Keys;
use crate::sip::msg::{HeaderName, Method};

/// `phone` sends key `key` as SIP INFO in its dialog of `c`, answered 200.
fn info(pbx: &mut Pbx, phone: &mut Phone, c: &CallRef, key: char) {
    let mut info = phone.in_dialog(c, Method::Info);
    info.push_header(HeaderName::ContentType, "application/dtmf-relay");
    info.body = format!("Signal={key}\r\nDuration=160\r\n").into();
    pbx.deliver(&phone.peer, &info);
    phone.expect_status(pbx, Method::Info, 200);
}

fn hears(pbx: &Pbx, port: u16) -> Hears {
    pbx.model.on_port(port).unwrap().hears.clone()
}

fn moh() -> Hears {
    Hears::Music(PathBuf::from("sounds/moh/default.wav"))
}

fn prompt(name: &str) -> Hears {
    Hears::Prompt(PathBuf::from(format!("sounds/{name}.wav")))
}

#[test]
fn the_transfer_code_then_a_number_sends_the_other_party_there() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.advance(Duration::from_secs(3));
    // A false start is no code; nor is one whose keys come far apart.
    pbx.press(to_bob, "#5");
    pbx.press(to_bob, "#");
    pbx.advance(Duration::from_secs(3));
    pbx.press(to_bob, "#");
    assert!(pbx.model.bridged(to_alice, to_bob));
    pbx.press(to_bob, "#");
    // Alice hears music, Bob is asked for the number.
    assert!(!pbx.model.bridged(to_alice, to_bob));
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(hears(&pbx, to_bob), prompt("enter-extension"));
    pbx.press(to_bob, "1");
    assert_eq!(
        hears(&pbx, to_bob),
        Hears::Nothing,
        "a key stops the prompt"
    );
    // Alice's keys are not Bob's number; each of Bob's keys gives him 5 s more.
    info(&mut pbx, &mut alice, &a, '9');
    pbx.advance(Duration::from_secs(4));
    pbx.press(to_bob, "0");
    pbx.advance(Duration::from_secs(4));
    pbx.press(to_bob, "03#");
    // Carol rings for Alice, who hears ringback; Bob is hung up on.
    let c = carol.incoming(&mut pbx);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(
        hears(&pbx, to_alice),
        Hears::Music("sounds/ringback.wav".into())
    );
    assert!(
        alice.take(&mut pbx).is_empty(),
        "Alice's phone saw none of it"
    );
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&carol, &c)));
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    carol.bye(&mut pbx, &c);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        [
            "14000 transferred to 1003 by callee",
            "14000 dialled 1003",
            "14000 bridged 1003",
            "14000 ended answered 200 by callee"
        ]
    );
}

#[test]
fn no_number_puts_the_two_back_together_and_a_refused_one_may_be_followed_by_another() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    // The caller, an extension, may use the code too; `#` alone takes it back.
    pbx.press(to_alice, "##");
    assert_eq!(hears(&pbx, to_bob), moh());
    pbx.press(to_alice, "#");
    assert!(pbx.model.bridged(to_alice, to_bob));
    // Nothing pressed for 10 s: the same.
    pbx.press(to_bob, "##");
    pbx.advance(Duration::from_secs(9));
    assert!(!pbx.model.bridged(to_alice, to_bob));
    pbx.advance(Duration::from_secs(1));
    assert!(pbx.model.bridged(to_alice, to_bob));
    // A number with no route for the transferor: "invalid option", Alice still on
    // music; a pause after a few keys ends the number as well.
    pbx.press(to_bob, "##555");
    pbx.advance(Duration::from_secs(5));
    assert_eq!(hears(&pbx, to_bob), prompt("invalid-option"));
    assert_eq!(hears(&pbx, to_alice), moh());
    pbx.press(to_bob, "#");
    assert!(pbx.model.bridged(to_alice, to_bob));
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    // Keys as SIP INFO count the same.
    info(&mut pbx, &mut bob, &b, '#');
    info(&mut pbx, &mut bob, &b, '#');
    assert_eq!(hears(&pbx, to_alice), moh());
    info(&mut pbx, &mut bob, &b, '#');
    assert!(pbx.model.bridged(to_alice, to_bob));
    // With Alice on hold, Bob's code does nothing: she keeps her music, he his call.
    hold(&mut pbx, &mut bob, &b, &mut alice);
    info(&mut pbx, &mut bob, &b, '#');
    info(&mut pbx, &mut bob, &b, '#');
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(hears(&pbx, to_bob), Hears::Nothing, "asked for no number");
    pbx.advance(Duration::from_secs(11));
    assert_eq!(hears(&pbx, to_alice), moh(), "no entry timed out");
    bob.bye(&mut pbx, &b);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn an_outside_partys_keys_are_not_listened_to_and_the_extensions_are() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    let a = alice.call(&mut pbx, "95557654321");
    let inv = provider.expect_request(&mut pbx, Method::Invite);
    let p = provider.accept(inv);
    provider.respond(&mut pbx, &p, 200);
    provider.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    let (to_alice, to_provider) = (our_port(&alice, &a), our_port(&provider, &p));
    assert_eq!(
        pbx.model.on_port(to_alice).unwrap().keys,
        Some(Keys::Events(101)),
        "the telephone-event type of Alice's offer"
    );
    assert_eq!(pbx.model.on_port(to_provider).unwrap().keys, None);
    // Its keys as SIP INFO do nothing either: the two stay together.
    info(&mut pbx, &mut provider, &p, '#');
    info(&mut pbx, &mut provider, &p, '#');
    assert!(pbx.model.bridged(to_alice, to_provider));
    // Alice's code works: she may send the outside party to an extension.
    pbx.press(to_alice, "##");
    assert_eq!(hears(&pbx, to_provider), moh());
    pbx.press(to_alice, "#");
    assert!(pbx.model.bridged(to_alice, to_provider));
}

/// The prompts played on our port `port`, each ended as it starts, until none plays.
fn heard(pbx: &mut Pbx, port: u16) -> Vec<String> {
    let mut heard = Vec::new();
    while let Some(p) = pbx.prompt_ends(port) {
        heard.push(p.display().to_string());
    }
    heard
}

const SLOT_71: [&str; 3] = [
    "sounds/parked-at.wav",
    "sounds/digits/7.wav",
    "sounds/digits/1.wav",
];

#[test]
fn parking_by_code_tells_the_parker_the_slot_before_hanging_up_on_it() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    pbx.press(to_bob, "##70#");
    // Both hear the slot; Alice then waits with music.
    assert_eq!(heard(&mut pbx, to_alice), SLOT_71);
    assert_eq!(hears(&pbx, to_alice), moh());
    assert_eq!(pbx.calls()[0].state, "parked");
    let moves: Vec<String> = pbx.calls()[0].moves.iter().map(|m| m.line()).collect();
    assert_eq!(moves, ["transferred to 70 by the callee", "parked at 71"]);
    assert_eq!(
        pbx.model.on_port(to_bob).unwrap().hears,
        prompt("parked-at")
    );
    assert!(
        bob.take(&mut pbx).is_empty(),
        "not hung up on before the slot"
    );
    // The end of the prompt he heard before ("enter extension", cut short) comes late:
    // not the slot's.
    let (leg, seq, _) = pbx.model.prompt_on(to_bob).unwrap();
    pbx.media_event(crate::media::MediaEvent::PlayDone {
        leg,
        seq: u64::MAX,
        played: true,
    });
    assert_eq!(
        pbx.model.prompt_on(to_bob).map(|(_, s, p)| (s, p)),
        Some((seq, PathBuf::from("sounds/parked-at.wav")))
    );
    // Bob's keys meanwhile do nothing.
    pbx.advance(Duration::from_millis(500));
    info(&mut pbx, &mut bob, &b, '#');
    assert_eq!(pbx.calls().len(), 1);
    assert_eq!(heard(&mut pbx, to_bob), SLOT_71);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert!(pbx.model.on_port(to_bob).is_none(), "Bob's port is closed");
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    // Parked by Bob: a time-out rings him.
    let parked = pbx.ep.calls.calls.values().next().unwrap();
    assert_eq!(
        parked.cursor.vars.get("parked_by").map(String::as_str),
        Some("1002")
    );
    assert!(
        alice.take(&mut pbx).is_empty(),
        "Alice's phone saw none of it"
    );
    alice.bye(&mut pbx, &a);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        [
            "0 transferred to 70 by callee",
            "0 parked 71",
            "500 ended answered 200 by caller"
        ]
    );
}

#[test]
fn a_parker_that_hangs_up_first_or_a_parked_call_that_ends_ends_the_telling() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_bob = our_port(&bob, &b);
    pbx.press(to_bob, "##70#");
    // Bob hangs up while he hears the slot: answered, and nothing more is sent him.
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    assert!(pbx.model.on_port(to_bob).is_none());
    assert!(pbx.prompt_ends(to_bob).is_none());
    assert_eq!(pbx.calls()[0].state, "parked");
    alice.bye(&mut pbx, &a);
    assert!(bob.take(&mut pbx).is_empty());
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");

    // Alice (the caller this time) parks Bob, who hangs up while she hears the slot:
    // she is hung up on at once.
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_alice = our_port(&alice, &a);
    pbx.press(to_alice, "##70#");
    assert_eq!(pbx.calls()[0].state, "parked");
    assert_eq!(hears(&pbx, to_alice), prompt("parked-at"));
    // A late copy of her ACK is taken quietly, as in any dialog.
    let ack = alice.in_dialog(&a, Method::Ack);
    pbx.deliver(&alice.peer, &ack);
    assert!(alice.take(&mut pbx).is_empty());
    bob.bye(&mut pbx, &b);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    // A number that is not the park: hung up on at once, as before.
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (_a, b) = answered(&mut pbx, &mut alice, &mut bob);
    pbx.press(our_port(&bob, &b), "##1003#");
    carol.incoming(&mut pbx);
    bob.expect_request(&mut pbx, Method::Bye);
}
