//! What operators watch (the seed's list): election / epoch churn, leader
//! tenure, commit latency, fsync latency, per-follower replication lag,
//! rejected proposals. Kept in the driver, exported through the `metrics`
//! crate facade (any recorder the application installs) and readable as a
//! [`RuntimeMetrics`] snapshot from [`Node::metrics`](crate::Node::metrics).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consensus_api::{NodeId, Role, Status};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        LatencySummary {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// A snapshot of a node's runtime metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeMetrics {
    /// Times this node saw the epoch (term / ballot / epoch) change.
    pub epoch_changes: u64,
    /// Times this node saw the leader change (including to "none").
    pub leader_changes: u64,
    /// How long the current leader (as seen here) has been leader, in ms.
    pub leader_tenure_ms: u64,
    /// Entries applied to the state machine.
    pub applied_entries: u64,
    /// Client requests rejected (not leader, unavailable, overloaded, ...).
    pub proposals_rejected: u64,
    /// From `append` to its commit on this node.
    pub commit_latency: LatencySummary,
    /// Duration of each group-committed fdatasync.
    pub fsync_latency: LatencySummary,
    /// Number of fsyncs (one per persisted `Ready`).
    pub fsyncs: u64,
    /// Leader only: entries each follower is behind the leader's last index.
    pub follower_lag: BTreeMap<NodeId, u64>,
}

/// The driver's metric state.
pub(crate) struct Metrics {
    node: String,
    epoch: u64,
    leader: Option<NodeId>,
    leader_since: Instant,
    snapshot: RuntimeMetrics,
    commit_latency: Histogram<u64>,
    fsync_latency: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Metrics {
    pub(crate) fn new(node: NodeId) -> Self {
        Metrics {
            node: node.to_string(),
            epoch: 0,
            leader: None,
            leader_since: Instant::now(),
            snapshot: RuntimeMetrics::default(),
            commit_latency: new_histogram(),
            fsync_latency: new_histogram(),
        }
    }

    pub(crate) fn observe_status(&mut self, status: &Status) {
        if status.epoch != self.epoch {
            self.epoch = status.epoch;
            self.snapshot.epoch_changes += 1;
            metrics::counter!("consensus_epoch_changes_total", "node" => self.node.clone())
                .increment(1);
        }
        if status.leader != self.leader {
            self.leader = status.leader;
            self.leader_since = Instant::now();
            self.snapshot.leader_changes += 1;
            metrics::counter!("consensus_leader_changes_total", "node" => self.node.clone())
                .increment(1);
        }
        if status.role == Role::Leader {
            self.snapshot.follower_lag = status
                .peers
                .iter()
                .map(|(peer, progress)| {
                    (
                        *peer,
                        status.last_index.saturating_sub(progress.match_index),
                    )
                })
                .collect();
            for (peer, lag) in &self.snapshot.follower_lag {
                metrics::gauge!("consensus_follower_lag_entries", "node" => self.node.clone(), "peer" => peer.to_string())
                    .set(*lag as f64);
            }
        } else {
            self.snapshot.follower_lag.clear();
        }
        metrics::gauge!("consensus_commit_index", "node" => self.node.clone())
            .set(status.commit_index as f64);
    }

    pub(crate) fn record_fsync(&mut self, took: Duration) {
        let us = micros(took);
        self.fsync_latency.saturating_record(us);
        self.snapshot.fsyncs += 1;
        metrics::histogram!("consensus_fsync_seconds", "node" => self.node.clone())
            .record(took.as_secs_f64());
    }

    pub(crate) fn record_commit(&mut self, took: Duration) {
        self.commit_latency.saturating_record(micros(took));
        metrics::histogram!("consensus_commit_seconds", "node" => self.node.clone())
            .record(took.as_secs_f64());
    }

    pub(crate) fn record_applied(&mut self, entries: u64) {
        self.snapshot.applied_entries += entries;
    }

    pub(crate) fn record_rejected(&mut self) {
        self.snapshot.proposals_rejected += 1;
        metrics::counter!("consensus_proposals_rejected_total", "node" => self.node.clone())
            .increment(1);
    }

    pub(crate) fn snapshot(&self) -> RuntimeMetrics {
        let mut snapshot = self.snapshot.clone();
        snapshot.leader_tenure_ms =
            u64::try_from(self.leader_since.elapsed().as_millis()).unwrap_or(u64::MAX);
        snapshot.commit_latency = LatencySummary::of(&self.commit_latency);
        snapshot.fsync_latency = LatencySummary::of(&self.fsync_latency);
        snapshot
    }
}
