//! Randomized runs: [`run`] drives a [`Cluster`] with concurrent clients and
//! a nemesis, all derived from one seed, and checks safety after every
//! event, liveness after the faults stop, and the client history at the end.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use consensus_api::{Core, CoreConfig};

use crate::cluster::{Cluster, ClusterStats, Stepped};
use crate::failure::SimFailure;
use crate::history::{Event, HistoryWriter};
use crate::nemesis::{Fault, FaultMode, Nemesis};
use crate::network::NetworkConfig;
use crate::workload::{Workload, WorkloadSummary};

/// Parameters of one randomized run. Everything not given here is drawn
/// from `seed`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Cluster size (node ids `1..=nodes`).
    pub nodes: usize,
    /// The seed: the same seed replays the same run.
    pub seed: u64,
    /// Client operations to invoke (reads, writes, cas), in total.
    pub ops: usize,
    /// Concurrent client processes.
    pub clients: usize,
    /// Which faults the nemesis injects.
    pub faults: FaultMode,
    /// Where to write the JSONL client history (`shared/HISTORY.md`).
    pub history: Option<PathBuf>,
    /// Number of distinct keys (registers) the clients use.
    pub keys: usize,
    /// An operation without an answer after this many ticks ends `info`
    /// (writes, cas) or `fail` (reads, which have no effect).
    pub op_timeout_ticks: u64,
    /// A client abandons one attempt (and retries elsewhere with the same
    /// session sequence number) after this many ticks.
    pub attempt_timeout_ticks: u64,
    /// After the faults stop, a new write must commit within this many
    /// ticks (liveness after heal).
    pub liveness_ticks: u64,
    /// Hard bound on the whole run, in ticks.
    pub max_ticks: u64,
    /// Network behaviour outside fault bursts (default: healthy under
    /// `FaultMode::None`, lightly lossy otherwise).
    pub network: Option<NetworkConfig>,
    /// Adjusts every node's [`CoreConfig`].
    pub configure: Option<fn(&mut CoreConfig)>,
    /// Check linearizability of the history at the end (default true).
    pub check_linearizability: bool,
    /// Take snapshots of random nodes from time to time (default true).
    pub compaction: bool,
    /// Protocol name printed in the reproducing command line (default:
    /// `C::PROTOCOL`).
    pub protocol_name: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 5,
            seed: 0,
            ops: 2000,
            clients: 8,
            faults: FaultMode::None,
            history: None,
            keys: 4,
            op_timeout_ticks: 300,
            attempt_timeout_ticks: 60,
            liveness_ticks: 3000,
            max_ticks: 1_000_000,
            network: None,
            configure: None,
            check_linearizability: true,
            compaction: true,
            protocol_name: None,
        }
    }
}

impl SimConfig {
    /// The command line that reproduces this run.
    pub fn command_line(&self, protocol: &str) -> String {
        let mut line = format!(
            "cargo run --profile sim -p consensus-sim-cli -- run --protocol {protocol} --nodes {} --seed {} --ops {} --clients {} --faults {}",
            self.nodes, self.seed, self.ops, self.clients, self.faults
        );
        if let Some(path) = &self.history {
            line.push_str(&format!(" --history {}", path.display()));
        }
        line
    }
}

/// What a successful run did.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The protocol (`C::PROTOCOL`).
    pub protocol: String,
    /// Events processed.
    pub steps: u64,
    /// Virtual time at the end, in ticks.
    pub ticks: u64,
    /// Client operation counts.
    pub workload: WorkloadSummary,
    /// Cluster counters.
    pub stats: ClusterStats,
    /// Faults injected, with the tick each started at.
    pub faults: Vec<(u64, Fault)>,
    /// Ticks the post-heal write took to commit.
    pub liveness_ticks: u64,
    /// History events recorded.
    pub history_events: usize,
    /// Wall-clock time of the run (not part of the deterministic result).
    pub wall: std::time::Duration,
}

impl SimReport {
    /// The distinct kinds of fault injected ([`Fault::kind`]), sorted.
    pub fn fault_kinds(&self) -> std::collections::BTreeSet<&'static str> {
        self.faults.iter().map(|(_, fault)| fault.kind()).collect()
    }
}

