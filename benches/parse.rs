//! Parse and print cost per message, switchboard against rsip 0.4 on the same bytes.
//! `cargo bench --bench parse`. Figures go to BENCHMARKS.md as ratios.

use bytes::Bytes;
use switchboard::sip::{parse_datagram, Limits};

fn main() {
    divan::main();
}

const INVITE: &[u8] = include_bytes!("data/invite.sip");
const REGISTER: &[u8] = include_bytes!("data/register.sip");

#[divan::bench(args = ["invite", "register"])]
fn switchboard_parse(bencher: divan::Bencher, which: &str) {
    let data = Bytes::from_static(if which == "invite" { INVITE } else { REGISTER });
    let limits = Limits::default();
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            // The buffer is shared, as a receive buffer is: no copy per parse.
            parse_datagram(divan::black_box(data.clone()), &limits).unwrap()
        });
}

/// rsip splits lazily; for a like-for-like figure we also convert the headers a SIP element
/// must read (Via, From, To, CSeq) to typed form, as our parser validates them.
#[divan::bench(args = ["invite", "register"])]
fn rsip_parse(bencher: divan::Bencher, which: &str) {
    use rsip::headers::ToTypedHeader;
    use rsip::message::HeadersExt;
    let data: &[u8] = if which == "invite" { INVITE } else { REGISTER };
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let m = rsip::SipMessage::try_from(divan::black_box(data)).unwrap();
            let rsip::SipMessage::Request(r) = m else {
                unreachable!()
            };
            let _ = r.via_header().unwrap().typed().unwrap();
            let _ = r.from_header().unwrap().typed().unwrap();
            let _ = r.to_header().unwrap().typed().unwrap();
            let _ = r.cseq_header().unwrap().typed().unwrap();
            r
        });
}

/// rsip's split alone, without typed headers (its fastest path).
#[divan::bench(args = ["invite", "register"])]
fn rsip_parse_untyped(bencher: divan::Bencher, which: &str) {
    let data: &[u8] = if which == "invite" { INVITE } else { REGISTER };
    bencher.bench(|| rsip::SipMessage::try_from(divan::black_box(data)).unwrap());
}

#[divan::bench]
fn switchboard_print_invite(bencher: divan::Bencher) {
    let m = parse_datagram(Bytes::from_static(INVITE), &Limits::default()).unwrap();
    bencher.bench(|| divan::black_box(&m).to_bytes());
}
