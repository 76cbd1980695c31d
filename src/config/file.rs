//! The config file as written: the TOML tables and their defaults, deserialized with
//! each value's place in the file (`Spanned`) so that a check can point at it. No
//! checking happens here; `Config::from_str` turns these into the typed config.

use serde::Deserialize;
use toml::Spanned;

use crate::sip::auth::Algorithm;
use crate::sip::registrar::RegistrarConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) server: ServerSection,
    #[serde(default)]
    pub(super) sip: SipSection,
    #[serde(default)]
    pub(super) rtp: RtpSection,
    #[serde(default)]
    pub(super) registrar: RegistrarSection,
    #[serde(default)]
    pub(super) auth: AuthSection,
    #[serde(default)]
    pub(super) calls: CallsSection,
    #[serde(default)]
    pub(super) users: Vec<UserEntry>,
    #[serde(default)]
    pub(super) trunks: Vec<TrunkEntry>,
    #[serde(default)]
    pub(super) hours: std::collections::BTreeMap<String, Spanned<HoursEntry>>,
    #[serde(default)]
    pub(super) queues: std::collections::BTreeMap<String, Spanned<QueueEntry>>,
    #[serde(default)]
    pub(super) agents: Vec<Spanned<AgentEntry>>,
    #[serde(default)]
    pub(super) dial: DialSection,
}

/// `[dial]`: what calls out through a trunk may reach.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DialSection {
    pub(super) classes: Vec<DialClassEntry>,
    pub(super) default: Spanned<Vec<Spanned<String>>>,
    pub(super) max_concurrent_per_user: u32,
    pub(super) max_per_day_per_user: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DialClassEntry {
    pub(super) name: Spanned<String>,
    pub(super) pattern: Spanned<String>,
}

/// The number classes shipped in `config/switchboard.toml` (North American numbering:
/// the demo trunk's), so a file without `[dial]` means what the shipped one does.
pub(super) const DEFAULT_CLASSES: [(&str, &str); 4] = [
    ("emergency", r"^(911|933)$"),
    ("premium", r"^\+1(900|976)\d{7}$"),
    ("national", r"^\+1[2-9]\d{9}$"),
    ("international", r"^\+[2-9]\d{6,14}$"),
];

impl Default for DialSection {
    fn default() -> Self {
        let s = |v: &str| Spanned::new(0..0, v.to_string());
        Self {
            classes: DEFAULT_CLASSES
                .iter()
                .map(|(name, pattern)| DialClassEntry {
                    name: s(name),
                    pattern: s(pattern),
                })
                .collect(),
            default: Spanned::new(0..0, vec![s("emergency"), s("national")]),
            max_concurrent_per_user: 2,
            max_per_day_per_user: 100,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentEntry {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) pin: Spanned<String>,
    #[serde(default)]
    pub(super) queues: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) skills: Option<Spanned<std::collections::BTreeMap<String, u8>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueEntry {
    pub(super) strategy: crate::acd::Strategy,
    #[serde(default)]
    pub(super) members: Vec<Spanned<String>>,
    #[serde(default = "default_15")]
    pub(super) ring_timeout_s: u64,
    #[serde(default = "default_5")]
    pub(super) retry_s: u64,
    #[serde(default)]
    pub(super) wrap_up_s: u64,
    #[serde(default)]
    pub(super) max_wait_s: Option<u64>,
    #[serde(default)]
    pub(super) max_len: Option<usize>,
    #[serde(default = "default_true")]
    pub(super) join_empty: bool,
    #[serde(default)]
    pub(super) leave_when_empty: bool,
    #[serde(default = "default_20")]
    pub(super) sl_threshold_s: u64,
    #[serde(default = "default_5")]
    pub(super) short_abandon_s: u64,
    #[serde(default = "default_3")]
    pub(super) auto_pause_after: u32,
    #[serde(default = "default_moh")]
    pub(super) moh: Spanned<String>,
    #[serde(default)]
    pub(super) announce_position_s: u64,
    #[serde(default)]
    pub(super) sticky_s: u64,
    #[serde(default)]
    pub(super) announce_wait: bool,
    #[serde(default)]
    pub(super) overflow: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) callback_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) callback_on_max_wait: bool,
    #[serde(default = "default_3")]
    pub(super) callback_attempts: u32,
    #[serde(default = "default_120")]
    pub(super) callback_retry_s: u64,
}

