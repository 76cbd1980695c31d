use super::*;

const PLAN: &str = r#"
# demo
context internal {
  match "600" { answer; echo }
  match "601" { answer; play "hello-$caller"; hangup }
  match /^(1\d\d\d)$/ {
    dial "$1" timeout 20s
    if $status == "busy" { hangup busy } else if $status == "noanswer" { play "vm" } else { hangup 503 }
  }
  match prefix "9" { set trunk = "demo"; dial trunk "demo" "+1${1}" }
  match "0" { goto internal "1001" }
  match "loop" { set again = "loop"; goto internal "$again" }
}
"#;

fn plan() -> Dialplan {
    parse(PLAN, "t.dp").unwrap()
}

#[test]
fn exact_regex_prefix_and_captures() {
    let p = plan();
    let mut c = p.start("internal", "600", "1001").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Answer);
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Echo);
    let mut c = p.start("internal", "601", "1001").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Answer);
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("hello-1001".into()));
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Hangup(None));
    let mut c = p.start("internal", "1002", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Dial {
            target: "1002".into(),
            trunk: None,
            timeout: Some(Duration::from_secs(20))
        }
    );
    let mut c = p.start("internal", "95550100", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Dial {
            target: "+15550100".into(),
            trunk: Some("demo".into()),
            timeout: None
        }
    );
    assert_eq!(c.vars["trunk"], "demo");
    assert_eq!(p.trunk_refs().len(), 1);
    assert!(p.start("internal", "7", "1001").is_none());
    assert!(p.start("nowhere", "600", "1001").is_none());
}

#[test]
fn dial_status_drives_what_follows() {
    let p = plan();
    for (status, want) in [
        ("busy", Action::Hangup(Some(486))),
        ("noanswer", Action::Play("vm".into())),
        ("failed", Action::Hangup(Some(503))),
    ] {
        let mut c = p.start("internal", "1003", "1001").unwrap();
        let _ = p.step(&mut c, &NO_ENV);
        c.vars.insert("status".into(), status.into());
        assert_eq!(p.step(&mut c, &NO_ENV), want, "{status}");
    }
}

#[test]
fn goto_and_loop_guard() {
    let p = plan();
    let mut c = p.start("internal", "0", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Dial {
            target: "1001".into(),
            trunk: None,
            timeout: Some(Duration::from_secs(20))
        }
    );
    let mut c = p.start("internal", "loop", "1001").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Hangup(Some(500)));
}

fn err(text: &str) -> String {
    parse(text, "x.dp").unwrap_err().to_string()
}

#[test]
fn errors_point_at_the_problem() {
    let e = err("context a {\n  match \"1\" { dail \"2\" }\n}\n");
    assert!(
        e.contains("unknown statement `dail`") && e.contains("x.dp:2:15"),
        "{e}"
    );
    let e = err("context a {\n  match /[/ { echo }\n}\n");
    assert!(e.contains("bad regex") && e.contains("x.dp:2:9"), "{e}");
    let e = err("context a { match \"1\" { goto b } }");
    assert!(e.contains("unknown context `b`"), "{e}");
    let e = err("context a { match \"1\" { dial \"2\" timeout 20 } }");
    assert!(e.contains("needs a unit"), "{e}");
    let e = err("context a { match \"1\" { hangup 200 } }");
    assert!(e.contains("not a SIP failure code"), "{e}");
    let e = err("context a { match \"1\" { play \"x } }");
    assert!(e.contains("unterminated string"), "{e}");
    let e = err("context a {}\ncontext a {}");
    assert!(e.contains("defined twice") && e.contains("x.dp:2:9"), "{e}");
    let e = err("context a { match \"1\" { echo }");
    assert!(e.contains("not closed"), "{e}");
    let e = err("context a { match \"1\" { echo");
    assert!(
        e.contains("block is not closed") && e.contains("add `}`"),
        "{e}"
    );
    // Punctuation where it must be: each missing piece is named, where it was wanted.
    let e = err("context a match \"1\" { echo } }");
    assert!(e.contains("expected `{`") && e.contains("x.dp:1:11"), "{e}");
    let e = err("context a { match \"1\" { set x \"1\" } }");
    assert!(e.contains("expected `=`"), "{e}");
    let e = err("block b { echo }\ncontext a { match \"1\" { call b() } }");
    assert!(e.contains("expected `(`"), "{e}");
    let e = err("context a { match \"1\" { echo @ } }");
    assert!(
        e.contains("unexpected character `@`") && e.contains("x.dp:1:30"),
        "{e}"
    );
}

