//! The durable log a driver persists [`Ready`](crate::Ready) batches into.

use crate::core::{InitialState, WriteBatch};
use crate::error::StorageError;
use crate::types::Snapshot;

/// Durable storage of one node: hard state, log entries, latest snapshot.
///
/// The core never calls a store: the driver writes each `Ready`'s
/// [`WriteBatch`] and syncs, and on restart hands [`LogStore::load`]'s result
/// to [`Core::restore`](crate::Core::restore).
///
/// Durability contract: after [`LogStore::sync`] returns `Ok`, everything
/// written before it survives a crash. Writes not yet synced may be lost on a
/// crash, in whole records from the tail (never a hole in the middle). Any
/// error from `write` or `sync` leaves the store refusing further writes
/// ([`StorageError::Failed`]); the node must stop.
pub trait LogStore: Send {
    /// Reads everything back (after a restart): the latest hard state, the
    /// latest snapshot, and the entries above it in index order. A torn tail
    /// record (a crash mid-write) is discarded; a corrupt record elsewhere is
    /// [`StorageError::Corrupt`].
    fn load(&mut self) -> Result<InitialState, StorageError>;

    /// Writes one batch (snapshot, truncation, entries, hard state, in that
    /// order), not yet synced.
    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError>;

    /// Makes every write so far durable (one `fdatasync` for all of them:
    /// group commit).
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Durably stores a snapshot the local state machine took
    /// ([`Core::compact`](crate::Core::compact)) and then discards the log
    /// prefix it covers (whole segments). Returns once the snapshot is durable.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
}
