//! Bad input at scale (issue 16): arbitrary bytes into every Multi-Paxos decoder,
//! and well-formed but hostile values (terms and indexes at `u64::MAX`,
//! entry batches far beyond the log, votes from unknown nodes, snapshot
//! chunks past their total) into running cores through `step` and
//! `restore`. No input may panic; `check_invariants` must hold on every
//! node after every message.
//!
//! Cases per property: `PROPTEST_CASES` (default below, a few seconds in
//! debug). The long run is in docs/testing.md, "Bad input at scale".

use consensus_api::Core;
use consensus_testkit::hostile::{self, config, hits, Cluster};
use multipaxos::{HardState, Message, MultiPaxosCore};
use proptest::prelude::*;

/// The cluster property leaves out messages naming slots above this. Not a
/// crash any more (Phase 1 recovers a far slot one bounded batch per
/// input: `far_accepted_slot_from_an_accept` below), but a far accepted
/// slot is a gap the leader must fill with no-ops at pipeline speed, and
/// this harness runs ~1,300 message rounds per case without compaction:
/// with the default window (50,000 uncommitted slots) the logs grow by
/// millions of entries (measured: 1.5 M slots and 0.9 GB after 20 ticks,
/// and the check of the invariants, O(log) per node per round, takes
/// minutes). The restore property keeps every slot.
const FAR_SLOTS: u64 = 1 << 16;

fn near_slots(message: &Message) -> bool {
    let entries = match message {
        Message::Accept(m) => &m.entries,
        Message::Promise(m) => &m.entries,
        Message::Chosen(m) => &m.entries,
        _ => return true,
    };
    entries.iter().all(|e| e.index <= FAR_SLOTS)
}

proptest! {
    #![proptest_config(config())]

    /// What the transport does with a frame payload (`decode_payload` is
    /// postcard's `take_from_bytes` plus a trailing-bytes check; the
    /// transport's own tests run it too): any bytes give a message or an
    /// error, and a decoded message re-encodes to itself.
    #[test]
    fn message_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok((message, _)) = postcard::take_from_bytes::<Message>(&bytes) {
            let encoded = postcard::to_stdvec(&message).expect("a message encodes");
            prop_assert_eq!(postcard::from_bytes::<Message>(&encoded).ok(), Some(message));
        }
    }

    /// The hard-state decoder, and a core restored from those bytes.
    #[test]
    fn hard_state_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let decoded = HardState::decode(&bytes);
        let restored = hostile::restore_with_hard_state::<MultiPaxosCore>(&bytes);
        if decoded.is_err() {
            prop_assert!(restored.is_err(), "a corrupt hard state must be refused");
        }
    }

    /// Hostile but well-formed hard states, snapshots and entries, as a
    /// store could return them: a typed error or a core that runs.
    #[test]
    fn restore_takes_hostile_state(
        hard_state in prop::collection::vec(any::<u8>(), 0..40),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let hard_state = hostile::value::<HardState>(&hard_state).map(|h| h.encode());
        let state = hostile::initial_state(hard_state, &rest);
        if let Ok(core) = hostile::restore_from::<MultiPaxosCore>(state) {
            core.check_invariants();
        }
    }

    /// Hostile messages from anyone to the nodes of a running 3-node
    /// cluster (leader and followers), with ticks in between.
    #[test]
    fn cores_take_hostile_messages(hits in hits()) {
        let mut cluster = Cluster::<MultiPaxosCore>::started(3, 3, 400, |_| {});
        hostile::attack_where(&mut cluster, &hits, near_slots, MultiPaxosCore::check_invariants);
    }
}

/// The generator reaches every message type with hostile values (a property
/// that skipped most inputs would prove little).
#[test]
fn hostile_messages_cover_every_variant() {
    assert_eq!(
        hostile::variants_generated::<Message>(),
        13,
        "every Multi-Paxos message type is generated"
    );
}

/// Regression (found by `restore_takes_hostile_state`): a store holding a
/// snapshot at index `u64::MAX` (or a log ending just below it) overflowed `Log::install_snapshot`. It is a
/// typed error now.
#[test]
fn restore_refuses_a_snapshot_at_the_last_index() {
    for index in [u64::MAX, u64::MAX - 1, (1 << 63) + 1] {
        let snapshot = consensus_api::Snapshot {
            index,
            epoch: 1,
            membership: consensus_api::Membership::new([1, 2, 3]),
            protocol_state: Default::default(),
            data: Default::default(),
        };
        let state = consensus_api::InitialState {
            snapshot: Some(snapshot),
            ..Default::default()
        };
        assert!(matches!(
            hostile::restore_from::<MultiPaxosCore>(state),
            Err(consensus_api::RecoverError::CorruptSnapshot(_))
        ));
    }
}

/// The same snapshot from the network: a complete (empty, checksum 0)
/// snapshot transfer at index `u64::MAX`, from every node to every node.
#[test]
fn a_snapshot_chunk_at_the_last_index_is_dropped() {
    for target in 0..3 {
        for from in 1..=3 {
            let mut cluster = Cluster::<MultiPaxosCore>::started(3, 3, 400, |_| {});
            let chunk = multipaxos::SnapshotChunk {
                index: u64::MAX,
                epoch: 1,
                membership: consensus_api::Membership::new([1, 2, 3]),
                protocol_state: Default::default(),
                total_bytes: 0,
                checksum: 0,
                offset: 0,
                data: Default::default(),
            };
            cluster.inject(target, from, Message::SnapshotChunk(chunk));
            cluster.settle(16);
            cluster
                .nodes
                .iter()
                .for_each(MultiPaxosCore::check_invariants);
        }
    }
}

