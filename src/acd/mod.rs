//! The ACD core: queues of waiting callers, agents, and who is offered which call.
//!
//! Sans-IO and deterministic: [`Acd::handle`] takes an [`Event`] (a caller joined, an agent
//! logged in, an offer was answered or timed out, a call ended) with `now`, and
//! [`Acd::poll_command`] gives what the call layer must do ([`Command`]: offer a caller to
//! an agent, withdraw an offer, give a caller up). Timers (ring timeout, wrap-up, maximum
//! wait, retry) fire from [`Acd::handle_timeout`]; randomness comes from a seeded generator.
//! No sockets, no wall clock, no files: the caller of this module owns all of those, and
//! this module owns queue and agent state alone.
//!
//! Fairness rules every strategy keeps: an agent is offered at most one call at a time and
//! only while available (not ringing, talking, in wrap-up, paused, logged out or busy on
//! any other call); callers are taken in priority order, first come first served within a
//! priority; among the agents a strategy may pick, those with the lowest penalty for the
//! queue come first.

mod index;
mod stats;

pub use stats::QueueStats;

use index::{FreeIndex, Rank, SkillRank};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// answers [`Acd::position`]; the call layer plays it.
    pub announce_every: Duration,
    /// Sticky routing: a caller whose number this queue answered within this long is
    /// offered first to the agent who took it last, if that agent is free (zero: off).
    pub sticky: Duration,
    /// Whether the periodic announcement also gives the caller's estimated wait
    /// ([`Acd::estimated_wait`]).
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
    /// The agent's phone refused the offer (busy, declined, unreachable).
    Refused {
        /// The call.
        caller: CallerId,
        /// The agent.
        agent: String,
    },
    /// The queue call the agent took has ended: wrap-up begins.
    CallEnded(String),
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

fn state_name(s: &AgentState) -> String {
    match s {
        AgentState::LoggedOut => "logged-out".into(),
        AgentState::Available => "available".into(),
        AgentState::Ringing => "ringing".into(),
        AgentState::OnCall => "on-call".into(),
        AgentState::WrapUp => "wrap-up".into(),
        AgentState::Paused(r) => format!("paused({r})"),
    }
}

struct Agent {
    /// Its id, shared by its index entries (cheap to copy into them).
    id: Arc<str>,
    state: AgentState,
    /// Free since (for longest-idle).
    idle_since: Instant,
    /// On some call outside the queues.
    busy: bool,
    /// No phone to ring (no registered device).
    unreachable: bool,
    /// Dynamic memberships (static ones are in the queue config).
    dynamic: Vec<(String, u32)>,
    skills: HashMap<String, u8>,
    /// The caller being offered.
    offer: Option<CallerId>,
    ring_until: Option<Instant>,
    wrap_until: Option<Instant>,
    /// Offers missed in a row.
    missed: u32,
    /// Answered per queue, and talk time in all.
    answered: HashMap<String, u64>,
    talk: Duration,
    talk_since: Option<(Instant, String)>,
    /// What it counts for in its queues' indexes now, exactly as inserted there (so that
    /// [`Acd::refresh`] removes what it put in).
    indexed: Vec<Indexed>,
    /// Logged in and not paused since, and such time before that (for occupancy).
    on_since: Option<Instant>,
    on_time: Duration,
    /// Wrap-up time after its queue calls.
    wrap_time: Duration,
}

impl Agent {
    /// Free for an offer: available, reachable, on no other call, not being offered one.
    fn is_free(&self) -> bool {
        self.state == AgentState::Available
            && !self.busy
            && !self.unreachable
            && self.offer.is_none()
    }

    /// Starts or stops counting its logged-in, unpaused time as its state changes.
    fn clock(&mut self, now: Instant) {
        let on = !matches!(self.state, AgentState::LoggedOut | AgentState::Paused(_));
        match (on, self.on_since) {
            (true, None) => self.on_since = Some(now),
            (false, Some(since)) => {
                self.on_time += now.saturating_duration_since(since);
                self.on_since = None;
            }
            _ => {}
        }
    }

    /// (talk + wrap-up) ÷ logged-in, unpaused time, up to `now`.
    fn occupancy(&self, now: Instant) -> Option<f64> {
        let on = self.on_time
            + self
                .on_since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        (!on.is_zero()).then(|| (self.talk + self.wrap_time).as_secs_f64() / on.as_secs_f64())
    }
}

/// An agent's entry in one of its queues' indexes; the queue is its place in
/// [`Acd::order`] (a reload re-indexes every agent, so places do not go stale).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Indexed {
    /// Logged in (counted in [`Queue::logged_in`]).
    LoggedIn(usize),
    /// Logged in, not paused, with a phone (counted in [`Queue::staffed`]).
    Staffed(usize),
    /// Free, at this penalty and rank, in the queue's [`FreeIndex`].
    Free(usize, u32, Rank),
    /// Free, with this skill, in the queue's skill index.
    Skill(usize, String, u32, SkillRank),
}

struct Caller {
    queue: String,
    number: String,
    /// Queues it overflowed from, to stop overflow going round in circles.
    hops: u8,
    priority: u32,
    seq: u64,
    skills: Vec<SkillNeed>,
    joined: Instant,
    /// Agents being rung now.
    ringing: Vec<String>,
    /// Not to be offered again before this.
    retry_at: Option<Instant>,
    /// A callback whose call has not ended yet: not to be offered meanwhile.
    parked: bool,
    /// The call layer can call it back.
    callable: bool,
    give_up_at: Option<Instant>,
}

/// A waiting caller's place: highest priority first, then first come.
type WaitKey = (Reverse<u32>, u64, CallerId);

