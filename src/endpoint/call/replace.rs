//! An INVITE with Replaces (RFC 3891) from one of our extensions: a new dialog takes over
//! one of ours with the same extension, in conversation, so a call moves from one of its
//! phones to another (a desk phone to a softphone, a phone that lost its dialog) without
//! the other party noticing anything but the new phone's audio.
//!
//! The new leg takes the replaced leg's role and place in its call; it gets a media leg of
//! its own, in the call's bridge where the old one was, and the old dialog is hung up.
//! What it cannot carry out it refuses with the status RFC 3891 gives (481 for no such
//! dialog, 486 for `early-only` on one already answered) or 403 with a Warning, and no
//! call changes.

use bytes::Bytes;
use std::time::Instant;

use super::resend::Retransmit2xx;
use super::state::{CallId, CallTimer, Controller, Leg, LegId, MediaLeg, Ring, Role, State};
use crate::endpoint::{code, Endpoint};
use crate::sdp::{Codec, Sdp};
use crate::sip::dialog::uas_dialog;
use crate::sip::msg::{HeaderName, Message, StatusCode};
use crate::sip::replaces::Replaces;
use crate::sip::transaction::{response_to, Peer, TxKey};
use crate::story::{Event, Party};

/// Our side of a new dialog before it is answered: its media leg and our answer.
struct NewLeg {
    media: MediaLeg,
    answer: Sdp,
    pt: u8,
    te_pt: Option<u8>,
}

