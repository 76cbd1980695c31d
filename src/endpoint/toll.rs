//! The toll-fraud guard: whether a call out through a trunk may go, by the class of the
//! number (`[dial]` classes) and what the calling extension may dial, and by how many
//! calls out the extension and the trunk have. Part of the endpoint; it owns the counts
//! of calls out (which live calls went out, and each extension's calls today), never a
//! call. Refusals are logged as alerts by the endpoint.

use std::collections::HashMap;

use super::call::state::CallId;
use crate::config::{DialPolicy, Trunk};

/// Why a call out is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TollRefusal {
    /// The number is of no class, or of one the extension may not dial.
    Class(Option<String>),
    /// The extension has this many calls out already.
    Concurrent(u32),
    /// The extension placed this many calls out today.
    Daily(u32),
    /// The trunk carries this many calls out already.
    Trunk(u32),
}

impl std::fmt::Display for TollRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Class(None) => write!(f, "the number is of no dial class"),
            Self::Class(Some(c)) => write!(f, "the extension may not dial {c} numbers"),
            Self::Concurrent(n) => write!(f, "the extension has {n} calls out already"),
            Self::Daily(n) => write!(f, "the extension placed {n} calls out today"),
            Self::Trunk(n) => write!(f, "the trunk carries {n} calls out already"),
        }
    }
}

/// Calls out, counted.
#[derive(Debug, Default)]
pub(super) struct Tolls {
    /// Live calls that went out through a trunk: the extension, and the trunk.
    live: HashMap<CallId, (String, String)>,
    /// Calls out per extension on the UTC day they are counted for.
    today: HashMap<String, (u64, u32)>,
}

impl Tolls {
    /// Whether extension `ext`, which may dial the classes `may`, may call `number`
    /// through trunk `trunk` on UTC day `day`.
    pub(super) fn check(
        &self,
        policy: &DialPolicy,
        may: &[String],
        ext: &str,
        trunk: &Trunk,
        number: &str,
        day: u64,
    ) -> Result<(), TollRefusal> {
        let class = policy.class_of(number);
        if !class.is_some_and(|c| may.iter().any(|m| m == c)) {
            return Err(TollRefusal::Class(class.map(str::to_string)));
        }
        let count = |pred: &dyn Fn(&(String, String)) -> bool| {
            self.live.values().filter(|v| pred(v)).count() as u32
        };
        let own = count(&|(e, _)| e == ext);
        if policy.max_concurrent_per_user > 0 && own >= policy.max_concurrent_per_user {
            return Err(TollRefusal::Concurrent(own));
        }
        let placed = self
            .today
            .get(ext)
            .filter(|(d, _)| *d == day)
            .map_or(0, |(_, n)| *n);
        if policy.max_per_day_per_user > 0 && placed >= policy.max_per_day_per_user {
            return Err(TollRefusal::Daily(placed));
        }
        let through = count(&|(_, t)| *t == trunk.name);
        if trunk.max_calls > 0 && through >= trunk.max_calls {
            return Err(TollRefusal::Trunk(through));
        }
        Ok(())
    }

    /// Call `id` of extension `ext` went out through trunk `trunk` on UTC day `day`.
    pub(super) fn went_out(&mut self, id: CallId, ext: &str, trunk: &str, day: u64) {
        self.live.insert(id, (ext.to_string(), trunk.to_string()));
        let e = self.today.entry(ext.to_string()).or_insert((day, 0));
        if e.0 != day {
            *e = (day, 0);
        }
        e.1 += 1;
    }

    /// Call `id` ended.
    pub(super) fn ended(&mut self, id: CallId) {
        self.live.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(concurrent: u32, daily: u32) -> DialPolicy {
        let re = |p: &str| crate::config::Pattern(regex::Regex::new(p).unwrap());
        DialPolicy {
            classes: vec![("national".into(), re(r"^\+1\d{10}$"))],
            default: vec!["national".into()],
            max_concurrent_per_user: concurrent,
            max_per_day_per_user: daily,
        }
    }

    fn trunk(max_calls: u32) -> Trunk {
        let cfg = crate::config::Config::from_str(crate::config::EMBEDDED, "t").unwrap();
        Trunk {
            max_calls,
            ..cfg.trunks[0].clone()
        }
    }

    #[test]
    fn caps_of_zero_cap_nothing_and_refusals_say_why() {
        let may = vec!["national".to_string()];
        let mut t = Tolls::default();
        for n in 0..50u64 {
            t.went_out(CallId(n), "1001", "demo", 7);
        }
        let n = "+15557654321";
        assert_eq!(
            t.check(&policy(0, 0), &may, "1001", &trunk(0), n, 7),
            Ok(())
        );
        assert_eq!(
            t.check(&policy(50, 0), &may, "1001", &trunk(0), n, 7),
            Err(TollRefusal::Concurrent(50))
        );
        assert_eq!(
            t.check(&policy(0, 50), &may, "1001", &trunk(0), n, 7),
            Err(TollRefusal::Daily(50))
        );
        assert_eq!(
            t.check(&policy(0, 50), &may, "1001", &trunk(0), n, 8),
            Ok(())
        );
        assert_eq!(
            t.check(&policy(0, 0), &may, "1001", &trunk(50), n, 7),
            Err(TollRefusal::Trunk(50))
        );
        assert_eq!(
            t.check(&policy(0, 0), &[], "1001", &trunk(0), n, 7),
            Err(TollRefusal::Class(Some("national".into())))
        );
        assert_eq!(
            t.check(&policy(0, 0), &may, "1001", &trunk(0), "+44", 7),
            Err(TollRefusal::Class(None))
        );
        for (r, said) in [
            (TollRefusal::Class(None), "the number is of no dial class"),
            (
                TollRefusal::Class(Some("premium".into())),
                "the extension may not dial premium numbers",
            ),
            (
                TollRefusal::Concurrent(2),
                "the extension has 2 calls out already",
            ),
            (
                TollRefusal::Daily(9),
                "the extension placed 9 calls out today",
            ),
            (
                TollRefusal::Trunk(3),
                "the trunk carries 3 calls out already",
            ),
        ] {
            assert_eq!(r.to_string(), said);
        }
    }
}
