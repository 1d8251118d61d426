//! Opening a data directory: finish or undo interrupted steps, pick the
//! newest snapshot, replay the live segments into a [`LogState`].

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use consensus_api::{LogIndex, Snapshot, StorageError};

use crate::state::LogState;

use super::failpoint::Faults;
use super::fsio::{io_error, remove_file, sync_dir, LOCK_FILE, TEMP_SUFFIX};
use super::identity::IDENTITY_FILE;
use super::image::SegmentImage;
use super::meta::{Meta, META_FILE};
use super::record::Record;
use super::scan::{scan_segment, Tail};
use super::segment::{
    encode_header, parse_segment_name, segment_name, SegmentHeader, SEGMENT_VERSION,
    SEGMENT_VERSION_V1,
};
use super::snapshot_file::SnapshotFile;

/// What a data directory holds, by kind.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    pub(crate) identity: bool,
    pub(crate) meta: bool,
    pub(crate) temps: Vec<PathBuf>,
    pub(crate) segments: BTreeMap<u64, PathBuf>,
    pub(crate) snapshots: BTreeMap<LogIndex, PathBuf>,
    pub(crate) others: Vec<PathBuf>,
}

impl DirListing {
    /// Lists `dir`.
    pub(crate) fn read(dir: &Path) -> Result<DirListing, StorageError> {
        let mut listing = DirListing::default();
        let entries = fs::read_dir(dir).map_err(|e| io_error("listing", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                listing.others.push(path);
                continue;
            };
            if name == IDENTITY_FILE {
                listing.identity = true;
            } else if name == META_FILE {
                listing.meta = true;
            } else if name == LOCK_FILE {
            } else if let Some(base) = name.strip_suffix(TEMP_SUFFIX).filter(|base| {
                *base == IDENTITY_FILE
                    || *base == META_FILE
                    || SnapshotFile::parse_name(base).is_some()
            }) {
                tracing::debug!(file = base, "leftover temp file");
                listing.temps.push(path);
            } else if let Some(seq) = parse_segment_name(&name) {
                listing.segments.insert(seq, path);
            } else if let Some(index) = SnapshotFile::parse_name(&name) {
                listing.snapshots.insert(index, path);
            } else {
                listing.others.push(path);
            }
        }
        Ok(listing)
    }

    /// Whether the directory holds nothing of a store (a lock file and temp
    /// files aside).
    pub(crate) fn is_blank(&self) -> bool {
        !self.identity
            && !self.meta
            && self.segments.is_empty()
            && self.snapshots.is_empty()
            && self.others.is_empty()
    }
}

/// One live segment as recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// Sequence number.
    pub(crate) seq: u64,
    /// Valid length (after any torn tail was cut).
    pub(crate) len: u64,
    /// Highest entry index written in it.
    pub(crate) max_index: LogIndex,
}

/// The result of recovery.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The durable content.
    pub(crate) state: LogState,
    /// Live segments, oldest first (never empty after a repairing recovery).
    pub(crate) segments: Vec<SegmentInfo>,
}

/// Whether recovery may change the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Opening: cut torn tails, delete leftovers, fsync what is returned.
    Repair,
    /// Re-reading a directory this process is writing: change nothing.
    ReadOnly,
}

fn corrupt(path: PathBuf, reason: String) -> StorageError {
    StorageError::Corrupt {
        segment: path,
        offset: 0,
        reason,
    }
}

