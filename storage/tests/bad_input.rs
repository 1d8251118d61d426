//! Bad input at scale (issue 16): whatever bytes are on disk, opening a
//! store gives a typed [`StorageError`] or a state made only of what was
//! written, never a panic.
//!
//! * every decoder the store runs on open, fed arbitrary bytes and hostile
//!   values wrapped in valid checksums (so they reach the decoding, not
//!   only the checksum test): `IDENTITY`, `META`, snapshot files, and
//!   record bodies inside a segment;
//! * WAL recovery of random histories (appends, truncations, hard states,
//!   syncs, rotations over several segments) after random damage to the
//!   segment files (bit flips, overwrites, zeroed ranges, truncations):
//!   `Corrupt`, or the state after some prefix of the batches written.
//!
//! Everything goes through the public API and the documented file formats
//! (`consensus_storage::disk` module docs). Stores live in `/dev/shm` when
//! it exists (fsync costs nothing there), else in the temp dir.
//!
//! Cases per property: `PROPTEST_CASES` (default below, a few seconds in
//! debug). The long run is in docs/testing.md, "Bad input at scale".

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{entry_with, segment_files, Batch};
use consensus_api::{Bytes, InitialState, LogStore, StorageError};
use consensus_storage::{DiskOptions, DiskStore, LogState};
use proptest::prelude::*;

/// Small segments, so that histories rotate through several.
const SEGMENT_BYTES: u64 = 4096;

/// `PROPTEST_CASES` when set (the long run), else `default` (CI).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn options() -> DiskOptions {
    DiskOptions::default().with_segment_bytes_max(SEGMENT_BYTES)
}

fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("bad-input-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

/// Opens and loads, as a node does on start.
fn reopen(dir: &Path) -> Result<InitialState, StorageError> {
    DiskStore::open(dir, options())?.load()
}

/// A store with entries 1..=3 and a hard state, synced; returns its state.
fn small_store(dir: &Path) -> InitialState {
    let mut store = DiskStore::open(dir, options()).expect("open");
    let mut state = LogState::default();
    let batch = Batch {
        hard_state: Some(Bytes::from_static(b"term=1")),
        append: vec![
            entry_with(1, 1, b"a"),
            entry_with(2, 1, b"b"),
            entry_with(3, 1, b"c"),
        ],
        ..Batch::default()
    };
    store.write(&batch.as_batch()).expect("write");
    store.sync().expect("sync");
    state.apply(&batch.as_batch());
    state.to_initial_state()
}

/// `magic | len u32 | crc32c(len ++ body) u32 | body`: how IDENTITY and
/// META are sealed.
fn seal(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body);
    let mut out = magic.to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A framed WAL record: `len | crc32c(len) ^ salt | crc32c(len ++ body) | body`.
fn frame(body: &[u8]) -> Vec<u8> {
    const SALT: u32 = 0x5741_4c21;
    let len = body.len() as u32;
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&(crc32c::crc32c(&len.to_le_bytes()) ^ SALT).to_le_bytes());
    out.extend_from_slice(
        &crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), body).to_le_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// A hostile number: boundaries, small values, or anything.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 63),
        0..16u64,
        any::<u64>(),
    ]
}

/// A hostile `u32` length or count.
fn length() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        0..64u32,
        any::<u32>()
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// The entries a state holds must all have been written (same index, same
/// epoch, same payload).
fn only_written(state: &InitialState, written: &InitialState) -> Result<(), TestCaseError> {
    for entry in &state.entries {
        prop_assert!(
            written.entries.contains(entry),
            "recovered entry {} was never written",
            entry.index
        );
    }
    Ok(())
}

