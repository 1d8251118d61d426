//! `consensus-coord bench`: a closed-loop write load on the coordination
//! service, measured the way `consensus-kv bench` measures the key-value
//! store (so the two services compare like for like): each logical client
//! is one session on its own connection with one operation outstanding,
//! latency recorded in an HDR histogram after a warm-up, and the load
//! generator's own CPU reported with the results.
//!
//! Every client first creates an ephemeral node `/bench/<session>` (gone
//! when its session closes), then writes without pause: `set` replaces that
//! node's data, `create` creates ephemeral sequential children of `/bench`
//! (also removed with the session).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use consensus_service::usage::{
    describe_outcome, latency_histogram, record_latency, CpuWindow, LatencyReport,
};

use crate::client::{ClientError, ClientOptions, CoordClient};
use crate::types::CreateMode;
use crate::ClusterConfig;

/// The parent of every node the load writes.
pub const BENCH_ROOT: &str = "/bench";

/// Which write each operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    /// `set_data` on the client's own node.
    Set,
    /// `create` of an ephemeral sequential node.
    Create,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent closed-loop clients (sessions), one operation outstanding each.
    pub clients: usize,
    /// Measured duration (after the warm-up).
    pub duration: Duration,
    /// Time run but not measured, so sessions and connections are warm.
    pub warmup: Duration,
    /// Size of each written value.
    pub value_bytes: usize,
    /// The write each operation makes.
    pub op: WriteOp,
}

/// The result of a load run (`--json` prints it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Clients (sessions, one connection each).
    pub clients: usize,
    /// The write measured.
    pub op: Option<WriteOp>,
    /// CPU the load generator itself used during the measured window, in
    /// cores.
    pub load_cpu_cores: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful operations measured.
    pub ops: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latency of successful operations.
    pub latency: LatencyReport,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
}

impl LoadReport {
    /// A human-readable summary.
    pub fn describe(&self) -> String {
        let op = match self.op {
            Some(WriteOp::Create) => "create",
            _ => "set",
        };
        format!(
            "{} clients ({op}), {:.1} s: {:.0} ops/s; {}",
            self.clients,
            self.seconds,
            self.ops_per_sec,
            describe_outcome(&self.latency, &self.errors, self.load_cpu_cores),
        )
    }
}

fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Coord(_) | ClientError::Multi(_) => "refused".into(),
        ClientError::Unavailable(_) => "unavailable".into(),
        ClientError::OutcomeUnknown(_) => "outcome_unknown".into(),
        ClientError::Closed => "closed".into(),
        ClientError::Refused(_) => "service_refused".into(),
        ClientError::Setup(_) => "setup".into(),
    }
}

struct ClientResult {
    histogram: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

/// One session: writes one at a time until `end`, recording those that
/// started after `measure_from` and finished before `end`.
async fn closed_loop(
    client: &CoordClient,
    options: &LoadOptions,
    measure_from: Instant,
    end: Instant,
) -> Result<ClientResult, ClientError> {
    let own = format!("{BENCH_ROOT}/{:016x}", client.session_id());
    client
        .create(&own, Bytes::new(), CreateMode::Ephemeral)
        .await?;
    let child = format!("{own}-");
    let value = Bytes::from(vec![b'v'; options.value_bytes]);
    let mut result = ClientResult {
        histogram: latency_histogram(),
        errors: BTreeMap::new(),
    };
    while Instant::now() < end {
        let began = Instant::now();
        let outcome = match options.op {
            WriteOp::Set => client.set_data(&own, value.clone(), None).await.map(|_| ()),
            WriteOp::Create => client
                .create(&child, value.clone(), CreateMode::EphemeralSequential)
                .await
                .map(|_| ()),
        };
        let finished = Instant::now();
        if began < measure_from || finished > end {
            continue;
        }
        match outcome {
            Ok(()) => record_latency(&mut result.histogram, began, finished),
            Err(error) => *result.errors.entry(error_kind(&error)).or_default() += 1,
        }
    }
    Ok(result)
}

/// Runs the load against the cluster of `config`.
pub async fn run(config: &ClusterConfig, options: &LoadOptions) -> Result<LoadReport, ClientError> {
    let client_count = options.clients.max(1);
    let setup = CoordClient::connect_config(config, ClientOptions::default()).await?;
    setup.ensure_path(BENCH_ROOT).await?;
    let _ = setup.close().await;
    let mut clients = Vec::with_capacity(client_count);
    for _ in 0..client_count {
        clients.push(CoordClient::connect_config(config, ClientOptions::default()).await?);
    }
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let end = measure_from + options.duration;
    let cpu = CpuWindow::starting_at(measure_from);
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|client| {
            let options = options.clone();
            tokio::spawn(async move { closed_loop(&client, &options, measure_from, end).await })
        })
        .collect();
    let mut histogram = latency_histogram();
    let mut report = LoadReport {
        clients: client_count,
        op: Some(options.op),
        seconds: options.duration.as_secs_f64(),
        ..LoadReport::default()
    };
    let mut failed = None;
    for task in tasks {
        match task.await {
            Ok(Ok(result)) => {
                histogram
                    .add(&result.histogram)
                    .expect("compatible histograms");
                for (kind, count) in result.errors {
                    *report.errors.entry(kind).or_default() += count;
                }
            }
            Ok(Err(error)) => failed = Some(error),
            Err(error) => failed = Some(ClientError::Setup(format!("client task failed: {error}"))),
        }
    }
    report.load_cpu_cores = cpu.cores(report.seconds);
    let mut closing = tokio::task::JoinSet::new();
    for client in clients {
        closing.spawn(async move { client.close().await });
    }
    while closing.join_next().await.is_some() {}
    if let Some(error) = failed {
        return Err(error);
    }
    report.ops = histogram.len();
    report.ops_per_sec = report.ops as f64 / report.seconds.max(f64::MIN_POSITIVE);
    report.latency = LatencyReport::of(&histogram);
    Ok(report)
}
