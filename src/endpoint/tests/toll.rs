//! The toll-fraud guard through the phone harness: calls out through the demo trunk
//! refused by the number's class and the extension's permissions, and by the caps on
//! calls out at once and a day.

use std::time::Duration;

use super::calls::config_with;
use super::harness::{Pbx, Phone};
use crate::sip::msg::{Message, Method};

const PLAN: &str = "context internal {\n\
      match /^9(\\d{10})$/ { dial trunk \"demo\" \"+1$1\" timeout 60s; hangup }\n\
      match /^011(\\d+)$/ { dial trunk \"demo\" \"+$1\" timeout 60s; hangup }\n\
      match /^(9\\d\\d)$/ { dial trunk \"demo\" \"$1\" timeout 60s; hangup }\n\
    }\n\
    context inbound { match \"1\" { hangup } }\n";

/// `phone` calls `number`: the INVITE the provider (the demo trunk at 127.0.0.2) got,
/// or else the final status the phone got.
fn out(
    pbx: &mut Pbx,
    phone: &mut Phone,
    provider: &mut Phone,
    number: &str,
) -> Result<Message, u16> {
    phone.call(pbx, number);
    if let Some(inv) = provider
        .take(pbx)
        .into_iter()
        .find(|m| m.method() == Some(Method::Invite))
    {
        return Ok(inv);
    }
    Err(phone
        .take(pbx)
        .iter()
        .filter_map(|m| m.status())
        .map(|s| s.as_u16())
        .find(|c| *c >= 200)
        .expect("a final answer"))
}

fn setup(extra: &[(&str, &str)]) -> (Pbx, Phone, Phone, Phone, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with(dir.path(), "127.0.0.2:5060", PLAN);
    for (from, to) in extra {
        assert!(config.contains(from), "{from}");
        config = config.replace(from, to);
    }
    let pbx = Pbx::with_config(&config);
    let alice = Phone::new("1001", 5070);
    let bob = Phone::new("1002", 5072);
    let provider = Phone::at("provider", "unused", "127.0.0.2:5060");
    (pbx, alice, bob, provider, dir)
}

#[test]
fn calls_out_go_by_the_numbers_class_and_what_the_extension_may_dial() {
    let (mut pbx, mut alice, mut bob, mut provider, _dir) = setup(&[]);
    // Premium numbers: nobody by default, not even 1001, who may call abroad.
    for number in ["99005551234", "99765551234"] {
        assert_eq!(
            out(&mut pbx, &mut alice, &mut provider, number).err(),
            Some(403)
        );
    }
    // Abroad: 1001 may, 1002 (the default) may not.
    assert!(out(&mut pbx, &mut alice, &mut provider, "01144207946000").is_ok());
    assert_eq!(
        out(&mut pbx, &mut bob, &mut provider, "01144207946000").err(),
        Some(403)
    );
    // A number of no class at all is refused to anyone.
    assert_eq!(
        out(&mut pbx, &mut alice, &mut provider, "0115").err(),
        Some(403)
    );
    // National and emergency numbers: anyone.
    assert!(out(&mut pbx, &mut bob, &mut provider, "95557654321").is_ok());
    let (mut pbx, _, mut bob, mut provider, _dir) = setup(&[]);
    assert!(out(&mut pbx, &mut bob, &mut provider, "911").is_ok());
}

#[test]
fn an_extensions_calls_out_are_capped_at_once_and_a_day_and_a_trunks_at_once() {
    let (mut pbx, mut alice, mut bob, mut provider, _dir) =
        setup(&[("max_per_day_per_user = 100", "max_per_day_per_user = 3")]);
    // Two at once (the shipped cap); a third is refused while both ring.
    let first = out(&mut pbx, &mut bob, &mut provider, "95557654321").unwrap();
    let second = out(&mut pbx, &mut bob, &mut provider, "95557654322").unwrap();
    assert_eq!(
        out(&mut pbx, &mut bob, &mut provider, "95557654323").err(),
        Some(403)
    );
    // Alice is not held to Bob's count.
    let theirs = out(&mut pbx, &mut alice, &mut provider, "95557654324").unwrap();
    // One ends: Bob may place another, his third today; a fourth is one too many.
    provider.reply(&mut pbx, &first, 486);
    bob.take(&mut pbx);
    let third = out(&mut pbx, &mut bob, &mut provider, "95557654325").unwrap();
    for inv in [&second, &third, &theirs] {
        provider.reply(&mut pbx, inv, 486);
    }
    bob.take(&mut pbx);
    alice.take(&mut pbx);
    assert_eq!(
        out(&mut pbx, &mut bob, &mut provider, "95557654326").err(),
        Some(403)
    );
    // The next day (UTC) he may again.
    pbx.advance(Duration::from_secs(86_400));
    assert!(out(&mut pbx, &mut bob, &mut provider, "95557654327").is_ok());

    // A trunk with one channel carries one call out at a time, whoever places it.
    let (mut pbx, mut alice, mut bob, mut provider, _dir) = setup(&[(
        "inbound_from = [\"127.0.0.2\"]",
        "inbound_from = [\"127.0.0.2\"]\nmax_calls = 1",
    )]);
    out(&mut pbx, &mut alice, &mut provider, "95557654321").unwrap();
    assert_eq!(
        out(&mut pbx, &mut bob, &mut provider, "95557654322").err(),
        Some(403)
    );
}
