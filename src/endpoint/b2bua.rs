//! The B2BUA: calls between two independent SIP legs, with switchboard in the media path,
//! driven by the dialplan.
//!
//! A call has the caller's leg A (we are its UAS) and, while a `dial` runs or after it is
//! answered, the callee's leg B (we are its UAC): each with its own Call-ID, tags and CSeq
//! space, so neither party sees the other's dialog. The dialplan cursor decides what the
//! call does ([`crate::dialplan::Action`]); this module carries it out: answering locally
//! (echo, prompts), ringing a number, relaying B's responses to A, BYE on either side
//! ending the other, CANCEL from A cancelling B. SDP is rewritten so RTP flows through the
//! relay ports allocated here. A B leg given up on (caller hung up, ring timeout) is
//! *detached*: cancelled, and hung up should it answer anyway. Every call ends with exactly
//! one CDR.
//!
//! Part of the endpoint (it shares its transaction table and owner task): it holds call
//! state only and reaches the relay and the store through emitted commands.

use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::Endpoint;
use crate::cdr::{Cdr, Disposition};
use crate::dialplan::{Action, Cursor};
use crate::media::{MediaCommand, MediaEvent, PortPool, SessionId};
use crate::sdp::{Codec, Sdp};
use crate::sip::header::{self, Transport};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{cancel_for, new_branch, response_to, Peer, Transmit, TxKey};
use crate::sip::uri::Uri;

/// Which leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Side {
    /// The caller's leg (we are UAS).
    A,
    /// The callee's leg (we are UAC).
    B,
}

/// One dialog as seen from our side.
#[derive(Clone, Debug)]
pub(super) struct Leg {
    pub(super) call_id: Bytes,
    pub(super) local_tag: Bytes,
    /// Our From/To value, with our tag.
    pub(super) local_hdr: Bytes,
    /// The peer's From/To value (with its tag once known).
    pub(super) remote_hdr: Bytes,
    pub(super) remote_tag: Option<Bytes>,
    /// Where in-dialog requests go (the peer's Contact).
    pub(super) target: Uri,
    /// Route headers for in-dialog requests.
    pub(super) routes: Vec<Bytes>,
    /// Our last CSeq on this leg.
    pub(super) cseq: u32,
    /// Transport address for requests on this leg.
    pub(super) peer: Peer,
    /// The SDP we last sent on this leg (repeated to a session refresh).
    pub(super) sdp_sent: Option<Bytes>,
    /// Its `o=` version; each changed description sent on the leg is one higher (RFC 3264 §8).
    pub(super) sdp_version: u64,
}

/// A `collect` (or menu) in progress.
struct Collecting {
    spec: crate::dialplan::Collect,
    digits: String,
    /// A prompt is still playing (the first-key timer starts when the last one ends).
    prompting: bool,
    /// Prompts still to play.
    prompts: VecDeque<std::path::PathBuf>,
    /// A menu's single key, reported to the dialplan rather than stored.
    menu: bool,
}

/// A recording asked for, started once the prompts before it end.
pub(super) struct PendingRecord {
    pub(super) path: std::path::PathBuf,
    pub(super) max: Duration,
    pub(super) silence: Duration,
    /// Voicemail index and the start of its line.
    pub(super) index: Option<(std::path::PathBuf, String)>,
    /// A voicemail message: its box and what the box will list once it is saved.
    pub(super) message: Option<(String, crate::voicemail::VmMessage)>,
}

/// What a call waits for before its dialplan may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// Nothing: the dialplan runs.
    Nothing,
    /// A prompt to finish.
    Play,
    /// B to answer or fail.
    Dial,
    /// Keys for a `collect`.
    Collect,
    /// The prompts before a recording (then the beep) to finish.
    PreRecord,
    /// A recording to end.
    Record,
    /// The call is bridged or echoing: only a hang-up ends it.
    HangUp,
    /// A last prompt to finish, then the call ends (a callback was taken).
    Goodbye,
    /// In an ACD queue: music, and offers to agents.
    Queue,
}

/// Timers a call can have running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CallTimer {
    /// Retransmit our 2xx to A until its ACK (RFC 3261 §13.3.1.4).
    OkRetransmit,
    /// Give up ringing B.
    RingTimeout,
    /// Give up waiting for the next key of a `collect`.
    DigitTimeout,
    /// Tell a queued caller its position.
    Announce,
    /// Give up ringing a callback's customer.
    CustomerRing,
}

/// A callback's A side: a placeholder (nobody yet) until the agent answers and the
/// customer is called; then the customer's leg.
#[derive(Default)]
pub(super) struct CallbackA {
    /// The customer's INVITE while it rings.
    ringing: Option<Dialing>,
    /// Our ACK to the customer's 2xx (sent again if the 2xx is).
    ack: Option<Bytes>,
    /// The customer answered: A is a real leg now.
    pub(super) up: bool,
    /// The customer's phone was rung and refused or did not answer (an attempt spent).
    pub(super) missed: bool,
}

/// How long the customer's phone rings on a callback: under the INVITE transaction's
/// 32 s (Timer B), so that a CANCEL ends the ring rather than the transaction dying.
const CUSTOMER_RING: Duration = Duration::from_secs(30);

/// The B side while it is being dialled.
pub(super) struct Dialing {
    leg: Leg,
    invite_key: TxKey,
    invite: Message,
    provisional: bool,
    /// Credentials for a trunk's 401/407, and whether they were used already.
    credentials: Option<(String, String)>,
    auth_tried: bool,
}

pub(super) struct Call {
    started: Instant,
    pub(super) a: Leg,
    pub(super) a_invite_key: TxKey,
    a_invite: Message,
    /// The caller's offer, answered locally or relayed to B.
    offer: Sdp,
    /// Whether A got our 2xx.
    pub(super) answered: bool,
    /// A callback the PBX places (agent first, then the customer as A).
    pub(super) callback: Option<CallbackA>,
    /// Whether B answered (A and B are bridged).
    pub(super) bridged: bool,
    /// The trunk the call came in on.
    pub(super) from_trunk: Option<String>,
    /// The caller asked to hide its identity (Privacy: id, RFC 3323).
    privacy: bool,
    b: Option<Leg>,
    /// The callee's devices being rung (every registered contact, in parallel).
    pub(super) dialing: Vec<Dialing>,
    /// Final failures of branches rung so far, for the status when all have failed.
    failures: Vec<u16>,
    /// The dialplan in force when the call started, and where the call is in it.
    plan: std::sync::Arc<crate::dialplan::Dialplan>,
    pub(super) cursor: Cursor,
    pub(super) wait: Wait,
    mf: u8,
    /// Relay session: caller port, callee port (0 unless a dial runs or is answered).
    pub(super) media: Option<(SessionId, u16, u16)>,
    /// Payload type of our own media to A (prompts), from our answer.
    a_pt: u8,
    /// The caller's telephone-event payload type in our answer, if any.
    a_te_pt: Option<u8>,
    /// Number of the last prompt started, to match its end report.
    play_seq: u64,
    /// Prompts still to play in a `say` (or a `play`), after the current one.
    pub(super) play_queue: VecDeque<std::path::PathBuf>,
    /// Keys being gathered for a `collect`.
    collecting: Option<Collecting>,
    /// A `record`/`voicemail` waiting for its prompts to end.
    pending_record: Option<PendingRecord>,
    /// The owner's voicemail menu this call is in (`voicemail check`), and its box.
    pub(super) vm: Option<(String, crate::voicemail::Retrieval)>,
    /// The ACD queue the call waits in (or was answered from).
    pub(super) queue: Option<super::queue::QueueCall>,
    /// The extension a `dial` rings (none for a trunk).
    b_ext: Option<String>,
    /// Extensions this call keeps busy (the ACD hears when they are free again).
    pub(super) devices: Vec<String>,
    /// When the current `collect` gives up waiting for the next key.
    digit_at: Option<Instant>,
    /// When a queued caller next hears its position.
    pub(super) announce_at: Option<Instant>,
    ok_bytes: Option<Bytes>,
    ok_interval: Duration,
    ok_until: Instant,
    ok_at: Option<Instant>,
    ring_at: Option<Instant>,
    b_ack: Option<Bytes>,
    /// The answered INVITE to B, whose 2xx retransmissions still find the call.
    b_invite_key: Option<TxKey>,
    /// A re-INVITE or UPDATE relayed to the other leg, awaiting its answer.
    pending: Option<Pending>,
    pub(super) cdr: Cdr,
}

impl Dialing {
    /// A provisional answer came (with the callee's tag, if it gave one): a CANCEL may
    /// now end the ring (RFC 3261 §9.1).
    fn ringing(&mut self, tag: Option<Bytes>) {
        self.provisional = true;
        if let (Some(t), None) = (tag, &self.leg.remote_tag) {
            self.leg.remote_hdr = with_tag(&self.leg.remote_hdr, &t);
            self.leg.remote_tag = Some(t);
        }
    }
}

impl Call {
    /// The INVITE of ours whose transaction is `key`: a B branch ringing, or a
    /// callback's customer.
    fn branch(&mut self, key: &TxKey) -> Option<&mut Dialing> {
        let cb = self.callback.as_mut().and_then(|cb| cb.ringing.as_mut());
        self.dialing
            .iter_mut()
            .chain(cb)
            .find(|d| &d.invite_key == key)
    }

    /// A call just started (not answered, nothing dialled, no media yet): A's leg, its
    /// INVITE and offer, the dialplan and where the call starts in it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        now: Instant,
        a: Leg,
        a_invite_key: TxKey,
        a_invite: Message,
        offer: Sdp,
        (plan, cursor): (std::sync::Arc<crate::dialplan::Dialplan>, Cursor),
        mf: u8,
        cdr: Cdr,
        t1: Duration,
    ) -> Self {
        Self {
            started: now,
            a,
            a_invite_key,
            a_invite,
            offer,
            answered: false,
            callback: None,
            bridged: false,
            from_trunk: None,
            privacy: false,
            b: None,
            dialing: Vec::new(),
            failures: Vec::new(),
            plan,
            cursor,
            wait: Wait::Nothing,
            mf,
            media: None,
            a_pt: 0,
            a_te_pt: None,
            play_seq: 0,
            play_queue: VecDeque::new(),
            collecting: None,
            pending_record: None,
            vm: None,
            announce_at: None,
            queue: None,
            b_ext: None,
            devices: Vec::new(),
            digit_at: None,
            ok_bytes: None,
            ok_interval: t1,
            ok_until: now,
            ok_at: None,
            ring_at: None,
            b_ack: None,
            b_invite_key: None,
            pending: None,
            cdr,
        }
    }
}

/// A mid-call offer (hold, resume, new address) being relayed.
struct Pending {
    /// The leg it came from.
    from: Side,
    /// Its server transaction there.
    key: TxKey,
    /// The request, to answer it.
    request: Message,
    /// Our client transaction on the other leg.
    forwarded: TxKey,
}

/// Who and how a dial reaches: built by [`Endpoint::dial`] (an extension) or
/// [`Endpoint::dial_trunk`], sent by [`Endpoint::dial_out`].
struct Outgoing {
    target: String,
    from: Bytes,
    to: Bytes,
    uri: Uri,
    peer: Peer,
    extra: Vec<(HeaderName, Bytes)>,
    credentials: Option<(String, String)>,
}

/// A B leg given up on whose INVITE is still pending.
struct Detached {
    invite: Message,
    peer: Peer,
    cancel_sent: bool,
}

/// Live call, for `ctl calls`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CallView {
    /// switchboard call id.
    pub id: u64,
    /// Caller.
    pub caller: String,
    /// Number dialled.
    pub callee: String,
    /// `routing`, `ringing`, `answered` or `bridged`.
    pub state: String,
    /// Seconds since the INVITE.
    pub age_s: u64,
    /// Relay ports (caller side, callee side; 0 when none).
    pub rtp_ports: Option<(u16, u16)>,
}

