//! The linearizability checker: hand-made histories with known answers,
//! random histories of an atomic register (must pass) and provably illegal
//! mutations of them (must fail), and a 100 000-event history.

use std::time::Instant;

use consensus_sim::history::{Event, EventType, Op};
use consensus_sim::linearizability::generate::{atomic_register_history, RegisterWorkload, Values};
use consensus_sim::linearizability::{check, check_report, check_with, CheckOptions, CheckResult};

/// A history from compact lines, one event each, in real-time order:
/// `"<process> <type> <f> [values...] [@key]"`, e.g. `"1 invoke write 5"`,
/// `"2 ok read null"`, `"3 fail cas 1 2 @y"`. The key defaults to `x`.
fn history(lines: &[&str]) -> Vec<Event> {
    lines
        .iter()
        .map(|line| {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            let key = match words.last() {
                Some(w) if w.starts_with('@') => {
                    let key = w[1..].to_string();
                    words.pop();
                    key
                }
                _ => "x".to_string(),
            };
            let process: u64 = words[0].parse().expect("process");
            let kind = match words[1] {
                "invoke" => EventType::Invoke,
                "ok" => EventType::Ok,
                "fail" => EventType::Fail,
                "info" => EventType::Info,
                other => panic!("type {other}"),
            };
            let int = |i: usize| words[i].parse::<i64>().expect("integer");
            let op = match words[2] {
                "read" if words.len() == 3 || words[3] == "null" => Op::Read(None),
                "read" => Op::Read(Some(int(3))),
                "write" => Op::Write(int(3)),
                "cas" => Op::Cas(int(3), int(4)),
                other => panic!("f {other}"),
            };
            Event::new(process, kind, key, op)
        })
        .collect()
}

#[track_caller]
fn assert_linearizable(lines: &[&str]) {
    let result = check(&history(lines));
    assert_eq!(result, CheckResult::Linearizable, "{result}");
}

#[track_caller]
fn assert_violation(lines: &[&str]) -> String {
    match check(&history(lines)) {
        CheckResult::NotLinearizable {
            explanation,
            events,
            ..
        } => {
            assert!(!events.is_empty(), "names events");
            explanation
        }
        other => panic!("expected a violation, got {other}"),
    }
}

// ---------------------------------------------------------------- basics

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(check(&[]), CheckResult::Linearizable);
}

#[test]
fn sequential_register_semantics() {
    assert_linearizable(&[
        "1 invoke read",
        "1 ok read null",
        "1 invoke write 1",
        "1 ok write 1",
        "2 invoke read",
        "2 ok read 1",
        "2 invoke cas 1 2",
        "2 ok cas 1 2",
        "3 invoke cas 1 3",
        "3 fail cas 1 3",
        "3 invoke read",
        "3 ok read 2",
    ]);
}

#[test]
fn initial_value_is_null_not_zero() {
    assert_violation(&["1 invoke read", "1 ok read 0"]);
    assert_violation(&["1 invoke cas 0 1", "1 ok cas 0 1"]);
}

#[test]
fn concurrent_ops_may_be_ordered_either_way() {
    // The read overlaps the write: it may see the old or the new value.
    for seen in ["null", "1"] {
        let read = format!("2 ok read {seen}");
        assert_linearizable(&["1 invoke write 1", "2 invoke read", &read, "1 ok write 1"]);
    }
    // Two overlapping writes: later reads may see either, but then stick to it.
    for winner in ["1", "2"] {
        let read = format!("3 ok read {winner}");
        assert_linearizable(&[
            "1 invoke write 1",
            "2 invoke write 2",
            "1 ok write 1",
            "2 ok write 2",
            "3 invoke read",
            &read,
            "3 invoke read",
            &read,
        ]);
    }
    // Two concurrent reads seeing the old and new value in "reverse" order is
    // fine as long as both overlap the write.
    assert_linearizable(&[
        "1 invoke write 1",
        "2 invoke read",
        "3 invoke read",
        "3 ok read 1",
        "2 ok read null",
        "1 ok write 1",
    ]);
}

// ----------------------------------------------------------- violations

