//! The data a call is made of: its legs' roles, what it waits for, its timers, the branches
//! being rung, the app it is in (collect, record, queue) and the call record itself.
//!
//! Types only: of its siblings it imports just the ids and the leg (which it re-exports),
//! neither of which imports it back, so every feature file of the call (and the
//! endpoint's queue, voicemail and callback files) can depend on it without depending on
//! each other.

use bytes::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dialplan::Cursor;
use crate::sip::msg::{HeaderName, Message};
use crate::sip::transaction::Peer;
use crate::sip::uri::Uri;
use crate::story::Story;

pub(in crate::endpoint) use super::ids::{CallId, LegId};
pub(in crate::endpoint) use super::leg::{Controller, HoldChange, Leg, MediaLeg, Reoffer, Ring};

/// What `$status` says after a step that can fail (dial, queue, record, collect, agent
/// codes). The dialplan reads it as text ([`Status::as_str`]), so the names are part of the
/// dialplan language and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) enum Status {
    /// It worked.
    Ok,
    /// The callee (or the agent's phone) was busy.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// A known extension with no device registered.
    Offline,
    /// No such number.
    Unavailable,
    /// Anything else that went wrong.
    Failed,
    /// Too few keys before the timeout; a queue's longest wait passed.
    Timeout,
    /// A recording with nothing said.
    Empty,
    /// The queue was full.
    Full,
    /// The queue had no agent to offer the caller to.
    NoAgents,
    /// An agent ID locked after wrong PINs.
    Locked,
    /// A call out the toll-fraud guard refused.
    Forbidden,
}

impl Status {
    /// The text the dialplan compares `$status` with.
    pub(in crate::endpoint) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Busy => "busy",
            Self::NoAnswer => "noanswer",
            Self::Offline => "offline",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Empty => "empty",
            Self::Full => "full",
            Self::NoAgents => "noagents",
            Self::Locked => "locked",
            Self::Forbidden => "forbidden",
        }
    }

    /// `$status` as switchboard set it (`None` for text a dialplan put there itself).
    pub(in crate::endpoint) fn parse(s: &str) -> Option<Self> {
        [
            Self::Ok,
            Self::Busy,
            Self::NoAnswer,
            Self::Offline,
            Self::Unavailable,
            Self::Failed,
            Self::Timeout,
            Self::Empty,
            Self::Full,
            Self::NoAgents,
            Self::Locked,
            Self::Forbidden,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// A dial's failure, from a rung device's final response.
    pub(in crate::endpoint) fn of_dial_failure(code: u16) -> Self {
        match code {
            486 | 600 => Self::Busy,
            408 | 480 | 487 => Self::NoAnswer,
            404 | 604 => Self::Unavailable,
            _ => Self::Failed,
        }
    }

    /// Of several devices' failures the caller is told the most telling: busy beats no
    /// answer beats unavailable beats the rest (lower first).
    pub(in crate::endpoint) fn dial_rank(self) -> u8 {
        match self {
            Self::Busy => 0,
            Self::NoAnswer => 1,
            Self::Unavailable => 2,
            _ => 3,
        }
    }
}

/// A `collect` (or menu) in progress.
#[derive(Debug)]
pub(in crate::endpoint) struct Collecting {
    pub(super) spec: crate::dialplan::Collect,
    pub(super) digits: String,
    /// A prompt is still playing (the first-key timer starts when the last one ends).
    pub(super) prompting: bool,
    /// Prompts still to play.
    pub(super) prompts: VecDeque<std::path::PathBuf>,
    /// A menu's single key, reported to the dialplan rather than stored.
    pub(super) menu: bool,
}

/// A recording asked for, started once the prompts before it end.
#[derive(Debug)]
pub(in crate::endpoint) struct PendingRecord {
    pub(in crate::endpoint) path: std::path::PathBuf,
    pub(in crate::endpoint) max: Duration,
    pub(in crate::endpoint) silence: Duration,
    /// Voicemail index and the start of its line.
    pub(in crate::endpoint) index: Option<(std::path::PathBuf, String)>,
    /// A voicemail message: its box and what the box will list once it is saved.
    pub(in crate::endpoint) message: Option<(String, crate::voicemail::VmMessage)>,
}

/// What a call is doing: the one place that says so. The dialplan runs only in
/// `Routing`; every other state names what the call waits for, and the app states carry
/// that app's data, so it cannot outlive the app. `ctl calls` shows [`State::name`].
#[derive(Debug)]
pub(in crate::endpoint) enum State {
    /// The dialplan runs (nothing is awaited).
    Routing,
    /// A prompt (or a `say`) plays; the dialplan goes on after its last file.
    Playing,
    /// The callee's devices ring (`Call::dialing`), or a callback's customer with its
    /// agent on the line (`Callback::ringing`): one answers or they fail.
    Ringing,
    /// Keys are gathered for a `collect` or a menu.
    Collecting(Collecting),
    /// The prompts before a recording (then the beep) play; the recording follows.
    PreRecord(PendingRecord),
    /// A recording runs until `#`, silence or its longest time.
    Recording,
    /// The caller and the callee are bridged: only a hang-up ends it.
    Bridged,
    /// The caller hears itself: only a hang-up ends it.
    Echo,
    /// A last prompt plays, then the call ends (a callback was taken).
    Goodbye,
    /// In an ACD queue: music, announcements, and offers to agents.
    Queued,
    /// Parked in this slot: its number said, then music, until someone retrieves the
    /// call or the park times out.
    Parked(String),
    /// Its one party waits with music while the other consults someone on a call of its
    /// own (an attended transfer by feature code, `Call::consult`).
    Held,
}

impl State {
    /// The state's name, as `ctl calls` shows it.
    pub(in crate::endpoint) fn name(&self) -> &'static str {
        match self {
            State::Routing => "routing",
            State::Playing => "playing",
            State::Ringing => "ringing",
            State::Collecting(c) if c.menu => "menu",
            State::Collecting(_) => "collecting",
            State::PreRecord(_) => "record-prompt",
            State::Recording => "recording",
            State::Bridged => "bridged",
            State::Echo => "echo",
            State::Goodbye => "goodbye",
            State::Queued => "queued",
            State::Parked(_) => "parked",
            State::Held => "held",
        }
    }
}

