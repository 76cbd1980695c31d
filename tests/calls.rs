//! Calls through switchboard between real peers on loopback: SIPp callers and callees for
//! every signalling outcome, baresip phones for audio. Each call is also checked in the
//! CDR database the PBX wrote.

mod common;

use common::{
    expecting, free_ports, register_callee, scenario, spawn_sipp, wait_until, Baresip, Pbx,
};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW1: &str = "demo-1001-change-me";
const PW2: &str = "demo-1002-change-me";

/// One CDR row, as stored.
#[derive(Debug)]
struct Row {
    caller: String,
    callee: String,
    disposition: String,
    sip_code: i64,
    hangup_by: String,
    answered: bool,
    billable_s: i64,
}

impl Row {
    /// Caller, callee, disposition and who hung up: what most tests compare.
    fn outcome(&self) -> (&str, &str, &str, &str) {
        (
            self.caller.as_str(),
            self.callee.as_str(),
            self.disposition.as_str(),
            self.hangup_by.as_str(),
        )
    }
}

/// The CDR rows once `ready` says they are all there (the store writes them on a
/// thread of its own, a moment after the calls end), or as they are after 10 s.
fn cdrs_when(pbx: &Pbx, ready: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    wait_until(10, || ready(&cdrs(pbx)));
    cdrs(pbx)
}

fn cdrs(pbx: &Pbx) -> Vec<Row> {
    let path = pbx.state.path().join("cdr.sqlite");
    let Ok(db) = rusqlite::Connection::open(&path) else {
        return Vec::new();
    };
    let Ok(mut st) = db.prepare("SELECT caller, callee, disposition, sip_code, hangup_by, answer_ms IS NOT NULL, billable_s FROM cdr ORDER BY id") else {
        return Vec::new();
    };
    st.query_map([], |r| {
        Ok(Row {
            caller: r.get(0)?,
            callee: r.get(1)?,
            disposition: r.get(2)?,
            sip_code: r.get(3)?,
            hangup_by: r.get(4)?,
            answered: r.get(5)?,
            billable_s: r.get(6)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The story of the `n`th call stored (1 first), as event names with what they name.
fn story(pbx: &Pbx, n: usize) -> Vec<String> {
    let db = rusqlite::Connection::open(pbx.state.path().join("cdr.sqlite")).unwrap();
    let mut st = db
        .prepare(
            "SELECT e.event, e.detail FROM call_events e
             WHERE e.cdr_id = (SELECT id FROM cdr ORDER BY id LIMIT 1 OFFSET ?1)
             ORDER BY e.seq",
        )
        .unwrap();
    st.query_map([n as i64 - 1], |r| {
        let (event, detail): (String, String) = (r.get(0)?, r.get(1)?);
        let d: serde_json::Value = serde_json::from_str(&detail).unwrap();
        let named = ["number", "party", "by"]
            .iter()
            .find_map(|k| d[*k].as_str().map(str::to_string));
        Ok(match named {
            Some(v) => format!("{event} {v}"),
            None => event,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Waits for the `n`th CDR and returns it.
fn cdr(pbx: &Pbx, n: usize) -> Row {
    cdr_within(pbx, n, 10)
}

fn caller(pbx: &Pbx, file: &Path, dial: &str, extra: &[&str]) -> common::SippProc {
    let mut args = vec!["-s", dial, "-au", "1001", "-ap", PW1];
    args.extend_from_slice(extra);
    spawn_sipp(file, Some(pbx.udp), free_ports(1), &args)
}

#[test]
fn answered_call_hung_up_by_caller() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let call = caller(&pbx, &scenario("uac_call.xml"), "1002", &["-d", "1200"]);
    assert!(call.wait(20), "caller: 407, 180, 200, ACK, BYE");
    assert!(callee.wait(10), "callee: INVITE with our SDP, ACK, BYE");
    let r = cdr(&pbx, 1);
    assert_eq!(
        (
            r.caller.as_str(),
            r.callee.as_str(),
            r.disposition.as_str(),
            r.sip_code,
            r.hangup_by.as_str()
        ),
        ("1001", "1002", "answered", 200, "caller"),
        "{r:?}"
    );
    assert!(r.answered && r.billable_s >= 1, "{r:?}");
    // Its story is stored with it, and the row is what the story says.
    assert_eq!(
        story(&pbx, 1),
        [
            "started",
            "dialled 1002",
            "bridged 1002",
            "answered",
            "ended caller"
        ]
    );
    assert!(wait_until(5, || pbx.ctl("calls")["calls"]
        .as_array()
        .unwrap()
        .is_empty()));
}

#[test]
fn answered_call_hung_up_by_callee() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_bye.xml"), None, port, &["-d", "800"]);
    let call = caller(&pbx, &scenario("uac_wait_bye.xml"), "1002", &[]);
    assert!(callee.wait(20), "callee answers and sends BYE");
    assert!(call.wait(10), "caller gets BYE");
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.hangup_by.as_str()),
        ("answered", "callee"),
        "{r:?}"
    );
}

#[test]
fn busy_callee_gives_486() {
    let pbx = Pbx::start();
    let dir = tempfile::tempdir().unwrap();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_busy.xml"), None, port, &[]);
    assert!(caller(&pbx, &expecting(486, dir.path()), "1002", &[]).wait(20));
    assert!(callee.wait(10), "callee's 486 was ACKed");
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.sip_code, r.answered),
        ("busy", 486, false),
        "{r:?}"
    );
}

#[test]
fn unanswered_call_gives_480_and_cancels_the_callee() {
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("short-ring.toml");
    // A dialplan whose dial gives up after 2 s, and a config that uses it.
    let dp = cfg_dir.path().join("short.dp");
    let plan = std::fs::read_to_string(common::root().join("dialplans/default.dp")).unwrap();
    std::fs::write(&dp, plan.replace("timeout 30s", "timeout 2s")).unwrap();
    let text = std::fs::read_to_string(common::root().join("config/switchboard.toml")).unwrap();
    let text = text.replace(
        "dialplan = \"dialplans/default.dp\"",
        &format!("dialplan = {:?}", dp.display().to_string()),
    );
    std::fs::write(&cfg, text).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_ring.xml"), None, port, &[]);
    assert!(caller(&pbx, &expecting(480, cfg_dir.path()), "1002", &[]).wait(20));
    assert!(
        callee.wait(10),
        "callee got CANCEL, answered 200 and 487, got ACK"
    );
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.sip_code),
        ("noanswer", 480),
        "{r:?}"
    );
}

#[test]
fn caller_cancel_reaches_the_callee() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_ring.xml"), None, port, &[]);
    assert!(
        caller(&pbx, &scenario("uac_cancel.xml"), "1002", &[]).wait(20),
        "caller: 180, CANCEL, 200, 487"
    );
    assert!(callee.wait(10), "callee: CANCEL, 487 ACKed");
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.sip_code, r.hangup_by.as_str()),
        ("cancelled", 487, "caller"),
        "{r:?}"
    );
}

#[test]
fn unregistered_callee_gives_480_unknown_404_and_bad_sdp_488() {
    let pbx = Pbx::start();
    let dir = tempfile::tempdir().unwrap();
    assert!(
        caller(&pbx, &expecting(480, dir.path()), "1003", &[]).wait(20),
        "1003 exists but is not registered"
    );
    assert!(
        caller(&pbx, &expecting(404, dir.path()), "4444", &[]).wait(20),
        "no such extension"
    );
    let g729 = dir.path().join("uac_g729.xml");
    let text = std::fs::read_to_string(expecting(488, dir.path())).unwrap();
    std::fs::write(
        &g729,
        text.replace("RTP/AVP 0 8 101", "RTP/AVP 18")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000"),
    )
    .unwrap();
    // 1002 must be registered for the call to get as far as the SDP.
    register_callee(&pbx, "1002", PW2);
    assert!(
        caller(&pbx, &g729, "1002", &[]).wait(20),
        "an offer we cannot relay gets 488"
    );
    let rows = cdrs_when(&pbx, |r| r.len() >= 3);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0].disposition, "unavailable",
        "an offline phone is filed as unavailable"
    );
    assert_eq!(rows[0].sip_code, 480);
    assert_eq!(
        (rows[1].disposition.as_str(), rows[1].sip_code),
        ("unavailable", 404)
    );
    assert_eq!(rows[2].sip_code, 488);
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let pbx = Pbx::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let bye = format!(
        "BYE sip:1002@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKno1;rport\r\nFrom: <sip:1001@x>;tag=a\r\n\
To: <sip:1002@x>;tag=b\r\nCall-ID: nowhere\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        pbx.udp,
        s.local_addr().unwrap()
    );
    s.send_to(bye.as_bytes(), pbx.udp).unwrap();
    let mut buf = [0u8; 2048];
    let n = s.recv(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 481"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Mean absolute sample value of a 16-bit PCM WAV (what sndfile writes).
fn loudness(p: &Path) -> f64 {
    let b = std::fs::read(p).unwrap();
    let data = &b[44.min(b.len())..];
    let n = data.len() / 2;
    if n == 0 {
        return 0.0;
    }
    data.chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]]).unsigned_abs()))
        .sum::<f64>()
        / n as f64
}

#[test]
fn a_baresip_callee_transfers_the_caller_to_a_third_phone_and_the_two_talk() {
    baresip_transfer(false, "/transfer 1003");
}

#[test]
fn a_baresip_caller_transfers_the_callee_to_a_third_phone_and_the_two_talk() {
    baresip_transfer(true, "/transfer 1003");
}

#[test]
fn a_baresip_callee_transfers_the_caller_by_feature_code_and_the_two_talk() {
    // The keys go as RFC 4733 events, which the relay reports as they pass.
    baresip_transfer(false, "/sndcode ##1003#");
}

