//! Compaction and InstallSnapshot (Raft paper §7).

use std::collections::BTreeMap;

use consensus_api::{Bytes, Core, InitialState, LogStore, Membership, NodeId, Rejected, Snapshot};
use raft::{HardState, InstallSnapshot, Message, SnapshotOutcome};

use crate::harness::{log_with_terms, stored, Network, RaftNet};

/// Compacts `id` at its applied index with `data` and persists the snapshot.
fn compact(net: &mut Network, id: NodeId, data: &[u8]) -> Snapshot {
    let applied = net.status(id).applied_index;
    let node = net.nodes.get_mut(&id).expect("node");
    let snapshot = node
        .core_mut()
        .compact(applied, Bytes::copy_from_slice(data))
        .expect("compact");
    node.store.save_snapshot(&snapshot).expect("save");
    snapshot
}

/// Node 1 leads, node 3 is cut off while 20 commands commit, then node 1
/// compacts past them with `data`: node 3 (still cut off) can only catch
/// up by snapshot.
fn compacted_past_node_3(net: &mut Network, data: &[u8]) -> Snapshot {
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.propose(1, &format!("w{i}")).expect("accepted");
        net.deliver_all();
    }
    net.run(3);
    compact(net, 1, data)
}

fn snapshot_answers(net: &Network, from: NodeId) -> Vec<SnapshotOutcome> {
    net.queue
        .iter()
        .filter(|(f, _, _)| *f == from)
        .filter_map(|(_, _, m)| match m {
            Message::InstallSnapshotResponse(r) => Some(r.outcome.clone()),
            _ => None,
        })
        .collect()
}

fn chunk(index: u64, term: u64, data: &[u8], offset: usize, len: usize, checksum: u32) -> Message {
    Message::InstallSnapshot(InstallSnapshot {
        term: 5,
        snapshot_index: index,
        snapshot_term: term,
        membership: Membership::new([1, 2, 3]),
        protocol_state: Bytes::new(),
        offset: offset as u64,
        total_bytes: data.len() as u64,
        checksum,
        data: Bytes::copy_from_slice(&data[offset..offset + len]),
        done: offset + len == data.len(),
    })
}

// Reference: section 7
// A follower that fell behind the leader's compacted log receives the
// snapshot in chunks (offset by offset), installs it, and then catches up
// with ordinary AppendEntries.
#[test]
fn lagging_follower_catches_up_by_chunked_snapshot() {
    let mut net = Network::with_config(3, |c| c.snapshot_chunk_bytes = 16);
    let data = vec![7u8; 100];
    let snapshot = compacted_past_node_3(&mut net, &data);
    assert_eq!(snapshot.index, 21);
    assert_eq!(snapshot.epoch, 1);
    assert_eq!(snapshot.membership, Membership::new([1, 2, 3]));
    net.propose(1, "after").expect("accepted");
    net.heal();
    net.run(30);
    let chunks =
        net.count_delivered(|f, t, m| f == 1 && t == 3 && matches!(m, Message::InstallSnapshot(_)));
    assert_eq!(chunks, 7, "100 bytes in chunks of 16");
    let node = net.node(3);
    assert_eq!(node.machine.installed.len(), 1);
    assert_eq!(node.machine.installed[0].data, Bytes::from(data));
    assert_eq!(node.machine.installed[0].index, 21);
    assert_eq!(
        net.applied_commands(3),
        vec!["after"],
        "entries after the snapshot are applied"
    );
    let status = net.status(3);
    assert_eq!(status.snapshot_index, 21);
    assert_eq!(status.commit_index, 22);
    assert_eq!(status.applied_index, 22);
    assert_eq!(net.core(1).peer_state(3), Some("replicate"));
    // The store holds the snapshot and only the entries after it.
    assert_eq!(net.node(3).store.durable().snapshot_index(), 21);
    assert_eq!(net.stored_log(3), vec![(22, 1)]);
}

