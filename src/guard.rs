//! The brute-force guards: failed authentications counted per source address, and a
//! source that fails too often refused for a while, longer each time it comes back
//! ([`Bans`]); wrong PINs (agent login, voicemail) counted the same way per caller
//! ([`PinThrottle`]); requests per source held to a rate ([`RateLimit`]).
//!
//! It owns its table of sources and nothing else (the config builds its policy). The
//! endpoint tells it of each failure and asks it, before parsing anything from a source,
//! whether that source is banned; what a banned source is answered (nothing, or 403) is
//! the endpoint's to send. Sources are addresses, not accounts: a stranger guessing an
//! extension's password shuts out the stranger, never the extension's own phones
//! elsewhere.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What a banned source is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanAnswer {
    /// Nothing: a scanner learns nothing and spends its time waiting.
    Drop,
    /// 403 Forbidden to every request.
    #[serde(rename = "403")]
    Forbidden,
}

/// When a source is banned, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failures within `window` that ban a source; 0 turns the guard off.
    pub after: u32,
    /// How far back failures count.
    pub window: Duration,
    /// The first ban's length; each further ban of the same source within a day of its
    /// last one lasts twice the one before, up to `max`.
    pub time: Duration,
    /// The longest ban.
    pub max: Duration,
    /// What a banned source is answered.
    pub answer: BanAnswer,
    /// Sources never banned (an office's own network, say); trunks' addresses are
    /// added to these by the endpoint.
    pub exempt: Vec<ipnet::IpNet>,
}

impl Default for BanPolicy {
    fn default() -> Self {
        Self {
            after: 10,
            window: Duration::from_secs(600),
            time: Duration::from_secs(600),
            max: Duration::from_secs(86_400),
            answer: BanAnswer::Drop,
            exempt: Vec::new(),
        }
    }
}

/// How long after its last ban a source's record of bans is forgotten.
const STRIKES_KEPT: Duration = Duration::from_secs(86_400);

/// Sources tracked before the quiet ones are swept out, so a scan from many addresses
/// cannot grow the table without bound.
const SWEEP_AT: usize = 4096;

/// When failures ban, and for how long: the part of a policy one source's record needs.
#[derive(Clone, Copy, Debug)]
struct Limits {
    after: u32,
    window: Duration,
    time: Duration,
    max: Duration,
}

/// One source's failures and bans.
#[derive(Debug, Default)]
struct Record {
    /// Failures within the window, oldest first (at most `after` of them).
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
    /// Bans so far (their lengths double), and when the last one began.
    bans: u32,
    last_ban: Option<Instant>,
}

impl Record {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// A failure now; the length of the ban it earns, if it bans.
    fn fail(&mut self, now: Instant, l: Limits) -> Option<Duration> {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= l.window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if self.failures.len() < l.after as usize {
            return None;
        }
        self.failures.clear();
        if self
            .last_ban
            .is_some_and(|t| now.saturating_duration_since(t) >= STRIKES_KEPT)
        {
            self.bans = 0;
        }
        let length = l.time.saturating_mul(1u32 << self.bans.min(20)).min(l.max);
        self.bans += 1;
        self.last_ban = Some(now);
        self.banned_until = Some(now + length);
        Some(length)
    }

    /// Failures within the window.
    fn recent(&self, now: Instant, window: Duration) -> usize {
        self.failures
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < window)
            .count()
    }

    /// Whether anything about it is still worth remembering: a ban now, a failure in
    /// the window, a ban within a day.
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.banned(now)
            || self
                .failures
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
            || self
                .last_ban
                .is_some_and(|t| now.saturating_duration_since(t) < STRIKES_KEPT)
    }
}

/// Forgets the records with nothing left to remember once `table` reaches `*sweep_at`
/// entries, then waits for it to double, so a table of records that all deserve
/// remembering is not swept on every failure and one of quiet ones stays bounded.
fn sweep<K>(table: &mut HashMap<K, Record>, sweep_at: &mut usize, now: Instant, window: Duration) {
    if table.len() < (*sweep_at).max(SWEEP_AT) {
        return;
    }
    table.retain(|_, r| r.live(now, window));
    *sweep_at = table.len() * 2;
}

