//! Failover time: with a client writing continuously, stop the leader (for
//! leaderless classic Paxos: the node the client talks to) and measure the
//! time from the stop to the first command committed afterwards. The
//! stopped node is restarted and the cluster settles between samples.
//!
//! For leader-based protocols each sample is also split into phases
//! ([`FailoverPhases`]): watchers on the surviving nodes' published status
//! time when the first of them gives the old leader up, when one becomes
//! leader of a newer epoch, and when that leader first commits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consensus::{NodeId, Role, Status};
use tokio::sync::{mpsc, watch, Notify};

use crate::cluster::{BenchCluster, NodeSet, CLUSTER_WAIT};
use crate::results::FailoverPhases;
use crate::workload::command;

/// How long the phase watchers may lag behind the client's success before
/// a sample is recorded without its phases.
const PHASE_GRACE: Duration = Duration::from_millis(200);

/// Times of the phases of one failover, as the survivors publish them.
#[derive(Default)]
struct Marks {
    suspected: Option<Instant>,
    /// When, who, in which epoch, at which commit index.
    elected: Option<(Instant, NodeId, u64, u64)>,
    committed: Option<Instant>,
}

impl Marks {
    /// Records what one survivor's status shows; `old_epoch` is the highest
    /// epoch any survivor had when the leader stopped.
    fn observe(&mut self, status: &Status, victim: NodeId, old_epoch: u64, now: Instant) {
        let gave_up = status.role != Role::Follower
            || status.leader != Some(victim)
            || status.epoch > old_epoch;
        if gave_up && self.suspected.is_none() {
            self.suspected = Some(now);
        }
        let leads_newer = status.role == Role::Leader && status.epoch > old_epoch;
        match self.elected {
            None if leads_newer => {
                self.suspected.get_or_insert(now);
                self.elected = Some((now, status.id, status.epoch, status.commit_index));
            }
            Some((_, leader, epoch, base))
                if self.committed.is_none()
                    && status.id == leader
                    && status.epoch == epoch
                    && status.role == Role::Leader
                    && status.commit_index > base =>
            {
                self.committed = Some(now);
            }
            _ => {}
        }
    }

    fn complete(&self) -> bool {
        self.committed.is_some()
    }

    /// The phases relative to `stopped_at`, with the client's success at
    /// `client`; `None` if a phase was not seen.
    fn phases(&self, stopped_at: Instant, client: Instant) -> Option<FailoverPhases> {
        let ms = |at: Instant| at.saturating_duration_since(stopped_at).as_secs_f64() * 1000.0;
        let (elected, ..) = self.elected?;
        Some(FailoverPhases {
            suspected_ms: ms(self.suspected?),
            elected_ms: ms(elected),
            committed_ms: ms(self.committed?),
            client_ms: ms(client),
        })
    }
}

/// Watches the survivors of one stop until the new leader's first commit.
struct PhaseWatch {
    marks: Arc<Mutex<Marks>>,
    done: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PhaseWatch {
    /// Starts watching `survivors` (receivers taken before the stop, so no
    /// change is missed); `victim` is the stopped leader.
    fn start(survivors: Vec<watch::Receiver<Status>>, victim: NodeId) -> PhaseWatch {
        let old_epoch = survivors
            .iter()
            .map(|s| s.borrow().epoch)
            .max()
            .unwrap_or(0);
        let marks = Arc::new(Mutex::new(Marks::default()));
        let done = Arc::new(Notify::new());
        let tasks = survivors
            .into_iter()
            .map(|mut status| {
                let marks = marks.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    loop {
                        {
                            let current = status.borrow_and_update();
                            let mut marks = marks.lock().expect("marks lock");
                            if marks.complete() {
                                return;
                            }
                            marks.observe(&current, victim, old_epoch, Instant::now());
                            if marks.complete() {
                                // A stored permit if `finish` is not waiting yet.
                                done.notify_one();
                                return;
                            }
                        }
                        if status.changed().await.is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        PhaseWatch { marks, done, tasks }
    }

    /// The phases once the client succeeded at `client` (waits up to
    /// [`PHASE_GRACE`] for the watchers to see the new leader's commit).
    async fn finish(self, stopped_at: Instant, client: Instant) -> Option<FailoverPhases> {
        let complete = self.marks.lock().expect("marks lock").complete();
        if !complete {
            let _ = tokio::time::timeout(PHASE_GRACE, self.done.notified()).await;
        }
        for task in &self.tasks {
            task.abort();
        }
        let marks = self.marks.lock().expect("marks lock");
        marks.phases(stopped_at, client)
    }
}

/// A client that writes without pause and reports when each command commits.
struct Writer {
    stop: Arc<AtomicBool>,
    target: Arc<AtomicU64>,
    /// When a command committed, and through which node.
    commits: mpsc::UnboundedReceiver<(Instant, NodeId)>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(nodes: NodeSet, first: NodeId, command_bytes: usize) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let target = Arc::new(AtomicU64::new(first));
        let (sender, commits) = mpsc::unbounded_channel();
        let task = {
            let stop = stop.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let deadline = Instant::now() + Duration::from_secs(1);
                    let via = target.load(Ordering::Relaxed);
                    if let Ok(committed_at) = nodes
                        .append_via(via, command(usize::MAX, sequence, command_bytes), deadline)
                        .await
                    {
                        target.store(committed_at, Ordering::Relaxed);
                        let _ = sender.send((Instant::now(), committed_at));
                    }
                }
            })
        };
        Writer {
            stop,
            target,
            commits,
            task,
        }
    }

