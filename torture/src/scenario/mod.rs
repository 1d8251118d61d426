//! # Named failure scenarios on real processes
//!
//! The simulator's scenarios (`consensus-sim scenario NAME`, see
//! `docs/scenarios.md`) replayed against `consensus-kv serve` processes
//! through the torture harness's real controls, so a user can watch the
//! real system go through them:
//!
//! ```text
//! consensus-torture run --scenario partition-3-2 --protocol raft [--nodes 5] [--seed 1]
//! consensus-torture run --scenario list
//! ```
//!
//! One run ([`run`]):
//!
//! 1. The harness starts N nodes with fault injection on and waits for a
//!    first commit; time 0 is then.
//! 2. Three clients ([`clients`]) write and read through any node from 0 s;
//!    a sampler ([`timeline`]) asks every node for its `status` every
//!    ~150 ms and prints a row: each node's role, epoch and commit index,
//!    and the client operations that ended ok / failed / unknown since the
//!    previous row. Faults, heals and leader changes get lines of their
//!    own.
//! 3. The script ([`scripts`]) injects the scenario's fault at
//!    [`Timing::warm_up`] (1.5 s) with the harness's controls — `kill -9`,
//!    `SIGSTOP`, blocked links installed on every node by the admin
//!    command — with clients of its own confined to each side, holds it for
//!    [`Timing::hold`], undoes it, and observes for [`Timing::observe`].
//! 4. The harness's final phase heals everything, demands new commits,
//!    reads every key and waits for convergence, then checks the history
//!    (linearizable, no acknowledged write lost, the same applied prefix).
//! 5. The scenario's own expectations ([`expect`]) are checked against the
//!    samples and the operations, with the simulator's statements and
//!    bounds in real time.
//!
//! The schedule is fixed; the seed fixes the clients' choices. The
//! interleaving is real, so two runs differ in their details (who wins an
//! election, how many operations fit in a second), not in what must hold.

pub mod clients;
pub mod expect;
pub mod record;
mod report;
mod scripts;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consensus::Protocol;
use consensus_sim_cli::render::text::wrap;
use consensus_sim_cli::scenario::{Expectation, ScenarioName};
use thiserror::Error;

pub use expect::{Bounds, Facts};
pub use record::Record;
pub use report::{harness_expectations, ScenarioReport};

use crate::checks::CheckOutcome;
use crate::harness::{Harness, HarnessOptions, TortureError};
use clients::Clients;
use consensus_kv::client::{ClientOptions, KvClient};
use scripts::Ctx;
use timeline::{spawn_sampler, Timeline};

/// The scenarios that run on real processes (a subset of the simulator's
/// catalog, under the same names).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RealScenario {
    /// `kill -9` the leader, start it again later.
    LeaderCrash,
    /// The leader on the 2-node side of a 3 | 2 partition.
    Partition32,
    /// Every link of the leader cut.
    OldLeaderIsolated,
    /// `SIGSTOP` the leader for a few seconds, then `SIGCONT`.
    GcPause,
    /// Only the link between the leader and one follower cut.
    Chained,
}

/// Why a scenario name cannot run on real processes.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ScenarioError {
    /// Not in the simulator's catalog either.
    #[error("unknown scenario `{0}`: `consensus-torture run --scenario list` shows the names")]
    Unknown(String),
    /// In the catalog, but not on real processes.
    #[error("scenario `{name}` does not run on real processes: {why}")]
    NotOnRealProcesses {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
}

impl RealScenario {
    /// Every scenario, in catalog order.
    pub const ALL: [RealScenario; 5] = [
        RealScenario::LeaderCrash,
        RealScenario::Partition32,
        RealScenario::OldLeaderIsolated,
        RealScenario::GcPause,
        RealScenario::Chained,
    ];

    /// The simulator's entry of the same name.
    pub fn sim(self) -> ScenarioName {
        match self {
            RealScenario::LeaderCrash => ScenarioName::LeaderCrash,
            RealScenario::Partition32 => ScenarioName::Partition32,
            RealScenario::OldLeaderIsolated => ScenarioName::OldLeaderIsolated,
            RealScenario::GcPause => ScenarioName::GcPause,
            RealScenario::Chained => ScenarioName::Chained,
        }
    }

