//! The nemesis: faults injected into the running cluster on a schedule
//! drawn from the seed.
//!
//! [`plan`] turns (seed, enabled kinds, duration) into a [`Schedule`]: a
//! list of faults, each with its start time (from the start of the run),
//! how long it is held, and a random number that picks its victims. Faults
//! run one at a time with quiet periods between them; the first round
//! injects every enabled kind once, in a seeded order, so even a short run
//! covers them all. Victims that depend on the cluster's state ("the
//! leader") are resolved when the fault starts; the [`NemesisLog`] records
//! what was actually done, with times, so a failure can be replayed and
//! explained.
//!
//! Nothing here depends on clocks agreeing: the nodes share no time at
//! all (the protocols count their own ticks), and the schedule is relative
//! to the harness's monotonic clock.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use consensus::NodeId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::harness::Harness;
use consensus_kv::admin::{cut_between, links_for_groups};

/// One kind of fault.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FaultKind {
    /// `kill -9` a random node, restart it after the hold.
    KillRandom,
    /// `kill -9` the leader (a random node when there is none, as in
    /// classic Paxos), restart it after the hold.
    KillLeader,
    /// `SIGSTOP` a random node for longer than the election timeout, then
    /// `SIGCONT` (a stop-the-world GC pause).
    PauseRandom,
    /// The same for the leader.
    PauseLeader,
    /// Split the nodes into a random majority and minority.
    PartitionHalves,
    /// Cut the leader off from every other node.
    IsolateLeader,
    /// Two halves that cannot talk to each other, and one node that talks
    /// to both.
    Bridge,
    /// `kill -9` every node at once, restart them all after the hold.
    PowerLoss,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::KillRandom,
        FaultKind::KillLeader,
        FaultKind::PauseRandom,
        FaultKind::PauseLeader,
        FaultKind::PartitionHalves,
        FaultKind::IsolateLeader,
        FaultKind::Bridge,
        FaultKind::PowerLoss,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillRandom => "kill-random",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::PauseRandom => "pause-random",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PartitionHalves => "partition-halves",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Bridge => "bridge",
            FaultKind::PowerLoss => "power-loss",
        }
    }

    /// Parses a comma-separated list of kinds and groups: `kill`
    /// (kill-random, kill-leader), `pause` (pause-random, pause-leader),
    /// `partition` (partition-halves, isolate-leader, bridge), `power`
    /// (power-loss), `all`, `none`, or single kinds by [`name`](Self::name).
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        let mut kinds = BTreeSet::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let group: &[FaultKind] = match word {
                "all" => &FaultKind::ALL,
                "none" => &[],
                "kill" => &[FaultKind::KillRandom, FaultKind::KillLeader],
                "pause" => &[FaultKind::PauseRandom, FaultKind::PauseLeader],
                "partition" => &[
                    FaultKind::PartitionHalves,
                    FaultKind::IsolateLeader,
                    FaultKind::Bridge,
                ],
                "power" => &[FaultKind::PowerLoss],
                name => match FaultKind::ALL.iter().find(|k| k.name() == name) {
                    Some(kind) => std::slice::from_ref(kind),
                    None => {
                        let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                        return Err(format!(
                            "unknown fault {name:?}: use all, none, kill, pause, partition, power \
                             or one of {}",
                            names.join(", ")
                        ));
                    }
                },
            };
            kinds.extend(group.iter().copied());
        }
        Ok(kinds.into_iter().collect())
    }

    /// The shortest hold that makes the fault meaningful.
    fn hold_min(self, election_timeout_max: Duration) -> Duration {
        match self {
            // Longer than any election timeout: the others must notice.
            FaultKind::PauseRandom | FaultKind::PauseLeader => election_timeout_max * 2,
            FaultKind::PowerLoss => Duration::from_millis(100),
            _ => Duration::from_millis(300),
        }
    }

    /// The longest hold drawn.
    fn hold_max(self, election_timeout_max: Duration) -> Duration {
        match self {
            FaultKind::KillRandom | FaultKind::KillLeader => Duration::from_millis(2500),
            FaultKind::PauseRandom | FaultKind::PauseLeader => {
                election_timeout_max * 2 + Duration::from_millis(1500)
            }
            FaultKind::PartitionHalves | FaultKind::IsolateLeader | FaultKind::Bridge => {
                Duration::from_millis(4000)
            }
            FaultKind::PowerLoss => Duration::from_millis(1000),
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One planned fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedFault {
    /// When it starts, from the start of the run.
    pub at: Duration,
    /// What it is.
    pub kind: FaultKind,
    /// How long it is held before it is undone.
    pub hold: Duration,
    /// Picks the victims (random node, partition sides).
    pub choice: u64,
}

/// The faults of one run, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The faults.
    pub faults: Vec<PlannedFault>,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.faults.is_empty() {
            return writeln!(f, "  (no faults)");
        }
        for fault in &self.faults {
            writeln!(
                f,
                "  t={:>8.3}s  {:<16} hold {:.3}s  choice {:#018x}",
                fault.at.as_secs_f64(),
                fault.kind.name(),
                fault.hold.as_secs_f64(),
                fault.choice
            )?;
        }
        Ok(())
    }
}

