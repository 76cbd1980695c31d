//! Reliable provisional responses (RFC 3262), both ways.
//!
//! To a caller whose INVITE supports or requires `100rel`, our 180 and 183 go with
//! `Require: 100rel` and an RSeq, and are sent again (T1, doubling) until the caller's
//! PRACK, one at a time: a later provisional waits for that PRACK, and so does our 2xx
//! when the unacknowledged provisional carried SDP (§3). No PRACK in 64 T1 ends the call
//! with a 5xx. A device we ring that sends its 18x reliably gets our PRACK in the early
//! dialog, and its copies of an 18x already acknowledged, or one out of order, go no
//! further (§4).
//!
//! Owns the caller leg's [`Reliable`] state and the PRACK of a ring; what a provisional
//! says (ringing, early media) is decided in branch.rs, not here.

use bytes::Bytes;
use std::time::Instant;

use super::super::{code, Endpoint};
use super::resend::Retransmit2xx;
use super::state::{CallId, CallTimer, LegId};
use crate::cdr::Disposition;
use crate::endpoint::owner::{CallTx, TxOwner};
use crate::sip::dialog::{contact_uri, route_set};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{Transmit, TxKey};

/// Whether a caller's INVITE lets us send provisionals reliably.
pub(super) fn caller_takes_100rel(invite: &Message) -> bool {
    invite.lists(&HeaderName::Supported, b"100rel") || invite.lists(&HeaderName::Require, b"100rel")
}

/// An RAck's three parts (RFC 3262 §7.2): the RSeq it acknowledges, the CSeq number and
/// method of the request the provisional answered.
fn rack(m: &Message) -> Option<(u32, u32, Method)> {
    let v = m.header(&HeaderName::RAck)?;
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split_ascii_whitespace();
    let rseq = it.next()?.parse().ok()?;
    let cseq = it.next()?.parse().ok()?;
    let method = Method::from_token(&Bytes::copy_from_slice(it.next()?.as_bytes()));
    it.next().is_none().then_some((rseq, cseq, method))
}

/// The reliable provisionals of a caller's leg.
#[derive(Debug)]
pub(in crate::endpoint) struct Reliable {
    /// The RSeq of the next one.
    next_rseq: u32,
    /// The one sent and not yet acknowledged.
    unacked: Option<Unacked>,
    /// The newest provisional waiting for that acknowledgement (an older one waiting is
    /// dropped: the caller needs only the latest news).
    queued: Option<(StatusCode, Option<Bytes>)>,
    /// Our 2xx's body, held until the PRACK of a provisional that carried SDP.
    deferred_ok: Option<Bytes>,
}

#[derive(Debug)]
struct Unacked {
    rseq: u32,
    /// It carried SDP: our 2xx waits for its PRACK.
    sdp: bool,
    resend: Retransmit2xx,
}

impl Reliable {
    fn new(first_rseq: u32) -> Self {
        Self {
            next_rseq: first_rseq,
            unacked: None,
            queued: None,
            deferred_ok: None,
        }
    }

    /// Whether a provisional is out and unacknowledged.
    pub(super) fn waiting(&self) -> bool {
        self.unacked.is_some()
    }

    /// Whether our 2xx must wait for a PRACK.
    pub(super) fn holds_2xx(&self) -> bool {
        self.unacked.as_ref().is_some_and(|u| u.sdp)
    }

    /// Keeps the newest provisional until the PRACK.
    pub(super) fn queue(&mut self, code: StatusCode, sdp: Option<Bytes>) {
        self.queued = Some((code, sdp));
    }

    /// Holds our 2xx's body until the PRACK.
    pub(super) fn defer_ok(&mut self, body: Bytes) {
        self.deferred_ok = Some(body);
    }

    /// A final response went out: nothing more to send or wait for.
    pub(super) fn finished(&mut self) {
        self.unacked = None;
        self.queued = None;
        self.deferred_ok = None;
    }
}

impl Endpoint {
    /// Makes `resp`, a provisional to the caller of call `id`, reliable: `Require: 100rel`
    /// and the next RSeq. Returns the RSeq to [`Self::sent_reliable`] once it is sent.
    pub(super) fn make_reliable(&mut self, id: CallId, resp: &mut Message) -> Option<u32> {
        // RFC 3262 §3: the first RSeq is chosen at random in 1 ..= 2^31 - 1.
        let first = (self.rng_u64() % 0x7fff_ffff) as u32 + 1;
        let a = self.calls.caller_mut(id)?;
        let rel = a.rel.get_or_insert_with(|| Box::new(Reliable::new(first)));
        let rseq = rel.next_rseq;
        rel.next_rseq = rel.next_rseq.wrapping_add(1);
        resp.push_header(HeaderName::Require, Bytes::from_static(b"100rel"));
        resp.push_header(HeaderName::RSeq, Bytes::from(rseq.to_string()));
        Some(rseq)
    }

