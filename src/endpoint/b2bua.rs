//! The B2BUA: calls between two independent SIP legs, with switchboard in the media path.
//!
//! A call has the caller's leg A (we are its UAS) and, once routed, the callee's leg B (we
//! are its UAC): each with its own Call-ID, tags and CSeq space, so neither party sees the
//! other's dialog. Responses on B are relayed to A; BYE on either side ends the other;
//! CANCEL from A cancels B. SDP is rewritten so RTP flows through the relay ports this
//! module allocates ([`crate::media`]). Every call ends with exactly one CDR.
//!
//! This is part of the endpoint (it shares its transaction table and owner task); it holds
//! call state only and talks to the relay and the store through emitted commands.

use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::Endpoint;
use crate::cdr::{Cdr, Disposition};
use crate::config::User;
use crate::media::{MediaCommand, PortPool, SessionId};
use crate::sdp::Sdp;
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

impl Side {
    fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// One dialog as seen from our side.
#[derive(Clone, Debug)]
struct Leg {
    call_id: Bytes,
    local_tag: Bytes,
    /// Our From/To value, with our tag.
    local_hdr: Bytes,
    /// The peer's From/To value (with its tag once known).
    remote_hdr: Bytes,
    remote_tag: Option<Bytes>,
    /// Where in-dialog requests go (the peer's Contact).
    target: Uri,
    /// Route headers for in-dialog requests.
    routes: Vec<Bytes>,
    /// Our next CSeq on this leg.
    cseq: u32,
    /// Transport address for requests on this leg.
    peer: Peer,
    /// The SDP we last sent on this leg (repeated to a session refresh).
    sdp_sent: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// B is being called.
    Dialing,
    /// Answered on both legs.
    Answered,
    /// Over for the caller; waiting only for B's INVITE to settle.
    Zombie,
}

/// Timers a call can have running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CallTimer {
    /// Retransmit our 2xx to A until its ACK (RFC 3261 §13.3.1.4).
    OkRetransmit,
    /// Give up ringing B.
    RingTimeout,
}

struct Call {
    started: Instant,
    state: State,
    a: Leg,
    a_invite_key: TxKey,
    a_invite: Message,
    b: Option<Leg>,
    b_invite_key: Option<TxKey>,
    b_invite: Option<Message>,
    b_provisional: bool,
    cancel_pending: bool,
    session: Option<(SessionId, u16, u16)>,
    ok_bytes: Option<Bytes>,
    ok_interval: Duration,
    ok_until: Instant,
    ok_at: Option<Instant>,
    ring_at: Option<Instant>,
    b_ack: Option<Bytes>,
    cdr: Cdr,
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
    /// `dialing` or `answered`.
    pub state: String,
    /// Seconds since the INVITE.
    pub age_s: u64,
    /// Relay ports (caller side, callee side).
    pub rtp_ports: Option<(u16, u16)>,
}