/// Mixed into the seed so the nemesis and the clients draw independently.
const NEMESIS_SALT: u64 = 0x6e65_6d65_7369_7321;

fn between(rng: &mut ChaCha8Rng, low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    Duration::from_micros(rng.random_range(low.as_micros() as u64..=high.as_micros() as u64))
}

/// Draws the schedule of a run of `duration` with the `kinds` enabled.
/// Every fault is over (held and undone) by `duration`.
pub fn plan(
    seed: u64,
    kinds: &[FaultKind],
    duration: Duration,
    election_timeout_max: Duration,
) -> Schedule {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ NEMESIS_SALT);
    let mut schedule = Schedule {
        seed,
        faults: Vec::new(),
    };
    if kinds.is_empty() {
        return schedule;
    }
    let mut first_round = kinds.to_vec();
    first_round.shuffle(&mut rng);
    let lead_in = between(
        &mut rng,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    )
    .min(duration / 10);
    // In the first round each kind gets an equal slot of the run.
    let slot = duration.saturating_sub(lead_in) / kinds.len() as u32;
    let mut at = lead_in;
    for round in 0.. {
        let kind = match first_round.get(round) {
            Some(kind) => *kind,
            None => kinds[rng.random_range(0..kinds.len())],
        };
        let first = round < first_round.len();
        let low = kind.hold_min(election_timeout_max);
        let mut high = kind.hold_max(election_timeout_max);
        if first {
            high = high.min(slot.mul_f64(0.6)).max(low);
        }
        let hold = between(&mut rng, low, high);
        let mut quiet = between(
            &mut rng,
            Duration::from_millis(300),
            Duration::from_millis(1500),
        );
        if first {
            quiet = quiet.min(slot.saturating_sub(hold).max(Duration::from_millis(200)));
        }
        let choice = rng.random::<u64>();
        if at + hold > duration {
            break;
        }
        schedule.faults.push(PlannedFault {
            at,
            kind,
            hold,
            choice,
        });
        at += hold + quiet;
    }
    schedule
}

/// One thing the nemesis did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NemesisEvent {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub what: String,
}

/// What the nemesis did, as it happened.
#[derive(Debug)]
pub struct NemesisLog {
    start: Instant,
    events: Mutex<Vec<NemesisEvent>>,
    executed: Mutex<BTreeSet<FaultKind>>,
    verbose: bool,
}

impl NemesisLog {
    /// A log whose times count from `start`; `verbose` also prints each
    /// event to stderr as it happens.
    pub fn new(start: Instant, verbose: bool) -> NemesisLog {
        NemesisLog {
            start,
            events: Mutex::new(Vec::new()),
            executed: Mutex::new(BTreeSet::new()),
            verbose,
        }
    }

    /// Records an event now.
    pub fn note(&self, what: impl Into<String>) {
        let event = NemesisEvent {
            at: self.start.elapsed(),
            what: what.into(),
        };
        if self.verbose {
            eprintln!("  t={:>8.3}s  {}", event.at.as_secs_f64(), event.what);
        }
        self.events.lock().expect("nemesis log").push(event);
    }

