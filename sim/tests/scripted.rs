//! Scripted scenarios on the reference core: the Cluster API itself.

use consensus_api::{Bytes, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::testing::TinyRaft;
use consensus_sim::{Cluster, NetworkConfig};

#[test]
fn elects_a_leader_and_replicates_writes() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(5, 7);
    assert!(
        cluster.run_until(500, |c| c.leader().is_some()),
        "no leader within 500 ticks"
    );
    let leader = cluster.leader().unwrap();
    assert_eq!(
        cluster.write_sync(leader, "k", 7, 200),
        Ok(KvResponse::Written)
    );
    assert_eq!(
        cluster.read_sync(leader, "k", 200),
        Ok(KvResponse::Value(Some(7)))
    );
    assert_eq!(
        cluster.cas_sync(leader, "k", 7, 8, 200),
        Ok(KvResponse::CasOk)
    );
    assert_eq!(
        cluster.cas_sync(leader, "k", 7, 9, 200),
        Ok(KvResponse::CasFailed(Some(8)))
    );
    cluster.run_ticks(50);
    for id in cluster.node_ids() {
        assert_eq!(cluster.local_value(id, "k"), Some(8), "node {id}");
    }
    cluster.check().unwrap();
}

#[test]
fn minority_cannot_commit_and_majority_can() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(5, 11);
    assert!(cluster.run_until(500, |c| c.leader().is_some()));
    let old = cluster.leader().unwrap();
    let others: Vec<u64> = cluster
        .node_ids()
        .into_iter()
        .filter(|&n| n != old)
        .collect();
    let minority = [old, others[0]];
    let majority = &others[1..];
    cluster.partition(&[&minority, majority]);
    let ticket = cluster.propose(old, Bytes::from_static(b"lost")).unwrap();
    cluster.run_ticks(300);
    assert!(
        cluster.outcome(old, ticket).is_none(),
        "the minority leader cannot commit"
    );
    let new = cluster.leader().unwrap();
    assert!(majority.contains(&new), "the majority elected {new}");
    assert_eq!(
        cluster.write_sync(new, "k", 1, 300),
        Ok(KvResponse::Written)
    );
    cluster.heal();
    assert!(cluster.run_until(500, |c| c
        .node_ids()
        .iter()
        .all(|&n| c.local_value(n, "k") == Some(1))));
    assert!(
        matches!(cluster.outcome(old, ticket), Some(Err(_))),
        "the old leader's proposal is abandoned"
    );
    assert!(cluster
        .committed_log()
        .all(|(_, p)| format!("{p}") != "\"lost\""));
}

#[test]
fn crash_restart_keeps_committed_entries_and_snapshots_catch_up() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(3, 3);
    cluster.set_network(NetworkConfig::faulty());
    assert!(cluster.run_until(500, |c| c.leader().is_some()));
    let leader = cluster.leader().unwrap();
    let lagging = cluster
        .node_ids()
        .into_iter()
        .find(|&n| n != leader)
        .unwrap();
    cluster.crash(lagging);
    for value in 0..20 {
        let leader = cluster.leader().unwrap();
        assert_eq!(
            cluster.write_sync(leader, "k", value, 300),
            Ok(KvResponse::Written)
        );
    }
    let leader = cluster.leader().unwrap();
    let at = cluster.compact(leader).expect("compaction");
    assert!(at >= 20);
    cluster.restart(lagging);
    assert!(cluster.run_until(500, |c| c.local_value(lagging, "k") == Some(19)));
    assert!(
        cluster.stats().snapshots_installed >= 1,
        "the lagging node caught up by snapshot"
    );
    cluster.crash(leader);
    cluster.restart(leader);
    assert!(cluster.run_until(500, |c| c.local_value(leader, "k") == Some(19)));
    assert_eq!(cluster.status(leader).snapshot_index, at);
    assert!(cluster.run_until(500, |c| c.leader().is_some()));
    let leader = cluster.leader().unwrap();
    assert_eq!(cluster.status(leader).role, Role::Leader);
    assert_eq!(
        cluster.write_sync(leader, "k", 20, 300),
        Ok(KvResponse::Written)
    );
}

