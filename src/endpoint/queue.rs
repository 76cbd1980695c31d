//! ACD queues in calls: a caller in a queue hears its music while the ACD core
//! ([`crate::acd`]) picks agents; each offer rings the agent's extension, the first answer
//! bridges, and a ring that fails or runs out is reported back so the caller waits on.
//! Part of the endpoint; it owns the link between calls and the ACD, and the ACD owns
//! every queue and agent decision.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::b2bua::Wait;
use super::Endpoint;
use crate::acd::{Command, Event, GiveUp};
use crate::media::{MediaCommand, SessionId};

/// A call's place in a queue.
#[derive(Debug)]
pub(super) struct QueueCall {
    /// Music on hold, played round.
    moh: PathBuf,
    /// The agent being rung.
    offering: Option<String>,
    /// The agent who answered.
    pub(super) agent: Option<String>,
}

impl Endpoint {
    /// Queues now, for `ctl queues`.
    pub fn queues(&self, now: Instant) -> Vec<crate::acd::QueueView> {
        self.acd.queue_views(now)
    }

    /// Agents now, for `ctl agents`.
    pub fn agents(&self, now: Instant) -> Vec<crate::acd::AgentView> {
        self.acd.agent_views(now)
    }

    /// An agent logs in or out, pauses or comes back (`ctl agent`); only a member of some
    /// queue is an agent.
    pub fn agent_action(
        &mut self,
        now: Instant,
        agent: &str,
        op: crate::acd::AgentOp,
    ) -> Result<(), String> {
        let r = self.agent_op(now, agent, op);
        self.drain(now);
        r
    }

    /// [`Self::agent_action`] from inside the core (a feature code in the dialplan).
    pub(super) fn agent_op(
        &mut self,
        now: Instant,
        agent: &str,
        op: crate::acd::AgentOp,
    ) -> Result<(), String> {
        if !self.acd.is_member(agent) {
            return Err(format!("{agent} is not a member of any queue"));
        }
        tracing::info!(%agent, ?op, "agent");
        let ev = match op {
            crate::acd::AgentOp::Login => Event::Login {
                agent: agent.into(),
                queues: Vec::new(),
            },
            crate::acd::AgentOp::Logout => Event::Logout(agent.into()),
            crate::acd::AgentOp::Pause(r) => {
                let r = if r.is_empty() { "break".into() } else { r };
                Event::Pause(agent.into(), r)
            }
            crate::acd::AgentOp::Unpause => Event::Unpause(agent.into()),
        };
        self.acd.handle(now, ev);
        self.drain_acd(now);
        Ok(())
    }

    /// The dialplan's `queue`: music, and the caller handed to the ACD.
    pub(super) fn join_queue(
        &mut self,
        now: Instant,
        id: u64,
        name: &str,
        priority: u32,
        timeout: Option<Duration>,
        skills: Vec<crate::acd::SkillNeed>,
    ) {
        let moh = self
            .queue_moh
            .get(name)
            .map(|m| self.sounds_dir.join(format!("{m}.wav")))
            .unwrap_or_default();
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.queue = Some(QueueCall {
            moh: moh.clone(),
            offering: None,
            agent: None,
        });
        // A trunk caller's number, or the calling extension.
        let number = c.cdr.caller.clone();
        tracing::info!(call = id, queue = name, priority, "queued");
        if let Some((every, _)) = self
            .queue_announce
            .get(name)
            .copied()
            .filter(|(d, _)| !d.is_zero())
        {
            self.calls
                .arm(id, super::b2bua::CallTimer::Announce, now + every);
        }
        self.play_paths(id, vec![moh]);
        self.set_wait(id, Wait::Queue);
        self.acd.handle(
            now,
            Event::Join {
                caller: id,
                queue: name.into(),
                priority,
                skills,
                max_wait: timeout,
                number,
            },
        );
        self.drain_acd(now);
    }

    /// A queued call woke up: a prompt ended (the rest of an announcement, else the music
    /// again) or the agent's phone failed or rang out (tell the ACD; the caller waits on,
    /// and its music, which the ring never stopped, plays on).
    pub(super) fn run_queue(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.bridged {
            return;
        }
        let Some(q) = c.queue.as_mut() else {
            return;
        };
        let failed = if c.dialing.is_empty() {
            q.offering.take()
        } else {
            None
        };
        if failed.is_none() {
            let next = c.play_queue.pop_front().unwrap_or_else(|| q.moh.clone());
            self.play(id, next, false);
        }
        self.set_wait(id, Wait::Queue);
        if let Some(agent) = failed {
            tracing::info!(call = id, %agent, "agent did not take the call");
            self.acd.handle(now, Event::Refused { caller: id, agent });
        }
        self.drain_acd(now);
    }