/// Timers a call can have running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(in crate::endpoint) enum CallTimer {
    /// Retransmit our 2xx to the caller until its ACK (RFC 3261 §13.3.1.4).
    OkRetransmit,
    /// Retransmit our 2xx to the callee's re-INVITE until its ACK.
    CalleeOkRetransmit,
    /// Give up ringing B.
    RingTimeout,
    /// Give up waiting for the next key of a `collect`.
    DigitTimeout,
    /// Tell a queued caller its position.
    Announce,
    /// Give up ringing a callback's customer.
    CustomerRing,
    /// Nobody retrieved a parked call.
    ParkTimeout,
    /// Send our reliable provisional to the caller again (RFC 3262 §3).
    Reliable,
    /// Take the number a transferor is entering as it stands.
    FeatureEntry,
}

impl CallTimer {
    const COUNT: usize = 9;
}

/// Where a call's feature keys stand (`features` acts on them).
#[derive(Debug, Default)]
pub(in crate::endpoint) enum Feature {
    /// Nothing pressed that begins a code.
    #[default]
    None,
    /// `leg` pressed `keys`, the start of a code, the last of them at `at`.
    Code {
        leg: LegId,
        keys: String,
        at: Instant,
    },
    /// `leg` pressed a transfer code and is entering the number; the other party hears
    /// music.
    Number {
        leg: LegId,
        number: String,
        kind: TransferKind,
    },
}

/// Which transfer a feature code starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) enum TransferKind {
    /// The other party is sent to the number at once.
    Blind,
    /// The transferor calls the number first; hanging up hands the other party over.
    Attended,
}

/// An attended transfer by feature code, as each of its two calls sees it.
#[derive(Debug)]
pub(in crate::endpoint) enum Consult {
    /// This call's remaining party waits (state `Held`) while the transferor, its party
    /// in `role` until then, consults on call `call` as that call's caller.
    Held { call: CallId, role: Role },
    /// This call is the consultation of its caller, which put its party of call `call`
    /// aside to dial `number`.
    Consulting { call: CallId, number: String },
}

