//! The admin's configuration file: `config/switchboard.toml` to a typed [`Config`].
//!
//! Every problem is reported as a [`ConfigError`] that names `file:line:column`, shows the
//! line with a caret under the offending text and, where we can, a hint. Unknown keys are
//! errors. Loading is pure apart from reading the one file (the driver and `check` share
//! it); nothing here binds sockets or touches state.

mod check;
mod file;
mod security;

use crate::diag::edit_distance;
pub use crate::diag::ConfigError;
use file::File;

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sip::auth::{self, Algorithm};
use crate::sip::header::Transport;
use crate::sip::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;

/// Makes an error at a place in the config file.
type ErrAt<'a> = dyn Fn(Range<usize>, String, Option<String>) -> ConfigError + 'a;

/// The configuration shipped in `config/switchboard.toml`, compiled in so `run` works
/// from any directory.
pub const EMBEDDED: &str = include_str!("../../config/switchboard.toml");

/// The shipped dialplan, used with the built-in config when `dialplans/default.dp` is not
/// on disk.
pub const EMBEDDED_DIALPLAN: &str = include_str!("../../dialplans/default.dp");

/// Passwords of the shipped demo extensions. Anyone can read them, so they are accepted
/// only from loopback, and `run` refuses a non-loopback listener while one is in use.
pub const DEMO_PASSWORDS: &[&str] = &[
    "demo-1001-change-me",
    "demo-1002-change-me",
    "demo-1003-change-me",
];

/// Voicemail PINs of the shipped demo extensions: public like their passwords, and
/// treated the same way.
pub const DEMO_PINS: &[&str] = &["4001", "4002", "4003", "45001"];

/// A SIP trunk: a provider or gateway that sends us calls (by address, no digest) and
/// takes calls we send it (optionally answering its digest challenges, and registering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trunk {
    /// Name the dialplan uses (`dial trunk "NAME" ...`) and CDRs record.
    pub name: String,
    /// Where calls (and REGISTERs) to the trunk go; UDP.
    pub address: SocketAddr,
    /// Source addresses whose INVITEs are this trunk's calls (accepted without digest).
    pub inbound_from: Vec<std::net::IpAddr>,
    /// Dialplan context for calls from the trunk.
    pub context: String,
    /// Number presented as caller on calls out (default: the calling extension).
    pub caller_id: Option<String>,
    /// Display name presented on calls out.
    pub caller_name: Option<String>,
    /// Whether to send P-Asserted-Identity (RFC 3325) with the caller's identity.
    pub pai: bool,
    /// Digest credentials for the trunk's challenges.
    pub credentials: Option<(String, String)>,
    /// Whether to register with the trunk.
    pub register: bool,
    /// Registration interval asked for.
    pub register_expires: u32,
    /// The numbers a caller from this trunk may be called back at (a queue's callbacks);
    /// none without it, since a trunk caller's number is whatever it claims.
    pub callback_numbers: Option<Pattern>,
    /// The music (a sound name) a party on a call through this trunk hears when put on
    /// hold, unless the call came through a queue or the holder's extension names one.
    pub moh: Option<String>,
    /// Calls through it at once, in and out (0: no cap).
    pub max_calls: u32,
}

/// Caps on SIP over TCP (`[sip] tcp_*`): connections in all and per source address, and
/// how long one may stay silent before its first message and after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpCaps {
    /// Connections open at once, in all.
    pub max_total: usize,
    /// Connections open at once from one address.
    pub max_per_source: usize,
    /// Silence after which a connection that has spoken is closed.
    pub idle: Duration,
    /// Time a new connection has to send its first whole message.
    pub first_message: Duration,
}

/// What calls out through a trunk may reach (`[dial]`), and how many an extension may
/// place: the toll-fraud guard's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialPolicy {
    /// Number classes in order; a number is the first class whose pattern it matches.
    pub classes: Vec<(String, Pattern)>,
    /// The classes an extension may dial unless its entry names its own.
    pub default: Vec<String>,
    /// Calls out through trunks one extension may have at once (0: no cap).
    pub max_concurrent_per_user: u32,
    /// Calls out through trunks one extension may place in a day, UTC (0: no cap).
    pub max_per_day_per_user: u32,
}

