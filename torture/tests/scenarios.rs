//! The simulator's named failure scenarios on real processes (issue 15):
//! `consensus-torture run --scenario NAME --protocol P` as a test, on three
//! nodes with short holds, one scenario per protocol family, in parallel
//! (each test starts its own cluster on loopback and stops every process).
//!
//! * `leader_crash_on_raft`, `partition_3_2_on_multipaxos`,
//!   `old_leader_isolated_on_zab`: every expectation of the scenario and
//!   every check of the harness holds.
//! * `partition_checks_fail_when_broken`: the partition expectations on a
//!   fabricated record in which the minority acknowledged a write and
//!   committed alone fail (and hold on the same record without those);
//!   the real partition run is also re-checked with one fabricated
//!   acknowledgement added, which must fail.

use std::time::Duration;

use consensus::{NodeId, Protocol, Role};
use consensus_sim_cli::scenario::{Expectation, NodeKind, NodeState, Outcome, Verdict};
use consensus_torture::scenario::record::{ClientOp, Observation, Record};
use consensus_torture::scenario::{
    self, expect, Bounds, Facts, RealScenario, ScenarioOptions, ScenarioReport,
};

mod support;

use support::{kv_binary, TORTURE};

/// Runs `scenario` on 3 nodes with a fault held for `hold`; panics with the
/// whole timeline when it could not run or an expectation failed.
fn run(scenario: RealScenario, protocol: &str, hold: Duration) -> ScenarioReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let protocol: Protocol = protocol.parse().expect("protocol");
    let mut options = ScenarioOptions::new(
        kv_binary(),
        scenario,
        protocol,
        3,
        dir.path().join("history.jsonl"),
    );
    options.dir = Some(dir.path().join("cluster"));
    options.timing.hold = hold;
    options.timing.observe = Duration::from_millis(1500);
    options.recovery_timeout = Duration::from_secs(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), scenario::run(&options)).await
    });
    let report = match result {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => panic!("{}: could not run: {error}", options.command_line()),
        Err(_) => panic!("{}: exceeded 120 s", options.command_line()),
    };
    if !report.passed() {
        let kept = dir.keep();
        panic!("{}\nkept in {}", report.text(), kept.display());
    }
    report
}

fn statement_verdict<'a>(expectations: &'a [Expectation], start: &str) -> &'a Verdict {
    &expectations
        .iter()
        .find(|e| e.statement.starts_with(start))
        .unwrap_or_else(|| panic!("no expectation starting with {start:?}: {expectations:?}"))
        .verdict
}

#[test]
fn leader_crash_on_raft() {
    let report = run(RealScenario::LeaderCrash, "raft", Duration::from_secs(2));
    let record = &report.record;
    assert_eq!(record.faults.len(), 1, "{}", report.text());
    assert!(record.faults[0].label.contains("crashed"));
    assert!(
        record
            .samples
            .iter()
            .any(|s| s.state(report.facts.leader) == Some(&NodeState::CRASHED)),
        "the timeline shows the killed node as crashed:\n{}",
        report.timeline
    );
    assert!(
        report.timeline.contains("becomes leader (t"),
        "{}",
        report.timeline
    );
}

#[test]
fn partition_3_2_on_multipaxos() {
    let report = run(
        RealScenario::Partition32,
        "multipaxos",
        Duration::from_millis(2500),
    );
    let (ok, failed, other) = report.record.writes_confined(
        &report.facts.hit,
        report.facts.start_ns,
        report.facts.end_ns,
    );
    assert_eq!(ok, 0);
    assert!(failed + other > 0, "the minority got requests");
    // The same check on the real record, with one fabricated
    // acknowledgement by the minority during the partition, must fail.
    let mut tampered = report.record.clone();
    tampered.ops.push(ClientOp {
        client: 99,
        nodes: report.facts.hit.clone(),
        write: true,
        invoked_ns: report.facts.start_ns + 1_000_000,
        ended_ns: report.facts.start_ns + 2_000_000,
        outcome: Outcome::Ok,
    });
    let expectations = expect::evaluate(
        RealScenario::Partition32,
        &report.facts,
        &tampered,
        &Bounds::default(),
        Some(true),
    );
    assert!(
        statement_verdict(&expectations, "the minority never acknowledges").is_broken(),
        "{expectations:?}"
    );
}

#[test]
fn old_leader_isolated_on_zab() {
    let report = run(
        RealScenario::OldLeaderIsolated,
        "zab",
        Duration::from_millis(2500),
    );
    assert!(
        report.timeline.contains("isolated begins"),
        "{}",
        report.timeline
    );
}

fn up(role: Role, epoch: u64, commit: u64) -> Option<NodeState> {
    Some(NodeState {
        kind: NodeKind::Up(role),
        epoch,
        commit,
        applied: commit,
    })
}

