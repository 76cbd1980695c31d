//! Transaction tests on a virtual clock: every RFC 3261 timer, and a client and a server
//! wired through a lossy link that drops each message of a flow in turn.

use super::*;
use crate::sip::parse::{parse_datagram, Limits};
use std::net::{IpAddr, Ipv4Addr};

fn peer(port: u16, transport: Transport) -> Peer {
    Peer {
        transport,
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
    }
}

fn request(method: &str, branch: &str) -> Message {
    let s = format!(
        "{method} sip:1002@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
From: <sip:1001@127.0.0.1>;tag=f1\r\n\
To: <sip:1002@127.0.0.1>\r\n\
Call-ID: call-1@127.0.0.1\r\n\
CSeq: 1 {method}\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    );
    parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
}

fn reparse(b: &Bytes) -> Message {
    parse_datagram(b.clone(), &Limits::default()).unwrap()
}

fn drain_tx(t: &mut Transactions) -> Vec<Transmit> {
    std::iter::from_fn(|| t.poll_transmit()).collect()
}

fn drain_ev(t: &mut Transactions) -> Vec<TuEvent> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

/// Runs `t` alone until `until`, returning the offsets (ms from `start`) of every transmit
/// and every TU event with the offset it came at.
fn run_alone(
    t: &mut Transactions,
    start: Instant,
    until: Duration,
) -> (Vec<u128>, Vec<(u128, TuEvent)>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    sent.extend(drain_tx(t).iter().map(|_| 0));
    while let Some(at) = t.poll_timeout() {
        if at > start + until {
            break;
        }
        t.handle_timeout(at);
        let ms = (at - start).as_millis();
        for _ in drain_tx(t) {
            sent.push(ms);
        }
        events.extend(drain_ev(t).into_iter().map(|e| (ms, e)));
    }
    (sent, events)
}

/// Events as (ms, kind), so a test can say exactly when each timer fired.
fn timeline(ev: &[(u128, TuEvent)]) -> Vec<(u128, &'static str)> {
    ev.iter()
        .map(|(ms, e)| {
            let kind = match e {
                TuEvent::Timeout { .. } => "timeout",
                TuEvent::Terminated { .. } => "terminated",
                TuEvent::Response { .. } => "response",
                _ => "other",
            };
            (*ms, kind)
        })
        .collect()
}

#[test]
fn client_invite_udp_retransmits_then_timer_b() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = t
        .send_request(
            t0,
            request("INVITE", "z9hG4bKa"),
            peer(5080, Transport::Udp),
        )
        .unwrap();
    let (sent, events) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    // Timer B: 64*T1.
    assert_eq!(
        timeline(&events),
        [(32000, "timeout"), (32000, "terminated")]
    );
    assert!(matches!(&events[0].1, TuEvent::Timeout { key: k } if *k == key));
    assert!(t.is_empty());
}

#[test]
fn client_invite_reliable_never_retransmits() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    t.send_request(
        t0,
        request("INVITE", "z9hG4bKb"),
        peer(5080, Transport::Tcp),
    )
    .unwrap();
    let (sent, events) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent, vec![0]);
    assert_eq!(
        timeline(&events),
        [(32000, "timeout"), (32000, "terminated")]
    );
}

#[test]
fn client_non_invite_timer_e_caps_at_t2_and_f_fires() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    t.send_request(
        t0,
        request("OPTIONS", "z9hG4bKc"),
        peer(5080, Transport::Udp),
    )
    .unwrap();
    let (sent, events) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(
        sent,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    // Timer F: 64*T1.
    assert_eq!(
        timeline(&events),
        [(32000, "timeout"), (32000, "terminated")]
    );
}

#[test]
fn client_non_invite_after_provisional_retransmits_at_t2() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("OPTIONS", "z9hG4bKd");
    t.send_request(t0, req.clone(), peer(5080, Transport::Udp))
        .unwrap();
    drain_tx(&mut t);
    let trying = response_to(&req, StatusCode::TRYING, None);
    t.handle_incoming(
        t0 + Duration::from_millis(100),
        reparse(&trying.to_bytes()),
        peer(5080, Transport::Udp),
    );
    assert!(matches!(drain_ev(&mut t)[0], TuEvent::Response { .. }));
    let (sent, _) = run_alone(&mut t, t0, Duration::from_secs(12));
    // The 500 ms retransmit was already armed; after it the interval is T2.
    assert_eq!(sent, vec![500, 4500, 8500]);
}