#[test]
fn stale_read_is_a_violation() {
    let explanation = assert_violation(&[
        "1 invoke write 1",
        "1 ok write 1",
        "1 invoke write 2",
        "1 ok write 2",
        "2 invoke read",
        "2 ok read 1",
    ]);
    assert!(explanation.contains("read -> 1"), "{explanation}");
    assert!(explanation.contains("events 5..6"), "{explanation}");
    assert!(explanation.contains("holds 2"), "{explanation}");
}

#[test]
fn lost_acknowledged_write_is_a_violation() {
    // The acknowledged write is not visible afterwards.
    assert_violation(&[
        "1 invoke write 1",
        "1 ok write 1",
        "2 invoke read",
        "2 ok read null",
    ]);
    // Two concurrent writes, both acknowledged: the register may end on
    // either, but it cannot flip back to the one that lost.
    assert_violation(&[
        "1 invoke write 1",
        "2 invoke write 2",
        "1 ok write 1",
        "2 ok write 2",
        "3 invoke read",
        "3 ok read 1",
        "3 invoke read",
        "3 ok read 2",
    ]);
    // A concurrent overwrite explains one missing read, not the write
    // vanishing for good: after the overwrite completed, 1 cannot reappear.
    assert_violation(&[
        "1 invoke write 1",
        "1 ok write 1",
        "2 invoke write 2",
        "3 invoke read",
        "3 ok read 2",
        "2 ok write 2",
        "3 invoke read",
        "3 ok read 1",
    ]);
}

#[test]
fn two_cas_from_the_same_value_cannot_both_succeed() {
    let explanation = assert_violation(&[
        "1 invoke write 0",
        "1 ok write 0",
        "2 invoke cas 0 1",
        "3 invoke cas 0 2",
        "2 ok cas 0 1",
        "3 ok cas 0 2",
    ]);
    assert!(explanation.contains("cas [0, "), "{explanation}");
    // One succeeding and the other failing is fine, in either order.
    for (ok, fail) in [
        ("2 ok cas 0 1", "3 fail cas 0 2"),
        ("3 ok cas 0 2", "2 fail cas 0 1"),
    ] {
        assert_linearizable(&[
            "1 invoke write 0",
            "1 ok write 0",
            "2 invoke cas 0 1",
            "3 invoke cas 0 2",
            ok,
            fail,
        ]);
    }
}

#[test]
fn failed_cas_must_have_seen_another_value() {
    // Nothing could have changed the 0 the cas compared against.
    assert_violation(&[
        "1 invoke write 0",
        "1 ok write 0",
        "2 invoke cas 0 1",
        "2 fail cas 0 1",
    ]);
    // A concurrent write explains the failure...
    assert_linearizable(&[
        "1 invoke write 0",
        "1 ok write 0",
        "3 invoke write 5",
        "2 invoke cas 0 1",
        "2 fail cas 0 1",
        "3 ok write 5",
    ]);
    // ...and so does a write of unknown outcome invoked before it.
    assert_linearizable(&[
        "1 invoke write 0",
        "1 ok write 0",
        "3 invoke write 5",
        "3 info write 5",
        "2 invoke cas 0 1",
        "2 fail cas 0 1",
        "2 invoke read",
        "2 ok read 5",
    ]);
    // But not one invoked only after the cas failed.
    assert_violation(&[
        "1 invoke write 0",
        "1 ok write 0",
        "2 invoke cas 0 1",
        "2 fail cas 0 1",
        "3 invoke write 5",
        "3 info write 5",
    ]);
}

#[test]
fn read_of_a_value_never_written_is_a_violation() {
    let explanation = assert_violation(&[
        "1 invoke write 1",
        "1 ok write 1",
        "2 invoke read",
        "2 ok read 42",
    ]);
    assert!(explanation.contains("ever wrote it"), "{explanation}");
    // A failed write does not count as written.
    assert_violation(&[
        "1 invoke write 42",
        "1 fail write 42",
        "2 invoke read",
        "2 ok read 42",
    ]);
}

#[test]
fn read_from_the_future_is_a_violation() {
    assert_violation(&[
        "2 invoke read",
        "2 ok read 1",
        "1 invoke write 1",
        "1 ok write 1",
    ]);
}