/// 3 nodes, node 1 leads term 1 and is cut off at 1.5 s until 4 s; node 2
/// leads term 2 from 1.8 s. `minority_commit` is node 1's commit index
/// during the cut, `minority_ack` adds a write its client saw acknowledged.
fn fabricated(minority_commit: u64, minority_ack: bool) -> (Facts, Record) {
    let second = 1_000_000_000;
    let mut record = Record {
        protocol: "raft".into(),
        ..Record::default()
    };
    for step in 0..40u64 {
        let time_ns = step * second / 10;
        let cut = (15..40).contains(&step);
        let nodes = if step < 15 {
            vec![
                up(Role::Leader, 1, step),
                up(Role::Follower, 1, step),
                up(Role::Follower, 1, step),
            ]
        } else {
            let leader2 = if step >= 18 {
                Role::Leader
            } else {
                Role::Follower
            };
            vec![
                up(Role::Leader, 1, if cut { minority_commit } else { 20 }),
                up(leader2, 2, step + 10),
                up(Role::Follower, 2, step + 10),
            ]
        };
        record.samples.push(Observation { time_ns, nodes });
    }
    record.samples.push(Observation {
        time_ns: 5 * second,
        nodes: vec![
            up(Role::Follower, 2, 60),
            up(Role::Leader, 2, 60),
            up(Role::Follower, 2, 60),
        ],
    });
    let mut op = |nodes: Vec<NodeId>, invoked_ns: u64, outcome| {
        record.ops.push(ClientOp {
            client: 0,
            nodes,
            write: true,
            invoked_ns,
            ended_ns: invoked_ns + 100_000_000,
            outcome,
        })
    };
    op(vec![1], 2 * second, Outcome::Failed);
    op(vec![2, 3], 2 * second, Outcome::Ok);
    if minority_ack {
        op(vec![1], 3 * second, Outcome::Ok);
    }
    let facts = Facts {
        leader: 1,
        epoch_before: 1,
        hit: vec![1],
        rest: vec![2, 3],
        start_ns: 15 * second / 10,
        end_ns: 4 * second,
        last_index_at_start: 16,
        meaning: "fabricated".into(),
        problems: Vec::new(),
    };
    (facts, record)
}

#[test]
fn partition_checks_fail_when_broken() {
    let check = |commit, ack| {
        let (facts, record) = fabricated(commit, ack);
        expect::evaluate(
            RealScenario::Partition32,
            &facts,
            &record,
            &Bounds::default(),
            Some(true),
        )
    };
    let clean = check(15, false);
    assert!(clean.iter().all(|e| !e.verdict.is_broken()), "{clean:#?}");

    let acked = check(15, true);
    let verdict = statement_verdict(&acked, "the minority never acknowledges");
    assert!(verdict.is_broken(), "{acked:#?}");
    assert!(verdict.detail().contains("1 acknowledged"), "{verdict:?}");

    let committed = check(30, false);
    let verdict = statement_verdict(&committed, "only the 2-node side commits");
    assert!(verdict.is_broken(), "{committed:#?}");
    assert!(verdict.detail().contains("commit index 30"), "{verdict:?}");
}

#[test]
fn step_down_checks_fail_when_the_old_leader_keeps_leading() {
    let (facts, mut record) = fabricated(15, false);
    let last = record.samples.last_mut().expect("samples");
    last.nodes[0] = up(Role::Leader, 1, 20);
    for scenario in [RealScenario::OldLeaderIsolated, RealScenario::Partition32] {
        let expectations =
            expect::evaluate(scenario, &facts, &record, &Bounds::default(), Some(true));
        let broken: Vec<&Expectation> = expectations
            .iter()
            .filter(|e| e.verdict.is_broken())
            .collect();
        assert_eq!(broken.len(), 1, "{scenario:?}: {expectations:#?}");
        assert!(
            broken[0].statement.contains("steps down")
                || broken[0].statement.contains("no longer leads"),
            "{broken:?}"
        );
    }
}

#[test]
fn the_command_lists_and_refuses_what_does_not_run_on_real_processes() {
    let run = |args: &[&str]| {
        std::process::Command::new(TORTURE)
            .arg("run")
            .arg("--kv-bin")
            .arg(kv_binary())
            .args(args)
            .output()
            .expect("run consensus-torture")
    };
    let list = run(&["--scenario", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    for scenario in RealScenario::ALL {
        assert!(text.contains(scenario.name()), "{text}");
    }
    assert!(text.contains("split-vote"), "{text}");
    let refused = run(&["--scenario", "split-vote", "--protocol", "raft"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not run on real processes"));
    let unknown = run(&["--scenario", "meteor", "--protocol", "raft"]);
    assert_eq!(unknown.status.code(), Some(2));
    let no_protocol = run(&["--scenario", "gc-pause"]);
    assert_eq!(no_protocol.status.code(), Some(2));
    let mixed = run(&[
        "--scenario",
        "gc-pause",
        "--protocol",
        "raft",
        "--duration",
        "5s",
    ]);
    assert!(
        !mixed.status.success(),
        "--duration is for the random nemesis only"
    );
}