#[test]
fn client_invite_failure_is_acked_and_absorbed() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKe");
    let p = peer(5080, Transport::Udp);
    let key = t.send_request(t0, req.clone(), p.clone()).unwrap();
    drain_tx(&mut t);
    let ringing = reparse(&response_to(&req, StatusCode::RINGING, Some("t1")).to_bytes());
    t.handle_incoming(t0, ringing, p.clone());
    let busy = reparse(&response_to(&req, StatusCode::new(486).unwrap(), Some("t1")).to_bytes());
    t.handle_incoming(t0, busy.clone(), p.clone());
    let acks = drain_tx(&mut t);
    assert_eq!(acks.len(), 1);
    let ack = reparse(&acks[0].bytes);
    assert_eq!(ack.request_line().unwrap().method, Method::Ack);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(ack.to_hdr().unwrap().tag().unwrap().as_ref(), b"t1");
    assert_eq!(
        ack.top_via().unwrap().branch().unwrap().as_ref(),
        b"z9hG4bKe"
    );
    let ev = drain_ev(&mut t);
    assert_eq!(ev.len(), 2, "180 and 486 reach the TU once each");
    // A retransmitted 486 is ACKed again and not passed up.
    t.handle_incoming(t0 + Duration::from_secs(1), busy, p);
    assert_eq!(drain_tx(&mut t).len(), 1);
    assert!(drain_ev(&mut t).is_empty());
    // Timer D ends it after 32 s, with no retransmission of the INVITE meanwhile.
    let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(timeline(&ev), [(32000, "terminated")]);
    assert!(matches!(&ev[0].1, TuEvent::Terminated { key: k } if *k == key));
}

#[test]
fn client_invite_2xx_retransmissions_reach_tu_until_timer_m() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKf");
    let p = peer(5080, Transport::Udp);
    t.send_request(t0, req.clone(), p.clone()).unwrap();
    drain_tx(&mut t);
    let ok = reparse(&response_to(&req, StatusCode::OK, Some("t2")).to_bytes());
    t.handle_incoming(t0, ok.clone(), p.clone());
    t.handle_incoming(t0 + Duration::from_millis(500), ok, p);
    let ev = drain_ev(&mut t);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, TuEvent::Response { .. }))
            .count(),
        2
    );
    assert!(
        drain_tx(&mut t).is_empty(),
        "the 2xx ACK is the dialog layer's job"
    );
    let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    // Timer M: 64*T1 from the first 2xx (RFC 6026).
    assert_eq!(timeline(&ev), [(32000, "terminated")]);
}

#[test]
fn server_non_invite_absorbs_and_replays() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("REGISTER", "z9hG4bKg");
    let p = peer(5070, Transport::Udp);
    t.handle_incoming(t0, req.clone(), p.clone());
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    // Retransmission before the TU answered: absorbed silently.
    t.handle_incoming(t0 + Duration::from_millis(500), req.clone(), p.clone());
    assert!(drain_ev(&mut t).is_empty());
    assert!(drain_tx(&mut t).is_empty());
    t.respond(
        t0 + Duration::from_millis(600),
        &key,
        response_to(&req, StatusCode::OK, Some("x")),
    )
    .unwrap();
    assert_eq!(drain_tx(&mut t).len(), 1);
    // Retransmission after: the same 200 again.
    t.handle_incoming(t0 + Duration::from_millis(1500), req, p);
    let again = drain_tx(&mut t);
    assert_eq!(again.len(), 1);
    assert_eq!(reparse(&again[0].bytes).status(), Some(StatusCode::OK));
    assert_eq!(
        t.respond(
            t0,
            &key,
            response_to(&request("REGISTER", "z9hG4bKg"), StatusCode::OK, None)
        ),
        Err(TxError::Completed)
    );
    // Timer J: 64*T1 after the response, sent at 600 ms.
    let (_, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(timeline(&ev), [(32600, "terminated")]);
    assert!(t.is_empty());
}

