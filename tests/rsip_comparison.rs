//! Why switchboard parses SIP itself: rsip (the design card's crate, 0.4.0) measured on the
//! same RFC 4475 torture messages as our parser. A message counts as accepted by rsip when
//! `SipMessage::try_from` succeeds and its Via, From, To, Call-ID and CSeq convert to typed
//! headers (what a registrar or B2BUA must read). The table is printed with
//! `cargo test --test rsip_comparison -- --nocapture`; the README quotes it.

mod common;

use rsip::headers::{ToTypedHeader, UntypedHeader};
use rsip::message::HeadersExt;

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    common::rfc4475(kind, name)
}

fn rsip_accepts(data: &[u8]) -> bool {
    let Ok(msg) = rsip::SipMessage::try_from(data) else {
        return false;
    };
    let typed = |m: &dyn HeadersExt| -> bool {
        m.via_header().ok().and_then(|h| h.typed().ok()).is_some()
            && m.from_header().ok().and_then(|h| h.typed().ok()).is_some()
            && m.to_header().ok().and_then(|h| h.typed().ok()).is_some()
            && m.cseq_header().ok().and_then(|h| h.typed().ok()).is_some()
            && m.call_id_header()
                .ok()
                .map(|h| h.value().to_string())
                .is_some()
    };
    match &msg {
        rsip::SipMessage::Request(r) => typed(r),
        rsip::SipMessage::Response(r) => typed(r),
    }
}

fn ours_accepts(data: &[u8]) -> bool {
    switchboard::sip::parse_datagram(
        bytes::Bytes::copy_from_slice(data),
        &switchboard::sip::Limits::default(),
    )
    .is_ok()
}

/// Invalid messages a parser must refuse (baddate may be accepted: its Date is unused).
const MUST_REJECT: [&str; 18] = [
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
];

#[test]
fn rfc4475_conformance_switchboard_vs_rsip() {
    let mut rsip_valid = 0;
    let mut rsip_rejected = 0;
    println!(
        "{:<12} {:<8} {:>11} {:>6}",
        "message", "kind", "switchboard", "rsip"
    );
    for name in common::RFC4475_VALID {
        let d = fixture("valid", name);
        let (o, r) = (ours_accepts(&d), rsip_accepts(&d));
        rsip_valid += usize::from(r);
        println!(
            "{name:<12} {:<8} {:>11} {:>6}",
            "valid",
            if o { "accept" } else { "REJECT" },
            if r { "accept" } else { "REJECT" }
        );
        assert!(o, "{name}");
    }
    for name in MUST_REJECT {
        let d = fixture("invalid", name);
        let (o, r) = (ours_accepts(&d), rsip_accepts(&d));
        rsip_rejected += usize::from(!r);
        println!(
            "{name:<12} {:<8} {:>11} {:>6}",
            "invalid",
            if o { "ACCEPT" } else { "reject" },
            if r { "ACCEPT" } else { "reject" }
        );
        assert!(!o, "{name}");
    }
    println!("valid accepted: switchboard 13/13, rsip {rsip_valid}/13");
    println!("invalid rejected: switchboard 18/18, rsip {rsip_rejected}/18");
    // The measurement the README relies on; if a future rsip closes the gap this fails,
    // and the choice should be revisited.
    assert!(
        rsip_valid < 13 || rsip_rejected < 18,
        "rsip now passes RFC 4475: revisit the parser choice"
    );
}
