//! Compaction and snapshot replacement: segments covered by a snapshot are
//! deleted while the hard state they held survives in `META`, and a crash
//! between any two steps of a snapshot replacement leaves the old or the
//! new snapshot fully usable.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use consensus_api::{Bytes, InitialState, LogStore, StorageError};
use consensus_storage::{CrashPoint, DiskStore, LogState};

const SEGMENT_BYTES: u64 = 700;

fn reopen(dir: &Path) -> DiskStore {
    DiskStore::open(dir, options(SEGMENT_BYTES)).expect("reopen")
}

/// A hard state written once at the start (so only the first segment holds
/// its record), then entries 1..=last one per batch.
fn history(dir: &Path, last: u64) -> (DiskStore, LogState) {
    let mut store = reopen(dir);
    let mut state = LogState::default();
    let mut batches = vec![Batch::hard_state("term=1 vote=2")];
    batches.extend((1..=last).map(|i| Batch::append(vec![entry(i, 1)])));
    write_synced(&mut store, &mut state, &batches);
    (store, state)
}

fn assert_clean_directory(dir: &Path) {
    assert!(files_with_suffix(dir, ".tmp").is_empty(), "temp files left");
    assert_eq!(
        files_with_suffix(dir, ".snap").len(),
        1,
        "exactly one snapshot file"
    );
}

#[test]
fn reopen_after_compaction_keeps_hard_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut state) = history(dir.path(), 60);
    let before = segment_files(dir.path());
    assert!(before.len() >= 6, "{} segments", before.len());
    store.save_snapshot(&snapshot(30, 1)).unwrap();
    state.apply_snapshot(&snapshot(30, 1));
    let after = segment_files(dir.path());
    assert!(
        after.len() <= before.len() - 3,
        "{} -> {} segments",
        before.len(),
        after.len()
    );
    assert!(
        !after.contains(&before[0]),
        "the segment holding the hard state record was deleted"
    );
    assert_eq!(store.segment_seqs().len(), after.len());
    drop(store);

    let mut store = reopen(dir.path());
    let loaded = store.load().unwrap();
    assert_eq!(loaded, initial(&state));
    assert_eq!(
        loaded.hard_state,
        Some(Bytes::from_static(b"term=1 vote=2"))
    );
    assert_eq!(loaded.entries.first().map(|e| e.index), Some(31));
    assert_clean_directory(dir.path());

    // Keep going: a new hard state, more entries, a second compaction.
    let mut batches = vec![Batch::hard_state("term=2 vote=3")];
    batches.extend((61..=90).map(|i| Batch::append(vec![entry(i, 2)])));
    write_synced(&mut store, &mut state, &batches);
    store.save_snapshot(&snapshot(85, 2)).unwrap();
    state.apply_snapshot(&snapshot(85, 2));
    assert!(
        segment_files(dir.path()).len() <= 3,
        "{:?}",
        segment_files(dir.path())
    );
    drop(store);
    let mut store = reopen(dir.path());
    assert_eq!(store.load().unwrap(), initial(&state));
    assert_clean_directory(dir.path());
}

#[test]
fn a_segment_covered_when_it_is_sealed_is_compacted_at_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut state) = history(dir.path(), 5);
    // A snapshot from a leader, ahead of the log: the active segment now
    // holds only covered entries, but the active segment is never deleted.
    let install = Batch {
        snapshot: Some(snapshot(1000, 3)),
        ..Batch::default()
    };
    write_synced(&mut store, &mut state, &[install]);
    assert_eq!(store.segment_seqs(), vec![1]);
    // A batch too big for the rest of the segment seals it: compacted then.
    let big = Batch::append(vec![entry_with(1001, 3, &[5; SEGMENT_BYTES as usize])]);
    write_synced(&mut store, &mut state, &[big]);
    assert_eq!(store.segment_seqs(), vec![2]);
    let more: Vec<Batch> = (1002..=1040)
        .map(|i| Batch::append(vec![entry(i, 3)]))
        .collect();
    write_synced(&mut store, &mut state, &more);
    store.save_snapshot(&snapshot(1030, 3)).unwrap();
    state.apply_snapshot(&snapshot(1030, 3));
    let live = store.segment_seqs();
    assert!(live[0] > 2, "{live:?}");
    drop(store);
    let mut store = reopen(dir.path());
    assert_eq!(store.load().unwrap(), initial(&state));
    assert_eq!(store.segment_seqs(), live);
    assert_eq!(
        store.load().unwrap().hard_state,
        Some(Bytes::from_static(b"term=1 vote=2"))
    );
}

const POINTS: [CrashPoint; 7] = [
    CrashPoint::SnapshotTempWritten,
    CrashPoint::SnapshotRenamed,
    CrashPoint::SnapshotDirSynced,
    CrashPoint::MetaCheckpointed,
    CrashPoint::FirstSegmentDeleted,
    CrashPoint::SegmentsDeleted,
    CrashPoint::OldSnapshotsDeleted,
];

