//! switchboard against real SIP peers on loopback: SIPp and baresip, started and stopped
//! here. What is checked is what a peer sees on the wire plus `switchboard ctl`.

mod common;

use common::{sipp, wait_until, Baresip, Pbx};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

const PW1: &str = "demo-1001-change-me";
const PW2: &str = "demo-1002-change-me";

#[test]
fn sipp_registers_refreshes_and_unregisters_over_udp() {
    let pbx = Pbx::start();
    let out = sipp(
        "register_auth.xml",
        pbx.udp,
        &["-s", "1001", "-au", "1001", "-ap", PW1, "-m", "1"],
    );
    assert!(out, "REGISTER with auth and refresh over UDP");
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 1, "{regs:?}");
    assert_eq!(regs[0].0, "sip:1001@switchboard.local");
    assert_eq!(regs[0].2, "SIPp");
    let out = sipp(
        "unregister_auth.xml",
        pbx.udp,
        &["-s", "1001", "-au", "1001", "-ap", PW1, "-m", "1"],
    );
    assert!(out, "un-REGISTER");
    assert!(pbx.registrations().is_empty());
}

#[test]
fn sipp_registers_over_tcp_and_keeps_several_contacts() {
    let pbx = Pbx::start();
    let tcp = pbx.tcp.unwrap();
    let out = sipp(
        "register_auth.xml",
        tcp,
        &[
            "-t", "t1", "-s", "1002", "-au", "1002", "-ap", PW2, "-m", "1",
        ],
    );
    assert!(out, "REGISTER over TCP");
    // A second device for the same extension, over UDP.
    let out = sipp(
        "register_auth.xml",
        pbx.udp,
        &["-s", "1002", "-au", "1002", "-ap", PW2, "-m", "1"],
    );
    assert!(out);
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 2, "two contacts for 1002: {regs:?}");
    assert!(regs.iter().all(|r| r.0 == "sip:1002@switchboard.local"));
    let status = pbx.ctl("status");
    assert_eq!(status["status"]["registrations"], 2);
}

#[test]
fn wrong_password_is_forbidden_and_registers_nothing() {
    let pbx = Pbx::start();
    let out = sipp(
        "register_wrong_password.xml",
        pbx.udp,
        &[
            "-s",
            "1001",
            "-au",
            "1001",
            "-ap",
            "not-the-password",
            "-m",
            "1",
        ],
    );
    assert!(out, "401 then 403");
    // An extension that does not exist gets the same treatment.
    let out = sipp(
        "register_wrong_password.xml",
        pbx.udp,
        &[
            "-s",
            "7777",
            "-au",
            "7777",
            "-ap",
            "anything-at-all",
            "-m",
            "1",
        ],
    );
    assert!(out, "401 then 403 for an unknown user");
    assert!(pbx.registrations().is_empty());
    assert_eq!(pbx.ctl("status")["status"]["stats"]["auth_failures"], 2);
}

#[test]
fn options_is_answered_without_challenge() {
    let pbx = Pbx::start();
    let out = sipp("options.xml", pbx.udp, &["-m", "1"]);
    assert!(out);
    let out = sipp("options.xml", pbx.tcp.unwrap(), &["-t", "t1", "-m", "1"]);
    assert!(out);
}

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    common::rfc4475(kind, name)
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sends an OPTIONS from `s` and returns the first datagram that comes back: for a check
/// that earlier datagrams got no answer, it must be this OPTIONS's own 200 (the server
/// answers in the order it reads, so an answer to anything sent before would come first).
fn next_after_control(s: &UdpSocket, pbx: &Pbx, tag: &str) -> String {
    let options = common::control_options(s.local_addr().unwrap(), pbx.udp, tag);
    s.send_to(options.as_bytes(), pbx.udp).unwrap();
    let mut buf = [0u8; 4096];
    let n = s
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("{tag}: the control OPTIONS got no answer: {e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn is_control_answer(got: &str, tag: &str) -> bool {
    got.starts_with("SIP/2.0 200 ") && got.contains(&format!("Call-ID: control-{tag}\r\n"))
}

#[test]
fn malformed_datagrams_get_the_right_answer_and_the_server_keeps_going() {
    let pbx = Pbx::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Long enough for any answer on loopback under load; silence is judged by the
    // control OPTIONS, never by this timeout running out.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let mut recv = |s: &UdpSocket| s.recv(&mut buf).ok().map(|n| buf[..n].to_vec());
    // Garbage of every shape: nothing comes back, nothing breaks.
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"\r\n\r\n",
        b"INVITE",
        b"SIP/2.0 200 OK\r\n\r\n",
        &[0xff; 1400][..],
    ] {
        s.send_to(junk, pbx.udp).unwrap();
    }
    let got = next_after_control(&s, &pbx, "garbage");
    assert!(
        is_control_answer(&got, "garbage"),
        "garbage is dropped silently: {got}"
    );
    // Torture requests that can be answered get their one answer on the wire.
    for (name, want) in [
        ("badvers", "SIP/2.0 505"),
        ("mismatch01", "SIP/2.0 400"),
        ("scalar02", "SIP/2.0 400"),
        ("ltgtruri", "SIP/2.0 400"),
        ("clerr", "SIP/2.0 400"),
    ] {
        s.send_to(&fixture("invalid", name), pbx.udp).unwrap();
        let got = recv(&s).unwrap_or_else(|| panic!("{name}: no answer"));
        assert!(
            first_line(&got).starts_with(want),
            "{name}: {}",
            first_line(&got)
        );
    }
    // Responses that fail to parse are dropped.
    s.send_to(&fixture("invalid", "bigcode"), pbx.udp).unwrap();
    let got = next_after_control(&s, &pbx, "bigcode");
    assert!(is_control_answer(&got, "bigcode"), "bigcode dropped: {got}");
    // And the PBX still answers a well-formed OPTIONS from a real peer.
    assert!(sipp("options.xml", pbx.udp, &["-m", "1"]));
    assert!(
        pbx.ctl("status")["status"]["stats"]["parse_errors"]
            .as_u64()
            .unwrap()
            >= 7
    );
}

