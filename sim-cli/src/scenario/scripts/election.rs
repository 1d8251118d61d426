//! `split-vote`: two candidates start together.
//!
//! After the leader crashes, the simulator switches to manual delivery for
//! a moment: the survivors tick in lockstep until one of them starts an
//! election (classic Paxos: two clients propose at two nodes at once), its
//! messages held on the wire until a second one starts too. Then the two
//! "zones" hear their own candidate first: every message inside a zone is
//! delivered before any message between the zones. Then the network runs
//! normally again and the protocol's own randomization has to resolve the
//! tie.

use std::collections::BTreeSet;

use consensus_api::{Core, CoreConfig, NodeId, Role, Status};
use consensus_sim::InFlight;

use super::{expect, meaning, ns, settle, warm_up_until, Expectation, Harness, ScenarioInfo};
use crate::scenario::checks::at_since;
use crate::scenario::clients::OpChoice;
use crate::scenario::harness::format_set;
use crate::scenario::record::{format_epoch, Outcome};

pub(super) const SPLIT_VOTE: ScenarioInfo = ScenarioInfo {
    name: "split-vote",
    title: "two candidates start an election together",
    story: "The clients pause at 1.3 s (so every survivor has the same log); at 1.5 s the \
            leader crashes. The first two survivors to time out start their \
            elections together (their messages are held until both have started; classic \
            Paxos: two clients propose at two nodes at the same instant), and each half of the \
            remaining voters hears its own candidate first. Then the network is normal again; \
            randomized timeouts (and ballot order) must produce exactly one leader. At 4.5 s \
            the old leader restarts. Pre-vote is off in this scenario.",
    source: "seed, \"Failure scenario: split vote\" (answer: if two candidates each get 2 votes \
             in a 5-node cluster, nobody wins; they time out again with new randomized \
             timeouts and retry)",
    min_nodes: 4,
    row_every_ns: 0,
};

/// Node configuration of the scenario: pre-vote off, as in the seed's
/// description of a split vote (with pre-vote the pre-vote round is where
/// the candidates collide, and it does not always reach the vote itself).
pub(super) fn configure(config: &mut CoreConfig) {
    config.pre_vote = false;
}

/// Candidates and their zones: `(a, b, zone of a, zone of b)`.
type Zones = (NodeId, NodeId, BTreeSet<NodeId>, BTreeSet<NodeId>);

/// The leader crashes at 1.5 s; two candidates start together.
pub(super) fn split_vote<C: Core>(h: &mut Harness<C>) -> (String, Vec<Expectation>) {
    // The clients stop at 1.3 s, so the survivors' logs are equal when the
    // leader crashes: no voter refuses a candidate for a stale log.
    let (leader, mut expectations) = warm_up_until(h, 1.3);
    h.stop_clients();
    h.run_to(1.5);
    let crash = h.crash(leader);
    let crashed_at = h.now_ns();
    let survivors = h.others(&[leader]);
    h.cluster.set_manual(true);
    let zones = if h.flavor.leaderless {
        two_proposers(h, &survivors)
    } else {
        two_candidates(h, &survivors)
    };
    let Some((a, b, zone_a, zone_b)) = zones else {
        h.cluster.set_manual(false);
        h.resume_clients();
        expectations.push(expect(
            "two candidates start together",
            false,
            "no two survivors started an election within 2 s".into(),
        ));
        h.run_to(4.5);
        h.restart(leader, crash);
        settle(h, &mut expectations, 6.5);
        return (meaning(h, leader), expectations);
    };
    let started_at = h.now_ns();
    let round = contest(h, (a, b), (&zone_a, &zone_b), crashed_at);
    if h.flavor.leaderless {
        expectations.push(both_proposals_chosen(h, started_at));
    } else {
        expectations.extend(round.verdicts(h, crashed_at));
    }
    h.restart(leader, crash);
    settle(h, &mut expectations, 6.5);
    (meaning(h, leader), expectations)
}