/// Runs the healed cluster until every node has applied at least the
/// highest index any node applied when it was called, for at most
/// `max_ticks` ticks.
fn catch_up<C: Core>(cluster: &mut Cluster<C>, max_ticks: u64) -> Result<(), String> {
    let ids = cluster.node_ids();
    let target = ids
        .iter()
        .map(|&id| cluster.applied_index(id))
        .max()
        .unwrap_or(0);
    let started = cluster.now_ticks();
    let deadline = cluster
        .now_ns()
        .saturating_add(max_ticks.saturating_mul(cluster.tick_duration_ns()));
    loop {
        let behind: Vec<(u64, u64)> = ids
            .iter()
            .map(|&id| (id, cluster.applied_index(id)))
            .filter(|&(_, applied)| applied < target)
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if cluster.failure().is_some() {
            return Ok(());
        }
        set_position(cluster.steps(), cluster.now_ticks());
        // Timers of the finished workload are stale: ignore them.
        if cluster.step_event(deadline) == Stepped::Idle {
            return Err(format!(
                "after the heal (tick {started}) and a committed write, node(s) {} had not applied index {target} within {max_ticks} ticks (node, applied): {behind:?}",
                behind
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}

thread_local! {
    /// (step, tick) of the run in progress on this thread, for reporting
    /// where a panic happened.
    static POSITION: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

fn set_position(step: u64, tick: u64) {
    POSITION.with(|position| position.set((step, tick)));
}

/// Runs `run` (one seed of a randomized run) and turns a panic inside it
/// (a core's `assert!`, an overflow under the `sim` profile, a bug in the
/// simulator) into a [`SimFailure`] with check `panic`, the seed, the panic
/// message and the command line that reproduces it. The panic hook still
/// prints the location first.
pub fn catch_panic(
    config: &SimConfig,
    protocol: &str,
    run: impl FnOnce(&SimConfig) -> Result<SimReport, SimFailure>,
) -> Result<SimReport, SimFailure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(config))) {
        Ok(result) => result,
        Err(payload) => {
            let (step, tick) = POSITION.with(|position| position.get());
            let message = if let Some(text) = payload.downcast_ref::<&str>() {
                (*text).to_owned()
            } else if let Some(text) = payload.downcast_ref::<String>() {
                text.clone()
            } else {
                "a panic with a non-text payload".to_owned()
            };
            Err(SimFailure {
                seed: config.seed,
                step,
                tick,
                time_ns: tick.saturating_mul(crate::cluster::DEFAULT_TICK_NS),
                check: "panic".to_owned(),
                message: format!("the run panicked: {message}"),
                reproduce: config.command_line(config.protocol_name.as_deref().unwrap_or(protocol)),
            })
        }
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} ({}): ok — {} steps, {} ticks, ops ok/fail/info {}/{}/{}, {} faults, {} crashes, {} messages, post-heal commit in {} ticks, {:.1} ms",
            self.seed,
            self.protocol,
            self.steps,
            self.ticks,
            self.workload.ok,
            self.workload.fail,
            self.workload.info,
            self.faults.len(),
            self.stats.crashes,
            self.stats.messages_sent,
            self.liveness_ticks,
            self.wall.as_secs_f64() * 1e3
        )
    }
}

/// Runs one randomized simulation of the core `C`.
pub fn run<C: Core>(config: &SimConfig) -> Result<SimReport, SimFailure> {
    run_with::<C>(config, |_| {})
}