#[test]
fn collect_with_options_and_defaults() {
    let p = parse(
        "context a {\n  match \"1\" { collect pin min 4 max 6 timeout 8s interdigit 2s terminator \"*\" prompt \"enter-$caller\" }\n  match \"2\" { collect choice }\n}",
        "c.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "1001").unwrap();
    let Action::Collect(col) = p.step(&mut c, &NO_ENV) else {
        panic!()
    };
    assert_eq!((col.var.as_str(), col.min, col.max), ("pin", 4, 6));
    assert_eq!(
        (col.timeout, col.interdigit, col.terminator),
        (Duration::from_secs(8), Duration::from_secs(2), Some('*'))
    );
    assert_eq!(col.prompts, vec![Template("enter-1001".into())]);
    assert_eq!(col.prompts[0].as_str(), "enter-1001");
    let mut c = p.start("a", "2", "1001").unwrap();
    let Action::Collect(col) = p.step(&mut c, &NO_ENV) else {
        panic!()
    };
    assert_eq!(
        (col.min, col.max, col.terminator, col.prompts.is_empty()),
        (1, 16, Some('#'), true)
    );
    let e = err("context a { match \"1\" { collect x min 5 max 2 } }");
    assert!(e.contains("at least 5 keys but at most 2"), "{e}");
    let e = err("context a { match \"1\" { collect x terminator \"##\" } }");
    assert!(e.contains("one key"), "{e}");
}

const MENUS: &str = r#"
menu main {
  prompt "welcome" "options"
  timeout 4s
  retries 2
  on "1" { dial "1001" }
  on "2" { menu sub }
  on invalid { play "invalid"; repeat }
  on exhausted { hangup 480 }
}
menu sub {
  prompt "sub"
  on "9" { menu main }
  on "5" { dial "1005" }
}
context internal { match "0" { menu main } }
"#;

fn menu_action(prompts: &[&str], secs: u64) -> Action {
    Action::Menu {
        prompts: prompts.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(secs),
    }
}

#[test]
fn menus_route_keys_repeat_and_give_up() {
    let p = parse(MENUS, "m.dp").unwrap();
    let mut c = p.start("internal", "0", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        menu_action(&["welcome", "options"], 4)
    );
    // A wrong key: the invalid handler, then the menu again.
    p.menu_input(&mut c, Some('7'));
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("invalid".into()));
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        menu_action(&["welcome", "options"], 4)
    );
    // Silence: the default handler repeats... but this is the second failure: exhausted.
    p.menu_input(&mut c, None);
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Hangup(Some(480)));
    // A right key goes to its handler; submenus nest, and lead back.
    let mut c = p.start("internal", "0", "1001").unwrap();
    let _ = p.step(&mut c, &NO_ENV);
    p.menu_input(&mut c, Some('2'));
    assert_eq!(p.step(&mut c, &NO_ENV), menu_action(&["sub"], 5));
    p.menu_input(&mut c, None);
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        menu_action(&["sub"], 5),
        "default: silence repeats"
    );
    p.menu_input(&mut c, Some('9'));
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        menu_action(&["welcome", "options"], 4)
    );
    p.menu_input(&mut c, Some('1'));
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Dial {
            target: "1001".into(),
            trunk: None,
            timeout: None
        }
    );
    assert_eq!(c.vars["key"], "1");
}

