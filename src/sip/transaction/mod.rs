//! RFC 3261 §17 transactions (with the RFC 6026 Accepted states), sans-IO.
//!
//! [`Transactions`] owns every client and server transaction of one SIP endpoint. It is fed
//! with [`Transactions::handle_incoming`] (a parsed message and where it came from),
//! [`Transactions::send_request`] and [`Transactions::respond`] (from the transaction user),
//! and [`Transactions::handle_timeout`]. After any of those, drain
//! [`Transactions::poll_transmit`] (what to put on the wire) and
//! [`Transactions::poll_event`] (what the transaction user must see) until they return
//! `None`, then re-arm the driver's single timer from [`Transactions::poll_timeout`].
//!
//! It never reads a clock, opens a socket or spawns a task: `now` is always an argument, so
//! a test can run a 32-second Timer B in microseconds. It owns transaction state only;
//! dialogs, registrations and calls live above it and must not reach into it.
//!
//! ```text
//!  client INVITE (17.1.1 + RFC 6026)        server INVITE (17.2.1 + RFC 6026)
//!  Calling --1xx--> Proceeding              Proceeding --2xx--> Accepted --L--> gone
//!     |  \--2xx--> Accepted --M--> gone        |  \--300-699--> Completed --ACK--> Confirmed
//!     \--300-699 (send ACK)--> Completed       |                    |  H: no ACK      | I
//!        A: retransmit, B: give up  --D--> gone                    gone             gone
//!
//!  client non-INVITE (17.1.2)               server non-INVITE (17.2.2)
//!  Trying --1xx--> Proceeding               Trying --1xx--> Proceeding
//!     \--final--> Completed --K--> gone        \--final--> Completed --J--> gone
//!     E: retransmit, F: give up
//! ```

mod build;
mod timer;

pub use build::{cancel_for, new_branch, response_to};
pub use timer::TimerConfig;

use build::ack_for;

use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

use super::header::Transport;
use super::msg::{HeaderName, Message, Method, StatusCode};

/// The magic cookie that marks an RFC 3261 branch.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Where a message came from or goes to. For connection-oriented transports the driver
/// maps the address to its connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport the message travels on.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
}

/// Identifies a transaction (RFC 3261 §17.1.3 and §17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxKey {
    /// Client or server side.
    pub role: Role,
    /// The branch of the top Via.
    pub branch: Bytes,
    /// A server transaction's top-Via sent-by, since RFC 3261 §17.2.3 matches a request
    /// on it as well as the branch: two clients may pick the same branch (RFC 4475's
    /// messages share `z9hG4bKkdjuw`). Kept as a 64-bit digest of the host and port as
    /// written (a retransmission repeats them byte for byte): two clients would have to
    /// pick the same branch *and* collide here to be confused, and the key stays small and
    /// cheap to clone, which the timers and events do several times per transaction.
    /// 0 for client transactions (the branch is ours) and RFC 2543 keys.
    pub sent_by: u64,
    /// The method; ACK is keyed as INVITE so it finds its INVITE transaction.
    pub method: Method,
}

/// Which side of a transaction we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Bytes to send and where.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Destination.
    pub peer: Peer,
    /// The serialised message.
    pub bytes: Bytes,
}

