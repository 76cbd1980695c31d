//! The call layer through the phone harness: one test per flow, on a virtual clock, each
//! ending with the flow's CDR compared whole.

use std::time::Duration;

use super::harness::{cdr_line, story_lines, summary, CallRef, Pbx, Phone};
use super::media_model::Hears;
use crate::cdr::{Disposition, HangupBy};
use crate::media::{Keys, LegKey, MediaCommand, MediaEvent};
use crate::sdp::{Direction, Sdp};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::response_to;

/// A PBX with 1002 registered, and 1001 ready to call.
pub(super) fn two_phones() -> (Pbx, Phone, Phone) {
    let mut pbx = Pbx::new();
    let alice = Phone::new("1001", 5070);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    pbx.take_media();
    (pbx, alice, bob)
}

pub(super) fn statuses(msgs: &[Message]) -> Vec<u16> {
    msgs.iter()
        .filter_map(|m| m.status().map(StatusCode::as_u16))
        .collect()
}

pub(super) fn methods(msgs: &[Message]) -> Vec<Method> {
    msgs.iter()
        .filter(|m| m.is_request())
        .filter_map(Message::method)
        .collect()
}

/// Our RTP port facing `phone` in its call `c` (from the SDP we sent it).
pub(super) fn our_port(phone: &Phone, c: &CallRef) -> u16 {
    let sdp = phone
        .call_state(c)
        .remote_sdp
        .as_ref()
        .expect("SDP from the PBX");
    sdp.audio().expect("audio").port
}

/// 1001 calls 1002, who answers; both ACKed. Returns each side's call.
pub(super) fn answered(pbx: &mut Pbx, alice: &mut Phone, bob: &mut Phone) -> (CallRef, CallRef) {
    let a = alice.call(pbx, "1002");
    let b = bob.incoming(pbx);
    bob.respond(pbx, &b, 180);
    bob.respond(pbx, &b, 200);
    bob.expect_request(pbx, Method::Ack);
    alice.ack(pbx, &a);
    alice.clear(pbx);
    (a, b)
}

#[test]
fn an_answered_call_is_relayed_and_either_side_may_hang_up() {
    for callee_hangs_up in [false, true] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let a = alice.call(&mut pbx, "1002");
        let b = bob.incoming(&mut pbx);
        // The callee is offered our relay, not the caller's own address.
        let offer = bob.call_state(&b).remote_sdp.clone().expect("an offer");
        assert_ne!(offer.audio().unwrap().port, alice.rtp_port);
        bob.respond(&mut pbx, &b, 180);
        pbx.advance(Duration::from_millis(500));
        bob.respond(&mut pbx, &b, 200);
        bob.expect_request(&mut pbx, Method::Ack);
        let got = alice.take(&mut pbx);
        assert_eq!(statuses(&got), [100, 180, 200], "{callee_hangs_up}");
        let answer = Sdp::parse(&got[2].body).unwrap();
        assert_ne!(answer.audio().unwrap().port, bob.rtp_port);
        // The two relay ports are legs of one bridge.
        assert!(
            pbx.model
                .bridged(answer.audio().unwrap().port, offer.audio().unwrap().port),
            "{:?}",
            pbx.model
        );
        alice.ack_this(&mut pbx, &a, &got[2]);
        pbx.advance(Duration::from_secs(3));
        assert!(alice.take(&mut pbx).is_empty(), "the ACK stopped the 200");
        if callee_hangs_up {
            bob.bye(&mut pbx, &b);
            bob.expect_status(&mut pbx, Method::Bye, 200);
            let bye = alice.expect_request(&mut pbx, Method::Bye);
            alice.reply(&mut pbx, &bye, 200);
        } else {
            alice.bye(&mut pbx, &a);
            alice.expect_status(&mut pbx, Method::Bye, 200);
            let bye = bob.expect_request(&mut pbx, Method::Bye);
            bob.reply(&mut pbx, &bye, 200);
        }
        assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
        assert_eq!(pbx.model.open(), (0, 0), "media legs and bridges");
        let by = if callee_hangs_up { "callee" } else { "caller" };
        assert_eq!(
            cdr_line(&pbx.cdrs[0]),
            format!("1001 -> 1002 did=- trunk=- start=0 answer=500 end=3500 answered 200 by {by}")
        );
        assert_eq!(
            story_lines(&pbx, 0),
            [
                "0 started 1001 -> 1002".to_string(),
                "0 dialled 1002".into(),
                // The callee's answer comes first; the caller's is relayed from it.
                "500 bridged 1002".into(),
                "500 answered".into(),
                format!("3500 ended answered 200 by {by}"),
            ]
        );
    }
}

#[test]
fn the_answer_is_sent_again_until_the_callers_ack() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 200);
    alice.take(&mut pbx);
    // No ACK: the 200 goes again at T1, then 2 T1 later.
    pbx.advance(Duration::from_millis(1600));
    let again: Vec<u128> = pbx
        .sent
        .iter()
        .filter(|(_, to, m)| *to == alice.peer.addr && m.status() == Some(StatusCode::OK))
        .map(|(at, _, _)| (*at - pbx.t0).as_millis())
        .collect();
    assert_eq!(again, [0, 500, 1500]);
    alice.ack(&mut pbx, &a);
    pbx.advance(Duration::from_secs(10));
    assert!(
        alice.take(&mut pbx).is_empty(),
        "nothing after the ACK: no more 200s"
    );
    assert_eq!(pbx.ep.call_count(), 1, "still talking");
}

#[test]
fn a_caller_that_never_acks_is_hung_up_on_both_sides() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    pbx.advance(Duration::from_secs(40));
    alice.expect_request(&mut pbx, Method::Bye);
    bob.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=32000 answered 408 by system"
    );
}

#[test]
fn ring_timeout_cancels_the_callee_and_a_late_answer_is_hung_up() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    alice.expect_status(&mut pbx, Method::Invite, 180);
    // The default dialplan rings for 30 s.
    pbx.advance(Duration::from_secs(30));
    let cancel = bob.expect_request(&mut pbx, Method::Cancel);
    bob.reply(&mut pbx, &cancel, 200);
    alice.expect_status(&mut pbx, Method::Invite, 480);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=- end=30000 noanswer 480 by system"
    );
    // The callee answers anyway: ACK and BYE, so nobody is left in a silent call.
    bob.respond(&mut pbx, &b, 200);
    assert_eq!(methods(&bob.take(&mut pbx)), [Method::Ack, Method::Bye]);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn a_cancel_before_any_ringing_waits_for_the_callees_provisional() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    alice.cancel(&mut pbx, &a);
    let got = alice.take(&mut pbx);
    assert!(statuses(&got).contains(&487), "{got:?}");
    assert!(
        bob.take(&mut pbx).is_empty(),
        "no CANCEL before a provisional (RFC 3261 §9.1)"
    );
    bob.respond(&mut pbx, &b, 180);
    bob.expect_request(&mut pbx, Method::Cancel);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=- end=0 cancelled 487 by caller"
    );
}

#[test]
fn busy_and_unknown_callees_end_the_call_with_their_status() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 486);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.expect_status(&mut pbx, Method::Invite, 486);
    alice.call(&mut pbx, "1003");
    alice.expect_status(&mut pbx, Method::Invite, 480);
    alice.call(&mut pbx, "1999");
    alice.expect_status(&mut pbx, Method::Invite, 404);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    assert_eq!(
        lines,
        [
            "1001 -> 1002 did=- trunk=- start=0 answer=- end=0 busy 486 by system",
            "1001 -> 1003 did=- trunk=- start=0 answer=- end=0 unavailable 480 by system",
            "1001 -> 1999 did=- trunk=- start=0 answer=- end=0 unavailable 404 by system",
        ]
    );
    assert_eq!(
        [
            story_lines(&pbx, 0),
            story_lines(&pbx, 1),
            story_lines(&pbx, 2)
        ],
        [
            vec![
                "0 started 1001 -> 1002",
                "0 dialled 1002",
                "0 dial_failed busy",
                "0 ended busy 486 by system"
            ],
            // An extension with no phone registered is never rung.
            vec![
                "0 started 1001 -> 1003",
                "0 ended unavailable 480 by system"
            ],
            vec![
                "0 started 1001 -> 1999",
                "0 ended unavailable 404 by system"
            ],
        ]
    );
}

#[test]
fn hold_and_resume_play_music_to_the_held_party_and_answer_the_holder() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    pbx.take_media();
    // Bob holds: the PBX relays the hold to Alice, sending only (our music) ...
    bob.hold(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    let to_alice = Sdp::parse(&reinv.body).unwrap();
    assert_eq!(to_alice.direction(), Direction::SendOnly);
    alice.reply(&mut pbx, &reinv, 200);
    alice.expect_request(&mut pbx, Method::Ack);
    // ... and Bob is answered recvonly, the music starts for Alice.
    let ok = bob.expect_status(&mut pbx, Method::Invite, 200);
    assert_eq!(
        Sdp::parse(&ok.body).unwrap().direction(),
        Direction::RecvOnly
    );
    bob.ack_this(&mut pbx, &b, &ok);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    let held = pbx.model.on_port(to_alice).unwrap();
    assert!(
        held.bridge.is_none()
            && matches!(&held.hears, Hears::Music(m) if m.ends_with("moh/default.wav")),
        "{held:?}"
    );
    assert!(
        pbx.model.on_port(to_bob).unwrap().bridge.is_some(),
        "the holder stays"
    );
    assert_eq!(pbx.calls()[0].on_hold.as_deref(), Some("caller"));
    // Resume: sendrecv both ways, the music stops.
    bob.resume(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    assert_eq!(
        Sdp::parse(&reinv.body).unwrap().direction(),
        Direction::SendRecv
    );
    alice.reply(&mut pbx, &reinv, 200);
    let ok = bob.expect_status(&mut pbx, Method::Invite, 200);
    assert_eq!(
        Sdp::parse(&ok.body).unwrap().direction(),
        Direction::SendRecv
    );
    bob.ack_this(&mut pbx, &b, &ok);
    assert!(pbx.model.bridged(to_alice, to_bob), "{:?}", pbx.model);
    assert_eq!(pbx.model.on_port(to_alice).unwrap().hears, Hears::Nothing);
    assert_eq!(pbx.calls()[0].on_hold, None);
    alice.bye(&mut pbx, &a);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=0 answered 200 by caller"
    );
    assert_eq!(
        story_lines(&pbx, 0),
        [
            "0 started 1001 -> 1002",
            "0 dialled 1002",
            "0 bridged 1002",
            "0 answered",
            "0 held caller",
            "0 resumed caller",
            "0 ended answered 200 by caller"
        ]
    );
}

#[test]
fn a_call_answered_here_answers_hold_in_the_direction_asked() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    // 600, the echo test, is answered by switchboard itself.
    let a = alice.call(&mut pbx, "600");
    alice.ack(&mut pbx, &a);
    for (offer, answer) in [
        (Direction::SendOnly, Direction::RecvOnly),
        (Direction::Inactive, Direction::Inactive),
        (Direction::SendRecv, Direction::SendRecv),
    ] {
        alice.reinvite(&mut pbx, &a, offer);
        let ok = alice.expect_status(&mut pbx, Method::Invite, 200);
        assert_eq!(
            Sdp::parse(&ok.body).unwrap().direction(),
            answer,
            "{offer:?}"
        );
        alice.ack_this(&mut pbx, &a, &ok);
    }
}

/// 1001 calls `number`, answered by switchboard itself and ACKed; the media leg the
/// call was opened with, and the media commands since the call began.
pub(super) fn answered_here(
    pbx: &mut Pbx,
    alice: &mut Phone,
    number: &str,
) -> (CallRef, LegKey, Vec<MediaCommand>) {
    pbx.take_media();
    let a = alice.call(pbx, number);
    alice.ack(pbx, &a);
    alice.clear(pbx);
    let media = pbx.take_media();
    let Some(MediaCommand::LegOpen { leg, keys, .. }) = media.first() else {
        panic!("{media:?}")
    };
    assert_eq!(
        *keys,
        Some(Keys::Events(101)),
        "the caller's telephone-event type is known to the relay"
    );
    let leg = *leg;
    (a, leg, media)
}

