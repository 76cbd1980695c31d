//! A PBX and its phones on a virtual clock, for tests of the call layer.
//!
//! [`Pbx`] drives an [`Endpoint`] the way the driver does and no other way: each input
//! (`handle_datagram`, `handle_timeout`, `handle_media_event`) is followed by draining
//! [`Endpoint::poll_output`], and what comes out is recorded: transmits go to the inbox of
//! the address they are sent to, media commands, CDRs and queue-log lines are kept in
//! order, and every media command is applied to a model of the media engine
//! ([`MediaModel`]), which checks the engine's rules and answers what is bridged to what. Time moves only when a test says so ([`Pbx::advance`]), firing each timer at its
//! own instant.
//!
//! A [`Phone`] is a SIP user agent at its own address: it builds requests and responses
//! with the crate's SIP builders (never `format!`-built text), answers digest challenges
//! with the client code the trunks use, keeps each of its dialogs as a
//! [`crate::sip::dialog::Dialog`], and offers its own SDP. It knows nothing of the endpoint's
//! insides: everything it learns comes over the wire.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::{Endpoint, Output};
use super::media_model::MediaModel;
use crate::cdr::Cdr;
use crate::config::{Config, EMBEDDED};
use crate::media::{MediaCommand, MediaEvent};
use crate::sdp::{Direction, Sdp};
use crate::sip::dialog::{contact_uri, route_set, uas_dialog, Dialog};
use crate::sip::header::Transport;
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::parse::{parse_datagram, Limits};
use crate::sip::transaction::{cancel_for, response_to, Peer};
use crate::sip::uri::Uri;

/// Where the PBX listens.
pub(crate) const PBX: &str = "127.0.0.1:5060";
/// The SIP domain of the shipped config.
pub(crate) const DOMAIN: &str = "switchboard.local";
/// The wall clock (Unix ms) at the harness's start.
pub(crate) const WALL0: u64 = 1_700_000_000_000;

fn pbx_peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: PBX.parse().expect("the PBX address"),
    }
}

/// The endpoint and everything it has put out.
pub(crate) struct Pbx {
    pub(crate) ep: Endpoint,
    pub(crate) t0: Instant,
    pub(crate) now: Instant,
    /// Messages sent to each address and not yet read by the phone there.
    inbox: HashMap<SocketAddr, VecDeque<Message>>,
    /// Every message sent, in order: when, and to whom.
    pub(crate) sent: Vec<(Instant, SocketAddr, Message)>,
    /// Media commands not yet taken by the test.
    media: Vec<MediaCommand>,
    /// What the media engine holds after every command so far.
    pub(crate) model: MediaModel,
    /// CDRs in the order the calls ended.
    pub(crate) cdrs: Vec<Cdr>,
    /// Each finished call's story, beside its record in `cdrs`.
    pub(crate) stories: Vec<Vec<crate::story::CallEvent>>,
    /// Queue-log lines.
    pub(crate) queue_log: Vec<String>,
    /// Changes to voicemail boxes.
    pub(crate) mailbox: Vec<crate::voicemail::MailboxWrite>,
    /// The line settings the endpoint last handed out to keep.
    pub(crate) lines_saved: Option<String>,
}

impl Pbx {
    /// The shipped configuration.
    pub(crate) fn new() -> Self {
        Self::with_config(EMBEDDED)
    }

    /// A configuration given as the file's text.
    pub(crate) fn with_config(text: &str) -> Self {
        let cfg = Config::from_str(text, "test").expect("the test's config is valid");
        let t0 = Instant::now();
        let mut ep = Endpoint::new(&cfg, t0, WALL0, 1, [9; 32]);
        ep.set_listeners(vec![(Transport::Udp, pbx_peer().addr)]);
        let mut pbx = Self {
            ep,
            t0,
            now: t0,
            inbox: HashMap::new(),
            sent: Vec::new(),
            media: Vec::new(),
            model: MediaModel::default(),
            cdrs: Vec::new(),
            stories: Vec::new(),
            queue_log: Vec::new(),
            mailbox: Vec::new(),
            lines_saved: None,
        };
        pbx.drain();
        pbx
    }

