//! Callbacks: a queued caller who presses its queue's `callback_key` hears a confirmation
//! and is hung up on, keeping its place ([`crate::acd::Event::Callback`]). When its turn
//! comes the ACD offers it like any caller: the PBX opens a call of its own for it,
//! rings the agent, and once the agent answers calls the caller back (its extension, or
//! its number through the trunk it came in on) and bridges the two.
//!
//! Requests survive a restart: every change gives the driver a snapshot to keep
//! ([`super::Output::CallbacksSaved`]), and a new start takes it back in
//! ([`Endpoint::restore_callbacks`]), each request joining its queue again in the order
//! they were asked for.
//!
//! Part of the endpoint. This module owns the requests waiting for their turn; the ACD
//! owns their place in the queue, and the B2BUA the calls (`callback_call`,
//! `call_customer`).

use std::sync::Arc;
use std::time::Instant;

use super::call::state::CallId;
use super::call::state::{CallTimer, State};
use super::Endpoint;
use crate::acd::Event;

/// The dialplan of a callback call, for the one thing it can reach: the queue giving the
/// request up (its agents all gone), when the call simply ends.
const PLAN: &str = "context callback {\n  match any { hangup }\n}\n";

/// A callback asked for: who to call back, and how; and its place, to take back after a
/// restart.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Request {
    /// The caller's number: an extension, or a trunk caller's number.
    number: String,
    /// The trunk it came in on (and is called back through).
    trunk: Option<String>,
    /// Its queue, priority and the skills it needs there.
    queue: String,
    priority: u32,
    skills: Vec<crate::acd::SkillNeed>,
    /// When it was asked for (Unix ms), which orders requests taken back after a restart.
    asked_ms: u64,
    /// Calls to the customer so far that it did not answer.
    #[serde(default)]
    attempts: u32,
    /// The SIP Call-ID of the call that asked for it, which each callback's story links
    /// to (unique across restarts, where call numbers are not).
    #[serde(default)]
    asked_by: Option<String>,
}

/// The callbacks waiting for their turn, by the id the ACD knows the request by (the id
/// of the call that asked, or a fresh one when it is queued again). A callback's own call
/// has a number of its own.
#[derive(Debug)]
pub(super) struct Callbacks {
    waiting: std::collections::HashMap<CallId, Request>,
    /// Taken by an agent, the customer not reached yet (by request id).
    calling: std::collections::HashMap<CallId, Request>,
    /// The call placed for each request being offered or called back, by request id.
    placed: std::collections::HashMap<CallId, CallId>,
    /// The customer did not answer: queued again at that time.
    retry: Vec<(Instant, Request)>,
    plan: Arc<crate::dialplan::Dialplan>,
    /// The requests changed since the last snapshot.
    changed: bool,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self {
            waiting: Default::default(),
            calling: Default::default(),
            placed: Default::default(),
            retry: Vec::new(),
            changed: false,
            plan: Arc::new(
                crate::dialplan::parse(PLAN, "callback").expect("the callback plan parses"),
            ),
        }
    }
}

