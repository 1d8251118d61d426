//! The scripts: one function per scenario, each with a fixed schedule on
//! virtual time (warm-up until 1.5 s, faults at fixed times, a settle phase
//! at the end) so that runs of different protocols share one time axis.

mod crash;
mod election;
mod partial;
mod partition;
mod pause;

use consensus_api::{Core, NodeId};

use super::clients::Reach;
use super::harness::Harness;
use super::record::{epoch_word, Expectation, Outcome, ProtocolRun, Verdict, SECOND_NS};
use super::{ScenarioConfig, ScenarioInfo, ScenarioName};

/// The fault of most scenarios starts here (seconds of virtual time).
const FAULT_AT: f64 = 1.5;
/// Totals (messages, operations, leader changes) count from here.
const WARMUP_END: f64 = 1.0;

/// Virtual nanoseconds of `seconds`.
pub(super) fn ns(seconds: f64) -> u64 {
    (seconds * SECOND_NS as f64).round() as u64
}

/// Runs the scenario on the core `C`.
pub(super) fn run<C: Core>(scenario: ScenarioName, config: &ScenarioConfig) -> ProtocolRun {
    let nodes = config.nodes.max(scenario.info().min_nodes);
    let mut harness = match scenario {
        ScenarioName::SplitVote => Harness::<C>::new(nodes, config.seed, election::configure),
        _ => Harness::<C>::new(nodes, config.seed, |_| {}),
    };
    harness.cluster.set_reproduce(format!(
        "consensus-sim scenario {scenario} --protocol {} --nodes {nodes} --seed {}",
        C::PROTOCOL,
        config.seed
    ));
    let (meaning, expectations) = match scenario {
        ScenarioName::LeaderCrash => crash::leader_crash(&mut harness),
        ScenarioName::CrashMidReconfig => crash::crash_mid_reconfig(&mut harness),
        ScenarioName::Partition32 => partition::partition_3_2(&mut harness),
        ScenarioName::OldLeaderIsolated => partition::old_leader_isolated(&mut harness),
        ScenarioName::GcPause => pause::gc_pause(&mut harness),
        ScenarioName::SlowFollower => pause::slow_follower(&mut harness),
        ScenarioName::SplitVote => election::split_vote(&mut harness),
        ScenarioName::QuorumLoss => partial::quorum_loss(&mut harness),
        ScenarioName::ConstrainedElection => partial::constrained_election(&mut harness),
        ScenarioName::Chained => partial::chained(&mut harness),
    };
    harness.finish(meaning, expectations)
}

/// The catalog.
pub(super) fn info(scenario: ScenarioName) -> ScenarioInfo {
    let half_second = ns(0.5);
    match scenario {
        ScenarioName::LeaderCrash => crash::LEADER_CRASH,
        ScenarioName::CrashMidReconfig => crash::CRASH_MID_RECONFIG,
        ScenarioName::Partition32 => partition::PARTITION_3_2,
        ScenarioName::OldLeaderIsolated => partition::OLD_LEADER_ISOLATED,
        ScenarioName::GcPause => pause::GC_PAUSE,
        ScenarioName::SlowFollower => pause::SLOW_FOLLOWER,
        ScenarioName::SplitVote => election::SPLIT_VOTE,
        ScenarioName::QuorumLoss => partial::QUORUM_LOSS,
        ScenarioName::ConstrainedElection => partial::CONSTRAINED_ELECTION,
        ScenarioName::Chained => partial::CHAINED,
    }
    .with_default_rows(half_second)
}

impl ScenarioInfo {
    fn with_default_rows(mut self, every_ns: u64) -> Self {
        if self.row_every_ns == 0 {
            self.row_every_ns = every_ns;
        }
        self
    }
}

/// Warms the cluster up with three clients (leader-based protocols: placed
/// at nodes 1–3, following leader hints; classic Paxos: all at node 1, the
/// node they "talk to") and returns "the leader" at [`FAULT_AT`], with a
/// broken expectation when no leader was elected.
pub(super) fn warm_up<C: Core>(h: &mut Harness<C>) -> (NodeId, Vec<Expectation>) {
    warm_up_until(h, FAULT_AT)
}

/// [`warm_up`], handing over at `fault_at` seconds.
pub(super) fn warm_up_until<C: Core>(
    h: &mut Harness<C>,
    fault_at: f64,
) -> (NodeId, Vec<Expectation>) {
    h.run_to(0.5);
    let nodes = h.cluster.len() as NodeId;
    let placements: Vec<(NodeId, Reach)> = (1..=3)
        .map(|n| {
            let anchor = if h.flavor.leaderless { 1 } else { n.min(nodes) };
            (anchor, Reach::Anywhere)
        })
        .collect();
    h.place_clients(&placements);
    h.run_to(WARMUP_END.min(fault_at));
    h.end_warmup();
    h.run_to(fault_at);
    if h.flavor.leaderless {
        return (h.last_proposer().unwrap_or(1), Vec::new());
    }
    match h.leader() {
        Some(leader) => (leader, Vec::new()),
        None => (
            1,
            vec![Expectation {
                statement: "a leader is elected during the warm-up".into(),
                verdict: Verdict::Broken(format!(
                    "no leader at {fault_at} s: the scenario runs with node 1 in its place"
                )),
            }],
        ),
    }
}

