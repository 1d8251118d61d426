//! The in-memory Raft log: entries above the latest snapshot, the
//! configurations they carry, and what has not been handed to the driver
//! for persistence yet.
//!
//! The log is the core's view; the driver's `LogStore` mirrors it through
//! [`Ready`](consensus_api::Ready) batches (`snapshot`, `truncate_from`,
//! `append`). `unstable_from` is the first index not yet handed out, so a
//! `Ready` carries exactly the entries written since the previous one.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use consensus_api::{Entry, LogIndex, Membership, Snapshot};

/// The log prefix covered by a snapshot (index 0, term 0 and the initial
/// membership when there is none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogBase {
    /// Last index covered.
    pub(crate) index: LogIndex,
    /// Term of that entry.
    pub(crate) term: u64,
    /// Configuration in force at `index`.
    pub(crate) membership: Membership,
}

/// Entries, configurations and persistence bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    base: LogBase,
    /// The latest full snapshot (sent to followers that fell behind it).
    snapshot: Option<Snapshot>,
    /// CRC32C of `snapshot.data`, computed once.
    snapshot_checksum: u32,
    /// Entries `base.index + 1 ..= last_index()`.
    entries: VecDeque<Entry>,
    /// Configuration entries above the base, by index: the latest one is in
    /// force (Raft §6: a configuration takes effect when appended).
    memberships: BTreeMap<LogIndex, Membership>,
    /// First index not yet handed to the driver.
    unstable_from: LogIndex,
    /// A truncation of already handed-out entries not yet handed out itself.
    pending_truncate: Option<LogIndex>,
    /// A snapshot received from the leader, not yet handed out.
    pending_snapshot: Option<Snapshot>,
}

/// What the driver must persist next (the log part of a `Ready`).
#[derive(Debug, Default)]
pub(crate) struct LogWrites {
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) truncate_from: Option<LogIndex>,
    pub(crate) append: Vec<Entry>,
}

impl RaftLog {
    /// A log restored from the store. `entries` must be dense and start at
    /// the snapshot's index + 1 (checked by the caller).
    pub(crate) fn restore(
        initial_membership: Membership,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> RaftLog {
        let base = match &snapshot {
            Some(s) => LogBase {
                index: s.index,
                term: s.epoch,
                membership: s.membership.clone(),
            },
            None => LogBase {
                index: 0,
                term: 0,
                membership: initial_membership,
            },
        };
        let memberships = entries
            .iter()
            .filter_map(|e| match &e.payload {
                consensus_api::Payload::Membership(m) => Some((e.index, m.clone())),
                _ => None,
            })
            .collect();
        let unstable_from = base.index + entries.len() as u64 + 1;
        let snapshot_checksum = snapshot.as_ref().map_or(0, |s| crc32c::crc32c(&s.data));
        RaftLog {
            base,
            snapshot,
            snapshot_checksum,
            entries: entries.into(),
            memberships,
            unstable_from,
            pending_truncate: None,
            pending_snapshot: None,
        }
    }

    /// Index of the snapshot base (0 without a snapshot).
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.base.index
    }

    /// The latest full snapshot, if any.
    pub(crate) fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// CRC32C of the latest snapshot's data.
    pub(crate) fn snapshot_checksum(&self) -> u32 {
        self.snapshot_checksum
    }

    /// First index held as an entry.
    pub(crate) fn first_index(&self) -> LogIndex {
        self.base.index + 1
    }

    /// Last index held (the snapshot's when there are no entries).
    pub(crate) fn last_index(&self) -> LogIndex {
        self.base.index + self.entries.len() as u64
    }

    /// Term of the last entry (or of the snapshot base).
    pub(crate) fn last_term(&self) -> u64 {
        self.entries.back().map_or(self.base.term, |e| e.epoch)
    }

