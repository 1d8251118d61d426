//! [`DiskStore`]: the durable [`LogStore`].

use std::fs;
use std::path::{Path, PathBuf};

use consensus_api::{Bytes, InitialState, LogIndex, LogStore, Snapshot, StorageError, WriteBatch};

use super::failpoint::{CrashPoint, Faults};
use super::frame::MAX_RECORD_BODY_BYTES;
use super::fsio::{io_error, remove_file, rename, sync_dir, write_temp, DirLock};
use super::identity::{Identity, FORMAT_VERSION};
use super::meta::Meta;
use super::options::DiskOptions;
use super::record::{
    entry_encoded_bytes, put_entries, put_hard_state, put_snapshot_marker, put_sync_mark,
    put_truncate,
};
use super::recovery::{recover, DirListing, Mode};
use super::segment::{segment_name, Segment, SEGMENT_HEADER_BYTES};
use super::snapshot_file::SnapshotFile;

/// Size of an encoded sync mark (frame header + type + u64).
const SYNC_MARK_BYTES: usize = 12 + 1 + 8;

/// A sealed (closed, fully fsynced) segment that is still live.
#[derive(Debug, Clone, Copy)]
struct SealedSegment {
    seq: u64,
    max_index: LogIndex,
}

/// The durable log store: a segmented write-ahead log with group commit,
/// atomic snapshot files and a metadata checkpoint, in one data directory.
/// The on-disk layout and the recovery rules are in the
/// [module docs](crate::disk).
///
/// `write` appends a batch's records with one `write` system call; `sync`
/// makes everything written so far durable with one `fdatasync`. After any
/// failed write, sync or snapshot step the store refuses further use
/// ([`StorageError::Failed`]): reopen it (recovery then returns exactly what
/// was synced, plus possibly whole records written after).
pub struct DiskStore {
    dir: PathBuf,
    options: DiskOptions,
    _lock: DirLock,
    active: Segment,
    sealed: Vec<SealedSegment>,
    hard_state: Option<Bytes>,
    snapshot_index: LogIndex,
    /// The `synced_offset` of the last sync mark written to the active
    /// segment.
    marked_synced: u64,
    buf: Vec<u8>,
    failed: Option<String>,
    recovered: Option<InitialState>,
    syncs: u64,
    faults: Faults,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.dir)
            .field("segments", &self.segment_seqs())
            .field("active_len", &self.active.len())
            .field("active_file_len", &self.active.file_len())
            .field("synced_len", &self.active.synced_len())
            .field("snapshot_index", &self.snapshot_index)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl DiskStore {
    /// Opens (or, with [`DiskOptions::create_if_missing`], creates) the store
    /// in `dir`, recovering after a crash: a torn tail is cut away, leftovers
    /// of interrupted snapshot replacement or compaction are finished or
    /// removed, and the recovered state is what [`LogStore::load`] returns
    /// first.
    ///
    /// Errors: [`StorageError::Mismatch`] for a directory of another node,
    /// cluster or format version, or one that holds other files;
    /// [`StorageError::Corrupt`] for damage that is not a torn tail;
    /// [`StorageError::Io`] / [`StorageError::DiskFull`] from the system
    /// (also when another store holds the directory lock).
    pub fn open(dir: impl AsRef<Path>, options: DiskOptions) -> Result<DiskStore, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if options.segment_bytes_max == 0 {
            return Err(StorageError::InvalidWrite(
                "segment_bytes_max must be positive".into(),
            ));
        }
        if !dir.is_dir() {
            if !options.create_if_missing {
                return Err(StorageError::Mismatch(format!(
                    "{} does not exist",
                    dir.display()
                )));
            }
            fs::create_dir_all(&dir).map_err(|e| io_error("creating directory", &dir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock = DirLock::acquire(&dir)?;
        let mut faults = Faults::default();
        let listing = DirListing::read(&dir)?;
        if listing.identity {
            let identity = Identity::read_and_check(&dir, &options)?;
            if identity.format_version != FORMAT_VERSION {
                // An older format this build reads: from now on the
                // directory holds new-format segments, so it says so first
                // (atomically), and a build that reads only the old format
                // refuses it instead of misreading it.
                tracing::info!(dir = %dir.display(), from = identity.format_version,
                    to = FORMAT_VERSION, "upgrading the data directory format");
                identity.upgraded().write(&dir, &mut faults)?;
            }
        } else if listing.is_blank() {
            if !options.create_if_missing {
                return Err(StorageError::Mismatch(format!(
                    "{} holds no store",
                    dir.display()
                )));
            }
            // Identity first: a directory with an identity file and nothing
            // else is an interrupted creation, which recovery completes.
            Identity::from_options(&options).write(&dir, &mut faults)?;
        } else {
            return Err(StorageError::Mismatch(format!(
                "{} holds files but no {} file: not a consensus-storage directory",
                dir.display(),
                super::identity::IDENTITY_FILE
            )));
        }
        let recovered = recover(&dir, Mode::Repair, &mut faults)?;
        let (last, older) = recovered
            .segments
            .split_last()
            .ok_or_else(|| StorageError::Failed("recovery returned no segment".into()))?;
        let active = Segment::reopen(
            &dir,
            last.seq,
            last.len,
            last.max_index,
            options.preallocate_to(),
            &mut faults,
        )?;
        let sealed = older
            .iter()
            .map(|s| SealedSegment {
                seq: s.seq,
                max_index: s.max_index,
            })
            .collect();
        let state = recovered.state;
        let mut store = DiskStore {
            dir,
            options,
            _lock: lock,
            // The first batch written records, in a sync mark, that all
            // recovered bytes are durable (recovery fsynced them).
            marked_synced: 0,
            active,
            sealed,
            hard_state: state.hard_state.clone(),
            snapshot_index: state.snapshot_index(),
            buf: Vec::new(),
            failed: None,
            recovered: Some(state.to_initial_state()),
            syncs: 0,
            faults,
        };
        // A snapshot recovered without its compaction having run (crash
        // after the snapshot became durable): compact now.
        store.compact()?;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &DiskOptions {
        &self.options
    }

    /// Number of `fdatasync` calls made by [`LogStore::sync`] and before
    /// snapshots (a group-commit counter for tests and metrics).
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Sequence numbers of the live segments, oldest first.
    pub fn segment_seqs(&self) -> Vec<u64> {
        self.sealed
            .iter()
            .map(|s| s.seq)
            .chain([self.active.seq()])
            .collect()
    }

    /// Index of the newest durable snapshot (0 when none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    /// Whether an earlier failure stopped the store.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Stops the next snapshot replacement right after `point`, as if the
    /// process died there (the call returns [`StorageError::Failed`]).
    #[cfg(feature = "failpoints")]
    pub fn set_crash_point(&mut self, point: Option<CrashPoint>) {
        self.faults.crash_at = point;
    }

    /// Makes the next file write write only its first `written_bytes` bytes
    /// and then fail with `errno` (e.g. `libc::ENOSPC`).
    #[cfg(feature = "failpoints")]
    pub fn inject_write_failure(&mut self, written_bytes: usize, errno: i32) {
        self.faults.write_fault = Some(super::failpoint::WriteFault {
            written_bytes,
            errno,
        });
    }

    /// Makes the next fsync / fdatasync fail with `errno` (e.g. `libc::EIO`).
    #[cfg(feature = "failpoints")]
    pub fn inject_sync_failure(&mut self, errno: i32) {
        self.faults.sync_fault = Some(errno);
    }

    /// Makes the next segment preallocation (`fallocate`) fail with `errno`
    /// (`libc::ENOSPC`, or `libc::EOPNOTSUPP` for a file system that cannot
    /// preallocate).
    #[cfg(feature = "failpoints")]
    pub fn inject_preallocate_failure(&mut self, errno: i32) {
        self.faults.preallocate_fault = Some(errno);
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(reason) => Err(StorageError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records a failure: the store refuses further use.
    fn fail<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(error) = &result {
            tracing::error!(dir = %self.dir.display(), %error, "storage failure; the store stops");
            self.failed = Some(error.to_string());
        }
        result
    }

    /// The checks of [`LogState::validate`](crate::LogState::validate)
    /// against the current snapshot, plus size limits, before any byte is
    /// written.
    fn validate(&self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        let floor = batch
            .snapshot
            .map_or(self.snapshot_index, |s| s.index.max(self.snapshot_index));
        let mut previous = 0;
        for entry in batch.append {
            if entry.index == 0 {
                return Err(StorageError::InvalidWrite("entry index 0".into()));
            }
            if entry.index <= previous {
                return Err(StorageError::InvalidWrite(format!(
                    "entries out of order: {} after {previous}",
                    entry.index
                )));
            }
            if entry.index <= floor {
                return Err(StorageError::InvalidWrite(format!(
                    "entry {} is covered by the snapshot at {floor}",
                    entry.index
                )));
            }
            entry_encoded_bytes(entry)?;
            previous = entry.index;
        }
        if batch
            .hard_state
            .is_some_and(|h| h.len() + 5 > MAX_RECORD_BODY_BYTES)
        {
            return Err(StorageError::InvalidWrite("hard state too large".into()));
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        self.validate(batch)?;
        self.recovered = None;
        let install = batch.snapshot.filter(|s| s.index >= self.snapshot_index);
        if let Some(snapshot) = install {
            self.install_snapshot(snapshot)?;
        }
        // Encode every record of the batch after room for a sync mark.
        self.buf.clear();
        self.buf.resize(SYNC_MARK_BYTES, 0);
        if let Some(snapshot) = install {
            put_snapshot_marker(&mut self.buf, snapshot.index, snapshot.epoch);
        }
        if let Some(from) = batch.truncate_from {
            put_truncate(&mut self.buf, from);
        }
        put_entries(&mut self.buf, batch.append)?;
        if let Some(hard_state) = batch.hard_state {
            put_hard_state(&mut self.buf, hard_state);
        }
        let records_bytes = (self.buf.len() - SYNC_MARK_BYTES) as u64;
        if records_bytes == 0 {
            return Ok(());
        }
        // A segment is full when its data (the write offset, not the
        // preallocated file size) would pass the limit; a batch is never
        // split, so an oversized batch goes whole into a fresh segment.
        let mark_bytes = if self.sync_mark_due() {
            SYNC_MARK_BYTES as u64
        } else {
            0
        };
        if self.active.has_records()
            && self.active.len() + mark_bytes + records_bytes > self.options.segment_bytes_max
        {
            self.rotate()?;
        }
        let start = if self.sync_mark_due() {
            let synced = self.active.synced_len();
            let mut mark = Vec::with_capacity(SYNC_MARK_BYTES);
            put_sync_mark(&mut mark, synced);
            self.buf[..SYNC_MARK_BYTES].copy_from_slice(&mark);
            self.marked_synced = synced;
            0
        } else {
            SYNC_MARK_BYTES
        };
        let max_index = batch.append.last().map_or(0, |e| e.index);
        self.active
            .append(&self.buf[start..], max_index, &mut self.faults)?;
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = Some(hard_state.clone());
        }
        Ok(())
    }

    /// Whether the next batch starts with a sync mark: the active segment
    /// was synced past what the last mark in it states.
    fn sync_mark_due(&self) -> bool {
        self.active.synced_len() > self.marked_synced.max(SEGMENT_HEADER_BYTES as u64)
    }

    /// One fdatasync of the active segment, if anything is unsynced.
    fn sync_active(&mut self) -> Result<(), StorageError> {
        if self.active.is_dirty() {
            self.active.sync(&mut self.faults)?;
            self.syncs += 1;
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one, in steps that are
    /// each a crash point:
    ///
    /// 1. the active segment is fdatasync'ed (a sealed segment is
    ///    complete);
    /// 2. it is trimmed to its data and fsynced (a sealed segment never has
    ///    a zero-filled tail);
    /// 3. the next segment is created: header written, preallocated,
    ///    fsynced; 4. the directory is fsynced.
    ///
    /// Before step 4 the old segment is still the last one and recovery
    /// continues it (its zero tail, if step 2 did not happen, is the end of
    /// its data); a next segment that exists but whose header is not
    /// durable is recreated by recovery.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.sync_active()?;
        self.faults.crash_point(CrashPoint::RotationSegmentSynced)?;
        self.active.trim(&mut self.faults)?;
        self.faults
            .crash_point(CrashPoint::RotationSegmentTrimmed)?;
        let seq = self
            .active
            .seq()
            .checked_add(1)
            .ok_or_else(|| StorageError::Failed("segment sequence numbers exhausted".into()))?;
        // The new header records the length the old segment was sealed at:
        // recovery holds it to that length (records lost at its end are
        // corruption, not a shorter log).
        let next = Segment::create(
            &self.dir,
            seq,
            self.active.len(),
            self.options.preallocate_to(),
            &mut self.faults,
        )?;
        self.faults.crash_point(CrashPoint::RotationDirSynced)?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed.push(SealedSegment {
            seq: old.seq(),
            max_index: old.max_index(),
        });
        self.marked_synced = self.active.synced_len();
        self.compact()
    }

    /// Makes a snapshot durable: earlier writes are synced first (so the
    /// snapshot never overtakes them), then temp file + fsync + rename +
    /// directory fsync, then compaction, then the previous snapshot file is
    /// deleted.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.sync_active()?;
        let head = SnapshotFile::encode_head(snapshot)?;
        let name = SnapshotFile::name(snapshot.index);
        let temp = write_temp(&self.dir, &name, &[&head, &snapshot.data], &mut self.faults)?;
        self.faults.crash_point(CrashPoint::SnapshotTempWritten)?;
        rename(&temp, &self.dir.join(&name))?;
        self.faults.crash_point(CrashPoint::SnapshotRenamed)?;
        sync_dir(&self.dir)?;
        self.faults.crash_point(CrashPoint::SnapshotDirSynced)?;
        let previous = self.snapshot_index;
        self.snapshot_index = snapshot.index;
        self.compact()?;
        if previous != 0 && previous != snapshot.index {
            let path = self.dir.join(SnapshotFile::name(previous));
            if path.exists() {
                remove_file(&path)?;
                sync_dir(&self.dir)?;
            }
        }
        self.faults.crash_point(CrashPoint::OldSnapshotsDeleted)
    }

    /// Deletes the oldest sealed segments whose entries the snapshot covers,
    /// after checkpointing the hard state into `META`.
    fn compact(&mut self) -> Result<(), StorageError> {
        let covered = self
            .sealed
            .iter()
            .take_while(|s| s.max_index <= self.snapshot_index)
            .count();
        if covered == 0 {
            return Ok(());
        }
        // Everything written so far is durable here (compaction runs after
        // a sync), so the checkpointed hard state is a synced one.
        debug_assert!(!self.active.is_dirty(), "compaction with unsynced writes");
        let first_segment = self
            .sealed
            .get(covered)
            .map_or(self.active.seq(), |s| s.seq);
        let meta = Meta {
            first_segment,
            compacted_through: self.snapshot_index,
            hard_state: self.hard_state.clone(),
        };
        meta.write(&self.dir, &mut self.faults)?;
        self.faults.crash_point(CrashPoint::MetaCheckpointed)?;
        for (position, segment) in self.sealed[..covered].iter().enumerate() {
            remove_file(&self.dir.join(segment_name(segment.seq)))?;
            if position == 0 {
                self.faults.crash_point(CrashPoint::FirstSegmentDeleted)?;
            }
        }
        sync_dir(&self.dir)?;
        self.sealed.drain(..covered);
        self.faults.crash_point(CrashPoint::SegmentsDeleted)
    }
}

impl LogStore for DiskStore {
    /// The store's content: right after [`DiskStore::open`], what recovery
    /// found; later, everything written through this handle (synced or
    /// not), read back from disk.
    fn load(&mut self) -> Result<InitialState, StorageError> {
        self.check_usable()?;
        if let Some(initial) = self.recovered.take() {
            return Ok(initial);
        }
        let result = recover(&self.dir, Mode::ReadOnly, &mut self.faults)
            .map(|r| r.state.to_initial_state());
        self.fail(result)
    }

    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        self.check_usable()?;
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.write_batch(batch);
        self.fail(result)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        let result = self.sync_active();
        self.fail(result)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_usable()?;
        // Earlier writes are ordered before the snapshot, even one older
        // than the current snapshot (which is then ignored).
        let synced = self.sync_active();
        self.fail(synced)?;
        let batch = WriteBatch {
            hard_state: None,
            truncate_from: None,
            append: &[],
            snapshot: Some(snapshot),
        };
        let result = self.write_batch(&batch);
        self.fail(result)
    }
}