#[test]
fn server_invite_sends_trying_retransmits_final_until_ack() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKh");
    let p = peer(5070, Transport::Udp);
    t.handle_incoming(t0, req.clone(), p.clone());
    let trying = drain_tx(&mut t);
    assert_eq!(reparse(&trying[0].bytes).status(), Some(StatusCode::TRYING));
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    t.respond(
        t0,
        &key,
        response_to(&req, StatusCode::new(486).unwrap(), Some("b")),
    )
    .unwrap();
    drain_tx(&mut t);
    let (sent, _) = run_alone(&mut t, t0, Duration::from_millis(12000));
    assert_eq!(sent, vec![500, 1500, 3500, 7500, 11500]);
    // ACK stops Timer G; Timer I (T4) ends the transaction with no timeout event.
    let mut ack = request("ACK", "z9hG4bKh");
    ack.set_header(HeaderName::To, "<sip:1002@127.0.0.1>;tag=b");
    t.handle_incoming(t0 + Duration::from_millis(12000), ack, p);
    assert!(
        drain_ev(&mut t).is_empty(),
        "the ACK for a non-2xx is absorbed"
    );
    let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    // Timer I: T4 after the ACK, which came at 12 s; Timer H no longer runs.
    assert_eq!(timeline(&ev), [(17000, "terminated")]);
}

#[test]
fn a_stateless_answer_keeps_nothing_and_a_retransmission_is_answered_afresh() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(5070, Transport::Udp);
    for method in ["INVITE", "SUBSCRIBE"] {
        let req = request(method, "z9hG4bKs");
        t.handle_incoming(t0, req.clone(), p.clone());
        drain_tx(&mut t);
        let key = match drain_ev(&mut t).remove(0) {
            TuEvent::Request { key, .. } => key,
            e => panic!("{e:?}"),
        };
        let trying = response_to(&req, StatusCode::TRYING, None);
        assert_eq!(
            t.respond_statelessly(&key, trying),
            Err(TxError::NotFinal),
            "{method}"
        );
        let chal = response_to(&req, StatusCode::UNAUTHORIZED, Some("c"));
        t.respond_statelessly(&key, chal.clone()).unwrap();
        let sent = drain_tx(&mut t);
        assert_eq!(sent.len(), 1, "{method}");
        assert_eq!(sent[0].peer, p);
        assert_eq!(reparse(&sent[0].bytes).status(), chal.status());
        assert!(t.is_empty(), "{method}");
        assert_eq!(t.poll_timeout(), None, "{method}: no timer left");
        assert!(matches!(drain_ev(&mut t)[..], [TuEvent::Terminated { .. }]));
        assert_eq!(
            t.respond_statelessly(&key, chal),
            Err(TxError::Unknown),
            "{method}"
        );
        // The client, not having heard, sends it again: a new request for the TU.
        t.handle_incoming(t0, req, p.clone());
        drain_tx(&mut t);
        let ev = drain_ev(&mut t);
        assert!(
            matches!(ev[..], [TuEvent::Request { .. }]),
            "{method}: {ev:?}"
        );
        let key = match &ev[0] {
            TuEvent::Request { key, .. } => key.clone(),
            _ => unreachable!(),
        };
        let done = response_to(&request(method, "z9hG4bKs"), StatusCode::OK, Some("c"));
        t.respond(t0, &key, done).unwrap();
        t.respond_statelessly(
            &key,
            response_to(&request(method, "z9hG4bKs"), StatusCode::OK, None),
        )
        .expect_err("a transaction that answered finally is not answered again");
        t = Transactions::new(TimerConfig::default());
    }
    // The ACK of an INVITE answered statelessly reaches the TU as a stray ACK.
    let req = request("INVITE", "z9hG4bKa");
    t.handle_incoming(t0, req.clone(), p.clone());
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    t.respond_statelessly(
        &key,
        response_to(&req, StatusCode::PROXY_AUTH_REQUIRED, Some("b")),
    )
    .unwrap();
    drain_ev(&mut t);
    let mut ack = request("ACK", "z9hG4bKa");
    ack.set_header(HeaderName::To, "<sip:1002@127.0.0.1>;tag=b");
    t.handle_incoming(t0, ack, p);
    assert!(matches!(drain_ev(&mut t)[..], [TuEvent::Ack { .. }]));
}

#[test]
fn server_invite_timer_h_without_ack() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKi");
    t.handle_incoming(t0, req.clone(), peer(5070, Transport::Udp));
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    t.respond(
        t0,
        &key,
        response_to(&req, StatusCode::new(603).unwrap(), Some("b")),
    )
    .unwrap();
    // Timer H: 64*T1 after the final response.
    let (_, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(timeline(&ev), [(32000, "timeout"), (32000, "terminated")]);
}