/// Alice calls Bob, then one of them (Alice when `by_caller`) transfers the other to
/// Carol with `how`: the phone's own transfer command, or keys sent during the call;
/// the other and Carol then talk.
fn baresip_transfer(by_caller: bool, how: &str) {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    let carol = Baresip::start_with("1003", "demo-1003-change-me", pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 3),
        "the phones register:\n{}\n{}\n{}",
        alice.log(),
        bob.log(),
        carol.log()
    );
    alice.cmd("/dial 1002");
    let talking = |to: &str| {
        let calls = pbx.ctl("calls");
        let call = &calls["calls"][0];
        let callee = Pbx::party(call, "callee");
        call["state"] == "bridged"
            && callee.starts_with(&format!("sip:{to}"))
            && Pbx::leg(call, "callee").1 > 50
    };
    assert!(
        wait_until(10, || talking("1002")),
        "{}\n{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    // Whoever stays: their leg, the caller's after the transfer, keeps its counter.
    let stays = if by_caller { "callee" } else { "caller" };
    let before = Pbx::leg(&pbx.ctl("calls")["calls"][0], stays).1;
    // The phone's own transfer command: before switchboard carried transfers out, the
    // REFER was refused and the phone hung up, cutting the other party off.
    let (transferor, other) = if by_caller {
        (&alice, &bob)
    } else {
        (&bob, &alice)
    };
    transferor.cmd(how);
    assert!(
        wait_until(15, || talking("1003")),
        "{}\ntransferor:\n{}\ncarol:\n{}\npbx:\n{}",
        pbx.ctl("calls"),
        transferor.log(),
        carol.log(),
        pbx.log_text()
    );
    // The transferee's own leg carries on: its audio keeps arriving on the same port,
    // now relayed to Carol, and one call is all there is.
    let call = pbx.ctl("calls")["calls"].clone();
    assert_eq!(call.as_array().unwrap().len(), 1, "{call}");
    assert!(
        wait_until(5, || Pbx::leg(&pbx.ctl("calls")["calls"][0], "caller").1
            > before + 50),
        "{}",
        pbx.ctl("calls")
    );
    other.cmd("/hangup");
    calls_cleared(&pbx);
    let r = cdr(&pbx, 1);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "caller"));
    let by = if by_caller {
        "transferred caller"
    } else {
        "transferred callee"
    };
    assert_eq!(
        story(&pbx, 1)
            .iter()
            .filter(|e| e.starts_with("transferred") || e.starts_with("bridged"))
            .collect::<Vec<_>>(),
        ["bridged 1002", by, "bridged 1003"]
    );
}

#[test]
fn a_baresip_phone_consults_by_feature_code_then_hangs_up_and_the_other_two_talk() {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    let carol = Baresip::start_with("1003", "demo-1003-change-me", pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 3),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    let callee_of = |call: &serde_json::Value| Pbx::party(call, "callee");
    let in_state = |state: &str| {
        let calls = pbx.ctl("calls");
        calls["calls"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["state"] == state).cloned())
    };
    assert!(
        wait_until(10, || in_state("bridged").is_some_and(|c| callee_of(&c)
            .starts_with("sip:1002")
            && Pbx::leg(&c, "callee").1 > 50)),
        "{}",
        pbx.ctl("calls")
    );
    // Bob's keys as RFC 4733 events: Alice waits, Bob talks to Carol on his one dialog.
    bob.cmd("/sndcode *21003#");
    let consulting = || {
        in_state("held").is_some()
            && in_state("bridged").is_some_and(|c| {
                callee_of(&c).starts_with("sip:1003")
                    && Pbx::leg(&c, "caller").1 > 50
                    && Pbx::leg(&c, "callee").1 > 50
            })
    };
    assert!(
        wait_until(15, consulting),
        "{}\nbob:\n{}\ncarol:\n{}\npbx:\n{}",
        pbx.ctl("calls"),
        bob.log(),
        carol.log(),
        pbx.log_text()
    );
    let before = Pbx::leg(&in_state("held").unwrap(), "caller").1;
    bob.cmd("/hangup");
    // Alice's call goes on with Carol in Bob's place: Alice's audio keeps arriving on
    // her port, and Carol's on hers.
    let handed_over = || {
        let calls = pbx.ctl("calls");
        let list = calls["calls"].as_array().cloned().unwrap_or_default();
        list.len() == 1
            && list[0]["state"] == "bridged"
            && callee_of(&list[0]).starts_with("sip:1003")
            && Pbx::leg(&list[0], "caller").1 > before + 50
    };
    assert!(
        wait_until(15, handed_over),
        "{}\npbx:\n{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    let moves = &pbx.ctl("calls")["calls"][0]["moves"];
    assert_eq!(moves[0]["event"], "transferred", "{moves}");
    assert_eq!(moves[0]["attended"], true, "{moves}");
    let carol_before = Pbx::leg(&pbx.ctl("calls")["calls"][0], "callee").1;
    assert!(
        wait_until(5, || Pbx::leg(&pbx.ctl("calls")["calls"][0], "callee").1
            > carol_before + 50),
        "{}",
        pbx.ctl("calls")
    );
    alice.cmd("/hangup");
    calls_cleared(&pbx);
    let rows = cdrs_when(&pbx, |r| r.len() >= 2);
    assert_eq!(rows.len(), 2, "Alice's call and Bob's consultation");
    let first = rows
        .iter()
        .position(|r| r.outcome().0 == "1001")
        .expect("Alice's call's row");
    let seen: Vec<String> = story(&pbx, first + 1)
        .into_iter()
        .filter(|e| e.starts_with("transferred") || e.starts_with("bridged"))
        .collect();
    assert_eq!(
        seen,
        ["bridged 1002", "transferred callee", "bridged 1003"],
        "{:?}",
        story(&pbx, first + 1)
    );
    drop(carol);
}

#[test]
fn an_attended_transfer_joins_the_held_party_with_the_answered_consultation_and_they_talk() {
    sipp_attended_transfer(false);
}

#[test]
fn an_attended_transfer_while_the_consultation_rings_hands_it_to_the_held_party() {
    sipp_attended_transfer(true);
}

