//! Throughput of the linearizability checker on generated histories.
//!
//! `cargo bench -p consensus-sim --bench linearizability`
//!
//! * `linearizable/*`: histories of an atomic register (the common case:
//!   the checker must prove them correct), 10 keys, 16 processes, 2% `info`,
//!   1% `fail`, with unique values (reads identify writes) and with values
//!   from `0..5` (ambiguous reads);
//! * `violation/*`: the same histories with one read changed to a stale
//!   value, so the search must exhaust the configurations before it.

use std::hint::black_box;

use consensus_sim::history::{Event, EventType, Op};
use consensus_sim::linearizability::generate::{atomic_register_history, RegisterWorkload, Values};
use consensus_sim::linearizability::{check, CheckResult};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn workload(events: usize, values: Values) -> Vec<Event> {
    atomic_register_history(&RegisterWorkload {
        seed: 42,
        events,
        keys: 10,
        processes: 16,
        values,
        ..RegisterWorkload::default()
    })
}

/// Makes the last `ok` read of key `k0` return the value of the first
/// acknowledged write of `k0`, which (with unique values and a later
/// acknowledged write completed before that read) is a stale read.
fn with_stale_read(mut events: Vec<Event>) -> Vec<Event> {
    let first_write = events
        .iter()
        .position(|e| e.key == "k0" && e.kind == EventType::Ok && matches!(e.op, Op::Write(_)))
        .expect("a write");
    let Op::Write(v) = events[first_write].op else {
        unreachable!("matched a write")
    };
    let last_read = events
        .iter()
        .rposition(|e| e.key == "k0" && e.kind == EventType::Ok && matches!(e.op, Op::Read(_)))
        .expect("a read");
    events[last_read].op = Op::Read(Some(v));
    events
}

fn linearizable(c: &mut Criterion) {
    let mut group = c.benchmark_group("linearizable");
    group.sample_size(10);
    for (name, values) in [("unique", Values::Unique), ("range5", Values::Range(5))] {
        for events in [10_000, 100_000] {
            let history = workload(events, values);
            assert_eq!(check(&history), CheckResult::Linearizable);
            group.throughput(Throughput::Elements(history.len() as u64));
            group.bench_with_input(BenchmarkId::new(name, events), &history, |b, h| {
                b.iter(|| check(black_box(h)))
            });
        }
    }
    group.finish();
}

fn violation(c: &mut Criterion) {
    let mut group = c.benchmark_group("violation");
    group.sample_size(10);
    for events in [10_000, 100_000] {
        let history = with_stale_read(workload(events, Values::Unique));
        assert!(check(&history).is_violation());
        group.throughput(Throughput::Elements(history.len() as u64));
        group.bench_with_input(BenchmarkId::new("stale-read", events), &history, |b, h| {
            b.iter(|| check(black_box(h)))
        });
    }
    group.finish();
}

criterion_group!(benches, linearizable, violation);
criterion_main!(benches);
