//! The ACD's state records: an agent, a waiting caller, a queue, and the rank an agent
//! sorts by among a queue's free members. Data and its own small methods only; the
//! `impl Acd` files (agents, queues, routing) change them, and import them from here
//! rather than from each other.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::index::{FreeIndex, Rank, SkillRank};
use super::types::{AgentState, CallerId, QueueConfig, SkillNeed, Strategy};
use super::QueueStats;

pub(super) fn state_name(s: &AgentState) -> String {
    match s {
        AgentState::LoggedOut => "logged-out".into(),
        AgentState::Available => "available".into(),
        AgentState::Ringing => "ringing".into(),
        AgentState::OnCall => "on-call".into(),
        AgentState::WrapUp => "wrap-up".into(),
        AgentState::Paused(r) => format!("paused({r})"),
    }
}

pub(super) struct Agent {
    /// Its id, shared by its index entries (cheap to copy into them).
    pub(super) id: Arc<str>,
    pub(super) state: AgentState,
    /// Free since (for longest-idle).
    pub(super) idle_since: Instant,
    /// On some call outside the queues.
    pub(super) busy: bool,
    /// No phone to ring (no registered device).
    pub(super) unreachable: bool,
    /// Dynamic memberships (static ones are in the queue config).
    pub(super) dynamic: Vec<(String, u32)>,
    pub(super) skills: HashMap<String, u8>,
    /// The caller being offered.
    pub(super) offer: Option<CallerId>,
    pub(super) ring_until: Option<Instant>,
    pub(super) wrap_until: Option<Instant>,
    /// Offers missed in a row.
    pub(super) missed: u32,
    /// Answered per queue, and talk time in all.
    pub(super) answered: HashMap<String, u64>,
    pub(super) talk: Duration,
    pub(super) talk_since: Option<(Instant, String)>,
    /// What it counts for in its queues' indexes now, exactly as inserted there (so that
    /// [`Acd::refresh`] removes what it put in).
    pub(super) indexed: Vec<Indexed>,
    /// Logged in and not paused since, and such time before that (for occupancy).
    pub(super) on_since: Option<Instant>,
    pub(super) on_time: Duration,
    /// Wrap-up time after its queue calls.
    pub(super) wrap_time: Duration,
}

impl Agent {
    /// Free for an offer: available, reachable, on no other call, not being offered one.
    pub(super) fn is_free(&self) -> bool {
        self.state == AgentState::Available
            && !self.busy
            && !self.unreachable
            && self.offer.is_none()
    }

    /// Starts or stops counting its logged-in, unpaused time as its state changes.
    pub(super) fn clock(&mut self, now: Instant) {
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
    pub(super) fn occupancy(&self, now: Instant) -> Option<f64> {
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
pub(super) enum Indexed {
    /// Logged in (counted in [`Queue::logged_in`]).
    LoggedIn(usize),
    /// Logged in, not paused, with a phone (counted in [`Queue::staffed`]).
    Staffed(usize),
    /// Free, at this penalty and rank, in the queue's [`FreeIndex`].
    Free(usize, u32, Rank),
    /// Free, with this skill, in the queue's skill index.
    Skill(usize, String, u32, SkillRank),
}

pub(super) struct Caller {
    pub(super) queue: String,
    pub(super) number: String,
    /// Queues it overflowed from, to stop overflow going round in circles.
    pub(super) hops: u8,
    pub(super) priority: u32,
    pub(super) seq: u64,
    pub(super) skills: Vec<SkillNeed>,
    pub(super) joined: Instant,
    /// Agents being rung now.
    pub(super) ringing: Vec<String>,
    /// Not to be offered again before this.
    pub(super) retry_at: Option<Instant>,
    /// A callback whose call has not ended yet: not to be offered meanwhile.
    pub(super) parked: bool,
    /// The call layer can call it back.
    pub(super) callable: bool,
    pub(super) give_up_at: Option<Instant>,
}

/// A waiting caller's place: highest priority first, then first come.
pub(super) type WaitKey = (Reverse<u32>, u64, CallerId);

impl Caller {
    /// A caller joining `queue` now, not yet placed (no sequence number, no timers).
    pub(super) fn new(
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

pub(super) struct Queue {
    pub(super) cfg: QueueConfig,
    /// Waiting callers in order: highest priority first, then first come.
    pub(super) waiting: BTreeSet<WaitKey>,
    /// The waiting callers who may be offered now (not ringing, not waiting out a retry
    /// delay), in the same order: routing looks at these, not at every caller.
    pub(super) ready: BTreeSet<WaitKey>,
    /// Round-robin: the rank of the member offered last.
    pub(super) last: Option<Rank>,
    pub(super) stats: QueueStats,
    /// Members free for an offer now, in the order the strategy picks them: routing looks
    /// at these, not at every member.
    pub(super) free: FreeIndex,
    /// Members logged in, and those of them staffing the queue (not paused, reachable).
    pub(super) logged_in: usize,
    pub(super) staffed: usize,
    /// Static members' places in the member list (for linear and round-robin).
    pub(super) pos: HashMap<String, usize>,
    /// Sticky routing: who last took each caller number, and when; and the numbers in
    /// the order they were taken, so that entries older than the window are dropped.
    pub(super) served: HashMap<String, (String, Instant)>,
    pub(super) served_order: VecDeque<(Instant, String)>,
}

impl Queue {
    /// Notes that `agent` took `number` (sticky routing), and forgets who took numbers
    /// longer ago than the window.
    pub(super) fn remember(&mut self, now: Instant, number: &str, agent: &str) {
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
    pub(super) fn last_served(&self, now: Instant, number: &str) -> Option<&str> {
        let (agent, at) = self.served.get(number)?;
        (now.saturating_duration_since(*at) <= self.cfg.sticky).then_some(agent.as_str())
    }

    pub(super) fn new(cfg: QueueConfig) -> Self {
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

/// Where agent `a` sorts among `q`'s free members (see [`Rank`]).
pub(super) fn rank(q: &Queue, a: &Agent) -> Rank {
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
