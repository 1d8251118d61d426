//! The clients of a randomized run and the phases around them.
//!
//! Each client process runs one operation at a time (read, write or cas on
//! a small set of keys). It sends the request to the leader it cached (or a
//! random node), follows `NotLeader { hint }`, retries with backoff and the
//! **same** session sequence number (so a retried write applies once), and
//! gives up at a virtual deadline: a write or cas then ends `info` and the
//! process id is retired (Jepsen's convention), a read ends `fail` (reads
//! have no effect). Reads take a read barrier, then query the node's state
//! machine once it applied the barrier index.
//!
//! Phases: the main phase (clients + nemesis + periodic compaction), then
//! heal (every fault ends), then liveness (a fresh write must commit within
//! `liveness_ticks`), then the end-of-run checks.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use consensus_api::{
    Core, LogIndex, NodeId, Rejected, SessionCommand, SessionError, Sessions, Ticket,
};
use rand::Rng;

use crate::cluster::{Cluster, Completion};
use crate::history::{Event, EventType, HistoryWriter, Op};
use crate::kv::{encode_read, KvCommand, KvResponse, KvStore};
use crate::nemesis::Nemesis;
use crate::run::SimConfig;

const K_INVOKE: u64 = 1;
const K_RETRY: u64 = 2;
const K_ATTEMPT_TIMEOUT: u64 = 3;
const K_DEADLINE: u64 = 4;
const K_NEMESIS_INJECT: u64 = 10;
const K_NEMESIS_HEAL: u64 = 11;
const K_COMPACT: u64 = 12;

fn token(kind: u64, client: usize, seq: u64) -> u64 {
    kind | ((client as u64) << 8) | (seq << 24)
}

fn untoken(token: u64) -> (u64, usize, u64) {
    (token & 0xff, ((token >> 8) & 0xffff) as usize, token >> 24)
}

/// Counts of what the clients saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadSummary {
    /// Operations invoked.
    pub invoked: u64,
    /// Operations that took effect (`ok`).
    pub ok: u64,
    /// Operations that definitely did not take effect (`fail`).
    pub fail: u64,
    /// Operations with unknown outcome (`info`).
    pub info: u64,
    /// Request attempts sent to a node.
    pub attempts: u64,
    /// Reads served.
    pub reads_ok: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Main,
    Liveness { healed_at_ns: u64 },
    Done { liveness_ticks: u64 },
}

#[derive(Clone, Debug)]
struct Attempt {
    node: NodeId,
    incarnation: u64,
    ticket: Ticket,
    barrier: Option<LogIndex>,
}

#[derive(Clone, Debug)]
struct ActiveOp {
    /// Unique over the run (the invocation count), ties deadline timers.
    id: u64,
    op: Op,
    key: String,
    /// Session-wrapped command (writes and cas), identical on every retry.
    command: Option<Bytes>,
    attempt: Option<Attempt>,
    backoff_ticks: f64,
}

#[derive(Clone, Debug)]
struct Client {
    process: u64,
    session: u64,
    sequence: u64,
    leader: Option<NodeId>,
    op: Option<ActiveOp>,
    /// Bumped whenever the op or attempt changes, so stale timers are ignored.
    generation: u64,
    /// Last value this client saw per key (to make cas succeed sometimes).
    seen: BTreeMap<String, i64>,
    /// Whether the liveness client.
    liveness: bool,
}

/// Where a written value came from, for the final-state check.
#[derive(Clone, Debug)]
struct WriteRecord {
    key: String,
    invoked_ns: u64,
    completed_ns: Option<u64>,
    kind: EventType,
}

pub(crate) struct Workload {
    config: SimConfig,
    writer: Option<HistoryWriter>,
    history: Vec<Event>,
    clients: Vec<Client>,
    next_process: u64,
    issued: usize,
    next_value: i64,
    phase: Phase,
    pending: BTreeMap<(NodeId, u64, Ticket), (usize, u64)>,
    summary: WorkloadSummary,
    writes: BTreeMap<i64, WriteRecord>,
    error: Option<(String, String)>,
}

