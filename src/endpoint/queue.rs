//! ACD queues in calls: a caller in a queue hears its music while the ACD core
//! ([`crate::acd`]) picks agents; each offer rings the agent's extension, the first answer
//! bridges, and a ring that fails or runs out is reported back so the caller waits on.
//! Part of the endpoint; it owns the link between calls and the ACD, and the ACD owns
//! every queue and agent decision.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::call::state::{CallId, Status};
use super::call::state::{CallTimer, QueueAsk, QueueCall, State};
use super::Endpoint;
use crate::acd::{AgentOp, Command, Event, GiveUp};
use crate::config::IdAgent;

/// How often a caller hears its position when the dialplan asks for it from a queue that
/// announces nothing by itself.
const DEFAULT_ANNOUNCE: Duration = Duration::from_secs(30);

impl QueueCall {
    /// A callback's place: no music (nobody is on the line until the agent answers).
    pub(super) fn callback() -> Self {
        Self {
            moh: PathBuf::new(),
            offering: None,
            agent: None,
            announce: Some(false),
        }
    }
}

/// Agents who log in by ID and PIN from any extension's phone (config `[[agents]]`): who
/// they are and at which phone each is logged in (wrong PINs are the endpoint's
/// [`crate::guard::PinThrottle`]'s, counted per phone, not per ID).
/// Part of the endpoint; the ACD knows these agents by ID only and never sees a phone.
#[derive(Debug, Default)]
pub(super) struct HotDesk {
    agents: HashMap<String, IdAgent>,
    /// Agent ID → the extension it is logged in at, and back (one agent per phone).
    at: HashMap<String, String>,
    by_phone: HashMap<String, String>,
    /// Who sits where changed since the last snapshot.
    changed: bool,
}

/// An agent by ID at a phone, as kept across a restart.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Seat {
    agent: String,
    phone: String,
}

impl HotDesk {
    /// Whether `id` is a configured agent ID.
    pub(super) fn is_agent(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    pub(super) fn new(agents: &[IdAgent]) -> Self {
        Self {
            agents: agents.iter().map(|a| (a.id.clone(), a.clone())).collect(),
            ..Self::default()
        }
    }

    /// Ends `agent`'s stay at its phone.
    fn leave(&mut self, agent: &str) {
        if let Some(ext) = self.at.remove(agent) {
            self.by_phone.remove(&ext);
            self.changed = true;
        }
    }
}

impl Endpoint {
    /// Queues now, for `ctl queues`.
    pub fn queues(&self, now: Instant) -> Vec<crate::acd::QueueView> {
        self.acd.queue_views(now)
    }

    /// Agents now, for `ctl agents`.
    pub fn agents(&self, now: Instant) -> Vec<crate::acd::AgentView> {
        let mut v = self.acd.agent_views(now);
        for a in &mut v {
            let Some(id) = self.hot_desk.agents.get(&a.agent) else {
                continue;
            };
            a.phone = self.hot_desk.at.get(&a.agent).cloned();
            // Not at a phone: nothing to ring, and its queues are the ones it would join.
            if a.phone.is_none() {
                a.reachable = false;
                a.queues = id.queues.iter().map(|(q, _)| q.clone()).collect();
            }
        }
        v
    }

    /// The extension whose phone rings for `agent`: where it logged in by ID, else its
    /// own.
    pub(super) fn agent_phone<'a>(&'a self, agent: &'a str) -> &'a str {
        self.hot_desk.at.get(agent).map_or(agent, String::as_str)
    }

    /// The agents whose calls ring extension `ext`: itself if it is a queue member, and
    /// the agent logged in at it by ID.
    pub(super) fn phone_agents(&self, ext: &str) -> Vec<String> {
        let own = self.acd.is_member(ext).then(|| ext.to_string());
        own.into_iter()
            .chain(self.hot_desk.by_phone.get(ext).cloned())
            .collect()
    }