    /// Everything recorded.
    pub fn events(&self) -> Vec<NemesisEvent> {
        self.events.lock().expect("nemesis log").clone()
    }

    /// The kinds injected so far.
    pub fn executed(&self) -> BTreeSet<FaultKind> {
        self.executed.lock().expect("nemesis log").clone()
    }

    /// The log as text, one event a line.
    pub fn describe(&self) -> String {
        describe_events(&self.events())
    }
}

/// Events as text, one a line.
pub fn describe_events(events: &[NemesisEvent]) -> String {
    let mut text = String::new();
    for event in events {
        text.push_str(&format!(
            "  t={:>8.3}s  {}\n",
            event.at.as_secs_f64(),
            event.what
        ));
    }
    if text.is_empty() {
        text.push_str("  (nothing)\n");
    }
    text
}

/// Runs the schedule against the harness's cluster, fault times counted
/// from `base`. Returns early (after undoing the current fault) when `stop`
/// is set.
pub async fn execute(
    schedule: &Schedule,
    harness: &Harness,
    log: &NemesisLog,
    stop: &AtomicBool,
    base: Instant,
) {
    for fault in &schedule.faults {
        if !sleep_until(base + fault.at, stop).await {
            return;
        }
        log.executed.lock().expect("nemesis log").insert(fault.kind);
        let undo = inject(fault, harness, log).await;
        // Hold the fault (even when asked to stop: undo it properly).
        let until = Instant::now() + fault.hold;
        let _ = sleep_until(until, stop).await;
        undo.run(harness, log).await;
    }
}

/// Sleeps until `deadline` or until `stop` is set; false if stopped.
async fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(50))).await;
    }
}

/// How to undo an injected fault.
enum Undo {
    Restart(NodeId),
    Resume(NodeId),
    Heal,
    RestartAll,
    Nothing,
}

impl Undo {
    async fn run(self, harness: &Harness, log: &NemesisLog) {
        match self {
            Undo::Restart(id) => match harness.start_node(id) {
                Ok(()) => log.note(format!("restart node {id}")),
                Err(error) => log.note(format!("restart node {id} FAILED: {error}")),
            },
            Undo::Resume(id) => match harness.resume(id) {
                Ok(()) => log.note(format!("SIGCONT node {id}")),
                Err(error) => log.note(format!("SIGCONT node {id} FAILED: {error}")),
            },
            Undo::Heal => {
                let failures = harness.heal_network().await;
                if failures.is_empty() {
                    log.note("heal the network");
                } else {
                    log.note(format!("heal the network: not confirmed by {failures:?}"));
                }
            }
            Undo::RestartAll => {
                let result = harness.start_all();
                log.note(match result {
                    Ok(()) => "restart every node".to_string(),
                    Err(error) => format!("restart every node FAILED: {error}"),
                });
            }
            Undo::Nothing => {}
        }
    }
}

/// Resolves "the leader": the node that says it leads in the highest
/// epoch; otherwise a node chosen by `choice` (noted in the log).
async fn leader_or_random(
    harness: &Harness,
    choice: u64,
    log: &NemesisLog,
) -> (NodeId, &'static str) {
    if let Some(leader) = harness.leader().await {
        return (leader, "the leader");
    }
    let ids = harness.ids();
    let id = ids[(choice % ids.len() as u64) as usize];
    log.note(format!("no leader known: node {id} chosen by the seed"));
    (id, "no leader known")
}

