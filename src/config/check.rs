//! Checking the config file section by section: each function takes its table as written
//! (with places in the file) and gives the typed value, or the error pointing at what is
//! wrong. Called in order by `Config::from_str`, which reports the first error found.
//!
//! Pure: reads only the dialplan file (`dialplan`) and whether sounds exist.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

use super::file::{
    AgentEntry, AuthSection, CallsSection, HoursEntry, QueueEntry, RegistrarSection, RtpSection,
    ServerSection, SipSection, TrunkEntry, UserEntry,
};
use super::{
    parse_port_range, users_from_anywhere, ConfigError, DialPolicy, ErrAt, IdAgent, Listen,
    Pattern, Secret, Trunk, User, DEMO_PINS, EMBEDDED, EMBEDDED_DIALPLAN,
};
use crate::acd::{Member, QueueConfig};
use crate::dialplan::Dialplan;
use crate::hours::Schedule;
use crate::sip::auth::Algorithm;
use crate::sip::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;

/// `[server]`: the domain, and listeners each given once.
pub(super) fn server(s: &ServerSection, err: &ErrAt) -> Result<(String, Vec<Listen>), ConfigError> {
    let domain = s.domain.get_ref().trim().to_string();
    if domain.is_empty() || domain.contains(char::is_whitespace) {
        return Err(err(
            s.domain.span(),
            "domain must be a host name without spaces".into(),
            Some("e.g. domain = \"pbx.example.com\"".into()),
        ));
    }
    if s.listen.is_empty() {
        return Err(err(
            0..0,
            "server.listen is empty: switchboard would not listen anywhere".into(),
            Some("add e.g. listen = [\"udp:127.0.0.1:5060\"]".into()),
        ));
    }
    let mut listen = Vec::new();
    for l in &s.listen {
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
    Ok((domain, listen))
}

/// `[rtp] ports`.
pub(super) fn rtp_ports(r: &RtpSection, err: &ErrAt) -> Result<(u16, u16), ConfigError> {
    let rtp_ports = parse_port_range(r.ports.get_ref()).map_err(|m| {
        err(
            r.ports.span(),
            m,
            Some(
                "e.g. ports = \"20000-29999\" (an even start, room for RTP and RTCP pairs)".into(),
            ),
        )
    })?;
    Ok(rtp_ports)
}

/// `[sip]`: the transaction timers, T1 not above T2.
pub(super) fn timers(s: &SipSection, err: &ErrAt) -> Result<TimerConfig, ConfigError> {
    let timers = TimerConfig {
        t1: Duration::from_millis(*s.t1_ms.get_ref()),
        t2: Duration::from_millis(*s.t2_ms.get_ref()),
        t4: Duration::from_millis(*s.t4_ms.get_ref()),
    };
    if timers.t1.is_zero() || timers.t1 > timers.t2 {
        return Err(err(
            s.t1_ms.span(),
            "t1_ms must be above 0 and not above t2_ms".into(),
            Some("RFC 3261 defaults: t1_ms = 500, t2_ms = 4000, t4_ms = 5000".into()),
        ));
    }
    if timers.t4.is_zero() {
        return Err(err(s.t4_ms.span(), "t4_ms must be above 0".into(), None));
    }
    Ok(timers)
}

/// `[registrar]`: expiry bounds that contain the default, and room for a contact.
pub(super) fn registrar(r: &RegistrarSection, err: &ErrAt) -> Result<RegistrarConfig, ConfigError> {
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
    Ok(RegistrarConfig {
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: *r.default_expires.get_ref(),
        max_contacts: r.max_contacts,
    })
}

/// `[auth] algorithms`: at least one.
pub(super) fn algorithms(a: &AuthSection, err: &ErrAt) -> Result<Vec<Algorithm>, ConfigError> {
    let algs = a.algorithms.get_ref().clone();
    if algs.is_empty() {
        return Err(err(
            a.algorithms.span(),
            "auth.algorithms is empty: nobody could register".into(),
            Some("use [\"SHA-256\", \"MD5\"]; most phones speak only MD5".into()),
        ));
    }
    Ok(algs)
}

/// `[[users]]`: unique extensions, each with a password or the HA1 of every
/// algorithm offered, PINs of digits, skills 1..10; which still use a shipped secret.
pub(super) fn users(
    entries: Vec<UserEntry>,
    domain: &str,
    algs: &[Algorithm],
    sounds_dir: &Path,
    dial_policy: &DialPolicy,
    err: &ErrAt,
) -> Result<Vec<User>, ConfigError> {
    let mut users: Vec<User> = Vec::new();
    for u in entries {
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
                return Err(err(
                    p.span(),
                    format!("password of extension `{ext}` is shorter than 8 characters"),
                    Some(
                        "use a long random password, or store it hashed as ha1_md5 / ha1_sha256"
                            .into(),
                    ),
                ));
            }
        }
        for (field, len) in [(&u.ha1_md5, 32), (&u.ha1_sha256, 64)] {
            if let Some(h) = field {
                if h.get_ref().len() != len || !h.get_ref().bytes().all(|c| c.is_ascii_hexdigit()) {
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
            for a in algs {
                if secret.ha1(*a, &ext, domain).is_none() {
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
        let skills = skills(u.skills.as_ref(), &format!("extension `{ext}`"), err)?;
        let moh = music(
            u.moh.as_ref(),
            sounds_dir,
            &format!("extension `{ext}`"),
            err,
        )?;
        let dial = u
            .dial
            .as_ref()
            .map(|d| {
                super::security::dial_classes(
                    d.get_ref(),
                    dial_policy,
                    &format!("extension `{ext}`"),
                    err,
                )
            })
            .transpose()?;
        let voicemail_pin = u.voicemail_pin.map(|p| p.into_inner());
        let demo = secret.is_demo(&ext, domain)
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
            moh,
            pickup_group: u.pickup_group.unwrap_or_default(),
            dial,
        });
    }
    Ok(users)
}

/// A `moh` setting: a sound name that must exist in the sounds directory (when there is
/// one here, as for prompts).
fn music(
    name: Option<&Spanned<String>>,
    sounds_dir: &Path,
    whose: &str,
    err: &ErrAt,
) -> Result<Option<String>, ConfigError> {
    let Some(name) = name else { return Ok(None) };
    let file = sounds_dir.join(format!("{}.wav", name.get_ref()));
    if sounds_dir.is_dir() && !file.is_file() {
        return Err(err(
            name.span(),
            format!(
                "{whose}: no music on hold `{}.wav` in the sounds directory",
                name.get_ref()
            ),
            Some("a sound name without .wav, as `moh/default` for sounds/moh/default.wav".into()),
        ));
    }
    Ok(Some(name.get_ref().clone()))
}

/// `[calls]`: the dialplan file (the shipped one with the built-in config when it is not
/// on disk), parsed, and the context calls start in.
pub(super) fn dialplan(
    calls: &CallsSection,
    text: &str,
    err: &ErrAt,
) -> Result<(Dialplan, PathBuf, String, String), ConfigError> {
    let dp_path = PathBuf::from(calls.dialplan.get_ref());
    let dp_text = match std::fs::read_to_string(&dp_path) {
        Ok(t) => t,
        Err(_) if text == EMBEDDED => EMBEDDED_DIALPLAN.to_string(),
        Err(e) => {
            return Err(err(
                calls.dialplan.span(),
                format!("cannot read dialplan `{}`: {e}", dp_path.display()),
                Some("paths are relative to the working directory".into()),
            ));
        }
    };
    let dialplan = crate::dialplan::parse(&dp_text, &dp_path.display().to_string())?;
    let context = calls.context.get_ref().clone();
    if !dialplan.has_context(&context) {
        let mut known: Vec<&str> = dialplan.contexts().collect();
        known.sort_unstable();
        return Err(err(
            calls.context.span(),
            format!("context `{context}` is not in {}", dp_path.display()),
            Some(format!("contexts there: {}", known.join(", "))),
        ));
    }
    Ok((dialplan, dp_path, dp_text, context))
}

/// `[[trunks]]`: unique names, addresses, inbound sources that are no wildcard, their
/// context in the dialplan, credentials to register with, callback number patterns.
pub(super) fn trunks(
    entries: &[TrunkEntry],
    dialplan: &Dialplan,
    dp_path: &Path,
    sounds_dir: &Path,
    err: &ErrAt,
) -> Result<Vec<Trunk>, ConfigError> {
    let mut trunks: Vec<Trunk> = Vec::new();
    for t in entries {
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
                    format!("trunk `{name}`: callback_numbers is not a regular expression: {e}"),
                    Some("in single quotes, e.g. '^\\+1[2-9]\\d{9}$'".into()),
                )
            })?)),
            None => None,
        };
        let moh = music(t.moh.as_ref(), sounds_dir, &format!("trunk `{name}`"), err)?;
        trunks.push(Trunk {
            moh,
            max_calls: t.max_calls,
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
    Ok(trunks)
}

/// Every trunk the dialplan dials is defined.
pub(super) fn trunk_refs(
    dialplan: &Dialplan,
    dp_path: &Path,
    dp_text: &str,
    trunks: &[Trunk],
) -> Result<(), ConfigError> {
    for (tname, span) in dialplan.trunk_refs() {
        if !trunks.iter().any(|t| &t.name == tname) {
            return Err(ConfigError::at(
                &dp_path.display().to_string(),
                dp_text,
                span.clone(),
                format!("no trunk named `{tname}` in the config"),
                Some("define it under [[trunks]]".into()),
            ));
        }
    }
    Ok(())
}

/// Every sound the dialplan names exists, and warnings for what would be missing only at
/// run time.
pub(super) fn sounds(
    dialplan: &Dialplan,
    dp_path: &Path,
    dp_text: &str,
    sounds_dir: &Path,
) -> Result<Vec<String>, ConfigError> {
    // Every sound the dialplan names must exist, unless the name is built at run time
    // ($variables) or there is no sounds directory here at all (the built-in config run
    // from elsewhere): then a missing prompt is only logged and skipped when played.
    let mut warnings = Vec::new();
    if sounds_dir.is_dir() {
        for (name, span) in dialplan.sound_refs() {
            if !name.contains('$') && !sounds_dir.join(format!("{name}.wav")).is_file() {
                return Err(ConfigError::at(
                    &dp_path.display().to_string(),
                    dp_text,
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
    Ok(warnings)
}

/// `[hours.NAME]`: schedules.
pub(super) fn hours(
    entries: &BTreeMap<String, Spanned<HoursEntry>>,
    err: &ErrAt,
) -> Result<HashMap<String, Schedule>, ConfigError> {
    let mut hours = HashMap::new();
    for (name, h) in entries {
        let e = h.get_ref();
        let sched = Schedule::new(&e.timezone, &e.open, &e.closed)
            .map_err(|m| err(h.span(), format!("hours.{name}: {m}"), None))?;
        hours.insert(name.clone(), sched);
    }
    Ok(hours)
}

/// `[queues.NAME]`: members that are extensions, timers, an overflow to another queue,
/// and the sounds its music and announcements need; with its music on hold.
pub(super) fn queue(
    name: &str,
    q: &Spanned<QueueEntry>,
    all: &BTreeMap<String, Spanned<QueueEntry>>,
    users: &[User],
    sounds_dir: &Path,
    err: &ErrAt,
) -> Result<(QueueConfig, String), ConfigError> {
    let e = q.get_ref();
    let mut cfg = QueueConfig::new(name, e.strategy);
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
        cfg.members.push(Member {
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
        let name_ok = to.get_ref() != name && all.contains_key(to.get_ref());
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
    music(Some(&e.moh), sounds_dir, &format!("queues.{name}"), err)?;
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
            format!(
                "queues.{name}: its announcements need `{missing}.wav` in the sounds directory"
            ),
            Some("see sounds/README.md, or turn the announcement off".into()),
        ));
    }
    Ok((cfg, e.moh.get_ref().clone()))
}

/// Every queue and schedule the dialplan names is defined.
pub(super) fn queue_and_hours_refs(
    dialplan: &Dialplan,
    dp_path: &Path,
    dp_text: &str,
    queues: &[(QueueConfig, String)],
    hours: &HashMap<String, Schedule>,
) -> Result<(), ConfigError> {
    for (name, span) in dialplan.queue_refs() {
        if !queues.iter().any(|(q, _)| &q.name == name) {
            return Err(ConfigError::at(
                &dp_path.display().to_string(),
                dp_text,
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
                dp_text,
                span.clone(),
                format!("no schedule named `{name}` in the config"),
                Some(format!("define it under [hours.{name}]")),
            ));
        }
    }
    Ok(())
}

/// Dead dialplan (menus never used, blocks never called, what nothing leads to), as
/// warnings located like errors.
pub(super) fn dead_dialplan(dialplan: &Dialplan, dp_path: &Path, dp_text: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    // Dead dialplan is worth a warning, located like an error.
    let dp_name = dp_path.display().to_string();
    let locate = |what: String, msg: String, hint: &str| match dialplan.definition(&what) {
        Some(span) => {
            let e = ConfigError::at(&dp_name, dp_text, span, msg, Some(hint.into()));
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
            format!(
                "{what} is never reached: only unused or unreachable menus and blocks lead to it"
            ),
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
    warnings
}

/// `[calls] ring_timeout_s`: 1 to 600 s.
pub(super) fn ring_timeout(calls: &CallsSection, err: &ErrAt) -> Result<Duration, ConfigError> {
    let ring = *calls.ring_timeout_s.get_ref();
    if !(1..=600).contains(&ring) {
        return Err(err(
            calls.ring_timeout_s.span(),
            "ring_timeout_s must be 1..600 seconds".into(),
            None,
        ));
    }
    Ok(Duration::from_secs(ring))
}

/// `[calls] session_refresh_s`: 0 (off), or 5 to 86400 s.
pub(super) fn session_refresh(
    calls: &CallsSection,
    err: &ErrAt,
) -> Result<Option<Duration>, ConfigError> {
    let s = *calls.session_refresh_s.get_ref();
    if s != 0 && !(5..=86_400).contains(&s) {
        return Err(err(
            calls.session_refresh_s.span(),
            "session_refresh_s must be 0 (off) or 5..86400 seconds".into(),
            None,
        ));
    }
    Ok((s != 0).then(|| Duration::from_secs(s)))
}

/// `[calls] rtp_timeout_s`: 0 (off), or 5 to 3600 s.
pub(super) fn rtp_timeout(
    calls: &CallsSection,
    err: &ErrAt,
) -> Result<Option<Duration>, ConfigError> {
    let s = *calls.rtp_timeout_s.get_ref();
    if s != 0 && !(5..=3_600).contains(&s) {
        return Err(err(
            calls.rtp_timeout_s.span(),
            "rtp_timeout_s must be 0 (off) or 5..3600 seconds".into(),
            None,
        ));
    }
    Ok((s != 0).then(|| Duration::from_secs(s)))
}

/// `[calls] transfer_code` and `attended_code`: each empty (off), or 1 to 4 keys of
/// `0-9 * #`; two codes in force must not begin alike (neither may be the other's
/// start, or the longer could never be pressed).
pub(super) fn feature_codes(
    calls: &CallsSection,
    err: &ErrAt,
) -> Result<(String, String), ConfigError> {
    let keys = |c: char| c.is_ascii_digit() || c == '*' || c == '#';
    for (name, code) in [
        ("transfer_code", &calls.transfer_code),
        ("attended_code", &calls.attended_code),
    ] {
        let c = code.get_ref();
        if c.len() > 4 || !c.chars().all(keys) {
            return Err(err(
                code.span(),
                format!("{name} must be empty (off) or 1 to 4 of the keys 0-9 * #"),
                None,
            ));
        }
    }
    let (blind, attended) = (calls.transfer_code.get_ref(), calls.attended_code.get_ref());
    if !blind.is_empty()
        && !attended.is_empty()
        && (blind.starts_with(attended.as_str()) || attended.starts_with(blind.as_str()))
    {
        return Err(err(
            calls.attended_code.span(),
            format!("attended_code \"{attended}\" and transfer_code \"{blind}\" begin alike: one could never be pressed"),
            None,
        ));
    }
    Ok((blind.clone(), attended.clone()))
}

/// `skills = { NAME = LEVEL }` of a user or an agent (`owner`, as errors name it):
/// levels 1 to 10.
fn skills(
    entry: Option<&Spanned<BTreeMap<String, u8>>>,
    owner: &str,
    err: &ErrAt,
) -> Result<Vec<(String, u8)>, ConfigError> {
    let Some(sk) = entry else {
        return Ok(Vec::new());
    };
    sk.get_ref()
        .iter()
        .map(|(name, level)| match (1..=10).contains(level) {
            true => Ok((name.clone(), *level)),
            false => Err(err(
                sk.span(),
                format!("skill `{name}` of {owner} must be 1 to 10"),
                None,
            )),
        })
        .collect()
}

/// Checks `[[agents]]`: IDs are digits, unique and no extension's; PINs are digits;
/// queues exist; skills are 1..10.
pub(super) fn id_agents(
    entries: &[Spanned<AgentEntry>],
    users: &[User],
    queues: &[(crate::acd::QueueConfig, String)],
    err: &ErrAt,
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
        let skills = skills(a.skills.as_ref(), &format!("agent `{id}`"), err)?;
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
