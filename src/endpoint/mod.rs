//! The SIP endpoint core: what switchboard answers, decided without IO.
//!
//! It owns the transaction table, the digest authenticator, the registrar, the calls
//! (`call`, the B2BUA) and the user directory they consult. Bytes or messages and `now` go
//! in; [`Output`]s (from [`Endpoint::poll_output`]) and a next deadline come out (same
//! contract as [`crate::sip::transaction`]). The driver feeds it from its sockets and
//! timer; tests feed it on a virtual clock. Order of checks for every
//! request: parse and validate (400/413/414/505 or drop), then what [`admit`] refuses
//! (scheme 416, Require 420, an offer's type 415, an Accept without SDP 406), and only
//! then authentication, so a request refused anyway never costs a challenge.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod admit;
mod blf;
mod call;
mod callback;
mod guarded;
mod lines;
mod mwi;
mod output;
mod owner;
mod queue;
mod toll;
mod trunk_reg;
mod vm;

pub use trunk_reg::TrunkRegView;

pub use call::{CallView, LegView};
pub use lines::{LineSettings, LineView};
pub use output::Output;

use crate::dialplan::Dialplan;
use crate::guard::BanAnswer;
use crate::media::{MediaCommand, MediaEvent};
use owner::TxOwner;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, User};
use crate::sip::auth::{self, DigestAuth, Verdict};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::parse::{self, Limits, ParseError};
use crate::sip::registrar::{RegisterError, Registrar};
use crate::sip::transaction::{response_to, Peer, Transactions, Transmit, TuEvent, TxKey};
use crate::sip::uri::Scheme;

/// Methods we answer, for Allow.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, REFER";

/// Which challenge a request gets: 401 for REGISTER, 407 for calls (RFC 3261 §22.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthKind {
    Www,
    Proxy,
}

/// Counters for `ctl status` and metrics.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Messages parsed successfully.
    pub messages_in: u64,
    /// Messages that failed to parse.
    pub parse_errors: u64,
    /// REGISTERs answered 200.
    pub registers_ok: u64,
    /// Requests challenged (401).
    pub challenges: u64,
    /// Credentials refused (403).
    pub auth_failures: u64,
    /// Sources banned for failing authentication too often.
    #[serde(default)]
    pub bans: u64,
    /// Messages refused (dropped, or answered 403) because their source was banned.
    #[serde(default)]
    pub banned_messages: u64,
    /// Requests dropped because their source sent more than its rate.
    #[serde(default)]
    pub rate_limited: u64,
}

/// One registration, for listing.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RegistrationView {
    /// Address-of-record.
    pub aor: String,
    /// Contact URI.
    pub contact: String,
    /// Transport and source address the registration came from.
    pub source: String,
    /// Seconds left.
    pub expires_in: u64,
    /// The device's User-Agent.
    pub user_agent: String,
}

/// The endpoint core.
pub struct Endpoint {
    tx: Transactions,
    auth: DigestAuth,
    registrar: Registrar,
    users: HashMap<String, User>,
    domain: String,
    server_name: Bytes,
    limits: Limits,
    rng: SmallRng,
    out: VecDeque<Transmit>,
    stats: Stats,
    /// Sources failing authentication, and the banned ones.
    bans: crate::guard::Bans,
    /// Callers keying wrong PINs (agent login, voicemail), and the refused ones.
    pins: crate::guard::PinThrottle,
    /// Requests per source.
    rate: crate::guard::RateLimit,
    /// What calls out through a trunk may reach, and the calls out so far.
    dial_policy: crate::config::DialPolicy,
    tolls: toll::Tolls,
    calls: call::Calls,
    /// Who each of our client transactions belongs to.
    owners: owner::Owners,
    listeners: Vec<(crate::sip::header::Transport, SocketAddr)>,
    epoch: Instant,
    wall_epoch_ms: u64,
    cfg_t1: Duration,
    cfg_t2: Duration,
    dialplan: Arc<Dialplan>,
    default_context: String,
    sounds_dir: PathBuf,
    /// Where recordings and voicemail go.
    state_dir: PathBuf,
    trunks: Vec<crate::config::Trunk>,
    trunk_regs: trunk_reg::TrunkRegs,
    hours: Arc<HashMap<String, crate::hours::Schedule>>,
    /// Voicemail boxes, and their changes for the driver to make durable.
    mailboxes: HashMap<String, crate::voicemail::Mailbox>,
    mailbox_out: VecDeque<crate::voicemail::MailboxWrite>,
    mwi: mwi::Subscriptions,
    /// Each extension's do-not-disturb and forwards.
    lines: lines::Lines,
    /// Voicemail messages being recorded, by media leg and recording number, until saved
    /// (the call and its leg may be gone by then: the caller hung up mid-message).
    leaving: HashMap<(crate::media::LegKey, u64), (String, crate::voicemail::VmMessage)>,
    /// The ACD core, and each queue's music on hold.
    acd: crate::acd::Acd,
    queue_moh: HashMap<String, String>,
    /// Per queue: how often a waiting caller hears its position, and whether its
    /// estimated wait too.
    queue_announce: HashMap<String, (Duration, bool)>,
    /// Calls each extension is on, for the ACD's device state.
    in_use: HashMap<String, u32>,
    /// Agents who log in by ID and PIN, and where they are.
    hot_desk: queue::HotDesk,
    /// Callback requests waiting for their turn, and each queue's callback key.
    callbacks: callback::Callbacks,
    queue_callback: HashMap<String, char>,
}