/// Bob (a SIPp transferor) calls Alice, holds her, calls Carol and transfers Alice to
/// her with REFER and Replaces, once Carol answered or (`ringing`) while she still rings;
/// Alice and Carol (SIPp callees with test audio ports) then hear each other until
/// Carol hangs up.
fn sipp_attended_transfer(ringing: bool) {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
    use std::sync::Arc;
    let pbx = Pbx::start();
    let (a_port, c_port) = (
        register_callee(&pbx, "1001", PW1),
        register_callee(&pbx, "1003", "demo-1003-change-me"),
    );
    let (a_rtp, c_rtp) = (RtpPhone::new(0xAAAA), RtpPhone::new(0xCCCC));
    let (a_media, c_media) = (a_rtp.port().to_string(), c_rtp.port().to_string());
    let alice = spawn_sipp(
        &scenario("uas_hold.xml"),
        None,
        a_port,
        &["-key", "rtp_port", &a_media],
    );
    let ring_ms = if ringing { "4000" } else { "300" };
    let carol = spawn_sipp(
        &scenario("uas_ring_answer_bye.xml"),
        None,
        c_port,
        &["-key", "rtp_port", &c_media, "-d", ring_ms],
    );
    let file = if ringing {
        "uac_attended_transfer_ringing.xml"
    } else {
        "uac_attended_transfer.xml"
    };
    // Both of Bob's dialogs carry the SIPp call's Call-ID, which then goes into a URI:
    // no '@' in it.
    let bob = spawn_sipp(
        &scenario(file),
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s",
            "1001",
            "-key",
            "consult",
            "1003",
            "-au",
            "1002",
            "-ap",
            PW2,
            "-cid_str",
            "%u-%p-transfer",
        ],
    );
    let (to_a, to_c, stop) = (
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let a_heard = a_rtp.run(to_a.clone(), stop.clone());
    let c_heard = c_rtp.run(to_c.clone(), stop.clone());
    // Each callee sends to the relay port switchboard gave it, found by its Contact.
    let port_of = |calls: &serde_json::Value, sip_port: u16| {
        let party = format!("sip:callee@127.0.0.1:{sip_port}");
        calls["calls"]
            .as_array()?
            .iter()
            .flat_map(|c| c["legs"].as_array().cloned().unwrap_or_default())
            .find(|l| l["party"].as_str() == Some(&party) && l["role"] != "ringing")
            .and_then(|l| l["rtp_port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
    };
    // Alice and Carol end in one call, bridged: Bob is gone from both.
    let joined = wait_until(20, || {
        let calls = pbx.ctl("calls");
        if let Some(p) = port_of(&calls, a_port) {
            to_a.store(p, Relaxed);
        }
        if let Some(p) = port_of(&calls, c_port) {
            to_c.store(p, Relaxed);
        }
        let list = calls["calls"].as_array().cloned().unwrap_or_default();
        list.len() == 1
            && list[0]["state"] == "bridged"
            && list[0]["legs"].as_array().is_some_and(|l| {
                l.len() == 2
                    && l.iter().all(|l| {
                        l["party"]
                            .as_str()
                            .is_some_and(|p| !p.starts_with("sip:1002"))
                    })
            })
    });
    assert!(
        joined,
        "{}
{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    assert!(bob.wait(20), "transferor: 202, NOTIFY 200, hung up");
    assert!(alice.wait(20), "held, offered sendrecv again, hung up");
    assert!(carol.wait(20), "answered, talked, hung up");
    stop.store(true, Relaxed);
    let (a_heard, c_heard) = (a_heard.join().unwrap(), c_heard.join().unwrap());
    // Each heard the other's tone through the relay.
    let from = |heard: &[Heard], ssrc: u32| heard.iter().filter(|h| h.ssrc == ssrc).count();
    assert!(
        from(&a_heard, 0xCCCC) > 50,
        "Alice heard Carol: {}",
        from(&a_heard, 0xCCCC)
    );
    assert!(
        from(&c_heard, 0xAAAA) > 50,
        "Carol heard Alice: {}",
        from(&c_heard, 0xAAAA)
    );
    // Whatever each heard in turn (music, ringback, the other), it came as one stream.
    one_stream(&a_heard)
        .map_err(|e| format!("Alice: {e}"))
        .unwrap();
    one_stream(&c_heard)
        .map_err(|e| format!("Carol: {e}"))
        .unwrap();
    let (first, second) = (cdr(&pbx, 1), cdr_within(&pbx, 2, 10));
    let (consult, held) = if ringing {
        (second, first)
    } else {
        (first, second)
    };
    assert_eq!(consult.outcome().0, "1002");
    assert_eq!(consult.outcome().1, "1003");
    assert_eq!(held.outcome().1, "1001");
    assert_eq!(
        story(&pbx, 1)
            .iter()
            .filter(|e| e.starts_with("transferred"))
            .count(),
        1,
        "{:?}",
        story(&pbx, 1)
    );
}

/// Scenario `name` from tests/sipp with its audio at `-key rtp_port` rather than SIPp's
/// own media port, saved in `dir`: the test's audio port sends and counts RTP there.
fn with_test_audio(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("[media_port]", "[rtp_port]");
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_softphone_takes_the_desk_phones_call_over_with_replaces_and_the_caller_hears_it() {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
    use std::sync::Arc;
    let pbx = Pbx::start();
    let dir = tempfile::tempdir().unwrap();
    let desk_sip = register_callee(&pbx, "1002", PW2);
    let (a_rtp, desk_rtp, soft_rtp) = (
        RtpPhone::new(0xAAAA),
        RtpPhone::new(0xDDDD),
        RtpPhone::new(0x5050),
    );
    let media = |r: &RtpPhone| r.port().to_string();
    let (a_media, desk_media, soft_media) = (media(&a_rtp), media(&desk_rtp), media(&soft_rtp));
    let desk = spawn_sipp(
        &with_test_audio("uas_answer.xml", dir.path()),
        None,
        desk_sip,
        &["-key", "rtp_port", &desk_media],
    );
    let alice = caller(
        &pbx,
        &with_test_audio("uac_wait_bye.xml", dir.path()),
        "1002",
        &["-key", "rtp_port", &a_media],
    );
    let (to_a, to_desk, to_soft, stop) = (
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let a_heard = a_rtp.run(to_a.clone(), stop.clone());
    let _desk_heard = desk_rtp.run(to_desk.clone(), stop.clone());
    let soft_heard = soft_rtp.run(to_soft.clone(), stop.clone());
    let callee_leg = || {
        let calls = pbx.ctl("calls");
        calls["calls"][0]["legs"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["role"] == "callee").cloned())
    };
    // The desk phone answered: the softphone learns its dialog (as a busy lamp's
    // dialog state would tell it), here from `ctl calls`.
    let mut replaces = String::new();
    let answered = wait_until(10, || {
        let calls = pbx.ctl("calls");
        // Both ports from one look: Alice must be sending before the softphone comes.
        let Some(a_port) = Pbx::leg(&calls["calls"][0], "caller").0 else {
            return false;
        };
        let Some(leg) = calls["calls"][0]["legs"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["role"] == "callee").cloned())
        else {
            return false;
        };
        to_a.store(a_port, Relaxed);
        let (Some(port), Some(theirs)) = (leg["rtp_port"].as_u64(), leg["remote_tag"].as_str())
        else {
            return false;
        };
        to_desk.store(port as u16, Relaxed);
        replaces = format!(
            "{};to-tag={theirs};from-tag={}",
            leg["sip_call_id"].as_str().unwrap(),
            leg["tag"].as_str().unwrap()
        );
        true
    });
    assert!(answered, "{}", pbx.ctl("calls"));
    let soft_sip = free_ports(1);
    let soft = spawn_sipp(
        &scenario("uac_replaces.xml"),
        Some(pbx.udp),
        soft_sip,
        &[
            "-s",
            "1002",
            "-au",
            "1002",
            "-ap",
            PW2,
            "-key",
            "replaces",
            &replaces,
            "-key",
            "rtp_port",
            &soft_media,
        ],
    );
    let party = format!("sip:1002@127.0.0.1:{soft_sip}");
    let took = wait_until(10, || {
        callee_leg().is_some_and(|l| {
            if l["party"].as_str() != Some(&party) {
                return false;
            }
            if let Some(p) = l["rtp_port"].as_u64() {
                to_soft.store(p as u16, Relaxed);
            }
            true
        })
    });
    assert!(took, "{}\n{}", pbx.ctl("calls"), pbx.log_text());
    assert!(
        desk.wait(10),
        "desk phone: answered, then hung up by the PBX"
    );
    assert!(
        soft.wait(20),
        "softphone: answered with our SDP, talked, hung up"
    );
    assert!(alice.wait(20), "caller: answered, hung up by the PBX");
    stop.store(true, Relaxed);
    let (a_heard, soft_heard) = (a_heard.join().unwrap(), soft_heard.join().unwrap());
    let from = |heard: &[Heard], ssrc: u32| heard.iter().filter(|h| h.ssrc == ssrc).count();
    assert!(from(&a_heard, 0x5050) > 50, "Alice heard the softphone");
    let by_ssrc = |heard: &[Heard]| {
        let mut n = std::collections::BTreeMap::<u32, usize>::new();
        for h in heard {
            *n.entry(h.ssrc).or_default() += 1;
        }
        format!("{n:x?}")
    };
    assert!(
        from(&soft_heard, 0xAAAA) > 50,
        "the softphone heard Alice: {} (Alice sent to {}) {}",
        by_ssrc(&soft_heard),
        to_a.load(Relaxed),
        pbx.log_text()
    );
    let r = cdr(&pbx, 1);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "callee"));
    assert!(
        story(&pbx, 1).contains(&"replaced callee".to_string()),
        "{:?}",
        story(&pbx, 1)
    );
}

#[test]
fn a_baresip_phone_parks_its_caller_and_another_takes_it_from_the_slot() {
    baresip_park("/transfer 70", false);
}

#[test]
fn a_parked_call_nobody_takes_rings_the_baresip_phone_that_parked_it() {
    baresip_park("/transfer 70", true);
}

#[test]
fn a_baresip_phone_parks_by_feature_code_hears_the_slot_and_another_takes_the_call() {
    baresip_park("/sndcode ##70#", false);
}

/// Alice calls Bob, Bob sends her to the park number (70) with `how` (the phone's own
/// transfer command, or the feature code); then Carol dials the slot (71) and talks to
/// Alice, or (`timeout`) nobody does and Bob's phone is rung again and talks to her.
fn baresip_park(how: &str, timeout: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = common::copy_setup(dir.path());
    // A park that gives up sooner than the shipped 45 s, so the test does not wait.
    let plan = std::fs::read_to_string(&dp)
        .unwrap()
        .replace("park \"71-79\" timeout 45s", "park \"71-79\" timeout 4s");
    std::fs::write(&dp, plan).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    let carol = Baresip::start_with("1003", "demo-1003-change-me", pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 3),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    let talking_to = |to: &str| {
        let calls = pbx.ctl("calls");
        let list = calls["calls"].as_array().cloned().unwrap_or_default();
        let call = &calls["calls"][0];
        let callee = Pbx::party(call, "callee");
        list.len() == 1
            && call["state"] == "bridged"
            && callee.starts_with(&format!("sip:{to}"))
            && Pbx::leg(call, "callee").1 > 50
    };
    assert!(
        wait_until(10, || talking_to("1002")),
        "{}",
        pbx.ctl("calls")
    );
    bob.cmd(how);
    let parked = wait_until(10, || {
        let calls = pbx.ctl("calls");
        calls["calls"].as_array().is_some_and(|l| l.len() == 1)
            && calls["calls"][0]["state"] == "parked"
    });
    assert!(parked, "{}\n{}", pbx.ctl("calls"), pbx.log_text());
    if how.starts_with("/sndcode") {
        // By code, Bob's phone is told the slot over its own call, and only then hung
        // up on: it hears audio for the two seconds or so the slot takes to say.
        let hung_up = || bob.log().contains("terminated") || bob.log().contains("closed");
        assert!(!hung_up(), "Bob hung up on before hearing the slot");
        assert!(wait_until(10, hung_up), "{}\n{}", bob.log(), pbx.log_text());
        assert!(
            pbx.log_text().contains("the parker hears the slot"),
            "{}",
            pbx.log_text()
        );
    }
    let before = Pbx::leg(&pbx.ctl("calls")["calls"][0], "caller").1;
    let taker = if timeout {
        // Bob's phone answers by itself when the park rings it back.
        "1002"
    } else {
        carol.cmd("/dial 71");
        "1003"
    };
    assert!(
        wait_until(15, || talking_to(taker)),
        "{}\n{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    // Alice's own leg carries on: her audio keeps arriving on the same port.
    assert!(
        wait_until(5, || Pbx::leg(&pbx.ctl("calls")["calls"][0], "caller").1
            > before + 50),
        "{}",
        pbx.ctl("calls")
    );
    alice.cmd("/hangup");
    calls_cleared(&pbx);
    let rows = cdrs_when(&pbx, |r| r.iter().any(|r| r.outcome().0 == "1001"));
    let parked_call = rows
        .iter()
        .position(|r| r.outcome().0 == "1001")
        .expect("the parked call's row");
    let events = story(&pbx, parked_call + 1);
    let wanted: Vec<String> = if timeout {
        vec![
            "parked".into(),
            "dialled 1002".into(),
            "bridged 1002".into(),
        ]
    } else {
        vec![
            "parked".into(),
            "retrieved 1003".into(),
            "bridged 1003".into(),
        ]
    };
    let seen: Vec<&String> = events
        .iter()
        .filter(|e| {
            e.starts_with("parked")
                || e.starts_with("retrieved")
                || e.starts_with("bridged")
                || e.starts_with("dialled")
        })
        .skip_while(|e| !e.starts_with("parked"))
        .collect();
    assert_eq!(seen, wanted.iter().collect::<Vec<_>>(), "{events:?}");
    drop(carol);
}

#[test]
fn a_baresip_phone_picks_up_a_call_ringing_at_another_and_talks_to_the_caller() {
    baresip_pickup("*8");
}

#[test]
fn a_baresip_phone_picks_up_the_call_ringing_at_a_named_extension() {
    baresip_pickup("**1002");
}

/// Alice calls Bob, whose phone rings; Carol dials `code` (group or directed pickup)
/// and talks to Alice.
fn baresip_pickup(code: &str) {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "manual");
    let carol = Baresip::start_with("1003", "demo-1003-change-me", pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 3),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    let ringing = wait_until(10, || pbx.ctl("calls")["calls"][0]["state"] == "ringing");
    assert!(ringing, "{}", pbx.ctl("calls"));
    carol.cmd(&format!("/dial {code}"));
    // One call: Alice's, answered by Carol's phone, audio flowing both ways.
    let talking = wait_until(15, || {
        let calls = pbx.ctl("calls");
        let call = &calls["calls"][0];
        let callee = Pbx::party(call, "callee");
        calls["calls"].as_array().is_some_and(|l| l.len() == 1)
            && call["state"] == "bridged"
            && callee.starts_with("sip:1003")
            && Pbx::leg(call, "caller").1 > 50
            && Pbx::leg(call, "callee").1 > 50
    });
    assert!(
        talking,
        "{}\ncarol:\n{}\npbx:\n{}",
        pbx.ctl("calls"),
        carol.log(),
        pbx.log_text()
    );
    alice.cmd("/hangup");
    calls_cleared(&pbx);
    let rows = cdrs_when(&pbx, |r| r.iter().any(|r| r.outcome().0 == "1001"));
    let picked = rows
        .iter()
        .position(|r| r.outcome().0 == "1001")
        .expect("Alice's call's row");
    assert_eq!(
        rows[picked].outcome(),
        ("1001", "1002", "answered", "caller")
    );
    assert!(
        story(&pbx, picked + 1).contains(&"picked_up 1003".to_string()),
        "{:?}",
        story(&pbx, picked + 1)
    );
    drop(bob);
}

#[test]
fn a_busy_lamp_shows_an_extension_idle_ringing_busy_and_idle_again() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    // 1003's lamp key watches 1002; the scenario fails on any state out of turn.
    let watcher = spawn_sipp(
        &scenario("uac_blf.xml"),
        Some(pbx.udp),
        free_ports(1),
        &[
            "-s",
            "1002",
            "-key",
            "watcher",
            "1003",
            "-au",
            "1003",
            "-ap",
            "demo-1003-change-me",
        ],
    );
    assert!(
        wait_until(10, || pbx.log_text().contains("busy lamp subscribed")),
        "{}",
        pbx.log_text()
    );
    // Its first NOTIFY (idle) answered before the line changes.
    std::thread::sleep(Duration::from_millis(500));
    let callee = spawn_sipp(&scenario("uas_bye.xml"), None, port, &["-d", "1000"]);
    let call = caller(&pbx, &scenario("uac_wait_bye.xml"), "1002", &[]);
    assert!(call.wait(20), "caller: answered, hung up by the callee");
    assert!(callee.wait(10), "callee: answered, hung up");
    assert!(
        watcher.wait(20),
        "lamp: idle, ringing, busy, idle, then unsubscribed\n{}",
        pbx.log_text()
    );
}

#[test]
fn a_forward_set_from_a_baresip_phone_survives_a_restart_and_the_call_follows_it() {
    let pbx = Pbx::start();
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 1),
        "Bob's phone registers"
    );
    // Bob forwards his calls to Carol with the feature code; the PBX says so and hangs
    // up, and the setting is on disk.
    bob.cmd("/dial *721003");
    let saved = pbx.state.path().join("lines.json");
    let kept = || std::fs::read_to_string(&saved).unwrap_or_default();
    assert!(
        wait_until(10, || kept().contains("\"forward_all\": \"1003\"")),
        "{}\n{}",
        kept(),
        pbx.log_text()
    );
    assert!(
        wait_until(10, || pbx.ctl("calls")["calls"]
            .as_array()
            .unwrap()
            .is_empty()),
        "the code's call ends: {}",
        pbx.ctl("calls")
    );
    drop(bob);
    let cfg = common::root().join("config/switchboard.toml");
    let pbx = pbx.restart(&cfg);
    let lines = pbx.ctl("lines");
    let bobs = lines["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["extension"] == "1002").cloned())
        .unwrap_or_default();
    assert_eq!(bobs["forward_all"], "1003", "{lines}");
    // After the restart a call to Bob rings Carol, who talks to the caller.
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let carol = Baresip::start_with("1003", "demo-1003-change-me", pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    let talking = wait_until(15, || {
        let calls = pbx.ctl("calls");
        let call = &calls["calls"][0];
        call["state"] == "bridged"
            && Pbx::leg(call, "caller").1 > 50
            && Pbx::leg(call, "callee").1 > 50
    });
    assert!(talking, "{}\n{}", pbx.ctl("calls"), pbx.log_text());
    alice.cmd("/hangup");
    calls_cleared(&pbx);
    let rows = cdrs_when(&pbx, |r| r.iter().any(|r| r.outcome().0 == "1001"));
    let last = rows.len();
    assert!(
        story(&pbx, last).contains(&"forwarded".to_string()),
        "{:?}",
        story(&pbx, last)
    );
    drop(carol);
}

#[test]
fn a_callee_that_vanishes_mid_call_is_found_by_the_session_refresh_and_the_call_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = common::copy_setup(dir.path());
    // A refresh every 5 s, and transactions that give up in 3.2 s (64 T1).
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("session_refresh_s = 900", "session_refresh_s = 5")
        .replace("t1_ms = 500", "t1_ms = 50");
    std::fs::write(&cfg, text).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer_vanish.xml"), None, port, &[]);
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    assert!(callee.wait(10), "the callee answered, then vanished");
    assert!(
        wait_until(5, || pbx.ctl("calls")["calls"][0]["state"] == "bridged"),
        "{}",
        pbx.ctl("calls")
    );
    // The refresh at 5 s gets no answer from the callee: by 64 T1 later the call is over,
    // the caller hung up on, and the record says why.
    let r = cdr_within(&pbx, 1, 20);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "system"));
    assert!(
        wait_until(5, || alice.log().contains("terminated")
            || alice.log().contains("closed")),
        "the caller's phone was hung up on:\n{}",
        alice.log()
    );
    assert!(
        pbx.log_text().contains("a party no longer answers"),
        "{}",
        pbx.log_text()
    );
}