    /// Whether an announcement to a queued caller has prompts still to play.
    pub(super) fn announcing(&self, id: u64) -> bool {
        self.calls
            .calls
            .get(&id)
            .is_some_and(|c| !c.play_queue.is_empty())
    }

    /// A queued caller's periodic announcement: its place in the queue (and its estimated
    /// wait, where the queue says so and one can be made), then the music again.
    pub(super) fn queue_announce(&mut self, now: Instant, id: u64) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.bridged || c.queue.is_none() {
            return;
        }
        let busy = c.wait != Wait::Queue;
        let Some((queue, position)) = self.acd.position(id) else {
            return;
        };
        let (every, say_wait) = self.queue_announce.get(&queue).copied().unwrap_or_default();
        if !every.is_zero() {
            self.calls
                .arm(id, super::b2bua::CallTimer::Announce, now + every);
        }
        if busy {
            // The last announcement is still playing: skip this one.
            return;
        }
        tracing::info!(call = id, position, "position announced");
        let mut names = vec!["you-are-caller-number".to_string()];
        names.extend(crate::dialplan::say_prompts(
            crate::dialplan::SayKind::Number,
            &position.to_string(),
        ));
        if let Some(wait) = self.acd.estimated_wait(id).filter(|_| say_wait) {
            // Whole minutes, rounded up: "about 1 minute" rather than "0 minutes".
            let minutes = wait.as_secs().div_ceil(60).max(1);
            tracing::info!(call = id, minutes, "estimated wait announced");
            names.push("estimated-wait".into());
            names.extend(crate::dialplan::say_prompts(
                crate::dialplan::SayKind::Number,
                &minutes.to_string(),
            ));
            names.push(if minutes == 1 { "minute" } else { "minutes" }.into());
        }
        let paths = self.sound_paths(names.iter().map(String::as_str));
        // The music stops for the announcement and starts again when it ends.
        self.play_paths(id, paths);
    }

    /// The agent being rung answered and the call is bridged.
    pub(super) fn queue_answered(&mut self, now: Instant, id: u64) {
        let Some(q) = self.calls.calls.get_mut(&id).and_then(|c| c.queue.as_mut()) else {
            return;
        };
        let Some(agent) = q.offering.take() else {
            return;
        };
        q.agent = Some(agent.clone());
        tracing::info!(call = id, %agent, "queue call answered");
        self.acd.handle(now, Event::Answered { caller: id, agent });
        self.drain_acd(now);
    }

    /// A queued call ended: the agent's talk ends, or the caller abandoned.
    pub(super) fn queue_call_ended(&mut self, now: Instant, id: u64, q: QueueCall) {
        match q.agent {
            Some(agent) => self.acd.handle(now, Event::CallEnded(agent)),
            None => self.acd.handle(now, Event::Abandon(id)),
        }
    }

    /// Extension `ext` is on call `id` (calling, or answered): an agent among them is not
    /// offered queue calls meanwhile.
    pub(super) fn device_in_use(&mut self, now: Instant, id: u64, ext: &str) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.devices.iter().any(|d| d == ext) {
            return;
        }
        c.devices.push(ext.to_string());
        let n = self.in_use.entry(ext.to_string()).or_default();
        *n += 1;
        if *n == 1 && self.acd.is_member(ext) {
            self.acd.handle(now, Event::Busy(ext.into(), true));
        }
    }

    /// A call that kept `ext` busy ended.
    pub(super) fn device_free(&mut self, now: Instant, ext: &str) {
        let Some(n) = self.in_use.get_mut(ext) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.in_use.remove(ext);
            if self.acd.is_member(ext) {
                self.acd.handle(now, Event::Busy(ext.into(), false));
            }
        }
    }

    /// Tells the ACD every queue member's skills (from the users' config) and whether it
    /// has a phone registered.
    pub(super) fn set_agent_skills(&mut self, now: Instant) {
        for agent in self.acd.static_members() {
            let skills = self
                .users
                .get(&agent)
                .map(|u| u.skills.clone())
                .unwrap_or_default();
            self.acd.handle(now, Event::Skills(agent.clone(), skills));
            self.agent_reach(now, &agent);
        }
    }

    /// Tells the ACD whether agent `ext` has a registered device now (after a
    /// registration, its expiry or removal, and at start).
    pub(super) fn agent_reach(&mut self, now: Instant, ext: &str) {
        if !self.acd.is_member(ext) {
            return;
        }
        let reachable = self.has_phone(now, ext);
        self.acd
            .handle(now, Event::Reachable(ext.into(), reachable));
        self.drain_acd(now);
    }

    /// Whether extension `ext` has a registered device now.
    fn has_phone(&self, now: Instant, ext: &str) -> bool {
        !self.registrar.lookup(now, &self.aor(ext)).is_empty()
    }

    /// Next line for the queue log file (JSON, no newline).
    pub fn poll_queue_log(&mut self) -> Option<String> {
        let r = self.acd.poll_log()?;
        let at = self.unix_ms(r.at);
        let mut line = format!("{{\"at_ms\":{at},\"event\":\"{}\"", r.event);
        if !r.queue.is_empty() {
            line.push_str(&format!(
                ",\"queue\":{}",
                crate::voicemail::json_str(&r.queue)
            ));
        }
        if let Some(c) = r.caller {
            line.push_str(&format!(",\"call\":{c}"));
        }
        if let Some(a) = &r.agent {
            line.push_str(&format!(",\"agent\":{}", crate::voicemail::json_str(a)));
        }
        for (k, v) in &r.detail {
            line.push_str(&format!(",\"{k}\":{}", crate::voicemail::json_str(v)));
        }
        line.push('}');
        Some(line)
    }

    /// Carries out what the ACD decided.
    pub(super) fn drain_acd(&mut self, now: Instant) {
        while let Some(cmd) = self.acd.poll_command() {
            tracing::debug!(?cmd, "acd");
            match cmd {
                Command::Offer { caller, agent } => {
                    let ring = self
                        .acd
                        .ring_timeout(caller)
                        .unwrap_or(Duration::from_secs(15));
                    let Some(q) = self
                        .calls
                        .calls
                        .get_mut(&caller)
                        .and_then(|c| c.queue.as_mut())
                    else {
                        self.acd.handle(now, Event::Refused { caller, agent });
                        continue;
                    };
                    q.offering = Some(agent.clone());
                    tracing::info!(call = caller, %agent, "offered to agent");
                    // The ACD's own ring timer ends the offer; the dial's is a backstop.
                    if self.dial(now, caller, &agent, Some(ring + Duration::from_secs(2))) {
                        self.set_wait(caller, Wait::Queue);
                    } else {
                        if let Some(q) = self
                            .calls
                            .calls
                            .get_mut(&caller)
                            .and_then(|c| c.queue.as_mut())
                        {
                            q.offering = None;
                        }
                        // No phone to ring is not a refusal: the agent is passed over
                        // until it registers again.
                        let ev = if self.has_phone(now, &agent) {
                            Event::Refused { caller, agent }
                        } else {
                            Event::Reachable(agent, false)
                        };
                        self.acd.handle(now, ev);
                    }
                }
                Command::Withdraw { caller, agent } => {
                    let Some(c) = self.calls.calls.get_mut(&caller) else {
                        continue;
                    };
                    let Some(q) = c.queue.as_mut() else {
                        continue;
                    };
                    if q.offering.as_deref() == Some(agent.as_str()) && !c.bridged {
                        q.offering = None;
                        // The caller's music never stopped for the ring.
                        self.detach_b(now, caller);
                        self.unbridge(caller);
                    }
                }
                Command::GiveUp { caller, why } => {
                    let Some(c) = self.calls.calls.get_mut(&caller) else {
                        continue;
                    };
                    c.queue = None;
                    let status = match why {
                        GiveUp::MaxWait => "timeout",
                        GiveUp::Full => "full",
                        GiveUp::NoAgents => "noagents",
                        GiveUp::UnknownQueue => "failed",
                    };
                    tracing::info!(call = caller, status, "queue gave up");
                    self.detach_b(now, caller);
                    self.unbridge(caller);
                    self.calls.media_out.push_back(MediaCommand::StopPlay {
                        id: SessionId(caller),
                    });
                    self.set_status(caller, status);
                    self.run_dialplan(now, caller);
                }
            }
        }
    }
}