#[test]
fn failed_reads_and_writes_are_ignored() {
    assert_linearizable(&[
        "1 invoke write 1",
        "1 ok write 1",
        "2 invoke write 2",
        "2 fail write 2",
        "3 invoke read",
        "3 fail read",
        "3 invoke read",
        "3 ok read 1",
    ]);
}

// ------------------------------------------------- unknown outcome (info)

#[test]
fn info_write_may_appear_late() {
    assert_linearizable(&[
        "1 invoke write 7",
        "1 info write 7",
        "2 invoke write 1",
        "2 ok write 1",
        "3 invoke read",
        "3 ok read 1",
        "2 invoke write 2",
        "2 ok write 2",
        "3 invoke read",
        "3 ok read 7",
        "3 invoke read",
        "3 ok read 7",
    ]);
}

#[test]
fn info_write_may_never_take_effect() {
    assert_linearizable(&[
        "1 invoke write 7",
        "1 info write 7",
        "2 invoke write 1",
        "2 ok write 1",
        "3 invoke read",
        "3 ok read 1",
        "3 invoke read",
        "3 ok read 1",
    ]);
}

#[test]
fn info_write_takes_effect_at_most_once() {
    // Seen, overwritten, and seen again: it would have to take effect twice.
    assert_violation(&[
        "1 invoke write 7",
        "1 info write 7",
        "3 invoke read",
        "3 ok read 7",
        "2 invoke write 2",
        "2 ok write 2",
        "3 invoke read",
        "3 ok read 7",
    ]);
}

#[test]
fn info_write_cannot_take_effect_before_its_invocation() {
    assert_violation(&[
        "3 invoke read",
        "3 ok read 7",
        "1 invoke write 7",
        "1 info write 7",
    ]);
}

#[test]
fn info_cas_applies_only_from_its_expected_value() {
    assert_linearizable(&[
        "1 invoke write 0",
        "1 ok write 0",
        "2 invoke cas 0 1",
        "2 info cas 0 1",
        "3 invoke read",
        "3 ok read 1",
    ]);
    // The register never held 0 after the cas was invoked.
    assert_violation(&[
        "1 invoke write 5",
        "1 ok write 5",
        "2 invoke cas 0 1",
        "2 info cas 0 1",
        "3 invoke read",
        "3 ok read 1",
    ]);
}

#[test]
fn operations_never_completed_are_of_unknown_outcome() {
    // A crashed run: the write's invocation is the last thing process 1 did.
    assert_linearizable(&[
        "1 invoke write 3",
        "2 invoke read",
        "2 ok read 3",
        "2 invoke read",
        "2 ok read 3",
    ]);
    assert_linearizable(&["1 invoke write 3", "2 invoke read", "2 ok read null"]);
}