fn played(leg: LegKey, seq: u64) -> MediaEvent {
    MediaEvent::PlayDone {
        leg,
        seq,
        played: true,
    }
}

/// The call's state in `ctl calls`: its name, whether it was answered, devices ringing.
pub(super) fn call_state(pbx: &Pbx) -> (String, bool, usize) {
    let v = pbx.calls();
    assert_eq!(v.len(), 1, "{v:?}");
    (v[0].state.clone(), v[0].answered, v[0].ringing)
}

#[test]
fn collect_gives_up_after_the_first_key_timeout_counted_from_the_prompts_end() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    // 602: the greeting, then keys for an extension.
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    // The prompt lasts 4 s; only then do the 10 s start.
    pbx.advance(Duration::from_secs(4));
    pbx.media_event(played(id, 1));
    pbx.advance(Duration::from_millis(9_900));
    assert!(alice.take(&mut pbx).is_empty(), "still waiting at 13.9 s");
    pbx.advance(Duration::from_millis(100));
    alice.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.elapsed(), Duration::from_secs(14));
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 602 did=- trunk=- start=0 answer=0 end=14000 answered 200 by system"
    );
}

#[test]
fn keys_stop_the_prompt_and_the_interdigit_timeout_ends_the_input() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    pbx.advance(Duration::from_secs(1));
    pbx.media_event(MediaEvent::Digit {
        leg: id,
        digit: '1',
    });
    let media = pbx.take_media();
    assert!(
        media
            .iter()
            .any(|c| matches!(c, MediaCommand::StopPlay { .. })),
        "barge-in: {media:?}"
    );
    pbx.media_event(played(id, 1));
    pbx.advance(Duration::from_secs(2));
    pbx.media_event(MediaEvent::Digit {
        leg: id,
        digit: '0',
    });
    // No more keys: 3 s after the last one the input is "10", which is no extension, so
    // the dial fails at once and the call is hung up.
    pbx.advance(Duration::from_millis(2_999));
    assert!(alice.take(&mut pbx).is_empty(), "still collecting");
    pbx.advance(Duration::from_millis(1));
    alice.expect_request(&mut pbx, Method::Bye);
    assert_eq!(pbx.elapsed(), Duration::from_secs(6));
}

#[test]
fn four_keys_or_the_terminator_end_the_input_at_once() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    for digit in ['1', '0', '0', '2'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    bob.incoming(&mut pbx);
    // With '#', fewer keys do: "10#" dials 10 at once (and fails: no such extension).
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    for digit in ['1', '0', '#'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    alice.expect_request(&mut pbx, Method::Bye);
}

#[test]
fn say_plays_its_prompts_in_turn_then_the_dialplan_goes_on() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let (_, id, mut media) = answered_here(&mut pbx, &mut alice, "604");
    let mut heard = Vec::new();
    for _ in 0..10 {
        let Some((seq, path)) = media.iter().find_map(|c| match c {
            MediaCommand::Play { seq, path, .. } => Some((*seq, path.clone())),
            _ => None,
        }) else {
            break;
        };
        heard.push(path.strip_prefix("sounds").unwrap().display().to_string());
        pbx.media_event(played(id, seq));
        media = pbx.take_media();
    }
    assert_eq!(
        heard,
        [
            "you-are-caller-number.wav",
            "digits/1.wav",
            "digits/thousand.wav",
            "digits/1.wav",
            "goodbye.wav"
        ]
    );
    alice.expect_request(&mut pbx, Method::Bye);
    for p in &heard {
        assert!(
            std::path::Path::new("sounds").join(p).exists(),
            "{p} ships in sounds/"
        );
    }
}

#[test]
fn a_waiting_caller_hears_music_round_broken_only_by_its_place_in_the_queue() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    // 700: the support queue, no agent's phone registered; its place every 30 s.
    let (a, leg, _) = answered_here(&mut pbx, &mut alice, "700");
    let to_alice = our_port(&alice, &a);
    let hears = |pbx: &Pbx| pbx.model.on_port(to_alice).unwrap().hears.clone();
    let music = Hears::Music("sounds/moh/default.wav".into());
    assert_eq!(hears(&pbx), music);
    // The music goes round in the engine: nothing to ask for again meanwhile.
    pbx.advance(Duration::from_secs(29));
    assert!(pbx.take_media().is_empty());
    pbx.advance(Duration::from_secs(1));
    let mut said = Vec::new();
    for _ in 0..10 {
        let Hears::Prompt(p) = hears(&pbx) else {
            break;
        };
        said.push(p.file_name().unwrap().to_string_lossy().into_owned());
        let seq = pbx
            .take_media()
            .iter()
            .rev()
            .find_map(|m| match m {
                MediaCommand::Play { seq, .. } => Some(*seq),
                _ => None,
            })
            .expect("the prompt's command");
        pbx.media_event(played(leg, seq));
    }
    assert_eq!(
        said[..2],
        ["you-are-caller-number.wav", "1.wav"],
        "{said:?}"
    );
    assert_eq!(hears(&pbx), music, "the music again after {said:?}");
    assert_eq!(call_state(&pbx).0, "queued");
}

#[test]
fn ctl_calls_names_what_each_call_is_doing() {
    // Dialled straight through: the callee rings, then answers.
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    assert_eq!(call_state(&pbx), ("ringing".into(), false, 1));
    bob.respond(&mut pbx, &b, 180);
    assert_eq!(call_state(&pbx), ("ringing".into(), false, 1));
    bob.respond(&mut pbx, &b, 200);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));

    // In the IVR: keys gathered after the prompt, then the number they make rings.
    let (mut pbx, mut alice, _) = two_phones();
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    assert_eq!(call_state(&pbx), ("collecting".into(), true, 0));
    for digit in ['1', '0', '0', '2'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    assert_eq!(call_state(&pbx), ("ringing".into(), true, 1));

    // A menu's single key, a caller hearing itself, a prompt.
    for (number, state) in [("603", "menu"), ("600", "echo"), ("601", "playing")] {
        let mut pbx = Pbx::new();
        answered_here(&mut pbx, &mut Phone::new("1001", 5070), number);
        assert_eq!(call_state(&pbx), (state.into(), true, 0));
    }

    // The beep before a recording, then the recording; and a caller in a queue.
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let (a, id, _) = answered_here(&mut pbx, &mut alice, "607");
    assert_eq!(call_state(&pbx), ("record-prompt".into(), true, 0));
    pbx.media_event(played(id, 1));
    assert_eq!(call_state(&pbx), ("recording".into(), true, 0));
    let port = our_port(&alice, &a);
    let recording = |pbx: &Pbx| pbx.model.on_port(port).unwrap().recording;
    assert!(recording(&pbx));
    // # by SIP INFO ends it (an RFC 4733 # ends it in the engine itself).
    info(&mut pbx, &mut alice, &a, "application/dtmf", "#");
    assert!(!recording(&pbx));
    let mut pbx = Pbx::new();
    answered_here(&mut pbx, &mut Phone::new("1001", 5070), "700");
    assert_eq!(call_state(&pbx).0, "queued");
}

#[test]
fn ctl_calls_lists_each_leg_with_its_port_and_its_bridge() {
    use crate::endpoint::LegView;
    // Each leg names the engine's leg on its port (the driver reads its packet count
    // by it); compared, that key is taken off.
    let legs = |pbx: &Pbx| {
        let mut legs = pbx.calls()[0].legs.clone();
        for l in &mut legs {
            let port = l.rtp_port.expect("a port");
            assert_eq!(l.media, pbx.model.legs_on_port_key(port), "{l:?}");
            l.media = None;
            // Its dialog is one the PBX knows by those names.
            let (call_id, tag) = (
                bytes::Bytes::from(std::mem::take(&mut l.sip_call_id)),
                bytes::Bytes::from(std::mem::take(&mut l.tag)),
            );
            assert!(pbx.ep.calls.dialog_of(&call_id, &tag).is_some(), "{l:?}");
            l.remote_tag = None;
        }
        legs
    };
    let leg = |role: &str, party: &str, rtp_port: u16, bridge: Option<u64>| LegView {
        role: role.into(),
        party: party.into(),
        rtp_port: Some(rtp_port),
        rtp_packets: None,
        media: None,
        bridge,
        // The caller's leg is its dialplan's; a device rung by `dial` is the dial's.
        controller: if role == "caller" { "script" } else { "dial" }.into(),
        sip_call_id: String::new(),
        tag: String::new(),
        remote_tag: None,
    };
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    let id = pbx.calls()[0].id;
    let to_bob = our_port(&bob, &b);
    // Relayed while it rings: the caller's leg and the one the device rings on share
    // the call's bridge at once (early media).
    bob.respond(&mut pbx, &b, 180);
    let to_alice = pbx
        .model
        .legs_on_bridge(id)
        .into_iter()
        .find(|&p| p != to_bob)
        .unwrap();
    let (alice_at, bob_at) = ("sip:1001@127.0.0.1:5070", "sip:1002@127.0.0.1:5072");
    assert_eq!(
        legs(&pbx),
        [
            leg("caller", alice_at, to_alice, Some(id)),
            leg("ringing", bob_at, to_bob, Some(id)),
        ]
    );
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    assert_eq!(our_port(&alice, &a), to_alice);
    assert_eq!(
        legs(&pbx),
        [
            leg("caller", alice_at, to_alice, Some(id)),
            leg("callee", bob_at, to_bob, Some(id)),
        ]
    );
    // Bob holds: Alice's leg is out of the bridge (with music), Bob's stays.
    bob.hold(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    alice.reply(&mut pbx, &reinv, 200);
    let ok = bob.expect_status(&mut pbx, Method::Invite, 200);
    bob.ack_this(&mut pbx, &b, &ok);
    assert_eq!(
        legs(&pbx),
        [
            leg("caller", alice_at, to_alice, None),
            leg("callee", bob_at, to_bob, Some(id)),
        ]
    );
    // The caller answered here and alone is in no bridge.
    let mut pbx = Pbx::new();
    let mut carol = Phone::new("1003", 5074);
    let (c, _, _) = answered_here(&mut pbx, &mut carol, "600");
    assert_eq!(
        legs(&pbx),
        [leg(
            "caller",
            "sip:1003@127.0.0.1:5074",
            our_port(&carol, &c),
            None
        )]
    );
    assert_eq!(
        pbx.model.on_port(our_port(&carol, &c)).unwrap().hears,
        Hears::Echo
    );
}

/// The PBX's answer to `phone`'s last REFER, and its Warning.
pub(super) fn refer_answer(pbx: &mut Pbx, phone: &mut Phone) -> (u16, String) {
    let got = phone.take(pbx);
    assert_eq!(statuses(&got).len(), 1, "{got:?}");
    let warning = got[0]
        .header(&HeaderName::Other(bytes::Bytes::from_static(b"Warning")))
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .unwrap_or_default();
    (statuses(&got)[0], warning)
}

/// `phone` transfers the other party of `c` to `to`: accepted, told it is done, hung up.
pub(super) fn transferred(pbx: &mut Pbx, phone: &mut Phone, c: &CallRef, to: &str) {
    phone.refer(pbx, c, to);
    phone.expect_status(pbx, Method::Refer, 202);
    let notify = phone.expect_request(pbx, Method::Notify);
    phone.reply(pbx, &notify, 200);
    let bye = phone.expect_request(pbx, Method::Bye);
    phone.reply(pbx, &bye, 200);
}

#[test]
fn a_transfer_not_carried_out_is_refused_with_a_clear_status_and_the_call_goes_on() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    // One with no target (attended transfers' refusals are in `attended`).
    let mut refer = bob.in_dialog(&b, Method::Refer);
    refer.push_header(HeaderName::Contact, bob.contact());
    pbx.deliver(&bob.peer, &refer);
    assert_eq!(refer_answer(&mut pbx, &mut bob).0, 400, "no Refer-To");
    // Nowhere the transferor could dial itself.
    bob.refer(&mut pbx, &b, "5555");
    let (status, warning) = refer_answer(&mut pbx, &mut bob);
    assert_eq!(status, 403);
    assert!(warning.contains("no route"), "{warning}");
    // A REFER asking for anything but a call to the target.
    let mut refer = bob.in_dialog(&b, Method::Refer);
    refer.push_header(HeaderName::Contact, bob.contact());
    refer.push_header(
        HeaderName::Other(bytes::Bytes::from_static(b"Refer-To")),
        "<sip:1003@switchboard.local;method=BYE>",
    );
    pbx.deliver(&bob.peer, &refer);
    assert_eq!(refer_answer(&mut pbx, &mut bob).0, 501);
    // Other requests the PBX does not carry out are refused too; OPTIONS is answered
    // and names REFER among what is allowed.
    let message = alice.in_dialog(&a, Method::from_token(&"MESSAGE".into()));
    pbx.deliver(&alice.peer, &message);
    let refused = alice.expect_status(&mut pbx, Method::from_token(&"MESSAGE".into()), 501);
    let allow = String::from_utf8_lossy(refused.header(&HeaderName::Allow).unwrap()).into_owned();
    assert!(
        allow.contains("INVITE") && allow.contains("REFER"),
        "{allow}"
    );
    let options = alice.in_dialog(&a, Method::Options);
    pbx.deliver(&alice.peer, &options);
    alice.expect_status(&mut pbx, Method::Options, 200);
    // Nobody was hung up: the two are still bridged.
    assert!(alice.take(&mut pbx).is_empty() && bob.take(&mut pbx).is_empty());
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    bob.bye(&mut pbx, &b);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=0 answered 200 by callee"
    );
    // A caller alone with switchboard (the echo test) has nobody to transfer.
    let mut pbx = Pbx::new();
    let (e, _, _) = answered_here(&mut pbx, &mut alice, "600");
    alice.refer(&mut pbx, &e, "1002");
    assert_eq!(refer_answer(&mut pbx, &mut alice).0, 403);
    assert_eq!(call_state(&pbx).0, "echo");
}