impl DialPolicy {
    /// The class of `number` (as sent to the trunk), if any class takes it.
    pub fn class_of(&self, number: &str) -> Option<&str> {
        self.classes
            .iter()
            .find(|(_, p)| p.is_match(number))
            .map(|(n, _)| n.as_str())
    }
}

/// A regular expression from the config, compared by its text.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl Pattern {
    /// Whether `s` matches it.
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// Where a SIP listener binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// UDP or TCP.
    pub transport: Transport,
    /// Address and port.
    pub addr: SocketAddr,
}

impl Listen {
    /// Parses `udp:127.0.0.1:5060`, `tcp:[::1]:5060`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (proto, addr) = s
            .split_once(':')
            .ok_or_else(|| "expected PROTO:ADDRESS:PORT, e.g. udp:127.0.0.1:5060".to_string())?;
        let transport = match proto.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" | "ws" | "wss" => {
                return Err(format!(
                    "transport `{proto}` is not available yet; use udp or tcp"
                ))
            }
            _ => return Err(format!("unknown transport `{proto}`; use udp or tcp")),
        };
        let addr = addr.parse::<SocketAddr>().map_err(|_| {
            format!("`{addr}` is not an IP address and port (IPv6 goes in brackets: [::1]:5060)")
        })?;
        Ok(Self { transport, addr })
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// A user's secret as stored: a password, or precomputed HA1 values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    password: Option<String>,
    ha1_md5: Option<String>,
    ha1_sha256: Option<String>,
}

impl Secret {
    /// HA1 for `alg` in `realm`, if this secret can give one.
    pub fn ha1(&self, alg: Algorithm, user: &str, realm: &str) -> Option<String> {
        if let Some(p) = &self.password {
            return Some(auth::ha1(alg, user, realm, p));
        }
        match alg {
            Algorithm::Md5 => self.ha1_md5.clone(),
            Algorithm::Sha256 => self.ha1_sha256.clone(),
        }
    }

    fn is_demo(&self, user: &str, realm: &str) -> bool {
        DEMO_PASSWORDS.iter().any(|d| {
            self.password.as_deref() == Some(d)
                || self.ha1_md5.as_deref() == Some(&auth::ha1(Algorithm::Md5, user, realm, d))
                || self.ha1_sha256.as_deref() == Some(&auth::ha1(Algorithm::Sha256, user, realm, d))
        })
    }
}

/// An extension that may register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The extension number, also the digest user name.
    pub extension: String,
    /// Display name.
    pub name: Option<String>,
    /// How it authenticates.
    pub secret: Secret,
    /// Whether its secret (or voicemail PIN) is one of the shipped demo ones.
    pub demo: bool,
    /// The PIN that opens its voicemail box (`voicemail check`); none: not by phone.
    pub voicemail_pin: Option<String>,
    /// As an ACD agent: skills and proficiency (1..10), for `queue ... skills "..."`.
    pub skills: Vec<(String, u8)>,
    /// The music (a sound name) a party this extension puts on hold hears, unless the
    /// call came through a queue (whose music wins).
    pub moh: Option<String>,
    /// Its call pickup group: group pickup takes a call ringing at an extension of the
    /// same group. Extensions that name none share the default group (empty).
    pub pickup_group: String,
    /// The number classes (`[dial]`) it may call through a trunk; `None`: the default.
    pub dial: Option<Vec<String>>,
}

