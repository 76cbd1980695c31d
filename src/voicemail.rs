//! Voicemail boxes: what a box holds, how its index is read, and the owner's menu.
//!
//! A box is the directory `STATE_DIR/voicemail/BOX/`: the messages (`<unix-ms>-<call>.wav`),
//! the owner's `greeting.wav` if one was recorded, and `index.jsonl`, a log that is only
//! ever appended to, one JSON object per line:
//!
//! ```text
//! {"file":"1795…-7.wav","caller":"1002","at_ms":1795…,"ms":5120}   a message (once on disk)
//! {"file":"1795…-7.wav","heard":true}                               the owner heard it
//! {"file":"1795…-7.wav","deleted":true}                             the owner deleted it
//! ```
//!
//! Folding the log ([`fold`]) does not depend on the order of its lines, so the relay (which
//! appends a message's line once the file is written) and the endpoint (heard, deleted) never
//! need to coordinate. A message file that no line names (its line could not be written) is
//! still found by [`load`] and kept.
//!
//! [`Mailbox`] is a box's folded state, which the endpoint keeps in memory; [`load`] reads
//! every box at start and [`MailboxWrite::apply`] makes a change durable: those two are the
//! only IO here. [`Retrieval`] is the owner's menu as a state machine: told what the caller
//! did, it answers with what to play or gather next and which changes to make; it never
//! touches a call or a file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every prompt the owner's menu plays (for `check`).
pub const PROMPTS: &[&str] = &[
    "vm-enter-pin",
    "vm-wrong-pin",
    "vm-you-have",
    "vm-new-messages",
    "vm-and",
    "vm-saved-messages",
    "vm-main-menu",
    "vm-message",
    "vm-after-message",
    "vm-deleted",
    "vm-no-more-messages",
    "vm-record-greeting",
    "vm-greeting-saved",
    "vm-closed",
    "invalid-option",
    "goodbye",
    "beep",
];

/// The owner's recorded greeting, in the box directory.
pub const GREETING: &str = "greeting.wav";

/// Wrong PINs before the call is ended.
const PIN_TRIES: u32 = 3;
/// Silences in a row before the call is ended.
const IDLE_LIMIT: u32 = 3;
/// Wait for a key after a prompt.
const KEY_TIMEOUT: Duration = Duration::from_secs(10);

/// One message in a box.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VmMessage {
    /// File name in the box directory.
    pub file: String,
    /// Who left it.
    pub caller: String,
    /// When, as Unix milliseconds.
    pub at_ms: u64,
    /// Its length.
    pub ms: u64,
    /// Whether the owner heard it (a saved message) or not (a new one).
    pub heard: bool,
}

/// A box's messages, oldest first, and whether it has a greeting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The messages not deleted, oldest first.
    pub messages: Vec<VmMessage>,
    /// `greeting.wav` exists.
    pub greeting: bool,
}

impl Mailbox {
    /// New (unheard) and saved (heard) messages.
    pub fn counts(&self) -> (usize, usize) {
        let new = self.messages.iter().filter(|m| !m.heard).count();
        (new, self.messages.len() - new)
    }

    fn get(&self, file: &str) -> Option<&VmMessage> {
        self.messages.iter().find(|m| m.file == file)
    }

    /// Applies a change made by the owner's menu (or a new message).
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Heard(f) => {
                if let Some(m) = self.messages.iter_mut().find(|m| &m.file == f) {
                    m.heard = true;
                }
            }
            Change::Deleted(f) => self.messages.retain(|m| &m.file != f),
            Change::Greeting => self.greeting = true,
        }
    }
}

/// A change to a box, to keep in memory and to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The owner heard this message.
    Heard(String),
    /// The owner deleted this message.
    Deleted(String),
    /// The owner recorded a greeting (the file is written already).
    Greeting,
}

impl Change {
    /// What makes the change durable in box directory `dir` (nothing for a greeting, whose
    /// file is the change).
    pub fn write(&self, dir: &Path) -> Option<MailboxWrite> {
        let (file, what, remove) = match self {
            Change::Heard(f) => (f, "heard", false),
            Change::Deleted(f) => (f, "deleted", true),
            Change::Greeting => return None,
        };
        Some(MailboxWrite {
            index: dir.join("index.jsonl"),
            line: format!("{{\"file\":{},\"{what}\":true}}", json_str(file)),
            remove: remove.then(|| dir.join(file)),
        })
    }
}