#[test]
fn the_callee_sends_the_caller_elsewhere_and_the_caller_hears_ringback_until_the_target_answers() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_alice = our_port(&alice, &a);
    let hears = |pbx: &Pbx| pbx.model.on_port(to_alice).unwrap().hears.clone();
    pbx.advance(Duration::from_secs(10));
    bob.refer(&mut pbx, &b, "1003");
    // Bob is told at once that it is done (the transfer is the PBX's from here), and
    // is hung up on.
    bob.expect_status(&mut pbx, Method::Refer, 202);
    let notify = bob.expect_request(&mut pbx, Method::Notify);
    assert_eq!(&notify.body[..], b"SIP/2.0 200 OK\r\n");
    // Our requests on Bob's leg count on from our INVITE (1): NOTIFY 2, BYE 3.
    let cseq =
        |m: &Message| String::from_utf8_lossy(m.header(&HeaderName::CSeq).unwrap()).into_owned();
    assert_eq!(cseq(&notify), "2 NOTIFY");
    let header =
        |m: &Message, n: HeaderName| String::from_utf8_lossy(m.header(&n).unwrap()).into_owned();
    assert_eq!(header(&notify, HeaderName::Event), "refer");
    let state = HeaderName::Other(bytes::Bytes::from_static(b"Subscription-State"));
    assert!(header(&notify, state).starts_with("terminated"));
    bob.reply(&mut pbx, &notify, 200);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    assert_eq!(cseq(&bye), "3 BYE");
    bob.reply(&mut pbx, &bye, 200);
    // Carol rings; Alice, whose phone saw nothing of it, hears ringback meanwhile.
    let c = carol.incoming(&mut pbx);
    assert!(
        alice.take(&mut pbx).is_empty(),
        "the caller's phone is not involved"
    );
    assert_eq!(hears(&pbx), Hears::Music("sounds/ringback.wav".into()));
    assert_eq!(call_state(&pbx), ("ringing".into(), true, 1));
    carol.respond(&mut pbx, &c, 180);
    pbx.advance(Duration::from_secs(3));
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(
        pbx.model.bridged(to_alice, our_port(&carol, &c)),
        "{:?}",
        pbx.model
    );
    assert_eq!(hears(&pbx), Hears::Nothing);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    // Bob's phone is free for the ACD (and for queue calls) while the two talk.
    assert!(!pbx.ep.in_use.contains_key("1002"), "{:?}", pbx.ep.in_use);
    assert!(pbx.ep.in_use.contains_key("1003"), "{:?}", pbx.ep.in_use);
    pbx.advance(Duration::from_secs(20));
    alice.bye(&mut pbx, &a);
    let bye = carol.expect_request(&mut pbx, Method::Bye);
    carol.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(
        pbx.ep.in_use.is_empty(),
        "phones left busy: {:?}",
        pbx.ep.in_use
    );
    let first = pbx
        .cdrs
        .iter()
        .position(|c| c.callee == "1002" && c.caller == "1001")
        .unwrap();
    assert_eq!(
        cdr_line(&pbx.cdrs[first]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=33000 answered 200 by caller"
    );
    assert_eq!(
        story_lines(&pbx, first),
        [
            "0 started 1001 -> 1002",
            "0 dialled 1002",
            "0 bridged 1002",
            "0 answered",
            "10000 transferred to 1003 by callee",
            "10000 dialled 1003",
            "13000 bridged 1003",
            "33000 ended answered 200 by caller"
        ]
    );
}

#[test]
fn a_transferred_caller_the_target_does_not_take_goes_back_to_the_transferor() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    transferred(&mut pbx, &mut bob, &b, "1003");
    // Carol is busy: the shipped dialplan rings Bob again, Alice hearing ringback.
    let c = carol.incoming(&mut pbx);
    carol.respond(&mut pbx, &c, 486);
    carol.expect_request(&mut pbx, Method::Ack);
    let back = bob.incoming(&mut pbx);
    let to_alice = our_port(&alice, &a);
    assert_eq!(
        pbx.model.on_port(to_alice).unwrap().hears,
        Hears::Music("sounds/ringback.wav".into())
    );
    bob.respond(&mut pbx, &back, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&bob, &back)));
    assert!(
        alice.take(&mut pbx).is_empty(),
        "the caller's phone saw none of it"
    );
    bob.bye(&mut pbx, &back);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        [
            "0 transferred to 1003 by callee",
            "0 dialled 1003",
            "0 dial_failed busy",
            "0 dialled 1002",
            "0 bridged 1002",
            "0 ended answered 200 by callee"
        ]
    );
}

#[test]
fn the_caller_sends_the_callee_elsewhere_and_the_callee_becomes_the_caller() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let to_bob = our_port(&bob, &b);
    pbx.advance(Duration::from_secs(5));
    transferred(&mut pbx, &mut alice, &a, "1003");
    // Carol is rung for Bob, who is the caller now: presented as himself, hearing
    // ringback on his own port, his phone seeing nothing of it.
    let c = carol.incoming(&mut pbx);
    let from = String::from_utf8_lossy(&carol.call_state(&c).leg.remote_hdr).into_owned();
    assert!(from.contains("sip:1002@"), "{from}");
    assert!(
        bob.take(&mut pbx).is_empty(),
        "the transferee's phone is not involved"
    );
    assert_eq!(
        pbx.model.on_port(to_bob).unwrap().hears,
        Hears::Music("sounds/ringback.wav".into())
    );
    assert!(!pbx.ep.in_use.contains_key("1001"), "{:?}", pbx.ep.in_use);
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(
        pbx.model.bridged(to_bob, our_port(&carol, &c)),
        "{:?}",
        pbx.model
    );
    let legs = &pbx.calls()[0].legs;
    assert_eq!(
        legs.iter()
            .map(|l| (l.role.as_str(), l.controller.as_str()))
            .collect::<Vec<_>>(),
        [("caller", "script"), ("callee", "dial")]
    );
    pbx.advance(Duration::from_secs(10));
    bob.bye(&mut pbx, &b);
    let bye = carol.expect_request(&mut pbx, Method::Bye);
    carol.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        story_lines(&pbx, 0)[4..],
        [
            "5000 transferred to 1003 by caller",
            "5000 dialled 1003",
            "5000 bridged 1003",
            "15000 ended answered 200 by caller"
        ]
    );
}

#[test]
fn an_agent_transfers_a_queue_caller_and_is_done_with_the_call() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    carol.register(&mut pbx);
    let (a, _, _) = answered_here(&mut pbx, &mut alice, "700");
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    pbx.advance(Duration::from_secs(10));
    transferred(&mut pbx, &mut bob, &offer, "1003");
    // The queue is done with the caller: the agent's talk ends now, logged as a
    // transfer and counted (wrap-up follows), and the caller hears ringback, not the
    // queue's music, while 1003 rings.
    let log: Vec<&String> = pbx
        .queue_log
        .iter()
        .filter(|l| l.contains("\"transfer\"") || l.contains("\"complete\""))
        .collect();
    assert_eq!(log.len(), 1, "{:?}", pbx.queue_log);
    assert!(
        log[0].contains(
            r#""event":"transfer","queue":"support","agent":"1002","to":"1003","talk_ms":"10000""#
        ),
        "{}",
        log[0]
    );
    let stats = &pbx.ep.queues(pbx.now)[0].stats;
    assert_eq!((stats.handled, stats.transferred), (1, 1), "{stats:?}");
    let c = carol.incoming(&mut pbx);
    let to_alice = our_port(&alice, &a);
    assert_eq!(
        pbx.model.on_port(to_alice).unwrap().hears,
        Hears::Music("sounds/ringback.wav".into())
    );
    carol.respond(&mut pbx, &c, 200);
    carol.expect_request(&mut pbx, Method::Ack);
    assert!(pbx.model.bridged(to_alice, our_port(&carol, &c)));
    carol.bye(&mut pbx, &c);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        story_lines(&pbx, 0)[3..],
        [
            "0 offered 1002",
            "0 dialled 1002",
            "0 bridged 1002",
            "10000 transferred to 1003 by callee",
            "10000 dialled 1003",
            "10000 bridged 1003",
            "10000 ended answered 200 by callee"
        ]
    );
}

#[test]
fn every_device_rings_the_first_answer_wins_and_a_late_one_is_hung_up() {
    let (mut pbx, mut alice, mut desk) = two_phones();
    let mut soft = Phone::new("1002", 5074);
    soft.register(&mut pbx);
    alice.call(&mut pbx, "1002");
    let d = desk.incoming(&mut pbx);
    let s = soft.incoming(&mut pbx);
    desk.respond(&mut pbx, &d, 180);
    soft.respond(&mut pbx, &s, 180);
    pbx.advance(Duration::from_secs(2));
    desk.respond(&mut pbx, &d, 200);
    desk.expect_request(&mut pbx, Method::Ack);
    // The other device stops ringing; its INVITE is ended when it says so.
    let cancel = soft.expect_request(&mut pbx, Method::Cancel);
    soft.reply(&mut pbx, &cancel, 200);
    soft.respond(&mut pbx, &s, 487);
    soft.expect_request(&mut pbx, Method::Ack);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    // A device that answered in the same instant as the CANCEL crossed it: its 2xx is
    // ACKed and hung up at once, and the call goes on with the first.
    let (mut pbx, mut alice, mut desk) = two_phones();
    let mut soft = Phone::new("1002", 5074);
    soft.register(&mut pbx);
    let a = alice.call(&mut pbx, "1002");
    let d = desk.incoming(&mut pbx);
    let s = soft.incoming(&mut pbx);
    desk.respond(&mut pbx, &d, 200);
    soft.respond(&mut pbx, &s, 200);
    let to_soft = methods(&soft.take(&mut pbx));
    assert!(
        to_soft.contains(&Method::Ack) && to_soft.contains(&Method::Bye),
        "{to_soft:?}"
    );
    alice.ack(&mut pbx, &a);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    alice.bye(&mut pbx, &a);
    let bye = desk.expect_request(&mut pbx, Method::Bye);
    desk.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(pbx.cdrs.len(), 1, "one call, one record");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=0 answered 200 by caller"
    );
}