    /// Term of the entry at `index`, when known (`None` below the snapshot
    /// or beyond the end).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<u64> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        self.entry(index).map(|e| e.epoch)
    }

    /// The entry at `index`, when held.
    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base.index {
            return None;
        }
        let offset = usize::try_from(index - self.base.index - 1).ok()?;
        self.entries.get(offset)
    }

    /// True if the log holds an entry (or the snapshot base) at `index` with
    /// `term`: the log-matching check of AppendEntries (§5.3).
    pub(crate) fn matches(&self, index: LogIndex, term: u64) -> bool {
        self.term_at(index) == Some(term)
    }

    /// True if a log ending at `last_index / last_term` is at least as
    /// up-to-date as this one (§5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries `from ..=to` (clamped to what is held).
    pub(crate) fn slice(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        let from = from.max(self.first_index());
        let to = to.min(self.last_index());
        (from..=to).filter_map(|i| self.entry(i).cloned()).collect()
    }

    /// Entries from `from` on, at most `entries_max` of them and at most
    /// `bytes_max` payload bytes (but always at least one entry if any).
    pub(crate) fn batch_from(
        &self,
        from: LogIndex,
        entries_max: usize,
        bytes_max: usize,
    ) -> Vec<Entry> {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut index = from.max(self.first_index());
        while let Some(entry) = self.entry(index) {
            let size = entry.size_bytes();
            if !batch.is_empty() && (batch.len() >= entries_max.max(1) || bytes + size > bytes_max)
            {
                break;
            }
            bytes += size;
            batch.push(entry.clone());
            index += 1;
        }
        batch
    }

    /// The first index of the run of entries with the same term as the
    /// entry at `index`, not going below the first held entry (the conflict
    /// hint of §5.3).
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index `<= at_most` holding an entry of `term`, if any is held.
    pub(crate) fn last_index_of_term(&self, term: u64, at_most: LogIndex) -> Option<LogIndex> {
        let mut index = at_most.min(self.last_index());
        while index >= self.base.index {
            let here = self.term_at(index)?;
            if here == term {
                return Some(index);
            }
            if here < term || index == 0 {
                return None;
            }
            index -= 1;
        }
        None
    }

    /// Appends one entry at `last_index() + 1` (the leader's own append).
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "appends must be dense");
        if let consensus_api::Payload::Membership(m) = &entry.payload {
            self.memberships.insert(entry.index, m.clone());
        }
        self.entries.push_back(entry);
    }

    /// Drops every entry with index `>= from` (an uncommitted suffix).
    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.base.index, "cannot truncate into the snapshot");
        if from > self.last_index() {
            return;
        }
        let keep = usize::try_from(from - self.base.index - 1).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
        self.memberships.split_off(&from);
        if from < self.unstable_from {
            self.pending_truncate = Some(self.pending_truncate.map_or(from, |t| t.min(from)));
            self.unstable_from = from;
        }
    }

    /// Stores `entries` received after a matching `prev` (§5.3 step 3 and
    /// 4): entries already held with the same term are skipped, the first
    /// conflicting one truncates the log from there. Never truncates when
    /// nothing conflicts, so a stale or duplicated message cannot shorten
    /// the log. Returns the first truncated index, if any.
    pub(crate) fn merge(&mut self, entries: &[Entry]) -> Option<LogIndex> {
        let mut truncated = None;
        for entry in entries {
            if entry.index <= self.base.index {
                continue;
            }
            match self.term_at(entry.index) {
                Some(term) if term == entry.epoch => continue,
                Some(_) => {
                    truncated = Some(entry.index);
                    self.truncate_from(entry.index);
                    self.append(entry.clone());
                }
                None => self.append(entry.clone()),
            }
        }
        truncated
    }

    /// The configuration in force (the latest one in the log).
    pub(crate) fn membership(&self) -> &Membership {
        self.memberships
            .values()
            .next_back()
            .unwrap_or(&self.base.membership)
    }

    /// Index of the entry holding the configuration in force (the snapshot
    /// index, or 0, when it comes from the snapshot or the initial one).
    pub(crate) fn membership_index(&self) -> LogIndex {
        self.memberships
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.base.index)
    }

    /// The configuration in force at `index`.
    pub(crate) fn membership_at(&self, index: LogIndex) -> &Membership {
        self.memberships
            .range(..=index)
            .next_back()
            .map_or(&self.base.membership, |(_, m)| m)
    }

    /// Records a snapshot of the applied prefix `..=index` and drops those
    /// entries (the driver persists it with `LogStore::save_snapshot`).
    pub(crate) fn compact(
        &mut self,
        index: LogIndex,
        protocol_state: Bytes,
        data: Bytes,
    ) -> Snapshot {
        assert!(index > self.base.index, "compaction must move forward");
        assert!(
            index < self.unstable_from,
            "only persisted entries are compacted"
        );
        let term = self.term_at(index).expect("compacted index is held");
        let membership = self.membership_at(index).clone();
        let snapshot = Snapshot {
            index,
            epoch: term,
            membership: membership.clone(),
            protocol_state,
            data,
        };
        let drop = usize::try_from(index - self.base.index).unwrap_or(usize::MAX);
        self.entries.drain(..drop.min(self.entries.len()));
        self.memberships = self.memberships.split_off(&(index + 1));
        self.base = LogBase {
            index,
            term,
            membership,
        };
        self.snapshot_checksum = crc32c::crc32c(&snapshot.data);
        self.snapshot = Some(snapshot.clone());
        snapshot
    }

    /// Replaces the whole log with a snapshot received from the leader
    /// (§7: "discard the entire log"); the driver persists it from the next
    /// `Ready`.
    pub(crate) fn install(&mut self, snapshot: Snapshot) {
        self.base = LogBase {
            index: snapshot.index,
            term: snapshot.epoch,
            membership: snapshot.membership.clone(),
        };
        self.entries.clear();
        self.memberships.clear();
        let after = snapshot.index + 1;
        self.pending_truncate = Some(self.pending_truncate.map_or(after, |t| t.min(after)));
        self.unstable_from = after;
        self.snapshot_checksum = crc32c::crc32c(&snapshot.data);
        self.snapshot = Some(snapshot.clone());
        self.pending_snapshot = Some(snapshot);
    }

    /// Hands out everything not yet persisted.
    pub(crate) fn take_writes(&mut self) -> LogWrites {
        let append = self.slice(self.unstable_from, self.last_index());
        self.unstable_from = self.last_index() + 1;
        LogWrites {
            snapshot: self.pending_snapshot.take(),
            truncate_from: self.pending_truncate.take(),
            append,
        }
    }

    /// Internal consistency (O(n): debug builds only).
    pub(crate) fn check(&self) {
        debug_assert!(
            self.entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.index == self.base.index + 1 + i as u64),
            "log entries must be dense above the snapshot"
        );
        debug_assert!(
            self.entries
                .iter()
                .zip(self.entries.iter().skip(1))
                .all(|(a, b)| a.epoch <= b.epoch),
            "terms never decrease along the log"
        );
        debug_assert!(
            self.entries
                .front()
                .is_none_or(|e| e.epoch >= self.base.term),
            "entries follow the snapshot's term"
        );
        assert!(
            self.unstable_from <= self.last_index() + 1,
            "unstable_from beyond the log"
        );
        assert!(
            self.unstable_from > self.base.index,
            "unstable_from inside the snapshot"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::Payload;

    fn entry(index: LogIndex, term: u64) -> Entry {
        Entry {
            index,
            epoch: term,
            payload: Payload::Noop,
        }
    }

    fn log_of(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| entry(i as u64 + 1, *t))
            .collect();
        RaftLog::restore(Membership::new([1, 2, 3]), None, entries)
    }

    #[test]
    fn merge_skips_matching_entries_and_truncates_on_conflict() {
        let mut log = log_of(&[1, 1, 2, 2]);
        assert_eq!(
            log.merge(&[entry(2, 1), entry(3, 2)]),
            None,
            "duplicates do not truncate"
        );
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.merge(&[entry(3, 3)]), Some(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term_at(3), Some(3));
        let writes = log.take_writes();
        assert_eq!(writes.truncate_from, Some(3));
        assert_eq!(writes.append, vec![entry(3, 3)]);
    }

    #[test]
    fn term_lookups_for_conflict_hints() {
        let log = log_of(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.first_index_of_term_at(2), 1);
        assert_eq!(log.last_index_of_term(2, 6), Some(5));
        assert_eq!(log.last_index_of_term(3, 6), None);
        assert_eq!(log.last_index_of_term(1, 6), Some(2));
    }

    #[test]
    fn compaction_keeps_membership_at_the_index() {
        let mut log = log_of(&[1, 1]);
        log.append(Entry {
            index: 3,
            epoch: 1,
            payload: Payload::Membership(Membership::new([1, 2])),
        });
        log.append(entry(4, 1));
        let _ = log.take_writes();
        let snapshot = log.compact(3, Bytes::new(), Bytes::from_static(b"sm"));
        assert_eq!(snapshot.membership, Membership::new([1, 2]));
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.term_at(3), Some(1));
        assert_eq!(log.term_at(2), None);
        assert_eq!(log.membership(), &Membership::new([1, 2]));
    }

    #[test]
    fn batches_respect_entry_and_byte_limits() {
        let log = log_of(&[1, 1, 1, 1, 1]);
        assert_eq!(log.batch_from(2, 2, usize::MAX).len(), 2);
        assert_eq!(log.batch_from(1, 100, 1).len(), 1, "at least one entry");
        assert_eq!(
            log.batch_from(1, 100, 2 * entry(1, 1).size_bytes()).len(),
            2
        );
        assert!(log.batch_from(6, 100, 100).is_empty());
    }
}
