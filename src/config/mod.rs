//! The admin's configuration file: `config/switchboard.toml` to a typed [`Config`].
//!
//! Every problem is reported as a [`ConfigError`] that names `file:line:column`, shows the
//! line with a caret under the offending text and, where we can, a hint. Unknown keys are
//! errors. Loading is pure apart from reading the one file (the driver and `check` share
//! it); nothing here binds sockets or touches state.

use crate::diag::edit_distance;
pub use crate::diag::ConfigError;

use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

use crate::sip::auth::{self, Algorithm};
use crate::sip::header::Transport;
use crate::sip::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: ServerSection,
    #[serde(default)]
    sip: SipSection,
    #[serde(default)]
    rtp: RtpSection,
    #[serde(default)]
    registrar: RegistrarSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    calls: CallsSection,
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    trunks: Vec<TrunkEntry>,
    #[serde(default)]
    hours: std::collections::BTreeMap<String, Spanned<HoursEntry>>,
    #[serde(default)]
    queues: std::collections::BTreeMap<String, Spanned<QueueEntry>>,
    #[serde(default)]
    agents: Vec<Spanned<AgentEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentEntry {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    pin: Spanned<String>,
    #[serde(default)]
    queues: Vec<Spanned<String>>,
    #[serde(default)]
    skills: Option<Spanned<std::collections::BTreeMap<String, u8>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueEntry {
    strategy: crate::acd::Strategy,
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default = "default_15")]
    ring_timeout_s: u64,
    #[serde(default = "default_5")]
    retry_s: u64,
    #[serde(default)]
    wrap_up_s: u64,
    #[serde(default)]
    max_wait_s: Option<u64>,
    #[serde(default)]
    max_len: Option<usize>,
    #[serde(default = "default_true")]
    join_empty: bool,
    #[serde(default)]
    leave_when_empty: bool,
    #[serde(default = "default_20")]
    sl_threshold_s: u64,
    #[serde(default = "default_5")]
    short_abandon_s: u64,
    #[serde(default = "default_3")]
    auto_pause_after: u32,
    #[serde(default = "default_moh")]
    moh: Spanned<String>,
    #[serde(default)]
    announce_position_s: u64,
    #[serde(default)]
    sticky_s: u64,
    #[serde(default)]
    announce_wait: bool,
    #[serde(default)]
    overflow: Option<Spanned<String>>,
    #[serde(default)]
    callback_key: Option<Spanned<String>>,
    #[serde(default)]
    callback_on_max_wait: bool,
    #[serde(default = "default_3")]
    callback_attempts: u32,
    #[serde(default = "default_120")]
    callback_retry_s: u64,
}

