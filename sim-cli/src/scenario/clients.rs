//! The scenario's clients: Jepsen-style processes, one operation at a time
//! (a write of a unique value or a linearizable read, on two registers),
//! placed on a node and allowed to follow leader hints only where the
//! scenario says they can reach.
//!
//! An attempt that is refused (`NotLeader` without a usable hint,
//! `Unavailable`, `Overloaded`) ends the operation `failed` at once: the
//! request had no effect, and a client on the minority side must hear that
//! quickly (the seed's "fail fast"). `OutcomeUnknown`, a crash of the node,
//! or no answer within [`OP_TIMEOUT_NS`] ends a write `unknown` (it may have
//! applied; the process retires and a new one, with a new session, takes
//! over) and a read `failed` (reads have no effect).

use consensus_api::{Bytes, Core, NodeId, Rejected, SessionCommand, Sessions};
use consensus_sim::history::Op;
use consensus_sim::kv::{encode_read, KvCommand, KvResponse, KvStore};
use consensus_sim::Completion;
use rand::Rng;

use super::harness::{token, Harness, K_DEADLINE, K_INVOKE};
use super::record::{OpRecord, Outcome};

/// An operation without an answer after this long ends unknown (a write)
/// or failed (a read).
pub const OP_TIMEOUT_NS: u64 = 1_000_000_000;

/// The registers the clients use.
const KEYS: [&str; 2] = ["x", "y"];

/// Where a client can send requests.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Any node (partial connectivity between servers does not touch
    /// clients): follows every leader hint.
    Anywhere,
    /// The nodes on the same side of a partition as its anchor node.
    SideOf,
    /// Only its anchor node (a client that believes the anchor leads).
    Only,
}

/// What the next operation of a client will be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpChoice {
    /// Drawn at random: 70% writes, 30% reads.
    Random,
    /// A read.
    Read,
    /// A write.
    Write,
}

#[derive(Clone, Debug)]
pub(super) struct Attempt {
    pub(super) node: NodeId,
    pub(super) incarnation: u64,
    /// `None` while held in a paused node's socket.
    pub(super) ticket: Option<Ticket>,
    pub(super) barrier: Option<consensus_api::LogIndex>,
}

use consensus_api::Ticket;

#[derive(Clone, Debug)]
pub(super) struct Active {
    pub(super) op_index: usize,
    pub(super) command: Option<Bytes>,
    pub(super) attempt: Option<Attempt>,
    pub(super) hops: u32,
}

/// One client process.
#[derive(Clone, Debug)]
pub struct Client {
    /// The node it is placed at.
    pub anchor: NodeId,
    /// Where it may go.
    pub reach: Reach,
    /// The node it tries first (the anchor, or another after failures).
    pub(super) home: NodeId,
    pub(super) cached: Option<NodeId>,
    pub(super) process: u64,
    pub(super) session: u64,
    pub(super) sequence: u64,
    pub(super) active: Option<Active>,
    pub(super) running: bool,
    /// Stop after this operation (one-shot clients).
    pub(super) once: bool,
    pub(super) next: OpChoice,
}

impl<C: Core> Harness<C> {
    // ------------------------------------------------------------------
    // Placing clients
    // ------------------------------------------------------------------

    /// Starts a client placed at `anchor`; its first operation is invoked
    /// within 20 ms.
    pub fn add_client(&mut self, anchor: NodeId, reach: Reach) -> usize {
        self.next_process += 1;
        let session = self.cluster.rng().random::<u64>() | 1;
        self.clients.push(Client {
            anchor,
            reach,
            home: anchor,
            cached: None,
            process: self.next_process,
            session,
            sequence: 0,
            active: None,
            running: true,
            once: false,
            next: OpChoice::Random,
        });
        let slot = self.clients.len() - 1;
        let delay = self.cluster.rng().random_range(0..20_000_000);
        let at = self.now_ns() + delay;
        self.cluster.schedule_timer(at, token(K_INVOKE, slot, 0));
        slot
    }

    /// Moves the running clients to the given placements, in order (more
    /// placements than clients start new ones; fewer stop the rest after
    /// their current operation). Operations in progress finish where they
    /// are.
    pub fn place_clients(&mut self, placements: &[(NodeId, Reach)]) {
        for (slot, &(anchor, reach)) in placements.iter().enumerate() {
            if slot < self.clients.len() && !self.clients[slot].once {
                let client = &mut self.clients[slot];
                client.anchor = anchor;
                client.reach = reach;
                client.home = anchor;
                client.cached = None;
            } else {
                self.add_client(anchor, reach);
            }
        }
        for client in self.clients.iter_mut().skip(placements.len()) {
            client.running = false;
        }
    }