    /// The reliable provisional `bytes` (RSeq `rseq`, with SDP or not) went out at `now`:
    /// it is sent again until its PRACK.
    pub(super) fn sent_reliable(
        &mut self,
        now: Instant,
        id: CallId,
        rseq: u32,
        sdp: bool,
        bytes: Bytes,
    ) {
        let resend = Retransmit2xx::new(bytes, now, self.cfg_t1);
        let first = resend.first(now);
        if let Some(rel) = self.calls.caller_mut(id).and_then(|a| a.rel.as_mut()) {
            rel.unacked = Some(Unacked { rseq, sdp, resend });
            self.calls.arm(id, CallTimer::Reliable, first);
        }
    }

    /// Our reliable provisional to the caller is due again: sent, or after 64 T1 with
    /// no PRACK the call ends with 504 to the caller (RFC 3262 §3), and a callee that
    /// answered meanwhile gets a BYE.
    pub(super) fn reliable_due(&mut self, now: Instant, id: CallId) {
        // Doubling with no cap at T2 (RFC 3262 §3), so the cap is 64 T1.
        let cap = self.cfg_t1 * 64;
        let Some(a) = self.calls.caller_mut(id) else {
            return;
        };
        let peer = a.dialog.peer.clone();
        let Some(u) = a.rel.as_mut().and_then(|r| r.unacked.as_mut()) else {
            return;
        };
        match u.resend.again(now, cap) {
            Some(next) => {
                let bytes = u.resend.bytes.clone();
                self.out.push_back(Transmit { peer, bytes });
                self.calls.arm(id, CallTimer::Reliable, next);
            }
            None => {
                tracing::info!(call = %id, "no PRACK for our reliable provisional");
                if let Some(rel) = a.rel.as_mut() {
                    rel.finished();
                }
                self.bye_callee(now, id);
                self.fail_call(now, id, code(504), Disposition::Failed);
            }
        }
    }

    /// A PRACK from the caller of call `id` (on `leg`): 200 when it acknowledges the
    /// provisional out, and then what waited for it goes out; 481 otherwise (§3).
    pub(super) fn on_prack(
        &mut self,
        now: Instant,
        key: &TxKey,
        msg: &Message,
        id: CallId,
        leg: LegId,
    ) {
        let invite_cseq = self
            .calls
            .legs
            .get(leg)
            .and_then(|l| l.invite.cseq().ok().map(|c| c.seq));
        let acked = match (rack(msg), invite_cseq) {
            (Some((rseq, cseq, Method::Invite)), Some(inv)) if cseq == inv => self
                .calls
                .legs
                .get_mut(leg)
                .and_then(|l| l.rel.as_mut())
                .filter(|r| r.unacked.as_ref().is_some_and(|u| u.rseq == rseq))
                .map(|r| {
                    r.unacked = None;
                    (r.deferred_ok.take(), r.queued.take())
                }),
            _ => None,
        };
        let Some((ok, queued)) = acked else {
            self.reply(now, key, msg, code(481), vec![]);
            return;
        };
        self.reply(now, key, msg, StatusCode::OK, vec![]);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.timers.stop(CallTimer::Reliable);
        }
        match (ok, queued) {
            (Some(body), _) => self.send_ok_a(now, id, body),
            (None, Some((code, sdp))) => {
                self.respond_a(now, id, code, sdp);
            }
            (None, None) => {}
        }
    }

    /// A provisional `msg` from a device we ring (INVITE transaction `key` of call `id`).
    /// Sent reliably, it is acknowledged with a PRACK in the early dialog the first time;
    /// false when it must go no further (a copy already acknowledged, or out of order).
    pub(super) fn prack_ring(
        &mut self,
        now: Instant,
        id: CallId,
        key: &TxKey,
        msg: &Message,
    ) -> bool {
        let rseq = msg
            .header(&HeaderName::RSeq)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.trim().parse::<u32>().ok());
        let Some(rseq) = rseq.filter(|_| msg.lists(&HeaderName::Require, b"100rel")) else {
            return true;
        };
        let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
        let Some(leg) = self.calls.branch(id, key) else {
            return true;
        };
        let Some(ring) = leg.ringing() else {
            return true;
        };
        if ring.rseq.is_some_and(|last| rseq != last.wrapping_add(1)) {
            return false;
        }
        ring.rseq = Some(rseq);
        leg.early(tag);
        // The early dialog's target and route set are the provisional's (RFC 3261
        // §12.1.2): the PRACK goes where its BYE would.
        if let Some(u) = contact_uri(msg) {
            leg.dialog.target = u;
        }
        leg.dialog.routes = route_set(msg, true);
        let Ok(invite_cseq) = leg.invite.cseq().map(|c| c.seq) else {
            return true;
        };
        leg.dialog.cseq += 1;
        let (dialog, cseq) = (leg.dialog.clone(), leg.dialog.cseq);
        let mut prack = self.leg_request(Method::Prack, &dialog, cseq);
        prack.push_header(
            HeaderName::RAck,
            Bytes::from(format!("{rseq} {invite_cseq} INVITE")),
        );
        match self.tx.send_request(now, prack, dialog.peer) {
            Ok(k) => {
                self.owners.insert(k, TxOwner::Call(id, CallTx::Prack));
            }
            Err(e) => tracing::debug!(error = %e, "PRACK not sent"),
        }
        true
    }
}