/// What happened between the two candidates.
struct Round {
    a: NodeId,
    b: NodeId,
    after_zones: (Status, Status),
    split_winner: Option<String>,
    first_leader: Option<NodeId>,
    resolved_at: Option<u64>,
    /// Leaders elected between 3.5 s and 4.5 s, and the leader at 4.5 s.
    late_leaders: u64,
    leader_at_end: Option<NodeId>,
}

/// Delivers the candidates' messages zone by zone, then lets the network run
/// normally until 4.5 s, watching who wins.
fn contest<C: Core>(
    h: &mut Harness<C>,
    (a, b): (NodeId, NodeId),
    (zone_a, zone_b): (&BTreeSet<NodeId>, &BTreeSet<NodeId>),
    crashed_at: u64,
) -> Round {
    let protocol = h.flavor.protocol;
    h.note(format!(
        "nodes {a} and {b} start together ({} and {}); {} hear {a} first, {} hear {b} first",
        format_epoch(protocol, h.cluster.status(a).epoch),
        format_epoch(protocol, h.cluster.status(b).epoch),
        format_set(&zone_a.iter().copied().collect::<Vec<_>>()),
        format_set(&zone_b.iter().copied().collect::<Vec<_>>()),
    ));
    deliver_by_zone(h, zone_a, zone_b);
    let after_zones = (h.cluster.status(a), h.cluster.status(b));
    let split_epoch = after_zones.0.epoch;
    let split_watch = h.watch(move |cluster| {
        let leader = cluster.leader()?;
        (cluster.status(leader).epoch == split_epoch).then(|| format!("node {leader}"))
    });
    h.cluster.set_manual(false);
    h.resume_clients();
    let resolved = h.run_until_ns(crashed_at + ns(2.0), |h| h.leader().is_some());
    let resolved_at = resolved.then_some(h.now_ns());
    let first_leader = h.leader();
    h.run_to(3.5);
    let elected = h.cluster.stats().leaders_elected;
    h.run_to(4.5);
    Round {
        a,
        b,
        after_zones,
        split_winner: h.unwatch(split_watch),
        first_leader,
        resolved_at,
        late_leaders: h.cluster.stats().leaders_elected - elected,
        leader_at_end: h.leader(),
    }
}

impl Round {
    /// The protocol's expected outcome of the contest, and "exactly one
    /// leader emerges".
    fn verdicts<C: Core>(&self, h: &Harness<C>, crashed_at: u64) -> Vec<Expectation> {
        let protocol = h.flavor.protocol;
        let (first_a, first_b) = &self.after_zones;
        let (a, b) = (self.a, self.b);
        let round = format!(
            "after the zoned delivery node {a} is {} in {}, node {b} is {} in {}",
            first_a.role,
            format_epoch(protocol, first_a.epoch),
            first_b.role,
            format_epoch(protocol, first_b.epoch)
        );
        let first = self.first_leader.map(|l| (l, h.cluster.status(l).epoch));
        let winner = match first {
            Some((l, e)) => format!("; then node {l} won {}", format_epoch(protocol, e)),
            None => String::new(),
        };
        let mut verdicts = vec![expect(
            "two candidates start together: neither hears the other before both have started",
            true,
            format!("{round}{winner}"),
        )];
        if protocol.contains("raft") {
            verdicts.push(expect(
                format!(
                    "the votes split: neither candidate wins {}; randomized timeouts let a later {} elect one",
                    format_epoch(protocol, first_a.epoch),
                    super::epoch_word(protocol)
                ),
                first_a.epoch == first_b.epoch
                    && self.split_winner.is_none()
                    && first.is_some_and(|(_, e)| e > first_a.epoch),
                match &self.split_winner {
                    Some(w) => format!("{w} won the split term"),
                    None => format!(
                        "each candidate had its own vote and its zone's{winner}"
                    ),
                },
            ));
        }
        verdicts.push(expect(
            "a leader emerges within 2 s, and one leader holds from 3.5 s until the old leader restarts at 4.5 s",
            self.resolved_at.is_some()
                && self.late_leaders == 0
                && self.leader_at_end.is_some(),
            match (self.first_leader, self.resolved_at) {
                (Some(l), Some(t)) => format!(
                    "node {l} leads from {}; {} leaders elected between 3.5 s and 4.5 s; node {} leads at 4.5 s",
                    at_since(t, crashed_at),
                    self.late_leaders,
                    self.leader_at_end.map_or("none".into(), |n| n.to_string())
                ),
                _ => "no leader within 2 s".into(),
            },
        ));
        verdicts
    }
}