impl Workload {
    pub(crate) fn new(config: &SimConfig, writer: Option<HistoryWriter>) -> Self {
        Workload {
            config: config.clone(),
            writer,
            history: Vec::new(),
            clients: Vec::new(),
            next_process: 0,
            issued: 0,
            next_value: 1,
            phase: Phase::Main,
            pending: BTreeMap::new(),
            summary: WorkloadSummary::default(),
            writes: BTreeMap::new(),
            error: None,
        }
    }

    pub(crate) fn start<C: Core>(&mut self, cluster: &mut Cluster<C>, nemesis: &mut Nemesis) {
        let tick = cluster.tick_duration_ns();
        for slot in 0..self.config.clients.max(1) {
            let client = self.new_client(cluster, false);
            self.clients.push(client);
            let delay = cluster.rng().random_range(0..tick * 20);
            cluster.schedule_timer(cluster.now_ns() + delay, token(K_INVOKE, slot, 0));
        }
        if nemesis.enabled() {
            let gap = nemesis.gap_ticks(cluster) + 20;
            cluster.schedule_timer(cluster.now_ns() + gap * tick, token(K_NEMESIS_INJECT, 0, 0));
        }
        if self.config.compaction {
            let gap = cluster.rng().random_range(10..80);
            cluster.schedule_timer(cluster.now_ns() + gap * tick, token(K_COMPACT, 0, 0));
        }
    }

    fn new_client<C: Core>(&mut self, cluster: &mut Cluster<C>, liveness: bool) -> Client {
        self.next_process += 1;
        Client {
            process: self.next_process,
            session: cluster.rng().random::<u64>() | 1,
            sequence: 0,
            leader: None,
            op: None,
            generation: 0,
            seen: BTreeMap::new(),
            liveness,
        }
    }

    pub(crate) fn history(&self) -> &[Event] {
        &self.history
    }

    pub(crate) fn summary(&self) -> WorkloadSummary {
        self.summary.clone()
    }

    pub(crate) fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    pub(crate) fn liveness_ticks(&self) -> u64 {
        match self.phase {
            Phase::Done { liveness_ticks } => liveness_ticks,
            _ => 0,
        }
    }

    pub(crate) fn take_error(&mut self) -> Option<(String, String)> {
        self.error.take()
    }

    pub(crate) fn progress(&self) -> String {
        format!(
            "phase {:?}, {} of {} ops invoked, {} ok, {} fail, {} info",
            self.phase,
            self.summary.invoked,
            self.config.ops,
            self.summary.ok,
            self.summary.fail,
            self.summary.info
        )
    }

