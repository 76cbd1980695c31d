//! Queues and their waiting callers: joining in priority order, the ready set routing
//! looks at, overflow, callbacks parked while their call runs, giving up, and the
//! queue views and position announcements.
//!
//! Owns each queue's waiting callers and the `callers` map; agents are agents.rs's.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::state::{state_name, Caller};
use super::types::{CallerId, Command, GiveUp, QueueView};
use super::{Acd, Timer, MAX_OVERFLOW_HOPS};

impl Acd {
    /// Callers waiting in a queue.
    pub fn waiting(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.waiting.len())
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

    /// Keeps `caller`'s place among its queue's callers ready for an offer true: ready
    /// while nobody rings for it, no retry delay runs and it is not a parked callback.
    pub(super) fn sync_ready(&mut self, caller: CallerId) {
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

    /// Turns waiting `caller` into a callback request in its place (asked for, or `why`
    /// the queue did it): no longest wait, no ring, not offered until its call ends.
    pub(super) fn park_callback(&mut self, now: Instant, caller: CallerId, why: Option<&str>) {
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
    pub(super) fn join(
        &mut self,
        now: Instant,
        caller: CallerId,
        mut c: Caller,
        max_wait: Option<Duration>,
    ) {
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

    pub(super) fn remove_caller(&mut self, caller: CallerId) -> Option<Caller> {
        let c = self.callers.remove(&caller)?;
        if let Some(q) = self.queues.get_mut(&c.queue) {
            let key = (Reverse(c.priority), c.seq, caller);
            q.waiting.remove(&key);
            q.ready.remove(&key);
        }
        Some(c)
    }

    /// Gives up the callers of queues that must not wait without agents.
    pub(super) fn empty_queues(&mut self, now: Instant) {
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
    pub(super) fn give_up(&mut self, now: Instant, caller: CallerId, mut c: Caller, why: GiveUp) {
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
}
