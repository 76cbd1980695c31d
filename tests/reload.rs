//! Reloading the configuration and dialplan while calls are up: new calls get the new
//! dialplan, live calls go on untouched, an invalid edit is refused with `check`'s message
//! and changes nothing, and settings that need a restart are reported.

mod common;

use common::{
    copy_setup, expecting, free_ports, register_callee, scenario, spawn_sipp, wait_until, Pbx,
};
use std::path::Path;

const PW1: &str = "demo-1001-change-me";
const PW2: &str = "demo-1002-change-me";

fn call_777(pbx: &Pbx, dir: &Path) -> bool {
    spawn_sipp(
        &expecting(486, dir),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "777", "-au", "1001", "-ap", PW1],
    )
    .wait(20)
}

/// Each live call's relay counters, by call id: (packets A to B, packets B to A).
fn counters(pbx: &Pbx) -> std::collections::HashMap<u64, (u64, u64)> {
    pbx.ctl("calls")["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "bridged")
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                (Pbx::leg(c, "caller").1, Pbx::leg(c, "callee").1),
            )
        })
        .collect()
}

#[test]
fn reload_under_fifty_live_calls_with_audio_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = copy_setup(dir.path());
    // Two relay port pairs per call.
    let pbx = Pbx::start_full(&cfg, &["udp:127.0.0.1:0"], &common::rtp_range_of(4));
    let port = register_callee(&pbx, "1002", PW2);
    // The callee echoes every packet it gets; the callers stream a tone, looped.
    let callee = spawn_sipp(
        &scenario("uas_answer.xml"),
        None,
        port,
        &["-m", "50", "-rtp_echo", "-mp", &free_ports(4).to_string()],
    );
    let tone: Vec<u8> = (0..8000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            switchboard::media::g711::ulaw(
                (6000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16,
            )
        })
        .collect();
    let wav = dir.path().join("tone.wav");
    common::write_ulaw_wav(&tone, &wav);
    let sc = std::fs::read_to_string(scenario("uac_call.xml")).unwrap().replacen(
        "  <pause/>",
        &format!(
            "  <nop>\n    <action>\n      <exec rtp_stream=\"{},-1,0\"/>\n    </action>\n  </nop>\n  <pause/>",
            wav.display()
        ),
        1,
    );
    let sc_path = dir.path().join("uac_stream.xml");
    std::fs::write(&sc_path, sc).unwrap();
    // SIPp's streams take ports from its media port up.
    let caller_rtp = common::rtp_range_of(4);
    let (low, _) = caller_rtp.split_once('-').unwrap();
    let calls = spawn_sipp(
        &sc_path,
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s", "1002", "-au", "1001", "-ap", PW1, "-m", "50", "-r", "25", "-l", "50", "-d",
            "10000", "-mp", low,
        ],
    );
    let all_up = wait_until(15, || counters(&pbx).len() == 50);
    assert!(all_up, "50 calls bridged: {}", pbx.ctl("status"));
    // Audio is flowing both ways on every call before the reload.
    assert!(
        wait_until(5, || counters(&pbx).values().all(|&(a, b)| a > 0 && b > 0)),
        "{:?}",
        counters(&pbx)
    );
    let before = counters(&pbx);

    // A new route, a new extension, a changed queue and a changed trunk, all reloaded
    // while the 50 talk.
    let plan = std::fs::read_to_string(&dp).unwrap();
    std::fs::write(
        &dp,
        plan.replace(
            "context internal {",
            "context internal {\n  match \"777\" { hangup busy }",
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited = text
        .replacen(
            "[[users]]",
            "[[users]]\nextension = \"1009\"\nname = \"New Hire\"\npassword = \"new-1009-password\"\n\n[[users]]",
            1,
        )
        .replace("strategy = \"longest-idle\"", "strategy = \"round-robin\"")
        .replace("caller_id = \"+15550100\"", "caller_id = \"+15550199\"");
    assert_ne!(edited, text);
    std::fs::write(&cfg, edited).unwrap();
    let (ok, out, err) = pbx.ctl_raw("reload");
    assert!(ok && out.contains("reloaded"), "{out}{err}");
    assert!(
        !out.contains("restart"),
        "users, queues and trunks apply at once: {out}"
    );
    assert!(
        call_777(&pbx, dir.path()),
        "a new call gets the new dialplan"
    );
    assert!(
        spawn_sipp(
            &scenario("register_auth.xml"),
            Some(pbx.udp),
            free_ports(1),
            &["-s", "1009", "-au", "1009", "-ap", "new-1009-password"],
        )
        .wait(20),
        "the new extension registers"
    );
    let q = pbx.ctl("queues");
    assert_eq!(q["queues"][0]["strategy"], "round-robin", "{q}");

    // Every call's audio kept flowing through the reload, both ways.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = counters(&pbx);
    for (id, (a0, b0)) in &before {
        let (a1, b1) = after.get(id).copied().unwrap_or_default();
        assert!(
            a1 > *a0 && b1 > *b0,
            "call {id}: {a0}/{b0} before the reload, {a1}/{b1} after"
        );
    }

    // A broken edit is refused with the located message; the dialplan in force stays.
    std::fs::write(&dp, "context internal {\n  match \"777\" { hangup busy\n").unwrap();
    let (ok, _, err) = pbx.ctl_raw("reload");
    assert!(!ok, "an invalid dialplan is refused");
    assert!(
        err.contains("plan.dp:") && err.contains("not closed"),
        "{err}"
    );
    assert!(
        call_777(&pbx, dir.path()),
        "the previous dialplan is still in force"
    );

    // Every one of the 50 calls went on to its normal end.
    assert!(
        calls.wait(30),
        "the 50 callers hung up normally, none dropped"
    );
    assert!(callee.wait(10), "the callee saw 50 normal calls");
    let db = rusqlite::Connection::open(pbx.state.path().join("cdr.sqlite")).unwrap();
    let answered: i64 = db
        .query_row(
            "SELECT count(*) FROM cdr WHERE disposition = 'answered' AND hangup_by = 'caller'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(answered, 50);
}

/// A caller in a menu when the menu is changed and reloaded finishes on the menu it
/// started with; the next caller meets the new one.
#[test]
fn a_caller_in_a_menu_during_a_reload_keeps_the_menu_it_entered() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = copy_setup(dir.path());
    let pbx = Pbx::start_with(&cfg);
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_bye.xml"), None, port, &["-d", "500"]);
    let text = std::fs::read_to_string(scenario("uac_call.xml")).unwrap();
    let head = &text[..text.find("  <pause/>").unwrap()];
    let menu_caller = |name: &str| {
        let sc = common::keys_after(dir.path(), name, head, &[(3000, '2')], 20000);
        spawn_sipp(
            &sc,
            Some(pbx.udp),
            free_ports(1),
            &["-s", "603", "-au", "1001", "-ap", PW1],
        )
    };
    let first = menu_caller("menu_first");
    assert!(
        wait_until(10, || pbx.log_text().contains("call started call=1")),
        "{}",
        pbx.log_text()
    );
    let plan = std::fs::read_to_string(&dp).unwrap();
    let changed = plan.replace(
        "on \"2\" { dial \"1002\" timeout 30s; hangup }",
        "on \"2\" { dial \"1003\" timeout 30s; hangup }",
    );
    assert_ne!(changed, plan);
    std::fs::write(&dp, changed).unwrap();
    let (ok, out, err) = pbx.ctl_raw("reload");
    assert!(ok && out.contains("reloaded"), "{out}{err}");
    assert!(
        first.wait(30),
        "the first caller was put through\n{}",
        pbx.log_text()
    );
    assert!(callee.wait(10), "1002 rang for it\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(log.contains("ringing call=1 target=1002"), "{log}");
    // The next caller keys the same 2 into the new menu, whose 1003 has no phone.
    let second = menu_caller("menu_second");
    assert!(second.wait(30), "{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(
        log.contains("dialplan call=2 action=Dial { target: \"1003\""),
        "{log}"
    );
}

#[test]
fn settings_that_need_a_restart_are_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = copy_setup(dir.path());
    let pbx = Pbx::start_with(&cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("domain = \"switchboard.local\"", "domain = \"pbx.example\""),
    )
    .unwrap();
    let (ok, out, _) = pbx.ctl_raw("reload");
    assert!(
        ok && out.contains("only after a restart: server.domain"),
        "{out}"
    );
}

#[test]
fn sighup_reloads_as_systemd_would() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = copy_setup(dir.path());
    let pbx = Pbx::start_with(&cfg);
    let plan = std::fs::read_to_string(&dp).unwrap();
    std::fs::write(
        &dp,
        plan.replace(
            "context internal {",
            "context internal {\n  match \"777\" { hangup busy }",
        ),
    )
    .unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pbx.pid().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_until(5, || pbx.log_text().contains("configuration reloaded")),
        "{}",
        pbx.log_text()
    );
    assert!(call_777(&pbx, dir.path()));
}
