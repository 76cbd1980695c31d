//! ACD queues with real SIP peers: SIPp callers into a queue, SIPp agents answering.

mod common;

use common::{free_ports, register_callee, scenario, spawn_sipp, Baresip, Pbx};

const PW1: &str = "demo-1001-change-me";
const PW2: &str = "demo-1002-change-me";

/// The shipped queue's members line, for configs that change it.
const MEMBERS: &str = "members = [\"1002\", \"1003\"]";

/// A PBX on the shipped setup with `edits` (text replacements) made to its config.
fn pbx_with(dir: &std::path::Path, edits: &[(&str, &str)]) -> Pbx {
    Pbx::start_with(&config_with(dir, edits))
}

/// The shipped setup copied into `dir`, with `edits` made to its config; the config.
fn config_with(dir: &std::path::Path, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let (cfg, _) = common::copy_setup(dir);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// 1001 calls the support queue (700) and hangs up `hold_ms` after it is answered.
fn queue_caller(pbx: &Pbx, hold_ms: u32) -> common::SippProc {
    let hold = hold_ms.to_string();
    spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "700", "-au", "1001", "-ap", PW1, "-d", &hold],
    )
}

/// `switchboard ctl agent ARGS...` against `pbx`.
fn ctl_agent(pbx: &Pbx, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin())
        .args(["ctl", "--state-dir"])
        .arg(pbx.state.path())
        .arg("agent")
        .args(args)
        .output()
        .unwrap()
}

fn log_has(pbx: &Pbx, what: &str) -> bool {
    common::wait_until(20, || pbx.log_text().contains(what))
}

#[test]
fn a_queued_caller_is_bridged_to_the_agent_who_answers_and_the_queue_log_tells_the_story() {
    // What the caller hears while it waits is measured in the next test, with baresip.
    let pbx = Pbx::start();
    // 1002 is a member of `support`; 1003, the other member, is not registered, so its
    // offers fail at once and the queue moves on.
    let port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let caller = queue_caller(&pbx, 2000);
    assert!(
        caller.wait(40),
        "the caller talked and hung up\n{}",
        pbx.log_text()
    );
    assert!(
        agent.wait(10),
        "the agent answered and got the BYE\n{}",
        pbx.log_text()
    );
    assert!(log_has(&pbx, "queued"), "{}", pbx.log_text());
    assert!(
        log_has(&pbx, "queue call answered call=1 agent=1002"),
        "{}",
        pbx.log_text()
    );
    // The queue log tells the call's story, one JSON line per event.
    assert_eq!(
        completed_story(&pbx),
        ["join -", "offer 1002", "answer 1002", "complete 1002"],
        "{:?}",
        queue_log(&pbx)
    );
}

#[test]
fn a_queued_caller_hears_music_all_through_an_agents_ring() {
    let pbx = Pbx::start();
    // 1002 rings and rings (the queue's ring timeout is 15 s); 1003 is not registered.
    let port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_ring.xml"), None, port, &[]);
    let caller = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    assert!(
        common::wait_until(20, || pbx.registrations().len() == 2),
        "{}",
        caller.log()
    );
    caller.cmd("/dial 700");
    assert!(
        log_has(&pbx, "offered to agent call=1 agent=1002"),
        "{}",
        pbx.log_text()
    );
    std::thread::sleep(std::time::Duration::from_secs(7));
    caller.cmd("/hangup");
    assert!(agent.wait(10), "the ring was cancelled\n{}", pbx.log_text());
    assert!(log_has(&pbx, "call ended"), "{}", pbx.log_text());
    // The music (85% of it above the threshold) went on while the agent's phone rang; a
    // ring that silenced it would leave well under a second.
    let heard: f64 = caller.heard().iter().map(|p| common::loud_seconds(p)).sum();
    assert!(
        heard >= 5.0,
        "the caller heard {heard:.1} s of music in a 7 s ring\n{}",
        caller.log()
    );
}