    /// Takes every output the endpoint has, as the driver does after each input.
    fn drain(&mut self) {
        while let Some(out) = self.ep.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let m = parse_datagram(t.bytes, &Limits::default())
                        .expect("everything the PBX sends parses");
                    self.sent.push((self.now, t.peer.addr, m.clone()));
                    self.inbox.entry(t.peer.addr).or_default().push_back(m);
                }
                Output::Media(m) => {
                    self.model.apply(&m);
                    self.media.push(m);
                }
                Output::Record(r) => {
                    // The row is the story's projection, whichever way it is read.
                    assert_eq!(r.events.first().map(|e| e.seq), Some(0), "{r:?}");
                    self.cdrs.push(r.cdr);
                    self.stories.push(r.events);
                }
                Output::QueueLog(l) => self.queue_log.push(l),
                Output::Mailbox(w) => self.mailbox.push(w),
                Output::CallbacksSaved(_) | Output::AgentsSaved(_) => {}
                Output::LinesSaved(json) => self.lines_saved = Some(json),
            }
        }
    }

    /// A message arrives from `from`, as bytes on the wire.
    pub(crate) fn deliver(&mut self, from: &Peer, msg: &Message) {
        self.ep
            .handle_datagram(self.now, msg.to_bytes(), from.clone());
        self.drain();
    }

    /// The relay reports something.
    pub(crate) fn media_event(&mut self, ev: MediaEvent) {
        self.ep.handle_media_event(self.now, ev);
        self.drain();
    }

    /// The party on our port `port` presses `keys`, as the engine reports RFC 4733
    /// events: only from a leg it was told to listen to.
    pub(crate) fn press(&mut self, port: u16, keys: &str) {
        for digit in keys.chars() {
            let leg = self
                .model
                .legs_on_port_key(port)
                .expect("a leg on that port");
            assert!(
                self.model.on_port(port).is_some_and(|l| l.keys.is_some()),
                "nobody listens to the keys on port {port}"
            );
            self.media_event(MediaEvent::Digit { leg, digit });
        }
    }

    /// Moves the clock `d` on, firing every timer due on the way at its own instant.
    /// The prompt playing on our port `port` ends (the engine reports it played), if
    /// one plays: its file.
    pub(crate) fn prompt_ends(&mut self, port: u16) -> Option<std::path::PathBuf> {
        let (leg, seq, path) = self.model.prompt_on(port)?;
        self.media_event(MediaEvent::PlayDone {
            leg,
            seq,
            played: true,
        });
        Some(path)
    }

    /// The last message with `method` (a request, or a response to one) sent to `addr`.
    pub(crate) fn last_sent(&self, addr: SocketAddr, method: Method) -> Option<Message> {
        self.sent
            .iter()
            .rev()
            .find(|(_, to, m)| *to == addr && m.method() == Some(method.clone()))
            .map(|(_, _, m)| m.clone())
    }

    /// Collects what the endpoint put out after a test called it directly (not over
    /// SIP), as the driver does after every input.
    pub(crate) fn settle(&mut self) {
        self.ep.handle_timeout(self.now);
        self.drain();
    }

    pub(crate) fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..100_000 {
            match self.ep.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.ep.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("timers keep firing without the clock moving");
    }

    /// Time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// The process is stopping: every call ends.
    pub(crate) fn shutdown(&mut self) {
        self.ep.shutdown(self.now);
        self.drain();
    }

    /// The media commands since the last call.
    pub(crate) fn take_media(&mut self) -> Vec<MediaCommand> {
        std::mem::take(&mut self.media)
    }

    /// Messages waiting for the phone at `addr`.
    fn take_for(&mut self, addr: SocketAddr) -> VecDeque<Message> {
        self.inbox.remove(&addr).unwrap_or_default()
    }

    /// Calls, legs and indexed dialogs still live (all 0 once every call is over).
    /// Live calls, legs and indexed dialogs. With no call left, no media may be either:
    /// no media leg open in the engine or held by the call layer, no bridge, every port
    /// back in the pool.
    pub(crate) fn live(&self) -> (usize, usize, usize) {
        let live = self.ep.calls.live();
        if live.0 == 0 {
            assert_eq!(
                self.model.open(),
                (0, 0),
                "media legs and bridges left open"
            );
            assert_eq!(self.ep.calls.media_live(), 0, "media legs left to a call");
            assert_eq!(
                self.ep.calls.invites_indexed(),
                0,
                "callers' INVITEs indexed"
            );
            assert_eq!(self.ep.callbacks_placed(), 0, "calls placed for callbacks");
        }
        live
    }

    /// `ctl calls` as it stands now.
    pub(crate) fn calls(&self) -> Vec<super::super::CallView> {
        self.ep.calls(self.now)
    }
}

/// One call as a phone sees it.
pub(crate) struct PhoneCall {
    /// The dialog, with our tag; the other's once it has answered.
    pub(crate) leg: Dialog,
    /// The INVITE that began it: the last one we sent (with credentials), or the one we
    /// received.
    invite: Message,
    /// The other side's last description.
    pub(crate) remote_sdp: Option<Sdp>,
    /// Our own description's version.
    sdp_version: u64,
    /// An offer we made in a re-INVITE, awaiting its answer.
    reinvite: Option<Message>,
}

