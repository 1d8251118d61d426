//! The harness: one cluster of real `consensus-kv serve` processes, the
//! recorded clients, the fault operations the nemesis (and the durability
//! tests) use, a monitor that samples every node's state digest, and the
//! final phase that heals, recovers, reads every key and checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use consensus::{NodeId, Protocol, Role, Tuning};
use consensus_sim::history::{read_history, Event};
use consensus_sim::linearizability::CheckOptions;
use thiserror::Error;

use super::checks::{self, CheckOutcome, DigestSample};
use super::nemesis::NemesisLog;
use super::workload::{
    client_options, spawn_workers, Outcome, RecordedClient, Recorder, WorkloadOptions,
};
use consensus_kv::admin::{write_token, AdminClient, AdminError};
use consensus_kv::client::{ClientOptions, KvClient};
use consensus_kv::config::ClusterConfig;
use consensus_kv::demo::{prepare, LocalCluster};
use consensus_kv::wire::{Link, NodeReport};

/// The key the harness writes to prove the cluster commits (at start and
/// after the heal). It is part of the history like any other key.
pub const LIVENESS_KEY: &str = "liveness";

/// Why a run could not be carried out (as opposed to a check failing).
#[derive(Debug, Error)]
pub enum TortureError {
    /// The cluster could not be prepared or started.
    #[error("setting up the cluster in {dir}: {message}")]
    Setup {
        /// The cluster directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
    /// The cluster never committed a first write.
    #[error("the cluster did not commit a first write within {timeout:?}: {detail}")]
    NotReady {
        /// How long it was given.
        timeout: Duration,
        /// The last error and the nodes' log tails.
        detail: String,
    },
}

/// How to set up a harness.
#[derive(Clone, Debug)]
pub struct HarnessOptions {
    /// The `consensus-kv` executable the nodes run.
    pub binary: PathBuf,
    /// The protocol.
    pub protocol: Protocol,
    /// Cluster size.
    pub nodes: u64,
    /// Where certificates, configuration, data and logs go.
    pub dir: PathBuf,
    /// The history file.
    pub history: PathBuf,
    /// Seeds the clients' choices.
    pub seed: u64,
    /// Concurrent client processes.
    pub clients: usize,
    /// Number of keys (registers).
    pub keys: usize,
    /// Timeout of one client operation.
    pub op_timeout: Duration,
    /// Bound on each recovery wait (first write, heal, convergence).
    pub recovery_timeout: Duration,
    /// Protocol timing (`None`: the defaults).
    pub tuning: Option<Tuning>,
    /// Enable the admin fault-injection commands in the configuration.
    pub fault_injection: bool,
    /// Print nemesis events as they happen.
    pub verbose: bool,
}

impl HarnessOptions {
    /// Options with the defaults of a torture run: 10 clients, 5 keys,
    /// 2 s operations, 60 s recovery bound, fault injection on.
    pub fn new(binary: impl Into<PathBuf>, protocol: Protocol, nodes: u64, dir: &Path) -> Self {
        HarnessOptions {
            binary: binary.into(),
            protocol,
            nodes,
            dir: dir.to_path_buf(),
            history: dir.join("history.jsonl"),
            seed: 1,
            clients: 10,
            keys: 5,
            op_timeout: Duration::from_secs(2),
            recovery_timeout: Duration::from_secs(60),
            tuning: None,
            fault_injection: true,
            verbose: false,
        }
    }