#[test]
fn a_new_address_from_the_callee_is_relayed_and_the_relay_told() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let before = alice.call_state(&a).remote_sdp.clone().unwrap();
    pbx.take_media();
    // Bob's phone moves its audio to another port.
    bob.rtp_port += 2;
    bob.reinvite(&mut pbx, &b, Direction::SendRecv);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    let offer = Sdp::parse(&reinv.body).unwrap();
    // Alice still talks to the same relay port, under a newer version.
    assert_eq!(offer.audio().unwrap().port, before.audio().unwrap().port);
    assert!(offer.version > before.version);
    let media = pbx.take_media();
    assert!(
        matches!(&media[..], [MediaCommand::LegRemote { addr, .. }] if addr.port() == bob.rtp_port),
        "{media:?}"
    );
    let to_bob = pbx.model.on_port(our_port(&bob, &b)).unwrap();
    assert_eq!(to_bob.remote.map(|r| r.port()), Some(bob.rtp_port));
    // A second offer while this one is open is refused (glare, RFC 3261 §14.2).
    bob.reinvite(&mut pbx, &b, Direction::SendRecv);
    bob.expect_status(&mut pbx, Method::Invite, 491);
    alice.reply(&mut pbx, &reinv, 200);
    let ok = bob.expect_status(&mut pbx, Method::Invite, 200);
    let bob_side = bob.call_state(&b).remote_sdp.clone().unwrap();
    assert_eq!(
        Sdp::parse(&ok.body).unwrap().audio().unwrap().port,
        bob_side.audio().unwrap().port,
        "Bob is answered with the relay port facing him"
    );
    bob.ack_this(&mut pbx, &b, &ok);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
}

#[test]
fn phones_with_different_laws_are_joined_through_transcoding() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    bob.codecs = vec![8];
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    // Bob is offered both laws, though Alice offered only μ-law ...
    let offered = bob.call_state(&b).remote_sdp.clone().unwrap();
    let pts: Vec<u8> = offered
        .audio()
        .unwrap()
        .formats
        .iter()
        .map(|f| f.pt)
        .collect();
    assert!(pts.contains(&0) && pts.contains(&8), "{pts:?}");
    bob.respond(&mut pbx, &b, 200);
    // ... and answers A-law: Alice hears μ-law, the relay converts.
    alice.ack(&mut pbx, &a);
    let answer = alice.call_state(&a).remote_sdp.clone().unwrap();
    assert_eq!(answer.first_g711().map(|(_, pt)| pt), Some(0));
    let law = |pbx: &Pbx, port| pbx.model.on_port(port).unwrap().law;
    let (to_alice, to_bob) = (answer.audio().unwrap().port, our_port(&bob, &b));
    assert_eq!(
        (law(&pbx, to_alice), law(&pbx, to_bob)),
        (Some(0), Some(8)),
        "{:?}",
        pbx.model
    );
    // Same law: no conversion (the caller's leg has no law of its own to convert to).
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    assert_eq!(
        (law(&pbx, to_alice), law(&pbx, to_bob)),
        (None, Some(0)),
        "{:?}",
        pbx.model
    );
}

#[test]
fn business_hours_pick_the_message_by_the_wall_clock() {
    // The shipped hours.office: New York, mon-fri 09:00-17:00. The harness's clock
    // starts at 2023-11-14 22:13:20 UTC, a Tuesday, 17:13 in New York: closed; 16 hours
    // later it is 09:13 there on Wednesday: open.
    for (offset, want) in [
        (Duration::ZERO, "after-hours.wav"),
        (Duration::from_secs(16 * 3600), "welcome.wav"),
    ] {
        let mut pbx = Pbx::new();
        pbx.advance(offset);
        let (_, _, media) = answered_here(&mut pbx, &mut Phone::new("1001", 5070), "605");
        let heard: Vec<String> = media
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Play { path, .. } => {
                    Some(path.file_name().unwrap().to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect();
        assert_eq!(heard, [want], "at +{offset:?}");
    }
}

#[test]
fn a_queued_caller_is_offered_to_an_agent_and_bridged_when_it_answers() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, _, _) = answered_here(&mut pbx, &mut alice, "700");
    let to_alice = our_port(&alice, &a);
    let music = |pbx: &Pbx| pbx.model.on_port(to_alice).unwrap().hears.clone();
    assert!(
        matches!(music(&pbx), Hears::Music(m) if m.ends_with("moh/default.wav")),
        "{:?}",
        pbx.model
    );
    assert_eq!(call_state(&pbx).0, "queued");
    // Bob, the one agent with a phone, is offered the call at once; Alice's music goes
    // on while his phone rings.
    let offer = bob.incoming(&mut pbx);
    assert!(matches!(music(&pbx), Hears::Music(_)));
    bob.respond(&mut pbx, &offer, 180);
    pbx.advance(Duration::from_secs(5));
    bob.respond(&mut pbx, &offer, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    assert!(
        pbx.model
            .bridged(our_port(&alice, &a), our_port(&bob, &offer)),
        "the agent's answer joins the caller's media: {:?}",
        pbx.model
    );
    pbx.advance(Duration::from_secs(10));
    bob.bye(&mut pbx, &offer);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 700 did=- trunk=- start=0 answer=0 end=15000 answered 200 by callee"
    );
    assert_eq!(
        story_lines(&pbx, 0),
        [
            "0 started 1001 -> 700",
            "0 answered",
            "0 queued support",
            "0 offered 1002",
            "0 dialled 1002",
            "5000 bridged 1002",
            "15000 ended answered 200 by callee"
        ]
    );
    // The queue log tells the same story, to the millisecond.
    let events: Vec<String> = pbx
        .queue_log
        .iter()
        .skip_while(|l| !l.contains("\"join\""))
        .map(|l| l.replace("\"at_ms\":17000000", "+"))
        .collect();
    assert_eq!(
        events,
        [
            r#"{+00000,"event":"join","queue":"support","call":1,"priority":"0"}"#,
            r#"{+00000,"event":"offer","queue":"support","call":1,"agent":"1002"}"#,
            r#"{+05000,"event":"answer","queue":"support","call":1,"agent":"1002","wait_ms":"5000"}"#,
            r#"{+15000,"event":"complete","queue":"support","agent":"1002","talk_ms":"10000","wrap_up_ms":"5000"}"#,
        ]
    );
}

#[test]
fn a_caller_who_asks_for_a_callback_is_called_back_once_an_agent_answers() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    alice.register(&mut pbx);
    // Alice waits in the queue with no agent's phone registered, and presses 1.
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "700");
    pbx.media_event(MediaEvent::Digit {
        leg: id,
        digit: '1',
    });
    let mut media = pbx.take_media();
    for _ in 0..5 {
        let Some(seq) = media.iter().find_map(|m| match m {
            MediaCommand::Play { seq, .. } => Some(*seq),
            _ => None,
        }) else {
            break;
        };
        pbx.media_event(played(id, seq));
        media = pbx.take_media();
    }
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 700 did=- trunk=- start=0 answer=0 end=0 answered 200 by system"
    );
    // Bob's phone comes up: the request's turn. Bob is rung first ...
    pbx.advance(Duration::from_secs(60));
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    pbx.take_media();
    let g = bob.incoming(&mut pbx);
    // The callback's call waits in the queue while the agent's phone rings.
    assert_eq!(call_state(&pbx), ("queued".into(), true, 1));
    bob.respond(&mut pbx, &g, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    // ... and hears ringback from the PBX while Alice is called back.
    let c = alice.incoming(&mut pbx);
    let to_bob = our_port(&bob, &g);
    assert_eq!(call_state(&pbx), ("ringing".into(), true, 1));
    // No party of the call is made up: the agent's leg, which a queue's offer rang, and
    // the customer's, which switchboard rings itself.
    let legs: Vec<(String, String, Option<u64>)> = pbx.calls()[0]
        .legs
        .iter()
        .map(|l| (l.role.clone(), l.controller.clone(), l.bridge))
        .collect();
    assert_eq!(
        legs,
        [
            ("callee".into(), "queue".into(), None),
            ("ringing".into(), "originate".into(), None)
        ]
    );
    let agent = pbx.model.on_port(to_bob).unwrap();
    assert!(
        matches!(&agent.hears, Hears::Music(p) if p.ends_with("ringback.wav")),
        "{agent:?}"
    );
    alice.respond(&mut pbx, &c, 180);
    pbx.advance(Duration::from_secs(3));
    alice.respond(&mut pbx, &c, 200);
    alice.expect_request(&mut pbx, Method::Ack);
    assert!(
        pbx.model.bridged(our_port(&alice, &c), to_bob),
        "{:?}",
        pbx.model
    );
    // The customer's leg sends where its answer asked, before any packet latches it.
    let customer = pbx.model.on_port(our_port(&alice, &c)).unwrap();
    assert_eq!(customer.remote.map(|r| r.port()), Some(alice.rtp_port));
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    pbx.advance(Duration::from_secs(20));
    alice.bye(&mut pbx, &c);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    // The callback's own record.
    assert_eq!(
        cdr_line(&pbx.cdrs[1]),
        "1001 -> callback did=- trunk=- start=60000 answer=63000 end=83000 answered 200 by caller"
    );
    assert_eq!(
        story_lines(&pbx, 1),
        [
            "60000 started 1001 -> callback",
            "60000 offered 1002",
            "60000 dialled 1002",
            "63000 answered",
            "63000 bridged 1002",
            "83000 ended answered 200 by caller"
        ]
    );
    // The callback is a call of its own, its story linked to the call that asked for it.
    assert_eq!((pbx.cdrs[0].call, pbx.cdrs[1].call), (1, 2));
    let crate::story::Event::Started(start) = &pbx.stories[1][0].event else {
        panic!("a story starts with its start: {:?}", pbx.stories[1]);
    };
    assert_eq!(
        start.callback_of.as_deref(),
        Some(pbx.cdrs[0].sip_call_id.as_str())
    );
    assert_ne!(pbx.cdrs[1].sip_call_id, pbx.cdrs[0].sip_call_id);
    let events: Vec<&str> = pbx
        .queue_log
        .iter()
        .filter_map(|l| l.split("\"event\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        events,
        [
            "login",
            "login",
            "join",
            "callback",
            "reachable",
            "offer",
            "answer",
            "complete"
        ]
    );
}

#[test]
fn a_message_left_in_a_box_is_kept_when_the_caller_hangs_up() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    // 606: the box of 1001 takes a message after its prompt and the beep.
    let (a, id, mut media) = answered_here(&mut pbx, &mut alice, "606");
    let mut heard = Vec::new();
    let record = loop {
        if let Some((path, max, silence, seq)) = media.iter().find_map(|m| match m {
            MediaCommand::Record {
                path,
                max,
                silence,
                seq,
                ..
            } => Some((path.clone(), *max, *silence, *seq)),
            _ => None,
        }) {
            break (path, max, silence, seq);
        }
        let seq = media
            .iter()
            .find_map(|m| match m {
                MediaCommand::Play { seq, path, .. } => {
                    heard.push(path.file_name().unwrap().to_string_lossy().into_owned());
                    Some(*seq)
                }
                _ => None,
            })
            .expect("a prompt or the recording");
        pbx.media_event(played(id, seq));
        media = pbx.take_media();
    };
    assert_eq!(heard, ["leave-message.wav", "beep.wav"]);
    assert!(record.0.starts_with("state/voicemail/1001"), "{record:?}");
    assert_eq!(
        (record.1, record.2),
        (Duration::from_secs(120), Duration::from_secs(5))
    );
    // Alice speaks for 5 s and hangs up: the relay saves what it has, and only then is
    // the message in the box.
    pbx.advance(Duration::from_secs(5));
    alice.bye(&mut pbx, &a);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(matches!(
        &pbx.take_media()[..],
        [MediaCommand::LegClose { leg }] if *leg == id
    ));
    let messages = |pbx: &Pbx| pbx.ep.mailboxes.get("1001").map_or(0, |m| m.messages.len());
    assert_eq!(messages(&pbx), 0);
    pbx.media_event(MediaEvent::RecordDone {
        leg: id,
        seq: record.3,
        ms: 5000,
        saved: true,
    });
    assert_eq!(messages(&pbx), 1);
    assert_eq!(pbx.ep.mailboxes["1001"].messages[0].ms, 5000);
    // The relay wrote the box's index line with the file; nothing else is written.
    assert!(pbx.mailbox.is_empty(), "{:?}", pbx.mailbox);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 606 did=- trunk=- start=0 answer=0 end=5000 answered 200 by caller"
    );
}

