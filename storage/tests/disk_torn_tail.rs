//! Recovery after a crash mid-write versus bit rot (the rule in the
//! `consensus_storage::disk` module docs): every cut and every bit flip of
//! the last record, corruption before the tail, sealed segments, zero-filled
//! space and never-written holes.
//!
//! Segments are preallocated, so a file holds its data followed by a
//! zero-filled tail. The tests take the data (`segment_data`), damage it,
//! and write it back either bare (as on a file system without
//! preallocation, or a tail already trimmed) or followed by a zero tail.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use consensus_api::{InitialState, LogStore, StorageError};
use consensus_storage::{DiskStore, LogState};

/// The zero-filled tail added after damaged data to model a preallocated
/// segment (sparse, so it costs nothing to write).
const PREALLOCATED_TAIL: u64 = 1 << 20;

/// What recovery gave for one damaged file.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    State(InitialState),
    Corrupt { segment: PathBuf, offset: u64 },
}

fn recover(dir: &Path) -> Outcome {
    match DiskStore::open(dir, Default::default()) {
        Ok(mut store) => Outcome::State(store.load().expect("load")),
        Err(StorageError::Corrupt {
            segment, offset, ..
        }) => Outcome::Corrupt { segment, offset },
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// A log whose last batch is one entry with `payload`, synced. Returns the
/// state before that batch, the state with it, the segment, and where its
/// entries record starts.
struct Log {
    before: InitialState,
    full: InitialState,
    segment: PathBuf,
    bytes: Vec<u8>,
    last_start: usize,
}

fn build_log(dir: &Path, payload: impl FnOnce(&[u8]) -> Vec<u8>) -> Log {
    let mut store = open(dir);
    let mut state = LogState::default();
    write_synced(
        &mut store,
        &mut state,
        &[
            Batch::append(entries(1..=3, 1)),
            Batch::hard_state("term=1 vote=2"),
        ],
    );
    let before = initial(&state);
    let segment = last_segment(dir);
    let payload = payload(&segment_data(&segment));
    write_synced(
        &mut store,
        &mut state,
        &[Batch::append(vec![entry_with(4, 1, &payload)])],
    );
    drop(store);
    let bytes = segment_data(&segment);
    let last_start = *record_offsets(&bytes).last().unwrap();
    Log {
        before,
        full: initial(&state),
        segment,
        bytes,
        last_start,
    }
}

#[test]
fn every_cut_and_every_bit_flip_of_the_last_record_recovers_the_synced_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = build_log(dir.path(), |_| vec![0x42; 100]);
    let record_len = log.bytes.len() - log.last_start;
    assert!(record_len > 100);
    for zero_tail in [0, PREALLOCATED_TAIL] {
        for cut in 0..record_len {
            fs::write(&log.segment, &log.bytes[..log.last_start + cut]).unwrap();
            add_zero_tail(&log.segment, zero_tail);
            let context = format!("cut at {cut}, zero tail {zero_tail}");
            assert_eq!(
                recover(dir.path()),
                Outcome::State(log.before.clone()),
                "{context}"
            );
            // The torn part was cut away for good.
            assert_eq!(data_len(&log.segment), log.last_start, "{context}");
            assert_zeros(&log.segment, log.last_start..log.bytes.len(), &context);
        }
    }
    for bit in 0..record_len * 8 {
        let mut bytes = log.bytes.clone();
        bytes[log.last_start + bit / 8] ^= 1 << (bit % 8);
        fs::write(&log.segment, &bytes).unwrap();
        // Every other flip with the zero tail of a preallocated segment.
        add_zero_tail(&log.segment, PREALLOCATED_TAIL * (bit % 2) as u64);
        assert_eq!(
            recover(dir.path()),
            Outcome::State(log.before.clone()),
            "bit {bit}"
        );
    }
    fs::write(&log.segment, &log.bytes).unwrap();
    assert_eq!(recover(dir.path()), Outcome::State(log.full.clone()));
}

#[test]
fn a_torn_tail_that_embeds_a_valid_record_is_reported_as_documented() {
    // The last entry's payload holds a copy of an earlier record's bytes:
    // after a cut or flip that leaves that copy whole, a valid record
    // follows the bad one, which the rule must call corruption.
    let dir = tempfile::tempdir().unwrap();
    let mut embedded = Vec::new();
    let log = build_log(dir.path(), |segment| {
        let offsets = record_offsets(segment);
        embedded = segment[offsets[1]..offsets[2]].to_vec();
        let mut payload = vec![0x11; 16];
        payload.extend_from_slice(&embedded);
        payload.extend_from_slice(&[0x22; 16]);
        payload
    });
    let start = log.last_start;
    let inner = start
        + log.bytes[start..]
            .windows(embedded.len())
            .position(|w| w == embedded.as_slice())
            .unwrap();
    let inner_end = inner + embedded.len();
    let corrupt = Outcome::Corrupt {
        segment: log.segment.clone(),
        offset: start as u64,
    };
    let (mut torn, mut corrupted) = (0, 0);
    for cut in start..log.bytes.len() {
        fs::write(&log.segment, &log.bytes[..cut]).unwrap();
        let expected = if cut > start && cut >= inner_end {
            corrupted += 1;
            &corrupt
        } else {
            torn += 1;
            &Outcome::State(log.before.clone())
        };
        assert_eq!(&recover(dir.path()), expected, "cut at {cut}");
    }
    for bit in start * 8..log.bytes.len() * 8 {
        let mut bytes = log.bytes.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        fs::write(&log.segment, &bytes).unwrap();
        let expected = if (inner..inner_end).contains(&(bit / 8)) {
            torn += 1;
            Outcome::State(log.before.clone())
        } else {
            corrupted += 1;
            corrupt.clone()
        };
        assert_eq!(recover(dir.path()), expected, "bit {bit}");
    }
    assert!(torn > 0 && corrupted > 0);
}

/// A synced log of several batches in one segment.
fn several_batches(dir: &Path) -> (PathBuf, Vec<u8>, Vec<usize>) {
    synced_batches(dir, 6, 60)
}

#[test]
fn damage_before_the_tail_is_corruption_at_the_record_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, bytes, offsets) = several_batches(dir.path());
    // Every record but the last: flip its first length bit, a length-check
    // bit, a checksum bit and a body bit.
    for (i, &offset) in offsets[..offsets.len() - 1].iter().enumerate() {
        for byte in [
            offset,
            offset + 5,
            offset + 9,
            offset + FRAME_HEADER_BYTES + 3,
        ] {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 0x10;
            fs::write(&segment, &damaged).unwrap();
            assert_eq!(
                recover(dir.path()),
                Outcome::Corrupt {
                    segment: segment.clone(),
                    offset: offset as u64
                },
                "record {i} byte {byte}"
            );
        }
    }
    // Every bit of one record in the middle.
    let (start, end) = (offsets[3], offsets[4]);
    for bit in start * 8..end * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        fs::write(&segment, &damaged).unwrap();
        assert_eq!(
            recover(dir.path()),
            Outcome::Corrupt {
                segment: segment.clone(),
                offset: start as u64
            },
            "bit {bit}"
        );
    }
    // Nothing was cut by the failed opens.
    fs::write(&segment, &bytes).unwrap();
    assert!(matches!(recover(dir.path()), Outcome::State(s) if s.entries.len() == 6));
}