#[test]
fn server_invite_2xx_then_ack_goes_to_tu() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKj");
    let p = peer(5070, Transport::Udp);
    t.handle_incoming(t0, req.clone(), p.clone());
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    t.respond(t0, &key, response_to(&req, StatusCode::OK, Some("b")))
        .unwrap();
    drain_tx(&mut t);
    // A retransmitted INVITE in Accepted is absorbed (RFC 6026).
    t.handle_incoming(t0, req, p.clone());
    assert!(drain_tx(&mut t).is_empty());
    assert!(drain_ev(&mut t).is_empty());
    t.handle_incoming(t0 + Duration::from_secs(1), request("ACK", "z9hG4bKnew"), p);
    assert!(matches!(drain_ev(&mut t)[0], TuEvent::Ack { .. }));
    // Timer L: 64*T1 after the 2xx, ACK or not.
    let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert!(sent.is_empty());
    assert_eq!(timeline(&ev), [(32000, "terminated")]);
    assert!(t.is_empty());
}

#[test]
fn timer_k_waits_t4_on_udp_and_timers_d_and_k_are_zero_on_reliable_transports() {
    for (transport, method, code, want) in [
        (Transport::Udp, "OPTIONS", 200, 5100),
        (Transport::Tcp, "OPTIONS", 200, 100),
        (Transport::Tcp, "INVITE", 486, 100),
    ] {
        let mut t = Transactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let req = request(method, "z9hG4bKk");
        let p = peer(5080, transport.clone());
        t.send_request(t0, req.clone(), p.clone()).unwrap();
        drain_tx(&mut t);
        let resp =
            reparse(&response_to(&req, StatusCode::new(code).unwrap(), Some("t")).to_bytes());
        t.handle_incoming(t0 + Duration::from_millis(100), resp, p);
        drain_ev(&mut t);
        drain_tx(&mut t);
        let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
        assert!(sent.is_empty(), "{method} over {transport:?}: {sent:?}");
        assert_eq!(
            timeline(&ev),
            [(want, "terminated")],
            "{method} over {transport:?}"
        );
        assert!(t.is_empty());
    }
}

#[test]
fn a_server_transaction_matches_branch_and_sent_by_not_branch_alone() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let from = |host: &str| {
        let s = String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKkdjuw").to_bytes())
            .replace("127.0.0.1:5070", host);
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    };
    let requests = |t: &mut Transactions| {
        drain_ev(t)
            .into_iter()
            .filter(|e| matches!(e, TuEvent::Request { .. }))
            .count()
    };
    t.handle_incoming(t0, from("127.0.0.1:5070"), peer(5070, Transport::Udp));
    assert_eq!(requests(&mut t), 1);
    // Another client that picked the same branch: a new transaction, not a retransmission.
    t.handle_incoming(t0, from("127.0.0.9:5070"), peer(5071, Transport::Udp));
    t.handle_incoming(t0, from("127.0.0.1:5071"), peer(5072, Transport::Udp));
    assert_eq!(requests(&mut t), 2);
    // The first one's retransmission is absorbed.
    t.handle_incoming(t0, from("127.0.0.1:5070"), peer(5070, Transport::Udp));
    assert_eq!(requests(&mut t), 0);
}

#[test]
fn cancel_finds_its_invite() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let inv = request("INVITE", "z9hG4bKk");
    let p = peer(5070, Transport::Udp);
    t.handle_incoming(t0, inv.clone(), p.clone());
    drain_ev(&mut t);
    let cancel = reparse(&cancel_for(&inv).unwrap().to_bytes());
    t.handle_incoming(t0, cancel, p);
    let key = match drain_ev(&mut t).remove(0) {
        TuEvent::Request { key, .. } => key,
        e => panic!("{e:?}"),
    };
    assert_eq!(key.method, Method::Cancel);
    let inv_key = t.invite_for_cancel(&key).unwrap();
    assert_eq!(inv_key.method, Method::Invite);
}