/// A handle on one of a phone's calls: its Call-ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallRef(pub(crate) Bytes);

/// A SIP phone at its own address.
pub(crate) struct Phone {
    pub(crate) user: String,
    password: String,
    pub(crate) peer: Peer,
    /// The payload types it offers and accepts, in order (0 PCMU, 8 PCMA; 101 events).
    pub(crate) codecs: Vec<u8>,
    /// Its RTP port.
    pub(crate) rtp_port: u16,
    /// Headers it adds to every INVITE it sends (Privacy, say).
    pub(crate) invite_headers: Vec<(HeaderName, Bytes)>,
    count: u64,
    pending: VecDeque<Message>,
    calls: HashMap<CallRef, PhoneCall>,
}

impl Phone {
    /// Extension `user` of the shipped config (password `demo-USER-change-me`) at
    /// 127.0.0.1:`port`.
    pub(crate) fn new(user: &str, port: u16) -> Self {
        Self::at(
            user,
            &format!("demo-{user}-change-me"),
            &format!("127.0.0.1:{port}"),
        )
    }

    /// A phone with any credentials at any address.
    pub(crate) fn at(user: &str, password: &str, addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().expect("a phone address");
        Self {
            user: user.into(),
            password: password.into(),
            peer: Peer {
                transport: Transport::Udp,
                addr,
            },
            codecs: vec![0, 101],
            rtp_port: addr.port() + 30_000,
            invite_headers: Vec::new(),
            count: 0,
            pending: VecDeque::new(),
            calls: HashMap::new(),
        }
    }

    fn next(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    fn via(&mut self) -> String {
        let n = self.next();
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{}x{n};rport",
            self.peer.addr, self.user
        )
    }

