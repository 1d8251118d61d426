//! The terminal timeline and summary of a scenario run.
//!
//! One row per time step (every [`ScenarioInfo::row_every_ns`], plus a row
//! whenever a node's role or epoch changes), faults and notes as lines of
//! their own where they happen, then per protocol the totals and every
//! expectation with its verdict. One protocol: a column per node (role,
//! epoch, commit index). Several: a column per protocol (the roles of all
//! nodes as letters, the highest epoch, the highest commit index), side by
//! side on one time axis.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::scenario::{
    format_epoch, seconds, Expectation, NodeState, ProtocolRun, Sample, ScenarioInfo,
    ScenarioOutcome,
};

/// Width the descriptions are wrapped at.
const WRAP: usize = 78;

/// The whole text report: header, timeline, summaries, verdict.
pub fn report(outcome: &ScenarioOutcome) -> String {
    let mut out = String::new();
    header(&mut out, outcome);
    out.push('\n');
    timeline(&mut out, outcome);
    for run in &outcome.runs {
        out.push('\n');
        summary(&mut out, run);
    }
    out.push('\n');
    verdict(&mut out, outcome);
    out
}

fn header(out: &mut String, outcome: &ScenarioOutcome) {
    let info = outcome.scenario.info();
    let protocols: Vec<&str> = outcome.runs.iter().map(|r| r.protocol.as_str()).collect();
    let _ = writeln!(out, "scenario {}: {}", info.name, info.title);
    let _ = writeln!(
        out,
        "  seed {}, {} nodes, protocols: {}",
        outcome.config.seed,
        outcome
            .runs
            .first()
            .map_or(outcome.config.nodes, ProtocolRun::nodes),
        protocols.join(", ")
    );
    for line in wrap(info.story, WRAP - 2) {
        let _ = writeln!(out, "  {line}");
    }
    for line in wrap(&format!("source: {}", info.source), WRAP - 2) {
        let _ = writeln!(out, "  {line}");
    }
    for run in &outcome.runs {
        for line in wrap(
            &format!("{}: {}", run.protocol, run.leader_meaning),
            WRAP - 2,
        ) {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(
        out,
        "  roles: L leader, F follower, C candidate, P peer (classic Paxos), l learner, z paused, x crashed"
    );
}

/// Wraps `text` at `width` columns (words never split).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The row times: every `every_ns`, and every sample where some node's role,
/// state or epoch changed (in any run).
fn row_times(runs: &[ProtocolRun], every_ns: u64) -> Vec<u64> {
    let end = runs.iter().map(|r| r.end_ns).max().unwrap_or(0);
    let mut times: Vec<u64> = (0..=end / every_ns).map(|i| i * every_ns).collect();
    for run in runs {
        for pair in run.samples.windows(2) {
            let changed = pair[0]
                .nodes
                .iter()
                .zip(&pair[1].nodes)
                .any(|(a, b)| a.letter() != b.letter() || a.epoch != b.epoch);
            if changed {
                times.push(pair[1].time_ns);
            }
        }
        if let Some(last) = run.samples.last() {
            times.push(last.time_ns);
        }
    }
    times.sort_unstable();
    times.dedup();
    times
}

/// The last sample at or before `time_ns`.
fn sample_at(run: &ProtocolRun, time_ns: u64) -> Option<&Sample> {
    let index = run.samples.partition_point(|s| s.time_ns <= time_ns);
    index.checked_sub(1).map(|i| &run.samples[i])
}

/// Operations that ended in `(from, to]`: "ok/failed/unknown".
fn ops_between(run: &ProtocolRun, from: Option<u64>, to: u64) -> String {
    let (mut ok, mut failed, mut unknown) = (0, 0, 0);
    for op in &run.ops {
        let Some(end) = op.ended_ns else { continue };
        if from.is_some_and(|f| end <= f) || end > to {
            continue;
        }
        match op.outcome {
            Some(crate::scenario::Outcome::Ok) => ok += 1,
            Some(crate::scenario::Outcome::Failed) => failed += 1,
            _ => unknown += 1,
        }
    }
    format!("{ok}/{failed}/{unknown}")
}

/// Fault starts and ends and notes, per time, each with the protocol.
fn events(runs: &[ProtocolRun]) -> BTreeMap<u64, Vec<(String, String)>> {
    let mut events: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for run in runs {
        let protocol = &run.protocol;
        for fault in &run.faults {
            events
                .entry(fault.start_ns)
                .or_default()
                .push((protocol.clone(), format!("{} begins", fault.label)));
            if let Some(end) = fault.end_ns {
                events
                    .entry(end)
                    .or_default()
                    .push((protocol.clone(), format!("{} ends", fault.label)));
            }
        }
        for note in &run.notes {
            events
                .entry(note.time_ns)
                .or_default()
                .push((protocol.clone(), note.text.clone()));
        }
    }
    events
}

/// Event lines at one time: identical texts of every protocol merge into
/// one line without a prefix.
fn event_lines(items: &[(String, String)], protocols: usize) -> Vec<String> {
    let mut by_text: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (protocol, text) in items {
        let entry = by_text.entry(text.as_str()).or_default();
        if entry.is_empty() {
            order.push(text.as_str());
        }
        entry.push(protocol.as_str());
    }
    order
        .into_iter()
        .map(|text| {
            let who = &by_text[text];
            if protocols == 1 || who.len() == protocols {
                text.to_owned()
            } else {
                format!("{}: {text}", who.join(", "))
            }
        })
        .collect()
}

fn timeline(out: &mut String, outcome: &ScenarioOutcome) {
    let info: ScenarioInfo = outcome.scenario.info();
    let runs = &outcome.runs;
    let times = row_times(runs, info.row_every_ns);
    let events = events(runs);
    let single = runs.len() == 1;
    let _ = writeln!(out, "{}", column_header(runs, single));
    let mut previous: Option<u64> = None;
    let mut pending_events = events.iter().peekable();
    for &time in &times {
        while let Some((&at, items)) = pending_events.peek() {
            if at > time {
                break;
            }
            for line in event_lines(items, runs.len()) {
                let _ = writeln!(out, "{:>8} > {line}", seconds(at));
            }
            pending_events.next();
        }
        let mut row = format!("{:>8} |", seconds(time));
        for run in runs {
            let Some(sample) = sample_at(run, time) else {
                continue;
            };
            let ops = ops_between(run, previous, time);
            if single {
                for node in &sample.nodes {
                    row.push_str(&node_cell(&run.protocol, node));
                }
                let _ = write!(row, " | {ops}");
            } else {
                row.push_str(&protocol_cell(&run.protocol, sample, &ops));
            }
        }
        let _ = writeln!(out, "{}", row.trim_end());
        previous = Some(time);
    }
    for (&at, items) in pending_events {
        for line in event_lines(items, runs.len()) {
            let _ = writeln!(out, "{:>8} > {line}", seconds(at));
        }
    }
}

fn column_header(runs: &[ProtocolRun], single: bool) -> String {
    let mut header = format!("{:>8} |", "time");
    if single {
        let run = &runs[0];
        for id in 1..=run.nodes() {
            let _ = write!(header, " {:<12}", format!("n{id}"));
        }
        header.push_str(" | ops ok/failed/unknown");
    } else {
        for run in runs {
            let width = run.nodes() + 21;
            let _ = write!(header, " {:<width$} |", run.protocol);
        }
        header.push_str("  (roles of n1..n; epoch; commit; ops ok/failed/unknown)");
    }
    header
}

/// `L t2     57`: role, epoch, commit index of one node (13 columns; also
/// the cell of `consensus-torture run --scenario`'s timeline).
pub fn node_cell(protocol: &str, node: &NodeState) -> String {
    if node.letter() == 'x' {
        return format!(" {:<12}", "x");
    }
    format!(
        " {} {:<6}{:>4}",
        node.letter(),
        format_epoch(protocol, node.epoch),
        node.commit
    )
}

/// `LFFFF t2     57 12/0/0 |`: every node's role, the leader's (or the
/// highest) epoch, the highest commit index, the operations since the
/// previous row.
fn protocol_cell(protocol: &str, sample: &Sample, ops: &str) -> String {
    let roles: String = sample.nodes.iter().map(NodeState::letter).collect();
    let epoch = sample
        .leader()
        .map_or(sample.max_epoch(), |(_, epoch)| epoch);
    format!(
        " {roles} {:<7}{:>5} {:<7} |",
        format_epoch(protocol, epoch),
        sample.max_commit(),
        ops
    )
}

fn summary(out: &mut String, run: &ProtocolRun) {
    let s = &run.summary;
    let _ = writeln!(out, "{}: summary (after the warm-up)", run.protocol);
    match s.unavailable {
        Some((from, to)) => {
            let _ = writeln!(
                out,
                "  unavailable: {} ms, {} to {} (the longest time without a committed write, from the first fault on)",
                (to - from) / 1_000_000,
                seconds(from),
                seconds(to)
            );
        }
        None => {
            let _ = writeln!(out, "  unavailable: no fault");
        }
    }
    match s.leader_changes {
        Some(changes) => {
            let _ = writeln!(out, "  leaders elected: {changes}");
        }
        None => {
            let _ = writeln!(out, "  leaders elected: none (classic Paxos has no leader)");
        }
    }
    let _ = writeln!(
        out,
        "  client operations: {} ok, {} failed, {} unknown",
        s.ok, s.failed, s.unknown
    );
    let _ = writeln!(
        out,
        "  network: {} messages, {} bytes; snapshots installed: {}",
        s.messages, s.bytes, s.snapshots_installed
    );
    let _ = writeln!(out, "  expectations:");
    expectation_lines(out, &run.expectations);
}

/// Every expectation on its own wrapped lines: `ok`, `FAIL` or `n/a`, the
/// statement and what was seen (also used by `consensus-torture run
/// --scenario`).
pub fn expectation_lines(out: &mut String, expectations: &[Expectation]) {
    for expectation in expectations {
        let mark = expectation.verdict.mark();
        let text = format!(
            "{} -- {}",
            expectation.statement,
            expectation.verdict.detail()
        );
        let mut lines = wrap(&text, WRAP - 10).into_iter();
        if let Some(first) = lines.next() {
            let _ = writeln!(out, "    {mark:<5} {first}");
        }
        for line in lines {
            let _ = writeln!(out, "          {line}");
        }
    }
}

fn verdict(out: &mut String, outcome: &ScenarioOutcome) {
    let broken: Vec<String> = outcome
        .runs
        .iter()
        .flat_map(|run| {
            run.broken()
                .map(move |e| format!("{}: {}", run.protocol, e.statement))
        })
        .collect();
    if broken.is_empty() {
        let _ = writeln!(
            out,
            "every expectation held on {}",
            outcome
                .runs
                .iter()
                .map(|r| r.protocol.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        let _ = writeln!(out, "FAILED: {} expectation(s) did not hold:", broken.len());
        for line in broken {
            let _ = writeln!(out, "  {line}");
        }
    }
}