    /// Agent `id` logs in at extension `ext`'s phone (the one calling, from a loopback
    /// address or not) with `pin`; the dialplan's `$status`: `ok`, `failed`, `busy` or
    /// `locked`.
    pub(super) fn agent_login_pin(
        &mut self,
        now: Instant,
        ext: &str,
        loopback: bool,
        id: &str,
        pin: &str,
    ) -> Status {
        let ext = ext.to_string();
        // The phone keying is throttled, not the ID: a stranger guessing an agent's PIN
        // locks out the stranger's phone, and an ID that does not exist fails and locks
        // exactly as a wrong PIN does.
        let source = format!("ext:{ext}");
        if self.pins.blocked(now, &source) {
            tracing::warn!(agent = id, %ext, "agent login refused: this phone keyed too many wrong PINs");
            return Status::Locked;
        }
        let agent = self.hot_desk.agents.get(id).cloned();
        let right = match &agent {
            None => {
                tracing::warn!(%ext, "agent login: no such agent ID");
                false
            }
            Some(a) if a.demo && !loopback => {
                tracing::warn!(agent = id, %ext, "demo agent PIN refused from a non-loopback address");
                false
            }
            Some(a) if a.pin != pin => {
                tracing::warn!(agent = id, %ext, "agent login: wrong PIN");
                false
            }
            Some(_) => true,
        };
        let Some(agent) = agent.filter(|_| right) else {
            self.pin_failed(now, &source);
            return Status::Failed;
        };
        self.pins.passed(&source);
        if !self.seat(now, &agent, &ext) {
            tracing::info!(agent = id, %ext, "agent login: another agent is at that phone");
            return Status::Busy;
        }
        Status::Ok
    }

    /// Agent `agent` takes calls at extension `ext`'s phone from now on, unless another
    /// agent is at that phone (false).
    fn seat(&mut self, now: Instant, agent: &IdAgent, ext: &str) -> bool {
        let id = agent.id.as_str();
        let taken = match self.hot_desk.by_phone.get(ext) {
            Some(other) => other != id,
            None => {
                self.acd.is_member(ext)
                    && self.acd.agent_state(ext) != crate::acd::AgentState::LoggedOut
            }
        };
        if taken {
            return false;
        }
        self.hot_desk.leave(id);
        self.hot_desk.at.insert(id.to_string(), ext.to_string());
        self.hot_desk
            .by_phone
            .insert(ext.to_string(), id.to_string());
        self.hot_desk.changed = true;
        tracing::info!(agent = id, %ext, "agent logged in at a phone");
        // Its phone's state first, so that it is not offered a call before it can take
        // one (the phone may be on this very call now).
        let reachable = self.has_phone(now, ext);
        let busy = self.in_use.get(ext).is_some_and(|n| *n > 0);
        self.acd
            .handle(now, Event::Skills(id.into(), agent.skills.clone()));
        self.acd.handle(now, Event::Busy(id.into(), busy));
        self.acd.handle(now, Event::Reachable(id.into(), reachable));
        self.acd.handle(
            now,
            Event::Login {
                agent: id.into(),
                queues: agent.queues.clone(),
            },
        );
        self.drain_acd(now);
        // A phone on do not disturb takes no queue calls for its new agent either.
        self.dnd_agents(now, ext);
        true
    }

    /// Which agent by ID is at which phone, as JSON to keep, if that changed since last
    /// asked (the driver writes it to `STATE_DIR/agents.json`).
    pub(super) fn poll_agents_saved(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.hot_desk.changed) {
            return None;
        }
        let mut seats: Vec<Seat> = self
            .hot_desk
            .at
            .iter()
            .map(|(agent, phone)| Seat {
                agent: agent.clone(),
                phone: phone.clone(),
            })
            .collect();
        seats.sort_by(|a, b| a.agent.cmp(&b.agent));
        Some(serde_json::to_string_pretty(&seats).unwrap_or_else(|_| "[]".into()))
    }

    /// Seats again the agents by ID who were at phones before a restart (`json` as
    /// [`super::Output::AgentsSaved`] gave it); one no longer configured, or whose phone is
    /// no extension now or has another agent, is not. Returns how many.
    pub fn restore_agents(&mut self, now: Instant, json: &str) -> Result<usize, String> {
        let seats: Vec<Seat> =
            serde_json::from_str(json).map_err(|e| format!("unreadable agent logins: {e}"))?;
        let mut n = 0;
        for s in seats {
            let agent = self.hot_desk.agents.get(&s.agent).cloned();
            let seated = match agent {
                Some(a) if self.users.contains_key(&s.phone) => self.seat(now, &a, &s.phone),
                _ => false,
            };
            if seated {
                n += 1;
            } else {
                tracing::warn!(agent = %s.agent, phone = %s.phone, "agent login not taken back");
            }
        }
        // What was not taken back is gone from the next snapshot too.
        self.hot_desk.changed = true;
        Ok(n)
    }