    pub(crate) fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.peer.addr)
    }

    fn aor(&self) -> String {
        format!("<sip:{}@{DOMAIN}>", self.user)
    }

    /// Our description, in `dir`.
    pub(crate) fn sdp(&self, version: u64, dir: Direction) -> Bytes {
        let mut s = format!(
            "v=0\r\no=- 7 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP",
            self.rtp_port
        );
        for pt in &self.codecs {
            s.push_str(&format!(" {pt}"));
        }
        s.push_str("\r\n");
        for pt in &self.codecs {
            let name = match pt {
                0 => "PCMU/8000",
                8 => "PCMA/8000",
                18 => "G729/8000",
                _ => "telephone-event/8000",
            };
            s.push_str(&format!("a=rtpmap:{pt} {name}\r\n"));
        }
        let dir = match dir {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        };
        s.push_str(&format!("a={dir}\r\n"));
        Bytes::from(s)
    }

    fn with_sdp(m: &mut Message, body: Bytes) {
        m.push_header(HeaderName::ContentType, "application/sdp");
        m.body = body;
    }

    /// Sends a request or response to the PBX.
    fn send(&mut self, pbx: &mut Pbx, m: &Message) {
        pbx.deliver(&self.peer, m);
    }

    /// Everything the PBX has sent this phone since it last looked, oldest first; what it
    /// learns of its dialogs from them is kept.
    pub(crate) fn take(&mut self, pbx: &mut Pbx) -> Vec<Message> {
        self.fetch(pbx);
        self.pending.drain(..).collect()
    }

    fn fetch(&mut self, pbx: &mut Pbx) {
        for m in pbx.take_for(self.peer.addr) {
            self.learn(&m);
            self.pending.push_back(m);
        }
    }

    /// A response to our INVITE tells us the other's tag, target and description: a 2xx,
    /// or a provisional with a tag (an early dialog, RFC 3261 §12.1.2).
    fn learn(&mut self, m: &Message) {
        let Some(code) = m.status() else { return };
        if m.method() != Some(Method::Invite) {
            return;
        }
        let Some(c) = m
            .call_id()
            .ok()
            .and_then(|id| self.calls.get_mut(&CallRef(id.clone())))
        else {
            return;
        };
        if let Ok(sdp) = Sdp::parse(&m.body) {
            c.remote_sdp = Some(sdp);
        }
        let early =
            code.is_provisional() && m.to_hdr().ok().and_then(|t| t.tag().cloned()).is_some();
        if (code.is_success() || early) && c.reinvite.is_none() {
            c.leg.remote_hdr = m.header(&HeaderName::To).cloned().unwrap_or_default();
            c.leg.remote_tag = m.to_hdr().ok().and_then(|t| t.tag().cloned());
            if let Some(u) = contact_uri(m) {
                c.leg.target = u;
            }
            c.leg.routes = route_set(m, true);
        }
        if !code.is_provisional() {
            c.reinvite = None;
        }
    }

    /// The next message of the kind `want` accepts, leaving the others waiting.
    pub(crate) fn expect(
        &mut self,
        pbx: &mut Pbx,
        what: &str,
        want: impl Fn(&Message) -> bool,
    ) -> Message {
        self.fetch(pbx);
        let i = self.pending.iter().position(want).unwrap_or_else(|| {
            panic!(
                "{} expected {what}; has {:?}",
                self.user,
                self.pending.iter().map(summary).collect::<Vec<_>>()
            )
        });
        self.pending.remove(i).expect("found")
    }

    /// The next response with status `code` to `method`.
    pub(crate) fn expect_status(&mut self, pbx: &mut Pbx, method: Method, code: u16) -> Message {
        self.expect(pbx, &format!("{code} to {method}"), |m| {
            m.status().map(StatusCode::as_u16) == Some(code) && m.method() == Some(method.clone())
        })
    }

    /// The next request with `method`.
    pub(crate) fn expect_request(&mut self, pbx: &mut Pbx, method: Method) -> Message {
        self.expect(pbx, &format!("a {method}"), |m| {
            m.is_request() && m.method() == Some(method.clone())
        })
    }

    /// Registers, answering the challenge.
    pub(crate) fn register(&mut self, pbx: &mut Pbx) {
        let uri = Uri::sip(None, DOMAIN, None);
        let call_id = format!("reg-{}@{}", self.user, self.peer.addr);
        let mut auth: Option<String> = None;
        for cseq in 1..=2 {
            let mut m = Message::request(Method::Register, uri.clone());
            m.push_header(HeaderName::Via, self.via());
            m.push_header(HeaderName::MaxForwards, "70");
            m.push_header(
                HeaderName::From,
                format!("{};tag=r{}", self.aor(), self.user),
            );
            m.push_header(HeaderName::To, self.aor());
            m.push_header(HeaderName::CallId, call_id.clone());
            m.push_header(HeaderName::CSeq, format!("{cseq} REGISTER"));
            m.push_header(HeaderName::Contact, self.contact());
            m.push_header(HeaderName::Expires, "3600");
            if let Some(a) = &auth {
                m.push_header(HeaderName::Authorization, a.clone());
            }
            self.send(pbx, &m);
            let r = self.expect(pbx, "an answer to REGISTER", |m| {
                m.method() == Some(Method::Register)
            });
            match r.status().map(StatusCode::as_u16) {
                Some(200) => return,
                Some(401) if auth.is_none() => {
                    auth = Some(self.answer_challenge(
                        &r,
                        &HeaderName::WwwAuthenticate,
                        "REGISTER",
                        &format!("sip:{DOMAIN}"),
                    ));
                }
                other => panic!("{} could not register: {other:?}", self.user),
            }
        }
    }

    /// Subscribes to `event` (`dialog`, `message-summary`) of `target` (a line, a box)
    /// for 600 s, answering the challenge: the final status.
    pub(crate) fn subscribe(&mut self, pbx: &mut Pbx, target: &str, event: &str) -> u16 {
        let uri = Uri::sip(Some(target), DOMAIN, None);
        let call_id = format!("sub-{target}-{}@{}", self.user, self.peer.addr);
        let mut auth: Option<String> = None;
        for cseq in 1..=2 {
            let mut m = Message::request(Method::Subscribe, uri.clone());
            m.push_header(HeaderName::Via, self.via());
            m.push_header(HeaderName::MaxForwards, "70");
            m.push_header(
                HeaderName::From,
                format!("{};tag=s{}", self.aor(), self.user),
            );
            m.push_header(HeaderName::To, format!("<sip:{target}@{DOMAIN}>"));
            m.push_header(HeaderName::CallId, call_id.clone());
            m.push_header(HeaderName::CSeq, format!("{cseq} SUBSCRIBE"));
            m.push_header(HeaderName::Contact, self.contact());
            m.push_header(HeaderName::Event, event.to_string());
            m.push_header(HeaderName::Expires, "600");
            if let Some(a) = &auth {
                m.push_header(HeaderName::Authorization, a.clone());
            }
            self.send(pbx, &m);
            let r = self.expect(pbx, "an answer to SUBSCRIBE", |m| {
                m.method() == Some(Method::Subscribe) && m.status().is_some()
            });
            match r.status().map(StatusCode::as_u16) {
                Some(401) if auth.is_none() => {
                    auth = Some(self.answer_challenge(
                        &r,
                        &HeaderName::WwwAuthenticate,
                        "SUBSCRIBE",
                        &uri.to_string(),
                    ));
                }
                Some(code) => return code,
                None => unreachable!("a response"),
            }
        }
        panic!("{} challenged twice", self.user)
    }

    /// The next NOTIFY's body, the NOTIFY answered 200.
    pub(crate) fn notified(&mut self, pbx: &mut Pbx) -> String {
        let n = self.expect_request(pbx, Method::Notify);
        self.reply(pbx, &n, 200);
        String::from_utf8_lossy(&n.body).into_owned()
    }

    fn answer_challenge(&self, r: &Message, h: &HeaderName, method: &str, uri: &str) -> String {
        let chal = r.header(h).expect("a challenge");
        crate::sip::auth::client_authorization(
            chal,
            method,
            uri,
            &self.user,
            &self.password,
            "c0ffee",
            1,
        )
        .expect("a digest challenge")
    }

    /// Dials `number`: the INVITE, and again with credentials if challenged. What comes
    /// after the challenge (100, 180, 200 ...) waits in the phone's inbox.
    pub(crate) fn call(&mut self, pbx: &mut Pbx, number: &str) -> CallRef {
        let n = self.next();
        let call_id = CallRef(Bytes::from(format!("{}-{n}@{}", self.user, self.peer.addr)));
        let target = Uri::sip(Some(number), DOMAIN, None);
        let local_tag = Bytes::from(format!("t{}{n}", self.user));
        let from = Bytes::from(format!("{};tag={}", self.aor(), {
            String::from_utf8_lossy(&local_tag)
        }));
        let to = Bytes::from(format!("<sip:{number}@{DOMAIN}>"));
        let leg = Dialog {
            call_id: call_id.0.clone(),
            local_tag,
            local_hdr: from,
            remote_hdr: to,
            remote_tag: None,
            target: target.clone(),
            routes: Vec::new(),
            cseq: 1,
            peer: pbx_peer(),
            sdp_sent: None,
            sdp_version: 1,
        };
        let invite = self.invite_on(&leg, Method::Invite, None);
        self.calls.insert(
            call_id.clone(),
            PhoneCall {
                leg,
                invite: invite.clone(),
                remote_sdp: None,
                sdp_version: 1,
                reinvite: None,
            },
        );
        self.send(pbx, &invite);
        self.fetch(pbx);
        let challenge = self
            .pending
            .iter()
            .position(|m| m.status() == Some(StatusCode::PROXY_AUTH_REQUIRED));
        if let Some(i) = challenge {
            let chal = self.pending.remove(i).expect("found");
            // What answered the first INVITE (its 100) is done with.
            self.pending.retain(|m| {
                m.call_id().ok() != Some(&call_id.0) || m.cseq().is_ok_and(|c| c.seq != 1)
            });
            // The transaction's own ACK for a non-2xx final response.
            let mut ack = Message::request(Method::Ack, target.clone());
            for name in [
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
            ] {
                let v = chal.header(&name).expect("a 407's headers").clone();
                ack.push_header(name, v);
            }
            ack.push_header(HeaderName::CSeq, "1 ACK");
            ack.push_header(HeaderName::MaxForwards, "70");
            self.send(pbx, &ack);
            let auth = self.answer_challenge(
                &chal,
                &HeaderName::ProxyAuthenticate,
                "INVITE",
                &String::from_utf8_lossy(target.as_bytes()),
            );
            let c = self.calls.get_mut(&call_id).expect("just made");
            c.leg.cseq = 2;
            let leg = c.leg.clone();
            let invite = self.invite_on(&leg, Method::Invite, Some(auth));
            self.calls.get_mut(&call_id).expect("just made").invite = invite.clone();
            self.send(pbx, &invite);
        }
        call_id
    }

    /// A request on `leg` at its CSeq, with our offer for INVITEs.
    fn invite_on(&mut self, leg: &Dialog, method: Method, auth: Option<String>) -> Message {
        let mut m = self.request_on(leg, method.clone(), leg.cseq);
        m.push_header(HeaderName::Contact, self.contact());
        if let Some(a) = auth {
            m.push_header(HeaderName::ProxyAuthorization, a);
        }
        if method == Method::Invite {
            for (name, value) in &self.invite_headers {
                m.push_header(name.clone(), value.clone());
            }
            Self::with_sdp(&mut m, self.sdp(leg.sdp_version, Direction::SendRecv));
        }
        m
    }

    fn request_on(&mut self, leg: &Dialog, method: Method, cseq: u32) -> Message {
        let mut m = Message::request(method.clone(), leg.target.clone());
        m.push_header(HeaderName::Via, self.via());
        m.push_header(HeaderName::MaxForwards, "70");
        m.push_header(HeaderName::From, leg.local_hdr.clone());
        m.push_header(HeaderName::To, leg.remote_hdr.clone());
        m.push_header(HeaderName::CallId, leg.call_id.clone());
        m.push_header(HeaderName::CSeq, format!("{cseq} {method}"));
        for r in &leg.routes {
            m.push_header(HeaderName::Route, r.clone());
        }
        m
    }

    fn call_mut(&mut self, c: &CallRef) -> &mut PhoneCall {
        let user = self.user.clone();
        self.calls
            .get_mut(c)
            .unwrap_or_else(|| panic!("{user} has no call {c:?}"))
    }

    /// The call's state as the phone knows it.
    pub(crate) fn call_state(&self, c: &CallRef) -> &PhoneCall {
        &self.calls[c]
    }

    /// ACKs the 2xx to our INVITE on `c` (waiting in the inbox, and taken from it).
    pub(crate) fn ack(&mut self, pbx: &mut Pbx, c: &CallRef) {
        let ok = self.expect(pbx, "a 2xx to INVITE", |m| {
            m.status().is_some_and(StatusCode::is_success)
                && m.method() == Some(Method::Invite)
                && m.call_id().ok() == Some(&c.0)
        });
        self.ack_this(pbx, c, &ok);
    }

    /// ACKs `ok`, a 2xx to our INVITE or re-INVITE on `c`, already read.
    pub(crate) fn ack_this(&mut self, pbx: &mut Pbx, c: &CallRef, ok: &Message) {
        // Copies of it that came meanwhile are answered by this one ACK.
        self.pending.retain(|m| m.to_bytes() != ok.to_bytes());
        let seq = ok.cseq().expect("a CSeq").seq;
        let leg = self.call_mut(c).leg.clone();
        let ack = self.request_on(&leg, Method::Ack, seq);
        self.send(pbx, &ack);
    }

    /// An INVITE from the PBX, taken from the inbox: the phone now has that call.
    pub(crate) fn incoming(&mut self, pbx: &mut Pbx) -> CallRef {
        let inv = self.expect_request(pbx, Method::Invite);
        self.accept_invite(inv)
    }

    /// Takes `inv`, an INVITE already read from the inbox, as an incoming call.
    pub(crate) fn accept(&mut self, inv: Message) -> CallRef {
        self.accept_invite(inv)
    }

    fn accept_invite(&mut self, inv: Message) -> CallRef {
        let n = self.next();
        let id = CallRef(inv.call_id().expect("a Call-ID").clone());
        let mut leg = uas_dialog(&inv, &pbx_peer(), Bytes::from(format!("u{}{n}", self.user)));
        leg.peer = pbx_peer();
        self.calls.insert(
            id.clone(),
            PhoneCall {
                leg,
                remote_sdp: Sdp::parse(&inv.body).ok(),
                invite: inv,
                sdp_version: 1,
                reinvite: None,
            },
        );
        id
    }

    /// Answers the INVITE of an incoming call with `code` (18x and 2xx carry our Contact,
    /// 2xx our answer).
    pub(crate) fn respond(&mut self, pbx: &mut Pbx, c: &CallRef, code: u16) {
        self.respond_with(pbx, c, code, code >= 200, &[]);
    }

    /// Answers the INVITE of an incoming call with `code`, our SDP if `sdp`, and `headers`
    /// (an 18x sent reliably, say).
    pub(crate) fn respond_with(
        &mut self,
        pbx: &mut Pbx,
        c: &CallRef,
        code: u16,
        sdp: bool,
        headers: &[(HeaderName, &str)],
    ) {
        let (inv, tag, version) = {
            let call = self.call_mut(c);
            (
                call.invite.clone(),
                String::from_utf8_lossy(&call.leg.local_tag).into_owned(),
                call.sdp_version,
            )
        };
        let code = StatusCode::new(code).expect("a status code");
        let mut r = response_to(&inv, code, Some(&tag));
        if code.as_u16() > 100 && code.as_u16() < 300 {
            r.push_header(HeaderName::Contact, self.contact());
        }
        for (name, value) in headers {
            r.push_header(name.clone(), value.to_string());
        }
        if sdp {
            Self::with_sdp(&mut r, self.sdp(version, Direction::SendRecv));
        }
        self.send(pbx, &r);
    }

    /// Acknowledges `prov`, a reliable provisional to our INVITE on `c`, with a PRACK.
    pub(crate) fn prack(&mut self, pbx: &mut Pbx, c: &CallRef, prov: &Message) {
        let rseq = prov.header(&HeaderName::RSeq).expect("an RSeq").clone();
        let inv = self.call_state(c).invite.cseq().expect("a CSeq").seq;
        let mut m = self.in_dialog(c, Method::Prack);
        m.push_header(
            HeaderName::RAck,
            format!("{} {inv} INVITE", String::from_utf8_lossy(&rseq)),
        );
        self.send(pbx, &m);
    }

    /// Answers a request from the PBX (a BYE, a re-INVITE, a CANCEL ...) with `code`; a
    /// 2xx to an offer carries our answer in the direction RFC 3264 gives.
    pub(crate) fn reply(&mut self, pbx: &mut Pbx, req: &Message, code: u16) {
        let code = StatusCode::new(code).expect("a status code");
        let mut r = response_to(req, code, None);
        if code.is_success() && req.method() == Some(Method::Invite) {
            r.push_header(HeaderName::Contact, self.contact());
            if let Ok(offer) = Sdp::parse(&req.body) {
                let id = CallRef(req.call_id().expect("a Call-ID").clone());
                let version = {
                    let c = self.call_mut(&id);
                    c.remote_sdp = Some(offer.clone());
                    c.sdp_version += 1;
                    c.sdp_version
                };
                Self::with_sdp(&mut r, self.sdp(version, offer.direction().answer()));
            }
        }
        self.send(pbx, &r);
    }

    /// Hangs up an established call.
    pub(crate) fn bye(&mut self, pbx: &mut Pbx, c: &CallRef) {
        let m = self.in_dialog(c, Method::Bye);
        self.send(pbx, &m);
    }

    /// A new in-dialog request on `c`, at the next CSeq.
    pub(crate) fn in_dialog(&mut self, c: &CallRef, method: Method) -> Message {
        let leg = {
            let call = self.call_mut(c);
            call.leg.cseq += 1;
            call.leg.clone()
        };
        self.request_on(&leg, method, leg.cseq)
    }

    /// Cancels our INVITE on `c`.
    pub(crate) fn cancel(&mut self, pbx: &mut Pbx, c: &CallRef) {
        let inv = self.call_mut(c).invite.clone();
        let m = cancel_for(&inv).expect("an INVITE to cancel");
        self.send(pbx, &m);
    }

    /// A re-INVITE on `c` offering our description in `dir` (sendonly to hold,
    /// sendrecv to resume).
    pub(crate) fn reinvite(&mut self, pbx: &mut Pbx, c: &CallRef, dir: Direction) {
        let mut m = self.in_dialog(c, Method::Invite);
        m.push_header(HeaderName::Contact, self.contact());
        let version = {
            let call = self.call_mut(c);
            call.sdp_version += 1;
            call.sdp_version
        };
        Self::with_sdp(&mut m, self.sdp(version, dir));
        self.call_mut(c).reinvite = Some(m.clone());
        self.send(pbx, &m);
    }

    /// Puts the other party of `c` on hold.
    pub(crate) fn hold(&mut self, pbx: &mut Pbx, c: &CallRef) {
        self.reinvite(pbx, c, Direction::SendOnly);
    }

    /// Takes the other party of `c` off hold.
    pub(crate) fn resume(&mut self, pbx: &mut Pbx, c: &CallRef) {
        self.reinvite(pbx, c, Direction::SendRecv);
    }

    /// Asks the PBX to transfer the other party of `c` to `target`.
    pub(crate) fn refer(&mut self, pbx: &mut Pbx, c: &CallRef, target: &str) {
        let mut m = self.in_dialog(c, Method::Refer);
        m.push_header(HeaderName::Contact, self.contact());
        m.push_header(
            HeaderName::Other(Bytes::from_static(b"Refer-To")),
            format!("<sip:{target}@{DOMAIN}>"),
        );
        m.push_header(
            HeaderName::Other(Bytes::from_static(b"Referred-By")),
            self.aor(),
        );
        self.send(pbx, &m);
    }

    /// Asks the PBX, on `c`, to join the other party of `c` with the other party of
    /// `replaced` (an attended transfer): Refer-To is where `replaced`'s requests go,
    /// with a Replaces naming it, tags as this phone sees them.
    pub(crate) fn refer_replacing(&mut self, pbx: &mut Pbx, c: &CallRef, replaced: &CallRef) {
        let r = self.call_mut(replaced).leg.clone();
        let esc = |b: &Bytes| {
            String::from_utf8_lossy(b)
                .replace('%', "%25")
                .replace('@', "%40")
                .replace(';', "%3B")
                .replace('=', "%3D")
        };
        let remote = r.remote_tag.clone().unwrap_or_default();
        let replaces = format!(
            "{}%3Bto-tag%3D{}%3Bfrom-tag%3D{}",
            esc(&r.call_id),
            esc(&remote),
            esc(&r.local_tag)
        );
        let mut m = self.in_dialog(c, Method::Refer);
        m.push_header(HeaderName::Contact, self.contact());
        m.push_header(
            HeaderName::Other(Bytes::from_static(b"Refer-To")),
            format!("<{}?Replaces={replaces}>", r.target),
        );
        m.push_header(
            HeaderName::Other(Bytes::from_static(b"Referred-By")),
            self.aor(),
        );
        self.send(pbx, &m);
    }

    /// Forgets what is waiting in the inbox.
    pub(crate) fn clear(&mut self, pbx: &mut Pbx) {
        self.take(pbx);
    }
}

