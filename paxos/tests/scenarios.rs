//! The seed article's failure game ("Paxos failure scenarios") as simulator
//! scenarios, plus a few more, on `consensus-sim`'s scripted `Cluster`.
//! Every sim invariant (agreement, contiguous applied sequences, commit
//! monotone ...) is checked after every event.

use consensus_api::{Bytes, Payload, Rejected, Role};
use consensus_sim::kv::KvResponse;
use consensus_sim::{Cluster, NetworkConfig};
use paxos::PaxosCore;

const WAIT: u64 = 500;

fn cluster(seed: u64) -> Cluster<PaxosCore> {
    Cluster::new(5, seed)
}

fn committed_commands(cluster: &Cluster<PaxosCore>) -> Vec<Bytes> {
    cluster
        .committed_log()
        .filter_map(|(_, payload)| match payload {
            Payload::Command(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

/// Scenario 1 of the seed: a node crashes (in classic Paxos there is no
/// leader: any proposer may be the one that dies), 4 nodes remain
/// connected. Nothing acknowledged is lost and progress continues at once.
#[test]
fn a_crashed_node_with_four_connected_loses_nothing() {
    let mut cluster = cluster(1);
    for value in 0..10 {
        let outcome = cluster.write_sync(1 + value as u64 % 5, "k", value, WAIT);
        assert_eq!(outcome, Ok(KvResponse::Written), "write {value}");
    }
    for id in 1..=5 {
        assert_eq!(cluster.status(id).role, Role::Peer);
        assert_eq!(cluster.status(id).leader, None);
    }
    // Node 1 crashes with a proposal of its own in flight.
    let in_flight = cluster
        .propose(1, Bytes::from_static(b"raw-in-flight"))
        .unwrap();
    cluster.crash(1);
    let before = cluster.now_ticks();
    let outcome = cluster.write_sync(2, "k", 100, WAIT);
    assert_eq!(outcome, Ok(KvResponse::Written));
    assert!(
        cluster.now_ticks() - before < 50,
        "no election to wait for: the write took {} ticks",
        cluster.now_ticks() - before
    );
    for id in 2..=5 {
        let read = cluster.read_sync(id, "k", WAIT);
        assert_eq!(read, Ok(KvResponse::Value(Some(100))), "node {id}");
    }
    // The crashed proposer's ticket died with it; its command was either
    // chosen once or not at all.
    let copies = committed_commands(&cluster)
        .iter()
        .filter(|c| c.as_ref() == b"raw-in-flight")
        .count();
    assert!(copies <= 1);
    let _ = in_flight;
    cluster.restart(1);
    assert!(cluster.run_until(WAIT, |c| c.applied_index(1) == c.applied_index(2)));
    assert_eq!(
        cluster.read_sync(1, "k", WAIT),
        Ok(KvResponse::Value(Some(100)))
    );
    cluster.check().unwrap();
}

/// Scenario 2 of the seed: a partition 2 | 3. Only the 3-node side chooses
/// values; proposals on the 2-node side never complete with success and are
/// answered `Unavailable` (they had no effect).
#[test]
fn a_partition_two_three_only_the_majority_side_chooses() {
    let mut cluster = cluster(2);
    assert_eq!(cluster.write_sync(1, "k", 1, WAIT), Ok(KvResponse::Written));
    cluster.partition(&[&[1, 2], &[3, 4, 5]]);
    let minority_tickets: Vec<_> = (0..3)
        .map(|i| {
            let command = Bytes::from(format!("minority-{i}"));
            (1 + i % 2, cluster.propose(1 + i % 2, command).unwrap())
        })
        .collect();
    assert_eq!(cluster.write_sync(4, "k", 2, WAIT), Ok(KvResponse::Written));
    assert_eq!(cluster.write_sync(3, "k", 3, WAIT), Ok(KvResponse::Written));
    assert!(cluster.run_until(WAIT, |c| {
        minority_tickets
            .iter()
            .all(|(node, ticket)| c.outcome(*node, *ticket).is_some())
    }));
    for (node, ticket) in &minority_tickets {
        assert_eq!(
            cluster.outcome(*node, *ticket),
            Some(&Err(Rejected::Unavailable)),
            "node {node}"
        );
    }
    // New requests on the minority side fail fast.
    assert_eq!(
        cluster.propose(1, Bytes::from_static(b"late")),
        Err(Rejected::Unavailable)
    );
    assert_eq!(cluster.read(2, "k"), Err(Rejected::Unavailable));
    let minority_commit = cluster.status(1).commit_index;
    cluster.run_ticks(200);
    assert_eq!(
        cluster.status(1).commit_index,
        minority_commit,
        "the 2-side chooses nothing"
    );
    cluster.heal();
    assert!(cluster.run_until(WAIT, |c| c.applied_index(1) == c.applied_index(3)));
    assert_eq!(
        cluster.read_sync(1, "k", WAIT),
        Ok(KvResponse::Value(Some(3)))
    );
    assert!(
        committed_commands(&cluster)
            .iter()
            .all(|c| !c.starts_with(b"minority-")),
        "no minority-side proposal was chosen"
    );
    cluster.check().unwrap();
}

/// Dueling proposers: every node proposes at once over a lossy, reordering
/// network; every proposal commits exactly once.
#[test]
fn concurrent_proposers_on_a_lossy_network_each_commit_once() {
    let mut cluster = cluster(3);
    cluster.set_network(NetworkConfig {
        drop_rate: 0.05,
        duplicate_rate: 0.02,
        ..NetworkConfig::default()
    });
    let mut tickets = Vec::new();
    for round in 0..20 {
        for id in 1..=5 {
            let command = Bytes::from(format!("n{id}-r{round}"));
            tickets.push((id, cluster.propose(id, command).unwrap()));
        }
        cluster.run_ticks(1);
    }
    assert!(cluster.run_until(2000, |c| tickets
        .iter()
        .all(|(id, t)| c.outcome(*id, *t).is_some())));
    for (id, ticket) in &tickets {
        assert!(
            matches!(cluster.outcome(*id, *ticket), Some(Ok(_))),
            "node {id} {ticket}"
        );
    }
    let commands = committed_commands(&cluster);
    assert_eq!(commands.len(), 100);
    let unique: std::collections::BTreeSet<_> = commands.iter().collect();
    assert_eq!(unique.len(), 100, "no command chosen twice");
    cluster.check().unwrap();
}

/// A node that was down while the others compacted their logs comes back
/// through a snapshot transfer.
#[test]
fn a_restarted_node_catches_up_through_a_snapshot() {
    let mut cluster = cluster(4);
    cluster.crash(5);
    for value in 0..30 {
        assert_eq!(
            cluster.write_sync(1 + value as u64 % 4, "k", value, WAIT),
            Ok(KvResponse::Written)
        );
    }
    for id in 1..=4 {
        cluster.compact(id).unwrap();
    }
    cluster.restart(5);
    assert!(cluster.run_until(WAIT, |c| c.status(5).snapshot_index > 0
        && c.applied_index(5) >= c.applied_index(1)));
    assert_eq!(
        cluster.read_sync(5, "k", WAIT),
        Ok(KvResponse::Value(Some(29)))
    );
    cluster.check().unwrap();
}

/// Every node crashes and restarts: the chosen log is rebuilt from the
/// stores and the cluster goes on.
#[test]
fn a_full_cluster_restart_keeps_the_log() {
    let mut cluster = cluster(5);
    for value in 0..10 {
        assert_eq!(
            cluster.write_sync(2, "k", value, WAIT),
            Ok(KvResponse::Written)
        );
    }
    for id in 1..=5 {
        cluster.crash(id);
    }
    for id in 1..=5 {
        cluster.restart(id);
    }
    assert_eq!(
        cluster.read_sync(4, "k", WAIT),
        Ok(KvResponse::Value(Some(9)))
    );
    assert_eq!(
        cluster.write_sync(3, "k", 10, WAIT),
        Ok(KvResponse::Written)
    );
    cluster.check().unwrap();
}

/// A node paused (a long GC) while others move on resumes and catches up;
/// its stale proposals cannot overwrite anything.
#[test]
fn a_paused_proposer_resumes_safely() {
    let mut cluster = cluster(6);
    assert_eq!(cluster.write_sync(1, "k", 1, WAIT), Ok(KvResponse::Written));
    let ticket = cluster
        .propose(1, Bytes::from_static(b"before-pause"))
        .unwrap();
    cluster.pause(1);
    for value in 2..8 {
        assert_eq!(
            cluster.write_sync(2, "k", value, WAIT),
            Ok(KvResponse::Written)
        );
    }
    cluster.resume(1);
    assert!(cluster.run_until(WAIT, |c| c.outcome(1, ticket).is_some()));
    assert!(cluster.run_until(WAIT, |c| c.applied_index(1) == c.applied_index(2)));
    assert_eq!(
        cluster.read_sync(1, "k", WAIT),
        Ok(KvResponse::Value(Some(7)))
    );
    cluster.check().unwrap();
}
