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
fn a_panicking_core_is_reported_with_its_seed_and_command() {
    let (code, stdout, stderr) = consensus_sim(&[
        "run",
        "--protocol",
        "panicking-raft",
        "--nodes",
        "3",
        "--seeds",
        "1..30",
        "--ops",
        "300",
        "--faults",
        "partitions",
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("check `panic` violated"), "{stderr}");
    assert!(stderr.contains("planted bug: term"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("reproduce with:"))
        .unwrap_or_else(|| panic!("no reproducing command: {stderr}"));
    assert!(
        line.contains("--protocol panicking-raft --nodes 3 --seed "),
        "{line}"
    );
    assert!(line.contains("--faults partitions"), "{line}");
}

#[test]
fn a_campaign_resumes_and_reports_violations_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("campaign.json");
    let args = |seeds: &str| {
        vec![
            "campaign".to_owned(),
            "--protocols".into(),
            "tiny-raft,unsafe-lowest-id".into(),
            "--faults".into(),
            "partitions".into(),
            "--nodes".into(),
            "3,4".into(),
            "--seeds".into(),
            seeds.into(),
            "--ops".into(),
            "300".into(),
            "--chunk".into(),
            "3".into(),
            "--jobs".into(),
            "2".into(),
            "--out".into(),
            out.to_str().unwrap().to_owned(),
        ]
    };
    let run = |seeds: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_consensus-sim"))
            .args(args(seeds))
            .output()
            .expect("the binary runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run("1..6");
    assert_eq!(code, 1, "the unsafe core fails: {stdout}\n{stderr}");
    assert!(
        stdout.contains("| tiny-raft | partitions | 3 | 6 | 6 | 0 |"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cell = &summary["cells"]["unsafe-lowest-id/partitions/3"];
    assert_eq!(cell["seeds"], 6);
    let violations = cell["violations"].as_array().unwrap();
    assert!(!violations.is_empty(), "{cell}");
    assert!(violations[0]["reproduce"]
        .as_str()
        .unwrap()
        .contains("--protocol unsafe-lowest-id --nodes 3 --seed "));
    assert_eq!(summary["cells"]["tiny-raft/partitions/4"]["complete"], true);
    // Resumed: only the new seeds run.
    let (_, _, stderr) = run("1..9");
    assert!(
        stderr.contains("4 chunk(s) of up to 3 seeds to run, 8 already done"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(summary["cells"]["tiny-raft/partitions/3"]["seeds"], 9);
    assert_eq!(summary["cells"]["tiny-raft/partitions/3"]["done"][0][1], 9);
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
