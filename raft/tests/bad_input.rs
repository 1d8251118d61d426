//! Bad input at scale (issue 16): arbitrary bytes into every Raft decoder,
//! and well-formed but hostile values (terms and indexes at `u64::MAX`,
//! entry batches far beyond the log, votes from unknown nodes, snapshot
//! chunks past their total) into running cores through `step` and
//! `restore`. No input may panic; `check_invariants` must hold on every
//! node after every message.
//!
//! Cases per property: `PROPTEST_CASES` (default below, a few seconds in
//! debug). The long run is in docs/testing.md, "Bad input at scale".

use consensus_testkit::hostile::{self, config, hits, Cluster};
use proptest::prelude::*;
use raft::{HardState, Message, RaftCore};

proptest! {
    #![proptest_config(config())]

    /// What the transport does with a frame payload (`decode_payload` is
    /// postcard's `take_from_bytes` plus a trailing-bytes check), and
    /// `Message::decode`: any bytes give a message or an error.
    #[test]
    fn message_decoders_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let taken = postcard::take_from_bytes::<Message>(&bytes);
        let decoded = Message::decode(&bytes);
        if let Some(message) = decoded {
            // A decoded message re-encodes to the same bytes' message.
            prop_assert_eq!(Message::decode(&message.encode()), Some(message));
            prop_assert!(taken.is_ok());
        }
    }

    /// The hard-state decoder, and a core restored from those bytes.
    #[test]
    fn hard_state_decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let decoded = HardState::decode(&bytes);
        let restored = hostile::restore_with_hard_state::<RaftCore>(&bytes);
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
        if let Ok(core) = hostile::restore_from::<RaftCore>(state) {
            core.check_invariants();
        }
    }

    /// Hostile messages from anyone to the nodes of a running 3-node
    /// cluster (leader and followers), with ticks in between.
    #[test]
    fn cores_take_hostile_messages(hits in hits()) {
        let mut cluster = Cluster::<RaftCore>::started(3, 3, 400, |_| {});
        hostile::attack(&mut cluster, &hits, RaftCore::check_invariants);
    }
}

/// The generator reaches every message type with hostile values (a property
/// that skipped most inputs would prove little).
#[test]
fn hostile_messages_cover_every_variant() {
    assert_eq!(
        hostile::variants_generated::<Message>(),
        9,
        "every Raft message type is generated"
    );
}

/// Regression (found by `restore_takes_hostile_state`): a store holding a
/// snapshot at index `u64::MAX` (or a log ending just below it) overflowed `RaftLog::restore` (a panic with
/// overflow checks, a wrapped index without). It is a typed error now.
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
            hostile::restore_from::<RaftCore>(state),
            Err(consensus_api::RecoverError::InconsistentLog(_))
        ));
    }
}

/// The snapshot transfer the generator rarely builds whole: a complete
/// (empty, checksum 0) `InstallSnapshot` at index `u64::MAX` (and just
/// below), in the receiver's own term, from every node to every node.
#[test]
fn a_snapshot_at_the_last_index_from_the_network() {
    for index in [u64::MAX, u64::MAX - 1, 1 << 63] {
        for target in 0..3 {
            for from in 1..=3 {
                let mut cluster = Cluster::<RaftCore>::started(3, 3, 400, |_| {});
                let term = consensus_api::Core::status(&cluster.nodes[target]).epoch;
                let message = Message::InstallSnapshot(raft::InstallSnapshot {
                    term,
                    snapshot_index: index,
                    snapshot_term: term,
                    membership: consensus_api::Membership::new([1, 2, 3]),
                    protocol_state: Default::default(),
                    offset: 0,
                    total_bytes: 0,
                    checksum: 0,
                    data: Default::default(),
                    done: true,
                });
                cluster.inject(target, from, message);
                for _ in 0..60 {
                    cluster.tick_all();
                    cluster.settle(16);
                    cluster.nodes.iter().for_each(RaftCore::check_invariants);
                }
            }
        }
    }
}