impl Caller {
    /// A caller joining `queue` now, not yet placed (no sequence number, no timers).
    fn new(
        queue: String,
        number: String,
        priority: u32,
        skills: Vec<SkillNeed>,
        now: Instant,
    ) -> Self {
        Self {
            queue,
            number,
            hops: 0,
            priority,
            seq: 0,
            skills,
            joined: now,
            ringing: Vec::new(),
            retry_at: None,
            parked: false,
            callable: false,
            give_up_at: None,
        }
    }
}

struct Queue {
    cfg: QueueConfig,
    /// Waiting callers in order: highest priority first, then first come.
    waiting: BTreeSet<WaitKey>,
    /// The waiting callers who may be offered now (not ringing, not waiting out a retry
    /// delay), in the same order: routing looks at these, not at every caller.
    ready: BTreeSet<WaitKey>,
    /// Round-robin: the rank of the member offered last.
    last: Option<Rank>,
    stats: QueueStats,
    /// Members free for an offer now, in the order the strategy picks them: routing looks
    /// at these, not at every member.
    free: FreeIndex,
    /// Members logged in, and those of them staffing the queue (not paused, reachable).
    logged_in: usize,
    staffed: usize,
    /// Static members' places in the member list (for linear and round-robin).
    pos: HashMap<String, usize>,
    /// Sticky routing: who last took each caller number, and when; and the numbers in
    /// the order they were taken, so that entries older than the window are dropped.
    served: HashMap<String, (String, Instant)>,
    served_order: VecDeque<(Instant, String)>,
}

impl Queue {
    /// Notes that `agent` took `number` (sticky routing), and forgets who took numbers
    /// longer ago than the window.
    fn remember(&mut self, now: Instant, number: &str, agent: &str) {
        let window = self.cfg.sticky;
        if window.is_zero() || number.is_empty() {
            return;
        }
        while let Some((at, n)) = self.served_order.front() {
            if now.saturating_duration_since(*at) <= window {
                break;
            }
            if self.served.get(n).is_some_and(|(_, t)| t == at) {
                self.served.remove(n);
            }
            self.served_order.pop_front();
        }
        self.served
            .insert(number.to_string(), (agent.to_string(), now));
        self.served_order.push_back((now, number.to_string()));
    }

    /// The agent who took `number` within the sticky window, if any.
    fn last_served(&self, now: Instant, number: &str) -> Option<&str> {
        let (agent, at) = self.served.get(number)?;
        (now.saturating_duration_since(*at) <= self.cfg.sticky).then_some(agent.as_str())
    }

    fn new(cfg: QueueConfig) -> Self {
        let pos = cfg
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.agent.clone(), i))
            .collect();
        Self {
            cfg,
            waiting: BTreeSet::new(),
            ready: BTreeSet::new(),
            last: None,
            stats: QueueStats::default(),
            free: FreeIndex::default(),
            logged_in: 0,
            staffed: 0,
            pos,
            served: HashMap::new(),
            served_order: VecDeque::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring,
    WrapUp,
    Retry,
    MaxWait,
}

/// Most queues a caller overflows through before the dialplan gets it back (a chain of
/// overflows that comes round again must end).
const MAX_OVERFLOW_HOPS: u8 = 4;

/// The ACD.
pub struct Acd {
    queues: HashMap<String, Queue>,
    order: Vec<String>,
    agents: HashMap<String, Agent>,
    callers: HashMap<CallerId, Caller>,
    seq: u64,
    out: VecDeque<Command>,
    timers: BinaryHeap<Reverse<(Instant, Timer, String, CallerId)>>,
    rng: SmallRng,
    log: VecDeque<LogRecord>,
}

impl Acd {
    /// An ACD with these queues; `seed` drives the random strategies.
    pub fn new(queues: Vec<QueueConfig>, seed: u64) -> Self {
        let order = queues.iter().map(|q| q.name.clone()).collect();
        Self {
            queues: queues
                .into_iter()
                .map(|cfg| (cfg.name.clone(), Queue::new(cfg)))
                .collect(),
            order,
            agents: HashMap::new(),
            callers: HashMap::new(),
            seq: 0,
            out: VecDeque::new(),
            timers: BinaryHeap::new(),
            rng: SmallRng::seed_from_u64(seed),
            log: VecDeque::new(),
        }
    }

    /// Takes in reloaded queue definitions: changed rules apply from the next decision,
    /// new queues open, and a queue no longer defined closes once no caller waits in it
    /// (callers already there are served as before). New static members are logged in.
    pub fn reconfigure(&mut self, now: Instant, queues: Vec<QueueConfig>) {
        let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
        for cfg in queues {
            match self.queues.get_mut(&cfg.name) {
                Some(q) => {
                    let fresh = Queue::new(cfg);
                    q.cfg = fresh.cfg;
                    q.pos = fresh.pos;
                }
                None => {
                    self.queues.insert(cfg.name.clone(), Queue::new(cfg));
                }
            }
        }
        self.queues
            .retain(|name, q| names.contains(name) || !q.waiting.is_empty());
        let mut order = names;
        order.extend(
            self.order
                .iter()
                .filter(|n| self.queues.contains_key(*n))
                .cloned(),
        );
        order.dedup();
        let mut seen = std::collections::HashSet::new();
        order.retain(|n| seen.insert(n.clone()));
        self.order = order;
        // Memberships, penalties and places may have changed: index every agent afresh.
        for q in self.queues.values_mut() {
            q.free.clear();
            q.logged_in = 0;
            q.staffed = 0;
        }
        let ids: Vec<String> = self.agents.keys().cloned().collect();
        for id in ids {
            if let Some(a) = self.agents.get_mut(&id) {
                a.indexed.clear();
            }
            self.refresh(&id);
        }
        // New static members log in only now, so that nothing is decided on indexes
        // still built for the old queues.
        for agent in self.static_members() {
            if !self.agents.contains_key(&agent) {
                self.handle(
                    now,
                    Event::Login {
                        agent,
                        queues: Vec::new(),
                    },
                );
            }
        }
        self.dispatch(now);
    }

