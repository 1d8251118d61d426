//! Ballots: totally ordered proposal numbers without clocks.
//!
//! A ballot is the pair `(counter, node)`, compared lexicographically: a
//! higher counter wins, and the node id breaks ties, so two nodes never
//! share a ballot ("Paxos Made Simple" §2.2: "different proposers choose
//! their numbers from disjoint sets"). The counter is persisted through the
//! promise in the hard state, so a restarted node never reuses one.
//!
//! # Encoding into `Entry::epoch` / `Status::epoch`
//!
//! The pair is packed into one `u64`: `counter << 32 | node`. Both halves
//! are 32 bits wide (node ids above `u32::MAX` are refused by
//! [`MultiPaxosCore::restore`](crate::MultiPaxosCore)), so the integer order
//! of the encoded value **is** the ballot order. `0` (`0.0`) is the null
//! ballot: nothing promised, nothing accepted.

use std::fmt;

use consensus_api::NodeId;
use serde::{Deserialize, Serialize};

/// A ballot `(counter, node)`, stored encoded as `counter << 32 | node` so
/// that `u64` order equals ballot order.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Ballot(u64);

impl Ballot {
    /// The null ballot `0.0`, lower than every real ballot.
    pub const ZERO: Ballot = Ballot(0);

    /// Largest counter and node id a ballot can hold.
    pub const FIELD_MAX: u64 = u32::MAX as u64;

    /// The ballot `(counter, node)`. Both must fit in 32 bits (checked by
    /// the callers: node ids at restore, counters before incrementing).
    pub fn new(counter: u64, node: NodeId) -> Ballot {
        debug_assert!(
            counter <= Self::FIELD_MAX,
            "ballot counter {counter} overflows 32 bits"
        );
        debug_assert!(node <= Self::FIELD_MAX, "node id {node} overflows 32 bits");
        Ballot((counter & Self::FIELD_MAX) << 32 | (node & Self::FIELD_MAX))
    }

    /// Decodes an epoch as stored in [`consensus_api::Entry::epoch`].
    pub fn from_epoch(epoch: u64) -> Ballot {
        Ballot(epoch)
    }

    /// The encoded form (`counter << 32 | node`).
    pub fn epoch(self) -> u64 {
        self.0
    }

    /// The counter half.
    pub fn counter(self) -> u64 {
        self.0 >> 32
    }

    /// The node that owns this ballot (its proposer).
    pub fn node(self) -> NodeId {
        self.0 & Self::FIELD_MAX
    }

    /// True for the null ballot.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The smallest ballot owned by `node` that is higher than `self`, or
    /// `None` when the counter is exhausted (after 2^32 elections).
    pub fn next_for(self, node: NodeId) -> Option<Ballot> {
        let counter = self.counter().checked_add(1)?;
        (counter <= Self::FIELD_MAX && node <= Self::FIELD_MAX).then(|| Ballot::new(counter, node))
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.counter(), self.node())
    }
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_order_is_ballot_order() {
        let a = Ballot::new(1, 5);
        let b = Ballot::new(2, 1);
        let c = Ballot::new(2, 3);
        assert!(Ballot::ZERO < a && a < b && b < c);
        assert!(a.epoch() < b.epoch() && b.epoch() < c.epoch());
        assert_eq!(Ballot::from_epoch(c.epoch()), c);
        assert_eq!((c.counter(), c.node()), (2, 3));
        assert_eq!(c.to_string(), "2.3");
    }

    #[test]
    fn next_ballot_is_higher_and_owned() {
        let seen = Ballot::new(7, 9);
        let mine = seen.next_for(2).unwrap();
        assert!(mine > seen);
        assert_eq!(mine.node(), 2);
        assert_eq!(Ballot::new(Ballot::FIELD_MAX, 1).next_for(1), None);
    }
}