#[test]
fn responses_follow_rport_to_the_real_source() {
    let pbx = Pbx::start();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = s.local_addr().unwrap().port();
    // The Via claims a private address and another port, as a phone behind NAT would.
    let msg = format!(
        "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.2.3:5999;rport;branch=z9hG4bKnat1\r\n\
From: <sip:probe@10.1.2.3>;tag=1\r\nTo: <sip:{}>\r\nCall-ID: nat-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        pbx.udp, pbx.udp
    );
    s.send_to(msg.as_bytes(), pbx.udp).unwrap();
    let mut buf = [0u8; 2048];
    let n = s
        .recv(&mut buf)
        .expect("the response reaches the source port, not 5999");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    assert!(text.contains(&format!("rport={port}")), "{text}");
    assert!(text.contains("received=127.0.0.1"), "{text}");
}

#[test]
fn tcp_stream_framing_pings_and_unrecoverable_errors() {
    let pbx = Pbx::start();
    let mut c = TcpStream::connect(pbx.tcp.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let opt = |n: u32| {
        format!(
            "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKtcp{n}\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:pbx>\r\nCall-ID: tcp-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // Two messages in one write, then one split across writes, then a keep-alive ping.
    c.write_all(format!("{}{}", opt(1), opt(2)).as_bytes())
        .unwrap();
    let third = opt(3);
    c.write_all(&third.as_bytes()[..20]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(&third.as_bytes()[20..]).unwrap();
    c.write_all(b"\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    assert!(
        wait_until(5, || {
            if let Ok(n) = c.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            let t = String::from_utf8_lossy(&got);
            // The pong is written by the connection itself, so it may overtake a response.
            t.matches("SIP/2.0 200").count() == 3
                && (t.starts_with("\r\n") || t.contains("\r\n\r\n\r\n"))
        }),
        "three 200s and a pong: {}",
        String::from_utf8_lossy(&got)
    );
    // A negative Content-Length cannot be framed: 400, then the connection closes.
    c.write_all(&fixture("invalid", "ncl")).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).starts_with("SIP/2.0 400"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn baresip_registers_and_unregisters_on_exit() {
    let pbx = Pbx::start();
    let phone = Baresip::start("1001", PW1, pbx.udp);
    let registered = wait_until(10, || {
        pbx.registrations()
            .iter()
            .any(|r| r.2.starts_with("baresip"))
    });
    assert!(
        registered,
        "baresip log:\n{}\npbx log:\n{}",
        phone.log(),
        pbx.log_text()
    );
    let regs = pbx.registrations();
    assert_eq!(regs[0].0, "sip:1001@switchboard.local");
    let log = phone.stop();
    assert!(
        wait_until(5, || pbx.registrations().is_empty()),
        "baresip un-registers on exit:\n{log}"
    );
}

#[test]
fn baresip_with_a_wrong_password_is_refused() {
    let pbx = Pbx::start();
    let phone = Baresip::start("1002", "wrong-password-here", pbx.udp);
    assert!(wait_until(10, || pbx.ctl("status")["status"]["stats"]
        ["auth_failures"]
        .as_u64()
        .unwrap()
        >= 1));
    assert!(pbx.registrations().is_empty());
    let log = phone.stop();
    assert!(log.contains("403"), "{log}");
}

#[test]
fn sipp_registers_over_ipv6_udp_and_tcp() {
    let pbx = Pbx::start_listening(
        &common::root().join("config/switchboard.toml"),
        &["udp:[::1]:0", "tcp:[::1]:0"],
    );
    assert!(pbx.udp.is_ipv6());
    let out = sipp(
        "register_auth.xml",
        pbx.udp,
        &[
            "-i", "::1", "-s", "1001", "-au", "1001", "-ap", PW1, "-m", "1",
        ],
    );
    assert!(out, "REGISTER over UDP/IPv6");
    let out = sipp(
        "register_auth.xml",
        pbx.tcp.unwrap(),
        &[
            "-i", "::1", "-t", "t1", "-s", "1002", "-au", "1002", "-ap", PW2, "-m", "1",
        ],
    );
    assert!(out, "REGISTER over TCP/IPv6");
    let regs = pbx.registrations();
    assert_eq!(regs.len(), 2, "{regs:?}");
    assert!(regs.iter().all(|r| r.1.contains("[::1]")), "{regs:?}");
}

/// A real cracking tool (sipvicious's svcrack) guessing 1001's password from a dictionary
/// whose last word is the right one: after the configured failures (10) its source is
/// banned and dropped, so it runs out of answers and finds nothing; the extension's phone
/// elsewhere registers meanwhile; `ctl bans` shows the ban and `ctl unban` lifts it.
#[test]
fn svcrack_is_banned_before_it_finds_the_password() {
    common::need("svcrack");
    let pbx = Pbx::start();
    let dir = tempfile::tempdir().unwrap();
    let dict = dir.path().join("words.txt");
    let mut words: Vec<String> = (1..=30).map(|i| format!("guess-{i}")).collect();
    words.push(PW1.to_string());
    std::fs::write(&dict, words.join("\n") + "\n").unwrap();
    // svcrack gives up 10 s after its last answer; bounded here all the same.
    let out = std::process::Command::new("timeout")
        .args(["90", "svcrack", "-u", "1001", "-d"])
        .arg(&dict)
        .args(["-p", &pbx.udp.port().to_string(), "127.0.0.1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("found nothing"), "{said}");
    assert!(!said.contains(PW1), "{said}");
    let status = pbx.ctl("status");
    let stats = &status["status"]["stats"];
    assert_eq!(stats["auth_failures"], 10, "{status}");
    assert_eq!(stats["bans"], 1, "{status}");
    assert!(stats["banned_messages"].as_u64().unwrap() > 0, "{status}");
    let bans = pbx.ctl("bans");
    let listed = bans["bans"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{bans}");
    assert_eq!(listed[0]["addr"], "127.0.0.1");
    assert!(listed[0]["banned_for_s"].as_u64().unwrap() > 500, "{bans}");
    // The phone of 1001, from another address, is not shut out.
    let phone = ["-s", "1001", "-au", "1001", "-ap", PW1, "-i", "127.0.0.2"];
    assert!(sipp("register_auth.xml", pbx.udp, &phone));
    // Lifted, the address is answered again.
    let (ok, out, err) = pbx.ctl_raw("unban 127.0.0.1");
    assert!(ok && out.contains("ok"), "{out}{err}");
    assert!(pbx.ctl("bans")["bans"].as_array().unwrap().is_empty());
    assert!(sipp("options.xml", pbx.udp, &[]));
    let (ok, _, err) = pbx.ctl_raw("unban 127.0.0.1");
    assert!(!ok && err.contains("neither banned nor watched"), "{err}");
}

/// sipvicious's extension scanner (svwar) over the extensions 995-1010, 1001-1003 among
/// them, with each method it knows: every extension is answered alike (a challenge, an
/// OPTIONS 200, a SUBSCRIBE without an event refused), so it lists none of them.
#[test]
fn svwar_finds_no_extension_with_any_method() {
    common::need("svwar");
    let pbx = Pbx::start();
    // svwar keeps sessions under its HOME: one of its own.
    let home = tempfile::tempdir().unwrap();
    for method in ["REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE"] {
        let out = std::process::Command::new("timeout")
            .args([
                "60", "svwar", "--force", "-e", "995-1010", "-m", method, "-p",
            ])
            .arg(pbx.udp.port().to_string())
            // A port of its own per scan: svwar does not ACK every challenge to its
            // INVITEs, whose retransmissions would reach the next scan's socket.
            .arg("-P")
            .arg(common::free_ports(1).to_string())
            .arg("127.0.0.1")
            .env("HOME", home.path())
            .current_dir(home.path())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Its findings are rows of a table: `| 1001 | reqauth |`.
        let found: Vec<u32> = said
            .lines()
            .filter_map(|l| l.strip_prefix('|'))
            .filter_map(|l| l.split('|').next()?.trim().parse().ok())
            .filter(|e| (995..=1010).contains(e))
            .collect();
        assert!(found.is_empty(), "{method}: {found:?}\n{said}");
        assert!(
            said.contains("found nothing") || said.contains("Extension"),
            "{method}: {said}"
        );
    }
    // Scanning is no failed authentication: nobody is banned for it.
    assert!(pbx.ctl("bans")["bans"].as_array().unwrap().is_empty());
}

/// A flood of OPTIONS from one address (3,000 a second for 4 s) while a phone elsewhere
/// places 10 calls to another: the flood is held to its source's rate and dropped
/// beyond it, and every real call is challenged, answered, bridged and hung up.
#[test]
fn a_flood_from_one_address_does_not_starve_real_calls() {
    let pbx = Pbx::start();
    let port = common::register_callee(&pbx, "1002", PW2);
    let callee = common::spawn_sipp(
        &common::scenario("uas_answer.xml"),
        None,
        port,
        &["-m", "10", "-mp", &common::free_ports(4).to_string()],
    );
    let flood = common::spawn_sipp(
        &common::scenario("options.xml"),
        Some(pbx.udp),
        common::free_ports(1),
        &[
            "-i",
            "127.0.0.5",
            "-r",
            "3000",
            "-m",
            "12000",
            "-l",
            "12000",
            "-timeout",
            "10s",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let calls = common::spawn_sipp(
        &common::scenario("uac_call.xml"),
        Some(pbx.udp),
        common::free_ports(1),
        &[
            "-s",
            "1002",
            "-au",
            "1001",
            "-ap",
            PW1,
            "-m",
            "10",
            "-r",
            "4",
            "-d",
            "500",
            "-mp",
            &common::free_ports(4).to_string(),
        ],
    );
    assert!(calls.wait(40), "every real call went through the flood");
    assert!(callee.wait(10));
    // The flood never all got through: SIPp counts its unanswered OPTIONS as failures.
    assert!(!flood.wait(30), "the flood was answered in full");
    let status = pbx.ctl("status");
    let limited = status["status"]["stats"]["rate_limited"].as_u64().unwrap();
    assert!(limited > 5000, "{status}");
    let cdrs = pbx.ctl("calls");
    assert!(cdrs["calls"].as_array().unwrap().is_empty(), "{cdrs}");
}

/// SIP over TCP under caps (`[sip] tcp_*`, here 3 per address and 2 s to speak): a
/// fourth connection from one address is closed at once while another address still
/// gets in, connections that never speak are closed, and one that spoke is answered and
/// kept open past that time.
#[test]
fn tcp_connections_are_capped_per_address_and_silent_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = common::copy_setup(dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("tcp_max_per_source = 64", "tcp_max_per_source = 3")
        .replace("tcp_first_message_s = 30", "tcp_first_message_s = 2");
    std::fs::write(&cfg, text).unwrap();
    let pbx = Pbx::start_with(&cfg);
    let to = pbx.tcp.unwrap();
    let options = |c: &mut TcpStream, n: u32| -> String {
        let msg = format!(
            "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKcap{n}\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: cap-{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        c.write_all(msg.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // Closed by the server: a read gives end of file (or a reset), not a timeout.
    let closed = |c: &mut TcpStream| {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 16];
        match c.read(&mut b) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    };
    let mut talker = TcpStream::connect(to).unwrap();
    talker
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(options(&mut talker, 1).starts_with("SIP/2.0 200 "));
    let mut silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(to).unwrap()).collect();
    let mut fourth = TcpStream::connect(to).unwrap();
    let started = std::time::Instant::now();
    assert!(closed(&mut fourth), "the fourth connection was kept");
    assert!(started.elapsed() < Duration::from_secs(1), "closed at once");
    // Another address is not held to 127.0.0.1's count.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(
            &"127.0.0.9:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    other.connect(&to.into()).unwrap();
    let mut other: TcpStream = other.into();
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(options(&mut other, 2).starts_with("SIP/2.0 200 "));
    // The silent ones are closed after their 2 s; the one that spoke is kept.
    for c in &mut silent {
        assert!(closed(c), "a silent connection was kept");
    }
    assert!(options(&mut talker, 3).starts_with("SIP/2.0 200 "));
    let status = pbx.ctl("status");
    assert!(
        status["status"]["tcp_refused"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["status"]["tcp_idle_closed"].as_u64().unwrap() >= 2,
        "{status}"
    );
}