#[test]
fn unused_menus_are_found() {
    let p = parse("menu a { on \"1\" { echo } }\nmenu b { on \"1\" { menu a } }\ncontext c { match \"1\" { echo } }", "u.dp").unwrap();
    assert_eq!(p.unused_menus(), ["b"]);
}

#[test]
fn menu_errors_are_located() {
    let e = err("context a { match \"1\" { menu nope } }");
    assert!(e.contains("no menu named `nope`"), "{e}");
    let e = err("context a { match \"1\" { repeat } }");
    assert!(e.contains("belongs in a menu"), "{e}");
    let e = err("menu m { on \"1\" { echo } on \"1\" { echo } }");
    assert!(e.contains("handled twice"), "{e}");
    let e = err("menu m { prompt \"x\" }");
    assert!(e.contains("no `on \"KEY\"` option"), "{e}");
    let e = err("menu m { on \"12\" { echo } }");
    assert!(e.contains("one key"), "{e}");
    let e = err("menu m { volume 3 }");
    assert!(e.contains("unknown menu setting `volume`"), "{e}");
}

#[test]
fn say_digits_and_numbers() {
    let d = |t: &str| say_prompts(SayKind::Digits, t);
    let n = |t: &str| say_prompts(SayKind::Number, t);
    assert_eq!(d("10#"), ["digits/1", "digits/0", "digits/pound"]);
    assert_eq!(n("0"), ["digits/0"]);
    assert_eq!(n("7"), ["digits/7"]);
    assert_eq!(n("15"), ["digits/15"]);
    assert_eq!(n("40"), ["digits/40"]);
    assert_eq!(n("42"), ["digits/40", "digits/2"]);
    assert_eq!(n("100"), ["digits/1", "digits/hundred"]);
    assert_eq!(n("1002"), ["digits/1", "digits/thousand", "digits/2"]);
    assert_eq!(
        n("123456"),
        [
            "digits/1",
            "digits/hundred",
            "digits/20",
            "digits/3",
            "digits/thousand",
            "digits/4",
            "digits/hundred",
            "digits/50",
            "digits/6"
        ]
    );
    assert_eq!(
        n("12x"),
        ["digits/1", "digits/2"],
        "not a number: digit by digit"
    );
    let p = parse(
        "context a { match \"1\" { say number \"$caller\"; say digits \"42\" } }",
        "s.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "315").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::PlayAll(vec![
            "digits/3".into(),
            "digits/hundred".into(),
            "digits/15".into()
        ])
    );
    let e = err("context a { match \"1\" { say words \"x\" } }");
    assert!(e.contains("say `words`"), "{e}");
}

#[test]
fn hours_conditions_follow_the_clock_and_the_schedule() {
    let p = parse("context a { match \"1\" { if hours(\"office\") { play \"open\" } else { play \"closed\" } } }", "h.dp").unwrap();
    assert_eq!(p.hours_refs()[0].0, "office");
    let mut hours = HashMap::new();
    hours.insert(
        "office".to_string(),
        crate::hours::Schedule::new("UTC", &["mon-fri 09:00-17:00".into()], &[]).unwrap(),
    );
    // Monday 2026-11-23 10:00 UTC, then 18:00 UTC.
    let monday_10 = 1_795_428_000_000i64;
    for (t, want) in [(monday_10, "open"), (monday_10 + 8 * 3_600_000, "closed")] {
        let mut c = p.start("a", "1", "x").unwrap();
        let env = Env {
            unix_ms: t,
            hours: Some(&hours),
        };
        assert_eq!(p.step(&mut c, &env), Action::Play(want.into()));
    }
    // No schedules known (or no clock): closed.
    let mut c = p.start("a", "1", "x").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("closed".into()));
    let e = err("context a { match \"1\" { if hours(office) { echo } } }");
    assert!(e.contains("in double quotes"), "{e}");
}