#[test]
fn via_is_stamped_with_received_and_rport() {
    let mut t = Transactions::new(TimerConfig::default());
    let mut req = request("OPTIONS", "z9hG4bKl");
    req.set_header(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.9:5070;rport;branch=z9hG4bKl",
    );
    t.handle_incoming(Instant::now(), req, peer(40000, Transport::Udp));
    let TuEvent::Request { msg, key, .. } = drain_ev(&mut t).remove(0) else {
        panic!()
    };
    let via = msg.top_via().unwrap();
    assert_eq!(header_param(&via, "rport"), Some("40000".into()));
    assert_eq!(header_param(&via, "received"), Some("127.0.0.1".into()));
    // And the response goes to the source port, not 5070.
    t.respond(
        Instant::now(),
        &key,
        response_to(&msg, StatusCode::OK, None),
    )
    .unwrap();
    assert_eq!(drain_tx(&mut t)[0].peer.addr.port(), 40000);
}

#[test]
fn without_rport_responses_go_to_sent_by_port() {
    let mut t = Transactions::new(TimerConfig::default());
    let mut req = request("OPTIONS", "z9hG4bKm");
    req.set_header(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKm",
    );
    t.handle_incoming(Instant::now(), req.clone(), peer(40001, Transport::Udp));
    let TuEvent::Request { key, .. } = drain_ev(&mut t).remove(0) else {
        panic!()
    };
    t.respond(
        Instant::now(),
        &key,
        response_to(&req, StatusCode::OK, None),
    )
    .unwrap();
    assert_eq!(drain_tx(&mut t)[0].peer.addr.port(), 5072);
}

