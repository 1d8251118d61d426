//! An in-memory [`LogStore`] that models the fsync boundary, for the
//! simulator and for fast runtime tests.
//!
//! Writes go to a pending list; [`LogStore::sync`] makes them durable. A
//! simulated crash ([`MemStore::crash`]) throws away what was not synced (or,
//! with [`MemStore::crash_keeping`], keeps a prefix of the unsynced batches,
//! as a real disk may), and [`LogStore::load`] returns only durable state,
//! exactly like the disk store after a power loss.

use consensus_api::{
    Bytes, Entry, InitialState, LogIndex, LogStore, Ready, Snapshot, StorageError, WriteBatch,
};

use crate::state::LogState;

/// One unsynced write batch, owned.
#[derive(Clone, Debug)]
struct PendingBatch {
    hard_state: Option<Bytes>,
    truncate_from: Option<LogIndex>,
    append: Vec<Entry>,
    snapshot: Option<Snapshot>,
}

impl PendingBatch {
    fn as_batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            hard_state: self.hard_state.as_ref(),
            truncate_from: self.truncate_from,
            append: &self.append,
            snapshot: self.snapshot.as_ref(),
        }
    }
}

/// A fault to inject into the next write or sync.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MemFault {
    /// The next `write` fails with [`StorageError::DiskFull`].
    DiskFull,
    /// The next `sync` fails with an I/O error (like a failed fsync).
    SyncFails,
}

