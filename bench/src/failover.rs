//! Failover time: with a client writing continuously, stop the leader (for
//! leaderless classic Paxos: the node the client talks to) and measure the
//! time from the stop to the first command committed afterwards. The
//! stopped node is restarted and the cluster settles between samples.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::NodeId;
use tokio::sync::mpsc;

use crate::cluster::{BenchCluster, NodeSet, CLUSTER_WAIT};
use crate::workload::command;

/// A client that writes without pause and reports when each command commits.
struct Writer {
    stop: Arc<AtomicBool>,
    target: Arc<AtomicU64>,
    commits: mpsc::UnboundedReceiver<Instant>,
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
                        let _ = sender.send(Instant::now());
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

    /// Drops commit reports, then waits for the next one after `after`.
    async fn next_commit_after(&mut self, after: Instant, deadline: Instant) -> Option<Instant> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.commits.recv()).await {
                Ok(Some(at)) if at > after => return Some(at),
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

/// Measures `samples` failovers; calls `progress` after each. Returns the
/// gaps in milliseconds.
pub async fn measure(
    cluster: &mut BenchCluster,
    samples: usize,
    command_bytes: usize,
    mut progress: impl FnMut(usize, f64),
) -> Result<Vec<f64>, String> {
    let first = cluster.wait_writable().await?;
    let mut writer = Writer::start(cluster.nodes(), first, command_bytes);
    let mut gaps = Vec::with_capacity(samples);
    for sample in 0..samples {
        // A settled cluster with commits flowing.
        let settle_deadline = Instant::now() + CLUSTER_WAIT;
        let victim = loop {
            let flowing = writer
                .next_commit_after(Instant::now(), settle_deadline)
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
        let stopped_at = Instant::now();
        cluster.stop_node(victim).await?;
        let committed = writer
            .next_commit_after(stopped_at, stopped_at + CLUSTER_WAIT)
            .await
            .ok_or_else(|| {
                format!(
                    "{}: nothing committed within {CLUSTER_WAIT:?} after stopping node {victim}",
                    cluster.protocol
                )
            })?;
        let gap = (committed - stopped_at).as_secs_f64() * 1000.0;
        gaps.push(gap);
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
    Ok(gaps)
}