#[test]
fn many_info_writes_of_the_same_value_are_handled_once() {
    // 60 pending writes of the same few values, then reads that need them in
    // a particular order; identical pending writes are interchangeable.
    let mut lines: Vec<String> = Vec::new();
    for p in 0..60 {
        lines.push(format!("{} invoke write {}", 100 + p, p % 3));
        lines.push(format!("{} info write {}", 100 + p, p % 3));
    }
    for v in [0, 1, 2, 1, 0, 2, 2, 1] {
        lines.push("1 invoke read".to_string());
        lines.push(format!("1 ok read {v}"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_linearizable(&refs);
    // 60 pending writes, but a value only one of them writes is read twice
    // around a write.
    lines.push("1 invoke write 9".to_string());
    lines.push("1 ok write 9".to_string());
    lines.push("1 invoke read".to_string());
    lines.push("1 ok read 0".to_string());
    lines.push("2 invoke write 77".to_string());
    lines.push("2 info write 77".to_string());
    for _ in 0..2 {
        lines.push("1 invoke read".to_string());
        lines.push("1 ok read 77".to_string());
        lines.push("1 invoke write 9".to_string());
        lines.push("1 ok write 9".to_string());
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_violation(&refs);
}

// ----------------------------------------------------- keys, time, misc

#[test]
fn keys_are_independent_registers() {
    assert_linearizable(&[
        "1 invoke write 1 @a",
        "1 ok write 1 @a",
        "2 invoke read @b",
        "2 ok read null @b",
        "2 invoke read @a",
        "2 ok read 1 @a",
    ]);
    // The violation is reported on its key, whatever the other keys do.
    match check(&history(&[
        "1 invoke write 1 @a",
        "1 ok write 1 @a",
        "2 invoke read @b",
        "2 ok read 1 @b",
        "2 invoke read @c",
        "2 ok read null @c",
    ])) {
        CheckResult::NotLinearizable { key, .. } => assert_eq!(key, "b"),
        other => panic!("expected a violation on b, got {other}"),
    }
}

#[test]
fn time_ns_defines_real_time_when_present() {
    // In line order the read overlaps the write; by the clock the write had
    // completed (t=10) before the read was invoked (t=50): a stale read.
    let mut events = history(&[
        "1 invoke write 1",
        "2 invoke read",
        "1 ok write 1",
        "2 ok read null",
    ]);
    for (e, t) in events.iter_mut().zip([0, 50, 10, 60]) {
        e.time_ns = Some(t);
    }
    assert!(check(&events).is_violation());
    // Without timestamps, line order rules: linearizable.
    for e in &mut events {
        e.time_ns = None;
    }
    assert!(check(&events).is_linearizable());
    // Timestamps on some events only: line order rules too.
    events[0].time_ns = Some(0);
    assert!(check(&events).is_linearizable());
}

#[test]
fn malformed_history_is_reported_as_such() {
    let result = check(&history(&["1 invoke write 1", "1 invoke write 2"]));
    assert!(matches!(result, CheckResult::Malformed(_)), "{result}");
}

#[test]
fn exhausted_budget_is_unknown_not_a_verdict() {
    // Many concurrent writes then a read of the initial value after all of
    // them: a violation that takes many configurations to prove.
    let mut lines: Vec<String> = Vec::new();
    for p in 0..12 {
        lines.push(format!("{p} invoke write {p}"));
    }
    for p in 0..12 {
        lines.push(format!("{p} ok write {p}"));
    }
    lines.push("99 invoke read".to_string());
    lines.push("99 ok read null".to_string());
    let events = history(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let tight = CheckOptions {
        max_states_per_key: 50,
    };
    match check_with(&events, &tight) {
        CheckResult::Unknown { key, reason } => {
            assert_eq!(key, "x");
            assert!(reason.contains("budget of 50 states"), "{reason}");
        }
        other => panic!("expected unknown, got {other}"),
    }
    assert!(check(&events).is_violation());
}

#[test]
fn a_violation_outranks_unknown_on_another_key() {
    let mut lines: Vec<String> = Vec::new();
    for p in 0..10 {
        lines.push(format!("{p} invoke write {p} @a"));
    }
    for p in 0..10 {
        lines.push(format!("{p} ok write {p} @a"));
    }
    lines.push("99 invoke read @a".to_string());
    lines.push("99 ok read null @a".to_string());
    lines.push("50 invoke write 1 @b".to_string());
    lines.push("50 ok write 1 @b".to_string());
    lines.push("51 invoke read @b".to_string());
    lines.push("51 ok read null @b".to_string());
    let events = history(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let tight = CheckOptions {
        max_states_per_key: 20,
    };
    match check_with(&events, &tight) {
        CheckResult::NotLinearizable { key, .. } => assert_eq!(key, "b"),
        other => panic!("expected a violation on b, got {other}"),
    }
}

// ------------------------------------------------ random atomic registers

fn workloads() -> Vec<RegisterWorkload> {
    let base = RegisterWorkload {
        events: 3_000,
        ..RegisterWorkload::default()
    };
    vec![
        base.clone(),
        RegisterWorkload {
            values: Values::Range(4),
            ..base.clone()
        },
        RegisterWorkload {
            keys: 1,
            processes: 8,
            values: Values::Range(3),
            events: 2_000,
            ..base.clone()
        },
        RegisterWorkload {
            keys: 2,
            processes: 12,
            info_probability: 0.15,
            fail_probability: 0.1,
            ..base.clone()
        },
        RegisterWorkload {
            keys: 3,
            processes: 10,
            values: Values::Range(5),
            info_probability: 0.1,
            timestamps: false,
            truncate: true,
            ..base.clone()
        },
        RegisterWorkload {
            mix: (1, 1, 0),
            ..base
        },
    ]
}

#[test]
fn random_atomic_register_histories_are_linearizable() {
    for (w_index, workload) in workloads().into_iter().enumerate() {
        for seed in 0..8 {
            let w = RegisterWorkload {
                seed,
                ..workload.clone()
            };
            let events = atomic_register_history(&w);
            let result = check(&events);
            assert!(
                result.is_linearizable(),
                "workload {w_index} seed {seed}: {result}"
            );
        }
    }
}

/// An operation of a generated history, found by pairing events.
#[derive(Debug, Clone)]
struct Interval {
    key: String,
    invoke: usize,
    complete: Option<usize>,
    kind: EventType,
    op: Op,
}

fn intervals(events: &[Event]) -> Vec<Interval> {
    let mut open: std::collections::HashMap<u64, usize> = Default::default();
    let mut out: Vec<Interval> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, out.len());
            out.push(Interval {
                key: e.key.clone(),
                invoke: i,
                complete: None,
                kind: EventType::Invoke,
                op: e.op,
            });
        } else {
            let slot = open.remove(&e.process).expect("validated history");
            out[slot].complete = Some(i);
            out[slot].kind = e.kind;
            out[slot].op = e.op;
        }
    }
    out
}

/// The value an operation may have set, if any (whatever its outcome, except
/// a definite failure).
fn sets(iv: &Interval) -> Option<i64> {
    match (iv.op, iv.kind) {
        (_, EventType::Fail) => None,
        (Op::Write(v) | Op::Cas(_, v), _) => Some(v),
        (Op::Read(_), _) => None,
    }
}

/// Mutates one `ok` read so that it returns a value no operation writes.
fn mutate_never_written(events: &mut [Event], pick: usize) -> bool {
    let reads: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].kind == EventType::Ok && matches!(events[i].op, Op::Read(_)))
        .collect();
    if reads.is_empty() {
        return false;
    }
    let i = reads[pick % reads.len()];
    events[i].op = Op::Read(Some(-1_000_000_007));
    true
}

/// Mutates one `ok` read to return the value of a write that was
/// provably overwritten before the read began: `v` is set by exactly one
/// operation `w` (an acknowledged one), another acknowledged write `w2` on
/// the key was invoked after `w` completed and completed before the read was
/// invoked. Then the read must follow `w2`, which follows `w`, and nothing
/// sets `v` again: illegal in every order. Needs unique values.
fn mutate_stale_read(events: &mut [Event], pick: usize) -> bool {
    let ops = intervals(events);
    let mut setters: std::collections::HashMap<(String, i64), Vec<usize>> = Default::default();
    for (n, iv) in ops.iter().enumerate() {
        if let Some(v) = sets(iv) {
            setters.entry((iv.key.clone(), v)).or_default().push(n);
        }
    }
    let acknowledged_setters: Vec<usize> = (0..ops.len())
        .filter(|&n| ops[n].kind == EventType::Ok && sets(&ops[n]).is_some())
        .collect();
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&n| ops[n].kind == EventType::Ok && matches!(ops[n].op, Op::Read(_)))
        .collect();
    for k in 0..reads.len() {
        let r = &ops[reads[(pick + k) % reads.len()]];
        // w2: acknowledged, completed before r was invoked.
        for &w2 in acknowledged_setters.iter().rev() {
            let w2 = &ops[w2];
            if w2.key != r.key || w2.complete.expect("ok") >= r.invoke {
                continue;
            }
            // w: sole setter of its value, acknowledged, completed before w2.
            for &w in &acknowledged_setters {
                let w = &ops[w];
                let v = sets(w).expect("setter");
                if w.key == r.key
                    && w.complete.expect("ok") < w2.invoke
                    && setters[&(w.key.clone(), v)].len() == 1
                    && sets(w2) != Some(v)
                    && r.op != Op::Read(Some(v))
                {
                    let at = r.complete.expect("ok");
                    events[at].op = Op::Read(Some(v));
                    return true;
                }
            }
        }
    }
    false
}

