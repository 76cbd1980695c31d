//! Parking: a call waits in a numbered slot, hearing music, until any phone dials the
//! slot and takes it, or the park times out and its dialplan goes on (the shipped one
//! rings whoever parked it). A phone parks a call by transferring it to the park number:
//! blind, or attended (the phone hears the slot's number on its consultation, then
//! transfers, and the held party takes its place in the slot).
//!
//! Owns the slots (`Calls::parked`) and the parked state; the moves of legs are
//! [`super::moving`]'s, the transfers [`super::attended`]'s and [`super::transfer`]'s.

use std::time::{Duration, Instant};

use super::script::Flow;
use super::state::{CallId, CallTimer, Role, State, Status};
use crate::cdr::{Disposition, HangupBy};
use crate::endpoint::Endpoint;
use crate::say::{say_prompts, SayKind};
use crate::story::Event;

impl Endpoint {
    /// `park`: call `id` takes the first free slot of `first..=last`, hears its number,
    /// then music; `$status` `full` at once if every slot is taken.
    pub(super) fn park(
        &mut self,
        now: Instant,
        id: CallId,
        (first, last): (u32, u32),
        timeout: Duration,
    ) -> Flow {
        let slot = (first..=last)
            .map(|n| n.to_string())
            .find(|s| !self.calls.parked.contains_key(s));
        let Some(slot) = slot else {
            tracing::info!(call = %id, first, last, "every parking slot is taken");
            self.set_status(id, Status::Full);
            return Flow::Next;
        };
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return Flow::Wait;
        };
        // Who parked it: the extension that transferred it here, else its caller.
        let by = c
            .cursor
            .vars
            .get("transferred_by")
            .filter(|t| !t.is_empty())
            .cloned()
            .unwrap_or_else(|| c.caller_number().to_string());
        c.cursor.vars.insert("slot".into(), slot.clone());
        c.cursor.vars.insert("parked_by".into(), by);
        c.state = State::Parked(slot.clone());
        self.calls.parked.insert(slot.clone(), id);
        self.notify_line(now, &slot);
        self.calls.arm(id, CallTimer::ParkTimeout, now + timeout);
        tracing::info!(call = %id, %slot, "parked");
        self.tell(now, id, Event::Parked { slot: slot.clone() });
        let mut paths = self.slot_prompts(&slot);
        let first = paths.pop_front();
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.play_queue = paths;
        }
        if let Some(first) = first {
            self.play(id, first, false);
        }
        Flow::Wait
    }

    /// What says where a call waits: "parked at", then the slot's digits.
    pub(super) fn slot_prompts(
        &self,
        slot: &str,
    ) -> std::collections::VecDeque<std::path::PathBuf> {
        let mut names = vec!["parked-at".to_string()];
        names.extend(say_prompts(SayKind::Digits, slot));
        self.sound_paths(names.iter().map(String::as_str)).into()
    }

    /// A prompt of a parked call ended: the next part of the slot's number, or music.
    pub(super) fn park_prompt_done(&mut self, id: CallId) {
        if !self.play_next(id) {
            self.park_music(id);
        }
    }

    /// A parked call's music: the default class (nobody holds it, so no extension's).
    pub(super) fn park_music(&mut self, id: CallId) {
        let music = self.sounds_dir.join("moh/default.wav");
        self.play_music(id, music);
    }

    /// Nobody took parked call `id` in time: its slot is free, and its dialplan goes on
    /// with `$status` `timeout`.
    pub(super) fn park_timeout(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let State::Parked(slot) = std::mem::replace(&mut c.state, State::Routing) else {
            return;
        };
        c.play_queue.clear();
        if self.calls.parked.get(&slot) == Some(&id) {
            self.calls.parked.remove(&slot);
            self.notify_line(now, &slot);
        }
        tracing::info!(call = %id, %slot, "park timed out");
        self.stop_play(id);
        self.set_status(id, Status::Timeout);
        self.run_dialplan(now, id);
    }

    /// `unpark`: call `id`'s caller takes the call parked in `slot` (`$status`
    /// `unavailable` at once if none is): it joins that call as its callee, and its own
    /// call ends.
    pub(super) fn unpark(&mut self, now: Instant, id: CallId, slot: &str) -> Flow {
        let parked = self.calls.parked.get(slot).copied().filter(|&p| p != id);
        let Some(p) = parked else {
            self.set_status(id, Status::Unavailable);
            return Flow::Next;
        };
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        let Some(leg) = self.calls.calls.get(&id).and_then(|c| c.caller()) else {
            return Flow::Wait;
        };
        let Some(m) = self.take_party(id, leg, p) else {
            return Flow::Wait;
        };
        self.calls.parked.remove(slot);
        self.notify_line(now, slot);
        let by = m.number.clone();
        tracing::info!(call = %p, %slot, %by, "parked call retrieved");
        self.tell(
            now,
            id,
            Event::Retrieved {
                slot: slot.to_string(),
                by: by.clone(),
            },
        );
        self.finish(now, id, Disposition::Answered, 200, HangupBy::Caller);
        self.put_party(now, p, &m, Role::Callee, None);
        if let Some(c) = self.calls.calls.get_mut(&p) {
            c.timers.stop(CallTimer::ParkTimeout);
            c.play_queue.clear();
        }
        self.set_state(p, State::Bridged);
        let parked_media = self.calls.caller_media(p);
        if let (Some(a), Some(r)) = (parked_media, m.media) {
            self.calls.join(p, [a, r.key]);
        }
        self.tell(
            now,
            p,
            Event::Retrieved {
                slot: slot.to_string(),
                by: by.clone(),
            },
        );
        self.tell(now, p, Event::Bridged { party: by });
        Flow::Wait
    }
}