/// A line to append to a box's index, and a file to remove after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxWrite {
    /// The index file.
    pub index: PathBuf,
    /// The line, without its newline.
    pub line: String,
    /// A message file to remove once the line is written.
    pub remove: Option<PathBuf>,
}

impl MailboxWrite {
    /// Appends the line, then removes the file; a file is never removed whose deletion
    /// the index does not record.
    pub fn apply(&self) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.index)?;
        // One write per line: appends from the relay and from here never interleave.
        f.write_all(format!("{}\n", self.line).as_bytes())?;
        if let Some(p) = &self.remove {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct Line {
    file: String,
    caller: Option<String>,
    at_ms: Option<u64>,
    ms: Option<u64>,
    #[serde(default)]
    heard: bool,
    #[serde(default)]
    deleted: bool,
}

/// Folds an index into its messages (oldest first), with the names of deleted ones and the
/// number of lines that could not be read.
pub fn fold(text: &str) -> (Vec<VmMessage>, HashSet<String>, usize) {
    let mut messages: HashMap<String, VmMessage> = HashMap::new();
    let (mut heard, mut deleted) = (HashSet::new(), HashSet::new());
    let mut bad = 0;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(line) = serde_json::from_str::<Line>(l) else {
            bad += 1;
            continue;
        };
        if line.deleted {
            deleted.insert(line.file);
        } else if line.heard {
            heard.insert(line.file);
        } else if let (Some(caller), Some(at_ms)) = (line.caller, line.at_ms) {
            let m = VmMessage {
                file: line.file.clone(),
                caller,
                at_ms,
                ms: line.ms.unwrap_or(0),
                heard: false,
            };
            messages.insert(line.file, m);
        } else {
            bad += 1;
        }
    }
    let mut v: Vec<VmMessage> = messages
        .into_values()
        .filter(|m| !deleted.contains(&m.file))
        .map(|mut m| {
            m.heard = heard.contains(&m.file);
            m
        })
        .collect();
    v.sort_by(|a, b| (a.at_ms, &a.file).cmp(&(b.at_ms, &b.file)));
    (v, deleted, bad)
}

/// Reads every box under `root` (`STATE_DIR/voicemail`). A missing directory is no boxes; a
/// box whose index cannot be read is logged and loaded from its files alone.
pub fn load(root: &Path) -> HashMap<String, Mailbox> {
    let mut boxes = HashMap::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return boxes;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        let text = match std::fs::read_to_string(dir.join("index.jsonl")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::error!(mailbox = %name, error = %e, "voicemail index unreadable; using the message files alone");
                String::new()
            }
        };
        let (mut messages, deleted, bad) = fold(&text);
        if bad > 0 {
            tracing::warn!(mailbox = %name, lines = bad, "voicemail index lines skipped");
        }
        // A message whose file is gone (removed by hand, lost with a disk) would be offered
        // as silence: it is dropped from the box, said in the log.
        messages.retain(|m| {
            let there = dir.join(&m.file).is_file();
            if !there {
                tracing::warn!(mailbox = %name, file = %m.file, "message file missing; dropped from the box");
            }
            there
        });
        // Message files the index does not name (their line could not be written).
        let known: HashSet<String> = messages.iter().map(|m| m.file.clone()).collect();
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Some(file) = f.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !file.ends_with(".wav")
                || file == GREETING
                || known.contains(&file)
                || deleted.contains(&file)
            {
                continue;
            }
            let at_ms = file
                .split('-')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let ms = f.metadata().map_or(0, |m| m.len().saturating_sub(44) / 16);
            tracing::warn!(mailbox = %name, %file, "message not in the index; kept");
            messages.push(VmMessage {
                file,
                caller: "unknown".into(),
                at_ms,
                ms,
                heard: false,
            });
        }
        messages.sort_by(|a, b| (a.at_ms, &a.file).cmp(&(b.at_ms, &b.file)));
        let greeting = dir.join(GREETING).is_file();
        boxes.insert(name, Mailbox { messages, greeting });
    }
    boxes
}

