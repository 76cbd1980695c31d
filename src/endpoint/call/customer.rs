//! Callbacks the PBX places itself: a call with no party at first rings the agent, then
//! the customer, whose leg becomes the caller's once answered (when to place one is
//! `crate::endpoint`'s callback module).

use bytes::Bytes;
use std::time::Instant;

use super::super::owner::{CallTx, TxOwner};
use super::super::Endpoint;
use super::dial::trunk_identity;
use super::state::{
    Call, CallId, CallTimer, Callback, Controller, Leg, Outgoing, Placed, Ring, Role, State,
    CUSTOMER_RING,
};
use crate::cdr::{Disposition, HangupBy};
use crate::sdp::Sdp;
use crate::sip::header::Transport;
use crate::sip::msg::{Message, StatusCode};
use crate::sip::transaction::{Peer, Transmit, TxKey};
use crate::sip::uri::Uri;
use crate::story::{Event, Start, Story};

impl Endpoint {
    /// Opens callback call `id` for the agent to be rung from: no party on it yet, a
    /// media leg kept for the customer, presenting `number` to the agent, ending through
    /// `plan` if the queue gives it up. False when no RTP port is free.
    pub(in crate::endpoint) fn callback_call(
        &mut self,
        now: Instant,
        id: CallId,
        placed: Placed,
        plan: std::sync::Arc<crate::dialplan::Dialplan>,
    ) -> bool {
        let Placed {
            request,
            number,
            trunk,
            asked_by,
        } = placed;
        let Some(ma) = self.calls.reserve_media(id) else {
            return false;
        };
        let pa = ma.port;
        let Some(cursor) = plan.start("callback", "callback", &number) else {
            self.calls.release_media(ma);
            return false;
        };
        // What the agent is offered: the laws we relay, and keys (the address is
        // rewritten for the agent's network when its INVITE is built).
        let offer = Sdp::parse(
            format!(
                "v=0\r\no=- {id} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {pa} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
            )
            .as_bytes(),
        )
        .expect("our own offer parses");
        let story = Story::begin(
            id.0,
            Start {
                sip_call_id: format!("{}@{}", self.tag(), self.domain),
                caller: number,
                callee: "callback".into(),
                did: None,
                trunk,
                callback_of: asked_by,
            },
            self.unix_ms(now),
        );
        let call = Call::new(now, None, (plan, cursor), 70, story);
        self.calls.calls.insert(
            id,
            Box::new(Call {
                answered: true,
                callback: Some(Callback {
                    request,
                    offer,
                    media: Some(ma),
                    ringing: None,
                    missed: false,
                }),
                // The customer's trunk, for calling it back: not a call from it.
                from_trunk: None,
                state: State::Queued,
                ..call
            }),
        );
        // Parked until the customer answers and it joins the agent's in the bridge.
        self.calls.open_parked(ma, None);
        true
    }