    /// The workload keys.
    pub fn key_names(&self) -> Vec<String> {
        (0..self.keys.max(1)).map(|i| format!("k{i}")).collect()
    }
}

/// What the final phase found.
#[derive(Debug)]
pub struct FinalOutcome {
    /// Every check, in order.
    pub checks: Vec<CheckOutcome>,
    /// The value of each key read at the end (`None`: absent or unread).
    pub finals: BTreeMap<String, Option<i64>>,
    /// The history as read back from its file.
    pub events: Vec<Event>,
}

/// A running test cluster with recorded clients.
pub struct Harness {
    options: HarnessOptions,
    config: ClusterConfig,
    cluster: Mutex<LocalCluster>,
    admin: Option<AdminClient>,
    status: KvClient,
    recorder: Arc<Recorder>,
    log: Arc<NemesisLog>,
    down: Mutex<BTreeSet<NodeId>>,
    paused: Mutex<BTreeSet<NodeId>>,
    digests: Mutex<Vec<DigestSample>>,
    last_sample: Mutex<BTreeMap<NodeId, DigestSample>>,
    max_commit: Mutex<(u64, NodeId, Duration)>,
    exits: Mutex<Vec<String>>,
    workload_stop: Arc<AtomicBool>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    monitor_stop: Arc<AtomicBool>,
    monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Harness {
    /// Writes certificates, the configuration (with fault injection and a
    /// fresh admin secret when asked) and creates the history file. Nothing
    /// is started. Call inside a tokio runtime.
    pub async fn prepare(options: HarnessOptions) -> Result<Harness, TortureError> {
        let setup = |message: String| TortureError::Setup {
            dir: options.dir.clone(),
            message,
        };
        let config_path = prepare(
            &options.dir,
            "torture",
            options.protocol.name(),
            options.nodes,
            options.tuning.as_ref(),
        )
        .map_err(setup)?;
        if options.fault_injection {
            let token = options.dir.join("admin-token");
            write_token(&token).map_err(|e| setup(format!("writing {}: {e}", token.display())))?;
            let mut text =
                std::fs::read_to_string(&config_path).map_err(|e| setup(e.to_string()))?;
            text.push_str(&ClusterConfig::render_testing("admin-token"));
            std::fs::write(&config_path, text).map_err(|e| setup(e.to_string()))?;
        }
        let cluster = LocalCluster::new(&options.binary, &config_path).map_err(setup)?;
        let config = cluster.config.clone();
        let admin = if options.fault_injection {
            Some(AdminClient::from_config(&config).map_err(|e| setup(e.to_string()))?)
        } else {
            None
        };
        let status_options = ClientOptions {
            attempt_timeout: Duration::from_millis(800),
            operation_timeout: Duration::from_millis(800),
            ..ClientOptions::default()
        };
        let status =
            KvClient::from_config(&config, status_options).map_err(|e| setup(e.to_string()))?;
        let start = Instant::now();
        let recorder =
            Recorder::create(&options.history, start).map_err(|e| setup(e.to_string()))?;
        let log = Arc::new(NemesisLog::new(start, options.verbose));
        Ok(Harness {
            config,
            cluster: Mutex::new(cluster),
            admin,
            status,
            recorder,
            log,
            down: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            digests: Mutex::new(Vec::new()),
            last_sample: Mutex::new(BTreeMap::new()),
            max_commit: Mutex::new((0, 0, Duration::ZERO)),
            exits: Mutex::new(Vec::new()),
            workload_stop: Arc::new(AtomicBool::new(false)),
            workers: Mutex::new(Vec::new()),
            monitor_stop: Arc::new(AtomicBool::new(false)),
            monitor: Mutex::new(None),
            options,
        })
    }

    /// The options.
    pub fn options(&self) -> &HarnessOptions {
        &self.options
    }

    /// The cluster configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The history recorder.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// The nemesis log (faults and recoveries, with times).
    pub fn log(&self) -> &Arc<NemesisLog> {
        &self.log
    }

    /// The admin client (fault injection on only).
    pub fn admin(&self) -> Option<&AdminClient> {
        self.admin.as_ref()
    }

    /// The child processes (do not hold the guard across an `.await`).
    pub fn cluster(&self) -> MutexGuard<'_, LocalCluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    /// The log file of node `id`.
    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.cluster().log_path(id)
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: NodeId, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_tails(&self, lines: usize) -> String {
        self.ids()
            .into_iter()
            .map(|id| {
                format!(
                    "--- node {id} ({}):\n{}",
                    self.log_path(id).display(),
                    self.log_tail(id, lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A recorded client (a new process).
    pub fn client(&self) -> Result<RecordedClient, TortureError> {
        RecordedClient::new(
            self.recorder.clone(),
            &self.config,
            client_options(self.options.op_timeout),
        )
        .map_err(|e| TortureError::Setup {
            dir: self.options.dir.clone(),
            message: e.to_string(),
        })
    }

    /// Starts every node and waits until a recorded write commits.
    pub async fn start(&self) -> Result<(), TortureError> {
        self.start_all().map_err(|message| TortureError::Setup {
            dir: self.options.dir.clone(),
            message,
        })?;
        let timeout = self.options.recovery_timeout;
        match self.commit_liveness(1, timeout).await {
            Ok(_) => Ok(()),
            Err(detail) => Err(TortureError::NotReady {
                timeout,
                detail: format!("{detail}\n{}", self.log_tails(15)),
            }),
        }
    }

    /// Writes the liveness key until `count` writes succeeded; returns how
    /// long it took, or the last problem after `timeout`.
    pub async fn commit_liveness(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let mut client = self.client().map_err(|e| e.to_string())?;
        let mut done = 0;
        let mut last = String::from("no attempt");
        while done < count {
            if started.elapsed() > timeout {
                client.close().await;
                return Err(format!(
                    "{done} of {count} writes committed within {timeout:?}; the last problem: {last}"
                ));
            }
            match client.write(LIVENESS_KEY, self.recorder.new_value()).await {
                Outcome::Ok(()) => done += 1,
                Outcome::Fail(reason) | Outcome::Info(reason) => {
                    last = reason;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        client.close().await;
        Ok(started.elapsed())
    }

    /// Starts the client processes.
    pub fn start_workload(&self) {
        let options = WorkloadOptions {
            clients: self.options.clients,
            keys: self.options.key_names(),
            mix: (2, 2, 1),
            seed: self.options.seed,
            client: client_options(self.options.op_timeout),
        };
        let workers = spawn_workers(
            self.recorder.clone(),
            &self.config,
            &options,
            self.workload_stop.clone(),
        );
        self.workers.lock().expect("workers").extend(workers);
    }

    /// Stops the client processes (each finishes its operation, which is
    /// bounded by the operation timeout).
    pub async fn stop_workload(&self) {
        self.workload_stop.store(true, Ordering::Relaxed);
        let workers: Vec<_> = std::mem::take(&mut *self.workers.lock().expect("workers"));
        let bound = self.options.op_timeout * 2 + Duration::from_secs(5);
        for worker in workers {
            let abort = worker.abort_handle();
            if tokio::time::timeout(bound, worker).await.is_err() {
                abort.abort();
            }
        }
    }

    /// `kill -9` node `id`.
    pub fn kill(&self, id: NodeId) {
        self.down.lock().expect("down").insert(id);
        self.paused.lock().expect("paused").remove(&id);
        let _ = self.cluster().kill(id);
    }

    /// Starts node `id` (again).
    pub fn start_node(&self, id: NodeId) -> Result<(), String> {
        self.cluster().start(id)?;
        self.down.lock().expect("down").remove(&id);
        Ok(())
    }

    /// `kill -9` every node at once.
    pub fn kill_all(&self) {
        self.down.lock().expect("down").extend(self.ids());
        self.paused.lock().expect("paused").clear();
        self.cluster().kill_all();
    }

    /// Starts every node that is not running.
    pub fn start_all(&self) -> Result<(), String> {
        self.cluster().start_all()?;
        self.down.lock().expect("down").clear();
        Ok(())
    }

    /// `SIGSTOP` node `id`.
    pub fn pause(&self, id: NodeId) -> Result<(), String> {
        self.cluster().pause(id)?;
        self.paused.lock().expect("paused").insert(id);
        Ok(())
    }

    /// `SIGCONT` node `id`.
    pub fn resume(&self, id: NodeId) -> Result<(), String> {
        self.paused.lock().expect("paused").remove(&id);
        self.cluster().resume(id)
    }

    /// Whether node `id` was stopped by a fault (`kill -9`) and not started again.
    pub fn is_down(&self, id: NodeId) -> bool {
        self.down.lock().expect("down").contains(&id)
    }

    /// Whether node `id` is paused (`SIGSTOP`).
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.paused.lock().expect("paused").contains(&id)
    }

    /// Installs `links` as the blocked set on every node; returns the nodes
    /// that did not confirm.
    pub async fn partition(&self, links: &BTreeSet<Link>) -> Vec<(NodeId, AdminError)> {
        match &self.admin {
            Some(admin) => admin.set_blocked(&self.ids(), links).await,
            None => self
                .ids()
                .into_iter()
                .map(|id| (id, AdminError::Setup("fault injection is off".into())))
                .collect(),
        }
    }

    /// Lifts every blocked link on every node; returns the nodes that did
    /// not confirm.
    pub async fn heal_network(&self) -> Vec<(NodeId, AdminError)> {
        match &self.admin {
            Some(admin) => admin.heal(&self.ids()).await,
            None => Vec::new(),
        }
    }

    /// Every running node's report (unreachable or paused nodes answer
    /// with an error).
    pub async fn statuses(&self) -> BTreeMap<NodeId, Result<NodeReport, String>> {
        let ids = self.ids();
        let running: Vec<bool> = {
            let mut cluster = self.cluster();
            ids.iter().map(|id| cluster.is_running(*id)).collect()
        };
        let queries = ids.iter().zip(running).map(|(&id, running)| async move {
            if !running {
                return (id, Err("not running".to_string()));
            }
            (id, self.status.status(id).await.map_err(|e| e.to_string()))
        });
        futures::future::join_all(queries)
            .await
            .into_iter()
            .collect()
    }

    /// The node that says it leads in the highest epoch, asked for up to
    /// two seconds (an election may be running).
    pub async fn leader(&self) -> Option<NodeId> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let leader = self
                .statuses()
                .await
                .into_values()
                .filter_map(Result::ok)
                .filter(|r| r.role == Role::Leader)
                .max_by_key(|r| r.epoch)
                .map(|r| r.id);
            if leader.is_some() || Instant::now() > deadline {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts sampling every node's state digest (and noticing nodes that
    /// exit on their own) every 300 ms until [`finish`](Self::finish).
    pub fn start_monitor(self: &Arc<Self>) {
        let harness = self.clone();
        let stop = self.monitor_stop.clone();
        let task = tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                harness.sample().await;
                harness.notice_exits();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        *self.monitor.lock().expect("monitor") = Some(task);
    }

    async fn sample(&self) -> BTreeMap<NodeId, Result<NodeReport, String>> {
        let statuses = self.statuses().await;
        let mut digests = self.digests.lock().expect("digests");
        let mut last = self.last_sample.lock().expect("last sample");
        let mut max_commit = self.max_commit.lock().expect("max commit");
        for report in statuses.values().filter_map(|r| r.as_ref().ok()) {
            if report.commit_index > max_commit.0 {
                *max_commit = (report.commit_index, report.id, self.recorder.elapsed());
            }
            if report.stopped.is_some() || report.state_applied == 0 {
                continue;
            }
            let sample = DigestSample {
                node: report.id,
                applied: report.state_applied,
                crc: report.state_crc,
            };
            if last.get(&report.id) != Some(&sample) {
                last.insert(report.id, sample);
                digests.push(sample);
            }
        }
        drop((digests, last, max_commit));
        statuses
    }

    /// Records (and restarts) nodes that are not running though no fault
    /// stopped them.
    fn notice_exits(&self) {
        let down = self.down.lock().expect("down").clone();
        let exited: Vec<NodeId> = {
            let mut cluster = self.cluster();
            self.ids()
                .into_iter()
                .filter(|id| !down.contains(id) && !cluster.is_running(*id))
                .collect()
        };
        for id in exited {
            let tail = self.log_tail(id, 20);
            self.log
                .note(format!("node {id} EXITED on its own; restarting it"));
            self.exits.lock().expect("exits").push(format!(
                "node {id} exited on its own; its log ends:\n{tail}"
            ));
            let _ = self.start_node(id);
        }
    }

    /// Resumes paused nodes, starts stopped ones and lifts every partition
    /// (retrying until every node confirms or `timeout` passes).
    pub async fn heal_everything(&self, timeout: Duration) -> CheckOutcome {
        let paused: Vec<NodeId> = self
            .paused
            .lock()
            .expect("paused")
            .iter()
            .copied()
            .collect();
        for id in paused {
            let _ = self.resume(id);
        }
        let down: Vec<NodeId> = self.down.lock().expect("down").iter().copied().collect();
        for id in down {
            if let Err(error) = self.start_node(id) {
                return CheckOutcome::fail("healed", format!("restarting node {id}: {error}"));
            }
        }
        if self.admin.is_none() {
            return CheckOutcome::pass("healed", "every node running (no fault injection)");
        }
        let started = Instant::now();
        loop {
            let failures = self.heal_network().await;
            if failures.is_empty() {
                self.log
                    .note("final heal: every node running, every link open");
                return CheckOutcome::pass(
                    "healed",
                    format!(
                        "every node running and confirmed no blocked link after {:.2} s",
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            if started.elapsed() > timeout {
                return CheckOutcome::fail(
                    "healed",
                    format!("nodes did not confirm the heal within {timeout:?}: {failures:?}"),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads `key` linearizably until a read succeeds (`timeout` bound).
    pub async fn final_read(&self, key: &str, timeout: Duration) -> Result<Option<i64>, String> {
        let started = Instant::now();
        let mut client = self.client().map_err(|e| e.to_string())?;
        let mut last = String::new();
        while started.elapsed() < timeout {
            match client.read(key).await {
                Outcome::Ok(value) => {
                    client.close().await;
                    return Ok(value);
                }
                Outcome::Fail(reason) | Outcome::Info(reason) => last = reason,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.close().await;
        Err(format!(
            "no read of {key:?} succeeded within {timeout:?}: {last}"
        ))
    }

    /// Waits until every node runs, none reports a storage stop, all have
    /// applied at least `target`, and all report the same applied index and
    /// the same state digest. Digests at equal indexes that differ fail at
    /// once.
    pub async fn wait_converged(&self, target: u64, timeout: Duration) -> CheckOutcome {
        let started = Instant::now();
        loop {
            let statuses = self.sample().await;
            let reports: Vec<&NodeReport> =
                statuses.values().filter_map(|r| r.as_ref().ok()).collect();
            let samples: Vec<DigestSample> = reports
                .iter()
                .map(|r| DigestSample {
                    node: r.id,
                    applied: r.state_applied,
                    crc: r.state_crc,
                })
                .collect();
            let verdict = checks::replica_digests(&samples);
            if !verdict.passed {
                return CheckOutcome::fail("converged", verdict.detail);
            }
            let all_answer = reports.len() == statuses.len();
            let none_stopped = reports.iter().all(|r| r.stopped.is_none());
            let caught_up = reports.iter().all(|r| r.applied_index >= target);
            let same = reports.windows(2).all(|w| {
                w[0].state_applied == w[1].state_applied && w[0].state_crc == w[1].state_crc
            });
            if all_answer && none_stopped && caught_up && same {
                let first = reports[0];
                return CheckOutcome::pass(
                    "converged",
                    format!(
                        "all {} nodes applied index {} (state digest {:08x}, {} keys) after {:.2} s",
                        reports.len(),
                        first.state_applied,
                        first.state_crc,
                        first.keys,
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            if started.elapsed() > timeout {
                let lines: Vec<String> = statuses
                    .iter()
                    .map(|(id, r)| match r {
                        Ok(r) => format!(
                            "node {id}: {} epoch {} commit {} applied {} state@{} {:08x}{}",
                            r.role,
                            r.epoch,
                            r.commit_index,
                            r.applied_index,
                            r.state_applied,
                            r.state_crc,
                            r.stopped
                                .as_ref()
                                .map(|s| format!(" STOPPED: {s}"))
                                .unwrap_or_default()
                        ),
                        Err(e) => format!("node {id}: {e}"),
                    })
                    .collect();
                return CheckOutcome::fail(
                    "converged",
                    format!(
                        "nodes did not converge on one state at index >= {target} within {timeout:?}: {}",
                        lines.join("; ")
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The final phase: stop the clients, heal everything, demand new
    /// commits, read every key, wait for every node to converge, then check
    /// the history.
    pub async fn finish(&self) -> FinalOutcome {
        let timeout = self.options.recovery_timeout;
        let mut outcomes = Vec::new();
        self.stop_workload().await;
        outcomes.push(self.heal_everything(timeout).await);

        match self.commit_liveness(3, timeout).await {
            Ok(took) => outcomes.push(CheckOutcome::pass(
                "commits-after-heal",
                format!(
                    "3 new writes committed {:.2} s after the heal",
                    took.as_secs_f64()
                ),
            )),
            Err(problem) => outcomes.push(CheckOutcome::fail("commits-after-heal", problem)),
        }

        let mut finals = BTreeMap::new();
        let mut unread = Vec::new();
        let mut keys = self.options.key_names();
        keys.push(LIVENESS_KEY.to_string());
        for key in keys {
            match self.final_read(&key, timeout).await {
                Ok(value) => {
                    finals.insert(key, value);
                }
                Err(problem) => unread.push(problem),
            }
        }
        outcomes.push(if unread.is_empty() {
            CheckOutcome::pass(
                "final-reads",
                format!("read every key linearizably: {finals:?}"),
            )
        } else {
            CheckOutcome::fail("final-reads", unread.join("; "))
        });

        let target = self
            .statuses()
            .await
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.commit_index)
            .max()
            .unwrap_or(0);
        let converged = self.wait_converged(target, timeout).await;
        let converged_ok = converged.passed;
        outcomes.push(converged);
        let (max_commit, by, at) = *self.max_commit.lock().expect("max commit");
        let applied_min = self
            .statuses()
            .await
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.applied_index)
            .min()
            .unwrap_or(0);
        outcomes.push(if !converged_ok {
            CheckOutcome::fail("committed-prefix-kept", "not checked: the nodes did not converge")
        } else if applied_min >= max_commit {
            CheckOutcome::pass(
                "committed-prefix-kept",
                format!(
                    "every node applied index {applied_min} >= the highest commit index reported during the run ({max_commit})"
                ),
            )
        } else {
            CheckOutcome::fail(
                "committed-prefix-kept",
                format!(
                    "committed entries were lost: node {by} reported commit index {max_commit} at t={:.3}s, \
                     but after recovery the nodes applied only up to {applied_min}",
                    at.as_secs_f64()
                ),
            )
        });

        self.monitor_stop.store(true, Ordering::Relaxed);
        let monitor = self.monitor.lock().expect("monitor").take();
        if let Some(monitor) = monitor {
            let _ = monitor.await;
        }
        self.notice_exits();
        let digests = self.digests.lock().expect("digests").clone();
        outcomes.push(checks::same_applied_prefix(&digests));

        let exits = self.exits.lock().expect("exits").clone();
        outcomes.push(if exits.is_empty() {
            CheckOutcome::pass("no-crashes", "no node exited unless the nemesis killed it")
        } else {
            CheckOutcome::fail("no-crashes", exits.join("\n"))
        });

        let anomalies = self.recorder.anomalies();
        outcomes.push(if anomalies.is_empty() {
            CheckOutcome::pass("values", "every value read was one this run wrote")
        } else {
            CheckOutcome::fail("values", anomalies.join("; "))
        });

        let stats = self.recorder.stats();
        outcomes.push(if stats.writes.ok + stats.cas.ok > 0 {
            CheckOutcome::pass("progress", stats.describe())
        } else {
            CheckOutcome::fail(
                "progress",
                format!("no write took effect: {}", stats.describe()),
            )
        });

        let events = match (
            self.recorder.write_error(),
            read_history(self.recorder.path()),
        ) {
            (None, Ok(events)) => {
                outcomes.push(CheckOutcome::pass(
                    "history-file",
                    format!(
                        "{} events in {}",
                        events.len(),
                        self.recorder.path().display()
                    ),
                ));
                events
            }
            (Some(error), _) => {
                outcomes.push(CheckOutcome::fail(
                    "history-file",
                    format!("writing: {error}"),
                ));
                Vec::new()
            }
            (None, Err(error)) => {
                outcomes.push(CheckOutcome::fail("history-file", error.to_string()));
                Vec::new()
            }
        };
        if !events.is_empty() {
            let history = events.clone();
            let (linearizable, lost) = tokio::task::spawn_blocking({
                let finals = finals.clone();
                move || {
                    (
                        checks::linearizability(&history, &CheckOptions::default()),
                        checks::lost_writes(&history, &finals),
                    )
                }
            })
            .await
            .unwrap_or_else(|e| {
                let failed = CheckOutcome::fail("linearizable", format!("checker panicked: {e}"));
                (failed.clone(), failed)
            });
            outcomes.push(linearizable);
            outcomes.push(lost);
        }
        FinalOutcome {
            checks: outcomes,
            finals,
            events,
        }
    }

    /// Stops every node (SIGTERM, then SIGKILL after 5 s).
    pub fn shutdown(&self) {
        let paused: Vec<NodeId> = self
            .paused
            .lock()
            .expect("paused")
            .iter()
            .copied()
            .collect();
        for id in paused {
            let _ = self.resume(id);
        }
        self.down.lock().expect("down").extend(self.ids());
        self.cluster().stop_all(Duration::from_secs(5));
    }
}
