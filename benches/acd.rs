//! ACD routing cost: one queue with 10,000 member agents and 1,000 callers waiting; each
//! iteration frees one agent (a decision: which caller, which agent), the offer is
//! answered, the agent goes back on pause and a new caller joins, so the sizes stay put.
//! Reported per routed call, per strategy. `cargo bench --bench acd`.

use std::time::Instant;
use switchboard::acd::{Acd, Command, Event, Member, QueueConfig, Strategy};

fn main() {
    divan::main();
}

const AGENTS: usize = 10_000;
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

fn join(acd: &mut Acd, now: Instant, caller: u64) {
    acd.handle(
        now,
        Event::Join {
            caller,
            queue: "q".into(),
            priority: 0,
            skills: vec![],
            max_wait: None,
            number: String::new(),
        },
    );
}

#[divan::bench(
    args = ["longest-idle", "round-robin", "fewest-calls", "least-talk-time", "linear", "random", "weighted-random", "skills", "ring-all"],
    sample_count = 10,
    sample_size = 20
)]
fn routed_call(bencher: divan::Bencher, name: &str) {
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
    for a in &ids {
        acd.handle(
            now,
            Event::Login {
                agent: a.clone(),
                queues: vec![],
            },
        );
        acd.handle(now, Event::Pause(a.clone(), "bench".into()));
    }
    let mut next_caller = 0u64;
    for _ in 0..WAITING {
        next_caller += 1;
        join(&mut acd, now, next_caller);
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
        join(&mut acd, now, next_caller);
        while acd.poll_log().is_some() {}
    });
}
