//! The rule test of a leader's write in parallel with replication
//! ([`Ready::early_messages`](consensus_api::Ready::early_messages), Raft
//! thesis §10.2.1), shared by every core that marks messages early.

use consensus_api::{Core, NodeId};

use crate::cluster::Cluster;
use crate::kv::KvResponse;

/// Ticks a step of this test may take at most.
const TICKS_MAX: u64 = 3_000;

/// A leader crashes after its replication of a new write left and before
/// its own copy was synced. Checks, on a 3-node cluster of `C`:
///
/// 1. the replication did leave before the sync (the core marked it early
///    and the driver sent it first);
/// 2. the leader's own copy is gone after the restart (the crash modelled
///    the lost write), and the write was not acknowledged to the client;
/// 3. when one follower receives the replication and answers, no node
///    commits the write: one follower's copy is not a quorum, and the lost
///    copy of the old leader counts for nothing;
/// 4. after the network heals the cluster elects a leader, commits new
///    writes, and every simulator invariant holds (agreement, no rollback,
///    acknowledged writes present).
///
/// Panics with a message naming the step that failed.
pub fn leader_crash_before_own_sync<C: Core>(seed: u64) {
    let mut cluster: Cluster<C> = Cluster::new(3, seed);
    let leader = establish_leader(&mut cluster);
    cluster.set_manual(true);
    for _ in 0..100 {
        if cluster.in_flight().is_empty() {
            break;
        }
        cluster.deliver_where(|_| Some(true));
    }
    let last_before = cluster.status(leader).last_index;
    let early_before = cluster.stats().early_messages;
    cluster.crash_before_next_sync(leader);
    let ticket = cluster
        .write(leader, "parallel", 42)
        .expect("the established leader accepts a write");
    assert!(
        !cluster.is_alive(leader),
        "seed {seed}: the leader should have crashed at its write"
    );
    assert!(
        cluster.stats().early_messages > early_before,
        "seed {seed}: the leader's replication of its own write should leave before its sync"
    );
    let replicated: Vec<NodeId> = cluster
        .in_flight()
        .iter()
        .filter(|m| m.from == leader)
        .map(|m| m.to)
        .collect();
    assert!(
        !replicated.is_empty(),
        "seed {seed}: the early replication should be on the wire after the crash"
    );
    cluster.restart(leader);
    assert_eq!(
        cluster.status(leader).last_index,
        last_before,
        "seed {seed}: the restarted leader must not hold its unsynced write"
    );
    assert!(
        cluster.outcome(leader, ticket).is_none(),
        "seed {seed}: a write lost before its sync must not be acknowledged"
    );
    let follower = replicated[0];
    cluster.deliver_where(|m| {
        if m.from == leader && m.to == follower {
            Some(true)
        } else if m.from == leader {
            Some(false)
        } else {
            None
        }
    });
    cluster.deliver_where(|m| (m.from == follower && m.to == leader).then_some(true));
    for id in cluster.node_ids() {
        if cluster.is_alive(id) {
            let commit = cluster.status(id).commit_index;
            assert!(
                commit <= last_before,
                "seed {seed}: node {id} committed index {commit} although only one follower \
                 holds the write at {} (the old leader's copy was lost before its sync)",
                last_before + 1
            );
        }
    }
    cluster.set_manual(false);
    let new_leader = establish_leader(&mut cluster);
    assert_eq!(
        cluster.write_sync(new_leader, "after", 7, TICKS_MAX),
        Ok(KvResponse::Written),
        "seed {seed}: the healed cluster commits again"
    );
    cluster
        .check()
        .unwrap_or_else(|failure| panic!("seed {seed}: {failure}"));
}

/// Runs until a leader is elected and has committed a write of its own term,
/// and returns it.
fn establish_leader<C: Core>(cluster: &mut Cluster<C>) -> NodeId {
    let seed = cluster.seed();
    for _ in 0..10 {
        assert!(
            cluster.run_until(TICKS_MAX, |c| c.leader().is_some()),
            "seed {seed}: no leader within {TICKS_MAX} ticks"
        );
        let leader = cluster.leader().expect("a leader");
        if cluster.write_sync(leader, "warm-up", 1, TICKS_MAX) == Ok(KvResponse::Written) {
            cluster.run_ticks(10);
            if cluster.leader() == Some(leader) {
                return leader;
            }
        }
    }
    panic!("seed {seed}: no stable leader committed a write");
}
