//! Trunks with a SIPp peer standing in for the provider on 127.0.0.2: calls in by DID
//! (recognised by address, no digest), calls out with number rewriting and caller ID,
//! the provider's digest challenge answered, and no transit from trunk to trunk.

mod common;

use common::{free_ports, register_callee, root, scenario, spawn_sipp, wait_until, Pbx};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW1: &str = "demo-1001-change-me";
const PW2: &str = "demo-1002-change-me";

/// The shipped config with the demo trunk at 127.0.0.2:`port`, plus `extra` trunk keys.
fn config(dir: &Path, port: u16, extra: &str, dialplan: Option<&str>) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("config/switchboard.toml")).unwrap();
    text = text.replace(
        "address = \"127.0.0.2:5060\"",
        &format!("address = \"127.0.0.2:{port}\"\n{extra}"),
    );
    if let Some(dp) = dialplan {
        let p = dir.join("plan.dp");
        std::fs::write(&p, dp).unwrap();
        text = text.replace(
            "dialplan = \"dialplans/default.dp\"",
            &format!("dialplan = {:?}", p.display().to_string()),
        );
    }
    let p = dir.join("switchboard.toml");
    std::fs::write(&p, text).unwrap();
    p
}

struct Row {
    caller: String,
    callee: String,
    did: Option<String>,
    trunk: Option<String>,
    disposition: String,
}