#[test]
fn an_agent_who_misses_three_offers_is_paused_and_the_next_one_gets_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            ("strategy = \"longest-idle\"", "strategy = \"linear\""),
            (MEMBERS, "members = [\"1003\", \"1002\"]"),
            ("retry_s = 5", "retry_s = 1"),
        ],
    );
    // 1003 comes first in the linear queue but is busy every time.
    let busy_port = register_callee(&pbx, "1003", "demo-1003-change-me");
    let busy = spawn_sipp(&scenario("uas_busy.xml"), None, busy_port, &["-m", "3"]);
    let port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let caller = queue_caller(&pbx, 8000);
    assert!(
        caller.wait(40),
        "the caller got through\n{}",
        pbx.log_text()
    );
    assert!(
        busy.wait(10),
        "1003 was offered three calls\n{}",
        pbx.log_text()
    );
    assert!(agent.wait(10), "1002 took it\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert_eq!(
        log.matches("agent did not take the call call=1 agent=1003")
            .count(),
        3,
        "{log}"
    );
    assert!(
        log.contains("queue call answered call=1 agent=1002"),
        "{log}"
    );
    // Paused by the queue itself, not merely skipped.
    assert_eq!(agent_state(&pbx, "1003"), "paused(auto)");
}

#[test]
fn an_agent_with_no_phone_registered_is_passed_over_until_it_registers() {
    let pbx = Pbx::start();
    let reachable = |agent: &str| agent_view(&pbx, agent)["reachable"] == true;
    assert!(
        !reachable("1002") && !reachable("1003"),
        "nobody registered yet"
    );
    // It hangs up 12 s after the queue answers it: long enough to get through below.
    let caller = queue_caller(&pbx, 12_000);
    assert!(log_has(&pbx, "queued"), "{}", pbx.log_text());
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !pbx.log_text().contains("offered to agent"),
        "offered to an agent with no phone\n{}",
        pbx.log_text()
    );
    // 1002 registers, goes away (un-REGISTER), and comes back: each change reaches the
    // ACD at once.
    let port = register_callee(&pbx, "1002", PW2);
    assert!(
        spawn_sipp(
            &scenario("unregister_auth.xml"),
            Some(pbx.udp),
            port,
            &["-s", "1002", "-au", "1002", "-ap", PW2],
        )
        .wait(20),
        "un-REGISTER"
    );
    assert!(
        common::wait_until(5, || !reachable("1002")),
        "{}",
        pbx.ctl("agents")
    );
    let port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    assert!(
        caller.wait(30),
        "the caller got through\n{}",
        pbx.log_text()
    );
    assert!(agent.wait(10), "1002 took it\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(!log.contains("agent did not take the call"), "{log}");
    assert!(
        log.contains("queue call answered call=1 agent=1002"),
        "{log}"
    );
    let log = queue_log(&pbx);
    let first = log.iter().find(|e| e["agent"] == "1002").unwrap();
    assert_eq!(
        (&first["event"], &first["phone"]),
        (&"login".into(), &"none".into())
    );
    let events: Vec<String> = log
        .iter()
        .filter(|e| e["agent"] == "1002")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            // Logged in from the start, with no phone yet.
            "login",
            "reachable",
            // Nothing answers on the first registration's port; the un-REGISTER ends
            // that offer, and it is no miss.
            "offer",
            "unreachable",
            "reachable",
            "offer",
            "answer",
            "complete"
        ],
        "{events:?}"
    );
}

