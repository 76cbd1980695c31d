//! RFC 4475 torture messages (tests/fixtures/sip/rfc4475), fed to the parser as UDP
//! datagrams and as a TCP stream. Valid ones must parse with the right content; each
//! invalid one must get the one right answer (a status code, or a silent drop).

mod common;

use bytes::{Bytes, BytesMut};
use switchboard::sip::header::{self, Transport};
use switchboard::sip::{
    parse_datagram, parse_stream, Frame, HeaderName, Limits, Message, Method, ParseErrorKind,
};

fn fixture(kind: &str, name: &str) -> Bytes {
    Bytes::from(common::rfc4475(kind, name))
}

fn valid(name: &str) -> Message {
    parse_datagram(fixture("valid", name), &Limits::default())
        .unwrap_or_else(|e| panic!("{name} must parse: {e}"))
}

#[test]
fn all_valid_messages_parse_as_datagrams_and_on_a_stream() {
    for name in common::RFC4475_VALID {
        let m = valid(name);
        // The same bytes on a stream frame the same message (dblreq: the stream sees the
        // trailing junk as the start of a next message, which is not what we check here).
        let mut buf = BytesMut::from(&fixture("valid", name)[..]);
        match parse_stream(&mut buf, &Limits::default()) {
            Ok(Some(Frame::Message(s))) => assert_eq!(s, m, "{name}"),
            other => panic!("{name} on a stream: {other:?}"),
        }
        // Printing and re-parsing keeps every header and the body.
        let again = parse_datagram(m.to_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name} reprinted: {e}"));
        assert_eq!(again.start, m.start, "{name}");
        assert_eq!(again.body, m.body, "{name}");
        let strip = |m: &Message| {
            m.headers
                .iter()
                .filter(|h| h.name != HeaderName::ContentLength)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&again), strip(&m), "{name}");
    }
}

#[test]
fn wsinv_folding_and_whitespace() {
    let m = valid("wsinv");
    assert_eq!(m.request_line().unwrap().method, Method::Invite);
    assert_eq!(m.to_hdr().unwrap().tag().unwrap().as_ref(), b"1918181833n");
    assert_eq!(m.from_hdr().unwrap().tag().unwrap().as_ref(), b"98asjd8");
    assert_eq!(m.cseq().unwrap().seq, 9);
    let vias: Vec<_> = m
        .headers_named(&HeaderName::Via)
        .flat_map(|v| header::parse_via_list(v).unwrap())
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch().unwrap().as_ref(), b"390skdjuw");
    assert_eq!(vias[1].transport, Transport::Tcp);
    assert_eq!(&vias[2].host[..], b"192.168.255.111");
    assert_eq!(vias[2].branch().unwrap().as_ref(), b"z9hG4bK30239");
    let folded = m
        .header(&HeaderName::Other(Bytes::from_static(b"NewFangledHeader")))
        .unwrap();
    assert_eq!(
        folded.as_ref(),
        b"newfangled value continued newfangled value"
    );
    assert_eq!(m.body.len(), 150);
    let contacts = header::parse_contact_list(m.header(&HeaderName::Contact).unwrap()).unwrap();
    let header::Contact::Addr(c) = &contacts[0] else {
        panic!()
    };
    assert_eq!(
        header::param(&c.params, "q").flatten().unwrap().as_ref(),
        b"0.33"
    );
}

#[test]
fn intmeth_unknown_method_and_odd_uri() {
    let m = valid("intmeth");
    let rl = m.request_line().unwrap();
    assert_eq!(
        rl.method.as_bytes(),
        b"!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(
        rl.uri.user.as_deref().unwrap(),
        &b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..]
            [..b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*".len()]
    );
    assert_eq!(&rl.uri.host[..], b"example.com");
    assert_eq!(m.cseq().unwrap().method, rl.method);
}