/// A hostile record body: a real record type with lying fields, or bytes.
fn record_body() -> impl Strategy<Value = Vec<u8>> {
    let entry = (number(), number(), 0u8..4, length(), bytes(24)).prop_map(
        |(index, epoch, payload, len, data)| {
            let mut out = index.to_le_bytes().to_vec();
            out.extend_from_slice(&epoch.to_le_bytes());
            out.push(payload);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&data);
            out
        },
    );
    prop_oneof![
        // Entries: a count that may lie, then entries.
        (length(), prop::collection::vec(entry, 0..4)).prop_map(|(count, entries)| {
            let mut out = vec![1u8];
            out.extend_from_slice(&count.to_le_bytes());
            entries.iter().for_each(|e| out.extend_from_slice(e));
            out
        }),
        number().prop_map(|from| [&[2u8][..], &from.to_le_bytes()].concat()),
        (length(), bytes(32))
            .prop_map(|(len, rest)| { [&[3u8][..], &len.to_le_bytes(), &rest].concat() }),
        (number(), number()).prop_map(|(index, epoch)| {
            [&[4u8][..], &index.to_le_bytes(), &epoch.to_le_bytes()].concat()
        }),
        number().prop_map(|offset| [&[5u8][..], &offset.to_le_bytes()].concat()),
        (any::<u8>(), bytes(40)).prop_map(|(tag, rest)| [&[tag][..], &rest].concat()),
    ]
}

/// A snapshot file: `CSTOSNAP | meta len u32 | data len u64 | crc u32 |
/// meta | data`, with meta = `index u64 | epoch u64 | len + membership |
/// len + protocol state`. Either consistent lengths and checksum (so the
/// metadata is decoded) with hostile values, or lying lengths.
fn snapshot_file() -> impl Strategy<Value = (u64, Vec<u8>)> {
    (
        number(),
        number(),
        bytes(24),
        bytes(16),
        bytes(32),
        any::<bool>(),
        prop::option::of((length(), number())),
    )
        .prop_map(
            |(index, epoch, membership, protocol, data, same_name, lie)| {
                let mut meta = index.to_le_bytes().to_vec();
                meta.extend_from_slice(&epoch.to_le_bytes());
                meta.extend_from_slice(&(membership.len() as u32).to_le_bytes());
                meta.extend_from_slice(&membership);
                meta.extend_from_slice(&(protocol.len() as u32).to_le_bytes());
                meta.extend_from_slice(&protocol);
                let (meta_len, data_len) = match lie {
                    Some((meta_len, data_len)) => (meta_len, data_len),
                    None => (meta.len() as u32, data.len() as u64),
                };
                let mut crc = crc32c::crc32c(&meta_len.to_le_bytes());
                crc = crc32c::crc32c_append(crc, &data_len.to_le_bytes());
                crc = crc32c::crc32c_append(crc, &meta);
                crc = crc32c::crc32c_append(crc, &data);
                let mut file = b"CSTOSNAP".to_vec();
                file.extend_from_slice(&meta_len.to_le_bytes());
                file.extend_from_slice(&data_len.to_le_bytes());
                file.extend_from_slice(&crc.to_le_bytes());
                file.extend_from_slice(&meta);
                file.extend_from_slice(&data);
                let name_index = if same_name { index } else { index % 8 };
                (name_index, file)
            },
        )
}

/// One batch of a random history (each is one record, so every recovered
/// state must be the state after some prefix of the batches).
#[derive(Clone, Debug)]
enum Op {
    Append { count: u64, len: usize },
    HardState(Vec<u8>),
    Truncate { back: u64 },
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..4u64, 0..300usize).prop_map(|(count, len)| Op::Append { count, len }),
        1 => bytes(24).prop_map(Op::HardState),
        1 => (0..4u64).prop_map(|back| Op::Truncate { back }),
        2 => Just(Op::Sync),
    ]
}

