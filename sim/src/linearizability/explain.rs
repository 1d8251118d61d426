//! Human-readable accounts of violations.

use std::fmt::Write as _;

use super::prepare::{CompletedKind, CompletedOp, InfoKind, KeyProblem, ValueId};
use super::search::{Frontier, OpRef};
use crate::history::Event;

fn value(problem: &KeyProblem, v: ValueId) -> String {
    match problem.values.get(v as usize).copied().flatten() {
        Some(x) => x.to_string(),
        None => "null".to_string(),
    }
}

fn completed_line(events: &[Event], problem: &KeyProblem, op: &CompletedOp) -> String {
    let process = events[op.invoke_event].process;
    let what = match op.kind {
        CompletedKind::Read(v) => format!("read -> {}", value(problem, v)),
        CompletedKind::Write(v) => format!("write {}", value(problem, v)),
        CompletedKind::CasOk(e, n) => {
            format!("cas [{}, {}] ok", value(problem, e), value(problem, n))
        }
        CompletedKind::CasFail(e) => format!("cas [{}, _] fail", value(problem, e)),
    };
    format!(
        "events {}..{} process {process}: {what}",
        op.invoke_event + 1,
        op.complete_event + 1
    )
}

fn info_line(events: &[Event], problem: &KeyProblem, i: u32) -> String {
    let info = &problem.infos[i as usize];
    let process = events[info.invoke_event].process;
    let what = match info.kind {
        InfoKind::Write(v) => format!("write {}", value(problem, v)),
        InfoKind::Cas(e, n) => format!("cas [{}, {}]", value(problem, e), value(problem, n)),
    };
    let end = match info.complete_event {
        Some(c) => format!("info at event {}", c + 1),
        None => "never completed".to_string(),
    };
    format!(
        "event {} process {process}: {what} ({end})",
        info.invoke_event + 1
    )
}

fn events_of(problem: &KeyProblem, op: OpRef, out: &mut Vec<usize>) {
    match op {
        OpRef::Completed(i) => {
            let o = &problem.ops[i as usize];
            out.push(o.invoke_event);
            out.push(o.complete_event);
        }
        OpRef::Info(i) => {
            let o = &problem.infos[i as usize];
            out.push(o.invoke_event);
            out.extend(o.complete_event);
        }
    }
}

/// Unknown-outcome operations listed in an explanation (the latest ones).
const LISTED_INFOS: usize = 8;

/// A read (or applied cas) of a value nobody writes.
pub(super) fn never_written(
    events: &[Event],
    problem: &KeyProblem,
    op: &CompletedOp,
) -> (String, Vec<usize>) {
    let v = match op.kind {
        CompletedKind::Read(v) | CompletedKind::CasOk(v, _) => v,
        CompletedKind::Write(v) | CompletedKind::CasFail(v) => v,
    };
    let text = format!(
        "{} observed the value {}, but no operation on this key ever wrote it (no acknowledged or unknown-outcome write or cas sets it)",
        completed_line(events, problem, op),
        value(problem, v)
    );
    (text, vec![op.invoke_event, op.complete_event])
}

/// Where the search got stuck.
pub(super) fn frontier(
    events: &[Event],
    problem: &KeyProblem,
    f: &Frontier,
) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut named = Vec::new();
    let _ = writeln!(
        text,
        "no order of the {} completed operations on this key ({} of unknown outcome) is consistent with real time and a register.",
        problem.ops.len(),
        problem.infos.len()
    );
    if f.recent.is_empty() {
        let _ = writeln!(text, "It fails from the start (register null).");
    } else {
        let _ = writeln!(
            text,
            "The longest linearizable prefix found places {} completed operations, ending with:",
            f.linearized
        );
        for &op in &f.recent {
            let line = match op {
                OpRef::Completed(i) => completed_line(events, problem, &problem.ops[i as usize]),
                OpRef::Info(i) => info_line(events, problem, i),
            };
            let _ = writeln!(text, "  {line}");
            events_of(problem, op, &mut named);
        }
        let _ = writeln!(
            text,
            "after which the register holds {}.",
            value(problem, f.state)
        );
    }
    let blocking = &problem.ops[f.blocking as usize];
    let _ = writeln!(
        text,
        "From there, this operation (the first of the remaining ones to complete) had to take effect before every operation invoked after it completed, and could not, whatever the order of the operations concurrent with it:"
    );
    let _ = writeln!(text, "  {}", completed_line(events, problem, blocking));
    events_of(problem, OpRef::Completed(f.blocking), &mut named);
    if !f.candidates.is_empty() || !f.info_candidates.is_empty() {
        let _ = writeln!(text, "Operations concurrent with it at that point:");
        for &c in &f.candidates {
            let _ = writeln!(
                text,
                "  {}",
                completed_line(events, problem, &problem.ops[c as usize])
            );
            events_of(problem, OpRef::Completed(c), &mut named);
        }
        for &i in f.info_candidates.iter().rev().take(LISTED_INFOS) {
            let _ = writeln!(text, "  {}", info_line(events, problem, i));
            events_of(problem, OpRef::Info(i), &mut named);
        }
        if f.info_candidates.len() > LISTED_INFOS {
            let _ = writeln!(
                text,
                "  and {} earlier operations of unknown outcome",
                f.info_candidates.len() - LISTED_INFOS
            );
        }
    }
    named.sort_unstable();
    named.dedup();
    (text.trim_end().to_string(), named)
}
