//! Each scenario's expectations, checked against what the run recorded
//! ([`Record`]) and what the script did ([`Facts`]). Pure functions: the
//! tests feed them fabricated records to show that each can fail.
//!
//! The statements follow the simulator's (`consensus-sim scenario`), with
//! bounds in real time: the clients' attempt timeout and the scheduling of
//! real processes add to every reaction.

use std::time::Duration;

use consensus::NodeId;
use consensus_sim_cli::scenario::{
    format_epoch, format_set, seconds, Expectation, NodeKind, NodeState, Outcome, Verdict,
};

use super::record::{ClientOp, Observation, Record};
use super::RealScenario;

/// What the script did, for the expectations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// "The leader" when the fault began.
    pub leader: NodeId,
    /// Its epoch then.
    pub epoch_before: u64,
    /// The nodes the fault hits: the crashed, paused or isolated leader,
    /// the minority side, or `C` of `chained`.
    pub hit: Vec<NodeId>,
    /// Every other node.
    pub rest: Vec<NodeId>,
    /// When the fault took effect (nanoseconds since the start).
    pub start_ns: u64,
    /// When it was undone.
    pub end_ns: u64,
    /// The highest last log index any node reported right after the fault
    /// took effect: nothing above it can commit on a side without a quorum.
    pub last_index_at_start: u64,
    /// What "the leader" means for this protocol.
    pub meaning: String,
    /// Expectations the script found broken on its own (no leader after
    /// the warm-up).
    pub problems: Vec<Expectation>,
}

/// The bounds the expectations use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// A new leader elected and a write committed after the fault began.
    pub elect: Duration,
    /// A restarted node applies what the others committed.
    pub catch_up: Duration,
    /// A deposed leader steps down after it hears the others again.
    pub step_down: Duration,
    /// Longest time without a committed write while the leader still
    /// reaches a quorum (`chained`).
    pub commit_gap: Duration,
}

impl Default for Bounds {
    /// 2 s to elect and commit (the simulator's bound), 3 s to catch up
    /// after a restart (the process starts, replays its log, connects),
    /// 1 s to step down, 1 s without a commit while a quorum is reachable
    /// (the simulator's).
    fn default() -> Self {
        Bounds {
            elect: Duration::from_secs(2),
            catch_up: Duration::from_secs(3),
            step_down: Duration::from_secs(1),
            commit_gap: Duration::from_secs(1),
        }
    }
}

fn ns(duration: Duration) -> u64 {
    duration.as_nanos() as u64
}

fn expect(statement: impl Into<String>, held: bool, detail: String) -> Expectation {
    Expectation {
        statement: statement.into(),
        verdict: Verdict::check(held, detail),
    }
}

fn not_applicable(statement: &str, why: &str) -> Expectation {
    Expectation {
        statement: statement.into(),
        verdict: Verdict::NotApplicable(why.into()),
    }
}

/// `1.50s (+350 ms)`.
fn at_since(time_ns: u64, since_ns: u64) -> String {
    format!(
        "{} (+{} ms)",
        seconds(time_ns),
        time_ns.saturating_sub(since_ns) / 1_000_000
    )
}

/// The scenario's expectations. `linearizable` is the harness's verdict
/// on the whole history (`None`: not checked), which `gc-pause` cites.
pub fn evaluate(
    scenario: RealScenario,
    facts: &Facts,
    record: &Record,
    bounds: &Bounds,
    linearizable: Option<bool>,
) -> Vec<Expectation> {
    let mut expectations = facts.problems.clone();
    expectations.extend(match scenario {
        RealScenario::LeaderCrash => leader_crash(facts, record, bounds),
        RealScenario::Partition32 => partition_3_2(facts, record, bounds),
        RealScenario::OldLeaderIsolated => old_leader_isolated(facts, record, bounds),
        RealScenario::GcPause => gc_pause(facts, record, bounds, linearizable),
        RealScenario::Chained => chained(facts, record, bounds),
    });
    expectations
}

fn leader_crash(facts: &Facts, record: &Record, bounds: &Bounds) -> Vec<Expectation> {
    let within = bounds.elect.as_secs_f64();
    let statement = if record.leaderless() {
        format!("the clients move to another node and commit again within {within} s (no leader to replace)")
    } else {
        format!("the survivors elect a new leader and commit again within {within} s")
    };
    let mut expectations = vec![commits_within(
        statement,
        record,
        facts.start_ns,
        bounds.elect,
        |_| true,
    )];
    expectations.push(new_leader(
        "the new leader's epoch is higher than the crashed leader's",
        facts,
        record,
        facts.end_ns,
    ));
    expectations.push(catches_up(facts, record, bounds));
    expectations
}

