//! Running the dialplan for a call: each [`crate::dialplan::Action`] the cursor yields is
//! carried out here, or handed to the feature that owns it (dial, prompts, collect,
//! record, queue, voicemail). Owns no state of its own beyond the call's cursor.

use std::time::{Duration, Instant};

use super::super::Endpoint;
use super::state::{CallId, PendingRecord, QueueAsk, State, Status};
use crate::dialplan::{Action, LineOp};
use crate::voicemail::json_str;

/// What the dialplan does after an action.
pub(super) enum Flow {
    /// Steps on to the next action.
    Next,
    /// Stops: the call waits for something (or has ended).
    Wait,
}

impl Endpoint {
    /// Steps the call's dialplan until it has to wait.
    pub(in crate::endpoint) fn run_dialplan(&mut self, now: Instant, id: CallId) {
        let Some(plan) = self.calls.calls.get(&id).map(|c| c.plan.clone()) else {
            return;
        };
        let unix_ms = self.unix_ms(now);
        // What the call was waiting for, which tells the voicemail menu what happened.
        let mut ended = match self.calls.calls.get_mut(&id) {
            Some(c) => std::mem::replace(&mut c.state, State::Routing),
            None => return,
        };
        loop {
            let Some(c) = self.calls.calls.get_mut(&id) else {
                return;
            };
            c.state = State::Routing;
            if c.vm.is_some() {
                self.run_vm_menu(now, id, &ended);
                return;
            }
            if c.queue.is_some() {
                self.run_queue(now, id);
                return;
            }
            ended = State::Routing;
            let env = crate::dialplan::Env {
                unix_ms: unix_ms as i64,
                hours: Some(&*self.hours),
            };
            let action = plan.step(&mut c.cursor, &env);
            tracing::debug!(call = %id, ?action, "dialplan");
            if let Flow::Wait = self.act(now, id, action) {
                return;
            }
        }
    }