/// `by` hangs up its call `c`, and `other` answers the BYE switchboard sends it: then
/// nothing of any call is left (calls, legs, dialogs) and no phone is kept busy.
pub(crate) fn hang_up_all_clear(pbx: &mut Pbx, by: &mut Phone, c: &CallRef, other: &mut Phone) {
    by.bye(pbx, c);
    let bye = other.expect_request(pbx, Method::Bye);
    other.reply(pbx, &bye, 200);
    assert_eq!(pbx.live(), (0, 0, 0), "calls, legs, dialogs");
    assert!(
        pbx.ep.in_use.is_empty(),
        "phones left busy: {:?}",
        pbx.ep.in_use
    );
}

/// A message in a few words, for failure messages.
pub(crate) fn summary(m: &Message) -> String {
    match (m.status(), m.method()) {
        (Some(s), Some(meth)) => format!("{} ({meth})", s.as_u16()),
        (Some(s), None) => s.as_u16().to_string(),
        (None, Some(meth)) => meth.to_string(),
        (None, None) => "?".into(),
    }
}

/// A CDR as one line, its times in ms from the harness's start, so a flow's record can be
/// compared whole against the line it must give.
pub(crate) fn cdr_line(c: &Cdr) -> String {
    let rel = |ms: u64| ms.saturating_sub(WALL0);
    format!(
        "{} -> {} did={} trunk={} start={} answer={} end={} {} {} by {}",
        c.caller,
        c.callee,
        c.did.as_deref().unwrap_or("-"),
        c.trunk.as_deref().unwrap_or("-"),
        rel(c.start_ms),
        c.answer_ms.map_or("-".into(), |a| rel(a).to_string()),
        rel(c.end_ms),
        c.disposition.as_str(),
        c.sip_code,
        c.hangup_by.as_str(),
    )
}

