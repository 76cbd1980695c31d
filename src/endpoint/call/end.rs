//! Ending calls: hanging up in the state the call is in, failing it with a status, and
//! `finish`, the one place a call leaves the table (its story and CDR, its queue place,
//! its devices and its media go with it); and `tell`, how every part of the call adds
//! to its story on the way.

use std::time::Instant;

use super::super::{code, Endpoint};
use super::state::{CallId, Role, State, Status};
use crate::cdr::{Disposition, HangupBy};
use crate::sip::msg::StatusCode;
use crate::story::Event;

/// What an unanswered call's hang-up tells the caller, and how the CDR files it.
pub(super) fn hangup_code(explicit: Option<u16>, status: Option<Status>) -> (u16, Disposition) {
    let n = explicit.unwrap_or(match status {
        Some(Status::Busy) => 486,
        Some(Status::Unavailable) => 404,
        Some(Status::Failed) => 503,
        Some(Status::Forbidden) => 403,
        _ => 480,
    });
    let disp = match n {
        _ if explicit.is_none() && status == Some(Status::Offline) => Disposition::Unavailable,
        486 | 600 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        404 | 604 => Disposition::Unavailable,
        _ => Disposition::Failed,
    };
    (n, disp)
}

impl Endpoint {
    /// `event` happened to call `id` now.
    pub(in crate::endpoint) fn tell(&mut self, now: Instant, id: CallId, event: Event) {
        let at = self.unix_ms(now);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.story.tell(at, event);
        }
    }

    /// The dialplan's hang-up: BYE an answered caller, or refuse an unanswered one.
    pub(in crate::endpoint) fn hang_up(&mut self, now: Instant, id: CallId, explicit: Option<u16>) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.answered {
            self.bye_caller(now, id);
            self.finish(now, id, Disposition::Answered, 200, HangupBy::System);
        } else {
            let (n, disp) = hangup_code(
                explicit,
                c.cursor.vars.get("status").and_then(|s| Status::parse(s)),
            );
            self.fail_call(now, id, code(n), disp);
        }
    }

    /// Ends a call that was never answered: final response to A, CDR, media.
    pub(super) fn fail_call(
        &mut self,
        now: Instant,
        id: CallId,
        code: StatusCode,
        disp: Disposition,
    ) {
        self.respond_a(now, id, code, None);
        self.finish(now, id, disp, code.as_u16(), HangupBy::System);
    }

    /// The call is over: CDR, media freed, B detached if still ringing, tables cleaned.
    pub(super) fn finish(
        &mut self,
        now: Instant,
        id: CallId,
        disp: Disposition,
        sip_code: u16,
        by: HangupBy,
    ) {
        self.detach_b(now, id);
        if let Some(d) = self
            .calls
            .calls
            .get_mut(&id)
            .and_then(|c| c.callback.as_mut())
            .and_then(|cb| cb.ringing.take())
        {
            self.detach_branch(now, d);
        }
        let unix = self.unix_ms(now);
        let Some(mut c) = self.calls.calls.remove(&id) else {
            return;
        };
        self.tolls.ended(id);
        if let State::Parked(slot) = &c.state {
            // Its slot is free again.
            if self.calls.parked.get(slot) == Some(&id) {
                self.calls.parked.remove(slot);
                self.notify_line(now, slot);
            }
        }
        // A callback is answered when the customer is, not when the agent is.
        let disp = match &c.callback {
            Some(_) if c.caller().is_none() && disp == Disposition::Answered => {
                Disposition::NoAnswer
            }
            _ => disp,
        };
        c.story.tell(
            unix,
            Event::Ended {
                disposition: disp,
                sip_code,
                by,
            },
        );
        tracing::info!(
            call = %id,
            disposition = disp.as_str(),
            sip_code,
            by = by.as_str(),
            "call ended"
        );
        self.calls.records.push_back(c.story.record());
        let caller = c.callback.as_ref().map_or(id, |cb| cb.request);
        if caller != id {
            self.callback_call_gone(caller);
        }
        if let Some(q) = c.queue.take() {
            self.queue_call_ended(now, caller, q);
        }
        match &c.callback {
            // The call that asked for a callback is gone: its request may be offered.
            None => self.callback_asked_call_ended(now, id),
            Some(cb) => self.callback_finished(now, cb.request, cb.missed),
        }
        for ext in std::mem::take(&mut c.devices) {
            self.device_free(now, &ext);
        }
        // The legs go with their dialogs and media; our answered INVITEs (to B, and a
        // callback's to its customer) end with the call.
        let kept = c.callback.as_mut().and_then(|cb| cb.media.take());
        for m in [c.dial_media, kept].into_iter().flatten() {
            self.calls.close_media(m);
        }
        for (leg, role) in std::mem::take(&mut c.legs) {
            if let Some(l) = self.calls.remove_leg(leg) {
                if role == Role::Caller {
                    self.calls.by_a_invite.remove(&l.invite_key);
                }
                self.owners.forget_call_tx(&l.invite_key);
            }
        }
        self.consult_ended(now, c.consult.take());
        if let Some(l) = c.leaving.take() {
            self.send_bye(now, l.leg);
            self.leaving_gone(l.leg);
        }
        if let Some(b) = c.bridge.take() {
            self.calls.drop_bridge(b.key);
        }
    }

    /// Ends every call for a shutdown: BYE to answered legs, 503 to unanswered callers,
    /// callees still ringing cancelled; each call leaves its CDR.
    pub(in crate::endpoint) fn end_all_calls(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.calls.keys().copied().collect();
        for id in ids {
            let Some((answered, bridged)) =
                self.calls.calls.get(&id).map(|c| (c.answered, c.bridged()))
            else {
                continue;
            };
            if answered {
                self.bye_caller(now, id);
                if bridged {
                    self.bye_callee(now, id);
                }
                self.finish(now, id, Disposition::Answered, 200, HangupBy::System);
            } else {
                self.fail_call(
                    now,
                    id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Disposition::Failed,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_calls_code_and_disposition_follow_its_status() {
        let cases = [
            (None, Some(Status::Busy), 486, Disposition::Busy),
            (
                None,
                Some(Status::Unavailable),
                404,
                Disposition::Unavailable,
            ),
            (None, Some(Status::Failed), 503, Disposition::Failed),
            (None, Some(Status::NoAnswer), 480, Disposition::NoAnswer),
            (None, Some(Status::Offline), 480, Disposition::Unavailable),
            (None, None, 480, Disposition::NoAnswer),
            (Some(600), None, 600, Disposition::Busy),
            (Some(408), None, 408, Disposition::NoAnswer),
            (
                Some(604),
                Some(Status::Offline),
                604,
                Disposition::Unavailable,
            ),
            (Some(480), Some(Status::Offline), 480, Disposition::NoAnswer),
            (Some(500), None, 500, Disposition::Failed),
        ];
        for (explicit, status, code, disp) in cases {
            assert_eq!(
                hangup_code(explicit, status),
                (code, disp),
                "{explicit:?} {status:?}"
            );
        }
    }
}
