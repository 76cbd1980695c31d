//! Session timers negotiated with RFC 4028's headers, per leg.
//!
//! With refreshes on (`[calls] session_refresh_s`), we support `timer`: every INVITE we
//! send asks for `Session-Expires` of twice the refresh interval, and a caller's
//! `Session-Expires` (and `Min-SE`) is honoured in our 2xx, with the refresher it chose,
//! or us. A leg so negotiated is refreshed on its own interval: by us at half of it (an
//! UPDATE without a body where the party allows UPDATE, else a re-INVITE repeating what it
//! agreed), or by the party, whose refresh (re-INVITE or UPDATE) we answer with the
//! interval; a party that should refresh and does not is hung up on a third of the
//! interval (32 s at most) before it runs out (§10), and the call ends with its record. A
//! leg without the headers keeps the plain refresh of refresh.rs. An interval below 90 s
//! (Min-SE, §5) is refused with 422.
//!
//! Owns each leg's [`SessionTimer`] and the headers that carry it; the sweep that calls
//! it and the re-INVITE machinery are refresh.rs's.

use bytes::Bytes;
use std::time::{Duration, Instant};

use super::state::{CallId, LegId};
use crate::endpoint::owner::{CallTx, TxOwner};
use crate::endpoint::Endpoint;
use crate::sip::msg::{HeaderName, Message, Method};
use crate::sip::transaction::TxKey;

/// The smallest interval we take (RFC 4028 §4: never below 90 s).
pub(in crate::endpoint) const MIN_SE: u64 = 90;

/// Who refreshes a leg's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) enum Refresher {
    Us,
    Party,
}

/// A leg's negotiated session timer.
#[derive(Clone, Copy, Debug)]
pub(in crate::endpoint) struct SessionTimer {
    /// The interval agreed.
    pub(in crate::endpoint) expires: Duration,
    pub(in crate::endpoint) refresher: Refresher,
    /// When the session was last refreshed (or began).
    pub(in crate::endpoint) last: Instant,
    /// The party lists `timer`: our 2xx to it require it (§9).
    party_supports: bool,
    /// The party accepts UPDATE: our refresh is one, without a body.
    update: bool,
}

impl SessionTimer {
    /// When the leg next needs us: our refresh at half the interval, or the party's
    /// silence at the interval less a third of it, 32 s at most (§10).
    pub(in crate::endpoint) fn due(&self) -> Instant {
        match self.refresher {
            Refresher::Us => self.last + self.expires / 2,
            Refresher::Party => {
                self.last + self.expires - (self.expires / 3).min(Duration::from_secs(32))
            }
        }
    }

    /// Its `Session-Expires` value in a message whose sender is the UAC (`party_is_uac`:
    /// the party sent the request it belongs to).
    fn value(&self, party_is_uac: bool) -> Bytes {
        let who = match (self.refresher, party_is_uac) {
            (Refresher::Party, true) | (Refresher::Us, false) => "uac",
            _ => "uas",
        };
        Bytes::from(format!("{};refresher={who}", self.expires.as_secs()))
    }
}

/// A `Session-Expires` header: its interval in seconds, and whether its refresher is the
/// UAC (`Some(true)`), the UAS (`Some(false)`) or not said.
fn session_expires(m: &Message) -> Option<(u64, Option<bool>)> {
    let v = m.header(&HeaderName::SessionExpires)?;
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split(';');
    let secs = parts.next()?.trim().parse().ok()?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .and_then(|(_, v)| match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(true),
            "uas" => Some(false),
            _ => None,
        });
    Some((secs, refresher))
}

