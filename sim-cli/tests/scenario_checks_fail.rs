//! The scenario checks prove something only if they fail when the rule
//! breaks: the simulator's deliberately broken cores (`consensus_sim::testing`)
//! must trip the expectations that describe their bug.

mod support;

use consensus_sim_cli::render::text;
use consensus_sim_cli::scenario::{ScenarioConfig, ScenarioName, ScenarioOutcome};

fn broken(outcome: &ScenarioOutcome) -> Vec<String> {
    outcome.runs[0]
        .broken()
        .map(|e| e.statement.clone())
        .collect()
}

/// "The lowest reachable id leads and commits alone": on the 2-node side of
/// a 3 | 2 partition it keeps committing. The scenario's own expectations
/// catch it, before the simulator's agreement check does.
#[test]
fn a_core_that_commits_without_a_quorum_breaks_partition_3_2() {
    let outcome = support::run(
        ScenarioName::Partition32,
        &["unsafe-lowest-id"],
        ScenarioConfig::default(),
    );
    let broken = broken(&outcome);
    let report = text::report(&outcome);
    assert!(!outcome.passed(), "{report}");
    for expected in [
        "only the 3-node side commits",
        "the minority never acknowledges a write",
        "a follower never applies an uncommitted entry",
        "a node cut off from a quorum never acknowledges a write",
    ] {
        assert!(
            broken.iter().any(|b| b == expected),
            "`{expected}` did not fail: {broken:?}\n{report}"
        );
    }
    assert!(report.contains("FAILED:"), "{report}");
}

/// A Raft whose read barrier skips the leadership check: the leader resuming
/// from a 30 s pause answers a read from its stale state. Only the history
/// check sees it, and the gc-pause expectation says so.
#[test]
fn a_leader_that_reads_without_confirming_leadership_breaks_gc_pause() {
    let outcome = support::run(
        ScenarioName::GcPause,
        &["stale-read-raft"],
        ScenarioConfig::default(),
    );
    let broken = broken(&outcome);
    let report = text::report(&outcome);
    assert!(
        broken
            .iter()
            .any(|b| b.starts_with("every read or write it serves after resuming is correct")),
        "{broken:?}\n{report}"
    );
    assert!(
        broken
            .iter()
            .any(|b| b == "the client history is linearizable"),
        "{broken:?}"
    );
    // Its log is correct Raft: agreement and the apply rule still hold.
    assert!(
        !broken.iter().any(|b| b.starts_with("simulator invariants")),
        "{broken:?}"
    );
    assert!(
        !broken
            .iter()
            .any(|b| b == "a follower never applies an uncommitted entry"),
        "{broken:?}"
    );
}

/// The correct reference Raft of the simulator passes the same scenario:
/// the failures above are the bugs, not the harness.
#[test]
fn the_reference_raft_passes_gc_pause() {
    let outcome = support::run(
        ScenarioName::GcPause,
        &["tiny-raft"],
        ScenarioConfig::default(),
    );
    assert!(outcome.passed(), "{}", text::report(&outcome));
}

/// One seed replays one run.
#[test]
fn same_seed_same_timeline() {
    let config = ScenarioConfig { nodes: 5, seed: 7 };
    let a = support::run(ScenarioName::SplitVote, &["raft", "zab"], config);
    let b = support::run(ScenarioName::SplitVote, &["raft", "zab"], config);
    assert_eq!(text::report(&a), text::report(&b));
    let c = support::run(
        ScenarioName::SplitVote,
        &["raft", "zab"],
        ScenarioConfig { nodes: 5, seed: 8 },
    );
    assert_ne!(text::report(&a), text::report(&c));
}

/// Other cluster sizes work too.
#[test]
fn partition_with_seven_and_three_nodes() {
    for nodes in [3, 7] {
        let outcome = support::run(
            ScenarioName::Partition32,
            &["raft", "multipaxos", "paxos", "zab"],
            ScenarioConfig { nodes, seed: 3 },
        );
        assert!(outcome.passed(), "{}", text::report(&outcome));
        assert_eq!(outcome.runs[0].nodes(), nodes);
    }
}