/// What the transaction user must know.
#[derive(Debug)]
#[non_exhaustive]
pub enum TuEvent {
    /// A new request (not a retransmission, not an ACK); answer it with
    /// [`Transactions::respond`] using `key`.
    Request {
        /// The new server transaction.
        key: TxKey,
        /// The request, with `received`/`rport` stamped into its top Via.
        msg: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// An ACK that belongs to no transaction: the ACK for a 2xx, for the dialog layer.
    Ack {
        /// The ACK.
        msg: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// A response for one of our client transactions (2xx retransmissions included, so the
    /// dialog layer can re-ACK them).
    Response {
        /// The client transaction.
        key: TxKey,
        /// The response.
        msg: Message,
    },
    /// A response that matches no transaction.
    StrayResponse {
        /// The response.
        msg: Message,
        /// Where it came from.
        peer: Peer,
    },
    /// Timer B or F fired (client) or Timer H fired (server, ACK never came).
    Timeout {
        /// The transaction that gave up.
        key: TxKey,
    },
    /// The transaction is gone; its key is no longer valid.
    Terminated {
        /// The transaction.
        key: TxKey,
    },
}

/// Errors from the transaction user's calls.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxError {
    /// The request has no top Via with a branch.
    #[error("request has no Via branch")]
    NoBranch,
    /// The message is not a request.
    #[error("not a request")]
    NotARequest,
    /// ACKs are not sent through a client transaction.
    #[error("ACK for 2xx is sent by the dialog layer, not a transaction")]
    AckNotTransaction,
    /// A client transaction with that branch already exists.
    #[error("a transaction with this branch exists")]
    Duplicate,
    /// No such transaction (it ended, or the key is wrong).
    #[error("no such transaction")]
    Unknown,
    /// The transaction already sent a final response.
    #[error("transaction already completed")]
    Completed,
    /// The response is not a response.
    #[error("not a response")]
    NotAResponse,
    /// A provisional response where only a final one will do.
    #[error("not a final response")]
    NotFinal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// The two timers a transaction can have running: one that retransmits (A, E, G) and one
/// that ends a state (B, D, F, H, I, J, K, L, M).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Slot {
    Retransmit,
    State,
}

struct Tx {
    state: State,
    peer: Peer,
    /// The request (client) or the last response sent (server), for retransmission.
    last: Bytes,
    /// Client: the request, to build ACK/CANCEL. Server: the request, for the TU's needs.
    request: Message,
    interval: Duration,
    retransmit_at: Option<Instant>,
    state_at: Option<Instant>,
}

/// All the transactions of one endpoint.
pub struct Transactions {
    cfg: TimerConfig,
    txs: HashMap<TxKey, Tx>,
    heap: BinaryHeap<Reverse<(Instant, Slot, u64)>>,
    heap_keys: HashMap<u64, TxKey>,
    next_timer_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TuEvent>,
}

impl Transactions {
    /// An empty transaction table.
    pub fn new(cfg: TimerConfig) -> Self {
        Self {
            cfg,
            txs: HashMap::new(),
            heap: BinaryHeap::new(),
            heap_keys: HashMap::new(),
            next_timer_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The request that opened a server transaction (e.g. the INVITE a CANCEL targets).
    pub fn request_of(&self, key: &TxKey) -> Option<&Message> {
        self.txs.get(key).map(|t| &t.request)
    }

    /// The server INVITE transaction a CANCEL refers to (same branch), if still pending.
    pub fn invite_for_cancel(&self, cancel_key: &TxKey) -> Option<TxKey> {
        let k = TxKey {
            role: Role::Server,
            branch: cancel_key.branch.clone(),
            sent_by: cancel_key.sent_by,
            method: Method::Invite,
        };
        self.txs
            .get(&k)
            .filter(|t| t.state == State::Proceeding)
            .map(|_| k)
    }

    /// Next transmit to perform. Poll after every `handle_*`, `send_request` and `respond`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the transaction user. Poll after every `handle_*`.
    pub fn poll_event(&mut self) -> Option<TuEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline at which [`Self::handle_timeout`] must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, slot, id))) = self.heap.peek().copied() {
            if self.timer_live(at, slot, id) {
                return Some(at);
            }
            self.heap.pop();
            self.heap_keys.remove(&id);
        }
        None
    }

    fn timer_live(&self, at: Instant, slot: Slot, id: u64) -> bool {
        let Some(key) = self.heap_keys.get(&id) else {
            return false;
        };
        let Some(tx) = self.txs.get(key) else {
            return false;
        };
        match slot {
            Slot::Retransmit => tx.retransmit_at == Some(at),
            Slot::State => tx.state_at == Some(at),
        }
    }

    fn arm(&mut self, key: &TxKey, slot: Slot, at: Instant) {
        if let Some(tx) = self.txs.get_mut(key) {
            match slot {
                Slot::Retransmit => tx.retransmit_at = Some(at),
                Slot::State => tx.state_at = Some(at),
            }
            let id = self.next_timer_id;
            self.next_timer_id += 1;
            self.heap.push(Reverse((at, slot, id)));
            self.heap_keys.insert(id, key.clone());
        }
    }

    fn terminate(&mut self, key: &TxKey) {
        if self.txs.remove(key).is_some() {
            self.events
                .push_back(TuEvent::Terminated { key: key.clone() });
        }
    }

    /// Feeds a message received from `peer`. Requests get `received`/`rport` stamped into
    /// their top Via (RFC 3261 §18.2.1, RFC 3581) before anything else sees them.
    pub fn handle_incoming(&mut self, now: Instant, mut msg: Message, peer: Peer) {
        if msg.is_request() {
            stamp_via(&mut msg, &peer);
            self.incoming_request(now, msg, peer);
        } else {
            self.incoming_response(now, msg, peer);
        }
    }

    fn incoming_request(&mut self, now: Instant, msg: Message, peer: Peer) {
        let Some(method) = msg.request_line().map(|r| r.method.clone()) else {
            return;
        };
        let Some((branch, sent_by)) = server_branch(&msg) else {
            return;
        };
        let is_ack = method == Method::Ack;
        let key = TxKey {
            role: Role::Server,
            branch,
            sent_by,
            method: if is_ack {
                Method::Invite
            } else {
                method.clone()
            },
        };
        if let Some(tx) = self.txs.get_mut(&key) {
            match (is_ack, tx.state) {
                (true, State::Completed) => {
                    tx.state = State::Confirmed;
                    tx.retransmit_at = None;
                    let wait = if peer.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.arm(&key, Slot::State, now + wait);
                }
                // An ACK for a 2xx carries a new branch, but a UA may reuse the INVITE's;
                // the dialog layer must see it either way (RFC 6026 §7.1).
                (true, State::Accepted) => self.events.push_back(TuEvent::Ack { msg, peer }),
                (true, _) => {}
                (false, State::Proceeding | State::Completed) => {
                    self.transmits.push_back(Transmit {
                        peer: tx.peer.clone(),
                        bytes: tx.last.clone(),
                    });
                }
                // Trying: the TU has not answered yet; Accepted/Confirmed: absorbed.
                (false, _) => {}
            }
            return;
        }
        if is_ack {
            self.events.push_back(TuEvent::Ack { msg, peer });
            return;
        }
        let invite = method == Method::Invite;
        let dest = response_peer(&msg, &peer);
        let mut tx = Tx {
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            peer: dest,
            last: Bytes::new(),
            request: msg.clone(),
            interval: self.cfg.t1,
            retransmit_at: None,
            state_at: None,
        };
        if invite {
            // Answer at once so the caller stops retransmitting (RFC 3261 §17.2.1 allows
            // it; a B2BUA that waits 200 ms gains nothing).
            let trying = response_to(&msg, StatusCode::TRYING, None);
            tx.last = trying.to_bytes();
            self.transmits.push_back(Transmit {
                peer: tx.peer.clone(),
                bytes: tx.last.clone(),
            });
        }
        self.txs.insert(key.clone(), tx);
        self.events.push_back(TuEvent::Request { key, msg, peer });
    }

    fn incoming_response(&mut self, now: Instant, msg: Message, peer: Peer) {
        let (Some(code), Ok(via), Ok(cseq)) = (msg.status(), msg.top_via(), msg.cseq()) else {
            return;
        };
        let Some(branch) = via.branch().cloned() else {
            return;
        };
        let key = TxKey {
            role: Role::Client,
            branch,
            sent_by: 0,
            method: cseq.method,
        };
        let Some(tx) = self.txs.get_mut(&key) else {
            self.events.push_back(TuEvent::StrayResponse { msg, peer });
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        let invite = key.method == Method::Invite;
        match (tx.state, code.is_provisional(), code.is_success()) {
            (State::Calling | State::Trying | State::Proceeding, true, _) => {
                let was = tx.state;
                tx.state = State::Proceeding;
                if invite {
                    tx.retransmit_at = None;
                } else if was == State::Trying {
                    // Timer E keeps running, now at T2 (RFC 3261 §17.1.2.2).
                    tx.interval = self.cfg.t2;
                }
                self.events.push_back(TuEvent::Response { key, msg });
            }
            (State::Calling | State::Proceeding, false, true) if invite => {
                tx.state = State::Accepted;
                tx.retransmit_at = None;
                self.events.push_back(TuEvent::Response {
                    key: key.clone(),
                    msg,
                });
                let at = now + self.cfg.t1 * 64;
                self.arm(&key, Slot::State, at);
            }
            (State::Accepted, false, true) => {
                self.events.push_back(TuEvent::Response { key, msg });
            }
            (State::Calling | State::Proceeding, false, false) if invite => {
                let ack = ack_for(&tx.request, &msg);
                tx.last = ack.to_bytes();
                tx.state = State::Completed;
                tx.retransmit_at = None;
                self.transmits.push_back(Transmit {
                    peer: tx.peer.clone(),
                    bytes: tx.last.clone(),
                });
                self.events.push_back(TuEvent::Response {
                    key: key.clone(),
                    msg,
                });
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32).max(self.cfg.t1 * 64)
                };
                self.arm(&key, Slot::State, now + wait);
            }
            (State::Completed, false, false) if invite => {
                self.transmits.push_back(Transmit {
                    peer: tx.peer.clone(),
                    bytes: tx.last.clone(),
                });
            }
            (State::Trying | State::Proceeding, false, _) => {
                tx.state = State::Completed;
                tx.retransmit_at = None;
                self.events.push_back(TuEvent::Response {
                    key: key.clone(),
                    msg,
                });
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    self.cfg.t4
                };
                self.arm(&key, Slot::State, now + wait);
            }
            // Late provisionals, retransmitted finals in Completed: absorbed.
            _ => {}
        }
    }

    /// Starts a client transaction for `req` (whose top Via must carry a branch; see
    /// [`new_branch`]) towards `peer`. CANCEL is a client transaction of its own, built with
    /// [`cancel_for`] and the INVITE's branch.
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Message,
        peer: Peer,
    ) -> Result<TxKey, TxError> {
        let method = req
            .request_line()
            .map(|r| r.method.clone())
            .ok_or(TxError::NotARequest)?;
        if method == Method::Ack {
            return Err(TxError::AckNotTransaction);
        }
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().cloned())
            .ok_or(TxError::NoBranch)?;
        let key = TxKey {
            role: Role::Client,
            branch,
            sent_by: 0,
            method: method.clone(),
        };
        if self.txs.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let bytes = req.to_bytes();
        let invite = method == Method::Invite;
        let reliable = peer.transport.is_reliable();
        self.transmits.push_back(Transmit {
            peer: peer.clone(),
            bytes: bytes.clone(),
        });
        self.txs.insert(
            key.clone(),
            Tx {
                state: if invite {
                    State::Calling
                } else {
                    State::Trying
                },
                peer,
                last: bytes,
                request: req,
                interval: self.cfg.t1,
                retransmit_at: None,
                state_at: None,
            },
        );
        if !reliable {
            self.arm(&key, Slot::Retransmit, now + self.cfg.t1);
        }
        self.arm(&key, Slot::State, now + self.cfg.t1 * 64);
        Ok(key)
    }

    /// Sends a response within server transaction `key`.
    pub fn respond(&mut self, now: Instant, key: &TxKey, resp: Message) -> Result<(), TxError> {
        let code = resp.status().ok_or(TxError::NotAResponse)?;
        let tx = self.txs.get_mut(key).ok_or(TxError::Unknown)?;
        if !matches!(tx.state, State::Trying | State::Proceeding) {
            return Err(TxError::Completed);
        }
        let bytes = resp.to_bytes();
        tx.last = bytes.clone();
        self.transmits.push_back(Transmit {
            peer: tx.peer.clone(),
            bytes,
        });
        let reliable = tx.peer.transport.is_reliable();
        let invite = key.method == Method::Invite;
        if code.is_provisional() {
            tx.state = State::Proceeding;
            return Ok(());
        }
        let t1x64 = self.cfg.t1 * 64;
        match (invite, code.is_success()) {
            (true, true) => {
                tx.state = State::Accepted;
                self.arm(key, Slot::State, now + t1x64);
            }
            (true, false) => {
                tx.state = State::Completed;
                tx.interval = self.cfg.t1;
                if !reliable {
                    self.arm(key, Slot::Retransmit, now + self.cfg.t1);
                }
                self.arm(key, Slot::State, now + t1x64);
            }
            (false, _) => {
                tx.state = State::Completed;
                let wait = if reliable { Duration::ZERO } else { t1x64 };
                self.arm(key, Slot::State, now + wait);
            }
        }
        Ok(())
    }

    /// Sends a final response for server transaction `key` and forgets the transaction,
    /// as a stateless UAS does (RFC 3261 §8.2.7): nothing is kept to resend it or to
    /// absorb retransmissions, so a retransmitted request comes up again to be answered
    /// afresh and the ACK of an INVITE's non-2xx reaches the TU as a stray ACK. For
    /// answers a flood must not make us remember (challenges, refusals).
    pub fn respond_statelessly(&mut self, key: &TxKey, resp: Message) -> Result<(), TxError> {
        let code = resp.status().ok_or(TxError::NotAResponse)?;
        if code.is_provisional() {
            return Err(TxError::NotFinal);
        }
        let tx = self.txs.get(key).ok_or(TxError::Unknown)?;
        if !matches!(tx.state, State::Trying | State::Proceeding) {
            return Err(TxError::Completed);
        }
        self.transmits.push_back(Transmit {
            peer: tx.peer.clone(),
            bytes: resp.to_bytes(),
        });
        self.terminate(key);
        Ok(())
    }

    /// Tells the layer the transport could not deliver for `key` (RFC 3261 §17.1.4): the
    /// transaction ends and the TU gets a timeout.
    pub fn handle_transport_error(&mut self, key: &TxKey) {
        if self.txs.contains_key(key) {
            self.events.push_back(TuEvent::Timeout { key: key.clone() });
            self.terminate(key);
        }
    }

    /// Fires every timer due at `now`. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, slot, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let live = self.timer_live(at, slot, id);
            let Some(key) = self.heap_keys.remove(&id) else {
                continue;
            };
            if live {
                self.fire(now, &key, slot);
            }
        }
    }

    fn fire(&mut self, now: Instant, key: &TxKey, slot: Slot) {
        let t2 = self.cfg.t2;
        let Some(tx) = self.txs.get_mut(key) else {
            return;
        };
        match slot {
            Slot::Retransmit => {
                tx.retransmit_at = None;
                self.transmits.push_back(Transmit {
                    peer: tx.peer.clone(),
                    bytes: tx.last.clone(),
                });
                // Timer A doubles without bound; E and G are capped at T2; E in Proceeding
                // stays at T2 (it was set so when the 1xx came).
                let capped = !(key.role == Role::Client && key.method == Method::Invite);
                let next = tx.interval * 2;
                tx.interval = if capped { next.min(t2) } else { next };
                let at = now + tx.interval;
                self.arm(key, Slot::Retransmit, at);
            }
            Slot::State => {
                tx.state_at = None;
                let timed_out = match (key.role, tx.state) {
                    // B, F: no final response.
                    (Role::Client, State::Calling | State::Trying | State::Proceeding) => true,
                    // H: the ACK never came.
                    (Role::Server, State::Completed) if key.method == Method::Invite => true,
                    _ => false,
                };
                if timed_out {
                    self.events.push_back(TuEvent::Timeout { key: key.clone() });
                }
                self.terminate(key);
            }
        }
    }
}