/// Recovers the store in `dir` (whose identity was already checked).
pub(crate) fn recover(
    dir: &Path,
    mode: Mode,
    faults: &mut Faults,
) -> Result<Recovered, StorageError> {
    let repair = mode == Mode::Repair;
    let mut listing = DirListing::read(dir)?;
    let mut dir_changed = false;
    if repair {
        for temp in &listing.temps {
            remove_file(temp)?;
            dir_changed = true;
        }
    }
    for other in &listing.others {
        tracing::warn!(path = %other.display(), "unknown file in the data directory; left alone");
    }
    let meta = if listing.meta {
        Meta::read(dir)?
    } else if listing.segments.is_empty() && listing.snapshots.is_empty() && repair {
        // Creation was interrupted after the identity file was written.
        let meta = Meta::initial();
        meta.write(dir, faults)?;
        meta
    } else {
        return Err(corrupt(dir.join(META_FILE), "metadata file missing".into()));
    };

    let snapshot = load_newest_snapshot(&listing)?;
    let snapshot_index = snapshot.as_ref().map_or(0, |s| s.index);
    if snapshot_index < meta.compacted_through {
        return Err(corrupt(
            dir.join(SnapshotFile::name(meta.compacted_through)),
            format!(
                "the log was compacted through index {} but the newest snapshot covers only {snapshot_index}",
                meta.compacted_through
            ),
        ));
    }

    // Segments older than META's first live segment are leftovers of an
    // interrupted compaction: finish it.
    let leftovers: Vec<u64> = listing
        .segments
        .range(..meta.first_segment)
        .map(|(seq, _)| *seq)
        .collect();
    for seq in leftovers {
        if let Some(path) = listing.segments.remove(&seq) {
            if repair {
                remove_file(&path)?;
                dir_changed = true;
            }
        }
    }
    check_contiguous(dir, &meta, &listing)?;
    if listing.segments.is_empty() {
        if meta != Meta::initial() || snapshot.is_some() || !repair {
            return Err(corrupt(
                dir.join(segment_name(meta.first_segment)),
                "no log segment found".into(),
            ));
        }
        // Interrupted creation: the first segment never became durable.
        // (Opening preallocates it.)
        super::segment::Segment::create(dir, meta.first_segment, 0, None, faults)?;
        listing.segments.insert(
            meta.first_segment,
            dir.join(segment_name(meta.first_segment)),
        );
    }

    let mut state = LogState::default();
    if let Some(snapshot) = &snapshot {
        // Applying the snapshot first is equivalent to applying it where
        // its marker sits: it only drops entries <= its index, and later
        // records never store such entries (the `disk` module docs).
        state.apply_snapshot(snapshot);
    }
    let mut hard_state = meta.hard_state.clone();
    let mut marker_max: Option<(LogIndex, PathBuf)> = None;
    let mut segments = Vec::new();
    // The segment before the current one: its path, the length it was
    // read at and its header version.
    let mut previous: Option<(&Path, u64, u32)> = None;
    let last_seq = listing.segments.keys().next_back().copied().unwrap_or(0);
    for (&seq, path) in &listing.segments {
        let is_last = seq == last_seq;
        let mut image = SegmentImage::read(path)?;
        let scan = scan_segment(path, seq, &mut image, is_last)?;
        drop(image);
        if let (Some(previous), Some(header)) = (previous, &scan.header) {
            check_sealed_length(previous, seq, path, header)?;
        }
        let mut max_index = 0;
        for (_, record) in &scan.records {
            match record {
                Record::Entries(entries) => {
                    max_index = max_index.max(entries.last().map_or(0, |e| e.index));
                    state.apply_entries(entries);
                }
                Record::Truncate { from } => state.apply_truncate(*from),
                Record::HardState(bytes) => hard_state = Some(bytes.clone()),
                Record::SnapshotMarker { index, .. } => {
                    if marker_max.as_ref().is_none_or(|(max, _)| index > max) {
                        marker_max = Some((*index, path.clone()));
                    }
                }
                Record::SyncMark { .. } => {}
            }
        }
        let len = match &scan.tail {
            Tail::Clean => scan.valid_len,
            Tail::ZeroFilled { offset } => {
                tracing::debug!(segment = %path.display(), offset, "data ends where the zero-filled space starts");
                *offset
            }
            Tail::Torn { offset, reason } => {
                tracing::warn!(segment = %path.display(), offset, reason = %reason, "cutting a torn tail");
                if repair {
                    truncate_and_sync(path, *offset, None)?;
                }
                *offset
            }
            Tail::TornHeader => {
                tracing::warn!(segment = %path.display(), "rewriting an interrupted segment header");
                if repair {
                    let previous_len = previous.map_or(0, |(_, len, _)| len);
                    truncate_and_sync(path, 0, Some(encode_header(seq, previous_len)))?;
                }
                super::segment::SEGMENT_HEADER_BYTES as u64
            }
        };
        if is_last && repair && matches!(scan.tail, Tail::Clean | Tail::ZeroFilled { .. }) {
            // The previous process may have died with written but unsynced
            // records in the page cache; they are returned now, so make
            // them durable first. (A cut tail was fsynced by the cut.)
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| io_error("opening", path, e))?;
            faults
                .sync_data(&file)
                .map_err(|e| io_error("syncing", path, e))?;
        }
        segments.push(SegmentInfo {
            seq,
            len,
            max_index,
        });
        let version = scan.header.map_or(SEGMENT_VERSION, |h| h.version);
        previous = Some((path.as_path(), len, version));
    }
    if let Some((marker, path)) = marker_max {
        if marker > snapshot_index {
            return Err(corrupt(
                path,
                format!("the log records a snapshot at index {marker} but the newest snapshot file covers {snapshot_index}"),
            ));
        }
    }
    state.hard_state = hard_state;

    if repair {
        // Older snapshots are leftovers of an interrupted replacement.
        for (&index, path) in &listing.snapshots {
            if index < snapshot_index {
                remove_file(path)?;
                dir_changed = true;
            }
        }
        if dir_changed {
            sync_dir(dir)?;
        }
    }
    Ok(Recovered { state, segments })
}

