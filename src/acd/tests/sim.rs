//! The ACD under load on a virtual clock, judged two ways: against queueing theory
//! (Erlang C, where its assumptions hold) and, at every step, against a model of the
//! queue's own rules kept by the harness (who is free, who is offerable, who must be
//! offered next). The harness measures every wait itself, so the ACD's statistics are
//! checked too, not trusted.
//!
//! The random stream is ChaCha8 read through `next_u64` only: its output is fixed by
//! the algorithm, not by a `rand` release, so a seed means the same run for good.

use super::super::*;
use super::{acd, join, members, t0};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

const SL_THRESHOLD: Duration = Duration::from_secs(20);

struct Draw(ChaCha8Rng);

impl Draw {
    fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self(ChaCha8Rng::from_seed(s))
    }

    /// Uniform on [0, 1), 53 bits.
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exp(&mut self, mean: Duration) -> Duration {
        Duration::from_secs_f64(-mean.as_secs_f64() * (1.0 - self.unit()).ln())
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi - lo).mul_f64(self.unit())
    }
}

/// What one run offers the queue.
#[derive(Clone)]
struct Load {
    agents: u32,
    occupancy: f64,
    aht: Duration,
    calls: u64,
    /// Callers before this one are not measured (the queue starts empty).
    warm_up: u64,
    /// How long an answering agent's phone rings (zero: at once).
    ring: (Duration, Duration),
    /// Share of offers nobody answers (they ring out at the ring timeout).
    miss: f64,
    wrap_up: Duration,
}

impl Load {
    fn erlang(agents: u32, occupancy: f64, calls: u64) -> Self {
        Self {
            agents,
            occupancy,
            aht: Duration::from_secs(180),
            calls,
            warm_up: calls / 20,
            ring: (Duration::ZERO, Duration::ZERO),
            miss: 0.0,
            wrap_up: Duration::ZERO,
        }
    }
}

/// What the harness measured.
struct Outcome {
    /// Waits of the measured callers, join to answer, by caller.
    waits: Vec<Duration>,
    per_agent: Vec<u64>,
    misses: u64,
}

/// The harness's picture of an agent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Free {
        idle_since: Duration,
    },
    Ringing {
        caller: CallerId,
        until: Duration,
        idle_since: Duration,
    },
    Talking,
    WrapUp {
        until: Duration,
    },
}

struct Waiting {
    joined: Duration,
    ringing: bool,
    retry_at: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Answer(CallerId, String),
    End(String),
}

