//! The live timeline: a sampler that asks every node for its `status`
//! every ~150 ms and prints one row (each node's role, epoch and commit
//! index, and the client operations that ended since the previous row),
//! fault and note lines where they happen, all kept in a [`Record`].
//!
//! The cells are the simulator's (`consensus_sim_cli::render::text`), so a
//! real run reads like `consensus-sim scenario NAME --protocol P`. A node
//! that did not answer in time shows `?`; a paused node `z` with the last
//! role it reported; a killed node `x`.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consensus::{NodeId, Role};
use consensus_sim_cli::render::text::node_cell;
use consensus_sim_cli::scenario::{format_epoch, seconds, FaultSpan, NodeKind, NodeState, Note};

use super::record::{ClientOp, Observation, Record};
use crate::harness::Harness;
use consensus_kv::client::KvClient;
use consensus_kv::wire::NodeReport;

/// The record of a run being made, printed as it grows.
pub struct Timeline {
    start: Instant,
    nodes: usize,
    live: bool,
    inner: Mutex<Inner>,
}

struct Inner {
    record: Record,
    text: String,
    last_row_ns: Option<u64>,
    last_leader: Option<(NodeId, u64)>,
}

impl Timeline {
    /// A timeline whose time 0 is now; `live` also prints each line to
    /// stdout as it is made.
    pub fn new(protocol: &str, nodes: usize, live: bool) -> Timeline {
        Timeline {
            start: Instant::now(),
            nodes,
            live,
            inner: Mutex::new(Inner {
                record: Record {
                    protocol: protocol.to_string(),
                    ..Record::default()
                },
                text: String::new(),
                last_row_ns: None,
                last_leader: None,
            }),
        }
    }

    /// Nanoseconds since time 0.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The instant `at` after time 0.
    pub fn instant(&self, at: Duration) -> Instant {
        self.start + at
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, inner: &mut Inner, line: &str) {
        if self.live {
            println!("{line}");
        }
        inner.text.push_str(line);
        inner.text.push('\n');
    }

    /// A line of its own (the header, the column titles).
    pub fn line(&self, line: &str) {
        let mut inner = self.inner();
        self.emit(&mut inner, line);
    }

    /// An event line at the current time: `   1.50s > text`, kept as a note.
    pub fn note(&self, text: impl Into<String>) {
        let text = text.into();
        let time_ns = self.now_ns();
        let mut inner = self.inner();
        self.emit(&mut inner, &format!("{:>8} > {text}", seconds(time_ns)));
        inner.record.notes.push(Note { time_ns, text });
    }

    /// Records the start of a fault (printed as `LABEL begins`, with `how`
    /// it was done); returns its index for [`Self::end_fault`].
    pub fn begin_fault(&self, label: String, nodes: Vec<NodeId>, how: &str) -> usize {
        let start_ns = self.now_ns();
        let mut inner = self.inner();
        let line = format!("{:>8} > {label} begins ({how})", seconds(start_ns));
        self.emit(&mut inner, &line);
        inner.record.faults.push(FaultSpan {
            label,
            nodes,
            start_ns,
            end_ns: None,
        });
        inner.record.faults.len() - 1
    }

    /// Records the end of a fault now (`LABEL ends`, with `how`).
    pub fn end_fault(&self, fault: usize, how: &str) {
        self.end_fault_at(fault, self.now_ns(), how);
    }

    /// Records the end of a fault at `end_ns` (when undoing it began).
    pub fn end_fault_at(&self, fault: usize, end_ns: u64, how: &str) {
        let mut inner = self.inner();
        let label = inner.record.faults[fault].label.clone();
        inner.record.faults[fault].end_ns = Some(end_ns);
        let line = format!("{:>8} > {label} ends ({how})", seconds(end_ns));
        self.emit(&mut inner, &line);
    }

    /// Records a finished client operation.
    pub fn push_op(&self, op: ClientOp) {
        self.inner().record.ops.push(op);
    }

    /// Marks the moment the scenario's clients were told to stop.
    pub fn clients_stopped(&self) {
        let now = self.now_ns();
        self.inner().record.clients_stopped_ns = Some(now);
    }

    /// The column titles, like the simulator's single-protocol timeline.
    pub fn column_header(&self) -> String {
        let mut header = format!("{:>8} |", "time");
        for id in 1..=self.nodes {
            let _ = write!(header, " {:<12}", format!("n{id}"));
        }
        header.push_str(" | ops ok/failed/unknown");
        header
    }