/// Like [`run`], with a hook that may add protocol-specific invariants
/// (`cluster.add_invariant(..)`) before the run starts.
pub fn run_with<C: Core>(
    config: &SimConfig,
    setup: impl FnOnce(&mut Cluster<C>),
) -> Result<SimReport, SimFailure> {
    let started = Instant::now();
    let protocol = config
        .protocol_name
        .clone()
        .unwrap_or_else(|| C::PROTOCOL.to_owned());
    let reproduce = config.command_line(&protocol);
    let configure = config.configure;
    let mut cluster = Cluster::<C>::with_config(config.nodes.max(1), config.seed, |core_config| {
        if let Some(configure) = configure {
            configure(core_config);
        }
    });
    cluster.set_panic_on_violation(false);
    cluster.set_reproduce(reproduce.clone());
    cluster.set_record_completions(true);
    let base_network = config.network.clone().unwrap_or_else(|| {
        if config.faults == FaultMode::None {
            NetworkConfig::default()
        } else {
            NetworkConfig {
                drop_rate: 0.01,
                duplicate_rate: 0.005,
                delay_ticks_min: 0.05,
                delay_ticks_max: 0.8,
                long_delay_rate: 0.005,
                long_delay_ticks: 5.0,
            }
        }
    });
    cluster.set_network(base_network.clone());
    setup(&mut cluster);

    let fail = |cluster: &Cluster<C>, check: &str, message: String| SimFailure {
        seed: config.seed,
        step: cluster.steps(),
        tick: cluster.now_ticks(),
        time_ns: cluster.now_ns(),
        check: check.to_owned(),
        message,
        reproduce: reproduce.clone(),
    };

    let writer = match &config.history {
        Some(path) => Some(HistoryWriter::create(path).map_err(|e| {
            fail(
                &cluster,
                "history-file",
                format!("cannot create {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let mut nemesis = Nemesis::new(config.faults, base_network);
    let mut workload = Workload::new(config, writer);
    workload.start(&mut cluster, &mut nemesis);

    let limit_ns = config.max_ticks.saturating_mul(cluster.tick_duration_ns());
    set_position(0, 0);
    loop {
        set_position(cluster.steps(), cluster.now_ticks());
        let stepped = cluster.step_event(limit_ns);
        if let Some(failure) = cluster.failure() {
            return Err(failure.clone());
        }
        match stepped {
            Stepped::Timer(token) => workload.on_timer(&mut cluster, &mut nemesis, token),
            Stepped::Internal => {}
            Stepped::Idle => {
                return Err(fail(
                    &cluster,
                    "run-bound",
                    format!(
                        "the run did not finish within {} ticks ({})",
                        config.max_ticks,
                        workload.progress()
                    ),
                ));
            }
        }
        workload.after_step(&mut cluster);
        if let Some(failure) = cluster.failure() {
            return Err(failure.clone());
        }
        if let Some(error) = workload.take_error() {
            return Err(fail(&cluster, &error.0, error.1));
        }
        if workload.finished() {
            break;
        }
    }

    // Catch-up after heal: every member applies everything applied anywhere
    // (the liveness write needs only a quorum; a node that can never rejoin
    // would pass it). The clients are done, so the history is final; a
    // safety violation found below is reported before a catch-up failure.
    let caught_up = catch_up(&mut cluster, config.liveness_ticks);
    if let Some(failure) = cluster.failure() {
        return Err(failure.clone());
    }

    // End-of-run checks.
    let events: Vec<Event> = workload.history().to_vec();
    if let Err(message) = workload.check_final_state(&cluster) {
        return Err(fail(&cluster, "acknowledged-writes", message));
    }
    if config.check_linearizability {
        if let Err((check, message)) = crate::checks::check_linearizable(&events) {
            return Err(fail(&cluster, check, message));
        }
    }
    if let Err(message) = caught_up {
        return Err(fail(&cluster, "catch-up-after-heal", message));
    }
    Ok(SimReport {
        seed: config.seed,
        protocol,
        steps: cluster.steps(),
        ticks: cluster.now_ticks(),
        workload: workload.summary(),
        stats: cluster.stats().clone(),
        faults: nemesis.injected,
        liveness_ticks: workload.liveness_ticks(),
        history_events: events.len(),
        wall: started.elapsed(),
    })
}

/// The fault kinds injected over a slice of randomized runs, so a test
/// that claims to exercise a [`FaultMode`] can show that it did
/// ([`FaultTally::assert_covers`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultTally {
    /// Runs added.
    pub runs: u64,
    /// Faults injected, by kind ([`Fault::kind`]).
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
}

impl FaultTally {
    /// Counts the faults of one run.
    pub fn add(&mut self, report: &SimReport) {
        self.runs += 1;
        for (_, fault) in &report.faults {
            *self.by_kind.entry(fault.kind()).or_default() += 1;
        }
    }

    /// The kinds `mode` can inject that were never injected.
    pub fn missing(&self, mode: FaultMode) -> Vec<&'static str> {
        mode.fault_kinds()
            .into_iter()
            .filter(|kind| !self.by_kind.contains_key(kind))
            .collect()
    }

    /// Panics unless every kind of fault `mode` can inject was injected at
    /// least once (and, for `FaultMode::None`, none was).
    pub fn assert_covers(&self, mode: FaultMode) {
        let missing = self.missing(mode);
        assert!(
            missing.is_empty(),
            "over {} run(s) under --faults {mode}, these fault kinds were never injected: {missing:?} (injected: {:?}); add seeds or operations",
            self.runs,
            self.by_kind
        );
        if mode == FaultMode::None {
            assert!(
                self.by_kind.is_empty(),
                "faults injected under --faults none: {:?}",
                self.by_kind
            );
        }
    }
}