fn partition_3_2(facts: &Facts, record: &Record, bounds: &Bounds) -> Vec<Expectation> {
    let within = bounds.elect.as_secs_f64();
    let mut expectations = vec![only_majority_commits(facts, record)];
    expectations.push(acknowledges_none(
        "the minority never acknowledges a write while cut off",
        facts,
        record,
    ));
    let (statement, leaderless) = (
        format!("the majority elects a new leader and commits within {within} s"),
        format!("the majority side commits within {within} s (no leader to elect)"),
    );
    expectations.push(side_elects(
        if record.leaderless() {
            leaderless
        } else {
            statement
        },
        facts,
        record,
        bounds,
    ));
    expectations.push(no_longer_leads(facts, record, bounds));
    expectations
}

fn old_leader_isolated(facts: &Facts, record: &Record, bounds: &Bounds) -> Vec<Expectation> {
    let within = bounds.elect.as_secs_f64();
    let mut expectations = vec![acknowledges_none(
        "the isolated leader keeps getting requests and acknowledges none",
        facts,
        record,
    )];
    expectations.push(side_elects(
        if record.leaderless() {
            format!("the other nodes keep committing within {within} s (no leader to elect)")
        } else {
            format!("the others elect a new leader and commit within {within} s")
        },
        facts,
        record,
        bounds,
    ));
    let statement = format!(
        "it steps down, at the latest when the links come back (within {} s of the heal)",
        bounds.step_down.as_secs_f64()
    );
    expectations.push(steps_down(
        &statement,
        facts,
        record,
        facts.start_ns,
        bounds,
    ));
    expectations
}

fn gc_pause(
    facts: &Facts,
    record: &Record,
    bounds: &Bounds,
    linearizable: Option<bool>,
) -> Vec<Expectation> {
    let within = bounds.elect.as_secs_f64();
    let mut expectations = vec![side_elects(
        if record.leaderless() {
            format!("the other nodes keep committing within {within} s (no leader to elect)")
        } else {
            format!("the others elect a leader and keep committing within {within} s")
        },
        facts,
        record,
        bounds,
    )];
    let statement = format!(
        "it steps down within {} s of resuming",
        bounds.step_down.as_secs_f64()
    );
    expectations.push(steps_down(&statement, facts, record, facts.end_ns, bounds));
    let (mut ok, mut failed, mut unknown) = (0, 0, 0);
    for op in record
        .ops
        .iter()
        .filter(|op| op.confined_to(&facts.hit) && op.ended_ns >= facts.end_ns)
    {
        match op.outcome {
            Outcome::Ok => ok += 1,
            Outcome::Failed => failed += 1,
            Outcome::Unknown => unknown += 1,
        }
    }
    let statement = "every read or write it serves after resuming is correct";
    expectations.push(match linearizable {
        Some(held) => expect(
            statement,
            held,
            format!(
                "its clients' operations that ended after it resumed: {ok} ok, {failed} failed, {unknown} unknown; the whole history is {}linearizable",
                if held { "" } else { "NOT " }
            ),
        ),
        None => expect(
            statement,
            false,
            "the history could not be checked".into(),
        ),
    });
    expectations
}

fn chained(facts: &Facts, record: &Record, bounds: &Bounds) -> Vec<Expectation> {
    let (from, to) = record.longest_gap(facts.start_ns, facts.end_ns);
    let mut expectations = vec![expect(
        format!(
            "the cluster keeps committing: never {} s without a committed write during the fault",
            bounds.commit_gap.as_secs_f64()
        ),
        to - from <= ns(bounds.commit_gap),
        format!(
            "the longest time without a committed write: {} ms, {} to {}",
            (to - from) / 1_000_000,
            seconds(from),
            seconds(to)
        ),
    )];
    let statement = format!(
        "node {} does not depose the leader (Raft, Multi-Paxos: pre-vote; ZAB: the others answer it with the leader they follow)",
        facts.hit.first().copied().unwrap_or_default()
    );
    if record.leaderless() {
        expectations.push(not_applicable(&statement, "classic Paxos has no leader"));
        return expectations;
    }
    let protocol = &record.protocol;
    let other = record
        .samples_between(facts.start_ns, facts.end_ns)
        .find_map(|s| {
            s.leader()
                .filter(|&l| l != (facts.leader, facts.epoch_before))
                .map(|l| (s.time_ns, l))
        });
    expectations.push(expect(
        statement,
        other.is_none(),
        match other {
            None => format!(
                "node {} led {} in every sample of the fault",
                facts.leader,
                format_epoch(protocol, facts.epoch_before)
            ),
            Some((at, (id, epoch))) => format!(
                "node {id} led {} at {}",
                format_epoch(protocol, epoch),
                at_since(at, facts.start_ns)
            ),
        },
    ));
    expectations
}

