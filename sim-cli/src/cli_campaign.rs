//! `consensus-sim campaign`: seed ranges of several protocols, fault modes
//! and cluster sizes, run on worker threads, resumable, with a JSON summary
//! per cell.
//!
//! A *cell* is one (protocol, fault mode, cluster size). Its seed range is
//! cut into chunks; each worker thread takes the next chunk not yet done,
//! runs its seeds one after the other (a panic in a core is caught and
//! reported as a violation of check `panic` with its seed), and hands the
//! result back. After every chunk the whole summary is rewritten (to a
//! temporary file, then renamed), so an interrupted campaign loses at most
//! the chunks in progress; run the same command again and it skips every
//! chunk already in the file. A violation does not stop the campaign: every
//! failing seed is listed in its cell with the reproducing command.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use consensus_sim::{FaultMode, SimConfig};
use consensus_sim_cli::protocols;
use serde::{Deserialize, Serialize};

use crate::parse_range;

/// Arguments of `consensus-sim campaign`.
#[derive(Args)]
pub struct CampaignArgs {
    /// Comma-separated protocols (`raft,multipaxos,zab,paxos`).
    #[arg(long, default_value = "raft,multipaxos,zab,paxos")]
    protocols: String,
    /// Comma-separated fault modes (none, partitions, crashes, clock, all,
    /// all-but-clock).
    #[arg(long, default_value = "none,partitions,crashes,clock,all")]
    faults: String,
    /// Comma-separated cluster sizes.
    #[arg(long, default_value = "3,4,5")]
    nodes: String,
    /// Seeds of every cell, both ends included: `1..10000`.
    #[arg(long, value_parser = parse_range)]
    seeds: RangeInclusive<u64>,
    /// Client operations per run.
    #[arg(long, default_value_t = 500)]
    ops: usize,
    /// Concurrent client processes per run.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Worker threads (the machine is often shared: the default is 1).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Seeds per chunk (the unit of work and of resumption).
    #[arg(long, default_value_t = 100)]
    chunk: u64,
    /// The JSON summary; an existing file with the same parameters is
    /// resumed.
    #[arg(long)]
    out: PathBuf,
}

/// The whole summary, as written to `--out`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Campaign {
    /// What was asked for, to refuse resuming a different campaign.
    ops: usize,
    clients: usize,
    /// Wall-clock seconds spent in this campaign over all invocations.
    wall_seconds: f64,
    /// The cells, keyed `protocol/faults/nodes`.
    cells: BTreeMap<String, Cell>,
}

/// One (protocol, fault mode, cluster size).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cell {
    protocol: String,
    faults: String,
    nodes: usize,
    /// Seed ranges done, `[first, last]` both included, merged.
    done: Vec<[u64; 2]>,
    /// Seeds run (the sum of `done`).
    seeds: u64,
    /// Seeds that passed every check.
    passed: u64,
    /// Faults injected over all seeds, in total and by kind.
    faults_injected: u64,
    faults_by_kind: BTreeMap<String, u64>,
    /// Client operations invoked, and how they ended.
    ops_invoked: u64,
    ops_ok: u64,
    ops_fail: u64,
    ops_info: u64,
    /// Simulator events processed.
    events: u64,
    /// Crashes and restarts.
    crashes: u64,
    /// Every failing seed.
    violations: Vec<Violation>,
    /// Seconds of worker time spent on the cell.
    wall_seconds: f64,
    /// Every seed of the requested range is done.
    complete: bool,
}

/// One failing seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Violation {
    seed: u64,
    check: String,
    message: String,
    reproduce: String,
}

/// One unit of work: a chunk of one cell's seeds.
#[derive(Clone, Debug)]
struct Unit {
    key: String,
    protocol: String,
    faults: FaultMode,
    nodes: usize,
    seeds: RangeInclusive<u64>,
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn covered(done: &[[u64; 2]], range: &RangeInclusive<u64>) -> bool {
    done.iter()
        .any(|[a, b]| *a <= *range.start() && *range.end() <= *b)
}

fn merge(done: &mut Vec<[u64; 2]>, range: [u64; 2]) {
    done.push(range);
    done.sort_unstable();
    let mut merged: Vec<[u64; 2]> = Vec::new();
    for [a, b] in done.drain(..) {
        match merged.last_mut() {
            Some(last) if a <= last[1].saturating_add(1) => last[1] = last[1].max(b),
            _ => merged.push([a, b]),
        }
    }
    *done = merged;
}

fn count(done: &[[u64; 2]]) -> u64 {
    done.iter().map(|[a, b]| b - a + 1).sum()
}

fn load(path: &Path) -> anyhow::Result<Option<Campaign>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is not a campaign summary", path.display())
        })?)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

