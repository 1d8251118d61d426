//! Protocol settings in real time, the same for every protocol.

use std::time::Duration;

use consensus_api::{CoreConfig, Membership, NodeId};
use serde::{Deserialize, Serialize};

/// Timing and batching every protocol runs with. Written once, converted to
/// each core's tick counts by [`Tuning::core_config`], so that Raft,
/// Multi-Paxos, Paxos and ZAB are configured identically (the benchmarks
/// print this struct with their results).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// One logical tick.
    pub tick: Duration,
    /// Leader heartbeat (ping) interval.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// Most entries per replication message.
    pub batch_entries_max: usize,
    /// Most payload bytes per replication message.
    pub batch_bytes_max: usize,
    /// Most replication messages in flight to one peer.
    pub inflight_messages_max: usize,
    /// Most uncommitted entries a leader holds before `Overloaded`.
    pub uncommitted_entries_max: usize,
    /// Snapshot chunk size on the wire.
    pub snapshot_chunk_bytes: usize,
    /// Pre-vote (and equivalents).
    pub pre_vote: bool,
    /// Check-quorum (and equivalents).
    pub check_quorum: bool,
}

impl Default for Tuning {
    /// 10 ms tick, 50 ms heartbeat, 150-250 ms election timeout.
    ///
    /// Why 150-250 and not the Raft paper's 150-300: under load the
    /// followers hear their leader continuously, so a failure is detected
    /// when the earliest survivor's timer runs out, a median of
    /// `min + (max - min)(1 - 1/sqrt(2))` with two survivors (194 ms at
    /// 150-300, 179 ms at 150-250; 166 ms with four survivors). The lower
    /// bound alone decides how long a stalled leader is tolerated before a
    /// spurious election, so narrowing from above costs nothing there; what
    /// it costs is split votes, which need two survivors to time out
    /// within one vote round trip of each other: a fraction of a
    /// millisecond on a LAN against a 100 ms window. A deployment
    /// with a long round trip widens the range again in its cluster file
    /// (`[tuning] election_timeout_max_ms`).
    fn default() -> Self {
        let base = CoreConfig::new(1, Membership::new([1]));
        Tuning {
            tick: Duration::from_millis(10),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(250),
            batch_entries_max: base.batch_entries_max,
            batch_bytes_max: base.batch_bytes_max,
            inflight_messages_max: base.inflight_messages_max,
            uncommitted_entries_max: base.uncommitted_entries_max,
            snapshot_chunk_bytes: base.snapshot_chunk_bytes,
            pre_vote: base.pre_vote,
            check_quorum: base.check_quorum,
        }
    }
}

impl Tuning {
    /// The named timing profiles: `default` (10 ms tick, 50 ms heartbeat,
    /// 150-250 ms election timeout: what etcd-like deployments run) and
    /// `fast` (5 ms tick, 20 ms heartbeat, 60-100 ms election timeout; the
    /// same proportions).
    ///
    /// The trade-off of `fast`: a leader failure is detected in a third of
    /// the time, but a leader that stalls for more than ~60 ms (a long
    /// fsync, a GC-like pause, a loaded machine not scheduling the node) is
    /// taken for dead and replaced — a spurious election, which costs a
    /// failover's worth of unavailability. Use it on machines with fast,
    /// steady disks and spare CPU; measure spurious elections under your
    /// peak load first (`bench compare --timing fast` counts them).
    pub fn profile(name: &str) -> Result<Tuning, String> {
        match name {
            "default" => Ok(Tuning::default()),
            "fast" => Ok(Tuning {
                tick: Duration::from_millis(5),
                heartbeat_interval: Duration::from_millis(20),
                election_timeout_min: Duration::from_millis(60),
                election_timeout_max: Duration::from_millis(100),
                ..Tuning::default()
            }),
            other => Err(format!(
                "unknown timing profile {other:?}: use \"default\" or \"fast\""
            )),
        }
    }

    fn ticks(&self, duration: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        u64::try_from(duration.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The core configuration of node `id` with these settings.
    pub fn core_config(&self, id: NodeId, membership: Membership, seed: u64) -> CoreConfig {
        let mut config = CoreConfig::new(id, membership);
        config.seed = seed;
        config.heartbeat_interval_ticks = self.ticks(self.heartbeat_interval);
        config.election_timeout_ticks_min = self.ticks(self.election_timeout_min);
        config.election_timeout_ticks_max = self
            .ticks(self.election_timeout_max)
            .max(config.election_timeout_ticks_min + 1);
        config.batch_entries_max = self.batch_entries_max;
        config.batch_bytes_max = self.batch_bytes_max;
        config.inflight_messages_max = self.inflight_messages_max;
        config.uncommitted_entries_max = self.uncommitted_entries_max;
        config.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        config.pre_vote = self.pre_vote;
        config.check_quorum = self.check_quorum;
        config
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "tick {} ms, heartbeat {} ms, election timeout {}-{} ms, batch {} entries / {} KiB, \
             {} in flight, pre-vote {}, check-quorum {}",
            self.tick.as_millis(),
            self.heartbeat_interval.as_millis(),
            self.election_timeout_min.as_millis(),
            self.election_timeout_max.as_millis(),
            self.batch_entries_max,
            self.batch_bytes_max / 1024,
            self.inflight_messages_max,
            self.pre_vote,
            self.check_quorum
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_150_to_250_ms_at_a_10_ms_tick() {
        let config = Tuning::default().core_config(3, Membership::new([1, 2, 3]), 9);
        assert_eq!(config.election_timeout_ticks_min, 15);
        assert_eq!(config.election_timeout_ticks_max, 25);
        assert_eq!(config.heartbeat_interval_ticks, 5);
        assert_eq!((config.id, config.seed), (3, 9));
    }

    #[test]
    fn the_fast_profile_is_60_to_100_ms_at_a_5_ms_tick() {
        let config = Tuning::profile("fast")
            .unwrap()
            .core_config(1, Membership::new([1, 2, 3]), 1);
        assert_eq!(config.election_timeout_ticks_min, 12);
        assert_eq!(config.election_timeout_ticks_max, 20);
        assert_eq!(config.heartbeat_interval_ticks, 4);
        assert_eq!(Tuning::profile("default").unwrap(), Tuning::default());
        assert!(Tuning::profile("turbo").unwrap_err().contains("unknown"));
    }
}