    /// Invokes one operation now from a new client at `anchor` (which only
    /// talks to that node); returns the operation's index.
    pub fn one_shot(&mut self, anchor: NodeId, choice: OpChoice) -> usize {
        self.next_process += 1;
        let session = self.cluster.rng().random::<u64>() | 1;
        self.clients.push(Client {
            anchor,
            reach: Reach::Only,
            home: anchor,
            cached: None,
            process: self.next_process,
            session,
            sequence: 0,
            active: None,
            running: true,
            once: true,
            next: choice,
        });
        let slot = self.clients.len() - 1;
        self.invoke(slot);
        self.ops.len() - 1
    }

    /// Stops every client after its current operation and runs until those
    /// finished (at most [`OP_TIMEOUT_NS`] and a bit).
    pub fn stop_clients(&mut self) {
        self.clients_stopped_ns.get_or_insert(self.cluster.now_ns());
        for client in &mut self.clients {
            client.running = false;
        }
        let limit = self.now_ns() + OP_TIMEOUT_NS + 100_000_000;
        self.run_until_ns(limit, |h| h.clients.iter().all(|c| c.active.is_none()));
    }

    /// Starts the stopped clients again (those of the last placement).
    pub fn resume_clients(&mut self) {
        let now = self.now_ns();
        for slot in 0..self.clients.len() {
            let client = &mut self.clients[slot];
            if client.running || client.once {
                continue;
            }
            client.running = true;
            if client.active.is_none() {
                let delay = self.cluster.rng().random_range(0..20_000_000);
                self.cluster
                    .schedule_timer(now + delay, token(K_INVOKE, slot, 0));
            }
        }
        self.clients_stopped_ns = None;
    }

