//! `consensus-torture`: Jepsen-style fault testing of real `consensus-kv
//! serve` processes (the random nemesis, the named scenarios) and the
//! history checker. Kept out of the production `consensus-kv` binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use consensus_kv::cli;
use consensus_torture::nemesis::FaultKind;
use consensus_torture::{self as torture, TortureOptions};

#[derive(Parser)]
#[command(
    name = "consensus-torture",
    version,
    about = "Fault testing of consensus-kv: real processes, a seeded nemesis, every history checked"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Jepsen-style fault test: a local cluster of real processes, recorded
    /// clients, a seeded nemesis (kill -9, SIGSTOP, partitions, power loss),
    /// then every check. Exits 0 only when every check passed. With
    /// --scenario NAME, one of the simulator's named failure scenarios on a
    /// fixed schedule instead, with a live timeline of the nodes' status.
    Run(Box<RunArgs>),
    /// Check a saved client history: linearizability, and lost writes
    /// against the final reads it ends with.
    CheckHistory {
        /// The history file (JSON Lines).
        history: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The `consensus-kv` executable the nodes run (default: the one next
    /// to this executable, e.g. target/release/consensus-kv).
    #[arg(long)]
    kv_bin: Option<PathBuf>,
    /// raft, multipaxos, paxos or zab.
    #[arg(long, required_unless_present = "scenario")]
    protocol: Option<String>,
    /// Number of nodes (default 3; 5 with --scenario).
    #[arg(long)]
    nodes: Option<u64>,
    /// Run this named failure scenario (`list` prints them): the same
    /// names as `consensus-sim scenario`. Exits 1 when one of its
    /// expectations or of the harness's checks fails, 2 on a usage error.
    #[arg(
        long,
        conflicts_with_all = ["duration", "clients", "keys", "faults", "op_timeout", "verbose", "json"]
    )]
    scenario: Option<String>,
    /// With --scenario: how long the fault is held (default: the
    /// scenario's, e.g. 4s for partition-3-2, 3s for gc-pause).
    #[arg(long, requires = "scenario", value_parser = cli::parse_duration)]
    hold: Option<Duration>,
    /// How long faults are injected, e.g. 30s, 10m.
    #[arg(long, default_value = "30s", value_parser = cli::parse_duration)]
    duration: Duration,
    /// Seed of the nemesis schedule and the clients' choices (default:
    /// drawn at random and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The client history (JSON Lines).
    #[arg(long, default_value = "torture-history.jsonl")]
    history: PathBuf,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Number of keys.
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Fault kinds: all, none, kill, pause, partition, power, or single
    /// kinds (kill-random, kill-leader, pause-random, pause-leader,
    /// partition-halves, isolate-leader, bridge, power-loss), comma-separated.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Keep the cluster (configuration, data, logs) here instead of a
    /// temporary directory removed after a passing run.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timeout of one client operation.
    #[arg(long, default_value = "2s", value_parser = cli::parse_duration)]
    op_timeout: Duration,
    /// Bound on each recovery wait at the end.
    #[arg(long, default_value = "60s", value_parser = cli::parse_duration)]
    recovery_timeout: Duration,
    /// Print the nemesis's actions as they happen.
    #[arg(long, short)]
    verbose: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit code 2 of `run --scenario`: a usage error (unknown scenario,
/// one that does not run on real processes, no protocol).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing();
    let runtime = match cli::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Commands::Run(args) if args.scenario.is_some() => cmd_scenario(*args).await,
        Commands::Run(args) => cmd_run(*args).await,
        Commands::CheckHistory { history } => cmd_check_history(&history),
    }
}

/// The `consensus-kv` executable: `--kv-bin`, or the one next to this
/// executable (both are built into the same target directory).
fn kv_binary(kv_bin: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = kv_bin {
        return Ok(path);
    }
    let this = std::env::current_exe().context("locating this binary")?;
    let sibling = this.with_file_name(format!("consensus-kv{}", std::env::consts::EXE_SUFFIX));
    if !sibling.is_file() {
        bail!(
            "no consensus-kv next to this binary ({}): build it \
             (`cargo build --release -p consensus-kv`) or pass --kv-bin PATH",
            sibling.display()
        );
    }
    Ok(sibling)
}

/// `run` without `--scenario`: the random nemesis.
async fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let protocol: consensus::Protocol = args.protocol.context("--protocol is required")?.parse()?;
    let nodes = args.nodes.unwrap_or(3);
    let seed = args.seed.unwrap_or_else(rand::random);
    let faults = FaultKind::parse_list(&args.faults).map_err(anyhow::Error::msg)?;
    let binary = kv_binary(args.kv_bin)?;
    let mut options =
        TortureOptions::new(binary, protocol, nodes, args.duration, seed, args.history);
    options.clients = args.clients;
    options.keys = args.keys;
    options.faults = faults;
    options.dir = args.dir;
    options.op_timeout = args.op_timeout;
    options.recovery_timeout = args.recovery_timeout;
    options.verbose = args.verbose;
    eprintln!(
        "torture: {protocol} on {nodes} nodes, seed {seed}, {:.1} s of faults, history {}",
        args.duration.as_secs_f64(),
        options.history.display()
    );
    match torture::run(&options).await {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.describe());
            }
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Err(error) => {
            eprintln!("torture run could not be carried out (seed {seed}): {error}");
            eprintln!("history: {}", options.history.display());
            eprintln!("rerun: {}", options.command_line());
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `run --scenario NAME`: one named scenario on real processes, printing
/// its timeline as it happens and then the summary; exit 1 when an
/// expectation failed, 2 on a usage error.
async fn cmd_scenario(args: RunArgs) -> Result<ExitCode> {
    use consensus_torture::scenario::{self, RealScenario, ScenarioOptions};
    let name = args.scenario.unwrap_or_default();
    if name == "list" {
        print!("{}", scenario::list());
        return Ok(ExitCode::SUCCESS);
    }
    let chosen: RealScenario = match name.parse() {
        Ok(chosen) => chosen,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let Some(protocol) = args.protocol else {
        eprintln!("error: --scenario {name} needs --protocol raft|multipaxos|paxos|zab");
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let nodes = args.nodes.unwrap_or(5);
    if nodes < 3 {
        eprintln!("error: --nodes must be at least 3 for a scenario");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let protocol: consensus::Protocol = protocol.parse()?;
    let binary = kv_binary(args.kv_bin)?;
    let mut options = ScenarioOptions::new(binary, chosen, protocol, nodes, args.history);
    options.seed = args.seed.unwrap_or(1);
    options.dir = args.dir;
    options.recovery_timeout = args.recovery_timeout;
    options.live = true;
    if let Some(hold) = args.hold {
        options.timing.hold = hold;
    }
    match scenario::run(&options).await {
        Ok(report) => {
            print!("{}", report.summary());
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(error) => {
            eprintln!("the scenario could not be carried out: {error}");
            eprintln!("rerun: {}", options.command_line());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `check-history FILE`: linearizability and lost writes of a saved history.
fn cmd_check_history(history: &Path) -> Result<ExitCode> {
    let events = consensus_sim::history::read_history(history)
        .with_context(|| format!("reading {}", history.display()))?;
    let finals = torture::checks::final_reads(&events);
    let checks = [
        torture::checks::linearizability(
            &events,
            &consensus_sim::linearizability::CheckOptions::default(),
        ),
        torture::checks::lost_writes(&events, &finals),
    ];
    for check in &checks {
        println!("{check}");
    }
    if checks.iter().any(|c| !c.passed) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