#[test]
fn of_several_devices_failing_the_caller_hears_the_most_telling() {
    for (desk_says, soft_says, caller_hears) in [
        (480, 486, 486),
        (486, 404, 486),
        (404, 480, 480),
        (500, 404, 404),
    ] {
        let (mut pbx, mut alice, mut desk) = two_phones();
        let mut soft = Phone::new("1002", 5074);
        soft.register(&mut pbx);
        alice.call(&mut pbx, "1002");
        let d = desk.incoming(&mut pbx);
        let s = soft.incoming(&mut pbx);
        desk.respond(&mut pbx, &d, desk_says);
        soft.respond(&mut pbx, &s, soft_says);
        alice.expect_status(&mut pbx, Method::Invite, caller_hears);
        assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
        assert_eq!(
            pbx.cdrs[0].sip_code, caller_hears,
            "{desk_says} and {soft_says}"
        );
    }
}

/// The music the last hold played, as a sound name.
fn music_held(pbx: &mut Pbx) -> String {
    let media = pbx.take_media();
    let Some(MediaCommand::Music { path: music, .. }) = media
        .iter()
        .rev()
        .find(|m| matches!(m, MediaCommand::Music { .. }))
    else {
        panic!("no hold: {media:?}")
    };
    let rel = music.strip_prefix("sounds").unwrap().with_extension("");
    rel.display().to_string()
}

/// `holder` puts the other party of its call `c` on hold, and `held` answers the relayed
/// offer.
pub(super) fn hold(pbx: &mut Pbx, holder: &mut Phone, c: &CallRef, held: &mut Phone) {
    holder.hold(pbx, c);
    let reinv = held.expect_request(pbx, Method::Invite);
    held.reply(pbx, &reinv, 200);
    let ok = holder.expect_status(pbx, Method::Invite, 200);
    holder.ack_this(pbx, c, &ok);
}

#[test]
fn the_music_on_hold_is_the_queues_then_the_holders_extensions_then_the_trunks() {
    // 1002 names its own music; the demo trunk names another.
    let config = crate::config::EMBEDDED
        .replace(
            "password = \"demo-1002-change-me\"",
            "password = \"demo-1002-change-me\"\nmoh = \"please-hold\"",
        )
        .replace(
            "inbound_from = [\"127.0.0.2\"]",
            "inbound_from = [\"127.0.0.2\"]\nmoh = \"welcome\"",
        )
        .replace("moh = \"moh/default\"", "moh = \"ringback\"");
    let with = |config: &str| {
        let mut pbx = Pbx::with_config(config);
        let mut alice = Phone::new("1001", 5070);
        let mut bob = Phone::new("1002", 5072);
        alice.register(&mut pbx);
        bob.register(&mut pbx);
        pbx.take_media();
        (pbx, alice, bob)
    };
    // Between extensions: the holder's music, or the default when it names none.
    let (mut pbx, mut alice, mut bob) = with(&config);
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    hold(&mut pbx, &mut bob, &b, &mut alice);
    assert_eq!(music_held(&mut pbx), "please-hold");
    bob.resume(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    alice.reply(&mut pbx, &reinv, 200);
    bob.clear(&mut pbx);
    hold(&mut pbx, &mut alice, &a, &mut bob);
    assert_eq!(music_held(&mut pbx), "moh/default");

    // A caller from the trunk held by 1001: the trunk's music while 1001 names none,
    // 1001's once it does.
    let alice_names = config.replace(
        "password = \"demo-1001-change-me\"",
        "password = \"demo-1001-change-me\"\nmoh = \"beep\"",
    );
    for (config, music) in [(&config, "welcome"), (&alice_names, "beep")] {
        let (mut pbx, mut alice, _) = with(config);
        let mut customer = Phone::at("+15557654321", "unused", "127.0.0.2:5060");
        let c = customer.call(&mut pbx, "+15550101");
        let a = alice.incoming(&mut pbx);
        alice.respond(&mut pbx, &a, 200);
        alice.expect_request(&mut pbx, Method::Ack);
        customer.ack(&mut pbx, &c);
        customer.clear(&mut pbx);
        hold(&mut pbx, &mut alice, &a, &mut customer);
        assert_eq!(music_held(&mut pbx), music);
    }

    // A queue caller held by the agent who took it: the queue's music, though the
    // agent's extension names its own (the support queue's is `ringback` here).
    let (mut pbx, mut alice, mut bob) = with(&config);
    answered_here(&mut pbx, &mut alice, "700");
    let offer = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &offer, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    hold(&mut pbx, &mut bob, &offer, &mut alice);
    assert_eq!(music_held(&mut pbx), "ringback");
}

#[test]
fn a_busy_direct_line_leaves_its_relay_for_voicemail_answered_here() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    alice.register(&mut pbx);
    let mut customer = Phone::at("+15557654321", "unused", "127.0.0.2:5060");
    let c = customer.call(&mut pbx, "+15550101");
    let a = alice.incoming(&mut pbx);
    // Relayed while 1001 rings: the customer's leg and the ringing one share a bridge.
    let to_alice = our_port(&alice, &a);
    assert_eq!(pbx.model.open(), (2, 1), "{:?}", pbx.model);
    alice.respond(&mut pbx, &a, 486);
    alice.expect_request(&mut pbx, Method::Ack);
    // Voicemail answers the customer here: one leg of its own, no bridge, no relay port
    // left open towards 1001.
    let ok = customer.expect_status(&mut pbx, Method::Invite, 200);
    customer.ack_this(&mut pbx, &c, &ok);
    assert_eq!(pbx.model.open(), (1, 0), "{:?}", pbx.model);
    assert!(pbx.model.on_port(to_alice).is_none());
    let to_customer = our_port(&customer, &c);
    let here = pbx.model.on_port(to_customer).unwrap();
    assert!(
        here.bridge.is_none()
            && matches!(&here.hears, Hears::Prompt(p) if p.ends_with("leave-message.wav")),
        "{here:?}"
    );
    customer.bye(&mut pbx, &c);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "+15557654321 -> +15550101 did=+15550101 trunk=demo start=0 answer=0 end=0 answered 200 by caller"
    );
}

#[test]
fn a_call_refused_before_it_starts_still_leaves_its_own_cdr() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    // An offer of nothing we relay (G.729 alone): 488, saying why.
    alice.codecs = vec![18];
    for _ in 0..2 {
        alice.call(&mut pbx, "600");
        let refused = alice.expect_status(&mut pbx, Method::Invite, 488);
        let warning = HeaderName::Other(bytes::Bytes::from_static(b"Warning"));
        assert!(refused.header(&warning).is_some());
    }
    // Then a call that starts: each of the three has a number of its own.
    alice.codecs = vec![0, 101];
    let a = alice.call(&mut pbx, "600");
    alice.ack(&mut pbx, &a);
    alice.bye(&mut pbx, &a);
    let lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    assert_eq!(
        lines[..2],
        [
            "1001 -> 600 did=- trunk=- start=0 answer=- end=0 failed 488 by system",
            "1001 -> 600 did=- trunk=- start=0 answer=- end=0 failed 488 by system",
        ]
    );
    let numbers: Vec<u64> = pbx.cdrs.iter().map(|c| c.call).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(
        story_lines(&pbx, 0),
        ["0 started 1001 -> 600", "0 ended failed 488 by system"]
    );
    assert!(pbx.stories.iter().zip(1..).all(|(s, n)| s[0].call == n));
}

#[test]
fn an_agent_on_a_call_of_its_own_is_not_offered_a_queue_call() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    // Bob (1002, an agent of the support queue) is in the echo test ...
    let b = bob.call(&mut pbx, "600");
    bob.ack(&mut pbx, &b);
    bob.clear(&mut pbx);
    // ... when Alice queues: he is not rung.
    answered_here(&mut pbx, &mut alice, "700");
    pbx.advance(Duration::from_secs(5));
    assert!(methods(&bob.take(&mut pbx)).is_empty());
    // His call over, the queue offers him Alice's.
    bob.bye(&mut pbx, &b);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    pbx.advance(Duration::from_secs(1));
    bob.incoming(&mut pbx);
}

#[test]
fn a_request_in_a_ringing_devices_early_dialog_is_refused_and_the_ring_goes_on() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 180);
    for method in [Method::Info, Method::Bye] {
        let m = bob.in_dialog(&b, method.clone());
        pbx.deliver(&bob.peer, &m);
        bob.expect_status(&mut pbx, method, 481);
    }
    assert_eq!(call_state(&pbx), ("ringing".into(), false, 1));
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
}

#[test]
fn our_answer_to_either_partys_reinvite_is_sent_again_until_its_ack() {
    for callee_holds in [false, true] {
        let (mut pbx, mut alice, mut bob) = two_phones();
        let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
        let (holder, held, c) = if callee_holds {
            (&mut bob, &mut alice, &b)
        } else {
            (&mut alice, &mut bob, &a)
        };
        pbx.advance(Duration::from_secs(1));
        let t = pbx.elapsed();
        holder.hold(&mut pbx, c);
        let reinv = held.expect_request(&mut pbx, Method::Invite);
        held.reply(&mut pbx, &reinv, 200);
        // The holder does not ACK: our 200 comes again at T1, then 2 T1 later.
        pbx.advance(Duration::from_millis(1600));
        let again: Vec<u128> = pbx
            .sent
            .iter()
            .filter(|(at, to, m)| {
                *to == holder.peer.addr
                    && m.status() == Some(StatusCode::OK)
                    && m.method() == Some(Method::Invite)
                    && *at - pbx.t0 >= t
            })
            .map(|(at, _, _)| (*at - pbx.t0 - t).as_millis())
            .collect();
        assert_eq!(again, [0, 500, 1500], "callee holds: {callee_holds}");
        let ok = holder.expect_status(&mut pbx, Method::Invite, 200);
        holder.ack_this(&mut pbx, c, &ok);
        holder.clear(&mut pbx);
        pbx.advance(Duration::from_secs(10));
        assert!(holder.take(&mut pbx).is_empty(), "nothing after the ACK");
        assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    }
}

/// Sends a SIP INFO carrying a key on `c`, as `content_type` with `body`.
fn info(pbx: &mut Pbx, phone: &mut Phone, c: &CallRef, content_type: &str, body: &str) {
    let mut m = phone.in_dialog(c, Method::Info);
    m.push_header(HeaderName::ContentType, content_type.to_string());
    m.body = bytes::Bytes::from(body.to_string());
    pbx.deliver(&phone.peer, &m);
    phone.expect_status(pbx, Method::Info, 200);
}