/// `s` as a JSON string.
pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A prompt of the owner's menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    /// A sound from `sounds/`.
    Sound(String),
    /// A message file in the box.
    Message(String),
}

fn sounds(names: &[&str]) -> Vec<Prompt> {
    names.iter().map(|n| Prompt::Sound((*n).into())).collect()
}

fn number(n: usize) -> Vec<Prompt> {
    crate::say::say_prompts(crate::say::SayKind::Number, &n.to_string())
        .into_iter()
        .map(Prompt::Sound)
        .collect()
}

/// What the call does next in the owner's menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Play the prompts (a key cuts them short) and gather up to `max` keys, ended early by
    /// `terminator`; then [`Input::Keys`].
    Ask {
        /// Prompts, in order.
        prompts: Vec<Prompt>,
        /// Most keys.
        max: usize,
        /// Key that ends the input (not kept).
        terminator: Option<char>,
        /// Wait for the first key after the prompts, and between keys.
        timeout: Duration,
    },
    /// Play the prompts; then [`Input::Played`].
    Play(Vec<Prompt>),
    /// Play `vm-record-greeting` and the beep, record the greeting until `#`, a minute or
    /// 3 s of quiet; then [`Input::Recorded`].
    RecordGreeting,
    /// End the call.
    Hangup,
}

/// What the caller did since the last [`Step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The menu starts.
    Start,
    /// Keys gathered for an [`Step::Ask`] (empty: silence).
    Keys(&'a str),
    /// The prompts of a [`Step::Play`] ended.
    Played,
    /// The greeting recording ended; whether it was saved.
    Recorded(bool),
    /// Keys gathered as a PIN that are not even compared: the caller may key no PIN now
    /// (it keyed too many wrong ones lately). Taken as a wrong PIN.
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pin,
    Main,
    /// Playing (or just played) the message at this position.
    Message(usize),
    Greeting,
    Closing,
}

/// The owner's menu for one call: PIN, counts, each message with replay, delete and next,
/// and recording the greeting.
#[derive(Debug)]
pub struct Retrieval {
    pin: Option<String>,
    state: State,
    /// The messages as listed when the PIN was right, new ones first.
    order: Vec<String>,
    wrong_pins: u32,
    idle: u32,
}

impl Retrieval {
    /// A menu for a box whose PIN is `pin`; a box with no PIN cannot be opened by phone.
    pub fn new(pin: Option<String>) -> Self {
        Self {
            pin: pin.filter(|p| !p.is_empty()),
            state: State::Pin,
            order: Vec::new(),
            wrong_pins: 0,
            idle: 0,
        }
    }

    /// Whether the next keys gathered are a PIN.
    pub fn awaiting_pin(&self) -> bool {
        self.state == State::Pin
    }

    /// Wrong PINs keyed in this call so far.
    pub fn wrong_pins(&self) -> u32 {
        self.wrong_pins
    }

    fn ask(prompts: Vec<Prompt>) -> Step {
        Step::Ask {
            prompts,
            max: 1,
            terminator: None,
            timeout: KEY_TIMEOUT,
        }
    }

    fn close(&mut self, prompts: &[&str]) -> Step {
        self.state = State::Closing;
        Step::Play(sounds(prompts))
    }

    fn main_menu(&mut self, mut prompts: Vec<Prompt>) -> Step {
        self.state = State::Main;
        prompts.push(Prompt::Sound("vm-main-menu".into()));
        Self::ask(prompts)
    }

    /// The message at `i` (in the listing), or the end of the list; after `prompts`.
    fn message(&mut self, i: usize, mut prompts: Vec<Prompt>) -> Step {
        let Some(file) = self.order.get(i) else {
            prompts.push(Prompt::Sound("vm-no-more-messages".into()));
            return self.main_menu(prompts);
        };
        self.state = State::Message(i);
        prompts.push(Prompt::Sound("vm-message".into()));
        prompts.extend(number(i + 1));
        prompts.push(Prompt::Message(file.clone()));
        prompts.push(Prompt::Sound("vm-after-message".into()));
        Self::ask(prompts)
    }

