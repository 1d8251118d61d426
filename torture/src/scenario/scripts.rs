//! The scripts: one function per scenario over the harness's real
//! controls (`kill -9` and restart, `SIGSTOP` / `SIGCONT`, blocked links
//! installed on every node through the authenticated admin command), each
//! on the fixed schedule of [`Timing`]: clients from 0 s, the fault at
//! `warm_up`, undone after `hold`, then `observe`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::NodeId;
use consensus_sim_cli::scenario::{epoch_word, format_epoch, format_set, Expectation, Verdict};

use super::clients::{Clients, Mix};
use super::expect::Facts;
use super::timeline::Timeline;
use super::{RealScenario, Timing};
use crate::harness::Harness;
use consensus_kv::admin::{cut_between, AdminError};

/// What a script works with.
pub(super) struct Ctx {
    pub harness: Arc<Harness>,
    pub timeline: Arc<Timeline>,
    pub timing: Timing,
    pub clients: Clients,
}

impl Ctx {
    async fn sleep_until(&self, at: Duration) {
        let deadline = self.timeline.instant(at);
        tokio::time::sleep_until(deadline.into()).await;
    }

    fn leaderless(&self) -> bool {
        self.harness.options().protocol.name() == "paxos"
    }

    fn start_clients(&mut self, placements: &[Vec<NodeId>], mix: Mix) {
        let op_timeout = self.timing.op_timeout;
        self.clients
            .start(&self.harness, &self.timeline, placements, op_timeout, mix);
    }

