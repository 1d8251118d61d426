//! Disk full and I/O errors: a typed error, the store stops (no retried
//! fsync), and reopening returns what was synced (plus whole records that
//! reached the file).

mod common;

use std::path::Path;

use common::*;
use consensus_api::{Bytes, InitialState, LogStore, StorageError};
use consensus_storage::{DiskOptions, DiskStore, LogState};

fn synced_history(dir: &Path, segment_bytes: u64) -> (DiskStore, LogState) {
    synced_history_with(dir, options(segment_bytes))
}

fn synced_history_with(dir: &Path, options: DiskOptions) -> (DiskStore, LogState) {
    let mut store = DiskStore::open(dir, options).unwrap();
    let mut state = LogState::default();
    write_synced(
        &mut store,
        &mut state,
        &[Batch::append(entries(1..=3, 1)), Batch::hard_state("hs-b")],
    );
    (store, state)
}

/// The batch that fails: sync mark, truncate, entries, hard state records.
fn failing_batch() -> Batch {
    Batch {
        truncate_from: Some(3),
        append: vec![entry_with(3, 2, &[9; 40]), entry(4, 2)],
        hard_state: Some(Bytes::from_static(b"hs-c")),
        snapshot: None,
    }
}

fn assert_stopped(store: &mut DiskStore) {
    assert!(store.is_failed());
    let batch = Batch::append(vec![entry(50, 5)]);
    assert!(matches!(
        store.write(&batch.as_batch()),
        Err(StorageError::Failed(_))
    ));
    assert!(matches!(store.sync(), Err(StorageError::Failed(_))));
    assert!(matches!(
        store.save_snapshot(&snapshot(1, 1)),
        Err(StorageError::Failed(_))
    ));
    assert!(matches!(store.load(), Err(StorageError::Failed(_))));
}

#[test]
fn disk_full_at_every_byte_of_a_batch_stops_the_store_and_keeps_the_synced_prefix() {
    for preallocate in [false, true] {
        disk_full_at_every_byte(options(1 << 20).with_preallocate_segments(preallocate));
    }
}

fn disk_full_at_every_byte(options: DiskOptions) {
    // Reference run: where the failing batch's records start and end.
    let reference = tempfile::tempdir().unwrap();
    let (mut store, _) = synced_history_with(reference.path(), options.clone());
    let start = data_len(&last_segment(reference.path()));
    store.write(&failing_batch().as_batch()).unwrap();
    drop(store);
    let bytes = segment_data(&last_segment(reference.path()));
    let offsets: Vec<usize> = record_offsets(&bytes)
        .into_iter()
        .filter(|&o| o >= start)
        .chain([bytes.len()])
        .collect();
    // A record is in the file once its bytes are. In a preallocated
    // segment the unwritten rest reads as zeros, so a record whose last
    // bytes are zeros is whole as soon as its last non-zero byte is
    // written (it is byte for byte the record that was being written).
    let ends: Vec<usize> = offsets
        .windows(2)
        .map(|w| {
            let end = if options.preallocate_segments {
                w[0] + bytes[w[0]..w[1]].iter().rposition(|&b| b != 0).unwrap() + 1
            } else {
                w[1]
            };
            end - start
        })
        .collect();
    assert_eq!(
        ends.len(),
        4,
        "sync mark, truncate, entries, hard state: {ends:?}"
    );
    let total = bytes.len() - start;

    for written in 0..=total {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut state) = synced_history_with(dir.path(), options.clone());
        store.inject_write_failure(written, libc::ENOSPC);
        match store.write(&failing_batch().as_batch()) {
            Err(StorageError::DiskFull { path }) => assert_eq!(path, last_segment(dir.path())),
            other => panic!("written {written}: expected DiskFull, got {other:?}"),
        }
        assert_stopped(&mut store);
        drop(store);
        // Whole records that reached the file are kept, in order.
        let batch = failing_batch();
        if written >= ends[1] {
            state.apply_truncate(3);
        }
        if written >= ends[2] {
            state.apply_entries(&batch.append);
        }
        if written >= ends[3] {
            state.hard_state = batch.hard_state.clone();
        }
        let context = format!("written {written} of {total}, {options:?}");
        let mut store = DiskStore::open(dir.path(), options.clone()).unwrap();
        assert_eq!(store.load().unwrap(), initial(&state), "{context}");
        // And the store works again.
        let next = Batch::append(vec![entry(state.last_index() + 1, 7)]);
        write_synced(&mut store, &mut state, &[next]);
        drop(store);
        assert_eq!(
            DiskStore::open(dir.path(), options.clone())
                .unwrap()
                .load()
                .unwrap(),
            initial(&state),
            "{context}"
        );
    }
}

