//! A bounded slice of randomized simulator runs for CI, and the seeds of
//! every bug the simulator found (regressions).
//!
//! Longer runs: `cargo run --release --bin consensus-sim -- run --protocol
//! paxos --nodes 5 --faults all --seeds 1..2000`, or here
//! `PAXOS_SIM_SEEDS=200 cargo test --release -p paxos --test sim`.

use consensus_sim::{run, FaultMode, FaultTally, SimConfig};
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
    run_sized(5, faults, first, default_seeds, ops);
}

/// Runs the seeds and checks that each kind of fault the mode claims was
/// injected at least once.
fn run_sized(nodes: usize, faults: FaultMode, first: u64, default_seeds: u64, ops: usize) {
    let seeds: u64 = std::env::var("PAXOS_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seeds);
    let mut tally = FaultTally::default();
    for seed in first..first + seeds {
        let config = SimConfig {
            nodes,
            ..config(seed, faults, ops)
        };
        match run::<PaxosCore>(&config) {
            Ok(report) => tally.add(&report),
            Err(failure) => panic!("{failure}"),
        }
    }
    tally.assert_covers(faults);
}

#[test]
fn randomized_runs_without_faults() {
    run_slice(FaultMode::None, 1, 3, 500);
}

#[test]
fn randomized_runs_with_partitions() {
    run_slice(FaultMode::Partitions, 100, 14, 500);
}

#[test]
fn randomized_runs_with_crashes() {
    run_slice(FaultMode::Crashes, 200, 4, 500);
}

#[test]
fn randomized_runs_with_all_faults() {
    run_slice(FaultMode::All, 300, 30, 500);
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

#[test]
fn randomized_runs_with_clock_faults() {
    run_sized(3, FaultMode::Clock, 500, 8, 300);
}

/// Even sizes, where an off-by-one quorum would let both halves of an
/// even split choose values.
#[test]
fn even_sizes() {
    run_sized(4, FaultMode::Partitions, 600, 14, 300);
    run_sized(4, FaultMode::Crashes, 650, 3, 300);
    run_sized(6, FaultMode::Partitions, 700, 14, 300);
}
