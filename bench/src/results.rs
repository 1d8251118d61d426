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
        }
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