#[test]
fn damage_in_a_sealed_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DiskStore::open(dir.path(), options(500)).unwrap();
    let mut state = LogState::default();
    let batches: Vec<Batch> = (1..=20).map(|i| Batch::append(vec![entry(i, 1)])).collect();
    write_synced(&mut store, &mut state, &batches);
    drop(store);
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3);
    let sealed = &segments[segments.len() - 2];
    let bytes = fs::read(sealed).unwrap();
    let last = *record_offsets(&bytes).last().unwrap();
    let reopen = || DiskStore::open(dir.path(), options(500));
    // A flip in its last record.
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    fs::write(sealed, &damaged).unwrap();
    assert!(
        matches!(reopen(), Err(StorageError::Corrupt { segment, offset, .. }) if &segment == sealed && offset == last as u64)
    );
    // A cut of its last byte.
    fs::write(sealed, &bytes[..bytes.len() - 1]).unwrap();
    assert!(
        matches!(reopen(), Err(StorageError::Corrupt { segment, offset, .. }) if &segment == sealed && offset == last as u64)
    );
    // A missing segment in the middle.
    fs::write(sealed, &bytes).unwrap();
    let middle = &segments[1];
    let kept = fs::read(middle).unwrap();
    fs::remove_file(middle).unwrap();
    assert!(matches!(reopen(), Err(StorageError::Corrupt { .. })));
    // A sealed segment whose header was zeroed.
    fs::write(middle, vec![0u8; kept.len()]).unwrap();
    assert!(
        matches!(reopen(), Err(StorageError::Corrupt { segment, offset: 0, .. }) if &segment == middle)
    );
    fs::write(middle, &kept).unwrap();
    let mut store = reopen().unwrap();
    assert_eq!(store.load().unwrap(), initial(&state));
}

#[test]
fn zero_filled_space_and_garbage_after_the_tail_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, bytes, _) = several_batches(dir.path());
    let expected = match recover(dir.path()) {
        Outcome::State(state) => state,
        other => panic!("{other:?}"),
    };
    let tails: [Vec<u8>; 4] = [
        vec![0u8; 4096],                                  // preallocated / never written
        (0..700u32).map(|i| (i * 7 + 3) as u8).collect(), // garbage
        vec![0xff; 33],                                   // erased flash
        [vec![0u8; 600], (0..50u8).collect()].concat(),   // zeros, then garbage
    ];
    for tail in tails {
        fs::write(&segment, [bytes.as_slice(), &tail].concat()).unwrap();
        assert_eq!(recover(dir.path()), Outcome::State(expected.clone()));
        assert_eq!(
            segment_data(&segment),
            bytes,
            "the tail is cut and nothing else"
        );
        assert_zeros(
            &segment,
            bytes.len()..bytes.len() + tail.len(),
            "the tail is gone",
        );
    }
}

