//! `partition-3-2` and `old-leader-isolated`.

use consensus_api::{Core, NodeId, Role};

use super::{
    expect, meaning, not_applicable, ns, settle, side_elects, warm_up, writes_at, Expectation,
    Harness, ScenarioInfo,
};
use crate::scenario::checks::at_since;
use crate::scenario::clients::Reach;
use crate::scenario::record::{format_epoch, seconds, Outcome};

pub(super) const PARTITION_3_2: ScenarioInfo = ScenarioInfo {
    name: "partition-3-2",
    title: "a 3 | 2 partition with the leader on the 2-node side",
    story: "At 1.5 s the leader and one follower are cut off from the other three. A client \
            on every node keeps writing and reading on its own side. The minority must refuse \
            fast and acknowledge nothing; the majority elects a leader and commits. At 5.5 s \
            the partition heals: the minority's uncommitted entries are discarded and every \
            node converges on the majority's log.",
    source: "seed, \"Paxos failure scenarios\" 2 and \"Raft failure scenarios\" 1 (answer: \
             only the 3-node side can commit; the minority should reject writes quickly; \
             after the heal the old leader's uncommitted tail is overwritten)",
    min_nodes: 3,
    row_every_ns: 0,
};

pub(super) const OLD_LEADER_ISOLATED: ScenarioInfo = ScenarioInfo {
    name: "old-leader-isolated",
    title: "the leader alone, still receiving requests",
    story: "At 1.5 s every link of the leader is cut. Two clients keep sending requests to it; \
            two others use the rest of the cluster, which elects a new leader. At 5.5 s the \
            links come back and the old leader, if it has not already, steps down.",
    source: "seed, \"Raft failure scenarios\" 2: old leader isolated (answer: it may keep \
             accepting requests but cannot commit; it must reject or not acknowledge them, \
             and it steps down when it sees the higher term)",
    min_nodes: 3,
    row_every_ns: 0,
};

/// The leader and `(n - 1) / 2 - 1` followers against the rest.
pub(super) fn partition_3_2<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let followers = h.others(&[leader]);
    let minority_size = (h.cluster.len() - 1) / 2;
    let mut minority = vec![leader];
    minority.extend(followers.iter().take(minority_size.saturating_sub(1)));
    let majority = h.others(&minority);
    let placements: Vec<(NodeId, Reach)> = minority
        .iter()
        .chain(&majority)
        .map(|&n| (n, Reach::SideOf))
        .collect();
    h.place_clients(&placements);
    let epoch_before = h.cluster.status(leader).epoch;
    let last_before = h
        .cluster
        .node_ids()
        .into_iter()
        .filter_map(|n| h.cluster.try_status(n).map(|s| s.last_index))
        .max()
        .unwrap_or(0);
    let cut = h.partition(&[minority.clone(), majority.clone()]);
    let start = h.now_ns();
    let watch = watch_minority_commit(h, &minority, last_before);
    h.run_to(5.5);
    let minority_bound = h.unwatch(watch);
    let majority_commit = h.max_commit(&majority);
    let sizes = format!("{}-node", majority.len());
    expectations.push(expect(
        format!("only the {sizes} side commits"),
        minority_bound.is_none() && majority_commit > last_before,
        minority_bound.unwrap_or_else(|| {
            format!(
                "minority commit stayed at or below {last_before}; the majority reached {majority_commit}"
            )
        }),
    ));
    let (ok, failed, unknown) = writes_at(h, &minority, start, h.now_ns());
    expectations.push(expect(
        "the minority never acknowledges a write",
        ok == 0,
        format!("writes on the minority side: {ok} ok, {failed} failed, {unknown} unknown"),
    ));
    expectations.push(fails_fast(h, &minority, start));
    expectations.push(side_elects(
        h,
        &majority,
        epoch_before,
        start,
        "the majority elects a new leader and commits",
        "the majority side commits (no leader to elect)",
    ));
    h.heal(cut);
    settle(h, &mut expectations, 8.0);
    expectations.push(no_longer_leads(h, leader, epoch_before));
    (meaning(h, leader), expectations)
}

/// Watches the minority's commit index: it must never pass `bound`, the
/// last index that existed when the partition began.
fn watch_minority_commit<C: Core>(h: &mut Harness<C>, minority: &[NodeId], bound: u64) -> usize {
    let watched = minority.to_vec();
    h.watch(move |cluster| {
        watched.iter().find_map(|&n| {
            let status = cluster.try_status(n)?;
            (status.commit_index > bound).then(|| {
                format!(
                    "node {n} on the minority side committed index {} (above {bound}, the last index that existed when the partition began)",
                    status.commit_index
                )
            })
        })
    })
}