/// Two test phones' audio in a call of the PBX's (caller `0xAAAA`, callee `0xBBBB`): each
/// sends to the relay port the PBX gave its party, once the call is bridged.
struct Talk {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    heard: [std::thread::JoinHandle<Vec<Heard>>; 2],
}

impl Talk {
    /// Starts both phones and waits (10 s at most) for the PBX's one call to be bridged.
    fn start(pbx: &Pbx, a_rtp: RtpPhone, b_rtp: RtpPhone) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
        use std::sync::Arc;
        let (to_a, to_b) = (Arc::new(AtomicU16::new(0)), Arc::new(AtomicU16::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let heard = [
            a_rtp.run(to_a.clone(), stop.clone()),
            b_rtp.run(to_b.clone(), stop.clone()),
        ];
        let bridged = wait_until(10, || {
            let calls = pbx.ctl("calls");
            let call = &calls["calls"][0];
            let (Some(a), Some(b)) = (Pbx::leg(call, "caller").0, Pbx::leg(call, "callee").0)
            else {
                return false;
            };
            to_a.store(a, Relaxed);
            to_b.store(b, Relaxed);
            call["state"] == "bridged"
        });
        assert!(bridged, "{}\n{}", pbx.ctl("calls"), pbx.log_text());
        Self { stop, heard }
    }

    /// Stops both and checks each heard the other through the relay.
    fn heard_each_other(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let [a, b] = self.heard.map(|h| h.join().unwrap());
        let from = |heard: &[Heard], ssrc: u32| heard.iter().filter(|h| h.ssrc == ssrc).count();
        assert!(from(&a, 0xBBBB) > 50, "the caller heard the callee");
        assert!(from(&b, 0xAAAA) > 50, "the callee heard the caller");
    }
}

/// A phone without session timers that loses power mid-call (its process killed, so no
/// BYE and no more RTP or RTCP) is found by its silence: with `rtp_timeout_s = 5` and
/// refreshes off, the other phone is hung up on about 5 s later and the record says so.
#[test]
fn a_phone_that_loses_power_mid_call_is_found_by_its_silence_and_the_call_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = common::copy_setup(dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("session_refresh_s = 900", "session_refresh_s = 0")
        .replace("rtp_timeout_s = 120", "rtp_timeout_s = 5");
    std::fs::write(&cfg, text).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "both phones register"
    );
    alice.cmd("/dial 1002");
    let flowing = wait_until(15, || {
        let call = &pbx.ctl("calls")["calls"][0];
        call["state"] == "bridged"
            && Pbx::leg(call, "caller").1 > 50
            && Pbx::leg(call, "callee").1 > 50
    });
    assert!(flowing, "{}\n{}", pbx.ctl("calls"), pbx.log_text());
    let killed = std::time::Instant::now();
    drop(bob);
    let r = cdr_within(&pbx, 1, 15);
    let after = killed.elapsed();
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "system"));
    assert_eq!(r.sip_code, 408);
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(9)).contains(&after),
        "{after:?}"
    );
    assert!(
        wait_until(5, || alice.log().contains("terminated")
            || alice.log().contains("closed")),
        "the caller's phone was hung up on:\n{}",
        alice.log()
    );
}

/// RFC 3262 both ways between real peers: a SIPp caller that requires 100rel gets the
/// callee's early media reliably from us and PRACKs it; the SIPp callee sent it reliably and
/// gets our PRACK; the answer follows, and each hears the other's tone.
#[test]
fn reliable_early_media_is_acknowledged_on_both_legs_and_the_parties_talk() {
    let pbx = Pbx::start();
    let b_sip = register_callee(&pbx, "1002", PW2);
    let (a_rtp, b_rtp) = (RtpPhone::new(0xAAAA), RtpPhone::new(0xBBBB));
    let (a_media, b_media) = (a_rtp.port().to_string(), b_rtp.port().to_string());
    let bob = spawn_sipp(
        &scenario("uas_100rel.xml"),
        None,
        b_sip,
        &["-key", "rtp_port", &b_media],
    );
    let alice = caller(
        &pbx,
        &scenario("uac_100rel.xml"),
        "1002",
        &["-key", "rtp_port", &a_media],
    );
    let talk = Talk::start(&pbx, a_rtp, b_rtp);
    assert!(
        bob.wait(20),
        "callee: 183 PRACKed, answered, talked, hung up"
    );
    assert!(
        alice.wait(20),
        "caller: PRACKed our 183, answered, hung up by the PBX"
    );
    talk.heard_each_other();
    let r = cdr(&pbx, 1);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "callee"));
}

/// RFC 4028 between real peers: a SIPp caller is granted the 90 s session timer it asked
/// to refresh itself, talks with the callee both ways, and then never refreshes: the PBX
/// hangs both up before the interval runs out (90 - 30 s, within a 3 s sweep), with the
/// record saying so.
#[test]
fn a_caller_that_stops_refreshing_its_session_timer_is_hung_up_with_its_record() {
    let pbx = Pbx::start();
    let dir = tempfile::tempdir().unwrap();
    let b_sip = register_callee(&pbx, "1002", PW2);
    let (a_rtp, b_rtp) = (RtpPhone::new(0xAAAA), RtpPhone::new(0xBBBB));
    let (a_media, b_media) = (a_rtp.port().to_string(), b_rtp.port().to_string());
    let bob = spawn_sipp(
        &with_test_audio("uas_answer.xml", dir.path()),
        None,
        b_sip,
        &["-key", "rtp_port", &b_media, "-timeout", "90s"],
    );
    let started = std::time::Instant::now();
    let alice = caller(
        &pbx,
        &scenario("uac_session_timer.xml"),
        "1002",
        &["-key", "rtp_port", &a_media, "-timeout", "90s"],
    );
    let talk = Talk::start(&pbx, a_rtp, b_rtp);
    assert!(
        alice.wait(80),
        "caller: granted 90 s, never refreshed, hung up by the PBX"
    );
    let lasted = started.elapsed();
    assert!(bob.wait(10), "callee: hung up by the PBX");
    assert!(
        (Duration::from_secs(57)..Duration::from_secs(66)).contains(&lasted),
        "{lasted:?}"
    );
    talk.heard_each_other();
    let r = cdr_within(&pbx, 1, 10);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "system"));
    assert_eq!(r.sip_code, 408);
}

#[test]
fn baresip_phones_talk_through_the_relay() {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "both phones register:\n{}\n{}",
        alice.log(),
        bob.log()
    );
    alice.cmd("/dial 1002");
    let answered = wait_until(10, || {
        pbx.ctl("calls")["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "bridged")
    });
    assert!(
        answered,
        "alice:\n{}\nbob:\n{}\npbx:\n{}",
        alice.log(),
        bob.log(),
        pbx.log_text()
    );
    // RTP flows both ways through switchboard's ports.
    let flowing = wait_until(10, || {
        let call = &pbx.ctl("calls")["calls"][0];
        Pbx::leg(call, "caller").1 > 50 && Pbx::leg(call, "callee").1 > 50
    });
    assert!(flowing, "{}", pbx.ctl("calls"));
    std::thread::sleep(Duration::from_millis(500));
    alice.cmd("/hangup");
    assert!(
        wait_until(10, || pbx.ctl("calls")["calls"]
            .as_array()
            .unwrap()
            .is_empty()),
        "call cleared"
    );
    let r = cdr(&pbx, 1);
    assert_eq!(r.outcome(), ("1001", "1002", "answered", "caller"));
    // Each phone decoded real audio (the other's 440 Hz tone), not silence.
    let (alice_log, bob_log) = (alice.log(), bob.log());
    let (ha, hb) = (alice.heard(), bob.heard());
    assert!(
        !ha.is_empty() && !hb.is_empty(),
        "no WAV dumps:\n{alice_log}\n{bob_log}"
    );
    assert!(
        ha.iter().any(|p| loudness(p) > 500.0),
        "alice heard silence"
    );
    assert!(hb.iter().any(|p| loudness(p) > 500.0), "bob heard silence");
}

