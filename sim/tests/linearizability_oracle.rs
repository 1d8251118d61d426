//! The checker against a brute-force oracle written straight from the
//! definition, on thousands of small random histories (linearizable or not).
//!
//! The oracle knows nothing of the checker's reductions (per-key
//! partitioning, memoization, greedy reads, lazy unknown-outcome operations,
//! value classes, pruning): it tries every order of every operation over all
//! keys at once, placing each unknown-outcome write or cas anywhere after its
//! invocation or nowhere. Any disagreement is a checker bug.

use std::collections::BTreeMap;

use consensus_sim::history::{Event, EventType, Op};
use consensus_sim::linearizability::{check, CheckResult};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
struct OracleOp {
    key: String,
    op: Op,
    call: usize,
    /// `None`: unknown outcome (may take effect after `call`, or never).
    ret: Option<usize>,
    /// For completed ops: `true` if `ok`, `false` for a failed cas.
    ok: bool,
}

/// Real-time positions: by `time_ns` when every event has one (ties keep
/// line order), else line order.
fn ranks(events: &[Event]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    if events.iter().all(|e| e.time_ns.is_some()) {
        order.sort_by_key(|&i| events[i].time_ns);
    }
    let mut rank = vec![0; events.len()];
    for (position, i) in order.into_iter().enumerate() {
        rank[i] = position;
    }
    rank
}

fn oracle_ops(events: &[Event]) -> Vec<OracleOp> {
    let rank = ranks(events);
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut ops = Vec::new();
    let mut pairs: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, pairs.len());
            pairs.push((i, None));
        } else {
            let p = open.remove(&e.process).expect("well-formed");
            pairs[p].1 = Some(i);
        }
    }
    for (inv, done) in pairs {
        let invoked = &events[inv];
        let (kind, op) = match done {
            Some(d) => (events[d].kind, events[d].op),
            None => (EventType::Info, invoked.op),
        };
        let base = OracleOp {
            key: invoked.key.clone(),
            op,
            call: rank[inv],
            ret: done.map(|d| rank[d]),
            ok: kind == EventType::Ok,
        };
        match (op, kind) {
            // Definitely no effect; or no effect and nothing learned.
            (Op::Read(_), EventType::Fail | EventType::Info) | (Op::Write(_), EventType::Fail) => {}
            (_, EventType::Info) => ops.push(OracleOp { ret: None, ..base }),
            _ => ops.push(base),
        }
    }
    ops
}

fn search(ops: &[OracleOp], placed: &mut [bool], registers: &mut BTreeMap<String, i64>) -> bool {
    let all_completed_placed = ops
        .iter()
        .zip(placed.iter())
        .all(|(o, &p)| p || o.ret.is_none());
    if all_completed_placed {
        return true;
    }
    for i in 0..ops.len() {
        if placed[i] {
            continue;
        }
        let o = &ops[i];
        // Every unplaced completed op that returned before o's invocation
        // would have to come after o: not allowed.
        let blocked = ops
            .iter()
            .zip(placed.iter())
            .any(|(p, &done)| !done && p.ret.is_some_and(|r| r < o.call));
        if blocked {
            continue;
        }
        let current = registers.get(&o.key).copied();
        let next = match (o.op, o.ret.is_some(), o.ok) {
            (Op::Read(v), true, _) => (v == current).then_some(current),
            (Op::Write(v), _, _) => Some(Some(v)),
            (Op::Cas(e, n), true, true) => (current == Some(e)).then_some(Some(n)),
            (Op::Cas(e, _), true, false) => (current != Some(e)).then_some(current),
            // Unknown outcome: applies if the comparison holds.
            (Op::Cas(e, n), false, _) => Some(if current == Some(e) { Some(n) } else { current }),
            (Op::Read(_), false, _) => unreachable!("dropped"),
        };
        let Some(next) = next else { continue };
        placed[i] = true;
        let saved = current;
        set(registers, &o.key, next);
        if search(ops, placed, registers) {
            return true;
        }
        set(registers, &o.key, saved);
        placed[i] = false;
    }
    false
}