/// A call's deadlines, one slot per timer kind (as quinn's `TimerTable`): arming a timer
/// replaces its deadline and stopping it clears the slot, so an earlier deadline can never
/// fire. The calls' index (`Calls::arm`) only points at these slots; an index entry whose
/// deadline is no longer the slot's is stale and skipped.
#[derive(Clone, Copy, Debug, Default)]
pub(in crate::endpoint) struct TimerTable([Option<Instant>; CallTimer::COUNT]);

impl TimerTable {
    /// When timer `t` fires, if it runs.
    pub(in crate::endpoint) fn get(&self, t: CallTimer) -> Option<Instant> {
        self.0[t as usize]
    }

    /// Stops timer `t`.
    pub(in crate::endpoint) fn stop(&mut self, t: CallTimer) {
        self.0[t as usize] = None;
    }

    /// Sets timer `t`; only through `Calls::arm`, which also indexes it.
    pub(super) fn set(&mut self, t: CallTimer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
}

/// A bridge as the call layer keeps it: its key in the media engine and the media legs
/// in it now (a party on hold has left it; a closed leg is gone from it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::endpoint) struct Bridge {
    pub(in crate::endpoint) key: crate::media::BridgeKey,
    pub(in crate::endpoint) members: Vec<crate::media::LegKey>,
}

/// A callback the PBX places: the call starts with no party at all, rings an agent (its
/// callee), then the customer, whose leg becomes the caller's when it answers.
pub(in crate::endpoint) struct Callback {
    /// The request it serves: the id the ACD knows it by.
    pub(in crate::endpoint) request: CallId,
    /// What the agent is offered: the laws we relay, and keys.
    pub(in crate::endpoint) offer: crate::sdp::Sdp,
    /// Our media leg to face the customer, open (parked) from the start: the customer's
    /// leg takes it when it answers.
    pub(in crate::endpoint) media: Option<MediaLeg>,
    /// The customer's leg while it rings.
    pub(super) ringing: Option<LegId>,
    /// The customer's phone was rung and refused or did not answer (an attempt spent).
    pub(in crate::endpoint) missed: bool,
}

/// A callback call to place: the request it serves, whom to call back and how, and the
/// SIP Call-ID of the call that asked for it.
pub(in crate::endpoint) struct Placed {
    pub(in crate::endpoint) request: CallId,
    pub(in crate::endpoint) number: String,
    pub(in crate::endpoint) trunk: Option<String>,
    pub(in crate::endpoint) asked_by: Option<String>,
}

/// How long the customer's phone rings on a callback: under the INVITE transaction's
/// 32 s (Timer B), so that a CANCEL ends the ring rather than the transaction dying.
pub(super) const CUSTOMER_RING: Duration = Duration::from_secs(30);

/// What a party's leg is to its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::endpoint) enum Role {
    /// The party the call is for: who called (a callback's customer once it answered).
    Caller,
    /// The party a dial or a queue reached for it: who answered.
    Callee,
}