    /// The command-line name (the simulator's).
    pub fn name(self) -> &'static str {
        self.sim().name()
    }

    /// One line: the simulator's title, with the real control named.
    pub fn title(self) -> &'static str {
        match self {
            RealScenario::LeaderCrash => "the leader crashes (kill -9); the others stay connected",
            RealScenario::GcPause => {
                "the leader stops (SIGSTOP) for a few seconds and resumes believing it leads"
            }
            other => other.sim().info().title,
        }
    }

    /// How long the fault is held by default: the simulator's schedule
    /// (`gc-pause`: 3 s of real time instead of 30 s of virtual time).
    pub fn default_hold(self) -> Duration {
        match self {
            RealScenario::LeaderCrash | RealScenario::GcPause => Duration::from_secs(3),
            RealScenario::Partition32 | RealScenario::OldLeaderIsolated => Duration::from_secs(4),
            RealScenario::Chained => Duration::from_secs(5),
        }
    }

    /// What happens, with the run's times.
    pub fn story(self, timing: &Timing) -> String {
        let at = timing.warm_up.as_secs_f64();
        let until = (timing.warm_up + timing.hold).as_secs_f64();
        let elect = timing.bounds.elect.as_secs_f64();
        match self {
            RealScenario::LeaderCrash => format!(
                "Three clients write and read through any node from 0 s. At {at} s the leader is \
                 killed (kill -9); at {until} s its process is started again. The survivors must \
                 elect a new leader and commit within {elect} s; the restarted node must catch up \
                 within {} s; nothing acknowledged may be lost.",
                timing.bounds.catch_up.as_secs_f64()
            ),
            RealScenario::Partition32 => format!(
                "At {at} s the leader and (n-1)/2 - 1 followers are cut off from the others \
                 (blocked links on every node). A client on every node keeps writing on its own \
                 side only. The minority must acknowledge nothing and commit nothing new; \
                 the majority elects a leader and commits within {elect} s. At {until} s the \
                 partition heals and every node converges on the majority's log."
            ),
            RealScenario::OldLeaderIsolated => format!(
                "At {at} s every link of the leader is cut. Two clients keep sending writes to \
                 it alone; two others use the rest, which must elect a new leader and commit \
                 within {elect} s. At {until} s the links come back; the old leader must have \
                 stepped down by then or within {} s.",
                timing.bounds.step_down.as_secs_f64()
            ),
            RealScenario::GcPause => format!(
                "At {at} s the leader's process is stopped (SIGSTOP) for {} s of real time (the \
                 simulator pauses it for 30 s of virtual time; scaled down here, still many \
                 election timeouts). Two clients keep sending it requests and wait longer than the \
                 pause, so their requests wait in its socket; two use the others, which must \
                 elect a leader within {elect} s. At {until} s it resumes (SIGCONT): \
                 whatever it serves must be correct, and it must step down within {} s.",
                timing.hold.as_secs_f64(),
                timing.bounds.step_down.as_secs_f64()
            ),
            RealScenario::Chained => format!(
                "From {at} s to {until} s only the link between the leader and one follower, C, \
                 is cut. The leader still reaches a quorum: commits must continue, and C must \
                 not depose it."
            ),
        }
    }
}

/// Why a name of the simulator's catalog does not run on real processes.
pub fn not_on_real_processes(name: ScenarioName) -> Option<&'static str> {
    match name {
        ScenarioName::SlowFollower => Some(
            "it slows one node's links 50 times; the admin command can only block links, and \
             stopping and continuing the process in a duty cycle would slow its timers and disk \
             too, which is another scenario",
        ),
        ScenarioName::SplitVote => Some(
            "it needs two candidates to start an election at the same instant with the votes \
             delivered by hand; real processes draw their own randomized timeouts and the \
             harness cannot hold or order their messages, so a split could only be forced with \
             a partition, which is not the seed's split vote",
        ),
        ScenarioName::CrashMidReconfig => Some(
            "the key-value service has no membership-change command, and the window between \
             the change's log entry reaching a quorum's disks and its completion cannot be hit \
             from outside the processes",
        ),
        ScenarioName::QuorumLoss | ScenarioName::ConstrainedElection => Some(
            "not implemented yet: its faults are sets of blocked links, which the admin command \
             installs, but its expectations depend on which node each protocol elects",
        ),
        _ => None,
    }
}