/// An ACD agent who logs in with an ID and PIN from any extension's phone (hot-desking)
/// and is then offered calls there, as a dynamic member of its queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdAgent {
    /// What the agent keys in to log in (digits; not an extension).
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Its PIN.
    pub pin: String,
    /// The queues it joins on login, with its penalty in each.
    pub queues: Vec<(String, u32)>,
    /// Skills and proficiency (1..10).
    pub skills: Vec<(String, u8)>,
    /// Whether its PIN is one of the shipped demo ones.
    pub demo: bool,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// SIP domain, also the digest realm.
    pub domain: String,
    /// SIP listeners.
    pub listen: Vec<Listen>,
    /// Directory for the control socket and (later) the store.
    pub state_dir: PathBuf,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// RTP port range, inclusive.
    pub rtp_ports: (u16, u16),
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Registrar limits.
    pub registrar: RegistrarConfig,
    /// Digest algorithms offered, in order of preference.
    pub auth_algorithms: Vec<Algorithm>,
    /// How long a nonce stays fresh.
    pub nonce_lifetime: Duration,
    /// When a source failing authentication is banned.
    pub bans: crate::guard::BanPolicy,
    /// How many requests a source may send.
    pub rate: crate::guard::RatePolicy,
    /// Caps on TCP connections.
    pub tcp: TcpCaps,
    /// What calls out through a trunk may reach.
    pub dial: DialPolicy,
    /// How long a dialled phone may ring before the caller gets 480.
    pub ring_timeout: Duration,
    /// How often an answered call's parties are asked to confirm their dialog (a
    /// re-INVITE of what they agreed), so a party that vanished ends the call; `None`:
    /// never.
    pub session_refresh: Option<Duration>,
    /// How long an answered party may send no RTP or RTCP (not on hold) before it is
    /// taken for gone and the call ends; `None`: never.
    pub rtp_timeout: Option<Duration>,
    /// The keys an extension presses during a conversation to send the other party
    /// elsewhere (then the number and `#`); empty: off.
    pub transfer_code: String,
    /// The keys an extension presses during a conversation to consult someone first
    /// (then the number and `#`; hanging up hands the other party over); empty: off.
    pub attended_code: String,
    /// CDR database file (relative paths are inside the state directory).
    pub cdr_db: PathBuf,
    /// The dialplan in force.
    pub dialplan: std::sync::Arc<crate::dialplan::Dialplan>,
    /// Where it was read from (shown by `check`).
    pub dialplan_path: PathBuf,
    /// Context for calls from our own extensions.
    pub default_context: String,
    /// Prompts directory.
    pub sounds_dir: PathBuf,
    /// Trunks.
    pub trunks: Vec<Trunk>,
    /// Things worth telling the admin that do not stop the PBX.
    pub warnings: Vec<String>,
    /// Business-hours schedules by name, for `hours("name")` in the dialplan.
    pub hours: std::sync::Arc<std::collections::HashMap<String, crate::hours::Schedule>>,
    /// Extensions.
    pub users: Vec<User>,
    /// ACD queues, in name order, and each one's music on hold (a sound name).
    pub queues: Vec<(crate::acd::QueueConfig, String)>,
    /// Agents who log in by ID and PIN.
    pub agents: Vec<IdAgent>,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Validates `text`, reporting errors against `file`.
    pub fn from_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        let f: File = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (msg, hint) = explain_toml(e.message());
            ConfigError::at(file, text, span, msg, hint)
        })?;
        let err = |span: Range<usize>, msg: String, hint: Option<String>| {
            ConfigError::at(file, text, span, msg, hint)
        };
        let (domain, listen) = check::server(&f.server, &err)?;
        let rtp_ports = check::rtp_ports(&f.rtp, &err)?;
        let timers = check::timers(&f.sip, &err)?;
        let rate = security::rate(&f.sip, &err)?;
        let tcp = security::tcp(&f.sip, &err)?;
        let registrar = check::registrar(&f.registrar, &err)?;
        let algs = check::algorithms(&f.auth, &err)?;
        let bans = security::ban_policy(&f.auth, &err)?;
        // Every sound the config or dialplan names must exist, unless the name is built at
        // run time ($variables) or there is no sounds directory here at all (the built-in
        // config run from elsewhere): then a missing prompt is only logged and skipped when
        // played.
        let sounds_dir = PathBuf::from(&f.calls.sounds_dir);
        let dial = security::dial(&f.dial, &err)?;
        let users = check::users(f.users, &domain, &algs, &sounds_dir, &dial, &err)?;
        let (dialplan, dp_path, dp_text, context) = check::dialplan(&f.calls, text, &err)?;
        let trunks = check::trunks(&f.trunks, &dialplan, &dp_path, &sounds_dir, &err)?;
        check::trunk_refs(&dialplan, &dp_path, &dp_text, &trunks)?;
        let mut warnings = check::sounds(&dialplan, &dp_path, &dp_text, &sounds_dir)?;
        let hours = check::hours(&f.hours, &err)?;
        let queues = f
            .queues
            .iter()
            .map(|(name, q)| check::queue(name, q, &f.queues, &users, &sounds_dir, &err))
            .collect::<Result<Vec<_>, _>>()?;
        let agents = check::id_agents(&f.agents, &users, &queues, &err)?;
        check::queue_and_hours_refs(&dialplan, &dp_path, &dp_text, &queues, &hours)?;
        warnings.extend(check::dead_dialplan(&dialplan, &dp_path, &dp_text));
        let ring_timeout = check::ring_timeout(&f.calls, &err)?;
        let session_refresh = check::session_refresh(&f.calls, &err)?;
        let rtp_timeout = check::rtp_timeout(&f.calls, &err)?;
        let (transfer_code, attended_code) = check::feature_codes(&f.calls, &err)?;
        Ok(Self {
            ring_timeout,
            session_refresh,
            rtp_timeout,
            transfer_code,
            attended_code,
            cdr_db: PathBuf::from(f.calls.cdr_db),
            dialplan: std::sync::Arc::new(dialplan),
            dialplan_path: dp_path,
            default_context: context,
            sounds_dir,
            warnings,
            hours: std::sync::Arc::new(hours),
            queues,
            agents,
            trunks,
            domain,
            listen,
            state_dir: PathBuf::from(f.server.state_dir),
            user_agent: f.server.user_agent,
            rtp_ports,
            timers,
            registrar,
            auth_algorithms: algs,
            nonce_lifetime: Duration::from_secs(f.auth.nonce_lifetime_s.max(1)),
            bans,
            rate,
            tcp,
            dial,
            users,
        })
    }

    /// Extensions still using a shipped demo password or voicemail PIN, and agents
    /// (`agent ID`) still using a shipped demo PIN.
    pub fn demo_users(&self) -> Vec<String> {
        let users = self.users.iter().filter(|u| u.demo);
        let agents = self.agents.iter().filter(|a| a.demo);
        users
            .map(|u| u.extension.clone())
            .chain(agents.map(|a| format!("agent {}", a.id)))
            .collect()
    }

    /// Refuses a configuration that would expose demo passwords beyond loopback.
    pub fn check_exposure(&self) -> Result<(), String> {
        let demo = self.demo_users();
        if demo.is_empty() {
            return Ok(());
        }
        if let Some(l) = self.listen.iter().find(|l| !l.addr.ip().is_loopback()) {
            return Err(format!(
                "refusing to listen on {l}: {} still use the shipped demo passwords or PINs, which anyone can read. \
                 Change them in the config (or listen on loopback only).",
                demo.join(", ")
            ));
        }
        Ok(())
    }
}