pub(in crate::endpoint) struct Call {
    pub(super) started: Instant,
    /// Its parties' legs and what each is to it: the caller's, and the callee's once
    /// one answered (a device being rung is in `dialing`, not here).
    pub(in crate::endpoint) legs: Vec<(LegId, Role)>,
    /// Whether A got our 2xx.
    pub(in crate::endpoint) answered: bool,
    /// A callback the PBX places (agent first, then the customer as the caller).
    pub(in crate::endpoint) callback: Option<Callback>,
    /// The trunk the call came in on.
    pub(in crate::endpoint) from_trunk: Option<String>,
    /// The caller asked to hide its identity (Privacy: id, RFC 3323).
    pub(super) privacy: bool,
    /// Who the caller is, when it is not who began the call: a callee its caller
    /// transferred (an extension, or a number reached through `from_trunk`).
    pub(super) caller_id: Option<String>,
    /// The callee's devices being rung (every registered contact, in parallel).
    pub(in crate::endpoint) dialing: Vec<LegId>,
    /// Final failures of branches rung so far, for the status when all have failed.
    pub(super) failures: Vec<u16>,
    /// The dialplan in force when the call started, and where the call is in it.
    pub(super) plan: std::sync::Arc<crate::dialplan::Dialplan>,
    pub(in crate::endpoint) cursor: Cursor,
    /// What the call is doing.
    pub(in crate::endpoint) state: State,
    pub(super) mf: u8,
    /// The media leg a running dial's devices share (the one that answers takes it).
    pub(in crate::endpoint) dial_media: Option<MediaLeg>,
    /// The bridge joining the caller's media leg with the callee's, once opened.
    pub(in crate::endpoint) bridge: Option<Bridge>,
    /// Number of the last prompt started, to match its end report.
    pub(super) play_seq: u64,
    /// Prompts still to play in a `say` (or a `play`), after the current one.
    pub(in crate::endpoint) play_queue: VecDeque<std::path::PathBuf>,
    /// The owner's voicemail menu this call is in (`voicemail check`), and its box.
    pub(in crate::endpoint) vm: Option<(String, crate::voicemail::Retrieval)>,
    /// The ACD queue the call waits in (or was answered from).
    pub(in crate::endpoint) queue: Option<QueueCall>,
    /// The extension a `dial` rings (none for a trunk).
    pub(super) b_ext: Option<String>,
    /// Extensions this call keeps busy (the ACD hears when they are free again).
    pub(in crate::endpoint) devices: Vec<String>,
    /// Its running timers: 2xx retransmission, ring timeout, the current `collect`'s next
    /// key, a queued caller's next position announcement, a callback customer's ring.
    pub(in crate::endpoint) timers: TimerTable,
    /// The leg on hold (hearing music), put there by the other.
    pub(in crate::endpoint) on_hold: Option<LegId>,
    /// What happened to it so far; its CDR is the story's projection.
    pub(in crate::endpoint) story: Story,
    /// When its answered parties are next asked to confirm their dialogs (the calls'
    /// sweep finds it: a deadline in the call, not an entry per call in the timer heap,
    /// which would outlive short calls by the whole interval).
    pub(super) refresh_at: Option<Instant>,
    /// Feature keys a party is pressing during the conversation.
    pub(super) feature: Feature,
    /// A transferor no longer a party, hearing its last words before it is hung up on.
    pub(super) leaving: Option<Leaving>,
    /// The attended transfer by feature code this call is part of.
    pub(super) consult: Option<Consult>,
}

/// A leg that left its call by a feature code and hears what became of the party it
/// sent away (a parked call's slot) before switchboard hangs up on it. Its dialog and
/// media stay open until then; nothing it sends is acted on but its BYE.
#[derive(Debug)]
pub(in crate::endpoint) struct Leaving {
    pub(super) leg: LegId,
    /// Prompts still to play after the current one.
    pub(super) prompts: VecDeque<std::path::PathBuf>,
}

impl Call {
    /// The leg in `role`, if the call has one.
    pub(in crate::endpoint) fn leg(&self, role: Role) -> Option<LegId> {
        self.legs.iter().find(|(_, r)| *r == role).map(|(l, _)| *l)
    }

    /// The caller's leg.
    pub(in crate::endpoint) fn caller(&self) -> Option<LegId> {
        self.leg(Role::Caller)
    }

    /// The callee's leg, once one answered.
    pub(in crate::endpoint) fn callee(&self) -> Option<LegId> {
        self.leg(Role::Callee)
    }

    /// What `leg` is to the call, if it is one of its parties'.
    pub(super) fn role(&self, leg: LegId) -> Option<Role> {
        self.legs.iter().find(|(l, _)| *l == leg).map(|(_, r)| *r)
    }

    /// The party's leg facing `leg`'s: the callee's for the caller's (if one answered),
    /// the caller's for any other.
    pub(super) fn other(&self, leg: LegId) -> Option<LegId> {
        match self.role(leg) {
            Some(Role::Caller) => self.callee(),
            _ => self.caller(),
        }
    }

    /// Who the caller is: its extension or number (`$caller` in the dialplan).
    pub(in crate::endpoint) fn caller_number(&self) -> &str {
        self.caller_id
            .as_deref()
            .unwrap_or(&self.story.start().caller)
    }

    /// The extension on `leg`, if its party is one of ours: a callee a dial or a queue
    /// reached on an extension, or a caller that did not come from a trunk.
    pub(super) fn party_ext(&self, leg: LegId) -> Option<&str> {
        match self.role(leg)? {
            Role::Callee => self.b_ext.as_deref(),
            Role::Caller if self.from_trunk.is_none() && self.callback.is_none() => {
                Some(self.caller_number())
            }
            Role::Caller => None,
        }
    }