/// Whether `number` can be called back through a trunk: a plain phone number (an
/// optional `+` and 3 to 20 digits), so nothing else reaches the trunk's dial string.
fn callable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Endpoint {
    /// A key from a caller waiting in a queue: its queue's callback key takes a callback
    /// request (true); any other key is not for the queue (false).
    pub(super) fn queue_key(&mut self, now: Instant, id: CallId, digit: char) -> bool {
        // A callback's own call has nobody on it to press keys in a queue.
        if self
            .calls
            .calls
            .get(&id)
            .is_none_or(|c| c.callback.is_some())
        {
            return false;
        }
        let Some((queue, _)) = self.acd.position(id.0) else {
            return false;
        };
        if self.queue_callback.get(&queue) != Some(&digit) {
            return false;
        }
        if self.callback_number(id).is_none() {
            tracing::info!(call = %id, %queue, "callback refused: no number to call back");
            return true;
        }
        self.take_callback(now, id);
        self.acd.handle(now, Event::Callback(id.0));
        self.drain_acd(now);
        true
    }

    /// The number call `id` can be called back at, and the trunk to call it through: an
    /// extension's own, or a trunk caller's plain number.
    pub(super) fn callback_number(&self, id: CallId) -> Option<(String, Option<String>)> {
        let c = self.calls.calls.get(&id)?;
        let number = c.caller_number().to_string();
        self.may_call_back(&number, c.from_trunk.as_deref())
            .then(|| (number, c.from_trunk.clone()))
    }

    /// Whether `number` may be called back: an extension of ours, or through `trunk` a
    /// plain number its `callback_numbers` pattern allows (a trunk caller chooses its own
    /// caller ID, so without the pattern the PBX would dial whatever it claims).
    pub(super) fn may_call_back(&self, number: &str, trunk: Option<&str>) -> bool {
        match trunk {
            None => self.users.contains_key(number),
            Some(name) => {
                callable(number)
                    && self
                        .trunks
                        .iter()
                        .find(|t| t.name == name)
                        .and_then(|t| t.callback_numbers.as_ref())
                        .is_some_and(|p| p.is_match(number))
            }
        }
    }

    /// Waiting call `id` becomes a callback request (asked for, or the queue's doing once
    /// it waited its longest): the queue lets go of the call (no abandon), the request
    /// keeps the place, and the caller hears the confirmation and is hung up on.
    pub(super) fn take_callback(&mut self, now: Instant, id: CallId) {
        let (Some((number, trunk)), Some((queue, _))) =
            (self.callback_number(id), self.acd.position(id.0))
        else {
            // The queue parked it for a callback the call cannot have after all (a reload
            // changed the rules): it waits on the line as before.
            self.acd.handle(now, Event::CallbackReady(id.0));
            return;
        };
        let (priority, skills) = self.acd.needs(id.0).unwrap_or_default();
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.queue = None;
            c.timers.stop(CallTimer::Announce);
        }
        self.detach_b(now, id);
        self.unbridge(id);
        let asked_ms = self.unix_ms(now);
        let asked_by = self
            .calls
            .calls
            .get(&id)
            .map(|c| c.story.start().sip_call_id.clone());
        tracing::info!(call = %id, %queue, "callback requested");
        let r = Request {
            number,
            trunk,
            queue,
            priority,
            skills,
            asked_ms,
            attempts: 0,
            asked_by,
        };
        self.callbacks.waiting.insert(id, r);
        self.callbacks.changed = true;
        let paths = self.sound_paths(["callback-confirm"]);
        self.play_paths(id, paths);
        self.set_state(id, State::Goodbye);
    }

    /// The ACD offers callback request `id` to an agent: a call of its own opens (with no
    /// party on it yet) so that the agent can be rung from it. False if it cannot.
    pub(super) fn start_callback(&mut self, now: Instant, id: CallId) -> bool {
        if self.callbacks.placed.contains_key(&id) {
            return true;
        }
        let Some(r) = self.callbacks.waiting.get(&id).cloned() else {
            return false;
        };
        let plan = self.callbacks.plan.clone();
        let call = self.calls.new_id();
        let placed = super::call::state::Placed {
            request: id,
            number: r.number.clone(),
            trunk: r.trunk,
            asked_by: r.asked_by,
        };
        if !self.callback_call(now, call, placed, plan) {
            return false;
        }
        self.callbacks.placed.insert(id, call);
        tracing::info!(call = %call, request = %id, number = %r.number, "callback: ringing an agent");
        if let Some(c) = self.calls.calls.get_mut(&call) {
            c.queue = Some(super::call::state::QueueCall::callback());
        }
        true
    }

    /// The id the ACD knows call `id` by: a callback's call is known by its request's,
    /// any other call by its own.
    pub(super) fn acd_id(&self, id: CallId) -> CallId {
        self.calls
            .calls
            .get(&id)
            .and_then(|c| c.callback.as_ref())
            .map_or(id, |cb| cb.request)
    }

    /// The call the ACD's `caller` is now: the call placed for a callback request, else
    /// the call of that id.
    pub(super) fn acd_call(&self, caller: u64) -> CallId {
        let id = CallId(caller);
        self.callbacks.placed.get(&id).copied().unwrap_or(id)
    }

    /// Calls placed for callback requests (0 once every call is over).
    #[cfg(test)]
    pub(super) fn callbacks_placed(&self) -> usize {
        self.callbacks.placed.len()
    }

    /// The call placed for callback request `id` is gone: a next offer places another.
    pub(super) fn callback_call_gone(&mut self, id: CallId) {
        self.callbacks.placed.remove(&id);
    }

    /// Whether `id` is a callback request the queue still holds.
    pub(super) fn callback_requested(&self, id: CallId) -> bool {
        self.callbacks.waiting.contains_key(&id)
    }

    /// Whether `id` is a callback request still waiting for its turn: no call placed for
    /// it yet, and the call that asked has ended.
    pub(super) fn callback_waiting(&self, id: CallId) -> bool {
        self.callbacks.waiting.contains_key(&id)
            && !self.callbacks.placed.contains_key(&id)
            && !self.calls.calls.contains_key(&id)
    }

    /// Call `id` ended: if it asked for a callback, the request may now be offered.
    pub(super) fn callback_asked_call_ended(&mut self, now: Instant, id: CallId) {
        if self.callbacks.waiting.contains_key(&id) {
            self.acd.handle(now, Event::CallbackReady(id.0));
        }
    }

    /// The queue gave callback request `id` up.
    pub(super) fn callback_done(&mut self, id: CallId) {
        self.callbacks.changed |= self.callbacks.waiting.remove(&id).is_some();
    }

    /// An agent took callback `id`: the customer is called next.
    pub(super) fn callback_taken(&mut self, id: CallId) {
        if let Some(r) = self.callbacks.waiting.remove(&id) {
            self.callbacks.calling.insert(id, r);
        }
    }

    /// The customer answered callback `id`: the request is served (and not kept for a
    /// restart any longer).
    pub(super) fn callback_reached(&mut self, id: CallId) {
        self.callbacks.changed |= self.callbacks.calling.remove(&id).is_some();
    }

    /// Callback call `id` ended before its customer answered: queued again after the
    /// queue's `callback_retry_s`. A customer who was rung and did not answer (`missed`)
    /// spends an attempt, and after `callback_attempts` of them the request is given up;
    /// a callback cut short otherwise (the agent hung up first, a shutdown) spends none.
    pub(super) fn callback_finished(&mut self, now: Instant, id: CallId, missed: bool) {
        let Some(mut r) = self.callbacks.calling.remove(&id) else {
            return;
        };
        self.callbacks.changed = true;
        r.attempts += u32::from(missed);
        let (max, wait) = self
            .acd
            .queue_config(&r.queue)
            .map_or((1, std::time::Duration::ZERO), |q| {
                (q.callback_attempts, q.callback_retry)
            });
        if missed && r.attempts >= max {
            tracing::warn!(call = %id, number = %r.number, attempts = r.attempts, "callback given up: the customer never answered");
            return;
        }
        tracing::info!(call = %id, number = %r.number, attempt = r.attempts, retry_s = wait.as_secs(), "callback: the customer will be called again");
        self.callbacks.retry.push((now + wait, r));
    }

    /// When a callback is next queued again.
    pub(super) fn callback_timeout(&self) -> Option<Instant> {
        self.callbacks.retry.iter().map(|(at, _)| *at).min()
    }

    /// Queues again the callbacks whose retry time has come.
    pub(super) fn callback_timeouts(&mut self, now: Instant) {
        let (due, later) = std::mem::take(&mut self.callbacks.retry)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.callbacks.retry = later;
        let due: Vec<(Instant, Request)> = due;
        for (_, r) in due {
            self.requeue(now, r);
        }
        self.drain_acd(now);
    }

    /// Callback request `r` joins its queue (again) as a new caller, ready for an agent;
    /// one whose number may no longer be called back (the trunk's pattern changed) is
    /// dropped, said so in the log.
    fn requeue(&mut self, now: Instant, r: Request) {
        if !self.may_call_back(&r.number, r.trunk.as_deref()) {
            tracing::warn!(number = %r.number, trunk = ?r.trunk, "callback request dropped: the number may not be called back");
            self.callbacks.changed = true;
            return;
        }
        let id = self.calls.new_id();
        tracing::info!(call = %id, number = %r.number, queue = %r.queue, "callback request queued");
        self.callbacks.waiting.insert(id, r.clone());
        self.callbacks.changed = true;
        self.acd.handle(
            now,
            Event::JoinCallback {
                caller: id.0,
                queue: r.queue,
                priority: r.priority,
                skills: r.skills,
                number: r.number,
            },
        );
    }

    /// The callback requests waiting, as JSON to keep, if they changed since last asked
    /// (the driver writes it to `STATE_DIR/callbacks.json`).
    pub(super) fn poll_callbacks_saved(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.callbacks.changed) {
            return None;
        }
        let cb = &self.callbacks;
        let mut all: Vec<&Request> = cb
            .waiting
            .values()
            .chain(cb.calling.values())
            .chain(cb.retry.iter().map(|(_, r)| r))
            .collect();
        all.sort_by_key(|r| r.asked_ms);
        Some(serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into()))
    }

    /// Takes back the callback requests kept before a restart (`json` as
    /// [`super::Output::CallbacksSaved`] gave it): each joins its queue again, in the order
    /// they were asked for. Returns how many.
    pub fn restore_callbacks(&mut self, now: Instant, json: &str) -> Result<usize, String> {
        let mut all: Vec<Request> =
            serde_json::from_str(json).map_err(|e| format!("unreadable callback requests: {e}"))?;
        all.sort_by_key(|r| r.asked_ms);
        let n = all.len();
        for r in all {
            tracing::info!(number = %r.number, queue = %r.queue, "callback request taken back");
            self.requeue(now, r);
        }
        self.drain_acd(now);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_numbers_are_called_back_through_a_trunk() {
        assert!(callable("+15550123"));
        assert!(callable("5550123"));
        for bad in [
            "",
            "12",
            "anonymous",
            "555;x=1",
            "+",
            "1234567890123456789012",
        ] {
            assert!(!callable(bad), "{bad}");
        }
    }
}