    /// Adds a sample: a note when the leader changed, then its row.
    pub fn push_sample(&self, sample: Observation) {
        let mut inner = self.inner();
        let protocol = inner.record.protocol.clone();
        // A sample in which the leader did not answer does not count as a
        // change.
        let leader = sample.leader();
        if leader.is_some() && leader != inner.last_leader {
            if let Some((id, epoch)) = leader {
                let text = format!(
                    "node {id} becomes leader ({})",
                    format_epoch(&protocol, epoch)
                );
                let line = format!("{:>8} > {text}", seconds(sample.time_ns));
                self.emit(&mut inner, &line);
                inner.record.notes.push(Note {
                    time_ns: sample.time_ns,
                    text,
                });
            }
            inner.last_leader = leader;
        }
        let (ok, failed, unknown) =
            ops_between(&inner.record.ops, inner.last_row_ns, sample.time_ns);
        let mut row = format!("{:>8} |", seconds(sample.time_ns));
        for node in &sample.nodes {
            match node {
                Some(state) => row.push_str(&node_cell(&protocol, state)),
                None => {
                    let _ = write!(row, " {:<12}", "?");
                }
            }
        }
        let _ = write!(row, " | {ok}/{failed}/{unknown}");
        self.emit(&mut inner, &row);
        inner.last_row_ns = Some(sample.time_ns);
        inner.record.samples.push(sample);
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<Observation> {
        self.inner().record.samples.last().cloned()
    }

    /// A copy of everything recorded.
    pub fn record(&self) -> Record {
        self.inner().record.clone()
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.inner().text.clone()
    }
}

/// Operations that ended in `(from, to]`: (ok, failed, unknown).
fn ops_between(ops: &[ClientOp], from: Option<u64>, to: u64) -> (u64, u64, u64) {
    use consensus_sim_cli::scenario::Outcome;
    let mut counts = (0, 0, 0);
    for op in ops
        .iter()
        .filter(|op| from.is_none_or(|f| op.ended_ns > f) && op.ended_ns <= to)
    {
        match op.outcome {
            Outcome::Ok => counts.0 += 1,
            Outcome::Failed => counts.1 += 1,
            Outcome::Unknown => counts.2 += 1,
        }
    }
    counts
}

fn state_of(report: &NodeReport) -> NodeState {
    NodeState {
        kind: NodeKind::Up(report.role),
        epoch: report.epoch,
        commit: report.commit_index,
        applied: report.applied_index,
    }
}

/// Every node now: killed nodes crashed, paused nodes with the last state
/// they reported, the others as their `status` says (`None` when they did
/// not answer within `status`'s attempt timeout).
async fn observe(
    harness: &Harness,
    status: &KvClient,
    known: &mut [Option<NodeState>],
) -> Vec<Option<NodeState>> {
    let ids = harness.ids();
    let queries = ids.iter().map(|&id| async move {
        if harness.is_down(id) || harness.is_paused(id) {
            return None;
        }
        status.status(id).await.ok()
    });
    let answers = futures::future::join_all(queries).await;
    ids.iter()
        .zip(answers)
        .map(|(&id, answer)| {
            let index = id as usize - 1;
            if harness.is_down(id) {
                return Some(NodeState::CRASHED);
            }
            if harness.is_paused(id) {
                let last = known[index];
                return Some(NodeState {
                    kind: NodeKind::Paused(last.and_then(|s| s.role()).unwrap_or(Role::Follower)),
                    ..last.unwrap_or(NodeState::CRASHED)
                });
            }
            let state = answer.map(|report| state_of(&report));
            if state.is_some() {
                known[index] = state;
            }
            state
        })
        .collect()
}

/// Samples every `every` until `stop` is set.
pub fn spawn_sampler(
    harness: Arc<Harness>,
    timeline: Arc<Timeline>,
    status: Arc<KvClient>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut known = vec![None; harness.ids().len()];
        while !stop.load(Ordering::Relaxed) {
            // One row per `every`, at least 40 ms apart when a slow answer
            // made a row late.
            let next = Instant::now() + every;
            let nodes = observe(&harness, &status, &mut known).await;
            // Stamped when the answers are in, so rows and fault lines
            // print in time order.
            let time_ns = timeline.now_ns();
            timeline.push_sample(Observation { time_ns, nodes });
            let next = next.max(Instant::now() + Duration::from_millis(40));
            tokio::time::sleep_until(next.into()).await;
        }
    })
}