impl Endpoint {
    /// A new INVITE from extension `ext` (authenticated) with a Replaces header,
    /// offering `offer`: takes over the dialog it names, or is refused.
    pub(in crate::endpoint) fn on_replacing_invite(
        &mut self,
        now: Instant,
        key: TxKey,
        msg: Message,
        peer: Peer,
        ext: &str,
        offer: Sdp,
    ) {
        let refuse = |this: &mut Self, status: u16, why: &'static str| {
            tracing::info!(status, why, "INVITE with Replaces refused");
            let warn = Bytes::from(format!("399 switchboard \"{why}\""));
            let extra = vec![(HeaderName::Other(Bytes::from_static(b"Warning")), warn)];
            this.reply(now, &key, &msg, code(status), extra);
        };
        let replaces = msg.header(&HeaderName::Other(Bytes::from_static(b"Replaces")));
        let Some(r) = replaces.and_then(|r| Replaces::parse(r)) else {
            return refuse(self, 400, "Replaces unreadable");
        };
        let Some((id, old)) = self.replaced_dialog(&r) else {
            return refuse(self, 481, "no such dialog");
        };
        let Some(c) = self.calls.calls.get(&id) else {
            return refuse(self, 481, "no such dialog");
        };
        let Some(role) = c.role(old) else {
            // A device still being rung, named by its lamp: answering it from this phone
            // is a directed pickup.
            if !c.dialing.contains(&old) {
                return refuse(self, 481, "no such dialog");
            }
            if c.queue.is_some() || c.callback.is_some() || !matches!(c.state, State::Ringing) {
                return refuse(self, 403, "picking up this call is not supported yet");
            }
            if c.b_ext.as_deref() == Some(ext) || !self.users.contains_key(ext) {
                return refuse(self, 403, "a phone picks up another extension's call");
            }
            let answer = match self.new_leg_answer(id, &peer, &offer) {
                Ok(a) => a,
                Err((status, why)) => return refuse(self, status, why),
            };
            return self.picked_by_replaces(now, id, (key, msg, peer), offer, answer, ext);
        };
        if role == Role::Caller && !c.answered {
            // An early dialog we did not begin (RFC 3891 §3).
            return refuse(self, 481, "no such dialog");
        }
        if r.early_only {
            return refuse(self, 486, "the dialog is answered already");
        }
        if c.party_ext(old) != Some(ext) {
            return refuse(self, 403, "the dialog to replace is not the caller's own");
        }
        let other = c.other(old);
        let theirs = other
            .and_then(|o| self.calls.legs.get(o))
            .and_then(|l| l.media);
        let (Some(other), Some(theirs), State::Bridged) = (other, theirs, &c.state) else {
            return refuse(self, 403, "only a call in conversation can be taken over");
        };
        let other_held = c.on_hold == Some(other);
        let answer = match self.new_leg_answer(id, &peer, &offer) {
            Ok(a) => a,
            Err((status, why)) => return refuse(self, status, why),
        };
        tracing::info!(call = %id, %ext, "dialog replaced by a new one");
        // The old dialog goes; the new one takes its place and role.
        self.send_bye(now, old);
        if let Some(l) = self.calls.remove_leg(old) {
            self.calls.by_a_invite.remove(&l.invite_key);
            self.owners.forget_call_tx(&l.invite_key);
        }
        let m = answer.media;
        let new = self.take_new_leg(now, id, (key, msg, peer), offer, answer, role);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        for (l, _) in c.legs.iter_mut().filter(|(l, _)| *l == old) {
            *l = new;
        }
        c.on_hold = None;
        self.calls.join(id, [m.key, theirs.key]);
        self.conversation_on(id);
        let party = match role {
            Role::Caller => Party::Caller,
            Role::Callee => Party::Callee,
        };
        self.tell(now, id, Event::Replaced { party });
        if other_held {
            // The party it had on hold is back, now with the new phone.
            self.offer_sendrecv(now, id, other);
        }
    }

    /// Ringing call `q` is picked up by extension `ext`'s new INVITE (answered with
    /// `a`): the phones ringing stop, the caller is answered if it was not yet, and the
    /// new leg is its callee.
    fn picked_by_replaces(
        &mut self,
        now: Instant,
        q: CallId,
        incoming: (TxKey, Message, Peer),
        offer: Sdp,
        a: NewLeg,
        ext: &str,
    ) {
        let rang_at = self
            .calls
            .calls
            .get(&q)
            .and_then(|c| c.b_ext.clone())
            .unwrap_or_default();
        tracing::info!(call = %q, at = %rang_at, by = %ext, "picked up by Replaces");
        self.stop_ringing_for_pickup(now, q, ext);
        let m = a.media;
        let leg = self.take_new_leg(now, q, incoming, offer, a, Role::Callee);
        if let Some(c) = self.calls.calls.get_mut(&q) {
            c.legs.push((leg, Role::Callee));
            c.b_ext = Some(ext.to_string());
        }
        self.device_in_use(now, q, ext);
        let picked = Event::PickedUp {
            at: rang_at,
            by: ext.to_string(),
        };
        self.picked_up(now, q, m.key, picked);
    }

    /// Our answer to a new INVITE offering `offer` from `peer` for call `id`: a media
    /// leg of its own and the description we answer with, or the status and why not.
    fn new_leg_answer(
        &mut self,
        id: CallId,
        peer: &Peer,
        offer: &Sdp,
    ) -> Result<NewLeg, (u16, &'static str)> {
        let m = self
            .calls
            .reserve_media(id)
            .ok_or((503, "no RTP port free"))?;
        let Ok(answer) = offer.answer_for(self.media_ip(peer), m.port, id.0) else {
            self.calls.release_media(m);
            return Err((488, "no codec in common"));
        };
        let format = |want: &dyn Fn(Option<Codec>) -> bool| {
            answer
                .audio()
                .and_then(|a| a.formats.iter().find(|f| want(f.codec())).map(|f| f.pt))
        };
        let pt = format(&|c| matches!(c, Some(Codec::Pcmu | Codec::Pcma))).unwrap_or(0);
        let te_pt = format(&|c| c == Some(Codec::TelephoneEvent));
        Ok(NewLeg {
            media: m,
            answer,
            pt,
            te_pt,
        })
    }

    /// The new INVITE is answered (our 2xx, sent again until its ACK) and its leg is in
    /// the table, in `role` for call `id`, its media leg open (not yet in a bridge).
    fn take_new_leg(
        &mut self,
        now: Instant,
        id: CallId,
        (key, msg, peer): (TxKey, Message, Peer),
        offer: Sdp,
        a: NewLeg,
        role: Role,
    ) -> LegId {
        self.calls.open_parked(a.media, offer.audio_target());
        self.calls.law(a.media.key, a.pt);
        let body = Bytes::from(a.answer.to_bytes());
        let mut dialog = uas_dialog(&msg, &peer, Bytes::from(self.tag()));
        dialog.sdp_sent = Some(body.clone());
        let controller = match role {
            Role::Caller => Controller::Script,
            Role::Callee => Controller::Dial(Ring {
                answered: true,
                ..Ring::default()
            }),
        };
        let tag = String::from_utf8_lossy(&dialog.local_tag).into_owned();
        let (timer, timer_headers) = self.invite_session_timer(now, &msg);
        let mut ok = response_to(&msg, StatusCode::OK, Some(&tag));
        ok.push_header(HeaderName::Contact, self.contact_value(&peer));
        ok.push_header(HeaderName::Server, self.server_name.clone());
        ok.push_header(
            HeaderName::Allow,
            Bytes::from_static(crate::endpoint::ALLOW.as_bytes()),
        );
        for (n, v) in timer_headers {
            ok.push_header(n, v);
        }
        ok.push_header(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        ok.body = body;
        let bytes = ok.to_bytes();
        if let Err(e) = self.tx.respond(now, &key, ok) {
            tracing::debug!(error = %e, "2xx to a replacing INVITE not sent");
        }
        let retransmit = Retransmit2xx::new(bytes, now, self.cfg_t1);
        let first = retransmit.first(now);
        let leg = self.calls.add_leg(Leg {
            sdp: Some(offer),
            media: Some(a.media),
            pt: a.pt,
            te_pt: a.te_pt,
            ok: Some(retransmit),
            timer,
            ..Leg::new(id, dialog, (key, msg), controller)
        });
        let timer = match role {
            Role::Caller => CallTimer::OkRetransmit,
            Role::Callee => CallTimer::CalleeOkRetransmit,
        };
        self.calls.arm(id, timer, first);
        leg
    }
}
