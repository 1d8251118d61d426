//! `consensus-kv bench`: a closed-loop load generator. Each logical client
//! has one operation outstanding at a time; by default each has its own
//! connection (like for like with ZooKeeper's and etcd's load generators),
//! or `connections` of them carry all clients, pipelined. All connections
//! share one QUIC endpoint (one UDP socket, one driver), so the generator
//! takes as little CPU from the servers as it can; the CPU it did take is
//! reported with the results. Latency is recorded in an HDR histogram after
//! a warm-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use consensus_service::usage::LatencyReport;
use consensus_service::usage::{describe_outcome, latency_histogram, record_latency, CpuWindow};

use crate::client::{client_endpoint, read_ca, ClientOptions, KvClient, KvError, CLOSE_WAIT_MAX};
use crate::config::ClusterConfig;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Concurrent closed-loop clients (one operation outstanding each).
    pub clients: usize,
    /// Connections carrying them (`None`: one per client). With fewer
    /// connections than clients, clients share connections round-robin and
    /// their requests are pipelined.
    pub connections: Option<usize>,
    /// Measured duration (after the warm-up).
    pub duration: Duration,
    /// Time run but not measured, so connections and leader caches are warm.
    pub warmup: Duration,
    /// Size of each written value.
    pub value_bytes: usize,
    /// Keys are chosen uniformly from `0..keys`.
    pub keys: u64,
    /// Fraction of operations that are reads (0.0 ..= 1.0).
    pub read_ratio: f64,
    /// Reads served by any node without a barrier (may be stale).
    pub stale_reads: bool,
}

/// The result of a load run (`--json` prints it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Clients.
    pub clients: usize,
    /// Connections they used.
    #[serde(default)]
    pub connections: usize,
    /// CPU the load generator itself used during the measured window, in
    /// cores (1.0 = one core busy all the time).
    #[serde(default)]
    pub load_cpu_cores: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful operations measured.
    pub ops: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Reads among them.
    pub reads: u64,
    /// Writes among them.
    pub writes: u64,
    /// Latency of successful operations.
    pub latency: LatencyReport,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
}

impl LoadReport {
    /// A human-readable summary.
    pub fn describe(&self) -> String {
        format!(
            "{} clients on {} connections, {:.1} s: {:.0} ops/s ({} reads, {} writes); {}",
            self.clients,
            self.connections,
            self.seconds,
            self.ops_per_sec,
            self.reads,
            self.writes,
            describe_outcome(&self.latency, &self.errors, self.load_cpu_cores),
        )
    }
}

fn error_kind(error: &KvError) -> String {
    match error {
        KvError::OutcomeUnknown(_) => "outcome_unknown".into(),
        KvError::Unavailable(_) => "unavailable".into(),
        KvError::Refused(e) => {
            let text = format!("{e:?}");
            format!(
                "refused_{}",
                text.split(['(', ' ', '{'])
                    .next()
                    .unwrap_or("other")
                    .to_lowercase()
            )
        }
        KvError::Setup(_) => "setup".into(),
    }
}

struct ClientResult {
    histogram: Histogram<u64>,
    reads: u64,
    writes: u64,
    errors: BTreeMap<String, u64>,
}

/// One logical client: one operation at a time until `end`, recording those
/// that started after `measure_from` and finished before `end`.
async fn closed_loop(
    client: &KvClient,
    options: &LoadOptions,
    rng: &mut rand::rngs::StdRng,
    measure_from: Instant,
    end: Instant,
) -> ClientResult {
    let value = Bytes::from(vec![b'v'; options.value_bytes]);
    let mut result = ClientResult {
        histogram: latency_histogram(),
        reads: 0,
        writes: 0,
        errors: BTreeMap::new(),
    };
    while Instant::now() < end {
        let key = format!("key-{}", rng.random_range(0..options.keys.max(1)));
        let read = rng.random_bool(options.read_ratio.clamp(0.0, 1.0));
        let began = Instant::now();
        let outcome = if read {
            client.get(&key, options.stale_reads).await.map(|_| ())
        } else {
            client.put(&key, value.clone()).await
        };
        let finished = Instant::now();
        if began < measure_from || finished > end {
            continue;
        }
        match outcome {
            Ok(()) => {
                record_latency(&mut result.histogram, began, finished);
                if read {
                    result.reads += 1;
                } else {
                    result.writes += 1;
                }
            }
            Err(error) => *result.errors.entry(error_kind(&error)).or_default() += 1,
        }
    }
    result
}

/// Runs the load against the cluster of `config`.
pub async fn run(config: &ClusterConfig, options: &LoadOptions) -> Result<LoadReport, KvError> {
    let client_count = options.clients.max(1);
    let connection_count = options
        .connections
        .unwrap_or(client_count)
        .clamp(1, client_count);
    let endpoint = client_endpoint(
        config.nodes.iter().map(|n| &n.client_addr),
        &read_ca(config)?,
    )?;
    let mut connections = Vec::with_capacity(connection_count);
    for _ in 0..connection_count {
        connections.push(Arc::new(KvClient::from_config_on(
            config,
            endpoint.clone(),
            ClientOptions::default(),
        )?));
    }
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let end = measure_from + options.duration;
    let cpu = CpuWindow::starting_at(measure_from);
    let mut tasks = Vec::new();
    for index in 0..client_count {
        let client = connections[index % connection_count].clone();
        let options = options.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(index as u64 ^ client.client_id());
            closed_loop(&client, &options, &mut rng, measure_from, end).await
        }));
    }
    let mut histogram = latency_histogram();
    let mut report = LoadReport {
        clients: client_count,
        connections: connection_count,
        seconds: options.duration.as_secs_f64(),
        ..LoadReport::default()
    };
    for task in tasks {
        let result = task
            .await
            .map_err(|e| KvError::Setup(format!("client task failed: {e}")))?;
        histogram
            .add(&result.histogram)
            .expect("compatible histograms");
        report.reads += result.reads;
        report.writes += result.writes;
        for (kind, count) in result.errors {
            *report.errors.entry(kind).or_default() += count;
        }
    }
    report.load_cpu_cores = cpu.cores(report.seconds);
    futures::future::join_all(connections.iter().map(|client| client.close())).await;
    let _ = tokio::time::timeout(CLOSE_WAIT_MAX, endpoint.wait_idle()).await;
    report.ops = histogram.len();
    report.ops_per_sec = report.ops as f64 / report.seconds.max(f64::MIN_POSITIVE);
    report.latency = LatencyReport::of(&histogram);
    Ok(report)
}
