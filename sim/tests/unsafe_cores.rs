//! The checks can fail: deliberately broken cores are caught, with a
//! reproducing seed.

use consensus_sim::testing::{StaleReadRaft, UnsafeLowestIdCore};
use consensus_sim::{run, FaultMode, SimConfig, SimFailure};

/// Checks that prove a safety property broke (not a harness or contract
/// problem).
const SAFETY_CHECKS: &[&str] = &[
    "agreement",
    "leader-per-epoch",
    "linearizability",
    "acknowledged-writes",
];

fn first_failure<C: consensus_api::Core>(
    faults: FaultMode,
    seeds: u64,
    ops: usize,
) -> Option<(u64, SimFailure)> {
    (1..=seeds).find_map(|seed| {
        let config = SimConfig {
            nodes: 5,
            seed,
            ops,
            clients: 8,
            faults,
            ..SimConfig::default()
        };
        run::<C>(&config).err().map(|failure| (seed, failure))
    })
}

#[test]
fn lowest_id_leader_is_caught_under_partitions() {
    let (seed, failure) = first_failure::<UnsafeLowestIdCore>(FaultMode::Partitions, 40, 1000)
        .expect("the unsafe core survived 40 seeds under partitions: the simulator is blind");
    println!("unsafe-lowest-id caught at seed {seed} (seeds tried: {seed}):\n{failure}");
    assert!(
        SAFETY_CHECKS.contains(&failure.check.as_str()),
        "unexpected check: {failure}"
    );
    assert_eq!(failure.seed, seed);
    let message = failure.to_string();
    assert!(
        message.contains(&format!("--seed {seed}")),
        "no reproducing command: {message}"
    );
    assert!(message.contains("--protocol unsafe-lowest-id"), "{message}");
    // The same seed fails the same way: the report reproduces.
    let again = first_failure::<UnsafeLowestIdCore>(FaultMode::Partitions, seed, 1000)
        .expect("the reproduction failed too");
    assert_eq!(
        again.1, failure,
        "the failing seed does not reproduce exactly"
    );
}

#[test]
fn lowest_id_leader_is_fine_without_faults() {
    // Without partitions the misconception holds up, which is what makes it
    // dangerous: the checks must not fire spuriously either.
    let config = SimConfig {
        nodes: 5,
        seed: 1,
        ops: 300,
        clients: 8,
        faults: FaultMode::None,
        ..SimConfig::default()
    };
    if let Err(failure) = run::<UnsafeLowestIdCore>(&config) {
        panic!("false alarm on a healthy network: {failure}");
    }
}

#[test]
fn leader_local_reads_are_caught_by_linearizability() {
    // Every applied entry agrees (the log is correct Raft); only the reads of
    // a deposed leader are stale. Only the history check can see it.
    let (seed, failure) = first_failure::<StaleReadRaft>(FaultMode::Partitions, 60, 600)
        .expect("stale leader reads survived 60 seeds under partitions");
    println!("stale-read-raft caught at seed {seed}:\n{failure}");
    assert_eq!(failure.check, "linearizability", "{failure}");
}