fn agent_state(pbx: &Pbx, agent: &str) -> String {
    agent_view(pbx, agent)["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `ctl agents`' entry for `agent`.
fn agent_view(pbx: &Pbx, agent: &str) -> serde_json::Value {
    let v = pbx.ctl("agents");
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == agent)
        .cloned()
        .unwrap_or_else(|| panic!("{agent} not in {v}"))
}

/// 1002 dials a feature code; the PBX answers, says so and hangs up.
fn feature_code(pbx: &Pbx, code: &str) {
    let call = spawn_sipp(
        &scenario("uac_wait_bye.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", code, "-au", "1002", "-ap", PW2],
    );
    assert!(
        call.wait(20),
        "{code} answered and ended\n{}",
        pbx.log_text()
    );
}

#[test]
fn feature_codes_and_ctl_change_an_agents_state() {
    let pbx = Pbx::start();
    assert_eq!(
        agent_state(&pbx, "1002"),
        "available",
        "static members start logged in"
    );
    feature_code(&pbx, "*4702");
    assert_eq!(agent_state(&pbx, "1002"), "paused(02)");
    feature_code(&pbx, "*48");
    assert_eq!(agent_state(&pbx, "1002"), "available");
    feature_code(&pbx, "*46");
    assert_eq!(agent_state(&pbx, "1002"), "logged-out");
    let out = ctl_agent(&pbx, &["1002", "login"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(agent_state(&pbx, "1002"), "available");
    // Not a queue member: refused, and said so.
    let out = ctl_agent(&pbx, &["1001", "pause", "lunch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a member"));
    let q = pbx.ctl("queues");
    assert_eq!(q["queues"][0]["name"], "support", "{q}");
    assert_eq!(
        q["queues"][0]["agents"]["available"], 2,
        "1002 and 1003\n{q}"
    );
}

#[test]
fn an_agent_on_a_direct_call_is_not_offered_queue_calls() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(dir.path(), &[(MEMBERS, "members = [\"1002\"]")]);
    // 1002 is on a call of its own (the echo test) when a caller joins the queue.
    let own = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "600", "-au", "1002", "-ap", PW2, "-d", "4000"],
    );
    assert!(
        common::wait_until(10, || pbx.log_text().contains("call started call=1")),
        "{}",
        pbx.log_text()
    );
    let port = free_ports(1);
    let reg = spawn_sipp(
        &scenario("register_auth.xml"),
        Some(pbx.udp),
        port,
        &["-s", "1002", "-au", "1002", "-ap", PW2],
    );
    assert!(reg.wait(20));
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let caller = queue_caller(&pbx, 9000);
    assert!(own.wait(20), "{}", pbx.log_text());
    assert!(caller.wait(30), "{}", pbx.log_text());
    assert!(agent.wait(10), "{}", pbx.log_text());
    let log = pbx.log_text();
    let own_end = log
        .find("call ended call=1")
        .expect("1002's own call ended");
    // The test means something only if the caller waited while 1002 was on its call.
    let joined = log.find("queued call=2").expect("the caller was queued");
    assert!(
        joined < own_end,
        "the caller joined before 1002's own call ended\n{log}"
    );
    let offered = log
        .find("offered to agent call=2 agent=1002")
        .expect("1002 offered the queue call");
    assert!(
        offered > own_end,
        "offered only once its own call was over\n{log}"
    );
}

#[test]
fn a_waiting_caller_hears_its_position_again_and_again() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            ("announce_position_s = 30", "announce_position_s = 2"),
            // The position alone, short enough to be said again within the call.
            ("callback_key = \"1\"", "# callback_key = \"1\""),
        ],
    );
    for agent in ["1002", "1003"] {
        assert!(ctl_agent(&pbx, &[agent, "pause", "lunch"]).status.success());
    }
    let caller = queue_caller(&pbx, 9000);
    assert!(caller.wait(20), "{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(
        log.matches("position announced call=1 position=1").count() >= 2,
        "{log}"
    );
    assert!(!log.contains("prompt missing"), "{log}");
    // Nothing handled yet and nobody staffing: no wait is made up.
    assert!(!log.contains("estimated wait announced"), "{log}");
    assert!(
        common::wait_until(10, || std::fs::read_to_string(
            pbx.state.path().join("queue_log.jsonl")
        )
        .unwrap_or_default()
        .contains("\"event\":\"abandon\"")),
        "the caller who hung up waiting is an abandon in the queue log"
    );
}

#[test]
fn once_the_queue_has_handled_a_call_waiting_callers_hear_their_estimated_wait() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[("announce_position_s = 30", "announce_position_s = 2")],
    );
    // 1002 takes one call and then stops answering (its SIPp ends); 1003 has no phone.
    let port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, port, &["-m", "1"]);
    assert!(queue_caller(&pbx, 1000).wait(20), "{}", pbx.log_text());
    assert!(agent.wait(10), "{}", pbx.log_text());
    // The second caller waits while 1002 (still staffing the queue) rings unanswered.
    let caller = queue_caller(&pbx, 7000);
    assert!(caller.wait(20), "{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(
        log.contains("estimated wait announced call=2 minutes=1"),
        "{log}"
    );
    assert!(!log.contains("prompt missing"), "{log}");
}

/// 1002 and 1003 register, and each answers up to `calls` calls (SIPp).
fn both_agents_answer(pbx: &Pbx, calls: u32) -> Vec<common::SippProc> {
    let m = calls.to_string();
    [("1002", PW2), ("1003", "demo-1003-change-me")]
        .into_iter()
        .map(|(ext, pw)| {
            let port = register_callee(pbx, ext, pw);
            spawn_sipp(&scenario("uas_answer.xml"), None, port, &["-m", &m])
        })
        .collect()
}