    /// Takes in reloaded `[[agents]]`: an agent still defined keeps its phone and takes its
    /// new queues and skills; one no longer defined is logged out.
    pub(super) fn reload_id_agents(&mut self, now: Instant, agents: &[IdAgent]) {
        // An extension that became a queue member while an agent by ID sits at its phone
        // stays out: one agent per phone.
        let taken: Vec<String> = self
            .hot_desk
            .by_phone
            .keys()
            .filter(|ext| {
                self.acd.is_member(ext)
                    && self.acd.agent_state(ext) != crate::acd::AgentState::LoggedOut
            })
            .cloned()
            .collect();
        for ext in taken {
            tracing::info!(%ext, "new queue member logged out: an agent by ID is at its phone");
            self.acd.handle(now, Event::Logout(ext));
        }
        let old = std::mem::replace(&mut self.hot_desk.agents, HotDesk::new(agents).agents);
        let gone = old
            .keys()
            .filter(|id| !self.hot_desk.agents.contains_key(*id));
        for id in gone.cloned().collect::<Vec<_>>() {
            if self.hot_desk.at.contains_key(&id) {
                self.acd.handle(now, Event::Logout(id.clone()));
            }
            self.hot_desk.leave(&id);
        }
        let here: Vec<String> = self.hot_desk.at.keys().cloned().collect();
        for id in here {
            let Some(a) = self.hot_desk.agents.get(&id).cloned() else {
                continue;
            };
            self.acd.handle(now, Event::Skills(id.clone(), a.skills));
            // Its queues changed: it joins the new ones (a log-in in the queue log).
            let moved = old.get(&id).is_some_and(|o| o.queues != a.queues);
            if moved && self.acd.agent_state(&id) != crate::acd::AgentState::LoggedOut {
                let queues = a.queues;
                self.acd.handle(now, Event::Login { agent: id, queues });
            }
        }
        self.drain_acd(now);
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
        // From a phone an agent is logged in at, the codes speak for that agent.
        let agent = self
            .hot_desk
            .by_phone
            .get(agent)
            .map_or(agent, String::as_str);
        let by_id = self.hot_desk.agents.get(agent).map(|a| a.queues.clone());
        if by_id.is_none() && !self.acd.is_member(agent) {
            return Err(format!("{agent} is not a member of any queue"));
        }
        if by_id.is_some() && !self.hot_desk.at.contains_key(agent) {
            return Err(format!(
                "agent {agent} is not at a phone: it logs in with its ID and PIN from one"
            ));
        }
        let agent = agent.to_string();
        let phone = self.agent_phone(&agent).to_string();
        tracing::info!(%agent, ?op, "agent");
        let ev = match op {
            AgentOp::Login => Event::Login {
                agent: agent.clone(),
                queues: by_id.unwrap_or_default(),
            },
            AgentOp::Logout => {
                self.hot_desk.leave(&agent);
                Event::Logout(agent.clone())
            }
            AgentOp::Pause(r) => {
                let r = if r.is_empty() { "break".into() } else { r };
                Event::Pause(agent, r)
            }
            AgentOp::Unpause => Event::Unpause(agent),
        };
        let login = matches!(ev, Event::Login { .. });
        self.acd.handle(now, ev);
        self.drain_acd(now);
        if login {
            self.dnd_agents(now, &phone);
        }
        Ok(())
    }

    /// The dialplan's `queue`: music, and the caller handed to the ACD.
    pub(super) fn join_queue(&mut self, now: Instant, id: CallId, name: &str, ask: QueueAsk) {
        let QueueAsk {
            priority,
            timeout,
            skills,
            announce,
        } = ask;
        let moh = self.moh_path(name);
        let every = self.announce_every(name, announce);
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        c.queue = Some(QueueCall {
            moh: moh.clone(),
            offering: None,
            agent: None,
            announce,
        });
        // A trunk caller's number, or the calling extension.
        let number = c.caller_number().to_string();
        tracing::info!(call = %id, queue = name, priority, "queued");
        let queue = name.to_string();
        self.tell(now, id, crate::story::Event::Queued { queue });
        if !every.is_zero() {
            self.calls.arm(id, CallTimer::Announce, now + every);
        }
        self.set_state(id, State::Queued);
        self.queue_music(id);
        self.acd.handle(
            now,
            Event::Join {
                caller: id.0,
                queue: name.into(),
                priority,
                skills,
                max_wait: timeout,
                number,
            },
        );
        if self.callback_number(id).is_some() {
            self.acd.handle(now, Event::Callable(id.0));
        }
        self.drain_acd(now);
    }

