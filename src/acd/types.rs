//! The ACD's language with the call layer: queue and member config, the events it is
//! fed, the commands and queue-log records it gives back, and the views `ctl` shows.
//!
//! Types only: no state lives here, and nothing here imports the rest of the ACD.

use std::time::{Duration, Instant};

use super::QueueStats;

/// How a queue picks among the agents free to take its next caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Every free agent rings; the first to answer takes the call.
    RingAll,
    /// The agent idle longest.
    LongestIdle,
    /// The next agent after the one offered last, in member order.
    RoundRobin,
    /// The agent who answered fewest calls from this queue.
    FewestCalls,
    /// The agent with least talk time so far.
    LeastTalkTime,
    /// The first free agent in member order (top-down).
    Linear,
    /// Any free agent, uniformly.
    Random,
    /// Any free agent, in proportion to its weight.
    WeightedRandom,
    /// The best proficiency in the caller's skills, then the agent idle longest.
    Skills,
}

/// An agent's place in a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The agent (an extension by default).
    pub agent: String,
    /// Lower is offered first; agents with a higher penalty only when none lower is free.
    pub penalty: u32,
    /// For `weighted-random`.
    pub weight: u32,
}

/// A queue's rules.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// Queue name.
    pub name: String,
    /// How agents are picked.
    pub strategy: Strategy,
    /// Static members, in order (dynamic agents are added by [`Event::Login`]).
    pub members: Vec<Member>,
    /// How long an offer rings before it is withdrawn.
    pub ring_timeout: Duration,
    /// Wait after an unanswered offer before the caller is offered again.
    pub retry: Duration,
    /// An agent's time after a call before the next offer.
    pub wrap_up: Duration,
    /// Longest a caller waits before the queue gives up on it.
    pub max_wait: Option<Duration>,
    /// Most callers waiting; the next one is given up at once.
    pub max_len: Option<usize>,
    /// Whether callers may join while no agent is logged in.
    pub join_empty: bool,
    /// Whether waiting callers are given up when the last agent logs out.
    pub leave_when_empty: bool,
    /// Answered within this counts towards the service level.
    pub sl_threshold: Duration,
    /// Callers who hang up sooner than this are short abandons (not held against SL).
    pub short_abandon: Duration,
    /// Unanswered offers in a row after which the agent is paused (0: never).
    pub auto_pause_after: u32,
    /// How often a waiting caller hears its position (zero: never). The ACD only
    /// answers [`Acd::position`](super::Acd::position); the call layer plays it.
    pub announce_every: Duration,
    /// Sticky routing: a caller whose number this queue answered within this long is
    /// offered first to the agent who took it last, if that agent is free (zero: off).
    pub sticky: Duration,
    /// Whether the periodic announcement also gives the caller's estimated wait
    /// ([`Acd::estimated_wait`](super::Acd::estimated_wait)).
    pub announce_wait: bool,
    /// Where a caller this queue gives up goes next (its wait, fullness or lack of
    /// agents), keeping its priority, skills and number; `None`: back to the dialplan.
    pub overflow: Option<String>,
    /// The key a waiting caller presses to be called back instead of waiting on the line
    /// ([`Event::Callback`]; the call layer hears the key and places the calls).
    pub callback_key: Option<char>,
    /// A caller still waiting after the longest wait is called back instead of given up,
    /// keeping its place, if the call layer said it can be ([`Event::Callable`]).
    pub callback_on_max_wait: bool,
    /// Calls to a callback's customer before the request is given up (each after an
    /// agent took it). The call layer's.
    pub callback_attempts: u32,
    /// The wait before a callback whose customer did not answer is queued again.
    pub callback_retry: Duration,
}