/// A status code by number (a server error for one out of range).
fn code(n: u16) -> StatusCode {
    StatusCode::new(n).unwrap_or(StatusCode::SERVER_ERROR)
}

impl Endpoint {
    /// Builds the core from a validated config. `wall_ms` is the Unix time in ms at `now`
    /// (for CDRs); `seed` drives tags, branches and nonces; `secret` keys nonce MACs (the
    /// driver draws both from the OS).
    pub fn new(cfg: &Config, now: Instant, wall_ms: u64, seed: u64, secret: [u8; 32]) -> Self {
        let mut ep = Self {
            tx: Transactions::new(cfg.timers),
            auth: DigestAuth::new(
                &cfg.domain,
                secret,
                now,
                cfg.nonce_lifetime,
                cfg.auth_algorithms.clone(),
            ),
            registrar: Registrar::new(cfg.registrar),
            users: HashMap::new(),
            domain: cfg.domain.clone(),
            server_name: Bytes::from(cfg.user_agent.clone()),
            limits: Limits::default(),
            rng: SmallRng::seed_from_u64(seed),
            out: VecDeque::new(),
            stats: Stats::default(),
            bans: crate::guard::Bans::default(),
            pins: crate::guard::PinThrottle::default(),
            rate: crate::guard::RateLimit::default(),
            dial_policy: cfg.dial.clone(),
            tolls: toll::Tolls::default(),
            calls: call::Calls::new(cfg.rtp_ports, cfg.ring_timeout, cfg.session_refresh),
            owners: owner::Owners::default(),
            listeners: Vec::new(),
            epoch: now,
            wall_epoch_ms: wall_ms,
            cfg_t1: cfg.timers.t1,
            cfg_t2: cfg.timers.t2,
            dialplan: cfg.dialplan.clone(),
            default_context: String::new(),
            sounds_dir: PathBuf::new(),
            state_dir: cfg.state_dir.clone(),
            trunks: cfg.trunks.clone(),
            trunk_regs: trunk_reg::TrunkRegs::default(),
            hours: Arc::default(),
            mailboxes: HashMap::new(),
            mailbox_out: VecDeque::new(),
            mwi: mwi::Subscriptions::default(),
            lines: lines::Lines::default(),
            leaving: HashMap::new(),
            acd: crate::acd::Acd::new(cfg.queues.iter().map(|(q, _)| q.clone()).collect(), seed),
            queue_moh: HashMap::new(),
            in_use: HashMap::new(),
            hot_desk: queue::HotDesk::new(&cfg.agents),
            callbacks: callback::Callbacks::default(),
            queue_callback: HashMap::new(),
            queue_announce: HashMap::new(),
        };
        ep.take_config(now, cfg);
        // Static members take calls from the start.
        for agent in ep.acd.static_members() {
            ep.acd.handle(
                now,
                crate::acd::Event::Login {
                    agent,
                    queues: Vec::new(),
                },
            );
        }
        ep.init_trunk_regs(now);
        ep
    }

