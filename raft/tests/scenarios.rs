//! The seed article's Raft failure scenarios as named simulator tests
//! (`shared/seed/`, "Raft failure scenarios - partition, crash, slow disk",
//! "split vote", "GC pauses and stop-the-world"). Nodes A..E are 1..5. The
//! simulator checks its safety invariants after every event (agreement on
//! applied entries, no rollback of applied entries, one leader per term);
//! these tests add the scenario-specific expectations.

use consensus_api::{NodeId, Rejected, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::{Cluster, OpError};
use raft::RaftCore;

const A: NodeId = 1;
const B: NodeId = 2;

/// Runs until a leader is elected and makes it node `leader` (by
/// leadership transfer if needed).
fn with_leader(cluster: &mut Cluster<RaftCore>, leader: NodeId) {
    assert!(
        cluster.run_until(500, |c| c.leader().is_some()),
        "no leader elected"
    );
    let current = cluster.leader().expect("leader");
    if current != leader {
        cluster
            .transfer_leadership(current, leader)
            .expect("transfer starts");
        assert!(
            cluster.run_until(300, |c| c.leader() == Some(leader)),
            "leadership did not move to {leader}"
        );
    }
    // Let the new leader commit its no-op.
    assert_eq!(
        cluster.write_sync(leader, "warmup", 0, 200),
        Ok(KvResponse::Written)
    );
}

// Seed, "Scenario 1: Partition 3-2" and "Scenario 2: Old leader isolated":
// leader A with B on the minority side keeps receiving writes and commits
// none of them (it refuses them fast once it notices); C, D, E elect a leader
// and commit; after the heal A's uncommitted tail is overwritten and no
// committed entry is lost.
#[test]
fn partition_3_2_minority_leader_commits_nothing_and_its_tail_is_overwritten() {
    let mut cluster: Cluster<RaftCore> = Cluster::new(5, 11);
    with_leader(&mut cluster, A);
    assert_eq!(cluster.write_sync(A, "x", 1, 200), Ok(KvResponse::Written));
    let a_term = cluster.status(A).epoch;
    let commit_before = cluster.status(A).commit_index;

    cluster.partition(&[&[A, B], &[3, 4, 5]]);
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for value in 100..160 {
        match cluster.write(A, "x", value) {
            Ok(ticket) => accepted.push(ticket),
            Err(rejected) => refused.push(rejected),
        }
        cluster.run_ticks(1);
        assert_eq!(
            cluster.status(A).commit_index,
            commit_before,
            "the minority commits nothing"
        );
    }
    assert!(
        !accepted.is_empty(),
        "A accepted writes before it noticed the partition"
    );
    assert!(
        refused.contains(&Rejected::Unavailable),
        "A refuses writes with Unavailable once it cannot reach a quorum: {refused:?}"
    );
    assert!(
        accepted.len() < 15,
        "A stops building an uncommitted tail quickly ({})",
        accepted.len()
    );
    let tail_end = cluster.status(A).last_index;
    assert!(tail_end > commit_before, "A holds an uncommitted tail");
    assert_ne!(
        cluster.status(A).role,
        Role::Leader,
        "check-quorum: A stepped down"
    );

    let majority_leader = cluster.leader().expect("C, D, E elected a leader");
    assert!([3, 4, 5].contains(&majority_leader));
    assert!(cluster.status(majority_leader).epoch > a_term);
    assert_eq!(
        cluster.write_sync(majority_leader, "x", 2, 200),
        Ok(KvResponse::Written)
    );

    cluster.heal();
    let target = cluster.status(majority_leader).commit_index;
    assert!(cluster.run_until(500, |c| (1..=5)
        .all(|id| c.status(id).commit_index >= target)));
    for ticket in accepted {
        assert!(
            matches!(
                cluster.kv_outcome(A, ticket),
                Some(Err(OpError::Rejected(Rejected::OutcomeUnknown { .. })))
            ),
            "a minority write never succeeds"
        );
    }
    // A's tail was overwritten by entries of the new leader's terms.
    let entries = &cluster.store(A).durable().entries;
    for index in commit_before + 1..=tail_end {
        if let Some(entry) = entries.get(&index) {
            assert!(
                entry.epoch > a_term,
                "entry {index} of A's old tail survived: {entry:?}"
            );
        }
    }
    let leader = cluster.leader().expect("a leader after the heal");
    assert_eq!(
        cluster.read_sync(leader, "x", 200),
        Ok(KvResponse::Value(Some(2)))
    );
    cluster.check().expect("no invariant broke");
}

// Seed, "GC pauses and stop-the-world": a leader paused for several election
// timeouts comes back with a stale term, observes the higher term and steps
// down; its clients get no false success.
#[test]
fn paused_leader_returns_with_a_stale_term_and_steps_down() {
    let mut cluster: Cluster<RaftCore> = Cluster::new(5, 23);
    with_leader(&mut cluster, A);
    let old_term = cluster.status(A).epoch;
    cluster.pause(A);
    cluster.run_ticks(5 * 30);
    let new_leader = cluster.leader().expect("the others elected a new leader");
    assert_ne!(new_leader, A);
    let new_term = cluster.status(new_leader).epoch;
    assert!(new_term > old_term);
    assert_eq!(
        cluster.write_sync(new_leader, "y", 7, 200),
        Ok(KvResponse::Written)
    );
    // A still believes it leads the old term the moment it resumes.
    assert_eq!(cluster.status(A).role, Role::Leader);
    cluster.resume(A);
    assert!(
        cluster.run_until(100, |c| c.status(A).role != Role::Leader
            && c.status(A).epoch >= new_term),
        "A stepped down after seeing the higher term"
    );
    match cluster.write(A, "y", 8) {
        Err(Rejected::NotLeader { hint }) => assert_ne!(hint, Some(A)),
        other => panic!("a deposed leader must redirect, got {other:?}"),
    }
    cluster.check().expect("no invariant broke");
}

// Seed, "Scenario 3: Slow follower": a follower that lags far behind catches
// up through nextIndex / matchIndex.
#[test]
fn slow_follower_catches_up_from_the_log() {
    let mut cluster: Cluster<RaftCore> = Cluster::new(5, 31);
    with_leader(&mut cluster, A);
    let slow = 5;
    cluster.isolate(slow);
    for value in 0..300 {
        cluster.write(A, "z", value).expect("leader accepts");
        cluster.run_ticks(1);
    }
    assert!(cluster.run_until(200, |c| c.status(A).commit_index >= c.status(A).last_index));
    let target = cluster.status(A).commit_index;
    assert!(
        cluster.status(slow).commit_index + 250 < target,
        "the follower lags far behind"
    );
    cluster.heal();
    assert!(
        cluster.run_until(500, |c| c.applied_index(slow) >= target),
        "the slow follower caught up"
    );
    assert_eq!(cluster.local_value(slow, "z"), cluster.local_value(A, "z"));
    cluster.check().expect("no invariant broke");
}

// Seed, "Scenario 3: Slow follower" when the leader has compacted its log:
// the follower catches up by InstallSnapshot, then by the log.
#[test]
fn slow_follower_catches_up_by_snapshot_after_compaction() {
    let mut cluster: Cluster<RaftCore> =
        Cluster::with_config(5, 47, |c| c.snapshot_chunk_bytes = 64);
    with_leader(&mut cluster, A);
    let slow = 4;
    cluster.isolate(slow);
    for value in 0..200 {
        cluster
            .write(A, &format!("k{}", value % 10), value)
            .expect("leader accepts");
        cluster.run_ticks(1);
    }
    assert!(cluster.run_until(200, |c| c.applied_index(A) >= c.status(A).last_index));
    let compacted = cluster.compact(A).expect("leader compacts");
    assert!(compacted > 200);
    for value in 0..20 {
        cluster.write(A, "after", value).expect("leader accepts");
        cluster.run_ticks(1);
    }
    let installed_before = cluster.stats().snapshots_installed;
    cluster.heal();
    let target = cluster.status(A).commit_index;
    assert!(
        cluster.run_until(800, |c| c.applied_index(slow) >= target),
        "caught up"
    );
    assert!(
        cluster.stats().snapshots_installed > installed_before,
        "by snapshot"
    );
    assert!(cluster.status(slow).snapshot_index >= compacted);
    for key in (0..10)
        .map(|k| format!("k{k}"))
        .chain(["after".to_string()])
    {
        assert_eq!(
            cluster.local_value(slow, &key),
            cluster.local_value(A, &key),
            "key {key}"
        );
    }
    cluster.check().expect("no invariant broke");
}

// Seed, "Failure scenario: split vote": with almost no randomization and no
// pre-vote, several nodes time out together and split the votes; the
// randomized retries still elect exactly one leader.
#[test]
fn split_votes_resolve() {
    let mut split_seen = 0;
    for seed in 0..20 {
        let mut cluster: Cluster<RaftCore> = Cluster::with_config(5, seed, |c| {
            c.pre_vote = false;
            c.election_timeout_ticks_min = 15;
            c.election_timeout_ticks_max = 17;
        });
        assert!(
            cluster.run_until(2000, |c| c.leader().is_some()),
            "seed {seed}: no leader"
        );
        let leader = cluster.leader().expect("leader");
        let term = cluster.status(leader).epoch;
        if term > 1 {
            split_seen += 1;
        }
        let leaders = (1..=5)
            .filter(|id| cluster.status(*id).role == Role::Leader)
            .count();
        assert_eq!(leaders, 1, "seed {seed}");
        cluster.check().expect("no invariant broke");
    }
    assert!(
        split_seen > 0,
        "the narrow timeout window did provoke split votes"
    );
}

// Seed, "Failure scenario: leader crash mid-transition" at cluster scale: the
// leader crashes right after starting a membership change; the cluster ends
// in either the old or the new configuration, never in between, and keeps
// committing.
#[test]
fn leader_crash_mid_membership_change_finishes_or_rolls_back() {
    for seed in 0..6 {
        let mut cluster: Cluster<RaftCore> = Cluster::new(5, 100 + seed);
        with_leader(&mut cluster, A);
        let target = consensus_api::Membership::new([2, 3, 4, 5]);
        cluster
            .change_membership(A, target.clone())
            .expect("change starts");
        cluster.run_ticks(seed);
        cluster.crash(A);
        assert!(
            cluster.run_until(600, |c| c.leader().is_some_and(|l| l != A)),
            "seed {seed}"
        );
        let leader = cluster.leader().expect("leader");
        assert!(cluster.run_until(300, |c| !c.status(leader).membership.is_joint()));
        let membership = cluster.status(leader).membership;
        assert!(
            membership == target || membership == consensus_api::Membership::new([1, 2, 3, 4, 5]),
            "seed {seed}: {membership}"
        );
        assert_eq!(
            cluster.write_sync(leader, "after", 1, 300),
            Ok(KvResponse::Written),
            "seed {seed}"
        );
        cluster.check().expect("no invariant broke");
    }
}
