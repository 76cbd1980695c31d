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

#[test]
fn reload_under_fifty_live_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = copy_setup(dir.path());
    let pbx = Pbx::start_full(&cfg, &["udp:127.0.0.1:0"], "35000-35499");
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &["-m", "50"]);
    let calls = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s", "1002", "-au", "1001", "-ap", PW1, "-m", "50", "-r", "25", "-l", "50", "-d",
            "8000",
        ],
    );
    let all_up = wait_until(15, || {
        pbx.ctl("calls")["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "bridged")
            .count()
            == 50
    });
    assert!(all_up, "50 calls bridged: {}", pbx.ctl("status"));

    // A new route, reloaded while the 50 talk.
    let plan = std::fs::read_to_string(&dp).unwrap();
    std::fs::write(
        &dp,
        plan.replace(
            "context internal {",
            "context internal {\n  match \"777\" { hangup busy }",
        ),
    )
    .unwrap();
    let (ok, out, err) = pbx.ctl_raw("reload");
    assert!(ok && out.contains("reloaded"), "{out}{err}");
    assert!(
        call_777(&pbx, dir.path()),
        "a new call gets the new dialplan"
    );

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
