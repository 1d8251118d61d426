//! Randomized runs of the reference core: no false alarms.

use consensus_sim::testing::TinyRaft;
use consensus_sim::{run, FaultMode, SimConfig};

fn runs(faults: FaultMode, seeds: std::ops::Range<u64>, ops: usize) {
    for seed in seeds {
        let config = SimConfig {
            nodes: 5,
            seed,
            ops,
            clients: 8,
            faults,
            ..SimConfig::default()
        };
        match run::<TinyRaft>(&config) {
            Ok(report) => println!("{report}"),
            Err(failure) => panic!("{failure}"),
        }
    }
}

#[test]
fn reference_core_passes_without_faults() {
    runs(FaultMode::None, 0..3, 500);
}

#[test]
fn reference_core_passes_under_partitions() {
    runs(FaultMode::Partitions, 0..3, 500);
}

#[test]
fn reference_core_passes_under_crashes() {
    runs(FaultMode::Crashes, 0..3, 500);
}

#[test]
fn reference_core_passes_under_all_faults() {
    runs(FaultMode::All, 0..3, 500);
}