#[test]
fn conditions_on_the_caller_number() {
    let p = parse(
        "context a { match any { if $caller =~ /^\\+1555/ { play \"local\" } else if $caller =~ /^(1\\d{3})$/ { play \"internal\" } else { play \"other\" } } }",
        "r.dp",
    )
    .unwrap();
    for (caller, want) in [
        ("+15551234", "local"),
        ("1001", "internal"),
        ("+4420", "other"),
    ] {
        let mut c = p.start("a", "9", caller).unwrap();
        assert_eq!(
            p.step(&mut c, &NO_ENV),
            Action::Play(want.into()),
            "{caller}"
        );
    }
    let e = err("context a { match any { if $caller =~ \"x\" { echo } } }");
    assert!(e.contains("expected /regex/"), "{e}");
}

#[test]
fn blocks_take_arguments_and_return() {
    let p = parse(
        r#"
block greet(who, then) {
  play "hello-$who"
  if $then == "stop" { return }
  play "more"
}
block unused() { echo }
context a {
  match "1" { call greet("$caller", "stop"); play "after" }
  match "2" { call greet("bob", "go"); hangup 486 }
}
"#,
        "b.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "ann").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("hello-ann".into()));
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Play("after".into()),
        "return goes back to the caller"
    );
    let mut c = p.start("a", "2", "ann").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("hello-bob".into()));
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("more".into()));
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Hangup(Some(486)),
        "the end of a block returns"
    );
    assert_eq!(p.unused_blocks(), ["unused"]);
    let e = err("block b(x) { echo }\ncontext a { match \"1\" { call b() } }");
    assert!(e.contains("takes 1 argument(s), given 0"), "{e}");
    let e = err("context a { match \"1\" { call nope(\"x\") } }");
    assert!(e.contains("no block named `nope`"), "{e}");
    let e = err("context a { match \"1\" { return } }");
    assert!(e.contains("belongs in a block"), "{e}");
    // Recursion that never returns is cut off, not followed forever.
    let p = parse(
        "block r() { play \"beep\"; call r() }\ncontext a { match \"1\" { call r() } }",
        "r.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "x").unwrap();
    let steps: Vec<Action> = (0..40).map(|_| p.step(&mut c, &NO_ENV)).collect();
    assert!(steps.contains(&Action::Hangup(Some(500))), "{steps:?}");
}

#[test]
fn record_and_voicemail_take_names_limits_and_need_their_prompts() {
    let p = parse(
        r#"context a {
  match "1" { record "msg-$caller" max 30s silence 2s; voicemail "$dialed" }
  match "2" { record "plain" }
}"#,
        "r.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Record {
            name: "msg-1001".into(),
            max: Duration::from_secs(30),
            silence: Duration::from_secs(2)
        }
    );
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Voicemail("1".into()));
    let mut c = p.start("a", "2", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Record {
            name: "plain".into(),
            max: Duration::from_secs(60),
            silence: Duration::from_secs(5)
        },
        "defaults: a minute, five seconds of quiet"
    );
    let sounds: Vec<&str> = p.sound_refs().iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        sounds.contains(&"beep") && sounds.contains(&"leave-message"),
        "{sounds:?}"
    );
    let e = err("context a { match \"1\" { record \"x\" max 30 } }");
    assert!(e.contains("max needs a duration"), "{e}");
    let e = err("context a { match \"1\" { recrod \"x\" } }");
    assert!(
        e.contains("record"),
        "a misspelling is pointed at `record`: {e}"
    );
}