/// Where the configuration comes from, so a reload reads it the same way `run` did: the
/// file (or the built-in copy) and the command line's overrides on top.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file; `None` for the built-in configuration.
    pub path: Option<PathBuf>,
    /// `--sip-listen` values, replacing `server.listen`.
    pub listen: Option<Vec<Listen>>,
    /// `--rtp-ports`, replacing `rtp.ports`.
    pub rtp_ports: Option<(u16, u16)>,
    /// `--state-dir`, replacing `server.state_dir`.
    pub state_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// Reads and validates the configuration, with the overrides applied.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.path {
            Some(p) => Config::load(p)?,
            None => Config::from_str(EMBEDDED, "<built-in config/switchboard.toml>")?,
        };
        if let Some(l) = &self.listen {
            c.listen = l.clone();
        }
        if let Some(r) = self.rtp_ports {
            c.rtp_ports = r;
        }
        if let Some(d) = &self.state_dir {
            c.state_dir = d.clone();
        }
        Ok(c)
    }
}

impl Config {
    /// What differs between `self` (in force) and `new` that only a restart applies: the
    /// listeners, the RTP range, the domain, the state directory and the CDR database.
    pub fn restart_needed(&self, new: &Config) -> Vec<String> {
        let mut v = Vec::new();
        if self.listen != new.listen {
            v.push("server.listen".to_string());
        }
        if self.rtp_ports != new.rtp_ports {
            v.push("rtp.ports".to_string());
        }
        if self.tcp != new.tcp {
            v.push("sip.tcp_*".to_string());
        }
        if self.domain != new.domain {
            v.push("server.domain".to_string());
        }
        if self.state_dir != new.state_dir {
            v.push("server.state_dir".to_string());
        }
        if self.cdr_db != new.cdr_db {
            v.push("calls.cdr_db".to_string());
        }
        if self.timers != new.timers {
            v.push("sip timers".to_string());
        }
        v
    }
}

