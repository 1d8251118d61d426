//! Randomized simulator runs of Multi-Paxos (a bounded slice for CI).
//!
//! `MULTIPAXOS_SIM_SEEDS=N` runs seeds `1..=N` of each fault mode instead of
//! the default slice; `MULTIPAXOS_SIM_FIRST=K` starts at seed `K`. The full
//! sweep goes through the CLI:
//! `cargo run --release --bin consensus-sim -- run --protocol multipaxos --nodes 5 --faults all --seeds 1..2000`.

use consensus_sim::{run, FaultMode, FaultTally, SimConfig};
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
    sweep_sized(5, faults, seeds(default_seeds), ops);
}

/// Runs the seeds at `nodes` nodes, fails with every failing seed, and
/// checks that each kind of fault the mode claims was injected at least
/// once.
fn sweep_sized(nodes: usize, faults: FaultMode, seeds: impl IntoIterator<Item = u64>, ops: usize) {
    let mut failures = Vec::new();
    let mut tally = FaultTally::default();
    for seed in seeds {
        let config = SimConfig {
            nodes,
            seed,
            ops,
            clients: 8,
            faults,
            ..SimConfig::default()
        };
        match run::<MultiPaxosCore>(&config) {
            Ok(report) => {
                tally.add(&report);
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
    tally.assert_covers(faults);
}

#[test]
fn no_faults() {
    sweep(FaultMode::None, 5, 2000);
}

#[test]
fn partitions() {
    sweep(FaultMode::Partitions, 10, 1000);
}

#[test]
fn crashes() {
    sweep(FaultMode::Crashes, 10, 1000);
}

#[test]
fn all_faults() {
    sweep(FaultMode::All, 20, 2000);
}

#[test]
fn clock_faults() {
    sweep(FaultMode::Clock, 10, 1000);
}

/// Even sizes, where an off-by-one quorum would let both halves of an
/// even split choose values.
#[test]
fn even_sizes() {
    sweep_sized(4, FaultMode::Partitions, 1..=10, 1000);
    sweep_sized(4, FaultMode::Crashes, 1..=3, 1000);
    sweep_sized(6, FaultMode::Partitions, 1..=14, 1000);
}

/// Random membership changes (the randomized runner does none) mixed with
/// crashes, partitions, compaction and writes, under the simulator's
/// invariants (agreement, no rollback, one leader per ballot), then a
/// liveness check once everything is healed.
#[test]
fn membership_chaos() {
    let changes_done = membership_chaos_seeds(seeds(30), true);
    assert!(changes_done > 0, "no membership change ever completed");
    println!("{changes_done} membership changes completed");
}

/// Seeds that once failed, kept as regression tests.
///
/// * membership chaos seed 3: the leader that proposed configuration
///   `(3 4)` was not part of it and stepped down at once; 3 and 4 had not
///   learned the configuration, so they did not know they were voters, and
///   nobody campaigned. Fixed by the hand-over nudge (crate docs,
///   "Membership").
#[test]
fn regressions() {
    membership_chaos_seeds([3], true);
}

/// The same chaos without membership changes (six voters): after healing,
/// **every** node must catch up with the leader — the randomized runner's
/// liveness check only demands that one new write commits.
#[test]
fn every_node_catches_up_after_chaos() {
    membership_chaos_seeds(seeds(20), false);
}

fn membership_chaos_seeds(seeds: impl IntoIterator<Item = u64>, reconfigure: bool) -> usize {
    use consensus_api::{Membership, NodeId};
    use consensus_sim::Cluster;
    use rand::{Rng, SeedableRng};

    let mut changes_done = 0;
    for seed in seeds {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut changes = Vec::new();
        let mut c = if reconfigure {
            let mut c = Cluster::<MultiPaxosCore>::new(3, seed);
            for id in 4..=6 {
                c.add_node(id, Membership::new([1, 2, 3]), |_| {});
            }
            c
        } else {
            Cluster::<MultiPaxosCore>::new(6, seed)
        };
        let mut down: Vec<NodeId> = Vec::new();
        let mut value = 0;
        for _ in 0..150 {
            match rng.random_range(0..10) {
                0..=3 => {
                    if let Some(leader) = c.leader() {
                        value += 1;
                        let _ = c.write(leader, "k", value);
                    }
                }
                4 if reconfigure => {
                    if let Some(leader) = c.leader() {
                        let mut voters: Vec<NodeId> =
                            (1..=6).filter(|_| rng.random_bool(0.5)).collect();
                        if voters.is_empty() {
                            voters.push(rng.random_range(1..=6));
                        }
                        let learners: Vec<NodeId> = (1..=6)
                            .filter(|n| !voters.contains(n) && rng.random_bool(0.3))
                            .collect();
                        if let Ok(ticket) =
                            c.change_membership(leader, Membership::with_learners(voters, learners))
                        {
                            changes.push((leader, c.incarnation(leader), ticket));
                        }
                    }
                }
                5 => {
                    let id = rng.random_range(1..=6);
                    if !down.contains(&id) && down.len() < 2 {
                        c.crash(id);
                        down.push(id);
                    }
                }
                6 => {
                    if let Some(id) = down.pop() {
                        c.restart(id);
                    }
                }
                7 => {
                    let id = rng.random_range(1..=6);
                    if !down.contains(&id) {
                        let _ = c.compact(id);
                    }
                }
                8 => {
                    let cut: Vec<NodeId> = (1..=6).filter(|_| rng.random_bool(0.3)).collect();
                    let rest: Vec<NodeId> = (1..=6).filter(|n| !cut.contains(n)).collect();
                    c.partition(&[&cut, &rest]);
                }
                _ => c.heal(),
            }
            c.run_ticks(rng.random_range(1..40));
        }
        c.heal();
        for id in down.drain(..) {
            c.restart(id);
        }
        if !c.run_until(2000, |c| c.leader().is_some()) {
            dump(&c);
            panic!("seed {seed}: no leader after healing");
        }
        let mut committed = false;
        for _ in 0..20 {
            let Some(leader) = c.leader() else {
                c.run_ticks(50);
                continue;
            };
            let outcome = c.write_sync(leader, "final", 1, 300);
            if outcome.is_ok() {
                committed = true;
                break;
            }
            if std::env::var("MULTIPAXOS_SIM_VERBOSE").is_ok() {
                eprintln!("t={} write at {leader}: {outcome:?}", c.now_ticks());
                dump(&c);
            }
            c.run_ticks(20);
        }
        if !committed {
            dump(&c);
            panic!("seed {seed}: no write commits after healing");
        }
        let leader = c.leader().unwrap();
        let members = c.status(leader).membership.all_nodes();
        let target = c.status(leader).commit_index;
        assert!(
            c.run_until(2000, |c| members
                .iter()
                .all(|n| c.applied_index(*n) >= target)),
            "seed {seed}: members of {:?} did not converge",
            c.status(leader).membership
        );
        c.check().unwrap();
        changes_done += changes
            .iter()
            .filter(|(node, incarnation, ticket)| {
                c.incarnation(*node) == *incarnation
                    && matches!(c.outcome(*node, *ticket), Some(Ok(_)))
            })
            .count();
    }
    changes_done
}

fn dump(c: &consensus_sim::Cluster<MultiPaxosCore>) {
    for n in c.node_ids() {
        let Some(s) = c.try_status(n) else {
            eprintln!("node {n}: down");
            continue;
        };
        eprintln!(
            "node {n}: {:?} b={} commit={} applied={} last={} snap={} conf={} leader={:?} peers={:?}",
            s.role,
            multipaxos::Ballot::from_epoch(s.epoch),
            s.commit_index,
            s.applied_index,
            s.last_index,
            s.snapshot_index,
            s.membership,
            s.leader,
            s.peers
        );
    }
    for m in c.in_flight().iter().take(30) {
        eprintln!("{m:?}");
    }
}

/// The leader's write in parallel with replication (thesis §10.2.1): a
/// leader that crashes after its replication left and before its own sync
/// loses its copy, acknowledges nothing, and is never counted towards a
/// quorum for it; the cluster then recovers. Several seeds, so elections
/// land on different nodes.
#[test]
fn leader_crash_before_its_own_sync_loses_nothing_acknowledged() {
    for seed in 1..=5 {
        consensus_sim::testing::leader_crash_before_own_sync::<MultiPaxosCore>(seed);
    }
}
