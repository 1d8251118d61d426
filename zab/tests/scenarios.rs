//! The seed article's failure scenarios, on the simulator (virtual time,
//! `consensus-sim`), with the primary-order invariants checked after every
//! event.

mod primary_order;

use consensus_api::{Bytes, Rejected, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::{Cluster, KvOutcome, OpError};
use primary_order::add_primary_order_invariants;
use zab::ZabCore;

const WAIT: u64 = 500;

fn cluster(seed: u64) -> Cluster<ZabCore> {
    let mut cluster = Cluster::<ZabCore>::new(5, seed);
    add_primary_order_invariants(&mut cluster);
    cluster
}

fn elect(cluster: &mut Cluster<ZabCore>) -> u64 {
    assert!(
        cluster.run_until(WAIT, |c| c.leader().is_some()),
        "a leader is elected"
    );
    cluster.leader().unwrap()
}

fn written(outcome: KvOutcome) -> bool {
    matches!(outcome, Ok(KvResponse::Written))
}

/// Seed scenario 1: the leader crashes, 4 nodes stay connected. Safety holds,
/// the cluster is briefly unavailable, a new leader is elected and commits;
/// nothing committed is lost.
#[test]
fn leader_crash_with_four_connected() {
    for seed in 1..=5 {
        let mut cluster = cluster(seed);
        let old = elect(&mut cluster);
        let old_epoch = cluster.status(old).epoch;
        for value in 1..=5 {
            assert!(
                written(cluster.write_sync(old, "k", value, WAIT)),
                "seed {seed}"
            );
        }
        cluster.crash(old);
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| l != old)),
            "seed {seed}: a new leader among the 4"
        );
        let new = cluster.leader().unwrap();
        assert!(
            cluster.status(new).epoch > old_epoch,
            "seed {seed}: a new epoch"
        );
        assert_eq!(
            cluster.read_sync(new, "k", WAIT),
            Ok(KvResponse::Value(Some(5)))
        );
        assert!(
            written(cluster.write_sync(new, "k", 6, WAIT)),
            "seed {seed}"
        );
        cluster.restart(old);
        assert!(
            cluster.run_until(WAIT, |c| c.status(old).role == Role::Follower
                && c.local_value(old, "k") == Some(6)),
            "seed {seed}: the old leader rejoins as a follower and catches up"
        );
        cluster.check().unwrap();
    }
}

/// Seed scenario 2: a 2 | 3 partition with the leader in the minority. Only
/// the majority commits; the minority leader abandons leadership and
/// rejects proposals with `Unavailable`; after the heal everyone converges.
#[test]
fn partition_two_three_only_the_majority_progresses() {
    for seed in 1..=5 {
        let mut cluster = cluster(seed);
        let old = elect(&mut cluster);
        assert!(written(cluster.write_sync(old, "k", 1, WAIT)));
        let buddy = if old == 1 { 2 } else { 1 };
        let majority: Vec<u64> = (1..=5).filter(|n| *n != old && *n != buddy).collect();
        cluster.partition(&[&[old, buddy], &majority]);
        assert!(
            cluster.run_until(WAIT, |c| c.status(old).role != Role::Leader),
            "seed {seed}: the minority leader abandons leadership"
        );
        assert_eq!(
            cluster.propose(old, Bytes::from_static(b"minority")),
            Err(Rejected::Unavailable),
            "seed {seed}"
        );
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| majority.contains(&l))),
            "seed {seed}: the majority elects a leader"
        );
        let new = cluster.leader().unwrap();
        assert!(
            written(cluster.write_sync(new, "k", 2, WAIT)),
            "seed {seed}: majority commits"
        );
        // The minority never commits anything new.
        let minority_write = cluster.write_sync(buddy, "k", 3, 200);
        assert!(
            matches!(
                minority_write,
                Err(OpError::Rejected(_)) | Err(OpError::Timeout)
            ),
            "seed {seed}: {minority_write:?}"
        );
        assert_eq!(cluster.local_value(old, "k"), Some(1));
        assert_eq!(cluster.local_value(buddy, "k"), Some(1));
        cluster.heal();
        assert!(
            cluster.run_until(WAIT, |c| c.local_value(old, "k") == Some(2)
                && c.local_value(buddy, "k") == Some(2)),
            "seed {seed}: the minority catches up after the heal"
        );
        cluster.check().unwrap();
    }
}

/// Seed scenario 3 (ZAB-specific): a proposal of the old epoch that reached
/// only the old leader is truncated once the new epoch starts, and never
/// delivered anywhere.
#[test]
fn old_epoch_proposal_reaching_only_the_old_leader_is_truncated() {
    for seed in 1..=5 {
        let mut cluster = cluster(seed);
        let old = elect(&mut cluster);
        let old_epoch = cluster.status(old).epoch;
        assert!(written(cluster.write_sync(old, "k", 1, WAIT)));
        cluster.isolate(old);
        let doomed = cluster.propose(old, Bytes::from_static(b"doomed")).unwrap();
        let doomed_index = cluster.status(old).last_index;
        let doomed_zxid = cluster.core(old).last_zxid();
        assert_eq!(doomed_zxid.epoch(), old_epoch);
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| l != old)),
            "seed {seed}: new leader"
        );
        let new = cluster.leader().unwrap();
        assert!(written(cluster.write_sync(new, "k", 2, WAIT)));
        assert_eq!(
            cluster.outcome(old, doomed),
            Some(&Err(Rejected::OutcomeUnknown { hint: None })),
            "seed {seed}: the old leader gave up on its pending proposal"
        );
        cluster.heal();
        assert!(
            cluster.run_until(WAIT, |c| c.local_value(old, "k") == Some(2)),
            "seed {seed}: the old leader rejoins"
        );
        assert_ne!(
            cluster.core(old).zxid_at(doomed_index),
            Some(doomed_zxid),
            "seed {seed}: truncated"
        );
        let stored = cluster
            .store(old)
            .durable()
            .entries
            .get(&doomed_index)
            .cloned();
        assert!(
            stored.is_none_or(|e| e.epoch != old_epoch
                || e.payload != consensus_api::Payload::Command(Bytes::from_static(b"doomed"))),
            "seed {seed}: the doomed proposal is gone from the store"
        );
        assert!(
            !cluster
                .committed_log()
                .any(|(_, p)| *p == consensus_api::Payload::Command(Bytes::from_static(b"doomed"))),
            "seed {seed}: never delivered"
        );
        cluster.check().unwrap();
    }
}

/// `sync()` then read, on a follower, sees the latest committed write.
#[test]
fn follower_read_after_sync_sees_the_latest_write() {
    let mut cluster = cluster(7);
    let leader = elect(&mut cluster);
    let follower = if leader == 1 { 2 } else { 1 };
    for value in 1..=3 {
        assert!(written(cluster.write_sync(leader, "k", value, WAIT)));
        assert_eq!(
            cluster.read_sync(follower, "k", WAIT),
            Ok(KvResponse::Value(Some(value)))
        );
    }
    cluster.check().unwrap();
}
