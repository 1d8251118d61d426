//! `leader-crash` and `crash-mid-reconfig`.

use consensus_api::{Core, Membership, NodeId, Payload};

use super::{
    expect, first_ok_write, meaning, not_applicable, ns, settle, warm_up, Expectation, Harness,
    ScenarioInfo,
};
use crate::scenario::checks::at_since;
use crate::scenario::harness::format_set;
use crate::scenario::record::{format_epoch, seconds};

pub(super) const LEADER_CRASH: ScenarioInfo = ScenarioInfo {
    name: "leader-crash",
    title: "the leader crashes; the other four stay connected",
    story: "Three clients write and read through the leader. At 1.5 s the leader crashes; \
            the survivors elect a new leader (classic Paxos: the clients move to another node) \
            and commit again. At 4.5 s the old leader restarts and catches up as a follower.",
    source: "seed, \"Paxos failure scenarios\" 1: the leader crashes, 4 nodes remain connected \
             (answer: unavailable briefly, a new leader is elected, safety holds)",
    min_nodes: 3,
    row_every_ns: 0,
};

pub(super) const CRASH_MID_RECONFIG: ScenarioInfo = ScenarioInfo {
    name: "crash-mid-reconfig",
    title: "the leader crashes while a membership change is in flight",
    story: "At 1.5 s the leader starts removing one follower. As soon as the change's log \
            entry is on a quorum's disks, and before the change completes, the leader crashes. \
            The survivors finish the change from their logs. At 4.5 s the old leader \
            restarts and learns the new configuration.",
    source: "seed, \"Raft configuration changes\": leader crash mid-transition (answer: the \
             configuration is a log entry; after the crash the cluster continues the \
             transition from the log)",
    min_nodes: 4,
    row_every_ns: 0,
};

/// The leader crashes at 1.5 s and restarts at 4.5 s.
pub(super) fn leader_crash<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let epoch_before = h.cluster.status(leader).epoch;
    let crash = h.crash(leader);
    let crashed_at = h.now_ns();
    h.run_to(4.5);
    let first = first_ok_write(h, crashed_at);
    let within = first.is_some_and(|t| t - crashed_at <= ns(2.0));
    let statement = if h.flavor.leaderless {
        "the clients move to another node and commit again within 2 s (no leader to replace)"
    } else {
        "the survivors elect a new leader and commit again within 2 s"
    };
    let detail = match first {
        Some(t) => format!(
            "first write after the crash committed at {}",
            at_since(t, crashed_at)
        ),
        None => "no write committed after the crash".into(),
    };
    expectations.push(expect(statement, within, detail));
    let statement = "the new leader's epoch is higher than the crashed leader's";
    if h.flavor.leaderless {
        expectations.push(not_applicable(statement, "classic Paxos has no leader"));
    } else {
        let protocol = h.flavor.protocol;
        let new = h.leader().map(|l| (l, h.cluster.status(l).epoch));
        let held = new.is_some_and(|(l, e)| l != leader && e > epoch_before);
        let detail = match new {
            Some((l, e)) => format!(
                "node {leader} led {}; node {l} leads {}",
                format_epoch(protocol, epoch_before),
                format_epoch(protocol, e)
            ),
            None => "no leader at 4.5 s".into(),
        };
        expectations.push(expect(statement, held, detail));
    }
    h.restart(leader, crash);
    let restarted_at = h.now_ns();
    let others = h.others(&[leader]);
    let target = h.max_commit(&others);
    let caught_up = h.run_until_ns(restarted_at + ns(1.5), |h| {
        h.cluster.is_alive(leader) && h.cluster.applied_index(leader) >= target
    });
    let detail = if caught_up {
        format!(
            "node {leader} applied index {target} at {}",
            at_since(h.now_ns(), restarted_at)
        )
    } else {
        format!("node {leader} did not apply index {target} within 1.5 s")
    };
    expectations.push(expect(
        "the restarted node catches up within 1.5 s",
        caught_up,
        detail,
    ));
    settle(h, &mut expectations, 6.5);
    (meaning(h, leader), expectations)
}

/// True when the durable logs of a majority of `voters` hold a membership
/// entry above `above`.
fn change_on_quorum<C: Core>(h: &Harness<C>, voters: &[NodeId], above: u64) -> bool {
    let holders = voters
        .iter()
        .filter(|&&n| {
            h.cluster
                .store(n)
                .durable()
                .entries
                .range(above + 1..)
                .any(|(_, e)| matches!(e.payload, Payload::Membership(_)))
        })
        .count();
    holders > voters.len() / 2
}