#[test]
fn loops_that_never_wait_are_refused_and_loops_that_wait_are_not() {
    for bad in [
        "context a { match \"1\" { goto a \"1\" } }",
        "context a { match \"1\" { if $caller == \"x\" { play \"beep\" } else { goto a \"2\" } }\n match \"2\" { answer; goto a \"1\" } }",
        "block b() { call c() }\nblock c() { set x = \"1\"; call b() }\ncontext a { match \"1\" { call b() } }",
        // The branch that does not wait jumps past the one that does, round again.
        "context a { match \"1\" { if $caller == \"x\" { set y = \"1\" } else { play \"beep\" }; goto a \"1\" } }",
    ] {
        let e = err(bad);
        assert!(e.contains("loop without an exit"), "{bad}\n{e}");
    }
    for good in [
        // Waits for the caller each time round.
        "context a { match \"1\" { play \"beep\"; goto a \"1\" } }",
        "context a { match \"1\" { dial \"1002\"; goto a \"1\" } }",
        "block b() { collect x; call b() }\ncontext a { match \"1\" { call b() } }",
        // Built from variables: only run time knows (the step budget is there for it).
        "context a { match \"1\" { goto a \"$caller\" } }",
        // A menu's own `repeat` waits for a key.
        "menu m { on \"1\" { goto a \"1\" } }\ncontext a { match \"1\" { menu m } }",
    ] {
        assert!(parse(good, "g.dp").is_ok(), "{good}");
    }
}

#[test]
fn menus_and_blocks_only_unused_things_lead_to_are_unreachable() {
    let p = parse(
        "menu top { on \"1\" { menu inner } }\nmenu inner { on \"1\" { call b() } }\n\
         block b() { echo }\nblock lone() { menu inner }\n\
         menu live { on \"1\" { echo } }\ncontext c { match \"1\" { menu live } }",
        "u.dp",
    )
    .unwrap();
    assert_eq!(p.unused_menus(), ["top"]);
    assert_eq!(p.unused_blocks(), ["lone"]);
    assert_eq!(p.unreachable(), ["block `b`", "menu `inner`"]);
    // What a used menu leads to is reached.
    let p = parse(
        "menu live { on \"1\" { call used() } }\nblock used() { echo }\n\
         context c { match \"1\" { menu live } }",
        "u.dp",
    )
    .unwrap();
    assert!(p.unreachable().is_empty(), "{:?}", p.unreachable());
    assert!(p.unused_blocks().is_empty());
    let shipped = parse(
        &std::fs::read_to_string("dialplans/default.dp").unwrap(),
        "d.dp",
    )
    .unwrap();
    assert!(shipped.unreachable().is_empty());
}

#[test]
fn a_queue_takes_priority_skills_and_a_timeout() {
    let p = parse(
        "context a { match \"1\" { queue \"support\" priority 5 skills \"billing>=3, spanish\" timeout 90s position-announce on } }",
        "q.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "x").unwrap();
    let need = |s: &str, min| crate::acd::SkillNeed {
        skill: s.into(),
        min,
    };
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Queue {
            name: "support".into(),
            priority: 5,
            timeout: Some(Duration::from_secs(90)),
            skills: vec![need("billing", 3), need("spanish", 1)],
            announce: Some(true),
        }
    );
    assert_eq!(p.queue_refs()[0].0, "support");
    let e = err("context a { match \"1\" { queue \"s\" position-announce maybe } }");
    assert!(
        e.contains("position-announce is on or off, not `maybe`"),
        "{e}"
    );
    let e = err("context a { match \"1\" { queue \"s\" skills \"billing>=11\" } }");
    assert!(
        e.contains("skill level `11` is not 1..10") && e.contains("x.dp:1:42"),
        "{e}"
    );
}

#[test]
fn a_hidden_value_never_shows_in_debug_output() {
    let pin = Hidden("4321".into());
    assert_eq!(format!("{pin:?}"), "(hidden)");
    let text = format!("{:?}", Some(pin));
    assert!(!text.contains("4321"), "{text}");
}

