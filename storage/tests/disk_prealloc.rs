//! Preallocated segments: the zero-filled tail is the end of the data and
//! is kept across reopen, sealed segments are trimmed, a crash between any
//! two steps of a rotation loses nothing synced, zeros before synced data
//! are still corruption, running out of space while preallocating is
//! `DiskFull`, a file system without `fallocate` still works, and
//! recovering a full 64 MiB segment is fast.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use common::*;
use consensus_api::{LogStore, StorageError};
use consensus_storage::{CrashPoint, DiskOptions, DiskStore, LogState};

const SEGMENT_BYTES: u64 = 600;

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Every segment but the last holds exactly its data: no zero tail.
fn assert_sealed_segments_trimmed(dir: &Path) {
    let segments = segment_files(dir);
    for sealed in &segments[..segments.len().saturating_sub(1)] {
        assert_eq!(
            file_len(sealed),
            data_len(sealed) as u64,
            "{} keeps a tail",
            sealed.display()
        );
    }
}

/// Writes one-entry synced batches until one of them starts a new segment
/// (which then holds just that batch).
fn fill_to_rotation(store: &mut DiskStore, state: &mut LogState) {
    let start = store.segment_seqs().len();
    for _ in 0..1000 {
        let next = Batch::append(vec![entry(state.last_index() + 1, 1)]);
        write_synced(store, state, &[next]);
        if store.segment_seqs().len() > start {
            return;
        }
    }
    panic!("no rotation after 1000 batches");
}

#[test]
fn segments_are_preallocated_and_trimmed_when_sealed() {
    for preallocate in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let options = options(4096).with_preallocate_segments(preallocate);
        let mut store = DiskStore::open(dir.path(), options.clone()).unwrap();
        let mut state = LogState::default();
        let batches: Vec<Batch> = (1..=200)
            .map(|i| Batch::append(vec![entry(i, 1)]))
            .collect();
        write_synced(&mut store, &mut state, &batches);
        let segments = segment_files(dir.path());
        assert!(segments.len() >= 3, "{segments:?}");
        assert_sealed_segments_trimmed(dir.path());
        let active = segments.last().unwrap();
        let expected = if preallocate && preallocation_supported(dir.path()) {
            4096
        } else {
            data_len(active) as u64
        };
        assert_eq!(file_len(active), expected, "preallocate {preallocate}");
        // A sealed segment's data reached the limit (the write offset, not
        // the file size, decides when a segment is full).
        for sealed in &segments[..segments.len() - 1] {
            let len = data_len(sealed) as u64;
            assert!(len <= 4096 && len > 4096 - 100, "{len}");
        }
        drop(store);
        let mut store = DiskStore::open(dir.path(), options).unwrap();
        assert_eq!(store.load().unwrap(), initial(&state));
    }
}

#[test]
fn a_preallocated_tail_is_the_end_and_the_segment_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let supported = preallocation_supported(dir.path());
    let mut state = LogState::default();
    let mut previous_len = 0;
    for round in 0..4u64 {
        let mut store = open(dir.path());
        assert_eq!(store.load().unwrap(), initial(&state), "round {round}");
        let first = state.last_index() + 1;
        write_synced(
            &mut store,
            &mut state,
            &[
                Batch::append(entries(first..=first + 4, round + 1)),
                Batch::hard_state(&format!("term={round}")),
            ],
        );
        // A batch written but not synced survives a process crash too.
        let unsynced = Batch::append(vec![entry(first + 5, round + 1)]);
        store.write(&unsynced.as_batch()).unwrap();
        state.apply(&unsynced.as_batch());
        drop(store);
        let segment = last_segment(dir.path());
        assert_eq!(segment_files(dir.path()).len(), 1);
        if supported {
            assert_eq!(
                file_len(&segment),
                DiskOptions::default().segment_bytes_max,
                "round {round}: the preallocation is kept"
            );
        }
        let len = data_len(&segment);
        assert!(len > previous_len, "round {round}: continued at the end");
        previous_len = len;
    }
    let mut store = open(dir.path());
    assert_eq!(store.load().unwrap(), initial(&state));
    assert_eq!(store.load().unwrap().entries.len(), 24);
}

#[test]
fn an_untrimmed_segment_is_preallocated_again_when_reopened() {
    let dir = tempfile::tempdir().unwrap();
    if !preallocation_supported(dir.path()) {
        return;
    }
    let mut state = LogState::default();
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    write_synced(&mut store, &mut state, &[Batch::append(entries(1..=3, 1))]);
    drop(store);
    // As after a crash that cut a torn tail, or a store written without
    // preallocation.
    let segment = last_segment(dir.path());
    let len = data_len(&segment) as u64;
    fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len)
        .unwrap();
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    assert_eq!(file_len(&segment), SEGMENT_BYTES);
    write_synced(&mut store, &mut state, &[Batch::append(entries(4..=4, 1))]);
    drop(store);
    assert_eq!(file_len(&segment), SEGMENT_BYTES);
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    assert_eq!(store.load().unwrap(), initial(&state));
}