impl QueueConfig {
    /// A queue with the usual defaults: ring 15 s, retry 5 s, no wrap-up, 80/20 service
    /// level, short abandons under 5 s, auto-pause after 3 missed offers.
    pub fn new(name: &str, strategy: Strategy) -> Self {
        Self {
            name: name.into(),
            strategy,
            members: Vec::new(),
            ring_timeout: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            wrap_up: Duration::ZERO,
            max_wait: None,
            max_len: None,
            join_empty: true,
            leave_when_empty: false,
            sl_threshold: Duration::from_secs(20),
            short_abandon: Duration::from_secs(5),
            auto_pause_after: 3,
            announce_every: Duration::ZERO,
            sticky: Duration::ZERO,
            announce_wait: false,
            overflow: None,
            callback_key: None,
            callback_on_max_wait: false,
            callback_attempts: 3,
            callback_retry: Duration::from_secs(120),
        }
    }
}

/// A waiting caller's identity (the call layer's call id).
pub type CallerId = u64;

/// What an agent is doing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Not taking calls.
    LoggedOut,
    /// Free for an offer.
    Available,
    /// An offer rings its phone.
    Ringing,
    /// Talking to a queue caller.
    OnCall,
    /// After a call, until the wrap-up time is over.
    WrapUp,
    /// Paused, with a reason code (`auto` after missed offers).
    Paused(String),
}

/// A skill a caller needs: the agent's proficiency must be at least `min`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkillNeed {
    /// Skill name.
    pub skill: String,
    /// Lowest proficiency accepted.
    pub min: u8,
}

/// Why the queue gives a caller up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GiveUp {
    /// Waited `max_wait`.
    MaxWait,
    /// The queue was at `max_len`.
    Full,
    /// No agent logged in (and the queue does not take callers then).
    NoAgents,
    /// No such queue.
    UnknownQueue,
}

