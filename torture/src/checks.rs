//! What a torture run checks at the end, each as a [`CheckOutcome`]:
//!
//! * [`linearizability`]: the whole history, final reads included, with the
//!   project's checker (`consensus_sim::linearizability`);
//! * [`lost_writes`]: every acknowledged write is present at the end or was
//!   overwritten by a write that could have come after it (a direct,
//!   explainable check, independent of the linearizability search);
//! * [`replica_digests`]: every pair of nodes that reported the state digest
//!   at the same applied index reported the same digest (the same log
//!   prefix was applied), sampled during the run and at the end.
//!
//! The harness adds the operational checks (the cluster commits again after
//! the heal, every node converged, no node exited on its own, the history
//! file was written and reads back) as outcomes of the same type.

use std::collections::BTreeMap;

use consensus::{LogIndex, NodeId};
use consensus_sim::history::{Event, EventType, Op, ProcessId};
use consensus_sim::linearizability::{check_report, CheckOptions, CheckResult};
use serde::Serialize;

/// The verdict of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// Short name (`linearizable`, `no-lost-writes`, ...).
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was checked, or what broke.
    pub detail: String,
}

impl CheckOutcome {
    /// A check that held.
    pub fn pass(name: &str, detail: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            name: name.to_string(),
            passed: true,
            detail: detail.into(),
        }
    }

    /// A check that failed.
    pub fn fail(name: &str, detail: impl Into<String>) -> CheckOutcome {
        CheckOutcome {
            name: name.to_string(),
            passed: false,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.passed { "ok  " } else { "FAIL" };
        write!(f, "[{verdict}] {}: {}", self.name, self.detail)
    }
}

/// Checks the history with the project's linearizability checker.
pub fn linearizability(events: &[Event], options: &CheckOptions) -> CheckOutcome {
    let started = std::time::Instant::now();
    let report = check_report(events, options);
    let states: usize = report.keys.iter().map(|k| k.states).sum();
    let unknown: usize = report.keys.iter().map(|k| k.unknown).sum();
    let elapsed = started.elapsed();
    match report.result {
        CheckResult::Linearizable => CheckOutcome::pass(
            "linearizable",
            format!(
                "{} events on {} keys ({unknown} unknown-outcome operations searched, {states} states, {:.2} s)",
                events.len(),
                report.keys.len(),
                elapsed.as_secs_f64()
            ),
        ),
        other => CheckOutcome::fail("linearizable", other.to_string()),
    }
}

/// One operation: an invocation and its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The process.
    pub process: ProcessId,
    /// The key.
    pub key: String,
    /// The operation (a read's value is the one read).
    pub op: Op,
    /// `Ok`, `Fail` or `Info` (`Info` also for an invocation never
    /// completed).
    pub outcome: EventType,
    /// When it was invoked (`time_ns`, or the event position without one).
    pub invoked: u64,
    /// When it completed; `None` for an unknown outcome.
    pub completed: Option<u64>,
    /// 1-based line of the invocation in the history file.
    pub line: usize,
}

/// Pairs invocations with completions (a well-formed history is assumed;
/// see `consensus_sim::history::validate`).
pub fn operations(events: &[Event]) -> Vec<Operation> {
    let mut open: BTreeMap<ProcessId, Operation> = BTreeMap::new();
    let mut done = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let time = event.time_ns.unwrap_or(index as u64);
        match event.kind {
            EventType::Invoke => {
                let operation = Operation {
                    process: event.process,
                    key: event.key.clone(),
                    op: event.op,
                    outcome: EventType::Info,
                    invoked: time,
                    completed: None,
                    line: index + 1,
                };
                if let Some(previous) = open.insert(event.process, operation) {
                    done.push(previous);
                }
            }
            kind => {
                if let Some(mut operation) = open.remove(&event.process) {
                    operation.outcome = kind;
                    if kind != EventType::Info {
                        operation.completed = Some(time);
                    }
                    if let (Op::Read(_), EventType::Ok) = (operation.op, kind) {
                        operation.op = event.op;
                    }
                    done.push(operation);
                }
            }
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|o| o.line);
    done
}