/// Regression, the minimal input `restore_takes_hostile_state` found: a
/// single-voter node restored with an accepted value far above its
/// snapshot campaigns, and Phase 1 allocated a no-op for every slot of the
/// gap at once (an allocation the size of a hostile number: the process
/// aborted). Above `2^63` restore refuses the log (typed); at or below, a
/// gap is legitimate in a sparse log and is filled one bounded batch
/// (`batch_entries_max` slots) per input, so the node leads, commits
/// no-ops, and its memory stays proportional to the ticks it ran.
#[test]
fn far_accepted_slot_from_the_store() {
    let state = |slot: u64| consensus_api::InitialState {
        snapshot: Some(consensus_api::Snapshot {
            index: 5,
            epoch: 0,
            membership: consensus_api::Membership::new([1]),
            protocol_state: Default::default(),
            data: Default::default(),
        }),
        hard_state: None,
        entries: vec![consensus_api::Entry {
            index: slot,
            epoch: 6,
            payload: consensus_api::Payload::Noop,
        }],
    };
    assert!(matches!(
        hostile::restore_from::<MultiPaxosCore>(state(u64::MAX - 1)),
        Err(consensus_api::RecoverError::InconsistentLog(_))
    ));
    const TICKS: usize = 60;
    for slot in [1 << 63, 1 << 40, 5 + 2_000] {
        let config = consensus_api::CoreConfig::new(1, consensus_api::Membership::new([1]));
        let batch = config.batch_entries_max;
        let mut core = MultiPaxosCore::restore(config, state(slot)).expect("restore");
        let mut appended = 0;
        for _ in 0..TICKS {
            core.tick();
            while let Some(ready) = core.ready() {
                appended += ready.append.len();
            }
            core.check_invariants();
        }
        let status = core.status();
        assert_eq!(status.role, consensus_api::Role::Leader, "slot {slot}");
        assert!(
            appended <= TICKS * batch + 1,
            "slot {slot}: {appended} entries written in {TICKS} ticks"
        );
        if slot - 5 <= (TICKS / 2 * batch) as u64 {
            // A gap of a few thousand slots is filled and committed.
            assert_eq!(status.commit_index, slot, "slot {slot}");
        } else {
            assert!(
                status.commit_index > 5 + batch as u64,
                "slot {slot}: the gap is being filled (commit {})",
                status.commit_index
            );
        }
    }
}

/// The same from the network: the leader's ballot owner sends one Accept
/// at slot `2^62` to both followers (acceptors take an Accept at any slot),
/// then the leader is deposed. Whichever node leads next, its Phase 1
/// quorum holds the far slot, so it recovers it:
/// Phase 1 proposes one batch per input, and no leader ever sends an
/// Accept beyond its frontier plus its uncommitted window, however wide
/// the gap; the gap is being filled (the frontier moves on), and every
/// invariant holds throughout.
#[test]
fn far_accepted_slot_from_an_accept() {
    const WINDOW: usize = 256;
    let mut cluster = Cluster::<MultiPaxosCore>::started(3, 3, 400, |c| {
        c.batch_entries_max = 32;
        c.uncommitted_entries_max = WINDOW;
    });
    let leader = cluster.leader().expect("a leader");
    let ballot = cluster.nodes[leader].leader_ballot().expect("its ballot");
    let follower = (leader + 1) % 3;
    let far = consensus_api::Entry {
        index: 1 << 62,
        epoch: ballot.epoch(),
        payload: consensus_api::Payload::Noop,
    };
    let accept = multipaxos::Accept {
        ballot,
        entries: vec![far],
        commit: 0,
    };
    let other = (leader + 2) % 3;
    cluster.inject(follower, leader as u64 + 1, Message::Accept(accept.clone()));
    cluster.inject(other, leader as u64 + 1, Message::Accept(accept));
    let higher = multipaxos::Ballot::new(1_000, follower as u64 + 1);
    let prepare = multipaxos::Prepare {
        ballot: higher,
        from: 1,
    };
    cluster.inject(leader, follower as u64 + 1, Message::Prepare(prepare));
    let mut furthest_ahead = 0;
    for _ in 0..40 {
        cluster.tick_all();
        for _ in 0..16 {
            cluster.collect();
            for (_, _, message) in &cluster.pending {
                if let Message::Accept(accept) = message {
                    let last = accept.entries.last().map_or(0, |e| e.index);
                    furthest_ahead = furthest_ahead.max(last.saturating_sub(accept.commit));
                }
            }
            cluster.settle(1);
        }
        cluster
            .nodes
            .iter()
            .for_each(MultiPaxosCore::check_invariants);
    }
    assert!(
        furthest_ahead <= WINDOW as u64,
        "an Accept ran {furthest_ahead} slots ahead of its frontier"
    );
    let commit = cluster
        .nodes
        .iter()
        .map(|n| n.status().commit_index)
        .max()
        .unwrap_or(0);
    assert!(
        commit > 10 * WINDOW as u64,
        "the gap is being filled: {commit}"
    );
    assert!(commit < 1 << 62);
}