    /// Drops commit reports, then waits for the next one after `after`
    /// through a node other than `not_via` (a reply of the stopped node
    /// that raced with its stop is not a failover).
    async fn next_commit_after(
        &mut self,
        after: Instant,
        not_via: Option<NodeId>,
        deadline: Instant,
    ) -> Option<Instant> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.commits.recv()).await {
                Ok(Some((at, via))) if at > after && Some(via) != not_via => return Some(at),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// What [`measure`] returns: the gaps in milliseconds and, for
/// leader-based protocols, each sample's phases where all were seen.
pub struct Measured {
    /// Stop to the client's next commit, per sample.
    pub gaps_ms: Vec<f64>,
    /// The phases of the samples in which every phase was seen.
    pub phases: Vec<FailoverPhases>,
}

/// Measures `samples` failovers; calls `progress` after each.
pub async fn measure(
    cluster: &mut BenchCluster,
    samples: usize,
    command_bytes: usize,
    mut progress: impl FnMut(usize, f64),
) -> Result<Measured, String> {
    let first = cluster.wait_writable().await?;
    let mut writer = Writer::start(cluster.nodes(), first, command_bytes);
    let mut gaps = Vec::with_capacity(samples);
    let mut phases = Vec::new();
    for sample in 0..samples {
        // A settled cluster with commits flowing.
        let settle_deadline = Instant::now() + CLUSTER_WAIT;
        let victim = loop {
            let flowing = writer
                .next_commit_after(Instant::now(), None, settle_deadline)
                .await
                .ok_or_else(|| {
                    format!(
                        "{}: no commits before failover sample {sample}",
                        cluster.protocol
                    )
                })?;
            let _ = flowing;
            if cluster.protocol.has_leader() {
                if let Some(leader) = cluster.agreed_leader() {
                    break leader;
                }
            } else {
                break writer.target.load(Ordering::Relaxed);
            }
            if Instant::now() > settle_deadline {
                return Err(format!(
                    "{}: no agreed leader before failover sample {sample}",
                    cluster.protocol
                ));
            }
        };
        let watch = cluster.protocol.has_leader().then(|| {
            let survivors = cluster
                .ids()
                .into_iter()
                .filter(|&id| id != victim)
                .filter_map(|id| cluster.node(id))
                .map(|node| node.status_watch())
                .collect();
            PhaseWatch::start(survivors, victim)
        });
        tracing::info!(sample, victim, "stopping the leader");
        let stopped_at = Instant::now();
        cluster.stop_node(victim).await?;
        let committed = writer
            .next_commit_after(stopped_at, Some(victim), stopped_at + CLUSTER_WAIT)
            .await
            .ok_or_else(|| {
                format!(
                    "{}: nothing committed within {CLUSTER_WAIT:?} after stopping node {victim}",
                    cluster.protocol
                )
            })?;
        let gap = (committed - stopped_at).as_secs_f64() * 1000.0;
        gaps.push(gap);
        if let Some(watch) = watch {
            phases.extend(watch.finish(stopped_at, committed).await);
        }
        progress(sample, gap);
        // Heal: restart the node and let it catch up before the next sample.
        cluster.start_node(victim)?;
        let index = cluster
            .statuses()
            .iter()
            .map(|s| s.commit_index)
            .max()
            .unwrap_or(0);
        cluster.wait_applied(index).await?;
    }
    writer.finish().await;
    Ok(Measured {
        gaps_ms: gaps,
        phases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::{Membership, Role};

    fn status(id: NodeId, role: Role, leader: Option<NodeId>, epoch: u64, commit: u64) -> Status {
        Status {
            id,
            role,
            leader,
            epoch,
            commit_index: commit,
            applied_index: commit,
            last_index: commit,
            snapshot_index: 0,
            membership: Membership::new([1, 2, 3]),
            peers: Default::default(),
        }
    }

    #[test]
    fn marks_time_each_phase_from_the_survivors_status() {
        let stop = Instant::now();
        let at = |ms: u64| stop + Duration::from_millis(ms);
        let mut marks = Marks::default();
        // Still following the stopped leader 1: nothing yet.
        marks.observe(&status(2, Role::Follower, Some(1), 4, 90), 1, 4, at(10));
        assert!(marks.suspected.is_none());
        // Node 3 starts an election.
        marks.observe(&status(3, Role::Candidate, None, 5, 90), 1, 4, at(160));
        // Node 2 follows node 3 now: not a new suspicion time.
        marks.observe(&status(2, Role::Follower, Some(3), 5, 90), 1, 4, at(170));
        // Node 3 leads epoch 5; a commit of the old epoch's index is not its first commit.
        marks.observe(&status(3, Role::Leader, Some(3), 5, 90), 1, 4, at(180));
        marks.observe(&status(2, Role::Follower, Some(3), 5, 95), 1, 4, at(185));
        assert!(!marks.complete(), "a follower's commit is not the leader's");
        marks.observe(&status(3, Role::Leader, Some(3), 5, 91), 1, 4, at(190));
        assert!(marks.complete());
        let phases = marks.phases(stop, at(200)).unwrap();
        assert_eq!(
            phases.durations().map(|d| d.round()),
            [160.0, 20.0, 10.0, 10.0]
        );
    }

    #[test]
    fn a_leader_of_the_old_epoch_is_not_a_new_leader() {
        let stop = Instant::now();
        let mut marks = Marks::default();
        marks.observe(&status(2, Role::Leader, Some(2), 4, 90), 1, 4, stop);
        assert!(marks.elected.is_none());
        assert!(marks.phases(stop, stop).is_none());
    }
}