    /// Rings a callback's customer (the agent is on the line), offering `body` (the
    /// agent's media, through our A port). The call ends if it cannot.
    pub(super) fn call_customer(&mut self, now: Instant, id: CallId, body: Bytes) {
        let Some(out) = self.customer_target(now, id) else {
            tracing::info!(call = %id, "callback: the customer cannot be called");
            self.bye_callee(now, id);
            self.finish(now, id, Disposition::Failed, 404, HangupBy::System);
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
        // The agent's media, at our port kept for the customer, on the address the
        // customer can reach.
        let pa = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref()?.media)
            .map_or(0, |m| m.port);
        let Some(body) = Sdp::parse(&body)
            .and_then(|s| s.relayed(self.media_ip(&peer), pa, id.0, 1))
            .ok()
            .map(|s| Bytes::from(s.to_bytes()))
        else {
            self.bye_callee(now, id);
            self.finish(now, id, Disposition::Failed, 488, HangupBy::System);
            return;
        };
        let (leg, inv) = self.new_invite(&from, to, uri, &peer, body, extra);
        let key = match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(call = %id, error = %e, "callback: INVITE not sent");
                self.bye_callee(now, id);
                self.finish(now, id, Disposition::Failed, 503, HangupBy::System);
                return;
            }
        };
        tracing::info!(call = %id, "callback: calling the customer");
        self.owners
            .insert(key.clone(), TxOwner::Call(id, CallTx::Customer));
        let controller = Controller::Originate(Ring::new(credentials));
        let leg = self
            .calls
            .add_leg(Leg::new(id, leg, (key, inv), controller));
        match self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
        {
            Some(cb) => cb.ringing = Some(leg),
            None => {
                self.calls.remove_leg(leg);
            }
        }
        self.calls
            .arm(id, CallTimer::CustomerRing, now + CUSTOMER_RING);
    }

    /// Where a callback's customer is called: through the trunk it came in on (presented
    /// as the trunk's calls out are, with its credentials), else its extension's newest
    /// registration.
    pub(super) fn customer_target(&mut self, now: Instant, id: CallId) -> Option<Outgoing> {
        let c = self.calls.calls.get(&id)?;
        let number = c.story.start().caller.clone();
        match c.story.start().trunk.clone() {
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
    pub(super) fn customer_response(
        &mut self,
        now: Instant,
        id: CallId,
        key: &TxKey,
        msg: &Message,
        status: StatusCode,
    ) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.callback.is_none() {
            return;
        }
        if c.caller().is_some() {
            // A retransmitted 2xx: our ACK was lost.
            let again = self
                .calls
                .caller(id)
                .and_then(|a| Some((a.ack.clone()?, a.dialog.peer.clone())));
            if let (true, Some((ack, peer))) = (status.is_success(), again) {
                self.out.push_back(Transmit { peer, bytes: ack });
            }
            return;
        }
        if status.is_provisional() {
            if !self.prack_ring(now, id, key, msg) {
                return;
            }
            // Ringing: a CANCEL may now end it (RFC 3261 §9.1).
            let tag = msg.to_hdr().ok().and_then(|t| t.tag().cloned());
            if let Some(leg) = self.calls.branch(id, key) {
                if let Some(r) = leg.ringing() {
                    r.provisional = true;
                }
                leg.early(tag);
            }
            return;
        }
        if matches!(status.as_u16(), 401 | 407) && self.retry_with_credentials(now, id, key, msg) {
            // Sent again with the trunk's credentials.
            return;
        }
        let Some(d) = self
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
        self.confirm_leg(d, msg);
        self.session_timer_answered(now, d, msg);
        let unix = self.unix_ms(now);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            self.calls.remove_leg(d);
            return;
        };
        // The customer's leg is the caller's now, with the media leg kept for it.
        c.legs.push((d, Role::Caller));
        c.state = State::Bridged;
        c.story.tell(unix, Event::Answered);
        // Its agent answered first, and is bridged with the customer now.
        if let Some(agent) = c.story.last_dialled().map(str::to_string) {
            c.story.tell(unix, Event::Bridged { party: agent });
        }
        let media = c.callback.as_mut().and_then(|cb| cb.media.take());
        // The agent's ringback stops (its end report is not awaited).
        c.play_seq += 1;
        if let Some(l) = self.calls.legs.get_mut(d) {
            l.media = media;
            if let Some(r) = l.controller.ring() {
                r.answered = true;
            }
        }
        self.conversation_on(id);
        let target = Sdp::parse(&msg.body).ok().and_then(|s| s.audio_target());
        let agent = self.calls.callee(id).and_then(|l| l.media).map(|m| m.key);
        if let (Some(customer), Some(agent)) = (media.map(|m| m.key), agent) {
            if let Some(addr) = target {
                self.calls.remote(customer, addr);
            }
            self.calls.stop_play_on(agent);
            self.calls.join(id, [customer, agent]);
        }
        tracing::info!(
            call = %id,
            "callback: the customer answered; bridged to the agent"
        );
        self.callback_reached(self.acd_id(id));
    }

    /// The customer did not take a callback (refused with `code`, rang out, or its
    /// INVITE got no answer at all): the ring ends, the agent is hung up on, and the
    /// attempt counts.
    pub(super) fn customer_failed(&mut self, now: Instant, id: CallId, code: u16) {
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
        tracing::info!(call = %id, code, "callback: the customer did not answer");
        if let Some(d) = ringing {
            // CANCELs a ring still going; a finished transaction just leaves the tables.
            self.detach_branch(now, d);
        }
        self.bye_callee(now, id);
        self.finish(now, id, Disposition::NoAnswer, code, HangupBy::System);
    }
}