/// Runs `load` through a longest-idle queue of `load.agents` agents and checks, after
/// every input, that the ACD did what its rules say: each offer goes to the free agent
/// idle longest (ties by name) with the earliest offerable caller, and no offerable
/// caller waits while an agent is free.
fn run(load: &Load, seed: u64) -> Outcome {
    let ids: Vec<String> = (0..load.agents).map(|i| format!("a{i:02}")).collect();
    let mut q = QueueConfig::new("q", Strategy::LongestIdle);
    q.members = members(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    q.sl_threshold = SL_THRESHOLD;
    q.wrap_up = load.wrap_up;
    // Misses are exercised for their retry; auto-pause has its own test and would take
    // agents out of this model for good.
    q.auto_pause_after = 0;
    let (ring_timeout, retry) = (q.ring_timeout, q.retry);
    let mut acd = acd(q);
    let start = t0();
    let mut draw = Draw::new(seed);
    let gap = load.aht.div_f64(load.occupancy * f64::from(load.agents));

    let mut agents: BTreeMap<String, Model> = ids
        .iter()
        .map(|id| {
            let free = Model::Free {
                idle_since: Duration::ZERO,
            };
            (id.clone(), free)
        })
        .collect();
    let mut waiting: BTreeMap<CallerId, Waiting> = BTreeMap::new();
    let mut retrying: Vec<CallerId> = Vec::new();
    let mut due: BinaryHeap<Reverse<(Duration, Due)>> = BinaryHeap::new();
    let mut waits = vec![Duration::ZERO; load.calls as usize];
    let (mut arrived, mut answered, mut misses) = (0u64, 0u64, 0u64);
    let mut next_arrival = draw.exp(gap);

    loop {
        let timer = acd.poll_timeout().map(|t| t - start);
        let event = due.peek().map(|Reverse((t, _))| *t);
        let arrival = (arrived < load.calls).then_some(next_arrival);
        let Some(now) = [timer, event, arrival].into_iter().flatten().min() else {
            break;
        };
        if timer == Some(now) {
            acd.handle_timeout(start + now);
        } else if event == Some(now) {
            let Some(Reverse((_, what))) = due.pop() else {
                unreachable!()
            };
            match what {
                Due::Answer(caller, agent) => {
                    acd.handle(
                        start + now,
                        Event::Answered {
                            caller,
                            agent: agent.clone(),
                        },
                    );
                    let w = waiting.remove(&caller).expect("answered caller waits");
                    waits[caller as usize - 1] = now - w.joined;
                    answered += 1;
                    agents.insert(agent.clone(), Model::Talking);
                    due.push(Reverse((now + draw.exp(load.aht), Due::End(agent))));
                }
                Due::End(agent) => {
                    acd.handle(start + now, Event::CallEnded(agent.clone()));
                    let next = if load.wrap_up.is_zero() {
                        Model::Free { idle_since: now }
                    } else {
                        Model::WrapUp {
                            until: now + load.wrap_up,
                        }
                    };
                    agents.insert(agent, next);
                }
            }
        } else {
            arrived += 1;
            join(&mut acd, start + now, arrived, 0);
            waiting.insert(
                arrived,
                Waiting {
                    joined: now,
                    ringing: false,
                    retry_at: None,
                },
            );
            next_arrival = now + draw.exp(gap);
        }

        // The model's own clock: wrap-ups end, unanswered offers ring out, retries end.
        for (_, m) in agents.iter_mut() {
            match *m {
                Model::WrapUp { until } if until <= now => *m = Model::Free { idle_since: until },
                Model::Ringing {
                    caller,
                    until,
                    idle_since,
                } if until <= now => {
                    *m = Model::Free { idle_since };
                    let w = waiting.get_mut(&caller).expect("rung caller waits");
                    w.ringing = false;
                    w.retry_at = Some(until + retry);
                    retrying.push(caller);
                    misses += 1;
                }
                _ => {}
            }
        }
        retrying.retain(|caller| {
            let w = waiting.get_mut(caller).expect("retrying caller waits");
            let over = w.retry_at.is_some_and(|r| r <= now);
            if over {
                w.retry_at = None;
            }
            !over
        });

        while let Some(c) = acd.poll_command() {
            match c {
                Command::Offer { caller, agent } => {
                    let longest_idle = agents
                        .iter()
                        .filter_map(|(id, m)| match m {
                            Model::Free { idle_since } => Some((*idle_since, id)),
                            _ => None,
                        })
                        .min()
                        .map(|(_, id)| id.clone());
                    assert_eq!(
                        longest_idle.as_ref(),
                        Some(&agent),
                        "at {now:?} the offer of {caller} must go to the agent idle longest"
                    );
                    let first = waiting
                        .iter()
                        .find(|(_, w)| !w.ringing && w.retry_at.is_none())
                        .map(|(c, _)| *c);
                    assert_eq!(
                        first,
                        Some(caller),
                        "at {now:?} the earliest offerable caller goes first"
                    );
                    let Some(Model::Free { idle_since }) = agents.get(&agent).copied() else {
                        unreachable!()
                    };
                    waiting.get_mut(&caller).unwrap().ringing = true;
                    agents.insert(
                        agent.clone(),
                        Model::Ringing {
                            caller,
                            until: now + ring_timeout,
                            idle_since,
                        },
                    );
                    if draw.unit() >= load.miss {
                        let ring = draw.between(load.ring.0, load.ring.1);
                        due.push(Reverse((now + ring, Due::Answer(caller, agent))));
                    }
                }
                Command::Withdraw { caller, agent } => {
                    assert!(
                        matches!(agents.get(&agent), Some(Model::Free { .. })),
                        "at {now:?} {caller} is withdrawn from {agent} only when it rang out"
                    );
                }
                other => panic!("at {now:?} unexpected {other:?}"),
            }
        }
        while acd.poll_log().is_some() {}

        let agent_free = agents.values().any(|m| matches!(m, Model::Free { .. }));
        let caller_ready = waiting.values().any(|w| !w.ringing && w.retry_at.is_none());
        assert!(
            !(agent_free && caller_ready),
            "at {now:?} a caller waits while an agent is free"
        );
    }

    let st = acd.stats("q").unwrap();
    assert_eq!((arrived, answered), (load.calls, load.calls));
    assert_eq!(st.answered, load.calls, "the ACD counts every answer");
    assert_eq!(
        st.answered_wait,
        waits.iter().sum::<Duration>(),
        "the ACD's total wait is the sum of the waits measured here"
    );
    let in_sl = waits.iter().filter(|w| **w <= SL_THRESHOLD).count() as u64;
    assert_eq!(st.answered_in_sl, in_sl, "the ACD's service level counts");
    Outcome {
        waits: waits.split_off(load.warm_up as usize),
        per_agent: ids.iter().map(|id| acd.answered_by(id, "q")).collect(),
        misses,
    }
}

/// Erlang C: the probability that a caller waits, with `n` agents and `a` Erlangs.
fn erlang_c(n: u32, a: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..n {
        term *= a / f64::from(k);
        sum += term;
    }
    let n = f64::from(n);
    let top = term * a / n * (n / (n - a));
    top / (sum + top)
}

/// Mean and 99 % confidence half-width (Student's t) of 20 batch means.
fn mean_ci99(xs: &[f64]) -> (f64, f64) {
    // t(0.995, 19).
    const T: f64 = 2.861;
    assert_eq!(xs.len(), SEEDS * BATCHES);
    let k = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / k;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0);
    (mean, T * (var / k).sqrt())
}