#[test]
fn keys_sent_as_sip_info_in_either_form_reach_the_dialplan() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, _, _) = answered_here(&mut pbx, &mut alice, "602");
    // Neither a key nor a form we read: nothing collected.
    info(&mut pbx, &mut alice, &a, "text/plain", "5");
    info(
        &mut pbx,
        &mut alice,
        &a,
        "application/dtmf-relay",
        "Signal=12\r\n",
    );
    info(
        &mut pbx,
        &mut alice,
        &a,
        "application/dtmf-relay",
        "Signal=\r\n",
    );
    // 1002 in both forms, spaced and cased as phones send them.
    info(
        &mut pbx,
        &mut alice,
        &a,
        "application/dtmf-relay",
        "Signal=1\r\nDuration=160\r\n",
    );
    info(&mut pbx, &mut alice, &a, "application/dtmf", "0");
    info(
        &mut pbx,
        &mut alice,
        &a,
        "Application/DTMF-Relay",
        "signal = 0\r\n",
    );
    assert!(bob.take(&mut pbx).is_empty(), "three keys of four");
    info(&mut pbx, &mut alice, &a, "application/dtmf", "2\r\n");
    bob.incoming(&mut pbx);
    // 10 and 11 are * and #: "1", "0", then # ends the input at "10" (no such number).
    let (a, _, _) = answered_here(&mut pbx, &mut alice, "602");
    for signal in ["1", "0", "11"] {
        info(
            &mut pbx,
            &mut alice,
            &a,
            "application/dtmf-relay",
            &format!("Signal={signal}\r\n"),
        );
    }
    alice.expect_request(&mut pbx, Method::Bye);
    // "1", "0", "0", then 10 (*) is the fourth key: the input is full at once.
    let (a, _, _) = answered_here(&mut pbx, &mut alice, "602");
    for signal in ["1", "0", "0", "10"] {
        info(
            &mut pbx,
            &mut alice,
            &a,
            "application/dtmf-relay",
            &format!("Signal={signal}\r\n"),
        );
    }
    alice.expect_request(&mut pbx, Method::Bye);
}

#[test]
fn a_callees_info_keys_are_not_the_callers() {
    // In a call bridged from the IVR (602, then 1002), keys from the callee's phone do
    // not reach the caller's dialplan.
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (_, id, _) = answered_here(&mut pbx, &mut alice, "602");
    for digit in ['1', '0', '0', '2'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    let b = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    info(&mut pbx, &mut bob, &b, "application/dtmf", "5");
    assert!(alice.take(&mut pbx).is_empty());
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
}

#[test]
fn the_device_rung_last_may_win_and_a_callees_repeated_2xx_is_acked_again() {
    let (mut pbx, mut alice, mut desk) = two_phones();
    let mut soft = Phone::new("1002", 5074);
    soft.register(&mut pbx);
    let a = alice.call(&mut pbx, "1002");
    let d = desk.incoming(&mut pbx);
    let s = soft.incoming(&mut pbx);
    desk.respond(&mut pbx, &d, 180);
    soft.respond(&mut pbx, &s, 180);
    // The second device answers: the first is cancelled, the second is the callee.
    soft.respond(&mut pbx, &s, 200);
    soft.expect_request(&mut pbx, Method::Ack);
    desk.expect_request(&mut pbx, Method::Cancel);
    alice.ack(&mut pbx, &a);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    // Its 200 comes again (our ACK was lost): ACKed again, nothing else.
    soft.respond(&mut pbx, &s, 200);
    assert_eq!(methods(&soft.take(&mut pbx)), [Method::Ack]);
    soft.bye(&mut pbx, &s);
    alice.expect_request(&mut pbx, Method::Bye);
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 1002 did=- trunk=- start=0 answer=0 end=0 answered 200 by callee"
    );
}

#[test]
fn calls_at_once_have_their_own_numbers_and_our_responses_our_contact() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let first = alice.call(&mut pbx, "600");
    let got = alice.take(&mut pbx);
    // The 100 carries no Contact; the 200 does, ours.
    assert_eq!(statuses(&got), [100, 200]);
    assert!(got[0].header(&HeaderName::Contact).is_none());
    let contact = String::from_utf8_lossy(got[1].header(&HeaderName::Contact).unwrap());
    assert!(contact.contains("127.0.0.1:5060"), "{contact}");
    alice.ack_this(&mut pbx, &first, &got[1]);
    let second = alice.call(&mut pbx, "600");
    alice.ack(&mut pbx, &second);
    let ids: Vec<u64> = pbx.calls().iter().map(|c| c.id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(pbx.ep.call_count(), 2);
}

/// The prompts asked for in `media`, as (sequence number, file name).
fn plays(media: &[MediaCommand]) -> Vec<(u64, String)> {
    media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Play { seq, path, .. } => Some((
                *seq,
                path.file_name().unwrap().to_string_lossy().into_owned(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_caller_answered_here_hears_ringback_round_until_the_dial_is_answered() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, id, _) = answered_here(&mut pbx, &mut alice, "602");
    let hears = |pbx: &Pbx, port| pbx.model.on_port(port).unwrap().hears.clone();
    let to_alice = our_port(&alice, &a);
    for digit in ['1', '0', '0', '2'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    // Ringback goes round in the engine while the dial rings: nothing to ask again.
    let b = bob.incoming(&mut pbx);
    let ringback = Hears::Music("sounds/ringback.wav".into());
    assert_eq!(hears(&pbx, to_alice), ringback);
    pbx.take_media();
    pbx.advance(Duration::from_secs(10));
    assert!(plays(&pbx.take_media()).is_empty());
    // Answered: the ringback stops, as the caller joins the callee.
    bob.respond(&mut pbx, &b, 200);
    assert!(
        pbx.model.bridged(to_alice, our_port(&bob, &b)),
        "{:?}",
        pbx.model
    );
    assert_eq!(hears(&pbx, to_alice), Hears::Nothing);
    assert_eq!(call_state(&pbx), ("bridged".into(), true, 0));
    // A dial that fails stops it at once, and the dialplan goes on (602: hang up).
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, id, _) = answered_here(&mut pbx, &mut alice, "602");
    for digit in ['1', '0', '0', '2'] {
        pbx.media_event(MediaEvent::Digit { leg: id, digit });
    }
    let b = bob.incoming(&mut pbx);
    pbx.take_media();
    bob.respond(&mut pbx, &b, 486);
    bob.expect_request(&mut pbx, Method::Ack);
    let media = pbx.take_media();
    assert!(
        media
            .iter()
            .any(|m| matches!(m, MediaCommand::StopPlay { leg } if *leg == id)),
        "{media:?}"
    );
    alice.expect_request(&mut pbx, Method::Bye);
    let _ = a;
}

#[test]
fn a_call_out_through_the_trunk_is_rewritten_and_presented_as_the_trunk_says() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    let a = alice.call(&mut pbx, "95557654321");
    let inv = provider.expect_request(&mut pbx, Method::Invite);
    // To the provider: +1 and the number, from the trunk's caller ID and name, asserted.
    assert_eq!(
        inv.request_line().unwrap().uri.user_decoded().as_deref(),
        Some("+15557654321")
    );
    let from = String::from_utf8_lossy(inv.header(&HeaderName::From).unwrap()).into_owned();
    assert!(
        from.starts_with("\"Switchboard Demo\" <sip:+15550100@127.0.0.2:5060>;tag="),
        "{from}"
    );
    let pai = HeaderName::Other(bytes::Bytes::from_static(b"P-Asserted-Identity"));
    assert_eq!(
        inv.header(&pai)
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        Some("\"Switchboard Demo\" <sip:+15550100@127.0.0.2:5060>".to_string())
    );
    let p = provider.accept(inv);
    provider.respond(&mut pbx, &p, 200);
    provider.expect_request(&mut pbx, Method::Ack);
    alice.ack(&mut pbx, &a);
    // The far end may not send our caller anywhere with our dial permissions.
    provider.refer(&mut pbx, &p, "95550000000");
    assert_eq!(refer_answer(&mut pbx, &mut provider).0, 403);
    pbx.advance(Duration::from_secs(2));
    alice.bye(&mut pbx, &a);
    let bye = provider.expect_request(&mut pbx, Method::Bye);
    provider.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 95557654321 did=- trunk=demo start=0 answer=0 end=2000 answered 200 by caller"
    );
    // The trunk comes from the dial, which the story names.
    assert_eq!(story_lines(&pbx, 0)[1], "0 dialled +15557654321 via demo");
}

#[test]
fn an_outside_party_transferred_by_its_caller_is_a_trunk_caller_from_then_on() {
    let outside_call = |pbx: &mut Pbx, alice: &mut Phone, provider: &mut Phone| {
        let a = alice.call(pbx, "95557654321");
        let inv = provider.expect_request(pbx, Method::Invite);
        let p = provider.accept(inv);
        provider.respond(pbx, &p, 200);
        provider.expect_request(pbx, Method::Ack);
        alice.ack(pbx, &a);
        alice.clear(pbx);
        (a, p)
    };
    // To an extension: rung as the outside number, through the trunk it is on.
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    let (a, p) = outside_call(&mut pbx, &mut alice, &mut provider);
    transferred(&mut pbx, &mut alice, &a, "1002");
    let b = bob.incoming(&mut pbx);
    let from = String::from_utf8_lossy(&bob.call_state(&b).leg.remote_hdr).into_owned();
    assert!(from.contains("sip:+15557654321@"), "{from}");
    assert_eq!(pbx.calls()[0].caller, "+15557654321");
    bob.respond(&mut pbx, &b, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    provider.bye(&mut pbx, &p);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    // Back out through a trunk: refused as any trunk caller's call out is (no transit),
    // and the dialplan hangs the outside party up.
    let mut pbx = Pbx::new();
    let (a, p) = outside_call(&mut pbx, &mut alice, &mut provider);
    transferred(&mut pbx, &mut alice, &a, "95550001111");
    let bye = provider.expect_request(&mut pbx, Method::Bye);
    provider.reply(&mut pbx, &bye, 200);
    assert!(provider
        .take(&mut pbx)
        .iter()
        .all(|m| m.method() != Some(Method::Invite)));
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let _ = p;
}

#[test]
fn a_caller_asking_for_privacy_goes_out_anonymous_with_its_identity_asserted() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let privacy = HeaderName::Other(bytes::Bytes::from_static(b"Privacy"));
    alice.invite_headers = vec![(privacy.clone(), bytes::Bytes::from_static(b"id"))];
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    alice.call(&mut pbx, "95557654321");
    let inv = provider.expect_request(&mut pbx, Method::Invite);
    let from = String::from_utf8_lossy(inv.header(&HeaderName::From).unwrap()).into_owned();
    assert!(
        from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "{from}"
    );
    assert_eq!(inv.header(&privacy).map(|v| v.as_ref()), Some(&b"id"[..]));
    // The provider still learns who is calling, in the header it trusts us for.
    let pai = HeaderName::Other(bytes::Bytes::from_static(b"P-Asserted-Identity"));
    assert!(inv.header(&pai).is_some());
}

