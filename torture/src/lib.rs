//! # consensus-torture: Jepsen-style fault testing of the whole service
//!
//! The simulator proves the protocol cores under virtual time; this crate
//! proves the service as users run it: real `consensus-kv serve`
//! processes, real QUIC with TLS, real disks, real `kill -9`, with every
//! client history checked.
//!
//! ```text
//! consensus-torture run --protocol raft --nodes 5 --duration 30s --seed 7 \
//!     --history raft-5.jsonl [--clients 10] [--faults all]
//! ```
//!
//! One run ([`run`]):
//!
//! 1. **Cluster** ([`harness`]): certificates and a configuration on free
//!    loopback ports, with `[testing] fault_injection = true` and a fresh
//!    admin secret, N child processes with one log file each; the run
//!    starts once a first write commits.
//! 2. **Clients** ([`workload`]): at least 10 concurrent Jepsen processes
//!    (one `KvClient` each) doing random reads, writes and compare-and-sets
//!    on a few keys, each bounded by a timeout, recorded as the JSON Lines
//!    history of `shared/HISTORY.md` as they happen.
//! 3. **Nemesis** ([`nemesis`]): a schedule drawn from the seed, one fault
//!    at a time: `kill -9` and restart of a random node or of the leader;
//!    `SIGSTOP` longer than the election timeout, then `SIGCONT`; network
//!    partitions (majority / minority, isolated leader, a bridge node that
//!    sees both halves) installed in every node's QUIC transport through
//!    the authenticated admin command ([`consensus_kv::admin`]); a power loss (`kill -9`
//!    of every node at once). Each fault is undone after its hold.
//! 4. **End**: stop the clients, heal everything (resume, restart, lift
//!    every blocked link), demand three new commits (the cluster commits
//!    again after the heal), read every key linearizably, and wait until
//!    every node has applied the same index with the same state digest.
//! 5. **Checks** ([`checks`]): the history is linearizable (the project's
//!    checker); every acknowledged write is present or was overwritten by a
//!    later one; all nodes applied the same log prefix (state digests
//!    compared at equal applied indexes, sampled every 300 ms during the run
//!    and at the end); no node exited unless the nemesis killed it; every
//!    value read was one the run wrote.
//!
//! The process exits 0 only when every check passed. A failure prints the
//! seed, the planned schedule and what the nemesis actually did (with
//! times), the history path, the cluster directory with each node's log,
//! and the command that reruns it. The seed fixes the schedule and every
//! client's choices; the interleaving is real, so a rerun explores the same
//! faults at the same times, not the same instruction-level timing.
//!
//! The simulator's named failure scenarios run on the same harness too
//! ([`scenario`]: `consensus-torture run --scenario NAME --protocol P`),
//! with a live timeline from the nodes' status and each scenario's
//! expectations checked.
//!
//! The durability tests (power loss, a torn WAL record, a full disk) use
//! the same [`harness::Harness`] and the fault tools of [`disk`]; they live
//! in `torture/tests/torture.rs`.
//!
//! This crate and its binary (`consensus-torture`) are kept out of the
//! production `consensus-kv` binary: they drive `consensus-kv serve`
//! processes from outside (`--kv-bin`, by default the `consensus-kv` next to
//! `consensus-torture`), and only they depend on the simulator's history
//! checker and scenario catalog.
#![deny(missing_docs)]

pub mod checks;
pub mod disk;
pub mod harness;
pub mod nemesis;
pub mod scenario;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::{Protocol, Tuning};
use serde::Serialize;

use checks::CheckOutcome;
use harness::{Harness, HarnessOptions, TortureError};
use nemesis::{describe_events, FaultKind, NemesisEvent, Schedule};
use workload::OpStats;

/// What to run.
#[derive(Clone, Debug)]
pub struct TortureOptions {
    /// The `consensus-kv` executable the nodes run.
    pub binary: PathBuf,
    /// The protocol.
    pub protocol: Protocol,
    /// Cluster size (3 or 5 in the tests).
    pub nodes: u64,
    /// How long faults are injected (the clients run as long).
    pub duration: Duration,
    /// Fixes the nemesis schedule and the clients' choices.
    pub seed: u64,
    /// The history file (JSON Lines).
    pub history: PathBuf,
    /// Concurrent client processes (at least 10 by default).
    pub clients: usize,
    /// Number of keys.
    pub keys: usize,
    /// The enabled fault kinds.
    pub faults: Vec<FaultKind>,
    /// Where the cluster lives (`None`: a new directory in the system's
    /// temporary directory, removed after a passing run).
    pub dir: Option<PathBuf>,
    /// Timeout of one client operation.
    pub op_timeout: Duration,
    /// Bound on each recovery wait at the end.
    pub recovery_timeout: Duration,
    /// Protocol timing (`None`: the defaults).
    pub tuning: Option<Tuning>,
    /// Print nemesis events as they happen.
    pub verbose: bool,
}

impl TortureOptions {
    /// A run with the defaults: 10 clients, 5 keys, every fault kind, 2 s
    /// operations, 60 s recovery bound.
    pub fn new(
        binary: impl Into<PathBuf>,
        protocol: Protocol,
        nodes: u64,
        duration: Duration,
        seed: u64,
        history: impl Into<PathBuf>,
    ) -> TortureOptions {
        TortureOptions {
            binary: binary.into(),
            protocol,
            nodes,
            duration,
            seed,
            history: history.into(),
            clients: 10,
            keys: 5,
            faults: FaultKind::ALL.to_vec(),
            dir: None,
            op_timeout: Duration::from_secs(2),
            recovery_timeout: Duration::from_secs(60),
            tuning: None,
            verbose: false,
        }
    }

