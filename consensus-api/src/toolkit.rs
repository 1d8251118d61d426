//! The small toolkit every core shares: what is protocol-neutral and was
//! written once per core before (no protocol logic here).
//!
//! * [`CoreConfig::validate`]: one set of configuration rules for all four
//!   cores (a core with an extra rule of its own checks it after these);
//! * [`random_ticks`] and [`CoreConfig::random_election_timeout`]: the
//!   seeded randomized timeout, drawn from the core's own RNG;
//! * [`TicketCounter`]: the counter that numbers the tickets a core hands out.

use rand::Rng;

use crate::core::CoreConfig;
use crate::error::RecoverError;
use crate::types::Ticket;

impl CoreConfig {
    /// The rules every core's configuration obeys, checked by each core's
    /// `restore` before anything else (a core with a rule of its own, such
    /// as a node id that must fit in a ballot, checks it after these):
    ///
    /// * the node id is not 0 (reserved for "no node");
    /// * the election timeout and the heartbeat interval are at least one
    ///   tick, and a heartbeat comes more often than the shortest election
    ///   timeout (otherwise followers time out between heartbeats of a
    ///   healthy leader);
    /// * the election timeout's range `[min, max)` is not empty;
    /// * the batch, pipelining window, snapshot chunk and uncommitted
    ///   limits are at least one.
    pub fn validate(&self) -> Result<(), RecoverError> {
        let invalid = |what: String| Err(RecoverError::InvalidConfig(what));
        if self.id == 0 {
            return invalid("node id 0 is reserved".into());
        }
        if self.election_timeout_ticks_min == 0 || self.heartbeat_interval_ticks == 0 {
            return invalid(
                "election timeout and heartbeat interval must be at least one tick".into(),
            );
        }
        if self.heartbeat_interval_ticks >= self.election_timeout_ticks_min {
            return invalid(format!(
                "heartbeat interval ({}) must be shorter than the election timeout ({})",
                self.heartbeat_interval_ticks, self.election_timeout_ticks_min
            ));
        }
        if self.election_timeout_ticks_max <= self.election_timeout_ticks_min {
            return invalid(format!(
                "the election timeout range [{}, {}) is empty: \
                 election_timeout_ticks_max must be above election_timeout_ticks_min",
                self.election_timeout_ticks_min, self.election_timeout_ticks_max
            ));
        }
        if self.batch_entries_max == 0
            || self.inflight_messages_max == 0
            || self.snapshot_chunk_bytes == 0
            || self.uncommitted_entries_max == 0
        {
            return invalid(
                "batch, window, chunk and uncommitted limits must be at least one".into(),
            );
        }
        Ok(())
    }

    /// A fresh randomized election (failure-detection) timeout in
    /// `[election_timeout_ticks_min, election_timeout_ticks_max)`, drawn
    /// from the core's own seeded RNG (see [`random_ticks`]).
    pub fn random_election_timeout<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        random_ticks(
            rng,
            self.election_timeout_ticks_min,
            self.election_timeout_ticks_max,
        )
    }
}

/// A number of ticks drawn uniformly from `[min, max)` with the core's own
/// seeded RNG; `min`, without drawing, when the range is empty. Always the
/// same draw for the same RNG state, so a seed reproduces a run.
pub fn random_ticks<R: Rng + ?Sized>(rng: &mut R, min: u64, max: u64) -> u64 {
    if max <= min {
        return min;
    }
    rng.random_range(min..max)
}

/// Numbers the [`Ticket`]s a core hands out: 1, 2, 3, ... per incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketCounter {
    last: u64,
}

impl TicketCounter {
    /// The next ticket.
    pub fn next_ticket(&mut self) -> Ticket {
        self.last += 1;
        Ticket(self.last)
    }

    /// The last ticket handed out (`Ticket(0)` before the first).
    pub fn last(&self) -> Ticket {
        Ticket(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Membership;

    fn config() -> CoreConfig {
        CoreConfig::new(1, Membership::new([1, 2, 3]))
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn each_rule_refuses() {
        let cases: [fn(&mut CoreConfig); 8] = [
            |c| c.id = 0,
            |c| c.election_timeout_ticks_min = 0,
            |c| c.heartbeat_interval_ticks = 0,
            |c| c.heartbeat_interval_ticks = c.election_timeout_ticks_min,
            |c| c.election_timeout_ticks_max = c.election_timeout_ticks_min,
            |c| c.batch_entries_max = 0,
            |c| c.inflight_messages_max = 0,
            |c| c.snapshot_chunk_bytes = 0,
        ];
        for (i, break_it) in cases.iter().enumerate() {
            let mut c = config();
            break_it(&mut c);
            assert!(
                matches!(c.validate(), Err(RecoverError::InvalidConfig(_))),
                "case {i}"
            );
        }
        let mut c = config();
        c.uncommitted_entries_max = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn tickets_count_from_one() {
        let mut counter = TicketCounter::default();
        assert_eq!(counter.last(), Ticket(0));
        assert_eq!(counter.next_ticket(), Ticket(1));
        assert_eq!(counter.next_ticket(), Ticket(2));
        assert_eq!(counter.last(), Ticket(2));
    }
}
