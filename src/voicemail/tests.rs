use super::*;

fn msg(file: &str, at: u64, heard: bool) -> VmMessage {
    VmMessage {
        file: file.into(),
        caller: "1002".into(),
        at_ms: at,
        ms: 1000,
        heard,
    }
}

#[test]
fn folding_ignores_line_order_and_skips_bad_lines() {
    let lines = [
        r#"{"file":"2-1.wav","heard":true}"#,
        r#"{"file":"1-1.wav","caller":"1002","at_ms":1,"ms":1000}"#,
        "not json",
        r#"{"file":"3-1.wav","deleted":true}"#,
        r#"{"file":"2-1.wav","caller":"1002","at_ms":2,"ms":1000}"#,
        r#"{"file":"3-1.wav","caller":"1002","at_ms":3,"ms":1000}"#,
        r#"{"file":"4-1.wav","ms":1000}"#,
    ];
    let (v, deleted, bad) = fold(&lines.join("\n"));
    assert_eq!(v, vec![msg("1-1.wav", 1, false), msg("2-1.wav", 2, true)]);
    assert!(deleted.contains("3-1.wav"));
    assert_eq!(
        bad, 2,
        "a line that is not JSON, a message line without its caller"
    );
    let mut rev = lines;
    rev.reverse();
    assert_eq!(fold(&rev.join("\n")).0, v, "the same state in any order");
}

#[test]
fn loading_keeps_messages_the_index_missed_and_applying_writes_survives_a_reload() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("1001");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.jsonl"),
        "{\"file\":\"10-1.wav\",\"caller\":\"1002\",\"at_ms\":10,\"ms\":1000}\n",
    )
    .unwrap();
    std::fs::write(dir.join("10-1.wav"), vec![0u8; 44 + 16000]).unwrap();
    // Written, but its index line never was (a full disk, a crash).
    std::fs::write(dir.join("20-2.wav"), vec![0u8; 44 + 32000]).unwrap();
    std::fs::write(dir.join(GREETING), vec![0u8; 44]).unwrap();
    let boxes = load(root.path());
    let mb = &boxes["1001"];
    assert!(mb.greeting);
    assert_eq!(
        mb.messages
            .iter()
            .map(|m| m.file.as_str())
            .collect::<Vec<_>>(),
        ["10-1.wav", "20-2.wav"]
    );
    assert_eq!(mb.messages[1].caller, "unknown");
    assert_eq!(mb.messages[1].ms, 2000);
    for c in [
        Change::Heard("10-1.wav".into()),
        Change::Deleted("20-2.wav".into()),
    ] {
        c.write(&dir).unwrap().apply().unwrap();
    }
    assert!(!dir.join("20-2.wav").exists());
    let mb = &load(root.path())["1001"];
    assert_eq!(mb.messages, vec![msg("10-1.wav", 10, true)]);
    assert_eq!(mb.counts(), (0, 1));
}

#[test]
fn a_damaged_box_loads_what_it_can_and_offers_no_silence() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("1002");
    std::fs::create_dir_all(&dir).unwrap();
    // A good line, a line for a file that is gone, and a last line cut short by a crash.
    std::fs::write(
        dir.join("index.jsonl"),
        "{\"file\":\"10-1.wav\",\"caller\":\"1001\",\"at_ms\":10,\"ms\":1000}\n\
         {\"file\":\"20-2.wav\",\"caller\":\"1003\",\"at_ms\":20,\"ms\":1000}\n\
         {\"file\":\"30-3.wav\",\"cal",
    )
    .unwrap();
    std::fs::write(dir.join("10-1.wav"), vec![0u8; 44 + 16000]).unwrap();
    std::fs::write(dir.join("30-3.wav"), vec![0u8; 44 + 8000]).unwrap();
    // A recording still being written aside when the process stopped.
    std::fs::write(dir.join("40-4.wav.part"), vec![0u8; 100]).unwrap();
    let mb = &load(root.path())["1002"];
    let got: Vec<(&str, &str, u64)> = mb
        .messages
        .iter()
        .map(|m| (m.file.as_str(), m.caller.as_str(), m.at_ms))
        .collect();
    assert_eq!(
        got,
        [("10-1.wav", "1001", 10), ("30-3.wav", "unknown", 30)],
        "the missing file is not offered, the cut line's message is kept from its file, \
         the partial recording is no message"
    );
    assert_eq!(mb.messages[1].ms, 500);
    assert_eq!(mb.counts(), (2, 0));
}