/// Each of `n` calls to the queue (700) left its CDR.
fn assert_queue_cdrs(pbx: &Pbx, n: i64) {
    let db = pbx.state.path().join("cdr.sqlite");
    assert!(
        common::wait_until(10, || {
            rusqlite::Connection::open(&db)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM cdr WHERE callee = '700'", [], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .is_ok_and(|c| c == n)
        }),
        "{n} CDRs"
    );
}

/// Queue log lines, parsed.
/// Once a queue call has completed: the support queue's log as "EVENT AGENT" lines.
fn completed_story(pbx: &Pbx) -> Vec<String> {
    let done = || queue_log(pbx).iter().any(|e| e["event"] == "complete");
    assert!(common::wait_until(10, done), "{:?}", queue_log(pbx));
    queue_log(pbx)
        .iter()
        .filter(|e| e["queue"] == "support")
        .map(|e| {
            let agent = e["agent"].as_str().unwrap_or("-");
            format!("{} {agent}", e["event"].as_str().unwrap())
        })
        .collect()
}

fn queue_log(pbx: &Pbx) -> Vec<serde_json::Value> {
    std::fs::read_to_string(pbx.state.path().join("queue_log.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn many_callers_two_agents_nobody_lost_nobody_double_offered_wrap_up_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            ("wrap_up_s = 5", "wrap_up_s = 1"),
            ("retry_s = 5", "retry_s = 1"),
        ],
    );
    let agents = both_agents_answer(&pbx, 8);
    // Eight callers, two a second, each hanging up 4 s after the queue answers: some
    // reach an agent, the others give up waiting.
    let callers = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s", "700", "-au", "1001", "-ap", PW1, "-d", "4000", "-m", "8", "-r", "2", "-l", "8",
        ],
    );
    assert!(callers.wait(60), "{}", pbx.log_text());
    let log = || queue_log(&pbx);
    assert!(
        common::wait_until(10, || {
            let l = log();
            let joins = l.iter().filter(|e| e["event"] == "join").count();
            let ended = l
                .iter()
                .filter(|e| {
                    ["answer", "abandon", "give-up"].contains(&e["event"].as_str().unwrap())
                })
                .count();
            joins == 8 && ended == 8
        }),
        "{:#?}",
        log()
    );
    let log = log();
    // Every caller ends exactly once: answered, abandoned or given up.
    for call in log
        .iter()
        .filter(|e| e["event"] == "join")
        .map(|e| e["call"].as_u64().unwrap())
    {
        let ends: Vec<&str> = log
            .iter()
            .filter(|e| e["call"].as_u64() == Some(call))
            .map(|e| e["event"].as_str().unwrap())
            .filter(|e| ["answer", "abandon", "give-up"].contains(e))
            .collect();
        assert_eq!(ends.len(), 1, "call {call}: {ends:?}");
    }
    let count = |ev: &str| log.iter().filter(|e| e["event"] == ev).count();
    eprintln!(
        "answered {}, abandoned {}, completed {}, offers {}",
        count("answer"),
        count("abandon"),
        count("complete"),
        count("offer")
    );
    assert!(count("answer") >= 2, "both agents took calls: {log:#?}");
    // Per agent: one offer at a time (an offer ends with its answer or miss, or when the
    // caller leaves), and no offer within the wrap-up after a call.
    let mut ringing: std::collections::HashMap<String, u64> = Default::default();
    let mut free_at: std::collections::HashMap<String, u64> = Default::default();
    for e in &log {
        let at = e["at_ms"].as_u64().unwrap();
        let agent = e["agent"].as_str().map(str::to_string);
        let call = e["call"].as_u64();
        match (e["event"].as_str().unwrap(), agent) {
            ("offer", Some(a)) => {
                assert!(!ringing.contains_key(&a), "{a} offered twice at once: {e}");
                assert!(
                    at + 50 >= free_at.get(&a).copied().unwrap_or(0),
                    "{a} offered in wrap-up: {e}"
                );
                ringing.insert(a, call.unwrap());
            }
            ("answer" | "miss", Some(a)) => {
                ringing.remove(&a);
            }
            ("complete", Some(a)) => {
                free_at.insert(a, at + 1000);
            }
            ("abandon" | "give-up", None) => ringing.retain(|_, c| Some(*c) != call),
            _ => {}
        }
    }
    // And each caller left its CDR.
    assert_queue_cdrs(&pbx, 8);
    // The agents' SIPp processes end with the test (dropped).
    drop(agents);
}

