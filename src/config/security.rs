//! Checks of the settings that guard the box from its network: `[auth]`'s brute-force
//! bans, `[sip]`'s rate per source and TCP caps, and `[dial]`'s toll-fraud classes. Like
//! the rest of `check`, it turns a parsed file section into a typed policy or a
//! `file:line:column` error, and touches nothing else.

use std::time::Duration;
use toml::Spanned;

use super::file::{AuthSection, DialSection, SipSection};
use super::{ConfigError, DialPolicy, ErrAt, Pattern};

/// `[dial]`: named classes with patterns that compile, each name once, and a default
/// that names classes there are.
pub(super) fn dial(d: &DialSection, err: &ErrAt) -> Result<DialPolicy, ConfigError> {
    let mut classes: Vec<(String, Pattern)> = Vec::new();
    for c in &d.classes {
        let name = c.name.get_ref();
        if name.is_empty() || classes.iter().any(|(n, _)| n == name) {
            return Err(err(
                c.name.span(),
                format!("dial class `{name}` is empty or named twice"),
                None,
            ));
        }
        let re = regex::Regex::new(c.pattern.get_ref()).map_err(|e| {
            err(
                c.pattern.span(),
                format!("dial class `{name}`: the pattern does not compile: {e}"),
                None,
            )
        })?;
        classes.push((name.clone(), Pattern(re)));
    }
    let mut policy = DialPolicy {
        classes,
        default: Vec::new(),
        max_concurrent_per_user: d.max_concurrent_per_user,
        max_per_day_per_user: d.max_per_day_per_user,
    };
    policy.default = dial_classes(d.default.get_ref(), &policy, "dial.default", err)?;
    Ok(policy)
}

/// Class names someone may dial: each one a class of `[dial]`.
pub(super) fn dial_classes(
    names: &[Spanned<String>],
    policy: &DialPolicy,
    whose: &str,
    err: &ErrAt,
) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .map(|n| {
            if policy.classes.iter().any(|(c, _)| c == n.get_ref()) {
                Ok(n.get_ref().clone())
            } else {
                let known: Vec<&str> = policy.classes.iter().map(|(c, _)| c.as_str()).collect();
                Err(err(
                    n.span(),
                    format!("{whose}: `{}` is not a dial class", n.get_ref()),
                    Some(format!("the classes are {}", known.join(", "))),
                ))
            }
        })
        .collect()
}

/// `[sip]`'s TCP caps: at least one connection, no more per source than in all, and
/// waits of a second to a day (idle: up to a day and a half, beyond the longest
/// registration).
pub(super) fn tcp(s: &SipSection, err: &ErrAt) -> Result<crate::config::TcpCaps, ConfigError> {
    let (total, per) = (
        *s.tcp_max_connections.get_ref(),
        *s.tcp_max_per_source.get_ref(),
    );
    if !(1..=1_000_000).contains(&total) {
        return Err(err(
            s.tcp_max_connections.span(),
            "sip.tcp_max_connections must be 1 to 1000000".into(),
            None,
        ));
    }
    if !(1..=total).contains(&per) {
        return Err(err(
            s.tcp_max_per_source.span(),
            format!("sip.tcp_max_per_source must be 1 to tcp_max_connections ({total})"),
            Some("an office behind one NAT address needs one per phone on TCP".into()),
        ));
    }
    for (name, v, max) in [
        ("tcp_idle_s", &s.tcp_idle_s, 129_600),
        ("tcp_first_message_s", &s.tcp_first_message_s, 86_400),
    ] {
        if !(1..=max).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!("sip.{name} must be 1 to {max} seconds"),
                None,
            ));
        }
    }
    Ok(crate::config::TcpCaps {
        max_total: total,
        max_per_source: per,
        idle: Duration::from_secs(*s.tcp_idle_s.get_ref()),
        first_message: Duration::from_secs(*s.tcp_first_message_s.get_ref()),
    })
}

/// `[sip]`'s rate per source: 0 (off) to 100,000 requests a second, and a burst of at
/// least one second's worth.
pub(super) fn rate(s: &SipSection, err: &ErrAt) -> Result<crate::guard::RatePolicy, ConfigError> {
    let (rate, burst) = (*s.rate_per_source.get_ref(), *s.rate_burst.get_ref());
    if rate > 100_000 {
        return Err(err(
            s.rate_per_source.span(),
            "sip.rate_per_source must be 0 (off) to 100000 requests a second".into(),
            None,
        ));
    }
    if rate > 0 && !(rate..=1_000_000).contains(&burst) {
        return Err(err(
            s.rate_burst.span(),
            format!("sip.rate_burst must be at least rate_per_source ({rate}) and at most 1000000"),
            Some("a burst of three seconds' worth lets a phone's start-up through".into()),
        ));
    }
    Ok(crate::guard::RatePolicy {
        per_second: rate,
        burst,
    })
}

/// `[auth]`'s brute-force guard: a threshold of 0..=1000 failures, a window, ban times
/// of a second to a week with the longest no shorter than the first, exempt networks
/// written as addresses or CIDR blocks.
pub(super) fn ban_policy(
    a: &AuthSection,
    err: &ErrAt,
) -> Result<crate::guard::BanPolicy, ConfigError> {
    const WEEK: u64 = 7 * 86_400;
    if *a.ban_after_failures.get_ref() > 1000 {
        return Err(err(
            a.ban_after_failures.span(),
            "auth.ban_after_failures must be 0 (off) to 1000".into(),
            Some("10 failures within ban_window_s is a common choice".into()),
        ));
    }
    for (name, v) in [
        ("ban_window_s", &a.ban_window_s),
        ("ban_time_s", &a.ban_time_s),
        ("ban_max_s", &a.ban_max_s),
    ] {
        if !(1..=WEEK).contains(v.get_ref()) {
            return Err(err(
                v.span(),
                format!("auth.{name} must be 1 to {WEEK} seconds (a week)"),
                None,
            ));
        }
    }
    if a.ban_max_s.get_ref() < a.ban_time_s.get_ref() {
        return Err(err(
            a.ban_max_s.span(),
            format!(
                "auth.ban_max_s ({}) is shorter than the first ban, ban_time_s ({})",
                a.ban_max_s.get_ref(),
                a.ban_time_s.get_ref()
            ),
            None,
        ));
    }
    let exempt = a
        .ban_exempt
        .iter()
        .map(|e| {
            let s = e.get_ref().trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    err(
                        e.span(),
                        format!("auth.ban_exempt: `{s}` is not an address or a network"),
                        Some("write 192.0.2.10, 10.0.0.0/8 or 2001:db8::/32".into()),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::guard::BanPolicy {
        after: *a.ban_after_failures.get_ref(),
        window: Duration::from_secs(*a.ban_window_s.get_ref()),
        time: Duration::from_secs(*a.ban_time_s.get_ref()),
        max: Duration::from_secs(*a.ban_max_s.get_ref()),
        answer: a.ban_answer,
        exempt,
    })
}