    /// The command line that reruns this run.
    pub fn command_line(&self) -> String {
        let faults: Vec<&str> = self.faults.iter().map(|k| k.name()).collect();
        format!(
            "consensus-torture run --protocol {} --nodes {} --duration {}s --seed {} --clients {} \
             --keys {} --faults {} --history {}",
            self.protocol.name(),
            self.nodes,
            self.duration.as_secs_f64(),
            self.seed,
            self.clients,
            self.keys,
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(",")
            },
            self.history.display()
        )
    }
}

/// The result of a run.
#[derive(Clone, Debug, Serialize)]
pub struct TortureReport {
    /// Protocol name.
    pub protocol: String,
    /// Cluster size.
    pub nodes: u64,
    /// The seed.
    pub seed: u64,
    /// Seconds of faults.
    pub duration_s: f64,
    /// Seconds the whole run took (setup, faults, recovery, checks).
    pub elapsed_s: f64,
    /// The planned schedule (times from the start of the faults).
    pub schedule: Schedule,
    /// When the faults started, from the start of the run (the time base of
    /// the history and of `nemesis`).
    pub faults_started_s: f64,
    /// What the nemesis did, with times from the start of the run.
    pub nemesis: Vec<NemesisEvent>,
    /// The fault kinds injected at least once.
    pub kinds_injected: Vec<FaultKind>,
    /// Client operations.
    pub operations: OpStats,
    /// Every check.
    pub checks: Vec<CheckOutcome>,
    /// The history file.
    pub history: PathBuf,
    /// The cluster directory (configuration, data, `logs/node-N.log`).
    pub dir: PathBuf,
    /// The command that reruns it.
    pub command: String,
}

impl TortureReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The full report as text: on failure it carries everything needed to
    /// replay and investigate (seed, schedule, history, logs, command).
    pub fn describe(&self) -> String {
        let mut text = format!(
            "torture: {} on {} nodes, seed {}, {:.1} s of faults ({:.1} s in all)\n",
            self.protocol, self.nodes, self.seed, self.duration_s, self.elapsed_s
        );
        text.push_str(&format!("clients: {}\n", self.operations.describe()));
        let kinds: Vec<&str> = self.kinds_injected.iter().map(|k| k.name()).collect();
        text.push_str(&format!(
            "fault kinds injected: {}\n",
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        ));
        text.push_str("checks:\n");
        for check in &self.checks {
            text.push_str(&format!("  {check}\n"));
        }
        if self.passed() {
            text.push_str(&format!("PASSED; history {}\n", self.history.display()));
            return text;
        }
        text.push_str(&format!(
            "FAILED (seed {})\nnemesis schedule from the seed (t from the start of the faults, \
             which began at t={:.3}s of the run):\n{}",
            self.seed, self.faults_started_s, self.schedule
        ));
        text.push_str(&format!(
            "what the nemesis did (t from the start of the run, the time base of the history's \
             time_ns):\n{}",
            describe_events(&self.nemesis)
        ));
        text.push_str(&format!("history: {}\n", self.history.display()));
        text.push_str(&format!(
            "cluster directory (configuration, data, node logs in logs/): {}\n",
            self.dir.display()
        ));
        text.push_str(&format!("rerun: {}\n", self.command));
        text
    }
}

fn default_dir(options: &TortureOptions) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "consensus-kv-torture-{}-{}n-seed{}-{}-{nanos}",
        options.protocol.name(),
        options.nodes,
        options.seed,
        std::process::id()
    ))
}

/// Runs one torture run (inside a tokio runtime). `Err` when the cluster
/// could not even be set up; otherwise the report says whether every check
/// passed. The cluster directory is removed after a passing run unless
/// `options.dir` named it.
pub async fn run(options: &TortureOptions) -> Result<TortureReport, TortureError> {
    let started = Instant::now();
    let dir = options.dir.clone().unwrap_or_else(|| default_dir(options));
    let tuning = options.tuning.clone().unwrap_or_default();
    let mut harness_options =
        HarnessOptions::new(&options.binary, options.protocol, options.nodes, &dir);
    harness_options.history = options.history.clone();
    harness_options.seed = options.seed;
    harness_options.clients = options.clients;
    harness_options.keys = options.keys;
    harness_options.op_timeout = options.op_timeout;
    harness_options.recovery_timeout = options.recovery_timeout;
    harness_options.tuning = options.tuning.clone();
    harness_options.verbose = options.verbose;
    let harness = Arc::new(Harness::prepare(harness_options).await?);
    if let Err(error) = harness.start().await {
        harness.shutdown();
        return Err(error);
    }
    harness.start_monitor();
    harness.start_workload();

    let schedule = nemesis::plan(
        options.seed,
        &options.faults,
        options.duration,
        tuning.election_timeout_max,
    );
    let faults_started = harness.recorder().elapsed();
    let base = Instant::now();
    let stop = AtomicBool::new(false);
    nemesis::execute(&schedule, &harness, harness.log(), &stop, base).await;
    let rest = (base + options.duration).saturating_duration_since(Instant::now());
    tokio::time::sleep(rest).await;

    let outcome = harness.finish().await;
    harness.shutdown();
    let report = TortureReport {
        protocol: options.protocol.name().to_string(),
        nodes: options.nodes,
        seed: options.seed,
        duration_s: options.duration.as_secs_f64(),
        elapsed_s: started.elapsed().as_secs_f64(),
        schedule,
        faults_started_s: faults_started.as_secs_f64(),
        nemesis: harness.log().events(),
        kinds_injected: harness.log().executed().into_iter().collect(),
        operations: harness.recorder().stats(),
        checks: outcome.checks,
        history: options.history.clone(),
        dir: dir.clone(),
        command: options.command_line(),
    };
    if report.passed() && options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(report)
}