#[test]
fn escapes_are_kept_and_decoded_on_demand() {
    let m = valid("esc01");
    assert_eq!(
        m.request_line().unwrap().uri.user_decoded().unwrap(),
        "sips:user@example.com"
    );
    let m = valid("escnull");
    let to = m.to_hdr().unwrap();
    assert_eq!(to.uri.user_decoded().unwrap(), "null-\0-null");
    let m = valid("esc02");
    assert_eq!(m.request_line().unwrap().method.as_bytes(), b"RE%47IST%45R");
    assert_eq!(
        m.headers_named(&HeaderName::Contact).count(),
        2,
        "C%6Fntact is an unknown header, not Contact"
    );
}

#[test]
fn framing_cases() {
    let m = valid("dblreq");
    assert_eq!(m.request_line().unwrap().method, Method::Register);
    assert!(m.body.is_empty(), "bytes after Content-Length are ignored");
    let m = valid("mpart01");
    assert_eq!(m.body.len(), 553);
    let m = valid("semiuri");
    assert_eq!(
        m.request_line().unwrap().uri.user.as_deref().unwrap(),
        b"user;par=u%40example.net"
    );
    let m = valid("transports");
    let ts: Vec<_> = m
        .headers_named(&HeaderName::Via)
        .flat_map(|v| header::parse_via_list(v).unwrap())
        .map(|v| v.transport.as_str().to_string())
        .collect();
    assert_eq!(ts, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let m = valid("lwsdisp");
    assert_eq!(
        m.from_hdr().unwrap().display.as_deref(),
        Some(&b"caller"[..])
    );
    let m = valid("longreq");
    assert_eq!(
        m.headers_named(&HeaderName::Via)
            .flat_map(|v| header::parse_via_list(v).unwrap())
            .count(),
        34
    );
}

#[test]
fn reason_phrases() {
    let m = valid("unreason");
    assert_eq!(m.status().unwrap().as_u16(), 200);
    let switchboard::sip::StartLine::Response(s) = &m.start else {
        panic!()
    };
    assert!(std::str::from_utf8(&s.reason).unwrap().contains("простое"));
    let m = valid("noreason");
    let switchboard::sip::StartLine::Response(s) = &m.start else {
        panic!()
    };
    assert!(s.reason.is_empty());
}

/// Expected verdict per invalid message: `Some(code)` = answer with it, `None` = drop.
const INVALID: [(&str, Option<u16>); 19] = [
    ("badinv01", Some(400)),
    ("clerr", Some(400)),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    // The Date header is not used by a registrar or B2BUA: RFC 4475 §3.1.2.12 lets us
    // ignore its bad time zone.
    ("baddate", Some(0)),
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", Some(400)),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(400)),
    ("bigcode", None),
];

#[test]
fn every_invalid_message_gets_the_one_right_answer() {
    for (name, want) in INVALID {
        let res = parse_datagram(fixture("invalid", name), &Limits::default());
        match (want, res) {
            (Some(0), Ok(_)) => {}
            (Some(code), Err(e)) => {
                assert_eq!(e.status().map(|s| s.as_u16()), Some(code), "{name}: {e}");
                let resp = e.response().unwrap();
                let bytes = resp.to_bytes();
                // The answer echoes the request's Call-ID and CSeq. It parses as a response
                // unless what was broken is a header it must copy back (badinv01, scalar02).
                assert!(
                    bytes.starts_with(format!("SIP/2.0 {code} ").as_bytes()),
                    "{name}"
                );
                assert!(
                    resp.call_id().is_ok() && resp.header(&HeaderName::CSeq).is_some(),
                    "{name}"
                );
                let echoes_broken = matches!(
                    e.kind,
                    ParseErrorKind::Header {
                        name: "Via" | "From" | "To" | "Call-ID" | "CSeq",
                        ..
                    }
                ) || e.kind == ParseErrorKind::Version;
                if !echoes_broken {
                    let back = parse_datagram(bytes, &Limits::default())
                        .unwrap_or_else(|e| panic!("{name}: our {code} does not parse: {e}"));
                    assert_eq!(back.status().unwrap().as_u16(), code);
                }
            }
            (None, Err(e)) => assert_eq!(e.status(), None, "{name} must be dropped"),
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn invalid_messages_on_a_stream() {
    // clerr on a stream: not enough bytes yet, so wait; ncl: unrecoverable, answer 400.
    let mut buf = BytesMut::from(&fixture("invalid", "clerr")[..]);
    assert!(matches!(
        parse_stream(&mut buf, &Limits::default()),
        Ok(None)
    ));
    let mut buf = BytesMut::from(&fixture("invalid", "ncl")[..]);
    let e = parse_stream(&mut buf, &Limits::default()).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
}

/// The port of the top Via's sent-by (5060 when none is written): where the server sends
/// its response over UDP, at the address the request came from (RFC 3261 §18.2.2).
/// Read from the text, since the invalid messages may not parse.
fn sent_by_port(msg: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(msg);
    for line in text.lines() {
        let l = line.trim_start().to_ascii_lowercase();
        let Some(rest) = l.strip_prefix("via").or_else(|| l.strip_prefix('v')) else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        // SIP / 2.0 / UDP host[:port]
        let Some(after) = rest.split('/').nth(2) else {
            continue;
        };
        let after = after.trim_start();
        let host = after
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split([';', ','])
            .next()
            .unwrap_or("");
        return match host.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || host.starts_with('[') => p.parse().unwrap_or(5060),
            _ => 5060,
        };
    }
    5060
}

type Want = (&'static str, &'static str, &'static [u16]);

/// Every RFC 4475 parser test (§3.1) sent to the running server over UDP, each from its
/// own address (as many clients on a network would send them: several share a branch),
/// and the status codes of what came back: the valid ones are handled (challenged,
/// answered, refused as not implemented), the invalid ones refused with 400/505 before
/// anything else, and responses with nothing to match dropped.
#[test]
fn every_message_sent_to_the_running_server_gets_its_answer() {
    answers_on_the_wire(
        77,
        &[
            // wsinv has a To tag: a re-INVITE for a dialog that does not exist.
            ("valid", "wsinv", &[100, 481]),
            ("valid", "intmeth", &[501]),
            ("valid", "esc01", &[100, 407]),
            ("valid", "escnull", &[401]),
            ("valid", "esc02", &[501]),
            ("valid", "lwsdisp", &[200]),
            ("valid", "longreq", &[100, 407]),
            ("valid", "dblreq", &[401]),
            ("valid", "semiuri", &[200]),
            ("valid", "transports", &[200]),
            ("valid", "mpart01", &[501]),
            ("valid", "unreason", &[]),
            ("valid", "noreason", &[]),
            ("invalid", "badinv01", &[400]),
            ("invalid", "clerr", &[400]),
            ("invalid", "ncl", &[400]),
            ("invalid", "scalar02", &[400]),
            ("invalid", "scalarlg", &[]),
            ("invalid", "quotbal", &[400]),
            ("invalid", "ltgtruri", &[400]),
            ("invalid", "lwsruri", &[400]),
            ("invalid", "lwsstart", &[400]),
            ("invalid", "trws", &[400]),
            ("invalid", "escruri", &[400]),
            ("invalid", "baddate", &[100, 407]),
            ("invalid", "regbadct", &[400]),
            ("invalid", "badaspec", &[400]),
            ("invalid", "baddn", &[400]),
            ("invalid", "badvers", &[505]),
            ("invalid", "mismatch01", &[400]),
            ("invalid", "mismatch02", &[400]),
            ("invalid", "bigcode", &[]),
        ],
    );
}

/// RFC 4475's transaction (§3.2), application (§3.3) and backward-compatibility (§3.4)
/// tests over the wire, as the parser tests are, each answered as the RFC says: anything
/// refused for what the request is (416, 420, 415, 406, 400) is refused before any
/// challenge, so its sender learns what is wrong without a round of digest.
#[test]
fn the_semantic_torture_messages_get_the_answers_the_rfc_gives() {
    answers_on_the_wire(
        78,
        &[
            // §3.2.1: a bare magic cookie is a branch of an RFC 2543 client, still answered.
            ("semantic", "badbranch", &[200]),
            // §3.3.1: no From, To or Call-ID: 400 with what it had, no silence.
            ("semantic", "insuf", &[400]),
            ("semantic", "unkscm", &[416]),
            ("semantic", "unksm2", &[400]),
            // §3.3.5: the UAS refuses the Require it lacks and ignores Proxy-Require.
            ("semantic", "bext01", &[420]),
            ("semantic", "invut", &[100, 415]),
            // §3.3.7: an Authorization of a scheme we do not know is met with ours.
            ("semantic", "regaut01", &[401]),
            ("semantic", "multi01", &[400]),
            ("semantic", "mcl01", &[400]),
            // §3.3.10: a response nobody asked for is dropped.
            ("semantic", "bcast", &[]),
            // §3.3.11: an endpoint answers as if Max-Forwards were still positive.
            ("semantic", "zeromf", &[200]),
            ("semantic", "cparam01", &[401]),
            ("semantic", "regescrt", &[401]),
            ("semantic", "sdp01", &[100, 406]),
            // §3.4.1: an RFC 2543 INVITE is a call like another, challenged.
            ("semantic", "inv2543", &[100, 407]),
        ],
    );
    // These two share their Via and method with one above (novelsc with unkscm,
    // cparam02 with cparam01), which makes them that request's retransmission to any
    // server (RFC 3261 §17.2.3): they go to a server of their own.
    answers_on_the_wire(
        79,
        &[
            ("semantic", "novelsc", &[416]),
            ("semantic", "cparam02", &[401]),
        ],
    );
}

/// Sends each message in `want` to a server of its own, each from an address of its own
/// in 127.0.`net`.0/24 (tests running side by side use different ones), and
/// checks the status codes that come back within 2 s (retransmissions folded). A silent
/// case is followed by an OPTIONS from the same socket that must be answered, so silence
/// is not a deaf socket.
fn answers_on_the_wire(net: u8, want: &[Want]) {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};
    let pbx = common::Pbx::start();
    let socks: Vec<UdpSocket> = want
        .iter()
        .enumerate()
        .map(|(i, (kind, name, _))| {
            let bytes = common::rfc4475(kind, name);
            let at = (
                Ipv4Addr::new(127, 0, net, i as u8 + 1),
                sent_by_port(&bytes),
            );
            let s = UdpSocket::bind(at).unwrap_or_else(|e| panic!("{name}: bind {at:?}: {e}"));
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s.send_to(&bytes, pbx.udp).unwrap();
            s
        })
        .collect();
    let mut got: Vec<Vec<u16>> = vec![Vec::new(); want.len()];
    let until = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 65536];
    while Instant::now() < until {
        for (s, codes) in socks.iter().zip(&mut got) {
            while let Ok(n) = s.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n.min(12)]).into_owned();
                let code = line
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|c| c.get(..3))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if codes.last() != Some(&code) {
                    codes.push(code);
                }
            }
        }
    }
    let mut wrong = Vec::new();
    for ((kind, name, codes), g) in want.iter().zip(&got) {
        if g.as_slice() != *codes {
            wrong.push(format!("{kind}/{name}: wanted {codes:?}, got {g:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), pbx.log_text());
    for ((_, name, codes), s) in want.iter().zip(&socks) {
        if !codes.is_empty() {
            continue;
        }
        let options = common::control_options(s.local_addr().unwrap(), pbx.udp, name);
        s.send_to(options.as_bytes(), pbx.udp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = s
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: the control OPTIONS got no answer: {e}"));
        assert!(buf[..n].starts_with(b"SIP/2.0 200 "), "{name}");
    }
}
