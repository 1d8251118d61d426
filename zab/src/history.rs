//! The history: the log of accepted proposals, with the zxid of every entry.
//!
//! # zxid <-> log index
//!
//! The contract's log is dense and 1-based ([`Entry::index`]); ZAB names
//! transactions by zxid. Each [`Entry`] stores its ZAB epoch
//! ([`Entry::epoch`]); its counter is implied by its position: the entries of
//! one epoch form one contiguous run in every history (a follower only ever
//! appends the proposals of its leader's epoch in order, after the leader's
//! initial history), and the run's first entry has counter 1. So, walking a
//! history in index order,
//!
//! ```text
//! zxid(i) = (epoch(i), counter(i-1) + 1)   if epoch(i) == epoch(i-1)
//!         = (epoch(i), 1)                  otherwise
//! ```
//!
//! starting from the snapshot's zxid (kept in the snapshot's
//! `protocol_state`) or from `0:0` for an empty history. The mapping is a
//! function of the prefix, so two histories that agree up to index `i` agree
//! on the zxids up to `i`; and because zxids strictly increase along a
//! history, a zxid is located by binary search. The map is rebuilt from the
//! stored entries on restart (`History::restore`).

use std::collections::VecDeque;

use consensus_api::{Entry, LogIndex};

use crate::zxid::Zxid;

/// The history of one node above its snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    /// Index of the last entry covered by the snapshot (0 without one).
    base_index: LogIndex,
    /// Zxid of the entry at `base_index` (`0:0` without a snapshot).
    base_zxid: Zxid,
    /// Entries `base_index + 1 ..`, in order.
    entries: VecDeque<Entry>,
    /// The zxid of each entry of `entries`.
    zxids: VecDeque<Zxid>,
}

/// Why stored entries cannot form a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryError(pub String);

impl History {
    /// An empty history above a snapshot at `base_index` / `base_zxid`.
    pub fn new(base_index: LogIndex, base_zxid: Zxid) -> History {
        History {
            base_index,
            base_zxid,
            entries: VecDeque::new(),
            zxids: VecDeque::new(),
        }
    }

    /// Rebuilds a history from stored entries (dense, above the snapshot).
    pub fn restore(
        base_index: LogIndex,
        base_zxid: Zxid,
        entries: Vec<Entry>,
    ) -> Result<History, HistoryError> {
        let mut history = History::new(base_index, base_zxid);
        for entry in entries {
            if entry.index != history.last_index() + 1 {
                return Err(HistoryError(format!(
                    "entry {} does not follow index {}",
                    entry.index,
                    history.last_index()
                )));
            }
            if entry.epoch < history.last_zxid().epoch() || entry.epoch > Zxid::PART_MAX {
                return Err(HistoryError(format!(
                    "entry {} has epoch {} after zxid {}",
                    entry.index,
                    entry.epoch,
                    history.last_zxid()
                )));
            }
            if history.next_zxid(entry.epoch).is_none() {
                return Err(HistoryError(format!(
                    "zxid counter overflow at entry {}",
                    entry.index
                )));
            }
            history.append(entry);
        }
        Ok(history)
    }

    /// Index covered by the snapshot.
    pub fn base_index(&self) -> LogIndex {
        self.base_index
    }

    /// Zxid of the snapshot's last entry.
    pub fn base_zxid(&self) -> Zxid {
        self.base_zxid
    }

    /// Index of the last entry (the base when empty).
    pub fn last_index(&self) -> LogIndex {
        self.base_index + self.entries.len() as LogIndex
    }

    /// Zxid of the last entry (the base zxid when empty).
    pub fn last_zxid(&self) -> Zxid {
        self.zxids.back().copied().unwrap_or(self.base_zxid)
    }

    /// The zxid at `index`, when it is the base or a held entry.
    pub fn zxid_at(&self, index: LogIndex) -> Option<Zxid> {
        if index == self.base_index {
            return Some(self.base_zxid);
        }
        if index < self.base_index {
            return None;
        }
        self.zxids
            .get((index - self.base_index - 1) as usize)
            .copied()
    }