/// Runs a snapshot replacement that stops at `point`, reopens, and returns
/// what recovery gives, with the states before and after the replacement.
fn crash_during_replacement(
    point: CrashPoint,
    install: impl FnOnce(&mut DiskStore, &mut LogState) -> Result<(), StorageError>,
    after_crash: impl FnOnce(&Path),
) -> (InitialState, InitialState, InitialState) {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, mut state) = history(dir.path(), 40);
    store.save_snapshot(&snapshot(12, 1)).unwrap();
    state.apply_snapshot(&snapshot(12, 1));
    let old = initial(&state);
    store.set_crash_point(Some(point));
    let error = install(&mut store, &mut state).expect_err("the crash point must be reached");
    assert!(
        matches!(&error, StorageError::Failed(m) if m.contains("simulated crash")),
        "{error}"
    );
    let new = initial(&state);
    assert!(
        matches!(store.sync(), Err(StorageError::Failed(_))),
        "a crashed store stays stopped"
    );
    drop(store);
    after_crash(dir.path());
    let mut store = reopen(dir.path());
    let recovered = store.load().unwrap();
    assert_clean_directory(dir.path());
    // The recovered store works: one more synced batch survives a reopen.
    let mut after = LogState {
        hard_state: recovered.hard_state.clone(),
        snapshot: recovered.snapshot.clone(),
        entries: recovered
            .entries
            .iter()
            .map(|e| (e.index, e.clone()))
            .collect(),
    };
    let next = after.last_index() + 1;
    write_synced(
        &mut store,
        &mut after,
        &[Batch::append(vec![entry(next, 9)])],
    );
    drop(store);
    assert_eq!(reopen(dir.path()).load().unwrap(), initial(&after));
    (old, new, recovered)
}

#[test]
fn save_snapshot_survives_a_crash_between_any_two_steps() {
    for point in POINTS {
        let (old, new, recovered) = crash_during_replacement(
            point,
            |store, state| {
                state.apply_snapshot(&snapshot(30, 1));
                store.save_snapshot(&snapshot(30, 1))
            },
            |_| {},
        );
        let expected = if point == CrashPoint::SnapshotTempWritten {
            &old
        } else {
            &new
        };
        assert_eq!(&recovered, expected, "crash at {point:?}");
        assert_eq!(
            recovered.hard_state,
            Some(Bytes::from_static(b"term=1 vote=2")),
            "{point:?}"
        );
    }
}

#[test]
fn a_rename_lost_to_power_failure_falls_back_to_the_old_snapshot() {
    // Crash after the rename but before the directory fsync, with the
    // rename not persisted: the new file is back to its temp name.
    let (old, _, recovered) = crash_during_replacement(
        CrashPoint::SnapshotRenamed,
        |store, state| {
            state.apply_snapshot(&snapshot(30, 1));
            store.save_snapshot(&snapshot(30, 1))
        },
        |dir| {
            let name = format!("snap-{:020}.snap", 30);
            fs::rename(dir.join(&name), dir.join(format!("{name}.tmp"))).unwrap();
        },
    );
    assert_eq!(recovered, old);
}

#[test]
fn a_leader_snapshot_in_a_batch_survives_a_crash_between_any_two_steps() {
    for point in POINTS {
        let (old, _, recovered) = crash_during_replacement(
            point,
            |store, _| {
                let batch = Batch {
                    snapshot: Some(snapshot(100, 4)),
                    append: entries(101..=102, 4),
                    hard_state: Some(Bytes::from_static(b"term=4")),
                    ..Batch::default()
                };
                store.write(&batch.as_batch())
            },
            |_| {},
        );
        if point == CrashPoint::SnapshotTempWritten {
            assert_eq!(recovered, old, "crash at {point:?}");
        } else {
            // The snapshot is durable; the rest of the batch was never
            // written (a prefix of the batch's operations).
            assert_eq!(recovered.snapshot, Some(snapshot(100, 4)), "{point:?}");
            assert!(recovered.entries.is_empty(), "{point:?}");
            assert_eq!(recovered.hard_state, old.hard_state, "{point:?}");
        }
    }
}

#[test]
fn a_corrupt_newest_snapshot_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = history(dir.path(), 20);
    store.save_snapshot(&snapshot(15, 1)).unwrap();
    drop(store);
    let path = dir.path().join(format!("snap-{:020}.snap", 15));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    assert!(
        matches!(DiskStore::open(dir.path(), options(SEGMENT_BYTES)), Err(StorageError::Corrupt { segment, .. }) if segment == path)
    );
    // Deleting it does not make the store silently forget the compaction.
    fs::remove_file(&path).unwrap();
    assert!(matches!(
        DiskStore::open(dir.path(), options(SEGMENT_BYTES)),
        Err(StorageError::Corrupt { .. })
    ));
}