const ROTATION_POINTS: [CrashPoint; 5] = [
    CrashPoint::RotationSegmentSynced,
    CrashPoint::RotationSegmentTrimmed,
    CrashPoint::RotationSegmentCreated,
    CrashPoint::RotationSegmentPreallocated,
    CrashPoint::RotationDirSynced,
];

/// What a power failure right after the crash point may also have lost.
#[derive(Clone, Copy, Debug)]
enum Lost {
    /// Nothing: a process crash (the page cache survives).
    Nothing,
    /// The new segment's directory entry (the directory was not fsynced).
    NewSegment,
    /// The new segment's header (its file was not fsynced).
    NewHeader,
}

fn losses(point: CrashPoint) -> &'static [Lost] {
    match point {
        CrashPoint::RotationSegmentCreated | CrashPoint::RotationSegmentPreallocated => {
            &[Lost::Nothing, Lost::NewSegment, Lost::NewHeader]
        }
        _ => &[Lost::Nothing],
    }
}

#[test]
fn a_crash_between_any_two_steps_of_a_rotation_loses_nothing_synced() {
    for point in ROTATION_POINTS {
        for &lost in losses(point) {
            for preallocate in [true, false] {
                let context = format!("{point:?}, lost {lost:?}, preallocate {preallocate}");
                crash_during_rotation(point, lost, preallocate, &context);
            }
        }
    }
}

fn crash_during_rotation(point: CrashPoint, lost: Lost, preallocate: bool, context: &str) {
    let dir = tempfile::tempdir().unwrap();
    let options = options(SEGMENT_BYTES).with_preallocate_segments(preallocate);
    let mut store = DiskStore::open(dir.path(), options.clone()).unwrap();
    let mut state = LogState::default();
    write_synced(&mut store, &mut state, &[Batch::hard_state("term=1")]);
    fill_to_rotation(&mut store, &mut state);
    fill_to_rotation(&mut store, &mut state);
    let seqs = store.segment_seqs();
    // An unsynced batch in the active segment (the rotation syncs it).
    let unsynced = Batch::append(vec![entry(state.last_index() + 1, 2)]);
    store.write(&unsynced.as_batch()).unwrap();
    let mut with_unsynced = state.clone();
    with_unsynced.apply(&unsynced.as_batch());
    // A batch that does not fit: the write rotates first, and dies.
    let big = Batch::append(vec![entry_with(
        with_unsynced.last_index() + 1,
        2,
        &[7; SEGMENT_BYTES as usize],
    )]);
    store.set_crash_point(Some(point));
    let error = store.write(&big.as_batch()).unwrap_err();
    assert!(
        matches!(&error, StorageError::Failed(m) if m.contains("simulated crash")),
        "{context}: {error}"
    );
    assert!(matches!(store.sync(), Err(StorageError::Failed(_))));
    drop(store);

    let new_segment = dir
        .path()
        .join(format!("{:020}.wal", seqs.last().unwrap() + 1));
    match lost {
        Lost::Nothing => {}
        Lost::NewSegment => fs::remove_file(&new_segment).unwrap(),
        Lost::NewHeader => fs::OpenOptions::new()
            .write(true)
            .open(&new_segment)
            .unwrap()
            .write_all_at(&[0u8; 32], 0)
            .unwrap(),
    }
    let mut store = DiskStore::open(dir.path(), options.clone()).unwrap();
    // The unsynced batch was synced by the rotation's first step.
    assert_eq!(store.load().unwrap(), initial(&with_unsynced), "{context}");
    assert_sealed_segments_trimmed(dir.path());
    // The store goes on: the big batch, then more, survive a reopen.
    let mut state = with_unsynced;
    write_synced(&mut store, &mut state, &[big]);
    fill_to_rotation(&mut store, &mut state);
    drop(store);
    assert_sealed_segments_trimmed(dir.path());
    let mut store = DiskStore::open(dir.path(), options).unwrap();
    assert_eq!(store.load().unwrap(), initial(&state), "{context}");
}

/// Synced batches in one preallocated segment; returns the segment and the
/// record offsets of its data.
fn synced_preallocated(dir: &Path) -> (std::path::PathBuf, Vec<u8>, Vec<usize>) {
    synced_batches(dir, 8, 2000)
}

