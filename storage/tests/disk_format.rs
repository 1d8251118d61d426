//! On-disk format versions: a directory written in format version 1 (before
//! segment headers recorded their predecessor's length) is read and
//! upgraded; version 2 holds every sealed segment to the length its
//! successor's header records.
//!
//! `tests/data/format-v1/` is a real directory written by the version 1
//! build (commit 7fe0f6c, before this change): 4 KiB segments, not
//! preallocated, 20 synced batches, batch `i` = entry `i` (epoch 1, payload
//! 300 bytes of `i`) and hard state `hs-i`. Two segments, the first sealed.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{entry_with, options, record_offsets, segment_data, segment_files, Batch};
use consensus_api::{Bytes, InitialState, LogStore, StorageError};
use consensus_storage::{DiskStore, LogState};

const SEGMENT_BYTES: u64 = 4096;

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1");
    for file in fs::read_dir(&fixture).expect("fixture") {
        let file = file.expect("entry");
        fs::copy(file.path(), dir.path().join(file.file_name())).expect("copy");
    }
    dir
}

/// The state of the fixture plus batches `21..=last` written the same way.
fn expected(last: u64) -> InitialState {
    let mut state = LogState::default();
    for i in 1..=last {
        state.apply(&batch(i).as_batch());
    }
    state.to_initial_state()
}

fn batch(i: u64) -> Batch {
    Batch {
        hard_state: Some(Bytes::from(format!("hs-{i}"))),
        ..Batch::append(vec![entry_with(i, 1, &[i as u8; 300])])
    }
}

/// IDENTITY: magic (8) | len u32 | crc u32 | body: format version u32 ...
fn identity_version(dir: &Path) -> u32 {
    let bytes = fs::read(dir.join("IDENTITY")).expect("identity");
    u32::from_le_bytes(bytes[16..20].try_into().unwrap())
}

/// Segment header: version u32 at 8; version 2: sequence u64 at 16,
/// previous segment's length u64 at 24.
fn header_version(segment: &Path) -> u32 {
    let bytes = fs::read(segment).expect("segment");
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

fn header_previous_len(segment: &Path) -> u64 {
    let bytes = fs::read(segment).expect("segment");
    u64::from_le_bytes(bytes[24..32].try_into().unwrap())
}

fn reopen(dir: &Path) -> Result<InitialState, StorageError> {
    DiskStore::open(dir, options(SEGMENT_BYTES))?.load()
}

fn cut(segment: &Path, len: usize) {
    OpenOptions::new()
        .write(true)
        .open(segment)
        .expect("open")
        .set_len(len as u64)
        .expect("cut");
}

#[test]
fn a_format_1_directory_is_read_upgraded_and_written_in_format_2() {
    let dir = fixture_copy();
    assert_eq!(identity_version(dir.path()), 1);
    let old_segments = segment_files(dir.path());
    assert_eq!(old_segments.len(), 2);
    assert!(old_segments.iter().all(|s| header_version(s) == 1));

    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).expect("open v1");
    assert_eq!(store.load().expect("load"), expected(20));
    // Upgraded before anything new is written.
    assert_eq!(identity_version(dir.path()), 2);
    for i in 21..=50 {
        store.write(&batch(i).as_batch()).expect("write");
        store.sync().expect("sync");
    }
    drop(store);
    assert_eq!(reopen(dir.path()).expect("reopen"), expected(50));

    let segments = segment_files(dir.path());
    assert!(segments.len() >= 4, "{segments:?}");
    // The old segments are left as they were; every new one records the
    // length its predecessor was sealed at.
    assert_eq!(header_version(&segments[0]), 1);
    assert_eq!(header_version(&segments[1]), 1);
    for pair in segments.windows(2).skip(1) {
        assert_eq!(header_version(&pair[1]), 2);
        assert_eq!(
            header_previous_len(&pair[1]),
            fs::metadata(&pair[0]).unwrap().len(),
            "{pair:?}"
        );
    }
}

#[test]
fn a_format_1_segment_sealed_by_format_2_is_held_to_its_length() {
    let dir = fixture_copy();
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).expect("open v1");
    for i in 21..=30 {
        store.write(&batch(i).as_batch()).expect("write");
        store.sync().expect("sync");
    }
    drop(store);
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3, "{segments:?}");
    // Segment 2 was written in format 1 and sealed by this build: the
    // header of segment 3 records its length.
    let second = &segments[1];
    assert_eq!(header_version(second), 1);
    let offsets = record_offsets(&segment_data(second));
    let boundary = offsets[offsets.len() - 1];
    cut(second, boundary);
    match reopen(dir.path()) {
        Err(StorageError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(&segment, second);
            assert_eq!(offset, boundary as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_sealed_segment_that_grew_past_its_sealed_length_is_corruption() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).expect("open");
    for i in 1..=30 {
        store.write(&batch(i).as_batch()).expect("write");
        store.sync().expect("sync");
    }
    drop(store);
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3, "{segments:?}");
    // Append a whole, valid record of the next segment to the first one:
    // every record of it is valid, only the sealed length says otherwise.
    let second = segment_data(&segments[1]);
    let offsets = record_offsets(&second);
    let record = &second[offsets[0]..offsets[1]];
    let first = OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .expect("open");
    let len = first.metadata().unwrap().len();
    first.write_all_at(record, len).expect("append");
    match reopen(dir.path()) {
        Err(StorageError::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, segments[0]);
            assert!(reason.contains("added after it was sealed"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_version_1_segment_header_after_a_version_2_segment_is_corruption() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = DiskStore::open(dir.path(), options(SEGMENT_BYTES)).expect("open");
    for i in 1..=30 {
        store.write(&batch(i).as_batch()).expect("write");
        store.sync().expect("sync");
    }
    drop(store);
    let segments = segment_files(dir.path());
    // The format 1 header of segment 2: magic | version 1 | 0 | seq |
    // crc32c(first 24 bytes) | 0. Valid on its own, but this store wrote
    // segment 1 in format 2 and never writes format 1.
    let mut header = [0u8; 32];
    header[0..8].copy_from_slice(b"CSTOWAL\0");
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    header[16..24].copy_from_slice(&2u64.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    OpenOptions::new()
        .write(true)
        .open(&segments[1])
        .expect("open")
        .write_all_at(&header, 0)
        .expect("write header");
    match reopen(dir.path()) {
        Err(StorageError::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, segments[1]);
            assert!(reason.contains("version 1 header"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