    /// Who the party on `leg` is: its extension or number, and the trunk it is reached
    /// through if it is not one of ours.
    pub(super) fn party_number(&self, leg: LegId) -> (String, Option<String>) {
        match self.role(leg) {
            Some(Role::Caller) => (self.caller_number().to_string(), self.from_trunk.clone()),
            _ => match &self.b_ext {
                Some(ext) => (ext.clone(), None),
                None => (
                    self.story.last_dialled().unwrap_or_default().to_string(),
                    self.story.last_trunk().map(str::to_string),
                ),
            },
        }
    }

    /// Whether `leg` is the caller's.
    pub(super) fn is_caller(&self, leg: LegId) -> bool {
        self.role(leg) == Some(Role::Caller)
    }

    /// Whether a callee answered: its leg is in the call's bridge with the caller's
    /// (or stepped out of it for music while on hold).
    pub(in crate::endpoint) fn bridged(&self) -> bool {
        self.callee().is_some()
    }

    /// The keys being gathered, in a `collect` or menu.
    pub(super) fn collecting(&mut self) -> Option<&mut Collecting> {
        match &mut self.state {
            State::Collecting(c) => Some(c),
            _ => None,
        }
    }

    /// A call just started (not answered, nothing dialled, no media yet): the caller's
    /// leg (none for a call the PBX places), the dialplan and where the call starts in it.
    pub(in crate::endpoint) fn new(
        now: Instant,
        caller: Option<LegId>,
        (plan, cursor): (std::sync::Arc<crate::dialplan::Dialplan>, Cursor),
        mf: u8,
        story: Story,
    ) -> Self {
        Self {
            started: now,
            legs: caller.map(|a| (a, Role::Caller)).into_iter().collect(),
            answered: false,
            callback: None,
            from_trunk: None,
            privacy: false,
            caller_id: None,
            dialing: Vec::new(),
            failures: Vec::new(),
            plan,
            cursor,
            state: State::Routing,
            mf,
            dial_media: None,
            bridge: None,
            play_seq: 0,
            play_queue: VecDeque::new(),
            vm: None,
            queue: None,
            b_ext: None,
            devices: Vec::new(),
            timers: TimerTable::default(),
            on_hold: None,
            story,
            refresh_at: None,
            feature: Feature::None,
            leaving: None,
            consult: None,
        }
    }
}

/// Who and how a dial reaches: built by [`Endpoint::dial`] (an extension) or
/// [`Endpoint::dial_trunk`], sent by [`Endpoint::dial_out`].
pub(super) struct Outgoing {
    pub(super) target: String,
    pub(super) from: Bytes,
    pub(super) to: Bytes,
    pub(super) uri: Uri,
    pub(super) peer: Peer,
    pub(super) extra: Vec<(HeaderName, Bytes)>,
    pub(super) credentials: Option<(String, String)>,
}

/// A B leg given up on whose INVITE is still pending.
pub(in crate::endpoint) struct Detached {
    pub(in crate::endpoint) invite: Message,
    pub(in crate::endpoint) peer: Peer,
    pub(in crate::endpoint) cancel_sent: bool,
}

/// A call's place in a queue.
#[derive(Debug)]
pub(in crate::endpoint) struct QueueCall {
    /// Music on hold, played round.
    pub(in crate::endpoint) moh: PathBuf,
    /// The agent being rung.
    pub(in crate::endpoint) offering: Option<String>,
    /// The agent who answered.
    pub(in crate::endpoint) agent: Option<String>,
    /// The dialplan's `position-announce on|off` for this caller, if it said.
    pub(in crate::endpoint) announce: Option<bool>,
}

/// What the dialplan's `queue` asks for a caller.
pub(in crate::endpoint) struct QueueAsk {
    /// Higher is served first.
    pub(in crate::endpoint) priority: u32,
    /// Longest wait (the queue's when `None`).
    pub(in crate::endpoint) timeout: Option<Duration>,
    /// What the agent must know.
    pub(in crate::endpoint) skills: Vec<crate::acd::SkillNeed>,
    /// `position-announce on|off`.
    pub(in crate::endpoint) announce: Option<bool>,
}

/// The variable the menu's keys are gathered into (never logged: it holds PINs).
pub(in crate::endpoint) const VM_KEYS: &str = "vmkeys";