    /// Carries out one action of the call's dialplan: whether the dialplan may step on
    /// at once, or the call now waits (for media, keys, a callee, an agent) or is gone.
    fn act(&mut self, now: Instant, id: CallId, action: Action) -> Flow {
        match action {
            Action::Answer => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
            }
            Action::Echo => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                if let Some(leg) = self.calls.caller_media(id) {
                    self.calls.echo(leg);
                }
                self.set_state(id, State::Echo);
                return Flow::Wait;
            }
            Action::Play(name) => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                self.play_in_turn(id, vec![name]);
                return Flow::Wait;
            }
            Action::PlayAll(names) => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                self.play_in_turn(id, names);
                return Flow::Wait;
            }
            Action::Collect(col) => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                let prompts = self.sound_paths(col.prompts.iter().map(|t| t.as_str()));
                self.start_collect(now, id, col, false, prompts);
                return Flow::Wait;
            }
            Action::Menu { prompts, timeout } => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                let paths = self.sound_paths(prompts.iter().map(String::as_str));
                let spec = crate::dialplan::Collect {
                    var: "key".into(),
                    min: 1,
                    max: 1,
                    timeout,
                    interdigit: timeout,
                    terminator: None,
                    prompts: Vec::new(),
                };
                self.start_collect(now, id, spec, true, paths);
                return Flow::Wait;
            }
            Action::Record { name, max, silence } => {
                return self.record(now, id, name, max, silence)
            }
            Action::Voicemail(mailbox) => return self.leave_voicemail(now, id, mailbox),
            Action::VoicemailCheck(mailbox) => return self.open_mailbox(now, id, mailbox),
            Action::Agent(op) => {
                let Some(c) = self.calls.calls.get(&id) else {
                    return Flow::Wait;
                };
                // Only our own extensions' calls speak for an agent.
                let agent = c.caller_number().to_string();
                let own = c.from_trunk.is_none() && self.users.contains_key(&agent);
                let ok = own && self.agent_op(now, &agent, op).is_ok();
                self.set_status(id, if ok { Status::Ok } else { Status::Failed });
            }
            Action::AgentLogin { id: agent, pin } => {
                let Some(c) = self.calls.calls.get(&id) else {
                    return Flow::Wait;
                };
                // Only our own extensions' phones take agents.
                let ext = c.caller_number().to_string();
                let own = c.from_trunk.is_none() && self.users.contains_key(&ext);
                let loopback = self.caller_on_loopback(id);
                let status = if own {
                    self.agent_login_pin(now, &ext, loopback, &agent, &pin.0)
                } else {
                    Status::Failed
                };
                self.set_status(id, status);
            }
            Action::Queue {
                name,
                priority,
                timeout,
                skills,
                announce,
            } => {
                if !self.answer_locally(now, id) {
                    return Flow::Wait;
                }
                let ask = QueueAsk {
                    priority,
                    timeout,
                    skills,
                    announce,
                };
                self.join_queue(now, id, &name, ask);
                return Flow::Wait;
            }
            Action::Dial {
                target,
                trunk,
                timeout,
            } => {
                let started = match trunk {
                    Some(t) => self.dial_trunk(now, id, &t, &target, timeout),
                    None => self.dial(now, id, &target, timeout),
                };
                if started {
                    self.set_state(id, State::Ringing);
                    self.ringback(id);
                    return Flow::Wait;
                }
            }
            Action::Park {
                first,
                last,
                timeout,
            } => return self.park(now, id, (first, last), timeout),
            Action::Unpark(slot) => return self.unpark(now, id, &slot),
            Action::Pickup(ext) => return self.pickup(now, id, ext.as_deref()),
            Action::Line(op, number) => {
                let Some(c) = self.calls.calls.get(&id) else {
                    return Flow::Wait;
                };
                // Only our own extensions set their own lines.
                let ext = c.caller_number().to_string();
                let own = c.from_trunk.is_none() && self.users.contains_key(&ext);
                let number = number.filter(|n| !n.is_empty());
                let forward = !matches!(op, LineOp::DndOn | LineOp::DndOff);
                // A forward to the extension itself is no forward.
                let bad = forward && number.as_deref().is_some_and(|n| n == ext);
                let ok = own && !bad;
                if ok {
                    let dnd = matches!(op, LineOp::DndOn | LineOp::DndOff);
                    self.set_line(&ext, op, number);
                    if dnd {
                        self.dnd_agents(now, &ext);
                    }
                }
                self.set_status(id, if ok { Status::Ok } else { Status::Failed });
            }
            Action::Hangup(explicit) => {
                self.hang_up(now, id, explicit);
                return Flow::Wait;
            }
        }
        Flow::Next
    }

    /// `record`: the beep, then a recording into the state directory's `recordings/`.
    fn record(
        &mut self,
        now: Instant,
        id: CallId,
        name: String,
        max: Duration,
        silence: Duration,
    ) -> Flow {
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        let Some(file) = self.safe_name_or_fail(id, &name) else {
            return Flow::Next;
        };
        let path = self
            .state_dir
            .join("recordings")
            .join(format!("{file}.wav"));
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.cursor
                .vars
                .insert("recording".into(), path.display().to_string());
        }
        let beep = self.sound_paths(["beep"]);
        self.record_after(
            id,
            beep,
            PendingRecord {
                path,
                max,
                silence,
                index: None,
                message: None,
            },
        );
        Flow::Wait
    }

    /// `voicemail BOX`: the greeting (the owner's own, if recorded), the beep, then the
    /// message, listed in the box's index once it is saved.
    fn leave_voicemail(&mut self, now: Instant, id: CallId, mailbox: String) -> Flow {
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        let Some(dir) = self.safe_name_or_fail(id, &mailbox) else {
            return Flow::Next;
        };
        let at = self.unix_ms(now);
        let dir = self.state_dir.join("voicemail").join(dir);
        let file = format!("{at}-{id}.wav");
        let caller = self
            .calls
            .calls
            .get(&id)
            .map(|c| c.story.start().caller.clone())
            .unwrap_or_default();
        // The relay appends the length and the closing brace.
        let line = format!(
            "{{\"file\":{},\"caller\":{},\"at_ms\":{at}",
            json_str(&file),
            json_str(&caller)
        );
        // The owner's greeting if one was recorded, the standard prompt if not.
        let mut prompts = if self.mailboxes.get(&mailbox).is_some_and(|m| m.greeting) {
            vec![dir.join(crate::voicemail::GREETING)]
        } else {
            self.sound_paths(["leave-message"])
        };
        prompts.extend(self.sound_paths(["beep"]));
        let msg = crate::voicemail::VmMessage {
            file,
            caller,
            at_ms: at,
            ms: 0,
            heard: false,
        };
        let rec = PendingRecord {
            path: dir.join(&msg.file),
            max: Duration::from_secs(120),
            silence: Duration::from_secs(5),
            index: Some((dir.join("index.jsonl"), line)),
            message: Some((mailbox.clone(), msg)),
        };
        self.record_after(id, prompts, rec);
        Flow::Wait
    }

    /// `voicemail check BOX`: the call enters the box's menu, which asks for its owner's PIN.
    fn open_mailbox(&mut self, now: Instant, id: CallId, mailbox: String) -> Flow {
        if !self.answer_locally(now, id) {
            return Flow::Wait;
        }
        if self.safe_name_or_fail(id, &mailbox).is_none() {
            return Flow::Next;
        }
        let loopback = self.caller_on_loopback(id);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return Flow::Wait;
        };
        // A box opens with its owner's PIN; a shipped demo PIN only from loopback.
        let pin = self.users.get(&mailbox).and_then(|u| {
            if u.demo && !loopback {
                tracing::warn!(call = %id, %mailbox, "demo voicemail PIN refused from a non-loopback address");
                return None;
            }
            u.voicemail_pin.clone()
        });
        tracing::info!(call = %id, %mailbox, "voicemail menu");
        c.vm = Some((mailbox, crate::voicemail::Retrieval::new(pin)));
        Flow::Next
    }

    /// `name` if it is safe as a file or directory name under the state directory; else
    /// `$status` is `failed` and the dialplan goes on.
    pub(super) fn safe_name_or_fail<'n>(&mut self, id: CallId, name: &'n str) -> Option<&'n str> {
        let ok = safe_name(name);
        if !ok {
            tracing::warn!(call = %id, %name, "name refused: letters, digits, `-`, `_` and `.` only");
            self.set_status(id, Status::Failed);
        }
        ok.then_some(name)
    }

    /// Call `id`'s parties talk (again): on answer, a bridge, a hold's end, a phone
    /// taking the call over. Their silence is watched from now, and those who may press
    /// feature codes are listened to.
    pub(super) fn conversation_on(&mut self, id: CallId) {
        self.watch_parties(id);
        self.listen_for_codes(id);
    }

    pub(in crate::endpoint) fn set_state(&mut self, id: CallId, w: State) {
        let bridged = matches!(w, State::Bridged);
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.state = w;
        }
        if bridged {
            // Parties just joined have had no time to send: their silence counts from now.
            self.conversation_on(id);
        }
    }

    /// Whether the caller's leg of call `id` comes from a loopback address (where the
    /// shipped demo PINs work).
    fn caller_on_loopback(&self, id: CallId) -> bool {
        self.calls
            .caller(id)
            .is_some_and(|a| a.dialog.peer.addr.ip().is_loopback())
    }

    pub(in crate::endpoint) fn set_status(&mut self, id: CallId, status: Status) {
        if let Some(c) = self.calls.calls.get_mut(&id) {
            c.cursor
                .vars
                .insert("status".into(), status.as_str().into());
        }
    }
}

/// Whether `name` is safe as a file or directory name under the state directory: 1 to
/// 128 letters, digits, `-`, `_` and `.`, not starting with `.` (no `..`, no hidden
/// file, no separator).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn only_plain_names_are_safe_under_the_state_directory() {
        let longest = "a".repeat(128);
        for name in ["1001", "sales-box_2.old", "a", longest.as_str()] {
            assert!(safe_name(name), "{name}");
        }
        let too_long = "a".repeat(129);
        for name in [
            "",
            ".",
            "..",
            ".hidden",
            "../1001",
            "a/b",
            "a b",
            "box\\1",
            too_long.as_str(),
        ] {
            assert!(!safe_name(name), "{name}");
        }
    }
}