#[test]
fn custom_invariants_run_after_every_event() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(3, 5);
    cluster.set_panic_on_violation(false);
    cluster.add_invariant("no-leader-ever", |c| match c.leader() {
        Some(l) => Err(format!("node {l} became leader")),
        None => Ok(()),
    });
    cluster.run_ticks(500);
    let failure = cluster.check().unwrap_err();
    assert_eq!(failure.check, "no-leader-ever");
    assert!(failure.to_string().contains("seed 5"), "{failure}");
}

#[test]
fn same_seed_same_run() {
    let trace = |seed| {
        let mut cluster: Cluster<TinyRaft> = Cluster::new(5, seed);
        cluster.set_network(NetworkConfig::faulty());
        cluster.run_ticks(200);
        let leader = cluster.leader();
        (
            leader,
            cluster.steps(),
            cluster.stats().clone(),
            cluster.now_ns(),
        )
    };
    assert_eq!(trace(99), trace(99));
    assert_ne!(trace(99).1, trace(100).1);
}

#[test]
fn partial_connectivity_helpers() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(5, 21);
    cluster.quorum_loss(1, 2);
    assert!(cluster.links().is_up(1, 2) && cluster.links().is_up(2, 3));
    assert!(!cluster.links().is_up(1, 3) && !cluster.links().is_up(5, 1));
    cluster.heal();
    cluster.chain(&[1, 2, 3]);
    assert!(cluster.links().is_up(1, 2) && cluster.links().is_up(3, 2));
    assert!(!cluster.links().is_up(1, 3) && !cluster.links().is_up(3, 1));
    assert!(
        cluster.links().is_up(1, 4),
        "nodes outside the chain keep their links"
    );
    // A correct core stays safe (and here, with 4 and 5 fully connected, live).
    assert!(cluster.run_until(1000, |c| c.leader().is_some()));
    let leader = cluster.leader().unwrap();
    assert_eq!(
        cluster.write_sync(leader, "k", 1, 500),
        Ok(KvResponse::Written)
    );
}

#[test]
fn slow_nodes_bytes_and_queued_resume() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(3, 9);
    cluster.set_count_bytes(true);
    assert!(cluster.run_until(500, |c| c.leader().is_some()));
    assert!(cluster.stats().bytes_sent > 0, "bytes are counted");
    let leader = cluster.leader().unwrap();
    let follower = cluster
        .node_ids()
        .into_iter()
        .find(|&n| n != leader)
        .unwrap();
    // 50x slower links: a write still commits (through the other follower),
    // the slow one applies it later.
    cluster.slow_node(follower, 50.0);
    assert_eq!(cluster.slowdown(follower), 50.0);
    assert_eq!(
        cluster.write_sync(leader, "k", 1, 200),
        Ok(KvResponse::Written)
    );
    assert_eq!(cluster.local_value(follower, "k"), None, "still in flight");
    assert!(cluster.run_until(100, |c| c.local_value(follower, "k") == Some(1)));
    cluster.slow_node(follower, 1.0);
    assert_eq!(cluster.slowdown(follower), 1.0);
    // A paused leader resumed with resume_queued handles a request before
    // the mail that arrived during the pause (which deposes it).
    cluster.pause(leader);
    assert!(cluster.run_until(500, |c| c.leader().is_some_and(|l| l != leader)));
    cluster.resume_queued(leader);
    assert!(!cluster.is_paused(leader));
    assert_eq!(cluster.status(leader).role, Role::Leader);
    let ticket = cluster
        .write(leader, "k", 2)
        .expect("accepted before the mail");
    assert!(cluster.run_until(200, |c| c.kv_outcome(leader, ticket).is_some()));
    assert!(
        matches!(cluster.kv_outcome(leader, ticket), Some(Err(_))),
        "the deposed leader cannot commit it"
    );
    assert_ne!(cluster.status(leader).role, Role::Leader);
    cluster.check().unwrap();
}

#[test]
fn byte_counting_is_off_by_default() {
    let mut cluster: Cluster<TinyRaft> = Cluster::new(3, 9);
    cluster.run_ticks(100);
    assert!(cluster.stats().messages_sent > 0);
    assert_eq!(cluster.stats().bytes_sent, 0);
}