/// Applies RFC 3261 §18.2.1 and RFC 3581 to a received request's top Via.
fn stamp_via(msg: &mut Message, peer: &Peer) {
    let Some(pos) = msg.headers.iter().position(|h| h.name == HeaderName::Via) else {
        return;
    };
    let Ok(mut vias) = super::header::split_list(&msg.headers[pos].value) else {
        return;
    };
    let Some(top) = vias.first().cloned() else {
        return;
    };
    let Ok(via) = super::header::parse_via_list(&top).map(|mut v| v.remove(0)) else {
        return;
    };
    let ip = peer.addr.ip();
    let host_str = String::from_utf8_lossy(&via.host);
    let host_ip = host_str
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let need_received = host_ip != Some(ip);
    let rport_empty = matches!(super::header::param(&via.params, "rport"), Some(None));
    if !need_received && !rport_empty {
        return;
    }
    let mut out = Vec::with_capacity(top.len() + 40);
    let mut params_done = false;
    // Rebuild the entry: copy it, replacing a bare `rport` by `rport=PORT`.
    if rport_empty {
        let s = top.as_ref();
        let mut i = 0;
        while i < s.len() {
            if s[i] == b';' && !params_done {
                let rest = &s[i + 1..];
                let trimmed = rest.iter().position(|&c| c != b' ').unwrap_or(0);
                let r = &rest[trimmed..];
                if r.len() >= 5
                    && r[..5].eq_ignore_ascii_case(b"rport")
                    && (r.len() == 5 || r[5] == b';' || r[5] == b' ' || r[5] == b',')
                {
                    out.extend_from_slice(b";rport=");
                    out.extend_from_slice(peer.addr.port().to_string().as_bytes());
                    i += 1 + trimmed + 5;
                    params_done = true;
                    continue;
                }
            }
            out.push(s[i]);
            i += 1;
        }
    } else {
        out.extend_from_slice(&top);
    }
    if need_received || rport_empty {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(ip.to_string().as_bytes());
    }
    vias[0] = Bytes::from(out);
    let mut joined = Vec::new();
    for (i, v) in vias.iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v);
    }
    msg.headers[pos].value = Bytes::from(joined);
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4): back over the
/// connection for reliable transports; for UDP to the source address, and to the source
/// port when `rport` was asked for, else to the port in sent-by (default 5060).
fn response_peer(msg: &Message, peer: &Peer) -> Peer {
    if peer.transport.is_reliable() {
        return peer.clone();
    }
    let Ok(via) = msg.top_via() else {
        return peer.clone();
    };
    if via.has_rport() {
        return peer.clone();
    }
    let port = via.port.unwrap_or(5060);
    Peer {
        transport: peer.transport.clone(),
        addr: SocketAddr::new(peer.addr.ip(), port),
    }
}