/// Damage to one segment file, at a position taken modulo its length.
#[derive(Clone, Debug)]
enum Damage {
    Flip { at: u64, bit: u8 },
    Overwrite { at: u64, bytes: Vec<u8> },
    Zero { at: u64, len: u16 },
    Cut { at: u64 },
    Append { bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = (usize, Damage)> {
    let kind = prop_oneof![
        4 => (any::<u64>(), 0..8u8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        2 => (any::<u64>(), bytes(16)).prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        1 => (any::<u64>(), 1..1024u16).prop_map(|(at, len)| Damage::Zero { at, len }),
        2 => any::<u64>().prop_map(|at| Damage::Cut { at }),
        1 => bytes(64).prop_map(|bytes| Damage::Append { bytes }),
    ];
    (any::<usize>(), kind)
}

/// Writes the history; returns the state after each prefix of batches.
fn write_history(dir: &Path, ops: &[Op]) -> Vec<InitialState> {
    let mut store = DiskStore::open(dir, options()).expect("open");
    let mut state = LogState::default();
    let mut states = vec![state.to_initial_state()];
    for (n, op) in ops.iter().enumerate() {
        let last = state.last_index();
        let batch = match op {
            Op::Sync => {
                store.sync().expect("sync");
                continue;
            }
            Op::Append { count, len } => Batch::append(
                (1..=*count)
                    .map(|i| entry_with(last + i, n as u64, &vec![n as u8; *len]))
                    .collect(),
            ),
            Op::HardState(bytes) => Batch {
                hard_state: Some(Bytes::copy_from_slice(bytes)),
                ..Batch::default()
            },
            Op::Truncate { back } => Batch {
                truncate_from: Some((last + 1).saturating_sub(*back).max(1)),
                ..Batch::default()
            },
        };
        store.write(&batch.as_batch()).expect("write");
        state.apply(&batch.as_batch());
        states.push(state.to_initial_state());
    }
    states
}

/// Applies the damages.
fn apply_damage(dir: &Path, damages: &[(usize, Damage)]) {
    for (which, damage) in damages {
        let segments = segment_files(dir);
        if segments.is_empty() {
            return;
        }
        let path = &segments[which % segments.len()];
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open segment");
        let len = file.metadata().expect("metadata").len();
        let at = |at: u64| if len == 0 { 0 } else { at % len };
        match damage {
            Damage::Flip { at: position, bit } => {
                if len > 0 {
                    let position = at(*position);
                    let mut byte = [0u8; 1];
                    file.read_exact_at(&mut byte, position).expect("read");
                    byte[0] ^= 1 << bit;
                    file.write_all_at(&byte, position).expect("write");
                }
            }
            Damage::Overwrite {
                at: position,
                bytes,
            } => {
                let position = at(*position);
                let end = (position + bytes.len() as u64).min(len);
                file.write_all_at(&bytes[..(end - position) as usize], position)
                    .expect("write");
            }
            Damage::Zero {
                at: position,
                len: zeros,
            } => {
                let position = at(*position);
                let end = (position + u64::from(*zeros)).min(len);
                file.write_all_at(&vec![0u8; (end - position) as usize], position)
                    .expect("write");
            }
            Damage::Cut { at: position } => file.set_len(at(*position)).expect("truncate"),
            Damage::Append { bytes } => file.write_all_at(bytes, len).expect("append"),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Random histories, then random damage to their segments: `Corrupt`,
    /// or exactly the state after some prefix of the batches written.
    #[test]
    fn wal_recovery_after_random_damage(
        ops in prop::collection::vec(op(), 1..40),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let dir = tempdir();
        let states = write_history(dir.path(), &ops);
        // Including a sealed segment cut exactly at a record boundary
        // (`sealed_segment_cut_at_a_record_boundary`).
        apply_damage(dir.path(), &damages);
        match reopen(dir.path()) {
            Ok(state) => prop_assert!(
                states.contains(&state),
                "recovered a state that no prefix of the batches gives: {:?}",
                state.entries.iter().map(|e| (e.index, e.epoch)).collect::<Vec<_>>()
            ),
            Err(StorageError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "not a corruption error: {other}"),
        }
    }

    /// Arbitrary bytes, or a sealed hostile body, as `META`.
    #[test]
    fn meta_file_takes_any_bytes(
        raw in bytes(64),
        sealed in any::<bool>(),
        first_segment in number(),
        compacted_through in number(),
        flag in 0u8..3,
        hard_state in (length(), bytes(16)),
    ) {
        let dir = tempdir();
        let written = small_store(dir.path());
        let content = if sealed {
            let mut body = first_segment.to_le_bytes().to_vec();
            body.extend_from_slice(&compacted_through.to_le_bytes());
            body.push(flag);
            body.extend_from_slice(&hard_state.0.to_le_bytes());
            body.extend_from_slice(&hard_state.1);
            seal(b"CSTOMETA", &body)
        } else {
            raw
        };
        fs::write(dir.path().join("META"), content).expect("write META");
        if let Ok(state) = reopen(dir.path()) {
            only_written(&state, &written)?;
        }
    }

    /// Arbitrary bytes, or a sealed hostile body, as `IDENTITY`.
    #[test]
    fn identity_file_takes_any_bytes(
        raw in bytes(64),
        sealed in any::<bool>(),
        version in length(),
        node in prop::option::of(number()),
        cluster in prop::option::of((length(), bytes(24))),
    ) {
        let dir = tempdir();
        let written = small_store(dir.path());
        let content = if sealed {
            let mut body = version.to_le_bytes().to_vec();
            match node {
                Some(id) => { body.push(1); body.extend_from_slice(&id.to_le_bytes()); }
                None => body.push(0),
            }
            match &cluster {
                Some((len, id)) => {
                    body.push(1);
                    body.extend_from_slice(&len.to_le_bytes());
                    body.extend_from_slice(id);
                }
                None => body.push(0),
            }
            seal(b"CSTOREID", &body)
        } else {
            raw
        };
        fs::write(dir.path().join("IDENTITY"), content).expect("write IDENTITY");
        if let Ok(state) = reopen(dir.path()) {
            only_written(&state, &written)?;
        }
    }

    /// A snapshot file of arbitrary bytes or hostile consistent content.
    #[test]
    fn snapshot_file_takes_any_bytes(
        raw in (0u64..8, bytes(96)),
        structured in snapshot_file(),
        use_raw in any::<bool>(),
    ) {
        let dir = tempdir();
        let written = small_store(dir.path());
        let (index, content) = if use_raw { raw } else { structured };
        fs::write(dir.path().join(format!("snap-{index:020}.snap")), content)
            .expect("write snapshot");
        if let Ok(state) = reopen(dir.path()) {
            only_written(&state, &written)?;
        }
    }

    /// Validly framed records with hostile bodies after real ones: the
    /// body decoder and the replay of what it decodes.
    #[test]
    fn record_decoder_takes_hostile_bodies(bodies in prop::collection::vec(record_body(), 1..4)) {
        let dir = tempdir();
        small_store(dir.path());
        let segment = segment_files(dir.path()).pop().expect("a segment");
        let data_len = common::data_len(&segment) as u64;
        let records: Vec<u8> = bodies.iter().flat_map(|body| frame(body)).collect();
        let file = OpenOptions::new().write(true).open(&segment).expect("open segment");
        file.write_all_at(&records, data_len).expect("write records");
        match reopen(dir.path()) {
            Ok(_) | Err(StorageError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "not a corruption error: {other}"),
        }
    }
}

/// Found by `wal_recovery_after_random_damage` (minimal input: 21 batches
/// over three 4 KiB segments, the middle one cut at a record boundary): a
/// sealed segment that lost whole records at its end has no bad record of
/// its own, so before format version 2 recovery returned the records
/// before and after the hole, a state no prefix of the writes gives (for
/// classic and Multi-Paxos, whose logs may be sparse, accepted values
/// silently lost). Each segment header now records the length its
/// predecessor was sealed at; a sealed segment shorter than that is
/// `Corrupt`, named with the length it lost.
#[test]
fn sealed_segment_cut_at_a_record_boundary() {
    let dir = tempdir();
    let ops: Vec<Op> = (0..30).map(|_| Op::Append { count: 1, len: 300 }).collect();
    write_history(dir.path(), &ops);
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 3, "the history spans three segments");
    let middle = &segments[1];
    let offsets = common::record_offsets(&common::segment_data(middle));
    let cut = offsets[offsets.len() / 2];
    OpenOptions::new()
        .write(true)
        .open(middle)
        .expect("open")
        .set_len(cut as u64)
        .expect("cut");
    match reopen(dir.path()) {
        Err(StorageError::Corrupt {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(&segment, middle, "{reason}");
            assert_eq!(offset, cut as u64, "{reason}");
            assert!(reason.contains("records at its end are lost"), "{reason}");
        }
        Ok(state) => panic!(
            "a hole was recovered as data: {:?}",
            state.entries.iter().map(|e| e.index).collect::<Vec<_>>()
        ),
        Err(other) => panic!("not a corruption error: {other}"),
    }
}