async fn inject(fault: &PlannedFault, harness: &Harness, log: &NemesisLog) -> Undo {
    let ids = harness.ids();
    let random = ids[(fault.choice % ids.len() as u64) as usize];
    let hold = fault.hold.as_secs_f64();
    match fault.kind {
        FaultKind::KillRandom | FaultKind::KillLeader => {
            let (id, why) = if fault.kind == FaultKind::KillLeader {
                leader_or_random(harness, fault.choice, log).await
            } else {
                (random, "random")
            };
            harness.kill(id);
            log.note(format!("kill -9 node {id} ({why}) for {hold:.3}s"));
            Undo::Restart(id)
        }
        FaultKind::PauseRandom | FaultKind::PauseLeader => {
            let (id, why) = if fault.kind == FaultKind::PauseLeader {
                leader_or_random(harness, fault.choice, log).await
            } else {
                (random, "random")
            };
            match harness.pause(id) {
                Ok(()) => {
                    log.note(format!("SIGSTOP node {id} ({why}) for {hold:.3}s"));
                    Undo::Resume(id)
                }
                Err(error) => {
                    log.note(format!("SIGSTOP node {id} FAILED: {error}"));
                    Undo::Nothing
                }
            }
        }
        FaultKind::PartitionHalves | FaultKind::IsolateLeader | FaultKind::Bridge => {
            let mut shuffled = ids.clone();
            shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(fault.choice));
            let (description, links) = match fault.kind {
                FaultKind::PartitionHalves => {
                    let minority_max = (ids.len() - 1) / 2;
                    let size = 1 + (fault.choice >> 32) as usize % minority_max.max(1);
                    let (minority, majority) = shuffled.split_at(size.min(ids.len() - 1));
                    let mut minority = minority.to_vec();
                    let mut majority = majority.to_vec();
                    minority.sort_unstable();
                    majority.sort_unstable();
                    (
                        format!("partition {majority:?} | {minority:?}"),
                        cut_between(&majority, &minority),
                    )
                }
                FaultKind::IsolateLeader => {
                    let (leader, why) = leader_or_random(harness, fault.choice, log).await;
                    let rest: Vec<NodeId> = ids.iter().copied().filter(|&n| n != leader).collect();
                    (
                        format!("isolate node {leader} ({why}) from {rest:?}"),
                        cut_between(&[leader], &rest),
                    )
                }
                _ => {
                    let bridge = shuffled[0];
                    let rest = &shuffled[1..];
                    let (left, right) = rest.split_at(rest.len() / 2);
                    let mut left = left.to_vec();
                    let mut right = right.to_vec();
                    left.sort_unstable();
                    right.sort_unstable();
                    let mut with_left = left.clone();
                    with_left.push(bridge);
                    let mut with_right = right.clone();
                    with_right.push(bridge);
                    (
                        format!("bridge: {left:?} | {right:?}, node {bridge} sees both"),
                        links_for_groups(&[with_left, with_right]),
                    )
                }
            };
            let failures = harness.partition(&links).await;
            if failures.is_empty() {
                log.note(format!("{description} for {hold:.3}s"));
            } else {
                log.note(format!(
                    "{description} for {hold:.3}s (not confirmed by {failures:?})"
                ));
            }
            Undo::Heal
        }
        FaultKind::PowerLoss => {
            harness.kill_all();
            log.note(format!("power loss: kill -9 every node for {hold:.3}s"));
            Undo::RestartAll
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse() {
        assert_eq!(
            FaultKind::parse_list("all").unwrap(),
            FaultKind::ALL.to_vec()
        );
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
        assert_eq!(
            FaultKind::parse_list("kill,bridge").unwrap(),
            vec![
                FaultKind::KillRandom,
                FaultKind::KillLeader,
                FaultKind::Bridge
            ]
        );
        assert!(FaultKind::parse_list("meteor").is_err());
    }

    #[test]
    fn schedules_are_seeded_cover_every_kind_and_end_in_time() {
        let election = Duration::from_millis(300);
        let duration = Duration::from_secs(20);
        let a = plan(7, &FaultKind::ALL, duration, election);
        assert_eq!(a, plan(7, &FaultKind::ALL, duration, election));
        assert_ne!(a, plan(8, &FaultKind::ALL, duration, election));
        let kinds: BTreeSet<FaultKind> = a.faults.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), FaultKind::ALL.len(), "{a}");
        for fault in &a.faults {
            assert!(fault.at + fault.hold <= duration, "{a}");
            if matches!(fault.kind, FaultKind::PauseRandom | FaultKind::PauseLeader) {
                assert!(
                    fault.hold >= election * 2,
                    "pauses outlast the election timeout"
                );
            }
        }
        for pair in a.faults.windows(2) {
            assert!(
                pair[0].at + pair[0].hold < pair[1].at,
                "one fault at a time"
            );
        }
        assert!(plan(1, &[], duration, election).faults.is_empty());
    }
}