    /// A queued call woke up: a prompt ended (the rest of an announcement, else the music
    /// again) or the agent's phone failed or rang out (tell the ACD; the caller waits on,
    /// and its music, which the ring never stopped, plays on).
    pub(super) fn run_queue(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.bridged() {
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
        // A ring that failed never stopped the music; an announcement did.
        let next = if failed.is_none() {
            Some(c.play_queue.pop_front())
        } else {
            None
        };
        self.set_state(id, State::Queued);
        match next {
            Some(Some(prompt)) => self.play(id, prompt, false),
            Some(None) => self.queue_music(id),
            None => {}
        }
        if let Some(agent) = failed {
            tracing::info!(call = %id, %agent, "agent did not take the call");
            let caller = self.acd_id(id).0;
            self.acd.handle(now, Event::Refused { caller, agent });
        }
        self.drain_acd(now);
    }

    /// A queued caller hears its queue's music, round and round, until an announcement,
    /// an agent or the end stops it (a callback's agent waits in silence: no music).
    fn queue_music(&mut self, id: CallId) {
        let moh = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.queue.as_ref())
            .map(|q| q.moh.clone())
            .filter(|m| !m.as_os_str().is_empty());
        if let Some(moh) = moh {
            self.play_music(id, moh);
        }
    }

    /// A queued caller's periodic announcement: its place in the queue (and its estimated
    /// wait, where the queue says so and one can be made), then the music again.
    pub(super) fn queue_announce(&mut self, now: Instant, id: CallId) {
        let Some(c) = self.calls.calls.get(&id) else {
            return;
        };
        if c.bridged() || c.queue.is_none() {
            return;
        }
        let busy = !matches!(c.state, State::Queued);
        let Some((queue, position)) = self.acd.position(id.0) else {
            return;
        };
        let say_wait = self.queue_announce.get(&queue).is_some_and(|(_, w)| *w);
        let every = self.announce_every(&queue, c.queue.as_ref().and_then(|q| q.announce));
        if every.is_zero() {
            // Off for this caller (an overflow queue without announcements).
            return;
        }
        self.calls.arm(id, CallTimer::Announce, now + every);
        if busy {
            // The last announcement is still playing: skip this one.
            return;
        }
        tracing::info!(call = %id, position, "position announced");
        let mut names = vec!["you-are-caller-number".to_string()];
        names.extend(crate::say::say_prompts(
            crate::say::SayKind::Number,
            &position.to_string(),
        ));
        if let Some(wait) = self.acd.estimated_wait(id.0).filter(|_| say_wait) {
            // Whole minutes, rounded up: "about 1 minute" rather than "0 minutes".
            let minutes = wait.as_secs().div_ceil(60).max(1);
            tracing::info!(call = %id, minutes, "estimated wait announced");
            names.push("estimated-wait".into());
            names.extend(crate::say::say_prompts(
                crate::say::SayKind::Number,
                &minutes.to_string(),
            ));
            names.push(if minutes == 1 { "minute" } else { "minutes" }.into());
        }
        if let Some(key) = self.queue_callback.get(&queue) {
            names.push("callback-offer".into());
            names.extend(crate::say::say_prompts(
                crate::say::SayKind::Digits,
                &key.to_string(),
            ));
        }
        let paths = self.sound_paths(names.iter().map(String::as_str));
        // The music stops for the announcement and starts again when it ends.
        self.play_paths(id, paths);
    }

    /// A caller overflowed to `queue`: it hears that queue's music from now on (at once,
    /// unless an announcement is playing), and its announcements if it has them.
    fn queue_moved(&mut self, now: Instant, id: CallId, queue: &str) {
        let moh = self.moh_path(queue);
        let choice = self
            .calls
            .calls
            .get(&id)
            .and_then(|c| c.queue.as_ref())
            .and_then(|q| q.announce);
        let every = Some(self.announce_every(queue, choice));
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        let Some(q) = c.queue.as_mut() else {
            return;
        };
        let music = matches!(c.state, State::Queued) && c.play_queue.is_empty();
        tracing::info!(call = %id, queue, moh = %moh.display(), now = music, "caller moved to the overflow queue");
        q.moh = moh;
        // The new queue's announcements, from now on (none if it has them off).
        c.timers.stop(CallTimer::Announce);
        if let Some(every) = every.filter(|d| !d.is_zero()) {
            self.calls.arm(id, CallTimer::Announce, now + every);
        }
        if music {
            self.queue_music(id);
        }
    }