    /// The address of record of extension `ext` (what its phones register).
    pub(super) fn aor(&self, ext: &str) -> String {
        format!("sip:{ext}@{}", self.domain)
    }

    /// 64 random bits from the seeded generator (tags, branches, nonces, cnonces).
    fn rng_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// The settings a start and a reload take from the config the same way: the
    /// directory, dialplan, sounds, hours, ring timeout and each queue's music,
    /// announcements and callback key (then the agents' skills, which read them).
    fn take_config(&mut self, now: Instant, cfg: &Config) {
        // A trunk authenticates by its address, so it never fails a digest; should one
        // of its addresses also host something that does, the trunk's calls go on.
        let trunks = cfg
            .trunks
            .iter()
            .flat_map(|t| std::iter::once(t.address.ip()).chain(t.inbound_from.iter().copied()))
            .collect();
        self.bans.set_policy(cfg.bans.clone(), trunks);
        self.rate.set_policy(cfg.rate);
        self.dial_policy = cfg.dial.clone();
        self.users = cfg
            .users
            .iter()
            .map(|u| (u.extension.clone(), u.clone()))
            .collect();
        self.calls.ring_timeout = cfg.ring_timeout;
        self.calls.session_refresh = cfg.session_refresh;
        self.calls.rtp_timeout = cfg.rtp_timeout;
        self.calls.transfer_code = cfg.transfer_code.clone();
        self.calls.attended_code = cfg.attended_code.clone();
        self.dialplan = cfg.dialplan.clone();
        self.default_context = cfg.default_context.clone();
        self.sounds_dir = cfg.sounds_dir.clone();
        self.hours = cfg.hours.clone();
        self.queue_callback = callback_keys(cfg);
        self.queue_announce = cfg
            .queues
            .iter()
            .map(|(q, _)| (q.name.clone(), (q.announce_every, q.announce_wait)))
            .collect();
        self.queue_moh = cfg
            .queues
            .iter()
            .map(|(q, m)| (q.name.clone(), m.clone()))
            .collect();
        self.set_agent_skills(now);
    }

    /// Takes in a reloaded configuration: users, trunks, registrar limits, digest
    /// algorithms, ring timeout, sounds, queues and the dialplan. Calls already up keep the
    /// dialplan they started with; new calls get the new one. What cannot change without a
    /// restart (listeners, RTP range, domain, state) is the caller's to report.
    pub fn reload(&mut self, now: Instant, cfg: &Config) {
        self.registrar.set_config(cfg.registrar);
        self.auth
            .set_policy(cfg.auth_algorithms.clone(), cfg.nonce_lifetime);
        self.acd
            .reconfigure(now, cfg.queues.iter().map(|(q, _)| q.clone()).collect());
        self.reload_id_agents(now, &cfg.agents);
        self.take_config(now, cfg);
        if self.trunks != cfg.trunks {
            self.trunks = cfg.trunks.clone();
            self.trunk_regs = trunk_reg::TrunkRegs::default();
            self.init_trunk_regs(now);
        }
        tracing::info!(
            users = self.users.len(),
            trunks = self.trunks.len(),
            queues = cfg.queues.len(),
            "configuration reloaded"
        );
        self.drain_acd(now);
        self.drain(now);
    }

    /// Ends every call (each leaves its CDR) before the process stops; drain the outputs
    /// afterwards as usual.
    pub fn shutdown(&mut self, now: Instant) {
        self.end_all_calls(now);
        self.drain(now);
    }

    /// Feeds an event from the media relay.
    pub fn handle_media_event(&mut self, now: Instant, ev: MediaEvent) {
        self.on_media_event(now, ev);
        self.drain(now);
    }

    /// Tells the core the addresses it listens on (after binding), for Via, Contact and
    /// SDP of what it originates.
    pub fn set_listeners(&mut self, l: Vec<(crate::sip::header::Transport, SocketAddr)>) {
        self.listeners = l;
    }

    /// Next command for the media relay.
    pub(super) fn poll_media(&mut self) -> Option<MediaCommand> {
        self.calls.media_out.pop_front()
    }