fn save(path: &Path, campaign: &Campaign) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(campaign).context("encoding the summary")?;
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Runs one unit's seeds.
fn run_unit(unit: &Unit, ops: usize, clients: usize) -> anyhow::Result<Cell> {
    let run_one = protocols::runner(&unit.protocol)?;
    let started = Instant::now();
    let mut cell = Cell::default();
    for seed in unit.seeds.clone() {
        let config = SimConfig {
            nodes: unit.nodes,
            seed,
            ops,
            clients,
            faults: unit.faults,
            protocol_name: Some(unit.protocol.clone()),
            ..SimConfig::default()
        };
        cell.seeds += 1;
        match run_one(&config) {
            Ok(report) => {
                cell.passed += 1;
                cell.faults_injected += report.faults.len() as u64;
                for (_, fault) in &report.faults {
                    *cell
                        .faults_by_kind
                        .entry(fault.kind().to_owned())
                        .or_default() += 1;
                }
                cell.ops_invoked += report.workload.invoked;
                cell.ops_ok += report.workload.ok;
                cell.ops_fail += report.workload.fail;
                cell.ops_info += report.workload.info;
                cell.events += report.steps;
                cell.crashes += report.stats.crashes;
            }
            Err(failure) => {
                eprintln!("{failure}");
                cell.violations.push(Violation {
                    seed,
                    check: failure.check.clone(),
                    message: failure.message.clone(),
                    reproduce: failure.reproduce.clone(),
                });
            }
        }
    }
    cell.wall_seconds = started.elapsed().as_secs_f64();
    Ok(cell)
}

fn add_into(total: &mut Cell, part: Cell, range: [u64; 2]) {
    merge(&mut total.done, range);
    total.seeds = count(&total.done);
    total.passed += part.passed;
    total.faults_injected += part.faults_injected;
    for (kind, n) in part.faults_by_kind {
        *total.faults_by_kind.entry(kind).or_default() += n;
    }
    total.ops_invoked += part.ops_invoked;
    total.ops_ok += part.ops_ok;
    total.ops_fail += part.ops_fail;
    total.ops_info += part.ops_info;
    total.events += part.events;
    total.crashes += part.crashes;
    total.violations.extend(part.violations);
    total.violations.sort_by_key(|v| v.seed);
    total.wall_seconds += part.wall_seconds;
}

