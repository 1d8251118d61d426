//! `bench compare`: the floor of this machine, then every protocol through
//! the same runtime, transport, storage and workload, side by side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consensus::{NodeId, Protocol};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::BenchCluster;
use crate::failover;
use crate::floor::{measure_fdatasync, measure_quic_rtt};
use crate::results::{
    Comparison, Failover, LoadPoint, Percentiles, ProtocolResults, RunInfo, ServiceResults,
};
use crate::service_failover::{self, Fault};
use crate::settings::{Settings, StorageKind};
use crate::workload;

/// `SIGSTOP` samples per protocol at most with `--quick`.
pub const QUICK_PAUSE_SAMPLES: usize = 3;

/// What to compare and how long to measure.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Protocols, in report order.
    pub protocols: Vec<Protocol>,
    /// Client counts.
    pub clients: Vec<usize>,
    /// Unmeasured time before each load point.
    pub warmup: Duration,
    /// Measured time per load point.
    pub measure: Duration,
    /// Leader stops per protocol (library level), and `kill -9` leader
    /// failures per protocol (service level).
    pub failovers: usize,
    /// Also measure the key-value service (processes + load generator).
    pub service: bool,
    /// Binary that implements `serve` and `load` for the service level.
    pub service_binary: Option<PathBuf>,
    /// Shared settings.
    pub settings: Settings,
    /// `--quick`.
    pub quick: bool,
}

impl CompareOptions {
    /// The defaults of a full run or of `--quick`.
    pub fn new(quick: bool) -> Self {
        CompareOptions {
            protocols: Protocol::compiled(),
            clients: vec![1, 16, 64, 256],
            warmup: if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(1)
            },
            measure: if quick {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(5)
            },
            failovers: if quick { 5 } else { 10 },
            service: !quick,
            service_binary: None,
            settings: Settings::default(),
            quick,
        }
    }

    /// `SIGSTOP` leader failures per protocol at service level: as many as
    /// [`failovers`](Self::failovers), but at most
    /// [`QUICK_PAUSE_SAMPLES`] with `--quick` (to stay in its time budget).
    pub fn service_pause_samples(&self) -> usize {
        if self.quick {
            self.failovers.min(QUICK_PAUSE_SAMPLES)
        } else {
            self.failovers
        }
    }

    fn steps(&self) -> u64 {
        let per_protocol = self.clients.len() + self.failovers + 1;
        let service = if self.service {
            self.clients.len() + 1 + self.failovers + self.service_pause_samples()
        } else {
            0
        };
        (2 + self.protocols.len() * (per_protocol + service)) as u64
    }
}

/// What this machine is, for the report.
pub fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kb: u64 = text
                .lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{} GiB", kb / (1024 * 1024)))
        })
        .unwrap_or_else(|| "? GiB".into());
    format!("{cpu}, {cores} cores, {memory} RAM, Linux {kernel}")
}