/// FNV-1a over the sent-by's host and port; never 0, which client keys use.
fn sent_by_digest(host: &[u8], port: Option<u16>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let port = port.map_or([0xff; 3], |p| [1, (p >> 8) as u8, p as u8]);
    for b in host.iter().chain(&port) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// A server transaction's branch and sent-by digest (see [`TxKey`]).
fn server_branch(msg: &Message) -> Option<(Bytes, u64)> {
    let via = msg.top_via().ok()?;
    match via.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE.as_bytes()) => {
            Some((b.clone(), sent_by_digest(&via.host, via.port)))
        }
        // RFC 2543 peers: key on what identifies the request instead (§17.2.3 fallback).
        _ => {
            let mut k = Vec::new();
            k.extend_from_slice(b"2543:");
            k.extend_from_slice(msg.call_id().ok()?);
            k.push(b'|');
            k.extend_from_slice(&msg.cseq().ok()?.seq.to_string().into_bytes());
            k.push(b'|');
            k.extend_from_slice(&via.raw);
            if let Ok(f) = msg.from_hdr() {
                if let Some(t) = f.tag() {
                    k.push(b'|');
                    k.extend_from_slice(t);
                }
            }
            Some((Bytes::from(k), 0))
        }
    }
}

#[cfg(test)]
mod tests;
