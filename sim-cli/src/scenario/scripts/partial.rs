//! The three partial-connectivity cases of the Omni-Paxos paper (Ng,
//! Haridi, Carbone, "Omni-Paxos: Breaking the Barriers of Partial
//! Connectivity", EuroSys 2023, Figure 1): `quorum-loss`,
//! `constrained-election`, `chained`. Clients reach every server (the
//! faults are between servers) and follow leader hints anywhere.

use consensus_api::{Core, NodeId, Role};
use consensus_sim::Links;

use super::{
    expect, longest_ok_gap, meaning, ns, settle, warm_up, warm_up_until, writes_at, Expectation,
    Harness, ScenarioInfo,
};
use crate::scenario::checks::at_since;
use crate::scenario::clients::Reach;
use crate::scenario::record::{format_epoch, Outcome};

pub(super) const QUORUM_LOSS: ScenarioInfo = ScenarioInfo {
    name: "quorum-loss",
    title: "Omni-Paxos quorum-loss: only one node still reaches everyone",
    story: "From 1.5 s to 6.5 s every link is cut except those of one follower, C: the leader \
            and the others reach only C. The leader has lost its quorum; C is the only node \
            that can form one. Whatever commits meanwhile must go through C.",
    source: "Omni-Paxos (EuroSys 2023), Figure 1a; Jensen, Howard, Mortier, \"Examining Raft's \
             behaviour during partial network failures\" (HAOC 2021)",
    min_nodes: 4,
    row_every_ns: 0,
};

pub(super) const CONSTRAINED_ELECTION: ScenarioInfo = ScenarioInfo {
    name: "constrained-election",
    title: "Omni-Paxos constrained election: the only well-connected node has a stale log",
    story: "From 1.0 s to 2.0 s one follower, C, is cut off while writes commit, so its log \
            falls behind. At 2.0 s the leader is cut off from everyone and the others reach \
            only C. C is the only node that can reach a quorum, but its log is stale. At \
            7.0 s every link comes back.",
    source: "Omni-Paxos (EuroSys 2023), Figure 1b (Raft cannot elect a leader here: the only \
             quorum-connected server is not up to date)",
    min_nodes: 4,
    row_every_ns: 0,
};

pub(super) const CHAINED: ScenarioInfo = ScenarioInfo {
    name: "chained",
    title: "Omni-Paxos chained: the leader and one follower lose their link",
    story: "From 1.5 s to 6.5 s the link between the leader and one follower, C, is cut; every \
            other link stays up (leader - others - C form a chain). C stops hearing the \
            leader; the leader still reaches a quorum.",
    source: "Omni-Paxos (EuroSys 2023), Figure 1c (without pre-vote, C's elections and the old \
             leader's take turns deposing each other)",
    min_nodes: 3,
    row_every_ns: 0,
};

/// A star around `center`: every link not touching it is cut.
fn star(nodes: &[NodeId], center: NodeId, also_cut: &[NodeId]) -> Links {
    let mut links = Links::new();
    for &a in nodes {
        for &b in nodes {
            let through_center = a == center || b == center;
            let cut_off = also_cut.contains(&a) || also_cut.contains(&b);
            if a != b && (!through_center || cut_off) {
                links.cut_one_way(a, b);
            }
        }
    }
    links
}

/// Clients on the leader, the center and one more node, following hints.
fn place<C: Core>(h: &mut Harness<C>, leader: NodeId, center: NodeId) {
    let third = *h.others(&[leader, center]).first().expect("3 nodes");
    h.place_clients(&[
        (leader, Reach::Anywhere),
        (center, Reach::Anywhere),
        (third, Reach::Anywhere),
    ]);
}

/// Writes committed during `[from, to)`, with the nodes that acknowledged them.
fn committed_through<C: Core>(h: &Harness<C>, from: u64, to: u64) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = h
        .ops()
        .iter()
        .filter(|op| {
            op.is_write()
                && op.outcome == Some(Outcome::Ok)
                && op.invoked_ns >= from
                && op.ended_ns.is_some_and(|t| t < to)
        })
        .map(|op| op.node)
        .collect();
    nodes.sort_unstable();
    nodes
}