/// The current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Runs the comparison, showing progress; returns the results.
pub async fn compare(options: &CompareOptions) -> Result<Comparison, String> {
    let started = Instant::now();
    let progress = ProgressBar::new(options.steps());
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    let settings = &options.settings;
    let mut comparison = Comparison {
        run: RunInfo {
            machine: machine_description(),
            started: now_rfc3339(),
            settings: settings.describe(),
            nodes: settings.nodes,
            storage: settings.storage.to_string(),
            quick: options.quick,
            ..RunInfo::default()
        },
        ..Comparison::default()
    };

    progress.set_message("floor: fdatasync latency of the data directory");
    let data_parent = settings.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let probe_dir = tempfile::tempdir_in(&data_parent)
        .map_err(|e| format!("temp dir in {}: {e}", data_parent.display()))?;
    comparison.floor.fdatasync =
        measure_fdatasync(probe_dir.path(), if options.quick { 200 } else { 1000 })
            .map_err(|e| format!("fdatasync probe: {e}"))?;
    progress.inc(1);
    progress.set_message("floor: QUIC round trip on loopback");
    comparison.floor.quic_rtt = measure_quic_rtt(if options.quick { 500 } else { 2000 }).await?;
    progress.inc(1);
    let floor_us = comparison.floor.quic_rtt.p50_us
        + if settings.storage == StorageKind::Disk {
            comparison.floor.fdatasync.p50_us
        } else {
            0.0
        };

    for protocol in &options.protocols {
        progress.set_message(format!(
            "{protocol}: starting a {}-node cluster",
            settings.nodes
        ));
        let mut cluster = BenchCluster::start(*protocol, settings).await?;
        cluster.wait_writable().await?;
        progress.inc(1);
        let mut result = ProtocolResults {
            protocol: protocol.to_string(),
            ..ProtocolResults::default()
        };
        for &clients in &options.clients {
            progress.set_message(format!("{protocol}: {clients} client(s)"));
            let leader = if protocol.has_leader() {
                cluster.agreed_leader()
            } else {
                None
            };
            let epochs_before = cluster.epoch_changes().await;
            let run = workload::run_for(
                &cluster.nodes(),
                leader,
                clients,
                options.warmup,
                options.measure,
                settings.command_bytes,
            )
            .await;
            let mut point = run.point(clients);
            if protocol.has_leader() {
                point.leader_changes =
                    Some(most_changes(&epochs_before, &cluster.epoch_changes().await));
            }
            result.load.push(point);
            progress.inc(1);
        }
        if let Some(one) = result.load.iter().find(|p| p.clients == 1) {
            result.commit_to_floor_ratio = one.latency.p50_us / floor_us.max(1.0);
        }
        let progress_ref = &progress;
        let measured = failover::measure(
            &mut cluster,
            options.failovers,
            settings.command_bytes,
            |sample, gap| {
                progress_ref.set_message(format!(
                    "{protocol}: failover {} took {gap:.0} ms",
                    sample + 1
                ));
                progress_ref.inc(1);
            },
        )
        .await?;
        result.failover = Failover::of(measured.gaps_ms);
        result.failover.phases = measured.phases;
        cluster.shutdown().await;
        comparison.protocols.push(result);
    }

    if options.service {
        let binary = options
            .service_binary
            .clone()
            .ok_or("the service level needs the bench binary's path")?;
        for protocol in &options.protocols {
            progress.set_message(format!("{protocol}: starting the key-value service"));
            let service = service_level(&binary, *protocol, options, &progress).await?;
            comparison.service.push(service);
        }
    }

    comparison.run.duration_secs = started.elapsed().as_secs_f64();
    progress.finish_with_message(format!("done in {:.0} s", comparison.run.duration_secs));
    Ok(comparison)
}

