//! Agents: each one's state, memberships, skills and counters, and its entries in the
//! queues' indexes of free members (kept in step with its state by [`Acd::refresh`]).
//!
//! Owns the `agents` map; which caller an agent is offered is routing's business.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::index::{Rank, SkillRank};
use super::queues::Queue;
use super::routing::rank;
use super::types::{AgentState, AgentView, CallerId, Strategy};
use super::Acd;

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

impl Acd {
    /// An agent's state (logged out if unknown).
    pub fn agent_state(&self, agent: &str) -> AgentState {
        self.agents
            .get(agent)
            .map_or(AgentState::LoggedOut, |a| a.state.clone())
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

    pub(super) fn agent(&mut self, id: &str, now: Instant) -> &mut Agent {
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
    pub(super) fn membership(&self, queue: &Queue, agent: &str) -> Option<u32> {
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

    /// Keeps `agent`'s entries in its queues' indexes (free members, skills, counts)
    /// true to its state: every change of an agent's state ends here. O(queues it is in ×
    /// log n).
    pub(super) fn refresh(&mut self, agent: &str) {
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
    pub(super) fn index(&mut self, e: &Indexed, add: bool) {
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
}