pub(super) fn default_120() -> u64 {
    120
}
pub(super) fn default_15() -> u64 {
    15
}
pub(super) fn default_5() -> u64 {
    5
}
pub(super) fn default_20() -> u64 {
    20
}
pub(super) fn default_3() -> u32 {
    3
}
pub(super) fn default_moh() -> Spanned<String> {
    Spanned::new(0..0, "moh/default".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HoursEntry {
    pub(super) timezone: String,
    #[serde(default)]
    pub(super) open: Vec<String>,
    #[serde(default)]
    pub(super) closed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrunkEntry {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) inbound_from: Vec<Spanned<String>>,
    #[serde(default = "default_inbound_context")]
    pub(super) context: Spanned<String>,
    #[serde(default)]
    pub(super) caller_id: Option<String>,
    #[serde(default)]
    pub(super) caller_name: Option<String>,
    #[serde(default = "default_true")]
    pub(super) pai: bool,
    #[serde(default)]
    pub(super) username: Option<String>,
    #[serde(default)]
    pub(super) password: Option<String>,
    #[serde(default)]
    pub(super) register: bool,
    #[serde(default = "default_reg_expires")]
    pub(super) register_expires_s: u32,
    #[serde(default)]
    pub(super) callback_numbers: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) moh: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_calls: u32,
}

pub(super) fn default_inbound_context() -> Spanned<String> {
    Spanned::new(0..0, "inbound".into())
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_reg_expires() -> u32 {
    600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct CallsSection {
    pub(super) ring_timeout_s: Spanned<u64>,
    pub(super) session_refresh_s: Spanned<u64>,
    pub(super) rtp_timeout_s: Spanned<u64>,
    pub(super) transfer_code: Spanned<String>,
    pub(super) attended_code: Spanned<String>,
    pub(super) cdr_db: String,
    pub(super) dialplan: Spanned<String>,
    pub(super) context: Spanned<String>,
    pub(super) sounds_dir: String,
}

impl Default for CallsSection {
    fn default() -> Self {
        Self {
            ring_timeout_s: Spanned::new(0..0, 30),
            session_refresh_s: Spanned::new(0..0, 900),
            rtp_timeout_s: Spanned::new(0..0, 120),
            transfer_code: Spanned::new(0..0, "##".into()),
            attended_code: Spanned::new(0..0, "*2".into()),
            cdr_db: "cdr.sqlite".into(),
            dialplan: Spanned::new(0..0, "dialplans/default.dp".into()),
            context: Spanned::new(0..0, "internal".into()),
            sounds_dir: "sounds".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    pub(super) domain: Spanned<String>,
    pub(super) listen: Vec<Spanned<String>>,
    #[serde(default = "default_state_dir")]
    pub(super) state_dir: String,
    #[serde(default = "default_user_agent")]
    pub(super) user_agent: String,
}

pub(super) fn default_state_dir() -> String {
    "state".into()
}

pub(super) fn default_user_agent() -> String {
    format!("switchboard/{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SipSection {
    pub(super) t1_ms: Spanned<u64>,
    pub(super) t2_ms: Spanned<u64>,
    pub(super) t4_ms: Spanned<u64>,
    pub(super) rate_per_source: Spanned<u32>,
    pub(super) rate_burst: Spanned<u32>,
    pub(super) tcp_max_connections: Spanned<usize>,
    pub(super) tcp_max_per_source: Spanned<usize>,
    pub(super) tcp_idle_s: Spanned<u64>,
    pub(super) tcp_first_message_s: Spanned<u64>,
}

impl Default for SipSection {
    fn default() -> Self {
        let r = crate::guard::RatePolicy::default();
        Self {
            t1_ms: Spanned::new(0..0, 500),
            t2_ms: Spanned::new(0..0, 4000),
            t4_ms: Spanned::new(0..0, 5000),
            rate_per_source: Spanned::new(0..0, r.per_second),
            rate_burst: Spanned::new(0..0, r.burst),
            tcp_max_connections: Spanned::new(0..0, 4096),
            tcp_max_per_source: Spanned::new(0..0, 64),
            tcp_idle_s: Spanned::new(0..0, 3900),
            tcp_first_message_s: Spanned::new(0..0, 30),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RtpSection {
    pub(super) ports: Spanned<String>,
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
pub(super) struct RegistrarSection {
    pub(super) min_expires: u32,
    pub(super) max_expires: u32,
    pub(super) default_expires: Spanned<u32>,
    pub(super) max_contacts: usize,
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
pub(super) struct AuthSection {
    pub(super) algorithms: Spanned<Vec<Algorithm>>,
    pub(super) nonce_lifetime_s: u64,
    pub(super) ban_after_failures: Spanned<u32>,
    pub(super) ban_window_s: Spanned<u64>,
    pub(super) ban_time_s: Spanned<u64>,
    pub(super) ban_max_s: Spanned<u64>,
    pub(super) ban_answer: crate::guard::BanAnswer,
    pub(super) ban_exempt: Vec<Spanned<String>>,
}

impl Default for AuthSection {
    fn default() -> Self {
        let d = crate::guard::BanPolicy::default();
        Self {
            algorithms: Spanned::new(0..0, vec![Algorithm::Md5]),
            nonce_lifetime_s: 300,
            ban_after_failures: Spanned::new(0..0, d.after),
            ban_window_s: Spanned::new(0..0, d.window.as_secs()),
            ban_time_s: Spanned::new(0..0, d.time.as_secs()),
            ban_max_s: Spanned::new(0..0, d.max.as_secs()),
            ban_answer: d.answer,
            ban_exempt: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserEntry {
    pub(super) extension: Spanned<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) password: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ha1_md5: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ha1_sha256: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) voicemail_pin: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) skills: Option<Spanned<std::collections::BTreeMap<String, u8>>>,
    #[serde(default)]
    pub(super) moh: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) pickup_group: Option<String>,
    #[serde(default)]
    pub(super) dial: Option<Spanned<Vec<Spanned<String>>>>,
}