#[test]
fn under_load_a_full_queue_overflows_to_the_next_and_nobody_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            (MEMBERS, "members = [\"1002\"]"),
            ("# max_len = 20", "max_len = 1"),
            ("# overflow = \"sales\"", "overflow = \"sales\""),
            ("wrap_up_s = 5", "wrap_up_s = 1"),
            (
                "[[trunks]]",
                "[queues.sales]\nstrategy = \"longest-idle\"\nmembers = [\"1003\"]\nmoh = \"ringback\"\n\n[[trunks]]",
            ),
        ],
    );
    let agents = both_agents_answer(&pbx, 8);
    // Eight callers, four a second, each hanging up 3 s after the queue answers it.
    let callers = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s", "700", "-au", "1001", "-ap", PW1, "-d", "3000", "-m", "8", "-r", "4", "-l", "8",
        ],
    );
    assert!(callers.wait(60), "{}", pbx.log_text());
    let is_end = |e: &serde_json::Value| match e["event"].as_str().unwrap() {
        "answer" | "abandon" => true,
        // A give-up that moved the caller on is not its end.
        "give-up" => e.get("to").is_none(),
        _ => false,
    };
    assert!(
        common::wait_until(10, || queue_log(&pbx).iter().filter(|e| is_end(e)).count()
            == 8),
        "{:#?}",
        queue_log(&pbx)
    );
    let log = queue_log(&pbx);
    let calls: std::collections::BTreeSet<u64> =
        log.iter().filter_map(|e| e["call"].as_u64()).collect();
    assert_eq!(calls.len(), 8, "{log:#?}");
    let mut overflowed = 0;
    for call in calls {
        let story: Vec<&serde_json::Value> = log
            .iter()
            .filter(|e| e["call"].as_u64() == Some(call))
            .collect();
        assert_eq!(
            story.iter().filter(|e| is_end(e)).count(),
            1,
            "call {call} ends once: {story:#?}"
        );
        // Each overflow is followed by the caller joining the queue named.
        for (i, e) in story.iter().enumerate() {
            if let Some(to) = e.get("to") {
                overflowed += 1;
                assert_eq!(e["queue"], "support");
                let next = story.get(i + 1).expect("a join after the overflow");
                assert_eq!((&next["event"], &next["queue"]), (&"join".into(), to));
            }
        }
    }
    assert!(overflowed >= 1, "the full queue overflowed: {log:#?}");
    // An overflowed caller hears the new queue's music (here its own class).
    let text = pbx.log_text();
    let moved: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("caller moved to the overflow queue"))
        .collect();
    assert_eq!(moved.len(), overflowed, "{text}");
    assert!(
        moved.iter().all(|l| l.contains("ringback.wav")),
        "{moved:#?}"
    );
    assert!(
        log.iter()
            .any(|e| e["event"] == "answer" && e["queue"] == "sales"),
        "the overflow queue's agent took calls: {log:#?}"
    );
    assert_queue_cdrs(&pbx, 8);
    drop(agents);
}

/// From 1001, the agent login code `*44` with `keys` (ID, #, PIN, #) as SIP INFO; the
/// PBX says how it went and hangs up.
fn id_login(pbx: &Pbx, dir: &std::path::Path, name: &str, keys: &str) {
    let keys: Vec<(u32, char)> = keys.chars().map(|k| (300, k)).collect();
    let sc = common::keys_scenario(dir, name, &keys, 20000);
    let call = spawn_sipp(
        &sc,
        Some(pbx.udp),
        free_ports(1),
        &["-s", "*44", "-au", "1001", "-ap", PW1],
    );
    assert!(
        call.wait(30),
        "{name}: login call ended\n{}",
        pbx.log_text()
    );
}

