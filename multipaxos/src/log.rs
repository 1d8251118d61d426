//! The replica's view of the slots: the latest snapshot, the accepted value
//! of every slot above it, the chosen frontier, and where configurations
//! change.
//!
//! Unlike a Raft log this one may be **sparse** above the chosen frontier:
//! an acceptor accepts each slot independently (an Accept for slots 8..9
//! may arrive before the one for 5..7), and it **never truncates** — an
//! accepted value is only ever replaced by a value accepted under a higher
//! ballot for the same slot ("Paxos Made Simple" §2.2, P1a), or left in
//! place. Below the frontier (`commit`) every slot is present and chosen.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus_api::{Entry, LogIndex, Membership, Payload, Snapshot};

/// Accepted values, chosen frontier and configuration history.
#[derive(Clone, Debug)]
pub(crate) struct Log {
    /// The latest snapshot (kept whole, to send to lagging peers).
    snapshot: Option<Snapshot>,
    /// CRC32C of `snapshot.data`, computed once.
    snapshot_checksum: u32,
    /// The membership in force right after the snapshot (or the initial one).
    base_membership: Membership,
    /// Accepted values above the snapshot, by slot.
    entries: BTreeMap<LogIndex, Entry>,
    /// Slots of `entries` that hold a configuration, with it.
    configs: BTreeMap<LogIndex, Membership>,
    /// Chosen frontier: every slot `<= commit` is chosen and its value is in
    /// `entries` or covered by the snapshot.
    commit: LogIndex,
}

/// What storing a value did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The slot now holds the new value (it must be persisted).
    Written,
    /// The slot kept its value (already chosen, or accepted under a ballot
    /// at least as high, which carries the same value).
    Kept,
}

impl Log {
    /// An empty log under `membership`.
    pub(crate) fn new(membership: Membership) -> Log {
        Log {
            snapshot: None,
            snapshot_checksum: 0,
            base_membership: membership,
            entries: BTreeMap::new(),
            configs: BTreeMap::new(),
            commit: 0,
        }
    }

    /// Chosen frontier.
    pub(crate) fn commit(&self) -> LogIndex {
        self.commit
    }

