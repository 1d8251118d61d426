//! The scenario's clients: Jepsen-style processes (the harness's
//! [`RecordedClient`], so every operation also lands in the history the
//! harness checks), one operation at a time, 20–60 ms apart, writing unique
//! values or reading linearizably on the harness's keys ([`Mix`]). A client is
//! placed on a set of nodes: it talks only to them (the nodes of its side
//! of a partition, the isolated leader alone, or every node, following
//! leader hints anywhere).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consensus::NodeId;
use consensus_sim_cli::scenario::Outcome;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::record::ClientOp;
use super::timeline::Timeline;
use crate::harness::Harness;
use crate::workload::{self, client_options, RecordedClient};

/// What a client does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Two writes for every linearizable read.
    ReadsAndWrites,
    /// Writes only (the clients of a side that "keeps writing").
    WritesOnly,
}

/// Running clients.
pub struct Clients {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    bound: Duration,
}

impl Clients {
    /// No clients.
    pub fn none() -> Clients {
        Clients {
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            bound: Duration::ZERO,
        }
    }

    /// Starts one client per placement (each the nodes it may talk to),
    /// numbered from `first`; every operation is bounded by `op_timeout`.
    pub fn start(
        &mut self,
        harness: &Arc<Harness>,
        timeline: &Arc<Timeline>,
        placements: &[Vec<NodeId>],
        op_timeout: Duration,
        mix: Mix,
    ) {
        self.bound = self.bound.max(op_timeout * 2 + Duration::from_secs(2));
        let first = self.tasks.len();
        for (offset, nodes) in placements.iter().enumerate() {
            let index = first + offset;
            let task = spawn_client(
                harness.clone(),
                timeline.clone(),
                index,
                nodes.clone(),
                (op_timeout, mix),
                self.stop.clone(),
            );
            self.tasks.push(task);
        }
    }

    /// Stops every client (each finishes its operation, which is bounded).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(self.bound, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

fn spawn_client(
    harness: Arc<Harness>,
    timeline: Arc<Timeline>,
    index: usize,
    nodes: Vec<NodeId>,
    (op_timeout, mix): (Duration, Mix),
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let seed = harness.options().seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut config = harness.config().clone();
        config.nodes.retain(|n| nodes.contains(&n.id));
        let recorder = harness.recorder().clone();
        let mut client =
            match RecordedClient::new(recorder.clone(), &config, client_options(op_timeout)) {
                Ok(client) => client,
                Err(error) => {
                    timeline.note(format!("client {index} could not start: {error}"));
                    return;
                }
            };
        let keys = harness.options().key_names();
        while !stop.load(Ordering::Relaxed) {
            let key = &keys[rng.random_range(0..keys.len())];
            let write = mix == Mix::WritesOnly || rng.random_ratio(2, 3);
            let invoked_ns = timeline.now_ns();
            let outcome = if write {
                outcome_of(client.write(key, recorder.new_value()).await)
            } else {
                outcome_of(client.read(key).await)
            };
            timeline.push_op(ClientOp {
                client: index,
                nodes: nodes.clone(),
                write,
                invoked_ns,
                ended_ns: timeline.now_ns(),
                outcome,
            });
            let pause = Duration::from_millis(rng.random_range(20..=60));
            tokio::time::sleep(pause).await;
        }
        client.close().await;
    })
}

fn outcome_of<T>(outcome: workload::Outcome<T>) -> Outcome {
    match outcome {
        workload::Outcome::Ok(_) => Outcome::Ok,
        workload::Outcome::Fail(_) => Outcome::Failed,
        workload::Outcome::Info(_) => Outcome::Unknown,
    }
}