/// In-memory store with an explicit durable / volatile split.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    durable: LogState,
    pending: Vec<PendingBatch>,
    fault: Option<MemFault>,
    failed: Option<String>,
    syncs: u64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a batch's durable part and syncs it when it asks: what a test
    /// harness's `ReadyDriver::persist` does.
    pub fn persist<M>(&mut self, ready: &Ready<M>) -> Result<(), StorageError> {
        self.write(&ready.write_batch())?;
        if ready.must_sync {
            self.sync()?;
        }
        Ok(())
    }

    /// The durable state (what a crash now would leave).
    pub fn durable(&self) -> &LogState {
        &self.durable
    }

    /// Number of unsynced batches.
    pub fn unsynced_batches(&self) -> usize {
        self.pending.len()
    }

    /// Number of successful syncs so far (a group-commit counter for tests).
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Simulates a crash: every unsynced write is lost; a failed store is
    /// usable again (as after a reboot).
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// Simulates a crash in which the first `keep` unsynced batches happened
    /// to reach the disk (whole batches, in order).
    pub fn crash_keeping(&mut self, keep: usize) {
        let pending = std::mem::take(&mut self.pending);
        for batch in pending.iter().take(keep) {
            self.durable.apply(&batch.as_batch());
        }
        self.failed = None;
        self.fault = None;
    }

    /// Makes the next write or sync fail.
    pub fn inject(&mut self, fault: MemFault) {
        self.fault = Some(fault);
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(reason) => Err(StorageError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// The current view including unsynced writes (what the node itself
    /// would read back before a crash).
    pub fn volatile(&self) -> LogState {
        let mut state = self.durable.clone();
        for batch in &self.pending {
            state.apply(&batch.as_batch());
        }
        state
    }
}

impl LogStore for MemStore {
    fn load(&mut self) -> Result<InitialState, StorageError> {
        // Loading happens after a restart: only durable state exists.
        self.pending.clear();
        Ok(self.durable.to_initial_state())
    }

    fn write(&mut self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.fault == Some(MemFault::DiskFull) {
            self.fault = None;
            self.failed = Some("disk full".into());
            return Err(StorageError::DiskFull {
                path: "<memory>".into(),
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        // The snapshot index including unsynced batches; cloning the whole
        // state to validate would dominate the simulator's time.
        let snapshot_index = self
            .pending
            .iter()
            .filter_map(|b| b.snapshot.as_ref().map(|s| s.index))
            .fold(self.durable.snapshot_index(), u64::max);
        if let Err(error) = LogState::validate_above(snapshot_index, batch) {
            // Like the disk store: any failed write stops the store.
            self.failed = Some(error.to_string());
            return Err(error);
        }
        self.pending.push(PendingBatch {
            hard_state: batch.hard_state.cloned(),
            truncate_from: batch.truncate_from,
            append: batch.append.to_vec(),
            snapshot: batch.snapshot.cloned(),
        });
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.fault == Some(MemFault::SyncFails) {
            self.fault = None;
            self.failed = Some("fsync failed".into());
            return Err(StorageError::Io {
                op: "syncing",
                path: "<memory>".into(),
                source: std::io::Error::other("injected fsync failure"),
            });
        }
        for batch in std::mem::take(&mut self.pending) {
            self.durable.apply(&batch.as_batch());
        }
        self.syncs += 1;
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_usable()?;
        // Earlier writes are ordered before the snapshot: sync them first.
        self.sync()?;
        self.durable.apply_snapshot(snapshot);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::{Membership, Payload};

    fn entry(index: LogIndex, epoch: u64) -> Entry {
        Entry {
            index,
            epoch,
            payload: Payload::Command(Bytes::from(format!("v{index}"))),
        }
    }

    fn append(entries: &[Entry]) -> WriteBatch<'_> {
        WriteBatch {
            hard_state: None,
            truncate_from: None,
            append: entries,
            snapshot: None,
        }
    }

    #[test]
    fn unsynced_writes_are_lost_on_crash() {
        let mut store = MemStore::new();
        let first = [entry(1, 1), entry(2, 1)];
        store.write(&append(&first)).unwrap();
        store.sync().unwrap();
        let second = [entry(3, 1)];
        store.write(&append(&second)).unwrap();
        assert_eq!(store.volatile().last_index(), 3);
        store.crash();
        let state = store.load().unwrap();
        assert_eq!(state.entries, first.to_vec());
    }

    #[test]
    fn crash_keeping_a_prefix_of_unsynced_batches() {
        let mut store = MemStore::new();
        let a = [entry(1, 1)];
        let b = [entry(2, 1)];
        store.write(&append(&a)).unwrap();
        store.write(&append(&b)).unwrap();
        store.crash_keeping(1);
        assert_eq!(store.load().unwrap().entries, a.to_vec());
    }

    #[test]
    fn truncate_overwrite_and_snapshot() {
        let mut store = MemStore::new();
        let log = [entry(1, 1), entry(2, 1), entry(3, 1)];
        store.write(&append(&log)).unwrap();
        let replacement = [entry(2, 2)];
        store
            .write(&WriteBatch {
                hard_state: Some(&Bytes::from_static(b"term=2")),
                truncate_from: Some(2),
                append: &replacement,
                snapshot: None,
            })
            .unwrap();
        store.sync().unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.entries, vec![entry(1, 1), entry(2, 2)]);
        assert_eq!(state.hard_state, Some(Bytes::from_static(b"term=2")));
        let snapshot = Snapshot {
            index: 1,
            epoch: 1,
            membership: Membership::new([1, 2, 3]),
            protocol_state: Bytes::new(),
            data: Bytes::from_static(b"sm"),
        };
        store.save_snapshot(&snapshot).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.snapshot, Some(snapshot));
        assert_eq!(state.entries, vec![entry(2, 2)]);
        let covered = [entry(1, 3)];
        assert!(matches!(
            store.write(&append(&covered)),
            Err(StorageError::InvalidWrite(_))
        ));
        assert!(
            matches!(store.sync(), Err(StorageError::Failed(_))),
            "an invalid write stops the store, as on disk"
        );
    }

    #[test]
    fn injected_faults_stop_the_store_until_restart() {
        let mut store = MemStore::new();
        let a = [entry(1, 1)];
        store.write(&append(&a)).unwrap();
        store.inject(MemFault::SyncFails);
        assert!(matches!(store.sync(), Err(StorageError::Io { .. })));
        assert!(matches!(store.sync(), Err(StorageError::Failed(_))));
        store.crash();
        assert!(
            store.load().unwrap().entries.is_empty(),
            "nothing was synced"
        );
        store.inject(MemFault::DiskFull);
        assert!(matches!(
            store.write(&append(&a)),
            Err(StorageError::DiskFull { .. })
        ));
    }
}