/// All calls, and what they emit.
pub(super) struct Calls {
    next_id: u64,
    calls: HashMap<u64, Call>,
    by_dialog: HashMap<(Bytes, Bytes), (u64, Side)>,
    by_client_tx: HashMap<TxKey, u64>,
    by_a_invite: HashMap<TxKey, u64>,
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
            timers: BinaryHeap::new(),
            ports: PortPool::new(rtp.0, rtp.1),
            media_out: VecDeque::new(),
            cdrs: VecDeque::new(),
            ring_timeout,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state != State::Zombie)
            .count()
    }

    pub(super) fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, kind))) = self.timers.peek().copied() {
            let live = self.calls.get(&id).is_some_and(|c| match kind {
                CallTimer::OkRetransmit => c.ok_at == Some(at),
                CallTimer::RingTimeout => c.ring_at == Some(at),
            });
            if live {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn arm(&mut self, id: u64, kind: CallTimer, at: Instant) {
        if let Some(c) = self.calls.get_mut(&id) {
            match kind {
                CallTimer::OkRetransmit => c.ok_at = Some(at),
                CallTimer::RingTimeout => c.ring_at = Some(at),
            }
            self.timers.push(Reverse((at, id, kind)));
        }
    }

    pub(super) fn views(&self, now: Instant) -> Vec<CallView> {
        let mut v: Vec<CallView> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state != State::Zombie)
            .map(|(id, c)| CallView {
                id: *id,
                caller: c.cdr.caller.clone(),
                callee: c.cdr.callee.clone(),
                state: match c.state {
                    State::Dialing => "dialing",
                    State::Answered => "answered",
                    State::Zombie => "ending",
                }
                .into(),
                age_s: now.saturating_duration_since(c.started).as_secs(),
                rtp_ports: c.session.map(|(_, a, b)| (a, b)),
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

/// Appends `;tag=` to a From/To value.
fn with_tag(v: &Bytes, tag: &Bytes) -> Bytes {
    let mut out = v.to_vec();
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(tag);
    Bytes::from(out)
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

    fn contact_value(&self, peer: &Peer) -> Bytes {
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

    /// A new INVITE (no To tag): authenticate, route, and start the call.
    pub(super) fn on_invite(&mut self, now: Instant, key: TxKey, msg: Message, peer: Peer) {
        let Some(user) = self.authenticate(now, &key, &msg, &peer, super::AuthKind::Proxy) else {
            return;
        };
        let mf = msg
            .header(&HeaderName::MaxForwards)
            .and_then(|v| header::parse_max_forwards(v).ok())
            .unwrap_or(70);
        if mf == 0 {
            self.reply(now, &key, &msg, StatusCode::TOO_MANY_HOPS, vec![]);
            return;
        }
        let offer = match Sdp::parse(&msg.body) {
            Ok(s) if s.audio().is_some() => s,
            // No offer (a late-offer INVITE) or an unreadable one.
            _ => {
                let warn =
                    Bytes::from_static(b"399 switchboard \"INVITE needs an SDP offer with audio\"");
                self.reply(
                    now,
                    &key,
                    &msg,
                    StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST),
                    vec![(HeaderName::Other(Bytes::from_static(b"Warning")), warn)],
                );
                return;
            }
        };
        let callee = msg
            .request_line()
            .and_then(|r| r.uri.user_decoded())
            .unwrap_or_default();
        let id = self.calls.next_id;
        self.calls.next_id += 1;
        let local_tag = Bytes::from(self.tag());
        let to = msg.header(&HeaderName::To).cloned().unwrap_or_default();
        let a = Leg {
            call_id: msg.call_id().cloned().unwrap_or_default(),
            local_hdr: with_tag(&to, &local_tag),
            local_tag: local_tag.clone(),
            remote_hdr: msg.header(&HeaderName::From).cloned().unwrap_or_default(),
            remote_tag: msg.from_hdr().ok().and_then(|f| f.tag().cloned()),
            target: contact_uri(&msg)
                .unwrap_or_else(|| Uri::sip(None, &peer.addr.to_string(), None)),
            routes: msg
                .headers_named(&HeaderName::RecordRoute)
                .cloned()
                .collect(),
            cseq: 1,
            peer: peer.clone(),
            sdp_sent: None,
        };
        let cdr = Cdr {
            call: id,
            sip_call_id: String::from_utf8_lossy(&a.call_id).into_owned(),
            caller: user.extension.clone(),
            callee: callee.clone(),
            did: None,
            trunk: None,
            start_ms: self.unix_ms(now),
            answer_ms: None,
            end_ms: 0,
            disposition: Disposition::Failed,
            sip_code: 0,
            hangup_by: "system".into(),
        };
        let span = tracing::info_span!("call", id, caller = %user.extension, %callee);
        let _g = span.enter();
        self.calls
            .by_dialog
            .insert((a.call_id.clone(), local_tag), (id, Side::A));
        self.calls.by_a_invite.insert(key.clone(), id);
        self.calls.calls.insert(
            id,
            Call {
                started: now,
                state: State::Dialing,
                a,
                a_invite_key: key,
                a_invite: msg,
                b: None,
                b_invite_key: None,
                b_invite: None,
                b_provisional: false,
                cancel_pending: false,
                session: None,
                ok_bytes: None,
                ok_interval: self.cfg_t1,
                ok_until: now,
                ok_at: None,
                ring_at: None,
                b_ack: None,
                cdr,
            },
        );
        tracing::info!("call started");
        // Until the dialplan lands: 600 is the echo test; an extension number rings it.
        if callee == "600" {
            self.start_echo(now, id, &offer);
        } else if self.users.contains_key(&callee) {
            self.dial_extension(now, id, &user, &callee, &offer, mf);
        } else {
            self.fail_call(now, id, StatusCode::NOT_FOUND, Disposition::Unavailable);
        }
    }

    fn take_ports(&mut self, one: bool) -> Option<(u16, u16)> {
        let a = self.calls.ports.take()?;
        if one {
            return Some((a, 0));
        }
        match self.calls.ports.take() {
            Some(b) => Some((a, b)),
            None => {
                self.calls.ports.give(a);
                None
            }
        }
    }

    fn start_echo(&mut self, now: Instant, id: u64, offer: &Sdp) {
        let Some((pa, _)) = self.take_ports(true) else {
            self.fail_call(
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                Disposition::Failed,
            );
            return;
        };
        let peer = self.calls.calls[&id].a.peer.clone();
        let answer = match offer.answer_for(self.media_ip(&peer), pa, id) {
            Ok(a) => a,
            Err(_) => {
                self.calls.ports.give(pa);
                self.fail_call(
                    now,
                    id,
                    StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST),
                    Disposition::Failed,
                );
                return;
            }
        };
        let sid = SessionId(id);
        self.calls.media_out.push_back(MediaCommand::Echo {
            id: sid,
            a_port: pa,
            a_remote: offer.audio_target(),
        });
        let body = Bytes::from(answer.to_bytes());
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.session = Some((sid, pa, 0));
            c.a.sdp_sent = Some(body.clone());
        }
        self.answer_a(now, id, body);
    }

    /// Sends 200 to A and starts retransmitting it until A's ACK.
    fn answer_a(&mut self, now: Instant, id: u64, body: Bytes) {
        let Some(bytes) = self.respond_a(now, id, StatusCode::OK, Some(body)) else {
            return;
        };
        let unix = self.unix_ms(now);
        let t1 = self.cfg_t1;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.state = State::Answered;
            c.cdr.answer_ms = Some(unix);
            c.ok_bytes = Some(bytes);
            c.ok_interval = t1;
            c.ok_until = now + t1 * 64;
        }
        self.calls.arm(id, CallTimer::OkRetransmit, now + t1);
        tracing::info!(call = id, "answered");
    }

    fn dial_extension(
        &mut self,
        now: Instant,
        id: u64,
        caller: &User,
        callee: &str,
        offer: &Sdp,
        mf: u8,
    ) {
        let aor = format!("sip:{callee}@{}", self.domain);
        let Some(binding) = self
            .registrar
            .lookup(now, &aor)
            .into_iter()
            .max_by_key(|b| b.expires_at)
            .cloned()
        else {
            self.fail_call(now, id, StatusCode::NOT_FOUND, Disposition::Unavailable);
            return;
        };
        let Some((pa, pb)) = self.take_ports(false) else {
            tracing::warn!("RTP port range exhausted");
            self.fail_call(
                now,
                id,
                StatusCode::SERVICE_UNAVAILABLE,
                Disposition::Failed,
            );
            return;
        };
        let peer = binding.source.clone();
        let offer_b = match offer.relayed(self.media_ip(&peer), pb, id, 1) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(error = %e, "offer refused");
                self.calls.ports.give(pa);
                self.calls.ports.give(pb);
                self.fail_call(
                    now,
                    id,
                    StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST),
                    Disposition::Failed,
                );
                return;
            }
        };
        let sid = SessionId(id);
        let a_remote = offer.audio_target();
        self.calls.media_out.push_back(MediaCommand::Open {
            id: sid,
            a_port: pa,
            b_port: pb,
            a_remote,
        });
        let local = self.local_for(&peer);
        let b_tag = Bytes::from(self.tag());
        let call_id = Bytes::from(format!("{}@{}", self.tag(), self.domain));
        let display = caller
            .name
            .as_deref()
            .unwrap_or(&caller.extension)
            .replace('"', "");
        let from = Bytes::from(format!(
            "\"{display}\" <sip:{}@{}>",
            caller.extension, self.domain
        ));
        let to = Bytes::from(format!("<sip:{callee}@{}>", self.domain));
        let branch = new_branch(self.rng_u64());
        let mut inv = Message::request(Method::Invite, binding.uri.clone());
        inv.push_header(
            HeaderName::Via,
            Bytes::from(format!(
                "SIP/2.0/{} {local};branch={branch};rport",
                peer.transport.as_str()
            )),
        );
        inv.push_header(
            HeaderName::MaxForwards,
            Bytes::from((mf - 1).min(70).to_string()),
        );
        inv.push_header(HeaderName::From, with_tag(&from, &b_tag));
        inv.push_header(HeaderName::To, to.clone());
        inv.push_header(HeaderName::CallId, call_id.clone());
        inv.push_header(HeaderName::CSeq, Bytes::from_static(b"1 INVITE"));
        inv.push_header(HeaderName::Contact, self.contact_value(&peer));
        inv.push_header(
            HeaderName::Allow,
            Bytes::from_static(super::ALLOW.as_bytes()),
        );
        inv.push_header(HeaderName::UserAgent, self.server_name.clone());
        inv.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        let body = Bytes::from(offer_b.to_bytes());
        inv.body = body.clone();
        let key = match self.tx.send_request(now, inv.clone(), peer.clone()) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not send INVITE to callee");
                self.calls
                    .media_out
                    .push_back(MediaCommand::Close { id: sid });
                self.calls.ports.give(pa);
                self.calls.ports.give(pb);
                self.fail_call(now, id, StatusCode::SERVER_ERROR, Disposition::Failed);
                return;
            }
        };
        self.calls.by_client_tx.insert(key.clone(), id);
        self.calls
            .by_dialog
            .insert((call_id.clone(), b_tag.clone()), (id, Side::B));
        let ring = self.calls.ring_timeout;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.session = Some((sid, pa, pb));
            c.b = Some(Leg {
                call_id,
                local_hdr: with_tag(&from, &b_tag),
                local_tag: b_tag,
                remote_hdr: to,
                remote_tag: None,
                target: binding.uri,
                routes: Vec::new(),
                cseq: 1,
                peer,
                sdp_sent: Some(body),
            });
            c.b_invite_key = Some(key);
            c.b_invite = Some(inv);
        }
        self.calls.arm(id, CallTimer::RingTimeout, now + ring);
    }

    fn rng_u64(&mut self) -> u64 {
        use rand::Rng;
        self.rng.random()
    }

    /// Ends a call that was never answered: final response to A, CDR, media.
    fn fail_call(&mut self, now: Instant, id: u64, code: StatusCode, disp: Disposition) {
        self.respond_a(now, id, code, None);
        self.finish(now, id, disp, code.as_u16(), "system");
    }

    /// Writes the CDR and frees media; the call lingers as a zombie while B's INVITE is
    /// still pending, so a late answer can be ACKed and hung up.
    fn finish(&mut self, now: Instant, id: u64, disp: Disposition, code: u16, by: &str) {
        let unix = self.unix_ms(now);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.state == State::Zombie {
            return;
        }
        c.cdr.end_ms = unix;
        c.cdr.disposition = disp;
        c.cdr.sip_code = code;
        c.cdr.hangup_by = by.to_string();
        c.ok_at = None;
        c.ring_at = None;
        let cdr = c.cdr.clone();
        let session = c.session.take();
        let b_pending = c
            .b_invite_key
            .as_ref()
            .is_some_and(|k| self.tx.request_of(k).is_some())
            && c.b_ack.is_none()
            && disp != Disposition::Answered;
        c.state = State::Zombie;
        tracing::info!(call = id, disposition = disp.as_str(), code, "call ended");
        self.calls.cdrs.push_back(cdr);
        if let Some((sid, pa, pb)) = session {
            self.calls
                .media_out
                .push_back(MediaCommand::Close { id: sid });
            self.calls.ports.give(pa);
            if pb != 0 {
                self.calls.ports.give(pb);
            }
        }
        if !b_pending {
            self.remove_call(id);
        }
    }

    fn remove_call(&mut self, id: u64) {
        let Some(c) = self.calls.calls.remove(&id) else {
            return;
        };
        self.calls
            .by_dialog
            .remove(&(c.a.call_id.clone(), c.a.local_tag.clone()));
        if let Some(b) = &c.b {
            self.calls
                .by_dialog
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        self.calls.by_a_invite.remove(&c.a_invite_key);
        if let Some(k) = &c.b_invite_key {
            self.calls.by_client_tx.remove(k);
        }
    }

    /// A response on one of our client transactions.
    pub(super) fn on_call_response(&mut self, now: Instant, key: &TxKey, msg: Message) -> bool {
        let Some(&id) = self.calls.by_client_tx.get(key) else {
            return false;
        };
        if key.method != Method::Invite {
            // Responses to our BYE/CANCEL need nothing more.
            return true;
        }
        let Some(code) = msg.status() else {
            return true;
        };
        let state = self.calls.calls.get(&id).map(|c| c.state);
        match state {
            None => {}
            Some(State::Zombie) => {
                if code.is_provisional() && code != StatusCode::TRYING {
                    self.send_pending_cancel(now, id);
                } else if code.is_success() {
                    if let Some(peer) = self
                        .calls
                        .calls
                        .get(&id)
                        .and_then(|c| c.b.as_ref())
                        .map(|b| b.peer.clone())
                    {
                        self.orphan_2xx(now, &msg, peer);
                    }
                    self.remove_call(id);
                } else if !code.is_provisional() {
                    self.remove_call(id);
                }
            }
            // A retransmitted 2xx: our ACK was lost, so send it again.
            Some(State::Answered) if code.is_success() => {
                if let Some((ack, peer)) = self
                    .calls
                    .calls
                    .get(&id)
                    .and_then(|c| Some((c.b_ack.clone()?, c.b.as_ref()?.peer.clone())))
                {
                    self.out.push_back(Transmit { peer, bytes: ack });
                }
            }
            Some(State::Answered) => {}
            Some(State::Dialing) => {
                if code == StatusCode::TRYING {
                    // Nothing to relay: we sent our own 100 to the caller already.
                } else if code.is_provisional() {
                    self.b_provisional(now, id, code, &msg);
                } else if code.is_success() {
                    self.b_answered(now, id, &msg);
                } else {
                    let (to_a, disp) = match code.as_u16() {
                        486 | 600 => (code, Disposition::Busy),
                        408 | 480 => (StatusCode::new(480).unwrap_or(code), Disposition::NoAnswer),
                        404 | 604 => (code, Disposition::Unavailable),
                        487 => (code, Disposition::Cancelled),
                        // The callee's auth, redirects and odd codes are not the caller's business.
                        300..=399 | 401 | 407 => {
                            (StatusCode::new(480).unwrap_or(code), Disposition::Failed)
                        }
                        _ => (code, Disposition::Failed),
                    };
                    if let Some(c) = self.calls.calls.get_mut(&id) {
                        c.b_invite_key = None;
                    }
                    self.calls.by_client_tx.remove(key);
                    self.fail_call(now, id, to_a, disp);
                }
            }
        }
        true
    }

    fn b_provisional(&mut self, now: Instant, id: u64, code: StatusCode, msg: &Message) {
        let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        let mut early = None;
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.b_provisional = true;
            if let (Some(b), Some(t)) = (c.b.as_mut(), tag) {
                if b.remote_tag.is_none() {
                    b.remote_hdr = with_tag(&b.remote_hdr, &t);
                    b.remote_tag = Some(t);
                }
            }
            if c.cancel_pending {
                self.send_pending_cancel(now, id);
                return;
            }
        }
        // Early media: relay 183's SDP, rewritten to our A-side port.
        if let Ok(sdp) = Sdp::parse(&msg.body) {
            if let Some((sid, pa, _)) = self.calls.calls.get(&id).and_then(|c| c.session) {
                if let Some(addr) = sdp.audio_target() {
                    self.calls
                        .media_out
                        .push_back(MediaCommand::SetRemoteB { id: sid, addr });
                }
                let peer = self.calls.calls[&id].a.peer.clone();
                if let Ok(r) = sdp.relayed(self.media_ip(&peer), pa, id, 1) {
                    early = Some(Bytes::from(r.to_bytes()));
                }
            }
        }
        let relay = if early.is_some() {
            StatusCode::new(183).unwrap_or(code)
        } else {
            StatusCode::RINGING
        };
        if let (Some(body), Some(c)) = (&early, self.calls.calls.get_mut(&id)) {
            c.a.sdp_sent = Some(body.clone());
        }
        self.respond_a(now, id, relay, early);
    }

    fn b_answered(&mut self, now: Instant, id: u64, msg: &Message) {
        // ACK first (RFC 3261 §13.2.2.4), whatever we do next.
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.ring_at = None;
        let Some(b) = c.b.as_mut() else { return };
        if let Some(t) = msg.to_hdr().ok().and_then(|t| t.tag().cloned()) {
            if b.remote_tag.as_ref() != Some(&t) {
                b.remote_hdr = msg.header(&HeaderName::To).cloned().unwrap_or_default();
                b.remote_tag = Some(t);
            }
        }
        if let Some(u) = contact_uri(msg) {
            b.target = u;
        }
        b.routes = msg
            .headers_named(&HeaderName::RecordRoute)
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let ack = {
            let mut ack = Message::request(Method::Ack, b.target.clone());
            let local = self
                .listeners
                .iter()
                .find(|(t, a)| *t == b.peer.transport && a.is_ipv4() == b.peer.addr.is_ipv4())
                .map(|(_, a)| *a);
            let via_host = local.map_or_else(|| "0.0.0.0:5060".to_string(), |a| a.to_string());
            ack.push_header(
                HeaderName::Via,
                Bytes::from(format!(
                    "SIP/2.0/{} {via_host};branch={};rport",
                    b.peer.transport.as_str(),
                    new_branch({
                        use rand::Rng;
                        self.rng.random::<u64>()
                    })
                )),
            );
            ack.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
            ack.push_header(HeaderName::From, b.local_hdr.clone());
            ack.push_header(HeaderName::To, b.remote_hdr.clone());
            ack.push_header(HeaderName::CallId, b.call_id.clone());
            ack.push_header(HeaderName::CSeq, Bytes::from_static(b"1 ACK"));
            for r in &b.routes {
                ack.push_header(HeaderName::Route, r.clone());
            }
            ack.to_bytes()
        };
        let peer = b.peer.clone();
        c.b_ack = Some(ack.clone());
        self.out.push_back(Transmit {
            peer: peer.clone(),
            bytes: ack,
        });
        let answer = Sdp::parse(&msg.body).ok();
        let target = answer.as_ref().and_then(Sdp::audio_target);
        let Some((sid, pa, _)) = c.session else {
            return;
        };
        let a_peer = c.a.peer.clone();
        let a_body = answer
            .and_then(|s| s.relayed(self.media_ip(&a_peer), pa, id, 1).ok())
            .map(|s| Bytes::from(s.to_bytes()));
        match (target, a_body) {
            (Some(addr), Some(body)) => {
                self.calls
                    .media_out
                    .push_back(MediaCommand::SetRemoteB { id: sid, addr });
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.a.sdp_sent = Some(body.clone());
                }
                self.answer_a(now, id, body);
            }
            _ => {
                tracing::info!(call = id, "callee answered with unusable SDP");
                self.send_bye(now, id, Side::B);
                self.fail_call(
                    now,
                    id,
                    StatusCode::new(488).unwrap_or(StatusCode::BAD_REQUEST),
                    Disposition::Failed,
                );
            }
        }
    }

    /// ACK and BYE for a 2xx that arrives after the caller gave up (it cancelled, or the
    /// ring timer fired, while the callee was answering): the callee must not be left in
    /// a call nobody hears.
    fn orphan_2xx(&mut self, now: Instant, resp: &Message, peer: Peer) {
        let (Ok(cid), Some(target)) = (resp.call_id(), contact_uri(resp)) else {
            return;
        };
        let local = self.local_for(&peer);
        for (method, cseq) in [(Method::Ack, "1 ACK"), (Method::Bye, "2 BYE")] {
            let mut m = Message::request(method.clone(), target.clone());
            m.push_header(
                HeaderName::Via,
                Bytes::from(format!(
                    "SIP/2.0/{} {local};branch={};rport",
                    peer.transport.as_str(),
                    new_branch(self.rng_u64())
                )),
            );
            m.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
            m.push_header(
                HeaderName::From,
                resp.header(&HeaderName::From).cloned().unwrap_or_default(),
            );
            m.push_header(
                HeaderName::To,
                resp.header(&HeaderName::To).cloned().unwrap_or_default(),
            );
            m.push_header(HeaderName::CallId, cid.clone());
            m.push_header(HeaderName::CSeq, Bytes::from_static(cseq.as_bytes()));
            if method == Method::Ack {
                self.out.push_back(Transmit {
                    peer: peer.clone(),
                    bytes: m.to_bytes(),
                });
            } else if let Err(e) = self.tx.send_request(now, m, peer.clone()) {
                tracing::debug!(error = %e, "BYE for a late answer not sent");
            }
        }
    }

    fn send_pending_cancel(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let (Some(inv), Some(b)) = (c.b_invite.as_ref(), c.b.as_ref()) else {
            return;
        };
        if !c.b_provisional {
            c.cancel_pending = true;
            return;
        }
        c.cancel_pending = false;
        let peer = b.peer.clone();
        if let Some(cancel) = cancel_for(inv) {
            match self.tx.send_request(now, cancel, peer) {
                Ok(k) => {
                    self.calls.by_client_tx.insert(k, id);
                }
                Err(e) => tracing::debug!(error = %e, "CANCEL not sent"),
            }
        }
    }

    /// The caller's CANCEL matched its INVITE: the endpoint already sent 200 and 487.
    pub(super) fn on_caller_cancel(&mut self, now: Instant, invite_key: &TxKey) {
        let Some(&id) = self.calls.by_a_invite.get(invite_key) else {
            return;
        };
        self.send_pending_cancel(now, id);
        self.finish(now, id, Disposition::Cancelled, 487, "caller");
    }

    /// Sends BYE on `side` of call `id`.
    fn send_bye(&mut self, now: Instant, id: u64, side: Side) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let leg = match side {
            Side::A => Some(&mut c.a),
            Side::B => c.b.as_mut(),
        };
        let Some(leg) = leg else { return };
        leg.cseq += 1;
        let mut bye = Message::request(Method::Bye, leg.target.clone());
        let peer = leg.peer.clone();
        let (local_hdr, remote_hdr, call_id, cseq, routes) = (
            leg.local_hdr.clone(),
            leg.remote_hdr.clone(),
            leg.call_id.clone(),
            leg.cseq,
            leg.routes.clone(),
        );
        let local = self.local_for(&peer);
        bye.push_header(
            HeaderName::Via,
            Bytes::from(format!(
                "SIP/2.0/{} {local};branch={};rport",
                peer.transport.as_str(),
                new_branch(self.rng_u64())
            )),
        );
        bye.push_header(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        // On leg A we are the UAS: our From is the A-leg To, and vice versa.
        bye.push_header(HeaderName::From, local_hdr);
        bye.push_header(HeaderName::To, remote_hdr);
        bye.push_header(HeaderName::CallId, call_id);
        bye.push_header(HeaderName::CSeq, Bytes::from(format!("{cseq} BYE")));
        for r in routes {
            bye.push_header(HeaderName::Route, r);
        }
        bye.push_header(HeaderName::UserAgent, self.server_name.clone());
        match self.tx.send_request(now, bye, peer) {
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
                let state = self.calls.calls.get(&id).map(|c| c.state);
                if state == Some(State::Answered) {
                    self.send_bye(now, id, side.other());
                    let by = if side == Side::A { "caller" } else { "callee" };
                    self.finish(now, id, Disposition::Answered, 200, by);
                    self.remove_call(id);
                }
            }
            Some(Method::Invite) | Some(Method::Update) => {
                // Session refresh or hold: answered with the description already agreed on
                // this leg (relaying hold to the other party is the next step).
                let sdp = self.calls.calls.get(&id).and_then(|c| match side {
                    Side::A => c.a.sdp_sent.clone(),
                    Side::B => c.b.as_ref().and_then(|b| b.sdp_sent.clone()),
                });
                let extra = vec![(
                    HeaderName::ContentType,
                    Bytes::from_static(b"application/sdp"),
                )];
                self.reply_with_body(
                    now,
                    key,
                    msg,
                    StatusCode::OK,
                    extra,
                    sdp.unwrap_or_default(),
                );
            }
            _ => self.reply(now, key, msg, StatusCode::OK, vec![]),
        }
        true
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

    /// Our INVITE to B got no response at all (Timer B).
    pub(super) fn on_call_tx_timeout(&mut self, now: Instant, key: &TxKey) {
        let Some(&id) = self.calls.by_client_tx.get(key) else {
            return;
        };
        if key.method != Method::Invite {
            return;
        }
        self.calls.by_client_tx.remove(key);
        match self.calls.calls.get(&id).map(|c| c.state) {
            Some(State::Dialing) => {
                if let Some(c) = self.calls.calls.get_mut(&id) {
                    c.b_invite_key = None;
                }
                self.fail_call(
                    now,
                    id,
                    StatusCode::new(480).unwrap_or(StatusCode::REQUEST_TIMEOUT),
                    Disposition::NoAnswer,
                );
            }
            Some(State::Zombie) => self.remove_call(id),
            _ => {}
        }
    }

    /// A client transaction ended: forget it; a zombie call whose INVITE it was is done.
    pub(super) fn calls_forget_tx(&mut self, key: &TxKey) {
        let Some(id) = self.calls.by_client_tx.remove(key) else {
            return;
        };
        if key.method != Method::Invite {
            return;
        }
        let zombie = match self.calls.calls.get_mut(&id) {
            Some(c) => {
                c.b_invite_key = None;
                c.state == State::Zombie
            }
            None => false,
        };
        if zombie {
            self.remove_call(id);
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
                        self.remove_call(id);
                        continue;
                    }
                    let peer = c.a.peer.clone();
                    c.ok_interval = (c.ok_interval * 2).min(self.cfg_t2);
                    let next = now + c.ok_interval;
                    self.out.push_back(Transmit { peer, bytes });
                    self.calls.arm(id, CallTimer::OkRetransmit, next);
                }
                CallTimer::RingTimeout if c.ring_at == Some(at) => {
                    c.ring_at = None;
                    if c.state == State::Dialing {
                        tracing::info!(call = id, "no answer");
                        self.send_pending_cancel(now, id);
                        self.fail_call(
                            now,
                            id,
                            StatusCode::new(480).unwrap_or(StatusCode::REQUEST_TIMEOUT),
                            Disposition::NoAnswer,
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
