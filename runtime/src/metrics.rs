//! What operators watch (the seed's list): election / epoch churn, leader
//! tenure, commit latency, fsync latency, per-follower replication lag,
//! rejected proposals. Kept in the driver, exported through the `metrics`
//! crate facade (any recorder the application installs) and readable as a
//! [`RuntimeMetrics`] snapshot from [`Node::metrics`](crate::Node::metrics).
//!
//! The exported names, types and labels are listed in the crate docs
//! (`lib.rs`, "Exported metrics"); keep the two in step.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use consensus_api::{NodeId, Rejected, Role, Status};
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
    epoch: u64,
    leader: Option<NodeId>,
    leader_since: Instant,
    snapshot: RuntimeMetrics,
    commit_latency: Histogram<u64>,
    fsync_latency: Histogram<u64>,
    exported: Exported,
}

/// The `metrics` facade handles, registered once (labels `node`,
/// `protocol`), so a turn of the driver does no registry lookups.
struct Exported {
    labels: [(&'static str, String); 2],
    epoch: metrics::Gauge,
    epoch_changes: metrics::Counter,
    leader_changes: metrics::Counter,
    leader: metrics::Gauge,
    is_leader: metrics::Gauge,
    commit_index: metrics::Gauge,
    applied_index: metrics::Gauge,
    last_index: metrics::Gauge,
    snapshot_index: metrics::Gauge,
    applied_entries: metrics::Counter,
    commit_seconds: metrics::Histogram,
    fsync_seconds: metrics::Histogram,
    request_queue_depth: metrics::Gauge,
    pending_proposals: metrics::Gauge,
    pending_reads: metrics::Gauge,
    rejected: BTreeMap<&'static str, metrics::Counter>,
    follower_lag: BTreeMap<NodeId, metrics::Gauge>,
}

impl Exported {
    fn new(node: NodeId, protocol: &'static str) -> Self {
        let labels = [
            ("node", node.to_string()),
            ("protocol", protocol.to_string()),
        ];
        Exported {
            epoch: metrics::gauge!("consensus_epoch", &labels),
            epoch_changes: metrics::counter!("consensus_epoch_changes_total", &labels),
            leader_changes: metrics::counter!("consensus_leader_changes_total", &labels),
            leader: metrics::gauge!("consensus_leader", &labels),
            is_leader: metrics::gauge!("consensus_is_leader", &labels),
            commit_index: metrics::gauge!("consensus_commit_index", &labels),
            applied_index: metrics::gauge!("consensus_applied_index", &labels),
            last_index: metrics::gauge!("consensus_last_index", &labels),
            snapshot_index: metrics::gauge!("consensus_snapshot_index", &labels),
            applied_entries: metrics::counter!("consensus_applied_entries_total", &labels),
            commit_seconds: metrics::histogram!("consensus_commit_seconds", &labels),
            fsync_seconds: metrics::histogram!("consensus_fsync_seconds", &labels),
            request_queue_depth: metrics::gauge!("consensus_request_queue_depth", &labels),
            pending_proposals: metrics::gauge!("consensus_pending_proposals", &labels),
            pending_reads: metrics::gauge!("consensus_pending_reads", &labels),
            rejected: BTreeMap::new(),
            follower_lag: BTreeMap::new(),
            labels,
        }
    }

    fn rejected(&mut self, reason: &'static str) -> &metrics::Counter {
        let labels = &self.labels;
        self.rejected.entry(reason).or_insert_with(|| {
            metrics::counter!(
                "consensus_proposals_rejected_total",
                "node" => labels[0].1.clone(),
                "protocol" => labels[1].1.clone(),
                "reason" => reason
            )
        })
    }

    fn follower_lag(&mut self, peer: NodeId) -> &metrics::Gauge {
        let labels = &self.labels;
        self.follower_lag.entry(peer).or_insert_with(|| {
            metrics::gauge!(
                "consensus_follower_lag_entries",
                "node" => labels[0].1.clone(),
                "protocol" => labels[1].1.clone(),
                "peer" => peer.to_string()
            )
        })
    }
}

/// The `reason` label of a rejection.
pub(crate) fn rejection_reason(rejected: &Rejected) -> &'static str {
    match rejected {
        Rejected::NotLeader { .. } => "not_leader",
        Rejected::Unavailable => "unavailable",
        Rejected::Overloaded => "overloaded",
        Rejected::OutcomeUnknown { .. } => "outcome_unknown",
        Rejected::ChangeInProgress => "change_in_progress",
        Rejected::InvalidMembership(_) => "invalid_membership",
        _ => "other",
    }
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
    pub(crate) fn new(node: NodeId, protocol: &'static str) -> Self {
        Metrics {
            epoch: 0,
            leader: None,
            leader_since: Instant::now(),
            snapshot: RuntimeMetrics::default(),
            commit_latency: new_histogram(),
            fsync_latency: new_histogram(),
            exported: Exported::new(node, protocol),
        }
    }

    pub(crate) fn observe_status(&mut self, status: &Status) {
        if status.epoch != self.epoch {
            self.epoch = status.epoch;
            self.snapshot.epoch_changes += 1;
            self.exported.epoch_changes.increment(1);
        }
        if status.leader != self.leader {
            self.leader = status.leader;
            self.leader_since = Instant::now();
            self.snapshot.leader_changes += 1;
            self.exported.leader_changes.increment(1);
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
            let lags: Vec<(NodeId, u64)> = self
                .snapshot
                .follower_lag
                .iter()
                .map(|(peer, lag)| (*peer, *lag))
                .collect();
            for (peer, lag) in lags {
                self.exported.follower_lag(peer).set(lag as f64);
            }
        } else if !self.snapshot.follower_lag.is_empty() {
            // Only a leader knows the lags: zero the series it reported.
            self.snapshot.follower_lag.clear();
            for gauge in self.exported.follower_lag.values() {
                gauge.set(0.0);
            }
        }
        let exported = &self.exported;
        exported.epoch.set(status.epoch as f64);
        exported
            .leader
            .set(status.leader.map_or(0.0, |leader| leader as f64));
        exported.is_leader.set(if status.role == Role::Leader {
            1.0
        } else {
            0.0
        });
        exported.commit_index.set(status.commit_index as f64);
        exported.applied_index.set(status.applied_index as f64);
        exported.last_index.set(status.last_index as f64);
        exported.snapshot_index.set(status.snapshot_index as f64);
    }

    /// Queue depths, once per turn of the driver.
    pub(crate) fn observe_queues(&self, queued_requests: usize, proposals: usize, reads: usize) {
        let exported = &self.exported;
        exported.request_queue_depth.set(queued_requests as f64);
        exported.pending_proposals.set(proposals as f64);
        exported.pending_reads.set(reads as f64);
    }

    pub(crate) fn record_fsync(&mut self, took: Duration) {
        let us = micros(took);
        self.fsync_latency.saturating_record(us);
        self.snapshot.fsyncs += 1;
        self.exported.fsync_seconds.record(took.as_secs_f64());
    }

    pub(crate) fn record_commit(&mut self, took: Duration) {
        self.commit_latency.saturating_record(micros(took));
        self.exported.commit_seconds.record(took.as_secs_f64());
    }

    pub(crate) fn record_applied(&mut self, entries: u64) {
        self.snapshot.applied_entries += entries;
        if entries > 0 {
            self.exported.applied_entries.increment(entries);
        }
    }

    pub(crate) fn record_rejected(&mut self, rejected: &Rejected) {
        self.snapshot.proposals_rejected += 1;
        self.exported
            .rejected(rejection_reason(rejected))
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