#[test]
fn an_agent_logs_in_by_id_and_pin_at_any_phone_and_takes_queue_calls_there() {
    let dir = tempfile::tempdir().unwrap();
    // Only agent 5001 (config [[agents]]) staffs the queue, once logged in.
    let pbx = pbx_with(dir.path(), &[(MEMBERS, "members = []")]);
    id_login(&pbx, dir.path(), "wrong", "5001#1234#");
    assert!(
        log_has(&pbx, "agent login: wrong PIN"),
        "{}",
        pbx.log_text()
    );
    let log = pbx.log_text();
    // Not whole, and not key by key (2, 3 and 4 are keyed only in the PIN).
    let leak: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["1234", "digit=2", "digit=3", "digit=4"]
                .iter()
                .any(|p| l.contains(p))
        })
        .collect();
    assert!(leak.is_empty(), "a PIN is never logged: {leak:?}");
    assert_eq!(agent_state(&pbx, "5001"), "logged-out");
    id_login(&pbx, dir.path(), "right", "5001#45001#");
    assert!(
        log_has(&pbx, "agent logged in at a phone"),
        "{}",
        pbx.log_text()
    );
    assert_eq!(agent_state(&pbx, "5001"), "available");
    let a = agent_view(&pbx, "5001");
    assert_eq!(a["phone"], "1001", "{a}");
    assert_eq!(a["reachable"], false, "1001 has no phone registered yet");
    // 1001's phone registers and takes the agent's queue call.
    let port = register_callee(&pbx, "1001", PW1);
    let phone = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let caller = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "700", "-au", "1002", "-ap", PW2, "-d", "2000"],
    );
    assert!(caller.wait(40), "the caller talked\n{}", pbx.log_text());
    assert!(phone.wait(10), "1001's phone answered\n{}", pbx.log_text());
    assert!(log_has(&pbx, "agent=5001 phone=1001"), "{}", pbx.log_text());
    assert!(
        common::wait_until(10, || queue_log(&pbx)
            .iter()
            .any(|e| e["event"] == "complete" && e["agent"] == "5001")),
        "{:?}",
        queue_log(&pbx)
    );
    // *46 from that phone logs the agent out and frees the phone.
    let call = spawn_sipp(
        &scenario("uac_wait_bye.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "*46", "-au", "1001", "-ap", PW1],
    );
    assert!(call.wait(20), "*46 answered\n{}", pbx.log_text());
    assert_eq!(agent_state(&pbx, "5001"), "logged-out");
}

/// 1001 calls the queue, presses 1 (callback_key) and is hung up on after the
/// confirmation.
fn ask_for_callback(pbx: &Pbx, dir: &std::path::Path) {
    let sc = common::keys_scenario(dir, "callback", &[(1500, '1')], 20000);
    let call = spawn_sipp(
        &sc,
        Some(pbx.udp),
        free_ports(1),
        &["-s", "700", "-au", "1001", "-ap", PW1],
    );
    assert!(call.wait(30), "confirmed and hung up\n{}", pbx.log_text());
    assert!(log_has(pbx, "callback requested"), "{}", pbx.log_text());
}

/// 1001's phone will take the call back; then 1002's phone registers, is offered the
/// request, answers, and hangs up 3 s into the talk.
fn called_back(pbx: &Pbx) {
    let customer_port = register_callee(pbx, "1001", PW1);
    let customer = spawn_sipp(&scenario("uas_answer.xml"), None, customer_port, &[]);
    let agent_port = register_callee(pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_bye.xml"), None, agent_port, &["-d", "3000"]);
    assert!(
        agent.wait(40),
        "the agent talked and hung up\n{}",
        pbx.log_text()
    );
    assert!(
        customer.wait(10),
        "the customer was called back\n{}",
        pbx.log_text()
    );
}

#[test]
fn a_caller_who_asks_for_a_callback_keeps_its_place_and_is_called_back_after_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    // 1002, the only member, has no phone yet: the caller waits.
    let pbx = pbx_with(dir.path(), &[(MEMBERS, "members = [\"1002\"]")]);
    ask_for_callback(&pbx, dir.path());
    called_back(&pbx);
    let text = pbx.log_text();
    let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("{what}\n{text}"));
    assert!(
        at("callback: ringing an agent") < at("callback: calling the customer")
            && at("callback: calling the customer") < at("callback: the customer answered"),
        "the agent first, then the customer\n{text}"
    );
    let story = completed_story(&pbx);
    assert_eq!(
        story,
        [
            "join -",
            "callback -",
            "offer 1002",
            "answer 1002",
            "complete 1002"
        ],
        "one place kept, no abandon"
    );
    // Two CDRs: the call that asked, and the callback (the customer's number calling).
    let db = pbx.state.path().join("cdr.sqlite");
    let rows = || -> Vec<(String, String, String)> {
        let Ok(c) = rusqlite::Connection::open(&db) else {
            return Vec::new();
        };
        let Ok(mut st) = c.prepare("SELECT caller, callee, disposition FROM cdr ORDER BY call")
        else {
            return Vec::new();
        };
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map(|m| m.filter_map(Result::ok).collect())
            .unwrap_or_default()
    };
    assert!(common::wait_until(10, || rows().len() == 2), "{:?}", rows());
    let r = rows();
    assert_eq!((r[0].0.as_str(), r[0].1.as_str()), ("1001", "700"), "{r:?}");
    assert_eq!(
        (r[1].0.as_str(), r[1].1.as_str(), r[1].2.as_str()),
        ("1001", "callback", "answered"),
        "{r:?}"
    );
}

