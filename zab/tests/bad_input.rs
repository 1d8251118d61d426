//! Bad input at scale (issue 16): arbitrary bytes into every ZAB decoder,
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
use zab::{HardState, Message, SnapshotMeta, ZabCore};

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
        let restored = hostile::restore_with_hard_state::<ZabCore>(&bytes);
        if decoded.is_err() {
            prop_assert!(restored.is_err(), "a corrupt hard state must be refused");
        }
    }

    /// The snapshot metadata decoder (`Snapshot::protocol_state`), and a
    /// core restored from a snapshot carrying those bytes.
    #[test]
    fn snapshot_meta_decoder_takes_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = SnapshotMeta::decode(&bytes);
        let mut state = hostile::initial_state(None, &rest);
        if let Some(snapshot) = &mut state.snapshot {
            snapshot.protocol_state = bytes.into();
        }
        if let Ok(core) = hostile::restore_from::<ZabCore>(state) {
            core.check_invariants();
        }
    }

    /// Hostile snapshot metadata (zxids at the limits) in a snapshot.
    #[test]
    fn restore_takes_hostile_snapshot_meta(
        meta in prop::collection::vec(any::<u8>(), 0..40),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut state = hostile::initial_state(None, &rest);
        if let (Some(snapshot), Some(meta)) = (&mut state.snapshot, hostile::value::<SnapshotMeta>(&meta)) {
            snapshot.protocol_state = meta.encode();
        }
        if let Ok(core) = hostile::restore_from::<ZabCore>(state) {
            core.check_invariants();
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
        if let Ok(core) = hostile::restore_from::<ZabCore>(state) {
            core.check_invariants();
        }
    }

    /// Hostile messages from anyone to the nodes of a running 3-node
    /// cluster (leader and followers), with ticks in between.
    #[test]
    fn cores_take_hostile_messages(hits in hits()) {
        let mut cluster = Cluster::<ZabCore>::started(3, 3, 400, |_| {});
        hostile::attack(&mut cluster, &hits, ZabCore::check_invariants);
    }
}

/// The generator reaches every message type with hostile values (a property
/// that skipped most inputs would prove little).
#[test]
fn hostile_messages_cover_every_variant() {
    assert_eq!(
        hostile::variants_generated::<Message>(),
        17,
        "every ZAB message type is generated"
    );
}

/// Regression (found by `restore_takes_hostile_snapshot_meta`): a stored
/// snapshot at index `u64::MAX` (or a log ending just below it) overflowed `restore` (`base_index + 1`);
/// a typed error now.
#[test]
fn restore_refuses_a_snapshot_at_the_last_index() {
    for index in [u64::MAX, u64::MAX - 1, (1 << 63) + 1] {
        let snapshot = consensus_api::Snapshot {
            index,
            epoch: 1,
            membership: consensus_api::Membership::new([1, 2, 3]),
            protocol_state: SnapshotMeta {
                zxid: zab::Zxid::new(1, 1),
                config_zxid: zab::Zxid::new(0, 0),
            }
            .encode(),
            data: Default::default(),
        };
        let state = consensus_api::InitialState {
            snapshot: Some(snapshot),
            hard_state: Some(
                HardState {
                    accepted_epoch: 1,
                    current_epoch: 1,
                }
                .encode(),
            ),
            ..Default::default()
        };
        assert!(matches!(
            hostile::restore_from::<ZabCore>(state),
            Err(consensus_api::RecoverError::InconsistentLog(_))
        ));
    }
}

/// The snapshot transfer the generator rarely builds whole: a complete
/// (empty, checksum 0) `Snap` at index `u64::MAX` (and just below), in the
/// receiver's epoch, from every node to every node.
#[test]
fn a_snapshot_at_the_last_index_from_the_network() {
    for index in [u64::MAX, u64::MAX - 1, 1 << 63] {
        for target in 0..3 {
            for from in 1..=3 {
                let mut cluster = Cluster::<ZabCore>::started(3, 3, 400, |_| {});
                let epoch = consensus_api::Core::status(&cluster.nodes[target]).epoch;
                let message = Message::Snap(zab::Snap {
                    epoch,
                    zxid: zab::Zxid::new(epoch, 5),
                    index,
                    membership: consensus_api::Membership::new([1, 2, 3]),
                    config_zxid: zab::Zxid::new(0, 0),
                    offset: 0,
                    total_bytes: 0,
                    checksum: 0,
                    data: Default::default(),
                });
                cluster.inject(target, from, message);
                for _ in 0..60 {
                    cluster.tick_all();
                    cluster.settle(16);
                    cluster.nodes.iter().for_each(ZabCore::check_invariants);
                }
            }
        }
    }
}

/// Regression (found by `cores_take_hostile_messages` in CI): a DIFF whose
/// first entry sits near index `u64::MAX` overflowed `claimed_zxids`
/// (`first + offset`); the batch is dropped as malformed now.
#[test]
fn a_diff_whose_indexes_overflow_is_dropped() {
    let hits: Vec<hostile::Hit> = vec![(
        0,
        vec![128, 59],
        vec![124, 169, 101, 0, 2, 110, 164, 217],
        0,
    )];
    let mut cluster = Cluster::<ZabCore>::started(3, 3, 400, |_| {});
    hostile::attack(&mut cluster, &hits, ZabCore::check_invariants);
}

/// Regression (found by `restore_takes_hostile_state` in the long run): a
/// stored accepted epoch of `u64::MAX` overflowed the next epoch in
/// discovery (`highest + 1`); the node logs "epoch space exhausted" and
/// proposes no epoch.
#[test]
fn an_accepted_epoch_at_the_end_of_the_space_proposes_no_epoch() {
    let mut rest = vec![
        91, 5, 0, 212, 104, 111, 20, 81, 29, 0, 20, 0, 5, 0, 156, 156, 34, 6,
    ];
    rest.resize(62, 0);
    let hard_state = hostile::value::<HardState>(&[170]).map(|h| h.encode());
    let state = hostile::initial_state(hard_state, &rest);
    if let Ok(core) = hostile::restore_from::<ZabCore>(state) {
        core.check_invariants();
    }
}
