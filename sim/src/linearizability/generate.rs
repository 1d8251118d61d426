//! Synthetic histories of a correct (atomic) register, to test and
//! benchmark the checker.
//!
//! [`atomic_register_history`] simulates client processes against one atomic
//! register per key: each operation is invoked, takes effect atomically at
//! one instant strictly inside its interval (or, when its fate says so,
//! never), and completes later; other processes' events interleave freely, so
//! intervals overlap. Every history it produces is linearizable by
//! construction. Everything derives from the seed (ChaCha8), so a seed
//! reproduces the same history on any machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{Event, EventType, Op, ProcessId};

/// Which values writes and cas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Every write and every cas `new` is a fresh value (1, 2, 3, ...): a
    /// read identifies the write it saw.
    Unique,
    /// Values drawn from `0..n`: reads are ambiguous, which is harder for a
    /// checker.
    Range(i64),
}

/// Parameters of [`atomic_register_history`].
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterWorkload {
    /// Seed of everything.
    pub seed: u64,
    /// Stop invoking new operations once this many events were emitted (the
    /// history then lets outstanding operations complete).
    pub events: usize,
    /// Number of keys (`k0`, `k1`, ...).
    pub keys: usize,
    /// Number of concurrent client processes.
    pub processes: usize,
    /// Value choice.
    pub values: Values,
    /// Relative weights of read, write and cas.
    pub mix: (u32, u32, u32),
    /// Probability that an operation's completion is `info` (it took effect
    /// or not, at random); the process is then replaced by a fresh one.
    pub info_probability: f64,
    /// Probability that a read or write is rejected (`fail`, no effect).
    pub fail_probability: f64,
    /// Stamp events with `time_ns`.
    pub timestamps: bool,
    /// End abruptly, leaving outstanding operations without completion (as
    /// a crashed run would).
    pub truncate: bool,
}

impl Default for RegisterWorkload {
    /// 10 000 events, 10 keys, 16 processes, unique values, 2% info, 1% fail,
    /// timestamps, reads:writes:cas = 4:3:3.
    fn default() -> Self {
        RegisterWorkload {
            seed: 0,
            events: 10_000,
            keys: 10,
            processes: 16,
            values: Values::Unique,
            mix: (4, 3, 3),
            info_probability: 0.02,
            fail_probability: 0.01,
            timestamps: true,
            truncate: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    InfoApplied,
    InfoLost,
}

#[derive(Debug, Clone)]
enum Slot {
    Idle,
    Invoked {
        key: usize,
        op: Op,
        fate: Fate,
    },
    Done {
        key: usize,
        completion: EventType,
        result: Op,
    },
}

/// Generates a linearizable history (see the module docs).
pub fn atomic_register_history(w: &RegisterWorkload) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed);
    let keys = w.keys.max(1);
    let processes = w.processes.max(1);
    let mut registers: Vec<Option<i64>> = vec![None; keys];
    let mut slots = vec![Slot::Idle; processes];
    let mut process_of: Vec<ProcessId> = (0..processes as u64).collect();
    let mut next_process = processes as u64;
    let mut next_value: i64 = 1;
    let mut events = Vec::with_capacity(w.events + 2 * processes);
    let (reads, writes, cas) = w.mix;
    let total_weight = (reads + writes + cas).max(1);
    let mut tick: u64 = 0;
    // Each tick advances one slot; the bound only guards against a zero-op
    // configuration looping forever.
    let tick_limit = 16 * (w.events as u64 + processes as u64) + 1_000;
    while tick < tick_limit {
        tick += 1;
        let invoking = events.len() < w.events;
        if !invoking && (w.truncate || slots.iter().all(|s| matches!(s, Slot::Idle))) {
            break;
        }
        let s = rng.random_range(0..processes);
        let time = tick * 100;
        let stamp = |e: Event| if w.timestamps { e.at(time) } else { e };
        let process = process_of[s];
        match slots[s].clone() {
            Slot::Idle => {
                if !invoking {
                    continue;
                }
                let key = rng.random_range(0..keys);
                let pick = rng.random_range(0..total_weight);
                let fresh = |rng: &mut ChaCha8Rng, next_value: &mut i64| match w.values {
                    Values::Unique => {
                        *next_value += 1;
                        *next_value - 1
                    }
                    Values::Range(n) => rng.random_range(0..n.max(1)),
                };
                let op = if pick < reads {
                    Op::Read(None)
                } else if pick < reads + writes {
                    Op::Write(fresh(&mut rng, &mut next_value))
                } else {
                    let expected = match (registers[key], rng.random_bool(0.5)) {
                        (Some(current), true) => current,
                        _ => match w.values {
                            Values::Unique => rng.random_range(1..next_value.max(2)),
                            Values::Range(n) => rng.random_range(0..n.max(1)),
                        },
                    };
                    Op::Cas(expected, fresh(&mut rng, &mut next_value))
                };
                let fate = if rng.random_bool(w.info_probability) {
                    if rng.random_bool(0.5) {
                        Fate::InfoApplied
                    } else {
                        Fate::InfoLost
                    }
                } else if !matches!(op, Op::Cas(..)) && rng.random_bool(w.fail_probability) {
                    Fate::Fail
                } else {
                    Fate::Ok
                };
                events.push(stamp(Event::invoke(process, format!("k{key}"), op)));
                slots[s] = Slot::Invoked { key, op, fate };
            }
            Slot::Invoked { key, op, fate } => {
                // The linearization point (or the moment it is lost).
                let applies = matches!(fate, Fate::Ok | Fate::InfoApplied);
                let register = &mut registers[key];
                let (completion, result) = match op {
                    Op::Read(_) => (EventType::Ok, Op::Read(*register)),
                    Op::Write(v) => {
                        if applies {
                            *register = Some(v);
                        }
                        (EventType::Ok, op)
                    }
                    Op::Cas(e, n) => {
                        if *register == Some(e) {
                            if applies {
                                *register = Some(n);
                            }
                            (EventType::Ok, op)
                        } else {
                            (EventType::Fail, op)
                        }
                    }
                };
                let completion = match fate {
                    Fate::Ok => completion,
                    Fate::Fail => EventType::Fail,
                    Fate::InfoApplied | Fate::InfoLost => EventType::Info,
                };
                let result = match (op, completion) {
                    (Op::Read(_), EventType::Ok) => result,
                    _ => op,
                };
                slots[s] = Slot::Done {
                    key,
                    completion,
                    result,
                };
            }
            Slot::Done {
                key,
                completion,
                result,
            } => {
                events.push(stamp(Event::new(
                    process,
                    completion,
                    format!("k{key}"),
                    result,
                )));
                if completion == EventType::Info {
                    process_of[s] = next_process;
                    next_process += 1;
                }
                slots[s] = Slot::Idle;
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::validate;

    #[test]
    fn generated_histories_are_well_formed_and_reproducible() {
        for truncate in [false, true] {
            let w = RegisterWorkload {
                seed: 7,
                events: 2_000,
                truncate,
                info_probability: 0.1,
                fail_probability: 0.1,
                ..RegisterWorkload::default()
            };
            let a = atomic_register_history(&w);
            assert!(a.len() >= 2_000, "{}", a.len());
            validate(&a).expect("well-formed");
            assert_eq!(a, atomic_register_history(&w));
            for kind in [
                EventType::Invoke,
                EventType::Ok,
                EventType::Fail,
                EventType::Info,
            ] {
                assert!(a.iter().any(|e| e.kind == kind), "{kind} present");
            }
        }
    }
}