#[test]
fn a_failed_fdatasync_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, synced) = synced_history(dir.path(), 1 << 20);
    let batch = failing_batch();
    store.write(&batch.as_batch()).unwrap();
    let syncs = store.sync_count();
    store.inject_sync_failure(libc::EIO);
    assert!(matches!(
        store.sync(),
        Err(StorageError::Io { op: "syncing", .. })
    ));
    assert_stopped(&mut store);
    assert_eq!(store.sync_count(), syncs);
    drop(store);
    // The synced prefix is intact; the written batch may or may not be there
    // (here the process lived on, so its bytes are in the page cache).
    let mut with_batch = synced.clone();
    with_batch.apply(&batch.as_batch());
    let recovered = DiskStore::open(dir.path(), options(1 << 20))
        .unwrap()
        .load()
        .unwrap();
    assert!(
        recovered == initial(&synced) || recovered == initial(&with_batch),
        "{recovered:?}"
    );
}

#[test]
fn disk_full_while_writing_a_snapshot_keeps_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, state) = synced_history(dir.path(), 1 << 20);
    store.inject_write_failure(10, libc::ENOSPC);
    assert!(matches!(
        store.save_snapshot(&snapshot(2, 1)),
        Err(StorageError::DiskFull { .. })
    ));
    assert_stopped(&mut store);
    drop(store);
    assert_eq!(
        DiskStore::open(dir.path(), options(1 << 20))
            .unwrap()
            .load()
            .unwrap(),
        initial(&state)
    );
    assert!(files_with_suffix(dir.path(), ".tmp").is_empty());
    assert!(files_with_suffix(dir.path(), ".snap").is_empty());
}

#[test]
fn disk_full_while_rotating_keeps_the_synced_log() {
    for written in [0, 5, 31, 32] {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, mut state) = synced_history(dir.path(), 200);
        // The next batch needs a new segment; its header write fails.
        let before = store.segment_seqs();
        store.inject_write_failure(written, libc::ENOSPC);
        let batch = Batch::append(vec![entry_with(4, 1, &[1; 300])]);
        assert!(matches!(
            store.write(&batch.as_batch()),
            Err(StorageError::DiskFull { .. })
        ));
        assert_stopped(&mut store);
        drop(store);
        let mut store = DiskStore::open(dir.path(), options(200)).unwrap();
        assert_eq!(store.load().unwrap(), initial(&state), "written {written}");
        assert_eq!(
            store.segment_seqs().len(),
            before.len() + 1,
            "the new segment was repaired"
        );
        write_synced(&mut store, &mut state, &[batch]);
        drop(store);
        let loaded: InitialState = DiskStore::open(dir.path(), options(200))
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(loaded, initial(&state));
    }
}

#[test]
fn an_fsync_failure_while_sealing_a_segment_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, state) = synced_history(dir.path(), 200);
    let big = Batch::append(vec![entry_with(4, 1, &[1; 300])]);
    store.write(&big.as_batch()).unwrap();
    store.inject_sync_failure(libc::EIO);
    // Rotation must fdatasync the full segment first; that fails.
    let next = Batch::append(vec![entry(5, 1)]);
    assert!(matches!(
        store.write(&next.as_batch()),
        Err(StorageError::Io { .. })
    ));
    assert_stopped(&mut store);
    drop(store);
    let recovered = DiskStore::open(dir.path(), options(200))
        .unwrap()
        .load()
        .unwrap();
    let mut with_big = state.clone();
    with_big.apply(&big.as_batch());
    assert!(recovered == initial(&state) || recovered == initial(&with_big));
}