fn set(registers: &mut BTreeMap<String, i64>, key: &str, value: Option<i64>) {
    match value {
        Some(v) => {
            registers.insert(key.to_string(), v);
        }
        None => {
            registers.remove(key);
        }
    }
}

fn oracle(events: &[Event]) -> bool {
    let ops = oracle_ops(events);
    let mut placed = vec![false; ops.len()];
    search(&ops, &mut placed, &mut BTreeMap::new())
}

/// A small random history, not necessarily linearizable: random overlaps,
/// random results drawn from a tiny domain so that both verdicts are common.
fn random_history(rng: &mut ChaCha8Rng) -> Vec<Event> {
    let processes = rng.random_range(1..=4u64);
    let target_ops = rng.random_range(1..=9);
    let keys = if rng.random_bool(0.3) { 2 } else { 1 };
    let timestamps = rng.random_bool(0.3);
    // Some histories have many operations of unknown outcome.
    let info_weight = if rng.random_bool(0.3) { 12 } else { 3 };
    let mut ids: Vec<u64> = (0..processes).collect();
    let mut next_id = processes;
    let mut outstanding: Vec<Option<(String, Op)>> = vec![None; processes as usize];
    let mut events = Vec::new();
    let mut invoked = 0;
    let value = |rng: &mut ChaCha8Rng| rng.random_range(0..3i64);
    let mut time = 0u64;
    let mut last_written: BTreeMap<String, i64> = BTreeMap::new();
    for _ in 0..64 {
        let s = rng.random_range(0..processes as usize);
        // Ties are allowed: time only sometimes advances.
        if rng.random_bool(0.7) {
            time += 1;
        }
        let stamp = |e: Event| if timestamps { e.at(time) } else { e };
        match outstanding[s].take() {
            None if invoked < target_ops => {
                let key = format!("k{}", rng.random_range(0..keys));
                let op = match rng.random_range(0..3) {
                    0 => Op::Read(None),
                    1 => Op::Write(value(rng)),
                    _ => Op::Cas(value(rng), value(rng)),
                };
                invoked += 1;
                if let Op::Write(v) | Op::Cas(_, v) = op {
                    last_written.insert(key.clone(), v);
                }
                events.push(stamp(Event::invoke(ids[s], key.clone(), op)));
                outstanding[s] = Some((key, op));
            }
            None => {}
            Some((key, op)) => {
                let kind = match rng.random_range(0..17 + info_weight) {
                    0..=13 => EventType::Ok,
                    14..=16 => EventType::Fail,
                    _ => EventType::Info,
                };
                let op = match (op, kind) {
                    // Often the last value written to the key (plausible),
                    // otherwise anything.
                    (Op::Read(_), EventType::Ok) => match rng.random_range(0..6) {
                        0 => Op::Read(None),
                        1..=3 => Op::Read(Some(rng.random_range(0..3))),
                        _ => Op::Read(last_written.get(&key).copied()),
                    },
                    _ => op,
                };
                events.push(stamp(Event::new(ids[s], kind, key, op)));
                if kind == EventType::Info {
                    ids[s] = next_id;
                    next_id += 1;
                }
            }
        }
        if invoked == target_ops && outstanding.iter().all(Option::is_none) {
            break;
        }
    }
    events
}

#[test]
fn checker_agrees_with_brute_force_on_small_random_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x11AE_A12B);
    let (mut yes, mut no) = (0, 0);
    for n in 0..20_000 {
        let events = random_history(&mut rng);
        let expected = oracle(&events);
        let got = check(&events);
        match (&got, expected) {
            (CheckResult::Linearizable, true) => yes += 1,
            (CheckResult::NotLinearizable { .. }, false) => no += 1,
            _ => {
                let text: Vec<String> = events.iter().map(Event::to_json).collect();
                panic!(
                    "history {n}: oracle says linearizable={expected}, checker says {got}\n{}",
                    text.join("\n")
                );
            }
        }
    }
    // Both verdicts must be well represented for the comparison to mean much.
    println!("linearizable {yes}, not linearizable {no}");
    assert!(yes > 3_000 && no > 3_000, "linearizable {yes}, not {no}");
}
