//! ACD routing cost, per strategy, in one queue with 10,000 member agents.
//! `cargo bench --bench acd`.
//!
//! - `routed_call`: 1,000 callers wait and every agent is paused; each iteration frees
//!   one agent (a decision: which caller, which agent), the offer is answered, the agent
//!   goes back on pause and a new caller joins, so the sizes stay put.
//! - `caller_joins`: every agent is free; each iteration a caller joins (a decision:
//!   which agent) and hangs up while offered, which frees the agent again. Agents have
//!   skill `s` at proficiency 1 to 5 and the caller needs `s>=3`, which only the skills
//!   strategy looks at by index; the others check it agent by agent from the front.

use std::time::Instant;
use switchboard::acd::{Acd, Command, Event, Member, QueueConfig, SkillNeed, Strategy};

fn main() {
    divan::main();
}

const AGENTS: usize = 10_000;
const STRATEGIES: &[&str] = &[
    "longest-idle",
    "round-robin",
    "fewest-calls",
    "least-talk-time",
    "linear",
    "random",
    "weighted-random",
    "skills",
    "ring-all",
];
const WAITING: u64 = 1_000;

fn strategy(name: &str) -> Strategy {
    match name {
        "ring-all" => Strategy::RingAll,
        "longest-idle" => Strategy::LongestIdle,
        "round-robin" => Strategy::RoundRobin,
        "fewest-calls" => Strategy::FewestCalls,
        "least-talk-time" => Strategy::LeastTalkTime,
        "linear" => Strategy::Linear,
        "random" => Strategy::Random,
        "weighted-random" => Strategy::WeightedRandom,
        _ => Strategy::Skills,
    }
}

fn join(acd: &mut Acd, now: Instant, caller: u64, skills: Vec<SkillNeed>) {
    acd.handle(
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
}

/// One queue of `AGENTS` logged-in members, and their ids.
fn queue(name: &str) -> (Acd, Vec<String>, Instant) {
    let now = Instant::now();
    let mut q = QueueConfig::new("q", strategy(name));
    q.wrap_up = std::time::Duration::ZERO;
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("a{i:05}")).collect();
    q.members = ids
        .iter()
        .map(|a| Member {
            agent: a.clone(),
            penalty: 0,
            weight: 1,
        })
        .collect();
    let mut acd = Acd::new(vec![q], 1);
    for (i, a) in ids.iter().enumerate() {
        acd.handle(
            now,
            Event::Login {
                agent: a.clone(),
                queues: vec![],
            },
        );
        acd.handle(
            now,
            Event::Skills(a.clone(), vec![("s".into(), (i % 5) as u8 + 1)]),
        );
    }
    (acd, ids, now)
}

#[divan::bench(args = STRATEGIES, sample_count = 10, sample_size = 20)]
fn routed_call(bencher: divan::Bencher, name: &str) {
    let (mut acd, ids, now) = queue(name);
    for a in &ids {
        acd.handle(now, Event::Pause(a.clone(), "bench".into()));
    }
    let mut next_caller = 0u64;
    for _ in 0..WAITING {
        next_caller += 1;
        join(&mut acd, now, next_caller, vec![]);
    }
    let mut k = 0usize;
    bencher.bench_local(|| {
        let agent = &ids[k % AGENTS];
        k += 1;
        acd.handle(now, Event::Unpause(agent.clone()));
        while let Some(c) = acd.poll_command() {
            if let Command::Offer { caller, agent } = c {
                acd.handle(
                    now,
                    Event::Answered {
                        caller,
                        agent: agent.clone(),
                    },
                );
                acd.handle(now, Event::Pause(agent.clone(), "bench".into()));
                acd.handle(now, Event::CallEnded(agent));
            }
        }
        next_caller += 1;
        join(&mut acd, now, next_caller, vec![]);
        while acd.poll_log().is_some() {}
    });
}

#[divan::bench(args = STRATEGIES, sample_count = 10, sample_size = 20)]
fn caller_joins(bencher: divan::Bencher, name: &str) {
    let (mut acd, _, now) = queue(name);
    let need = SkillNeed {
        skill: "s".into(),
        min: 3,
    };
    let mut caller = 0u64;
    bencher.bench_local(|| {
        caller += 1;
        join(&mut acd, now, caller, vec![need.clone()]);
        acd.handle(now, Event::Abandon(caller));
        while acd.poll_command().is_some() {}
        while acd.poll_log().is_some() {}
    });
}