    fn record(&mut self, event: Event) {
        if let Some(writer) = &mut self.writer {
            if let Err(error) = writer.append(&event) {
                self.error = Some(("history-file".into(), error.to_string()));
            }
        }
        self.history.push(event);
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    pub(crate) fn on_timer<C: Core>(
        &mut self,
        cluster: &mut Cluster<C>,
        nemesis: &mut Nemesis,
        fired: u64,
    ) {
        let (kind, slot, seq) = untoken(fired);
        let tick = cluster.tick_duration_ns();
        let main = self.phase == Phase::Main;
        match kind {
            K_INVOKE => self.invoke(cluster, slot),
            K_RETRY if self.clients[slot].generation == seq => self.send_attempt(cluster, slot),
            K_ATTEMPT_TIMEOUT if self.clients[slot].generation == seq => {
                // No answer from this node: try another one.
                self.abandon_attempt(slot);
                self.clients[slot].leader = None;
                self.retry_later(cluster, slot);
            }
            K_DEADLINE
                if self.clients[slot]
                    .op
                    .as_ref()
                    .is_some_and(|op| op.id == seq) =>
            {
                self.time_out(cluster, slot);
            }
            K_NEMESIS_INJECT if main => {
                nemesis.inject(cluster);
                let hold = nemesis.hold_ticks(cluster);
                cluster.schedule_timer(cluster.now_ns() + hold * tick, token(K_NEMESIS_HEAL, 0, 0));
            }
            K_NEMESIS_HEAL if main => {
                nemesis.heal(cluster);
                let gap = nemesis.gap_ticks(cluster);
                cluster
                    .schedule_timer(cluster.now_ns() + gap * tick, token(K_NEMESIS_INJECT, 0, 0));
            }
            K_COMPACT if main => {
                let ids = cluster.node_ids();
                let id = ids[cluster.rng().random_range(0..ids.len())];
                if cluster.is_alive(id) && !cluster.is_paused(id) {
                    // A refusal (nothing new applied) is fine.
                    let _ = cluster.compact(id);
                }
                let gap = cluster.rng().random_range(10..80);
                cluster.schedule_timer(cluster.now_ns() + gap * tick, token(K_COMPACT, 0, 0));
            }
            _ => {}
        }
        if self.phase == Phase::Main && self.main_done() {
            self.begin_liveness(cluster, nemesis);
        }
    }

    fn main_done(&self) -> bool {
        self.issued >= self.config.ops && self.clients.iter().all(|c| c.op.is_none())
    }

    fn begin_liveness<C: Core>(&mut self, cluster: &mut Cluster<C>, nemesis: &mut Nemesis) {
        if nemesis.is_active() || nemesis.enabled() {
            nemesis.heal(cluster);
        }
        self.phase = Phase::Liveness {
            healed_at_ns: cluster.now_ns(),
        };
        let client = self.new_client(cluster, true);
        self.clients.push(client);
        let slot = self.clients.len() - 1;
        self.invoke(cluster, slot);
    }

    // ------------------------------------------------------------------
    // Operations
    // ------------------------------------------------------------------

    fn invoke<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) {
        if self.clients[slot].op.is_some() {
            return;
        }
        let liveness = self.clients[slot].liveness;
        if !liveness && (self.issued >= self.config.ops || self.phase != Phase::Main) {
            return;
        }
        let (key, op) = if liveness {
            let value = self.fresh_value();
            ("liveness".to_owned(), Op::Write(value))
        } else {
            self.issued += 1;
            self.choose_op(cluster, slot)
        };
        let client = &mut self.clients[slot];
        let command = match op {
            Op::Read(_) => None,
            Op::Write(value) => Some(KvCommand::Write {
                key: key.clone(),
                value,
            }),
            Op::Cas(expected, new) => Some(KvCommand::Cas {
                key: key.clone(),
                expected,
                new,
            }),
        }
        .map(|command| {
            client.sequence += 1;
            SessionCommand {
                client: client.session,
                sequence: client.sequence,
                body: command.encode(),
            }
            .encode()
        });
        if let Op::Write(value) | Op::Cas(_, value) = op {
            self.writes.insert(
                value,
                WriteRecord {
                    key: key.clone(),
                    invoked_ns: cluster.now_ns(),
                    completed_ns: None,
                    kind: EventType::Invoke,
                },
            );
        }
        client.op = Some(ActiveOp {
            id: 0,
            op,
            key: key.clone(),
            command,
            attempt: None,
            backoff_ticks: 0.5,
        });
        client.generation += 1;
        let process = client.process;
        self.summary.invoked += 1;
        let op_id = self.summary.invoked;
        if let Some(active) = self.clients[slot].op.as_mut() {
            active.id = op_id;
        }
        self.record(Event::invoke(process, key, op).at(cluster.now_ns()));
        let timeout = if liveness {
            self.config.liveness_ticks
        } else {
            self.config.op_timeout_ticks
        };
        let deadline = cluster.now_ns() + timeout * cluster.tick_duration_ns();
        cluster.schedule_timer(deadline, token(K_DEADLINE, slot, op_id));
        self.send_attempt(cluster, slot);
    }

    fn fresh_value(&mut self) -> i64 {
        let value = self.next_value;
        self.next_value += 1;
        value
    }