    /// Silence once more: the same question again, or goodbye after too many.
    fn idle(&mut self, again: Step) -> Step {
        self.idle += 1;
        if self.idle >= IDLE_LIMIT {
            return self.close(&["goodbye"]);
        }
        again
    }

    /// The next step, given what the caller did and the box as it is now; changes to make
    /// to the box go into `changes`.
    pub fn next(&mut self, input: Input<'_>, mb: &Mailbox, changes: &mut Vec<Change>) -> Step {
        let keys = match input {
            Input::Keys(k) => Some(k),
            _ => None,
        };
        if keys.is_some_and(|k| !k.is_empty()) {
            self.idle = 0;
        }
        match (self.state, input) {
            (State::Closing, _) => Step::Hangup,
            (State::Pin, Input::Start) => {
                if self.pin.is_none() {
                    return self.close(&["vm-closed", "goodbye"]);
                }
                Step::Ask {
                    prompts: sounds(&["vm-enter-pin"]),
                    max: 16,
                    terminator: Some('#'),
                    timeout: KEY_TIMEOUT,
                }
            }
            (State::Pin, Input::Keys(_) | Input::Refused) => {
                if keys.is_some() && self.pin.as_deref() == keys {
                    let (new, saved): (Vec<&VmMessage>, Vec<&VmMessage>) =
                        mb.messages.iter().partition(|m| !m.heard);
                    self.order = new.iter().chain(&saved).map(|m| m.file.clone()).collect();
                    let mut p = sounds(&["vm-you-have"]);
                    p.extend(number(new.len()));
                    p.push(Prompt::Sound("vm-new-messages".into()));
                    p.push(Prompt::Sound("vm-and".into()));
                    p.extend(number(saved.len()));
                    p.push(Prompt::Sound("vm-saved-messages".into()));
                    return self.main_menu(p);
                }
                self.wrong_pins += 1;
                if self.wrong_pins >= PIN_TRIES {
                    return self.close(&["vm-wrong-pin", "goodbye"]);
                }
                Step::Ask {
                    prompts: sounds(&["vm-wrong-pin", "vm-enter-pin"]),
                    max: 16,
                    terminator: Some('#'),
                    timeout: KEY_TIMEOUT,
                }
            }
            (State::Main, Input::Keys(k)) => match k {
                "1" => self.message(0, Vec::new()),
                "0" => {
                    self.state = State::Greeting;
                    Step::RecordGreeting
                }
                "*" => self.close(&["goodbye"]),
                "" => {
                    let again = self.main_menu(Vec::new());
                    self.idle(again)
                }
                _ => self.main_menu(sounds(&["invalid-option"])),
            },
            (State::Message(i), Input::Keys(k)) => {
                // Heard once it started: any answer after it counts.
                if let Some(f) = self.order.get(i) {
                    if mb.get(f).is_some_and(|m| !m.heard) {
                        changes.push(Change::Heard(f.clone()));
                    }
                }
                match k {
                    "1" => self.message(i, Vec::new()),
                    "7" => {
                        let f = self.order.remove(i);
                        changes.push(Change::Deleted(f));
                        self.message(i, sounds(&["vm-deleted"]))
                    }
                    "9" | "#" => self.message(i + 1, Vec::new()),
                    "*" => self.main_menu(Vec::new()),
                    "" => {
                        let again = Self::ask(sounds(&["vm-after-message"]));
                        self.idle(again)
                    }
                    _ => Self::ask(sounds(&["invalid-option", "vm-after-message"])),
                }
            }
            (State::Greeting, Input::Recorded(saved)) => {
                if saved {
                    changes.push(Change::Greeting);
                    self.main_menu(sounds(&["vm-greeting-saved"]))
                } else {
                    self.main_menu(Vec::new())
                }
            }
            // Anything else is out of turn: the caller is past any question left open.
            _ => self.close(&["goodbye"]),
        }
    }
}

#[cfg(test)]
mod tests;
