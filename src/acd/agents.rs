//! Agents: each one's state, memberships, skills and counters, and its entries in the
//! queues' indexes of free members (kept in step with its state by [`Acd::refresh`]).
//!
//! Owns the `agents` map; which caller an agent is offered is routing's business.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::state::{rank, state_name, Agent, Indexed, Queue};
use super::types::{AgentState, AgentView, Strategy};
use super::Acd;

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
        // Bounded for a user that never asks (a bench); the call layer asks after every
        // event, far sooner.
        if self.touched.len() >= 1024 {
            self.touched.pop_front();
        }
        self.touched.push_back(agent.to_string());
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
