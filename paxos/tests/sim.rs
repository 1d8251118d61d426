//! A bounded slice of randomized simulator runs for CI, and the seeds of
//! every bug the simulator found (regressions).
//!
//! Longer runs: `cargo run --release --bin consensus-sim -- run --protocol
//! paxos --nodes 5 --faults all --seeds 1..2000`, or here
//! `PAXOS_SIM_SEEDS=200 cargo test --release -p paxos --test sim`.

use consensus_sim::{run, FaultMode, SimConfig};
use paxos::PaxosCore;

fn config(seed: u64, faults: FaultMode, ops: usize) -> SimConfig {
    SimConfig {
        nodes: 5,
        seed,
        ops,
        clients: 8,
        faults,
        ..SimConfig::default()
    }
}

fn run_slice(faults: FaultMode, first: u64, default_seeds: u64, ops: usize) {
    let seeds: u64 = std::env::var("PAXOS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seeds);
    for seed in first..first + seeds {
        if let Err(failure) = run::<PaxosCore>(&config(seed, faults, ops)) {
            panic!("{failure}");
        }
    }
}

#[test]
fn randomized_runs_without_faults() {
    run_slice(FaultMode::None, 1, 3, 500);
}

#[test]
fn randomized_runs_with_partitions() {
    run_slice(FaultMode::Partitions, 100, 4, 500);
}

#[test]
fn randomized_runs_with_crashes() {
    run_slice(FaultMode::Crashes, 200, 4, 500);
}

#[test]
fn randomized_runs_with_all_faults() {
    run_slice(FaultMode::All, 300, 6, 500);
}

#[test]
fn a_three_node_cluster_with_all_faults() {
    for seed in 400..403 {
        let config = SimConfig {
            nodes: 3,
            ..config(seed, FaultMode::All, 400)
        };
        if let Err(failure) = run::<PaxosCore>(&config) {
            panic!("{failure}");
        }
    }
}