/// A source being watched or banned, for `ctl bans`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BanView {
    /// The source address.
    pub addr: IpAddr,
    /// Seconds the ban still lasts (0: not banned now).
    pub banned_for_s: u64,
    /// Failed authentications within the window.
    pub failures: usize,
    /// Bans it earned so far (within a day of each other).
    pub bans: u32,
}

/// The table of sources.
#[derive(Debug, Default)]
pub struct Bans {
    policy: BanPolicy,
    /// Addresses never banned besides the policy's (the trunks').
    trunks: Vec<IpAddr>,
    sources: HashMap<IpAddr, Record>,
    sweep_at: usize,
}

impl Bans {
    /// Takes a (new) policy and the trunks' addresses; bans in force stay.
    pub(crate) fn set_policy(&mut self, policy: BanPolicy, trunks: Vec<IpAddr>) {
        self.policy = policy;
        self.trunks = trunks;
        if self.policy.after == 0 {
            self.sources.clear();
        }
        let exempt: Vec<IpAddr> = self
            .sources
            .keys()
            .copied()
            .filter(|ip| self.is_exempt(*ip))
            .collect();
        for ip in exempt {
            self.sources.remove(&ip);
        }
    }

    /// What a banned source is answered.
    pub(crate) fn answer(&self) -> BanAnswer {
        self.policy.answer
    }

