//! The ZooKeeper transaction id: `(epoch, counter)` packed into 64 bits.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A ZooKeeper transaction id: the epoch in the high 32 bits, a counter in
/// the low 32 bits (Junqueira-Reed-Serafini, section III: "a zxid is a pair
/// ⟨e, c⟩ ... e is the epoch of the primary that generated the transaction,
/// c is a counter").
///
/// Zxids compare as `(epoch, counter)`. `Zxid::ZERO` (`0:0`) stands for "no
/// transaction" (an empty history). Within one epoch the counter starts at 1
/// for the leader's first proposal and grows by one per proposal, so the
/// zxids of a history strictly increase with the log index; see
/// the `history` module (`src/history.rs`) for the zxid <-> log index mapping.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Zxid(pub u64);

impl Zxid {
    /// No transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// Largest epoch or counter a zxid can hold.
    pub const PART_MAX: u64 = u32::MAX as u64;

    /// The zxid `epoch:counter`. Both parts must fit in 32 bits (checked by
    /// callers; an epoch or counter overflow forces a new election, as in
    /// ZooKeeper).
    pub fn new(epoch: u64, counter: u64) -> Zxid {
        assert!(
            epoch <= Self::PART_MAX,
            "zxid epoch {epoch} overflows 32 bits"
        );
        assert!(
            counter <= Self::PART_MAX,
            "zxid counter {counter} overflows 32 bits"
        );
        Zxid((epoch << 32) | counter)
    }

    /// The epoch part.
    pub fn epoch(self) -> u64 {
        self.0 >> 32
    }

    /// The counter part.
    pub fn counter(self) -> u64 {
        self.0 & Self::PART_MAX
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.counter())
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_is_the_high_half_and_orders_first() {
        let z = Zxid::new(3, 7);
        assert_eq!(z.0, (3 << 32) | 7);
        assert_eq!((z.epoch(), z.counter()), (3, 7));
        assert_eq!(z.to_string(), "3:7");
        assert!(Zxid::new(2, u32::MAX as u64) < Zxid::new(3, 1));
        assert!(Zxid::ZERO < Zxid::new(0, 1));
    }
}