/// The leader removes a follower and crashes while the change is in flight.
pub(super) fn crash_mid_reconfig<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let all = h.cluster.node_ids();
    let removed = *h.others(&[leader]).last().expect("at least 4 nodes");
    let target: Vec<NodeId> = h.others(&[removed]);
    let membership = Membership::new(target.iter().copied());
    let above = h.cluster.status(leader).last_index;
    let change = h.cluster.change_membership(leader, membership.clone());
    h.after_event();
    h.note(format!(
        "node {leader} starts the change {} -> {} (removing node {removed})",
        format_set(&all),
        format_set(&target)
    ));
    let started = h.now_ns();
    let ticket_done = |h: &Harness<C>, ticket| h.cluster.outcome(leader, ticket).is_some();
    let in_flight = match change {
        Ok(ticket) => {
            h.run_until_ns(started + ns(1.0), |h| {
                ticket_done(h, ticket) || change_on_quorum(h, &all, above)
            });
            let on_quorum = change_on_quorum(h, &all, above);
            let done = ticket_done(h, ticket);
            let detail = format!(
                "at {} the change's entry was on a quorum's disks: {on_quorum}; the change had completed: {done}",
                at_since(h.now_ns(), started)
            );
            expect(
                "the change is in flight when the leader crashes (on a quorum's disks, not completed)",
                on_quorum && !done,
                detail,
            )
        }
        Err(rejected) => expect(
            "the change is in flight when the leader crashes (on a quorum's disks, not completed)",
            false,
            format!("node {leader} refused the change: {rejected}"),
        ),
    };
    expectations.push(in_flight);
    let crash = h.crash(leader);
    let crashed_at = h.now_ns();
    h.removed.insert(removed);
    let survivors: Vec<NodeId> = target.iter().copied().filter(|&n| n != leader).collect();
    let change = Change {
        leader,
        crash,
        crashed_at,
        survivors,
        membership,
    };
    if h.flavor.leaderless {
        paxos_change_is_chosen(h, &change, &mut expectations);
    } else {
        change_completes(h, &change, &mut expectations);
    }
    settle(h, &mut expectations, 7.0);
    (meaning(h, leader), expectations)
}

/// What the leader-based scripts need to know about the change.
struct Change {
    leader: NodeId,
    crash: usize,
    crashed_at: u64,
    survivors: Vec<NodeId>,
    membership: Membership,
}

/// Leader-based protocols: the survivors finish the change, commit under
/// it, and the restarted leader learns it.
fn change_completes<C: Core>(
    h: &mut Harness<C>,
    change: &Change,
    expectations: &mut Vec<Expectation>,
) {
    let completed = h.run_until_ns(change.crashed_at + ns(2.5), |h| {
        change.survivors.iter().all(|&n| {
            h.cluster
                .try_status(n)
                .is_some_and(|s| s.membership == change.membership)
        })
    });
    let completed_at = h.now_ns();
    let detail = if completed {
        format!(
            "every survivor had {} in force at {}",
            change.membership,
            at_since(completed_at, change.crashed_at)
        )
    } else {
        let views: Vec<String> = change
            .survivors
            .iter()
            .filter_map(|&n| {
                h.cluster
                    .try_status(n)
                    .map(|s| format!("node {n}: {}", s.membership))
            })
            .collect();
        format!("after 2.5 s: {}", views.join("; "))
    };
    expectations.push(expect(
        "the survivors complete the transition from their logs within 2.5 s",
        completed,
        detail,
    ));
    h.run_to(4.5);
    let first = first_ok_write(h, completed_at);
    expectations.push(expect(
        "the cluster commits under the new configuration",
        completed && first.is_some(),
        match first {
            Some(t) => format!("first write after the change committed at {}", seconds(t)),
            None => "no write committed after the change".into(),
        },
    ));
    h.restart(change.leader, change.crash);
    let restarted_at = h.now_ns();
    let learned = h.run_until_ns(restarted_at + ns(1.5), |h| {
        h.cluster
            .try_status(change.leader)
            .is_some_and(|s| s.membership == change.membership)
    });
    expectations.push(expect(
        "the restarted old leader learns the new configuration within 1.5 s",
        learned,
        if learned {
            format!("at {}", at_since(h.now_ns(), restarted_at))
        } else {
            format!(
                "node {} still has {}",
                change.leader,
                h.cluster
                    .try_status(change.leader)
                    .map_or("nothing (crashed)".into(), |s| s.membership.to_string())
            )
        },
    ));
}

/// Classic Paxos: a change is a chosen value that governs the slots
/// `ALPHA` (1024) after its own; the survivors must learn it from the log.
fn paxos_change_is_chosen<C: Core>(
    h: &mut Harness<C>,
    change: &Change,
    expectations: &mut Vec<Expectation>,
) {
    let chosen_slot = |h: &Harness<C>| {
        h.cluster.committed_log().find_map(|(index, payload)| {
            matches!(payload, Payload::Membership(m) if *m == change.membership).then_some(index)
        })
    };
    h.run_until_ns(change.crashed_at + ns(2.5), |h| chosen_slot(h).is_some());
    let slot = chosen_slot(h);
    expectations.push(expect(
        "the survivors learn the change from the log: its slot is chosen",
        slot.is_some(),
        match slot {
            Some(s) => format!(
                "chosen at slot {s}, learned at {}",
                at_since(h.now_ns(), change.crashed_at)
            ),
            None => "the change's slot was not chosen within 2.5 s".into(),
        },
    ));
    h.run_to(4.5);
    let reached = h.max_commit(&change.survivors);
    expectations.push(not_applicable(
        "the new configuration is in force on every survivor",
        &match slot {
            Some(s) => format!(
                "classic Paxos: a change governs the slots ALPHA = 1024 after its own, from slot {}; the run reaches slot {reached}, and only the proposer (crashed) fills that window with no-ops",
                s + 1024
            ),
            None => "the change was not chosen".into(),
        },
    ));
    h.restart(change.leader, change.crash);
    let restarted_at = h.now_ns();
    let learned = slot.is_some_and(|s| {
        h.run_until_ns(restarted_at + ns(1.5), |h| {
            h.cluster.is_alive(change.leader) && h.cluster.applied_index(change.leader) >= s
        })
    });
    expectations.push(expect(
        "the restarted proposer learns the chosen change within 1.5 s",
        learned,
        if learned {
            format!("at {}", at_since(h.now_ns(), restarted_at))
        } else {
            format!("node {} did not apply the change's slot", change.leader)
        },
    ));
}