impl FromStr for RealScenario {
    type Err = ScenarioError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let sim = ScenarioName::from_str(name).map_err(|_| ScenarioError::Unknown(name.into()))?;
        RealScenario::ALL
            .into_iter()
            .find(|s| s.sim() == sim)
            .ok_or_else(|| ScenarioError::NotOnRealProcesses {
                name: name.into(),
                why: not_on_real_processes(sim).unwrap_or("not implemented"),
            })
    }
}

/// `--scenario list`: every name of the catalog, what runs and why the
/// others do not.
pub fn list() -> String {
    let mut text = String::from(
        "scenarios on real processes (consensus-torture run --scenario NAME --protocol P):\n",
    );
    for scenario in RealScenario::ALL {
        text.push_str(&format!("  {:<22} {}\n", scenario.name(), scenario.title()));
    }
    text.push_str("only in the simulator (consensus-sim scenario NAME):\n");
    for name in ScenarioName::ALL {
        if let Some(why) = not_on_real_processes(name) {
            let mut lines = wrap(why, 52).into_iter();
            let first = lines.next().unwrap_or_default();
            text.push_str(&format!("  {:<22} {first}\n", name.name()));
            for line in lines {
                text.push_str(&format!("  {:<22} {line}\n", ""));
            }
        }
    }
    text
}

/// The fixed schedule and bounds of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Clients run from 0 s; the fault starts here (1.5 s).
    pub warm_up: Duration,
    /// How long the fault is held.
    pub hold: Duration,
    /// How long the run goes on after the fault is undone (2 s).
    pub observe: Duration,
    /// How often the nodes are sampled and a row printed (150 ms).
    pub row_every: Duration,
    /// Timeout of one client operation (1 s, as in the simulator).
    pub op_timeout: Duration,
    /// The expectations' bounds.
    pub bounds: Bounds,
}

impl Timing {
    /// The default schedule of `scenario`.
    pub fn new(scenario: RealScenario) -> Timing {
        Timing {
            warm_up: Duration::from_millis(1500),
            hold: scenario.default_hold(),
            observe: Duration::from_secs(2),
            row_every: Duration::from_millis(150),
            op_timeout: Duration::from_secs(1),
            bounds: Bounds::default(),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// The `consensus-kv` executable the nodes run.
    pub binary: PathBuf,
    /// The scenario.
    pub scenario: RealScenario,
    /// The protocol.
    pub protocol: Protocol,
    /// Cluster size (at least 3).
    pub nodes: u64,
    /// Fixes the clients' choices.
    pub seed: u64,
    /// The schedule.
    pub timing: Timing,
    /// The history file (JSON Lines).
    pub history: PathBuf,
    /// Where the cluster lives (`None`: a temporary directory, removed
    /// after a passing run).
    pub dir: Option<PathBuf>,
    /// Bound on each wait of the harness's final phase.
    pub recovery_timeout: Duration,
    /// Print the timeline to stdout as it happens.
    pub live: bool,
}

impl ScenarioOptions {
    /// A run of `scenario` with its default schedule, quiet.
    pub fn new(
        binary: impl Into<PathBuf>,
        scenario: RealScenario,
        protocol: Protocol,
        nodes: u64,
        history: impl Into<PathBuf>,
    ) -> ScenarioOptions {
        ScenarioOptions {
            binary: binary.into(),
            scenario,
            protocol,
            nodes,
            seed: 1,
            timing: Timing::new(scenario),
            history: history.into(),
            dir: None,
            recovery_timeout: Duration::from_secs(30),
            live: false,
        }
    }

    /// The command that reruns it.
    pub fn command_line(&self) -> String {
        format!(
            "consensus-torture run --scenario {} --protocol {} --nodes {} --seed {} --hold {}s",
            self.scenario.name(),
            self.protocol.name(),
            self.nodes,
            self.seed,
            self.timing.hold.as_secs_f64()
        )
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "consensus-kv-scenario-{}-{}-{}n-{}",
                self.scenario.name(),
                self.protocol.name(),
                self.nodes,
                std::process::id()
            ))
        })
    }
}