#[test]
fn a_never_written_hole_in_an_unsynced_tail_is_torn_unless_a_sync_mark_proves_it_synced() {
    for proven in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut state = LogState::default();
        write_synced(&mut store, &mut state, &[Batch::append(entries(1..=2, 1))]);
        // Three batches without a sync between them (one group commit).
        let unsynced = [
            Batch::append(vec![entry(3, 1)]),
            Batch::append(vec![entry_with(4, 1, &[0x33; 3000])]),
            Batch::append(vec![entry(5, 1)]),
        ];
        for batch in &unsynced {
            store.write(&batch.as_batch()).unwrap();
        }
        if proven {
            // A sync, then a later batch whose sync mark covers them.
            store.sync().unwrap();
            store
                .write(&Batch::append(vec![entry(6, 1)]).as_batch())
                .unwrap();
        }
        drop(store);
        let segment = last_segment(dir.path());
        let mut bytes = segment_data(&segment);
        let offsets = record_offsets(&bytes);
        let big = offsets
            .iter()
            .copied()
            .find(|&o| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) > 2000)
            .unwrap();
        // A power loss wrote back later pages but not this sector.
        let hole = (big / 512 + 2) * 512;
        bytes[hole..hole + 512].fill(0);
        fs::write(&segment, &bytes).unwrap();
        let outcome = recover(dir.path());
        if proven {
            assert_eq!(
                outcome,
                Outcome::Corrupt {
                    segment,
                    offset: big as u64
                }
            );
        } else {
            state.apply(&unsynced[0].as_batch());
            assert_eq!(
                outcome,
                Outcome::State(initial(&state)),
                "synced entries and the whole first unsynced batch"
            );
            assert_eq!(data_len(&segment), big);
            assert_zeros(&segment, big..bytes.len(), "the torn batches are gone");
        }
    }
}

#[test]
fn an_interrupted_segment_creation_is_completed() {
    for partial in [0usize, 10, 32, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LogState::default();
        {
            let mut store = DiskStore::open(dir.path(), options(500)).unwrap();
            let batches: Vec<Batch> = (1..=12).map(|i| Batch::append(vec![entry(i, 1)])).collect();
            write_synced(&mut store, &mut state, &batches);
        }
        let segments = segment_files(dir.path());
        let next = dir.path().join(format!("{:020}.wal", segments.len() + 1));
        // A prefix of a header (10 bytes), or zero-filled space.
        let header = fs::read(&segments[0]).unwrap()[..32].to_vec();
        let content = if partial == 10 {
            header[..10].to_vec()
        } else {
            vec![0u8; partial]
        };
        fs::write(&next, &content).unwrap();
        // Rotation creates the next segment only after trimming the full
        // one to its data; while it still has its preallocated zero tail,
        // a later segment makes that tail corruption of a sealed segment.
        let full = segments.last().unwrap();
        let full_data = data_len(full);
        if fs::metadata(full).unwrap().len() as usize > full_data {
            assert!(
                matches!(
                    DiskStore::open(dir.path(), options(500)),
                    Err(StorageError::Corrupt { segment, offset, .. })
                        if &segment == full && offset == full_data as u64
                ),
                "partial {partial}"
            );
        }
        fs::OpenOptions::new()
            .write(true)
            .open(full)
            .unwrap()
            .set_len(full_data as u64)
            .unwrap();
        let mut store = DiskStore::open(dir.path(), options(500)).unwrap();
        assert_eq!(store.load().unwrap(), initial(&state), "partial {partial}");
        assert_eq!(data_len(&next), 32, "header rewritten, no record");
        // The rewritten header records the length the previous segment
        // holds (segment header format 2: that length, u64 at byte 24), so
        // that segment is held to it once sealed.
        let rewritten = fs::read(&next).unwrap();
        assert_eq!(
            u64::from_le_bytes(rewritten[24..32].try_into().unwrap()),
            full_data as u64,
            "partial {partial}"
        );
        // The repaired segment takes new records.
        let more = Batch::append(vec![entry(state.last_index() + 1, 2)]);
        write_synced(&mut store, &mut state, &[more]);
        assert_eq!(
            store.segment_seqs().last(),
            Some(&(segments.len() as u64 + 1))
        );
        drop(store);
        let mut store = DiskStore::open(dir.path(), options(500)).unwrap();
        assert_eq!(store.load().unwrap(), initial(&state), "partial {partial}");
    }
}