#[test]
fn strings_regexes_variables_and_durations_are_read_as_written() {
    let p = parse(
        r#"context a {
  match /^a\/b$/ { play "say\"it\\${caller}x" }
  match "2" { collect x timeout 2m interdigit 500ms }
}"#,
        "l.dp",
    )
    .unwrap();
    // An escaped slash inside a regex is a slash; a quote and a backslash escaped in a
    // string are themselves; a braced variable ends at its brace.
    let mut c = p.start("a", "a/b", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Play("say\"it\\1001x".into())
    );
    let mut c = p.start("a", "2", "1001").unwrap();
    let Action::Collect(col) = p.step(&mut c, &NO_ENV) else {
        panic!()
    };
    assert_eq!(
        (col.timeout, col.interdigit),
        (Duration::from_secs(120), Duration::from_millis(500))
    );
}

#[test]
fn hangup_causes_by_name_and_repeat_only_inside_a_menu() {
    for (name, code) in [
        ("busy", 486),
        ("noanswer", 480),
        ("unavailable", 404),
        ("rejected", 603),
        ("congestion", 503),
    ] {
        let p = parse(
            &format!("context a {{ match \"1\" {{ hangup {name} }} }}"),
            "h.dp",
        )
        .unwrap();
        let mut c = p.start("a", "1", "1001").unwrap();
        assert_eq!(
            p.step(&mut c, &NO_ENV),
            Action::Hangup(Some(code)),
            "{name}"
        );
    }
    let e = err("context a { match \"1\" { hangup bogus } }");
    assert!(e.contains("unknown statement `bogus`"), "{e}");
    // A menu's `repeat` is not allowed after the menu is over.
    let e = err("menu m { on \"1\" { echo } }\ncontext a { match \"1\" { menu m }\n match \"2\" { repeat } }");
    assert!(e.contains("belongs in a menu"), "{e}");
}

#[test]
fn not_equal_braced_variables_and_a_closing_brace_after_a_variable() {
    let p = parse(
        r#"context a { match any { if ${caller} != "1001" { play "other-${caller}x" } else { play "self-$caller}" } } }
context b { match "1" { echo } }"#,
        "n.dp",
    )
    .unwrap();
    let mut c = p.start("a", "9", "1001").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("self-1001}".into()));
    let mut c = p.start("a", "9", "1002").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Play("other-1002x".into()));
    let mut names: Vec<&str> = p.contexts().collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b"]);
    assert!(p.has_context("b") && !p.has_context("c"));
    let e = err("context a { match any { if ${caller == \"1\" { echo } } }");
    assert!(e.contains("expected `}` after variable name"), "{e}");
    let e = err("context a { match any { @ } }");
    assert!(
        e.contains("unexpected character `@`") && e.contains("x.dp:1:25"),
        "{e}"
    );
}

#[test]
fn menus_know_their_handlers_and_limits_and_where_they_are_defined() {
    let text = "menu m {\n  prompt \"p\"\n  retries 2\n  on \"1\" { echo }\n  on timeout { play \"late\"; repeat }\n  on exhausted { hangup 480 }\n}\ncontext a { match \"0\" { menu m } }";
    let p = parse(text, "m.dp").unwrap();
    let at = p.definition("menu `m`").unwrap();
    assert!(text[at].starts_with("m"), "the menu's name");
    assert_eq!(p.definition("menu `n`"), None);
    let mut c = p.start("a", "0", "1001").unwrap();
    let _ = p.step(&mut c, &NO_ENV);
    p.menu_input(&mut c, None);
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Play("late".into()),
        "on timeout"
    );
    let _ = p.step(&mut c, &NO_ENV);
    p.menu_input(&mut c, None);
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Hangup(Some(480)),
        "then exhausted"
    );
    for (bad, want) in [
        ("menu m { prompt \"p\"", "menu `m` is not closed"),
        (
            "menu m { on \"1\" { echo } retries 21 }",
            "retries needs a count from 1 to 20",
        ),
        (
            "menu m { on \"1\" { echo } retries 0 }",
            "retries needs a count from 1 to 20",
        ),
        ("menu m { on later { echo } }", "on"),
    ] {
        let e = err(bad);
        assert!(e.contains(want), "{bad}: {e}");
    }
    assert!(parse(
        "menu m { on \"1\" { echo } retries 20 }\ncontext a { match \"0\" { menu m } }",
        "m.dp"
    )
    .is_ok());
}

