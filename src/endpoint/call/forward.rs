//! Do not disturb and call forwarding as a call meets them: a dial to an extension that
//! is not to be disturbed fails as busy; one that forwards every call, or the call it
//! refused as busy or did not answer, is routed again at the forward's number in the
//! extensions' context (so that number's own rules apply), at most a few forwards deep.
//!
//! Owns only the routing of a forwarded call; the settings are [`crate::endpoint::lines`]'s.

use std::time::Instant;

use super::state::{CallId, State, Status};
use crate::endpoint::lines::ForwardWhy;
use crate::endpoint::Endpoint;
use crate::story::Event;

/// Forwards followed in one call before it is taken for a loop.
const MAX_FORWARDS: u32 = 5;

impl Endpoint {
    /// A dial to extension `ext` for call `id` is about to ring: `Some(started)` when its
    /// line settings decide instead (not to be disturbed: busy; forwarding every call:
    /// routed to the forward, the dial not started). Queue offers are the queue's and
    /// are only refused as busy.
    pub(super) fn line_decides(&mut self, now: Instant, id: CallId, ext: &str) -> Option<bool> {
        if self.lines.dnd(ext) {
            tracing::info!(call = %id, %ext, "do not disturb");
            self.set_status(id, Status::Busy);
            return Some(false);
        }
        let queue = self.calls.calls.get(&id).is_some_and(|c| c.queue.is_some());
        let to = self.lines.forward(ext, ForwardWhy::All)?.to_string();
        if queue {
            return None;
        }
        self.forward_to(now, id, ext, &to, ForwardWhy::All)
            .then_some(false)
    }

    /// A dial of call `id` to extension `ext` failed with `status`: forwarded if the
    /// extension forwards calls it refuses busy or does not answer (or while it is not
    /// registered). True if it was (the call's dialplan now starts at the forward).
    pub(super) fn forward_failed_dial(
        &mut self,
        now: Instant,
        id: CallId,
        ext: &str,
        status: Status,
    ) -> bool {
        let why = match status {
            Status::Busy => ForwardWhy::Busy,
            Status::NoAnswer | Status::Offline => ForwardWhy::NoAnswer,
            _ => return false,
        };
        if self.calls.calls.get(&id).is_none_or(|c| c.queue.is_some()) {
            return false;
        }
        let Some(to) = self.lines.forward(ext, why).map(str::to_string) else {
            return false;
        };
        self.forward_to(now, id, ext, &to, why)
    }

    /// Routes call `id` again at `to` (the forward of `from`) in the extensions' context:
    /// false if it has no route there or the call was forwarded too often already.
    fn forward_to(
        &mut self,
        now: Instant,
        id: CallId,
        from: &str,
        to: &str,
        why: ForwardWhy,
    ) -> bool {
        let plan = self.dialplan.clone();
        let Some(c) = self.calls.calls.get(&id) else {
            return false;
        };
        let hops: u32 = c
            .cursor
            .vars
            .get("forwards")
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        if hops >= MAX_FORWARDS {
            tracing::warn!(call = %id, %from, %to, "too many forwards; not followed");
            return false;
        }
        let Some(mut cursor) = plan.start(&self.default_context, to, c.caller_number()) else {
            tracing::info!(call = %id, %from, %to, "no route to the forward");
            return false;
        };
        for keep in ["transferred_by"] {
            if let Some(v) = c.cursor.vars.get(keep) {
                cursor.vars.insert(keep.into(), v.clone());
            }
        }
        cursor
            .vars
            .insert("forwarded_from".into(), from.to_string());
        cursor
            .vars
            .insert("forwards".into(), (hops + 1).to_string());
        tracing::info!(call = %id, %from, %to, why = why.as_str(), "forwarded");
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return false;
        };
        c.plan = plan;
        c.cursor = cursor;
        c.state = State::Routing;
        c.failures.clear();
        self.tell(
            now,
            id,
            Event::Forwarded {
                from: from.to_string(),
                to: to.to_string(),
                why,
            },
        );
        true
    }
}