/// Mutates one `ok` read to return a value set only by one operation that
/// was invoked after the read completed: a read from the future.
fn mutate_read_from_future(events: &mut [Event], pick: usize) -> bool {
    let ops = intervals(events);
    let mut setters: std::collections::HashMap<(String, i64), Vec<usize>> = Default::default();
    for (n, iv) in ops.iter().enumerate() {
        if let Some(v) = sets(iv) {
            setters.entry((iv.key.clone(), v)).or_default().push(n);
        }
    }
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&n| ops[n].kind == EventType::Ok && matches!(ops[n].op, Op::Read(_)))
        .collect();
    for k in 0..reads.len() {
        let r = &ops[reads[(pick + k) % reads.len()]];
        let done = r.complete.expect("ok");
        let future = setters
            .iter()
            .find(|((key, _), who)| *key == r.key && who.len() == 1 && ops[who[0]].invoke > done);
        if let Some(((_, v), _)) = future {
            events[done].op = Op::Read(Some(*v));
            return true;
        }
    }
    false
}

/// Changes one event of a history so that it is provably not linearizable;
/// `false` if the history has no place for it.
type Mutation = fn(&mut [Event], usize) -> bool;

#[test]
fn mutated_random_histories_are_not_linearizable() {
    let mutations: [(&str, Mutation); 3] = [
        ("never-written", mutate_never_written),
        ("stale read", mutate_stale_read),
        ("read from the future", mutate_read_from_future),
    ];
    let mut mutated = 0;
    for (w_index, workload) in workloads().into_iter().enumerate() {
        if workload.values != Values::Unique {
            continue;
        }
        for seed in 0..6 {
            let w = RegisterWorkload {
                seed,
                ..workload.clone()
            };
            let original = atomic_register_history(&w);
            for (name, mutate) in mutations {
                let mut events = original.clone();
                assert!(
                    mutate(&mut events, seed as usize * 7919),
                    "workload {w_index} seed {seed}: no place for a {name} mutation"
                );
                assert_ne!(events, original);
                mutated += 1;
                match check(&events) {
                    CheckResult::NotLinearizable { events: named, .. } => {
                        assert!(!named.is_empty());
                    }
                    other => panic!("workload {w_index} seed {seed} {name}: {other}"),
                }
            }
        }
    }
    assert!(mutated >= 40, "{mutated}");
}

