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

use super::leg::Retransmit2xx;
use super::state::{CallTimer, Controller, Leg, Ring, Role, State};
use crate::endpoint::{code, Endpoint};
use crate::sdp::{Codec, Sdp};
use crate::sip::dialog::uas_dialog;
use crate::sip::msg::{HeaderName, Message, StatusCode};
use crate::sip::replaces::Replaces;
use crate::sip::transaction::{response_to, Peer, TxKey};
use crate::story::{Event, Party};

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
            // A device still being rung: taking its ring is a pickup.
            return refuse(
                self,
                403,
                "picking up a ringing call by Replaces is not supported yet",
            );
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
        let Some(m) = self.calls.reserve_media(id) else {
            return refuse(self, 503, "no RTP port free");
        };
        let answer = match offer.answer_for(self.media_ip(&peer), m.port, id.0) {
            Ok(a) => a,
            Err(_) => {
                self.calls.release_media(m);
                return refuse(self, 488, "no codec in common");
            }
        };
        let format = |want: &dyn Fn(Option<Codec>) -> bool| {
            answer
                .audio()
                .and_then(|a| a.formats.iter().find(|f| want(f.codec())).map(|f| f.pt))
        };
        let pt = format(&|c| matches!(c, Some(Codec::Pcmu | Codec::Pcma))).unwrap_or(0);
        let te_pt = format(&|c| c == Some(Codec::TelephoneEvent));
        tracing::info!(call = %id, %ext, "dialog replaced by a new one");
        // The old dialog goes; the new one takes its place and role.
        self.send_bye(now, old);
        if let Some(l) = self.calls.remove_leg(old) {
            self.calls.by_a_invite.remove(&l.invite_key);
            self.owners.forget_call_tx(&l.invite_key);
        }
        self.calls.open_parked(m, offer.audio_target());
        self.calls.law(m.key, pt);
        let body = Bytes::from(answer.to_bytes());
        let mut dialog = uas_dialog(&msg, &peer, Bytes::from(self.tag()));
        dialog.sdp_sent = Some(body.clone());
        let controller = match role {
            Role::Caller => Controller::Script,
            Role::Callee => Controller::Dial(Ring {
                answered: true,
                ..Ring::default()
            }),
        };
        let mut ok = response_to(
            &msg,
            StatusCode::OK,
            Some(&String::from_utf8_lossy(&dialog.local_tag)),
        );
        ok.push_header(HeaderName::Contact, self.contact_value(&peer));
        ok.push_header(HeaderName::Server, self.server_name.clone());
        ok.push_header(
            HeaderName::Allow,
            Bytes::from_static(crate::endpoint::ALLOW.as_bytes()),
        );
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
        let new = self.calls.add_leg(Leg {
            sdp: Some(offer),
            media: Some(m),
            pt,
            te_pt,
            ok: Some(retransmit),
            ..Leg::new(id, dialog, (key, msg), controller)
        });
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        for (l, _) in c.legs.iter_mut().filter(|(l, _)| *l == old) {
            *l = new;
        }
        c.on_hold = None;
        let timer = match role {
            Role::Caller => CallTimer::OkRetransmit,
            Role::Callee => CallTimer::CalleeOkRetransmit,
        };
        self.calls.arm(id, timer, first);
        self.calls.join(id, [m.key, theirs.key]);
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
}
