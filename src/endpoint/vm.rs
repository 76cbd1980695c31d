//! Voicemail in calls: runs the owner's menu ([`crate::voicemail::Retrieval`]) with the
//! call's prompts and key gathering, and keeps the boxes' in-memory state, whose changes go
//! out as writes for the driver and as message-waiting notices ([`super::mwi`]). Part of the
//! endpoint; it owns the boxes' state, never a file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::call::state::{CallId, Status};
use super::call::state::{PendingRecord, State, VM_KEYS};
use super::Endpoint;
use crate::voicemail::{Change, Input, Mailbox, Prompt, Step};

impl Endpoint {
    /// The boxes as found on disk at start (the driver reads them).
    pub fn set_mailboxes(&mut self, boxes: std::collections::HashMap<String, Mailbox>) {
        self.mailboxes = boxes;
    }

    /// Next change to a box to make durable.
    pub(super) fn poll_mailbox_write(&mut self) -> Option<crate::voicemail::MailboxWrite> {
        self.mailbox_out.pop_front()
    }

    /// New and saved messages in a box.
    pub(super) fn mailbox_counts(&self, mailbox: &str) -> (usize, usize) {
        self.mailboxes.get(mailbox).map_or((0, 0), Mailbox::counts)
    }

    fn box_dir(&self, mailbox: &str) -> PathBuf {
        self.state_dir.join("voicemail").join(mailbox)
    }

    /// A box changed: its phones hear of it.
    pub(super) fn mailbox_changed(&mut self, now: Instant, mailbox: &str) {
        let (new, old) = self.mailbox_counts(mailbox);
        tracing::info!(%mailbox, new, old, "voicemail box changed");
        self.notify_mailbox(now, mailbox);
    }

    /// The next step of call `id`'s voicemail menu, after the call waited for `ended`.
    pub(super) fn run_vm_menu(&mut self, now: Instant, id: CallId, ended: &State) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let keys = c.cursor.vars.remove(VM_KEYS).unwrap_or_default();
        let saved = c
            .cursor
            .vars
            .get("status")
            .is_some_and(|s| Status::parse(s) == Some(Status::Ok));
        // Wrong PINs are throttled by who keys them (the caller's extension, or a trunk
        // caller's number), never by the box: a stranger cannot lock its owner out.
        let source = match &c.from_trunk {
            Some(t) => format!("trunk:{t}:{}", c.caller_number()),
            None => format!("ext:{}", c.caller_number()),
        };
        let Some((mailbox, menu)) = c.vm.as_mut() else {
            return;
        };
        let pin = matches!(ended, State::Collecting(_)) && menu.awaiting_pin();
        let refused = pin && self.pins.blocked(now, &source);
        let input = match ended {
            State::Collecting(_) if refused => Input::Refused,
            State::Collecting(_) => Input::Keys(&keys),
            State::Playing => Input::Played,
            State::Recording => Input::Recorded(saved),
            _ => Input::Start,
        };
        let wrong_before = menu.wrong_pins();
        let mb = self.mailboxes.entry(mailbox.clone()).or_default();
        let mut changes = Vec::new();
        let step = menu.next(input, mb, &mut changes);
        // Silence at the PIN prompt costs the call a try, but is no guess; the box opens
        // when the menu leaves the PIN without a try spent.
        let spent = menu.wrong_pins() > wrong_before;
        let wrong = spent && (refused || !keys.is_empty());
        let opened = pin && !spent && !menu.awaiting_pin();
        let mailbox = mailbox.clone();
        tracing::debug!(call = %id, %mailbox, ?step, "voicemail menu");
        for ch in &changes {
            mb.apply(ch);
        }
        if wrong {
            self.pin_failed(now, &source);
        } else if opened {
            self.pins.passed(&source);
        }
        if !changes.is_empty() {
            let dir = self.box_dir(&mailbox);
            for ch in &changes {
                if let Some(w) = ch.write(&dir) {
                    self.mailbox_out.push_back(w);
                }
                if let Change::Deleted(f) = ch {
                    tracing::info!(call = %id, %mailbox, file = %f, "voicemail deleted");
                }
            }
            self.mailbox_changed(now, &mailbox);
        }
        match step {
            Step::Ask {
                prompts,
                max,
                terminator,
                timeout,
            } => {
                let paths = self.vm_paths(&mailbox, &prompts);
                let spec = crate::dialplan::Collect {
                    var: VM_KEYS.into(),
                    min: 0,
                    max,
                    timeout,
                    interdigit: timeout,
                    terminator,
                    prompts: Vec::new(),
                };
                self.start_collect(now, id, spec, false, paths);
            }
            Step::Play(prompts) => {
                let paths = self.vm_paths(&mailbox, &prompts);
                self.play_paths(id, paths);
            }
            Step::RecordGreeting => {
                let prompts = self.sound_paths(["vm-record-greeting", "beep"]);
                let rec = PendingRecord {
                    path: self.box_dir(&mailbox).join(crate::voicemail::GREETING),
                    max: Duration::from_secs(60),
                    silence: Duration::from_secs(3),
                    index: None,
                    message: None,
                };
                self.record_after(id, prompts, rec);
            }
            Step::Hangup => self.hang_up(now, id, None),
        }
    }

    fn vm_paths(&self, mailbox: &str, prompts: &[Prompt]) -> Vec<PathBuf> {
        prompts
            .iter()
            .map(|p| match p {
                Prompt::Sound(n) => self.sounds_dir.join(format!("{n}.wav")),
                Prompt::Message(f) => self.box_dir(mailbox).join(f),
            })
            .collect()
    }
}