    /// Whether `ip` is never banned (nor held to a rate).
    pub(crate) fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trunks.iter().any(|t| canonical(*t) == ip)
            || self.policy.exempt.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` is banned now.
    pub(crate) fn banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.sources
            .get(&canonical(ip))
            .is_some_and(|r| r.banned(now))
    }

    fn limits(&self) -> Limits {
        Limits {
            after: self.policy.after,
            window: self.policy.window,
            time: self.policy.time,
            max: self.policy.max,
        }
    }

    /// Records a failed authentication from `ip`; returns the length of the ban it
    /// earned, if this failure bans it.
    pub(crate) fn failed(&mut self, now: Instant, ip: IpAddr) -> Option<Duration> {
        let ip = canonical(ip);
        if self.policy.after == 0 || self.is_exempt(ip) {
            return None;
        }
        let limits = self.limits();
        sweep(&mut self.sources, &mut self.sweep_at, now, limits.window);
        self.sources.entry(ip).or_default().fail(now, limits)
    }

    /// Lifts the ban on `ip` and forgets its failures and earlier bans; whether there
    /// was anything to lift.
    pub(crate) fn lift(&mut self, ip: IpAddr) -> bool {
        self.sources.remove(&canonical(ip)).is_some()
    }

    /// Sources banned now or with failures in the window, banned first.
    pub(crate) fn list(&self, now: Instant) -> Vec<BanView> {
        let mut v: Vec<BanView> = self
            .sources
            .iter()
            .map(|(ip, s)| BanView {
                addr: *ip,
                banned_for_s: s
                    .banned_until
                    .map_or(0, |u| u.saturating_duration_since(now).as_secs()),
                failures: s.recent(now, self.policy.window),
                bans: s.bans,
            })
            .filter(|b| b.banned_for_s > 0 || b.failures > 0)
            .collect();
        v.sort_by(|a, b| {
            b.banned_for_s
                .cmp(&a.banned_for_s)
                .then(b.failures.cmp(&a.failures))
                .then(a.addr.cmp(&b.addr))
        });
        v
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.sources.len()
    }
}

/// PIN entry throttled by who keys it (an extension's phone, a trunk's caller), never
/// by the account: five wrong PINs (or PINs of IDs that do not exist, which count the
/// same, so an ID's existence shows nowhere) within ten minutes refuse that source any
/// PIN for five minutes, twice as long each time it comes back within a day, while the
/// account's owner goes on from their own phone. A right PIN clears its source.
#[derive(Debug, Default)]
pub struct PinThrottle {
    sources: HashMap<String, Record>,
    sweep_at: usize,
}

const PIN_LIMITS: Limits = Limits {
    after: 5,
    window: Duration::from_secs(600),
    time: Duration::from_secs(300),
    max: Duration::from_secs(86_400),
};

impl PinThrottle {
    /// Whether `source` may not key a PIN now.
    pub(crate) fn blocked(&self, now: Instant, source: &str) -> bool {
        self.sources.get(source).is_some_and(|r| r.banned(now))
    }

    /// A wrong PIN from `source`; how long it is refused PINs, if this refuses it.
    pub(crate) fn failed(&mut self, now: Instant, source: &str) -> Option<Duration> {
        sweep(
            &mut self.sources,
            &mut self.sweep_at,
            now,
            PIN_LIMITS.window,
        );
        self.sources
            .entry(source.to_string())
            .or_default()
            .fail(now, PIN_LIMITS)
    }

    /// A right PIN from `source`: its failures are forgotten.
    pub(crate) fn passed(&mut self, source: &str) {
        self.sources.remove(source);
    }
}

/// How many requests a source may send: `per_second` on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePolicy {
    /// Requests per second a source may keep up; 0 turns the limit off.
    pub per_second: u32,
    /// Requests a source may send at once after a quiet spell.
    pub burst: u32,
}

impl Default for RatePolicy {
    fn default() -> Self {
        Self {
            per_second: 100,
            burst: 300,
        }
    }
}

/// Requests counted per source address (a token bucket each), so one phone looping on
/// SUBSCRIBE or a scanner's flood is cut down to a rate the box answers without
/// starving everyone else's calls. Sources the ban guard exempts are exempt here too.
#[derive(Debug, Default)]
pub struct RateLimit {
    policy: RatePolicy,
    /// Tokens left and when they were counted.
    buckets: HashMap<IpAddr, (f64, Instant)>,
    sweep_at: usize,
}

impl RateLimit {
    /// Takes a (new) policy; counts so far stay.
    pub(crate) fn set_policy(&mut self, policy: RatePolicy) {
        self.policy = policy;
        if policy.per_second == 0 {
            self.buckets.clear();
        }
    }

    /// Whether a request from `ip` now is within its rate (and counts it if so).
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let RatePolicy { per_second, burst } = self.policy;
        if per_second == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(per_second), f64::from(burst.max(1)));
        if self.buckets.len() >= self.sweep_at.max(SWEEP_AT) {
            // A source whose bucket has filled again is as good as new.
            let full = Duration::from_secs_f64(burst / rate);
            self.buckets
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < full);
            self.sweep_at = self.buckets.len() * 2;
        }
        let (tokens, at) = self.buckets.entry(canonical(ip)).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports
/// it) is the IPv4 source it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn bans(after: u32) -> Bans {
        let mut b = Bans::default();
        b.set_policy(
            BanPolicy {
                after,
                window: Duration::from_secs(60),
                time: Duration::from_secs(100),
                max: Duration::from_secs(350),
                answer: BanAnswer::Drop,
                exempt: vec!["10.1.0.0/16".parse().unwrap()],
            },
            vec![ip("192.0.2.9")],
        );
        b
    }

    #[test]
    fn the_nth_failure_within_the_window_bans_the_source_and_only_it() {
        let t0 = Instant::now();
        let mut b = bans(3);
        let (attacker, phone) = (ip("198.51.100.7"), ip("198.51.100.8"));
        assert_eq!(b.failed(t0, attacker), None);
        assert_eq!(b.failed(t0 + Duration::from_secs(10), attacker), None);
        assert!(!b.banned(t0 + Duration::from_secs(10), attacker));
        assert_eq!(b.failed(t0 + Duration::from_secs(20), phone), None);
        let t = t0 + Duration::from_secs(59);
        assert_eq!(b.failed(t, attacker), Some(Duration::from_secs(100)));
        assert!(b.banned(t, attacker));
        assert!(!b.banned(t, phone));
        // The same source written as a mapped IPv6 address is the same source.
        assert!(b.banned(t, ip("::ffff:198.51.100.7")));
        // The ban ends on its own.
        assert!(b.banned(t + Duration::from_secs(99), attacker));
        assert!(!b.banned(t + Duration::from_secs(100), attacker));
        let listed = b.list(t);
        assert_eq!(
            listed,
            [
                BanView {
                    addr: attacker,
                    banned_for_s: 100,
                    failures: 0,
                    bans: 1
                },
                BanView {
                    addr: phone,
                    banned_for_s: 0,
                    failures: 1,
                    bans: 0
                }
            ]
        );
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut b = bans(3);
        let a = ip("198.51.100.7");
        for i in 0..10 {
            // One failure every 30 s: never three within 60 s.
            assert_eq!(b.failed(t0 + Duration::from_secs(30 * i), a), None, "{i}");
        }
        assert_eq!(b.list(t0 + Duration::from_secs(300))[0].failures, 1);
        assert!(b.list(t0 + Duration::from_secs(400)).is_empty());
    }

    #[test]
    fn a_source_that_comes_back_is_banned_twice_as_long_up_to_the_longest() {
        let t0 = Instant::now();
        let mut b = bans(1);
        let a = ip("2001:db8::1");
        let mut t = t0;
        for want in [100, 200, 350, 350] {
            assert_eq!(b.failed(t, a), Some(Duration::from_secs(want)));
            t += Duration::from_secs(want);
            assert!(!b.banned(t, a));
        }
        // A day after its last ban, a source starts again from the first length.
        let later = t + Duration::from_secs(86_400);
        assert_eq!(b.failed(later, a), Some(Duration::from_secs(100)));
    }

    #[test]
    fn exempt_networks_trunks_and_a_guard_turned_off_never_ban() {
        let t0 = Instant::now();
        let mut b = bans(1);
        for exempt in ["10.1.2.3", "192.0.2.9", "::ffff:192.0.2.9"] {
            assert_eq!(b.failed(t0, ip(exempt)), None, "{exempt}");
            assert!(!b.banned(t0, ip(exempt)));
        }
        assert!(b.failed(t0, ip("10.2.0.1")).is_some());
        let mut off = bans(0);
        assert_eq!(off.failed(t0, ip("10.2.0.1")), None);
        assert_eq!(off.tracked(), 0);
        // A reload that exempts a banned source lifts its ban; one that does not, keeps it.
        b.failed(t0, ip("10.3.0.1"));
        let mut policy = b.policy.clone();
        policy.exempt.push("10.2.0.0/16".parse().unwrap());
        b.set_policy(policy, Vec::new());
        assert!(!b.banned(t0, ip("10.2.0.1")));
        assert!(b.banned(t0, ip("10.3.0.1")));
    }

    #[test]
    fn pins_are_throttled_by_source_and_a_right_pin_clears_it() {
        let t0 = Instant::now();
        let mut p = PinThrottle::default();
        for i in 0..4 {
            assert_eq!(p.failed(t0, "ext:1001"), None, "{i}");
        }
        assert_eq!(p.failed(t0, "ext:1001"), Some(Duration::from_secs(300)));
        assert!(p.blocked(t0, "ext:1001"));
        assert!(!p.blocked(t0, "ext:1002"));
        assert!(!p.blocked(t0 + Duration::from_secs(300), "ext:1001"));
        // Back within a day: twice as long.
        let t = t0 + Duration::from_secs(300);
        for _ in 0..4 {
            p.failed(t, "ext:1001");
        }
        assert_eq!(p.failed(t, "ext:1001"), Some(Duration::from_secs(600)));
        // A right PIN (once it may key one again) forgets it all.
        p.passed("ext:1001");
        assert!(!p.blocked(t, "ext:1001"));
        for _ in 0..4 {
            assert_eq!(p.failed(t, "ext:1001"), None);
        }
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_and_others_theirs() {
        let t0 = Instant::now();
        let mut r = RateLimit::default();
        r.set_policy(RatePolicy {
            per_second: 10,
            burst: 30,
        });
        let (a, b) = (ip("198.51.100.7"), ip("198.51.100.8"));
        let allowed = |r: &mut RateLimit, t: Instant, ip: IpAddr, n: usize| {
            (0..n).filter(|_| r.allow(t, ip)).count()
        };
        assert_eq!(allowed(&mut r, t0, a, 100), 30);
        assert_eq!(allowed(&mut r, t0, b, 5), 5);
        // Half a second later: five more; a mapped IPv6 address is the same source.
        let t = t0 + Duration::from_millis(500);
        assert_eq!(allowed(&mut r, t, ip("::ffff:198.51.100.7"), 100), 5);
        // A long quiet spell refills the burst, no more.
        let t = t0 + Duration::from_secs(3600);
        assert_eq!(allowed(&mut r, t, a, 100), 30);
        // Off: everything passes, and nothing is kept.
        r.set_policy(RatePolicy {
            per_second: 0,
            burst: 30,
        });
        assert_eq!(allowed(&mut r, t, a, 1000), 1000);
        assert!(r.buckets.is_empty());
        // A flood from many addresses keeps the table bounded.
        r.set_policy(RatePolicy {
            per_second: 10,
            burst: 30,
        });
        for i in 0..20_000u32 {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a10_0000 + i));
            r.allow(t + Duration::from_millis(u64::from(i)), from);
        }
        assert!(r.buckets.len() < 2 * SWEEP_AT, "{}", r.buckets.len());
    }

    #[test]
    fn a_rate_sweep_forgets_full_buckets_only() {
        let t0 = Instant::now();
        let mut r = RateLimit::default();
        r.set_policy(RatePolicy {
            per_second: 10,
            burst: 30,
        });
        // Many sources once at t0; three (the flooder among them) lately.
        for i in 0..SWEEP_AT as u32 - 3 {
            assert!(r.allow(t0, IpAddr::from(std::net::Ipv4Addr::from(0x0a30_0000 + i))));
        }
        let late = t0 + Duration::from_millis(2500);
        let flooder = ip("198.51.100.7");
        assert_eq!((0..100).filter(|_| r.allow(late, flooder)).count(), 30);
        r.allow(late, ip("198.51.100.8"));
        r.allow(late, ip("198.51.100.9"));
        // At 3 s the early buckets are full again and go; the late ones stay, so the
        // flooder has only what it earned since (5), not a fresh burst.
        let at = t0 + Duration::from_secs(3);
        assert_eq!((0..100).filter(|_| r.allow(at, flooder)).count(), 5);
        assert_eq!(r.buckets.len(), 3);
        assert_eq!(
            r.sweep_at, 6,
            "the next sweep waits for the table to double"
        );
    }

    #[test]
    fn a_ban_is_lifted_by_hand_and_the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut b = bans(1);
        let a = ip("198.51.100.7");
        b.failed(t0, a);
        assert!(b.lift(a));
        assert!(!b.banned(t0, a));
        assert!(!b.lift(a));
        // A scan from many addresses, each failing once and going quiet.
        let mut b = bans(3);
        for i in 0..20_000u32 {
            let from = IpAddr::from(std::net::Ipv4Addr::from(0x0a10_0000 + i));
            b.failed(t0 + Duration::from_secs(u64::from(i) / 100), from);
        }
        assert!(b.tracked() < 2 * SWEEP_AT + 6_000, "{}", b.tracked());
    }

    #[test]
    fn a_record_is_worth_keeping_while_banned_failing_lately_or_banned_within_a_day() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let ms = Duration::from_millis(1);
        let limits = Limits {
            after: 2,
            window,
            time: Duration::from_secs(100),
            max: Duration::from_secs(1000),
        };
        let mut r = Record::default();
        assert!(!r.live(t0, window));
        r.fail(t0, limits);
        assert!(r.live(t0 + window - ms, window), "a failure in the window");
        assert!(!r.live(t0 + window, window), "a failure out of the window");
        r.fail(t0, limits);
        let ban_end = t0 + Duration::from_secs(100);
        assert!(r.live(ban_end - ms, window), "banned");
        assert!(!r.banned(ban_end));
        assert!(r.live(ban_end, window), "banned within the day");
        assert!(r.live(t0 + STRIKES_KEPT - ms, window));
        assert!(!r.live(t0 + STRIKES_KEPT, window), "the day is over");
        // Swept, a table keeps exactly those.
        let mut table: HashMap<u32, Record> = HashMap::new();
        table.insert(0, r);
        for i in 1..SWEEP_AT as u32 {
            let mut r = Record::default();
            r.fail(t0, limits);
            table.insert(i, r);
        }
        let mut at = 0;
        sweep(&mut table, &mut at, t0 + window, window);
        assert_eq!(table.len(), 1);
        assert_eq!(at, 2, "the next sweep waits for the table to double");
        let mut table2: HashMap<u32, Record> = (0..10).map(|i| (i, Record::default())).collect();
        sweep(&mut table2, &mut at, t0, window);
        assert_eq!(table2.len(), 10, "too small to sweep");
    }
}