fn min_se(m: &Message) -> Option<u64> {
    let v = m.header(&HeaderName::MinSe)?;
    std::str::from_utf8(v)
        .ok()?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn supports_timer(m: &Message) -> bool {
    m.lists(&HeaderName::Supported, b"timer") || m.lists(&HeaderName::Require, b"timer")
}

impl Endpoint {
    /// The extensions we carry out, for Supported and for judging a Require.
    pub(in crate::endpoint) fn supported(&self) -> &'static str {
        if self.calls.session_refresh.is_some() {
            "100rel, replaces, timer"
        } else {
            "100rel, replaces"
        }
    }

    /// A new INVITE asking for an interval below ours (or below its own Min-SE) is
    /// answered 422 with our Min-SE (§8.1): false then.
    pub(super) fn session_interval_ok(&mut self, now: Instant, key: &TxKey, msg: &Message) -> bool {
        if self.calls.session_refresh.is_none() {
            return true;
        }
        match session_expires(msg) {
            Some((secs, _)) if secs < MIN_SE => {
                let extra = vec![(HeaderName::MinSe, Bytes::from(MIN_SE.to_string()))];
                self.reply(now, key, msg, super::super::code(422), extra);
                false
            }
            _ => true,
        }
    }

    /// Our INVITE's ask: twice the refresh interval, the refresher left to the party.
    pub(super) fn session_timer_offer(&self) -> Option<(HeaderName, Bytes)> {
        let every = self.calls.session_refresh?;
        let secs = (every.as_secs() * 2).max(MIN_SE);
        Some((HeaderName::SessionExpires, Bytes::from(secs.to_string())))
    }

    /// Our 2xx to the caller of call `id` is being sent at `now`: the caller's leg takes
    /// the timer its INVITE asked for, and the 2xx's headers saying so (none when it
    /// asked for nothing: the plain refresh goes on).
    pub(super) fn caller_session_timer(
        &mut self,
        now: Instant,
        id: CallId,
    ) -> Vec<(HeaderName, Bytes)> {
        let asked = self
            .calls
            .caller(id)
            .and_then(|a| self.timer_asked(now, &a.invite));
        let (Some(t), Some(a)) = (asked, self.calls.caller_mut(id)) else {
            return Vec::new();
        };
        a.timer = Some(t);
        tracing::debug!(call = %id, secs = t.expires.as_secs(), refresher = ?t.refresher, "session timer with the caller");
        Self::response_headers(&t)
    }

    /// The timer an INVITE we answer at `now` asks for, if any (none when it asks for
    /// nothing, or refreshes are off), and the headers of our 2xx granting it.
    pub(super) fn invite_session_timer(
        &self,
        now: Instant,
        invite: &Message,
    ) -> (Option<SessionTimer>, Vec<(HeaderName, Bytes)>) {
        match self.timer_asked(now, invite) {
            Some(t) => (Some(t), Self::response_headers(&t)),
            None => (None, Vec::new()),
        }
    }

    /// What `invite` asks for: its interval (twice ours if it named none, never below
    /// its own Min-SE or ours) and its refresher, which is the sender only if it said
    /// so and supports `timer` (§9); otherwise us.
    fn timer_asked(&self, now: Instant, invite: &Message) -> Option<SessionTimer> {
        let every = self.calls.session_refresh?;
        let asked = session_expires(invite);
        let party_supports = supports_timer(invite);
        if asked.is_none() && !party_supports {
            return None;
        }
        let floor = MIN_SE.max(min_se(invite).unwrap_or(0));
        let secs = asked.map_or(every.as_secs() * 2, |(s, _)| s).max(floor);
        let refresher = match asked {
            Some((_, Some(true))) if party_supports => Refresher::Party,
            _ => Refresher::Us,
        };
        Some(SessionTimer {
            expires: Duration::from_secs(secs),
            refresher,
            last: now,
            party_supports,
            update: invite.lists(&HeaderName::Allow, b"UPDATE"),
        })
    }

    /// The headers of our 2xx to a request the party sent on a leg with timer `t`.
    fn response_headers(t: &SessionTimer) -> Vec<(HeaderName, Bytes)> {
        let mut h = vec![(HeaderName::SessionExpires, t.value(true))];
        if t.party_supports {
            h.push((HeaderName::Require, Bytes::from_static(b"timer")));
        }
        h
    }

    /// The headers of our 2xx to the party's request on `leg`, if it has a timer.
    pub(super) fn timer_response_headers(&self, leg: LegId) -> Vec<(HeaderName, Bytes)> {
        self.calls
            .legs
            .get(leg)
            .and_then(|l| l.timer.as_ref())
            .map(Self::response_headers)
            .unwrap_or_default()
    }

    /// The headers of a re-INVITE or UPDATE we send on `leg`, if it has a timer.
    pub(super) fn timer_request_headers(&self, leg: LegId) -> Vec<(HeaderName, Bytes)> {
        let Some(t) = self.calls.legs.get(leg).and_then(|l| l.timer.as_ref()) else {
            return Vec::new();
        };
        vec![
            (HeaderName::SessionExpires, t.value(false)),
            (
                HeaderName::Supported,
                Bytes::from_static(self.supported().as_bytes()),
            ),
        ]
    }

    /// A 2xx `resp` to our INVITE, re-INVITE or UPDATE on `leg` at `now`: the session is
    /// refreshed, on the terms it states (§7.2); a first 2xx without them leaves the leg
    /// to the plain refresh.
    pub(super) fn session_timer_answered(&mut self, now: Instant, leg: LegId, resp: &Message) {
        if self.calls.session_refresh.is_none() {
            return;
        }
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        let stated = session_expires(resp);
        match (&mut l.timer, stated) {
            (Some(t), Some((secs, who))) => {
                t.expires = Duration::from_secs(secs.max(MIN_SE));
                if let Some(uac) = who {
                    t.refresher = if uac { Refresher::Us } else { Refresher::Party };
                }
                t.last = now;
            }
            (Some(t), None) => t.last = now,
            (None, Some((secs, who))) => {
                l.timer = Some(SessionTimer {
                    expires: Duration::from_secs(secs.max(MIN_SE)),
                    // The UAS says who refreshes; unsaid, we do.
                    refresher: if who == Some(false) {
                        Refresher::Party
                    } else {
                        Refresher::Us
                    },
                    last: now,
                    party_supports: supports_timer(resp),
                    update: resp.lists(&HeaderName::Allow, b"UPDATE"),
                });
            }
            (None, None) => {}
        }
    }

    /// The party on `leg` sent a re-INVITE or UPDATE at `now`: its session is refreshed,
    /// on the terms the request states (§9).
    pub(super) fn party_refreshed(&mut self, now: Instant, leg: LegId, msg: &Message) {
        let Some(t) = self.calls.legs.get_mut(leg).and_then(|l| l.timer.as_mut()) else {
            return;
        };
        if let Some((secs, who)) = session_expires(msg) {
            t.expires = Duration::from_secs(secs.max(MIN_SE));
            if let Some(uac) = who {
                t.refresher = if uac { Refresher::Party } else { Refresher::Us };
            }
        }
        t.last = now;
    }

    /// The sweep's look at the negotiated legs: those we refresh and whose time has come
    /// get their refresh; those whose party should have refreshed and has not are hung
    /// up, and their call ends (408, by the system).
    pub(super) fn session_timers_due(&mut self, now: Instant) {
        let mut due: Vec<(CallId, LegId, Refresher)> = Vec::new();
        for (&id, c) in &self.calls.calls {
            if !c.answered {
                continue;
            }
            for &(leg, _) in &c.legs {
                if let Some(t) = self.calls.legs.get(leg).and_then(|l| l.timer.as_ref()) {
                    if t.due() <= now {
                        due.push((id, leg, t.refresher));
                    }
                }
            }
        }
        for (id, leg, refresher) in due {
            match refresher {
                Refresher::Us => self.send_timer_refresh(now, id, leg),
                Refresher::Party => {
                    if self.calls.calls.contains_key(&id) {
                        tracing::info!(call = %id, "the party did not refresh its session");
                        self.send_bye(now, leg);
                        self.party_gone(now, id, leg, 408);
                    }
                }
            }
        }
    }

    /// Our refresh on `leg`: an UPDATE without a body where the party allows it, else a
    /// re-INVITE repeating what it agreed; not while an offer is in flight on the call
    /// (the next sweep tries again).
    fn send_timer_refresh(&mut self, now: Instant, id: CallId, leg: LegId) {
        let busy = self.calls.calls.get(&id).is_none_or(|c| {
            c.legs
                .iter()
                .any(|&(l, _)| self.calls.legs.get(l).is_some_and(|l| l.reoffer.is_some()))
        });
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        let Some(t) = l.timer.as_mut().filter(|_| !busy) else {
            return;
        };
        // Not asked again until this one is answered or fails.
        t.last = now;
        let update = t.update;
        let headers = self.timer_request_headers(leg);
        if !update {
            let Some(body) = self
                .calls
                .legs
                .get(leg)
                .and_then(|l| l.dialog.sdp_sent.clone())
            else {
                return;
            };
            self.send_our_reinvite(now, id, leg, body, CallTx::Refresh(leg), headers);
            return;
        }
        let Some(l) = self.calls.legs.get_mut(leg) else {
            return;
        };
        l.dialog.cseq += 1;
        let dialog = l.dialog.clone();
        let mut req = self.leg_request(Method::Update, &dialog, dialog.cseq);
        req.push_header(HeaderName::Contact, self.contact_value(&dialog.peer));
        for (n, v) in headers {
            req.push_header(n, v);
        }
        match self.tx.send_request(now, req, dialog.peer) {
            Ok(k) => self
                .owners
                .insert(k, TxOwner::Call(id, CallTx::Refresh(leg))),
            Err(e) => tracing::debug!(error = %e, "UPDATE not sent"),
        }
    }
}