/// "The old leader no longer leads its old epoch" (after the heal).
fn no_longer_leads<C: Core>(h: &Harness<C>, leader: NodeId, epoch_before: u64) -> Expectation {
    let statement = "after the heal the old leader no longer leads its old epoch";
    if h.flavor.leaderless {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let status = h.cluster.status(leader);
    let stale = status.role == Role::Leader && status.epoch == epoch_before;
    expect(
        statement,
        !stale,
        format!(
            "node {leader} is {} in {}",
            status.role,
            format_epoch(h.flavor.protocol, status.epoch)
        ),
    )
}

/// "The minority fails fast": one second into the partition, every write on
/// the minority side is refused (failed, not timed out) within 100 ms.
fn fails_fast<C: Core>(h: &Harness<C>, minority: &[NodeId], start: u64) -> Expectation {
    let after = start + ns(1.0);
    let mut worst = 0;
    let mut slow = 0;
    let mut count = 0;
    for op in h.ops().iter().filter(|op| {
        op.is_write()
            && op.invoked_ns >= after
            && minority.contains(&op.node)
            && op.outcome.is_some()
    }) {
        count += 1;
        let latency = op.ended_ns.unwrap_or(op.invoked_ns) - op.invoked_ns;
        worst = worst.max(latency);
        if op.outcome != Some(Outcome::Failed) || latency > ns(0.1) {
            slow += 1;
        }
    }
    expect(
        "the minority fails fast: from 1 s into the partition on, every write there is refused within 100 ms",
        count > 0 && slow == 0,
        format!(
            "{count} writes on the minority side after 1 s: {slow} not refused within 100 ms; slowest answer {} ms",
            worst / 1_000_000
        ),
    )
}

/// The leader's links are cut from 1.5 s to 5.5 s.
pub(super) fn old_leader_isolated<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let others = h.others(&[leader]);
    let epoch_before = h.cluster.status(leader).epoch;
    h.place_clients(&[
        (leader, Reach::Only),
        (leader, Reach::Only),
        (others[0], Reach::SideOf),
        (others[others.len() - 1], Reach::SideOf),
    ]);
    h.cluster.isolate(leader);
    let cut = h.begin_fault(format!("node {leader} isolated"), vec![leader]);
    let start = h.now_ns();
    h.run_to(5.5);
    let (ok, failed, unknown) = writes_at(h, &[leader], start, h.now_ns());
    expectations.push(expect(
        "the isolated leader keeps getting requests and acknowledges none",
        ok == 0 && failed + unknown > 0,
        format!("writes sent to node {leader}: {ok} ok, {failed} failed, {unknown} unknown"),
    ));
    expectations.push(side_elects(
        h,
        &others,
        epoch_before,
        start,
        "the others elect a new leader and commit",
        "the other nodes keep committing (no leader to elect)",
    ));
    let stepped_down = h
        .samples
        .iter()
        .filter(|s| s.time_ns >= start)
        .find(|s| s.nodes[leader as usize - 1].role() != Some(Role::Leader))
        .map(|s| s.time_ns);
    h.heal(cut);
    let healed_at = h.now_ns();
    h.run_to(6.5);
    expectations.push(steps_down_by_heal(
        h,
        leader,
        epoch_before,
        start,
        stepped_down,
        healed_at,
    ));
    settle(h, &mut expectations, 8.0);
    (meaning(h, leader), expectations)
}

/// "It steps down, at the latest when the links come back."
fn steps_down_by_heal<C: Core>(
    h: &Harness<C>,
    leader: NodeId,
    epoch_before: u64,
    start: u64,
    stepped_down: Option<u64>,
    healed_at: u64,
) -> Expectation {
    let statement = "it steps down, at the latest when the links come back";
    if h.flavor.leaderless {
        return not_applicable(
            statement,
            "classic Paxos has no leader: the isolated node simply cannot finish Phase 1 alone",
        );
    }
    let protocol = h.flavor.protocol;
    let status = h.cluster.status(leader);
    let still = status.role == Role::Leader && status.epoch == epoch_before;
    let detail = match stepped_down {
        Some(t) => format!(
            "node {leader} stepped down at {} while isolated; now {} in {}",
            at_since(t, start),
            status.role,
            format_epoch(protocol, status.epoch)
        ),
        None => format!(
            "node {leader} led until the heal at {}; now {} in {}",
            seconds(healed_at),
            status.role,
            format_epoch(protocol, status.epoch)
        ),
    };
    expect(statement, !still, detail)
}
