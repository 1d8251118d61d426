//! Failover phase timing: ticks from a leader crash to each phase of the
//! recovery, over many seeds, printed as medians and 99th percentiles. A
//! measurement, not a check: run with
//!
//! ```text
//! cargo test -p zab --test failover_phases -- --ignored --nocapture
//! ```
//!
//! (`FAILOVER_SEEDS` sets the number of seeds, 1000 by default.) Timing as
//! the runtime's defaults: heartbeat 5 ticks, election timeout 15..30 ticks.
//! Three schedules: *synchronous* (every node ticks, then every message
//! flows); *interleaved* (each node ticks on its own clock: a random order
//! per tick, and the messages of one node's tick flow before the next
//! ticks), which is closer to separate processes and exposes messages that
//! arrive a moment before their receiver is ready for them; and *lossy*
//! (interleaved, and one message in 20 is lost after the crash), which
//! shows what retransmissions and late joiners cost.
//!
//! Milestones, in ticks from the crash:
//! * `looking`: the first survivor gives its leader up (it is no longer
//!   following the crashed leader when the tick ends);
//! * `quorum looking`: enough survivors have given it up to form a quorum;
//! * `leading`: a survivor settled as (prospective) leader;
//! * `epoch`: it has a quorum of fresh ACKEPOCHs (synchronization began);
//! * `established`: it is `Role::Leader` (a quorum acked NEWLEADER);
//! * `committed`: a proposal made at once then is committed.
//!
//! Phases are the differences between consecutive milestones.
mod common;

use std::collections::BTreeSet;

use common::{Net, ZabNet};
use consensus_api::Role;

const MILESTONES: [&str; 6] = [
    "looking",
    "quorum looking",
    "leading",
    "epoch",
    "established",
    "committed",
];

const PHASES: [&str; 6] = [
    "detection (crash -> looking)",
    "joining (-> quorum looking)",
    "election (-> leading)",
    "discovery (-> epoch)",
    "synchronization (-> established)",
    "first commit (-> committed)",
];

fn percentile(values: &mut [u64], p: usize) -> u64 {
    values.sort_unstable();
    let rank = (values.len() * p).div_ceil(100).max(1);
    values[rank - 1]
}

#[test]
#[ignore = "a measurement, not a check (1000 seeds x 6 schedules): cargo test -p zab --test failover_phases -- --ignored --nocapture"]
fn failover_phases() {
    let seeds: u64 = std::env::var("FAILOVER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for nodes in [3, 5] {
        for schedule in [
            Schedule::Synchronous,
            Schedule::Interleaved,
            Schedule::Lossy,
        ] {
            phases_of(nodes, schedule, seeds);
        }
    }
}

/// How the nodes tick and messages flow after the crash.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Schedule {
    /// Every node ticks, then every message flows.
    Synchronous,
    /// Each node ticks in a random order, its messages flowing at once.
    Interleaved,
    /// Interleaved, and each message is lost with probability 1/20.
    Lossy,
}

/// Delivers everything queued, losing each message with probability
/// 1/20 when `lossy`.
fn deliver(net: &mut Net, lossy: bool, rng: &mut u64) {
    while let Some((from, to, message)) = net.queue.pop_front() {
        if lossy && next(rng) % 20 == 0 {
            continue;
        }
        net.deliver(from, to, message);
    }
}

/// A small LCG for the tick order: the harness's own randomness, seeded.
fn next(rng: &mut u64) -> u64 {
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *rng >> 33
}

/// Milestones of one failover (`None`: not reached within the bound).
fn one_failover(nodes: u64, schedule: Schedule, seed: u64) -> [Option<u64>; 6] {
    let mut net = Net::with_config(nodes, |c| c.seed = c.id * 7919 + seed * 104729);
    let leader = net.elect();
    net.propose(leader, "a").unwrap();
    net.run(5 + seed % 7);
    net.crash(leader);
    let survivors: Vec<u64> = (1..=nodes).filter(|&n| n != leader).collect();
    let quorum = nodes as usize / 2 + 1;
    let mut at = [None::<u64>; 6];
    let mut ever_looking = BTreeSet::new();
    let mut ticket = None;
    let mut new_leader = 0;
    let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
    for t in 1..=600u64 {
        if schedule == Schedule::Synchronous {
            net.run(1);
        } else {
            let mut order = survivors.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, next(&mut rng) as usize % (i + 1));
            }
            for id in order {
                net.tick(id);
                deliver(&mut net, schedule == Schedule::Lossy, &mut rng);
            }
        }
        let names: Vec<(u64, String)> = survivors
            .iter()
            .map(|&n| (n, net.core(n).state_name()))
            .collect();
        let old_leader = format!("following {leader} ");
        for (n, name) in &names {
            if !name.starts_with(&old_leader) {
                ever_looking.insert(*n);
            }
        }
        let mark = |at: &mut [Option<u64>; 6], i: usize, reached: bool| {
            if at[i].is_none() && reached {
                at[i] = Some(t);
            }
        };
        mark(&mut at, 0, !ever_looking.is_empty());
        mark(&mut at, 1, ever_looking.len() >= quorum);
        let leading = |prefix: &[&str]| {
            names
                .iter()
                .any(|(_, s)| prefix.iter().any(|p| s.starts_with(p)))
        };
        mark(&mut at, 2, leading(&["leading"]));
        mark(&mut at, 3, leading(&["leading sync", "leading broadcast"]));
        if at[4].is_none() {
            if let Some(&l) = survivors
                .iter()
                .find(|&&n| net.status(n).role == Role::Leader)
            {
                at[4] = Some(t);
                new_leader = l;
                ticket = Some(net.propose(l, "b").unwrap());
            }
        }
        if let Some(tk) = ticket {
            if net.outcome(new_leader, tk).is_some() {
                at[5] = Some(t);
                break;
            }
        }
    }
    at
}

fn phases_of(nodes: u64, schedule: Schedule, seeds: u64) {
    println!("\n{nodes} nodes, {schedule:?} ticks, {seeds} seeds (ticks from the crash)");
    let mut milestones: Vec<Vec<u64>> = vec![Vec::new(); 6];
    let mut phases: Vec<Vec<u64>> = vec![Vec::new(); 6];
    for seed in 0..seeds {
        let at = one_failover(nodes, schedule, seed);
        let Some(reached) = at.iter().copied().collect::<Option<Vec<u64>>>() else {
            panic!("seed {seed}: not every milestone reached: {at:?}");
        };
        let mut previous = 0;
        for (i, t) in reached.iter().enumerate() {
            milestones[i].push(*t);
            phases[i].push(t.saturating_sub(previous));
            previous = previous.max(*t);
        }
    }
    println!(
        "  {:34} {:>6} {:>6} {:>6}",
        "milestone", "median", "p99", "max"
    );
    for (name, values) in MILESTONES.iter().zip(milestones.iter_mut()) {
        let (median, p99) = (percentile(values, 50), percentile(values, 99));
        let max = *values.iter().max().expect("values");
        println!("  {name:34} {median:>6} {p99:>6} {max:>6}");
    }
    println!("  {:34} {:>6} {:>6} {:>6}", "phase", "median", "p99", "max");
    for (name, values) in PHASES.iter().zip(phases.iter_mut()) {
        let (median, p99) = (percentile(values, 50), percentile(values, 99));
        let max = *values.iter().max().expect("values");
        println!("  {name:34} {median:>6} {p99:>6} {max:>6}");
    }
}
