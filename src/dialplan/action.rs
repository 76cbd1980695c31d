//! What the dialplan asks of a call ([`Action`]) and the values an action carries: how
//! keys are gathered ([`Collect`]), a PIN kept out of logs ([`Hidden`]), a line setting
//! ([`LineOp`]). Plain data, shared by the dialplan that yields it and the call layer that
//! carries it out; it holds no rule and runs nothing.

use std::time::Duration;

use super::Template;

/// How to gather keys into a variable (the `collect` statement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collect {
    /// Variable that receives the keys pressed.
    pub var: String,
    /// Fewest keys that count as an answer.
    pub min: usize,
    /// Most keys; collection ends as soon as this many are in.
    pub max: usize,
    /// Wait for the first key (after the prompt).
    pub timeout: Duration,
    /// Wait between keys.
    pub interdigit: Duration,
    /// Key that ends the input early (not stored).
    pub terminator: Option<char>,
    /// Prompts played first, in order; a key press cuts them short.
    pub prompts: Vec<Template>,
}

/// A value never to be written to the log (a PIN): its `Debug` shows no content.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// A setting of an extension's line the dialplan changes (`dnd`, `forward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineOp {
    /// Do not disturb on: calls to it are refused as busy.
    DndOn,
    /// Do not disturb off.
    DndOff,
    /// Forward every call (to the number given, or off).
    ForwardAll,
    /// Forward calls it refuses as busy.
    ForwardBusy,
    /// Forward calls it does not answer in time.
    ForwardNoAnswer,
}

/// What the call must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer (200 OK) if not yet answered.
    Answer,
    /// Send the caller's audio back until it hangs up.
    Echo,
    /// Play a sound file (name without extension, from `sounds/`); step again when done.
    Play(String),
    /// Play these sound files in turn (a `say`); step again when the last is done.
    PlayAll(Vec<String>),
    /// Answer, beep, and record the caller as `name` until `#`, `max` or `silence`; step
    /// again with `$recording` and `$status` (`ok`, or `empty` if nothing was said).
    Record {
        /// Recording name (a file name in the recordings directory, without `.wav`).
        name: String,
        /// Longest recording.
        max: Duration,
        /// Quiet this long ends it.
        silence: Duration,
    },
    /// Answer, ask for a message, beep, and record it into voicemail box `0`; step again
    /// when it is saved, with `$status` as for `Record`.
    Voicemail(String),
    /// Answer and run the owner's menu of voicemail box `0`: PIN, new and saved messages,
    /// replay, delete, greeting; the call ends there.
    VoicemailCheck(String),
    /// Answer, play the queue's music and wait for an agent (bridged when one answers);
    /// step again only if the queue gives up, with `$status` `timeout`, `full` or
    /// `noagents`.
    Queue {
        /// Queue name (in the config).
        name: String,
        /// Higher is served first.
        priority: u32,
        /// Longest wait (the queue's `max_wait_s` when `None`).
        timeout: Option<Duration>,
        /// What the agent must know.
        skills: Vec<crate::acd::SkillNeed>,
        /// `position-announce on|off`: this caller hears its position (every
        /// `announce_position_s`, or every 30 s where the queue says none), or not;
        /// `None`: as the queue says.
        announce: Option<bool>,
    },
    /// Answer, take the first free slot numbered `first` to `last`, say its number and
    /// play music until someone retrieves the call (`Unpark`), which bridges them; step
    /// again only if nobody does in `timeout` (`$status` `timeout`) or every slot is
    /// taken (`full`, at once). `$slot` is the slot, `$parked_by` who parked the call
    /// (the extension that transferred it here, else the caller).
    Park {
        /// The first slot's number.
        first: u32,
        /// The last slot's number.
        last: u32,
        /// How long the call waits for someone to retrieve it.
        timeout: Duration,
    },
    /// Answer and take the call parked in this slot: the two are bridged and this call
    /// ends. Steps again only if the slot is empty (`$status` `unavailable`).
    Unpark(String),
    /// The calling extension answers a call ringing at another: at this one (directed
    /// pickup), or at any of its pickup group (the one ringing longest). The two are
    /// bridged and this call ends; steps again only if nothing rings there
    /// (`$status` `unavailable`).
    Pickup(Option<String>),
    /// The calling extension sets do-not-disturb or a forward (with the number, or
    /// `None` to clear it); step again at once, with `$status` `ok` or `failed` (not one
    /// of our extensions, or no number to forward to).
    Line(LineOp, Option<String>),
    /// The calling extension, as an ACD agent, logs in or out, pauses or unpauses; step
    /// again at once, with `$status` `ok` or `failed` (not a queue member).
    Agent(crate::acd::AgentOp),
    /// Agent `id` logs in at the calling extension's phone if `pin` is its PIN; step
    /// again at once, with `$status` `ok`, `failed` (no such agent, wrong PIN, not an
    /// extension's call), `busy` (another agent is at that phone) or `locked` (this phone
    /// keyed too many wrong PINs lately).
    AgentLogin {
        /// The agent ID keyed.
        id: String,
        /// The PIN keyed.
        pin: Hidden,
    },
    /// Ring a number; step again only if it was not answered, with `$status` set.
    Dial {
        /// Number to ring.
        target: String,
        /// Through this trunk; an extension when `None`.
        trunk: Option<String>,
        /// How long to ring (the config's ring timeout when `None`).
        timeout: Option<Duration>,
    },
    /// End the call: a SIP failure code for an unanswered call (`None`: from `$status`).
    Hangup(Option<u16>),
    /// Answer, play the prompt (if any) and gather keys into a variable; step again when
    /// done, with `$status` `ok` (at least `min` keys) or `timeout`.
    Collect(Collect),
    /// Answer, play the menu's prompts (a key cuts them short) and wait for one key; report
    /// it (or silence) with [`Dialplan::menu_input`], then step again.
    Menu {
        /// Prompts, in order.
        prompts: Vec<String>,
        /// Wait for the key after the prompts.
        timeout: Duration,
    },
}