/// Finished call `i`'s story, one line per event: the time from the harness's start in
/// ms, the event and what it names.
pub(crate) fn story_lines(pbx: &Pbx, i: usize) -> Vec<String> {
    use crate::story::{Event, Party};
    let party = |p: &Party| match p {
        Party::Caller => "caller",
        Party::Callee => "callee",
    };
    pbx.stories[i]
        .iter()
        .map(|e| {
            let what = match &e.event {
                Event::Started(s) => format!("started {} -> {}", s.caller, s.callee),
                Event::Dialled { number, trunk } => match trunk {
                    Some(t) => format!("dialled {number} via {t}"),
                    None => format!("dialled {number}"),
                },
                Event::DialFailed { status } => format!("dial_failed {status}"),
                Event::Queued { queue } => format!("queued {queue}"),
                Event::Offered { agent } => format!("offered {agent}"),
                Event::Answered => "answered".into(),
                Event::Bridged { party } => format!("bridged {party}"),
                Event::Held { party: p } => format!("held {}", party(p)),
                Event::Resumed { party: p } => format!("resumed {}", party(p)),
                Event::Transferred { by, to, attended } => format!(
                    "transferred to {to} by {}{}",
                    party(by),
                    if *attended { " (attended)" } else { "" }
                ),
                Event::Replaced { party: p } => format!("replaced {}", party(p)),
                Event::Parked { slot } => format!("parked {slot}"),
                Event::Forwarded { from, to, why } => {
                    format!("forwarded {} from {from} to {to}", why.as_str())
                }
                Event::PickedUp { at, by } => format!("picked up at {at} by {by}"),
                Event::Retrieved { slot, by } => format!("retrieved {slot} by {by}"),
                Event::Ended {
                    disposition,
                    sip_code,
                    by,
                } => format!(
                    "ended {} {sip_code} by {}",
                    disposition.as_str(),
                    by.as_str()
                ),
            };
            format!("{} {what}", e.at_ms.saturating_sub(WALL0))
        })
        .collect()
}