    /// Next finished call's record and story, for the store.
    pub(super) fn poll_record(&mut self) -> Option<crate::story::CallRecord> {
        self.calls.records.pop_front()
    }

    /// Live calls, for `ctl calls`.
    pub fn calls(&self, now: Instant) -> Vec<CallView> {
        self.calls.views(now)
    }

    /// Number of live calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of live bindings.
    pub fn registration_count(&self) -> usize {
        self.registrar.count()
    }

    /// Number of live transactions.
    pub fn transaction_count(&self) -> usize {
        self.tx.len()
    }

    /// The parser limits in force (stream readers in the driver need them too).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Feeds one UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, bytes: Bytes, peer: Peer) {
        if self.bans.banned(now, peer.addr.ip()) {
            // Dropped unparsed, unless the policy answers a banned source.
            self.stats.banned_messages += 1;
            if self.bans.answer() == BanAnswer::Forbidden {
                if let Ok(m) = parse::parse_datagram(bytes, &self.limits) {
                    self.forbid_banned(&m, peer);
                }
            }
            return;
        }
        // Responses answer what we sent; only requests count against a source's rate.
        if !bytes.starts_with(b"SIP/") && self.over_rate(now, &peer) {
            return;
        }
        match parse::parse_datagram(bytes, &self.limits) {
            Ok(m) => self.take_message(now, m, peer),
            Err(e) => self.handle_parse_error(&e, peer),
        }
    }

    /// Feeds a message a stream reader framed and parsed.
    pub fn handle_message(&mut self, now: Instant, msg: Message, peer: Peer) {
        if self.bans.banned(now, peer.addr.ip()) {
            self.stats.banned_messages += 1;
            if self.bans.answer() == BanAnswer::Forbidden {
                self.forbid_banned(&msg, peer);
            }
            return;
        }
        if msg.is_request() && self.over_rate(now, &peer) {
            return;
        }
        self.take_message(now, msg, peer);
    }

    /// A message from a source neither banned nor over its rate.
    fn take_message(&mut self, now: Instant, msg: Message, peer: Peer) {
        self.stats.messages_in += 1;
        self.tx.handle_incoming(now, msg, peer);
        self.drain(now);
    }

    /// Answers a message that failed to parse (or drops it, as the error says). Goes
    /// straight back to the source: the Via may be what was broken.
    pub fn handle_parse_error(&mut self, err: &ParseError, peer: Peer) {
        self.stats.parse_errors += 1;
        tracing::debug!(%peer.addr, error = %err, "unparseable message");
        if let Some(mut resp) = err.response() {
            resp.push_header(HeaderName::Server, self.server_name.clone());
            self.out.push_back(Transmit {
                peer,
                bytes: resp.to_bytes(),
            });
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.call_timeouts(now);
        self.trunk_reg_timeouts(now);
        self.mwi_timeouts(now);
        self.acd.handle_timeout(now);
        self.drain_acd(now);
        self.callback_timeouts(now);
        for aor in self.registrar.handle_timeout(now) {
            tracing::info!(%aor, "registration expired");
            if let Some(ext) = aor.strip_prefix("sip:").and_then(|a| a.split('@').next()) {
                let ext = ext.to_string();
                self.agent_reach(now, &ext);
            }
        }
        self.drain(now);
    }

    /// Next thing to send.
    pub(super) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.tx.poll_timeout(),
            self.registrar.poll_timeout(),
            self.calls.poll_timeout(),
            self.trunk_regs.poll_timeout(),
            self.mwi.poll_timeout(),
            self.acd.poll_timeout(),
            self.callback_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Live registrations, for `ctl registrations`.
    pub fn registrations(&self, now: Instant) -> Vec<RegistrationView> {
        self.registrar
            .all(now)
            .into_iter()
            .map(|(aor, b)| RegistrationView {
                aor: aor.to_string(),
                contact: b.uri.to_string(),
                source: format!(
                    "{}:{}",
                    b.source.transport.as_str().to_ascii_lowercase(),
                    b.source.addr
                ),
                expires_in: b.expires_at.saturating_duration_since(now).as_secs(),
                user_agent: b
                    .user_agent
                    .as_ref()
                    .map(|u| String::from_utf8_lossy(u).into_owned())
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn drain(&mut self, now: Instant) {
        loop {
            // What the ACD decided on the last events (a hang-up freeing an agent, ...).
            self.drain_acd(now);
            while let Some(t) = self.tx.poll_transmit() {
                self.out.push_back(t);
            }
            let Some(ev) = self.tx.poll_event() else {
                break;
            };
            match ev {
                TuEvent::Request { key, msg, peer } => self.on_request(now, key, msg, peer),
                TuEvent::Timeout { key } => {
                    tracing::debug!(?key, "transaction timed out");
                    match self.owners.get(&key) {
                        Some(TxOwner::TrunkReg(i)) => {
                            let i = *i;
                            self.on_trunk_reg_timeout(now, &key, i);
                        }
                        Some(TxOwner::Notify(id)) => {
                            let id = *id;
                            self.on_notify_timeout(&key, id);
                        }
                        Some(TxOwner::Call(..) | TxOwner::Detached(_)) => {
                            self.on_call_tx_timeout(now, &key);
                        }
                        None => {}
                    }
                }
                TuEvent::Ack { msg, .. } => self.on_call_ack(&msg),
                TuEvent::Response { key, msg } => match self.owners.get(&key) {
                    Some(TxOwner::TrunkReg(i)) => {
                        let i = *i;
                        self.on_trunk_reg_response(now, &key, i, &msg);
                    }
                    Some(TxOwner::Notify(id)) => {
                        let id = *id;
                        self.on_notify_response(now, &key, id, &msg);
                    }
                    Some(TxOwner::Call(..) | TxOwner::Detached(_)) => {
                        self.on_call_response(now, &key, msg);
                    }
                    None => {}
                },
                TuEvent::StrayResponse { .. } => {}
                TuEvent::Terminated { key } => {
                    self.calls_forget_tx(&key);
                }
            }
        }
    }

    fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn reply(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        code: StatusCode,
        extra: Vec<(HeaderName, Bytes)>,
    ) {
        self.reply_with_body(now, key, req, code, extra, Bytes::new());
    }

    /// Answers with `code` and a reason phrase that says `why` (as a parse error's does).
    fn reply_why(&mut self, now: Instant, key: &TxKey, req: &Message, code: StatusCode, why: &str) {
        self.answer(now, key, req, code, vec![], Bytes::new(), Some(why));
    }

    fn reply_with_body(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        code: StatusCode,
        extra: Vec<(HeaderName, Bytes)>,
        body: Bytes,
    ) {
        self.answer(now, key, req, code, extra, body, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        code: StatusCode,
        extra: Vec<(HeaderName, Bytes)>,
        body: Bytes,
        why: Option<&str>,
    ) {
        let resp = self.response(req, code, extra, body, why);
        if let Err(e) = self.tx.respond(now, key, resp) {
            tracing::warn!(error = %e, "could not respond");
        }
    }

    /// Answers finally and keeps no transaction (RFC 3261 §8.2.7): for challenges and
    /// refusals, which a flood of requests must not make us remember; a retransmitted
    /// request is simply answered again.
    fn reply_statelessly(
        &mut self,
        key: &TxKey,
        req: &Message,
        code: StatusCode,
        extra: Vec<(HeaderName, Bytes)>,
    ) {
        let resp = self.response(req, code, extra, Bytes::new(), None);
        if let Err(e) = self.tx.respond_statelessly(key, resp) {
            tracing::warn!(error = %e, "could not respond");
        }
    }

    fn response(
        &mut self,
        req: &Message,
        code: StatusCode,
        extra: Vec<(HeaderName, Bytes)>,
        body: Bytes,
        why: Option<&str>,
    ) -> Message {
        let tag = self.tag();
        let mut resp = response_to(req, code, Some(&tag));
        if let (Some(why), crate::sip::StartLine::Response(sl)) = (why, &mut resp.start) {
            sl.reason = Bytes::from(format!("{} ({why})", code.reason()));
        }
        for (n, v) in extra {
            resp.push_header(n, v);
        }
        resp.push_header(HeaderName::Server, self.server_name.clone());
        resp.body = body;
        resp
    }

    fn on_request(&mut self, now: Instant, key: TxKey, msg: Message, peer: Peer) {
        let Some(rl) = msg.request_line() else { return };
        let method = rl.method.clone();
        let call_id = msg
            .call_id()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        let span = tracing::debug_span!("request", %method, call_id = %call_id, peer = %peer.addr);
        let _g = span.enter();
        if method == Method::Cancel {
            match self.tx.invite_for_cancel(&key) {
                Some(inv) => {
                    self.reply(now, &key, &msg, StatusCode::OK, vec![]);
                    if let Some(req) = self.tx.request_of(&inv).cloned() {
                        self.reply(now, &inv, &req, StatusCode::REQUEST_TERMINATED, vec![]);
                    }
                    self.on_caller_cancel(now, &inv);
                }
                None => self.reply(now, &key, &msg, StatusCode::CALL_DOES_NOT_EXIST, vec![]),
            }
            return;
        }
        if let Some(r) = admit::refusal(&msg, self.supported()) {
            self.reply(now, &key, &msg, r.code, r.extra);
            return;
        }
        let in_dialog = msg.to_hdr().ok().and_then(|t| t.tag().cloned()).is_some();
        if in_dialog && method == Method::Subscribe {
            if !self.on_subscribe_refresh(now, &key, &msg) {
                self.reply(now, &key, &msg, StatusCode::CALL_DOES_NOT_EXIST, vec![]);
            }
            return;
        }
        if in_dialog && method != Method::Options {
            if !self.on_in_dialog(now, &key, &msg) {
                self.reply(now, &key, &msg, StatusCode::CALL_DOES_NOT_EXIST, vec![]);
            }
            return;
        }
        match method {
            Method::Invite => self.on_invite(now, key, msg, peer),
            Method::Bye => self.reply(now, &key, &msg, StatusCode::CALL_DOES_NOT_EXIST, vec![]),
            Method::Options => {
                let extra = vec![
                    (HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes())),
                    (HeaderName::Accept, Bytes::from_static(b"application/sdp")),
                    (
                        HeaderName::Supported,
                        Bytes::from_static(self.supported().as_bytes()),
                    ),
                ];
                self.reply(now, &key, &msg, StatusCode::OK, extra);
            }
            Method::Register => self.on_register(now, &key, &msg, &peer),
            Method::Subscribe => self.on_subscribe(now, &key, &msg, &peer),
            _ => {
                let extra = vec![(HeaderName::Allow, Bytes::from_static(ALLOW.as_bytes()))];
                self.reply(now, &key, &msg, StatusCode::NOT_IMPLEMENTED, extra);
            }
        }
    }

    fn challenge(&mut self, now: Instant, key: &TxKey, req: &Message, kind: AuthKind, stale: bool) {
        self.stats.challenges += 1;
        let random = self.rng.random::<u64>();
        let (code, name) = match kind {
            AuthKind::Www => (StatusCode::UNAUTHORIZED, HeaderName::WwwAuthenticate),
            AuthKind::Proxy => (
                StatusCode::PROXY_AUTH_REQUIRED,
                HeaderName::ProxyAuthenticate,
            ),
        };
        let extra = self
            .auth
            .challenges(now, random, stale)
            .into_iter()
            .map(|c| (name.clone(), Bytes::from(c)))
            .collect();
        self.reply_statelessly(key, req, code, extra);
    }

    fn forbid(&mut self, key: &TxKey, req: &Message, why: &str) {
        self.stats.auth_failures += 1;
        tracing::info!(reason = why, "request refused");
        self.reply_statelessly(key, req, StatusCode::FORBIDDEN, vec![]);
    }

    /// Digest-authenticates `req`, answering it (challenge, 400 or 403) unless it proves to
    /// be from a known user allowed from `peer`; then returns that user.
    fn authenticate(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        peer: &Peer,
        kind: AuthKind,
    ) -> Option<User> {
        let hname = match kind {
            AuthKind::Www => HeaderName::Authorization,
            AuthKind::Proxy => HeaderName::ProxyAuthorization,
        };
        let Some(auth_value) = req.header(&hname).cloned() else {
            self.challenge(now, key, req, kind, false);
            return None;
        };
        let creds = match auth::parse_credentials(&auth_value) {
            Ok(c) => c,
            Err(auth::AuthParseError::Algorithm | auth::AuthParseError::NotDigest) => {
                // A scheme or an algorithm we do not offer (RFC 4475 §3.3.7 regaut01):
                // challenge with the ones we do.
                self.challenge(now, key, req, kind, false);
                return None;
            }
            Err(_) => {
                self.reply(now, key, req, StatusCode::BAD_REQUEST, vec![]);
                return None;
            }
        };
        let alg = creds.algorithm.unwrap_or(auth::Algorithm::Md5);
        let user = self.users.get(&creds.username).cloned();
        let ha1 = user
            .as_ref()
            .and_then(|u| u.secret.ha1(alg, &u.extension, &self.domain));
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        match self.auth.verify(now, &method, &creds, ha1.as_deref()) {
            Verdict::Ok => {}
            Verdict::Stale => {
                self.challenge(now, key, req, kind, true);
                return None;
            }
            Verdict::Rejected(why) => {
                self.forbid(key, req, why);
                self.auth_failed(now, peer.addr.ip());
                return None;
            }
        }
        let user = user?;
        if user.demo && !peer.addr.ip().is_loopback() {
            self.auth_failed(now, peer.addr.ip());
            self.forbid(key, req, "demo password used from a non-loopback address");
            return None;
        }
        Some(user)
    }

    fn on_register(&mut self, now: Instant, key: &TxKey, req: &Message, peer: &Peer) {
        let Ok(to) = req.to_hdr() else {
            self.reply(now, key, req, StatusCode::BAD_REQUEST, vec![]);
            return;
        };
        // An address-of-record is a SIP or SIPS URI (RFC 3261 §10.2; RFC 4475 §3.3.4
        // unksm2): anything else is refused before a challenge, saying why.
        let sip = |u: &crate::sip::Uri| matches!(u.scheme, Scheme::Sip | Scheme::Sips);
        if !sip(&to.uri) || !req.from_hdr().is_ok_and(|f| sip(&f.uri)) {
            let why = "To and From must be SIP or SIPS URIs";
            self.reply_why(now, key, req, StatusCode::BAD_REQUEST, why);
            return;
        }
        let to_user = to.uri.user_decoded().unwrap_or_default();
        let Some(user) = self.authenticate(now, key, req, peer, AuthKind::Www) else {
            return;
        };
        if user.extension != to_user {
            self.forbid(key, req, "may only register its own extension");
            return;
        }
        let aor = self.aor(&user.extension);
        match self.registrar.register(now, &aor, req, peer) {
            Ok(bindings) => {
                self.stats.registers_ok += 1;
                let extra = bindings
                    .iter()
                    .map(|b| {
                        let secs = b.expires_at.saturating_duration_since(now).as_secs();
                        (
                            HeaderName::Contact,
                            Bytes::from(format!("<{}>;expires={secs}", b.uri)),
                        )
                    })
                    .collect();
                tracing::info!(%aor, contacts = bindings.len(), "registered");
                self.reply(now, key, req, StatusCode::OK, extra);
                let ext = user.extension.clone();
                self.agent_reach(now, &ext);
            }
            Err(RegisterError::IntervalTooBrief(min)) => {
                let extra = vec![(HeaderName::MinExpires, Bytes::from(min.to_string()))];
                self.reply(now, key, req, StatusCode::INTERVAL_TOO_BRIEF, extra);
            }
            Err(RegisterError::OutOfOrder) => {
                self.reply(now, key, req, StatusCode::SERVER_ERROR, vec![])
            }
            Err(RegisterError::TooManyContacts) => {
                self.reply(now, key, req, StatusCode::FORBIDDEN, vec![])
            }
            Err(_) => self.reply(now, key, req, StatusCode::BAD_REQUEST, vec![]),
        }
    }
}

#[cfg(test)]
mod tests;

/// Each queue's callback key, where it has one.
fn callback_keys(cfg: &Config) -> HashMap<String, char> {
    cfg.queues
        .iter()
        .filter_map(|(q, _)| Some((q.name.clone(), q.callback_key?)))
        .collect()
}
