//! The logical content of a store and how a write batch changes it. Shared by
//! the in-memory store and by the disk store's recovery replay, so both obey
//! exactly the same semantics.

use std::collections::BTreeMap;

use consensus_api::{Bytes, Entry, InitialState, LogIndex, Snapshot, StorageError, WriteBatch};

/// Hard state, snapshot and the entries above it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    /// Latest hard state.
    pub hard_state: Option<Bytes>,
    /// Latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// Entries above the snapshot, by index (may be sparse for classic Paxos).
    pub entries: BTreeMap<LogIndex, Entry>,
}

impl LogState {
    /// Index covered by the snapshot (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    /// Highest stored index (entries or snapshot).
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or_else(|| self.snapshot_index())
    }

    /// Checks a batch without changing anything, so that an invalid batch is
    /// refused before any of it is written.
    pub fn validate(&self, batch: &WriteBatch<'_>) -> Result<(), StorageError> {
        Self::validate_above(self.snapshot_index(), batch)
    }

    /// [`LogState::validate`] for a store whose snapshot covers
    /// `snapshot_index` (no need to hold the whole state).
    pub fn validate_above(
        snapshot_index: LogIndex,
        batch: &WriteBatch<'_>,
    ) -> Result<(), StorageError> {
        let floor = batch
            .snapshot
            .map_or(snapshot_index, |s| s.index.max(snapshot_index));
        let mut previous = 0;
        for entry in batch.append {
            if entry.index == 0 {
                return Err(StorageError::InvalidWrite("entry index 0".into()));
            }
            if entry.index <= previous {
                return Err(StorageError::InvalidWrite(format!(
                    "entries out of order: {} after {}",
                    entry.index, previous
                )));
            }
            if entry.index <= floor {
                return Err(StorageError::InvalidWrite(format!(
                    "entry {} is covered by the snapshot at {}",
                    entry.index, floor
                )));
            }
            previous = entry.index;
        }
        Ok(())
    }

    /// Applies the operations of a batch in the contract's order.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        if snapshot.index < self.snapshot_index() {
            // An older snapshot never replaces a newer one.
            return;
        }
        self.entries = match snapshot.index.checked_add(1) {
            Some(above) => self.entries.split_off(&above),
            // A snapshot at the largest index covers every entry (and must
            // not overflow: disk content reaches here).
            None => BTreeMap::new(),
        };
        self.snapshot = Some(snapshot.clone());
    }

    /// Drops entries with index >= `from`.
    pub fn apply_truncate(&mut self, from: LogIndex) {
        self.entries.split_off(&from);
    }

    /// Stores entries, replacing any of the same index.
    pub fn apply_entries(&mut self, entries: &[Entry]) {
        let floor = self.snapshot_index();
        for entry in entries {
            if entry.index > floor {
                self.entries.insert(entry.index, entry.clone());
            }
        }
    }

    /// Applies a whole (validated) batch.
    pub fn apply(&mut self, batch: &WriteBatch<'_>) {
        if let Some(snapshot) = batch.snapshot {
            self.apply_snapshot(snapshot);
        }
        if let Some(from) = batch.truncate_from {
            self.apply_truncate(from);
        }
        self.apply_entries(batch.append);
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = Some(hard_state.clone());
        }
    }

    /// What a core is restored from.
    pub fn to_initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.clone(),
            entries: self.entries.values().cloned().collect(),
        }
    }
}