/// Service level: `serve` processes of `binary`, a separate `load`
/// process per client count, then leader failures by `kill -9` and by
/// `SIGSTOP` (see [`service_failover`]).
pub async fn service_level(
    binary: &Path,
    protocol: Protocol,
    options: &CompareOptions,
    progress: &ProgressBar,
) -> Result<ServiceResults, String> {
    use consensus_kv::client::{ClientOptions, KvClient};
    use consensus_kv::demo::{prepare, LocalCluster};

    let settings = &options.settings;
    let parent = settings.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&parent).map_err(|e| e.to_string())?;
    let config_path = prepare(
        dir.path(),
        "bench",
        protocol.name(),
        settings.nodes as u64,
        Some(&settings.tuning),
    )?;
    let mut cluster = LocalCluster::new(binary, &config_path)?;
    cluster.start_all()?;
    let client = KvClient::from_config(
        &cluster.config,
        ClientOptions {
            operation_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    client
        .put("warm-up", consensus::Bytes::from_static(b"x"))
        .await
        .map_err(|e| format!("{protocol}: the service never became writable: {e}"))?;
    progress.inc(1);
    let mut result = ServiceResults {
        protocol: protocol.to_string(),
        failover_client: service_failover::client_description(
            settings.command_bytes,
            service_failover::attempt_timeout(&settings.tuning),
        ),
        ..ServiceResults::default()
    };
    for &clients in &options.clients {
        progress.set_message(format!(
            "{protocol} service: {clients} client(s), separate load process"
        ));
        let epochs_before = service_epoch_changes(&client, &cluster).await;
        let output = tokio::process::Command::new(binary)
            .arg("load")
            .arg("--config")
            .arg(&config_path)
            .arg("--clients")
            .arg(clients.to_string())
            .arg("--duration-ms")
            .arg(options.measure.as_millis().to_string())
            .arg("--warmup-ms")
            .arg(options.warmup.as_millis().to_string())
            .arg("--value-bytes")
            .arg(settings.command_bytes.to_string())
            .output()
            .await
            .map_err(|e| format!("starting the load generator: {e}"))?;
        let epochs_after = service_epoch_changes(&client, &cluster).await;
        if !output.status.success() {
            return Err(format!(
                "{protocol}: the load generator failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let report: consensus_kv::load::LoadReport = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("{protocol}: load generator output: {e}"))?;
        let leader_changes = protocol
            .has_leader()
            .then(|| most_changes(&epochs_before, &epochs_after));
        result.load.push(LoadPoint {
            clients,
            ops_per_sec: report.ops_per_sec,
            latency: Percentiles {
                count: report.ops,
                p50_us: report.latency.p50_us as f64,
                p90_us: report.latency.p90_us as f64,
                p99_us: report.latency.p99_us as f64,
                p999_us: report.latency.p999_us as f64,
                max_us: report.latency.max_us as f64,
            },
            errors: report.errors.values().sum(),
            load_cpu_cores: Some(report.load_cpu_cores),
            leader_changes,
        });
        progress.inc(1);
    }
    client.close().await;
    let pause_samples = options.service_pause_samples();
    for (fault, samples) in [
        (Fault::Kill, options.failovers),
        (Fault::Pause, pause_samples),
    ] {
        let note = if fault == Fault::Pause && pause_samples < options.failovers {
            format!(" (--quick: {pause_samples} SIGSTOP samples)")
        } else {
            String::new()
        };
        let measured = service_failover::measure(
            &mut cluster,
            protocol,
            fault,
            samples,
            settings.command_bytes,
            service_failover::attempt_timeout(&settings.tuning),
            |index, done| match done {
                None => progress.set_message(format!(
                    "{protocol} service: {fault} of the leader, sample {}/{samples}{note}",
                    index + 1
                )),
                Some((ms, victim)) => {
                    progress.set_message(format!(
                        "{protocol} service: {fault} of node {victim}: longest write gap {ms:.0} ms"
                    ));
                    progress.inc(1);
                }
            },
        )
        .await;
        let gaps = match measured {
            Ok(gaps) => gaps,
            Err(error) => {
                let logs = cluster.log_path(1);
                let logs = logs.parent().unwrap_or(&logs).to_path_buf();
                cluster.stop_all(Duration::from_secs(5));
                let kept = dir.keep();
                return Err(format!(
                    "{error}\nThe nodes' logs are kept in {} (cluster data in {}); look there for \
                     why the cluster did not recover, then rerun, e.g. with --protocols {protocol}.",
                    logs.display(),
                    kept.display()
                ));
            }
        };
        match fault {
            Fault::Kill => result.failover_kill = Failover::of(gaps),
            Fault::Pause => result.failover_pause = Failover::of(gaps),
        }
    }
    cluster.stop_all(Duration::from_secs(5));
    Ok(result)
}

/// Each answering node's count of epoch changes (service level).
async fn service_epoch_changes(
    client: &consensus_kv::client::KvClient,
    cluster: &consensus_kv::demo::LocalCluster,
) -> std::collections::BTreeMap<NodeId, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for id in cluster.ids() {
        if let Ok(report) = client.status(id).await {
            counts.insert(id, report.epoch_changes);
        }
    }
    counts
}

/// The most epoch changes any node saw between two readings.
fn most_changes(
    before: &std::collections::BTreeMap<NodeId, u64>,
    after: &std::collections::BTreeMap<NodeId, u64>,
) -> u64 {
    after
        .iter()
        .map(|(id, count)| count.saturating_sub(*before.get(id).unwrap_or(count)))
        .max()
        .unwrap_or(0)
}