fn describe_through(nodes: &[NodeId]) -> String {
    if nodes.is_empty() {
        return "nothing committed".into();
    }
    let mut counts = std::collections::BTreeMap::new();
    for n in nodes {
        *counts.entry(*n).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(n, c)| format!("{c} through node {n}"))
        .collect();
    format!("{} writes committed: {}", nodes.len(), parts.join(", "))
}

/// Star around C from 1.5 s to 6.5 s.
pub(super) fn quorum_loss<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let center = h.others(&[leader])[0];
    place(h, leader, center);
    let nodes = h.cluster.node_ids();
    let best_vote = nodes
        .iter()
        .copied()
        .max_by_key(|&n| (h.cluster.status(n).last_index, n))
        .expect("nodes");
    h.cluster.set_links(star(&nodes, center, &[]));
    let fault = h.begin_fault(
        format!("only node {center} reaches everyone"),
        h.others(&[center]),
    );
    let start = h.now_ns();
    h.run_to(6.5);
    let end = h.now_ns();
    let through = committed_through(h, start, end);
    expectations.push(expect(
        format!("whatever commits during the fault commits through node {center}, the only node that reaches a quorum"),
        through.iter().all(|&n| n == center),
        describe_through(&through),
    ));
    let (ok, failed, unknown) = writes_at(h, &[leader], start + ns(1.0), end);
    expectations.push(expect(
        format!("the old leader (node {leader}) stops acknowledging writes"),
        ok == 0,
        format!("writes through node {leader} from 1 s into the fault: {ok} ok, {failed} failed, {unknown} unknown"),
    ));
    expectations.push(progress(h, center, best_vote, start, end, &through));
    h.heal(fault);
    settle(h, &mut expectations, 9.0);
    (meaning(h, leader), expectations)
}

/// Whether the cluster commits during the fault. Raft and Multi-Paxos
/// (check-quorum, pre-vote) and classic Paxos must: the old leader steps
/// down and C, which hears everyone, takes over. ZAB's fast leader election
/// votes for the newest log, then the highest id, regardless of who can
/// reach whom: unless that is C, it elects a node that reaches only C, and
/// nothing commits until the heal (the Omni-Paxos paper's point).
fn progress<C: Core>(
    h: &Harness<C>,
    center: NodeId,
    best_vote: NodeId,
    start: u64,
    end: u64,
    through: &[NodeId],
) -> Expectation {
    let first = h
        .ops()
        .iter()
        .filter(|op| {
            op.is_write()
                && op.outcome == Some(Outcome::Ok)
                && op.invoked_ns >= start
                && op.ended_ns.is_some_and(|t| t < end)
        })
        .filter_map(|op| op.ended_ns)
        .min();
    let seen = match first {
        Some(t) => format!(
            "first write committed at {}{}; {} writes in all",
            at_since(t, start),
            h.leader()
                .map_or(String::new(), |l| format!(", node {l} leads at the end")),
            through.len()
        ),
        None => "nothing committed during the fault".into(),
    };
    if h.flavor.protocol == "zab" && best_vote != center {
        return expect(
            format!(
                "fast leader election keeps choosing node {best_vote} (newest log, then highest id), which reaches only node {center}: nothing commits until the heal"
            ),
            first.is_none(),
            seen,
        );
    }
    let statement = if h.flavor.leaderless {
        format!("node {center} keeps committing for its clients (it reaches a quorum)")
    } else {
        format!("the old leader steps down, node {center} takes over and the cluster commits during the fault")
    };
    expect(statement, first.is_some(), seen)
}