/// The value an operation writes, if it writes one.
fn written_value(op: &Op) -> Option<i64> {
    match op {
        Op::Write(value) | Op::Cas(_, value) => Some(*value),
        Op::Read(_) => None,
    }
}

/// Every acknowledged write (a `write` or a `cas` that ended `ok`) is
/// either the final value of its key (`finals`: what the final
/// linearizable reads returned) or was overwritten: some operation that
/// writes the final value (ended `ok` or `info`) did not complete before
/// the acknowledged write was invoked, so it may have come after it.
/// Values must be unique per run (the workload makes them so).
pub fn lost_writes(events: &[Event], finals: &BTreeMap<String, Option<i64>>) -> CheckOutcome {
    let operations = operations(events);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in &operations {
        by_key.entry(&operation.key).or_default().push(operation);
    }
    let mut problems = Vec::new();
    let mut acknowledged = 0usize;
    for (key, final_value) in finals {
        let ops = by_key.get(key.as_str()).cloned().unwrap_or_default();
        let acked: Vec<(&Operation, i64)> = ops
            .iter()
            .filter(|o| o.outcome == EventType::Ok)
            .filter_map(|o| written_value(&o.op).map(|v| (*o, v)))
            .collect();
        acknowledged += acked.len();
        let Some(final_value) = final_value else {
            if let Some((op, value)) = acked.last() {
                problems.push(format!(
                    "key {key:?} is absent at the end, but {} writes were acknowledged \
                     (the last: value {value}, line {})",
                    acked.len(),
                    op.line
                ));
            }
            continue;
        };
        let writers: Vec<&&Operation> = ops
            .iter()
            .filter(|o| matches!(o.outcome, EventType::Ok | EventType::Info))
            .filter(|o| written_value(&o.op) == Some(*final_value))
            .collect();
        if writers.is_empty() {
            problems.push(format!(
                "key {key:?} ends with value {final_value}, which no operation that may have \
                 taken effect wrote"
            ));
            continue;
        }
        // The latest completion among the final value's writers (unknown
        // outcome: it may take effect at any later time).
        let latest = writers
            .iter()
            .map(|o| o.completed.unwrap_or(u64::MAX))
            .max()
            .unwrap_or(0);
        for (op, value) in &acked {
            if *value != *final_value && latest < op.invoked {
                problems.push(format!(
                    "key {key:?}: write of {value} (line {}, acknowledged) is lost: the final \
                     value {final_value} was written by an operation that completed before it \
                     was invoked",
                    op.line
                ));
            }
        }
    }
    if problems.is_empty() {
        CheckOutcome::pass(
            "no-lost-writes",
            format!(
                "{acknowledged} acknowledged writes on {} keys are present or overwritten",
                finals.len()
            ),
        )
    } else {
        let shown: Vec<String> = problems.iter().take(10).cloned().collect();
        CheckOutcome::fail(
            "no-lost-writes",
            format!("{} problems; {}", problems.len(), shown.join("; ")),
        )
    }
}

/// The final value of each key whose last operation (by invocation) is a
/// read that succeeded: what a torture run's final reads returned. Used to
/// re-check a saved history.
pub fn final_reads(events: &[Event]) -> BTreeMap<String, Option<i64>> {
    let mut last: BTreeMap<String, Operation> = BTreeMap::new();
    for operation in operations(events) {
        last.insert(operation.key.clone(), operation);
    }
    last.into_iter()
        .filter_map(|(key, operation)| match (operation.op, operation.outcome) {
            (Op::Read(value), EventType::Ok) => Some((key, value)),
            _ => None,
        })
        .collect()
}

