//! # consensus-storage
//!
//! Durable storage for consensus nodes behind the
//! [`LogStore`](consensus_api::LogStore) trait:
//!
//! * [`DiskStore`]: the durable store. A segmented write-ahead log whose
//!   records carry a length and a CRC32C, preallocated segments (so a sync
//!   writes data, not a new file size), one `write` per batch and one
//!   `fdatasync` per sync (group commit), hard state as a WAL record plus a
//!   checkpoint file, snapshots written by temp file + fsync + rename +
//!   directory fsync, compaction by whole segments, and recovery that cuts
//!   a torn tail but reports corruption anywhere else
//!   ([`StorageError::Corrupt`](consensus_api::StorageError::Corrupt)). The
//!   layout, the record format and the torn-tail rule are documented in
//!   [`disk`].
//! * [`MemStore`]: in memory, with an explicit fsync boundary, for the
//!   simulator and fast tests.
//!
//! [`LogState`] holds the logical content of a store and the semantics of a
//! write batch, shared by every store so they behave identically: the disk
//! store's recovery replays its records into a `LogState`, and its tests
//! check it against `MemStore` on random batch sequences.
//!
//! ```no_run
//! use consensus_api::{Bytes, Entry, LogStore, Payload, WriteBatch};
//! use consensus_storage::{DiskOptions, DiskStore};
//!
//! let mut store = DiskStore::open("/var/lib/node-1", DiskOptions::for_node(1, "prod"))?;
//! let restored = store.load()?; // hand to Core::restore
//! let entries = [Entry { index: restored.entries.len() as u64 + 1, epoch: 1, payload: Payload::Noop }];
//! store.write(&WriteBatch {
//!     hard_state: Some(&Bytes::from_static(b"term=1")),
//!     truncate_from: None,
//!     append: &entries,
//!     snapshot: None,
//! })?;
//! store.sync()?; // one fdatasync for everything written
//! # Ok::<(), consensus_api::StorageError>(())
//! ```
//!
//! Cargo feature `failpoints` (tests only): crash points inside snapshot
//! replacement and segment rotation ([`CrashPoint`]) and injected write /
//! fsync / preallocation failures.
#![deny(missing_docs)]

pub mod disk;
mod mem;
mod state;

pub use disk::{CrashPoint, DiskOptions, DiskStore};
pub use mem::{MemFault, MemStore};
pub use state::LogState;