fn header_param(via: &crate::sip::header::Via, name: &str) -> Option<String> {
    crate::sip::header::param(&via.params, name)
        .flatten()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A client and a server joined by a link with 10 ms latency that drops the `drop`-th
/// message put on it. quinn's `Pair`, for SIP.
struct Pair {
    client: Transactions,
    server: Transactions,
    now: Instant,
    in_flight: Vec<(Instant, bool, Bytes)>,
    sent: usize,
    drop: Option<usize>,
    client_finals: usize,
    server_requests: usize,
    timeouts: usize,
}

impl Pair {
    fn new(drop: Option<usize>) -> Self {
        Self {
            client: Transactions::new(TimerConfig::default()),
            server: Transactions::new(TimerConfig::default()),
            now: Instant::now(),
            in_flight: Vec::new(),
            sent: 0,
            drop,
            client_finals: 0,
            server_requests: 0,
            timeouts: 0,
        }
    }

    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(tx) = self.client.poll_transmit() {
                self.put(true, tx.bytes);
                progressed = true;
            }
            while let Some(tx) = self.server.poll_transmit() {
                self.put(false, tx.bytes);
                progressed = true;
            }
            while let Some(ev) = self.client.poll_event() {
                match ev {
                    TuEvent::Response { msg, .. } if !msg.status().unwrap().is_provisional() => {
                        self.client_finals += 1;
                    }
                    TuEvent::Timeout { .. } => self.timeouts += 1,
                    _ => {}
                }
            }
            while let Some(ev) = self.server.poll_event() {
                match ev {
                    TuEvent::Request { key, msg, .. } => {
                        self.server_requests += 1;
                        let code = if key.method == Method::Invite {
                            StatusCode::new(486).unwrap()
                        } else {
                            StatusCode::OK
                        };
                        self.server
                            .respond(self.now, &key, response_to(&msg, code, Some("s")))
                            .unwrap();
                        progressed = true;
                    }
                    TuEvent::Timeout { .. } => self.timeouts += 1,
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn put(&mut self, to_server: bool, bytes: Bytes) {
        self.sent += 1;
        if Some(self.sent) == self.drop {
            return;
        }
        self.in_flight
            .push((self.now + Duration::from_millis(10), to_server, bytes));
    }

    /// Advances to the earliest event (delivery or timer), like quinn's `step`.
    fn step(&mut self) -> bool {
        let next_msg = self.in_flight.iter().map(|m| m.0).min();
        let next = [
            next_msg,
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(at) = next else { return false };
        self.now = at;
        let due: Vec<_> = {
            let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|m| m.0 <= at);
            self.in_flight = rest;
            due
        };
        for (_, to_server, bytes) in due {
            let msg = reparse(&bytes);
            if to_server {
                self.server
                    .handle_incoming(at, msg, peer(5070, Transport::Udp));
            } else {
                self.client
                    .handle_incoming(at, msg, peer(5080, Transport::Udp));
            }
        }
        self.client.handle_timeout(at);
        self.server.handle_timeout(at);
        self.pump();
        true
    }
}

#[test]
fn every_single_loss_in_a_non_invite_flow_recovers() {
    // Flow: REGISTER, 200. Drop each in turn (and a retransmission).
    for drop in [None, Some(1), Some(2), Some(3)] {
        let mut p = Pair::new(drop);
        let req = request("REGISTER", "z9hG4bKpair1");
        p.client
            .send_request(p.now, req, peer(5080, Transport::Udp))
            .unwrap();
        p.pump();
        while p.step() {}
        assert_eq!(p.client_finals, 1, "drop {drop:?}");
        assert_eq!(
            p.server_requests, 1,
            "drop {drop:?}: TU saw the request once"
        );
        assert_eq!(p.timeouts, 0, "drop {drop:?}");
        assert!(p.client.is_empty() && p.server.is_empty());
    }
}

#[test]
fn every_single_loss_in_an_invite_failure_flow_recovers() {
    // Flow: INVITE, 100, 486, ACK. Dropping any one is repaired by retransmission.
    for drop in [None, Some(1), Some(2), Some(3), Some(4), Some(5)] {
        let mut p = Pair::new(drop);
        let req = request("INVITE", "z9hG4bKpair2");
        p.client
            .send_request(p.now, req, peer(5080, Transport::Udp))
            .unwrap();
        p.pump();
        while p.step() {}
        assert_eq!(
            p.client_finals, 1,
            "drop {drop:?}: one final reaches the UAC's TU"
        );
        assert_eq!(p.server_requests, 1, "drop {drop:?}");
        assert_eq!(p.timeouts, 0, "drop {drop:?}: the ACK got through");
        assert!(p.client.is_empty() && p.server.is_empty());
    }
}

#[test]
fn thousands_of_transactions_cost_microseconds_of_real_time() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    for i in 0..2000 {
        t.send_request(
            t0,
            request("OPTIONS", &format!("z9hG4bK{i}")),
            peer(5080, Transport::Udp),
        )
        .unwrap();
    }
    let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
    assert_eq!(sent.len(), 2000 * 11);
    assert_eq!(
        ev.iter()
            .filter(|(ms, e)| *ms == 32000 && matches!(e, TuEvent::Timeout { .. }))
            .count(),
        2000
    );
    assert!(t.is_empty());
}

#[test]
fn the_top_via_gets_rport_and_received_and_nothing_else_changes() {
    let via = |v: &str| {
        let mut m = request("OPTIONS", "z9hG4bKsv");
        m.set_header(HeaderName::Via, Bytes::from(v.to_string()));
        stamp_via(&mut m, &peer(6000, Transport::Udp));
        String::from_utf8_lossy(m.header(&HeaderName::Via).unwrap()).into_owned()
    };
    // A host whose name holds "rport", and a second Via that asks for it too: only the
    // top entry's own parameter is filled in.
    assert_eq!(
        via("SIP/2.0/UDP arport;branch=z9hG4bK1;rport, SIP/2.0/UDP p;rport"),
        "SIP/2.0/UDP arport;branch=z9hG4bK1;rport=6000;received=127.0.0.1, SIP/2.0/UDP p;rport"
    );
    // Sent from elsewhere than it says, rport not asked: received alone.
    assert_eq!(
        via("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1"),
        "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;received=127.0.0.1"
    );
    // The right address and no rport asked: left as it is.
    assert_eq!(
        via("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"),
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"
    );
    // rport with the right address: the port, and received all the same (RFC 3581 §4).
    assert_eq!(
        via("SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1"),
        "SIP/2.0/UDP 127.0.0.1:5070;rport=6000;branch=z9hG4bK1;received=127.0.0.1"
    );
}

#[test]
fn timer_d_is_64_t1_when_that_is_longer_and_a_non_invite_final_again_is_absorbed() {
    // T1 of a second: Timer D is 64 s, not the 32 s floor.
    let cfg = TimerConfig {
        t1: Duration::from_secs(1),
        ..TimerConfig::default()
    };
    let mut t = Transactions::new(cfg);
    let t0 = Instant::now();
    let req = request("INVITE", "z9hG4bKd64");
    let p = peer(5080, Transport::Udp);
    t.send_request(t0, req.clone(), p.clone()).unwrap();
    drain_tx(&mut t);
    let busy = reparse(&response_to(&req, StatusCode::new(486).unwrap(), Some("t1")).to_bytes());
    t.handle_incoming(t0, busy, p.clone());
    drain_tx(&mut t);
    drain_ev(&mut t);
    let (_, ev) = run_alone(&mut t, t0, Duration::from_secs(70));
    assert_eq!(timeline(&ev), [(64000, "terminated")]);

    // A non-INVITE's final response again: nothing sent (no ACK, no request), nothing up.
    let mut t = Transactions::new(TimerConfig::default());
    let req = request("OPTIONS", "z9hG4bKagain");
    t.send_request(t0, req.clone(), p.clone()).unwrap();
    drain_tx(&mut t);
    let ok = reparse(&response_to(&req, StatusCode::OK, Some("t1")).to_bytes());
    t.handle_incoming(t0, ok.clone(), p.clone());
    assert_eq!(drain_ev(&mut t).len(), 1);
    t.handle_incoming(t0 + Duration::from_millis(300), ok, p);
    assert!(drain_tx(&mut t).is_empty());
    assert!(drain_ev(&mut t).is_empty());
}

#[test]
fn a_non_invite_after_a_provisional_completes_without_ack_and_absorbs_its_final() {
    for code in [200, 404] {
        let mut t = Transactions::new(TimerConfig::default());
        let t0 = Instant::now();
        let req = request("OPTIONS", &format!("z9hG4bKp{code}"));
        let p = peer(5080, Transport::Udp);
        let key = t.send_request(t0, req.clone(), p.clone()).unwrap();
        assert_eq!((t.len(), t.is_empty()), (1, false));
        assert_eq!(
            t.request_of(&key).and_then(|r| r.call_id().ok()),
            req.call_id().ok()
        );
        drain_tx(&mut t);
        let trying = reparse(&response_to(&req, StatusCode::TRYING, None).to_bytes());
        t.handle_incoming(t0, trying, p.clone());
        let fin =
            reparse(&response_to(&req, StatusCode::new(code).unwrap(), Some("t1")).to_bytes());
        t.handle_incoming(t0 + Duration::from_millis(100), fin.clone(), p.clone());
        assert!(
            drain_tx(&mut t).is_empty(),
            "{code}: no ACK for a non-INVITE"
        );
        assert_eq!(
            drain_ev(&mut t).len(),
            2,
            "{code}: 100 and the final, once each"
        );
        t.handle_incoming(t0 + Duration::from_millis(200), fin, p);
        assert!(
            drain_tx(&mut t).is_empty(),
            "{code}: the final again sends nothing"
        );
        assert!(drain_ev(&mut t).is_empty(), "{code}: and is not passed up");
        // Timer K (T4 on UDP) from the final, not the INVITE's 64*T1.
        let (sent, ev) = run_alone(&mut t, t0, Duration::from_secs(40));
        assert!(sent.is_empty());
        assert_eq!(timeline(&ev), [(5100, "terminated")], "{code}");
        assert_eq!((t.len(), t.is_empty()), (0, true));
        assert!(t.request_of(&key).is_none());
    }
}

#[test]
fn a_transport_error_ends_the_transaction_with_a_timeout() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let key = t
        .send_request(
            t0,
            request("OPTIONS", "z9hG4bKte"),
            peer(5080, Transport::Tcp),
        )
        .unwrap();
    drain_tx(&mut t);
    t.handle_transport_error(&key);
    let ev = drain_ev(&mut t);
    assert!(
        matches!(&ev[..], [TuEvent::Timeout { key: k }, ..] if *k == key),
        "{ev:?}"
    );
    assert!(t.is_empty());
}

#[test]
fn sent_by_ports_apart_by_a_multiple_of_256_are_different_clients() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let from = |port: u16| {
        let s = String::from_utf8_lossy(&request("OPTIONS", "z9hG4bKsame").to_bytes())
            .replace("127.0.0.1:5070", &format!("127.0.0.1:{port}"));
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    };
    t.handle_incoming(t0, from(5060), peer(5060, Transport::Udp));
    t.handle_incoming(t0, from(5060 + 256), peer(5316, Transport::Udp));
    let requests = drain_ev(&mut t)
        .into_iter()
        .filter(|e| matches!(e, TuEvent::Request { .. }))
        .count();
    assert_eq!(requests, 2);
}