/// A write acknowledged, invoked at or after `from_ns`, by a client
/// `filter` accepts, within `bound` of `from_ns`.
fn commits_within(
    statement: String,
    record: &Record,
    from_ns: u64,
    bound: Duration,
    filter: impl Fn(&ClientOp) -> bool,
) -> Expectation {
    let first = record.first_ok_write(from_ns, filter);
    let held = first.is_some_and(|t| t - from_ns <= ns(bound));
    let detail = match first {
        Some(t) => format!(
            "the first write invoked after {} was acknowledged at {}",
            seconds(from_ns),
            at_since(t, from_ns)
        ),
        None => format!(
            "no write invoked after {} was acknowledged",
            seconds(from_ns)
        ),
    };
    expect(statement, held, detail)
}

/// A leader other than the old one, with a higher epoch, seen by `by_ns`.
fn new_leader(statement: &str, facts: &Facts, record: &Record, by_ns: u64) -> Expectation {
    if record.leaderless() {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let protocol = &record.protocol;
    let seen = record.samples_between(facts.start_ns, by_ns).find_map(|s| {
        s.leader()
            .filter(|&(id, epoch)| facts.rest.contains(&id) && epoch > facts.epoch_before)
            .map(|l| (s.time_ns, l))
    });
    expect(
        statement,
        seen.is_some(),
        match seen {
            Some((at, (id, epoch))) => format!(
                "node {} led {}; node {id} leads {} from {}",
                facts.leader,
                format_epoch(protocol, facts.epoch_before),
                format_epoch(protocol, epoch),
                at_since(at, facts.start_ns)
            ),
            None => format!(
                "no node of {} reported leading a higher epoch by {}",
                format_set(&facts.rest),
                seconds(by_ns)
            ),
        },
    )
}

/// After its restart, the crashed node applies what the others had
/// committed when it restarted.
fn catches_up(facts: &Facts, record: &Record, bounds: &Bounds) -> Expectation {
    let statement = format!(
        "the restarted node catches up within {} s",
        bounds.catch_up.as_secs_f64()
    );
    let node = facts.leader;
    let target = record
        .samples
        .iter()
        .rev()
        .find(|s| s.time_ns <= facts.end_ns)
        .map_or(0, |s| s.max_commit(&facts.rest));
    let deadline = facts.end_ns + ns(bounds.catch_up);
    let caught = record
        .samples_between(facts.end_ns, deadline)
        .find(|s| s.state(node).is_some_and(|n| n.applied >= target))
        .map(|s| s.time_ns);
    expect(
        statement,
        caught.is_some(),
        match caught {
            Some(at) => format!(
                "node {node} applied index {target} at {}",
                at_since(at, facts.end_ns)
            ),
            None => format!(
                "node {node} did not report applying index {target} by {}",
                seconds(deadline)
            ),
        },
    )
}

/// No node of `hit` reports a commit index above the last index that
/// existed when the partition took effect; the majority commits beyond it.
fn only_majority_commits(facts: &Facts, record: &Record) -> Expectation {
    let bound = facts.last_index_at_start;
    let violation = record
        .samples_between(facts.start_ns, facts.end_ns)
        .find_map(|s| {
            facts.hit.iter().find_map(|&n| {
                let commit = s.state(n)?.commit;
                (commit > bound).then_some((s.time_ns, n, commit))
            })
        });
    let majority = record
        .samples_between(facts.start_ns, facts.end_ns)
        .map(|s| s.max_commit(&facts.rest))
        .max()
        .unwrap_or(0);
    let statement = format!("only the {}-node side commits", facts.rest.len());
    match violation {
        Some((at, node, commit)) => expect(
            statement,
            false,
            format!(
                "node {node} on the minority side reported commit index {commit} at {} (above {bound}, the last index that existed when the partition took effect)",
                seconds(at)
            ),
        ),
        None => expect(
            statement,
            majority > bound,
            format!("the minority's commit index stayed at or below {bound}; the majority reached {majority}"),
        ),
    }
}

/// The clients confined to the cut-off nodes got no acknowledgement of a
/// write they sent while cut off, and did send some.
fn acknowledges_none(statement: &str, facts: &Facts, record: &Record) -> Expectation {
    let (ok, failed, other) = record.writes_confined(&facts.hit, facts.start_ns, facts.end_ns);
    expect(
        statement,
        ok == 0 && failed + other > 0,
        format!(
            "writes sent to {} while cut off: {ok} acknowledged, {failed} failed, {other} unknown or answered after the heal",
            format_set(&facts.hit)
        ),
    )
}

/// A new leader among the others with a higher epoch and a write of a
/// client confined to them, both within the bound (classic Paxos: the
/// write only).
fn side_elects(statement: String, facts: &Facts, record: &Record, bounds: &Bounds) -> Expectation {
    let deadline = facts.start_ns + ns(bounds.elect);
    let side = facts.rest.clone();
    let write = record.first_ok_write(facts.start_ns, |op| op.confined_to(&side));
    let write_in_time = write.is_some_and(|t| t <= deadline);
    let write_text = match write {
        Some(t) => format!(
            "a write through {} was acknowledged at {}",
            format_set(&side),
            at_since(t, facts.start_ns)
        ),
        None => format!("no write through {} was acknowledged", format_set(&side)),
    };
    if record.leaderless() {
        return expect(statement, write_in_time, write_text);
    }
    let protocol = &record.protocol;
    let leader = record
        .samples_between(facts.start_ns, deadline)
        .find_map(|s| {
            s.leader()
                .filter(|&(id, epoch)| side.contains(&id) && epoch > facts.epoch_before)
                .map(|l| (s.time_ns, l))
        });
    let leader_text = match leader {
        Some((at, (id, epoch))) => format!(
            "node {id} leads {} from {}",
            format_epoch(protocol, epoch),
            at_since(at, facts.start_ns)
        ),
        None => format!("no new leader on that side by {}", seconds(deadline)),
    };
    expect(
        statement,
        leader.is_some() && write_in_time,
        format!("{leader_text}; {write_text}"),
    )
}

/// The old leader is seen not leading its old epoch in a sample from
/// `from_ns` to `step_down` after the fault ended.
fn steps_down(
    statement: &str,
    facts: &Facts,
    record: &Record,
    from_ns: u64,
    bounds: &Bounds,
) -> Expectation {
    if record.leaderless() {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let node = facts.leader;
    let protocol = &record.protocol;
    let deadline = facts.end_ns + ns(bounds.step_down);
    // Samples in which the node answered (not paused, not down).
    let answers: Vec<&Observation> = record
        .samples_between(from_ns, deadline)
        .filter(|s| {
            s.state(node)
                .is_some_and(|n| matches!(n.kind, NodeKind::Up(_)))
        })
        .collect();
    let down = answers
        .iter()
        .find(|s| !s.leads_in(node, facts.epoch_before));
    let first_answer = answers
        .iter()
        .find(|s| s.time_ns > facts.end_ns)
        .and_then(|s| s.state(node).map(|n| (s.time_ns, *n)));
    let first_text = first_answer.map_or(String::new(), |(at, n)| {
        format!(
            "; its first answer after the fault ended ({}) said {} in {}",
            at_since(at, facts.end_ns),
            role_name(&n),
            format_epoch(protocol, n.epoch)
        )
    });
    match down {
        Some(s) => {
            let state = s.state(node).expect("answered");
            expect(
                statement,
                true,
                format!(
                    "node {node} reported {} in {} at {} ({}){first_text}",
                    role_name(state),
                    format_epoch(protocol, state.epoch),
                    seconds(s.time_ns),
                    if s.time_ns < facts.end_ns {
                        "during the fault"
                    } else {
                        "after the fault ended"
                    }
                ),
            )
        }
        None => expect(
            statement,
            false,
            format!(
                "node {node} still reported leading {} at {}{first_text}",
                format_epoch(protocol, facts.epoch_before),
                seconds(deadline)
            ),
        ),
    }
}

fn role_name(state: &NodeState) -> String {
    state.role().map_or("crashed".into(), |r| r.to_string())
}

/// After the heal the old leader does not lead its old epoch in any
/// sample from `step_down` after the heal on.
fn no_longer_leads(facts: &Facts, record: &Record, bounds: &Bounds) -> Expectation {
    let statement = "after the heal the old leader no longer leads its old epoch";
    if record.leaderless() {
        return not_applicable(statement, "classic Paxos has no leader");
    }
    let from = facts.end_ns + ns(bounds.step_down);
    let protocol = &record.protocol;
    let samples: Vec<_> = record
        .samples
        .iter()
        .filter(|s| s.time_ns >= from)
        .collect();
    let stale = samples
        .iter()
        .find(|s| s.leads_in(facts.leader, facts.epoch_before));
    let held = stale.is_none() && !samples.is_empty();
    let detail = match (stale, samples.last()) {
        (Some(s), _) => format!(
            "node {} still led {} at {}",
            facts.leader,
            format_epoch(protocol, facts.epoch_before),
            seconds(s.time_ns)
        ),
        (None, Some(last)) => match last.state(facts.leader) {
            Some(n) => format!(
                "node {} is {} in {} at {}",
                facts.leader,
                role_name(n),
                format_epoch(protocol, n.epoch),
                seconds(last.time_ns)
            ),
            None => format!(
                "node {} did not answer at {}",
                facts.leader,
                seconds(last.time_ns)
            ),
        },
        (None, None) => format!("no sample after {}", seconds(from)),
    };
    expect(statement, held, detail)
}