/// A state digest a node reported: `crc` of its key-value state after
/// applying the log up to `applied`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DigestSample {
    /// The node.
    pub node: NodeId,
    /// The applied index the digest was taken at.
    pub applied: LogIndex,
    /// CRC32C of the state.
    pub crc: u32,
}

/// Nodes that applied the same index must hold the same state: any two
/// samples at the same applied index must carry the same digest. Passes
/// when nothing could be compared: for a check while the nodes are still
/// converging. The end-of-run verdict is [`same_applied_prefix`].
pub fn replica_digests(samples: &[DigestSample]) -> CheckOutcome {
    let comparison = compare_digests(samples);
    comparison.verdict(samples.len(), false)
}

/// The end-of-run check: no two nodes diverged at one applied index, and at
/// least one applied index was seen on several nodes — a run whose samples
/// compared nothing proves nothing and fails (a monitor that never saw two
/// nodes at one index, or nodes that never converged).
pub fn same_applied_prefix(samples: &[DigestSample]) -> CheckOutcome {
    let comparison = compare_digests(samples);
    comparison.verdict(samples.len(), true)
}

struct DigestComparison {
    /// Applied indexes seen on more than one node.
    compared: usize,
    /// One line per applied index with more than one digest.
    diverged: Vec<String>,
}

fn compare_digests(samples: &[DigestSample]) -> DigestComparison {
    let mut by_index: BTreeMap<LogIndex, BTreeMap<u32, Vec<NodeId>>> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.applied > 0) {
        let nodes = by_index
            .entry(sample.applied)
            .or_default()
            .entry(sample.crc)
            .or_default();
        if !nodes.contains(&sample.node) {
            nodes.push(sample.node);
        }
    }
    let compared = by_index
        .values()
        .filter(|digests| digests.values().map(Vec::len).sum::<usize>() > 1)
        .count();
    let diverged = by_index
        .iter()
        .filter(|(_, digests)| digests.len() > 1)
        .map(|(index, digests)| {
            let parts: Vec<String> = digests
                .iter()
                .map(|(crc, nodes)| format!("{crc:08x} on nodes {nodes:?}"))
                .collect();
            format!("at applied index {index}: {}", parts.join(" vs "))
        })
        .collect();
    DigestComparison { compared, diverged }
}