#[test]
fn rfc_2543_requests_are_told_apart_by_cseq_and_rfc_3261_ones_by_branch() {
    let mut t = Transactions::new(TimerConfig::default());
    let t0 = Instant::now();
    let with = |branch: &str, cseq: u32| {
        let s = String::from_utf8_lossy(&request("OPTIONS", branch).to_bytes())
            .replace("CSeq: 1 OPTIONS", &format!("CSeq: {cseq} OPTIONS"));
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    };
    let requests = |t: &mut Transactions| {
        drain_ev(t)
            .into_iter()
            .filter(|e| matches!(e, TuEvent::Request { .. }))
            .count()
    };
    let p = peer(5070, Transport::Udp);
    // No magic cookie: the branch names nothing, Call-ID and CSeq do (RFC 3261 §17.2.3).
    t.handle_incoming(t0, with("old1", 1), p.clone());
    t.handle_incoming(t0, with("old1", 2), p.clone());
    assert_eq!(requests(&mut t), 2);
    t.handle_incoming(t0, with("old1", 2), p.clone());
    assert_eq!(requests(&mut t), 0, "a retransmission");
    // With the cookie the branch alone (with sent-by and method) is the transaction.
    t.handle_incoming(t0, with("z9hG4bKnew", 1), p.clone());
    t.handle_incoming(t0, with("z9hG4bKnew", 2), p);
    assert_eq!(requests(&mut t), 1);
}