    /// How often a caller in `queue` hears its position: the queue's interval, unless the
    /// dialplan said `position-announce` (off: never; on: the queue's, else 30 s).
    fn announce_every(&self, queue: &str, choice: Option<bool>) -> Duration {
        let every = self
            .queue_announce
            .get(queue)
            .map_or(Duration::ZERO, |(d, _)| *d);
        match choice {
            Some(false) => Duration::ZERO,
            Some(true) if every.is_zero() => DEFAULT_ANNOUNCE,
            _ => every,
        }
    }

    /// Queue `name`'s music on hold file.
    fn moh_path(&self, name: &str) -> PathBuf {
        self.queue_moh
            .get(name)
            .map(|m| self.sounds_dir.join(format!("{m}.wav")))
            .unwrap_or_default()
    }

    /// The agent being rung answered and the call is bridged.
    pub(super) fn queue_answered(&mut self, now: Instant, id: CallId) {
        let Some(q) = self.calls.calls.get_mut(&id).and_then(|c| c.queue.as_mut()) else {
            return;
        };
        let Some(agent) = q.offering.take() else {
            return;
        };
        q.agent = Some(agent.clone());
        let caller = self.acd_id(id);
        self.callback_taken(caller);
        tracing::info!(call = %id, %agent, "queue call answered");
        self.acd.handle(
            now,
            Event::Answered {
                caller: caller.0,
                agent,
            },
        );
        self.drain_acd(now);
    }

    /// A queued call ended: the agent's talk ends, or the caller abandoned. `id` is the
    /// one the ACD knows it by (a callback's, its request's).
    pub(super) fn queue_call_ended(&mut self, now: Instant, id: CallId, q: QueueCall) {
        match (q.agent, q.offering) {
            (Some(agent), _) => self.acd.handle(now, Event::CallEnded(agent)),
            // A callback's call that ended before an agent took it (its agent's answer
            // was unusable, say): the request waits on for the next offer.
            (None, Some(agent)) if self.callback_requested(id) => self.acd.handle(
                now,
                Event::Unplaced {
                    caller: id.0,
                    agent,
                },
            ),
            (None, _) if self.callback_requested(id) => {}
            (None, _) => self.acd.handle(now, Event::Abandon(id.0)),
        }
    }

    /// Extension `ext` is on call `id` (calling, or answered): an agent among them is not
    /// offered queue calls meanwhile.
    pub(super) fn device_in_use(&mut self, now: Instant, id: CallId, ext: &str) {
        let Some(c) = self.calls.calls.get_mut(&id) else {
            return;
        };
        if c.devices.iter().any(|d| d == ext) {
            return;
        }
        c.devices.push(ext.to_string());
        let n = self.in_use.entry(ext.to_string()).or_default();
        *n += 1;
        if *n == 1 {
            for agent in self.phone_agents(ext) {
                self.acd.handle(now, Event::Busy(agent, true));
            }
            self.notify_line(now, ext);
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
            for agent in self.phone_agents(ext) {
                self.acd.handle(now, Event::Busy(agent, false));
            }
            self.notify_line(now, ext);
        }
    }

