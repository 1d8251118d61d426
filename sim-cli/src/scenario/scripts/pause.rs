//! `gc-pause` and `slow-follower`.

use consensus_api::{Core, NodeId, Role, Status};

use super::{
    expect, first_ok_write, longest_ok_gap, meaning, not_applicable, ns, settle, warm_up,
    Expectation, Harness, ScenarioInfo,
};
use crate::scenario::checks::at_since;
use crate::scenario::clients::{OpChoice, Reach};
use crate::scenario::record::{format_epoch, Outcome};

pub(super) const GC_PAUSE: ScenarioInfo = ScenarioInfo {
    name: "gc-pause",
    title: "the leader stops for 30 s and resumes believing it leads",
    story: "At 1.5 s the leader stops (a stop-the-world pause: no ticks, no messages handled) \
            for 30 s of virtual time. Two clients keep sending it requests, which wait in its \
            socket; two others use the rest of the cluster, which elects a new leader. At \
            31.5 s it resumes: it serves the requests that waited, and a fresh read and write, \
            before it reads its mail, still believing it leads. Whatever it serves must be \
            correct; it steps down.",
    source: "seed, \"GC pauses and stop-the-world\" (answer: a leader that pauses for 30 s \
             triggers an election; when it returns it observes a higher term and steps down) \
             and \"leases can break linearizability if pauses occur\"",
    min_nodes: 3,
    row_every_ns: 2_000_000_000,
};

pub(super) const SLOW_FOLLOWER: ScenarioInfo = ScenarioInfo {
    name: "slow-follower",
    title: "one follower's links are 50 times slower",
    story: "From 1.5 s to 6.5 s every message to or from one follower takes 50 times longer \
            (25-250 ms instead of 0.5-5 ms); every node takes a snapshot every 0.5 s. The \
            follower lags; commits continue; once its links recover it catches up, by log \
            entries or by a snapshot.",
    source: "seed, \"Raft failure scenarios\" 3: slow follower (answer: it lags far behind; \
             the leader keeps nextIndex/matchIndex per follower) and \"a follower can apply \
             an uncommitted entry\" (answer: no)",
    min_nodes: 3,
    row_every_ns: 0,
};

/// The leader is paused from 1.5 s to 31.5 s.
pub(super) fn gc_pause<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let others = h.others(&[leader]);
    let epoch_before = h.cluster.status(leader).epoch;
    h.place_clients(&[
        (leader, Reach::Only),
        (leader, Reach::Only),
        (others[0], Reach::Anywhere),
        (others[others.len() - 1], Reach::Anywhere),
    ]);
    let pause = h.pause(leader);
    let paused_at = h.now_ns();
    h.run_to(31.5);
    expectations.push(others_carry_on(h, leader, epoch_before, paused_at));
    let believed = h.cluster.status(leader);
    h.resume(leader, pause);
    let resumed_at = h.now_ns();
    // A client that still believes the old leader leads, right as it resumes.
    let read = h.one_shot(leader, OpChoice::Read);
    let write = h.one_shot(leader, OpChoice::Write);
    expectations.push(resumes_believing(h, leader, &believed));
    let stepped = h.run_until_ns(resumed_at + ns(1.0), |h| {
        let status = h.cluster.status(leader);
        status.role != Role::Leader || status.epoch > epoch_before
    });
    let stepped_at = stepped.then_some(h.now_ns());
    h.run_to(33.0);
    expectations.push(served_after_resume(h, leader, resumed_at, &[read, write]));
    expectations.push(steps_down_after_resume(
        h,
        leader,
        epoch_before,
        resumed_at,
        stepped_at,
    ));
    settle(h, &mut expectations, 34.0);
    (meaning(h, leader), expectations)
}

/// "The others elect a new leader during the pause and keep committing."
fn others_carry_on<C: Core>(
    h: &Harness<C>,
    leader: NodeId,
    epoch_before: u64,
    paused_at: u64,
) -> Expectation {
    let first = first_ok_write(h, paused_at);
    if h.flavor.leaderless {
        return expect(
            "the clients of the other nodes keep committing during the pause",
            first.is_some(),
            match first {
                Some(t) => format!(
                    "first write during the pause committed at {}",
                    at_since(t, paused_at)
                ),
                None => "nothing committed during the pause".into(),
            },
        );
    }
    let new = h
        .leader()
        .filter(|&l| l != leader)
        .map(|l| (l, h.cluster.status(l).epoch));
    expect(
        "the others elect a new leader during the pause and keep committing",
        new.is_some_and(|(_, e)| e > epoch_before) && first.is_some(),
        match (new, first) {
            (Some((l, e)), Some(t)) => format!(
                "node {l} leads {}; first write committed at {}",
                format_epoch(h.flavor.protocol, e),
                at_since(t, paused_at)
            ),
            _ => "no new leader, or nothing committed".into(),
        },
    )
}