impl DigestComparison {
    fn verdict(self, sampled: usize, require_comparison: bool) -> CheckOutcome {
        const NAME: &str = "same-applied-prefix";
        if !self.diverged.is_empty() {
            return CheckOutcome::fail(
                NAME,
                format!(
                    "replicas diverged {}",
                    self.diverged
                        .into_iter()
                        .take(10)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
        }
        if require_comparison && self.compared == 0 {
            return CheckOutcome::fail(
                NAME,
                format!(
                    "nothing compared: {sampled} digests sampled, but no applied index was \
                     seen on two nodes (did the nodes ever converge?)"
                ),
            );
        }
        CheckOutcome::pass(
            NAME,
            format!(
                "{sampled} digests sampled; {} applied indexes seen on several nodes, all equal",
                self.compared
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: u64, kind: EventType, key: &str, op: Op, t: u64) -> Event {
        Event::new(process, kind, key, op).at(t)
    }

    #[test]
    fn an_acknowledged_write_that_vanished_is_reported() {
        use EventType::*;
        let history = vec![
            ev(1, Invoke, "k", Op::Write(1), 10),
            ev(1, Ok, "k", Op::Write(1), 20),
            ev(2, Invoke, "k", Op::Write(2), 30),
            ev(2, Ok, "k", Op::Write(2), 40),
        ];
        let finals = |v: Option<i64>| [("k".to_string(), v)].into_iter().collect();
        assert!(lost_writes(&history, &finals(Some(2))).passed);
        // The final value is the older write: the newer one is lost.
        let verdict = lost_writes(&history, &finals(Some(1)));
        assert!(!verdict.passed, "{verdict}");
        assert!(verdict.detail.contains("write of 2"), "{verdict}");
        // Absent at the end.
        assert!(!lost_writes(&history, &finals(None)).passed);
        // A value nobody wrote.
        assert!(!lost_writes(&history, &finals(Some(9))).passed);
    }

    #[test]
    fn concurrent_or_unknown_writes_may_overwrite() {
        use EventType::*;
        let history = vec![
            ev(1, Invoke, "k", Op::Write(1), 10),
            ev(2, Invoke, "k", Op::Write(2), 15),
            ev(2, Ok, "k", Op::Write(2), 40),
            ev(1, Info, "k", Op::Write(1), 50),
            ev(3, Invoke, "k", Op::Cas(2, 3), 60),
            ev(3, Ok, "k", Op::Cas(2, 3), 70),
            ev(4, Invoke, "k", Op::Read(None), 80),
            ev(4, Ok, "k", Op::Read(Some(1)), 90),
        ];
        let finals = [("k".to_string(), Some(1))].into_iter().collect();
        // Write 1's outcome is unknown: it may have landed after the cas.
        assert!(lost_writes(&history, &finals).passed);
        // But the linearizability checker sees the read of 1 after cas 2->3
        // is fine only if write 1 took effect last: it is.
        assert!(linearizability(&history, &CheckOptions::default()).passed);
        // A stale read is not linearizable.
        let mut stale = history.clone();
        stale[7] = ev(4, Ok, "k", Op::Read(Some(2)), 90);
        let verdict = linearizability(&stale, &CheckOptions::default());
        assert!(!verdict.passed, "{verdict}");
    }

    #[test]
    fn operations_pair_invocations_and_completions() {
        use EventType::*;
        let history = vec![
            ev(1, Invoke, "k", Op::Read(None), 1),
            ev(2, Invoke, "k", Op::Write(5), 2),
            ev(1, Ok, "k", Op::Read(Some(5)), 3),
        ];
        let ops = operations(&history);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].op, Op::Read(Some(5)));
        assert_eq!(ops[0].completed, Some(3));
        assert_eq!(ops[1].outcome, EventType::Info, "never completed");
        assert_eq!(ops[1].completed, None);
    }

    #[test]
    fn diverging_digests_at_one_index_fail() {
        let sample = |node, applied, crc| DigestSample { node, applied, crc };
        let same = [sample(1, 5, 7), sample(2, 5, 7), sample(3, 6, 9)];
        assert!(replica_digests(&same).passed);
        let diverged = [sample(1, 5, 7), sample(2, 5, 8)];
        let verdict = replica_digests(&diverged);
        assert!(!verdict.passed);
        assert!(verdict.detail.contains("applied index 5"), "{verdict}");
    }

    #[test]
    fn a_prefix_check_that_compared_nothing_fails() {
        let sample = |node, applied, crc| DigestSample { node, applied, crc };
        // Every node seen, but never two at one index.
        let apart = [sample(1, 5, 7), sample(2, 6, 8), sample(3, 7, 9)];
        assert!(
            replica_digests(&apart).passed,
            "no divergence while converging"
        );
        let verdict = same_applied_prefix(&apart);
        assert!(!verdict.passed, "{verdict}");
        assert!(verdict.detail.contains("nothing compared"), "{verdict}");
        assert!(!same_applied_prefix(&[]).passed);
        // Index 0 (nothing applied yet) is no comparison either.
        assert!(!same_applied_prefix(&[sample(1, 0, 0), sample(2, 0, 0)]).passed);
        let met = [sample(1, 5, 7), sample(2, 6, 8), sample(3, 6, 8)];
        let verdict = same_applied_prefix(&met);
        assert!(verdict.passed, "{verdict}");
        assert!(verdict.detail.contains("1 applied indexes"), "{verdict}");
        // Divergence still fails the end-of-run check.
        assert!(!same_applied_prefix(&[sample(1, 5, 7), sample(2, 5, 8)]).passed);
    }
}
