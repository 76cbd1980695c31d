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
//!
//! Split by what each part owns: `types` (the language with the call layer, types only),
//! `state` (the agent, caller and queue records the others share, data only), `agents`
//! (agent state and its index entries), `queues` (waiting callers, overflow, giving up),
//! `routing` (who is offered what, and what an offer's outcome does); this
//! file holds the [`Acd`] itself, its configuration, and the dispatch of events and
//! timers to those parts.

mod agents;
mod index;
mod queues;
mod routing;
mod state;
mod stats;
mod types;

pub use stats::QueueStats;
pub use types::{
    AgentOp, AgentState, AgentView, CallerId, Command, Event, GiveUp, LogRecord, Member,
    QueueConfig, QueueView, SkillNeed, Strategy,
};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use state::{Agent, Caller, Queue};

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
    /// Agents whose state may have changed since the call layer last asked (for lamps).
    touched: VecDeque<String>,
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
            touched: VecDeque::new(),
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

    /// Next agent whose state may have changed (an agent may come more than once).
    pub fn poll_touched(&mut self) -> Option<String> {
        self.touched.pop_front()
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
            | Event::Transferred { agent, .. }
            | Event::Busy(agent, _)
            | Event::Skills(agent, _)
            | Event::Reachable(agent, _) => Some(agent.clone()),
            Event::Join { .. }
            | Event::Abandon(_)
            | Event::Callback(_)
            | Event::CallbackReady(_)
            | Event::JoinCallback { .. }
            | Event::PickedUp { .. }
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

    /// The agent's queue call ended, or it transferred the call to `to`: its talk is
    /// counted and logged (`complete`, or `transfer` naming where to), and an agent
    /// still on the call goes on to wrap-up. Talk counts even if the agent paused or
    /// logged out meanwhile.
    fn talk_ended(&mut self, now: Instant, agent: String, to: Option<String>) {
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        let Some((since, q)) = a.talk_since.take() else {
            return;
        };
        let talk = now.saturating_duration_since(since);
        a.talk += talk;
        let wrap = self
            .queues
            .get(&q)
            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
        a.wrap_time += wrap;
        if let Some(qu) = self.queues.get_mut(&q) {
            qu.stats.handled(talk, wrap);
            qu.stats.transferred += u64::from(to.is_some());
        }
        let mut detail = Vec::with_capacity(3);
        let event = match to {
            Some(to) => {
                detail.push(("to", to));
                "transfer"
            }
            None => "complete",
        };
        detail.push(("talk_ms", talk.as_millis().to_string()));
        detail.push(("wrap_up_ms", wrap.as_millis().to_string()));
        self.log.push_back(LogRecord {
            at: now,
            event,
            queue: q,
            caller: None,
            agent: Some(agent.clone()),
            detail,
        });
        if a.state == AgentState::OnCall && wrap.is_zero() {
            a.state = AgentState::Available;
            a.idle_since = now;
        } else if a.state == AgentState::OnCall {
            a.state = AgentState::WrapUp;
            a.wrap_until = Some(now + wrap);
            self.timers
                .push(Reverse((now + wrap, Timer::WrapUp, agent, 0)));
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
            Event::PickedUp { caller, by } => {
                if let Some(c) = self.remove_caller(caller) {
                    let waited = now.saturating_duration_since(c.joined);
                    self.note(
                        now,
                        "pickup",
                        &c.queue,
                        Some(caller),
                        None,
                        vec![("wait_ms", waited.as_millis().to_string()), ("by", by)],
                    );
                    if let Some(q) = self.queues.get_mut(&c.queue) {
                        q.stats.answered(waited, q.cfg.sl_threshold);
                    }
                    for a in c.ringing {
                        self.withdraw(&a, caller);
                    }
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
            Event::CallEnded(agent) => self.talk_ended(now, agent, None),
            Event::Transferred { agent, to } => self.talk_ended(now, agent, Some(to)),
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
}

#[cfg(test)]
mod tests;