/// An address that would let anyone call in as the trunk.
fn users_from_anywhere(ip: std::net::IpAddr) -> bool {
    ip.is_unspecified() || ip.is_multicast()
}

/// Parses `LOW-HIGH`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not a port range LOW-HIGH"))?;
    let (a, b) = (a.trim().parse::<u16>(), b.trim().parse::<u16>());
    match (a, b) {
        (Ok(a), Ok(b)) if a >= 1024 && a < b => Ok((a, b)),
        (Ok(_), Ok(_)) => Err(format!("`{s}`: LOW must be at least 1024 and below HIGH")),
        _ => Err(format!("`{s}` is not a port range LOW-HIGH")),
    }
}

/// Turns toml's messages into ours plus a hint.
fn explain_toml(msg: &str) -> (String, Option<String>) {
    let msg = msg.trim().to_string();
    let hint = if msg.starts_with("unknown field") {
        let mut names = msg.split('`').skip(1).step_by(2);
        let got = names.next().unwrap_or_default();
        match names.filter(|n| edit_distance(got, n) <= 2).min_by_key(|n| edit_distance(got, n)) {
            Some(best) => Some(format!("did you mean `{best}`?")),
            None => Some("unknown keys are errors, so a typo never goes unnoticed; see config/switchboard.toml for every key".to_string()),
        }
    } else if msg.starts_with("missing field") {
        Some("this key is required; see config/switchboard.toml".to_string())
    } else if msg.contains("unknown variant") {
        Some("use one of the listed values, spelled exactly".to_string())
    } else if msg.contains("invalid type") {
        Some("check the value's type: strings are quoted, numbers are not".to_string())
    } else {
        None
    };
    (msg, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_dial_classes_are_what_a_file_without_them_gets() {
        let c = Config::from_str(EMBEDDED, "config/switchboard.toml").unwrap();
        let start = EMBEDDED.find("\n[dial]\n").unwrap();
        let end = EMBEDDED.find("# SIP trunks").unwrap();
        let without = format!("{}{}", &EMBEDDED[..start], &EMBEDDED[end..]);
        let d = Config::from_str(&without, "no [dial]").unwrap();
        assert_eq!(c.dial, d.dial);
        let class = |n: &str| c.dial.class_of(n).map(str::to_string);
        for (number, want) in [
            ("911", Some("emergency")),
            ("+19005551234", Some("premium")),
            ("+15551230000", Some("national")),
            ("+442079460000", Some("international")),
            ("+1555", None),
            ("0044", None),
        ] {
            assert_eq!(class(number).as_deref(), want, "{number}");
        }
        let alice = c.users.iter().find(|u| u.extension == "1001").unwrap();
        assert_eq!(
            alice.dial.as_deref(),
            Some(&["emergency", "national", "international"].map(String::from)[..])
        );
        let err = Config::from_str(
            &EMBEDDED.replace(
                "dial = [\"emergency\", \"national\", \"international\"]",
                "dial = [\"abroad\"]",
            ),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("extension `1001`: `abroad` is not a dial class")
                && err.contains("the classes are emergency, premium, national, international"),
            "{err}"
        );
        let err = Config::from_str(&EMBEDDED.replace("'^(911|933)$'", "'^(911'"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dial class `emergency`: the pattern does not compile"),
            "{err}"
        );
    }

    #[test]
    fn shipped_config_is_valid_and_demo_guarded() {
        let c = Config::from_str(EMBEDDED, "config/switchboard.toml").unwrap();
        assert_eq!(c.users.len(), 3);
        assert_eq!(c.demo_users(), vec!["1001", "1002", "1003", "agent 5001"]);
        let carol = c.users.iter().find(|u| u.extension == "1003").unwrap();
        assert_eq!(
            carol.skills,
            [("billing".to_string(), 2), ("spanish".to_string(), 3)]
        );
        assert_eq!(c.queues[0].0.name, "support");
        assert!(c.check_exposure().is_ok(), "ships on loopback only");
        let mut exposed = c.clone();
        exposed
            .listen
            .push(Listen::parse("udp:0.0.0.0:5060").unwrap());
        let e = exposed.check_exposure().unwrap_err();
        assert!(e.contains("1001, 1002, 1003, agent 5001"), "{e}");
    }

    #[test]
    fn agents_by_id_are_checked() {
        let with = |from: &str, to: &str| {
            assert!(EMBEDDED.contains(from), "{from}");
            Config::from_str(&EMBEDDED.replace(from, to), "c.toml")
        };
        let c = with("queues = [\"support\"]", "queues = [\"support:2\"]").unwrap();
        let a = &c.agents[0];
        assert_eq!(a.queues, [("support".to_string(), 2)]);
        assert_eq!(a.skills, [("billing".to_string(), 3)]);
        assert!(a.demo);
        for (from, to, says) in [
            ("id = \"5001\"", "id = \"1002\"", "already an extension"),
            ("id = \"5001\"", "id = \"5x\"", "2 to 16 digits"),
            ("pin = \"45001\"", "pin = \"12\"", "4 to 16 digits"),
            (
                "queues = [\"support\"]",
                "queues = [\"support:x\"]",
                "not a number",
            ),
            (
                "skills = { billing = 3 }",
                "skills = { billing = 11 }",
                "skill `billing` of agent `5001` must be 1 to 10",
            ),
            (
                "skills = { billing = 4 }",
                "skills = { billing = 0 }",
                "skill `billing` of extension `1002` must be 1 to 10",
            ),
        ] {
            let e = with(from, to).unwrap_err().to_string();
            assert!(e.contains(says), "{to}: {e}");
        }
    }

    #[test]
    fn the_transfer_code_is_keys_or_nothing() {
        let with = |code: &str| {
            let from = "transfer_code = \"##\"";
            assert!(EMBEDDED.contains(from));
            Config::from_str(
                &EMBEDDED.replace(from, &format!("transfer_code = \"{code}\"")),
                "c.toml",
            )
        };
        assert_eq!(with("#9").unwrap().transfer_code, "#9");
        assert_eq!(with("").unwrap().transfer_code, "");
        for bad in ["#a", "#####"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("transfer_code must be"), "{bad}: {e}");
        }
        let with_attended = |code: &str| {
            let from = "attended_code = \"*2\"";
            assert!(EMBEDDED.contains(from));
            Config::from_str(
                &EMBEDDED.replace(from, &format!("attended_code = \"{code}\"")),
                "c.toml",
            )
        };
        let c = with_attended("#*").unwrap();
        assert_eq!(
            (c.transfer_code.as_str(), c.attended_code.as_str()),
            ("##", "#*")
        );
        assert_eq!(with_attended("").unwrap().attended_code, "");
        let e = with_attended("2a").unwrap_err().to_string();
        assert!(e.contains("attended_code must be"), "{e}");
        // One code the start of the other: the longer could never be pressed.
        for clash in ["#", "##", "##1"] {
            let e = with_attended(clash).unwrap_err().to_string();
            assert!(e.contains("begin alike"), "{clash}: {e}");
        }
        let e = with("*").unwrap_err().to_string();
        assert!(e.contains("begin alike"), "{e}");
    }

    #[test]
    fn listen_syntax() {
        assert_eq!(
            Listen::parse("tcp:[::1]:5070").unwrap().addr,
            "[::1]:5070".parse().unwrap()
        );
        assert!(Listen::parse("udp:localhost:5060").is_err());
        assert!(Listen::parse("sctp:127.0.0.1:5060").is_err());
        assert_eq!(parse_port_range("20000-20100").unwrap(), (20000, 20100));
        assert!(parse_port_range("100-20").is_err());
    }
}