    /// The entry at `index`, when held.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }

    /// The index holding exactly `zxid` (the base counts; `0:0` is index 0
    /// for a history without snapshot).
    pub fn index_of(&self, zxid: Zxid) -> Option<LogIndex> {
        if zxid == self.base_zxid {
            return Some(self.base_index);
        }
        self.zxids
            .binary_search(&zxid)
            .ok()
            .map(|position| self.base_index + position as LogIndex + 1)
    }

    /// The largest index whose zxid is `<= zxid`, or `None` when `zxid` is
    /// below the base (the answer lies inside the snapshot).
    pub fn floor_index(&self, zxid: Zxid) -> Option<LogIndex> {
        if zxid < self.base_zxid {
            return None;
        }
        let count = self.zxids.partition_point(|z| *z <= zxid);
        Some(self.base_index + count as LogIndex)
    }

    /// The largest held zxid strictly below `zxid` and its index, or `None`
    /// when every held zxid (base included) is `>= zxid`.
    pub fn below(&self, zxid: Zxid) -> Option<(LogIndex, Zxid)> {
        if zxid <= self.base_zxid {
            return None;
        }
        let count = self.zxids.partition_point(|z| *z < zxid);
        let index = self.base_index + count as LogIndex;
        Some((index, self.zxid_at(index).unwrap_or(self.base_zxid)))
    }

    /// The zxid the next entry of `epoch` gets, or `None` on counter overflow.
    pub fn next_zxid(&self, epoch: u64) -> Option<Zxid> {
        let last = self.last_zxid();
        if last.epoch() == epoch {
            (last.counter() < Zxid::PART_MAX).then(|| Zxid::new(epoch, last.counter() + 1))
        } else {
            Some(Zxid::new(epoch, 1))
        }
    }

