use super::*;

mod sim;

/// The virtual clock's zero: one instant for the whole test run, so that every helper
/// that logs agents in at `t0()` agrees with the test's own `now`.
fn t0() -> Instant {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

fn members(ids: &[&str]) -> Vec<Member> {
    ids.iter()
        .map(|a| Member {
            agent: (*a).into(),
            penalty: 0,
            weight: 1,
        })
        .collect()
}

fn queue(strategy: Strategy, ids: &[&str]) -> QueueConfig {
    let mut q = QueueConfig::new("q", strategy);
    q.members = members(ids);
    q
}

fn acd(q: QueueConfig) -> Acd {
    let ids: Vec<String> = q.members.iter().map(|m| m.agent.clone()).collect();
    let mut a = Acd::new(vec![q], 7);
    for id in ids {
        a.handle(
            t0(),
            Event::Login {
                agent: id,
                queues: vec![],
            },
        );
    }
    a
}

fn join(a: &mut Acd, now: Instant, caller: CallerId, priority: u32) {
    join_as(a, now, caller, priority, "");
}

/// A caller with a number (for sticky routing) joins queue `q`.
fn join_as(a: &mut Acd, now: Instant, caller: CallerId, priority: u32, number: &str) {
    a.handle(
        now,
        Event::Join {
            caller,
            queue: "q".into(),
            priority,
            skills: vec![],
            max_wait: None,
            number: number.into(),
        },
    );
}

fn commands(a: &mut Acd) -> Vec<Command> {
    std::iter::from_fn(|| a.poll_command()).collect()
}

fn offers(a: &mut Acd) -> Vec<(CallerId, String)> {
    commands(a)
        .into_iter()
        .filter_map(|c| match c {
            Command::Offer { caller, agent } => Some((caller, agent)),
            _ => None,
        })
        .collect()
}

/// Offers `caller` gets right after joining at `now`.
fn join_offers(a: &mut Acd, now: Instant, caller: CallerId) -> Vec<String> {
    join(a, now, caller, 0);
    offers(a).into_iter().map(|(_, ag)| ag).collect()
}

/// The agent answers and, `talk` later, hangs up.
fn take(a: &mut Acd, now: Instant, caller: CallerId, agent: &str, talk: Duration) {
    a.handle(
        now,
        Event::Answered {
            caller,
            agent: agent.into(),
        },
    );
    a.handle(now + talk, Event::CallEnded(agent.into()));
    commands(a);
}

#[test]
fn ring_all_and_the_random_strategies_pick_their_agents() {
    let now = t0();
    // Ring all: every free member; the first answer wins and the others are withdrawn.
    let mut a = acd(queue(Strategy::RingAll, &["x", "y", "z"]));
    assert_eq!(join_offers(&mut a, now, 1), ["x", "y", "z"]);
    a.handle(
        now,
        Event::Answered {
            caller: 1,
            agent: "y".into(),
        },
    );
    let withdrawn: Vec<String> = commands(&mut a)
        .into_iter()
        .filter_map(|c| match c {
            Command::Withdraw { agent, .. } => Some(agent),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, ["x", "z"]);
    assert_eq!(a.agent_state("y"), AgentState::OnCall);
    assert_eq!(a.agent_state("x"), AgentState::Available);
    // Random and weighted random: seeded, and weights respected over many picks.
    let mut q = queue(Strategy::WeightedRandom, &["x", "y"]);
    q.members[0].weight = 9;
    let mut a = acd(q);
    let mut x = 0;
    for caller in 1..=1000 {
        let o = join_offers(&mut a, now, caller);
        if o[0] == "x" {
            x += 1;
        }
        take(&mut a, now, caller, &o[0], Duration::ZERO);
    }
    assert!(
        (850..=950).contains(&x),
        "x picked {x} of 1000 at weight 9:1"
    );
    // Random ignores weights: even odds whatever they say.
    let mut q = queue(Strategy::Random, &["x", "y"]);
    q.members[0].weight = 9;
    let mut a = acd(q);
    let mut x = 0;
    for caller in 1..=1000 {
        let o = join_offers(&mut a, now, caller);
        if o[0] == "x" {
            x += 1;
        }
        take(&mut a, now, caller, &o[0], Duration::ZERO);
    }
    assert!((430..=570).contains(&x), "x picked {x} of 1000 at random");
}

/// Gives `caller` to `agent` alone (every other member paused meanwhile), answered at
/// `now` and ended `talk` later; returns the time the call ended.
fn give(a: &mut Acd, now: Instant, caller: CallerId, agent: &str, talk: Duration) -> Instant {
    let others: Vec<String> = a
        .agents
        .keys()
        .filter(|id| id.as_str() != agent)
        .map(|id| id.to_string())
        .collect();
    for o in &others {
        a.handle(now, Event::Pause(o.clone(), "steer".into()));
    }
    assert_eq!(join_offers(a, now, caller), [agent], "steered to {agent}");
    take(a, now, caller, agent, talk);
    let end = now + talk;
    for o in others {
        a.handle(end, Event::Unpause(o));
    }
    end
}

/// Five members whose list order, calls answered, talk time, idle time and the last one
/// offered all disagree, so every ordered strategy has exactly one right order:
///
/// | agent | calls | talk  | free since | note              |
/// |-------|-------|-------|------------|-------------------|
/// | a     | 3     | 30 s  | 3rd        | first in the list |
/// | b     | 1     | 100 s | 2nd        | fewest calls      |
/// | c     | 2     | 10 s  | 5th        | least talk        |
/// | d     | 2     | 60 s  | 1st        | idle longest, offered last |
/// | e     | 3     | 45 s  | 4th        |                   |
fn history(strategy: Strategy) -> (Acd, Instant) {
    let mut a = acd(queue(strategy, &["a", "b", "c", "d", "e"]));
    let mut now = t0();
    let calls: [(&str, u64); 11] = [
        ("a", 10),
        ("e", 15),
        ("b", 100),
        ("c", 5),
        ("a", 10),
        ("e", 15),
        ("d", 30),
        ("c", 5),
        ("a", 10),
        ("e", 15),
        ("d", 30),
    ];
    for (i, (agent, talk)) in calls.into_iter().enumerate() {
        now = give(&mut a, now, i as CallerId + 100, agent, secs(talk as f64)) + secs(1.0);
    }
    // Everyone free again, in the order d, b, a, e, c (a pause does not touch calls or
    // talk, and the unpause restarts idle time).
    for agent in ["d", "b", "a", "e", "c"] {
        a.handle(now, Event::Pause(agent.into(), "x".into()));
    }
    for agent in ["d", "b", "a", "e", "c"] {
        now += secs(1.0);
        a.handle(now, Event::Unpause(agent.into()));
    }
    commands(&mut a);
    (a, now + secs(1.0))
}

#[test]
fn each_ordered_strategy_ranks_every_free_agent_exactly() {
    for (strategy, want) in [
        (Strategy::Linear, ["a", "b", "c", "d", "e"]),
        (Strategy::RoundRobin, ["e", "a", "b", "c", "d"]),
        (Strategy::FewestCalls, ["b", "d", "c", "a", "e"]),
        (Strategy::LeastTalkTime, ["c", "a", "e", "d", "b"]),
        (Strategy::LongestIdle, ["d", "b", "a", "e", "c"]),
    ] {
        let (mut a, now) = history(strategy);
        // Five callers at once: each takes the best agent not already ringing.
        let got: Vec<String> = (1..=5)
            .flat_map(|caller| join_offers(&mut a, now, caller))
            .collect();
        assert_eq!(got, want, "{strategy:?}");
    }
}

#[test]
fn skills_and_penalties_choose_who_may_take_a_caller() {
    let now = t0();
    let mut a = acd(queue(Strategy::Skills, &["x", "y", "z"]));
    a.handle(now, Event::Skills("x".into(), vec![("billing".into(), 2)]));
    a.handle(
        now,
        Event::Skills(
            "y".into(),
            vec![("billing".into(), 5), ("spanish".into(), 1)],
        ),
    );
    a.handle(
        now,
        Event::Skills(
            "z".into(),
            vec![("billing".into(), 4), ("spanish".into(), 3)],
        ),
    );
    let need = |skill: &str, min| SkillNeed {
        skill: skill.into(),
        min,
    };
    a.handle(
        now,
        Event::Join {
            caller: 1,
            queue: "q".into(),
            priority: 0,
            skills: vec![need("billing", 3)],
            max_wait: None,
            number: String::new(),
        },
    );
    assert_eq!(offers(&mut a), [(1, "y".into())], "best billing first");
    a.handle(
        now,
        Event::Join {
            caller: 2,
            queue: "q".into(),
            priority: 0,
            skills: vec![need("spanish", 2)],
            max_wait: None,
            number: String::new(),
        },
    );
    assert_eq!(offers(&mut a), [(2, "z".into())]);
    a.handle(
        now,
        Event::Join {
            caller: 3,
            queue: "q".into(),
            priority: 0,
            skills: vec![need("billing", 6)],
            max_wait: None,
            number: String::new(),
        },
    );
    assert!(
        offers(&mut a).is_empty(),
        "nobody is that good: the caller waits"
    );
    assert_eq!(a.waiting("q"), 3);
    // Penalties: the higher tier only rings when the lower one is busy.
    let mut q = queue(Strategy::Linear, &["x", "y"]);
    q.members[0].penalty = 1;
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["y"]);
    assert_eq!(join_offers(&mut a, now, 2), ["x"]);
}

#[test]
fn priority_jumps_ahead_and_equal_priorities_keep_their_order() {
    let now = t0();
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    a.handle(now, Event::Pause("x".into(), "lunch".into()));
    for (caller, prio) in [(1, 0), (2, 0), (3, 5), (4, 5), (5, 1)] {
        join(&mut a, now, caller, prio);
    }
    let mut order = Vec::new();
    a.handle(now, Event::Unpause("x".into()));
    let mut next = offers(&mut a);
    for _ in 0..5 {
        let (caller, agent) = next.remove(0);
        order.push(caller);
        a.handle(
            now,
            Event::Answered {
                caller,
                agent: agent.clone(),
            },
        );
        assert!(offers(&mut a).is_empty(), "one offer at a time");
        a.handle(now, Event::CallEnded(agent));
        next = offers(&mut a);
    }
    assert_eq!(order, [3, 4, 5, 1, 2]);
}

/// One agent `x` with 30 s of wrap-up, after a 60 s call answered at once: the ACD, the
/// call's start and a second.
fn one_call_then_wrap_up() -> (Acd, Instant, Duration) {
    let now = t0();
    let s = Duration::from_secs(1);
    let mut q = queue(Strategy::Linear, &["x"]);
    q.wrap_up = s * 30;
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    a.handle(
        now,
        Event::Answered {
            caller: 1,
            agent: "x".into(),
        },
    );
    a.handle(now + s * 60, Event::CallEnded("x".into()));
    (a, now, s)
}

#[test]
fn wrap_up_pause_and_other_calls_keep_an_agent_from_offers() {
    let (mut a, now, s) = one_call_then_wrap_up();
    assert_eq!(a.agent_state("x"), AgentState::WrapUp);
    assert!(join_offers(&mut a, now + s * 61, 2).is_empty());
    assert_eq!(
        a.poll_timeout(),
        Some(now + s * 15),
        "the stale ring timer first"
    );
    a.handle_timeout(now + s * 89);
    assert!(offers(&mut a).is_empty(), "wrap-up runs 30 s");
    a.handle_timeout(now + s * 90);
    assert_eq!(offers(&mut a), [(2, "x".into())]);
    take(&mut a, now + s * 90, 2, "x", s);
    a.handle_timeout(now + s * 200);
    // A direct call on the agent's phone: no offer until it ends.
    a.handle(now + s * 200, Event::Busy("x".into(), true));
    assert!(join_offers(&mut a, now + s * 200, 3).is_empty());
    a.handle(now + s * 210, Event::Busy("x".into(), false));
    assert_eq!(offers(&mut a), [(3, "x".into())]);
    let st = a.stats("q").unwrap();
    assert_eq!((st.answered, st.handled), (2, 2));
    assert_eq!(st.aht(), Some(s * (60 + 1 + 60) / 2), "talk plus wrap-up");
}

#[test]
fn only_the_live_offers_ring_timer_counts_and_a_pause_outlasts_the_wrap_up() {
    let now = t0();
    let s = Duration::from_secs(1);
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    // x refuses at 2 s; offered again after the 5 s retry, at 7 s, it rings until 22 s.
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    a.handle(
        now + s * 2,
        Event::Refused {
            caller: 1,
            agent: "x".into(),
        },
    );
    commands(&mut a);
    a.handle_timeout(now + s * 7);
    assert_eq!(offers(&mut a), [(1, "x".into())]);
    a.handle_timeout(now + s * 15);
    assert!(
        commands(&mut a).is_empty(),
        "the first offer's timer is spent"
    );
    assert_eq!(a.agent_state("x"), AgentState::Ringing);
    a.handle_timeout(now + s * 22);
    assert!(commands(&mut a).contains(&Command::Withdraw {
        caller: 1,
        agent: "x".into()
    }));

    // A pause taken in wrap-up holds past the wrap-up's end.
    let (mut a, now, s) = one_call_then_wrap_up();
    a.handle(now + s * 70, Event::Pause("x".into(), "lunch".into()));
    a.handle_timeout(now + s * 90);
    assert_eq!(a.agent_state("x"), AgentState::Paused("lunch".into()));
    assert!(join_offers(&mut a, now + s * 91, 2).is_empty());
}

#[test]
fn a_caller_no_agent_can_serve_does_not_hold_up_those_behind_it() {
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    let now = t0();
    a.handle(now, Event::Skills("x".into(), vec![("english".into(), 5)]));
    a.handle(now, Event::Pause("x".into(), "b".into()));
    join_needing(&mut a, now, 1, &[("german", 1)]);
    join_needing(&mut a, now, 2, &[("english", 3)]);
    join(&mut a, now, 3, 0);
    a.handle(now, Event::Unpause("x".into()));
    assert_eq!(
        offers(&mut a),
        [(2, "x".into())],
        "the German speaker waits on"
    );
    a.handle(
        now,
        Event::Answered {
            caller: 2,
            agent: "x".into(),
        },
    );
    a.handle(now + secs(60.0), Event::CallEnded("x".into()));
    assert_eq!(offers(&mut a), [(3, "x".into())]);
}

#[test]
fn with_no_retry_delay_a_refused_caller_goes_to_the_next_agent_at_once() {
    let mut q = queue(Strategy::Linear, &["x", "y"]);
    q.retry = Duration::ZERO;
    let mut a = acd(q);
    let now = t0();
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    a.handle(
        now,
        Event::Refused {
            caller: 1,
            agent: "x".into(),
        },
    );
    // x, missed once, is still first in line: it rings again at once, no timer between.
    assert_eq!(offers(&mut a), [(1, "x".into())]);
}

#[test]
fn a_queue_that_leaves_when_empty_keeps_its_callers_while_an_agent_is_left() {
    let mut q = queue(Strategy::Linear, &["x", "y"]);
    q.leave_when_empty = true;
    let mut a = acd(q);
    let now = t0();
    a.handle(now, Event::Pause("x".into(), "b".into()));
    a.handle(now, Event::Pause("y".into(), "b".into()));
    join(&mut a, now, 1, 0);
    a.handle(now, Event::Logout("x".into()));
    assert!(commands(&mut a).is_empty(), "y is still logged in");
    assert_eq!(a.waiting("q"), 1);
    a.handle(now, Event::Logout("y".into()));
    assert_eq!(
        commands(&mut a),
        [Command::GiveUp {
            caller: 1,
            why: GiveUp::NoAgents
        }]
    );
}

#[test]
fn the_skills_strategy_picks_the_most_proficient_agent_with_every_skill_needed() {
    let mut a = acd(queue(Strategy::Skills, &["a", "b", "c", "d"]));
    let now = t0();
    a.handle(now, Event::Skills("a".into(), vec![("french".into(), 2)]));
    a.handle(now, Event::Skills("d".into(), vec![("french".into(), 1)]));
    a.handle(now, Event::Skills("b".into(), vec![("french".into(), 5)]));
    a.handle(
        now,
        Event::Skills("c".into(), vec![("french".into(), 3), ("german".into(), 2)]),
    );
    // Two skills: only `c` has both, though `b` has more French.
    assert_eq!(
        join_needing(&mut a, now + secs(1.0), 2, &[("french", 1), ("german", 1)]),
        ["c"]
    );
    // `a` has been idle longest, but `b` knows French best.
    assert_eq!(
        join_needing(&mut a, now + secs(1.0), 1, &[("french", 1)]),
        ["b"]
    );
    // No skills needed: longest idle.
    assert_eq!(join_offers(&mut a, now + secs(1.0), 3), ["a"]);
    // The best French speakers all ring now: the one left, however weak.
    assert_eq!(
        join_needing(&mut a, now + secs(1.0), 4, &[("french", 1)]),
        ["d"]
    );
}

#[test]
fn unanswered_offers_retry_and_pause_the_agent_after_three() {
    let now = t0();
    let s = Duration::from_secs(1);
    let mut q = queue(Strategy::Linear, &["x", "y"]);
    q.members[1].penalty = 1;
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    let mut t = now;
    for round in 1..=3 {
        // x lets it ring out; the caller waits 5 s, then x (still best) rings again.
        t += s * 15;
        a.handle_timeout(t);
        let c = commands(&mut a);
        assert!(
            c.contains(&Command::Withdraw {
                caller: 1,
                agent: "x".into()
            }),
            "{c:?}"
        );
        if round < 3 {
            assert!(
                !c.iter().any(|c| matches!(c, Command::Offer { .. })),
                "{c:?}"
            );
            t += s * 5;
            a.handle_timeout(t);
            assert_eq!(offers(&mut a), [(1, "x".into())]);
        }
    }
    assert_eq!(a.agent_state("x"), AgentState::Paused("auto".into()));
    t += s * 5;
    a.handle_timeout(t);
    assert_eq!(
        offers(&mut a),
        [(1, "y".into())],
        "the next tier once x is paused"
    );
}

#[test]
fn the_queue_gives_up_when_full_empty_or_after_the_longest_wait() {
    let now = t0();
    let s = Duration::from_secs(1);
    let mut q = QueueConfig::new("q", Strategy::Linear);
    q.max_len = Some(1);
    q.max_wait = Some(s * 60);
    q.join_empty = true;
    let mut a = Acd::new(vec![q], 1);
    join(&mut a, now, 1, 0);
    join(&mut a, now, 2, 0);
    assert_eq!(
        commands(&mut a),
        [Command::GiveUp {
            caller: 2,
            why: GiveUp::Full
        }]
    );
    assert_eq!(
        a.stats("q").unwrap().offered,
        2,
        "the one turned away counts"
    );
    a.handle_timeout(now + s * 59);
    assert!(commands(&mut a).is_empty(), "not before its longest wait");
    a.handle_timeout(now + s * 60);
    assert_eq!(
        commands(&mut a),
        [Command::GiveUp {
            caller: 1,
            why: GiveUp::MaxWait
        }]
    );
    let mut q = QueueConfig::new("q", Strategy::Linear);
    q.join_empty = false;
    let mut a = Acd::new(vec![q], 1);
    join(&mut a, now, 3, 0);
    assert_eq!(
        commands(&mut a),
        [Command::GiveUp {
            caller: 3,
            why: GiveUp::NoAgents
        }]
    );
    // Abandons: short ones are not held against the service level.
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    a.handle(now, Event::Pause("x".into(), "02".into()));
    join(&mut a, now, 4, 0);
    join(&mut a, now, 5, 0);
    a.handle(now + s * 2, Event::Abandon(4));
    a.handle(now + s * 30, Event::Abandon(5));
    let st = a.stats("q").unwrap();
    assert_eq!((st.abandoned, st.short_abandoned), (2, 1));
    assert_eq!(st.service_level(), Some(0.0));
    assert_eq!(a.waiting("q"), 0);
}

#[test]
fn callers_are_served_in_the_order_they_came_whatever_their_ids() {
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    let now = t0();
    a.handle(now, Event::Pause("x".into(), "b".into()));
    for id in [30, 20, 10] {
        join(&mut a, now, id, 0);
    }
    a.handle(now, Event::Unpause("x".into()));
    let mut served = Vec::new();
    for t in 1..=3 {
        let (caller, _) = offers(&mut a)[0].clone();
        served.push(caller);
        let at = now + secs(f64::from(t));
        a.handle(
            at,
            Event::Answered {
                caller,
                agent: "x".into(),
            },
        );
        a.handle(at, Event::CallEnded("x".into()));
    }
    assert_eq!(served, [30, 20, 10]);
}

#[test]
fn an_answer_from_an_agent_not_ringing_for_the_caller_is_ignored() {
    let mut a = acd(queue(Strategy::Linear, &["x", "y"]));
    let now = t0();
    a.handle(now, Event::Pause("y".into(), "b".into()));
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    a.handle(now, Event::Unpause("y".into()));
    let stray = Event::Answered {
        caller: 1,
        agent: "y".into(),
    };
    a.handle(now, stray);
    assert_eq!(a.agent_state("y"), AgentState::Available);
    assert_eq!(a.agent_state("x"), AgentState::Ringing);
    assert_eq!(a.stats("q").unwrap().answered, 0);
    a.handle(
        now,
        Event::Answered {
            caller: 1,
            agent: "x".into(),
        },
    );
    assert_eq!(a.agent_state("x"), AgentState::OnCall);
    assert_eq!(a.stats("q").unwrap().answered, 1);
}

#[test]
fn an_agent_back_from_another_call_is_idle_from_its_end() {
    let mut a = acd(queue(Strategy::LongestIdle, &["a", "b"]));
    let now = t0();
    // `a` is on a direct call from 10 s to 100 s; `b` takes a queue call, ending at 50 s.
    a.handle(now + secs(10.0), Event::Busy("a".into(), true));
    assert_eq!(join_offers(&mut a, now + secs(20.0), 1), ["b"]);
    take(&mut a, now + secs(20.0), 1, "b", secs(30.0));
    a.handle(now + secs(100.0), Event::Busy("a".into(), false));
    // `a` is idle since 100 s, not since its call began: `b` (50 s) is first.
    assert_eq!(join_offers(&mut a, now + secs(120.0), 2), ["b"]);
}

#[test]
fn the_queue_log_says_an_agent_has_no_phone_and_when_a_logged_in_ones_comes_and_goes() {
    let mut a = Acd::new(vec![queue(Strategy::Linear, &["x", "y"])], 1);
    let now = t0();
    a.handle(now, Event::Reachable("x".into(), false));
    for id in ["x", "y"] {
        a.handle(
            now,
            Event::Login {
                agent: id.into(),
                queues: vec![],
            },
        );
    }
    a.handle(now, Event::Reachable("y".into(), false));
    a.handle(now, Event::Reachable("y".into(), true));
    type Line = (String, String, Vec<(&'static str, String)>);
    let log: Vec<Line> = std::iter::from_fn(|| a.poll_log())
        .map(|r| (r.event.to_string(), r.agent.unwrap_or_default(), r.detail))
        .collect();
    assert_eq!(
        log,
        [
            ("login".into(), "x".into(), vec![("phone", "none".into())]),
            ("login".into(), "y".into(), vec![]),
            ("unreachable".into(), "y".into(), vec![]),
            ("reachable".into(), "y".into(), vec![]),
        ],
        "x's phone went before it logged in: said at its login, not on its own"
    );
}

#[test]
fn an_agent_in_two_queues_gets_one_offer_and_the_last_logout_empties_a_queue() {
    let now = t0();
    let mut q1 = QueueConfig::new("q", Strategy::Linear);
    q1.members = members(&["x"]);
    q1.leave_when_empty = true;
    let mut q2 = QueueConfig::new("sales", Strategy::Linear);
    q2.members = members(&["x"]);
    let mut a = Acd::new(vec![q1, q2], 3);
    a.handle(
        now,
        Event::Login {
            agent: "x".into(),
            queues: vec![],
        },
    );
    join(&mut a, now, 1, 0);
    a.handle(
        now,
        Event::Join {
            caller: 2,
            queue: "sales".into(),
            priority: 9,
            skills: vec![],
            max_wait: None,
            number: String::new(),
        },
    );
    assert_eq!(offers(&mut a), [(1, "x".into())], "one offer at a time");
    // Logging out withdraws the offer; the queue that wants agents gives its caller up.
    a.handle(now, Event::Logout("x".into()));
    let c = commands(&mut a);
    assert_eq!(
        c,
        [
            Command::Withdraw {
                caller: 1,
                agent: "x".into()
            },
            Command::GiveUp {
                caller: 1,
                why: GiveUp::NoAgents
            }
        ]
    );
    assert_eq!((a.waiting("q"), a.waiting("sales")), (0, 1));
    // A dynamic agent logs in to sales alone and takes its caller.
    a.handle(
        now,
        Event::Login {
            agent: "d".into(),
            queues: vec![("sales".into(), 0)],
        },
    );
    assert_eq!(offers(&mut a), [(2, "d".into())]);
}

#[test]
fn a_reload_changes_rules_opens_queues_and_closes_emptied_ones() {
    let now = t0();
    let mut a = acd(queue(Strategy::Linear, &["x", "y"]));
    a.handle(now, Event::Pause("x".into(), "r".into()));
    a.handle(now, Event::Pause("y".into(), "r".into()));
    join(&mut a, now, 1, 0);
    // `q` is gone from the new config but keeps its waiting caller; `sales` is new.
    let mut sales = QueueConfig::new("sales", Strategy::Linear);
    sales.members = members(&["z"]);
    a.reconfigure(now, vec![sales]);
    assert_eq!(a.waiting("q"), 1);
    assert_eq!(
        a.agent_state("z"),
        AgentState::Available,
        "a new member is logged in"
    );
    a.handle(now, Event::Unpause("y".into()));
    assert_eq!(
        offers(&mut a),
        [(1, "y".into())],
        "the old queue still serves its caller"
    );
    a.handle(
        now,
        Event::Answered {
            caller: 1,
            agent: "y".into(),
        },
    );
    a.reconfigure(now, vec![QueueConfig::new("sales", Strategy::RingAll)]);
    assert!(a.stats("q").is_none(), "closed once empty");
    assert!(a.stats("sales").is_some());
}

#[test]
fn after_a_reload_an_agent_who_pauses_is_not_offered_calls() {
    let now = t0();
    let mut a = acd(queue(Strategy::Linear, &["x", "y"]));
    // A new strategy ranks the agents anew: nothing of the old ranking may linger.
    a.reconfigure(now, vec![queue(Strategy::LongestIdle, &["x", "y"])]);
    a.handle(now, Event::Pause("x".into(), "b".into()));
    assert_eq!(
        join_offers(&mut a, now, 1),
        ["y"],
        "the index was rebuilt, not added to"
    );
}

#[test]
fn a_callers_position_counts_those_ahead_by_priority_then_arrival() {
    let now = t0();
    let mut a = acd(queue(Strategy::Linear, &["x"]));
    a.handle(now, Event::Pause("x".into(), "r".into()));
    join(&mut a, now, 1, 0);
    join(&mut a, now, 2, 0);
    join(&mut a, now, 3, 7);
    assert_eq!(a.position(3), Some(("q".into(), 1)));
    assert_eq!(a.position(1), Some(("q".into(), 2)));
    assert_eq!(a.position(2), Some(("q".into(), 3)));
    a.handle(now, Event::Abandon(1));
    assert_eq!(a.position(2), Some(("q".into(), 2)));
    assert_eq!(a.position(9), None);
}

#[test]
fn occupancy_is_talk_and_wrap_up_over_logged_in_unpaused_time() {
    let (mut a, now, s) = one_call_then_wrap_up();
    let occ = |a: &Acd, at| a.agent_views(at)[0].occupancy.unwrap();
    assert!((occ(&a, now + s * 180) - 0.5).abs() < 1e-9, "90 s of 180");
    a.handle(now + s * 180, Event::Pause("x".into(), "02".into()));
    a.handle(now + s * 240, Event::Unpause("x".into()));
    assert!(
        (occ(&a, now + s * 300) - 90.0 / 240.0).abs() < 1e-9,
        "the paused minute does not count"
    );
}

#[test]
fn an_agent_with_no_phone_is_passed_over_without_a_miss() {
    let now = t0();
    let mut a = acd(queue(Strategy::Linear, &["a", "b"]));
    a.handle(now, Event::Reachable("a".into(), false));
    assert_eq!(join_offers(&mut a, now, 1), ["b"]);
    // `b`'s phone turns out to have gone too, while it rings: the caller is offered to
    // the next free agent at once (none), with no retry delay and no miss for `b`.
    a.handle(now, Event::Reachable("a".into(), true));
    a.handle(now, Event::Reachable("b".into(), false));
    let cmds = commands(&mut a);
    assert!(
        cmds.contains(&Command::Withdraw {
            caller: 1,
            agent: "b".into()
        }),
        "{cmds:?}"
    );
    assert!(
        cmds.contains(&Command::Offer {
            caller: 1,
            agent: "a".into()
        }),
        "{cmds:?}"
    );
    let views = a.agent_views(now);
    let b = views.iter().find(|v| v.agent == "b").unwrap();
    assert_eq!((b.missed_in_a_row, b.reachable), (0, false));
    assert_eq!(b.state, "available");
}

fn join_number(a: &mut Acd, now: Instant, caller: CallerId, number: &str) -> Vec<String> {
    join_as(a, now, caller, 0, number);
    offers(a).into_iter().map(|(_, ag)| ag).collect()
}

/// A linear queue of `a` and `b` with an hour of sticky routing, where `b` took 555's
/// call at the start (`a` paused meanwhile, free again after).
fn b_took_555() -> (Acd, Instant) {
    let mut q = queue(Strategy::Linear, &["a", "b"]);
    q.sticky = secs(3600.0);
    let mut a = acd(q);
    let now = t0();
    a.handle(now, Event::Pause("a".into(), "break".into()));
    assert_eq!(join_number(&mut a, now, 1, "555"), ["b"]);
    take(&mut a, now, 1, "b", secs(60.0));
    a.handle(now, Event::Unpause("a".into()));
    (a, now)
}

#[test]
fn a_caller_who_called_lately_goes_to_the_agent_who_took_it_last() {
    let (mut a, now) = b_took_555();
    // Linear would pick `a`; 555 gets `b` again within the hour, others get `a`.
    let t1 = now + secs(600.0);
    assert_eq!(join_number(&mut a, t1, 2, "777"), ["a"]);
    assert_eq!(join_number(&mut a, t1, 3, "555"), ["b"]);
    take(&mut a, t1, 3, "b", secs(60.0));
    take(&mut a, t1, 2, "a", secs(60.0));
    // `b` busy on another call: 555 is not kept waiting for it.
    let t2 = t1 + secs(600.0);
    a.handle(t2, Event::Busy("b".into(), true));
    assert_eq!(join_number(&mut a, t2, 4, "555"), ["a"]);
    take(&mut a, t2, 4, "a", secs(60.0));
    a.handle(t2, Event::Busy("b".into(), false));
    // Past the window the strategy decides again.
    let (mut late, _) = b_took_555();
    let after = now + secs(3700.0);
    assert_eq!(join_number(&mut late, after, 2, "555"), ["a"]);
}

#[test]
fn sticky_routing_holds_each_number_until_its_own_last_call_leaves_the_window() {
    let (mut a, now) = b_took_555();
    // Both free: Linear would pick `a`, but 555 goes back to `b`.
    let t1 = now + secs(600.0);
    assert_eq!(join_number(&mut a, t1, 2, "555"), ["b"]);
    take(&mut a, t1, 2, "b", secs(60.0));
    assert_eq!(join_number(&mut a, t1, 3, "777"), ["a"]);
    take(&mut a, t1, 3, "a", secs(60.0));
    // 555's first call is out of the window, its second is not: another number taken
    // now (which forgets what is out of the window) must not forget 555.
    let t2 = now + secs(3700.0);
    assert_eq!(join_number(&mut a, t2, 4, "888"), ["a"]);
    take(&mut a, t2, 4, "a", secs(60.0));
    assert_eq!(join_number(&mut a, t2, 5, "555"), ["b"]);
    take(&mut a, t2, 5, "b", secs(60.0));
    // A caller with no number is nobody's: the strategy decides.
    a.handle(t2, Event::Pause("a".into(), "break".into()));
    assert_eq!(join_number(&mut a, t2, 6, ""), ["b"]);
    take(&mut a, t2, 6, "b", secs(60.0));
    a.handle(t2, Event::Unpause("a".into()));
    assert_eq!(join_number(&mut a, t2, 7, ""), ["a"]);
}

#[test]
fn a_waiting_callers_ring_time_needs_and_queue_rules_are_read_back() {
    let mut q = queue(Strategy::Linear, &["a"]);
    q.ring_timeout = secs(25.0);
    let mut a = acd(q);
    a.handle(t0(), Event::Pause("a".into(), "break".into()));
    join_needing(&mut a, t0(), 1, &[("french", 3)]);
    assert_eq!(a.ring_timeout(1), Some(secs(25.0)));
    assert_eq!(
        a.needs(1),
        Some((
            0,
            vec![SkillNeed {
                skill: "french".into(),
                min: 3
            }]
        ))
    );
    join(&mut a, t0(), 2, 9);
    assert_eq!(a.needs(2), Some((9, vec![])));
    assert_eq!(
        a.queue_config("q").map(|q| q.ring_timeout),
        Some(secs(25.0))
    );
    assert_eq!(
        (a.ring_timeout(3), a.needs(3)),
        (None, None),
        "no such caller"
    );
    assert!(a.queue_config("nope").is_none());
}

#[test]
fn a_caller_given_up_overflows_to_the_next_queue_and_overflow_loops_end() {
    let mut q = queue(Strategy::Linear, &["a"]);
    q.max_wait = Some(secs(10.0));
    q.overflow = Some("r".into());
    let mut r = QueueConfig::new("r", Strategy::Linear);
    r.members = members(&["b"]);
    let mut a = Acd::new(vec![q, r], 7);
    let now = t0();
    a.handle(
        now,
        Event::Login {
            agent: "b".into(),
            queues: vec![],
        },
    );
    // `a` never logged in: the caller waits in `q`, then moves on to `r` and `b`.
    assert!(join_offers(&mut a, now, 1).is_empty());
    a.handle_timeout(now + secs(10.0));
    assert_eq!(
        commands(&mut a),
        [
            Command::Moved {
                caller: 1,
                queue: "r".into()
            },
            Command::Offer {
                caller: 1,
                agent: "b".into()
            }
        ],
        "no GiveUp: the caller stays queued"
    );
    let log: Vec<(String, String)> = std::iter::from_fn(|| a.poll_log())
        .filter(|r| r.caller == Some(1))
        .map(|r| (r.event.to_string(), r.queue.clone()))
        .collect();
    assert_eq!(
        log,
        [
            ("join".to_string(), "q".to_string()),
            ("give-up".into(), "q".into()),
            ("join".into(), "r".into()),
            ("offer".into(), "r".into())
        ]
    );
    assert_eq!(a.stats("q").unwrap().overflowed, 1);

    // Two queues that overflow into each other with nobody to join: the caller goes
    // round a few times, then back to the dialplan.
    let mut x = QueueConfig::new("x", Strategy::Linear);
    x.join_empty = false;
    x.overflow = Some("y".into());
    let mut y = x.clone();
    y.name = "y".into();
    y.overflow = Some("x".into());
    let mut a = Acd::new(vec![x, y], 7);
    a.handle(
        now,
        Event::Join {
            caller: 9,
            queue: "x".into(),
            priority: 0,
            skills: vec![],
            max_wait: None,
            number: String::new(),
        },
    );
    let cmds = commands(&mut a);
    assert_eq!(
        cmds.last(),
        Some(&Command::GiveUp {
            caller: 9,
            why: GiveUp::NoAgents
        })
    );
    let moves = cmds
        .iter()
        .filter(|c| matches!(c, Command::Moved { caller: 9, .. }))
        .count();
    assert_eq!(moves, usize::from(MAX_OVERFLOW_HOPS));
    let hops = std::iter::from_fn(|| a.poll_log())
        .filter(|r| r.event == "give-up")
        .count();
    assert_eq!(hops, usize::from(MAX_OVERFLOW_HOPS) + 1);
}

#[test]
fn the_estimated_wait_is_position_times_handle_time_over_staffed_agents() {
    let mut a = acd(queue(Strategy::Linear, &["a", "b", "c"]));
    let now = t0();
    a.handle(now, Event::Pause("c".into(), "lunch".into()));
    // Nothing handled yet: no estimate.
    assert_eq!(join_offers(&mut a, now, 1), ["a"]);
    assert_eq!(join_offers(&mut a, now, 2), ["b"]);
    join(&mut a, now, 3, 0);
    assert_eq!(a.estimated_wait(3), None);
    // Two calls of 120 s and 240 s handled (no wrap-up): AHT 180 s, two agents staffed.
    take(&mut a, now, 1, "a", secs(120.0));
    commands(&mut a);
    take(&mut a, now, 2, "b", secs(240.0));
    join(&mut a, now + secs(300.0), 4, 0);
    join(&mut a, now + secs(300.0), 5, 0);
    commands(&mut a);
    // 3 rings `a` (it still waits until answered), then 4, then 5: third in line.
    assert_eq!(a.position(5).map(|(_, p)| p), Some(3));
    assert_eq!(a.estimated_wait(5), Some(secs(270.0)));
    a.handle(now + secs(300.0), Event::Pause("b".into(), "break".into()));
    assert_eq!(a.estimated_wait(5), Some(secs(540.0)));
    a.handle(now + secs(300.0), Event::Pause("a".into(), "break".into()));
    assert_eq!(a.estimated_wait(5), None, "nobody staffing: no estimate");
}

#[test]
fn the_views_show_each_queue_and_agent_as_they_stand() {
    let mut a = acd(queue(Strategy::Linear, &["a", "b", "c"]));
    let now = t0();
    a.handle(now, Event::Pause("c".into(), "lunch".into()));
    assert_eq!(join_offers(&mut a, now, 1), ["a"]);
    take(&mut a, now, 1, "a", secs(90.0));
    commands(&mut a);
    assert_eq!(join_offers(&mut a, now + secs(100.0), 2), ["a"]);
    a.handle(now + secs(100.0), Event::Pause("b".into(), "break".into()));
    join(&mut a, now + secs(110.0), 3, 0);
    let q = &a.queue_views(now + secs(140.0))[0];
    assert_eq!((q.name.as_str(), q.waiting), ("q", 2));
    assert_eq!(q.longest_wait_s, 40, "caller 2, waiting since 100 s");
    let states: Vec<(&str, usize)> = q.agents.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        states,
        [("paused(break)", 1), ("paused(lunch)", 1), ("ringing", 1)]
    );
    assert_eq!((q.stats.answered, q.stats.handled), (1, 1));
    let agents = a.agent_views(now + secs(140.0));
    let a0 = &agents[0];
    assert_eq!(
        (a0.agent.as_str(), a0.state.as_str(), a0.answered, a0.talk_s),
        ("a", "ringing", 1, 90)
    );
    assert_eq!(a0.queues, ["q"]);
    assert!(a.is_member("b") && !a.is_member("z"));
    assert_eq!(a.static_members(), ["a", "b", "c"]);
}

/// A caller with `skills` joins queue `q`; the agents offered it.
fn join_needing(a: &mut Acd, now: Instant, caller: CallerId, skills: &[(&str, u8)]) -> Vec<String> {
    let skills = skills
        .iter()
        .map(|(s, min)| SkillNeed {
            skill: (*s).into(),
            min: *min,
        })
        .collect();
    a.handle(
        now,
        Event::Join {
            caller,
            queue: "q".into(),
            priority: 0,
            skills,
            max_wait: None,
            number: String::new(),
        },
    );
    offers(a).into_iter().map(|(_, ag)| ag).collect()
}

#[test]
fn indexed_routing_walks_penalty_levels_skills_and_ready_callers() {
    let now = t0();
    // Skills: the best at the lowest penalty level that has the skill high enough, else
    // the next level.
    let mut q = queue(Strategy::Skills, &["a", "b", "c"]);
    q.members[2].penalty = 1;
    let mut a = acd(q);
    for (id, skills) in [
        ("a", vec![("s", 2)]),
        ("b", vec![("s", 1), ("t", 4)]),
        ("c", vec![("s", 5)]),
    ] {
        let skills = skills
            .into_iter()
            .map(|(s, p)| (s.to_string(), p))
            .collect();
        a.handle(now, Event::Skills(id.into(), skills));
    }
    assert_eq!(
        join_needing(&mut a, now, 1, &[("s", 3)]),
        ["c"],
        "next level"
    );
    assert_eq!(
        join_needing(&mut a, now, 2, &[("s", 1)]),
        ["a"],
        "best of level 0"
    );
    assert_eq!(join_needing(&mut a, now, 3, &[("s", 1), ("t", 1)]), ["b"]);
    assert!(
        join_needing(&mut a, now, 4, &[("u", 1)]).is_empty(),
        "nobody has u"
    );

    // Round-robin goes on past the static members to a dynamic one, then wraps round.
    let mut a = acd_rr();
    let order: Vec<String> = (1..=4)
        .flat_map(|c| {
            let o = join_offers(&mut a, now, c);
            take(&mut a, now, c, &o[0], Duration::ZERO);
            o
        })
        .collect();
    assert_eq!(order, ["x", "y", "z", "x"]);

    // A caller waiting out its retry delay is passed over for the one behind it, and
    // offered again once the delay is over.
    let mut q = queue(Strategy::Linear, &["x", "y"]);
    q.retry = secs(5.0);
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    assert_eq!(join_offers(&mut a, now, 2), ["y"]);
    a.handle(
        now,
        Event::Refused {
            caller: 1,
            agent: "x".into(),
        },
    );
    join(&mut a, now, 3, 0);
    assert_eq!(
        offers(&mut a),
        [(3, "x".to_string())],
        "1 waits out its delay"
    );
    a.handle(
        now,
        Event::Refused {
            caller: 3,
            agent: "x".into(),
        },
    );
    assert!(offers(&mut a).is_empty(), "both wait out their delays");
    a.handle_timeout(now + secs(5.0));
    assert_eq!(
        offers(&mut a),
        [(1, "x".to_string())],
        "first come again first"
    );
}

/// Round-robin over static members x and y and dynamic member z.
fn acd_rr() -> Acd {
    let mut a = acd(queue(Strategy::RoundRobin, &["x", "y"]));
    a.handle(
        t0(),
        Event::Login {
            agent: "z".into(),
            queues: vec![("q".into(), 0)],
        },
    );
    a
}

#[test]
fn a_callback_keeps_its_place_without_a_longest_wait_and_drops_its_ring() {
    let now = t0();
    let mut q = queue(Strategy::Linear, &["x"]);
    q.max_wait = Some(secs(60.0));
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["x"]);
    join(&mut a, now, 2, 0);
    // Caller 1 asks for a callback while x rings: the ring stops, it stays first.
    a.handle(now, Event::Callback(1));
    // Not offered while its call still plays the confirmation: x gets caller 2.
    assert_eq!(
        commands(&mut a),
        [
            Command::Withdraw {
                caller: 1,
                agent: "x".into()
            },
            Command::Offer {
                caller: 2,
                agent: "x".into()
            }
        ]
    );
    assert_eq!(a.position(1), Some(("q".into(), 1)));
    a.handle(
        now,
        Event::Refused {
            caller: 2,
            agent: "x".into(),
        },
    );
    a.handle(now, Event::CallbackReady(1));
    assert_eq!(offers(&mut a), [(1, "x".to_string())], "ready: its turn");
    a.handle(now, Event::Pause("x".into(), "b".into()));
    commands(&mut a);
    // Past the longest wait only the caller still on the line is given up.
    a.handle_timeout(now + secs(61.0));
    assert_eq!(
        commands(&mut a),
        [Command::GiveUp {
            caller: 2,
            why: GiveUp::MaxWait
        }]
    );
    a.handle(now + secs(62.0), Event::Unpause("x".into()));
    assert_eq!(offers(&mut a), [(1, "x".to_string())], "still there");
}

#[test]
fn past_the_longest_wait_a_callable_caller_is_called_back_in_its_place() {
    let now = t0();
    let mut q = queue(Strategy::Linear, &["x"]);
    q.max_wait = Some(secs(60.0));
    q.callback_on_max_wait = true;
    let mut a = acd(q);
    a.handle(now, Event::Pause("x".into(), "b".into()));
    join(&mut a, now, 1, 0);
    join(&mut a, now, 2, 0);
    a.handle(now, Event::Callable(1));
    a.handle_timeout(now + secs(60.0));
    assert_eq!(
        commands(&mut a),
        [
            Command::CallBack { caller: 1 },
            Command::GiveUp {
                caller: 2,
                why: GiveUp::MaxWait
            }
        ],
        "only the caller who can be called back is"
    );
    assert_eq!(a.position(1), Some(("q".into(), 1)));
    let why: Vec<String> = std::iter::from_fn(|| a.poll_log())
        .filter(|r| r.event == "callback")
        .flat_map(|r| r.detail.into_iter().map(|(_, v)| v))
        .collect();
    assert_eq!(why, ["max-wait"]);
    a.handle(now + secs(61.0), Event::CallbackReady(1));
    a.handle(now + secs(61.0), Event::Unpause("x".into()));
    assert_eq!(offers(&mut a), [(1, "x".to_string())]);
}

#[test]
fn a_queued_again_callback_is_offered_once_and_an_unplaced_offer_is_no_miss() {
    let now = t0();
    let mut q = queue(Strategy::Linear, &["x"]);
    q.max_wait = Some(secs(10.0));
    q.auto_pause_after = 1;
    let mut a = acd(q);
    a.handle(
        now,
        Event::JoinCallback {
            caller: 7,
            queue: "q".into(),
            priority: 0,
            skills: vec![],
            number: "1001".into(),
        },
    );
    assert_eq!(
        commands(&mut a),
        [Command::Offer {
            caller: 7,
            agent: "x".into()
        }],
        "one offer, nothing withdrawn"
    );
    // The call layer could not place it: x is free again and not paused for it.
    a.handle(
        now,
        Event::Unplaced {
            caller: 7,
            agent: "x".into(),
        },
    );
    assert_eq!(a.agent_state("x"), AgentState::Available);
    // After the retry delay it is offered again; no longest wait applies meanwhile.
    a.handle_timeout(now + secs(11.0));
    assert_eq!(offers(&mut a), [(7, "x".to_string())]);
}

#[test]
fn a_caller_picked_up_by_an_extension_leaves_answered_and_frees_its_agents_with_no_miss() {
    let now = t0();
    let mut q = queue(Strategy::RingAll, &["x", "y"]);
    q.auto_pause_after = 1;
    let mut a = acd(q);
    assert_eq!(join_offers(&mut a, now, 1), ["x", "y"]);
    std::iter::from_fn(|| a.poll_log()).for_each(drop);
    a.handle(
        now + Duration::from_secs(4),
        Event::PickedUp {
            caller: 1,
            by: "1005".into(),
        },
    );
    let withdrawn: Vec<String> = commands(&mut a)
        .into_iter()
        .filter_map(|c| match c {
            Command::Withdraw { agent, .. } => Some(agent),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn, ["x", "y"]);
    // Free again, and not paused for a miss (one miss would pause them).
    assert_eq!(a.agent_state("x"), AgentState::Available);
    assert_eq!(a.agent_state("y"), AgentState::Available);
    let st = a.stats("q").unwrap();
    assert_eq!((st.answered, st.abandoned), (1, 0));
    let log: Vec<LogRecord> = std::iter::from_fn(|| a.poll_log()).collect();
    let pickup = log
        .iter()
        .find(|l| l.event == "pickup")
        .expect("a pickup line");
    assert_eq!(pickup.caller, Some(1));
    assert!(
        pickup.detail.contains(&("by", "1005".to_string())),
        "{pickup:?}"
    );
    assert!(pickup.detail.contains(&("wait_ms", "4000".to_string())));
    // It is gone from the queue: the next caller is offered to both at once.
    assert_eq!(
        join_offers(&mut a, now + Duration::from_secs(5), 2),
        ["x", "y"]
    );
}
