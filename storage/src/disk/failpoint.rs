//! Fault injection for tests: crash points between the steps of snapshot
//! replacement, compaction and segment rotation, and injected write /
//! fsync / preallocation failures.
//!
//! Every file write, fsync and preallocation of the store goes through
//! [`Faults`]. Without the `failpoints` Cargo feature it holds nothing and
//! each method is a direct call to the operating system.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use consensus_api::StorageError;

/// A step after which a test can stop the store, as if the process died
/// there.
///
/// Snapshot replacement runs these steps in this order (compaction steps
/// only when some segment is fully covered by the new snapshot):
/// [`SnapshotTempWritten`](CrashPoint::SnapshotTempWritten) to
/// [`OldSnapshotsDeleted`](CrashPoint::OldSnapshotsDeleted). Segment
/// rotation (the active segment is full) runs
/// [`RotationSegmentSynced`](CrashPoint::RotationSegmentSynced) to
/// [`RotationDirSynced`](CrashPoint::RotationDirSynced), then compaction
/// ([`MetaCheckpointed`](CrashPoint::MetaCheckpointed) ...) when the sealed
/// segment is covered by the snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// The new snapshot is complete and fsynced in its temporary file; it
    /// has not been renamed into place.
    SnapshotTempWritten,
    /// The temporary file was renamed to its final name; the directory has
    /// not been fsynced.
    SnapshotRenamed,
    /// The directory was fsynced: the new snapshot is durable. Nothing was
    /// compacted yet.
    SnapshotDirSynced,
    /// The metadata file (hard state checkpoint, first live segment) was
    /// replaced; no covered segment was deleted yet.
    MetaCheckpointed,
    /// The first covered segment was deleted, others may remain.
    FirstSegmentDeleted,
    /// Every covered segment was deleted and the directory fsynced.
    SegmentsDeleted,
    /// Older snapshot files were deleted and the directory fsynced; the
    /// snapshot marker record is not yet written to the log.
    OldSnapshotsDeleted,
    /// Rotation: the full active segment was fdatasync'ed; it still holds
    /// its preallocated zero tail and the next segment does not exist.
    RotationSegmentSynced,
    /// Rotation: the full segment was trimmed to its data length and
    /// fsynced (it is sealed); the next segment does not exist yet.
    RotationSegmentTrimmed,
    /// Rotation: the next segment's file was created and its header
    /// written; it is neither preallocated nor fsynced, and the directory
    /// was not fsynced.
    RotationSegmentCreated,
    /// Rotation: the next segment was preallocated and fsynced; the
    /// directory was not fsynced.
    RotationSegmentPreallocated,
    /// Rotation: the directory was fsynced, the next segment is durable and
    /// active; the batch that needed it is not written yet.
    RotationDirSynced,
}

/// A write that fails after writing a prefix of its bytes.
#[cfg(feature = "failpoints")]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriteFault {
    pub(crate) written_bytes: usize,
    pub(crate) errno: i32,
}

/// The faults armed for the next operations.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    #[cfg(feature = "failpoints")]
    pub(crate) crash_at: Option<CrashPoint>,
    #[cfg(feature = "failpoints")]
    pub(crate) write_fault: Option<WriteFault>,
    #[cfg(feature = "failpoints")]
    pub(crate) sync_fault: Option<i32>,
    #[cfg(feature = "failpoints")]
    pub(crate) preallocate_fault: Option<i32>,
}

impl Faults {
    /// Stops here with [`StorageError::Failed`] if a test asked to crash at
    /// `point` (once).
    #[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
    pub(crate) fn crash_point(&mut self, point: CrashPoint) -> Result<(), StorageError> {
        #[cfg(feature = "failpoints")]
        if self.crash_at == Some(point) {
            self.crash_at = None;
            return Err(StorageError::Failed(format!(
                "simulated crash at {point:?}"
            )));
        }
        Ok(())
    }

    /// `file.write_all(bytes)`, or an injected failure after a prefix.
    pub(crate) fn write_all(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if let Some(fault) = self.write_fault.take() {
            file.write_all(&bytes[..fault.written_bytes.min(bytes.len())])?;
            return Err(io::Error::from_raw_os_error(fault.errno));
        }
        file.write_all(bytes)
    }

    /// `file.write_all_at(bytes, offset)` (pwrite), or an injected failure
    /// after a prefix.
    pub(crate) fn write_all_at(
        &mut self,
        file: &File,
        bytes: &[u8],
        offset: u64,
    ) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if let Some(fault) = self.write_fault.take() {
            file.write_all_at(&bytes[..fault.written_bytes.min(bytes.len())], offset)?;
            return Err(io::Error::from_raw_os_error(fault.errno));
        }
        file.write_all_at(bytes, offset)
    }

    /// `fallocate(file, 0, offset, len)` through
    /// [`allocate`](super::prealloc::allocate), or an injected failure.
    pub(crate) fn allocate(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if let Some(errno) = self.preallocate_fault.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        super::prealloc::allocate(file, offset, len)
    }

    /// `file.sync_data()` (fdatasync), or an injected failure.
    pub(crate) fn sync_data(&mut self, file: &File) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if let Some(errno) = self.sync_fault.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        file.sync_data()
    }

    /// `file.sync_all()` (fsync), or an injected failure.
    pub(crate) fn sync_all(&mut self, file: &File) -> io::Result<()> {
        #[cfg(feature = "failpoints")]
        if let Some(errno) = self.sync_fault.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        file.sync_all()
    }
}
