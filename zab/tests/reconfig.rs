//! Dynamic reconfiguration on the simulator (ZooKeeper 3.5 style: one
//! proposal committed by quorums of the old and the new configuration),
//! with the primary-order invariants checked after every event.

mod primary_order;

use consensus_api::{Membership, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::Cluster;
use primary_order::add_primary_order_invariants;
use zab::ZabCore;

const WAIT: u64 = 600;

/// Grow 3 -> 4 while the leader crashes with the change pending, then
/// shrink 4 -> 3 removing the (new) leader.
#[test]
fn grow_with_a_leader_crash_mid_change_then_remove_the_leader() {
    for seed in 1..=5u64 {
        let mut cluster = Cluster::<ZabCore>::new(3, seed);
        add_primary_order_invariants(&mut cluster);
        cluster.add_node(4, Membership::new([1, 2, 3, 4]), |_| {});
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some()),
            "seed {seed}"
        );
        let leader = cluster.leader().unwrap();
        assert_eq!(
            cluster.write_sync(leader, "k", 1, WAIT),
            Ok(KvResponse::Written)
        );
        let change = cluster
            .change_membership(leader, Membership::new([1, 2, 3, 4]))
            .unwrap();
        // Crash the leader before the change can commit.
        cluster.crash(leader);
        // Regression: node 1 may lack the change (it still sees 1 2 3) while
        // node 2 holds it and needs node 4 for its joint quorum; node 4 only
        // gets node 1's votes because servers answer non-members too.
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| l != leader)),
            "seed {seed}: a new leader"
        );
        assert!(cluster.outcome(leader, change).is_none() || cluster.incarnation(leader) == 0);
        cluster.restart(leader);
        // Whether or not the change survived, the cluster keeps working and
        // every node converges on one configuration.
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| c
                .status(l)
                .membership
                .leave_joint()
                == c.status(l).membership)),
            "seed {seed}: a stable configuration is in force"
        );
        let current = cluster.leader().unwrap();
        if !cluster.status(current).membership.contains(4) {
            let again = cluster
                .change_membership(current, Membership::new([1, 2, 3, 4]))
                .unwrap();
            assert!(
                cluster.run_until(WAIT, |c| c.outcome(current, again).is_some()),
                "seed {seed}"
            );
        }
        assert!(
            cluster.run_until(WAIT, |c| c
                .leader()
                .is_some_and(|l| c.status(l).membership == Membership::new([1, 2, 3, 4]))),
            "seed {seed}: 4 is a voter"
        );
        let current = cluster.leader().unwrap();
        assert_eq!(
            cluster.write_sync(current, "k", 2, WAIT),
            Ok(KvResponse::Written)
        );
        assert!(
            cluster.run_until(WAIT, |c| c.local_value(4, "k") == Some(2)),
            "seed {seed}: node 4 applies"
        );
        // Remove the leader itself: it steps down once the change commits.
        let rest: Vec<u64> = (1..=4).filter(|id| *id != current).collect();
        let removal = cluster
            .change_membership(current, Membership::new(rest.clone()))
            .unwrap();
        assert!(
            cluster.run_until(WAIT, |c| c.outcome(current, removal).is_some()),
            "seed {seed}"
        );
        assert!(
            matches!(cluster.outcome(current, removal), Some(Ok(_))),
            "seed {seed}"
        );
        assert!(
            cluster.run_until(WAIT, |c| c.leader().is_some_and(|l| rest.contains(&l))),
            "seed {seed}: a remaining member leads"
        );
        assert_ne!(cluster.status(current).role, Role::Leader);
        let last = cluster.leader().unwrap();
        assert_eq!(
            cluster.write_sync(last, "k", 3, WAIT),
            Ok(KvResponse::Written)
        );
        for id in &rest {
            assert!(
                cluster.run_until(WAIT, |c| c.local_value(*id, "k") == Some(3)),
                "seed {seed} node {id}"
            );
        }
        cluster.check().unwrap();
    }
}