#[test]
fn responses_get_the_to_tag_except_a_trying_and_branches_carry_the_cookie() {
    let req = request("INVITE", "z9hG4bKrt");
    let tag = |r: &Message| r.to_hdr().unwrap().tag().map(|t| t.to_vec());
    assert_eq!(tag(&response_to(&req, StatusCode::TRYING, Some("x"))), None);
    assert_eq!(
        tag(&response_to(&req, StatusCode::RINGING, Some("x"))),
        Some(b"x".to_vec())
    );
    assert_eq!(tag(&response_to(&req, StatusCode::RINGING, None)), None);
    let tagged = reparse(&response_to(&req, StatusCode::RINGING, Some("x")).to_bytes());
    // A request already in a dialog keeps its tag; no second one is added.
    let mut in_dialog = req.clone();
    in_dialog.set_header(
        HeaderName::To,
        tagged.header(&HeaderName::To).unwrap().clone(),
    );
    let r = response_to(&in_dialog, StatusCode::OK, Some("y"));
    assert_eq!(tag(&r), Some(b"x".to_vec()));
    assert_eq!(new_branch(0xab), "z9hG4bK00000000000000ab");
}

/// The top Via of `via` as the transaction user sees it after stamping.
fn stamped(via: &'static str) -> crate::sip::header::Via {
    let mut t = Transactions::new(TimerConfig::default());
    let mut req = request("OPTIONS", "z9hG4bKv");
    req.set_header(HeaderName::Via, via);
    t.handle_incoming(Instant::now(), req, peer(40002, Transport::Udp));
    let TuEvent::Request { msg, .. } = drain_ev(&mut t).remove(0) else {
        panic!()
    };
    msg.top_via().unwrap()
}

#[test]
fn rport_is_filled_in_wherever_it_stands_and_only_rport() {
    for via in [
        "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKv;rport",
        "SIP/2.0/UDP 10.0.0.9:5070; rport;branch=z9hG4bKv",
        "SIP/2.0/UDP 10.0.0.9:5070;rport ;branch=z9hG4bKv",
        "SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKv;rport, SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKw",
    ] {
        let v = stamped(via);
        assert_eq!(header_param(&v, "rport"), Some("40002".into()), "{via}");
        assert_eq!(
            v.branch().map(|b| b.to_vec()),
            Some(b"z9hG4bKv".to_vec()),
            "{via}"
        );
    }
    // Before the rport, a five-letter flag and a longer name starting with "rport" are
    // left as they were.
    let v = stamped("SIP/2.0/UDP 10.0.0.9:5070;alias;rportx=1;rport;branch=z9hG4bKv");
    assert!(crate::sip::header::param(&v.params, "alias").is_some());
    assert_eq!(header_param(&v, "rportx"), Some("1".into()));
    assert_eq!(header_param(&v, "rport"), Some("40002".into()));
    // A five-letter flag that is not rport stays as it was, and none is added.
    let v = stamped("SIP/2.0/UDP 10.0.0.9:5070;alias;lr;branch=z9hG4bKv");
    assert!(crate::sip::header::param(&v.params, "alias").is_some());
    assert!(crate::sip::header::param(&v.params, "lr").is_some());
    assert!(crate::sip::header::param(&v.params, "rport").is_none());
    assert_eq!(header_param(&v, "received"), Some("127.0.0.1".into()));
}