// Reference: section 7 ("if the snapshot is older than the follower's
// state, the follower ignores it"): a stale snapshot is refused, nothing is
// installed, and commit and applied indexes stay where they were.
#[test]
fn stale_snapshot_is_rejected() {
    let states: BTreeMap<NodeId, InitialState> =
        [(2, stored(5, None, log_with_terms(&[1; 10])))].into();
    let mut net = Network::from_states(&[1, 2, 3], states, |_| {});
    // Learn commit 10 from the leader of term 5.
    net.deliver(
        1,
        2,
        Message::Heartbeat(raft::Heartbeat {
            term: 5,
            commit: 10,
            read_round: 0,
        }),
    );
    assert_eq!(net.status(2).commit_index, 10);
    net.queue.clear();
    let data = b"old state".to_vec();
    net.deliver(
        1,
        2,
        chunk(6, 1, &data, 0, data.len(), crc32c::crc32c(&data)),
    );
    assert_eq!(
        snapshot_answers(&net, 2),
        vec![SnapshotOutcome::Done { match_index: 10 }]
    );
    assert!(net.node(2).machine.installed.is_empty());
    let status = net.status(2);
    assert_eq!(
        (
            status.commit_index,
            status.applied_index,
            status.snapshot_index
        ),
        (10, 10, 0)
    );
}

// Reference: section 7 ("if existing log entry has same index and term as
// snapshot's last included entry, retain log entries following it"): no
// transfer is needed, only the commit index advances.
#[test]
fn snapshot_matching_the_log_only_advances_the_commit_index() {
    let states: BTreeMap<NodeId, InitialState> =
        [(2, stored(5, None, log_with_terms(&[1; 10])))].into();
    let mut net = Network::from_states(&[1, 2, 3], states, |_| {});
    let data = b"state at 6".to_vec();
    net.deliver(1, 2, chunk(6, 1, &data, 0, 4, crc32c::crc32c(&data)));
    assert_eq!(
        snapshot_answers(&net, 2),
        vec![SnapshotOutcome::Done { match_index: 6 }]
    );
    assert!(net.node(2).machine.installed.is_empty());
    assert_eq!(net.status(2).commit_index, 6);
    assert_eq!(
        net.status(2).last_index,
        10,
        "entries after the snapshot are kept"
    );
    assert_eq!(net.node(2).machine.applied.len(), 6);
}

// Chunks must arrive in order; a gap or a duplicate is answered with the
// offset the follower expects, and a bad checksum restarts the transfer.
#[test]
fn snapshot_chunks_are_assembled_in_order_and_verified() {
    let states: BTreeMap<NodeId, InitialState> =
        [(2, stored(5, None, log_with_terms(&[1, 1])))].into();
    let mut net = Network::from_states(&[1, 2, 3], states, |_| {});
    let data: Vec<u8> = (0..30).collect();
    let crc = crc32c::crc32c(&data);
    net.deliver(1, 2, chunk(8, 3, &data, 10, 10, crc));
    net.deliver(1, 2, chunk(8, 3, &data, 0, 10, crc));
    net.deliver(1, 2, chunk(8, 3, &data, 0, 10, crc));
    net.deliver(1, 2, chunk(8, 3, &data, 20, 10, crc));
    net.deliver(1, 2, chunk(8, 3, &data, 10, 10, crc));
    assert_eq!(
        snapshot_answers(&net, 2),
        [0, 10, 10, 10, 20]
            .map(|next_offset| SnapshotOutcome::Receiving { next_offset })
            .to_vec()
    );
    net.queue.clear();
    // A corrupted last chunk (wrong checksum) restarts the transfer.
    let mut corrupted = data.clone();
    corrupted[25] ^= 0xff;
    net.deliver(1, 2, chunk(8, 3, &corrupted, 20, 10, crc));
    assert_eq!(
        snapshot_answers(&net, 2),
        vec![SnapshotOutcome::Receiving { next_offset: 0 }]
    );
    assert!(net.node(2).machine.installed.is_empty());
    net.queue.clear();
    for offset in [0, 10, 20] {
        net.deliver(1, 2, chunk(8, 3, &data, offset, 10, crc));
    }
    assert_eq!(
        snapshot_answers(&net, 2).last(),
        Some(&SnapshotOutcome::Done { match_index: 8 })
    );
    let node = net.node(2);
    assert_eq!(node.machine.installed.len(), 1);
    assert_eq!(node.machine.installed[0].data, Bytes::from(data));
    let status = net.status(2);
    assert_eq!(
        (
            status.commit_index,
            status.applied_index,
            status.snapshot_index,
            status.last_index
        ),
        (8, 8, 8, 8)
    );
    assert_eq!(net.stored_log(2), vec![], "the old log is discarded");
    assert_eq!(node.store.durable().snapshot_index(), 8);
}

