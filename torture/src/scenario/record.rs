//! What a scenario run on real processes records, as plain data: the
//! nodes' `status` samples, the fault spans, the notes and every client
//! operation of the scenario's clients. The expectations
//! ([`super::expect`]) are pure functions of this record, so a test can
//! feed them a fabricated one.

use consensus::{LogIndex, NodeId, Role};
use consensus_sim_cli::scenario::{FaultSpan, NodeKind, NodeState, Note, Outcome};

/// Every node at one sample; `nodes[i]` is node `i + 1`, `None` when it
/// did not answer `status` in time (a node restarting, or too busy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Nanoseconds since the start of the scenario (the clients' start).
    pub time_ns: u64,
    /// The nodes, in id order.
    pub nodes: Vec<Option<NodeState>>,
}

impl Observation {
    /// The state of node `id`, if it answered (or is known to be paused or
    /// down).
    pub fn state(&self, id: NodeId) -> Option<&NodeState> {
        self.nodes
            .get((id as usize).checked_sub(1)?)
            .and_then(Option::as_ref)
    }

    /// The running node in role leader with the highest epoch.
    pub fn leader(&self) -> Option<(NodeId, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i as NodeId + 1, n)))
            .filter(|(_, n)| n.kind == NodeKind::Up(Role::Leader))
            .max_by_key(|(id, n)| (n.epoch, std::cmp::Reverse(*id)))
            .map(|(id, n)| (id, n.epoch))
    }

    /// The highest commit index among `nodes` that answered.
    pub fn max_commit(&self, nodes: &[NodeId]) -> LogIndex {
        nodes
            .iter()
            .filter_map(|&id| self.state(id))
            .map(|n| n.commit)
            .max()
            .unwrap_or(0)
    }

    /// True when node `id` answered and said it leads in `epoch`.
    pub fn leads_in(&self, id: NodeId, epoch: u64) -> bool {
        self.state(id)
            .is_some_and(|n| n.kind == NodeKind::Up(Role::Leader) && n.epoch == epoch)
    }
}

/// One operation of a scenario client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp {
    /// The client (index among the scenario's clients).
    pub client: usize,
    /// The nodes that client may talk to (every node: it follows leader
    /// hints anywhere).
    pub nodes: Vec<NodeId>,
    /// A write (otherwise a linearizable read).
    pub write: bool,
    /// Invocation, nanoseconds since the start.
    pub invoked_ns: u64,
    /// Completion, nanoseconds since the start.
    pub ended_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl ClientOp {
    /// True when the client could only talk to nodes of `side`.
    pub fn confined_to(&self, side: &[NodeId]) -> bool {
        !self.nodes.is_empty() && self.nodes.iter().all(|n| side.contains(n))
    }
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Protocol name (`raft`, `multipaxos`, `paxos`, `zab`).
    pub protocol: String,
    /// Samples, in time order.
    pub samples: Vec<Observation>,
    /// Faults, in start order.
    pub faults: Vec<FaultSpan>,
    /// Commentary, in time order.
    pub notes: Vec<Note>,
    /// Client operations, in completion order.
    pub ops: Vec<ClientOp>,
    /// When the scenario's clients were told to stop.
    pub clients_stopped_ns: Option<u64>,
}

impl Record {
    /// Classic Paxos has no leader.
    pub fn leaderless(&self) -> bool {
        self.protocol == "paxos"
    }

    /// Samples taken in `[from_ns, to_ns]`.
    pub fn samples_between(
        &self,
        from_ns: u64,
        to_ns: u64,
    ) -> impl Iterator<Item = &Observation> + '_ {
        self.samples
            .iter()
            .filter(move |s| s.time_ns >= from_ns && s.time_ns <= to_ns)
    }

    /// Writes by clients confined to `side`, invoked in `[from_ns, to_ns)`:
    /// (acknowledged before `to_ns`, failed, unknown or acknowledged later).
    pub fn writes_confined(&self, side: &[NodeId], from_ns: u64, to_ns: u64) -> (u64, u64, u64) {
        let mut counts = (0, 0, 0);
        for op in self.ops.iter().filter(|op| {
            op.write && op.confined_to(side) && op.invoked_ns >= from_ns && op.invoked_ns < to_ns
        }) {
            match op.outcome {
                Outcome::Ok if op.ended_ns < to_ns => counts.0 += 1,
                Outcome::Failed => counts.1 += 1,
                _ => counts.2 += 1,
            }
        }
        counts
    }

    /// The end of the first write acknowledged after `from_ns` (invoked
    /// then or later) by a client `filter` accepts.
    pub fn first_ok_write(&self, from_ns: u64, filter: impl Fn(&ClientOp) -> bool) -> Option<u64> {
        self.ops
            .iter()
            .filter(|op| op.write && op.outcome == Outcome::Ok && op.invoked_ns >= from_ns)
            .filter(|op| filter(op))
            .map(|op| op.ended_ns)
            .min()
    }

    /// The longest interval in `[from_ns, to_ns]` without an acknowledged
    /// write: (start, end).
    pub fn longest_gap(&self, from_ns: u64, to_ns: u64) -> (u64, u64) {
        let mut times: Vec<u64> = self
            .ops
            .iter()
            .filter(|op| op.write && op.outcome == Outcome::Ok)
            .map(|op| op.ended_ns)
            .filter(|&t| t > from_ns && t <= to_ns)
            .collect();
        times.sort_unstable();
        let mut previous = from_ns;
        let mut best = (from_ns, from_ns);
        for time in times.into_iter().chain(std::iter::once(to_ns)) {
            if time.saturating_sub(previous) > best.1 - best.0 {
                best = (previous, time);
            }
            previous = time;
        }
        best
    }

    /// How often the observed leader (node and epoch) changed from
    /// `from_ns` on (`None`: a leaderless protocol).
    pub fn leader_changes(&self, from_ns: u64) -> Option<u64> {
        if self.leaderless() {
            return None;
        }
        let mut last = None;
        let mut changes = 0;
        for sample in &self.samples {
            let Some(leader) = sample.leader() else {
                continue;
            };
            if last.is_some_and(|l| l != leader) && sample.time_ns >= from_ns {
                changes += 1;
            }
            last = Some(leader);
        }
        Some(changes)
    }

    /// Operations of the scenario's clients: (ok, failed, unknown).
    pub fn op_totals(&self) -> (u64, u64, u64) {
        let mut totals = (0, 0, 0);
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok => totals.0 += 1,
                Outcome::Failed => totals.1 += 1,
                Outcome::Unknown => totals.2 += 1,
            }
        }
        totals
    }
}