const SEEDS: usize = 4;
const BATCHES: usize = 5;

#[test]
fn service_level_and_asa_match_erlang_c_from_70_to_95_percent_occupancy() {
    let (n, threshold) = (10u32, SL_THRESHOLD.as_secs_f64());
    for (occupancy, calls, asa_precision) in [
        (0.70, 150_000, 0.10),
        (0.80, 200_000, 0.09),
        (0.90, 400_000, 0.06),
        (0.95, 750_000, 0.09),
    ] {
        let load = Load::erlang(n, occupancy, calls);
        let aht = load.aht.as_secs_f64();
        let a = occupancy * f64::from(n);
        let c = erlang_c(n, a);
        let rate = (f64::from(n) - a) / aht;
        let sl_want = 1.0 - c * (-rate * threshold).exp();
        let asa_want = c / rate;
        // Batch means: each seed's measured callers, in arrival order, cut in batches
        // long enough (thousands of calls) to be nearly independent of each other.
        let (mut sls, mut asas) = (Vec::new(), Vec::new());
        for seed in 1..=SEEDS as u64 {
            let out = run(&load, seed);
            for batch in out.waits.chunks(out.waits.len().div_ceil(BATCHES)) {
                let k = batch.len() as f64;
                let in_sl = batch.iter().filter(|w| w.as_secs_f64() <= threshold);
                sls.push(in_sl.count() as f64 / k);
                asas.push(batch.iter().sum::<Duration>().as_secs_f64() / k);
            }
        }
        let (sl, sl_ci) = mean_ci99(&sls);
        let (asa, asa_ci) = mean_ci99(&asas);
        eprintln!(
            "occupancy {occupancy}: SL {sl:.4} ± {sl_ci:.4} (Erlang C {sl_want:.4}), \
             ASA {asa:.2} ± {asa_ci:.2} s (Erlang C {asa_want:.2} s)"
        );
        // The batches must be precise enough to mean something, and the formula must
        // sit inside their 99 % interval.
        assert!(sl_ci <= 0.012, "occupancy {occupancy}: SL ± {sl_ci:.4}");
        assert!(
            asa_ci <= asa_precision * asa_want,
            "occupancy {occupancy}: ASA ± {asa_ci:.2} s"
        );
        assert!(
            (sl - sl_want).abs() <= sl_ci,
            "occupancy {occupancy}: SL {sl:.4} ± {sl_ci:.4}, Erlang C {sl_want:.4}"
        );
        assert!(
            (asa - asa_want).abs() <= asa_ci,
            "occupancy {occupancy}: ASA {asa:.2} ± {asa_ci:.2} s, Erlang C {asa_want:.2} s"
        );
    }
}

#[test]
fn longest_idle_spreads_calls_evenly_over_equal_agents() {
    let out = run(&Load::erlang(10, 0.85, 20_000), 9);
    let per_agent = out.per_agent;
    let mean = per_agent.iter().sum::<u64>() as f64 / per_agent.len() as f64;
    for n in &per_agent {
        assert!(
            (*n as f64 - mean).abs() <= 0.05 * mean,
            "calls per agent {per_agent:?}, mean {mean}"
        );
    }
}

/// Phones that ring a few seconds, offers nobody answers, wrap-up after each call:
/// outside Erlang C's assumptions, so judged by the model alone, at every step.
#[test]
fn ring_time_misses_and_wrap_up_keep_the_offer_rules_under_load() {
    let load = Load {
        agents: 8,
        // Talk alone; ringing, misses and wrap-up bring the agents' busy share to 0.82.
        occupancy: 0.70,
        aht: Duration::from_secs(120),
        calls: 20_000,
        warm_up: 0,
        ring: (Duration::from_secs(1), Duration::from_secs(8)),
        miss: 0.05,
        wrap_up: Duration::from_secs(15),
    };
    for seed in 1..=3 {
        let out = run(&load, seed);
        // About one offer in twenty rang out, and each such caller was offered again.
        let offers = load.calls + out.misses;
        let share = out.misses as f64 / offers as f64;
        assert!(
            (0.04..0.06).contains(&share),
            "seed {seed}: {} misses in {offers} offers",
            out.misses
        );
        assert_eq!(out.per_agent.iter().sum::<u64>(), load.calls);
    }
}
