//! Subscriptions (RFC 6665) and their NOTIFYs, for two event packages: message-waiting
//! indication (RFC 3842: a phone SUBSCRIBEs to its own box with `Event: message-summary`)
//! and busy lamps (RFC 4235: `Event: dialog` for an extension's or a parking slot's line).
//! Either way the phone gets a NOTIFY at once, on every change and when the subscription
//! ends. Part of the endpoint; it owns the subscriptions only, and reads the boxes' counts
//! from [`super::vm`] and the lines' state from [`super::blf`].

use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::code;
use super::owner::TxOwner;
use super::{AuthKind, Endpoint};
use crate::sip::dialog::{uas_dialog, Dialog};
use crate::sip::msg::{HeaderName, Message, Method, StatusCode};
use crate::sip::transaction::{response_to, Peer, TxKey};

/// Longest subscription granted; phones refresh before it lapses.
const MAX_EXPIRES: u32 = 3600;
/// Shortest subscription granted (shorter requests are raised to it).
const MIN_EXPIRES: u32 = 60;
/// Most subscriptions per box (one per phone, and some spare for refreshes gone astray).
const MAX_PER_BOX: usize = 16;

fn event_header() -> HeaderName {
    HeaderName::Event
}

fn sub_state_header() -> HeaderName {
    HeaderName::Other(Bytes::from_static(b"Subscription-State"))
}

fn allow_events() -> (HeaderName, Bytes) {
    (
        HeaderName::Other(Bytes::from_static(b"Allow-Events")),
        Bytes::from_static(b"message-summary, dialog"),
    )
}

/// What a subscription watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// A voicemail box's counts (`message-summary`).
    Mailbox(String),
    /// An extension's or a parking slot's line (`dialog`: the busy lamp).
    Line(String),
}

impl Watch {
    fn name(&self) -> &str {
        match self {
            Self::Mailbox(n) | Self::Line(n) => n,
        }
    }
}

struct Subscription {
    watch: Watch,
    leg: Dialog,
    /// The dialog-info document's version: one higher in each NOTIFY (RFC 4235 §4.1).
    version: u32,
    /// The line state the last NOTIFY showed, so a change that is none sends nothing.
    shown: Option<super::blf::Line>,
    expires_at: Instant,
    /// A NOTIFY in flight; a change meanwhile waits for its answer (`stale`).
    pending: Option<TxKey>,
    stale: bool,
}

/// All message-summary subscriptions.
#[derive(Default)]
pub(super) struct Subscriptions {
    next: u64,
    subs: HashMap<u64, Subscription>,
    by_dialog: HashMap<(Bytes, Bytes), u64>,
}

impl Subscriptions {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.subs.values().map(|s| s.expires_at).min()
    }
}

/// The package name of an Event header value, lower case.
fn event_package(m: &Message) -> Option<String> {
    let v = m.header(&event_header())?;
    let s = std::str::from_utf8(v).ok()?;
    Some(s.split(';').next()?.trim().to_ascii_lowercase())
}

impl Endpoint {
    /// A SUBSCRIBE outside any dialog: a phone asks for its box's counts, or for a
    /// line's state (any extension's or parking slot's: a receptionist's lamps).
    pub(super) fn on_subscribe(&mut self, now: Instant, key: &TxKey, req: &Message, peer: &Peer) {
        let line = match event_package(req).as_deref() {
            Some("message-summary") => false,
            Some("dialog") => true,
            _ => {
                self.reply(now, key, req, code(489), vec![allow_events()]);
                return;
            }
        };
        let Some(user) = self.authenticate(now, key, req, peer, AuthKind::Www) else {
            return;
        };
        let target = req
            .request_line()
            .and_then(|r| r.uri.user_decoded())
            .unwrap_or_default();
        let watch = if line {
            if !self.is_line(&target) {
                self.reply(now, key, req, StatusCode::NOT_FOUND, vec![]);
                return;
            }
            Watch::Line(target)
        } else {
            // A phone watches its own box only: counts say who called.
            if target != user.extension {
                self.forbid(key, req, "may only watch its own voicemail box");
                return;
            }
            Watch::Mailbox(user.extension)
        };
        let expires = self.granted_expires(req);
        let tag = Bytes::from(self.tag());
        let leg = uas_dialog(req, peer, tag);
        if expires == 0 {
            // A one-time fetch: the counts, and the subscription ends there.
            self.answer_subscribe(now, key, req, &leg, 0);
            let mut sub = Subscription {
                watch,
                leg,
                version: 0,
                shown: None,
                expires_at: now,
                pending: None,
                stale: false,
            };
            self.send_notify(now, &mut sub, 0);
            return;
        }
        let count = self.mwi.subs.values().filter(|s| s.watch == watch).count();
        if count >= MAX_PER_BOX {
            tracing::warn!(watch = %watch.name(), "too many subscriptions");
            self.reply(now, key, req, StatusCode::SERVICE_UNAVAILABLE, vec![]);
            return;
        }
        self.answer_subscribe(now, key, req, &leg, expires);
        let id = self.mwi.next;
        self.mwi.next += 1;
        self.mwi
            .by_dialog
            .insert((leg.call_id.clone(), leg.local_tag.clone()), id);
        match &watch {
            Watch::Mailbox(b) => {
                tracing::info!(mailbox = %b, expires, "message-waiting subscribed")
            }
            Watch::Line(l) => tracing::info!(line = %l, expires, "busy lamp subscribed"),
        }
        let sub = Subscription {
            watch,
            leg,
            version: 0,
            shown: None,
            expires_at: now + Duration::from_secs(expires.into()),
            pending: None,
            stale: false,
        };
        self.mwi.subs.insert(id, sub);
        self.notify_one(now, id);
    }