fn default_120() -> u64 {
    120
}
fn default_15() -> u64 {
    15
}
fn default_5() -> u64 {
    5
}
fn default_20() -> u64 {
    20
}
fn default_3() -> u32 {
    3
}
fn default_moh() -> Spanned<String> {
    Spanned::new(0..0, "moh/default".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursEntry {
    timezone: String,
    #[serde(default)]
    open: Vec<String>,
    #[serde(default)]
    closed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunkEntry {
    name: Spanned<String>,
    address: Spanned<String>,
    #[serde(default)]
    inbound_from: Vec<Spanned<String>>,
    #[serde(default = "default_inbound_context")]
    context: Spanned<String>,
    #[serde(default)]
    caller_id: Option<String>,
    #[serde(default)]
    caller_name: Option<String>,
    #[serde(default = "default_true")]
    pai: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    register: bool,
    #[serde(default = "default_reg_expires")]
    register_expires_s: u32,
    #[serde(default)]
    callback_numbers: Option<Spanned<String>>,
}

fn default_inbound_context() -> Spanned<String> {
    Spanned::new(0..0, "inbound".into())
}

fn default_true() -> bool {
    true
}

fn default_reg_expires() -> u32 {
    600
}

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CallsSection {
    ring_timeout_s: Spanned<u64>,
    cdr_db: String,
    dialplan: Spanned<String>,
    context: Spanned<String>,
    sounds_dir: String,
}

impl Default for CallsSection {
    fn default() -> Self {
        Self {
            ring_timeout_s: Spanned::new(0..0, 30),
            cdr_db: "cdr.sqlite".into(),
            dialplan: Spanned::new(0..0, "dialplans/default.dp".into()),
            context: Spanned::new(0..0, "internal".into()),
            sounds_dir: "sounds".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    domain: Spanned<String>,
    listen: Vec<Spanned<String>>,
    #[serde(default = "default_state_dir")]
    state_dir: String,
    #[serde(default = "default_user_agent")]
    user_agent: String,
}

fn default_state_dir() -> String {
    "state".into()
}

fn default_user_agent() -> String {
    format!("switchboard/{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SipSection {
    t1_ms: Spanned<u64>,
    t2_ms: Spanned<u64>,
    t4_ms: Spanned<u64>,
}

impl Default for SipSection {
    fn default() -> Self {
        Self {
            t1_ms: Spanned::new(0..0, 500),
            t2_ms: Spanned::new(0..0, 4000),
            t4_ms: Spanned::new(0..0, 5000),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RtpSection {
    ports: Spanned<String>,
}

impl Default for RtpSection {
    fn default() -> Self {
        Self {
            ports: Spanned::new(0..0, "20000-29999".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RegistrarSection {
    min_expires: u32,
    max_expires: u32,
    default_expires: Spanned<u32>,
    max_contacts: usize,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        let d = RegistrarConfig::default();
        Self {
            min_expires: d.min_expires,
            max_expires: d.max_expires,
            default_expires: Spanned::new(0..0, d.default_expires),
            max_contacts: d.max_contacts,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuthSection {
    algorithms: Spanned<Vec<Algorithm>>,
    nonce_lifetime_s: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            algorithms: Spanned::new(0..0, vec![Algorithm::Md5]),
            nonce_lifetime_s: 300,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    extension: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    ha1_md5: Option<Spanned<String>>,
    #[serde(default)]
    ha1_sha256: Option<Spanned<String>>,
    #[serde(default)]
    voicemail_pin: Option<Spanned<String>>,
    #[serde(default)]
    skills: Option<Spanned<std::collections::BTreeMap<String, u8>>>,
}

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
    /// How long a dialled phone may ring before the caller gets 480.
    pub ring_timeout: Duration,
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

        let domain = f.server.domain.get_ref().trim().to_string();
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(err(
                f.server.domain.span(),
                "domain must be a host name without spaces".into(),
                Some("e.g. domain = \"pbx.example.com\"".into()),
            ));
        }
        if f.server.listen.is_empty() {
            return Err(err(
                0..0,
                "server.listen is empty: switchboard would not listen anywhere".into(),
                Some("add e.g. listen = [\"udp:127.0.0.1:5060\"]".into()),
            ));
        }
        let mut listen = Vec::new();
        for l in &f.server.listen {
            let parsed = Listen::parse(l.get_ref()).map_err(|m| {
                err(
                    l.span(),
                    m,
                    Some("e.g. \"udp:127.0.0.1:5060\" or \"tcp:[::1]:5060\"".into()),
                )
            })?;
            if listen.contains(&parsed) {
                return Err(err(
                    l.span(),
                    format!("`{}` is listed twice", l.get_ref()),
                    None,
                ));
            }
            listen.push(parsed);
        }
        let rtp_ports = parse_port_range(f.rtp.ports.get_ref()).map_err(|m| {
            err(
                f.rtp.ports.span(),
                m,
                Some(
                    "e.g. ports = \"20000-29999\" (an even start, room for RTP and RTCP pairs)"
                        .into(),
                ),
            )
        })?;
        let timers = TimerConfig {
            t1: Duration::from_millis(*f.sip.t1_ms.get_ref()),
            t2: Duration::from_millis(*f.sip.t2_ms.get_ref()),
            t4: Duration::from_millis(*f.sip.t4_ms.get_ref()),
        };
        if timers.t1.is_zero() || timers.t1 > timers.t2 {
            return Err(err(
                f.sip.t1_ms.span(),
                "t1_ms must be above 0 and not above t2_ms".into(),
                Some("RFC 3261 defaults: t1_ms = 500, t2_ms = 4000, t4_ms = 5000".into()),
            ));
        }
        if timers.t4.is_zero() {
            return Err(err(
                f.sip.t4_ms.span(),
                "t4_ms must be above 0".into(),
                None,
            ));
        }
        let r = &f.registrar;
        if r.min_expires > r.max_expires
            || !(r.min_expires..=r.max_expires).contains(r.default_expires.get_ref())
        {
            return Err(err(
                r.default_expires.span(),
                format!(
                    "default_expires {} must lie within min_expires {} and max_expires {}",
                    r.default_expires.get_ref(),
                    r.min_expires,
                    r.max_expires
                ),
                None,
            ));
        }
        if r.max_contacts == 0 {
            return Err(err(
                0..0,
                "registrar.max_contacts must be at least 1".into(),
                None,
            ));
        }
        let algs = f.auth.algorithms.get_ref().clone();
        if algs.is_empty() {
            return Err(err(
                f.auth.algorithms.span(),
                "auth.algorithms is empty: nobody could register".into(),
                Some("use [\"SHA-256\", \"MD5\"]; most phones speak only MD5".into()),
            ));
        }
        let mut users: Vec<User> = Vec::new();
        for u in f.users {
            let ext = u.extension.get_ref().clone();
            if ext.is_empty()
                || !ext
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.+".contains(&c))
            {
                return Err(err(
                    u.extension.span(),
                    format!("extension `{ext}` must be letters, digits or - _ . +"),
                    None,
                ));
            }
            if users.iter().any(|x| x.extension == ext) {
                return Err(err(
                    u.extension.span(),
                    format!("extension `{ext}` is defined twice"),
                    None,
                ));
            }
            let secret = Secret {
                password: u.password.as_ref().map(|p| p.get_ref().clone()),
                ha1_md5: u.ha1_md5.as_ref().map(|p| p.get_ref().to_ascii_lowercase()),
                ha1_sha256: u
                    .ha1_sha256
                    .as_ref()
                    .map(|p| p.get_ref().to_ascii_lowercase()),
            };
            if let Some(p) = &u.password {
                if p.get_ref().len() < 8 {
                    return Err(err(p.span(), format!("password of extension `{ext}` is shorter than 8 characters"), Some("use a long random password, or store it hashed as ha1_md5 / ha1_sha256".into())));
                }
            }
            for (field, len) in [(&u.ha1_md5, 32), (&u.ha1_sha256, 64)] {
                if let Some(h) = field {
                    if h.get_ref().len() != len
                        || !h.get_ref().bytes().all(|c| c.is_ascii_hexdigit())
                    {
                        return Err(err(
                            h.span(),
                            format!("expected {len} hex digits"),
                            Some(format!(
                                "compute it as the hex digest of \"{ext}:{domain}:PASSWORD\""
                            )),
                        ));
                    }
                }
            }
            if secret.password.is_none() {
                if secret.ha1_md5.is_none() && secret.ha1_sha256.is_none() {
                    return Err(err(
                        u.extension.span(),
                        format!("extension `{ext}` has no password, ha1_md5 or ha1_sha256"),
                        None,
                    ));
                }
                for a in &algs {
                    if secret.ha1(*a, &ext, &domain).is_none() {
                        return Err(err(
                            u.extension.span(),
                            format!(
                                "extension `{ext}` has no HA1 for {}, which auth.algorithms offers",
                                a.as_str()
                            ),
                            Some(format!(
                                "add ha1_{} or a password, or drop {} from auth.algorithms",
                                if *a == Algorithm::Md5 {
                                    "md5"
                                } else {
                                    "sha256"
                                },
                                a.as_str()
                            )),
                        ));
                    }
                }
            }
            if let Some(p) = &u.voicemail_pin {
                let pin = p.get_ref();
                if !(4..=16).contains(&pin.len()) || !pin.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err(
                        p.span(),
                        format!("voicemail PIN of extension `{ext}` must be 4 to 16 digits"),
                        Some("phones key it, so digits only".into()),
                    ));
                }
            }
            let mut skills = Vec::new();
            if let Some(sk) = &u.skills {
                for (name, level) in sk.get_ref() {
                    if !(1..=10).contains(level) {
                        return Err(err(
                            sk.span(),
                            format!("skill `{name}` of extension `{ext}` must be 1 to 10"),
                            None,
                        ));
                    }
                    skills.push((name.clone(), *level));
                }
            }
            let voicemail_pin = u.voicemail_pin.map(|p| p.into_inner());
            let demo = secret.is_demo(&ext, &domain)
                || voicemail_pin
                    .as_deref()
                    .is_some_and(|p| DEMO_PINS.contains(&p));
            users.push(User {
                extension: ext,
                name: u.name,
                secret,
                demo,
                voicemail_pin,
                skills,
            });
        }
        let dp_path = PathBuf::from(f.calls.dialplan.get_ref());
        let dp_text = match std::fs::read_to_string(&dp_path) {
            Ok(t) => t,
            Err(_) if text == EMBEDDED => EMBEDDED_DIALPLAN.to_string(),
            Err(e) => {
                return Err(err(
                    f.calls.dialplan.span(),
                    format!("cannot read dialplan `{}`: {e}", dp_path.display()),
                    Some("paths are relative to the working directory".into()),
                ));
            }
        };
        let dialplan = crate::dialplan::parse(&dp_text, &dp_path.display().to_string())?;
        let context = f.calls.context.get_ref().clone();
        if !dialplan.has_context(&context) {
            let mut known: Vec<&str> = dialplan.contexts().collect();
            known.sort_unstable();
            return Err(err(
                f.calls.context.span(),
                format!("context `{context}` is not in {}", dp_path.display()),
                Some(format!("contexts there: {}", known.join(", "))),
            ));
        }
        let mut trunks: Vec<Trunk> = Vec::new();
        for t in &f.trunks {
            let name = t.name.get_ref().clone();
            if name.is_empty() || trunks.iter().any(|x| x.name == name) {
                return Err(err(
                    t.name.span(),
                    format!("trunk name `{name}` is empty or used twice"),
                    None,
                ));
            }
            let address = t.address.get_ref().parse::<SocketAddr>().map_err(|_| {
                err(
                    t.address.span(),
                    format!("`{}` is not an IP address and port", t.address.get_ref()),
                    Some("e.g. address = \"192.0.2.10:5060\" (host names come later)".into()),
                )
            })?;
            let mut inbound_from = Vec::new();
            for a in &t.inbound_from {
                let ip = a.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
                    err(
                        a.span(),
                        format!("`{}` is not an IP address", a.get_ref()),
                        None,
                    )
                })?;
                if users_from_anywhere(ip) {
                    return Err(err(a.span(), "an inbound trunk address may not be a wildcard".into(), Some("list the trunk's own addresses: anything listed here may call in without a password".into())));
                }
                inbound_from.push(ip);
            }
            let context = t.context.get_ref().clone();
            if !inbound_from.is_empty() && !dialplan.has_context(&context) {
                return Err(err(
                    t.context.span(),
                    format!("context `{context}` is not in {}", dp_path.display()),
                    None,
                ));
            }
            if t.register && (t.username.is_none() || t.password.is_none()) {
                return Err(err(
                    t.name.span(),
                    format!("trunk `{name}` registers but has no username and password"),
                    None,
                ));
            }
            let callback_numbers = match &t.callback_numbers {
                Some(p) => Some(Pattern(regex::Regex::new(p.get_ref()).map_err(|e| {
                    err(
                        p.span(),
                        format!(
                            "trunk `{name}`: callback_numbers is not a regular expression: {e}"
                        ),
                        Some("in single quotes, e.g. '^\\+1[2-9]\\d{9}$'".into()),
                    )
                })?)),
                None => None,
            };
            trunks.push(Trunk {
                callback_numbers,
                name,
                address,
                inbound_from,
                context,
                caller_id: t.caller_id.clone(),
                caller_name: t.caller_name.clone(),
                pai: t.pai,
                credentials: t.username.clone().zip(t.password.clone()),
                register: t.register,
                register_expires: t.register_expires_s.max(60),
            });
        }
        for (tname, span) in dialplan.trunk_refs() {
            if !trunks.iter().any(|t| &t.name == tname) {
                return Err(ConfigError::at(
                    &dp_path.display().to_string(),
                    &dp_text,
                    span.clone(),
                    format!("no trunk named `{tname}` in the config"),
                    Some("define it under [[trunks]]".into()),
                ));
            }
        }
        // Every sound the dialplan names must exist, unless the name is built at run time
        // ($variables) or there is no sounds directory here at all (the built-in config run
        // from elsewhere): then a missing prompt is only logged and skipped when played.
        let sounds_dir = PathBuf::from(&f.calls.sounds_dir);
        let mut warnings = Vec::new();
        if sounds_dir.is_dir() {
            for (name, span) in dialplan.sound_refs() {
                if !name.contains('$') && !sounds_dir.join(format!("{name}.wav")).is_file() {
                    return Err(ConfigError::at(
                        &dp_path.display().to_string(),
                        &dp_text,
                        span.clone(),
                        format!("no sound `{name}`: {} does not exist", sounds_dir.join(format!("{name}.wav")).display()),
                        Some("sounds are 8 kHz mono 16-bit WAV files in calls.sounds_dir; see sounds/README.md".into()),
                    ));
                }
            }
            let ringback = sounds_dir.join("ringback.wav");
            if !ringback.is_file() {
                warnings.push(format!(
                    "no {}: a caller dialling from a menu hears silence while the dial rings",
                    ringback.display()
                ));
            }
        } else {
            warnings.push(format!(
                "sounds directory {} not found: prompts will be skipped",
                sounds_dir.display()
            ));
        }
        let mut hours = std::collections::HashMap::new();
        for (name, h) in &f.hours {
            let e = h.get_ref();
            let sched = crate::hours::Schedule::new(&e.timezone, &e.open, &e.closed)
                .map_err(|m| err(h.span(), format!("hours.{name}: {m}"), None))?;
            hours.insert(name.clone(), sched);
        }
        let mut queues = Vec::new();
        for (name, q) in &f.queues {
            let e = q.get_ref();
            let mut cfg = crate::acd::QueueConfig::new(name, e.strategy);
            for m in &e.members {
                let (ext, penalty) = match m.get_ref().split_once(':') {
                    Some((x, p)) => match p.parse::<u32>() {
                        Ok(p) => (x.to_string(), p),
                        Err(_) => {
                            return Err(err(
                                m.span(),
                                format!("queues.{name}: penalty `{p}` is not a number"),
                                Some("members are \"EXT\" or \"EXT:PENALTY\"".into()),
                            ))
                        }
                    },
                    None => (m.get_ref().clone(), 0),
                };
                if !users.iter().any(|u| u.extension == ext) {
                    return Err(err(
                        m.span(),
                        format!("queues.{name}: no extension `{ext}`"),
                        Some("members are extensions defined under [[users]]".into()),
                    ));
                }
                cfg.members.push(crate::acd::Member {
                    agent: ext,
                    penalty,
                    weight: 1,
                });
            }
            if e.ring_timeout_s == 0 {
                return Err(err(
                    q.span(),
                    format!("queues.{name}: ring_timeout_s must be at least 1"),
                    None,
                ));
            }
            cfg.ring_timeout = Duration::from_secs(e.ring_timeout_s);
            cfg.retry = Duration::from_secs(e.retry_s);
            cfg.wrap_up = Duration::from_secs(e.wrap_up_s);
            cfg.max_wait = e.max_wait_s.map(Duration::from_secs);
            cfg.max_len = e.max_len;
            cfg.join_empty = e.join_empty;
            cfg.leave_when_empty = e.leave_when_empty;
            cfg.sl_threshold = Duration::from_secs(e.sl_threshold_s);
            cfg.short_abandon = Duration::from_secs(e.short_abandon_s);
            cfg.auto_pause_after = e.auto_pause_after;
            cfg.announce_every = Duration::from_secs(e.announce_position_s);
            cfg.sticky = Duration::from_secs(e.sticky_s);
            cfg.announce_wait = e.announce_wait;
            if let Some(to) = &e.overflow {
                let name_ok = to.get_ref() != name && f.queues.contains_key(to.get_ref());
                if !name_ok {
                    return Err(err(
                        to.span(),
                        format!(
                            "queues.{name}: overflow to `{}`, which is not another queue",
                            to.get_ref()
                        ),
                        Some("name a queue defined under [queues.NAME], or leave overflow out to go on in the dialplan".into()),
                    ));
                }
                cfg.overflow = Some(to.get_ref().clone());
            }
            if sounds_dir.is_dir()
                && !sounds_dir
                    .join(format!("{}.wav", e.moh.get_ref()))
                    .is_file()
            {
                return Err(err(
                    e.moh.span(),
                    format!(
                        "queues.{name}: no music on hold `{}.wav` in the sounds directory",
                        e.moh.get_ref()
                    ),
                    None,
                ));
            }
            if let Some(k) = &e.callback_key {
                let key = k.get_ref();
                let ok = key.len() == 1
                    && key
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
                if !ok {
                    return Err(err(
                        k.span(),
                        format!("queues.{name}: callback_key `{key}` is not one phone key"),
                        Some("one of 0-9, * or #".into()),
                    ));
                }
                cfg.callback_key = key.chars().next();
            }
            // What the periodic announcement says must be there to say.
            let mut needed = Vec::new();
            cfg.callback_on_max_wait = e.callback_on_max_wait;
            if e.callback_attempts == 0 {
                return Err(err(
                    q.span(),
                    format!("queues.{name}: callback_attempts must be at least 1"),
                    None,
                ));
            }
            cfg.callback_attempts = e.callback_attempts;
            cfg.callback_retry = Duration::from_secs(e.callback_retry_s);
            if cfg.callback_key.is_some() {
                needed.extend(["callback-offer", "callback-confirm"]);
            }
            if cfg.callback_on_max_wait {
                needed.push("callback-confirm");
            }
            if e.announce_position_s > 0 {
                needed.push("you-are-caller-number");
                if e.announce_wait {
                    needed.extend(["estimated-wait", "minute", "minutes"]);
                }
            }
            if let Some(missing) = needed
                .iter()
                .find(|n| sounds_dir.is_dir() && !sounds_dir.join(format!("{n}.wav")).is_file())
            {
                return Err(err(
                    q.span(),
                    format!("queues.{name}: its announcements need `{missing}.wav` in the sounds directory"),
                    Some("see sounds/README.md, or turn the announcement off".into()),
                ));
            }
            queues.push((cfg, e.moh.get_ref().clone()));
        }
        let agents = id_agents(&f.agents, &users, &queues, &err)?;
        for (name, span) in dialplan.queue_refs() {
            if !queues.iter().any(|(q, _)| &q.name == name) {
                return Err(ConfigError::at(
                    &dp_path.display().to_string(),
                    &dp_text,
                    span.clone(),
                    format!("no queue named `{name}` in the config"),
                    Some(format!("define it under [queues.{name}]")),
                ));
            }
        }
        for (name, span) in dialplan.hours_refs() {
            if !hours.contains_key(name) {
                return Err(ConfigError::at(
                    &dp_path.display().to_string(),
                    &dp_text,
                    span.clone(),
                    format!("no schedule named `{name}` in the config"),
                    Some(format!("define it under [hours.{name}]")),
                ));
            }
        }
        // Dead dialplan is worth a warning, located like an error.
        let dp_name = dp_path.display().to_string();
        let locate = |what: String, msg: String, hint: &str| match dialplan.definition(&what) {
            Some(span) => {
                let e = ConfigError::at(&dp_name, &dp_text, span, msg, Some(hint.into()));
                let text = e.to_string();
                text.strip_prefix("error: ")
                    .unwrap_or(&text)
                    .trim_end()
                    .to_string()
            }
            None => format!("{dp_name}: {msg}"),
        };
        for m in dialplan.unused_menus() {
            warnings.push(locate(
                format!("menu `{m}`"),
                format!("menu `{m}` is never used"),
                "enter it with `menu NAME` from a route, or delete it",
            ));
        }
        for what in dialplan.unreachable() {
            warnings.push(locate(
                what.clone(),
                format!("{what} is never reached: only unused or unreachable menus and blocks lead to it"),
                "lead to it from a context's route, or delete it",
            ));
        }
        for b in dialplan.unused_blocks() {
            warnings.push(locate(
                format!("block `{b}`"),
                format!("block `{b}` is never called"),
                "enter it with `call NAME(...)`, or delete it",
            ));
        }
        let ring = *f.calls.ring_timeout_s.get_ref();
        if !(1..=600).contains(&ring) {
            return Err(err(
                f.calls.ring_timeout_s.span(),
                "ring_timeout_s must be 1..600 seconds".into(),
                None,
            ));
        }
        Ok(Self {
            ring_timeout: Duration::from_secs(ring),
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
            registrar: RegistrarConfig {
                min_expires: r.min_expires,
                max_expires: r.max_expires,
                default_expires: *r.default_expires.get_ref(),
                max_contacts: r.max_contacts,
            },
            auth_algorithms: algs,
            nonce_lifetime: Duration::from_secs(f.auth.nonce_lifetime_s.max(1)),
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

/// Checks `[[agents]]`: IDs are digits, unique and no extension's; PINs are digits;
/// queues exist; skills are 1..10.
fn id_agents(
    entries: &[Spanned<AgentEntry>],
    users: &[User],
    queues: &[(crate::acd::QueueConfig, String)],
    err: &dyn Fn(Range<usize>, String, Option<String>) -> ConfigError,
) -> Result<Vec<IdAgent>, ConfigError> {
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
    };
    let mut agents: Vec<IdAgent> = Vec::new();
    for e in entries {
        let a = e.get_ref();
        let id = a.id.get_ref().clone();
        if !digits(&id, 2..=16) {
            return Err(err(
                a.id.span(),
                format!("agent ID `{id}` must be 2 to 16 digits"),
                Some("agents key it on a phone, so digits only".into()),
            ));
        }
        if users.iter().any(|u| u.extension == id) || agents.iter().any(|x| x.id == id) {
            return Err(err(
                a.id.span(),
                format!("agent ID `{id}` is already an extension or another agent's ID"),
                Some("give each agent an ID of its own".into()),
            ));
        }
        let pin = a.pin.get_ref().clone();
        if !digits(&pin, 4..=16) {
            return Err(err(
                a.pin.span(),
                format!("PIN of agent `{id}` must be 4 to 16 digits"),
                Some("phones key it, so digits only".into()),
            ));
        }
        let mut member_of = Vec::new();
        for q in &a.queues {
            let (name, penalty) = match q.get_ref().split_once(':') {
                Some((n, p)) => (n, p.parse::<u32>().ok()),
                None => (q.get_ref().as_str(), Some(0)),
            };
            let Some(penalty) = penalty else {
                return Err(err(
                    q.span(),
                    format!("agent `{id}`: penalty in `{}` is not a number", q.get_ref()),
                    Some("queues are \"QUEUE\" or \"QUEUE:PENALTY\"".into()),
                ));
            };
            if !queues.iter().any(|(c, _)| c.name == name) {
                return Err(err(
                    q.span(),
                    format!("agent `{id}`: no queue `{name}`"),
                    Some("define it under [queues.NAME]".into()),
                ));
            }
            member_of.push((name.to_string(), penalty));
        }
        let mut skills = Vec::new();
        if let Some(sk) = &a.skills {
            for (name, level) in sk.get_ref() {
                if !(1..=10).contains(level) {
                    return Err(err(
                        sk.span(),
                        format!("skill `{name}` of agent `{id}` must be 1 to 10"),
                        None,
                    ));
                }
                skills.push((name.clone(), *level));
            }
        }
        agents.push(IdAgent {
            demo: DEMO_PINS.contains(&pin.as_str()),
            id,
            name: a.name.clone(),
            pin,
            queues: member_of,
            skills,
        });
    }
    Ok(agents)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "1 to 10",
            ),
        ] {
            let e = with(from, to).unwrap_err().to_string();
            assert!(e.contains(says), "{to}: {e}");
        }
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
