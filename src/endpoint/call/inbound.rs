//! A new INVITE from outside: loop and hop checks, who the caller is (trunk by address or
//! digest, extension, Privacy), the offer, and the call it starts (or the CDR of one
//! refused before it started).

use bytes::Bytes;
use std::time::Instant;

use super::super::{code, Endpoint};
use super::state::{Call, Controller, Leg};
use crate::cdr::{Disposition, HangupBy};
use crate::sdp::Sdp;
use crate::sip::dialog::uas_dialog;
use crate::sip::header::{self};
use crate::sip::msg::{HeaderName, Message, StatusCode};
use crate::sip::transaction::{Peer, TxKey};
use crate::story::{Event, Start, Story};

impl Endpoint {
    /// A new INVITE (no To tag): identify the caller (a trunk by its address, else an
    /// extension by digest), find its route, and start the call.
    pub(in crate::endpoint) fn on_invite(
        &mut self,
        now: Instant,
        key: TxKey,
        msg: Message,
        peer: Peer,
    ) {
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
                let Some(user) =
                    self.authenticate(now, &key, &msg, &peer, crate::endpoint::AuthKind::Proxy)
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
        if !self.session_interval_ok(now, &key, &msg) {
            return;
        }
        let replaces = HeaderName::Other(Bytes::from_static(b"Replaces"));
        if msg.header(&replaces).is_some() {
            // Not a new call: one of ours moving to this phone, if it may.
            if trunk.is_some() {
                let warn = Bytes::from_static(
                    b"399 switchboard \"only an extension may replace a dialog\"",
                );
                let extra = vec![(HeaderName::Other(Bytes::from_static(b"Warning")), warn)];
                self.reply(now, &key, &msg, code(403), extra);
                return;
            }
            return self.on_replacing_invite(now, key, msg, peer, &caller, offer);
        }
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
        let a = uas_dialog(&msg, &peer, local_tag);
        let trunk_call = trunk.is_some();
        let caller_ext = caller.clone();
        let story = Story::begin(
            id.0,
            Start {
                sip_call_id: String::from_utf8_lossy(&a.call_id).into_owned(),
                caller: caller.clone(),
                callee: callee.clone(),
                did: trunk.as_ref().map(|_| callee.clone()),
                trunk: trunk.as_ref().map(|t| t.name.clone()),
                callback_of: None,
            },
            self.unix_ms(now),
        );
        tracing::info!(call = %id, %caller, %callee, trunk = trunk.as_ref().map(|t| t.name.as_str()), "call started");
        self.calls.by_a_invite.insert(key.clone(), id);
        let a = self.calls.add_leg(Leg {
            sdp: Some(offer),
            ..Leg::new(id, a, (key, msg), Controller::Script)
        });
        let call = Call::new(now, Some(a), (plan, cursor), mf, story);
        self.calls.calls.insert(
            id,
            Box::new(Call {
                from_trunk: trunk.map(|t| t.name),
                privacy,
                ..call
            }),
        );
        if !trunk_call {
            self.device_in_use(now, id, &caller_ext);
        }
        self.calls.refresh_later(id, now);
        self.run_dialplan(now, id);
    }

    /// The record of a call refused before it started (bad offer, no route): it still
    /// counts, with a story of its start and its end.
    pub(super) fn refused_cdr(
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
        let start = Start {
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
            callback_of: None,
        };
        let mut story = Story::begin(id, start, t);
        story.tell(
            t,
            Event::Ended {
                disposition,
                sip_code,
                by: HangupBy::System,
            },
        );
        self.calls.records.push_back(story.record());
    }
}
