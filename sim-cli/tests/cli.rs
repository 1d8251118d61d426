//! The command line: exit codes and messages.

use std::process::Command;

fn consensus_sim(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_consensus-sim"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_correct_core_passes_a_seed_range() {
    let (code, stdout, stderr) = consensus_sim(&[
        "run",
        "--protocol",
        "tiny-raft",
        "--nodes",
        "3",
        "--seeds",
        "1..3",
        "--ops",
        "100",
        "--clients",
        "4",
        "--faults",
        "all",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("3 seed(s) 1..=3 passed"), "{stdout}");
    assert!(stdout.contains("runs/s"), "{stdout}");
}

#[test]
fn an_unsafe_core_fails_with_a_reproducing_message() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("h.jsonl");
    let (code, _stdout, stderr) = consensus_sim(&[
        "run",
        "--protocol",
        "unsafe-lowest-id",
        "--seeds",
        "1..40",
        "--ops",
        "500",
        "--faults",
        "partitions",
        "--history",
        history.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("simulation failed: seed "), "{stderr}");
    assert!(stderr.contains("reproduce with: cargo run --profile sim -p consensus-sim-cli -- run --protocol unsafe-lowest-id"), "{stderr}");
    assert!(
        std::fs::metadata(&history).is_ok(),
        "the failing run's history is kept"
    );
}

#[test]
fn unknown_and_unlinked_protocols_are_usage_errors() {
    let (code, _, stderr) = consensus_sim(&["run", "--protocol", "nope", "--seed", "1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown protocol `nope`"), "{stderr}");
    let (code, stdout, _) = consensus_sim(&["protocols"]);
    assert_eq!(code, 0);
    for name in ["raft", "multipaxos", "paxos", "zab"] {
        assert!(stdout.contains(name), "{stdout}");
    }
    let (code, _, stderr) = consensus_sim(&["run", "--protocol", "tiny-raft", "--seeds", "5..1"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn scenario_list_names_every_scenario() {
    let (code, stdout, stderr) = consensus_sim(&["scenario", "--list"]);
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "leader-crash",
        "partition-3-2",
        "old-leader-isolated",
        "gc-pause",
        "slow-follower",
        "split-vote",
        "crash-mid-reconfig",
        "quorum-loss",
        "constrained-election",
        "chained",
    ] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
}

#[test]
fn scenario_writes_the_page_and_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, stdout, stderr) = consensus_sim(&[
        "scenario",
        "leader-crash",
        "--protocol",
        "raft,paxos",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every expectation held on raft, paxos"),
        "{stdout}"
    );
    let page = std::fs::read_to_string(out.join("leader-crash.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"));
    let picture = std::fs::read_to_string(out.join("leader-crash.svg")).unwrap();
    assert!(picture.starts_with("<svg"));
}

#[test]
fn a_broken_scenario_expectation_exits_1_with_a_reproducing_command() {
    let (code, stdout, stderr) = consensus_sim(&[
        "scenario",
        "partition-3-2",
        "--protocol",
        "unsafe-lowest-id",
        "--seed",
        "4",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAIL  only the 3-node side commits"),
        "{stdout}"
    );
    assert!(
        stderr.contains("reproduce with: consensus-sim scenario partition-3-2 --protocol unsafe-lowest-id --nodes 5 --seed 4"),
        "{stderr}"
    );
}

#[test]
fn scenario_usage_errors_exit_2() {
    let (code, _, stderr) = consensus_sim(&["scenario", "no-such-thing"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown scenario `no-such-thing`"),
        "{stderr}"
    );
    assert!(stderr.contains("--list"), "{stderr}");
    let (code, _, stderr) = consensus_sim(&["scenario", "split-vote", "--nodes", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("4 to 9 nodes"), "{stderr}");
    let (code, _, stderr) = consensus_sim(&["scenario", "chained", "--protocol", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown protocol `nope`"), "{stderr}");
}
