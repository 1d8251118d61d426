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

use consensus_api::{Core, CoreConfig, Membership, NodeId};
use consensus_sim::kv::KvResponse;
use consensus_sim::{
    run_with, Cluster, FaultMode, FaultTally, NetworkConfig, SimConfig, SimFailure,
};
use raft::RaftCore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raft's Leader Completeness (§5.4), checked live: a leader holds every
/// entry that any node of its term or earlier has applied. The check is
/// shared with the command line (`consensus_sim::invariants`).
fn leader_completeness(cluster: &Cluster<RaftCore>) -> Result<(), String> {
    consensus_sim::invariants::leader_completeness(cluster)
}

fn run_slice(faults: FaultMode, seeds: std::ops::Range<u64>, ops: usize) {
    run_configured(faults, seeds, ops, None, None);
}

fn run_configured(
    faults: FaultMode,
    seeds: std::ops::Range<u64>,
    ops: usize,
    configure: Option<fn(&mut CoreConfig)>,
    network: Option<NetworkConfig>,
) {
    run_sized(5, faults, seeds, ops, configure, network);
}

/// Runs the seeds, fails with every failing seed, and checks that each
/// kind of fault the mode claims was injected at least once.
fn run_sized(
    nodes: usize,
    faults: FaultMode,
    seeds: std::ops::Range<u64>,
    ops: usize,
    configure: Option<fn(&mut CoreConfig)>,
    network: Option<NetworkConfig>,
) {
    let mut failures: Vec<SimFailure> = Vec::new();
    let mut tally = FaultTally::default();
    for seed in seeds {
        let config = SimConfig {
            nodes,
            seed,
            ops,
            clients: 6,
            faults,
            configure,
            network: network.clone(),
            ..SimConfig::default()
        };
        match run_with::<RaftCore>(&config, |cluster| {
            cluster.add_invariant("leader completeness", leader_completeness);
        }) {
            Ok(report) => tally.add(&report),
            Err(failure) => failures.push(failure),
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
    tally.assert_covers(faults);
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

#[test]
fn randomized_clock_faults() {
    slice(FaultMode::Clock, 40);
}

/// Even sizes, where an off-by-one quorum (`yes * 2 >= n`) would let both
/// halves of an even split elect and commit.
#[test]
fn randomized_even_sizes() {
    let ops = env_or("RAFT_SIM_OPS", 300) as usize;
    run_sized(4, FaultMode::Partitions, 1..41, ops, None, None);
    run_sized(4, FaultMode::Crashes, 1..11, ops, None, None);
    run_sized(6, FaultMode::Partitions, 1..21, ops, None, None);
}

/// Classic Raft: no pre-vote, no check-quorum (terms inflate, isolated
/// leaders linger until they hear a higher term).
fn classic(config: &mut CoreConfig) {
    config.pre_vote = false;
    config.check_quorum = false;
}

/// Tight limits: one message in flight, tiny batches and snapshot chunks, a
/// short uncommitted tail, so probing, stall recovery, chunking and
/// back-pressure run all the time.
fn tight(config: &mut CoreConfig) {
    config.inflight_messages_max = 1;
    config.batch_entries_max = 2;
    config.batch_bytes_max = 64;
    config.snapshot_chunk_bytes = 32;
    config.uncommitted_entries_max = 16;
}

#[test]
fn randomized_classic_raft_without_pre_vote_or_check_quorum() {
    let seeds = env_or("RAFT_SIM_SEEDS", 60);
    run_configured(
        FaultMode::All,
        1..seeds + 1,
        env_or("RAFT_SIM_OPS", 300) as usize,
        Some(classic),
        None,
    );
}

#[test]
fn randomized_tight_limits() {
    let seeds = env_or("RAFT_SIM_SEEDS", 60);
    run_configured(
        FaultMode::All,
        1..seeds + 1,
        env_or("RAFT_SIM_OPS", 300) as usize,
        Some(tight),
        None,
    );
}

/// A hostile network: 5% loss, 5% duplicates, and 5% of messages held back
/// up to 60 ticks (four election timeouts), so messages of old terms and
/// long-gone leaders keep arriving.
#[test]
fn randomized_hostile_network() {
    let seeds = env_or("RAFT_SIM_SEEDS", 60);
    let network = NetworkConfig {
        drop_rate: 0.05,
        duplicate_rate: 0.05,
        delay_ticks_min: 0.05,
        delay_ticks_max: 2.0,
        long_delay_rate: 0.05,
        long_delay_ticks: 60.0,
    };
    run_configured(
        FaultMode::All,
        1..seeds + 1,
        env_or("RAFT_SIM_OPS", 300) as usize,
        None,
        Some(network),
    );
}

/// One randomized run with membership changes (voters and learners drawn
/// from seven nodes), leadership transfers, crashes, partitions and
/// compaction under a lossy network, while writes keep coming. The cluster
/// must stay safe throughout (the simulator's invariants and Leader
/// Completeness after every event) and, once every fault is repaired, settle
/// on a stable configuration and commit a new write.
fn membership_run(seed: u64, steps: usize) -> Membership {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cluster: Cluster<RaftCore> = Cluster::new(5, seed);
    cluster.set_reproduce(format!(
        "membership_run({seed}, {steps}) in raft/tests/sim.rs"
    ));
    cluster.add_invariant("leader completeness", leader_completeness);
    for id in [6, 7] {
        cluster.add_node(id, Membership::new(1..=5), |_| {});
    }
    cluster.set_network(NetworkConfig::faulty());
    let all: Vec<NodeId> = (1..=7).collect();
    let mut value = 0;
    for _ in 0..steps {
        let leader = cluster.leader();
        match rng.random_range(0..100) {
            0..=49 => {
                if let Some(leader) = leader {
                    value += 1;
                    let _ = cluster.write(leader, "k", value);
                }
            }
            50..=59 => {
                if let Some(leader) = leader {
                    let count = rng.random_range(3..=5);
                    let mut voters: Vec<NodeId> = all.clone();
                    while voters.len() > count {
                        voters.remove(rng.random_range(0..voters.len()));
                    }
                    let learners: Vec<NodeId> = all
                        .iter()
                        .copied()
                        .filter(|n| !voters.contains(n) && rng.random_bool(0.5))
                        .collect();
                    let _ = cluster
                        .change_membership(leader, Membership::with_learners(voters, learners));
                }
            }
            60..=64 => {
                if let Some(leader) = leader {
                    let to = all[rng.random_range(0..all.len())];
                    let _ = cluster.transfer_leadership(leader, to);
                }
            }
            65..=69 => {
                let id = all[rng.random_range(0..all.len())];
                if cluster.is_alive(id) {
                    cluster.crash(id);
                } else {
                    cluster.restart(id);
                }
            }
            70..=74 => {
                let a = all[rng.random_range(0..all.len())];
                let b = all[rng.random_range(0..all.len())];
                if a != b {
                    cluster.cut(a, b);
                }
            }
            75..=79 => cluster.heal(),
            80..=82 => {
                let id = all[rng.random_range(0..all.len())];
                if cluster.is_alive(id) {
                    let _ = cluster.compact(id);
                }
            }
            _ => {}
        }
        cluster.run_ticks(rng.random_range(1..8));
        if let Err(failure) = cluster.check() {
            panic!("{failure}");
        }
    }
    // Repair everything; the cluster must settle and make progress.
    cluster.heal();
    cluster.set_network(NetworkConfig::default());
    for id in all {
        cluster.restart(id);
    }
    let settled = cluster.run_until(3000, |c| {
        c.leader().is_some_and(|l| {
            !c.status(l).membership.is_joint() && c.status(l).commit_index >= c.status(l).last_index
        })
    });
    assert!(
        settled,
        "seed {seed}: no stable leader after the faults stopped"
    );
    // A write may meet a leadership transfer still running out: retry.
    let mut outcome = None;
    for _ in 0..10 {
        let Some(leader) = cluster.leader() else {
            cluster.run_ticks(50);
            continue;
        };
        let result = cluster.write_sync(leader, "final", 1, 300);
        if result == Ok(KvResponse::Written) {
            outcome = Some(result);
            break;
        }
        cluster.run_ticks(50);
    }
    assert!(
        outcome.is_some(),
        "seed {seed}: no progress after the faults stopped"
    );
    // Every member of the configuration in force catches up (by log or by
    // snapshot); the configuration may still be moving, so it is read from
    // the current leader each time.
    let caught_up = cluster.run_until(1000, |c| {
        c.leader().is_some_and(|leader| {
            let status = c.status(leader);
            status
                .membership
                .all_nodes()
                .iter()
                .all(|m| c.applied_index(*m) >= status.commit_index)
        })
    });
    assert!(
        caught_up,
        "seed {seed}: a member did not catch up with the leader"
    );
    cluster.check().expect("no invariant broke");
    let leader = cluster.leader().expect("leader");
    cluster.status(leader).membership
}

#[test]
fn randomized_membership_changes_and_transfers() {
    if let Ok(one) = std::env::var("RAFT_SIM_ONE") {
        membership_run(one.parse().expect("seed"), 300);
        return;
    }
    let seeds = env_or("RAFT_SIM_SEEDS", 40);
    let initial = Membership::new(1..=5);
    let changed = (1..=seeds)
        .map(|seed| membership_run(seed, 300))
        .filter(|m| *m != initial)
        .count();
    assert!(
        changed * 2 > seeds as usize,
        "most runs end in another configuration ({changed} of {seeds})"
    );
}

#[test]
fn the_core_reports_its_protocol() {
    assert_eq!(RaftCore::PROTOCOL, "raft");
}

/// The leader's write in parallel with replication (thesis §10.2.1): a
/// leader that crashes after its replication left and before its own sync
/// loses its copy, acknowledges nothing, and is never counted towards a
/// quorum for it; the cluster then recovers. Several seeds, so elections
/// land on different nodes.
#[test]
fn leader_crash_before_its_own_sync_loses_nothing_acknowledged() {
    for seed in 1..=5 {
        consensus_sim::testing::leader_crash_before_own_sync::<RaftCore>(seed);
    }
}