#[test]
fn echo_test_returns_what_was_sent() {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 1),
        "{}\n{}",
        alice.log(),
        pbx.log_text()
    );
    alice.cmd("/dial 600");
    let echoing = wait_until(10, || {
        Pbx::leg(&pbx.ctl("calls")["calls"][0], "caller").1 > 50
    });
    assert!(echoing, "{}\n{}", pbx.ctl("calls"), alice.log());
    std::thread::sleep(Duration::from_millis(500));
    alice.cmd("/hangup");
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.callee.as_str(), r.disposition.as_str()),
        ("600", "answered")
    );
    assert!(
        alice.heard().iter().any(|p| loudness(p) > 500.0),
        "alice hears her own tone back"
    );
}

#[test]
fn prompt_test_plays_the_greeting_then_hangs_up() {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 1),
        "{}\n{}",
        alice.log(),
        pbx.log_text()
    );
    alice.cmd("/dial 601");
    // The prompt lasts about 3.8 s; then switchboard hangs up by itself.
    let r = cdr_within(&pbx, 1, 15);
    assert_eq!(
        (
            r.callee.as_str(),
            r.disposition.as_str(),
            r.hangup_by.as_str()
        ),
        ("601", "answered", "system"),
        "{r:?}"
    );
    assert!(r.billable_s >= 3, "the whole prompt played: {r:?}");
    assert!(
        wait_until(5, || alice.log().contains("closed")
            || alice.log().contains("terminated")),
        "{}",
        alice.log()
    );
    assert!(
        alice.heard().iter().any(|p| loudness(p) > 300.0),
        "alice heard the greeting"
    );
}

/// Like [`cdr`], with a longer wait.
fn cdr_within(pbx: &Pbx, n: usize, secs: u64) -> Row {
    assert!(
        wait_until(secs, || cdrs(pbx).len() >= n),
        "no CDR #{n}; log:\n{}",
        pbx.log_text()
    );
    cdrs(pbx).remove(n - 1)
}

/// Waits (10 s at most) until the PBX has no live call, and fails saying what is left.
fn calls_cleared(pbx: &Pbx) {
    assert!(
        wait_until(10, || pbx.ctl("calls")["calls"]
            .as_array()
            .unwrap()
            .is_empty()),
        "call cleared: {}",
        pbx.ctl("calls")
    );
}

/// A phone's audio port in a test: sends 20 ms PCMU frames of a tone under its own SSRC
/// (also written in the payload's first four bytes, as switchboard sends each party one
/// stream of its own whoever's audio is in it) to the relay port it is given, and notes
/// every packet it receives (when, whose, its stream's numbering, decoded level), until
/// told to stop.
struct RtpPhone {
    sock: UdpSocket,
    ssrc: u32,
}

/// One packet a test phone received.
#[derive(Clone, Copy, Debug)]
struct Heard {
    at: std::time::Instant,
    /// Whose audio: the sending test phone's SSRC, read from the payload (anything
    /// else, such as music, reads as some other number).
    ssrc: u32,
    /// The stream it came in: its SSRC, sequence number and timestamp.
    stream: u32,
    seq: u16,
    ts: u32,
    level: f64,
}

/// Whether `heard` is one stream numbered without a step back: one SSRC, each packet
/// one on from the one before (loopback loses nothing), timestamps never going back.
fn one_stream(heard: &[Heard]) -> Result<(), String> {
    let Some(first) = heard.first() else {
        return Ok(());
    };
    if let Some(h) = heard.iter().find(|h| h.stream != first.stream) {
        return Err(format!(
            "another SSRC: {:x} then {:x}",
            first.stream, h.stream
        ));
    }
    for w in heard.windows(2) {
        let (seq, ts) = (
            w[1].seq.wrapping_sub(w[0].seq),
            w[1].ts.wrapping_sub(w[0].ts),
        );
        if seq != 1 || ts == 0 || ts >= 0x8000_0000 {
            return Err(format!(
                "seq +{seq}, ts +{ts} between {:?} and {:?}",
                w[0], w[1]
            ));
        }
    }
    Ok(())
}

impl RtpPhone {
    fn new(ssrc: u32) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Self { sock, ssrc }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// Runs until `stop`; sends to the port `to` holds once it is non-zero.
    fn run(
        self,
        to: std::sync::Arc<std::sync::atomic::AtomicU16>,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Heard>> {
        use std::sync::atomic::Ordering::Relaxed;
        std::thread::spawn(move || {
            let mut heard = Vec::new();
            let (mut seq, mut ts) = (0u16, 0u32);
            let mut next = std::time::Instant::now();
            let mut buf = [0u8; 2048];
            while !stop.load(Relaxed) {
                if std::time::Instant::now() >= next {
                    next += Duration::from_millis(20);
                    let port = to.load(Relaxed);
                    if port != 0 {
                        let mut pkt = vec![0x80, 0];
                        pkt.extend(seq.to_be_bytes());
                        pkt.extend(ts.to_be_bytes());
                        pkt.extend(self.ssrc.to_be_bytes());
                        pkt.extend(self.ssrc.to_be_bytes());
                        // A loud square wave: any μ-law code far from silence.
                        pkt.extend((4..160).map(|i| if i % 16 < 8 { 0x20 } else { 0xA0 }));
                        let _ = self.sock.send_to(&pkt, ("127.0.0.1", port));
                        seq = seq.wrapping_add(1);
                        ts = ts.wrapping_add(160);
                    }
                }
                if let Ok(n) = self.sock.recv(&mut buf) {
                    if n > 16 {
                        let stream = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                        let ssrc = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
                        let seq = u16::from_be_bytes([buf[2], buf[3]]);
                        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                        let level = buf[12..n]
                            .iter()
                            .map(|&b| f64::from(switchboard::media::g711::ulaw_decode(b)).abs())
                            .sum::<f64>()
                            / (n - 12) as f64;
                        heard.push(Heard {
                            at: std::time::Instant::now(),
                            ssrc,
                            stream,
                            seq,
                            ts,
                            level,
                        });
                    }
                }
            }
            heard
        })
    }
}

#[test]
fn a_held_party_hears_music_at_its_pace_and_resume_relays_both_ways_again() {
    use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::Relaxed};
    use std::sync::Arc;
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let (caller_rtp, callee_rtp) = (RtpPhone::new(0xAAAA), RtpPhone::new(0xBBBB));
    let (caller_port, callee_port) = (caller_rtp.port().to_string(), callee_rtp.port().to_string());
    let callee = spawn_sipp(
        &scenario("uas_hold.xml"),
        None,
        port,
        &["-key", "rtp_port", &callee_port],
    );
    let call = caller(
        &pbx,
        &scenario("uac_hold.xml"),
        "1002",
        &["-key", "rtp_port", &caller_port],
    );
    let (to_a, to_b, stop) = (
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicU16::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let caller_heard = caller_rtp.run(to_a.clone(), stop.clone());
    let callee_heard = callee_rtp.run(to_b.clone(), stop.clone());
    // Each phone sends to the relay port switchboard gave it.
    let ports = wait_until(10, || {
        let calls = pbx.ctl("calls");
        let call = &calls["calls"][0];
        match (Pbx::leg(call, "caller").0, Pbx::leg(call, "callee").0) {
            (Some(a), Some(b)) => {
                to_a.store(a, Relaxed);
                to_b.store(b, Relaxed);
                true
            }
            _ => false,
        }
    });
    assert!(ports, "{}", pbx.ctl("calls"));
    // `ctl calls` names the held party while it is held, and not after.
    let shown = wait_until(10, || pbx.ctl("calls")["calls"][0]["on_hold"] == "callee");
    assert!(shown, "{}", pbx.ctl("calls"));
    let cleared = wait_until(10, || {
        let calls = pbx.ctl("calls");
        calls["calls"][0]["state"] == "bridged" && calls["calls"][0]["on_hold"].is_null()
    });
    assert!(cleared, "{}", pbx.ctl("calls"));
    assert!(
        call.wait(20),
        "caller: hold answered recvonly, resume answered sendrecv"
    );
    assert!(callee.wait(10), "callee: offered sendonly, then sendrecv");
    stop.store(true, Relaxed);
    let (to_caller, to_callee) = (caller_heard.join().unwrap(), callee_heard.join().unwrap());

    // The callee heard the caller, then music (another stream), then the caller again.
    let music: Vec<&Heard> = to_callee.iter().filter(|h| h.ssrc != 0xAAAA).collect();
    assert!(music.len() > 50, "music packets: {}", music.len());
    let (first, last) = (music[0].at, music[music.len() - 1].at);
    let span = last.duration_since(first).as_secs_f64();
    // Held for the scenario's 2 s; about 50 frames a second, and no gap a listener
    // would hear.
    assert!((1.5..2.6).contains(&span), "music for {span:.2} s");
    let pace = (music.len() - 1) as f64 / span;
    assert!((45.0..=55.0).contains(&pace), "{pace:.1} packets/s");
    let gap = music
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .max()
        .unwrap();
    assert!(gap < Duration::from_millis(120), "longest gap {gap:?}");
    let quiet = music.iter().filter(|h| h.level < 100.0).count();
    assert!(
        quiet * 4 < music.len(),
        "{quiet} of {} frames silent",
        music.len()
    );
    // The caller, the music and the caller again reach the callee as one stream, so
    // its jitter buffer never drops the caller's return as out of date.
    one_stream(&to_callee).unwrap();
    let callee_before = to_callee
        .iter()
        .filter(|h| h.ssrc == 0xAAAA && h.at < first)
        .count();
    let callee_after = to_callee
        .iter()
        .filter(|h| h.ssrc == 0xAAAA && h.at > last)
        .count();
    assert!(
        callee_before > 30 && callee_after > 30,
        "callee heard the caller {callee_before} before, {callee_after} after"
    );
    // The caller (the holder) heard the callee before and after, and nothing while it held.
    let during = to_caller
        .iter()
        .filter(|h| h.at > first && h.at < last)
        .count();
    let caller_before = to_caller
        .iter()
        .filter(|h| h.ssrc == 0xBBBB && h.at < first)
        .count();
    let caller_after = to_caller
        .iter()
        .filter(|h| h.ssrc == 0xBBBB && h.at > last)
        .count();
    assert_eq!(during, 0, "the holder heard nothing while holding");
    assert!(
        caller_before > 30 && caller_after > 30,
        "caller heard the callee {caller_before} before, {caller_after} after"
    );
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.hangup_by.as_str()),
        ("answered", "caller"),
        "{r:?}"
    );
    let told = story(&pbx, 1);
    assert!(
        told.ends_with(&[
            "held callee".into(),
            "resumed callee".into(),
            "ended caller".into()
        ]),
        "{told:?}"
    );
}