    /// A SUBSCRIBE inside one of our subscriptions (a refresh or an unsubscribe); false if
    /// no subscription knows its dialog.
    pub(super) fn on_subscribe_refresh(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
    ) -> bool {
        let Some(tag) = req.to_hdr().ok().and_then(|t| t.tag().cloned()) else {
            return false;
        };
        let call_id = req.call_id().cloned().unwrap_or_default();
        let Some(&id) = self.mwi.by_dialog.get(&(call_id, tag)) else {
            return false;
        };
        let expires = self.granted_expires(req);
        let Some(leg) = self.mwi.subs.get(&id).map(|s| s.leg.clone()) else {
            return false;
        };
        self.answer_subscribe(now, key, req, &leg, expires);
        if let Some(s) = self.mwi.subs.get_mut(&id) {
            s.expires_at = now + Duration::from_secs(expires.into());
        }
        if expires == 0 {
            tracing::info!("unsubscribed");
            self.end_subscription(now, id, "timeout");
        } else {
            self.notify_one(now, id);
        }
        true
    }

    fn granted_expires(&self, req: &Message) -> u32 {
        let asked = req
            .header(&HeaderName::Expires)
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok())
            .unwrap_or(MAX_EXPIRES);
        if asked == 0 {
            0
        } else {
            asked.clamp(MIN_EXPIRES, MAX_EXPIRES)
        }
    }

    fn answer_subscribe(
        &mut self,
        now: Instant,
        key: &TxKey,
        req: &Message,
        leg: &Dialog,
        expires: u32,
    ) {
        let tag = String::from_utf8_lossy(&leg.local_tag).into_owned();
        let mut resp = response_to(req, StatusCode::OK, Some(&tag));
        resp.push_header(HeaderName::Expires, Bytes::from(expires.to_string()));
        resp.push_header(HeaderName::Contact, self.contact_value(&leg.peer));
        resp.push_header(HeaderName::Server, self.server_name.clone());
        if let Err(e) = self.tx.respond(now, key, resp) {
            tracing::warn!(error = %e, "could not answer SUBSCRIBE");
        }
    }

    /// Tells every phone watching `mailbox` its counts.
    pub(super) fn notify_mailbox(&mut self, now: Instant, mailbox: &str) {
        let ids: Vec<u64> = self
            .mwi
            .subs
            .iter()
            .filter(|(_, s)| s.watch == Watch::Mailbox(mailbox.to_string()))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.notify_one(now, id);
        }
    }

    /// Tells every phone watching line `line` its state, if it changed since the last
    /// NOTIFY each got.
    pub(super) fn notify_line(&mut self, now: Instant, line: &str) {
        if self.mwi.subs.is_empty() {
            return;
        }
        let watch = Watch::Line(line.to_string());
        let ids: Vec<u64> = self
            .mwi
            .subs
            .iter()
            .filter(|(_, s)| s.watch == watch)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let state = self.line_state(line);
        for id in ids {
            if self
                .mwi
                .subs
                .get(&id)
                .is_some_and(|s| s.shown != Some(state.clone()))
            {
                self.notify_one(now, id);
            }
        }
    }

    /// Sends subscription `id` its counts, or marks it to get them once the NOTIFY in
    /// flight is answered (so the phone never sees an older count last).
    fn notify_one(&mut self, now: Instant, id: u64) {
        let Some(mut sub) = self.mwi.subs.remove(&id) else {
            return;
        };
        if sub.pending.is_some() {
            sub.stale = true;
        } else {
            let left = sub.expires_at.saturating_duration_since(now).as_secs() as u32;
            if let Some(k) = self.send_notify(now, &mut sub, left) {
                self.owners.insert(k, TxOwner::Notify(id));
            }
        }
        self.mwi.subs.insert(id, sub);
    }

    /// Sends the NOTIFY: active with `left` seconds, or terminated when `left` is 0.
    fn send_notify(&mut self, now: Instant, sub: &mut Subscription, left: u32) -> Option<TxKey> {
        let (package, content_type, body) = match &sub.watch {
            Watch::Mailbox(mailbox) => {
                let (new, old) = self.mailbox_counts(mailbox);
                let body = format!(
                    "Messages-Waiting: {}\r\nMessage-Account: sip:{}@{}\r\nVoice-Message: {new}/{old} (0/0)\r\n",
                    if new > 0 { "yes" } else { "no" },
                    mailbox,
                    self.domain
                );
                (
                    "message-summary",
                    "application/simple-message-summary",
                    body,
                )
            }
            Watch::Line(line) => {
                let state = self.line_state(line);
                let body = self.dialog_info(line, &state, sub.version);
                sub.version += 1;
                sub.shown = Some(state);
                ("dialog", "application/dialog-info+xml", body)
            }
        };
        let state = if left == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={left}")
        };
        sub.leg.cseq += 1;
        let mut m = self.leg_request(Method::Notify, &sub.leg, sub.leg.cseq);
        m.push_header(event_header(), Bytes::from_static(package.as_bytes()));
        m.push_header(sub_state_header(), Bytes::from(state));
        m.push_header(HeaderName::Contact, self.contact_value(&sub.leg.peer));
        m.push_header(
            HeaderName::ContentType,
            Bytes::from_static(content_type.as_bytes()),
        );
        m.push_header(HeaderName::UserAgent, self.server_name.clone());
        m.body = Bytes::from(body);
        match self.tx.send_request(now, m, sub.leg.peer.clone()) {
            Ok(k) => {
                sub.pending = Some(k.clone());
                Some(k)
            }
            Err(e) => {
                tracing::warn!(error = %e, watch = %sub.watch.name(), "NOTIFY not sent");
                None
            }
        }
    }

    /// Ends subscription `id` with a last NOTIFY.
    fn end_subscription(&mut self, now: Instant, id: u64, why: &str) {
        let Some(mut sub) = self.mwi.subs.remove(&id) else {
            return;
        };
        self.mwi
            .by_dialog
            .remove(&(sub.leg.call_id.clone(), sub.leg.local_tag.clone()));
        if let Some(k) = sub.pending.take() {
            self.owners.remove(&k);
        }
        tracing::debug!(watch = %sub.watch.name(), why, "subscription ended");
        self.send_notify(now, &mut sub, 0);
    }

    /// Drops subscription `id` without a word (the phone is gone or refused it).
    fn drop_subscription(&mut self, id: u64) {
        if let Some(sub) = self.mwi.subs.remove(&id) {
            self.mwi
                .by_dialog
                .remove(&(sub.leg.call_id.clone(), sub.leg.local_tag.clone()));
            if let Some(k) = &sub.pending {
                self.owners.remove(k);
            }
            tracing::info!(watch = %sub.watch.name(), "subscription dropped");
        }
    }

    /// A response to our NOTIFY `key` of subscription `id`.
    pub(super) fn on_notify_response(&mut self, now: Instant, key: &TxKey, id: u64, msg: &Message) {
        let Some(status) = msg.status() else {
            return;
        };
        if status.is_provisional() {
            return;
        }
        self.owners.remove(key);
        if !status.is_success() {
            // 481 and the like: the phone forgot the subscription (RFC 6665 §4.2.2).
            self.drop_subscription(id);
            return;
        }
        let stale = match self.mwi.subs.get_mut(&id) {
            Some(s) => {
                s.pending = None;
                std::mem::take(&mut s.stale)
            }
            None => false,
        };
        if stale {
            self.notify_one(now, id);
        }
    }

    /// One of our NOTIFYs got no answer: the phone is gone.
    pub(super) fn on_notify_timeout(&mut self, key: &TxKey, id: u64) {
        if self.owners.remove(key).is_some() {
            self.drop_subscription(id);
        }
    }

    /// Subscriptions not refreshed in time end.
    pub(super) fn mwi_timeouts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .mwi
            .subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.end_subscription(now, id, "expired");
        }
    }
}