fn load_newest_snapshot(listing: &DirListing) -> Result<Option<Snapshot>, StorageError> {
    match listing.snapshots.iter().next_back() {
        // Snapshot files are complete before they get their name, so the
        // newest one is the one to use; a bad one is corruption (the log it
        // replaced may be gone), never a reason to fall back silently.
        Some((&index, path)) => SnapshotFile::read(path, index).map(Some),
        None => Ok(None),
    }
}

fn check_contiguous(dir: &Path, meta: &Meta, listing: &DirListing) -> Result<(), StorageError> {
    let mut expected = Some(meta.first_segment);
    for &seq in listing.segments.keys() {
        let Some(expected_seq) = expected.filter(|&e| e == seq) else {
            let expected = expected.unwrap_or(u64::MAX);
            return Err(corrupt(
                dir.join(segment_name(expected)),
                format!("segment {expected} is missing (found {seq} next)"),
            ));
        };
        expected = expected_seq.checked_add(1);
    }
    Ok(())
}

/// Holds the sealed segment before segment `seq` (at `path`, with
/// `header`) to what that header says of it: the length it was sealed at
/// (version 2 headers), so that records lost at the end of a sealed segment
/// (cut at a record boundary, which its own records cannot show) are
/// corruption; and a version 1 header never follows a version 2 segment
/// (segments are only ever written in the newest version).
fn check_sealed_length(
    (previous_path, previous_len, previous_version): (&Path, u64, u32),
    seq: u64,
    path: &Path,
    header: &SegmentHeader,
) -> Result<(), StorageError> {
    if header.version == SEGMENT_VERSION_V1 && previous_version != SEGMENT_VERSION_V1 {
        return Err(StorageError::Corrupt {
            segment: path.to_path_buf(),
            offset: 0,
            reason: format!(
                "segment {seq} has a version {SEGMENT_VERSION_V1} header after a version \
                 {previous_version} segment (segments are written in the newest version only)"
            ),
        });
    }
    match header.previous_len {
        Some(sealed_len) if sealed_len != previous_len => Err(StorageError::Corrupt {
            segment: previous_path.to_path_buf(),
            offset: previous_len.min(sealed_len),
            reason: if previous_len < sealed_len {
                format!(
                    "sealed segment holds {previous_len} bytes but was sealed at {sealed_len} \
                     (header of segment {seq}): records at its end are lost"
                )
            } else {
                format!(
                    "sealed segment holds {previous_len} bytes but was sealed at {sealed_len} \
                     (header of segment {seq}): bytes were added after it was sealed"
                )
            },
        }),
        _ => Ok(()),
    }
}

/// Cuts a file to `len` (writing `header` at its start when given) and
/// fsyncs it.
fn truncate_and_sync(
    path: &Path,
    len: u64,
    header: Option<[u8; super::segment::SEGMENT_HEADER_BYTES]>,
) -> Result<(), StorageError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))?;
    file.set_len(len)
        .map_err(|e| io_error("truncating", path, e))?;
    if let Some(header) = header {
        std::io::Write::write_all(&mut file, &header).map_err(|e| io_error("writing", path, e))?;
    }
    file.sync_all().map_err(|e| io_error("syncing", path, e))
}