#[test]
fn swapping_two_read_results_in_a_sequential_history_is_caught() {
    // One process, no unknown outcomes: the history is sequential, so its
    // only linearization is the order it was recorded in, and two reads that
    // saw different values cannot exchange their results.
    let w = RegisterWorkload {
        keys: 1,
        processes: 1,
        events: 400,
        info_probability: 0.0,
        fail_probability: 0.0,
        ..RegisterWorkload::default()
    };
    let mut events = atomic_register_history(&w);
    assert!(check(&events).is_linearizable());
    let reads: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].kind == EventType::Ok && matches!(events[i].op, Op::Read(_)))
        .collect();
    let (a, b) = reads
        .windows(2)
        .map(|p| (p[0], p[1]))
        .find(|&(a, b)| events[a].op != events[b].op)
        .expect("two reads that saw different values");
    let (ra, rb) = (events[a].op, events[b].op);
    events[a].op = rb;
    events[b].op = ra;
    assert!(check(&events).is_violation());
}

#[test]
fn a_100k_event_history_checks_in_bounded_time() {
    let w = RegisterWorkload {
        seed: 2024,
        events: 100_000,
        keys: 10,
        processes: 16,
        ..RegisterWorkload::default()
    };
    let events = atomic_register_history(&w);
    assert!(events.len() >= 100_000);
    let started = Instant::now();
    let report = check_report(&events, &CheckOptions::default());
    let elapsed = started.elapsed();
    assert_eq!(
        report.result,
        CheckResult::Linearizable,
        "{}",
        report.result
    );
    let states: usize = report.keys.iter().map(|k| k.states).sum();
    println!(
        "100k-event history: {} events, {} keys, {} states, checked in {:?}",
        events.len(),
        report.keys.len(),
        states,
        elapsed
    );
}
