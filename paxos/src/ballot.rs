//! Ballots ("proposal numbers", Paxos Made Simple §2.2): `(counter, node)`,
//! totally ordered without clocks.

use std::fmt;

use consensus_api::NodeId;
use serde::{Deserialize, Serialize};

/// A ballot: a per-node counter and the node that owns it.
///
/// Ballots compare by `counter` first, then by `node`, so two nodes never
/// issue the same ballot and any two ballots are ordered. The counter is
/// persisted in the hard state and only grows, so a node never reuses a
/// ballot across restarts.
///
/// In [`Entry::epoch`](consensus_api::Entry) and [`Status::epoch`](consensus_api::Status)
/// a ballot is encoded as `counter << 32 | node` ([`Ballot::to_epoch`]), so
/// that `u64` order equals ballot order. Node ids must therefore fit in 32
/// bits (checked by [`PaxosCore::restore`](crate::PaxosCore)).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Ballot {
    /// The round counter (compared first).
    pub counter: u32,
    /// The node that issued the ballot (breaks ties).
    pub node: u32,
}

impl Ballot {
    /// The "no ballot" value, lower than every real ballot.
    pub const ZERO: Ballot = Ballot {
        counter: 0,
        node: 0,
    };

    /// A ballot of `node` with `counter`. `node` must fit in 32 bits.
    pub fn new(counter: u32, node: NodeId) -> Ballot {
        Ballot {
            counter,
            node: u32::try_from(node).expect("node ids are checked to fit in 32 bits"),
        }
    }

    /// True for [`Ballot::ZERO`] (and any ballot without an owner).
    pub fn is_zero(&self) -> bool {
        self.counter == 0 || self.node == 0
    }

    /// The node that issued this ballot.
    pub fn owner(&self) -> NodeId {
        NodeId::from(self.node)
    }

    /// `counter << 32 | node`: the `u64` stored in `Entry::epoch`.
    pub fn to_epoch(self) -> u64 {
        (u64::from(self.counter) << 32) | u64::from(self.node)
    }

    /// The inverse of [`Ballot::to_epoch`].
    pub fn from_epoch(epoch: u64) -> Ballot {
        Ballot {
            counter: (epoch >> 32) as u32,
            node: (epoch & 0xffff_ffff) as u32,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.counter, self.node)
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
    fn epoch_encoding_preserves_order() {
        let ballots = [
            Ballot::new(1, 1),
            Ballot::new(1, 2),
            Ballot::new(2, 1),
            Ballot::new(2, 7),
            Ballot::new(u32::MAX, 3),
        ];
        for pair in ballots.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_epoch() < pair[1].to_epoch());
        }
        for ballot in ballots {
            assert_eq!(Ballot::from_epoch(ballot.to_epoch()), ballot);
        }
        assert_eq!(Ballot::new(3, 2).to_string(), "3.2");
        assert!(Ballot::ZERO.is_zero());
    }
}