    /// Appends the next entry and returns its zxid.
    pub fn append(&mut self, entry: Entry) -> Zxid {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "history append must be dense"
        );
        assert!(
            entry.epoch >= self.last_zxid().epoch(),
            "history epochs never decrease"
        );
        let zxid = self
            .next_zxid(entry.epoch)
            .expect("zxid counter overflow checked by caller");
        self.entries.push_back(entry);
        self.zxids.push_back(zxid);
        zxid
    }

    /// Drops every entry with index `>= from` (`from > base_index`).
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.base_index, "cannot truncate into the snapshot");
        let keep = (from - self.base_index - 1) as usize;
        self.entries.truncate(keep);
        self.zxids.truncate(keep);
    }

    /// Drops every entry with index `<= index`, which becomes the base.
    pub fn compact_to(&mut self, index: LogIndex) {
        assert!(
            index >= self.base_index && index <= self.last_index(),
            "compaction in range"
        );
        let zxid = self.zxid_at(index).expect("in range");
        let drop = (index - self.base_index) as usize;
        self.entries.drain(..drop);
        self.zxids.drain(..drop);
        self.base_index = index;
        self.base_zxid = zxid;
    }

    /// Replaces everything by an empty history above a snapshot.
    pub fn reset(&mut self, base_index: LogIndex, base_zxid: Zxid) {
        *self = History::new(base_index, base_zxid);
    }

    /// Held entries with index in `from..=to`.
    pub fn range(&self, from: LogIndex, to: LogIndex) -> impl Iterator<Item = &Entry> {
        let start = from.max(self.base_index + 1);
        let end = to.min(self.last_index());
        let skip = start.saturating_sub(self.base_index + 1) as usize;
        let take = if end >= start {
            (end - start + 1) as usize
        } else {
            0
        };
        self.entries.iter().skip(skip).take(take)
    }

    /// Checks the last `count` entries (a cheap per-step check).
    pub fn check_tail(&self, count: usize) {
        assert_eq!(self.entries.len(), self.zxids.len(), "one zxid per entry");
        let start = self.entries.len().saturating_sub(count);
        let mut previous = if start == 0 {
            self.base_zxid
        } else {
            self.zxids[start - 1]
        };
        for position in start..self.entries.len() {
            let (entry, zxid) = (&self.entries[position], self.zxids[position]);
            assert_eq!(
                entry.index,
                self.base_index + position as LogIndex + 1,
                "dense indexes"
            );
            assert_eq!(entry.epoch, zxid.epoch(), "entry epoch is the zxid epoch");
            assert!(zxid > previous, "zxids strictly increase");
            previous = zxid;
        }
    }

    /// O(n) consistency check (tests).
    #[cfg(test)]
    pub fn check(&self) {
        assert_eq!(self.entries.len(), self.zxids.len(), "one zxid per entry");
        let mut previous = self.base_zxid;
        for (position, (entry, zxid)) in self.entries.iter().zip(&self.zxids).enumerate() {
            assert_eq!(
                entry.index,
                self.base_index + position as LogIndex + 1,
                "dense indexes"
            );
            assert_eq!(entry.epoch, zxid.epoch(), "entry epoch is the zxid epoch");
            assert!(*zxid > previous, "zxids strictly increase");
            let expected = if zxid.epoch() == previous.epoch() {
                previous.counter() + 1
            } else {
                1
            };
            assert_eq!(
                zxid.counter(),
                expected,
                "counters are consecutive within an epoch"
            );
            previous = *zxid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_api::{Bytes, Payload};

    fn entry(index: LogIndex, epoch: u64) -> Entry {
        Entry {
            index,
            epoch,
            payload: Payload::Command(Bytes::from(format!("v{index}"))),
        }
    }

    #[test]
    fn counters_restart_with_each_epoch() {
        let history = History::restore(
            0,
            Zxid::ZERO,
            vec![entry(1, 1), entry(2, 1), entry(3, 3), entry(4, 3)],
        )
        .unwrap();
        history.check();
        assert_eq!(history.zxid_at(2), Some(Zxid::new(1, 2)));
        assert_eq!(history.zxid_at(3), Some(Zxid::new(3, 1)));
        assert_eq!(history.index_of(Zxid::new(3, 2)), Some(4));
        assert_eq!(history.index_of(Zxid::new(2, 1)), None);
        assert_eq!(history.floor_index(Zxid::new(2, 9)), Some(2));
        assert_eq!(history.below(Zxid::new(3, 1)), Some((2, Zxid::new(1, 2))));
        assert_eq!(history.below(Zxid::new(1, 1)), Some((0, Zxid::ZERO)));
        assert_eq!(history.next_zxid(3), Some(Zxid::new(3, 3)));
        assert_eq!(history.next_zxid(4), Some(Zxid::new(4, 1)));
    }

    #[test]
    fn compaction_keeps_the_mapping() {
        let mut history =
            History::restore(0, Zxid::ZERO, vec![entry(1, 1), entry(2, 1), entry(3, 3)]).unwrap();
        history.compact_to(2);
        assert_eq!(history.base_zxid(), Zxid::new(1, 2));
        assert_eq!(history.zxid_at(3), Some(Zxid::new(3, 1)));
        assert_eq!(
            history.floor_index(Zxid::new(1, 1)),
            None,
            "inside the snapshot"
        );
        assert_eq!(
            history.range(1, 9).map(|e| e.index).collect::<Vec<_>>(),
            vec![3]
        );
        let restored = History::restore(2, Zxid::new(1, 2), vec![entry(3, 1)]).unwrap();
        assert_eq!(
            restored.zxid_at(3),
            Some(Zxid::new(1, 3)),
            "counter continues from the base"
        );
        assert!(History::restore(0, Zxid::ZERO, vec![entry(1, 2), entry(2, 1)]).is_err());
        assert!(History::restore(0, Zxid::ZERO, vec![entry(2, 1)]).is_err());
    }
}
