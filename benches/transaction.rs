//! Transaction-layer throughput: complete server transactions (REGISTER in, 200 out,
//! Timer J fired) and client INVITE transactions (INVITE out, 180, 486 in, ACK out,
//! Timer D), on a virtual clock. `cargo bench --bench transaction`.

use bytes::Bytes;
use std::time::{Duration, Instant};
use switchboard::sip::header::Transport;
use switchboard::sip::transaction::{response_to, Peer, TimerConfig, Transactions, TuEvent};
use switchboard::sip::{parse_datagram, Limits, Message, StatusCode};

fn main() {
    divan::main();
}

fn req(method: &str, i: u64) -> Message {
    let s = format!(
        "{method} sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{i:x};rport\r\n\
From: <sip:1001@127.0.0.1>;tag=f\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: c{i}\r\nCSeq: 1 {method}\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
}

const N: u64 = 1000;

#[divan::bench]
fn server_non_invite_1000(bencher: divan::Bencher) {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
    };
    let reqs: Vec<Message> = (0..N).map(|i| req("REGISTER", i)).collect();
    bencher
        .counter(divan::counter::ItemsCount::new(N))
        .bench(|| {
            let mut t = Transactions::new(TimerConfig::default());
            let t0 = Instant::now();
            for r in &reqs {
                t.handle_incoming(t0, r.clone(), peer.clone());
                while let Some(ev) = t.poll_event() {
                    if let TuEvent::Request { key, msg, .. } = ev {
                        t.respond(t0, &key, response_to(&msg, StatusCode::OK, Some("x")))
                            .unwrap();
                    }
                }
                while t.poll_transmit().is_some() {}
            }
            t.handle_timeout(t0 + Duration::from_secs(40));
            while t.poll_event().is_some() {}
            assert!(t.is_empty());
        });
}

#[divan::bench]
fn client_invite_failure_1000(bencher: divan::Bencher) {
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5080".parse().unwrap(),
    };
    let reqs: Vec<Message> = (0..N).map(|i| req("INVITE", i)).collect();
    let busy: Vec<Message> = reqs
        .iter()
        .map(|r| {
            parse_datagram(
                response_to(r, StatusCode::new(486).unwrap(), Some("b")).to_bytes(),
                &Limits::default(),
            )
            .unwrap()
        })
        .collect();
    bencher
        .counter(divan::counter::ItemsCount::new(N))
        .bench(|| {
            let mut t = Transactions::new(TimerConfig::default());
            let t0 = Instant::now();
            for (r, b) in reqs.iter().zip(&busy) {
                t.send_request(t0, r.clone(), peer.clone()).unwrap();
                t.handle_incoming(t0, b.clone(), peer.clone());
                while t.poll_event().is_some() {}
                while t.poll_transmit().is_some() {}
            }
            t.handle_timeout(t0 + Duration::from_secs(40));
            while t.poll_event().is_some() {}
            assert!(t.is_empty());
        });
}
