//! The seed article's failure game ("Paxos failure scenarios — what breaks,
//! what pauses"), played on the simulator, plus recovery scenarios.
//!
//! 1. The leader crashes, 4 nodes remain connected: safety holds, the
//!    cluster is unavailable briefly, a new leader is elected, nothing
//!    acknowledged is lost.
//! 2. A 2 | 3 partition: only the 3-node side commits; the leader caught on
//!    the 2-node side rejects writes quickly.

use consensus_api::{Core, Membership, NodeId, Rejected, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::{Cluster, NetworkConfig, OpError};
use multipaxos::MultiPaxosCore;

type Sim = Cluster<MultiPaxosCore>;

/// Waits for a leader that stays leader for a while (two nodes that time
/// out together may both finish Phase 1, the higher ballot winning).
fn wait_leader(cluster: &mut Sim, max_ticks: u64) -> NodeId {
    for _ in 0..10 {
        assert!(
            cluster.run_until(max_ticks, |c| c.leader().is_some()),
            "no leader within {max_ticks} ticks"
        );
        let leader = cluster.leader().unwrap();
        cluster.run_ticks(20);
        if cluster.leader() == Some(leader) {
            return leader;
        }
    }
    panic!("leadership never settled");
}

fn write_ok(cluster: &mut Sim, node: NodeId, key: &str, value: i64) {
    assert_eq!(
        cluster.write_sync(node, key, value, 300),
        Ok(KvResponse::Written),
        "write {key}={value} at {node}"
    );
}

fn read(cluster: &mut Sim, node: NodeId, key: &str) -> Option<i64> {
    match cluster.read_sync(node, key, 300) {
        Ok(KvResponse::Value(value)) => value,
        other => panic!("read {key} at {node}: {other:?}"),
    }
}

#[test]
fn leader_crash_with_four_nodes_connected() {
    for seed in 1..=5 {
        let mut c = Sim::new(5, seed);
        let old = wait_leader(&mut c, 500);
        for value in 0..20 {
            write_ok(&mut c, old, "k", value);
        }
        c.crash(old);
        let crashed_at = c.now_ticks();
        // Brief unavailability: nobody leads; followers refuse.
        let others: Vec<NodeId> = (1..=5).filter(|n| *n != old).collect();
        for id in &others {
            assert!(
                matches!(c.write(*id, "k", 99), Err(Rejected::NotLeader { .. })),
                "seed {seed}: node {id} accepted a write with no leader"
            );
        }
        // A new leader among the four, after at least one election timeout.
        assert!(
            c.run_until(600, |c| c.leader().is_some_and(|l| l != old)),
            "seed {seed}: no new leader"
        );
        let new = c.leader().unwrap();
        let outage = c.now_ticks() - crashed_at;
        let timeout_min = c.config(new).election_timeout_ticks_min;
        assert!(
            outage >= timeout_min,
            "seed {seed}: a new leader after {outage} ticks only"
        );
        assert!(outage <= 200, "seed {seed}: unavailable for {outage} ticks");
        // Nothing acknowledged was lost.
        assert_eq!(read(&mut c, new, "k"), Some(19), "seed {seed}");
        write_ok(&mut c, new, "k", 20);
        // The four converge; the old leader comes back and catches up.
        c.restart(old);
        let target = c.status(new).commit_index;
        assert!(
            c.run_until(300, |c| (1..=5).all(|n| c.applied_index(n) >= target)),
            "seed {seed}: replicas did not converge"
        );
        assert_eq!(c.local_value(old, "k"), Some(20), "seed {seed}");
        c.check().unwrap();
    }
}

#[test]
fn partition_two_three_only_the_majority_commits() {
    for seed in 1..=5 {
        let mut c = Sim::new(5, seed);
        let leader = wait_leader(&mut c, 500);
        write_ok(&mut c, leader, "k", 1);
        // The leader and one follower on the minority side.
        let buddy = if leader == 1 { 2 } else { 1 };
        let minority = [leader, buddy];
        let majority: Vec<NodeId> = (1..=5).filter(|n| !minority.contains(n)).collect();
        c.partition(&[&minority, &majority]);
        // A write sent right away gets a slot but can never be chosen.
        let doomed = c.write(leader, "k", 666).expect("still leader for now");
        // Within a few heartbeats the minority leader fails fast...
        c.run_ticks(20);
        let rejected = c.write(leader, "k", 2);
        assert!(
            matches!(
                rejected,
                Err(Rejected::Unavailable) | Err(Rejected::NotLeader { .. })
            ),
            "seed {seed}: minority leader answered {rejected:?}"
        );
        // ...while the majority elects a leader and commits.
        assert!(
            c.run_until(600, |c| c.leader().is_some_and(|l| majority.contains(&l))),
            "seed {seed}: the majority side elected no leader"
        );
        let new = c.leader().unwrap();
        for value in 3..8 {
            write_ok(&mut c, new, "k", value);
        }
        let minority_commit: Vec<u64> =
            minority.iter().map(|n| c.status(*n).commit_index).collect();
        c.run_ticks(100);
        for (n, before) in minority.iter().zip(minority_commit) {
            assert_eq!(
                c.status(*n).commit_index,
                before,
                "seed {seed}: minority node {n} committed"
            );
            assert_ne!(
                c.status(*n).role,
                Role::Leader,
                "seed {seed}: minority node {n} still leads"
            );
        }
        // Heal: everyone converges on the majority's history; the doomed
        // write ended "outcome unknown" and was never applied.
        c.heal();
        let new = wait_leader(&mut c, 600);
        write_ok(&mut c, new, "k", 8);
        let target = c.status(new).commit_index;
        assert!(c.run_until(300, |c| (1..=5).all(|n| c.applied_index(n) >= target)));
        for n in 1..=5 {
            assert_eq!(c.local_value(n, "k"), Some(8), "seed {seed}: node {n}");
        }
        assert!(
            matches!(
                c.kv_outcome(leader, doomed),
                Some(Err(OpError::Rejected(Rejected::OutcomeUnknown { .. })))
            ),
            "seed {seed}: {:?}",
            c.kv_outcome(leader, doomed)
        );
        assert!(c
            .applied(new)
            .iter()
            .all(|e| !format!("{e:?}").contains("666")));
        c.check().unwrap();
    }
}

#[test]
fn a_restarted_replica_catches_up_by_snapshot_after_compaction() {
    let mut c = Sim::with_config(3, 11, |config| config.snapshot_chunk_bytes = 64);
    let leader = wait_leader(&mut c, 500);
    let lagging = if leader == 3 { 2 } else { 3 };
    c.crash(lagging);
    for value in 0..50 {
        write_ok(&mut c, leader, &format!("k{}", value % 7), value);
    }
    for n in 1..=3 {
        if n != lagging {
            c.compact(n).unwrap();
        }
    }
    write_ok(&mut c, leader, "after", 1);
    c.restart(lagging);
    let target = c.status(leader).commit_index;
    assert!(
        c.run_until(500, |c| c.applied_index(lagging) >= target),
        "no catch-up"
    );
    assert!(
        c.stats().snapshots_installed >= 1,
        "caught up without a snapshot"
    );
    assert_eq!(c.local_value(lagging, "k6"), Some(48));
    assert_eq!(c.local_value(lagging, "after"), Some(1));
    c.check().unwrap();
}

#[test]
fn membership_change_adds_and_removes_voters() {
    let mut c = Sim::new(3, 5);
    let leader = wait_leader(&mut c, 500);
    write_ok(&mut c, leader, "k", 1);
    c.add_node(4, Membership::new([1, 2, 3]), |_| {});
    let grow = c
        .change_membership(leader, Membership::new([1, 2, 3, 4]))
        .unwrap();
    assert!(c.run_until(300, |c| c.outcome(leader, grow).is_some()));
    assert!(
        matches!(c.outcome(leader, grow), Some(Ok(_))),
        "{:?}",
        c.outcome(leader, grow)
    );
    write_ok(&mut c, leader, "k", 2);
    assert!(
        c.run_until(300, |c| c.local_value(4, "k") == Some(2)),
        "the new voter did not learn"
    );
    assert_eq!(c.status(4).membership, Membership::new([1, 2, 3, 4]));
    // Remove the leader itself: it steps down once the change is chosen and
    // the others elect a new leader.
    let rest: Vec<NodeId> = (1..=4).filter(|n| *n != leader).collect();
    let shrink = c
        .change_membership(leader, Membership::new(rest.iter().copied()))
        .unwrap();
    assert!(c.run_until(300, |c| c.outcome(leader, shrink).is_some()));
    assert!(matches!(c.outcome(leader, shrink), Some(Ok(_))));
    assert!(c.run_until(600, |c| c.leader().is_some_and(|l| l != leader)));
    let new = c.leader().unwrap();
    write_ok(&mut c, new, "k", 3);
    assert_eq!(read(&mut c, new, "k"), Some(3));
    assert_ne!(c.status(leader).role, Role::Leader);
    assert!(!c.core(leader).status().membership.is_voter(leader));
    c.check().unwrap();
}

#[test]
fn lossy_network_still_commits_and_agrees() {
    let mut c = Sim::new(5, 3);
    c.set_network(NetworkConfig {
        drop_rate: 0.1,
        duplicate_rate: 0.05,
        delay_ticks_min: 0.05,
        delay_ticks_max: 2.0,
        long_delay_rate: 0.02,
        long_delay_ticks: 20.0,
    });
    let mut written = 0;
    for value in 0..30 {
        let Some(leader) = c.leader().or_else(|| {
            c.run_until(300, |c| c.leader().is_some());
            c.leader()
        }) else {
            continue;
        };
        if c.write_sync(leader, "k", value, 300) == Ok(KvResponse::Written) {
            written = value;
        }
    }
    c.set_network(NetworkConfig::default());
    let leader = wait_leader(&mut c, 600);
    let value = read(&mut c, leader, "k").expect("some write succeeded");
    assert!(
        value >= written,
        "a later read saw {value}, an earlier write wrote {written}"
    );
    c.check().unwrap();
}

#[test]
fn core_reports_protocol_name() {
    assert_eq!(<MultiPaxosCore as Core>::PROTOCOL, "multipaxos");
}