#[test]
fn statement_arguments_are_held_to_their_ranges() {
    let ok = |s: &str| parse(&format!("context a {{ match \"1\" {{ {s} }} }}"), "s.dp");
    assert!(ok("collect k min 64 max 64").is_ok());
    assert!(ok("collect k max 65")
        .unwrap_err()
        .to_string()
        .contains("s.dp"));
    assert!(ok("collect k min 0").is_err());
    assert!(ok("collect k min 3 max 3").is_ok(), "min may equal max");
    assert!(ok("collect k min 4 max 3").is_err());
    let p = ok("collect k terminator \"\"").unwrap();
    let mut c = p.start("a", "1", "x").unwrap();
    let Action::Collect(col) = p.step(&mut c, &NO_ENV) else {
        panic!()
    };
    assert_eq!(col.terminator, None, "\"\" is no terminator");
    assert!(ok("collect k terminator \"12\"").is_err());
    assert!(ok("queue \"q\" priority 1000").is_ok());
    assert!(ok("queue \"q\" priority 1001").is_err());
    let p = ok("queue \"q\" position-announce off").unwrap();
    let mut c = p.start("a", "1", "x").unwrap();
    let Action::Queue { announce, .. } = p.step(&mut c, &NO_ENV) else {
        panic!()
    };
    assert_eq!(announce, Some(false));
    let e = ok("if hourz(\"x\") { echo }").unwrap_err().to_string();
    assert!(!e.contains("panicked"), "{e}");
    assert!(ok("if hours(\"x\") { echo }").is_ok());
    let e = ok("ech").unwrap_err().to_string();
    assert!(e.contains("did you mean `echo`?"), "{e}");
    let e = ok("frobnicate").unwrap_err().to_string();
    assert!(
        e.contains("statements: ") && !e.contains("did you mean"),
        "{e}"
    );
    for bad in ["\"bil ling\"", "\"x!\"", "\">=2\""] {
        assert!(ok(&format!("queue \"q\" skills {bad}")).is_err(), "{bad}");
    }
    assert!(ok("queue \"q\" skills \"a_b, c-d>=2\"").is_ok());
    assert!(ok("match").is_err());
    let e = parse("context a { match nothing { echo } }", "s.dp")
        .unwrap_err()
        .to_string();
    assert!(!e.is_empty());
    let p = parse("context a { match any { echo } }", "s.dp").unwrap();
    assert!(
        p.start("a", "whatever", "x").is_some(),
        "`any` matches anything"
    );
}

#[test]
fn what_the_mutation_run_found_unchecked_in_the_parser() {
    // A lone `!` is no operator.
    let e = err("context a { match \"1\" { if $x ! \"y\" { echo } } }");
    assert!(e.contains("unexpected character `!`"), "{e}");
    assert!(parse(
        "context a { match \"1\" { if $x != \"y\" { echo } } }",
        "x.dp"
    )
    .is_ok());
    // A menu handler must be a key or one of the named cases.
    let e = err("menu m { on bogus { echo } }\ncontext a { match \"1\" { menu m } }");
    assert!(e.contains("x.dp:1:13"), "{e}");
    // `return` belongs in a block, also after one was defined.
    let e = err("block b() { return }\ncontext a { match \"1\" { return } }");
    assert!(e.contains("`return` belongs in a block"), "{e}");
    // Only a pause takes a reason.
    let e = err("context a { match \"1\" { agent logout \"02\" } }");
    assert!(e.contains("x.dp:1:38"), "{e}");
    assert!(parse("context a { match \"1\" { agent pause \"02\" } }", "x.dp").is_ok());
}

