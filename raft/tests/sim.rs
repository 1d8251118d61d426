//! Randomized simulator runs of the Raft core: a bounded slice for CI, and
//! the seeds of every bug the simulator found, kept as regressions.
//!
//! Every run checks, after every event, that no two nodes apply different
//! entries at an index, that applied sequences never roll back (across
//! restarts too), that there is at most one leader per term, the `Ready`
//! contract, a Raft-specific invariant added here (every node's commit index
//! is backed by the log of any leader of a later term), liveness after the
//! faults stop, and linearizability of the client history.
//!
//! The slice is sized for the test profile on a 2-core machine (about a
//! minute in all). Longer runs use the command line:
//! `cargo run --release --bin consensus-sim -- run --protocol raft --nodes 5
//! --faults all --seeds 1..2000`, or this test with more seeds:
//! `RAFT_SIM_SEEDS=500 RAFT_SIM_OPS=2000 cargo test --release -p raft --test sim`.

use consensus_api::{Core, Role};
use consensus_sim::{run_with, Cluster, FaultMode, SimConfig, SimFailure};
use raft::RaftCore;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raft's Leader Completeness (§5.4), checked live: a leader holds every
/// entry that any node of its term or earlier has applied (by Log Matching,
/// checking the last applied entry's index and term suffices), unless it is
/// covered by the leader's snapshot.
fn leader_completeness(cluster: &Cluster<RaftCore>) -> Result<(), String> {
    for leader in cluster.node_ids() {
        if !cluster.is_alive(leader) {
            continue;
        }
        let status = cluster.status(leader);
        if status.role != Role::Leader {
            continue;
        }
        let log = cluster.store(leader).durable();
        for other in cluster.node_ids() {
            let Some(last) = cluster.applied(other).last() else {
                continue;
            };
            // Entries committed in a later term than the leader's need not
            // be in a stale leader's log.
            if cluster
                .try_status(other)
                .is_none_or(|s| s.epoch > status.epoch)
            {
                continue;
            }
            if last.index <= log.snapshot_index() {
                continue;
            }
            match log.entries.get(&last.index) {
                Some(entry) if entry.epoch == last.epoch => {}
                Some(entry) => {
                    return Err(format!(
                        "leader {leader} (term {}) holds {}@{} where node {other} applied {}@{}",
                        status.epoch, entry.index, entry.epoch, last.index, last.epoch
                    ))
                }
                None => {
                    return Err(format!(
                        "leader {leader} (term {}) lacks index {} that node {other} applied",
                        status.epoch, last.index
                    ))
                }
            }
        }
    }
    Ok(())
}

fn run_slice(faults: FaultMode, seeds: std::ops::Range<u64>, ops: usize) {
    let mut failures: Vec<SimFailure> = Vec::new();
    for seed in seeds {
        let config = SimConfig {
            nodes: 5,
            seed,
            ops,
            clients: 6,
            faults,
            ..SimConfig::default()
        };
        if let Err(failure) = run_with::<RaftCore>(&config, |cluster| {
            cluster.add_invariant("leader completeness", leader_completeness);
        }) {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing seed(s):\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn slice(faults: FaultMode, default_seeds: u64) {
    let seeds = env_or("RAFT_SIM_SEEDS", default_seeds);
    let ops = env_or("RAFT_SIM_OPS", 300) as usize;
    run_slice(faults, 1..seeds + 1, ops);
}

#[test]
fn randomized_no_faults() {
    slice(FaultMode::None, 50);
}

#[test]
fn randomized_partitions() {
    slice(FaultMode::Partitions, 100);
}

#[test]
fn randomized_crashes() {
    slice(FaultMode::Crashes, 100);
}

#[test]
fn randomized_all_faults() {
    slice(FaultMode::All, 150);
}

/// Seeds at which the simulator once found a bug (see the crate's git log
/// and the final report); each must keep passing with the parameters that
/// exposed it.
#[test]
fn regression_seeds() {
    const REGRESSIONS: &[(FaultMode, u64, usize)] = &[];
    for (faults, seed, ops) in REGRESSIONS.iter().copied() {
        run_slice(faults, seed..seed + 1, ops);
    }
}

#[test]
fn the_core_reports_its_protocol() {
    assert_eq!(RaftCore::PROTOCOL, "raft");
}