#[test]
fn a_trunk_that_challenges_is_answered_once_with_its_credentials() {
    let config = crate::config::EMBEDDED.replace(
        "# username = \"account\"\n# password = \"secret\"",
        "username = \"account\"\npassword = \"secret\"",
    );
    assert_ne!(config, crate::config::EMBEDDED);
    for (status, challenge_name, answer) in [
        (
            407,
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        (401, HeaderName::WwwAuthenticate, HeaderName::Authorization),
    ] {
        let mut pbx = Pbx::with_config(&config);
        let mut alice = Phone::new("1001", 5070);
        let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
        alice.call(&mut pbx, "95557654321");
        let inv = provider.expect_request(&mut pbx, Method::Invite);
        // One hop fewer than the caller allowed.
        assert_eq!(
            inv.header(&HeaderName::MaxForwards).map(|v| v.as_ref()),
            Some(&b"69"[..])
        );
        let mut r = response_to(&inv, StatusCode::new(status).unwrap(), None);
        r.push_header(
            challenge_name.clone(),
            "Digest realm=\"provider\", nonce=\"n0nce\", algorithm=MD5",
        );
        pbx.deliver(&provider.peer, &r);
        // The ACK of the challenge, then the INVITE again with the answer.
        let again = provider.expect_request(&mut pbx, Method::Invite);
        assert_eq!(again.cseq().unwrap().seq, inv.cseq().unwrap().seq + 1);
        assert_ne!(again.header(&HeaderName::Via), inv.header(&HeaderName::Via));
        let authz = String::from_utf8_lossy(
            again
                .header(&answer)
                .unwrap_or_else(|| panic!("{answer:?}: {}", summary(&again))),
        )
        .into_owned();
        for part in [
            "username=\"account\"",
            "realm=\"provider\"",
            "nonce=\"n0nce\"",
            "uri=\"sip:+15557654321@127.0.0.2:5060\"",
        ] {
            assert!(authz.contains(part), "{part} in {authz}");
        }
        // Challenged again: the credentials are wrong, and the call is not retried.
        let mut r = response_to(&again, StatusCode::new(status).unwrap(), None);
        r.push_header(
            challenge_name,
            "Digest realm=\"provider\", nonce=\"n0nce2\"",
        );
        pbx.deliver(&provider.peer, &r);
        let final_status = alice
            .take(&mut pbx)
            .iter()
            .filter_map(|m| m.status())
            .map(StatusCode::as_u16)
            .find(|&c| c >= 300);
        assert!(final_status.is_some(), "the caller hears the call failed");
        assert!(
            !methods(&provider.take(&mut pbx)).contains(&Method::Invite),
            "no third INVITE"
        );
        assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    }
}

/// Alice (1001) asks for a callback from the support queue and hangs up; a minute
/// later Bob (1002), its agent, registers, is rung and answers, and Alice's phone rings
/// with the callback. Returns Bob's call and Alice's ringing one.
fn callback_ringing(pbx: &mut Pbx, alice: &mut Phone, bob: &mut Phone) -> (CallRef, CallRef) {
    alice.register(pbx);
    let (_, id, _) = answered_here(pbx, alice, "700");
    pbx.media_event(MediaEvent::Digit {
        leg: id,
        digit: '1',
    });
    for _ in 0..5 {
        let Some(seq) = pbx.take_media().iter().find_map(|m| match m {
            MediaCommand::Play { seq, .. } => Some(*seq),
            _ => None,
        }) else {
            break;
        };
        pbx.media_event(played(id, seq));
    }
    let bye = alice.expect_request(pbx, Method::Bye);
    alice.reply(pbx, &bye, 200);
    pbx.advance(Duration::from_secs(60));
    bob.register(pbx);
    let g = bob.incoming(pbx);
    bob.respond(pbx, &g, 200);
    bob.expect_request(pbx, Method::Ack);
    let c = alice.incoming(pbx);
    (g, c)
}

#[test]
fn a_callback_the_customer_refuses_or_the_agent_leaves_is_not_answered() {
    // Alice's phone is busy: Bob is hung up on, and the attempt is not an answer.
    let mut pbx = Pbx::new();
    let (mut alice, mut bob) = (Phone::new("1001", 5070), Phone::new("1002", 5072));
    let (g, c) = callback_ringing(&mut pbx, &mut alice, &mut bob);
    // Bob hears ringback while Alice's phone rings; his keys are not hers (nothing
    // happens to the call).
    let agent_port = our_port(&bob, &g);
    let agent_leg = pbx.model.legs_on_port_key(agent_port).unwrap();
    assert!(matches!(
        &pbx.model.on_port(agent_port).unwrap().hears,
        Hears::Music(p) if p.ends_with("ringback.wav")
    ));
    pbx.take_media();
    pbx.media_event(MediaEvent::Digit {
        leg: agent_leg,
        digit: '1',
    });
    assert!(pbx.take_media().is_empty());
    assert!(bob.take(&mut pbx).is_empty() && alice.take(&mut pbx).is_empty());
    alice.respond(&mut pbx, &c, 486);
    alice.expect_request(&mut pbx, Method::Ack);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let last = pbx.cdrs.last().unwrap();
    assert_eq!(
        (last.caller.as_str(), last.disposition, last.sip_code),
        ("1001", Disposition::NoAnswer, 486),
        "{}",
        cdr_line(last)
    );
    // Bob hangs up while Alice's phone rings: the ring is cancelled, not answered.
    let mut pbx = Pbx::new();
    let (mut alice, mut bob) = (Phone::new("1001", 5070), Phone::new("1002", 5072));
    let (g, c) = callback_ringing(&mut pbx, &mut alice, &mut bob);
    // (A CANCEL needs the ring to have been heard of, RFC 3261 §9.1.)
    alice.respond(&mut pbx, &c, 180);
    bob.bye(&mut pbx, &g);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    let cancel = alice.expect_request(&mut pbx, Method::Cancel);
    alice.reply(&mut pbx, &cancel, 200);
    alice.respond(&mut pbx, &c, 487);
    alice.expect_request(&mut pbx, Method::Ack);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let last = pbx.cdrs.last().unwrap();
    assert_eq!(
        (last.disposition, last.hangup_by),
        (Disposition::NoAnswer, HangupBy::Callee),
        "{}",
        cdr_line(last)
    );
}

#[test]
fn a_shutdown_ends_every_call_each_as_it_stands() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let mut carol = Phone::new("1003", 5074);
    alice.register(&mut pbx);
    // Alice talks with Bob; Carol is in the echo test; a trunk caller's direct line to
    // 1001 rings Alice's phone (she is rung though busy).
    answered(&mut pbx, &mut alice, &mut bob);
    let c = carol.call(&mut pbx, "600");
    carol.ack(&mut pbx, &c);
    carol.clear(&mut pbx);
    let mut customer = Phone::at("+15557654321", "unused", "127.0.0.2:5060");
    customer.call(&mut pbx, "+15550101");
    let ring = alice.incoming(&mut pbx);
    alice.respond(&mut pbx, &ring, 180);
    customer.clear(&mut pbx);
    pbx.shutdown();
    // The answered are hung up, the unanswered caller refused, the ringing phone
    // cancelled.
    for phone in [&mut alice, &mut bob, &mut carol] {
        let bye = phone.expect_request(&mut pbx, Method::Bye);
        phone.reply(&mut pbx, &bye, 200);
    }
    customer.expect_status(&mut pbx, Method::Invite, 503);
    let cancel = alice.expect_request(&mut pbx, Method::Cancel);
    alice.reply(&mut pbx, &cancel, 200);
    alice.respond(&mut pbx, &ring, 487);
    alice.expect_request(&mut pbx, Method::Ack);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let mut lines: Vec<String> = pbx.cdrs.iter().map(cdr_line).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "+15557654321 -> +15550101 did=+15550101 trunk=demo start=0 answer=- end=0 failed 503 by system",
            "1001 -> 1002 did=- trunk=- start=0 answer=0 end=0 answered 200 by system",
            "1003 -> 600 did=- trunk=- start=0 answer=0 end=0 answered 200 by system",
        ]
    );
}

#[test]
fn a_device_that_never_answers_at_all_counts_as_not_answering() {
    // The provider takes the INVITE and says nothing, not even 100: after Timer B
    // (64 T1, 32 s; the trunk dial rings 60 s) the device counts as not answering, and
    // the caller is told so (480, as for a ring that times out).
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    alice.call(&mut pbx, "95557654321");
    provider.expect_request(&mut pbx, Method::Invite);
    pbx.advance(Duration::from_secs(31));
    assert!(statuses(&alice.take(&mut pbx)).iter().all(|&c| c < 300));
    pbx.advance(Duration::from_secs(1));
    alice.expect_status(&mut pbx, Method::Invite, 480);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert_eq!(
        cdr_line(&pbx.cdrs[0]),
        "1001 -> 95557654321 did=- trunk=demo start=0 answer=- end=32000 noanswer 480 by system"
    );
}

#[test]
fn a_challenge_with_no_credentials_to_answer_it_fails_the_dial() {
    let mut pbx = Pbx::new();
    let mut alice = Phone::new("1001", 5070);
    let mut provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    alice.call(&mut pbx, "95557654321");
    let inv = provider.expect_request(&mut pbx, Method::Invite);
    let mut r = response_to(&inv, StatusCode::PROXY_AUTH_REQUIRED, None);
    r.push_header(
        HeaderName::ProxyAuthenticate,
        "Digest realm=\"provider\", nonce=\"n0nce\"",
    );
    pbx.deliver(&provider.peer, &r);
    let got = alice.take(&mut pbx);
    assert!(
        statuses(&got).iter().any(|&c| c >= 400),
        "the caller hears the call failed: {got:?}"
    );
    assert!(!methods(&provider.take(&mut pbx)).contains(&Method::Invite));
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn a_ring_given_up_before_it_was_heard_is_cancelled_once_when_it_is() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let a = alice.call(&mut pbx, "1002");
    let b = bob.incoming(&mut pbx);
    // Alice gives up before Bob's phone said anything: no CANCEL yet (RFC 3261 §9.1).
    alice.cancel(&mut pbx, &a);
    alice.expect_status(&mut pbx, Method::Cancel, 200);
    alice.expect_status(&mut pbx, Method::Invite, 487);
    bob.respond(&mut pbx, &b, 100);
    assert!(methods(&bob.take(&mut pbx)).is_empty());
    // Its first ring brings the CANCEL, a second one no other.
    bob.respond(&mut pbx, &b, 180);
    let cancel = bob.expect_request(&mut pbx, Method::Cancel);
    bob.respond(&mut pbx, &b, 180);
    assert!(!methods(&bob.take(&mut pbx)).contains(&Method::Cancel));
    bob.reply(&mut pbx, &cancel, 200);
    bob.respond(&mut pbx, &b, 487);
    bob.expect_request(&mut pbx, Method::Ack);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
}

#[test]
fn no_transaction_is_left_to_a_call_once_it_and_its_timers_are_over() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    // A re-INVITE relayed and answered, then the caller hangs up.
    bob.hold(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    alice.reply(&mut pbx, &reinv, 200);
    let ok = bob.expect_status(&mut pbx, Method::Invite, 200);
    bob.ack_this(&mut pbx, &b, &ok);
    alice.bye(&mut pbx, &a);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    pbx.advance(Duration::from_secs(40));
    assert_eq!(pbx.ep.owners.len(), 0, "owned client transactions");
}

#[test]
fn our_requests_on_a_leg_count_up_and_so_do_our_sdp_versions() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let version = |p: &Phone, c: &CallRef| p.call_state(c).remote_sdp.as_ref().unwrap().version;
    let (alice_had, bob_had) = (version(&alice, &a), version(&bob, &b));
    // Alice holds: Bob gets our re-INVITE (CSeq 2 after our INVITE's 1), a newer SDP.
    alice.hold(&mut pbx, &a);
    let reinv = bob.expect_request(&mut pbx, Method::Invite);
    assert_eq!(reinv.cseq().unwrap().seq, 2);
    assert!(Sdp::parse(&reinv.body).unwrap().version > bob_had);
    bob.reply(&mut pbx, &reinv, 200);
    bob.expect_request(&mut pbx, Method::Ack);
    // ... and Alice our answer, newer than the SDP she had from us.
    let ok = alice.expect_status(&mut pbx, Method::Invite, 200);
    assert!(Sdp::parse(&ok.body).unwrap().version > alice_had);
    alice.ack_this(&mut pbx, &a, &ok);
    // Her BYE: Bob's is our third request to him.
    alice.bye(&mut pbx, &a);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    assert_eq!(bye.cseq().unwrap().seq, 3);
    bob.reply(&mut pbx, &bye, 200);
}

