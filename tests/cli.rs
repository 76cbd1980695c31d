//! The command line as an admin meets it: `check` golden messages, `run` refusing what it
//! must refuse, `ctl` without a running instance.

mod common;

use common::{bin, root};
use std::process::Command;

fn check(config: &str) -> (bool, String, String) {
    let out = Command::new(bin())
        .current_dir(root())
        .args(["check", "--config", config])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_checks_clean_with_a_demo_warning() {
    let (ok, out, err) = check("config/switchboard.toml");
    assert!(ok, "{err}");
    assert!(out.contains("config OK"), "{out}");
    assert!(
        out.contains("1001, 1002, 1003") && out.contains("loopback only"),
        "{out}"
    );
}

/// Each broken config in tests/fixtures/config gives exactly the message in its `.err`.
/// To update after an intended change: run `switchboard check --config F 2> F.err`.
#[test]
fn check_errors_match_golden_messages() {
    let dir = root().join("tests/fixtures/config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let rel = format!(
            "tests/fixtures/config/{}",
            p.file_name().unwrap().to_string_lossy()
        );
        let want = std::fs::read_to_string(p.with_extension("err")).unwrap();
        let (ok, _, err) = check(&rel);
        assert!(!ok, "{rel} must fail");
        assert_eq!(err, want, "{rel}");
        // Every message locates the problem (in the config or the dialplan it names) and
        // shows it.
        assert!(
            err.contains("--> tests/fixtures/config/") && err.contains('^'),
            "{rel}: {err}"
        );
        n += 1;
    }
    assert!(n >= 10, "golden cases found: {n}");
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_message() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .current_dir(root())
        .args([
            "run",
            "--config",
            "tests/fixtures/config/unknown_key.toml",
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let want =
        std::fs::read_to_string(root().join("tests/fixtures/config/unknown_key.err")).unwrap();
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("did not start"));
}

#[test]
fn run_refuses_a_public_address_while_demo_passwords_remain() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .current_dir(root())
        .args(["run", "--sip-listen", "udp:0.0.0.0:0", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on udp:0.0.0.0:0") && err.contains("demo passwords"),
        "{err}"
    );
}

#[test]
fn run_without_a_config_file_uses_the_built_in_one() {
    // From a directory without config/, `run` starts on the embedded defaults.
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .current_dir(cwd.path())
        .args([
            "run",
            "--sip-listen",
            "udp:127.0.0.1:0",
            "--state-dir",
            "st",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.starts_with("switchboard ready: udp:127.0.0.1:"),
        "{line}"
    );
    common::terminate(&mut child);
    let err = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        err.contains("using the built-in default configuration"),
        "{err}"
    );
    assert!(
        !cwd.path().join("st/switchboard.ctl").exists(),
        "control socket removed on SIGTERM"
    );
}

#[test]
fn ctl_without_a_running_instance_says_so() {
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["ctl", "--state-dir"])
        .arg(state.path())
        .arg("status")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach switchboard") && err.contains("is it running"),
        "{err}"
    );
}

#[test]
fn dead_dialplan_is_warned_about_where_it_is_defined() {
    let (ok, out, err) = check("tests/fixtures/warn/dead.toml");
    assert!(ok, "warnings do not fail the check\n{out}{err}");
    assert!(
        out.contains("warning: menu `orphan` is never used\n  --> tests/fixtures/warn/dead.dp:9:6"),
        "{out}"
    );
    assert!(
        out.contains("block `helper` is never reached")
            && out.contains("--> tests/fixtures/warn/dead.dp:13:7")
            && out.contains("^^^^^^"),
        "{out}"
    );
}

#[test]
fn the_control_socket_is_for_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let pbx = common::Pbx::start();
    let mode = std::fs::metadata(pbx.state.path().join("switchboard.ctl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// As systemd runs it (Type=notify, WatchdogSec): READY=1 once listening, then WATCHDOG=1
/// at half the period for as long as the SIP task answers.
#[test]
fn systemd_hears_ready_and_the_watchdog_keeps_being_petted() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let pbx = common::Pbx::start_env(&[
        ("NOTIFY_SOCKET", path.display().to_string()),
        ("WATCHDOG_USEC", "400000".into()),
    ]);
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let t = std::time::Instant::now();
    while got
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("systemd was told");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got[0].contains("READY=1"), "{got:?}");
    // Three pets at 200 ms take at least 400 ms after the first.
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(400),
        "{got:?}"
    );
    drop(pbx);
}