/// Runs the campaign; `Ok(false)` when some seed failed.
pub fn run(args: &CampaignArgs) -> anyhow::Result<bool> {
    if args.jobs == 0 || args.chunk == 0 {
        bail!("--jobs and --chunk must be at least 1");
    }
    let protocol_names = split_list(&args.protocols);
    for name in &protocol_names {
        protocols::runner(name)?;
    }
    let modes: Vec<FaultMode> = split_list(&args.faults)
        .iter()
        .map(|m| m.parse::<FaultMode>())
        .collect::<Result<_, _>>()?;
    let sizes: Vec<usize> = split_list(&args.nodes)
        .iter()
        .map(|n| n.parse::<usize>().with_context(|| format!("--nodes `{n}`")))
        .collect::<Result<_, _>>()?;
    if sizes.contains(&0) {
        bail!("--nodes: a cluster needs at least one node");
    }

    let mut campaign = match load(&args.out)? {
        Some(existing) => {
            if existing.ops != args.ops || existing.clients != args.clients {
                bail!(
                    "{} holds a campaign with --ops {} --clients {}; use another --out or the same parameters",
                    args.out.display(),
                    existing.ops,
                    existing.clients
                );
            }
            existing
        }
        None => Campaign {
            ops: args.ops,
            clients: args.clients,
            ..Campaign::default()
        },
    };

    let mut units = VecDeque::new();
    let mut skipped = 0u64;
    for protocol in &protocol_names {
        for &faults in &modes {
            for &nodes in &sizes {
                let key = format!("{protocol}/{faults}/{nodes}");
                let cell = campaign.cells.entry(key.clone()).or_insert_with(|| Cell {
                    protocol: protocol.clone(),
                    faults: faults.to_string(),
                    nodes,
                    ..Cell::default()
                });
                let mut start = *args.seeds.start();
                while start <= *args.seeds.end() {
                    let end = start.saturating_add(args.chunk - 1).min(*args.seeds.end());
                    let seeds = start..=end;
                    if covered(&cell.done, &seeds) {
                        skipped += 1;
                    } else {
                        units.push_back(Unit {
                            key: key.clone(),
                            protocol: protocol.clone(),
                            faults,
                            nodes,
                            seeds,
                        });
                    }
                    if end == u64::MAX {
                        break;
                    }
                    start = end + 1;
                }
            }
        }
    }
    let total_units = units.len();
    eprintln!(
        "campaign: {} cell(s), {total_units} chunk(s) of up to {} seeds to run, {skipped} already done (in {}), {} job(s)",
        protocol_names.len() * modes.len() * sizes.len(),
        args.chunk,
        args.out.display(),
        args.jobs
    );
    let started = Instant::now();
    let previous_wall = campaign.wall_seconds;
    let queue = Mutex::new(units);
    let state = Mutex::new((campaign, 0usize, None::<anyhow::Error>));
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(total_units.max(1)) {
            let worker = std::thread::Builder::new()
                .name("campaign-worker".into())
                .stack_size(64 << 20);
            let spawned = worker.spawn_scoped(scope, || loop {
                let Some(unit) = queue.lock().expect("queue lock").pop_front() else {
                    return;
                };
                let result = run_unit(&unit, args.ops, args.clients);
                let mut guard = state.lock().expect("state lock");
                let (campaign, finished, error) = &mut *guard;
                match result {
                    Ok(result) => {
                        let violations = result.violations.len();
                        let seconds = result.wall_seconds;
                        let cell = campaign.cells.get_mut(&unit.key).expect("cell exists");
                        add_into(cell, result, [*unit.seeds.start(), *unit.seeds.end()]);
                        cell.complete = covered(&cell.done, &args.seeds);
                        *finished += 1;
                        campaign.wall_seconds = previous_wall + started.elapsed().as_secs_f64();
                        let elapsed = started.elapsed().as_secs_f64();
                        let eta = elapsed / *finished as f64 * (total_units - *finished) as f64;
                        eprintln!(
                            "[{finished}/{total_units}] {} seeds {}..={}: {} in {seconds:.1} s (elapsed {elapsed:.0} s, eta {eta:.0} s)",
                            unit.key,
                            unit.seeds.start(),
                            unit.seeds.end(),
                            if violations == 0 {
                                "ok".to_owned()
                            } else {
                                format!("{violations} VIOLATION(S)")
                            }
                        );
                        if let Err(e) = save(&args.out, campaign) {
                            *error = Some(e);
                            queue.lock().expect("queue lock").clear();
                        }
                    }
                    Err(e) => {
                        *error = Some(e);
                        queue.lock().expect("queue lock").clear();
                    }
                }
            });
            if let Err(e) = spawned {
                let mut guard = state.lock().expect("state lock");
                guard.2 = Some(anyhow::Error::new(e).context("starting a worker thread"));
            }
        }
    });
    let (campaign, _, error) = state.into_inner().expect("state lock");
    if let Some(error) = error {
        return Err(error);
    }
    save(&args.out, &campaign)?;
    print_table(&campaign, &protocol_names, &modes, &sizes);
    let violations: usize = campaign.cells.values().map(|c| c.violations.len()).sum();
    Ok(violations == 0)
}

fn print_table(campaign: &Campaign, protocols: &[String], modes: &[FaultMode], sizes: &[usize]) {
    println!("| protocol | faults | nodes | seeds | passed | violations | faults injected | ops | worker time (s) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for protocol in protocols {
        for faults in modes {
            for nodes in sizes {
                let key = format!("{protocol}/{faults}/{nodes}");
                let Some(cell) = campaign.cells.get(&key) else {
                    continue;
                };
                let failing: Vec<String> = cell
                    .violations
                    .iter()
                    .map(|v| format!("seed {} ({})", v.seed, v.check))
                    .collect();
                println!(
                    "| {protocol} | {faults} | {nodes} | {} | {} | {} | {} | {} | {:.0} |",
                    cell.seeds,
                    cell.passed,
                    if failing.is_empty() {
                        "0".to_owned()
                    } else {
                        failing.join(", ")
                    },
                    cell.faults_injected,
                    cell.ops_invoked,
                    cell.wall_seconds
                );
            }
        }
    }
}
