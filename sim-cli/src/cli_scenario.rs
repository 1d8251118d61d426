//! `consensus-sim scenario`: runs a named failure scenario on one protocol
//! or all four, prints the timeline and the verdicts, and with `--out`
//! writes the HTML page and the SVG swimlanes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use consensus_sim_cli::protocols::{scenario_runner, PROTOCOLS};
use consensus_sim_cli::render::{html, svg, text};
use consensus_sim_cli::scenario::{ScenarioConfig, ScenarioName, ScenarioOutcome};

/// Arguments of `consensus-sim scenario`.
#[derive(Args)]
pub struct ScenarioArgs {
    /// The scenario to run (`--list` shows the names).
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// raft | multipaxos | paxos | zab | all (or a comma-separated list).
    #[arg(long, default_value = "all")]
    protocol: String,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// The seed (the same seed replays the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write `NAME.html` (timeline page with SVG swimlanes) and `NAME.svg`
    /// into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs the command; `Ok(false)` when an expectation did not hold (already
/// reported).
pub fn run(args: &ScenarioArgs) -> anyhow::Result<bool> {
    if args.list {
        list();
        return Ok(true);
    }
    let name = args.name.as_deref().unwrap_or_default();
    let scenario: ScenarioName = name.parse()?;
    let info = scenario.info();
    if args.nodes < info.min_nodes || args.nodes > 9 {
        bail!(
            "scenario {name} runs with {} to 9 nodes (--nodes {}); try --nodes 5",
            info.min_nodes,
            args.nodes
        );
    }
    let protocols: Vec<&str> = if args.protocol == "all" {
        PROTOCOLS.to_vec()
    } else {
        args.protocol.split(',').map(str::trim).collect()
    };
    let runners = protocols
        .iter()
        .map(|p| scenario_runner(p))
        .collect::<Result<Vec<_>, _>>()?;
    let config = ScenarioConfig {
        nodes: args.nodes,
        seed: args.seed,
    };
    let runs = std::thread::scope(|scope| {
        let handles: Vec<_> = runners
            .iter()
            .map(|runner| scope.spawn(move || runner(scenario, &config)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scenario thread panicked"))
            .collect()
    });
    let outcome = ScenarioOutcome {
        scenario,
        config,
        runs,
    };
    print!("{}", text::report(&outcome));
    if let Some(dir) = &args.out {
        write_files(dir, &outcome)?;
    }
    if !outcome.passed() {
        for run in &outcome.runs {
            if run.broken().next().is_some() {
                eprintln!(
                    "scenario {name} failed on {}: see the expectations above; reproduce with: consensus-sim scenario {name} --protocol {} --nodes {} --seed {}",
                    run.protocol, run.protocol, args.nodes, args.seed
                );
            }
        }
    }
    Ok(outcome.passed())
}

fn list() {
    for scenario in ScenarioName::ALL {
        let info = scenario.info();
        println!("{:<22} {}", info.name, info.title);
    }
}

fn write_files(dir: &Path, outcome: &ScenarioOutcome) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let name = outcome.scenario.name();
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html::page(outcome))
        .with_context(|| format!("cannot write {}", page.display()))?;
    let picture = dir.join(format!("{name}.svg"));
    std::fs::write(&picture, svg::swimlanes(outcome))
        .with_context(|| format!("cannot write {}", picture.display()))?;
    println!("wrote {} and {}", page.display(), picture.display());
    Ok(())
}