/// Samples of a WAV's first channel (what baresip decoded or sent), past its first half
/// second (call set-up, jitter buffer fill), and the sample rate.
fn samples_after_setup(p: &Path) -> (Vec<f64>, f64) {
    let (samples, rate) = common::wav_first_channel(p).expect("a WAV dump");
    let skip = (rate / 2.0) as usize;
    (samples[skip.min(samples.len())..].to_vec(), rate)
}

/// RMS level of a WAV, and the share of its power at `hz` (Goertzel), each the median
/// over 100 ms blocks: near 1 for a clean tone, low for noise or a tone decoded with the
/// wrong G.711 law. The median keeps a few blocks of a loaded machine's playout gaps
/// from deciding, where a wrong law spoils every block.
fn tone(p: &Path, hz: f64) -> (f64, f64) {
    let (s, rate) = samples_after_setup(p);
    let block = (rate / 10.0) as usize;
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut levels, mut shares): (Vec<f64>, Vec<f64>) = s
        .chunks_exact(block)
        .map(|b| {
            let total: f64 = b.iter().map(|x| x * x).sum();
            let (mut s1, mut s2) = (0.0, 0.0);
            for x in b {
                let s0 = x + coeff * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            // |X(k)|^2 scaled so a pure sine's power is its mean square times the block.
            let at_hz = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / block as f64;
            let share = if total > 0.0 { at_hz / total } else { 0.0 };
            ((total / block as f64).sqrt(), share)
        })
        .unzip();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    (median(&mut levels), median(&mut shares))
}

#[test]
fn a_baresip_phone_holds_its_caller_who_hears_music_then_resumes_and_they_talk() {
    let pbx = Pbx::start();
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    let bob = Baresip::start_with("1002", PW2, pbx.udp, "auto");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "the phones register"
    );
    alice.cmd("/dial 1002");
    let call = || pbx.ctl("calls")["calls"][0].clone();
    assert!(
        wait_until(10, || call()["state"] == "bridged"
            && Pbx::leg(&call(), "callee").1 > 50),
        "{}",
        pbx.ctl("calls")
    );
    bob.cmd("/hold");
    assert!(
        wait_until(5, || call()["on_hold"] == "caller"),
        "{}\n{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    bob.cmd("/resume");
    assert!(
        wait_until(5, || call()["on_hold"].is_null()),
        "{}\n{}",
        pbx.ctl("calls"),
        pbx.log_text()
    );
    // Both send again, and each is relayed to the other.
    let (a, b) = (Pbx::leg(&call(), "caller").1, Pbx::leg(&call(), "callee").1);
    assert!(
        wait_until(5, || Pbx::leg(&call(), "caller").1 > a + 50
            && Pbx::leg(&call(), "callee").1 > b + 50),
        "{}",
        pbx.ctl("calls")
    );
    std::thread::sleep(Duration::from_secs(1));
    alice.cmd("/hangup");
    calls_cleared(&pbx);
    let story = story(&pbx, 1);
    assert!(
        story.contains(&"held caller".to_string()) && story.contains(&"resumed caller".to_string()),
        "{story:?}"
    );
    // Alice's phone took Bob, the music and Bob again as one stream: none of Bob's audio
    // after the music was thrown away as out of date (before switchboard numbered each
    // party's stream on, baresip dropped every frame after a resume this way).
    let log = alice.log();
    assert!(log.contains("Call established"), "{log}");
    assert!(
        !log.contains("discard old frame") && !log.contains("SSRC changed"),
        "{log}"
    );
}

#[test]
fn phones_with_different_g711_laws_talk_through_transcoding() {
    let pbx = Pbx::start();
    let alice = Baresip::start_full("1001", PW1, pbx.udp, "manual", "PCMU");
    let bob = Baresip::start_full("1002", PW2, pbx.udp, "auto", "PCMA");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "{}\n{}",
        alice.log(),
        pbx.log_text()
    );
    alice.cmd("/dial 1002");
    assert!(
        wait_until(10, || pbx.ctl("calls")["calls"][0]["state"] == "bridged"),
        "{}",
        pbx.log_text()
    );
    assert!(wait_until(10, || Pbx::leg(
        &pbx.ctl("calls")["calls"][0],
        "callee"
    )
    .1 > 100));
    alice.cmd("/hangup");
    assert!(wait_until(10, || cdrs(&pbx).len() == 1));
    assert!(
        pbx.log_text().contains("transcoding G.711"),
        "the legs share no law"
    );
    // Each side hears the other's 440 Hz tone, clean and at the level it was sent: the
    // same bytes read with the other law keep the tone's zero crossings but come out
    // about 11 dB off and distorted.
    for (who, hearer, talker) in [("alice", &alice, &bob), ("bob", &bob, &alice)] {
        let said = talker.sent();
        assert!(!said.is_empty(), "no -enc.wav of what {who}'s peer sent");
        let (level_sent, purity_sent) = tone(&said[0], 440.0);
        assert!(
            purity_sent > 0.9,
            "the peer sent a clean tone: {purity_sent:.2}"
        );
        let heard: Vec<(f64, f64)> = hearer.heard().iter().map(|p| tone(p, 440.0)).collect();
        let ok = heard.iter().any(|&(level, purity)| {
            let db = 20.0 * (level / level_sent).log10();
            purity > 0.9 && db.abs() <= 3.0
        });
        assert!(
            ok,
            "{who} heard (rms, share at 440 Hz) {heard:?}; sent at rms {level_sent:.0}"
        );
    }
}

#[test]
fn stopping_the_pbx_hangs_up_live_calls_and_keeps_their_cdrs() {
    let mut pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let call = caller(&pbx, &scenario("uac_wait_bye.xml"), "1002", &[]);
    assert!(wait_until(10, || pbx.ctl("calls")["calls"][0]["state"] == "bridged"));
    let state = pbx.state.path().to_path_buf();
    pbx.stop();
    assert!(call.wait(10), "the caller got a BYE");
    assert!(callee.wait(10), "the callee got a BYE");
    let db = rusqlite::Connection::open(state.join("cdr.sqlite")).unwrap();
    let (disp, by): (String, String) = db
        .query_row("SELECT disposition, hangup_by FROM cdr", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((disp.as_str(), by.as_str()), ("answered", "system"));
}

#[test]
fn every_device_of_an_extension_rings_and_the_first_answer_wins() {
    let pbx = Pbx::start();
    let desk = register_callee(&pbx, "1002", PW2);
    let headset = register_callee(&pbx, "1002", PW2);
    assert_eq!(pbx.registrations().len(), 2);
    let ringing = spawn_sipp(&scenario("uas_ring.xml"), None, desk, &[]);
    let answering = spawn_sipp(&scenario("uas_answer.xml"), None, headset, &[]);
    let call = caller(&pbx, &scenario("uac_call.xml"), "1002", &["-d", "500"]);
    assert!(call.wait(20), "the caller is answered");
    assert!(answering.wait(10), "the headset took the call");
    assert!(
        ringing.wait(10),
        "the desk phone stopped ringing: CANCEL, 487, ACK"
    );
    let r = cdr(&pbx, 1);
    assert_eq!(r.disposition, "answered");
}

#[test]
fn an_invite_out_of_hops_gets_483_before_any_challenge() {
    let pbx = Pbx::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let inv = format!(
        "INVITE sip:1002@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKmf0;rport\r\nFrom: <sip:1001@x>;tag=a\r\n\
To: <sip:1002@x>\r\nCall-ID: hops\r\nCSeq: 1 INVITE\r\nMax-Forwards: 0\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        pbx.udp,
        s.local_addr().unwrap(),
        sdp.len()
    );
    s.send_to(inv.as_bytes(), pbx.udp).unwrap();
    let mut buf = [0u8; 2048];
    let mut got = String::new();
    while let Ok(n) = s.recv(&mut buf) {
        got = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !got.starts_with("SIP/2.0 100") {
            break;
        }
    }
    assert!(got.starts_with("SIP/2.0 483"), "{got}");
}

#[test]
fn a_record_routing_proxy_stays_in_the_dialog() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_bye.xml"), None, port, &["-d", "500"]);
    let call = caller(&pbx, &scenario("uac_record_route.xml"), "1002", &[]);
    assert!(callee.wait(20), "callee answers and hangs up");
    assert!(
        call.wait(10),
        "the 200 carried the Record-Route back and the BYE carried it as a Route"
    );
}

/// 602 in the default dialplan: switchboard answers, collects four keys and dials them.
fn dial_by_keys(scenario_name: &str) {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let call = caller(&pbx, &scenario(scenario_name), "602", &[]);
    assert!(call.wait(30), "the caller keyed 1002 and hung up");
    assert!(
        callee.wait(10),
        "1002 rang, answered and got the BYE: the keys arrived\n{}",
        pbx.log_text()
    );
    assert!(pbx.log_text().contains("digits=1002"), "{}", pbx.log_text());
}

#[test]
fn keys_as_rfc4733_events_reach_the_dialplan() {
    dial_by_keys("uac_dtmf_rfc4733.xml");
}

#[test]
fn keys_as_sip_info_reach_the_dialplan() {
    dial_by_keys("uac_dtmf_info.xml");
}

#[test]
fn a_voice_menu_plays_again_on_a_wrong_key_and_routes_the_right_one() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let call = caller(&pbx, &scenario("uac_menu.xml"), "603", &[]);
    assert!(
        call.wait(30),
        "the caller went through the menu and hung up"
    );
    assert!(callee.wait(10), "key 2 rang 1002\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(
        log.contains("key=Some('7')") && log.contains("key=Some('2')"),
        "{log}"
    );
}

/// A μ-law WAV of DTMF tones for `keys` (80 ms on, 80 ms off, after 600 ms of silence).
fn tone_file(keys: &str, path: &Path) {
    use switchboard::media::g711::ulaw;
    let rows = [697.0f32, 770.0, 852.0, 941.0];
    let cols = [1209.0f32, 1336.0, 1477.0, 1633.0];
    let pad = ["123A", "456B", "789C", "*0#D"];
    let mut data: Vec<u8> = vec![ulaw(0); 4800];
    for k in keys.chars() {
        let (r, c) = pad
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.find(k).map(|c| (r, c)))
            .unwrap();
        for i in 0..640 {
            let t = i as f32 / 8000.0;
            let v = 6000.0
                * ((2.0 * std::f32::consts::PI * rows[r] * t).sin()
                    + (2.0 * std::f32::consts::PI * cols[c] * t).sin());
            data.push(ulaw(v as i16));
        }
        data.extend(std::iter::repeat_n(ulaw(0), 640));
    }
    data.extend(std::iter::repeat_n(ulaw(0), 8000));
    common::write_ulaw_wav(&data, path);
}