fn cdrs(pbx: &Pbx) -> Vec<Row> {
    let Ok(db) = rusqlite::Connection::open(pbx.state.path().join("cdr.sqlite")) else {
        return Vec::new();
    };
    let Ok(mut st) =
        db.prepare("SELECT caller, callee, did, trunk, disposition FROM cdr ORDER BY id")
    else {
        return Vec::new();
    };
    st.query_map([], |r| {
        Ok(Row {
            caller: r.get(0)?,
            callee: r.get(1)?,
            did: r.get(2)?,
            trunk: r.get(3)?,
            disposition: r.get(4)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_call_in_from_the_trunk_reaches_the_did_extension() {
    let pbx = Pbx::start();
    let port = register_callee(&pbx, "1001", PW1);
    let callee = spawn_sipp(&scenario("uas_answer.xml"), None, port, &[]);
    let trunk = spawn_sipp(
        &scenario("uac_trunk_in.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-i", "127.0.0.2", "-s", "+15550101", "-d", "500"],
    );
    assert!(
        trunk.wait(20),
        "the trunk's call is answered without a challenge"
    );
    assert!(callee.wait(10), "1001 rang and talked");
    assert!(wait_until(10, || !cdrs(&pbx).is_empty()));
    let r = cdrs(&pbx).remove(0);
    assert_eq!(
        (r.caller.as_str(), r.callee.as_str(), r.disposition.as_str()),
        ("+15557654321", "+15550101", "answered")
    );
    assert_eq!(
        (r.did.as_deref(), r.trunk.as_deref()),
        (Some("+15550101"), Some("demo"))
    );
}

#[test]
fn an_unknown_address_is_challenged_not_trusted() {
    let pbx = Pbx::start();
    let s = UdpSocket::bind("127.0.0.3:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let inv = format!(
        "INVITE sip:+15550100@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKtr1;rport\r\nFrom: <sip:+1555@127.0.0.3>;tag=t\r\n\
To: <sip:+15550100@x>\r\nCall-ID: notrunk\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        pbx.udp,
        s.local_addr().unwrap(),
        sdp.len()
    );
    s.send_to(inv.as_bytes(), pbx.udp).unwrap();
    let mut buf = [0u8; 4096];
    let mut got = String::new();
    while let Ok(n) = s.recv(&mut buf) {
        got = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !got.starts_with("SIP/2.0 100") {
            break;
        }
    }
    assert!(got.starts_with("SIP/2.0 407"), "{got}");
}

#[test]
fn a_call_out_is_rewritten_and_presents_the_trunk_caller_id() {
    let dir = tempfile::tempdir().unwrap();
    let tport = free_ports(1);
    let pbx = Pbx::start_with(&config(dir.path(), tport, "", None));
    let provider = spawn_sipp(
        &scenario("uas_trunk.xml"),
        None,
        tport,
        &["-i", "127.0.0.2"],
    );
    let call = spawn_sipp(
        &scenario("uac_call.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "95551230000", "-au", "1001", "-ap", PW1, "-d", "500"],
    );
    assert!(call.wait(20), "1001's call out is answered");
    assert!(
        provider.wait(10),
        "the provider saw +15551230000 from +15550100 (From and PAI)"
    );
    assert!(wait_until(10, || !cdrs(&pbx).is_empty()));
    let r = cdrs(&pbx).remove(0);
    assert_eq!(
        (
            r.caller.as_str(),
            r.callee.as_str(),
            r.trunk.as_deref(),
            r.did.as_deref()
        ),
        ("1001", "95551230000", Some("demo"), None)
    );
}

/// A call out through a provider that challenges with 401 and checks the digest response
/// against acct-77's password; the trunk is configured with `password`, and the caller
/// runs `caller` (a SIPp scenario). Returns the PBX and (caller, provider) results.
fn call_out_through_a_checking_provider(
    dir: &Path,
    password: &str,
    caller: &Path,
    extra: &[&str],
) -> (Pbx, bool, bool) {
    let tport = free_ports(1);
    let pbx = Pbx::start_with(&config(
        dir,
        tport,
        &format!("username = \"acct-77\"\npassword = \"{password}\""),
        None,
    ));
    let provider = spawn_sipp(
        &scenario("uas_trunk_auth.xml"),
        None,
        tport,
        &["-i", "127.0.0.2"],
    );
    let mut args = vec!["-s", "95551230000", "-au", "1001", "-ap", PW1];
    args.extend_from_slice(extra);
    let call = spawn_sipp(caller, Some(pbx.udp), free_ports(1), &args);
    let call_ok = call.wait(20);
    let provider_ok = provider.wait(10);
    (pbx, call_ok, provider_ok)
}

#[test]
fn the_providers_digest_challenge_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (pbx, call, provider) = call_out_through_a_checking_provider(
        dir.path(),
        "trunk-secret",
        &scenario("uac_call.xml"),
        &["-d", "500"],
    );
    assert!(
        call,
        "the call goes through after the provider's 401\n{}",
        pbx.log_text()
    );
    assert!(
        provider,
        "the second INVITE carried the right digest response for acct-77"
    );
}

/// The provider scenarios check the digest response itself, not only its user name: with
/// the wrong password configured, the provider refuses the call and its scenario fails,
/// and so does its registrar's.
#[test]
fn a_wrong_trunk_password_is_refused_by_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let (pbx, call, provider) = call_out_through_a_checking_provider(
        dir.path(),
        "not-the-secret",
        &common::expecting(503, dir.path()),
        &[],
    );
    assert!(!provider, "the provider saw a wrong digest response");
    assert!(call, "the call fails\n{}", pbx.log_text());
    assert!(
        pbx.log_text().contains("callee refused call=1 code=403"),
        "the provider refused the digest\n{}",
        pbx.log_text()
    );
    drop(pbx);
    let dir = tempfile::tempdir().unwrap();
    let (pbx, registrar) = registering_with(dir.path(), "not-the-secret");
    assert!(
        !registrar.wait(20),
        "the registrar saw a wrong digest response"
    );
    let t = &pbx.ctl("status")["status"]["trunk_registrations"][0];
    assert_ne!(t["state"], "registered", "{t}");
}

#[test]
fn a_trunk_call_never_goes_out_on_a_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let tport = free_ports(1);
    let plan = "context internal { match \"600\" { echo } }\ncontext inbound { match any { dial trunk \"demo\" \"$dialed\"; hangup } }\n";
    let pbx = Pbx::start_with(&config(dir.path(), tport, "", Some(plan)));
    let fail = std::fs::read_to_string(scenario("uac_trunk_in.xml")).unwrap();
    // Expect 503 instead of an answer.
    let cut = fail
        .find("  <recv response=\"100\" optional=\"true\"/>")
        .unwrap();
    let expect = format!(
        "{}  <recv response=\"100\" optional=\"true\"/>\n  <recv response=\"503\"/>\n  <send>\n    <![CDATA[\n      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport\n      From: <sip:+15557654321@[local_ip]>;tag=[pid]SIPpTag[call_number]\n      To: <sip:[service]@[remote_ip]>[peer_tag_param]\n      Call-ID: [call_id]\n      CSeq: 1 ACK\n      Content-Length: 0\n    ]]>\n  </send>\n</scenario>\n",
        &fail[..cut]
    );
    let sc = dir.path().join("uac_transit.xml");
    std::fs::write(&sc, expect).unwrap();
    let trunk = spawn_sipp(
        &sc,
        Some(pbx.udp),
        free_ports(1),
        &["-i", "127.0.0.2", "-s", "+18005550199"],
    );
    assert!(trunk.wait(20), "transit refused with 503");
    assert!(pbx.log_text().contains("may not dial a trunk"));
}

/// A provider's registrar (checking acct-77's digest against trunk-secret) and a PBX whose
/// trunk registers there with `password`.
fn registering_with(dir: &Path, password: &str) -> (Pbx, common::SippProc) {
    let tport = free_ports(1);
    let registrar = spawn_sipp(
        &scenario("uas_registrar.xml"),
        None,
        tport,
        &["-i", "127.0.0.2"],
    );
    let pbx = Pbx::start_with(&config(
        dir,
        tport,
        &format!("username = \"acct-77\"\npassword = \"{password}\"\nregister = true"),
        None,
    ));
    (pbx, registrar)
}

#[test]
fn switchboard_registers_with_a_trunk_that_wants_it() {
    let dir = tempfile::tempdir().unwrap();
    let (pbx, registrar) = registering_with(dir.path(), "trunk-secret");
    assert!(
        registrar.wait(20),
        "401 answered with acct-77's credentials"
    );
    let registered = wait_until(5, || {
        let s = pbx.ctl("status");
        let t = &s["status"]["trunk_registrations"][0];
        t["state"] == "registered"
            && t["expires_in"]
                .as_u64()
                .is_some_and(|e| (100..=120).contains(&e))
    });
    assert!(registered, "{}", pbx.ctl("status"));
}

#[test]
fn privacy_hides_the_caller_from_the_called_party_but_not_from_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let tport = free_ports(1);
    let pbx = Pbx::start_with(&config(dir.path(), tport, "", None));
    let provider = spawn_sipp(
        &scenario("uas_trunk_privacy.xml"),
        None,
        tport,
        &["-i", "127.0.0.2"],
    );
    let call = spawn_sipp(
        &scenario("uac_privacy.xml"),
        Some(pbx.udp),
        free_ports(1),
        &["-s", "95551230000", "-au", "1001", "-ap", PW1, "-d", "300"],
    );
    assert!(call.wait(20));
    assert!(provider.wait(10), "From anonymous, Privacy: id, PAI kept");
}

#[test]
fn a_trunk_caller_who_asks_for_a_callback_is_called_back_through_the_trunk() {
    trunk_callback(false);
}

#[test]
fn a_callback_through_a_trunk_that_challenges_answers_with_the_trunks_credentials() {
    trunk_callback(true);
}

/// A caller from the trunk asks for a callback in the support queue; 1002 answers it and
/// the caller is called back through the trunk (which challenges first, with `auth`),
/// presented as the trunk's calls out are.
fn trunk_callback(auth: bool) {
    let dir = tempfile::tempdir().unwrap();
    let tport = free_ports(1);
    let plan = "context internal { match \"600\" { echo } }\ncontext inbound { match any { queue \"support\"; hangup } }\n";
    let creds = if auth {
        "username = \"acct-77\"\npassword = \"trunk-secret\""
    } else {
        ""
    };
    let pbx = Pbx::start_with(&config(dir.path(), tport, creds, Some(plan)));
    // The provider's caller waits in the queue (no agent has a phone yet), presses 1 and
    // is hung up on after the confirmation.
    let text = std::fs::read_to_string(scenario("uac_trunk_in.xml")).unwrap();
    let head = &text[..text.find("  <pause/>").unwrap()];
    let sc = common::keys_after(dir.path(), "callback", head, &[(1500, '1')], 20000);
    let caller = spawn_sipp(
        &sc,
        Some(pbx.udp),
        free_ports(1),
        &["-i", "127.0.0.2", "-s", "+15550100"],
    );
    assert!(caller.wait(30), "confirmed and hung up\n{}", pbx.log_text());
    // The provider takes the call back, checking the number called and the caller ID
    // (and, with `auth`, challenging first); 1002 answers first and hangs up 3 s in.
    let provider = if auth {
        let sc = std::fs::read_to_string(scenario("uas_trunk_proxy_auth.xml"))
            .unwrap()
            .replace("+15551230000", "+15557654321");
        let path = dir.path().join("uas_callback_auth.xml");
        std::fs::write(&path, sc).unwrap();
        spawn_sipp(&path, None, tport, &["-i", "127.0.0.2"])
    } else {
        spawn_sipp(
            &scenario("uas_answer.xml"),
            None,
            tport,
            &["-i", "127.0.0.2"],
        )
    };
    let agent_port = register_callee(&pbx, "1002", PW2);
    let agent = spawn_sipp(&scenario("uas_bye.xml"), None, agent_port, &["-d", "3000"]);
    assert!(agent.wait(40), "the agent talked\n{}", pbx.log_text());
    assert!(
        provider.wait(10),
        "the caller was called back through the trunk\n{}",
        pbx.log_text()
    );
    assert!(wait_until(10, || cdrs(&pbx).len() == 2));
    let r = &cdrs(&pbx)[1];
    assert_eq!(
        (
            r.caller.as_str(),
            r.callee.as_str(),
            r.trunk.as_deref(),
            r.disposition.as_str()
        ),
        ("+15557654321", "callback", Some("demo"), "answered")
    );
}