    fn choose_op<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) -> (String, Op) {
        let keys = self.config.keys.max(1);
        let key = format!("k{}", cluster.rng().random_range(0..keys));
        let roll = cluster.rng().random_range(0..100);
        let op = if roll < 40 {
            Op::Read(None)
        } else if roll < 75 {
            Op::Write(self.fresh_value())
        } else {
            let expected = match self.clients[slot].seen.get(&key) {
                Some(&value) if cluster.rng().random_bool(0.8) => value,
                _ => cluster.rng().random_range(0..self.next_value.max(1)),
            };
            Op::Cas(expected, self.fresh_value())
        };
        (key, op)
    }

    fn pick_node<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) -> NodeId {
        match self.clients[slot].leader {
            Some(node) => node,
            None => {
                let ids = cluster.node_ids();
                ids[cluster.rng().random_range(0..ids.len())]
            }
        }
    }

    fn send_attempt<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) {
        let Some(op) = &self.clients[slot].op else {
            return;
        };
        if op.attempt.is_some() {
            return;
        }
        let command = op.command.clone();
        let node = self.pick_node(cluster, slot);
        self.summary.attempts += 1;
        let result = match command {
            Some(command) => cluster.propose(node, command),
            None => cluster.read_barrier(node),
        };
        match result {
            Ok(ticket) => {
                let incarnation = cluster.incarnation(node);
                let client = &mut self.clients[slot];
                client.generation += 1;
                let generation = client.generation;
                if let Some(op) = client.op.as_mut() {
                    op.attempt = Some(Attempt {
                        node,
                        incarnation,
                        ticket,
                        barrier: None,
                    });
                }
                self.pending
                    .insert((node, incarnation, ticket), (slot, generation));
                let timeout = self.config.attempt_timeout_ticks * cluster.tick_duration_ns();
                cluster.schedule_timer(
                    cluster.now_ns() + timeout,
                    token(K_ATTEMPT_TIMEOUT, slot, generation),
                );
            }
            Err(rejected) => self.on_rejected(cluster, slot, node, rejected),
        }
    }

    fn on_rejected<C: Core>(
        &mut self,
        cluster: &mut Cluster<C>,
        slot: usize,
        node: NodeId,
        rejected: Rejected,
    ) {
        let client = &mut self.clients[slot];
        match rejected {
            Rejected::NotLeader { hint } | Rejected::OutcomeUnknown { hint } => {
                client.leader = hint.filter(|&h| h != node);
            }
            Rejected::Unavailable | Rejected::Overloaded => client.leader = None,
            other => {
                // The operation cannot be served at all (e.g. a core without
                // read barriers): it had no effect.
                let _ = other;
                client.leader = None;
            }
        }
        self.retry_later(cluster, slot);
    }

    fn retry_later<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) {
        let tick = cluster.tick_duration_ns() as f64;
        let jitter: f64 = cluster.rng().random_range(0.5..1.5);
        let client = &mut self.clients[slot];
        let Some(op) = client.op.as_mut() else { return };
        let delay = (op.backoff_ticks * jitter * tick) as u64;
        op.backoff_ticks = (op.backoff_ticks * 2.0).min(20.0);
        client.generation += 1;
        let generation = client.generation;
        cluster.schedule_timer(
            cluster.now_ns() + delay.max(1),
            token(K_RETRY, slot, generation),
        );
    }

    fn abandon_attempt(&mut self, slot: usize) {
        if let Some(op) = self.clients[slot].op.as_mut() {
            if let Some(attempt) = op.attempt.take() {
                self.pending
                    .remove(&(attempt.node, attempt.incarnation, attempt.ticket));
            }
        }
    }

    fn finish<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize, kind: EventType, op: Op) {
        self.abandon_attempt(slot);
        let client = &mut self.clients[slot];
        let Some(active) = client.op.take() else {
            return;
        };
        client.generation += 1;
        let process = client.process;
        let now = cluster.now_ns();
        match (kind, op) {
            (EventType::Ok, Op::Read(Some(value)))
            | (EventType::Ok, Op::Write(value))
            | (EventType::Ok, Op::Cas(_, value)) => {
                client.seen.insert(active.key.clone(), value);
            }
            (EventType::Fail, Op::Cas(..)) => {}
            _ => {}
        }
        if let Op::Write(value) | Op::Cas(_, value) = active.op {
            if let Some(record) = self.writes.get_mut(&value) {
                record.kind = kind;
                if kind != EventType::Info {
                    record.completed_ns = Some(now);
                }
            }
        }
        match kind {
            EventType::Ok => {
                self.summary.ok += 1;
                if matches!(op, Op::Read(_)) {
                    self.summary.reads_ok += 1;
                }
            }
            EventType::Fail => self.summary.fail += 1,
            _ => self.summary.info += 1,
        }
        self.record(Event::new(process, kind, active.key, op).at(now));
        let liveness = self.clients[slot].liveness;
        if liveness {
            if let Phase::Liveness { healed_at_ns } = self.phase {
                if kind == EventType::Ok {
                    let ticks = (now - healed_at_ns) / cluster.tick_duration_ns();
                    self.phase = Phase::Done {
                        liveness_ticks: ticks,
                    };
                } else {
                    self.error = Some((
                        "liveness-after-heal".into(),
                        format!(
                            "after every fault healed, a write did not commit within {} ticks (it ended {kind})",
                            self.config.liveness_ticks
                        ),
                    ));
                }
            }
            return;
        }
        if kind == EventType::Info {
            // Jepsen: a process whose operation ended info never invokes
            // again; continue as a fresh process with a fresh session.
            let fresh = self.new_client(cluster, false);
            let old_leader = self.clients[slot].leader;
            self.clients[slot] = Client {
                leader: old_leader,
                generation: self.clients[slot].generation + 1,
                ..fresh
            };
        }
        let think_max = cluster.tick_duration_ns() * 2;
        let think = cluster.rng().random_range(0..think_max);
        cluster.schedule_timer(cluster.now_ns() + think, token(K_INVOKE, slot, 0));
    }

    fn time_out<C: Core>(&mut self, cluster: &mut Cluster<C>, slot: usize) {
        let Some(active) = &self.clients[slot].op else {
            return;
        };
        let op = active.op;
        match op {
            // A read has no effect: it definitely did not happen.
            Op::Read(_) => self.finish(cluster, slot, EventType::Fail, op),
            _ => self.finish(cluster, slot, EventType::Info, op),
        }
    }

    // ------------------------------------------------------------------
    // Answers
    // ------------------------------------------------------------------

    pub(crate) fn after_step<C: Core>(&mut self, cluster: &mut Cluster<C>) {
        for crashed in cluster.take_crashed() {
            // Connection lost: every attempt on that node retries elsewhere.
            let lost: Vec<usize> = self
                .pending
                .iter()
                .filter(|((node, _, _), _)| *node == crashed)
                .map(|(_, (slot, _))| *slot)
                .collect();
            for slot in lost {
                self.abandon_attempt(slot);
                self.clients[slot].leader = None;
                self.retry_later(cluster, slot);
            }
        }
        for completion in cluster.take_completions() {
            self.on_completion(cluster, completion);
        }
        let progressed = cluster.take_applied_progress();
        if !progressed.is_empty() {
            self.serve_reads(cluster, &progressed);
        }
        if self.phase == Phase::Main && self.main_done() {
            // Ends through the next timer; make sure one fires.
            cluster.schedule_timer(cluster.now_ns(), token(0, 0, 0));
        }
    }

    fn on_completion<C: Core>(&mut self, cluster: &mut Cluster<C>, completion: Completion) {
        let key = (completion.node, completion.incarnation, completion.ticket);
        let Some((slot, generation)) = self.pending.remove(&key) else {
            return;
        };
        let client = &self.clients[slot];
        if client.generation != generation {
            return;
        }
        let Some(active) = &client.op else { return };
        let op = active.op;
        match completion.result {
            Ok(index) => match op {
                Op::Read(_) => {
                    if let Some(attempt) = self.clients[slot]
                        .op
                        .as_mut()
                        .and_then(|o| o.attempt.as_mut())
                    {
                        attempt.barrier = Some(index);
                    }
                    self.pending.insert(key, (slot, generation));
                    let node = completion.node;
                    self.serve_reads(cluster, &BTreeSet::from([node]));
                }
                Op::Write(_) | Op::Cas(..) => match completion.response {
                    Some(bytes) => self.on_command_response(cluster, slot, op, &bytes),
                    None => {
                        // Committed, but this node did not apply it itself
                        // (snapshot): ask again with the same sequence number
                        // to learn the cached answer.
                        self.abandon_attempt(slot);
                        self.retry_later(cluster, slot);
                    }
                },
            },
            Err(rejected) => {
                self.abandon_attempt(slot);
                self.on_rejected(cluster, slot, completion.node, rejected);
            }
        }
    }

    fn on_command_response<C: Core>(
        &mut self,
        cluster: &mut Cluster<C>,
        slot: usize,
        op: Op,
        bytes: &Bytes,
    ) {
        match Sessions::<KvStore>::decode_response(bytes) {
            Ok(body) => match (KvResponse::decode(&body), op) {
                (KvResponse::Written, Op::Write(_)) | (KvResponse::CasOk, Op::Cas(..)) => {
                    self.finish(cluster, slot, EventType::Ok, op)
                }
                (KvResponse::CasFailed(_), Op::Cas(..)) => {
                    self.finish(cluster, slot, EventType::Fail, op)
                }
                (other, _) => {
                    self.error = Some((
                        "state-machine".into(),
                        format!("client {slot}: {op} answered {other:?}"),
                    ));
                }
            },
            // The session moved past this request or was evicted: the
            // outcome is unknown.
            Err(SessionError::Stale { .. }) | Err(SessionError::Expired(_)) => {
                self.finish(cluster, slot, EventType::Info, op)
            }
            Err(SessionError::Malformed) => {
                self.error = Some((
                    "state-machine".into(),
                    format!("client {slot}: malformed session response to {op}"),
                ));
            }
        }
    }

    fn serve_reads<C: Core>(&mut self, cluster: &mut Cluster<C>, nodes: &BTreeSet<NodeId>) {
        let mut ready = Vec::new();
        for (slot, client) in self.clients.iter().enumerate() {
            let Some(active) = &client.op else { continue };
            let Some(attempt) = &active.attempt else {
                continue;
            };
            let Some(barrier) = attempt.barrier else {
                continue;
            };
            if !nodes.contains(&attempt.node) || !cluster.is_alive(attempt.node) {
                continue;
            }
            if cluster.incarnation(attempt.node) != attempt.incarnation {
                continue;
            }
            if cluster.applied_index(attempt.node) >= barrier {
                ready.push((slot, attempt.node, active.key.clone()));
            }
        }
        for (slot, node, key) in ready {
            let answer = KvResponse::decode(&cluster.query(node, &encode_read(&key)));
            match answer {
                KvResponse::Value(value) => {
                    self.finish(cluster, slot, EventType::Ok, Op::Read(value))
                }
                other => {
                    self.error = Some((
                        "state-machine".into(),
                        format!("client {slot}: read of {key} answered {other:?}"),
                    ));
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // End of run
    // ------------------------------------------------------------------

    /// Every acknowledged write is present in the final state or was
    /// overwritten by a write that did not finish before it started.
    pub(crate) fn check_final_state<C: Core>(&self, cluster: &Cluster<C>) -> Result<(), String> {
        let Some(reference) = cluster
            .node_ids()
            .into_iter()
            .filter(|&n| cluster.is_alive(n))
            .max_by_key(|&n| (cluster.applied_index(n), std::cmp::Reverse(n)))
        else {
            return Err("no node is alive at the end".into());
        };
        let state = cluster.kv(reference);
        let mut keys: BTreeSet<&str> = self.writes.values().map(|w| w.key.as_str()).collect();
        keys.extend(state.registers().keys().map(String::as_str));
        for key in keys {
            let acked: Vec<(&i64, &WriteRecord)> = self
                .writes
                .iter()
                .filter(|(_, w)| w.key == key && w.kind == EventType::Ok)
                .collect();
            let Some(value) = state.get(key) else {
                if let Some((value, _)) = acked.first() {
                    return Err(format!(
                        "key {key} is missing on node {reference} (applied {}) but the write of {value} was acknowledged",
                        cluster.applied_index(reference)
                    ));
                }
                continue;
            };
            let Some(source) = self.writes.get(&value) else {
                return Err(format!(
                    "key {key} holds {value} on node {reference}, which no client wrote"
                ));
            };
            if source.key != key || source.kind == EventType::Fail {
                return Err(format!(
                    "key {key} holds {value} on node {reference}, written by an operation that failed or targeted {}",
                    source.key
                ));
            }
            if let Some(finished) = source.completed_ns {
                for (lost, write) in &acked {
                    if **lost != value && write.invoked_ns > finished {
                        return Err(format!(
                            "the acknowledged write of {lost} to {key} (invoked at {} ns) is lost: \
                             the final value {value} was written by an operation that finished earlier, at {finished} ns",
                            write.invoked_ns
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