/// What "the leader" means for this protocol.
pub(super) fn meaning<C: Core>(h: &Harness<C>, leader: NodeId) -> String {
    if h.flavor.leaderless {
        format!(
            "classic Paxos has no leader: \"the leader\" is the node the clients send their requests to (the last successful proposer), node {leader}"
        )
    } else {
        format!(
            "the leader is the node in role leader with the highest {}: node {leader} when the fault starts",
            epoch_word(h.flavor.protocol)
        )
    }
}

/// Writes invoked in `[from_ns, to_ns)` whose last attempt went to one of
/// `nodes`: (ok, failed, unknown).
pub(super) fn writes_at<C: Core>(
    h: &Harness<C>,
    nodes: &[NodeId],
    from_ns: u64,
    to_ns: u64,
) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for op in h.ops().iter().filter(|op| {
        op.is_write()
            && op.invoked_ns >= from_ns
            && op.invoked_ns < to_ns
            && nodes.contains(&op.node)
    }) {
        match op.outcome {
            Some(Outcome::Ok) => counts.0 += 1,
            Some(Outcome::Failed) => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    counts
}

/// End time of the first write that succeeded after `after_ns` (invoked
/// then or later).
pub(super) fn first_ok_write<C: Core>(h: &Harness<C>, after_ns: u64) -> Option<u64> {
    h.ops()
        .iter()
        .filter(|op| op.is_write() && op.outcome == Some(Outcome::Ok) && op.invoked_ns >= after_ns)
        .filter_map(|op| op.ended_ns)
        .min()
}

/// An expectation that does not apply to this protocol.
pub(super) fn not_applicable(statement: &str, why: &str) -> Expectation {
    Expectation {
        statement: statement.into(),
        verdict: Verdict::NotApplicable(why.into()),
    }
}

/// An expectation with its verdict.
pub(super) fn expect(statement: impl Into<String>, held: bool, detail: String) -> Expectation {
    Expectation {
        statement: statement.into(),
        verdict: Verdict::check(held, detail),
    }
}

/// Checks that the cluster settles after the last fault, then stops the
/// clients 1.2 s before `end_s` and runs to `end_s` (every protocol's run
/// ends at the same virtual time).
pub(super) fn settle<C: Core>(h: &mut Harness<C>, expectations: &mut Vec<Expectation>, end_s: f64) {
    expectations.push(h.settle(2.0));
    h.run_to(end_s - 1.2);
    h.stop_clients();
    h.run_to(end_s);
}

/// Longest interval in `[from, to]` without a write ending ok.
pub(super) fn longest_ok_gap<C: Core>(h: &Harness<C>, from: u64, to: u64) -> u64 {
    let mut times: Vec<u64> = h
        .ops()
        .iter()
        .filter(|op| op.is_write() && op.outcome == Some(Outcome::Ok))
        .filter_map(|op| op.ended_ns)
        .filter(|&t| t >= from && t <= to)
        .collect();
    times.sort_unstable();
    let mut previous = from;
    let mut longest = 0;
    for time in times.into_iter().chain(std::iter::once(to)) {
        longest = longest.max(time - previous);
        previous = time;
    }
    longest
}

/// "`side` elects a new leader and commits": a leader among `side` with an
/// epoch above `epoch_before`, and writes committed through `side` since
/// `since` (classic Paxos: only the writes, under `leaderless_statement`).
pub(super) fn side_elects<C: Core>(
    h: &Harness<C>,
    side: &[NodeId],
    epoch_before: u64,
    since: u64,
    statement: &str,
    leaderless_statement: &str,
) -> Expectation {
    let ok = writes_at(h, side, since, h.now_ns()).0;
    if h.flavor.leaderless {
        return expect(
            leaderless_statement,
            ok > 0,
            format!("{ok} writes committed on that side"),
        );
    }
    let new_leader = h
        .leader()
        .filter(|l| side.contains(l))
        .map(|l| (l, h.cluster.status(l).epoch));
    expect(
        statement,
        new_leader.is_some_and(|(_, e)| e > epoch_before) && ok > 0,
        match new_leader {
            Some((l, e)) => format!(
                "node {l} leads {}; {ok} writes committed on that side",
                super::record::format_epoch(h.flavor.protocol, e)
            ),
            None => "no new leader on that side".into(),
        },
    )
}