    /// Tells the ACD every queue member's skills (from the users' config) and whether it
    /// has a phone registered.
    pub(super) fn set_agent_skills(&mut self, now: Instant) {
        // Agents by ID are known (and listed) before they first log in.
        let by_id: Vec<(String, Vec<(String, u8)>)> = self
            .hot_desk
            .agents
            .values()
            .map(|a| (a.id.clone(), a.skills.clone()))
            .collect();
        for (id, skills) in by_id {
            self.acd.handle(now, Event::Skills(id, skills));
        }
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

    /// Tells the ACD whether the agents at extension `ext` (itself, or one logged in there
    /// by ID) have a registered device now (after a registration, its expiry or removal,
    /// and at start).
    pub(super) fn agent_reach(&mut self, now: Instant, ext: &str) {
        let agents = self.phone_agents(ext);
        if agents.is_empty() {
            return;
        }
        let reachable = self.has_phone(now, ext);
        for agent in agents {
            self.acd.handle(now, Event::Reachable(agent, reachable));
        }
        self.drain_acd(now);
    }

    /// Whether extension `ext` has a registered device now.
    fn has_phone(&self, now: Instant, ext: &str) -> bool {
        !self.registrar.lookup(now, &self.aor(ext)).is_empty()
    }

    /// Next line for the queue log file (JSON, no newline).
    pub(super) fn poll_queue_log(&mut self) -> Option<String> {
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
        // Lamps watching an agent by ID follow its state.
        while let Some(agent) = self.acd.poll_touched() {
            if self.hot_desk.agents.contains_key(&agent) {
                self.notify_line(now, &agent);
            }
        }
        while let Some(cmd) = self.acd.poll_command() {
            tracing::debug!(?cmd, "acd");
            match cmd {
                Command::Offer { caller, agent } => {
                    let caller = CallId(caller);
                    if self.callback_waiting(caller) && !self.start_callback(now, caller) {
                        // The PBX's own trouble (no media port): not the agent's miss.
                        self.acd.handle(
                            now,
                            Event::Unplaced {
                                caller: caller.0,
                                agent,
                            },
                        );
                        continue;
                    }
                    let ring = self
                        .acd
                        .ring_timeout(caller.0)
                        .unwrap_or(Duration::from_secs(15));
                    // The ACD's caller and the call rung for it: a callback request's is
                    // the call placed for it.
                    let (caller, call) = (caller, self.acd_call(caller.0));
                    let Some(q) = self
                        .calls
                        .calls
                        .get_mut(&call)
                        .and_then(|c| c.queue.as_mut())
                    else {
                        self.acd.handle(
                            now,
                            Event::Refused {
                                caller: caller.0,
                                agent,
                            },
                        );
                        continue;
                    };
                    q.offering = Some(agent.clone());
                    let phone = self.agent_phone(&agent).to_string();
                    tracing::info!(call = %call, %agent, %phone, "offered to agent");
                    let offered = crate::story::Event::Offered {
                        agent: agent.clone(),
                    };
                    self.tell(now, call, offered);
                    // The ACD's own ring timer ends the offer; the dial's is a backstop.
                    if self.dial(now, call, &phone, Some(ring + Duration::from_secs(2))) {
                        self.set_state(call, State::Queued);
                    } else {
                        if let Some(q) = self
                            .calls
                            .calls
                            .get_mut(&call)
                            .and_then(|c| c.queue.as_mut())
                        {
                            q.offering = None;
                        }
                        // No phone to ring is not a refusal: the agent is passed over
                        // until it registers again.
                        let ev = if self.has_phone(now, &phone) {
                            Event::Refused {
                                caller: caller.0,
                                agent,
                            }
                        } else {
                            Event::Reachable(agent, false)
                        };
                        self.acd.handle(now, ev);
                    }
                }
                Command::Withdraw { caller, agent } => {
                    let caller = self.acd_call(caller);
                    let Some(c) = self.calls.calls.get_mut(&caller) else {
                        continue;
                    };
                    let bridged = c.bridged();
                    let Some(q) = c.queue.as_mut() else {
                        continue;
                    };
                    if q.offering.as_deref() == Some(agent.as_str()) && !bridged {
                        q.offering = None;
                        // The caller's music never stopped for the ring.
                        self.detach_b(now, caller);
                        self.unbridge(caller);
                    }
                }
                Command::Moved { caller, queue } => {
                    let call = self.acd_call(caller);
                    self.queue_moved(now, call, &queue);
                }
                Command::CallBack { caller } => self.take_callback(now, CallId(caller)),
                Command::GiveUp { caller, why } => {
                    let caller = CallId(caller);
                    if self.callback_requested(caller) {
                        tracing::info!(call = %caller, ?why, "queue gave up a callback request");
                        self.callback_done(caller);
                        // The call placed for it ends; the call that asked (still saying
                        // goodbye) is left to finish.
                        let placed = self.acd_call(caller.0);
                        if placed != caller {
                            self.detach_b(now, placed);
                            self.unbridge(placed);
                            self.hang_up(now, placed, None);
                        }
                        continue;
                    }
                    let Some(c) = self.calls.calls.get_mut(&caller) else {
                        continue;
                    };
                    c.queue = None;
                    let status = match why {
                        GiveUp::MaxWait => Status::Timeout,
                        GiveUp::Full => Status::Full,
                        GiveUp::NoAgents => Status::NoAgents,
                        GiveUp::UnknownQueue => Status::Failed,
                    };
                    tracing::info!(call = %caller, status = status.as_str(), "queue gave up");
                    self.detach_b(now, caller);
                    self.unbridge(caller);
                    self.stop_play(caller);
                    self.set_status(caller, status);
                    self.run_dialplan(now, caller);
                }
            }
        }
    }
}
