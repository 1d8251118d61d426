//! Helpers shared by the disk store tests.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use consensus_api::{
    Bytes, Entry, InitialState, LogIndex, LogStore, Membership, Payload, Snapshot, WriteBatch,
};
use consensus_storage::{DiskOptions, DiskStore, LogState};

/// Bytes of a segment header (documented layout).
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Bytes of a record frame header (documented layout).
pub const FRAME_HEADER_BYTES: usize = 12;

pub fn entry(index: LogIndex, epoch: u64) -> Entry {
    Entry {
        index,
        epoch,
        payload: Payload::Command(Bytes::from(format!("value-{index}-{epoch}"))),
    }
}

pub fn entry_with(index: LogIndex, epoch: u64, payload: &[u8]) -> Entry {
    Entry {
        index,
        epoch,
        payload: Payload::Command(Bytes::copy_from_slice(payload)),
    }
}

pub fn entries(range: std::ops::RangeInclusive<LogIndex>, epoch: u64) -> Vec<Entry> {
    range.map(|index| entry(index, epoch)).collect()
}

pub fn snapshot(index: LogIndex, epoch: u64) -> Snapshot {
    Snapshot {
        index,
        epoch,
        membership: Membership::new([1, 2, 3]),
        protocol_state: Bytes::from(format!("protocol@{index}")),
        data: Bytes::from(format!("state machine through {index}").repeat(8)),
    }
}

/// An owned write batch, for building histories.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub hard_state: Option<Bytes>,
    pub truncate_from: Option<LogIndex>,
    pub append: Vec<Entry>,
    pub snapshot: Option<Snapshot>,
}

impl Batch {
    pub fn append(entries: Vec<Entry>) -> Batch {
        Batch {
            append: entries,
            ..Batch::default()
        }
    }

    pub fn hard_state(bytes: &str) -> Batch {
        Batch {
            hard_state: Some(Bytes::copy_from_slice(bytes.as_bytes())),
            ..Batch::default()
        }
    }

    pub fn as_batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            hard_state: self.hard_state.as_ref(),
            truncate_from: self.truncate_from,
            append: &self.append,
            snapshot: self.snapshot.as_ref(),
        }
    }
}

pub fn options(segment_bytes_max: u64) -> DiskOptions {
    DiskOptions::default().with_segment_bytes_max(segment_bytes_max)
}

pub fn open(dir: &Path) -> DiskStore {
    DiskStore::open(dir, DiskOptions::default()).expect("open store")
}

/// Writes and syncs each batch; returns the logical state they produce.
pub fn write_synced(store: &mut DiskStore, state: &mut LogState, batches: &[Batch]) {
    for batch in batches {
        store.write(&batch.as_batch()).expect("write");
        store.sync().expect("sync");
        state.apply(&batch.as_batch());
    }
}

pub fn initial(state: &LogState) -> InitialState {
    state.to_initial_state()
}

/// Segment files, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

pub fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().expect("a segment")
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Where the data (header and records) of a segment file ends: walks the
/// documented frame layout (length u32 at the start of each frame) up to
/// the end of the file or an all-zero frame header, where the zero-filled
/// (preallocated) tail starts. Reads only frame headers, never the tail.
pub fn data_len(segment: &Path) -> usize {
    let file = File::open(segment).expect("open segment");
    let file_len = file.metadata().expect("metadata").len() as usize;
    let mut offset = SEGMENT_HEADER_BYTES.min(file_len);
    while offset + FRAME_HEADER_BYTES <= file_len {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        file.read_exact_at(&mut header, offset as u64)
            .expect("read frame header");
        if header == [0u8; FRAME_HEADER_BYTES] {
            return offset;
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        offset += FRAME_HEADER_BYTES + len;
    }
    assert_eq!(offset, file_len, "segment ends inside a record");
    offset
}

/// The data of a segment file: its header and records, without the
/// zero-filled tail after them (which is not read).
pub fn segment_data(segment: &Path) -> Vec<u8> {
    let mut bytes = vec![0u8; data_len(segment)];
    File::open(segment)
        .expect("open segment")
        .read_exact_at(&mut bytes, 0)
        .expect("read segment data");
    bytes
}

/// Asserts that `segment` holds only zeros (or nothing: the file may be
/// shorter) in `range`: cut-away bytes are gone for good.
pub fn assert_zeros(segment: &Path, range: std::ops::Range<usize>, context: &str) {
    let file = File::open(segment).expect("open segment");
    let file_len = file.metadata().expect("metadata").len() as usize;
    let end = range.end.min(file_len);
    if range.start >= end {
        return;
    }
    let mut bytes = vec![0u8; end - range.start];
    file.read_exact_at(&mut bytes, range.start as u64)
        .expect("read");
    assert!(
        bytes.iter().all(|&b| b == 0),
        "{context}: non-zero bytes in {range:?}"
    );
}

/// Extends `segment` with `bytes` of zero-filled space, as a preallocated
/// segment's tail (a sparse extension: it reads as zeros, like fallocated
/// space, and costs nothing).
pub fn add_zero_tail(segment: &Path, bytes: u64) {
    let file = OpenOptions::new()
        .write(true)
        .open(segment)
        .expect("open segment");
    let len = file.metadata().expect("metadata").len();
    file.set_len(len + bytes).expect("extend");
}

/// Whether `fallocate(2)` works in `dir` (false on file systems without
/// it, where segments are not preallocated).
pub fn preallocation_supported(dir: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("fallocate-probe");
    let file = File::create(&path).expect("probe file");
    // SAFETY: fallocate on a file we own; no memory is involved.
    let supported = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, 4096) } == 0;
    drop(file);
    fs::remove_file(&path).expect("remove probe");
    supported
}

/// Byte offsets of every record of a segment's data (as returned by
/// [`segment_data`]), found by walking the documented frame layout.
pub fn record_offsets(segment: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + FRAME_HEADER_BYTES <= segment.len() {
        offsets.push(offset);
        let len = u32::from_le_bytes(segment[offset..offset + 4].try_into().unwrap()) as usize;
        offset += FRAME_HEADER_BYTES + len;
    }
    assert_eq!(offset, segment.len(), "segment ends inside a record");
    offsets
}

/// `count` synced batches of one entry of `payload_len` bytes each, in one
/// segment; returns the segment, its data and the offsets of its records.
#[allow(dead_code)]
pub fn synced_batches(
    dir: &Path,
    count: u64,
    payload_len: usize,
) -> (PathBuf, Vec<u8>, Vec<usize>) {
    let mut store = open(dir);
    let mut state = LogState::default();
    let batches: Vec<Batch> = (1..=count)
        .map(|i| Batch::append(vec![entry_with(i, 1, &vec![i as u8; payload_len])]))
        .collect();
    write_synced(&mut store, &mut state, &batches);
    drop(store);
    let segment = last_segment(dir);
    let bytes = segment_data(&segment);
    let offsets = record_offsets(&bytes);
    (segment, bytes, offsets)
}