/// All calls, and what they emit.
pub(super) struct Calls {
    next_id: u64,
    pub(super) calls: HashMap<u64, Call>,
    by_dialog: HashMap<(Bytes, Bytes), (u64, Side)>,
    by_client_tx: HashMap<TxKey, u64>,
    by_a_invite: HashMap<TxKey, u64>,
    detached: HashMap<TxKey, Detached>,
    timers: BinaryHeap<Reverse<(Instant, u64, CallTimer)>>,
    ports: PortPool,
    pub(super) media_out: VecDeque<MediaCommand>,
    pub(super) cdrs: VecDeque<Cdr>,
    pub(super) ring_timeout: Duration,
}

impl Calls {
    pub(super) fn new(rtp: (u16, u16), ring_timeout: Duration) -> Self {
        Self {
            next_id: 1,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_client_tx: HashMap::new(),
            by_a_invite: HashMap::new(),
            detached: HashMap::new(),
            timers: BinaryHeap::new(),
            ports: PortPool::new(rtp.0, rtp.1),
            media_out: VecDeque::new(),
            cdrs: VecDeque::new(),
            ring_timeout,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// A fresh call id.
    pub(super) fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, kind))) = self.timers.peek().copied() {
            let live = self.calls.get(&id).is_some_and(|c| match kind {
                CallTimer::OkRetransmit => c.ok_at == Some(at),
                CallTimer::RingTimeout => c.ring_at == Some(at),
                CallTimer::DigitTimeout => c.digit_at == Some(at),
                CallTimer::Announce => c.announce_at == Some(at),
                CallTimer::CustomerRing => c
                    .callback
                    .as_ref()
                    .is_some_and(|cb| cb.ringing.is_some() && !cb.up),
            });
            if live {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    pub(super) fn arm(&mut self, id: u64, kind: CallTimer, at: Instant) {
        if let Some(c) = self.calls.get_mut(&id) {
            match kind {
                CallTimer::OkRetransmit => c.ok_at = Some(at),
                CallTimer::RingTimeout => c.ring_at = Some(at),
                CallTimer::DigitTimeout => c.digit_at = Some(at),
                CallTimer::Announce => c.announce_at = Some(at),
                CallTimer::CustomerRing => {}
            }
            self.timers.push(Reverse((at, id, kind)));
        }
    }

    pub(super) fn views(&self, now: Instant) -> Vec<CallView> {
        let mut v: Vec<CallView> = self
            .calls
            .iter()
            .map(|(id, c)| CallView {
                id: *id,
                caller: c.cdr.caller.clone(),
                callee: c.cdr.callee.clone(),
                state: if c.bridged {
                    "bridged"
                } else if c.answered {
                    "answered"
                } else if !c.dialing.is_empty() {
                    "ringing"
                } else {
                    "routing"
                }
                .into(),
                age_s: now.saturating_duration_since(c.started).as_secs(),
                rtp_ports: c.media.map(|(_, a, b)| (a, b)),
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }
}

/// The URI inside a Contact (first value), if any.
fn contact_uri(m: &Message) -> Option<Uri> {
    let v = m.header(&HeaderName::Contact)?;
    match header::parse_contact_list(v).ok()?.into_iter().next()? {
        header::Contact::Addr(na) => Some(na.uri),
        header::Contact::Star => None,
    }
}

/// The route set a message's Record-Route headers give (RFC 3261 §12.1): in order for the
/// UAS side, reversed for the UAC side.
fn route_set(m: &Message, reverse: bool) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = m
        .headers_named(&HeaderName::RecordRoute)
        .flat_map(|h| header::split_list(h).unwrap_or_default())
        .collect();
    if reverse {
        v.reverse();
    }
    v
}

/// The key in a SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`
/// (`5`), the two forms phones send.
fn info_digit(m: &Message) -> Option<char> {
    let ct = m.header(&HeaderName::ContentType)?.to_ascii_lowercase();
    let body = std::str::from_utf8(&m.body).ok()?;
    let text = if ct.starts_with(b"application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ct.starts_with(b"application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    match text {
        "10" => Some('*'),
        "11" => Some('#'),
        t if t.len() == 1 && "0123456789*#ABCDabcd".contains(t) => {
            t.chars().next().map(|c| c.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// Our side of a dialog a request from `peer` starts, with our tag `local_tag`.
pub(super) fn uas_leg(msg: &Message, peer: &Peer, local_tag: Bytes) -> Leg {
    let to = msg.header(&HeaderName::To).cloned().unwrap_or_default();
    Leg {
        call_id: msg.call_id().cloned().unwrap_or_default(),
        local_hdr: with_tag(&to, &local_tag),
        local_tag,
        remote_hdr: msg.header(&HeaderName::From).cloned().unwrap_or_default(),
        remote_tag: msg.from_hdr().ok().and_then(|f| f.tag().cloned()),
        target: contact_uri(msg).unwrap_or_else(|| Uri::sip(None, &peer.addr.to_string(), None)),
        routes: route_set(msg, false),
        cseq: 0,
        peer: peer.clone(),
        sdp_sent: None,
        sdp_version: 1,
    }
}

/// How a call out through trunk `t` presents itself: From and the extra headers
/// (P-Asserted-Identity, Privacy). The trunk's caller ID, else `number`; its caller name,
/// else the extension's name, else the number. `privacy` hides From and keeps PAI.
fn trunk_identity(
    t: &crate::config::Trunk,
    number: &str,
    ext: Option<crate::config::User>,
    privacy: bool,
) -> (Bytes, Vec<(HeaderName, Bytes)>) {
    let id_number = t.caller_id.clone().unwrap_or_else(|| number.to_string());
    let id_name = t
        .caller_name
        .clone()
        .or_else(|| ext.and_then(|u| u.name))
        .unwrap_or_else(|| id_number.clone());
    let host = t.address.to_string();
    let shown = Bytes::from(format!(
        "\"{}\" <sip:{id_number}@{host}>",
        id_name.replace('"', "")
    ));
    let mut extra = Vec::new();
    if t.pai {
        extra.push((
            HeaderName::Other(Bytes::from_static(b"P-Asserted-Identity")),
            shown.clone(),
        ));
    }
    if !privacy {
        return (shown, extra);
    }
    extra.push((
        HeaderName::Other(Bytes::from_static(b"Privacy")),
        Bytes::from_static(b"id"),
    ));
    let anonymous = Bytes::from_static(b"\"Anonymous\" <sip:anonymous@anonymous.invalid>");
    (anonymous, extra)
}

/// Appends `;tag=` to a From/To value.
fn with_tag(v: &Bytes, tag: &Bytes) -> Bytes {
    let mut out = v.to_vec();
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(tag);
    Bytes::from(out)
}

pub(super) fn code(n: u16) -> StatusCode {
    StatusCode::new(n).unwrap_or(StatusCode::SERVER_ERROR)
}

/// `$status` after a failed dial, from B's final response.
fn dial_status(c: u16) -> &'static str {
    match c {
        486 | 600 => "busy",
        408 | 480 | 487 => "noanswer",
        404 | 604 => "unavailable",
        _ => "failed",
    }
}

/// What an unanswered call's hang-up tells the caller, and how the CDR files it.
fn hangup_code(explicit: Option<u16>, status: Option<&str>) -> (u16, Disposition) {
    let n = explicit.unwrap_or(match status {
        Some("busy") => 486,
        Some("unavailable") => 404,
        Some("failed") => 503,
        _ => 480,
    });
    let disp = match n {
        486 | 600 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        404 | 604 => Disposition::Unavailable,
        _ => Disposition::Failed,
    };
    (n, disp)
}

impl Endpoint {
    /// Our address on the listener that reaches `peer` (same transport and family).
    pub(super) fn local_for(&self, peer: &Peer) -> SocketAddr {
        let fam = peer.addr.is_ipv4();
        self.listeners
            .iter()
            .find(|(t, a)| *t == peer.transport && a.is_ipv4() == fam)
            .or_else(|| self.listeners.iter().find(|(_, a)| a.is_ipv4() == fam))
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::new(peer.addr.ip(), 5060))
    }

    pub(super) fn contact_value(&self, peer: &Peer) -> Bytes {
        let local = self.local_for(peer);
        let tp = match peer.transport {
            Transport::Tcp => ";transport=tcp",
            _ => "",
        };
        Bytes::from(format!("<sip:switchboard@{local}{tp}>"))
    }

    fn media_ip(&self, peer: &Peer) -> IpAddr {
        self.local_for(peer).ip()
    }

    pub(super) fn unix_ms(&self, now: Instant) -> u64 {
        self.wall_epoch_ms + now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn via_for(&mut self, peer: &Peer) -> Bytes {
        let local = self.local_for(peer);
        let branch = new_branch(self.rng_u64());
        Bytes::from(format!(
            "SIP/2.0/{} {local};branch={branch};rport",
            peer.transport.as_str()
        ))
    }

    /// A request inside `leg`'s dialog (BYE, ACK), with a fresh Via.
    pub(super) fn leg_request(&mut self, method: Method, leg: &Leg, cseq: u32) -> Message {
        let mut m = Message::request(method.clone(), leg.target.clone());
        m.push_header(HeaderName::Via, self.via_for(&leg.peer));
        m.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        // On leg A we are the UAS: our From is the A-leg To (with our tag), and vice versa.
        m.push_header(HeaderName::From, leg.local_hdr.clone());
        m.push_header(HeaderName::To, leg.remote_hdr.clone());
        m.push_header(HeaderName::CallId, leg.call_id.clone());
        m.push_header(HeaderName::CSeq, Bytes::from(format!("{cseq} {method}")));
        for r in &leg.routes {
            m.push_header(HeaderName::Route, r.clone());
        }
        m
    }

    fn respond_a(
        &mut self,
        now: Instant,
        id: u64,
        code: StatusCode,
        sdp: Option<Bytes>,
    ) -> Option<Bytes> {
        let call = self.calls.calls.get(&id)?;
        let tag = String::from_utf8_lossy(&call.a.local_tag).into_owned();
        let mut resp = response_to(&call.a_invite, code, Some(&tag));
        if code != StatusCode::TRYING {
            resp.push_header(HeaderName::Contact, self.contact_value(&call.a.peer));
        }
        for rr in call.a_invite.headers_named(&HeaderName::RecordRoute) {
            resp.push_header(HeaderName::RecordRoute, rr.clone());
        }
        resp.push_header(HeaderName::Server, self.server_name.clone());
        if code.is_success() {
            resp.push_header(
                HeaderName::Allow,
                Bytes::from_static(super::ALLOW.as_bytes()),
            );
        }
        if let Some(body) = sdp {
            resp.push_header(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            resp.body = body;
        }
        let key = call.a_invite_key.clone();
        let bytes = resp.to_bytes();
        if let Err(e) = self.tx.respond(now, &key, resp) {
            tracing::debug!(error = %e, "response to caller not sent");
        }
        Some(bytes)
    }

    /// A new INVITE (no To tag): identify the caller (a trunk by its address, else an
    /// extension by digest), find its route, and start the call.
    pub(super) fn on_invite(&mut self, now: Instant, key: TxKey, msg: Message, peer: Peer) {
        // A looping request is refused before anything else, challenge included.
        let mf = msg
            .header(&HeaderName::MaxForwards)
            .and_then(|v| header::parse_max_forwards(v).ok())
            .unwrap_or(70);
        if mf == 0 {
            self.reply(now, &key, &msg, StatusCode::TOO_MANY_HOPS, vec![]);
            return;
        }
        let trunk = self
            .trunks
            .iter()
            .find(|t| t.inbound_from.contains(&peer.addr.ip()))
            .cloned();
        let (caller, context) = match &trunk {
            Some(t) => {
                let from = msg
                    .from_hdr()
                    .ok()
                    .and_then(|f| f.uri.user_decoded())
                    .unwrap_or_else(|| "anonymous".into());
                (from, t.context.clone())
            }
            None => {
                let Some(user) = self.authenticate(now, &key, &msg, &peer, super::AuthKind::Proxy)
                else {
                    return;
                };
                (user.extension, self.default_context.clone())
            }
        };
        let privacy = msg
            .headers_named(&HeaderName::Other(Bytes::from_static(b"Privacy")))
            .any(|v| {
                String::from_utf8_lossy(v)
                    .split(';')
                    .any(|p| matches!(p.trim(), "id" | "user"))
            });
        let offer = match Sdp::parse(&msg.body) {
            Ok(s) if s.is_relayable() => s,
            // No offer (a late-offer INVITE), an unreadable one, or no codec we relay.
            _ => {
                let warn = Bytes::from_static(
                    b"399 switchboard \"INVITE needs an SDP offer with PCMU or PCMA audio\"",
                );
                self.reply(
                    now,
                    &key,
                    &msg,
                    code(488),
                    vec![(HeaderName::Other(Bytes::from_static(b"Warning")), warn)],
                );
                self.refused_cdr(now, &msg, &caller, 488, Disposition::Failed);
                return;
            }
        };
        let callee = msg
            .request_line()
            .and_then(|r| r.uri.user_decoded())
            .unwrap_or_default();
        // The call keeps the dialplan it started with, whatever a reload brings meanwhile.
        let plan = self.dialplan.clone();
        let Some(cursor) = plan.start(&context, &callee, &caller) else {
            tracing::info!(%caller, %callee, %context, "no dialplan route");
            self.reply(now, &key, &msg, StatusCode::NOT_FOUND, vec![]);
            self.refused_cdr(now, &msg, &caller, 404, Disposition::Unavailable);
            return;
        };
        let id = self.calls.new_id();
        let local_tag = Bytes::from(self.tag());
        let a = uas_leg(&msg, &peer, local_tag.clone());
        let trunk_call = trunk.is_some();
        let caller_ext = caller.clone();
        let cdr = Cdr {
            call: id,
            sip_call_id: String::from_utf8_lossy(&a.call_id).into_owned(),
            caller: caller.clone(),
            callee: callee.clone(),
            did: trunk.as_ref().map(|_| callee.clone()),
            trunk: trunk.as_ref().map(|t| t.name.clone()),
            start_ms: self.unix_ms(now),
            answer_ms: None,
            end_ms: 0,
            disposition: Disposition::Failed,
            sip_code: 0,
            hangup_by: "system".into(),
        };
        tracing::info!(call = id, %caller, %callee, trunk = trunk.as_ref().map(|t| t.name.as_str()), "call started");
        self.calls
            .by_dialog
            .insert((a.call_id.clone(), local_tag), (id, Side::A));
        self.calls.by_a_invite.insert(key.clone(), id);
        let call = Call::new(
            now,
            a,
            key,
            msg,
            offer,
            (plan, cursor),
            mf,
            cdr,
            self.cfg_t1,
        );
        self.calls.calls.insert(
            id,
            Call {
                from_trunk: trunk.map(|t| t.name),
                privacy,
                ..call
            },
        );
        if !trunk_call {
            self.device_in_use(now, id, &caller_ext);
        }
        self.run_dialplan(now, id);
    }

    /// The CDR of a call refused before it started (bad offer, no route): it still counts.
    fn refused_cdr(
        &mut self,
        now: Instant,
        msg: &Message,
        caller: &str,
        sip_code: u16,
        disposition: Disposition,
    ) {
        let id = self.calls.next_id;
        self.calls.next_id += 1;
        let t = self.unix_ms(now);
        self.calls.cdrs.push_back(Cdr {
            call: id,
            sip_call_id: msg
                .call_id()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
            caller: caller.to_string(),
            callee: msg
                .request_line()
                .and_then(|r| r.uri.user_decoded())
                .unwrap_or_default(),
            did: None,
            trunk: None,
            start_ms: t,
            answer_ms: None,
            end_ms: t,
            disposition,
            sip_code,
            hangup_by: "system".into(),
        });
    }

    /// Steps the call's dialplan until it has to wait.
    pub(super) fn run_dialplan(&mut self, now: Instant, id: u64) {
        let Some(plan) = self.calls.calls.get(&id).map(|c| c.plan.clone()) else {
            return;
        };
        let unix_ms = self.unix_ms(now);
        // What the call was waiting for, which tells the voicemail menu what happened.
        let mut ended = self.calls.calls.get(&id).map_or(Wait::Nothing, |c| c.wait);
        loop {
            let Some(c) = self.calls.calls.get_mut(&id) else {
                return;
            };
            c.wait = Wait::Nothing;
            if c.vm.is_some() {
                self.run_vm_menu(now, id, ended);
                return;
            }
            if c.queue.is_some() {
                self.run_queue(now, id);
                return;
            }
            ended = Wait::Nothing;
            let env = crate::dialplan::Env {
                unix_ms: unix_ms as i64,
                hours: Some(&*self.hours),
            };
            let action = plan.step(&mut c.cursor, &env);
            tracing::debug!(call = id, ?action, "dialplan");
            match action {
                Action::Answer => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                }
                Action::Echo => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    self.calls
                        .media_out
                        .push_back(MediaCommand::Echo { id: SessionId(id) });
                    self.set_wait(id, Wait::HangUp);
                    return;
                }
                Action::Play(name) => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    self.play_in_turn(id, vec![name]);
                    return;
                }
                Action::PlayAll(names) => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    self.play_in_turn(id, names);
                    return;
                }
                Action::Collect(col) => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    let prompts = self.sound_paths(col.prompts.iter().map(|t| t.as_str()));
                    self.start_collect(now, id, col, false, prompts);
                    return;
                }
                Action::Menu { prompts, timeout } => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    let paths = self.sound_paths(prompts.iter().map(String::as_str));
                    let spec = crate::dialplan::Collect {
                        var: "key".into(),
                        min: 1,
                        max: 1,
                        timeout,
                        interdigit: timeout,
                        terminator: None,
                        prompts: Vec::new(),
                    };
                    self.start_collect(now, id, spec, true, paths);
                    return;
                }
                Action::Record { name, max, silence } => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    let Some(file) = self.safe_name_or_fail(id, &name) else {
                        continue;
                    };
                    let path = self
                        .state_dir
                        .join("recordings")
                        .join(format!("{file}.wav"));
                    if let Some(c) = self.calls.calls.get_mut(&id) {
                        c.cursor
                            .vars
                            .insert("recording".into(), path.display().to_string());
                    }
                    let beep = self.sound_paths(["beep"]);
                    self.record_after(
                        id,
                        beep,
                        PendingRecord {
                            path,
                            max,
                            silence,
                            index: None,
                            message: None,
                        },
                    );
                    return;
                }
                Action::Voicemail(mailbox) => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    let Some(dir) = self.safe_name_or_fail(id, &mailbox) else {
                        continue;
                    };
                    let at = self.unix_ms(now);
                    let dir = self.state_dir.join("voicemail").join(dir);
                    let file = format!("{at}-{id}.wav");
                    let caller = self
                        .calls
                        .calls
                        .get(&id)
                        .map(|c| c.cdr.caller.clone())
                        .unwrap_or_default();
                    // The relay appends the length and the closing brace.
                    let line = format!(
                        "{{\"file\":{},\"caller\":{},\"at_ms\":{at}",
                        json_str(&file),
                        json_str(&caller)
                    );
                    // The owner's greeting if one was recorded, the standard prompt if not.
                    let mut prompts = if self.mailboxes.get(&mailbox).is_some_and(|m| m.greeting) {
                        vec![dir.join(crate::voicemail::GREETING)]
                    } else {
                        self.sound_paths(["leave-message"])
                    };
                    prompts.extend(self.sound_paths(["beep"]));
                    let msg = crate::voicemail::VmMessage {
                        file,
                        caller,
                        at_ms: at,
                        ms: 0,
                        heard: false,
                    };
                    let rec = PendingRecord {
                        path: dir.join(&msg.file),
                        max: Duration::from_secs(120),
                        silence: Duration::from_secs(5),
                        index: Some((dir.join("index.jsonl"), line)),
                        message: Some((mailbox.clone(), msg)),
                    };
                    self.record_after(id, prompts, rec);
                    return;
                }
                Action::VoicemailCheck(mailbox) => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    if self.safe_name_or_fail(id, &mailbox).is_none() {
                        continue;
                    }
                    let Some(c) = self.calls.calls.get_mut(&id) else {
                        return;
                    };
                    let loopback = c.a.peer.addr.ip().is_loopback();
                    // A box opens with its owner's PIN; a shipped demo PIN only from loopback.
                    let pin = self.users.get(&mailbox).and_then(|u| {
                        if u.demo && !loopback {
                            tracing::warn!(call = id, %mailbox, "demo voicemail PIN refused from a non-loopback address");
                            return None;
                        }
                        u.voicemail_pin.clone()
                    });
                    tracing::info!(call = id, %mailbox, "voicemail menu");
                    c.vm = Some((mailbox, crate::voicemail::Retrieval::new(pin)));
                }
                Action::Agent(op) => {
                    let Some(c) = self.calls.calls.get(&id) else {
                        return;
                    };
                    // Only our own extensions' calls speak for an agent.
                    let agent = c.cdr.caller.clone();
                    let own = c.from_trunk.is_none() && self.users.contains_key(&agent);
                    let ok = own && self.agent_op(now, &agent, op).is_ok();
                    self.set_status(id, if ok { "ok" } else { "failed" });
                }
                Action::AgentLogin { id: agent, pin } => {
                    let Some(c) = self.calls.calls.get(&id) else {
                        return;
                    };
                    // Only our own extensions' phones take agents.
                    let ext = c.cdr.caller.clone();
                    let own = c.from_trunk.is_none() && self.users.contains_key(&ext);
                    let loopback = c.a.peer.addr.ip().is_loopback();
                    let status = if own {
                        self.agent_login_pin(now, &ext, loopback, &agent, &pin.0)
                    } else {
                        "failed"
                    };
                    self.set_status(id, status);
                }
                Action::Queue {
                    name,
                    priority,
                    timeout,
                    skills,
                    announce,
                } => {
                    if !self.answer_locally(now, id) {
                        return;
                    }
                    let ask = super::queue::QueueAsk {
                        priority,
                        timeout,
                        skills,
                        announce,
                    };
                    self.join_queue(now, id, &name, ask);
                    return;
                }
                Action::Dial {
                    target,
                    trunk,
                    timeout,
                } => {
                    let started = match trunk {
                        Some(t) => self.dial_trunk(now, id, &t, &target, timeout),
                        None => self.dial(now, id, &target, timeout),
                    };
                    if started {
                        self.set_wait(id, Wait::Dial);
                        self.ringback(id);
                        return;
                    }
                }
                Action::Hangup(explicit) => {
                    self.hang_up(now, id, explicit);
                    return;
                }
            }
        }
    }

    /// `name` if it is safe as a file or directory name under the state directory; else
    /// `$status` is `failed` and the dialplan goes on.
    fn safe_name_or_fail<'n>(&mut self, id: u64, name: &'n str) -> Option<&'n str> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            tracing::warn!(call = id, %name, "name refused: letters, digits, `-`, `_` and `.` only");
            self.set_status(id, "failed");
        }
        ok.then_some(name)
    }

    /// Plays `prompts`, then starts recording.
    pub(super) fn record_after(
        &mut self,
        id: u64,
        prompts: Vec<std::path::PathBuf>,
        rec: PendingRecord,
    ) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.pending_record = Some(rec);
        }
        self.play_paths(id, prompts);
        self.set_wait(id, Wait::PreRecord);
    }

    /// The prompts before a recording ended: record.
    fn start_record(&mut self, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(rec) = c.pending_record.take() else {
            return;
        };
        c.play_seq += 1;
        c.wait = Wait::Record;
        let seq = c.play_seq;
        // Kept apart from the call: a caller who hangs up mid-message still leaves it.
        if let Some(m) = rec.message {
            self.leaving.insert((id, seq), m);
        }
        self.calls.media_out.push_back(MediaCommand::Record {
            id: SessionId(id),
            path: rec.path,
            max: rec.max,
            silence: rec.silence,
            index: rec.index,
            seq,
        });
    }

    pub(super) fn set_wait(&mut self, id: u64, w: Wait) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.wait = w;
        }
    }

    pub(super) fn set_status(&mut self, id: u64, status: &str) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.cursor.vars.insert("status".into(), status.into());
        }
    }

    /// The dialplan's hang-up: BYE an answered caller, or refuse an unanswered one.
    pub(super) fn hang_up(&mut self, now: Instant, id: u64, explicit: Option<u16>) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.answered {
            self.send_bye(now, id, Side::A);
            self.finish(now, id, Disposition::Answered, 200, "system");
        } else {
            let (n, disp) = hangup_code(explicit, c.cursor.vars.get("status").map(String::as_str));
            self.fail_call(now, id, code(n), disp);
        }
    }

    /// Answers A with our own media (echo, prompts). False if the call had to end.
    fn answer_locally(&mut self, now: Instant, id: u64) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        if c.answered {
            return true;
        }
        let Some(pa) = self.calls.ports.take() else {
            tracing::warn!("RTP port range exhausted");
            self.fail_call(
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                Disposition::Failed,
            );
            return false;
        };
        let peer = c.a.peer.clone();
        let answer = match c.offer.answer_for(self.media_ip(&peer), pa, id) {
            Ok(a) => a,
            Err(_) => {
                self.calls.ports.give(pa);
                self.fail_call(now, id, code(488), Disposition::Failed);
                return false;
            }
        };
        let pt = answer
            .audio()
            .and_then(|m| {
                m.formats
                    .iter()
                    .find(|f| matches!(f.codec(), Some(Codec::Pcmu | Codec::Pcma)))
            })
            .map_or(0, |f| f.pt);
        let te_pt = answer.audio().and_then(|m| {
            m.formats
                .iter()
                .find(|f| f.codec() == Some(Codec::TelephoneEvent))
                .map(|f| f.pt)
        });
        let a_remote = c.offer.audio_target();
        let sid = SessionId(id);
        self.calls.media_out.push_back(MediaCommand::Local {
            id: sid,
            a_port: pa,
            a_remote,
            pt,
            te_pt,
        });
        let body = Bytes::from(answer.to_bytes());
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.media = Some((sid, pa, 0));
            c.a_pt = pt;
            c.a_te_pt = te_pt;
            c.a.sdp_sent = Some(body.clone());
        }
        self.answer_a(now, id, body);
        true
    }

    /// Sends 200 to A and starts retransmitting it until A's ACK.
    fn answer_a(&mut self, now: Instant, id: u64, body: Bytes) {
        let Some(bytes) = self.respond_a(now, id, StatusCode::OK, Some(body)) else {
            return;
        };
        let unix = self.unix_ms(now);
        let t1 = self.cfg_t1;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.answered = true;
            c.cdr.answer_ms = Some(unix);
            c.ok_bytes = Some(bytes);
            c.ok_interval = t1;
            c.ok_until = now + t1 * 64;
        }
        self.calls.arm(id, CallTimer::OkRetransmit, now + t1);
        tracing::info!(call = id, "answered");
    }

    /// Starts ringing `target`. False (with `$status` set) when it cannot even start.
    pub(super) fn dial(
        &mut self,
        now: Instant,
        id: u64,
        target: &str,
        timeout: Option<Duration>,
    ) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        // The callee sees the calling extension's name, or a trunk caller's number.
        let (number, name) = match self
            .users
            .get(&c.cdr.caller)
            .filter(|_| c.from_trunk.is_none())
        {
            Some(u) => (
                u.extension.clone(),
                u.name.clone().unwrap_or_else(|| u.extension.clone()),
            ),
            None => (c.cdr.caller.clone(), c.cdr.caller.clone()),
        };
        let from = Bytes::from(format!(
            "\"{}\" <sip:{number}@{}>",
            name.replace('"', ""),
            self.domain
        ));
        if !self.users.contains_key(target) {
            self.set_status(id, "unavailable");
            return false;
        }
        let aor = self.aor(target);
        // Every registered device of the extension rings at once; the first to answer
        // takes the call.
        let bindings: Vec<_> = self
            .registrar
            .lookup(now, &aor)
            .into_iter()
            .cloned()
            .collect();
        if bindings.is_empty() {
            tracing::info!(call = id, %target, "not registered");
            self.set_status(id, "unavailable");
            return false;
        }
        let to = Bytes::from(format!("<sip:{target}@{}>", self.domain));
        let mut started = false;
        for b in bindings {
            let out = Outgoing {
                target: target.to_string(),
                from: from.clone(),
                to: to.clone(),
                uri: b.uri,
                peer: b.source,
                extra: Vec::new(),
                credentials: None,
            };
            started |= self.dial_out(now, id, out, timeout);
        }
        if started {
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.b_ext = Some(target.to_string());
            }
        }
        started
    }

    /// Starts a call out through trunk `name` to `number`, presenting the trunk's caller
    /// ID (or the extension), with P-Asserted-Identity and Privacy as configured.
    fn dial_trunk(
        &mut self,
        now: Instant,
        id: u64,
        name: &str,
        number: &str,
        timeout: Option<Duration>,
    ) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        if c.from_trunk.is_some() {
            // A trunk calling out through a trunk is toll fraud waiting to happen.
            tracing::warn!(
                call = id,
                trunk = name,
                "a call from a trunk may not dial a trunk"
            );
            self.set_status(id, "failed");
            return false;
        }
        let Some(t) = self.trunks.iter().find(|t| t.name == name).cloned() else {
            self.set_status(id, "failed");
            return false;
        };
        let ext = self.users.get(&c.cdr.caller).cloned();
        let (from, extra) = trunk_identity(&t, &c.cdr.caller, ext, c.privacy);
        let host = t.address.to_string();
        let Ok(uri) = Uri::parse(&Bytes::from(format!("sip:{number}@{host}"))) else {
            tracing::info!(call = id, %number, "not a number a trunk can dial");
            self.set_status(id, "unavailable");
            return false;
        };
        let to = Bytes::from(format!("<sip:{number}@{host}>"));
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.cdr.trunk = Some(t.name.clone());
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: t.address,
        };
        let out = Outgoing {
            target: number.to_string(),
            from,
            to,
            uri,
            peer,
            extra,
            credentials: t.credentials.clone(),
        };
        self.dial_out(now, id, out, timeout)
    }

    /// Sends the B-leg INVITE and starts ringing.
    fn dial_out(
        &mut self,
        now: Instant,
        id: u64,
        out: Outgoing,
        timeout: Option<Duration>,
    ) -> bool {
        let Outgoing {
            target,
            from,
            to,
            uri,
            peer,
            extra,
            credentials,
        } = out;
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        // Another device of the same dial shares the bridge already opened for the first.
        let forking = !c.dialing.is_empty() && matches!(c.media, Some((_, _, pb)) if pb != 0);
        // The caller's port: already open if the call was answered locally.
        let (pa, reuse_a) = match c.media {
            Some((_, pa, _)) => (Some(pa), true),
            None => (self.calls.ports.take(), false),
        };
        let pb = match c.media {
            Some((_, _, pb)) if forking => Some(pb),
            _ => self.calls.ports.take(),
        };
        let (Some(pa), Some(pb)) = (pa, pb) else {
            tracing::warn!("RTP port range exhausted");
            if let (Some(p), false) = (pa, reuse_a) {
                self.calls.ports.give(p);
            }
            if let Some(p) = pb {
                self.calls.ports.give(p);
            }
            self.set_status(id, "failed");
            return false;
        };
        let c = &self.calls.calls[&id];
        // Both laws, so a callee that knows only the other one can answer (we transcode).
        let offer_b = match c.offer.relayed(self.media_ip(&peer), pb, id, 1) {
            Ok(o) => o.with_both_g711(),
            Err(e) => {
                tracing::info!(error = %e, "offer refused");
                if !forking {
                    if !reuse_a {
                        self.calls.ports.give(pa);
                    }
                    self.calls.ports.give(pb);
                }
                self.set_status(id, "failed");
                return false;
            }
        };
        let a_remote = c.offer.audio_target();
        let mf = c.mf;
        let sid = SessionId(id);
        if !forking {
            self.calls.media_out.push_back(MediaCommand::Open {
                id: sid,
                a_port: pa,
                b_port: pb,
                a_remote,
            });
        }
        let body = Bytes::from(offer_b.to_bytes());
        let (leg, mut inv) = self.new_invite(&from, to, uri, &peer, body, extra);
        inv.set_header(
            HeaderName::MaxForwards,
            Bytes::from((mf - 1).min(70).to_string()),
        );
        let (call_id, b_tag) = (leg.call_id.clone(), leg.local_tag.clone());
        let key = match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not send INVITE to callee");
                self.set_status(id, "failed");
                return false;
            }
        };
        tracing::info!(call = id, %target, "ringing");
        self.calls.by_client_tx.insert(key.clone(), id);
        self.calls.by_dialog.insert((call_id, b_tag), (id, Side::B));
        let ring = timeout.unwrap_or(self.calls.ring_timeout);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.media = Some((sid, pa, pb));
            c.dialing.push(Dialing {
                leg,
                invite_key: key,
                invite: inv,
                provisional: false,
                credentials,
                auth_tried: false,
            });
        }
        self.calls.arm(id, CallTimer::RingTimeout, now + ring);
        true
    }

    /// Our INVITE on `leg` was answered with 2xx `msg`: the dialog becomes the 2xx's (RFC
    /// 3261 §12.1.2: its To tag, Contact and route set), and it is ACKed at once (§13.2.2.4),
    /// with the INVITE's CSeq (2 after a digest challenge). The ACK, to send again if the
    /// 2xx is.
    fn confirm(&mut self, leg: &mut Leg, msg: &Message) -> Bytes {
        leg.remote_hdr = msg
            .header(&HeaderName::To)
            .cloned()
            .unwrap_or_else(|| leg.remote_hdr.clone());
        leg.remote_tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        if let Some(u) = contact_uri(msg) {
            leg.target = u;
        }
        leg.routes = route_set(msg, true);
        let ack = self.leg_request(Method::Ack, leg, leg.cseq).to_bytes();
        self.out.push_back(Transmit {
            peer: leg.peer.clone(),
            bytes: ack.clone(),
        });
        ack
    }

    /// A dialog we start (From `from` with a new tag, To `to`, at `uri` through `peer`)
    /// and its INVITE, offering `body`, with `extra` headers.
    fn new_invite(
        &mut self,
        from: &Bytes,
        to: Bytes,
        uri: Uri,
        peer: &Peer,
        body: Bytes,
        extra: Vec<(HeaderName, Bytes)>,
    ) -> (Leg, Message) {
        let tag = Bytes::from(self.tag());
        let leg = Leg {
            call_id: Bytes::from(format!("{}@{}", self.tag(), self.domain)),
            local_hdr: with_tag(from, &tag),
            local_tag: tag,
            remote_hdr: to,
            remote_tag: None,
            target: uri,
            routes: Vec::new(),
            cseq: 1,
            peer: peer.clone(),
            sdp_sent: Some(body.clone()),
            sdp_version: 1,
        };
        let mut inv = self.leg_request(Method::Invite, &leg, 1);
        inv.push_header(HeaderName::Contact, self.contact_value(peer));
        inv.push_header(
            HeaderName::Allow,
            Bytes::from_static(super::ALLOW.as_bytes()),
        );
        inv.push_header(HeaderName::UserAgent, self.server_name.clone());
        for (n, v) in extra {
            inv.push_header(n, v);
        }
        inv.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        inv.body = body;
        (leg, inv)
    }

    /// Ends a call that was never answered: final response to A, CDR, media.
    fn fail_call(&mut self, now: Instant, id: u64, code: StatusCode, disp: Disposition) {
        self.respond_a(now, id, code, None);
        self.finish(now, id, disp, code.as_u16(), "system");
    }

    /// The call is over: CDR, media freed, B detached if still ringing, tables cleaned.
    fn finish(&mut self, now: Instant, id: u64, disp: Disposition, sip_code: u16, by: &str) {
        self.detach_b(now, id);
        if let Some(d) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
            .and_then(|cb| cb.ringing.take())
        {
            self.detach_branch(now, d);
        }
        let unix = self.unix_ms(now);
        let Some(mut c) = self.calls.calls.remove(&id) else {
            return;
        };
        // A callback is answered when the customer is, not when the agent is.
        let disp = match &c.callback {
            Some(cb) if !cb.up && disp == Disposition::Answered => Disposition::NoAnswer,
            _ => disp,
        };
        c.cdr.end_ms = unix;
        c.cdr.disposition = disp;
        c.cdr.sip_code = sip_code;
        c.cdr.hangup_by = by.to_string();
        tracing::info!(
            call = id,
            disposition = disp.as_str(),
            sip_code,
            by,
            "call ended"
        );
        self.calls.cdrs.push_back(c.cdr);
        if let Some(q) = c.queue.take() {
            self.queue_call_ended(now, id, q);
        }
        match &c.callback {
            // The call that asked for a callback is gone: its request may be offered.
            None => self.callback_asked_call_ended(now, id),
            Some(cb) => self.callback_finished(now, id, cb.missed),
        }
        for ext in std::mem::take(&mut c.devices) {
            self.device_free(now, &ext);
        }
        if let Some((sid, pa, pb)) = c.media {
            self.calls
                .media_out
                .push_back(MediaCommand::Close { id: sid });
            self.calls.ports.give(pa);
            if pb != 0 {
                self.calls.ports.give(pb);
            }
        }
        self.calls
            .by_dialog
            .remove(&(c.a.call_id.clone(), c.a.local_tag.clone()));
        if let Some(b) = &c.b {
            self.calls
                .by_dialog
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        self.calls.by_a_invite.remove(&c.a_invite_key);
        // Our answered INVITEs (to B, and a callback's to its customer) end with the call.
        self.calls.by_client_tx.remove(&c.a_invite_key);
        if let Some(k) = &c.b_invite_key {
            self.calls.by_client_tx.remove(k);
        }
    }

    /// Gives up on every B leg still ringing.
    pub(super) fn detach_b(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.ring_at = None;
        for d in std::mem::take(&mut c.dialing) {
            self.detach_branch(now, d);
        }
    }

    /// Gives up on one ringing B leg: CANCEL it (now, or at its first provisional) and keep
    /// watching its INVITE so a late answer is ACKed and hung up.
    fn detach_branch(&mut self, now: Instant, d: Dialing) {
        self.calls
            .by_dialog
            .remove(&(d.leg.call_id.clone(), d.leg.local_tag.clone()));
        self.calls.by_client_tx.remove(&d.invite_key);
        if self.tx.request_of(&d.invite_key).is_none() {
            return;
        }
        let mut det = Detached {
            invite: d.invite,
            peer: d.leg.peer,
            cancel_sent: false,
        };
        if d.provisional {
            self.send_cancel(now, &mut det);
        }
        self.calls.detached.insert(d.invite_key, det);
    }

    fn send_cancel(&mut self, now: Instant, det: &mut Detached) {
        det.cancel_sent = true;
        if let Some(cancel) = cancel_for(&det.invite) {
            if let Err(e) = self.tx.send_request(now, cancel, det.peer.clone()) {
                tracing::debug!(error = %e, "CANCEL not sent");
            }
        }
    }

    /// A response on one of our client transactions; false if no call knows it.
    pub(super) fn on_call_response(&mut self, now: Instant, key: &TxKey, msg: Message) -> bool {
        let Some(status) = msg.status() else {
            return true;
        };
        if let Some(mut det) = self.calls.detached.remove(key) {
            if status.is_success() {
                self.orphan_2xx(now, &msg, det.peer.clone());
            } else if status.is_provisional() {
                if status != StatusCode::TRYING && !det.cancel_sent {
                    self.send_cancel(now, &mut det);
                }
                self.calls.detached.insert(key.clone(), det);
            }
            return true;
        }
        let Some(&id) = self.calls.by_client_tx.get(key) else {
            return false;
        };
        let reoffer = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.pending.as_ref())
            .is_some_and(|p| &p.forwarded == key);
        if reoffer {
            self.reoffer_answered(now, id, key, &msg);
            return true;
        }
        if key.method != Method::Invite {
            // Responses to our BYE need nothing more.
            return true;
        }
        let customer = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| {
                cb.ringing.as_ref().is_some_and(|d| &d.invite_key == key)
                    || (cb.up && &self.calls.calls[&id].a_invite_key == key)
            });
        if customer {
            self.customer_response(now, id, key, &msg, status);
            return true;
        }
        let bridged = self.calls.calls.get(&id).is_some_and(|c| c.bridged);
        if bridged {
            if status.is_success() {
                // A retransmitted 2xx: our ACK was lost, so send it again.
                if let Some((ack, peer)) = self
                    .calls
                    .calls
                    .get(&id)
                    .and_then(|c| Some((c.b_ack.clone()?, c.b.as_ref()?.peer.clone())))
                {
                    self.out.push_back(Transmit { peer, bytes: ack });
                }
            }
            return true;
        }
        if status == StatusCode::TRYING {
            // Nothing to relay: we sent our own 100 to the caller already.
        } else if status.is_provisional() {
            self.b_provisional(now, id, key, &msg);
        } else if status.is_success() {
            self.b_answered(now, id, key, &msg);
        } else if matches!(status.as_u16(), 401 | 407)
            && self.retry_with_credentials(now, id, key, &msg)
        {
            // Sent again with credentials; the dial goes on.
        } else {
            tracing::info!(call = id, code = status.as_u16(), "callee refused");
            self.branch_failed(now, id, key, status.as_u16());
        }
        true
    }

    /// One rung device said no (or never answered). When none is left ringing, the dial is
    /// over: `$status` from the most telling failure (busy beats no answer beats
    /// unavailable), and the dialplan goes on.
    fn branch_failed(&mut self, now: Instant, id: u64, key: &TxKey, code: u16) {
        self.calls.by_client_tx.remove(key);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if let Some(i) = c.dialing.iter().position(|d| &d.invite_key == key) {
            let d = c.dialing.remove(i);
            self.calls
                .by_dialog
                .remove(&(d.leg.call_id, d.leg.local_tag));
        }
        c.failures.push(code);
        if !c.dialing.is_empty() {
            return;
        }
        c.ring_at = None;
        let rank = |s: &str| match s {
            "busy" => 0,
            "noanswer" => 1,
            "unavailable" => 2,
            _ => 3,
        };
        let status = std::mem::take(&mut c.failures)
            .into_iter()
            .map(dial_status)
            .min_by_key(|s| rank(s))
            .unwrap_or("failed");
        self.unbridge(id);
        self.set_status(id, status);
        self.run_dialplan(now, id);
    }

    /// Answers a trunk's 401/407 to our INVITE once, with the trunk's credentials: the same
    /// dialog, the next CSeq, a new branch (RFC 3261 §22.2).
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        id: u64,
        key: &TxKey,
        resp: &Message,
    ) -> bool {
        let Some(d) = self.calls.calls.get_mut(&id).and_then(|c| c.branch(key)) else {
            return false;
        };
        let (Some((user, password)), false) = (d.credentials.clone(), d.auth_tried) else {
            return false;
        };
        let (challenge_name, answer_name) =
            if resp.status() == Some(StatusCode::PROXY_AUTH_REQUIRED) {
                (
                    HeaderName::ProxyAuthenticate,
                    HeaderName::ProxyAuthorization,
                )
            } else {
                (HeaderName::WwwAuthenticate, HeaderName::Authorization)
            };
        let Some(challenge) = resp.header(&challenge_name).cloned() else {
            return false;
        };
        let uri = d
            .invite
            .request_line()
            .map(|r| r.uri.to_string())
            .unwrap_or_default();
        let cnonce = format!("{:08x}", self.rng_u64() as u32);
        let Some(authz) = crate::sip::auth::client_authorization(
            &challenge, "INVITE", &uri, &user, &password, &cnonce, 1,
        ) else {
            return false;
        };
        let Some(d) = self.calls.calls.get_mut(&id).and_then(|c| c.branch(key)) else {
            return false;
        };
        d.auth_tried = true;
        d.leg.cseq += 1;
        let mut inv = d.invite.clone();
        inv.set_header(
            HeaderName::CSeq,
            Bytes::from(format!("{} INVITE", d.leg.cseq)),
        );
        inv.push_header(answer_name, Bytes::from(authz));
        let peer = d.leg.peer.clone();
        let via = self.via_for(&peer);
        inv.set_header(HeaderName::Via, via);
        match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => {
                self.calls.by_client_tx.remove(key);
                self.calls.by_client_tx.insert(k.clone(), id);
                if let Some(d) = self.calls.calls.get_mut(&id).and_then(|c| c.branch(key)) {
                    d.invite_key = k;
                    d.invite = inv;
                }
                tracing::info!(
                    call = id,
                    "trunk challenged; INVITE sent again with credentials"
                );
                true
            }
            Err(_) => false,
        }
    }

    fn b_provisional(&mut self, now: Instant, id: u64, key: &TxKey, msg: &Message) {
        let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(d) = c.dialing.iter_mut().find(|d| &d.invite_key == key) else {
            return;
        };
        d.ringing(tag);
        if c.answered {
            // The caller hears our media already; nothing to relay.
            return;
        }
        // Early media: relay 183's SDP, rewritten to our caller-side port.
        let mut early = None;
        if let (Ok(sdp), Some((sid, pa, _))) = (Sdp::parse(&msg.body), c.media) {
            if let Some(addr) = sdp.audio_target() {
                self.calls
                    .media_out
                    .push_back(MediaCommand::SetRemoteB { id: sid, addr });
            }
            let peer = c.a.peer.clone();
            if let Ok(r) = sdp.relayed(self.media_ip(&peer), pa, id, 1) {
                let body = Bytes::from(r.to_bytes());
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.a.sdp_sent = Some(body.clone());
                }
                early = Some(body);
            }
        }
        let relay = if early.is_some() {
            code(183)
        } else {
            StatusCode::RINGING
        };
        self.respond_a(now, id, relay, early);
    }

    fn b_answered(&mut self, now: Instant, id: u64, key: &TxKey, msg: &Message) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.ring_at = None;
        let Some(i) = c.dialing.iter().position(|d| &d.invite_key == key) else {
            return;
        };
        // This device won: the others stop ringing.
        let mut d = c.dialing.remove(i);
        for other in std::mem::take(&mut c.dialing) {
            self.detach_branch(now, other);
        }
        let ack = self.confirm(&mut d.leg, msg);
        let leg = d.leg;
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.b_ack = Some(ack);
        c.b_invite_key = Some(key.clone());
        c.bridged = true;
        c.b = Some(leg);
        let answered_before = c.answered;
        let a_peer = c.a.peer.clone();
        let Some((sid, pa, _)) = c.media else { return };
        let answer = Sdp::parse(&msg.body).ok();
        let target = answer.as_ref().and_then(Sdp::audio_target);
        // If the callee chose the law the caller did not offer, the caller gets its own
        // first law and the relay converts between them.
        let offer = c.offer.clone();
        let b_law = answer.as_ref().and_then(Sdp::first_g711);
        let transcode = match (b_law, offer.first_g711()) {
            (Some((bc, bpt)), Some((_, apt))) if !offer.offers(bc) => Some((apt, bpt)),
            _ => None,
        };
        let a_ip = self.media_ip(&a_peer);
        let a_body = match transcode {
            Some(_) => offer.answer_for(a_ip, pa, id).ok(),
            None => answer.and_then(|s| s.relayed(a_ip, pa, id, 1).ok()),
        }
        .map(|s| Bytes::from(s.to_bytes()));
        match (target, a_body) {
            (Some(addr), Some(body)) => {
                self.calls
                    .media_out
                    .push_back(MediaCommand::SetRemoteB { id: sid, addr });
                if let Some((a_pt, b_pt)) = transcode {
                    tracing::info!(call = id, a_pt, b_pt, "transcoding G.711");
                    self.calls.media_out.push_back(MediaCommand::Transcode {
                        id: sid,
                        a_pt,
                        b_pt,
                    });
                }
                self.set_wait(id, Wait::HangUp);
                let callback = self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.callback.is_some());
                if callback {
                    // A callback's agent hears ringback from the local session, on the
                    // law it answered with, until the customer answers.
                    let pt = b_law.map_or(0, |(_, pt)| pt);
                    self.calls.media_out.push_back(MediaCommand::LocalPeer {
                        id: sid,
                        addr: Some(addr),
                        pt,
                    });
                } else if answered_before {
                    // The caller's music or ringback stops only now.
                    self.calls
                        .media_out
                        .push_back(MediaCommand::Connect { id: sid });
                } else {
                    if let Some(c) = self.calls.calls.get_mut(&id) {
                        c.a.sdp_sent = Some(body.clone());
                    }
                    self.answer_a(now, id, body.clone());
                }
                tracing::info!(call = id, "bridged");
                if let Some(ext) = self.calls.calls.get(&id).and_then(|c| c.b_ext.clone()) {
                    self.device_in_use(now, id, &ext);
                }
                self.queue_answered(now, id);
                if callback {
                    // The agent took a callback: now the customer is called, offered
                    // what the agent answered.
                    self.call_customer(now, id, body);
                    self.callback_ringback(id);
                }
            }
            _ => {
                tracing::info!(call = id, "callee answered with unusable SDP");
                self.send_bye(now, id, Side::B);
                if answered_before {
                    self.send_bye(now, id, Side::A);
                    self.finish(now, id, Disposition::Failed, 488, "system");
                } else {
                    self.fail_call(now, id, code(488), Disposition::Failed);
                }
            }
        }
    }

    /// Tears down the relay bridge of a dial that failed; a later dial opens a new one. A
    /// caller answered locally before the dial never left its local session, which goes
    /// on as it was.
    pub(super) fn unbridge(&mut self, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some((sid, pa, pb)) = c.media else { return };
        if pb == 0 {
            return;
        }
        self.calls.ports.give(pb);
        if c.answered {
            self.calls
                .media_out
                .push_back(MediaCommand::CloseB { id: sid });
            c.media = Some((sid, pa, 0));
            if c.wait == Wait::Dial {
                // The ringback ends with the dial; its end report is not awaited.
                c.play_seq += 1;
                self.calls
                    .media_out
                    .push_back(MediaCommand::StopPlay { id: sid });
            }
        } else {
            self.calls
                .media_out
                .push_back(MediaCommand::Close { id: sid });
            self.calls.ports.give(pa);
            c.media = None;
        }
    }

    /// ACK and BYE for a 2xx that arrives after the caller gave up (it cancelled, or the
    /// ring timer fired, while the callee was answering): the callee must not be left in
    /// a call nobody hears.
    fn orphan_2xx(&mut self, now: Instant, resp: &Message, peer: Peer) {
        let (Ok(cid), Some(target)) = (resp.call_id(), contact_uri(resp)) else {
            return;
        };
        tracing::info!("callee answered a call already given up; hanging it up");
        let leg = Leg {
            call_id: cid.clone(),
            local_tag: Bytes::new(),
            local_hdr: resp.header(&HeaderName::From).cloned().unwrap_or_default(),
            remote_hdr: resp.header(&HeaderName::To).cloned().unwrap_or_default(),
            remote_tag: None,
            target,
            routes: route_set(resp, true),
            cseq: 1,
            peer: peer.clone(),
            sdp_sent: None,
            sdp_version: 1,
        };
        let ack = self.leg_request(Method::Ack, &leg, 1);
        self.out.push_back(Transmit {
            peer: peer.clone(),
            bytes: ack.to_bytes(),
        });
        let bye = self.leg_request(Method::Bye, &leg, 2);
        if let Err(e) = self.tx.send_request(now, bye, peer) {
            tracing::debug!(error = %e, "BYE for a late answer not sent");
        }
    }

    /// The caller's CANCEL matched its INVITE: the endpoint already sent 200 and 487.
    pub(super) fn on_caller_cancel(&mut self, now: Instant, invite_key: &TxKey) {
        let Some(&id) = self.calls.by_a_invite.get(invite_key) else {
            return;
        };
        self.finish(now, id, Disposition::Cancelled, 487, "caller");
    }

    /// Sends BYE on `side` of call `id`.
    fn send_bye(&mut self, now: Instant, id: u64, side: Side) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        // A callback's A before the customer answers is nobody.
        let placeholder = c.callback.as_ref().is_some_and(|cb| !cb.up);
        let leg = match side {
            Side::A if placeholder => None,
            Side::A => Some(&mut c.a),
            Side::B => c.b.as_mut(),
        };
        let Some(leg) = leg else { return };
        leg.cseq += 1;
        let (leg, cseq) = (leg.clone(), leg.cseq);
        let mut bye = self.leg_request(Method::Bye, &leg, cseq);
        bye.push_header(HeaderName::UserAgent, self.server_name.clone());
        match self.tx.send_request(now, bye, leg.peer) {
            Ok(k) => {
                self.calls.by_client_tx.insert(k, id);
            }
            Err(e) => tracing::debug!(error = %e, "BYE not sent"),
        }
    }

    /// A request inside a dialog (To tag present). Returns false when no call knows it.
    pub(super) fn on_in_dialog(&mut self, now: Instant, key: &TxKey, msg: &Message) -> bool {
        let (Ok(cid), Some(tag)) = (
            msg.call_id(),
            msg.to_hdr().ok().and_then(|t| t.tag().cloned()),
        ) else {
            return false;
        };
        let Some(&(id, side)) = self.calls.by_dialog.get(&(cid.clone(), tag)) else {
            return false;
        };
        let method = msg.request_line().map(|r| r.method.clone());
        match method {
            Some(Method::Bye) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
                let (by, other) = match side {
                    Side::A => ("caller", Side::B),
                    Side::B => ("callee", Side::A),
                };
                self.send_bye(now, id, other);
                let answered = self.calls.calls.get(&id).is_some_and(|c| c.answered);
                let disp = if answered {
                    Disposition::Answered
                } else {
                    Disposition::Cancelled
                };
                self.finish(now, id, disp, 200, by);
            }
            Some(Method::Invite) | Some(Method::Update) => self.on_reoffer(now, key, msg, id, side),
            Some(Method::Info) => {
                self.reply(now, key, msg, StatusCode::OK, vec![]);
                if let (Side::A, Some(d)) = (side, info_digit(msg)) {
                    self.on_digit(now, id, d);
                }
            }
            _ => self.reply(now, key, msg, StatusCode::OK, vec![]),
        }
        true
    }

    /// A re-INVITE or UPDATE inside a call: relayed to the other party with the SDP
    /// rewritten to our relay ports, so hold, resume and address changes reach it (RFC
    /// 3264 §8). A call with nobody on the other side (echo, prompts) answers it itself.
    fn on_reoffer(&mut self, now: Instant, key: &TxKey, msg: &Message, id: u64, side: Side) {
        let sdp_type = || {
            vec![(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            )]
        };
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.pending.is_some() {
            // Glare: one offer at a time (RFC 3261 §14.2).
            self.reply(now, key, msg, code(491), vec![]);
            return;
        }
        let offer = Sdp::parse(&msg.body).ok();
        if !c.bridged || offer.is_none() {
            // Nothing to relay to, or no offer in it (a session refresh): repeat what this
            // leg already agreed.
            let sdp = match side {
                Side::A => c.a.sdp_sent.clone(),
                Side::B => c.b.as_ref().and_then(|b| b.sdp_sent.clone()),
            };
            self.reply_with_body(
                now,
                key,
                msg,
                StatusCode::OK,
                sdp_type(),
                sdp.unwrap_or_default(),
            );
            return;
        }
        let Some(offer) = offer.filter(Sdp::is_relayable) else {
            self.reply(now, key, msg, code(488), vec![]);
            return;
        };
        let Some((sid, pa, pb)) = c.media else { return };
        let other = match side {
            Side::A => c.b.clone(),
            Side::B => Some(c.a.clone()),
        };
        let Some(mut leg) = other else { return };
        // The sender's new address, until its packets latch the relay anyway.
        if let (Side::B, Some(addr)) = (side, offer.audio_target()) {
            self.calls
                .media_out
                .push_back(MediaCommand::SetRemoteB { id: sid, addr });
        }
        let port = if side == Side::A { pb } else { pa };
        leg.sdp_version += 1;
        let Ok(relayed) = offer.relayed(self.media_ip(&leg.peer), port, id, leg.sdp_version) else {
            self.reply(now, key, msg, code(488), vec![]);
            return;
        };
        let method = msg.method().unwrap_or(Method::Invite);
        leg.cseq += 1;
        let mut req = self.leg_request(method, &leg, leg.cseq);
        req.push_header(HeaderName::Contact, self.contact_value(&leg.peer));
        req.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        req.body = Bytes::from(relayed.to_bytes());
        let peer = leg.peer.clone();
        let forwarded = match self.tx.send_request(now, req, peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not relay re-offer");
                self.reply(now, key, msg, StatusCode::SERVER_ERROR, vec![]);
                return;
            }
        };
        tracing::info!(call = id, from = ?side, "relaying a mid-call offer");
        self.calls.by_client_tx.insert(forwarded.clone(), id);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            match side {
                Side::A => c.b = Some(leg),
                Side::B => c.a = leg,
            }
            c.pending = Some(Pending {
                from: side,
                key: key.clone(),
                request: msg.clone(),
                forwarded,
            });
        }
    }

    /// The other party's answer to a relayed re-offer: ACK it, and answer the sender.
    fn reoffer_answered(&mut self, now: Instant, id: u64, key: &TxKey, resp: &Message) {
        let Some(status) = resp.status() else { return };
        if status.is_provisional() {
            return;
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(p) = c.pending.take() else { return };
        self.calls.by_client_tx.remove(key);
        let (answering, sid, pa, pb) = match (p.from, c.media) {
            (Side::A, Some((sid, pa, pb))) => (c.b.clone(), sid, pa, pb),
            (Side::B, Some((sid, pa, pb))) => (Some(c.a.clone()), sid, pa, pb),
            _ => return,
        };
        let sender_peer = if p.from == Side::A {
            c.a.peer.clone()
        } else {
            c.b.as_ref()
                .map(|b| b.peer.clone())
                .unwrap_or_else(|| c.a.peer.clone())
        };
        if status.is_success() && key.method == Method::Invite {
            if let Some(leg) = &answering {
                let ack = self.leg_request(Method::Ack, leg, leg.cseq).to_bytes();
                self.out.push_back(Transmit {
                    peer: leg.peer.clone(),
                    bytes: ack.clone(),
                });
                if p.from == Side::A {
                    if let Some(c) = self.calls.calls.get_mut(&id) {
                        c.b_ack = Some(ack);
                    }
                }
            }
        }
        let answer = Sdp::parse(&resp.body).ok().filter(|_| status.is_success());
        if let (Side::A, Some(addr)) = (p.from, answer.as_ref().and_then(Sdp::audio_target)) {
            // B answered with (maybe) a new address.
            self.calls
                .media_out
                .push_back(MediaCommand::SetRemoteB { id: sid, addr });
        }
        let port = if p.from == Side::A { pa } else { pb };
        let version = self.calls.calls.get_mut(&id).and_then(|c| {
            let leg = match p.from {
                Side::A => Some(&mut c.a),
                Side::B => c.b.as_mut(),
            }?;
            leg.sdp_version += 1;
            Some(leg.sdp_version)
        });
        let body = answer
            .and_then(|a| {
                a.relayed(self.media_ip(&sender_peer), port, id, version.unwrap_or(2))
                    .ok()
            })
            .map(|a| Bytes::from(a.to_bytes()));
        let to_sender = if status.is_success() && body.is_none() {
            code(488)
        } else {
            status
        };
        let tag = self.calls.calls.get(&id).map(|c| match p.from {
            Side::A => c.a.local_tag.clone(),
            Side::B => {
                c.b.as_ref()
                    .map(|b| b.local_tag.clone())
                    .unwrap_or_default()
            }
        });
        let tag = tag.map(|t| String::from_utf8_lossy(&t).into_owned());
        let mut r = response_to(&p.request, to_sender, tag.as_deref());
        r.push_header(HeaderName::Contact, self.contact_value(&sender_peer));
        r.push_header(HeaderName::Server, self.server_name.clone());
        if let Some(b) = body.clone().filter(|_| to_sender.is_success()) {
            r.push_header(
                HeaderName::ContentType,
                Bytes::from_static(b"application/sdp"),
            );
            r.body = b.clone();
            if let Some(c) = self.calls.calls.get_mut(&id) {
                match p.from {
                    Side::A => c.a.sdp_sent = Some(b),
                    Side::B => {
                        if let Some(leg) = c.b.as_mut() {
                            leg.sdp_sent = Some(b);
                        }
                    }
                }
            }
        }
        let bytes = r.to_bytes();
        if let Err(e) = self.tx.respond(now, &p.key, r) {
            tracing::debug!(error = %e, "answer to a re-offer not sent");
        }
        // Our 2xx to the caller's re-INVITE is retransmitted until its ACK, like the first.
        if to_sender.is_success() && p.from == Side::A && p.key.method == Method::Invite {
            let t1 = self.cfg_t1;
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.ok_bytes = Some(bytes);
                c.ok_interval = t1;
                c.ok_until = now + t1 * 64;
            }
            self.calls.arm(id, CallTimer::OkRetransmit, now + t1);
        }
    }

    /// An ACK outside any transaction: the caller's ACK for our 2xx.
    pub(super) fn on_call_ack(&mut self, msg: &Message) {
        let (Ok(cid), Some(tag)) = (
            msg.call_id(),
            msg.to_hdr().ok().and_then(|t| t.tag().cloned()),
        ) else {
            return;
        };
        if let Some(&(id, Side::A)) = self.calls.by_dialog.get(&(cid.clone(), tag)) {
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.ok_bytes = None;
                c.ok_at = None;
            }
        }
    }

    /// A client transaction got no response at all (Timer B or F).
    pub(super) fn on_call_tx_timeout(&mut self, now: Instant, key: &TxKey) {
        if self.calls.detached.remove(key).is_some() {
            return;
        }
        let Some(&id) = self.calls.by_client_tx.get(key) else {
            return;
        };
        if key.method != Method::Invite {
            self.calls.by_client_tx.remove(key);
            return;
        }
        let customer = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.ringing.as_ref().is_some_and(|d| &d.invite_key == key));
        if customer {
            self.customer_failed(now, id, 408);
            return;
        }
        let dialing = self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.dialing.iter().any(|d| &d.invite_key == key));
        if dialing {
            // A device that never answered at all counts as not answering.
            self.branch_failed(now, id, key, 408);
        } else {
            self.calls.by_client_tx.remove(key);
        }
    }

    /// A client transaction ended: forget it.
    pub(super) fn calls_forget_tx(&mut self, key: &TxKey) {
        self.calls.detached.remove(key);
        if key.method != Method::Invite {
            self.calls.by_client_tx.remove(key);
        }
    }

    /// Plays `names` (sounds, without `.wav`) one after the other; the dialplan goes on
    /// after the last.
    fn play_in_turn(&mut self, id: u64, names: Vec<String>) {
        let paths = self.sound_paths(names.iter().map(String::as_str));
        self.play_paths(id, paths);
    }

    /// The files of sounds named as in the dialplan.
    pub(super) fn sound_paths<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Vec<std::path::PathBuf> {
        names
            .into_iter()
            .map(|n| self.sounds_dir.join(format!("{n}.wav")))
            .collect()
    }

    /// Plays files one after the other; the dialplan goes on after the last.
    pub(super) fn play_paths(&mut self, id: u64, paths: Vec<std::path::PathBuf>) {
        let mut queue = VecDeque::from(paths);
        let Some(first) = queue.pop_front() else {
            return;
        };
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.play_queue = queue;
            c.wait = Wait::Play;
        }
        self.play(id, first, false);
    }

    /// A caller answered here (in a menu) hears ringback while its dial rings: its phone
    /// plays none, since for it the call is up already.
    fn ringback(&mut self, id: u64) {
        let ringing = self
            .calls
            .calls
            .get(&id)
            .is_some_and(|c| c.answered && !c.bridged && !c.dialing.is_empty());
        if ringing {
            let path = self.sounds_dir.join("ringback.wav");
            self.play(id, path, false);
        }
    }

    /// Starts a prompt for call `id`, numbered so its end report is recognised.
    /// Stops what plays to the caller and forgets it: its end report, whenever it comes,
    /// is not taken for a later prompt's.
    pub(super) fn stop_play(&mut self, id: u64) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.play_seq += 1;
            self.calls
                .media_out
                .push_back(MediaCommand::StopPlay { id: SessionId(id) });
        }
    }

    /// A callback's agent hears ringback (again) while the customer's phone rings.
    fn callback_ringback(&mut self, id: u64) {
        let ringing = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.ringing.is_some() && !cb.up);
        if ringing {
            let path = self.sounds_dir.join("ringback.wav");
            self.play(id, path, false);
        }
    }

    pub(super) fn play(&mut self, id: u64, path: std::path::PathBuf, barge_in: bool) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.play_seq += 1;
        let seq = c.play_seq;
        self.calls.media_out.push_back(MediaCommand::Play {
            id: SessionId(id),
            path,
            barge_in,
            seq,
        });
    }

    /// What the relay reports.
    pub(super) fn on_media_event(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::PlayDone { id, seq, played } => {
                // The end of an earlier prompt (cut short by a key) is not this one's.
                let wait = self
                    .calls
                    .calls
                    .get(&id.0)
                    .filter(|c| c.play_seq == seq)
                    .map(|c| c.wait);
                match wait {
                    Some(w @ (Wait::Play | Wait::PreRecord)) => {
                        let next = self
                            .calls
                            .calls
                            .get_mut(&id.0)
                            .and_then(|c| c.play_queue.pop_front());
                        match next {
                            Some(path) => self.play(id.0, path, false),
                            None if w == Wait::PreRecord => self.start_record(id.0),
                            None => self.run_dialplan(now, id.0),
                        }
                    }
                    Some(Wait::Collect) => self.collect_prompt_done(now, id.0),
                    // Music or ringback that cannot be played is not asked for again and
                    // again; the file's absence is logged.
                    Some(Wait::Queue) if played || self.announcing(id.0) => {
                        self.run_queue(now, id.0)
                    }
                    Some(Wait::Dial) if played => self.ringback(id.0),
                    Some(Wait::HangUp) if played => self.callback_ringback(id.0),
                    Some(Wait::Goodbye) => self.hang_up(now, id.0, None),
                    _ => {}
                }
            }
            MediaEvent::RecordDone { id, seq, ms, saved } => {
                if let Some((mailbox, mut msg)) = self.leaving.remove(&(id.0, seq)) {
                    if saved {
                        msg.ms = ms;
                        self.mailboxes
                            .entry(mailbox.clone())
                            .or_default()
                            .messages
                            .push(msg);
                        self.mailbox_changed(now, &mailbox);
                    }
                }
                let waiting = self
                    .calls
                    .calls
                    .get(&id.0)
                    .is_some_and(|c| c.play_seq == seq && c.wait == Wait::Record);
                if waiting {
                    let status = match (saved, ms) {
                        (true, _) => "ok",
                        (false, 0) => "empty",
                        (false, _) => "failed",
                    };
                    self.set_status(id.0, status);
                    self.run_dialplan(now, id.0);
                }
            }
            MediaEvent::Digit { id, digit } => self.on_digit(now, id.0, digit),
        }
    }

    /// Starts a `collect`: the prompt (cut short by the first key) and the first-key timer.
    /// Starts gathering keys: the prompts in turn (the first key cuts them short), then
    /// the first-key timer. A menu gathers one key and reports it to the dialplan.
    pub(super) fn start_collect(
        &mut self,
        now: Instant,
        id: u64,
        spec: crate::dialplan::Collect,
        menu: bool,
        prompts: Vec<std::path::PathBuf>,
    ) {
        let mut prompts = VecDeque::from(prompts);
        let first = prompts.pop_front();
        let timeout = spec.timeout;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.collecting = Some(Collecting {
                spec,
                digits: String::new(),
                prompting: first.is_some(),
                prompts,
                menu,
            });
            c.wait = Wait::Collect;
        }
        match first {
            Some(path) => self.play(id, path, true),
            None => self.calls.arm(id, CallTimer::DigitTimeout, now + timeout),
        }
    }

    /// A prompt of a `collect` or menu ended: the next one, or the first-key timer.
    fn collect_prompt_done(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(col) = c.collecting.as_mut() else {
            return;
        };
        if !col.digits.is_empty() {
            return;
        }
        if let Some(path) = col.prompts.pop_front() {
            self.play(id, path, true);
            return;
        }
        col.prompting = false;
        let at = now + col.spec.timeout;
        self.calls.arm(id, CallTimer::DigitTimeout, at);
    }

    /// A key from the caller (RFC 4733 or SIP INFO).
    pub(super) fn on_digit(&mut self, now: Instant, id: u64, digit: char) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        // Keys gathered into a PIN are not logged, not even one by one.
        let secret = c
            .collecting
            .as_ref()
            .is_some_and(|col| secret_var(&col.spec.var));
        if secret {
            tracing::debug!(call = id, "key pressed");
        } else {
            tracing::debug!(call = id, %digit, "key pressed");
        }
        let queued = c.queue.is_some() && c.collecting.is_none() && !c.bridged;
        if queued && self.queue_key(now, id, digit) {
            return;
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.wait == Wait::Record && digit == '#' {
            // RFC 4733 keys end it in the relay already; a SIP INFO key must from here.
            self.calls
                .media_out
                .push_back(MediaCommand::StopRecord { id: SessionId(id) });
            return;
        }
        let Some(col) = c.collecting.as_mut() else {
            return;
        };
        if col.prompting {
            // Barge-in: RFC 4733 keys stop the prompt in the relay already; a SIP INFO key
            // must stop it from here.
            col.prompting = false;
            self.calls
                .media_out
                .push_back(MediaCommand::StopPlay { id: SessionId(id) });
        }
        if col.spec.terminator == Some(digit) {
            self.end_collect(now, id);
            return;
        }
        col.digits.push(digit);
        if col.digits.len() >= col.spec.max {
            self.end_collect(now, id);
            return;
        }
        let at = now + col.spec.interdigit;
        self.calls.arm(id, CallTimer::DigitTimeout, at);
    }

    /// Stores the keys and `$status`, and lets the dialplan go on.
    fn end_collect(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(col) = c.collecting.take() else {
            return;
        };
        c.digit_at = None;
        let status = if col.digits.len() >= col.spec.min {
            "ok"
        } else {
            "timeout"
        };
        if col.menu {
            let key = col.digits.chars().next();
            tracing::info!(call = id, ?key, "menu choice");
            let plan = c.plan.clone();
            plan.menu_input(&mut c.cursor, key);
        } else {
            let shown = if secret_var(&col.spec.var) {
                "(hidden)"
            } else {
                col.digits.as_str()
            };
            tracing::info!(call = id, var = %col.spec.var, digits = %shown, status, "collected");
            c.cursor.vars.insert(col.spec.var.clone(), col.digits);
            c.cursor.vars.insert("status".into(), status.into());
        }
        self.run_dialplan(now, id);
    }

    /// Ends every call for a shutdown: BYE to answered legs, 503 to unanswered callers,
    /// callees still ringing cancelled; each call leaves its CDR.
    pub(super) fn end_all_calls(&mut self, now: Instant) {
        let ids: Vec<u64> = self.calls.calls.keys().copied().collect();
        for id in ids {
            let Some((answered, bridged)) =
                self.calls.calls.get(&id).map(|c| (c.answered, c.bridged))
            else {
                continue;
            };
            if answered {
                self.send_bye(now, id, Side::A);
                if bridged {
                    self.send_bye(now, id, Side::B);
                }
                self.finish(now, id, Disposition::Answered, 200, "system");
            } else {
                self.fail_call(
                    now,
                    id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Disposition::Failed,
                );
            }
        }
    }

    /// Call timers due at `now`.
    pub(super) fn call_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((at, id, kind))) = self.calls.timers.peek().copied() {
            if at > now {
                break;
            }
            self.calls.timers.pop();
            let Some(c) = self.calls.calls.get_mut(&id) else {
                continue;
            };
            match kind {
                CallTimer::OkRetransmit if c.ok_at == Some(at) => {
                    c.ok_at = None;
                    let Some(bytes) = c.ok_bytes.clone() else {
                        continue;
                    };
                    if now >= c.ok_until {
                        // No ACK in 64*T1: the caller is gone (RFC 3261 §13.3.1.4).
                        c.ok_bytes = None;
                        self.send_bye(now, id, Side::A);
                        self.send_bye(now, id, Side::B);
                        self.finish(now, id, Disposition::Answered, 408, "system");
                        continue;
                    }
                    let peer = c.a.peer.clone();
                    c.ok_interval = (c.ok_interval * 2).min(self.cfg_t2);
                    let next = now + c.ok_interval;
                    self.out.push_back(Transmit { peer, bytes });
                    self.calls.arm(id, CallTimer::OkRetransmit, next);
                }
                CallTimer::CustomerRing => {
                    let ringing = c
                        .callback
                        .as_ref()
                        .is_some_and(|cb| cb.ringing.is_some() && !cb.up);
                    if ringing {
                        self.customer_failed(now, id, 480);
                    }
                }
                CallTimer::Announce if c.announce_at == Some(at) => {
                    c.announce_at = None;
                    self.queue_announce(now, id);
                }
                CallTimer::DigitTimeout if c.digit_at == Some(at) => {
                    c.digit_at = None;
                    self.end_collect(now, id);
                }
                CallTimer::RingTimeout if c.ring_at == Some(at) => {
                    c.ring_at = None;
                    if !c.dialing.is_empty() {
                        tracing::info!(call = id, "no answer");
                        self.detach_b(now, id);
                        self.unbridge(id);
                        self.set_status(id, "noanswer");
                        self.run_dialplan(now, id);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `s` as a JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether keys gathered into `var` are a PIN, never to be logged: the voicemail menu's
/// keys, and any variable whose name ends in `pin`.
fn secret_var(var: &str) -> bool {
    var == super::vm::VM_KEYS || var.ends_with("pin")
}

// Callbacks: the calls the PBX places itself (see `super::callback` for when).
impl Endpoint {
    /// Opens callback call `id` for the agent to be rung from: a placeholder A (nobody
    /// yet) in a local media session, presenting `number` to the agent, ending through
    /// `plan` if the queue gives it up. False when no RTP port is free.
    pub(super) fn callback_call(
        &mut self,
        now: Instant,
        id: u64,
        number: &str,
        trunk: Option<String>,
        plan: std::sync::Arc<crate::dialplan::Dialplan>,
    ) -> bool {
        let Some(pa) = self.calls.ports.take() else {
            tracing::warn!("RTP port range exhausted");
            return false;
        };
        let Some(cursor) = plan.start("callback", "callback", number) else {
            self.calls.ports.give(pa);
            return false;
        };
        let tag = Bytes::from(self.tag());
        let call_id = Bytes::from(format!("{}@{}", self.tag(), self.domain));
        let peer = Peer {
            transport: Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let ip = self.media_ip(&peer);
        let a = Leg {
            call_id: call_id.clone(),
            local_tag: tag.clone(),
            local_hdr: Bytes::from(format!("<sip:callback@{}>;tag=", self.domain)),
            remote_hdr: Bytes::new(),
            remote_tag: None,
            target: Uri::sip(None, &peer.addr.to_string(), None),
            routes: Vec::new(),
            cseq: 1,
            peer,
            sdp_sent: None,
            sdp_version: 1,
        };
        // What the agent is offered: the laws we relay, and keys.
        let offer = Sdp::parse(
            format!(
                "v=0\r\no=- {id} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
                 m=audio {pa} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
            )
            .as_bytes(),
        )
        .expect("our own offer parses");
        let invite = self.leg_request(Method::Invite, &a, 1);
        let key = TxKey {
            role: crate::sip::transaction::Role::Client,
            branch: call_id,
            sent_by: 0,
            method: Method::Invite,
        };
        let cdr = Cdr {
            call: id,
            sip_call_id: String::from_utf8_lossy(&a.call_id).into_owned(),
            caller: number.to_string(),
            callee: "callback".into(),
            did: None,
            trunk: trunk.clone(),
            start_ms: self.unix_ms(now),
            answer_ms: None,
            end_ms: 0,
            disposition: Disposition::Failed,
            sip_code: 0,
            hangup_by: "system".into(),
        };
        let call = Call::new(
            now,
            a,
            key,
            invite,
            offer,
            (plan, cursor),
            70,
            cdr,
            self.cfg_t1,
        );
        let sid = SessionId(id);
        self.calls.calls.insert(
            id,
            Call {
                answered: true,
                callback: Some(CallbackA::default()),
                // The customer's trunk, for calling it back: not a call from it.
                from_trunk: None,
                media: Some((sid, pa, 0)),
                a_pt: 0,
                a_te_pt: Some(101),
                wait: Wait::Queue,
                ..call
            },
        );
        self.calls.media_out.push_back(MediaCommand::Local {
            id: sid,
            a_port: pa,
            a_remote: None,
            pt: 0,
            te_pt: Some(101),
        });
        true
    }

    /// Rings a callback's customer (the agent is on the line), offering `body` (the
    /// agent's media, through our A port). The call ends if it cannot.
    fn call_customer(&mut self, now: Instant, id: u64, body: Bytes) {
        let Some(out) = self.customer_target(now, id) else {
            tracing::info!(call = id, "callback: the customer cannot be called");
            self.send_bye(now, id, Side::B);
            self.finish(now, id, Disposition::Failed, 404, "system");
            return;
        };
        let Outgoing {
            uri,
            peer,
            from,
            to,
            extra,
            credentials,
            ..
        } = out;
        // The agent's media, at our A port, on the address the customer can reach.
        let pa = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.media)
            .map_or(0, |(_, pa, _)| pa);
        let Some(body) = Sdp::parse(&body)
            .and_then(|s| s.relayed(self.media_ip(&peer), pa, id, 1))
            .ok()
            .map(|s| Bytes::from(s.to_bytes()))
        else {
            self.send_bye(now, id, Side::B);
            self.finish(now, id, Disposition::Failed, 488, "system");
            return;
        };
        let (leg, inv) = self.new_invite(&from, to, uri, &peer, body, extra);
        let (call_id, tag) = (leg.call_id.clone(), leg.local_tag.clone());
        let key = match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(call = id, error = %e, "callback: INVITE not sent");
                self.send_bye(now, id, Side::B);
                self.finish(now, id, Disposition::Failed, 503, "system");
                return;
            }
        };
        tracing::info!(call = id, "callback: calling the customer");
        self.calls.by_client_tx.insert(key.clone(), id);
        self.calls.by_dialog.insert((call_id, tag), (id, Side::A));
        if let Some(cb) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
        {
            cb.ringing = Some(Dialing {
                leg,
                invite_key: key,
                invite: inv,
                provisional: false,
                credentials,
                auth_tried: false,
            });
        }
        self.calls
            .arm(id, CallTimer::CustomerRing, now + CUSTOMER_RING);
    }

    /// Where a callback's customer is called: through the trunk it came in on (presented
    /// as the trunk's calls out are, with its credentials), else its extension's newest
    /// registration.
    fn customer_target(&mut self, now: Instant, id: u64) -> Option<Outgoing> {
        let c = self.calls.calls.get(&id)?;
        let number = c.cdr.caller.clone();
        match c.cdr.trunk.clone() {
            Some(name) => {
                let t = self.trunks.iter().find(|t| t.name == name)?.clone();
                let host = t.address.to_string();
                let uri = Uri::parse(&Bytes::from(format!("sip:{number}@{host}"))).ok()?;
                let (from, extra) = trunk_identity(&t, "switchboard", None, false);
                let to = Bytes::from(format!("<sip:{number}@{host}>"));
                let peer = Peer {
                    transport: Transport::Udp,
                    addr: t.address,
                };
                Some(Outgoing {
                    target: number,
                    uri,
                    peer,
                    from,
                    to,
                    extra,
                    credentials: t.credentials.clone(),
                })
            }
            None => {
                let b = self
                    .registrar
                    .lookup(now, &self.aor(&number))
                    .first()
                    .map(|b| (*b).clone())?;
                let from = Bytes::from(format!("\"Callback\" <sip:callback@{}>", self.domain));
                let to = Bytes::from(format!("<sip:{number}@{}>", self.domain));
                Some(Outgoing {
                    target: number,
                    uri: b.uri,
                    peer: b.source,
                    from,
                    to,
                    extra: Vec::new(),
                    credentials: None,
                })
            }
        }
    }

    /// The customer's phone answered a callback's INVITE, or refused it.
    fn customer_response(
        &mut self,
        now: Instant,
        id: u64,
        key: &TxKey,
        msg: &Message,
        status: StatusCode,
    ) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(cb) = c.callback.as_mut() else {
            return;
        };
        if cb.up {
            // A retransmitted 2xx: our ACK was lost.
            if let (true, Some(ack)) = (status.is_success(), cb.ack.clone()) {
                let peer = c.a.peer.clone();
                self.out.push_back(Transmit { peer, bytes: ack });
            }
            return;
        }
        if status.is_provisional() {
            // Ringing: a CANCEL may now end it (RFC 3261 §9.1).
            let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
            if let Some(d) = cb.ringing.as_mut().filter(|d| &d.invite_key == key) {
                d.ringing(tag);
            }
            return;
        }
        if matches!(status.as_u16(), 401 | 407) && self.retry_with_credentials(now, id, key, msg) {
            // Sent again with the trunk's credentials.
            return;
        }
        let Some(mut d) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
            .and_then(|cb| cb.ringing.take())
        else {
            return;
        };
        if !status.is_success() {
            if let Some(cb) = self
                .calls
                .calls
                .get_mut(&id)
                .and_then(|c| c.callback.as_mut())
            {
                cb.ringing = Some(d);
            }
            self.customer_failed(now, id, status.as_u16());
            return;
        }
        let ack = self.confirm(&mut d.leg, msg);
        let unix = self.unix_ms(now);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.a = d.leg;
        c.a_invite_key = d.invite_key;
        c.a_invite = d.invite;
        c.cdr.answer_ms = Some(unix);
        if let Some(cb) = c.callback.as_mut() {
            cb.up = true;
            cb.ack = Some(ack);
        }
        // The agent's ringback stops; the local session's sockets go to the bridge, which
        // latches onto the customer's first packet.
        self.stop_play(id);
        let sid = SessionId(id);
        self.calls.media_out.push_back(MediaCommand::LocalPeer {
            id: sid,
            addr: None,
            pt: 0,
        });
        self.calls
            .media_out
            .push_back(MediaCommand::Connect { id: sid });
        tracing::info!(
            call = id,
            "callback: the customer answered; bridged to the agent"
        );
        self.callback_reached(id);
    }

    /// The customer did not take a callback (refused with `code`, rang out, or its
    /// INVITE got no answer at all): the ring ends, the agent is hung up on, and the
    /// attempt counts.
    fn customer_failed(&mut self, now: Instant, id: u64, code: u16) {
        let Some(cb) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
        else {
            return;
        };
        cb.missed = true;
        let ringing = cb.ringing.take();
        tracing::info!(call = id, code, "callback: the customer did not answer");
        if let Some(d) = ringing {
            // CANCELs a ring still going; a finished transaction just leaves the tables.
            self.detach_branch(now, d);
        }
        self.send_bye(now, id, Side::B);
        self.finish(now, id, Disposition::NoAnswer, code, "system");
    }
}
