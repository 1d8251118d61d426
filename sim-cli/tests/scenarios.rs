//! Every scenario on every protocol: its stated expectations hold, its text
//! timeline matches the golden file (`tests/testdata/scenarios/NAME.txt`,
//! regenerated with `REWRITE=1 cargo test -p consensus-sim-cli --test
//! scenarios`), and its HTML page and SVG are well formed.

mod support;

use consensus_sim_cli::render::{html, svg, text};
use consensus_sim_cli::scenario::ScenarioName;

fn check(scenario: ScenarioName) {
    let outcome = support::run_all(scenario);
    let report = text::report(&outcome);
    assert!(
        outcome.passed(),
        "{scenario}: an expectation did not hold:\n{report}"
    );
    for run in &outcome.runs {
        for generic in [
            "the client history is linearizable",
            "a follower never applies an uncommitted entry",
            "a node cut off from a quorum never acknowledges a write",
            "a stale log never wins an election",
        ] {
            assert!(
                run.expectations.iter().any(|e| e.statement == generic),
                "{scenario} on {}: `{generic}` is missing",
                run.protocol
            );
        }
        assert!(
            run.expectations.len() >= 7,
            "{scenario} on {}: the scenario states no expectation of its own",
            run.protocol
        );
    }
    support::golden(scenario.name(), &report);
    let page = html::page(&outcome);
    assert_eq!(
        support::check_markup(&page, true),
        Ok(1),
        "{scenario}: HTML"
    );
    let picture = svg::swimlanes(&outcome);
    assert_eq!(
        support::check_markup(&picture, false),
        Ok(1),
        "{scenario}: SVG"
    );
}

#[test]
fn leader_crash() {
    check(ScenarioName::LeaderCrash);
}

#[test]
fn partition_3_2() {
    check(ScenarioName::Partition32);
}

#[test]
fn old_leader_isolated() {
    check(ScenarioName::OldLeaderIsolated);
}

#[test]
fn gc_pause() {
    check(ScenarioName::GcPause);
}

#[test]
fn slow_follower() {
    check(ScenarioName::SlowFollower);
}

#[test]
fn split_vote() {
    check(ScenarioName::SplitVote);
}

#[test]
fn crash_mid_reconfig() {
    check(ScenarioName::CrashMidReconfig);
}

#[test]
fn quorum_loss() {
    check(ScenarioName::QuorumLoss);
}

#[test]
fn constrained_election() {
    check(ScenarioName::ConstrainedElection);
}

#[test]
fn chained() {
    check(ScenarioName::Chained);
}

#[test]
fn the_catalog_names_every_scenario_once() {
    let names: Vec<&str> = ScenarioName::ALL.iter().map(|s| s.name()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    for scenario in ScenarioName::ALL {
        assert_eq!(scenario.name().parse::<ScenarioName>(), Ok(scenario));
    }
    assert!("nope".parse::<ScenarioName>().is_err());
}