// A node restarts from its snapshot plus the entries after it: commit and
// applied start at the snapshot, the log continues after it.
#[test]
fn restart_from_snapshot_and_entries() {
    let snapshot = Snapshot {
        index: 5,
        epoch: 2,
        membership: Membership::new([1, 2, 3]),
        protocol_state: Bytes::new(),
        data: Bytes::from_static(b"sm"),
    };
    let entries = (6..=8).map(|i| crate::harness::entry(i, 3)).collect();
    let state = InitialState {
        hard_state: Some(
            HardState {
                term: 3,
                vote: Some(2),
            }
            .encode(),
        ),
        snapshot: Some(snapshot),
        entries,
    };
    let core =
        raft::RaftCore::restore(crate::harness::config(1, &[1, 2, 3]), state).expect("restore");
    let status = core.status();
    assert_eq!(
        (
            status.commit_index,
            status.applied_index,
            status.snapshot_index,
            status.last_index
        ),
        (5, 5, 5, 8)
    );
    assert_eq!(status.epoch, 3);
    // A gap between the snapshot and the entries is refused.
    let broken = InitialState {
        hard_state: None,
        snapshot: None,
        entries: vec![crate::harness::entry(2, 1)],
    };
    assert!(raft::RaftCore::restore(crate::harness::config(1, &[1, 2, 3]), broken).is_err());
}

// Compaction only moves forward and only covers applied entries.
#[test]
fn compaction_is_validated() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a").expect("accepted");
    net.deliver_all();
    let applied = net.status(1).applied_index;
    assert_eq!(applied, 2);
    let core = net.core_mut(1);
    assert!(matches!(
        core.compact(3, Bytes::new()),
        Err(Rejected::InvalidCompaction { .. })
    ));
    core.compact(2, Bytes::new())
        .expect("compacts the applied prefix");
    assert!(matches!(
        core.compact(2, Bytes::new()),
        Err(Rejected::InvalidCompaction { .. })
    ));
}

// Reference: section 7, with etcd-raft's flow control: the leader sends one
// chunk at a time and waits for its answer; a chunk whose answer does not
// come is sent again after two heartbeat intervals, not sooner (no
// duplicate chunks while the answer may still come) and not never (the
// transfer would stall).
#[test]
fn a_lost_snapshot_chunk_is_sent_again_after_two_heartbeat_intervals() {
    // Heartbeat 3 ticks (with 2, `2 + heartbeat` would also give 4).
    let heartbeat = 3;
    let mut net = Network::with_config(3, |c| {
        c.snapshot_chunk_bytes = 16;
        c.heartbeat_interval_ticks = heartbeat;
    });
    compacted_past_node_3(&mut net, &[7u8; 100]);
    net.heal();
    let is_chunk_to_3 = |t: NodeId, m: &Message| t == 3 && matches!(m, Message::InstallSnapshot(_));
    let mut sent_at = Vec::new();
    for tick in 0..40u64 {
        net.tick(1);
        net.process(1);
        // Lose every chunk to node 3; everything else arrives.
        for _ in 0..100 {
            if net.queue.iter().any(|(_, t, m)| is_chunk_to_3(*t, m)) {
                sent_at.push(tick);
            }
            net.queue.retain(|(_, t, m)| !is_chunk_to_3(*t, m));
            if net.queue.is_empty() {
                break;
            }
            net.deliver_one();
        }
        if sent_at.len() >= 3 {
            break;
        }
    }
    assert!(sent_at.len() >= 3, "chunks sent at ticks {sent_at:?}");
    let gaps: Vec<u64> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![2 * heartbeat, 2 * heartbeat],
        "the lost chunk is sent again every two heartbeat intervals (sent at {sent_at:?})"
    );
}
