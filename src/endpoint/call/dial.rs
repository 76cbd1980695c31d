//! Dialling out: an extension (every registered contact in parallel), a trunk (with its
//! identity and credentials), the relay ports and the INVITE of each branch.

use bytes::Bytes;
use std::time::{Duration, Instant};

use super::super::owner::{CallTx, TxOwner};
use super::super::Endpoint;
use super::state::{CallId, CallTimer, Controller, Leg, Outgoing, Ring, Status};
use crate::sip::dialog::{with_tag, Dialog};
use crate::sip::header::Transport;
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{Peer, TxKey};
use crate::sip::uri::Uri;
use crate::story::Event;

/// How a call out through trunk `t` presents itself: From and the extra headers
/// (P-Asserted-Identity, Privacy). The trunk's caller ID, else `number`; its caller name,
/// else the extension's name, else the number. `privacy` hides From and keeps PAI.
pub(super) fn trunk_identity(
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

impl Endpoint {
    /// Starts ringing `target`. False (with `$status` set) when it cannot even start.
    pub(in crate::endpoint) fn dial(
        &mut self,
        now: Instant,
        id: CallId,
        target: &str,
        timeout: Option<Duration>,
    ) -> bool {
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        // The callee sees the calling extension's name, or a trunk caller's number.
        let (number, name) = match self
            .users
            .get(c.caller_number())
            .filter(|_| c.from_trunk.is_none())
        {
            Some(u) => (
                u.extension.clone(),
                u.name.clone().unwrap_or_else(|| u.extension.clone()),
            ),
            None => (c.caller_number().to_string(), c.caller_number().to_string()),
        };
        let from = Bytes::from(format!(
            "\"{}\" <sip:{number}@{}>",
            name.replace('"', ""),
            self.domain
        ));
        if !self.users.contains_key(target) {
            self.set_status(id, Status::Unavailable);
            return false;
        }
        if let Some(started) = self.line_decides(now, id, target) {
            return started;
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
            // A known number whose phones are all away is "temporarily unavailable"
            // (480), not unknown (404): the caller may try again, or get its voicemail.
            tracing::info!(call = %id, %target, "not registered");
            self.set_status(id, Status::Offline);
            self.forward_failed_dial(now, id, target, Status::Offline);
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
            self.notify_line(now, target);
            let number = target.to_string();
            self.tell(
                now,
                id,
                Event::Dialled {
                    number,
                    trunk: None,
                },
            );
        }
        started
    }

    /// Starts a call out through trunk `name` to `number`, presenting the trunk's caller
    /// ID (or the extension), with P-Asserted-Identity and Privacy as configured.
    pub(super) fn dial_trunk(
        &mut self,
        now: Instant,
        id: CallId,
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
                call = %id,
                trunk = name,
                "a call from a trunk may not dial a trunk"
            );
            self.set_status(id, Status::Failed);
            return false;
        }
        let Some(t) = self.trunks.iter().find(|t| t.name == name).cloned() else {
            self.set_status(id, Status::Failed);
            return false;
        };
        // The toll-fraud guard: the number's class, what the extension may dial, and its
        // calls out (and the trunk's) so far.
        let caller = c.caller_number().to_string();
        let ext = self.users.get(&caller).cloned();
        let may = ext
            .as_ref()
            .and_then(|u| u.dial.clone())
            .unwrap_or_else(|| self.dial_policy.default.clone());
        let day = self.unix_ms(now) / 86_400_000;
        if let Err(why) = self
            .tolls
            .check(&self.dial_policy, &may, &caller, &t, number, day)
        {
            tracing::warn!(
                call = %id,
                extension = %caller,
                trunk = name,
                %number,
                reason = %why,
                "toll-fraud guard refused a call out"
            );
            self.set_status(id, Status::Forbidden);
            return false;
        }
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        let (from, extra) = trunk_identity(&t, c.caller_number(), ext, c.privacy);
        let host = t.address.to_string();
        let Ok(uri) = Uri::parse(&Bytes::from(format!("sip:{number}@{host}"))) else {
            tracing::info!(call = %id, %number, "not a number a trunk can dial");
            self.set_status(id, Status::Unavailable);
            return false;
        };
        let to = Bytes::from(format!("<sip:{number}@{host}>"));
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
        let started = self.dial_out(now, id, out, timeout);
        if started {
            // No extension is rung now (one may have been, before a forward or the
            // dialplan's next step): its lamp goes out, nobody picks this up as ringing
            // there, and the outside party is never taken for that extension.
            let was = self.calls.calls.get_mut(&id).and_then(|c| c.b_ext.take());
            if let Some(ext) = was {
                self.notify_line(now, &ext);
            }
            self.tolls.went_out(id, &caller, &t.name, day);
            let (number, trunk) = (number.to_string(), Some(t.name.clone()));
            self.tell(now, id, Event::Dialled { number, trunk });
        }
        started
    }

    /// Sends the B-leg INVITE and starts ringing.
    pub(super) fn dial_out(
        &mut self,
        now: Instant,
        id: CallId,
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
        // Another device of the same dial shares the media leg opened for the first.
        let shared = c.dial_media.filter(|_| !c.dialing.is_empty());
        let mf = c.mf;
        let Some((offer, caller_media)) = self.calls.origin(id) else {
            return false;
        };
        // The caller's media leg is open already if it was answered here (or another
        // device of this dial rings); else it opens now, to be relayed.
        let ma = caller_media.or_else(|| self.calls.reserve_media(id));
        let mb = shared.or_else(|| self.calls.reserve_media(id));
        // Both laws, so a callee that knows only the other one can answer (we transcode).
        let offer_b = match (ma, mb) {
            (Some(_), Some(mb)) => offer
                .relayed(self.media_ip(&peer), mb.port, id.0, 1)
                .map(|o| o.with_both_g711())
                .map_err(|e| tracing::info!(error = %e, "offer refused"))
                .ok(),
            _ => None,
        };
        let (Some(ma), Some(mb), Some(offer_b)) = (ma, mb, offer_b) else {
            for (m, new) in [(ma, caller_media.is_none()), (mb, shared.is_none())] {
                if let (Some(m), true) = (m, new) {
                    self.calls.release_media(m);
                }
            }
            self.set_status(id, Status::Failed);
            return false;
        };
        if shared.is_none() {
            self.calls.open_parked(mb, None);
            if caller_media.is_none() {
                // Relayed: the two legs are bridged at once, so early media reaches
                // the caller.
                self.calls.open_parked(ma, offer.audio_target());
                if let Some(a) = self.calls.caller_mut(id) {
                    a.media = Some(ma);
                }
                self.calls.join(id, [ma.key, mb.key]);
            }
            if let Some(c) = self.calls.calls.get_mut(&id) {
                c.dial_media = Some(mb);
            }
        }
        let body = Bytes::from(offer_b.to_bytes());
        let (leg, mut inv) = self.new_invite(&from, to, uri, &peer, body, extra);
        inv.set_header(
            HeaderName::MaxForwards,
            Bytes::from((mf - 1).min(70).to_string()),
        );
        let key = match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "could not send INVITE to callee");
                // The media opened for this device goes unless another one rings.
                if self
                    .calls
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.dialing.is_empty())
                {
                    self.unbridge(id);
                }
                self.set_status(id, Status::Failed);
                return false;
            }
        };
        tracing::info!(call = %id, %target, "ringing");
        self.owners
            .insert(key.clone(), TxOwner::Call(id, CallTx::Branch));
        // An agent's phone rung for a queue's offer is the queue's; any other, the dial's.
        let offer = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.queue.as_ref())
            .is_some_and(|q| q.offering.is_some());
        let ring = Ring::new(credentials);
        let controller = if offer {
            Controller::Queue(ring)
        } else {
            Controller::Dial(ring)
        };
        let leg = self
            .calls
            .add_leg(Leg::new(id, leg, (key, inv), controller));
        let ring = timeout.unwrap_or(self.calls.ring_timeout);
        match self.calls.calls.get_mut(&id) {
            Some(c) => c.dialing.push(leg),
            None => {
                self.calls.remove_leg(leg);
            }
        }
        self.calls.arm(id, CallTimer::RingTimeout, now + ring);
        true
    }

    /// A dialog we start (From `from` with a new tag, To `to`, at `uri` through `peer`)
    /// and its INVITE, offering `body`, with `extra` headers.
    pub(super) fn new_invite(
        &mut self,
        from: &Bytes,
        to: Bytes,
        uri: Uri,
        peer: &Peer,
        body: Bytes,
        extra: Vec<(HeaderName, Bytes)>,
    ) -> (Dialog, Message) {
        let tag = Bytes::from(self.tag());
        let leg = Dialog {
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
            Bytes::from_static(crate::endpoint::ALLOW.as_bytes()),
        );
        inv.push_header(
            HeaderName::Supported,
            Bytes::from_static(self.supported().as_bytes()),
        );
        if let Some((n, v)) = self.session_timer_offer() {
            inv.push_header(n, v);
        }
        inv.push_header(HeaderName::UserAgent, self.server_name.clone());
        for (n, v) in extra {
            inv.push_header(n, v);
        }
        inv.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        inv.body = body;
        // The leg keeps this INVITE as long as the call lasts; pushing grew the header
        // list by doubling.
        inv.headers.shrink_to_fit();
        (leg, inv)
    }

    /// Answers a trunk's 401/407 to our INVITE once, with the trunk's credentials: the same
    /// dialog, the next CSeq, a new branch (RFC 3261 §22.2).
    pub(super) fn retry_with_credentials(
        &mut self,
        now: Instant,
        id: CallId,
        key: &TxKey,
        resp: &Message,
    ) -> bool {
        let Some(leg) = self.calls.branch(id, key) else {
            return false;
        };
        let Some((Some((user, password)), false)) =
            leg.ringing().map(|r| (r.credentials.clone(), r.auth_tried))
        else {
            return false;
        };
        let uri = leg
            .invite
            .request_line()
            .map(|r| r.uri.to_string())
            .unwrap_or_default();
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
        let cnonce = format!("{:08x}", self.rng_u64() as u32);
        let Some(authz) = crate::sip::auth::client_authorization(
            &challenge, "INVITE", &uri, &user, &password, &cnonce, 1,
        ) else {
            return false;
        };
        let Some(leg) = self.calls.branch(id, key) else {
            return false;
        };
        if let Some(r) = leg.ringing() {
            r.auth_tried = true;
        }
        leg.dialog.cseq += 1;
        let mut inv = leg.invite.clone();
        inv.set_header(
            HeaderName::CSeq,
            Bytes::from(format!("{} INVITE", leg.dialog.cseq)),
        );
        inv.push_header(answer_name, Bytes::from(authz));
        let peer = leg.dialog.peer.clone();
        let via = self.via_for(&peer);
        inv.set_header(HeaderName::Via, via);
        match self.tx.send_request(now, inv.clone(), peer) {
            Ok(k) => {
                // The new INVITE plays the old one's part (a branch, or the customer).
                let role = self.owners.call(key).map_or(CallTx::Branch, |(_, r)| r);
                self.owners.remove(key);
                self.owners.insert(k.clone(), TxOwner::Call(id, role));
                if let Some(leg) = self.calls.branch(id, key) {
                    leg.invite_key = k;
                    leg.invite = inv;
                }
                tracing::info!(
                    call = %id,
                    "trunk challenged; INVITE sent again with credentials"
                );
                true
            }
            Err(_) => false,
        }
    }
}
