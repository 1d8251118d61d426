//! The header printed before the timeline, and the summary after it: the
//! totals and every expectation with its verdict, in the simulator's
//! words and layout (`consensus_sim_cli::render::text`).

use std::path::{Path, PathBuf};

use consensus_sim_cli::render::text::{expectation_lines, wrap};
use consensus_sim_cli::scenario::{seconds, Expectation, Verdict};

use super::expect::Facts;
use super::record::Record;
use super::timeline::Timeline;
use super::{RealScenario, ScenarioOptions};
use crate::checks::CheckOutcome;

/// Width the descriptions are wrapped at (the simulator's).
const WRAP: usize = 78;

/// Prints the header and the column titles.
pub(super) fn header(timeline: &Timeline, options: &ScenarioOptions, dir: &Path) {
    let scenario = options.scenario;
    timeline.line(&format!(
        "scenario {} on real processes: {}",
        scenario.name(),
        scenario.title()
    ));
    timeline.line(&format!(
        "  {}, {} `consensus-kv serve` processes on loopback, seed {}; cluster in {}",
        options.protocol.name(),
        options.nodes.max(3),
        options.seed,
        dir.display()
    ));
    for line in wrap(&scenario.story(&options.timing), WRAP - 2) {
        timeline.line(&format!("  {line}"));
    }
    timeline.line(&format!(
        "  one row every {} ms from the nodes' status: role, epoch, commit index of each node, \
         then the client operations that ended since the previous row",
        options.timing.row_every.as_millis()
    ));
    timeline.line(
        "  roles: L leader, F follower, C candidate, P peer (classic Paxos), z paused, x killed, ? no answer",
    );
    timeline.line("");
    timeline.line(&timeline.column_header());
}

/// The harness's checks as expectations.
pub fn harness_expectations(checks: &[CheckOutcome]) -> Vec<Expectation> {
    checks
        .iter()
        .map(|check| Expectation {
            statement: statement_of(&check.name),
            verdict: if check.passed {
                Verdict::Held(check.detail.clone())
            } else {
                Verdict::Broken(check.detail.clone())
            },
        })
        .collect()
}

fn statement_of(name: &str) -> String {
    let text = match name {
        "healed" => "the harness undoes every fault (processes running, links open)",
        "commits-after-heal" => "the cluster commits again after the final heal",
        "final-reads" => "every key reads linearizably at the end",
        "converged" => "after the heal all nodes converge on one state",
        "committed-prefix-kept" => "no commit index a node reported is lost",
        "same-applied-prefix" => {
            "all nodes applied the same prefix (state digests at equal indexes)"
        }
        "no-crashes" => "no node exited unless the scenario killed it",
        "values" => "every value read is one the run wrote",
        "progress" => "writes took effect",
        "history-file" => "the client history was written and reads back",
        "linearizable" => "the client history is linearizable",
        "no-lost-writes" => "no acknowledged write is lost",
        other => other,
    };
    format!("{text} [{name}]")
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: RealScenario,
    /// Protocol name.
    pub protocol: String,
    /// Cluster size.
    pub nodes: u64,
    /// The seed.
    pub seed: u64,
    /// What the script did.
    pub facts: Facts,
    /// Samples, faults, notes, operations.
    pub record: Record,
    /// The scenario's expectations, then the harness's checks.
    pub expectations: Vec<Expectation>,
    /// The timeline as printed.
    pub timeline: String,
    /// The history file.
    pub history: PathBuf,
    /// The cluster directory (configuration, data, node logs).
    pub dir: PathBuf,
    /// The command that reruns it.
    pub command: String,
}

impl ScenarioReport {
    /// True when no expectation was broken.
    pub fn passed(&self) -> bool {
        self.broken().next().is_none()
    }

    /// The expectations that did not hold.
    pub fn broken(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations.iter().filter(|e| e.verdict.is_broken())
    }

    /// The totals, every expectation with its verdict, and the verdict.
    pub fn summary(&self) -> String {
        let record = &self.record;
        let mut out = format!("\n{}: summary (real processes)\n", self.protocol);
        out.push_str(&format!("  {}\n", self.facts.meaning));
        if let Some(first) = record.faults.first() {
            let end = record.clients_stopped_ns.unwrap_or(first.start_ns);
            let (from, to) = record.longest_gap(first.start_ns, end);
            out.push_str(&format!(
                "  unavailable: {} ms, {} to {} (the longest time without an acknowledged write, from the fault until the clients stopped)\n",
                (to - from) / 1_000_000,
                seconds(from),
                seconds(to)
            ));
        }
        match record.leader_changes(0) {
            Some(changes) => out.push_str(&format!(
                "  leader changes seen in the status samples: {changes}\n"
            )),
            None => out.push_str("  leader changes: none (classic Paxos has no leader)\n"),
        }
        let (ok, failed, unknown) = record.op_totals();
        out.push_str(&format!(
            "  client operations: {ok} ok, {failed} failed, {unknown} unknown\n"
        ));
        let missing: usize = record
            .samples
            .iter()
            .map(|s| s.nodes.iter().filter(|n| n.is_none()).count())
            .sum();
        out.push_str(&format!(
            "  status samples: {} rows, {missing} answers missing\n",
            record.samples.len()
        ));
        out.push_str("  expectations:\n");
        expectation_lines(&mut out, &self.expectations);
        out.push('\n');
        let broken: Vec<&Expectation> = self.broken().collect();
        if broken.is_empty() {
            out.push_str(&format!(
                "every expectation held on {} ({} nodes, seed {})\n",
                self.protocol, self.nodes, self.seed
            ));
        } else {
            out.push_str(&format!(
                "FAILED: {} expectation(s) did not hold on {}:\n",
                broken.len(),
                self.protocol
            ));
            for expectation in broken {
                out.push_str(&format!("  {}\n", expectation.statement));
            }
            out.push_str(&format!(
                "history: {}\ncluster directory (configuration, data, node logs in logs/): {}\nrerun: {}\n",
                self.history.display(),
                self.dir.display(),
                self.command
            ));
        }
        out
    }

    /// The timeline followed by the summary.
    pub fn text(&self) -> String {
        format!("{}{}", self.timeline, self.summary())
    }
}