#[test]
fn a_hold_the_other_party_refuses_changes_nothing() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, b) = answered(&mut pbx, &mut alice, &mut bob);
    let (to_alice, to_bob) = (our_port(&alice, &a), our_port(&bob, &b));
    bob.hold(&mut pbx, &b);
    let reinv = alice.expect_request(&mut pbx, Method::Invite);
    alice.reply(&mut pbx, &reinv, 488);
    bob.expect_status(&mut pbx, Method::Invite, 488);
    // One ACK for Alice's 488 (the transaction's own), no music, still together.
    let acks = methods(&alice.take(&mut pbx))
        .into_iter()
        .filter(|m| *m == Method::Ack)
        .count();
    assert_eq!(acks, 1);
    assert!(pbx.model.bridged(to_alice, to_bob), "{:?}", pbx.model);
    assert_eq!(pbx.calls()[0].on_hold, None);
}

#[test]
fn a_called_back_customer_is_hung_up_on_when_the_agent_leaves() {
    let mut pbx = Pbx::new();
    let (mut alice, mut bob) = (Phone::new("1001", 5070), Phone::new("1002", 5072));
    let (g, c) = callback_ringing(&mut pbx, &mut alice, &mut bob);
    // The agent cannot transfer a customer not on the line yet, nor (so far) one who is.
    bob.refer(&mut pbx, &g, "1003");
    assert_eq!(refer_answer(&mut pbx, &mut bob).0, 403);
    alice.respond(&mut pbx, &c, 200);
    alice.expect_request(&mut pbx, Method::Ack);
    bob.refer(&mut pbx, &g, "1003");
    assert_eq!(refer_answer(&mut pbx, &mut bob).0, 501);
    pbx.advance(Duration::from_secs(5));
    bob.bye(&mut pbx, &g);
    bob.expect_status(&mut pbx, Method::Bye, 200);
    let bye = alice.expect_request(&mut pbx, Method::Bye);
    alice.reply(&mut pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    let last = pbx.cdrs.last().unwrap();
    assert_eq!(
        (last.disposition, last.hangup_by),
        (Disposition::Answered, HangupBy::Callee),
        "{}",
        cdr_line(last)
    );
}

#[test]
fn we_speak_to_a_peer_from_the_listener_of_its_transport_and_family() {
    use crate::sip::header::Transport;
    use crate::sip::transaction::Peer;
    let mut pbx = Pbx::new();
    let addr = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
    pbx.ep.set_listeners(vec![
        (Transport::Udp, addr("127.0.0.1:5060")),
        (Transport::Tcp, addr("127.0.0.1:5061")),
        (Transport::Udp, addr("[::1]:5062")),
    ]);
    let peer = |transport, a: &str| Peer {
        transport,
        addr: addr(a),
    };
    for (p, want, contact) in [
        (
            peer(Transport::Udp, "127.0.0.9:5070"),
            "127.0.0.1:5060",
            "<sip:switchboard@127.0.0.1:5060>",
        ),
        (
            peer(Transport::Tcp, "127.0.0.9:5070"),
            "127.0.0.1:5061",
            "<sip:switchboard@127.0.0.1:5061;transport=tcp>",
        ),
        (
            peer(Transport::Udp, "[::1]:5070"),
            "[::1]:5062",
            "<sip:switchboard@[::1]:5062>",
        ),
        // No TCP listener on IPv6: the family's other one.
        (
            peer(Transport::Tcp, "[::1]:5070"),
            "[::1]:5062",
            "<sip:switchboard@[::1]:5062;transport=tcp>",
        ),
    ] {
        assert_eq!(pbx.ep.local_for(&p), addr(want), "{p:?}");
        assert_eq!(pbx.ep.contact_value(&p), contact, "{p:?}");
    }
    // No listener of the family at all: the peer's own address family, port 5060.
    pbx.ep
        .set_listeners(vec![(Transport::Udp, addr("127.0.0.1:5060"))]);
    assert_eq!(
        pbx.ep.local_for(&peer(Transport::Udp, "[::1]:5070")),
        addr("[::1]:5060")
    );
}

#[test]
fn a_called_back_customer_rings_30_seconds_and_no_longer_matters_once_answered() {
    // Unanswered for 30 s: the ring is cancelled and the agent hung up on.
    let mut pbx = Pbx::new();
    let (mut alice, mut bob) = (Phone::new("1001", 5070), Phone::new("1002", 5072));
    let (_, c) = callback_ringing(&mut pbx, &mut alice, &mut bob);
    alice.respond(&mut pbx, &c, 180);
    pbx.advance(Duration::from_secs(29));
    assert!(methods(&alice.take(&mut pbx)).is_empty());
    pbx.advance(Duration::from_secs(1));
    let cancel = alice.expect_request(&mut pbx, Method::Cancel);
    alice.reply(&mut pbx, &cancel, 200);
    alice.respond(&mut pbx, &c, 487);
    let bye = bob.expect_request(&mut pbx, Method::Bye);
    bob.reply(&mut pbx, &bye, 200);
    let last = pbx.cdrs.last().unwrap();
    assert_eq!(
        (last.disposition, last.sip_code),
        (Disposition::NoAnswer, 480),
        "{}",
        cdr_line(last)
    );
    // Answered within them: the call goes on past them.
    let mut pbx = Pbx::new();
    let (mut alice, mut bob) = (Phone::new("1001", 5070), Phone::new("1002", 5072));
    let (_, c) = callback_ringing(&mut pbx, &mut alice, &mut bob);
    alice.respond(&mut pbx, &c, 200);
    alice.expect_request(&mut pbx, Method::Ack);
    pbx.advance(Duration::from_secs(60));
    assert!(methods(&alice.take(&mut pbx)).is_empty());
    assert!(methods(&bob.take(&mut pbx)).is_empty());
    assert_eq!(call_state(&pbx).0, "bridged");
}

/// The shipped config with a trunk at `trunk` (its calls start in context `inbound`)
/// and the dialplan `plan`, written to `dir`.
pub(super) fn config_with(dir: &std::path::Path, trunk: &str, plan: &str) -> String {
    let path = dir.join("plan.dp");
    std::fs::write(&path, plan).unwrap();
    let ip = trunk.split(':').next().unwrap();
    crate::config::EMBEDDED
        .replace(
            "dialplan = \"dialplans/default.dp\"",
            &format!("dialplan = \"{}\"", path.display()),
        )
        .replace(
            "address = \"127.0.0.2:5060\"",
            &format!("address = \"{trunk}\""),
        )
        .replace(
            "inbound_from = [\"127.0.0.2\"]",
            &format!("inbound_from = [\"{ip}\"]"),
        )
}

/// The sounds `phone`'s call `number` plays before it hangs up, by name.
fn heard_until_bye(pbx: &mut Pbx, phone: &mut Phone, number: &str) -> Vec<String> {
    let a = phone.call(pbx, number);
    phone.ack(pbx, &a);
    let mut heard = Vec::new();
    for _ in 0..10 {
        let Some((seq, path, leg)) = pbx.take_media().iter().find_map(|m| match m {
            MediaCommand::Play { seq, path, leg, .. } => Some((*seq, path.clone(), *leg)),
            _ => None,
        }) else {
            break;
        };
        heard.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        pbx.media_event(played(leg, seq));
    }
    heard
}

#[test]
fn a_trunk_caller_claiming_an_extensions_number_is_not_that_extension() {
    let dir = tempfile::tempdir().unwrap();
    let said = "if $status == \"ok\" { play \"agent-logged-in\" } else { play \"goodbye\" }";
    let plan = format!(
        "context internal {{\n\
           match \"*45\" {{ agent login; {said}; hangup }}\n\
           match \"*44\" {{ agent login \"5001\" pin \"45001\"; {said}; hangup }}\n\
         }}\n\
         context inbound {{\n\
           match \"*45\" {{ agent login; {said}; hangup }}\n\
           match \"*44\" {{ agent login \"5001\" pin \"45001\"; {said}; hangup }}\n\
           match \"*97\" {{ voicemail check \"1001\" }}\n\
         }}\n"
    );
    // From a trunk on loopback, "1002" calling: no agent codes (not our extension's
    // phone), though the demo voicemail PIN works from loopback.
    let config = config_with(dir.path(), "127.0.0.2:5060", &plan);
    let mut pbx = Pbx::with_config(&config);
    let mut trunk_caller = Phone::at("1002", "unused", "127.0.0.2:5060");
    assert_eq!(
        heard_until_bye(&mut pbx, &mut trunk_caller, "*45"),
        ["goodbye"]
    );
    assert_eq!(
        heard_until_bye(&mut pbx, &mut trunk_caller, "*44"),
        ["goodbye"]
    );
    assert_eq!(
        heard_until_bye(&mut pbx, &mut trunk_caller, "*97")[..1],
        ["vm-enter-pin"]
    );
    // Bob's own phone may.
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    assert_eq!(
        heard_until_bye(&mut pbx, &mut bob, "*45"),
        ["agent-logged-in"]
    );
    let mut alice = Phone::new("1001", 5070);
    alice.register(&mut pbx);
    assert_eq!(
        heard_until_bye(&mut pbx, &mut alice, "*44"),
        ["agent-logged-in"]
    );
    // From a trunk off loopback the shipped demo PIN does not open the box at all.
    let config = config_with(dir.path(), "192.0.2.1:5060", &plan);
    let mut pbx = Pbx::with_config(&config);
    let mut far = Phone::at("+15557654321", "unused", "192.0.2.1:5060");
    assert_eq!(
        heard_until_bye(&mut pbx, &mut far, "*97"),
        ["vm-closed", "goodbye"]
    );
}

#[test]
fn a_name_unsafe_as_a_file_fails_the_step_and_the_dialplan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = "context internal {\n\
          match \"1\" { record \"../1001/evil\" max 5s; if $status == \"failed\" { play \"goodbye\" }; hangup }\n\
          match \"2\" { voicemail \".hidden\"; if $status == \"failed\" { play \"goodbye\" }; hangup }\n\
        }\ncontext inbound { match any { hangup 404 } }\n";
    let config = config_with(dir.path(), "127.0.0.2:5060", plan);
    let mut pbx = Pbx::with_config(&config);
    let mut alice = Phone::new("1001", 5070);
    for number in ["1", "2"] {
        assert_eq!(
            heard_until_bye(&mut pbx, &mut alice, number),
            ["goodbye"],
            "{number}"
        );
    }
    assert!(pbx
        .take_media()
        .iter()
        .all(|m| !matches!(m, MediaCommand::Record { .. })));
}

#[test]
fn an_announcement_goes_on_when_an_agents_ring_fails_in_the_middle_of_it() {
    let (mut pbx, mut alice, mut bob) = two_phones();
    let (a, leg, _) = answered_here(&mut pbx, &mut alice, "700");
    let to_alice = our_port(&alice, &a);
    // Bob is offered the call at once, lets it ring out (15 s), and is offered it again
    // 5 s later; at 30 s Alice hears her place in the queue.
    let first = bob.incoming(&mut pbx);
    bob.respond(&mut pbx, &first, 180);
    pbx.advance(Duration::from_secs(20));
    let again = bob.expect_request(&mut pbx, Method::Invite);
    let again = bob.accept(again);
    pbx.advance(Duration::from_secs(10));
    assert!(matches!(
        &pbx.model.on_port(to_alice).unwrap().hears,
        Hears::Prompt(p) if p.ends_with("you-are-caller-number.wav")
    ));
    // Bob refuses while it plays: the announcement still goes on to its end, then the
    // music.
    bob.respond(&mut pbx, &again, 486);
    let mut said = 0;
    for _ in 0..10 {
        let Some(seq) = pbx.take_media().iter().rev().find_map(|m| match m {
            MediaCommand::Play { seq, .. } => Some(*seq),
            _ => None,
        }) else {
            break;
        };
        said += 1;
        pbx.media_event(played(leg, seq));
    }
    assert!(said >= 2, "{said} prompts");
    assert!(matches!(
        &pbx.model.on_port(to_alice).unwrap().hears,
        Hears::Music(p) if p.ends_with("moh/default.wav")
    ));
}
