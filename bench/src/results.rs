//! The data a comparison produces, written as `results.json`.

use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Percentiles {
    /// From an HDR histogram recorded in microseconds.
    pub fn of(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5) as f64,
            p90_us: histogram.value_at_quantile(0.9) as f64,
            p99_us: histogram.value_at_quantile(0.99) as f64,
            p999_us: histogram.value_at_quantile(0.999) as f64,
            max_us: histogram.max() as f64,
        }
    }
}

/// Throughput and latency at one client count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadPoint {
    /// Closed-loop clients.
    pub clients: usize,
    /// Committed-and-applied commands per second.
    pub ops_per_sec: f64,
    /// Per-command latency.
    pub latency: Percentiles,
    /// Commands that failed (by any error) during the measurement.
    pub errors: u64,
    /// Service level: the CPU the separate load-generator process used
    /// while measuring, in cores (so a reader sees what it took from the
    /// servers on a small machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_cpu_cores: Option<f64>,
    /// Leader-based protocols: how many times the epoch (term / ballot /
    /// epoch) changed during the point, the most any node saw. In a steady
    /// state it must be 0: anything else is a spurious election under load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_changes: Option<u64>,
}

/// Failover measurements in milliseconds: at library level the time from
/// stopping the leader to the first command committed afterwards; at
/// service level the longest gap between two successful writes of a client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    /// Every sample, in order.
    pub samples_ms: Vec<f64>,
    /// Smallest.
    pub min_ms: f64,
    /// Median.
    pub median_ms: f64,
    /// 99th percentile (the largest sample when fewer than 100).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Library level, leader-based protocols: where each sample's time went
    /// (same order as `samples_ms`; empty where not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<FailoverPhases>,
}

/// One failover sample split into phases, each a time in milliseconds from
/// the stop of the leader, taken from the surviving nodes' published status
/// (so to within a scheduler wake-up). The phases are consecutive:
/// detection = `suspected_ms`, election = `elected_ms - suspected_ms`,
/// first commit = `committed_ms - elected_ms`, client = `client_ms -
/// committed_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverPhases {
    /// The first surviving node gave the old leader up: it became a
    /// (pre-)candidate or looking, moved to a newer epoch, or named another
    /// leader.
    pub suspected_ms: f64,
    /// The first surviving node became leader of a newer epoch.
    pub elected_ms: f64,
    /// That new leader's commit index first advanced as leader (Raft's no-op,
    /// ZAB's synchronization, a Multi-Paxos recovery or the client's command).
    pub committed_ms: f64,
    /// The measuring client's first command committed after the stop (the
    /// sample itself).
    pub client_ms: f64,
}

impl FailoverPhases {
    /// The four consecutive durations: detection, election, first commit,
    /// client.
    pub fn durations(&self) -> [f64; 4] {
        [
            self.suspected_ms,
            (self.elected_ms - self.suspected_ms).max(0.0),
            (self.committed_ms - self.elected_ms).max(0.0),
            (self.client_ms - self.committed_ms).max(0.0),
        ]
    }

    /// The names of [`durations`](Self::durations), in order.
    pub const NAMES: [&'static str; 4] = ["detection", "election", "first commit", "client"];
}

impl Failover {
    /// Summarises samples.
    pub fn of(samples_ms: Vec<f64>) -> Self {
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1]
        };
        Failover {
            min_ms: sorted.first().copied().unwrap_or(0.0),
            median_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: sorted.last().copied().unwrap_or(0.0),
            samples_ms,
            phases: Vec::new(),
        }
    }

    /// The median of each phase's duration over the samples that have
    /// phases (`None` when none has): medians of parts, so they need not
    /// add up to the median of the whole.
    pub fn phase_medians(&self) -> Option<[f64; 4]> {
        if self.phases.is_empty() {
            return None;
        }
        let mut medians = [0.0; 4];
        for (part, median) in medians.iter_mut().enumerate() {
            let mut values: Vec<f64> = self.phases.iter().map(|p| p.durations()[part]).collect();
            values.sort_by(f64::total_cmp);
            *median = values[(values.len() - 1) / 2];
        }
        Some(medians)
    }
}

/// Everything measured for one protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProtocolResults {
    /// `raft`, `multipaxos`, `paxos` or `zab`.
    pub protocol: String,
    /// One point per client count.
    pub load: Vec<LoadPoint>,
    /// Leader (or contacted node) stops.
    pub failover: Failover,
    /// Commit p50 at 1 client divided by (QUIC RTT p50 + fdatasync p50).
    pub commit_to_floor_ratio: f64,
}

/// The machine's physical floor, measured first in the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// Round trip of a small message over QUIC on loopback.
    pub quic_rtt: Percentiles,
    /// One 4 KiB write + fdatasync in the data directory.
    pub fdatasync: Percentiles,
}

/// Where and how the comparison ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Host description (CPU model, cores, kernel).
    pub machine: String,
    /// Start time (RFC 3339, UTC).
    pub started: String,
    /// Wall-clock duration of the whole run.
    pub duration_secs: f64,
    /// The settings every protocol ran with, printed as text.
    pub settings: String,
    /// Nodes per cluster.
    pub nodes: usize,
    /// `disk` or `memory`.
    pub storage: String,
    /// True for `--quick`.
    pub quick: bool,
}

/// Service-level results: `consensus-kv serve` processes driven by a
/// separate load-generator process over the client API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceResults {
    /// Protocol.
    pub protocol: String,
    /// One point per client count.
    pub load: Vec<LoadPoint>,
    /// `kill -9` of the leader's process (restarted between samples): the
    /// longest gap between two successful writes of one client, in ms.
    #[serde(default)]
    pub failover_kill: Failover,
    /// `SIGSTOP` of the leader's process (`SIGCONT` once the client writes
    /// again): the longest gap between two successful writes, in ms.
    #[serde(default)]
    pub failover_pause: Failover,
    /// The measuring client's settings (attempt timeout, backoff): part of
    /// the failover figures.
    #[serde(default)]
    pub failover_client: String,
}

/// The whole comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Run information.
    pub run: RunInfo,
    /// The physical floor.
    pub floor: Floor,
    /// One entry per protocol (library level: the runtime driven directly).
    pub protocols: Vec<ProtocolResults>,
    /// Service level (key-value service processes), when measured.
    #[serde(default)]
    pub service: Vec<ServiceResults>,
}