    /// "The leader" at the end of the warm-up: the node in role leader
    /// with the highest epoch in the latest sample (waiting up to a second
    /// for one); classic Paxos: node 1, where every client sends first.
    async fn the_leader(&self) -> Facts {
        let protocol = self.harness.options().protocol.name();
        let mut facts = Facts::default();
        if self.leaderless() {
            facts.leader = 1;
            facts.meaning = "classic Paxos has no leader: \"the leader\" is the node the clients \
                             send their requests to first, node 1"
                .into();
            return facts;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some((id, epoch)) = self.timeline.latest().and_then(|s| s.leader()) {
                facts.leader = id;
                facts.epoch_before = epoch;
                facts.meaning = format!(
                    "the leader is the node in role leader with the highest {} in the nodes' \
                     status: node {id} ({}) when the fault starts",
                    epoch_word(protocol),
                    format_epoch(protocol, epoch)
                );
                return facts;
            }
            if Instant::now() > deadline {
                facts.leader = 1;
                facts.meaning = "no leader was seen: node 1 takes its place".into();
                facts.problems.push(Expectation {
                    statement: "a leader is elected during the warm-up".into(),
                    verdict: Verdict::Broken(
                        "no node reported leading at the end of the warm-up".into(),
                    ),
                });
                return facts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The highest last log index any node reports now.
    async fn last_index(&self) -> u64 {
        self.harness
            .statuses()
            .await
            .values()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.last_index)
            .max()
            .unwrap_or(0)
    }

    /// Cuts `a` from `b` on every node; returns how it went, for the fault
    /// line.
    async fn cut(&self, a: &[NodeId], b: &[NodeId]) -> String {
        let failures = self.harness.partition(&cut_between(a, b)).await;
        confirmed(
            "blocked links installed on every node by the admin command",
            &failures,
        )
    }

    async fn heal(&self) -> String {
        let failures = self.harness.heal_network().await;
        confirmed("every blocked link lifted by the admin command", &failures)
    }
}

fn confirmed(done: &str, failures: &[(NodeId, AdminError)]) -> String {
    if failures.is_empty() {
        done.to_string()
    } else {
        let nodes: Vec<String> = failures
            .iter()
            .map(|(n, e)| format!("node {n}: {e}"))
            .collect();
        format!("{done}, NOT confirmed by {}", nodes.join("; "))
    }
}

/// Runs `scenario`: warm-up, fault, hold, undo, observe.
pub(super) async fn run(scenario: RealScenario, ctx: &mut Ctx) -> Facts {
    let ids = ctx.harness.ids();
    let everyone = vec![ids.clone(); 3];
    ctx.start_clients(&everyone, Mix::ReadsAndWrites);
    ctx.sleep_until(ctx.timing.warm_up).await;
    let mut facts = ctx.the_leader().await;
    facts.rest = ids.iter().copied().filter(|&n| n != facts.leader).collect();
    facts.hit = vec![facts.leader];
    match scenario {
        RealScenario::LeaderCrash => leader_crash(ctx, &mut facts).await,
        RealScenario::Partition32 => partition_3_2(ctx, &mut facts).await,
        RealScenario::OldLeaderIsolated => old_leader_isolated(ctx, &mut facts).await,
        RealScenario::GcPause => gc_pause(ctx, &mut facts).await,
        RealScenario::Chained => chained(ctx, &mut facts).await,
    }
    ctx.sleep_until(ctx.timing.warm_up + ctx.timing.hold + ctx.timing.observe)
        .await;
    facts
}

async fn hold(ctx: &Ctx) {
    ctx.sleep_until(ctx.timing.warm_up + ctx.timing.hold).await;
}

/// `kill -9` the leader; start it again after the hold.
async fn leader_crash(ctx: &mut Ctx, facts: &mut Facts) {
    let leader = facts.leader;
    ctx.harness.kill(leader);
    let fault = ctx
        .timeline
        .begin_fault(format!("node {leader} crashed"), vec![leader], "kill -9");
    facts.start_ns = ctx.timeline.now_ns();
    hold(ctx).await;
    let how = match ctx.harness.start_node(leader) {
        Ok(()) => "the process is started again".to_string(),
        Err(error) => format!("restarting it FAILED: {error}"),
    };
    facts.end_ns = ctx.timeline.now_ns();
    ctx.timeline.end_fault(fault, &how);
}

/// The leader and `(n - 1) / 2 - 1` followers cut off from the rest; a
/// client on every node, confined to its side (two on a one-node side).
async fn partition_3_2(ctx: &mut Ctx, facts: &mut Facts) {
    let minority_size = ((facts.rest.len()) / 2).max(1);
    let mut minority = vec![facts.leader];
    minority.extend(facts.rest.iter().take(minority_size - 1));
    minority.sort_unstable();
    let majority: Vec<NodeId> = facts
        .rest
        .iter()
        .copied()
        .filter(|n| !minority.contains(n))
        .collect();
    let mut placements: Vec<Vec<NodeId>> = minority.iter().map(|_| minority.clone()).collect();
    if minority.len() == 1 {
        placements.push(minority.clone());
    }
    placements.extend(majority.iter().map(|_| majority.clone()));
    ctx.start_clients(&placements, Mix::WritesOnly);
    let how = ctx.cut(&minority, &majority).await;
    let label = format!(
        "partition {} | {}",
        format_set(&minority),
        format_set(&majority)
    );
    let fault = ctx.timeline.begin_fault(label, minority.clone(), &how);
    facts.start_ns = ctx.timeline.now_ns();
    facts.last_index_at_start = ctx.last_index().await;
    facts.hit = minority;
    facts.rest = majority;
    hold(ctx).await;
    // The fault ends when the first node lifts its links, before the
    // last one confirms.
    facts.end_ns = ctx.timeline.now_ns();
    let how = ctx.heal().await;
    ctx.timeline.end_fault_at(fault, facts.end_ns, &how);
}

/// Every link of the leader cut; two clients talk only to it, two only to
/// the others.
async fn old_leader_isolated(ctx: &mut Ctx, facts: &mut Facts) {
    let leader = facts.leader;
    let others = facts.rest.clone();
    ctx.start_clients(
        &[vec![leader], vec![leader], others.clone(), others.clone()],
        Mix::WritesOnly,
    );
    let how = ctx.cut(&[leader], &others).await;
    let fault = ctx
        .timeline
        .begin_fault(format!("node {leader} isolated"), vec![leader], &how);
    facts.start_ns = ctx.timeline.now_ns();
    facts.last_index_at_start = ctx.last_index().await;
    hold(ctx).await;
    // The fault ends when the first node lifts its links, before the
    // last one confirms.
    facts.end_ns = ctx.timeline.now_ns();
    let how = ctx.heal().await;
    ctx.timeline.end_fault_at(fault, facts.end_ns, &how);
}

/// `SIGSTOP` the leader for the hold (real seconds, scaled down from the
/// simulator's 30 s of virtual time), then `SIGCONT`; two clients talk
/// only to it, two only to the others.
async fn gc_pause(ctx: &mut Ctx, facts: &mut Facts) {
    let leader = facts.leader;
    let others = facts.rest.clone();
    // Its clients wait longer than the pause: their requests wait in its
    // socket and are the first thing it handles when it resumes.
    let patient = ctx.timing.hold + Duration::from_secs(2);
    ctx.clients.start(
        &ctx.harness,
        &ctx.timeline,
        &[vec![leader], vec![leader]],
        patient,
        Mix::ReadsAndWrites,
    );
    ctx.start_clients(&[others.clone(), others], Mix::ReadsAndWrites);
    let how = match ctx.harness.pause(leader) {
        Ok(()) => format!(
            "SIGSTOP for {:.1} s of real time: the simulator's 30 s scaled down",
            ctx.timing.hold.as_secs_f64()
        ),
        Err(error) => format!("SIGSTOP FAILED: {error}"),
    };
    let fault = ctx
        .timeline
        .begin_fault(format!("node {leader} paused"), vec![leader], &how);
    facts.start_ns = ctx.timeline.now_ns();
    hold(ctx).await;
    let how = match ctx.harness.resume(leader) {
        Ok(()) => "SIGCONT".to_string(),
        Err(error) => format!("SIGCONT FAILED: {error}"),
    };
    facts.end_ns = ctx.timeline.now_ns();
    ctx.timeline.end_fault(fault, &how);
}

/// Only the link between the leader and one follower, C, is cut.
async fn chained(ctx: &mut Ctx, facts: &mut Facts) {
    let leader = facts.leader;
    let center = *facts.rest.last().expect("at least 3 nodes");
    let how = ctx.cut(&[leader], &[center]).await;
    let fault = ctx.timeline.begin_fault(
        format!("link {leader} - {center} cut"),
        vec![leader, center],
        &how,
    );
    facts.start_ns = ctx.timeline.now_ns();
    facts.hit = vec![center];
    facts.rest = ctx
        .harness
        .ids()
        .into_iter()
        .filter(|&n| n != center)
        .collect();
    hold(ctx).await;
    // The fault ends when the first node lifts its links, before the
    // last one confirms.
    facts.end_ns = ctx.timeline.now_ns();
    let how = ctx.heal().await;
    ctx.timeline.end_fault_at(fault, facts.end_ns, &how);
}