/// A μ-law WAV of `lead` seconds of silence, `tone` seconds of a 440 Hz "voice" and one
/// second of silence.
fn voice_file(lead: f32, tone: f32, path: &Path) {
    use switchboard::media::g711::ulaw;
    let mut data: Vec<u8> = vec![ulaw(0); (lead * 8000.0) as usize];
    for i in 0..(tone * 8000.0) as usize {
        let t = i as f32 / 8000.0;
        data.push(ulaw(
            (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16,
        ));
    }
    data.extend(std::iter::repeat_n(ulaw(0), 8000));
    // SIPp streams the 44-byte header as audio too: whole packets keep its last one clean.
    while (44 + data.len()) % 160 != 0 {
        data.push(ulaw(0));
    }
    common::write_ulaw_wav(&data, path);
}

#[test]
fn keys_as_inband_tones_reach_the_dialplan() {
    let dir = tempfile::tempdir().unwrap();
    let tones = dir.path().join("keys.wav");
    tone_file("1002", &tones);
    let sc = dir.path().join("uac_inband.xml");
    let text = streaming_scenario(&tones);
    std::fs::write(&sc, text).unwrap();
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let call = caller(&pbx, &sc, "602", &[]);
    assert!(call.wait(30), "the caller keyed 1002 as tones and hung up");
    assert!(
        callee.wait(10),
        "1002 rang: the tones were heard\n{}",
        pbx.log_text()
    );
    assert!(pbx.log_text().contains("digits=1002"), "{}", pbx.log_text());
}

/// SIPp streaming `file` as the caller's voice, hanging up after `secs`.
fn speaking_caller(pbx: &Pbx, dir: &Path, file: &Path, dial: &str, secs: u32) -> common::SippProc {
    let sc = dir.join("uac_speak.xml");
    let text = streaming_scenario(file).replace(
        "<pause milliseconds=\"3500\"/>",
        &format!("<pause milliseconds=\"{}\"/>", secs * 1000),
    );
    std::fs::write(&sc, text).unwrap();
    caller(pbx, &sc, dial, &[])
}

#[test]
fn a_voicemail_message_is_kept_when_the_caller_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    // The prompt and beep take about 5 s; the caller speaks for 2 s after them.
    voice_file(6.5, 2.0, &voice);
    let pbx = Pbx::start();
    let call = speaking_caller(&pbx, dir.path(), &voice, "606", 10);
    assert!(
        call.wait(30),
        "the caller left a message and hung up\n{}",
        pbx.log_text()
    );
    let boxdir = pbx.state.path().join("voicemail/1001");
    let index = wait_for_file(&boxdir.join("index.jsonl"));
    let line: serde_json::Value = serde_json::from_str(index.lines().next().unwrap()).unwrap();
    assert_eq!(line["caller"], "1001", "{line}");
    let ms = line["ms"].as_u64().unwrap();
    let wav = std::fs::read(boxdir.join(line["file"].as_str().unwrap())).unwrap();
    let samples = switchboard::media::wav::decode(&wav).expect("a WAV we can play back");
    assert_eq!(samples.len() as u64 / 8, ms, "{line}");
    // The caller's two seconds of 440 Hz, whole: 100 frames of 20 ms, give or take the
    // frame each edge may straddle.
    let runs = common::tone_runs(&common::tone_frames(&samples, 440.0));
    assert!(
        runs.len() == 1 && (99..=101).contains(&runs[0].1),
        "the voice is in the file, whole: runs of 440 Hz {runs:?}"
    );
    let r = cdr(&pbx, 1);
    assert_eq!(
        (r.disposition.as_str(), r.hangup_by.as_str()),
        ("answered", "caller"),
        "{r:?}"
    );
}

#[test]
fn a_recording_ends_on_silence_and_the_dialplan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    voice_file(1.5, 1.5, &voice);
    // The caller speaks and then waits: 3 s of quiet must end the recording, and the
    // dialplan go on to "goodbye" and hang up.
    let sc = speak_then_await_bye(dir.path(), &voice, 20000);
    let pbx = Pbx::start();
    let call = caller(&pbx, &sc, "607", &[]);
    assert!(
        call.wait(30),
        "the PBX hung up after the recording\n{}",
        pbx.log_text()
    );
    let path = pbx.state.path().join("recordings/test-1001.wav");
    wait_for_file(&path);
    let samples = switchboard::media::wav::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_voice_then_trimmed(&samples, 1.5);
    let r = cdr(&pbx, 1);
    assert_eq!(r.disposition.as_str(), "answered", "{r:?}");
    assert_ne!(r.hangup_by.as_str(), "caller", "{r:?}");
}

/// The recording holds `secs` of the caller's 440 Hz voice, to the frame either edge
/// may straddle, and ends with it (the quiet after it trimmed to under 100 ms).
fn assert_voice_then_trimmed(samples: &[i16], secs: f64) {
    let runs = common::tone_runs(&common::tone_frames(samples, 440.0));
    let frames = (secs * 50.0) as usize;
    assert!(
        runs.len() == 1 && (frames - 1..=frames + 1).contains(&runs[0].1),
        "{secs} s of voice: runs of 440 Hz {runs:?} in {} samples",
        samples.len()
    );
    let end = (runs[0].0 + runs[0].1) * 160;
    assert!(
        samples.len() - end < 8 * 100,
        "quiet after the voice trimmed: voice ends at {end} of {}",
        samples.len()
    );
}

#[test]
fn a_pound_key_ends_a_recording() {
    use switchboard::media::g711::ulaw;
    let dir = tempfile::tempdir().unwrap();
    // 608 records with no quiet limit and a long maximum: only the key can end it soon.
    let (cfg, dp) = common::copy_setup(dir.path());
    let plan = std::fs::read_to_string(&dp).unwrap().replace(
        "  match \"607\" {",
        "  match \"608\" { record \"keyed\" max 60s silence 0s; hangup }\n  match \"607\" {",
    );
    std::fs::write(&dp, plan).unwrap();
    // Quiet, a second of voice, `#` as a tone (the caller offers no telephone-event), then
    // quiet for longer than the test waits.
    let mut data: Vec<u8> = vec![ulaw(0); 8000];
    for i in 0..16000 {
        let t = i as f32 / 8000.0;
        let (f1, f2, n) = if i < 8000 {
            (440.0, 440.0, 1.0)
        } else {
            (941.0, 1477.0, 0.0)
        };
        if n == 0.0 && i >= 8800 {
            data.push(ulaw(0));
            continue;
        }
        let v = 4000.0
            * ((2.0 * std::f32::consts::PI * f1 * t).sin()
                + (2.0 * std::f32::consts::PI * f2 * t).sin());
        data.push(ulaw(v as i16));
    }
    data.extend(std::iter::repeat_n(ulaw(0), 8000 * 20));
    while (44 + data.len()) % 160 != 0 {
        data.push(ulaw(0));
    }
    let voice = dir.path().join("voice.wav");
    common::write_ulaw_wav(&data, &voice);
    let sc = speak_then_await_bye(dir.path(), &voice, 10000);
    let pbx = Pbx::start_with(&cfg);
    let call = caller(&pbx, &sc, "608", &[]);
    assert!(
        call.wait(30),
        "`#` ended the recording and the PBX hung up\n{}",
        pbx.log_text()
    );
    let path = pbx.state.path().join("recordings/keyed.wav");
    wait_for_file(&path);
    let samples = switchboard::media::wav::decode(&std::fs::read(&path).unwrap()).unwrap();
    // The second of voice whole, and the recording stopped by the key: it ends within
    // the key tone's 100 ms and the detector's two frames after it, not in the quiet.
    let runs = common::tone_runs(&common::tone_frames(&samples, 440.0));
    assert!(
        runs.len() == 1 && (49..=51).contains(&runs[0].1),
        "a second of voice: runs of 440 Hz {runs:?}"
    );
    let end = (runs[0].0 + runs[0].1) * 160;
    let after_ms = (samples.len() - end) / 8;
    assert!(
        after_ms <= 160,
        "the recording ran {after_ms} ms past the voice"
    );
}

/// The in-band caller scenario, streaming `file` (a μ-law WAV).
fn streaming_scenario(file: &Path) -> String {
    std::fs::read_to_string(scenario("uac_inband.xml"))
        .unwrap()
        .replace("TONEFILE", &file.display().to_string())
}

/// A caller scenario that streams `voice` and then waits up to `ms` for our BYE.
fn speak_then_await_bye(dir: &Path, voice: &Path, ms: u32) -> PathBuf {
    let text = streaming_scenario(voice);
    let head = &text[..text.find("<pause").unwrap()];
    let sc = dir.join(format!("uac_speak_{ms}.xml"));
    std::fs::write(&sc, format!("{head}{}", common::await_bye(ms))).unwrap();
    sc
}