#[test]
fn a_queue_announcing_position_needs_its_prompt() {
    let refs = |text: &str| -> Vec<String> {
        let p = parse(text, "x.dp").unwrap();
        p.sound_refs().iter().map(|(n, _)| n.clone()).collect()
    };
    let on = refs("context a { match \"1\" { queue \"q\" position-announce on } }");
    assert!(on.contains(&"you-are-caller-number".to_string()), "{on:?}");
    let off = refs("context a { match \"1\" { queue \"q\" position-announce off } }");
    assert!(
        !off.contains(&"you-are-caller-number".to_string()),
        "{off:?}"
    );
    let unsaid = refs("context a { match \"1\" { queue \"q\" } }");
    assert!(
        !unsaid.contains(&"you-are-caller-number".to_string()),
        "{unsaid:?}"
    );
}

#[test]
fn a_loop_is_named_where_the_search_meets_it_again() {
    // The search starts from the block (blocks come first) and walks into the context,
    // whose call leads back: the loop is the block's, pointed at by that call.
    let e = err("block b() { goto a \"1\" }\ncontext a { match \"1\" { call b() } }");
    assert!(
        e.contains("comes back to block `b`") && e.contains("x.dp:2:25"),
        "{e}"
    );
}

#[test]
fn park_takes_a_range_of_slots_and_unpark_a_slot() {
    let p = parse(
        "context a {\n  match \"70\" { park \"71-79\" timeout 30s; park \"80 - 80\" }\n  match /^(7\\d)$/ { unpark \"$1\" }\n}\n",
        "x.dp",
    )
    .unwrap();
    let mut c = p.start("a", "70", "1001").unwrap();
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Park {
            first: 71,
            last: 79,
            timeout: Duration::from_secs(30)
        }
    );
    // One slot, and the default wait.
    assert_eq!(
        p.step(&mut c, &NO_ENV),
        Action::Park {
            first: 80,
            last: 80,
            timeout: Duration::from_secs(45)
        }
    );
    let mut c = p.start("a", "72", "1001").unwrap();
    assert_eq!(p.step(&mut c, &NO_ENV), Action::Unpark("72".into()));
    for bad in ["79-71", "71", "x-y", "1-200"] {
        let e = err(&format!(
            "context a {{ match \"70\" {{ park \"{bad}\" }} }}"
        ));
        assert!(e.contains("is not a range of slot numbers"), "{bad}: {e}");
    }
    let e = err("context a { match \"70\" { park \"71-79\" timeout 30 } }");
    assert!(e.contains("timeout needs a duration"), "{e}");
    let e = err("context a { match \"70\" { parc \"71-79\" } }");
    assert!(e.contains("did you mean `park`?"), "{e}");
}

#[test]
fn dnd_and_forward_set_the_callers_line() {
    let p = parse(
        "context a {\n  match \"1\" { dnd on; dnd off; forward all \"$caller\"; forward busy off; forward noanswer \"9$caller\" }\n}\n",
        "x.dp",
    )
    .unwrap();
    let mut c = p.start("a", "1", "1002").unwrap();
    let steps: Vec<Action> = (0..5).map(|_| p.step(&mut c, &NO_ENV)).collect();
    assert_eq!(
        steps,
        [
            Action::Line(LineOp::DndOn, None),
            Action::Line(LineOp::DndOff, None),
            Action::Line(LineOp::ForwardAll, Some("1002".into())),
            Action::Line(LineOp::ForwardBusy, None),
            Action::Line(LineOp::ForwardNoAnswer, Some("91002".into())),
        ]
    );
    let e = err("context a { match \"1\" { dnd maybe } }");
    assert!(e.contains("dnd is `on` or `off`"), "{e}");
    let e = err("context a { match \"1\" { forward sometimes \"2\" } }");
    assert!(e.contains("unknown forward `sometimes`"), "{e}");
}