#[test]
fn zeros_before_synced_data_are_corruption_not_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, bytes, offsets) = synced_preallocated(dir.path());
    let tail_before = file_len(&segment);
    let write_at = |data: &[u8], at: usize| {
        fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .write_all_at(data, at as u64)
            .unwrap();
    };
    // Zero whole records in the middle (a zero header, then valid records
    // covered by later sync marks), in place: the preallocated tail stays.
    for (first, last) in [(2, 2), (3, 5), (1, 6)] {
        let (start, end) = (offsets[first], offsets[last + 1]);
        write_at(&vec![0u8; end - start], start);
        match DiskStore::open(dir.path(), DiskOptions::default()) {
            Err(StorageError::Corrupt {
                segment: at,
                offset,
                ..
            }) => {
                assert_eq!(at, segment);
                assert_eq!(offset, start as u64, "records {first}..={last}");
            }
            other => panic!("records {first}..={last}: expected Corrupt, got {other:?}"),
        }
        write_at(&bytes[start..end], start);
    }
    // A zero-filled, sector-aligned hole inside a synced record.
    let hole = (offsets[4] / 512 + 1) * 512;
    assert!(hole + 512 <= offsets[5]);
    write_at(&[0u8; 512], hole);
    assert!(matches!(
        DiskStore::open(dir.path(), DiskOptions::default()),
        Err(StorageError::Corrupt { offset, .. }) if offset == offsets[4] as u64
    ));
    write_at(&bytes[hole..hole + 512], hole);
    // Nothing was cut by the refused opens, and the log is whole again.
    assert_eq!(file_len(&segment), tail_before);
    let loaded = open(dir.path()).load().unwrap();
    assert_eq!(loaded.entries.len(), 8);
}

#[test]
fn disk_full_while_preallocating_stops_the_store_and_keeps_every_synced_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    let mut state = LogState::default();
    fill_to_rotation(&mut store, &mut state);
    let seqs = store.segment_seqs();
    let unsynced = Batch::append(vec![entry(state.last_index() + 1, 1)]);
    store.write(&unsynced.as_batch()).unwrap();
    state.apply(&unsynced.as_batch());
    store.inject_preallocate_failure(libc::ENOSPC);
    let big = Batch::append(vec![entry_with(
        state.last_index() + 1,
        1,
        &[3; SEGMENT_BYTES as usize],
    )]);
    match store.write(&big.as_batch()) {
        Err(StorageError::DiskFull { path }) => assert_eq!(
            path,
            dir.path()
                .join(format!("{:020}.wal", seqs.last().unwrap() + 1))
        ),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert!(store.is_failed());
    assert!(matches!(
        store.write(&big.as_batch()),
        Err(StorageError::Failed(_))
    ));
    drop(store);
    // Everything written before (synced by the rotation) is there; the
    // half-created segment is the empty active one.
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    assert_eq!(store.load().unwrap(), initial(&state));
    assert_sealed_segments_trimmed(dir.path());
    write_synced(&mut store, &mut state, &[big]);
    drop(store);
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    assert_eq!(store.load().unwrap(), initial(&state));
}

#[test]
fn a_file_system_without_fallocate_gets_appended_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    let mut state = LogState::default();
    fill_to_rotation(&mut store, &mut state);
    // The next segment cannot be preallocated (as on a file system
    // answering EOPNOTSUPP): it is created anyway and grows by appending.
    store.inject_preallocate_failure(libc::EOPNOTSUPP);
    fill_to_rotation(&mut store, &mut state);
    assert!(!store.is_failed());
    let segments = segment_files(dir.path());
    let unallocated = segments.last().unwrap();
    assert_eq!(file_len(unallocated), data_len(unallocated) as u64);
    assert_sealed_segments_trimmed(dir.path());
    drop(store);
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).unwrap();
    assert_eq!(store.load().unwrap(), initial(&state));
}

/// Opens the store in `dir` and loads it; returns the time taken.
fn timed_recovery(dir: &Path) -> (std::time::Duration, consensus_api::InitialState) {
    let started = Instant::now();
    let mut store = open(dir);
    let loaded = store.load().unwrap();
    (started.elapsed(), loaded)
}

#[test]
fn recovering_a_full_or_an_empty_preallocated_segment_is_fast() {
    // Correctness is asserted; the times are printed (the machine is
    // shared: a time bound here would be flaky).
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut state = LogState::default();
    write_synced(&mut store, &mut state, &[Batch::append(entries(1..=3, 1))]);
    drop(store);
    let (took, loaded) = timed_recovery(dir.path());
    assert_eq!(loaded, initial(&state));
    eprintln!("recovery of a preallocated 64 MiB segment holding 3 entries: {took:?}");

    // Fill it: 1 MiB entries up to the segment limit, in one segment.
    let mut store = open(dir.path());
    let segment_max = DiskOptions::default().segment_bytes_max as usize;
    let payload = vec![0x6bu8; 1 << 20];
    while data_len(&last_segment(dir.path())) + 2 * payload.len() < segment_max {
        let batch = Batch::append(vec![entry_with(state.last_index() + 1, 1, &payload)]);
        store.write(&batch.as_batch()).unwrap();
        state.apply(&batch.as_batch());
    }
    store.sync().unwrap();
    drop(store);
    assert_eq!(segment_files(dir.path()).len(), 1);
    let data = data_len(&last_segment(dir.path()));
    assert!(data > segment_max - (3 << 20), "{data}");
    let (took, loaded) = timed_recovery(dir.path());
    assert_eq!(loaded.entries.len(), state.last_index() as usize);
    assert_eq!(loaded, initial(&state));
    eprintln!(
        "recovery of a full 64 MiB segment ({} MiB of records): {took:?}",
        data >> 20
    );
}