    /// Next line for the queue log.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        self.log.pop_front()
    }

    fn note(
        &mut self,
        at: Instant,
        event: &'static str,
        queue: &str,
        caller: Option<CallerId>,
        agent: Option<&str>,
        detail: Vec<(&'static str, String)>,
    ) {
        self.log.push_back(LogRecord {
            at,
            event,
            queue: queue.into(),
            caller,
            agent: agent.map(str::to_string),
            detail,
        });
    }

    /// Notes `event` for a caller leaving its queue, with how long it waited (returned).
    fn note_wait(
        &mut self,
        now: Instant,
        event: &'static str,
        c: &Caller,
        caller: CallerId,
        agent: Option<&str>,
    ) -> Duration {
        let waited = now.saturating_duration_since(c.joined);
        let ms = waited.as_millis().to_string();
        self.note(
            now,
            event,
            &c.queue,
            Some(caller),
            agent,
            vec![("wait_ms", ms)],
        );
        waited
    }

    /// Next command for the call layer.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    /// An agent's state (logged out if unknown).
    pub fn agent_state(&self, agent: &str) -> AgentState {
        self.agents
            .get(agent)
            .map_or(AgentState::LoggedOut, |a| a.state.clone())
    }

    /// Callers waiting in a queue.
    pub fn waiting(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.waiting.len())
    }

    /// A queue's statistics so far.
    pub fn stats(&self, queue: &str) -> Option<&QueueStats> {
        self.queues.get(queue).map(|q| &q.stats)
    }

    /// How long an offer of `caller` rings (its queue's ring timeout).
    pub fn ring_timeout(&self, caller: CallerId) -> Option<Duration> {
        let c = self.callers.get(&caller)?;
        self.queues.get(&c.queue).map(|q| q.cfg.ring_timeout)
    }

    /// A queue's rules.
    pub fn queue_config(&self, queue: &str) -> Option<&QueueConfig> {
        self.queues.get(queue).map(|q| &q.cfg)
    }

    /// A waiting caller's priority and the skills it needs.
    pub fn needs(&self, caller: CallerId) -> Option<(u32, Vec<SkillNeed>)> {
        let c = self.callers.get(&caller)?;
        Some((c.priority, c.skills.clone()))
    }

    /// A waiting caller's queue and place in it (1 is next).
    pub fn position(&self, caller: CallerId) -> Option<(String, usize)> {
        let c = self.callers.get(&caller)?;
        let q = self.queues.get(&c.queue)?;
        let ahead = q
            .waiting
            .range(..(Reverse(c.priority), c.seq, caller))
            .count();
        Some((c.queue.clone(), ahead + 1))
    }

    /// A waiting caller's estimated wait: its position × the queue's average handle time
    /// ÷ the agents staffing the queue (logged in, not paused, with a phone). `None`
    /// before the queue has handled a call, or with nobody staffing it: no number is
    /// better than a made-up one.
    pub fn estimated_wait(&self, caller: CallerId) -> Option<Duration> {
        let (queue, position) = self.position(caller)?;
        let q = self.queues.get(&queue)?;
        let aht = q.stats.aht()?;
        let staffed = q.staffed;
        (staffed > 0).then(|| aht * position as u32 / staffed as u32)
    }

    /// Whether `agent` is a static member of some queue.
    pub fn is_member(&self, agent: &str) -> bool {
        self.queues
            .values()
            .any(|q| q.cfg.members.iter().any(|m| m.agent == agent))
    }

    /// Static members of every queue (they are logged in from the start).
    pub fn static_members(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .queues
            .values()
            .flat_map(|q| q.cfg.members.iter().map(|m| m.agent.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every queue now, for `ctl queues`.
    pub fn queue_views(&self, now: Instant) -> Vec<QueueView> {
        self.order
            .iter()
            .filter_map(|name| self.queues.get(name))
            .map(|q| {
                let longest = q
                    .waiting
                    .iter()
                    .filter_map(|(_, _, c)| self.callers.get(c))
                    .map(|c| now.saturating_duration_since(c.joined))
                    .max()
                    .unwrap_or_default();
                let mut agents: std::collections::BTreeMap<String, usize> = Default::default();
                for (id, a) in &self.agents {
                    if self.membership(q, id).is_some() {
                        *agents.entry(state_name(&a.state)).or_default() += 1;
                    }
                }
                QueueView {
                    name: q.cfg.name.clone(),
                    strategy: q.cfg.strategy,
                    waiting: q.waiting.len(),
                    longest_wait_s: longest.as_secs(),
                    agents,
                    service_level: q.stats.service_level(),
                    asa_s: q.stats.asa().map(|d| d.as_secs_f64()),
                    aht_s: q.stats.aht().map(|d| d.as_secs_f64()),
                    stats: q.stats.clone(),
                }
            })
            .collect()
    }

    /// Every agent the ACD knows, for `ctl agents`.
    pub fn agent_views(&self, now: Instant) -> Vec<AgentView> {
        let mut v: Vec<AgentView> = self
            .agents
            .iter()
            .map(|(id, a)| AgentView {
                agent: id.clone(),
                state: state_name(&a.state),
                queues: self
                    .order
                    .iter()
                    .filter(|n| {
                        self.queues
                            .get(*n)
                            .is_some_and(|q| self.membership(q, id).is_some())
                    })
                    .cloned()
                    .collect(),
                answered: a.answered.values().sum(),
                talk_s: a.talk.as_secs(),
                missed_in_a_row: a.missed,
                busy_elsewhere: a.busy,
                reachable: !a.unreachable,
                occupancy: a.occupancy(now),
                phone: None,
            })
            .collect();
        v.sort_by(|a, b| a.agent.cmp(&b.agent));
        v
    }

    /// Answered calls per agent in a queue.
    pub fn answered_by(&self, agent: &str, queue: &str) -> u64 {
        self.agents
            .get(agent)
            .and_then(|a| a.answered.get(queue).copied())
            .unwrap_or(0)
    }

    fn agent(&mut self, id: &str, now: Instant) -> &mut Agent {
        self.agents.entry(id.to_string()).or_insert_with(|| Agent {
            id: id.into(),
            state: AgentState::LoggedOut,
            idle_since: now,
            busy: false,
            unreachable: false,
            dynamic: Vec::new(),
            skills: HashMap::new(),
            offer: None,
            ring_until: None,
            wrap_until: None,
            missed: 0,
            answered: HashMap::new(),
            talk: Duration::ZERO,
            talk_since: None,
            indexed: Vec::new(),
            on_since: None,
            on_time: Duration::ZERO,
            wrap_time: Duration::ZERO,
        })
    }

    /// The agent's penalty in `queue`, if it is a member.
    fn membership(&self, queue: &Queue, agent: &str) -> Option<u32> {
        if let Some(m) = queue.pos.get(agent).and_then(|i| queue.cfg.members.get(*i)) {
            return Some(m.penalty);
        }
        self.agents
            .get(agent)?
            .dynamic
            .iter()
            .find(|(q, _)| *q == queue.cfg.name)
            .map(|(_, p)| *p)
    }

    /// Feeds an event.
    pub fn handle(&mut self, now: Instant, ev: Event) {
        let who = match &ev {
            Event::Login { agent, .. }
            | Event::Logout(agent)
            | Event::Pause(agent, _)
            | Event::Unpause(agent)
            | Event::Answered { agent, .. }
            | Event::Refused { agent, .. }
            | Event::Unplaced { agent, .. }
            | Event::CallEnded(agent)
            | Event::Busy(agent, _)
            | Event::Skills(agent, _)
            | Event::Reachable(agent, _) => Some(agent.clone()),
            Event::Join { .. }
            | Event::Abandon(_)
            | Event::Callback(_)
            | Event::CallbackReady(_)
            | Event::JoinCallback { .. }
            | Event::Callable(_) => None,
        };
        self.handle_event(now, ev);
        if let Some(a) = who {
            if let Some(ag) = self.agents.get_mut(&a) {
                ag.clock(now);
            }
            self.refresh(&a);
        }
        self.dispatch(now);
    }

    /// Keeps `agent`'s entries in its queues' indexes (free members, skills, counts)
    /// true to its state: every change of an agent's state ends here. O(queues it is in ×
    /// log n).
    fn refresh(&mut self, agent: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let mut new = Vec::new();
        if a.state != AgentState::LoggedOut {
            for (i, name) in self.order.iter().enumerate() {
                let Some(q) = self.queues.get(name) else {
                    continue;
                };
                let Some(penalty) = self.membership(q, agent) else {
                    continue;
                };
                new.push(Indexed::LoggedIn(i));
                if !matches!(a.state, AgentState::Paused(_)) && !a.unreachable {
                    new.push(Indexed::Staffed(i));
                }
                if !a.is_free() {
                    continue;
                }
                new.push(Indexed::Free(i, penalty, rank(q, a)));
                if q.cfg.strategy == Strategy::Skills {
                    for (skill, p) in &a.skills {
                        let r = (Reverse(*p), a.idle_since, a.id.clone());
                        new.push(Indexed::Skill(i, skill.clone(), penalty, r));
                    }
                }
            }
        }
        if new == a.indexed {
            return;
        }
        let old = std::mem::take(&mut self.agents.get_mut(agent).expect("looked up").indexed);
        for e in &old {
            self.index(e, false);
        }
        for e in &new {
            self.index(e, true);
        }
        self.agents.get_mut(agent).expect("looked up").indexed = new;
    }

    /// Puts an entry in its queue's index, or takes it out.
    fn index(&mut self, e: &Indexed, add: bool) {
        let i = match e {
            Indexed::LoggedIn(q) | Indexed::Staffed(q) | Indexed::Free(q, ..) => q,
            Indexed::Skill(q, ..) => q,
        };
        let Some(q) = self.order.get(*i).and_then(|n| self.queues.get_mut(n)) else {
            return;
        };
        let count = |n: &mut usize| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        match e {
            Indexed::LoggedIn(_) => count(&mut q.logged_in),
            Indexed::Staffed(_) => count(&mut q.staffed),
            Indexed::Free(_, penalty, rank) if add => q.free.insert(*penalty, rank.clone()),
            Indexed::Free(_, penalty, rank) => q.free.remove(*penalty, rank),
            Indexed::Skill(_, skill, penalty, rank) if add => {
                q.free.insert_skill(skill, *penalty, rank.clone())
            }
            Indexed::Skill(_, skill, penalty, rank) => q.free.remove_skill(skill, *penalty, rank),
        }
    }

    /// Keeps `caller`'s place among its queue's callers ready for an offer true: ready
    /// while nobody rings for it, no retry delay runs and it is not a parked callback.
    fn sync_ready(&mut self, caller: CallerId) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        let key = (Reverse(c.priority), c.seq, caller);
        let ready = c.ringing.is_empty() && c.retry_at.is_none() && !c.parked;
        if let Some(q) = self.queues.get_mut(&c.queue) {
            if ready {
                q.ready.insert(key);
            } else {
                q.ready.remove(&key);
            }
        }
    }

    fn handle_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Join {
                caller,
                queue,
                priority,
                skills,
                max_wait,
                number,
            } => {
                let c = Caller::new(queue, number, priority, skills, now);
                self.join(now, caller, c, max_wait);
            }
            Event::Abandon(caller) => {
                if let Some(c) = self.remove_caller(caller) {
                    let waited = self.note_wait(now, "abandon", &c, caller, None);
                    if let Some(q) = self.queues.get_mut(&c.queue) {
                        q.stats.abandoned(waited, q.cfg.short_abandon);
                    }
                    for a in c.ringing {
                        self.withdraw(&a, caller);
                    }
                }
            }
            Event::Callback(caller) => self.park_callback(now, caller, None),
            Event::JoinCallback {
                caller,
                queue,
                priority,
                skills,
                number,
            } => {
                let c = Caller {
                    callable: true,
                    ..Caller::new(queue, number, priority, skills, now)
                };
                self.join(now, caller, c, None);
                if let Some(c) = self.callers.get_mut(&caller) {
                    c.give_up_at = None;
                    let queue = c.queue.clone();
                    self.note(now, "callback", &queue, Some(caller), None, Vec::new());
                }
            }
            Event::Unplaced { caller, agent } => {
                if self.rings(&agent, caller) {
                    self.withdraw(&agent, caller);
                    self.retry_later(now, caller, &agent);
                }
            }
            Event::Callable(caller) => {
                if let Some(c) = self.callers.get_mut(&caller) {
                    c.callable = true;
                }
            }
            Event::CallbackReady(caller) => {
                if let Some(c) = self.callers.get_mut(&caller) {
                    c.parked = false;
                }
                self.sync_ready(caller);
            }
            Event::Login { agent, queues } => {
                // No report against its phone yet: it counts as reachable, as it is offered.
                let phone = self.agents.get(&agent).is_none_or(|a| !a.unreachable);
                let detail = if phone {
                    Vec::new()
                } else {
                    vec![("phone", "none".to_string())]
                };
                self.note(now, "login", "", None, Some(&agent), detail);
                let a = self.agent(&agent, now);
                a.dynamic = queues;
                if a.state == AgentState::LoggedOut {
                    a.state = AgentState::Available;
                    a.idle_since = now;
                    a.missed = 0;
                }
            }
            Event::Logout(agent) => {
                self.note(now, "logout", "", None, Some(&agent), Vec::new());
                self.free_offer(&agent);
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.state = AgentState::LoggedOut;
                    a.wrap_until = None;
                }
                // The queues' counts of logged-in agents must know before they are read.
                self.refresh(&agent);
                self.empty_queues(now);
            }
            Event::Pause(agent, reason) => {
                self.note(
                    now,
                    "pause",
                    "",
                    None,
                    Some(&agent),
                    vec![("reason", reason.clone())],
                );
                self.free_offer(&agent);
                if let Some(a) = self.agents.get_mut(&agent) {
                    if a.state != AgentState::LoggedOut {
                        a.state = AgentState::Paused(reason);
                    }
                }
            }
            Event::Unpause(agent) => {
                self.note(now, "unpause", "", None, Some(&agent), Vec::new());
                if let Some(a) = self.agents.get_mut(&agent) {
                    if matches!(a.state, AgentState::Paused(_)) {
                        a.state = AgentState::Available;
                        a.idle_since = now;
                        a.missed = 0;
                    }
                }
            }
            Event::Answered { caller, agent } => self.answered(now, caller, &agent),
            Event::Refused { caller, agent } => self.missed(now, caller, &agent),
            Event::CallEnded(agent) => {
                if let Some(a) = self.agents.get_mut(&agent) {
                    // Talk counts even if the agent paused or logged out meanwhile; only
                    // an agent still on the call goes on to wrap-up.
                    if let Some((since, q)) = a.talk_since.take() {
                        let talk = now.saturating_duration_since(since);
                        a.talk += talk;
                        let wrap = self
                            .queues
                            .get(&q)
                            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
                        a.wrap_time += wrap;
                        if let Some(qu) = self.queues.get_mut(&q) {
                            qu.stats.handled(talk, wrap);
                        }
                        self.log.push_back(LogRecord {
                            at: now,
                            event: "complete",
                            queue: q.clone(),
                            caller: None,
                            agent: Some(agent.clone()),
                            detail: vec![
                                ("talk_ms", talk.as_millis().to_string()),
                                ("wrap_up_ms", wrap.as_millis().to_string()),
                            ],
                        });
                        if a.state == AgentState::OnCall && wrap.is_zero() {
                            a.state = AgentState::Available;
                            a.idle_since = now;
                        } else if a.state == AgentState::OnCall {
                            a.state = AgentState::WrapUp;
                            a.wrap_until = Some(now + wrap);
                            self.timers.push(Reverse((
                                now + wrap,
                                Timer::WrapUp,
                                agent.clone(),
                                0,
                            )));
                        }
                    }
                }
            }
            Event::Busy(agent, busy) => {
                let a = self.agent(&agent, now);
                a.busy = busy;
                if !busy {
                    a.idle_since = now;
                }
            }
            Event::Skills(agent, skills) => {
                self.agent(&agent, now).skills = skills.into_iter().collect();
            }
            Event::Reachable(agent, reachable) => {
                let was = !self.agent(&agent, now).unreachable;
                if was == reachable {
                    return;
                }
                let event = if reachable {
                    "reachable"
                } else {
                    "unreachable"
                };
                // A logged-out agent's phone is nobody's business yet: its log-in says.
                if self.agent_state(&agent) != AgentState::LoggedOut {
                    self.note(now, event, "", None, Some(&agent), Vec::new());
                }
                if !reachable {
                    // The caller being offered waits on, with no retry delay: the agent
                    // never had a chance to answer.
                    self.free_offer(&agent);
                }
                self.agent(&agent, now).unreachable = !reachable;
            }
        }
    }

    /// Turns waiting `caller` into a callback request in its place (asked for, or `why`
    /// the queue did it): no longest wait, no ring, not offered until its call ends.
    fn park_callback(&mut self, now: Instant, caller: CallerId, why: Option<&str>) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.give_up_at = None;
        c.parked = true;
        let (queue, ringing) = (c.queue.clone(), std::mem::take(&mut c.ringing));
        let detail = why.map(|w| ("why", w.to_string())).into_iter().collect();
        self.note(now, "callback", &queue, Some(caller), None, detail);
        for a in ringing {
            self.withdraw(&a, caller);
        }
        self.sync_ready(caller);
    }

    /// Puts `caller` in `c.queue`, or gives it up at once (no such queue, full, or no
    /// agents to join).
    fn join(&mut self, now: Instant, caller: CallerId, mut c: Caller, max_wait: Option<Duration>) {
        let queue = c.queue.clone();
        let priority = c.priority;
        let Some(q) = self.queues.get(&queue) else {
            self.out.push_back(Command::GiveUp {
                caller,
                why: GiveUp::UnknownQueue,
            });
            return;
        };
        let why = if q.cfg.max_len.is_some_and(|m| q.waiting.len() >= m) {
            Some(GiveUp::Full)
        } else if !q.cfg.join_empty && q.logged_in == 0 {
            Some(GiveUp::NoAgents)
        } else {
            None
        };
        let max_wait = max_wait.or(q.cfg.max_wait);
        let q = self.queues.get_mut(&queue).expect("looked up above");
        q.stats.offered += 1;
        if let Some(why) = why {
            self.give_up(now, caller, c, why);
            return;
        }
        self.seq += 1;
        q.waiting.insert((Reverse(priority), self.seq, caller));
        self.note(
            now,
            "join",
            &queue,
            Some(caller),
            None,
            vec![("priority", priority.to_string())],
        );
        c.give_up_at = max_wait.map(|w| now + w);
        if let Some(at) = c.give_up_at {
            self.timers
                .push(Reverse((at, Timer::MaxWait, String::new(), caller)));
        }
        c.seq = self.seq;
        self.callers.insert(caller, c);
        self.sync_ready(caller);
    }

    fn remove_caller(&mut self, caller: CallerId) -> Option<Caller> {
        let c = self.callers.remove(&caller)?;
        if let Some(q) = self.queues.get_mut(&c.queue) {
            let key = (Reverse(c.priority), c.seq, caller);
            q.waiting.remove(&key);
            q.ready.remove(&key);
        }
        Some(c)
    }

    /// Stops ringing `agent` for `caller`; the agent is free again.
    fn withdraw(&mut self, agent: &str, caller: CallerId) {
        if let Some(a) = self.agents.get_mut(agent) {
            if a.offer == Some(caller) {
                a.offer = None;
                a.ring_until = None;
                if a.state == AgentState::Ringing {
                    a.state = AgentState::Available;
                }
                self.out.push_back(Command::Withdraw {
                    caller,
                    agent: agent.to_string(),
                });
                self.refresh(agent);
            }
        }
    }

    /// An agent leaving (pause, logout) while an offer rings: the offer goes, the caller
    /// waits on.
    fn free_offer(&mut self, agent: &str) {
        let Some(caller) = self.agents.get(agent).and_then(|a| a.offer) else {
            return;
        };
        self.withdraw(agent, caller);
        if let Some(c) = self.callers.get_mut(&caller) {
            c.ringing.retain(|a| a != agent);
        }
        self.sync_ready(caller);
    }

    /// Whether `agent` is being offered `caller` now (a late or stray report is not).
    fn rings(&self, agent: &str, caller: CallerId) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.offer == Some(caller))
    }

    fn answered(&mut self, now: Instant, caller: CallerId, agent: &str) {
        if !self.rings(agent, caller) {
            return;
        }
        let Some(c) = self.remove_caller(caller) else {
            return;
        };
        for other in c.ringing.iter().filter(|a| *a != agent) {
            self.withdraw(other, caller);
        }
        let waited = self.note_wait(now, "answer", &c, caller, Some(agent));
        if let Some(q) = self.queues.get_mut(&c.queue) {
            q.stats.answered(waited, q.cfg.sl_threshold);
            q.remember(now, &c.number, agent);
        }
        let a = self.agent(agent, now);
        a.offer = None;
        a.ring_until = None;
        a.missed = 0;
        a.state = AgentState::OnCall;
        *a.answered.entry(c.queue.clone()).or_default() += 1;
        a.talk_since = Some((now, c.queue));
    }

    /// An offer not taken (refused or rung out): the agent may be paused, the caller waits
    /// for the retry delay.
    fn missed(&mut self, now: Instant, caller: CallerId, agent: &str) {
        if !self.rings(agent, caller) {
            return;
        }
        self.withdraw(agent, caller);
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        let queue = c.queue.clone();
        let limit = self
            .queues
            .get(&c.queue)
            .map_or(0, |q| q.cfg.auto_pause_after);
        self.retry_later(now, caller, agent);
        if let Some(a) = self.agents.get_mut(agent) {
            a.missed += 1;
            if limit > 0 && a.missed >= limit && a.state == AgentState::Available {
                a.state = AgentState::Paused("auto".into());
                a.clock(now);
                self.note(
                    now,
                    "pause",
                    "",
                    None,
                    Some(agent),
                    vec![("reason", "auto".into())],
                );
            }
        }
        self.note(now, "miss", &queue, Some(caller), Some(agent), Vec::new());
        self.refresh(agent);
    }

    /// `agent` no longer rings for `caller`: once nobody does, the caller waits its queue's
    /// retry delay before the next offer.
    fn retry_later(&mut self, now: Instant, caller: CallerId, agent: &str) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.ringing.retain(|a| a != agent);
        let retry = self
            .queues
            .get(&c.queue)
            .map_or(Duration::ZERO, |q| q.cfg.retry);
        if c.ringing.is_empty() && !retry.is_zero() {
            c.retry_at = Some(now + retry);
            self.timers
                .push(Reverse((now + retry, Timer::Retry, String::new(), caller)));
        }
        self.sync_ready(caller);
    }

    /// Gives up the callers of queues that must not wait without agents.
    fn empty_queues(&mut self, now: Instant) {
        let names: Vec<String> = self.order.clone();
        for name in names {
            let Some(q) = self.queues.get(&name) else {
                continue;
            };
            if !q.cfg.leave_when_empty || q.logged_in > 0 {
                continue;
            }
            let callers: Vec<CallerId> = q.waiting.iter().map(|(_, _, c)| *c).collect();
            for caller in callers {
                if let Some(c) = self.remove_caller(caller) {
                    self.give_up(now, caller, c, GiveUp::NoAgents);
                }
            }
        }
    }

    /// The queue gives `caller` up: on to its overflow queue if it has one, else back to
    /// the call layer (the dialplan goes on).
    fn give_up(&mut self, now: Instant, caller: CallerId, mut c: Caller, why: GiveUp) {
        for a in std::mem::take(&mut c.ringing) {
            self.withdraw(&a, caller);
        }
        let to = self
            .queues
            .get_mut(&c.queue)
            .and_then(|q| {
                q.stats.overflowed += 1;
                q.cfg.overflow.clone()
            })
            .filter(|to| c.hops < MAX_OVERFLOW_HOPS && self.queues.contains_key(to));
        let ms = now.saturating_duration_since(c.joined).as_millis();
        let mut detail = vec![("why", format!("{why:?}")), ("wait_ms", ms.to_string())];
        if let Some(to) = &to {
            detail.push(("to", to.clone()));
        }
        self.note(now, "give-up", &c.queue, Some(caller), None, detail);
        match to {
            Some(to) => {
                c.hops += 1;
                self.out.push_back(Command::Moved {
                    caller,
                    queue: to.clone(),
                });
                c.queue = to;
                c.joined = now;
                c.retry_at = None;
                self.join(now, caller, c, None);
            }
            None => self.out.push_back(Command::GiveUp { caller, why }),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, kind, agent, caller))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            match kind {
                Timer::Ring => {
                    let live = self
                        .agents
                        .get(&agent)
                        .is_some_and(|a| a.offer == Some(caller) && a.ring_until == Some(at));
                    if live {
                        self.missed(now, caller, &agent);
                    }
                }
                Timer::WrapUp => {
                    if let Some(a) = self.agents.get_mut(&agent) {
                        if a.state == AgentState::WrapUp && a.wrap_until == Some(at) {
                            a.state = AgentState::Available;
                            a.wrap_until = None;
                            a.idle_since = now;
                        }
                    }
                    self.refresh(&agent);
                }
                Timer::Retry => {
                    if let Some(c) = self.callers.get_mut(&caller) {
                        if c.retry_at == Some(at) {
                            c.retry_at = None;
                        }
                    }
                    self.sync_ready(caller);
                }
                Timer::MaxWait => {
                    let due = self
                        .callers
                        .get(&caller)
                        .is_some_and(|c| c.give_up_at == Some(at));
                    let call_back = self.callers.get(&caller).is_some_and(|c| {
                        c.callable
                            && self
                                .queues
                                .get(&c.queue)
                                .is_some_and(|q| q.cfg.callback_on_max_wait)
                    });
                    if due && call_back {
                        self.park_callback(now, caller, Some("max-wait"));
                        self.out.push_back(Command::CallBack { caller });
                    } else if due {
                        if let Some(c) = self.remove_caller(caller) {
                            self.give_up(now, caller, c, GiveUp::MaxWait);
                        }
                    }
                }
            }
        }
        self.dispatch(now);
    }

    /// Offers waiting callers to free agents, queue by queue, callers in order. Looks
    /// only at callers ready for an offer and at free agents through the queues' indexes.
    fn dispatch(&mut self, now: Instant) {
        for i in 0..self.order.len() {
            // Nobody free or nobody ready: nothing to decide (the common case).
            let idle = |q: &Queue| q.free.is_empty() || q.ready.is_empty();
            if self.queues.get(&self.order[i]).is_none_or(idle) {
                continue;
            }
            let name = self.order[i].clone();
            let mut from: Option<WaitKey> = None;
            while let Some(key) = self.next_ready(&name, from) {
                from = Some(key);
                let caller = key.2;
                let picky = self
                    .callers
                    .get(&caller)
                    .is_some_and(|c| !c.skills.is_empty());
                let picks = self.pick(now, &name, caller);
                if picks.is_empty() {
                    // No agent for a caller who needs nothing special: none for the rest
                    // either (they need at least as much). A caller skipped here cannot be
                    // served by the fewer agents left after a later offer, so the walk goes
                    // on from where it is.
                    if !picky {
                        break;
                    }
                    continue;
                }
                self.offer(now, &name, caller, picks);
            }
        }
    }

    /// The first caller of `queue` ready for an offer after `from`, while the queue has
    /// free agents.
    fn next_ready(&self, queue: &str, from: Option<WaitKey>) -> Option<WaitKey> {
        let q = self.queues.get(queue).filter(|q| !q.free.is_empty())?;
        match from {
            None => q.ready.first().copied(),
            Some(k) => q
                .ready
                .range((Bound::Excluded(k), Bound::Unbounded))
                .next()
                .copied(),
        }
    }

    fn offer(&mut self, now: Instant, queue: &str, caller: CallerId, agents: Vec<String>) {
        let ring = self
            .queues
            .get(queue)
            .map_or(Duration::from_secs(15), |q| q.cfg.ring_timeout);
        if let (Some(q), Some(last)) = (self.queues.get(queue), agents.last()) {
            let r = self.agents.get(last).map(|a| rank(q, a));
            if let Some(q) = self.queues.get_mut(queue) {
                q.last = r;
            }
        }
        for agent in &agents {
            let a = self.agent(agent, now);
            a.state = AgentState::Ringing;
            a.offer = Some(caller);
            a.ring_until = Some(now + ring);
            self.timers
                .push(Reverse((now + ring, Timer::Ring, agent.clone(), caller)));
            self.out.push_back(Command::Offer {
                caller,
                agent: agent.clone(),
            });
            self.refresh(agent);
            self.log.push_back(LogRecord {
                at: now,
                event: "offer",
                queue: queue.into(),
                caller: Some(caller),
                agent: Some(agent.clone()),
                detail: Vec::new(),
            });
        }
        if let Some(c) = self.callers.get_mut(&caller) {
            c.ringing = agents;
        }
        self.sync_ready(caller);
    }

    /// The agents to ring for `caller` (empty: none free). The lowest penalty level with
    /// an agent fit for the caller wins; within it the strategy's order decides. For a
    /// caller with no skills this reads the front of an ordered set (O(log n)), except
    /// ring-all (every agent it rings) and the random strategies (the agents of one
    /// level); a caller with skills walks the order until an agent has them, or, under
    /// the skills strategy, reads its one skill's index (several skills: the agents
    /// with the first one).
    fn pick(&mut self, now: Instant, queue: &str, caller: CallerId) -> Vec<String> {
        let Some(q) = self.queues.get(queue) else {
            return Vec::new();
        };
        let Some(c) = self.callers.get(&caller) else {
            return Vec::new();
        };
        let fit = |id: &str| {
            self.agents.get(id).is_some_and(|a| {
                c.skills
                    .iter()
                    .all(|s| a.skills.get(&s.skill).is_some_and(|p| *p >= s.min))
            })
        };
        // Sticky: the agent who took this number last, if free and still fit for the
        // caller, before strategy and penalties.
        if let Some(agent) = q.last_served(now, &c.number) {
            let free = self.agents.get(agent).is_some_and(Agent::is_free)
                && self.membership(q, agent).is_some()
                && fit(agent);
            if free {
                return vec![agent.to_string()];
            }
        }
        let one = |id: &str| vec![id.to_string()];
        match q.cfg.strategy {
            Strategy::Skills if !c.skills.is_empty() => {
                let first = &c.skills[0];
                for level in q.free.skill_levels(&first.skill) {
                    if c.skills.len() == 1 {
                        // Best first: if this one falls short, so does the whole level.
                        match level.first() {
                            Some((Reverse(p), _, id)) if *p >= first.min => return one(id),
                            _ => continue,
                        }
                    }
                    let best =
                        level
                            .iter()
                            .filter(|(_, _, id)| fit(id))
                            .min_by_key(|(_, idle, id)| {
                                let a = &self.agents[&**id];
                                let sum: u32 = c
                                    .skills
                                    .iter()
                                    .map(|s| a.skills.get(&s.skill).copied().unwrap_or(0) as u32)
                                    .sum();
                                (Reverse(sum), *idle, id.clone())
                            });
                    if let Some((_, _, id)) = best {
                        return one(id);
                    }
                }
                Vec::new()
            }
            Strategy::RingAll | Strategy::Random | Strategy::WeightedRandom => {
                let Some(ids) = q
                    .free
                    .levels()
                    .map(|l| {
                        l.iter()
                            .map(|(_, _, id)| id)
                            .filter(|id| fit(id))
                            .collect::<Vec<_>>()
                    })
                    .find(|ids| !ids.is_empty())
                else {
                    return Vec::new();
                };
                match q.cfg.strategy {
                    Strategy::RingAll => ids.into_iter().map(|id| id.to_string()).collect(),
                    Strategy::Random => {
                        let i = self.rng.random_range(0..ids.len());
                        one(ids[i])
                    }
                    _ => {
                        let weight = |id: &str| {
                            q.pos
                                .get(id)
                                .and_then(|i| q.cfg.members.get(*i))
                                .map_or(1, |m| m.weight.max(1)) as u64
                        };
                        let total: u64 = ids.iter().map(|id| weight(id)).sum();
                        let mut r = self.rng.random_range(0..total);
                        ids.iter()
                            .find(|id| {
                                let w = weight(id);
                                if r < w {
                                    true
                                } else {
                                    r -= w;
                                    false
                                }
                            })
                            .map_or_else(Vec::new, |id| one(id))
                    }
                }
            }
            Strategy::RoundRobin => {
                for level in q.free.levels() {
                    let found = match &q.last {
                        Some(last) => index::after(level, last).find(|(_, _, id)| fit(id)),
                        None => level.iter().find(|(_, _, id)| fit(id)),
                    };
                    if let Some((_, _, id)) = found {
                        return one(id);
                    }
                }
                Vec::new()
            }
            _ => q
                .free
                .levels()
                .find_map(|l| l.iter().find(|(_, _, id)| fit(id)))
                .map_or_else(Vec::new, |(_, _, id)| one(id)),
        }
    }
}

/// Where agent `a` sorts among `q`'s free members (see [`Rank`]).
fn rank(q: &Queue, a: &Agent) -> Rank {
    let idle = Some(a.idle_since);
    let id = a.id.clone();
    match q.cfg.strategy {
        Strategy::LongestIdle | Strategy::Skills => (0, idle, id),
        Strategy::FewestCalls => {
            let n = a.answered.get(&q.cfg.name).copied().unwrap_or(0);
            (n as u128, idle, id)
        }
        Strategy::LeastTalkTime => (a.talk.as_nanos(), idle, id),
        // Member order: static members by place, then dynamic ones by name.
        Strategy::RoundRobin
        | Strategy::Linear
        | Strategy::Random
        | Strategy::WeightedRandom
        | Strategy::RingAll => {
            let place = q.pos.get(&*a.id).map_or(u128::MAX, |p| *p as u128);
            (place, None, id)
        }
    }
}

#[cfg(test)]
mod tests;
