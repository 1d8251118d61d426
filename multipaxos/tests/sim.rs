//! Randomized simulator runs of Multi-Paxos (a bounded slice for CI).
//!
//! `MULTIPAXOS_SIM_SEEDS=N` runs seeds `1..=N` of each fault mode instead of
//! the default slice; `MULTIPAXOS_SIM_FIRST=K` starts at seed `K`. The full
//! sweep goes through the CLI:
//! `cargo run --release --bin consensus-sim -- run --protocol multipaxos --nodes 5 --faults all --seeds 1..2000`.

use consensus_sim::{run, FaultMode, SimConfig};
use multipaxos::MultiPaxosCore;

fn seeds(default: u64) -> std::ops::RangeInclusive<u64> {
    let count = std::env::var("MULTIPAXOS_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let first = std::env::var("MULTIPAXOS_SIM_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    first..=first + count - 1
}

fn sweep(faults: FaultMode, default_seeds: u64, ops: usize) {
    let mut failures = Vec::new();
    for seed in seeds(default_seeds) {
        let config = SimConfig {
            nodes: 5,
            seed,
            ops,
            clients: 8,
            faults,
            ..SimConfig::default()
        };
        match run::<MultiPaxosCore>(&config) {
            Ok(report) => {
                if std::env::var("MULTIPAXOS_SIM_VERBOSE").is_ok() {
                    println!("{report}");
                }
            }
            Err(failure) => failures.push(failure.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seeds:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_faults() {
    sweep(FaultMode::None, 4, 300);
}

#[test]
fn partitions() {
    sweep(FaultMode::Partitions, 4, 300);
}

#[test]
fn crashes() {
    sweep(FaultMode::Crashes, 4, 300);
}

#[test]
fn all_faults() {
    sweep(FaultMode::All, 6, 2000);
}
