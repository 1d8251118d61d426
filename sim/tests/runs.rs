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

#[test]
fn a_seed_replays_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let run_once = |name: &str| {
        let path = dir.path().join(name);
        let config = SimConfig {
            nodes: 5,
            seed: 77,
            ops: 300,
            clients: 8,
            faults: FaultMode::All,
            history: Some(path.clone()),
            ..SimConfig::default()
        };
        let report = run::<TinyRaft>(&config).unwrap_or_else(|f| panic!("{f}"));
        (
            report.steps,
            report.ticks,
            report.stats,
            report.faults,
            std::fs::read(path).unwrap(),
        )
    };
    let first = run_once("a.jsonl");
    let second = run_once("b.jsonl");
    assert_eq!(first, second, "same seed, different run");
}

#[test]
fn liveness_after_heal_is_checked() {
    // Elections that never time out: nothing ever commits, and the run must
    // say so instead of passing vacuously.
    fn never_elect(config: &mut consensus_api::CoreConfig) {
        config.election_timeout_ticks_min = 1_000_000;
        config.election_timeout_ticks_max = 1_000_001;
    }
    let config = SimConfig {
        nodes: 3,
        seed: 1,
        ops: 8,
        clients: 4,
        faults: FaultMode::None,
        liveness_ticks: 500,
        configure: Some(never_elect),
        ..SimConfig::default()
    };
    let failure = run::<TinyRaft>(&config).expect_err("a cluster without a leader cannot pass");
    assert_eq!(failure.check, "liveness-after-heal", "{failure}");
}