/// Starts the cluster (fault injection on, two keys, no workload of the
/// harness's own) and a client for the sampler's `status` queries.
async fn start_cluster(
    options: &ScenarioOptions,
    dir: &Path,
) -> Result<(Arc<Harness>, Arc<KvClient>), TortureError> {
    let mut harness_options =
        HarnessOptions::new(&options.binary, options.protocol, options.nodes.max(3), dir);
    harness_options.history = options.history.clone();
    harness_options.seed = options.seed;
    harness_options.clients = 0;
    harness_options.keys = 2;
    harness_options.op_timeout = options.timing.op_timeout;
    harness_options.recovery_timeout = options.recovery_timeout;
    let harness = Arc::new(Harness::prepare(harness_options).await?);
    if let Err(error) = harness.start().await {
        harness.shutdown();
        return Err(error);
    }
    harness.start_monitor();
    let status_options = ClientOptions {
        attempt_timeout: options.timing.row_every.max(Duration::from_millis(100)),
        ..ClientOptions::default()
    };
    match KvClient::from_config(harness.config(), status_options) {
        Ok(client) => Ok((harness, Arc::new(client))),
        Err(error) => {
            harness.shutdown();
            Err(TortureError::Setup {
                dir: dir.to_path_buf(),
                message: error.to_string(),
            })
        }
    }
}

/// Runs one scenario (inside a tokio runtime). `Err` when the cluster
/// could not be set up; otherwise the report says whether every
/// expectation held. Every process is stopped before it returns.
pub async fn run(options: &ScenarioOptions) -> Result<ScenarioReport, TortureError> {
    let dir = options.cluster_dir();
    let (harness, status) = start_cluster(options, &dir).await?;
    let timeline = Arc::new(Timeline::new(
        options.protocol.name(),
        harness.ids().len(),
        options.live,
    ));
    report::header(&timeline, options, &dir);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_sampler(
        harness.clone(),
        timeline.clone(),
        status.clone(),
        options.timing.row_every,
        stop.clone(),
    );
    let mut ctx = Ctx {
        harness: harness.clone(),
        timeline: timeline.clone(),
        timing: options.timing,
        clients: Clients::none(),
    };
    let facts = scripts::run(options.scenario, &mut ctx).await;
    timeline.clients_stopped();
    ctx.clients.stop().await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    timeline.note(
        "clients stopped; final checks: heal everything, commit again, read every key, wait for \
         the nodes to converge, check the history",
    );
    let outcome = harness.finish().await;
    harness.shutdown();
    status.close().await;
    let report = conclude(options, facts, &timeline, &outcome.checks, dir);
    if report.passed() && options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&report.dir);
    }
    Ok(report)
}

/// The scenario's expectations and the harness's checks, as a report.
fn conclude(
    options: &ScenarioOptions,
    facts: Facts,
    timeline: &Timeline,
    checks: &[CheckOutcome],
    dir: PathBuf,
) -> ScenarioReport {
    let record = timeline.record();
    let linearizable = checks
        .iter()
        .find(|c| c.name == "linearizable")
        .map(|c| c.passed);
    let mut expectations: Vec<Expectation> = expect::evaluate(
        options.scenario,
        &facts,
        &record,
        &options.timing.bounds,
        linearizable,
    );
    expectations.extend(harness_expectations(checks));
    ScenarioReport {
        scenario: options.scenario,
        protocol: options.protocol.name().to_string(),
        nodes: options.nodes.max(3),
        seed: options.seed,
        facts,
        record,
        expectations,
        timeline: timeline.text(),
        history: options.history.clone(),
        dir,
        command: options.command_line(),
    }
}
