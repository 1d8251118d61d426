//! Fault injection for tests: crash points between the steps of snapshot
//! replacement and compaction, and injected write / fsync failures.
//!
//! Every file write and fsync of the store goes through [`Faults`]. Without
//! the `failpoints` Cargo feature it holds nothing and each method is a
//! direct call to the operating system.

use std::fs::File;
use std::io::{self, Write};

use consensus_api::StorageError;

/// A step after which a test can stop the store, as if the process died
/// there. The steps run in this order (compaction steps only when some
/// segment is fully covered by the new snapshot):
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