#[test]
fn a_callback_request_is_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &[(MEMBERS, "members = [\"1002\"]")]);
    let pbx = Pbx::start_with(&cfg);
    ask_for_callback(&pbx, dir.path());
    let saved = pbx.state.path().join("callbacks.json");
    let kept = || std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        common::wait_until(10, || kept().contains("\"1001\"")),
        "{}",
        kept()
    );
    let pbx = pbx.restart(&cfg);
    assert!(
        log_has(&pbx, "callback request taken back"),
        "{}",
        pbx.log_text()
    );
    called_back(&pbx);
    assert!(
        log_has(&pbx, "callback: the customer answered"),
        "{}",
        pbx.log_text()
    );
    assert!(
        common::wait_until(10, || kept().trim() == "[]"),
        "served: {}",
        kept()
    );
}

#[test]
fn a_caller_who_waited_its_longest_is_called_back_instead_of_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(
        dir.path(),
        &[
            (MEMBERS, "members = [\"1002\"]"),
            (
                "callback_on_max_wait = false",
                "callback_on_max_wait = true",
            ),
        ],
    );
    // The dialplan's longest wait for 700: 3 s.
    let dp = dir.path().join("plan.dp");
    let plan = std::fs::read_to_string(&dp).unwrap();
    std::fs::write(&dp, plan.replace("timeout 120s", "timeout 3s")).unwrap();
    let pbx = Pbx::start_with(&cfg);
    // 1001 waits (1002 has no phone); after 3 s the queue calls it back instead.
    let call = spawn_sipp(
        &scenario("uac_wait_bye.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "700", "-au", "1001", "-ap", PW1],
    );
    assert!(call.wait(30), "told and hung up\n{}", pbx.log_text());
    assert!(log_has(&pbx, "callback requested"), "{}", pbx.log_text());
    called_back(&pbx);
    assert_eq!(
        completed_story(&pbx),
        [
            "join -",
            "callback -",
            "offer 1002",
            "answer 1002",
            "complete 1002"
        ]
    );
    let why = queue_log(&pbx)
        .into_iter()
        .find(|e| e["event"] == "callback")
        .map(|e| e["why"].clone());
    assert_eq!(why, Some("max-wait".into()));
}

#[test]
fn a_customer_who_does_not_answer_a_callback_is_called_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            (MEMBERS, "members = [\"1002\"]"),
            ("callback_retry_s = 120", "callback_retry_s = 3"),
        ],
    );
    ask_for_callback(&pbx, dir.path());
    // 1001's phone is busy the first time and answers (hanging up 2 s in) the second;
    // 1002 takes both.
    let customer_port = register_callee(&pbx, "1001", PW1);
    let busy = spawn_sipp(&scenario("uas_busy.xml"), None, customer_port, &[]);
    let agent_port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, agent_port, &["-m", "2"]);
    assert!(
        busy.wait(30),
        "the first callback found 1001 busy\n{}",
        pbx.log_text()
    );
    let customer = spawn_sipp(
        &scenario("uas_bye.xml"),
        None,
        customer_port,
        &["-d", "2000"],
    );
    assert!(
        log_has(&pbx, "callback: the customer will be called again"),
        "{}",
        pbx.log_text()
    );
    assert!(
        customer.wait(30),
        "called again and answered\n{}",
        pbx.log_text()
    );
    assert!(agent.wait(10), "1002 took both\n{}", pbx.log_text());
    assert!(
        log_has(&pbx, "callback: the customer answered"),
        "{}",
        pbx.log_text()
    );
    let saved = pbx.state.path().join("callbacks.json");
    let kept = || std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        common::wait_until(10, || kept().trim() == "[]"),
        "served: {}",
        kept()
    );
}

#[test]
fn the_dialplan_can_turn_position_announcements_off_for_its_callers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(
        dir.path(),
        &[("announce_position_s = 30", "announce_position_s = 2")],
    );
    let dp = dir.path().join("plan.dp");
    let plan = std::fs::read_to_string(&dp).unwrap();
    let quiet = "queue \"support\" timeout 120s position-announce off";
    std::fs::write(
        &dp,
        plan.replacen("queue \"support\" timeout 120s", quiet, 1),
    )
    .unwrap();
    let pbx = Pbx::start_with(&cfg);
    for agent in ["1002", "1003"] {
        assert!(ctl_agent(&pbx, &[agent, "pause", "lunch"]).status.success());
    }
    let caller = queue_caller(&pbx, 6000);
    assert!(caller.wait(20), "{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(log.contains("queued call=1"), "{log}");
    assert!(!log.contains("position announced"), "{log}");
}