fn run(r: &mut Retrieval, mb: &mut Mailbox, input: Input<'_>) -> Step {
    let mut changes = Vec::new();
    let s = r.next(input, mb, &mut changes);
    for c in &changes {
        mb.apply(c);
    }
    s
}

fn prompts(s: &Step) -> Vec<String> {
    match s {
        Step::Ask { prompts, .. } | Step::Play(prompts) => prompts
            .iter()
            .map(|p| match p {
                Prompt::Sound(s) => s.clone(),
                Prompt::Message(f) => format!("msg:{f}"),
            })
            .collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn the_owner_hears_new_messages_first_deletes_one_and_the_box_follows() {
    let mut mb = Mailbox {
        messages: vec![msg("1.wav", 1, true), msg("2.wav", 2, false)],
        greeting: false,
    };
    let mut r = Retrieval::new(Some("4321".into()));
    let s = run(&mut r, &mut mb, Input::Start);
    assert!(matches!(
        s,
        Step::Ask {
            terminator: Some('#'),
            max: 16,
            ..
        }
    ));
    let s = run(&mut r, &mut mb, Input::Keys("4321"));
    assert_eq!(
        prompts(&s),
        [
            "vm-you-have",
            "digits/1",
            "vm-new-messages",
            "vm-and",
            "digits/1",
            "vm-saved-messages",
            "vm-main-menu"
        ]
    );
    let s = run(&mut r, &mut mb, Input::Keys("1"));
    assert_eq!(
        prompts(&s),
        ["vm-message", "digits/1", "msg:2.wav", "vm-after-message"],
        "the new one first"
    );
    // Replay: still message 1, and now heard.
    let s = run(&mut r, &mut mb, Input::Keys("1"));
    assert_eq!(prompts(&s)[2], "msg:2.wav");
    assert_eq!(mb.counts(), (0, 2));
    // Delete: the next one follows the confirmation, numbered as it now stands.
    let s = run(&mut r, &mut mb, Input::Keys("7"));
    assert_eq!(
        prompts(&s),
        [
            "vm-deleted",
            "vm-message",
            "digits/1",
            "msg:1.wav",
            "vm-after-message"
        ]
    );
    assert_eq!(mb.messages, vec![msg("1.wav", 1, true)]);
    let s = run(&mut r, &mut mb, Input::Keys("9"));
    assert_eq!(prompts(&s), ["vm-no-more-messages", "vm-main-menu"]);
    let s = run(&mut r, &mut mb, Input::Keys("*"));
    assert_eq!(prompts(&s), ["goodbye"]);
    assert_eq!(run(&mut r, &mut mb, Input::Played), Step::Hangup);
}

#[test]
fn three_wrong_pins_end_the_call_and_a_box_without_a_pin_never_opens() {
    let mut mb = Mailbox::default();
    let mut r = Retrieval::new(Some("4321".into()));
    run(&mut r, &mut mb, Input::Start);
    for _ in 0..2 {
        let s = run(&mut r, &mut mb, Input::Keys("1234"));
        assert_eq!(prompts(&s), ["vm-wrong-pin", "vm-enter-pin"]);
    }
    let s = run(&mut r, &mut mb, Input::Keys(""));
    assert_eq!(prompts(&s), ["vm-wrong-pin", "goodbye"]);
    assert_eq!(run(&mut r, &mut mb, Input::Played), Step::Hangup);

    for pin in [None, Some(String::new())] {
        let mut r = Retrieval::new(pin);
        let s = run(&mut r, &mut mb, Input::Start);
        assert_eq!(prompts(&s), ["vm-closed", "goodbye"]);
        assert_eq!(run(&mut r, &mut mb, Input::Keys("")), Step::Hangup);
    }
}

#[test]
fn a_pin_refused_unread_is_a_wrong_pin_even_when_right() {
    let mut mb = Mailbox::default();
    let mut r = Retrieval::new(Some("4321".into()));
    run(&mut r, &mut mb, Input::Start);
    assert!(r.awaiting_pin());
    let s = run(&mut r, &mut mb, Input::Refused);
    assert_eq!(prompts(&s), ["vm-wrong-pin", "vm-enter-pin"]);
    assert_eq!((r.wrong_pins(), r.awaiting_pin()), (1, true));
    // The right PIN still opens the box when it may be compared.
    let s = run(&mut r, &mut mb, Input::Keys("4321"));
    assert!(prompts(&s).contains(&"vm-main-menu".to_string()), "{s:?}");
    assert_eq!((r.wrong_pins(), r.awaiting_pin()), (1, false));
}

#[test]
fn greeting_silence_and_wrong_keys() {
    let mut mb = Mailbox::default();
    let mut r = Retrieval::new(Some("1".into()));
    run(&mut r, &mut mb, Input::Start);
    run(&mut r, &mut mb, Input::Keys("1"));
    let s = run(&mut r, &mut mb, Input::Keys("1"));
    assert_eq!(
        prompts(&s),
        ["vm-no-more-messages", "vm-main-menu"],
        "an empty box"
    );
    let s = run(&mut r, &mut mb, Input::Keys("5"));
    assert_eq!(prompts(&s), ["invalid-option", "vm-main-menu"]);
    assert_eq!(run(&mut r, &mut mb, Input::Keys("0")), Step::RecordGreeting);
    let s = run(&mut r, &mut mb, Input::Recorded(true));
    assert_eq!(prompts(&s), ["vm-greeting-saved", "vm-main-menu"]);
    assert!(mb.greeting);
    run(&mut r, &mut mb, Input::Keys(""));
    run(&mut r, &mut mb, Input::Keys(""));
    let s = run(&mut r, &mut mb, Input::Keys(""));
    assert_eq!(prompts(&s), ["goodbye"], "three silences in a row");
}

#[test]
fn keys_after_a_message_go_back_repeat_the_question_or_say_it_was_wrong() {
    let mut mb = Mailbox {
        messages: vec![msg("1.wav", 1, false)],
        greeting: false,
    };
    let mut r = Retrieval::new(Some("1".into()));
    run(&mut r, &mut mb, Input::Start);
    run(&mut r, &mut mb, Input::Keys("1"));
    run(&mut r, &mut mb, Input::Keys("1"));
    let s = run(&mut r, &mut mb, Input::Keys("5"));
    assert_eq!(prompts(&s), ["invalid-option", "vm-after-message"]);
    let s = run(&mut r, &mut mb, Input::Keys(""));
    assert_eq!(prompts(&s), ["vm-after-message"], "silence asks again");
    let s = run(&mut r, &mut mb, Input::Keys("*"));
    assert_eq!(prompts(&s), ["vm-main-menu"], "star goes back to the menu");
    let s = run(&mut r, &mut mb, Input::Keys("1"));
    assert_eq!(prompts(&s)[2], "msg:1.wav", "and the menu works from there");
}

#[test]
fn a_write_that_removes_a_file_already_gone_succeeds_and_one_that_cannot_fails() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.jsonl");
    let gone = MailboxWrite {
        index: index.clone(),
        line: r#"{"file":"1.wav","deleted":true}"#.into(),
        remove: Some(dir.path().join("1.wav")),
    };
    gone.apply()
        .expect("a message already removed is deleted all the same");
    // A directory where the message file should be: removing it fails, and says so.
    std::fs::create_dir(dir.path().join("2.wav")).unwrap();
    let stuck = MailboxWrite {
        index: index.clone(),
        line: r#"{"file":"2.wav","deleted":true}"#.into(),
        remove: Some(dir.path().join("2.wav")),
    };
    assert!(stuck.apply().is_err());
    let text = std::fs::read_to_string(&index).unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "both lines written before the removal"
    );
}