/// "It resumes believing it leads" (and a note on the timeline).
fn resumes_believing<C: Core>(
    h: &mut Harness<C>,
    leader: NodeId,
    believed: &Status,
) -> Expectation {
    let statement = "it resumes believing it leads";
    if h.flavor.leaderless {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let protocol = h.flavor.protocol;
    let leads = believed.role == Role::Leader;
    if leads {
        h.note(format!(
            "node {leader} resumes believing it leads {}",
            format_epoch(protocol, believed.epoch)
        ));
    }
    expect(
        statement,
        leads,
        format!(
            "node {leader} resumed as {} of {}",
            believed.role,
            format_epoch(protocol, believed.epoch)
        ),
    )
}

/// "It steps down within 1 s of resuming."
fn steps_down_after_resume<C: Core>(
    h: &Harness<C>,
    leader: NodeId,
    epoch_before: u64,
    resumed_at: u64,
    stepped_at: Option<u64>,
) -> Expectation {
    let statement = "it steps down within 1 s of resuming";
    if h.flavor.leaderless {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let epoch = format_epoch(h.flavor.protocol, epoch_before);
    expect(
        statement,
        stepped_at.is_some(),
        match stepped_at {
            Some(t) => format!(
                "node {leader} gave up {epoch} at {}",
                at_since(t, resumed_at)
            ),
            None => format!("node {leader} still leads {epoch} 1 s after resuming"),
        },
    )
}

/// What the resumed node served; correctness itself is the history's
/// linearizability (a stale read or a lost write would break it).
fn served_after_resume<C: Core>(
    h: &Harness<C>,
    node: NodeId,
    resumed_at: u64,
    probes: &[usize],
) -> Expectation {
    let served: Vec<_> = h
        .ops()
        .iter()
        .filter(|op| op.node == node && op.ended_ns.is_some_and(|t| t >= resumed_at))
        .collect();
    let count = |outcome| {
        served
            .iter()
            .filter(|op| op.outcome == Some(outcome))
            .count()
    };
    let history = consensus_sim::linearizability::check(&h.history());
    let probe_text: Vec<String> = probes
        .iter()
        .map(|&i| {
            let op = &h.ops()[i];
            format!(
                "{} of {} {}",
                op.op,
                op.key,
                op.outcome.map_or("pending".into(), |o| o.to_string())
            )
        })
        .collect();
    expect(
        "every read or write it serves after resuming is correct (the history stays linearizable)",
        history.is_linearizable(),
        format!(
            "node {node} answered {} ok, {} failed, {} unknown after resuming ({}){}",
            count(Outcome::Ok),
            count(Outcome::Failed),
            count(Outcome::Unknown),
            probe_text.join(", "),
            if history.is_linearizable() {
                String::new()
            } else {
                format!(": {history}")
            }
        ),
    )
}

/// One follower's links are 50x slower from 1.5 s to 6.5 s.
pub(super) fn slow_follower<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let slow = *h.others(&[leader]).last().expect("at least 3 nodes");
    let elected_before = h.cluster.stats().leaders_elected;
    h.set_compaction(ns(0.5));
    h.cluster.slow_node(slow, 50.0);
    let fault = h.begin_fault(format!("node {slow}'s links 50x slower"), vec![slow]);
    let start = h.now_ns();
    let snapshots_before = h.cluster.stats().snapshots_installed;
    h.run_to(6.5);
    let max_lag = max_lag(h, slow, start);
    let gaps = longest_ok_gap(h, start, h.now_ns());
    expectations.push(expect(
        "commits continue while the follower is slow (no second without a committed write)",
        gaps <= ns(1.0),
        format!(
            "longest time without a committed write: {} ms",
            gaps / 1_000_000
        ),
    ));
    expectations.push(expect(
        "the slow follower lags behind",
        max_lag >= 5,
        format!("node {slow} was up to {max_lag} entries behind"),
    ));
    let changes = h.cluster.stats().leaders_elected - elected_before;
    let statement = "the slow follower does not depose the leader (pre-vote; ZAB: the others follow the leader they hear)";
    expectations.push(if h.flavor.leaderless {
        not_applicable(statement, "classic Paxos has no leader")
    } else {
        expect(
            statement,
            changes == 0,
            format!("{changes} leaders elected while it was slow"),
        )
    });
    h.cluster.slow_node(slow, 1.0);
    h.end_fault(fault);
    let recovered = h.now_ns();
    let target = h.max_commit(&h.others(&[slow]));
    let caught = h.run_until_ns(recovered + ns(2.0), |h| {
        h.cluster.applied_index(slow) >= target
    });
    let snapshots = h.cluster.stats().snapshots_installed - snapshots_before;
    expectations.push(expect(
        "it catches up within 2 s once its links recover (by log or by snapshot)",
        caught,
        if caught {
            format!(
                "node {slow} applied index {target} at {}; snapshots installed since it slowed down: {snapshots}",
                at_since(h.now_ns(), recovered)
            )
        } else {
            format!("node {slow} did not reach index {target} within 2 s")
        },
    ));
    settle(h, &mut expectations, 9.0);
    (meaning(h, leader), expectations)
}

/// How far the slow node's applied index fell behind the others' highest
/// commit index, at the samples since `start`.
fn max_lag<C: Core>(h: &Harness<C>, slow: NodeId, start: u64) -> u64 {
    h.samples
        .iter()
        .filter(|s| s.time_ns >= start)
        .map(|s| {
            let others = s
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as NodeId + 1 != slow)
                .map(|(_, n)| n.commit)
                .max()
                .unwrap_or(0);
            others.saturating_sub(s.nodes[slow as usize - 1].applied)
        })
        .max()
        .unwrap_or(0)
}
