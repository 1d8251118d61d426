//! Configuration changes through the log with a fixed window of `ALPHA`
//! slots ("Paxos Made Simple" §3, last paragraphs).
//!
//! A configuration change is an ordinary value (`Payload::Membership`)
//! chosen in some slot `s`. It governs slots `s + ALPHA` and above: the
//! quorums of every slot `t` are those of the latest configuration chosen in
//! a slot `<= t - ALPHA`. A node therefore knows the configuration of slot
//! `t` exactly when it has learned every slot up to `t - ALPHA`, i.e. when
//! `t <= chosen frontier + ALPHA`; it never starts an instance, and never
//! counts `Accepted` votes, beyond that point. That bound is also the
//! pipelining throttle: at most `ALPHA` slots above the chosen frontier are
//! ever in use by one node's proposer.
//!
//! No joint configurations are needed: each slot's quorums come from exactly
//! one configuration that every node agrees on (it is determined by the
//! chosen prefix of the log).

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{decode_protocol_state, LogIndex, Membership, NodeId, RecoverError};
use serde::{Deserialize, Serialize};

/// The configuration window: a change chosen in slot `s` takes effect at slot
/// `s + ALPHA`. Every node of a cluster must use the same value.
///
/// 1024 slots (one command each) in flight per proposer cover a round trip
/// plus two fsyncs at the throughputs one node reaches, with room for a
/// slot that waits for a retransmission; a change completes after at most
/// 1024 further slots (the node that proposed it fills the window with
/// no-ops when there is no traffic, in a few batched messages).
pub const ALPHA: u64 = 1024;

/// The configurations of the log: `starts[k]` is in force from slot `k` on,
/// until the next key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Configs {
    starts: BTreeMap<LogIndex, Membership>,
}

/// What a snapshot carries beyond `Snapshot::membership`: the changes
/// chosen at or below the snapshot index that take effect above it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingConfigs {
    /// `(first slot governed, membership)`, increasing.
    pub(crate) pending: Vec<(LogIndex, Membership)>,
}

impl PendingConfigs {
    /// Decodes a snapshot's `protocol_state` (empty: nothing pending).
    pub(crate) fn decode(protocol_state: &[u8]) -> Result<PendingConfigs, RecoverError> {
        if protocol_state.is_empty() {
            return Ok(PendingConfigs::default());
        }
        decode_protocol_state(protocol_state)
    }
}

impl Configs {
    /// The configuration of a fresh log: `base` governs every slot.
    pub(crate) fn new(base: Membership) -> Self {
        let mut starts = BTreeMap::new();
        starts.insert(0, base);
        Configs { starts }
    }

    /// Rebuilds from a snapshot: `at_index` is in force at the snapshot
    /// index, `pending` take effect later.
    pub(crate) fn from_snapshot(at_index: Membership, pending: PendingConfigs) -> Self {
        let mut configs = Configs::new(at_index);
        for (start, membership) in pending.pending {
            configs.starts.insert(start, membership);
        }
        configs
    }

    /// The configuration governing `slot`.
    pub(crate) fn at(&self, slot: LogIndex) -> &Membership {
        self.starts
            .range(..=slot)
            .next_back()
            .map(|(_, m)| m)
            .expect("the base configuration starts at slot 0")
    }

    /// The first slot of the configuration governing `slot` (identifies
    /// that configuration).
    pub(crate) fn start_of(&self, slot: LogIndex) -> LogIndex {
        self.starts
            .range(..=slot)
            .next_back()
            .map(|(k, _)| *k)
            .expect("the base configuration starts at slot 0")
    }

    /// The voters of `slot`'s configuration, in order, without allocating
    /// a set.
    pub(crate) fn voters_of(&self, slot: LogIndex) -> Vec<NodeId> {
        let membership = self.at(slot);
        let mut voters: Vec<NodeId> = membership.voters.iter().copied().collect();
        if let Some(outgoing) = &membership.outgoing {
            voters.extend(
                outgoing
                    .iter()
                    .copied()
                    .filter(|n| !membership.voters.contains(n)),
            );
        }
        voters
    }

    /// True when the configuration of `slot` is determined by what a node
    /// with chosen frontier `frontier` knows.
    pub(crate) fn known(slot: LogIndex, frontier: LogIndex) -> bool {
        slot <= frontier.saturating_add(ALPHA)
    }

    /// Records a change chosen in `slot`.
    pub(crate) fn add_chosen(&mut self, slot: LogIndex, membership: Membership) {
        self.starts.insert(slot + ALPHA, membership);
    }

    /// True when a change is chosen but not yet in force at `slot`.
    pub(crate) fn change_pending_at(&self, slot: LogIndex) -> bool {
        self.starts.range(slot + 1..).next().is_some()
    }

    /// Every node of every configuration known, in order: who gets beacons
    /// and learns.
    pub(crate) fn everyone(&self) -> BTreeSet<NodeId> {
        let mut all = BTreeSet::new();
        for membership in self.starts.values() {
            all.extend(membership.all_nodes());
        }
        all
    }

    /// The changes that take effect above `index` (for a snapshot at
    /// `index`).
    pub(crate) fn pending_after(&self, index: LogIndex) -> PendingConfigs {
        PendingConfigs {
            pending: self
                .starts
                .range(index + 1..)
                .map(|(k, m)| (*k, m.clone()))
                .collect(),
        }
    }

    /// Forgets configurations that no slot above `index` can use.
    pub(crate) fn compact(&mut self, index: LogIndex) {
        let at_index = self.at(index).clone();
        let later = self.starts.split_off(&(index + 1));
        self.starts = later;
        self.starts.insert(0, at_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_governs_slots_alpha_later() {
        let mut configs = Configs::new(Membership::new([1, 2, 3]));
        configs.add_chosen(10, Membership::new([1, 2, 3, 4]));
        assert_eq!(configs.at(10 + ALPHA - 1), &Membership::new([1, 2, 3]));
        assert_eq!(configs.at(10 + ALPHA), &Membership::new([1, 2, 3, 4]));
        assert!(configs.change_pending_at(11));
        assert!(!configs.change_pending_at(10 + ALPHA));
        assert!(Configs::known(5 + ALPHA, 5));
        assert!(!Configs::known(6 + ALPHA, 5));
        let pending = configs.pending_after(20);
        assert_eq!(pending.pending.len(), 1);
        let rebuilt = Configs::from_snapshot(configs.at(20).clone(), pending);
        assert_eq!(rebuilt.at(10 + ALPHA), &Membership::new([1, 2, 3, 4]));
        assert_eq!(rebuilt.at(21), &Membership::new([1, 2, 3]));
        configs.compact(10 + ALPHA + 5);
        assert_eq!(configs.at(0), &Membership::new([1, 2, 3, 4]));
        assert_eq!(configs.everyone(), [1, 2, 3, 4].into());
    }
}