/// C lags from 1.0 s to 2.0 s; from 2.0 s to 7.0 s the leader is cut off
/// and the others reach only C.
pub(super) fn constrained_election<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up_until(h, 1.0);
    let center = h.others(&[leader])[0];
    place(h, leader, center);
    h.cluster.isolate(center);
    let lag = h.begin_fault(
        format!("node {center} isolated (falls behind)"),
        vec![center],
    );
    h.run_to(2.0);
    h.cluster.heal();
    h.end_fault(lag);
    let nodes = h.cluster.node_ids();
    h.cluster.set_links(star(&nodes, center, &[leader]));
    let fault = h.begin_fault(
        format!("node {leader} cut off; the others reach only node {center}"),
        h.others(&[center]),
    );
    let start = h.now_ns();
    let behind = h.max_commit(&h.others(&[center])) - h.cluster.status(center).commit_index;
    h.note(format!("node {center} is {behind} entries behind"));
    let epoch_before = h.cluster.status(leader).epoch;
    let leaders = h.watch(move |cluster| {
        let leader = cluster.leader()?;
        let epoch = cluster.status(leader).epoch;
        (epoch > epoch_before).then(|| format!("node {leader}"))
    });
    h.run_to(7.0);
    let end = h.now_ns();
    let someone_led = h.unwatch(leaders);
    let through = committed_through(h, start, end);
    expectations.push(expect(
        format!("whatever commits during the fault commits through node {center}, the only node that reaches a quorum"),
        through.iter().all(|&n| n == center),
        describe_through(&through),
    ));
    expectations.push(stale_center(h, center, (start, end), someone_led, &through));
    h.heal(fault);
    settle(h, &mut expectations, 9.5);
    (meaning(h, leader), expectations)
}

/// The link leader - C is cut from 1.5 s to 6.5 s.
pub(super) fn chained<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    let (leader, mut expectations) = warm_up(h);
    let protocol = h.flavor.protocol;
    let center = *h.others(&[leader]).last().expect("3 nodes");
    place(h, leader, center);
    let elected_before = h.cluster.stats().leaders_elected;
    h.cluster.cut(leader, center);
    let fault = h.begin_fault(
        format!("link {leader} - {center} cut"),
        vec![leader, center],
    );
    let start = h.now_ns();
    h.run_to(6.5);
    let end = h.now_ns();
    let changes = h.cluster.stats().leaders_elected - elected_before;
    let gap = longest_ok_gap(h, start, end);
    expectations.push(expect(
        "the cluster keeps committing (the leader still reaches a quorum)",
        gap <= ns(1.0),
        format!(
            "longest time without a committed write: {} ms; {changes} leaders elected",
            gap / 1_000_000
        ),
    ));
    let statement = format!(
        "node {center} does not depose the leader (Raft, Multi-Paxos: pre-vote; ZAB: the others answer it with the leader they follow)"
    );
    if h.flavor.leaderless {
        expectations.push(super::not_applicable(
            &statement,
            "classic Paxos has no leader",
        ));
    } else {
        let now = h.leader();
        expectations.push(expect(
            statement,
            changes == 0 && now == Some(leader),
            format!(
                "{changes} leaders elected; {} leads at the end",
                now.map_or("nobody".into(), |l| format!(
                    "node {l} ({})",
                    format_epoch(protocol, h.cluster.status(l).epoch)
                ))
            ),
        ));
    }
    h.heal(fault);
    settle(h, &mut expectations, 9.0);
    (meaning(h, leader), expectations)
}

/// The protocol's expected outcome of `constrained-election`: Raft's voting
/// rule and ZAB's vote comparison keep the stale node from leading, and
/// nobody else reaches a quorum; Multi-Paxos and classic Paxos let it
/// propose, Phase 1 handing it the accepted values.
fn stale_center<C: Core>(
    h: &Harness<C>,
    center: NodeId,
    (start, end): (u64, u64),
    someone_led: Option<String>,
    through: &[NodeId],
) -> Expectation {
    match h.flavor.protocol {
        "raft" | "zab" => expect(
            format!(
                "nobody can lead until the heal: node {center} has a stale log (it cannot win) and nobody else reaches a quorum"
            ),
            someone_led.is_none() && through.is_empty(),
            match someone_led {
                Some(who) => format!("{who} became leader during the fault"),
                None => "no leader and no commit during the fault".into(),
            },
        ),
        "multipaxos" => {
            let center_led = h
                .samples
                .iter()
                .filter(|s| s.time_ns >= start && s.time_ns < end)
                .any(|s| s.nodes[center as usize - 1].role() == Some(Role::Leader));
            expect(
                format!(
                    "node {center} leads despite its stale log: Phase 1 hands it the accepted entries"
                ),
                center_led && !through.is_empty(),
                format!(
                    "node {center} led: {center_led}; {}",
                    describe_through(through)
                ),
            )
        }
        _ => expect(
            format!(
                "node {center} commits: any node may propose, Phase 1 recovers the accepted values"
            ),
            !through.is_empty(),
            describe_through(through),
        ),
    }
}
