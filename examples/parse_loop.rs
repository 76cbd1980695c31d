//! Parses one message N times with switchboard or rsip, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a shared machine, unlike wall time).
//! `cargo run --release --example parse_loop -- switchboard|rsip invite|register N`
//! The harness script bench/parse-instructions.sh runs it and divides.

use bytes::Bytes;

const INVITE: &[u8] = include_bytes!("../benches/data/invite.sip");
const REGISTER: &[u8] = include_bytes!("../benches/data/register.sip");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, msg, n) = (
        args[1].as_str(),
        args[2].as_str(),
        args[3].parse::<usize>().unwrap(),
    );
    let data: &'static [u8] = if msg == "invite" { INVITE } else { REGISTER };
    let mut total = 0usize;
    match which {
        "switchboard" => {
            let limits = switchboard::sip::Limits::default();
            let b = Bytes::from_static(data);
            for _ in 0..n {
                let m = switchboard::sip::parse_datagram(std::hint::black_box(b.clone()), &limits)
                    .unwrap();
                total += m.headers.len();
            }
        }
        "rsip" => {
            use rsip::headers::ToTypedHeader;
            use rsip::message::HeadersExt;
            for _ in 0..n {
                let m = rsip::SipMessage::try_from(std::hint::black_box(data)).unwrap();
                let rsip::SipMessage::Request(r) = m else {
                    unreachable!()
                };
                let _ = r.via_header().unwrap().typed().unwrap();
                let _ = r.from_header().unwrap().typed().unwrap();
                let _ = r.to_header().unwrap().typed().unwrap();
                let _ = r.cseq_header().unwrap().typed().unwrap();
                total += r.body.len() + 1;
            }
        }
        "none" => {}
        _ => panic!("switchboard | rsip | none"),
    }
    println!("{total}");
}