/// Ticks the survivors in lockstep until one is a candidate, then the rest
/// until a second one is; their messages wait on the wire meanwhile.
fn two_candidates<C: Core>(h: &mut Harness<C>, survivors: &[NodeId]) -> Option<Zones> {
    let first = tick_until_candidate(h, survivors)?;
    let rest: Vec<NodeId> = survivors.iter().copied().filter(|&n| n != first).collect();
    let second = tick_until_candidate(h, &rest)?;
    Some(split_zones(survivors, first, second))
}

fn tick_until_candidate<C: Core>(h: &mut Harness<C>, nodes: &[NodeId]) -> Option<NodeId> {
    let tick = h.cluster.tick_duration_ns();
    for _ in 0..200 {
        for &n in nodes {
            h.cluster.tick_node(n);
            h.after_event();
        }
        let now = h.now_ns();
        h.run_until_ns(now + tick, |_| false);
        if let Some(&n) = nodes.iter().find(|&&n| h.role(n) == Some(Role::Candidate)) {
            return Some(n);
        }
    }
    None
}

/// Two clients propose at two nodes at the same instant.
fn two_proposers<C: Core>(h: &mut Harness<C>, survivors: &[NodeId]) -> Option<Zones> {
    let (a, b) = (survivors[0], survivors[1]);
    h.one_shot(a, OpChoice::Write);
    h.one_shot(b, OpChoice::Write);
    Some(split_zones(survivors, a, b))
}

fn split_zones(survivors: &[NodeId], a: NodeId, b: NodeId) -> Zones {
    let mut zone_a = BTreeSet::from([a]);
    let mut zone_b = BTreeSet::from([b]);
    let voters = survivors.iter().copied().filter(|&n| n != a && n != b);
    for (i, voter) in voters.enumerate() {
        if i % 2 == 0 {
            zone_a.insert(voter);
        } else {
            zone_b.insert(voter);
        }
    }
    (a, b, zone_a, zone_b)
}

/// Delivers messages inside a zone before any between the zones, round by
/// round, 1 ms of virtual time apart, until nothing is in flight.
fn deliver_by_zone<C: Core>(
    h: &mut Harness<C>,
    zone_a: &BTreeSet<NodeId>,
    zone_b: &BTreeSet<NodeId>,
) {
    let same_zone = |m: &InFlight<C::Message>| {
        (zone_a.contains(&m.from) && zone_a.contains(&m.to))
            || (zone_b.contains(&m.from) && zone_b.contains(&m.to))
    };
    for _ in 0..400 {
        if h.cluster.in_flight().is_empty() {
            return;
        }
        let local = h.cluster.in_flight().iter().any(same_zone);
        h.cluster
            .deliver_where(|m| (!local || same_zone(m)).then_some(true));
        h.after_event();
        let now = h.now_ns();
        h.run_until_ns(now + 1_000_000, |_| false);
    }
}

/// Classic Paxos: both proposals end up chosen, each once.
fn both_proposals_chosen<C: Core>(h: &Harness<C>, started_at: u64) -> Expectation {
    let probes: Vec<_> = h
        .ops()
        .iter()
        .filter(|op| op.invoked_ns == started_at && op.is_write())
        .collect();
    let ok = probes
        .iter()
        .filter(|op| op.outcome == Some(Outcome::Ok))
        .count();
    let detail: Vec<String> = probes
        .iter()
        .map(|op| {
            format!(
                "{} at node {}: {} ({})",
                op.op,
                op.node,
                op.outcome.map_or("pending".into(), |o| o.to_string()),
                op.detail
            )
        })
        .collect();
    expect(
        "two proposers on one slot: both proposals are chosen (one per slot, the loser retries in another)",
        probes.len() == 2 && ok == 2,
        detail.join("; "),
    )
}