/// What happened, for the ACD to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A caller waits in a queue.
    Join {
        /// The call.
        caller: CallerId,
        /// Queue name.
        queue: String,
        /// Higher goes first.
        priority: u32,
        /// What the agent must know.
        skills: Vec<SkillNeed>,
        /// Longest wait for this caller (the queue's `max_wait` when `None`).
        max_wait: Option<Duration>,
        /// The caller's number, for sticky routing (empty: unknown).
        number: String,
    },
    /// A waiting caller hung up (abandoned).
    Abandon(CallerId),
    /// A waiting caller asked to be called back: it keeps its place, with no longest wait
    /// (nobody will be on the line to wait), and is not offered until
    /// [`Event::CallbackReady`] (its call has ended); then it is offered to agents as
    /// before, and the call layer calls the agent first, then the caller.
    Callback(CallerId),
    /// The call that asked for a callback has ended: the request may be offered.
    CallbackReady(CallerId),
    /// A callback request joins a queue with no call behind it (queued again after its
    /// customer did not answer, or taken back after a restart): at once ready for an
    /// agent, with no longest wait.
    JoinCallback {
        /// Its id.
        caller: CallerId,
        /// Queue name.
        queue: String,
        /// Higher goes first.
        priority: u32,
        /// What the agent must know.
        skills: Vec<SkillNeed>,
        /// The number to call back (for sticky routing).
        number: String,
    },
    /// The call layer could not place an offer (no media port, say): the agent is free
    /// again with no miss held against it, and the caller waits its retry delay.
    Unplaced {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// A waiting caller can be called back (the call layer knows a number to call), so a
    /// queue with `callback_on_max_wait` turns it into a callback rather than give it up.
    Callable(CallerId),
    /// An agent logs in (to its static queues, and to `queues` as a dynamic member).
    Login {
        /// The agent.
        agent: String,
        /// Dynamic memberships: queue and penalty.
        queues: Vec<(String, u32)>,
    },
    /// An agent logs out.
    Logout(String),
    /// An agent pauses, with a reason code.
    Pause(String, String),
    /// An agent is available again.
    Unpause(String),
    /// The agent answered the offer: the caller is connected to it.
    Answered {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// Someone who is not the agent (an extension's pickup) answered the caller while it
    /// was offered: it leaves the queue answered, and the agents rung for it are free
    /// again with no miss held against them.
    PickedUp {
        /// The call.
        caller: CallerId,
        /// The extension that took it.
        by: String,
    },
    /// The agent's phone refused the offer (busy, declined, unreachable).
    Refused {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// The queue call the agent took has ended: wrap-up begins.
    CallEnded(String),
    /// The agent sent the queue call it took elsewhere (a blind transfer to `to`): for
    /// the agent and the queue its talk ends here, as with [`Event::CallEnded`].
    Transferred {
        /// The agent.
        agent: String,
        /// The number the caller was sent to.
        to: String,
    },
    /// The agent's phone is on some other call (direct, outgoing) or free again.
    Busy(String, bool),
    /// An agent's skills (replacing what it had).
    Skills(String, Vec<(String, u8)>),
    /// Whether the agent has a phone to ring (a registered device). An agent with none
    /// is not offered calls; an offer that finds none goes to the next agent at once,
    /// and is not held against the agent as a miss.
    Reachable(String, bool),
}

/// What the call layer must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Ring `agent` with `caller`.
    Offer {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// Stop ringing `agent` (timed out, or another agent answered first).
    Withdraw {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// The caller overflowed to another queue and waits there now (its music and
    /// announcements are that queue's).
    Moved {
        /// The call.
        caller: CallerId,
        /// The queue it waits in now.
        queue: String,
    },
    /// The queue turned a caller who waited its longest into a callback request (in its
    /// place): the call layer tells the caller and ends its call, then reports
    /// [`Event::CallbackReady`].
    CallBack {
        /// The call.
        caller: CallerId,
    },
    /// The queue gives the caller up: the dialplan goes on (overflow, voicemail, ...).
    GiveUp {
        /// The call.
        caller: CallerId,
        /// Why.
        why: GiveUp,
    },
}

/// What an agent asks for (feature codes, `ctl agent`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOp {
    /// Take calls from its queues.
    Login,
    /// Stop taking calls.
    Logout,
    /// A break, with a reason code.
    Pause(String),
    /// Back from a break.
    Unpause,
}

/// One line of the queue log: what happened, when, to which queue, caller and agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// When.
    pub at: Instant,
    /// `join`, `offer`, `answer`, `miss`, `abandon`, `give-up`, `complete`, `callback`,
    /// `login`, `logout`, `pause`, `unpause`, `reachable`, `unreachable`.
    pub event: &'static str,
    /// The queue (empty for agent events).
    pub queue: String,
    /// The caller, if any.
    pub caller: Option<CallerId>,
    /// The agent, if any.
    pub agent: Option<String>,
    /// Details: the wait or talk in ms, a priority, a reason.
    pub detail: Vec<(&'static str, String)>,
}

/// A queue now.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Callers waiting.
    pub waiting: usize,
    /// The longest of their waits.
    pub longest_wait_s: u64,
    /// Member agents by state.
    pub agents: std::collections::BTreeMap<String, usize>,
    /// Service level so far, 0..1.
    pub service_level: Option<f64>,
    /// Average speed of answer.
    pub asa_s: Option<f64>,
    /// Average handle time.
    pub aht_s: Option<f64>,
    /// The counters.
    pub stats: QueueStats,
}

/// An agent now.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AgentView {
    /// The agent (extension).
    pub agent: String,
    /// `logged-out`, `available`, `ringing`, `on-call`, `wrap-up` or `paused(REASON)`.
    pub state: String,
    /// Queues it belongs to.
    pub queues: Vec<String>,
    /// Queue calls answered.
    pub answered: u64,
    /// Talk time on queue calls.
    pub talk_s: u64,
    /// Offers missed in a row.
    pub missed_in_a_row: u32,
    /// On a call outside the queues.
    pub busy_elsewhere: bool,
    /// Has a phone to ring (a registered device).
    pub reachable: bool,
    /// (talk + wrap-up) ÷ logged-in, unpaused time, 0..1.
    pub occupancy: Option<f64>,
    /// The extension whose phone it takes calls on, where that is not its own (an agent
    /// logged in by ID and PIN). The ACD does not know phones: the call layer fills it.
    #[serde(default)]
    pub phone: Option<String>,
}
