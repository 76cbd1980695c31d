//! Routing: which waiting caller is offered to which free agent, by the queue's strategy,
//! and what an offer's answer, miss or withdrawal does.
//!
//! Reads the queues' ready sets and free-member indexes; changes agents and callers only
//! through their own modules' methods and fields.

use rand::Rng;
use std::cmp::Reverse;
use std::ops::Bound;
use std::time::{Duration, Instant};

use super::index;
use super::state::{rank, Agent, Queue, WaitKey};
use super::types::{AgentState, CallerId, Command, LogRecord, Strategy};
use super::{Acd, Timer};

impl Acd {
    /// Stops ringing `agent` for `caller`; the agent is free again.
    pub(super) fn withdraw(&mut self, agent: &str, caller: CallerId) {
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
    pub(super) fn free_offer(&mut self, agent: &str) {
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
    pub(super) fn rings(&self, agent: &str, caller: CallerId) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.offer == Some(caller))
    }

    pub(super) fn answered(&mut self, now: Instant, caller: CallerId, agent: &str) {
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
    pub(super) fn missed(&mut self, now: Instant, caller: CallerId, agent: &str) {
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
    pub(super) fn retry_later(&mut self, now: Instant, caller: CallerId, agent: &str) {
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

    /// Offers waiting callers to free agents, queue by queue, callers in order. Looks
    /// only at callers ready for an offer and at free agents through the queues' indexes.
    pub(super) fn dispatch(&mut self, now: Instant) {
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
    pub(super) fn next_ready(&self, queue: &str, from: Option<WaitKey>) -> Option<WaitKey> {
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

    pub(super) fn offer(
        &mut self,
        now: Instant,
        queue: &str,
        caller: CallerId,
        agents: Vec<String>,
    ) {
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
    pub(super) fn pick(&mut self, now: Instant, queue: &str, caller: CallerId) -> Vec<String> {
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
