//! Failover phase timing (ticks from a leader crash), printed with
//! `--nocapture`; run with `--ignored`.
mod common;

use std::collections::BTreeSet;

use common::Net;
use consensus_api::Role;

fn median(v: &mut [u64]) -> u64 {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore]
fn failover_phases() {
    phases_of(false);
    phases_of(true);
}

fn phases_of(interleaved: bool) {
    println!("interleaved ticks: {interleaved}");
    let names = [
        "looking",
        "settled",
        "epoch",
        "established",
        "committed",
        "2nd looking",
    ];
    let mut phases: Vec<Vec<u64>> = vec![Vec::new(); 6];
    for seed in 0..200u64 {
        let mut net = Net::with_config(3, |c| c.seed = c.id * 7919 + seed * 104729);
        let leader = net.elect();
        net.propose(leader, "a").unwrap();
        net.run(5 + seed % 7);
        net.crash(leader);
        let survivors: Vec<u64> = (1..=3).filter(|&n| n != leader).collect();
        let mut at = [None::<u64>; 6];
        let mut ticket = None;
        let mut ever_looking = BTreeSet::new();
        let mut new_leader = 0;
        let mut rng = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for t in 1..=400u64 {
            if interleaved {
                // Each node ticks on its own clock: a random order, and the
                // messages of one node's tick flow before the next ticks.
                let mut order: Vec<u64> = (1..=3).collect();
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                order.rotate_left((rng >> 33) as usize % 3);
                if (rng >> 40) & 1 == 1 {
                    order.swap(0, 1);
                }
                for id in order {
                    net.tick(id);
                    net.deliver_all();
                }
            } else {
                net.run(1);
            }
            let names: Vec<String> = survivors
                .iter()
                .map(|&n| net.core(n).state_name())
                .collect();
            if at[0].is_none() && names.iter().any(|s| s.starts_with("looking")) {
                at[0] = Some(t);
            }
            let mut seen = BTreeSet::new();
            for (n, s) in survivors.iter().zip(&names) {
                if s.starts_with("looking") {
                    seen.insert(*n);
                }
            }
            ever_looking.extend(seen);
            if at[5].is_none() && ever_looking.len() == 2 {
                at[5] = Some(t);
            }
            if at[1].is_none() && names.iter().all(|s| !s.starts_with("looking")) && at[0].is_some()
            {
                at[1] = Some(t);
            }
            if at[2].is_none()
                && names
                    .iter()
                    .any(|s| s.starts_with("leading sync") || s.starts_with("leading broadcast"))
            {
                at[2] = Some(t);
            }
            if at[3].is_none() {
                if let Some(&l) = survivors
                    .iter()
                    .find(|&&n| net.status(n).role == Role::Leader)
                {
                    at[3] = Some(t);
                    new_leader = l;
                    ticket = Some(net.propose(l, "b").unwrap());
                }
            }
            if let Some(tk) = ticket {
                if net.outcome(new_leader, tk).is_some() {
                    at[4] = Some(t);
                    break;
                }
            }
        }
        if at[4].is_none_or(|c| c > 40) {
            println!("seed {seed}: {at:?}");
        }
        for (i, a) in at.iter().enumerate() {
            phases[i].push(a.expect("phase reached"));
        }
    }
    for (i, v) in phases.iter_mut().enumerate() {
        let max = *v.iter().max().unwrap();
        println!("{:12} median {:4} max {:4}", names[i], median(v), max);
    }
}