/// The end of a caller scenario: our BYE within `ms`, answered.
/// `path`'s text once it appears (the relay writes it off the media thread).
fn wait_for_file(path: &Path) -> String {
    for _ in 0..100 {
        if let Ok(t) = std::fs::read_to_string(path) {
            if !t.is_empty() {
                return t;
            }
        }
        if path.extension().is_some_and(|e| e == "wav") && path.is_file() {
            return String::new();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn the_owner_hears_and_deletes_a_message_and_the_phone_light_follows() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    voice_file(6.5, 2.0, &voice);
    let pbx = Pbx::start();
    // 1001's phone watches its box; the scenario fails on any count out of turn.
    let watcher = spawn_sipp(
        &scenario("uac_mwi.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "1001", "-au", "1001", "-ap", PW1],
    );
    assert!(
        common::wait_until(10, || pbx.log_text().contains("message-waiting subscribed")),
        "{}",
        pbx.log_text()
    );
    let call = speaking_caller(&pbx, dir.path(), &voice, "606", 10);
    assert!(call.wait(30), "a message was left\n{}", pbx.log_text());
    let boxdir = pbx.state.path().join("voicemail/1001");
    let index = wait_for_file(&boxdir.join("index.jsonl"));
    let line: serde_json::Value = serde_json::from_str(index.lines().next().unwrap()).unwrap();
    let file = line["file"].as_str().unwrap().to_string();
    // The owner: PIN and #, 1 for the messages, 7 to delete it while it plays, * to leave.
    let keys = [
        (300, '4'),
        (150, '0'),
        (150, '0'),
        (150, '1'),
        (150, '#'),
        (1500, '1'),
        (4000, '7'),
        (1500, '*'),
    ];
    let sc = common::keys_scenario(dir.path(), "owner", &keys, 15000);
    let owner = caller(&pbx, &sc, "*97", &[]);
    assert!(
        owner.wait(60),
        "the menu ran and said goodbye\n{}",
        pbx.log_text()
    );
    assert!(
        watcher.wait(30),
        "the phone saw 0/0, 1/0, 0/0 and the end\n{}",
        pbx.log_text()
    );
    let log = pbx.log_text();
    assert!(
        log.contains(&format!("Message(\"{file}\")")),
        "the message was played to its owner\n{log}"
    );
    assert!(!log.contains("prompt missing"), "{log}");
    assert!(
        log.contains("digits=(hidden)") && !log.contains("digits=4001"),
        "the PIN never reaches the log\n{log}"
    );
    assert!(
        common::wait_until(10, || !boxdir.join(&file).exists()),
        "the message file is gone"
    );
    let index = std::fs::read_to_string(boxdir.join("index.jsonl")).unwrap();
    let (messages, deleted, bad) = switchboard::voicemail::fold(&index);
    assert!(
        messages.is_empty() && deleted.contains(&file) && bad == 0,
        "{index}"
    );
}

#[test]
fn three_wrong_pins_end_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.extend([(300, '1'), (100, '2'), (100, '3'), (100, '4'), (100, '#')]);
    }
    let sc = common::keys_scenario(dir.path(), "wrong", &keys, 15000);
    let pbx = Pbx::start();
    let call = caller(&pbx, &sc, "*97", &[]);
    assert!(call.wait(40), "the PBX hung up\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(!log.contains("Message("), "no message offered\n{log}");
    let r = cdr(&pbx, 1);
    assert_ne!(r.hangup_by.as_str(), "caller", "{r:?}");
}

#[test]
fn a_full_disk_during_a_recording_keeps_the_call_and_its_cdr() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    voice_file(1.5, 1.5, &voice);
    let sc = speak_then_await_bye(dir.path(), &voice, 20000);
    let pbx = Pbx::start();
    // The recording is written aside first: make that write meet a full disk (ENOSPC).
    let recs = pbx.state.path().join("recordings");
    std::fs::create_dir_all(&recs).unwrap();
    std::os::unix::fs::symlink("/dev/full", recs.join("test-1001.wav.part")).unwrap();
    let call = caller(&pbx, &sc, "607", &[]);
    assert!(
        call.wait(30),
        "the dialplan went on and the PBX hung up\n{}",
        pbx.log_text()
    );
    let log = pbx.log_text();
    assert!(
        log.contains("could not save the recording") && log.contains("No space left"),
        "{log}"
    );
    assert!(!recs.join("test-1001.wav").exists(), "no partial file");
    let r = cdr(&pbx, 1);
    assert_eq!(r.disposition.as_str(), "answered", "{r:?}");
    assert_ne!(r.hangup_by.as_str(), "caller", "{r:?}");
}

#[test]
fn the_main_number_in_office_hours_offers_the_menu_and_rings_the_extension_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = common::copy_setup(dir.path());
    // The office always open, whatever the day this runs.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "open = [\"mon-fri 09:00-17:00\"]",
            "open = [\"mon-sun 00:00-24:00\"]",
        )
        .replace("closed = [\"2026-12-25\", \"2027-01-01\"]", "closed = []");
    std::fs::write(&cfg, text).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_bye.xml"), None, port, &[]);
    // A trunk caller: 9 for the directory, then 1002, during the prompts.
    let text = std::fs::read_to_string(scenario("uac_trunk_in.xml")).unwrap();
    let head = &text[..text.find("  <pause/>").unwrap()];
    let keys = [(1000, '9'), (1500, '1'), (150, '0'), (150, '0'), (150, '2')];
    let sc = common::keys_after(dir.path(), "main", head, &keys, 30000);
    let call = spawn_sipp(
        &sc,
        Some(pbx.udp),
        free_ports(1),
        &["-i", "127.0.0.2", "-s", "+15550100"],
    );
    assert!(
        callee.wait(30),
        "1002 rang, answered and hung up\n{}",
        pbx.log_text()
    );
    assert!(call.wait(20), "the caller got the BYE\n{}", pbx.log_text());
    let log = pbx.log_text();
    assert!(
        log.contains("key=Some('9')") && log.contains("digits=1002"),
        "{log}"
    );
}

#[test]
fn a_caller_answered_here_hears_ringback_while_its_dial_rings() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, dp) = common::copy_setup(dir.path());
    let plan = std::fs::read_to_string(&dp).unwrap().replace(
        "match \"600\" { answer; echo }",
        "match \"600\" { answer; echo }\n  match \"698\" { answer; dial \"1002\" timeout 5s; play \"goodbye\"; hangup }",
    );
    std::fs::write(&dp, plan).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_ring.xml"), None, port, &[]);
    let alice = Baresip::start_with("1001", PW1, pbx.udp, "manual");
    assert!(
        wait_until(20, || pbx.registrations().len() == 2),
        "{}",
        alice.log()
    );
    alice.cmd("/dial 698");
    // Rings 5 s, then the dialplan goes on: goodbye, and switchboard hangs up.
    let r = cdr_within(&pbx, 1, 20);
    assert_eq!(
        (r.callee.as_str(), r.hangup_by.as_str()),
        ("698", "system"),
        "{r:?}"
    );
    assert!(callee.wait(10), "the ring was cancelled");
    // One 2 s burst of ringback in the 5 s ring (the next is due at 6 s), then the
    // goodbye.
    let ringback = common::ringback_seconds(&alice.heard());
    assert!(
        (1.9..=2.1).contains(&ringback),
        "alice heard {ringback:.2} s of ringback\n{}",
        alice.log()
    );
    let heard: f64 = alice.heard().iter().map(|p| common::loud_seconds(p)).sum();
    assert!(
        heard >= ringback + 0.5,
        "alice heard {heard:.1} s, the goodbye too\n{}",
        alice.log()
    );
}

#[test]
fn calls_over_tcp_keep_their_connection_both_ways() {
    let pbx = Pbx::start();
    let tcp = pbx.tcp.unwrap();
    let port = register_callee(&pbx, "1002", PW2);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    // The caller hangs up: INVITE, its challenge, ACK and BYE on one connection.
    let call = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(tcp),
        common::free_ports(1),
        &[
            "-t", "t1", "-s", "1002", "-au", "1001", "-ap", PW1, "-d", "500",
        ],
    );
    assert!(call.wait(20), "{}", pbx.log_text());
    assert!(callee.wait(10), "{}", pbx.log_text());
    // The PBX hangs up: its BYE comes back down the caller's connection.
    let call = spawn_sipp(
        &scenario("uac_wait_bye.xml"),
        Some(tcp),
        common::free_ports(1),
        &["-t", "t1", "-s", "601", "-au", "1001", "-ap", PW1],
    );
    assert!(call.wait(20), "{}", pbx.log_text());
    let rows = cdrs_when(&pbx, |r| r.len() >= 2);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].hangup_by.as_str(), rows[1].hangup_by.as_str()),
        ("caller", "system")
    );
}

#[test]
fn an_invite_whose_body_arrives_in_pieces_over_tcp_is_framed_by_its_length() {
    use std::io::{Read, Write};
    let pbx = Pbx::start();
    let mut c = std::net::TcpStream::connect(pbx.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = c.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        common::free_ports(2)
    );
    let invite = format!(
        "INVITE sip:1002@{0} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKsplit\r\n\
         From: <sip:1001@{0}>;tag=s1\r\nTo: <sip:1002@{0}>\r\nCall-ID: split-body\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:1001@{me};transport=tcp>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {1}\r\n\r\n{sdp}",
        pbx.udp,
        sdp.len()
    );
    // Headers and half the body, a pause, then the rest.
    let cut = invite.len() - sdp.len() / 2;
    c.write_all(&invite.as_bytes()[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&invite.as_bytes()[cut..]).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let whole = wait_until(5, || {
        if let Ok(n) = c.read(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got.contains("SIP/2.0 407 ") || got.contains("SIP/2.0 401 ")
    });
    assert!(whole, "challenged as one whole INVITE: {got}");
    // Had the first piece been taken for the whole message, the rest would now be read as
    // a broken one and refused. An OPTIONS down the same connection shows nothing else
    // is on its way: its 200 must be all that comes next.
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKsplit-control\r\n\
         From: <sip:1001@{0}>;tag=c\r\nTo: <sip:{0}>\r\nCall-ID: split-control\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        pbx.tcp.unwrap()
    );
    c.write_all(options.as_bytes()).unwrap();
    let before = got.len();
    assert!(
        wait_until(5, || {
            if let Ok(n) = c.read(&mut buf) {
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            got.contains("Call-ID: split-control")
        }),
        "the control OPTIONS was answered: {got}"
    );
    let next = &got[before..];
    assert!(
        !next.contains("SIP/2.0 400") && next.starts_with("SIP/2.0 200 "),
        "only the control's answer followed: {next}"
    );
}

/// `name` from tests/sipp with a check that the SDP it receives is IPv6 (c=IN IP6 ::1).
fn expecting_ip6(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(scenario(name)).unwrap();
    let check = "      <ereg regexp=\"c=IN IP6 ::1\" search_in=\"body\" check_it=\"true\" assign_to=\"v6\"/>\n";
    let anchor = "assign_to=\"origin\"/>\n";
    assert!(text.contains(anchor), "{name}");
    let text = text
        .replacen(anchor, &format!("{anchor}{check}"), 1)
        .replace("<Reference variables=\"", "<Reference variables=\"v6,");
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_call_over_ipv6_relays_with_ipv6_sdp_on_both_legs() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = Pbx::start_listening(
        &common::root().join("config/switchboard.toml"),
        &["udp:[::1]:0"],
    );
    let port = common::free_ports(1);
    let reg = spawn_sipp(
        &scenario("register_auth.xml"),
        Some(pbx.udp),
        port,
        &["-i", "::1", "-s", "1002", "-au", "1002", "-ap", PW2],
    );
    assert!(reg.wait(20), "{}", pbx.log_text());
    let callee = spawn_sipp(
        &expecting_ip6("uas_answer.xml", dir.path()),
        None,
        port,
        &["-i", "::1"],
    );
    let call = spawn_sipp(
        &expecting_ip6("uac_call.xml", dir.path()),
        Some(pbx.udp),
        common::free_ports(1),
        &[
            "-i", "::1", "-s", "1002", "-au", "1001", "-ap", PW1, "-d", "500",
        ],
    );
    assert!(
        call.wait(20),
        "the caller got an IPv6 answer\n{}",
        pbx.log_text()
    );
    assert!(
        callee.wait(10),
        "the callee got an IPv6 offer\n{}",
        pbx.log_text()
    );
    assert_eq!(cdr(&pbx, 1).disposition.as_str(), "answered");
}
