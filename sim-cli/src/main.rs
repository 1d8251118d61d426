//! `consensus-sim`: runs the deterministic simulator from the command line.
//!
//! ```text
//! consensus-sim run --protocol raft --nodes 5 --seed 42 --ops 2000 --clients 8 \
//!     --faults all --history out.jsonl
//! consensus-sim run --protocol raft --seeds 1..500 --faults all
//!
//! consensus-sim campaign --protocols raft,multipaxos,zab,paxos \
//!     --faults none,partitions,crashes,clock,all --nodes 3,4,5 --seeds 1..10000 \
//!     --jobs 2 --out campaign.json
//!
//! consensus-sim scenario --list
//! consensus-sim scenario partition-3-2 --protocol all --out DIR
//! ```
//!
//! Exits 0 when every invariant held and every history was linearizable
//! (`scenario`: every expectation held); exits 1 with the failing seed,
//! step, check and the reproducing command line otherwise; exits 2 on a
//! usage error.

mod cli_campaign;
mod cli_scenario;

use std::io::IsTerminal;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use consensus_sim::{FaultMode, SimConfig};
use consensus_sim_cli::protocols;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "consensus-sim",
    version,
    about = "Deterministic simulator for the consensus protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate one seed or a range of seeds.
    Run(RunArgs),
    /// List the protocols this binary can simulate.
    Protocols,
    /// Run seed ranges of several protocols, fault modes and cluster sizes
    /// in parallel, resumably, with a JSON summary per cell.
    Campaign(cli_campaign::CampaignArgs),
    /// Run a named failure scenario on one protocol or all four and print
    /// its timeline (`--list` shows the scenarios).
    Scenario(cli_scenario::ScenarioArgs),
}

#[derive(Args)]
struct RunArgs {
    /// raft | multipaxos | paxos | zab
    #[arg(long)]
    protocol: String,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// The seed of a single run.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A range of seeds, both ends included: `1..500` (or `1..=500`).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<RangeInclusive<u64>>,
    /// Client operations per run.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Concurrent client processes.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// none | partitions | crashes | clock | all | all-but-clock
    #[arg(long, default_value = "none")]
    faults: FaultMode,
    /// Write the client history (JSON Lines, shared/HISTORY.md). With
    /// `--seeds`, each run overwrites it, so after a failure it holds the
    /// failing run's history.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Print one line per seed in a range (instead of a progress bar).
    #[arg(long, short)]
    verbose: bool,
}

pub(crate) fn parse_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let (start, end) = text
        .split_once("..=")
        .or_else(|| text.split_once(".."))
        .ok_or_else(|| format!("`{text}` is not a range like 1..500"))?;
    let start: u64 = start
        .trim()
        .parse()
        .map_err(|e| format!("range start `{start}`: {e}"))?;
    let end: u64 = end
        .trim()
        .parse()
        .map_err(|e| format!("range end `{end}`: {e}"))?;
    if end < start {
        return Err(format!("empty range {start}..{end}"));
    }
    Ok(start..=end)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `RUST_LOG=raft=debug consensus-sim scenario ...` prints a core's own
    // debug log (elections, votes, step-downs) on stderr, in event order;
    // off by default. The simulator's clock is virtual, so no timestamps.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Protocols => {
            for name in protocols::PROTOCOLS {
                match protocols::runner(name) {
                    Ok(_) => println!("{name}"),
                    Err(_) => println!("{name}\t(not linked yet)"),
                }
            }
            for name in protocols::TESTING {
                println!("{name}\t(internal testing core of consensus-sim)");
            }
            ExitCode::SUCCESS
        }
        Command::Scenario(args) => match cli_scenario::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Campaign(args) => match cli_campaign::run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => match run(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Returns Ok(false) when a seed failed (already reported).
fn run(args: &RunArgs) -> anyhow::Result<bool> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let seeds = match (&args.seeds, args.seed) {
        (Some(range), None) => range.clone(),
        (None, Some(seed)) => seed..=seed,
        (None, None) => 0..=0,
        (Some(_), Some(_)) => unreachable!("clap rejects --seed with --seeds"),
    };
    let single = seeds.start() == seeds.end();
    let config_for = |seed| SimConfig {
        nodes: args.nodes,
        seed,
        ops: args.ops,
        clients: args.clients,
        faults: args.faults,
        history: args.history.clone(),
        protocol_name: Some(args.protocol.clone()),
        ..SimConfig::default()
    };
    let count = seeds.end() - seeds.start() + 1;
    let progress = if single || args.verbose || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(count);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds {msg} (eta {eta})",
            )
            .context("progress bar template")?,
        );
        bar
    };
    let run_one = protocols::runner(&args.protocol)?;
    let started = Instant::now();
    let (mut steps, mut ops, mut faults) = (0u64, 0u64, 0usize);
    for seed in seeds.clone() {
        match run_one(&config_for(seed)) {
            Ok(report) => {
                steps += report.steps;
                ops += report.workload.invoked;
                faults += report.faults.len();
                if single || args.verbose {
                    progress.suspend(|| println!("{report}"));
                }
                progress.set_message(format!("last: seed {seed}"));
                progress.inc(1);
            }
            Err(failure) => {
                progress.abandon();
                eprintln!("{failure}");
                if let Some(path) = &args.history {
                    eprintln!("  history of the failing run: {}", path.display());
                }
                return Ok(false);
            }
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    let mut checks = vec![
        "agreement",
        "applied-sequence",
        "leader-per-epoch",
        "commit/epoch monotone",
        "Ready contract",
        "liveness-after-heal",
        "catch-up-after-heal",
        "acknowledged-writes",
        "linearizability",
    ];
    checks.extend(protocols::extra_invariants(&args.protocol));
    println!(
        "{count} seed(s) {}..={} passed: protocol {}, {} nodes, {} ops x {} clients, faults {}; \
         {} faults injected, {} ops, {} events in {:.2} s ({:.1} runs/s, {:.0} events/s); \
         checked: {}",
        seeds.start(),
        seeds.end(),
        args.protocol,
        args.nodes,
        args.ops,
        args.clients,
        args.faults,
        faults,
        ops,
        steps,
        wall,
        count as f64 / wall,
        steps as f64 / wall,
        checks.join(", ")
    );
    Ok(true)
}