    /// Index covered by the snapshot (0 without one).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.index)
    }

    /// The latest snapshot, if any.
    pub(crate) fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// CRC32C of the latest snapshot's data.
    pub(crate) fn snapshot_checksum(&self) -> u32 {
        self.snapshot_checksum
    }

    /// Highest slot held (an entry, or the snapshot).
    pub(crate) fn last_index(&self) -> LogIndex {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or_else(|| self.snapshot_index())
    }

    /// The value accepted at `index`, if held (not for compacted slots).
    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        self.entries.get(&index)
    }

    /// Held entries with `from <= index <= to`, in order (none when
    /// `from > to`: the bounds may come from the network).
    pub(crate) fn range(&self, from: LogIndex, to: LogIndex) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .range(from..)
            .take_while(move |(index, _)| **index <= to)
            .map(|(_, e)| e)
    }

    /// Held entries with `index >= from`, in order.
    pub(crate) fn range_from(&self, from: LogIndex) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.range(from..).map(|(_, e)| e)
    }

    /// Epoch of the value at `index` (the snapshot's epoch at its index).
    pub(crate) fn epoch_at(&self, index: LogIndex) -> Option<u64> {
        match &self.snapshot {
            Some(s) if s.index == index => Some(s.epoch),
            _ => self.entries.get(&index).map(|e| e.epoch),
        }
    }

    /// Highest epoch among held entries above `after`.
    pub(crate) fn max_epoch_above(&self, after: LogIndex) -> u64 {
        self.entries
            .range(after + 1..)
            .map(|(_, e)| e.epoch)
            .max()
            .unwrap_or(0)
    }

    /// The configuration that decides `slot`: the one in the last
    /// configuration entry at a slot `< slot` (a configuration chosen at
    /// slot `s` governs slots `> s`), else the one in force after the
    /// snapshot. Only meaningful for `slot <= commit + 1`, or on a leader
    /// for the slots it proposed.
    pub(crate) fn membership_at(&self, slot: LogIndex) -> &Membership {
        self.configs
            .range(..slot)
            .next_back()
            .map_or(&self.base_membership, |(_, m)| m)
    }

    /// The configuration in force: the one deciding the first unchosen slot.
    pub(crate) fn membership(&self) -> &Membership {
        self.membership_at(self.commit + 1)
    }

    /// Stores a value accepted under `entry.epoch` without any check: the
    /// caller applies the acceptor's rules. Returns whether it changed.
    pub(crate) fn put(&mut self, entry: Entry) -> bool {
        debug_assert!(
            entry.index > self.snapshot_index(),
            "slot {} is compacted",
            entry.index
        );
        if self.entries.get(&entry.index) == Some(&entry) {
            return false;
        }
        match &entry.payload {
            Payload::Membership(m) => {
                self.configs.insert(entry.index, m.clone());
            }
            _ => {
                self.configs.remove(&entry.index);
            }
        }
        self.entries.insert(entry.index, entry);
        true
    }

    /// Stores a value known to be chosen at its slot. A slot at or below
    /// the frontier, or one holding a value accepted under a ballot at least
    /// as high (which carries the same value), is kept as it is.
    pub(crate) fn put_chosen(&mut self, entry: Entry) -> Stored {
        if entry.index <= self.commit || entry.index <= self.snapshot_index() {
            return Stored::Kept;
        }
        match self.entries.get(&entry.index) {
            Some(held) if held.epoch >= entry.epoch => Stored::Kept,
            _ => {
                self.put(entry);
                Stored::Written
            }
        }
    }

    /// Moves the chosen frontier to `index` (the caller knows every slot up
    /// to it is chosen and held).
    pub(crate) fn set_commit(&mut self, index: LogIndex) {
        debug_assert!(index >= self.commit, "the chosen frontier never moves back");
        debug_assert!(
            index == self.snapshot_index() || self.entries.contains_key(&index),
            "chosen slot {index} is not held"
        );
        self.commit = index;
    }

    /// Advances the frontier over consecutive held slots for which
    /// `is_chosen(entry)` holds, up to `limit`. Returns the new frontier.
    pub(crate) fn advance_commit_while(
        &mut self,
        limit: LogIndex,
        is_chosen: impl Fn(&Entry) -> bool,
    ) -> LogIndex {
        while self.commit < limit {
            match self.entries.get(&(self.commit + 1)) {
                Some(entry) if is_chosen(entry) => self.commit += 1,
                _ => break,
            }
        }
        self.commit
    }

    /// Installs a snapshot covering `1..=snapshot.index` (a chosen prefix):
    /// drops the slots it covers and moves the frontier up to it.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot, checksum: u32) {
        let index = snapshot.index;
        self.entries = self.entries.split_off(&(index + 1));
        self.configs = self.configs.split_off(&(index + 1));
        self.base_membership = snapshot.membership.clone();
        self.commit = self.commit.max(index);
        self.snapshot = Some(snapshot);
        self.snapshot_checksum = checksum;
    }

    /// Number of held entries (for tests and status).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every held entry in `(after, commit]` is present: the chosen prefix
    /// has no hole. O(n): debug assertions only.
    pub(crate) fn chosen_prefix_is_dense(&self, after: LogIndex) -> bool {
        let from = after.max(self.snapshot_index()) + 1;
        (from..=self.commit).all(|i| self.entries.contains_key(&i))
    }

    /// Data of the snapshot for sending (empty without one).
    pub(crate) fn snapshot_data(&self) -> Bytes {
        self.snapshot
            .as_ref()
            .map(|s| s.data.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: LogIndex, epoch: u64, payload: Payload) -> Entry {
        Entry {
            index,
            epoch,
            payload,
        }
    }

    #[test]
    fn a_configuration_governs_the_slots_after_it() {
        let mut log = Log::new(Membership::new([1, 2, 3]));
        log.put(entry(1, 1, Payload::Noop));
        log.put(entry(
            2,
            1,
            Payload::Membership(Membership::new([1, 2, 3, 4])),
        ));
        log.put(entry(3, 1, Payload::Noop));
        assert_eq!(log.membership_at(2), &Membership::new([1, 2, 3]));
        assert_eq!(log.membership_at(3), &Membership::new([1, 2, 3, 4]));
        // Replacing the configuration entry by a higher-ballot value undoes it.
        log.put(entry(2, 2, Payload::Noop));
        assert_eq!(log.membership_at(3), &Membership::new([1, 2, 3]));
    }

    #[test]
    fn chosen_values_never_replace_a_higher_ballot_or_the_chosen_prefix() {
        let mut log = Log::new(Membership::new([1]));
        log.put(entry(1, 5, Payload::Noop));
        assert_eq!(log.put_chosen(entry(1, 3, Payload::Noop)), Stored::Kept);
        assert_eq!(log.put_chosen(entry(2, 3, Payload::Noop)), Stored::Written);
        log.set_commit(2);
        assert_eq!(log.put_chosen(entry(2, 9, Payload::Noop)), Stored::Kept);
        assert_eq!(log.get(2).unwrap().epoch, 3);
        assert_eq!(log.len(), 2);
    }
}