#[test]
fn a_callback_agent_hears_ringback_while_the_customers_phone_rings() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(dir.path(), &[(MEMBERS, "members = [\"1002\"]")]);
    ask_for_callback(&pbx, dir.path());
    // 1001's phone rings 5 s before it answers.
    let text = std::fs::read_to_string(scenario("uas_answer.xml")).unwrap();
    let ok = "  <send retrans=\"500\">\n    <![CDATA[\n      SIP/2.0 200 OK";
    assert!(text.contains(ok));
    let slow = text.replacen(ok, &format!("  <pause milliseconds=\"5000\"/>\n{ok}"), 1);
    let sc = dir.path().join("uas_slow.xml");
    std::fs::write(&sc, slow).unwrap();
    let customer_port = register_callee(&pbx, "1001", PW1);
    let customer = spawn_sipp(&sc, None, customer_port, &[]);
    // 1002 on a softphone that answers by itself takes the callback.
    let agent = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    assert!(
        log_has(&pbx, "callback: the customer answered"),
        "{}\n{}",
        pbx.log_text(),
        agent.log()
    );
    agent.cmd("/hangup");
    assert!(
        customer.wait(10),
        "the agent's hang-up reached the customer\n{}",
        pbx.log_text()
    );
    // One 2 s burst of ringback in the 5 s ring (then the silent customer).
    let ringback = common::ringback_seconds(&agent.heard());
    assert!(
        (1.9..=2.1).contains(&ringback),
        "the agent heard {ringback:.2} s of ringback\n{}",
        agent.log()
    );
}

#[test]
fn an_agent_logged_in_by_id_is_still_at_its_phone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), &[(MEMBERS, "members = []")]);
    let pbx = Pbx::start_with(&cfg);
    id_login(&pbx, dir.path(), "login", "5001#45001#");
    assert_eq!(agent_state(&pbx, "5001"), "available");
    let saved = pbx.state.path().join("agents.json");
    let kept = || std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        common::wait_until(10, || kept().contains("\"1001\"")),
        "{}",
        kept()
    );
    let pbx = pbx.restart(&cfg);
    assert!(
        log_has(&pbx, "agent logins taken back agents=1"),
        "{}",
        pbx.log_text()
    );
    assert_eq!(agent_state(&pbx, "5001"), "available");
    let a = agent_view(&pbx, "5001");
    assert_eq!(a["phone"], "1001", "{a}");
}

#[test]
fn a_callback_whose_customer_never_answers_is_given_up_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = pbx_with(
        dir.path(),
        &[
            (MEMBERS, "members = [\"1002\"]"),
            ("callback_attempts = 3", "callback_attempts = 2"),
            ("callback_retry_s = 120", "callback_retry_s = 2"),
        ],
    );
    ask_for_callback(&pbx, dir.path());
    // 1001's phone is busy both times; 1002 takes both.
    let customer_port = register_callee(&pbx, "1001", PW1);
    let busy = spawn_sipp(&scenario("uas_busy.xml"), None, customer_port, &["-m", "2"]);
    let agent_port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_answer.xml"), None, agent_port, &["-m", "2"]);
    assert!(
        busy.wait(40),
        "two calls found 1001 busy\n{}",
        pbx.log_text()
    );
    assert!(agent.wait(10), "1002 took both\n{}", pbx.log_text());
    assert!(
        common::wait_until(10, || log_has(
            &pbx,
            "callback given up: the customer never answered"
        )),
        "{}",
        pbx.log_text()
    );
    let saved = pbx.state.path().join("callbacks.json");
    let kept = || std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        common::wait_until(10, || kept().trim() == "[]"),
        "given up, not kept: {}",
        kept()
    );
    // Past another retry time there is no third attempt: the agent was offered it twice.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let offers = queue_log(&pbx)
        .iter()
        .filter(|e| e["event"] == "offer")
        .count();
    assert_eq!(offers, 2, "{:?}", queue_log(&pbx));
    assert!(!log_has(&pbx, "callback: the customer answered"));
}