    /// The operations recorded so far.
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }

    // ------------------------------------------------------------------
    // Operations
    // ------------------------------------------------------------------

    pub(super) fn invoke(&mut self, slot: usize) {
        let client = &self.clients[slot];
        if !client.running || client.active.is_some() {
            return;
        }
        let choice = client.next;
        let key = KEYS[self.cluster.rng().random_range(0..KEYS.len())].to_owned();
        let read = match choice {
            OpChoice::Read => true,
            OpChoice::Write => false,
            OpChoice::Random => self.cluster.rng().random_bool(0.3),
        };
        let op = if read {
            Op::Read(None)
        } else {
            self.next_value += 1;
            Op::Write(self.next_value - 1)
        };
        let client = &mut self.clients[slot];
        let command = match op {
            Op::Write(value) => {
                client.sequence += 1;
                let body = KvCommand::Write {
                    key: key.clone(),
                    value,
                }
                .encode();
                Some(
                    SessionCommand {
                        client: client.session,
                        sequence: client.sequence,
                        body,
                    }
                    .encode(),
                )
            }
            _ => None,
        };
        let now = self.cluster.now_ns();
        self.ops.push(OpRecord {
            client: slot,
            process: client.process,
            key,
            op,
            invoked_ns: now,
            node: client.cached.unwrap_or(client.home),
            ended_ns: None,
            outcome: None,
            detail: String::new(),
            invoked_seq: self.event_seq,
            ended_seq: 0,
        });
        self.event_seq += 1;
        let op_index = self.ops.len() - 1;
        client.active = Some(Active {
            op_index,
            command,
            attempt: None,
            hops: 0,
        });
        self.cluster.schedule_timer(
            now + OP_TIMEOUT_NS,
            token(K_DEADLINE, slot, op_index as u64),
        );
        self.send_attempt(slot);
    }

    /// May the client send to `node`?
    fn allowed(&self, slot: usize, node: NodeId) -> bool {
        let client = &self.clients[slot];
        match client.reach {
            Reach::Anywhere => true,
            Reach::Only => node == client.anchor,
            Reach::SideOf => node == client.anchor || self.connected(client.anchor, node),
        }
    }

    fn send_attempt(&mut self, slot: usize) {
        let client = &self.clients[slot];
        let target = client
            .cached
            .filter(|&n| self.allowed(slot, n))
            .unwrap_or(client.home);
        let Some(active) = &client.active else { return };
        let command = active.command.clone();
        let op_index = active.op_index;
        self.ops[op_index].node = target;
        let incarnation = self.cluster.incarnation(target);
        if self.cluster.is_alive(target) && self.cluster.is_paused(target) {
            // The request waits in the stopped process's socket.
            self.set_attempt(slot, target, incarnation, None);
            self.held.entry(target).or_default().push(slot);
            return;
        }
        let result = match command {
            Some(command) => self.cluster.propose(target, command),
            None => self.cluster.read_barrier(target),
        };
        match result {
            Ok(ticket) => {
                self.set_attempt(slot, target, incarnation, Some(ticket));
                self.pending.insert((target, incarnation, ticket), slot);
            }
            Err(rejected) => self.on_rejected(slot, target, rejected),
        }
    }

    fn set_attempt(&mut self, slot: usize, node: NodeId, incarnation: u64, ticket: Option<Ticket>) {
        if let Some(active) = self.clients[slot].active.as_mut() {
            active.attempt = Some(Attempt {
                node,
                incarnation,
                ticket,
                barrier: None,
            });
        }
    }

    /// Submits the requests that waited while `node` was paused.
    pub(super) fn flush_held(&mut self, node: NodeId) {
        for slot in self.held.remove(&node).unwrap_or_default() {
            let waiting = self.clients[slot]
                .active
                .as_ref()
                .and_then(|a| a.attempt.as_ref())
                .is_some_and(|a| a.node == node && a.ticket.is_none());
            if waiting {
                if let Some(active) = self.clients[slot].active.as_mut() {
                    active.attempt = None;
                }
                self.clients[slot].cached = Some(node);
                self.send_attempt(slot);
            }
        }
    }

    fn on_rejected(&mut self, slot: usize, node: NodeId, rejected: Rejected) {
        if let Some(active) = self.clients[slot].active.as_mut() {
            active.attempt = None;
        }
        let hops = self.clients[slot].active.as_ref().map_or(0, |a| a.hops);
        match rejected {
            Rejected::NotLeader { hint: Some(hint) }
                if hint != node && hops < 3 && self.allowed(slot, hint) =>
            {
                let client = &mut self.clients[slot];
                client.cached = Some(hint);
                if let Some(active) = client.active.as_mut() {
                    active.hops += 1;
                }
                self.send_attempt(slot);
            }
            Rejected::OutcomeUnknown { .. } => {
                let write = self.active_is_write(slot);
                let outcome = if write {
                    Outcome::Unknown
                } else {
                    Outcome::Failed
                };
                self.end_op(slot, outcome, format!("node {node}: {rejected}"));
            }
            other => self.end_op(slot, Outcome::Failed, format!("node {node}: {other}")),
        }
    }

    fn active_is_write(&self, slot: usize) -> bool {
        self.clients[slot]
            .active
            .as_ref()
            .is_some_and(|a| a.command.is_some())
    }

    /// Ends the client's operation.
    pub(super) fn end_op(&mut self, slot: usize, outcome: Outcome, detail: String) {
        let Some(active) = self.clients[slot].active.take() else {
            return;
        };
        if let Some(attempt) = &active.attempt {
            if let Some(ticket) = attempt.ticket {
                self.pending
                    .remove(&(attempt.node, attempt.incarnation, ticket));
            }
            if let Some(list) = self.held.get_mut(&attempt.node) {
                list.retain(|&s| s != slot);
            }
        }
        let now = self.cluster.now_ns();
        let record = &mut self.ops[active.op_index];
        record.ended_ns = Some(now);
        record.outcome = Some(outcome);
        record.detail = detail;
        record.ended_seq = self.event_seq;
        self.event_seq += 1;
        if outcome == Outcome::Ok && record.is_write() {
            self.check_ack_connected(active.op_index);
        }
        if outcome != Outcome::Ok {
            self.roam(slot);
        }
        if outcome == Outcome::Unknown {
            // Jepsen: the process retires; a new one takes its place.
            self.next_process += 1;
            let session = self.cluster.rng().random::<u64>() | 1;
            let client = &mut self.clients[slot];
            client.process = self.next_process;
            client.session = session;
            client.sequence = 0;
        }
        let client = &mut self.clients[slot];
        if client.once {
            client.running = false;
        }
        if client.running {
            let think = self.cluster.rng().random_range(20_000_000..60_000_000);
            let at = now + think;
            self.cluster.schedule_timer(at, token(K_INVOKE, slot, 0));
        }
    }

    /// After a failure, forget the cached leader and try the next allowed
    /// node first next time (classic Paxos clients move on this way).
    fn roam(&mut self, slot: usize) {
        self.clients[slot].cached = None;
        if self.clients[slot].reach == Reach::Only {
            return;
        }
        let ids = self.cluster.node_ids();
        let home = self.clients[slot].home;
        let start = ids.iter().position(|&n| n == home).unwrap_or(0);
        for step in 1..=ids.len() {
            let candidate = ids[(start + step) % ids.len()];
            if self.allowed(slot, candidate) {
                self.clients[slot].home = candidate;
                return;
            }
        }
    }

    pub(super) fn deadline(&mut self, slot: usize, op_index: usize) {
        let due = self.clients[slot]
            .active
            .as_ref()
            .is_some_and(|a| a.op_index == op_index);
        if due {
            let outcome = if self.active_is_write(slot) {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            self.end_op(slot, outcome, "no answer within 1 s".into());
        }
    }

    pub(super) fn on_node_crashed(&mut self, node: NodeId) {
        let slots: Vec<usize> = self
            .pending
            .iter()
            .filter(|((n, _, _), _)| *n == node)
            .map(|(_, &slot)| slot)
            .collect();
        for slot in slots {
            let outcome = if self.active_is_write(slot) {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            self.end_op(slot, outcome, format!("node {node} crashed"));
        }
    }

    pub(super) fn on_completion(&mut self, completion: Completion) {
        let key = (completion.node, completion.incarnation, completion.ticket);
        let Some(slot) = self.pending.remove(&key) else {
            return;
        };
        let node = completion.node;
        match completion.result {
            Ok(index) if self.active_is_write(slot) => {
                let (outcome, detail) = match completion.response {
                    Some(bytes) => match Sessions::<KvStore>::decode_response(&bytes) {
                        Ok(body) => match KvResponse::decode(&body) {
                            KvResponse::Written => (Outcome::Ok, format!("index {index}")),
                            other => (Outcome::Unknown, format!("answered {other:?}")),
                        },
                        Err(error) => (Outcome::Unknown, format!("session: {error}")),
                    },
                    None => (
                        Outcome::Unknown,
                        "committed, answer not observed (snapshot)".into(),
                    ),
                };
                self.end_op(slot, outcome, detail);
            }
            Ok(index) => {
                if let Some(attempt) = self.clients[slot]
                    .active
                    .as_mut()
                    .and_then(|a| a.attempt.as_mut())
                {
                    attempt.barrier = Some(index);
                }
                self.pending.insert(key, slot);
                self.serve_reads(&std::iter::once(node).collect());
            }
            Err(rejected) => self.on_rejected(slot, node, rejected),
        }
    }

    pub(super) fn serve_reads(&mut self, nodes: &std::collections::BTreeSet<NodeId>) {
        let mut ready = Vec::new();
        for (slot, client) in self.clients.iter().enumerate() {
            let Some(active) = &client.active else {
                continue;
            };
            let Some(attempt) = &active.attempt else {
                continue;
            };
            let Some(barrier) = attempt.barrier else {
                continue;
            };
            let node = attempt.node;
            if nodes.contains(&node)
                && self.cluster.is_alive(node)
                && self.cluster.incarnation(node) == attempt.incarnation
                && self.cluster.applied_index(node) >= barrier
            {
                ready.push((slot, node, active.op_index, barrier));
            }
        }
        for (slot, node, op_index, barrier) in ready {
            let key = self.ops[op_index].key.clone();
            let answer = KvResponse::decode(&self.cluster.query(node, &encode_read(&key)));
            match answer {
                KvResponse::Value(value) => {
                    self.ops[op_index].op = Op::Read(value);
                    self.end_op(slot, Outcome::Ok, format!("read index {barrier}"));
                }
                other => self.end_op(slot, Outcome::Failed, format!("answered {other:?}")),
            }
        }
    }

    /// "A node cut off from a quorum acknowledges nothing": the node that
    /// acknowledged this write must have had direct links (both ways) to a
    /// quorum at some moment between the invocation and the answer.
    fn check_ack_connected(&mut self, op_index: usize) {
        if self.violations.isolated_ack.is_some() {
            return;
        }
        let op = &self.ops[op_index];
        let (from, to, node) = (op.invoked_ns, op.ended_ns.unwrap_or(op.invoked_ns), op.node);
        let membership = self
            .cluster
            .try_status(node)
            .map(|s| s.membership)
            .unwrap_or_else(|| self.initial_membership.clone());
        let voters = membership.all_voters();
        let ever_connected = self
            .connectivity
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                let until = self
                    .connectivity
                    .get(i + 1)
                    .map_or(u64::MAX, |next| next.since_ns);
                c.since_ns <= to && until >= from
            })
            .any(|(_, c)| {
                let reachable = voters
                    .iter()
                    .filter(|&&m| {
                        m == node
                            || (!c.down.contains(&m)
                                && c.links.is_up(node, m)
                                && c.links.is_up(m, node))
                    })
                    .count();
                reachable > voters.len() / 2
            });
        if !ever_connected {
            self.violations.isolated_ack = Some(format!(
                "node {node} acknowledged write {} of {} (invoked at {}, answered at {}) while it could not reach a quorum",
                op.op,
                op.key,
                super::record::seconds(from),
                super::record::seconds(to)
            ));
        }
    }
}
