//! Wrong voicemail PINs through the phone harness: throttled by who keys them across
//! calls, never by the box, so its owner goes on opening it.

use super::calls::{config_with, our_port};
use super::harness::{Pbx, Phone};

/// What plays on our port `port` until something waits for keys (or the call ends),
/// by name. A prompt that ended stays the one the engine last played: its end is not
/// reported twice.
fn prompts(pbx: &mut Pbx, port: u16) -> Vec<String> {
    let mut heard = Vec::new();
    let mut last = None;
    while let Some((_, seq, _)) = pbx.model.prompt_on(port) {
        if last == Some(seq) {
            break;
        }
        last = Some(seq);
        let p = pbx.prompt_ends(port).unwrap();
        heard.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        assert!(heard.len() < 20, "{heard:?}");
    }
    heard
}

#[test]
fn a_caller_guessing_a_box_pin_is_refused_pins_and_the_owner_still_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = "context internal {\n\
                  match \"*96\" { voicemail check \"1002\" }\n\
                  match \"*97\" { voicemail check \"$caller\" }\n\
                }\n\
                context inbound { match \"1\" { hangup } }\n";
    let mut pbx = Pbx::with_config(&config_with(dir.path(), "127.0.0.2:5060", plan));
    let mut alice = Phone::new("1001", 5070);
    alice.register(&mut pbx);
    let mut bob = Phone::new("1002", 5072);
    bob.register(&mut pbx);
    // Alice guesses Bob's PIN: three tries a call, and the box says goodbye.
    let c = alice.call(&mut pbx, "*96");
    alice.ack(&mut pbx, &c);
    let port = our_port(&alice, &c);
    assert_eq!(prompts(&mut pbx, port), ["vm-enter-pin"]);
    for _ in 0..2 {
        pbx.press(port, "1111#");
        assert_eq!(prompts(&mut pbx, port), ["vm-wrong-pin", "vm-enter-pin"]);
    }
    pbx.press(port, "2222#");
    assert_eq!(prompts(&mut pbx, port), ["vm-wrong-pin", "goodbye"]);
    alice.expect_request(&mut pbx, crate::sip::msg::Method::Bye);
    // She calls again: after two more wrong ones (five within ten minutes) even the
    // right PIN is refused, told just as a wrong one is.
    let c = alice.call(&mut pbx, "*96");
    alice.ack(&mut pbx, &c);
    let port = our_port(&alice, &c);
    assert_eq!(prompts(&mut pbx, port), ["vm-enter-pin"]);
    for keys in ["3333#", "4444#"] {
        pbx.press(port, keys);
        assert_eq!(prompts(&mut pbx, port), ["vm-wrong-pin", "vm-enter-pin"]);
    }
    pbx.press(port, "4002#");
    assert_eq!(prompts(&mut pbx, port), ["vm-wrong-pin", "goodbye"]);
    // Bob, from his own phone, opens his box with it.
    let c = bob.call(&mut pbx, "*97");
    bob.ack(&mut pbx, &c);
    let port = our_port(&bob, &c);
    assert_eq!(prompts(&mut pbx, port), ["vm-enter-pin"]);
    pbx.press(port, "4002#");
    assert_eq!(prompts(&mut pbx, port)[0], "vm-you-have");
}
