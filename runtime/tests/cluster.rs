//! The runtime's cluster suite: the same test bodies for every protocol,
//! over real QUIC on loopback with durable storage.
//!
//! Adding a protocol to the workspace adds one `protocol_suite!` line here.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use consensus_api::{Core, ReplicatedLog, SessionCommand};
use support::TestCluster;

/// Runs a test body on a multi-threaded runtime with an overall deadline.
fn run<F: std::future::Future<Output = ()>>(body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), body)
            .await
            .expect("test exceeded its 120 s deadline");
    });
}

/// Concurrent clients append; every node applies the same commands in the
/// same order; linearizable reads on every node see every acknowledged write.
async fn concurrent_appends_commit_in_order<C: Core>(size: u64) {
    let mut cluster = TestCluster::<C>::start(size).await;
    cluster.wait_ready().await;
    let mut acknowledged = BTreeSet::new();
    let mut highest = 0;
    // Several in-flight appends at once (one per "client"), many rounds.
    for round in 0..20u32 {
        let mut handles = Vec::new();
        for client in 0..4u32 {
            let body = Bytes::from(format!("r{round}-c{client}"));
            let node = cluster
                .node(cluster.ids()[client as usize % cluster.ids().len()])
                .clone();
            let command = SessionCommand::plain(&body);
            handles.push(tokio::spawn(
                async move { (body, node.append(command).await) },
            ));
        }
        for handle in handles {
            let (body, result) = handle.await.expect("client task");
            if let Ok(applied) = result {
                highest = highest.max(applied.index);
                acknowledged.insert(body);
            }
        }
        // Followers answer NotLeader: make sure progress happens through the cluster too.
        let body = Bytes::from(format!("r{round}-routed"));
        let applied = cluster.append(body.clone()).await.expect("routed append");
        highest = highest.max(applied.index);
        acknowledged.insert(body);
    }
    // A linearizable read sees every acknowledged write...
    let reference = cluster.read_log_anywhere().await;
    let bodies: BTreeSet<Bytes> = reference.iter().map(|(_, body)| body.clone()).collect();
    for body in &acknowledged {
        assert!(
            bodies.contains(body),
            "a linearizable read misses acknowledged {body:?}"
        );
    }
    // ...and every node applies the same sequence.
    cluster.wait_applied(highest).await;
    for id in cluster.ids() {
        let log = cluster.local_log(id).await;
        let common = log.len().min(reference.len());
        assert_eq!(
            log[..common],
            reference[..common],
            "node {id} applied a different sequence"
        );
        let bodies: BTreeSet<Bytes> = log.iter().map(|(_, body)| body.clone()).collect();
        for body in &acknowledged {
            assert!(
                bodies.contains(body),
                "node {id} misses acknowledged {body:?} once it applied {highest}"
            );
        }
        let indexes: Vec<_> = log.iter().map(|(index, _)| *index).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]),
            "node {id} applied out of order"
        );
    }
    cluster.shutdown_all().await;
}

/// Stopping the leader (or, without a leader, a node) lets the rest commit;
/// the stopped node restarts from its data directory and catches up.
async fn stopped_node_restarts_and_catches_up<C: Core>(size: u64) {
    let mut cluster = TestCluster::<C>::start(size).await;
    cluster.wait_ready().await;
    for i in 0..10 {
        cluster
            .append(Bytes::from(format!("before-{i}")))
            .await
            .expect("append");
    }
    let victim = cluster.agreed_leader().unwrap_or(1);
    cluster.stop(victim).await;
    let mut last = 0;
    for i in 0..10 {
        let applied = cluster
            .append(Bytes::from(format!("after-{i}")))
            .await
            .unwrap_or_else(|e| panic!("no commit after stopping node {victim}: {e}"));
        last = applied.index;
    }
    cluster.restart(victim).await;
    cluster
        .node(victim)
        .wait_for(support::WAIT, |s| s.applied_index >= last)
        .await
        .expect("restarted node catches up");
    let log = cluster.local_log(victim).await;
    for i in 0..10 {
        let body = Bytes::from(format!("after-{i}"));
        assert!(
            log.iter().any(|(_, b)| *b == body),
            "restarted node misses {body:?}"
        );
    }
    cluster.shutdown_all().await;
}

/// All nodes stop and restart from disk: every acknowledged append is there.
async fn full_restart_keeps_acknowledged_appends<C: Core>(size: u64) {
    let mut cluster = TestCluster::<C>::start(size).await;
    cluster.wait_ready().await;
    let mut acknowledged = Vec::new();
    for i in 0..25 {
        let body = Bytes::from(format!("durable-{i}"));
        cluster.append(body.clone()).await.expect("append");
        acknowledged.push(body);
    }
    cluster.shutdown_all().await;
    for id in 1..=size {
        cluster.restart(id).await;
    }
    cluster.wait_ready().await;
    let log = cluster.read_log_anywhere().await;
    for body in &acknowledged {
        assert!(
            log.iter().any(|(_, b)| b == body),
            "the cluster lost acknowledged {body:?}"
        );
    }
    let last = log.last().map(|(index, _)| *index).unwrap_or(0);
    cluster.wait_applied(last).await;
    for id in cluster.ids() {
        let local = cluster.local_log(id).await;
        for body in &acknowledged {
            assert!(
                local.iter().any(|(_, b)| b == body),
                "node {id} lost acknowledged {body:?}"
            );
        }
    }
    cluster.shutdown_all().await;
}

macro_rules! protocol_suite {
    ($name:ident, $core:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn three_nodes_concurrent_appends_commit_in_order() {
                run(concurrent_appends_commit_in_order::<$core>(3));
            }

            #[test]
            fn five_nodes_concurrent_appends_commit_in_order() {
                run(concurrent_appends_commit_in_order::<$core>(5));
            }

            #[test]
            fn three_nodes_stopped_node_restarts_and_catches_up() {
                run(stopped_node_restarts_and_catches_up::<$core>(3));
            }

            #[test]
            fn five_nodes_stopped_node_restarts_and_catches_up() {
                run(stopped_node_restarts_and_catches_up::<$core>(5));
            }

            #[test]
            fn three_nodes_full_restart_keeps_acknowledged_appends() {
                run(full_restart_keeps_acknowledged_appends::<$core>(3));
            }
        }
    };
}

protocol_suite!(raft_suite, raft::RaftCore);
protocol_suite!(multipaxos_suite, multipaxos::MultiPaxosCore);
protocol_suite!(paxos_suite, paxos::PaxosCore);
protocol_suite!(zab_suite, zab::ZabCore);
