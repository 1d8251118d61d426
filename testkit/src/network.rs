//! A hand-driven in-memory network of cores of one protocol, for rule tests.
//!
//! [`Network`] holds the protocol-neutral plumbing every core's rule tests
//! need: the nodes (core, [`MemStore`] with its fsync boundary, the
//! configuration, a test state machine, finished tickets), one FIFO queue of
//! messages in flight that a test delivers, filters, reorders or drops at
//! will, directed link cuts, ticks, crash and restart from what the store
//! synced. Every node's `Ready` goes through the one loop
//! ([`consensus_api::handle_ready_now`]). No simulator and no randomness,
//! except [`Network::deliver_random`] from the network's own seeded RNG.
//!
//! What a test suite keeps for itself is its [`Machine`] (what "applied"
//! means, what a snapshot's data holds) and its protocol's own helpers
//! (elections, message-kind predicates), usually as a type alias and a small
//! extension trait in the suite's harness module.
//!
//! ## Where the four suites' harnesses differed
//!
//! The rule tests of the four cores were written against four hand-made
//! harnesses that disagreed in a few places. Their tests (the order in
//! which messages reach nodes, what a test finds queued after a restart)
//! depend on those choices, so they are [`Rules`], set once by each suite,
//! rather than unified; with them, every rule test delivers the same
//! messages in the same order as it did on its own harness:
//!
//! * whether a node's output is handled as soon as the node is added or
//!   restarted, or left for its next input ([`Rules::process_on_add`],
//!   [`Rules::process_on_restart`]);
//! * which queued messages a crash takes with it ([`CrashDrops`]): nothing
//!   (messages to a crashed node wait, and reach its next incarnation if it
//!   restarts before they are delivered), those to it, or those to and from
//!   it;
//! * whether compaction handles the node's output at once
//!   ([`Rules::process_after_compact`]);
//! * what is recorded: every delivered message ([`Rules::keep_delivered`]),
//!   and a text trace of sends or deliveries ([`Rules::trace_at`]);
//! * whether state machines are checked for agreement after every delivery
//!   ([`Rules::check_after_delivery`]).
//!
//! | suite | on add | on restart | after compact | crash drops | records |
//! |---|---|---|---|---|---|
//! | raft (`tests/unit`) | wait | wait | – | to and from | deliveries |
//! | multipaxos (`tests/rules.rs`) | wait | handle | – | nothing | trace of sends |
//! | paxos (`tests/rules.rs`, `random.rs`) | handle | handle | handle | to | trace of deliveries |
//! | zab (`tests/phases.rs` ...) | handle | handle | wait | to | trace of sends; agreement checked after every delivery |
//!
//! What "applied" means is each suite's [`Machine`]: entries of this
//! incarnation (raft), entries across incarnations with a check that a
//! restart re-applies the same prefix (multipaxos), the whole applied log
//! restored from the snapshot (paxos), commands restored from a text
//! snapshot (zab).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

use consensus_api::{
    handle_ready_now, Bytes, Core, CoreConfig, Entry, InitialState, LogIndex, LogStore, NodeId,
    Payload, Ready, ReadyDriver, Rejected, Role, Snapshot, Status, Ticket, WriteBatch,
};
use consensus_storage::MemStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A message in flight: `(from, to, message)`.
pub type Envelope<M> = (NodeId, NodeId, M);

/// A node's state machine as a test sees it, plus any bookkeeping the suite
/// keeps per node. The network calls it from the `Ready` loop (and keeps
/// the node's applied index itself: [`Node::applied_index`]).
pub trait Machine<M>: Default {
    /// Applies one committed entry of node `id`.
    fn apply(&mut self, id: NodeId, entry: Entry);

    /// Replaces the state with a snapshot received from another node.
    fn restore(&mut self, _snapshot: &Snapshot) {}

    /// The node starts (added, or restarted) from a store that holds
    /// `snapshot`.
    fn start(&mut self, _snapshot: Option<&Snapshot>) {}

    /// The node crashed (its core is gone; the store keeps what it synced).
    fn crash(&mut self) {}

    /// Sees every `Ready` before the loop handles it.
    fn on_ready(&mut self, _ready: &Ready<M>) {}

    /// The snapshot data of the state (compaction at the applied index).
    fn snapshot(&self) -> Bytes {
        panic!("this test machine does not take snapshots")
    }

    /// Panics unless the nodes' state machines agree (state machine safety,
    /// as this machine defines it).
    fn check_agreement(nodes: &[(NodeId, &Self)]);
}

/// Which queued messages a crash drops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CrashDrops {
    /// None: messages to the crashed node are dropped at delivery while it
    /// is down, and reach it if it restarts first.
    Nothing,
    /// Those addressed to the crashed node.
    To,
    /// Those addressed to it and those it sent.
    ToAndFrom,
}

/// What [`Network::trace`] records, one `from->to message` line each.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TraceAt {
    /// Every message sent (cut links and down nodes included).
    Send,
    /// Every message delivered to a known node over a link that is up
    /// (including those a down node drops).
    Delivery,
}

/// How a suite's network behaves where the suites differ (see the module
/// docs).
#[derive(Copy, Clone, Debug)]
pub struct Rules {
    /// Handle a node's output as soon as it is added.
    pub process_on_add: bool,
    /// Handle a node's output as soon as it restarts.
    pub process_on_restart: bool,
    /// Handle a node's output right after [`Network::compact`].
    pub process_after_compact: bool,
    /// What a crash drops from the queue.
    pub crash_drops: CrashDrops,
    /// Keep every delivered message in [`Network::delivered`].
    pub keep_delivered: bool,
    /// What the text trace records while [`Network::tracing`] is on.
    pub trace_at: TraceAt,
    /// Run [`Network::check_agreement`] after every delivery.
    pub check_after_delivery: bool,
    /// Seed of [`Network::rng`].
    pub seed: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            process_on_add: true,
            process_on_restart: true,
            process_after_compact: true,
            crash_drops: CrashDrops::To,
            keep_delivered: false,
            trace_at: TraceAt::Send,
            check_after_delivery: false,
            seed: 0,
        }
    }
}

/// One node: its core (`None` while crashed), its store, its configuration,
/// its state machine, its applied index and its finished tickets.
pub struct Node<C: Core, S> {
    /// The core; `None` while the node is down.
    pub core: Option<C>,
    /// The store, with its fsync boundary.
    pub store: MemStore,
    /// The configuration the core restarts with.
    pub config: CoreConfig,
    /// The test state machine.
    pub machine: S,
    /// The last index applied or covered by a snapshot, this incarnation
    /// (what the driver reports to the `Ready` loop).
    pub applied_index: LogIndex,
    /// Finished tickets of the current incarnation.
    pub completed: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
}

impl<C: Core, S> Node<C, S> {
    /// The core of a node that is up.
    pub fn core(&self) -> &C {
        self.core.as_ref().expect("node is up")
    }

    /// The core of a node that is up, mutably.
    pub fn core_mut(&mut self) -> &mut C {
        self.core.as_mut().expect("node is up")
    }
}

/// The network: nodes, one FIFO queue of messages in flight, link cuts.
pub struct Network<C: Core, S: Machine<C::Message>> {
    /// The nodes by id.
    pub nodes: BTreeMap<NodeId, Node<C, S>>,
    /// Messages sent and not yet delivered, oldest first.
    pub queue: VecDeque<Envelope<C::Message>>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message delivered, in order (with [`Rules::keep_delivered`]).
    pub delivered: Vec<Envelope<C::Message>>,
    /// While true, [`Network::trace`] records (see [`Rules::trace_at`]).
    pub tracing: bool,
    /// `from->to message` lines.
    pub trace: Vec<String>,
    /// The RNG of [`Network::deliver_random`], seeded from [`Rules::seed`].
    pub rng: ChaCha8Rng,
    /// How this network behaves where suites differ.
    pub rules: Rules,
}

/// Most messages one call delivers before it declares a message storm.
const DELIVERIES_MAX: usize = 200_000;

impl<C: Core, S: Machine<C::Message>> Network<C, S> {
    /// An empty network.
    pub fn with_rules(rules: Rules) -> Self {
        Network {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            delivered: Vec::new(),
            tracing: false,
            trace: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(rules.seed),
            rules,
        }
    }

    /// Adds a node restored from `state`, which is written into its store
    /// first (so a restart finds it).
    pub fn add_node(&mut self, config: CoreConfig, state: InitialState) {
        let id = config.id;
        let mut store = MemStore::new();
        if let Some(snapshot) = &state.snapshot {
            store.save_snapshot(snapshot).expect("store snapshot");
        }
        let batch = WriteBatch {
            hard_state: state.hard_state.as_ref(),
            truncate_from: None,
            append: &state.entries,
            snapshot: None,
        };
        store.write(&batch).expect("store write");
        store.sync().expect("store sync");
        let mut machine = S::default();
        machine.start(state.snapshot.as_ref());
        let applied_index = state.snapshot.as_ref().map_or(0, |s| s.index);
        let core = C::restore(config.clone(), state).expect("restore");
        self.nodes.insert(
            id,
            Node {
                core: Some(core),
                store,
                config,
                machine,
                applied_index,
                completed: BTreeMap::new(),
            },
        );
        if self.rules.process_on_add {
            self.process(id);
        }
    }

    /// The node ids, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> &Node<C, S> {
        &self.nodes[&id]
    }

    /// Node `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node<C, S> {
        self.nodes.get_mut(&id).expect("known node")
    }

    /// The core of `id` (which must be up).
    pub fn core(&self, id: NodeId) -> &C {
        self.node(id).core()
    }

    /// The core of `id` (which must be up), mutably.
    pub fn core_mut(&mut self, id: NodeId) -> &mut C {
        self.node_mut(id).core_mut()
    }

    /// Whether `id` is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].core.is_some()
    }

    /// The status of `id` (which must be up).
    pub fn status(&self, id: NodeId) -> Status {
        self.core(id).status()
    }

    /// Drains `id`'s output through the one `Ready` loop
    /// ([`consensus_api::handle_ready_now`]): persist + sync, restore a
    /// received snapshot, queue messages, apply, finish tickets. Nothing
    /// for a node that is down.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..1000 {
            let node = self.nodes.get_mut(&id).expect("known node");
            let Some(core) = node.core.as_mut() else {
                return;
            };
            let Some(ready) = core.ready() else {
                return;
            };
            node.machine.on_ready(&ready);
            let trace =
                (self.tracing && self.rules.trace_at == TraceAt::Send).then_some(&mut self.trace);
            let mut io = NodeIo {
                id,
                node,
                queue: &mut self.queue,
                trace,
            };
            handle_ready_now(&mut io, ready).unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
        panic!("node {id} never ran out of output");
    }

    /// Drains every node's output, in id order.
    pub fn process_all(&mut self) {
        for id in self.ids() {
            self.process(id);
        }
    }

    /// Ticks `id` once (if it is up) and handles its output.
    pub fn tick(&mut self, id: NodeId) {
        if let Some(core) = self.node_mut(id).core.as_mut() {
            core.tick();
            self.process(id);
        }
    }

    /// Ticks every node `n` times, delivering nothing.
    pub fn tick_all(&mut self, n: u64) {
        for _ in 0..n {
            for id in self.ids() {
                self.tick(id);
            }
        }
    }

    /// `n` rounds of: tick every node, then [`Network::stabilize`].
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.tick_all(1);
            self.stabilize();
        }
    }

    /// Runs single rounds until `done` holds (checked before every round),
    /// at most `max` rounds.
    pub fn run_until(&mut self, max: u64, done: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.run(1);
        }
        done(self)
    }

    /// Like [`Network::run`], but only messages between nodes of the same
    /// group arrive (nodes outside every group form one more group).
    pub fn run_partitioned(&mut self, n: u64, groups: &[&[NodeId]]) {
        let group_of = |node: NodeId| groups.iter().position(|g| g.contains(&node));
        for _ in 0..n {
            self.tick_all(1);
            self.deliver_all_losing(|from, to, _| group_of(from) != group_of(to));
        }
    }

    /// One round in which every node ticks and every message flows, except
    /// those matching `lost`.
    pub fn run_losing(&mut self, lost: impl Fn(NodeId, NodeId, &C::Message) -> bool) {
        self.tick_all(1);
        self.deliver_all_losing(lost);
    }

    /// Handles every node's output, then delivers until the queue is empty.
    pub fn stabilize(&mut self) {
        self.process_all();
        self.deliver_all();
    }

    /// Delivers one message (dropped if the link is cut, the node unknown
    /// or down) and handles the receiver's output.
    pub fn deliver(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        if self.tracing && self.rules.trace_at == TraceAt::Delivery {
            self.trace.push(format!("{from}->{to} {message}"));
        }
        if self.rules.keep_delivered {
            self.delivered.push((from, to, message.clone()));
        }
        let Some(core) = self.node_mut(to).core.as_mut() else {
            return;
        };
        core.step(from, message);
        self.process(to);
        if self.rules.check_after_delivery {
            self.check_agreement();
        }
    }

    /// Delivers the oldest queued message; false when the queue is empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some((from, to, message)) = self.queue.pop_front() else {
            return false;
        };
        self.deliver(from, to, message);
        true
    }

    /// Delivers queued messages, oldest first, until the queue is empty;
    /// returns how many.
    pub fn deliver_all(&mut self) -> usize {
        self.deliver_all_losing(|_, _, _| false)
    }

    /// Delivers until the queue is empty, dropping the messages that match
    /// `lost`; returns how many were delivered.
    pub fn deliver_all_losing(
        &mut self,
        lost: impl Fn(NodeId, NodeId, &C::Message) -> bool,
    ) -> usize {
        let mut count = 0;
        for _ in 0..DELIVERIES_MAX {
            let Some((from, to, message)) = self.queue.pop_front() else {
                return count;
            };
            if !lost(from, to, &message) {
                count += 1;
                self.deliver(from, to, message);
            }
        }
        panic!("message storm: the queue never drained");
    }

    /// Delivers queued messages matching `predicate`, oldest first, and
    /// those sent in response if they match too, until none matches; the
    /// others stay queued, in order. Returns how many were delivered.
    pub fn deliver_matching(
        &mut self,
        predicate: impl Fn(NodeId, NodeId, &C::Message) -> bool,
    ) -> usize {
        for count in 0..DELIVERIES_MAX {
            let Some(position) = self
                .queue
                .iter()
                .position(|(from, to, message)| predicate(*from, *to, message))
            else {
                return count;
            };
            let (from, to, message) = self.queue.remove(position).expect("queued");
            self.deliver(from, to, message);
        }
        panic!("message storm: matching messages never ran out");
    }

    /// Delivers the queued messages that match, in order, once: messages
    /// they cause stay queued (after the ones that did not match). Returns
    /// how many were delivered.
    pub fn deliver_where(&mut self, keep: impl Fn(NodeId, NodeId, &C::Message) -> bool) -> usize {
        let batch = std::mem::take(&mut self.queue);
        let mut delivered = 0;
        let mut rest = VecDeque::new();
        for (from, to, message) in batch {
            if keep(from, to, &message) {
                delivered += 1;
                self.deliver(from, to, message);
            } else {
                rest.push_back((from, to, message));
            }
        }
        rest.append(&mut self.queue);
        self.queue = rest;
        delivered
    }

    /// Delivers the message at position `i` of the queue (the last one
    /// takes its place).
    pub fn deliver_index(&mut self, i: usize) {
        let (from, to, message) = self.queue.swap_remove_back(i).expect("queued");
        self.deliver(from, to, message);
    }

    /// Delivers one queued message chosen by the network's RNG (random
    /// order = reordering); false when the queue is empty.
    pub fn deliver_random(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let i = self.rng.random_range(0..self.queue.len());
        self.deliver_index(i);
        true
    }

    /// Takes the queued messages out (to drop or reorder them).
    pub fn take_queue(&mut self) -> Vec<Envelope<C::Message>> {
        self.queue.drain(..).collect()
    }

    /// Takes the queued messages matching `keep` out; the rest stay queued.
    pub fn take_where(
        &mut self,
        keep: impl Fn(NodeId, NodeId, &C::Message) -> bool,
    ) -> Vec<Envelope<C::Message>> {
        let (taken, rest): (Vec<_>, Vec<_>) = self
            .queue
            .drain(..)
            .partition(|(from, to, message)| keep(*from, *to, message));
        self.queue = rest.into();
        taken
    }

    /// Drops the queued messages that match; returns how many.
    pub fn drop_where(&mut self, matches: impl Fn(NodeId, NodeId, &C::Message) -> bool) -> usize {
        let before = self.queue.len();
        self.queue
            .retain(|(from, to, message)| !matches(*from, *to, message));
        before - self.queue.len()
    }

    /// Drops every queued message.
    pub fn drop_all(&mut self) {
        self.queue.clear();
    }

    /// Number of delivered messages matching `predicate` (with
    /// [`Rules::keep_delivered`]).
    pub fn count_delivered(
        &self,
        predicate: impl Fn(NodeId, NodeId, &C::Message) -> bool,
    ) -> usize {
        self.delivered
            .iter()
            .filter(|(from, to, message)| predicate(*from, *to, message))
            .count()
    }

    /// Proposes `text` at `id` (which must be up) and handles its output.
    pub fn try_propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        let result = self.core_mut(id).propose(command(text));
        self.process(id);
        result
    }

    /// Asks `id` (which must be up) for a read barrier and handles its
    /// output.
    pub fn read_barrier(&mut self, id: NodeId) -> Result<Ticket, Rejected> {
        let result = self.core_mut(id).read_barrier();
        self.process(id);
        result
    }

    /// How ticket `ticket` of `id` finished, if it did (this incarnation).
    pub fn outcome(&self, id: NodeId, ticket: Ticket) -> Option<&Result<LogIndex, Rejected>> {
        self.node(id).completed.get(&ticket)
    }

    /// Drops every message between `id` and the others.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.ids().into_iter().filter(|o| *o != id) {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
    }

    /// Splits the network into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for x in a.iter() {
                        for y in b.iter() {
                            self.cut.insert((*x, *y));
                        }
                    }
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes `id`: its core and unsynced writes are lost, its tickets
    /// forgotten, queued messages dropped as [`Rules::crash_drops`] says.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        node.core = None;
        node.store.crash();
        node.machine.crash();
        node.completed.clear();
        match self.rules.crash_drops {
            CrashDrops::Nothing => {}
            CrashDrops::To => self.queue.retain(|(_, to, _)| *to != id),
            CrashDrops::ToAndFrom => self.queue.retain(|(from, to, _)| *from != id && *to != id),
        }
    }

    /// Restarts `id` from what its store synced (crashing it first if it is
    /// up).
    pub fn restart(&mut self, id: NodeId) {
        if self.is_up(id) {
            self.crash(id);
        }
        let node = self.node_mut(id);
        let state = node.store.load().expect("load");
        node.machine.start(state.snapshot.as_ref());
        node.applied_index = state.snapshot.as_ref().map_or(0, |s| s.index);
        node.completed.clear();
        node.core = Some(C::restore(node.config.clone(), state).expect("restore"));
        if self.rules.process_on_restart {
            self.process(id);
        }
    }

    /// Snapshots `id`'s state machine ([`Machine::snapshot`]): the core
    /// compacts, the store saves the snapshot.
    pub fn compact(&mut self, id: NodeId) {
        let node = self.node_mut(id);
        let (index, data) = (node.applied_index, node.machine.snapshot());
        let snapshot = node.core_mut().compact(index, data).expect("compact");
        node.store.save_snapshot(&snapshot).expect("save snapshot");
        if self.rules.process_after_compact {
            self.process(id);
        }
    }

    /// The up node in the leader role with the highest epoch.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.core.as_ref().map(|c| (*id, c.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.epoch)
            .map(|(id, _)| id)
    }

    /// The durable entries of `id`'s store.
    pub fn stored(&self, id: NodeId) -> Vec<Entry> {
        self.node(id)
            .store
            .durable()
            .entries
            .values()
            .cloned()
            .collect()
    }

    /// Panics unless the nodes' state machines agree ([`Machine::check_agreement`]).
    pub fn check_agreement(&self) {
        let machines: Vec<(NodeId, &S)> = self
            .nodes
            .iter()
            .map(|(id, node)| (*id, &node.machine))
            .collect();
        S::check_agreement(&machines);
    }
}

/// A command payload's bytes from its text.
pub fn command(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// The texts of the commands among `entries`, in order (no-ops and
/// membership changes skipped).
pub fn command_texts<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<String> {
    entries
        .into_iter()
        .filter_map(|e| match &e.payload {
            Payload::Command(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

/// Panics if two nodes applied entries at the same index whose `key`s
/// differ (state machine safety over applied entries, compared by index).
pub fn check_same_at_each_index<'a, K: PartialEq + Debug>(
    nodes: impl IntoIterator<Item = (NodeId, &'a [Entry])>,
    key: impl Fn(&'a Entry) -> K,
) {
    let mut by_index: BTreeMap<LogIndex, (NodeId, K)> = BTreeMap::new();
    for (id, entries) in nodes {
        for entry in entries {
            let mine = key(entry);
            match by_index.get(&entry.index) {
                Some((other, theirs)) => assert_eq!(
                    *theirs, mine,
                    "nodes {other} and {id} applied different entries at {}",
                    entry.index
                ),
                None => {
                    by_index.insert(entry.index, (id, mine));
                }
            }
        }
    }
}

/// One node's I/O for the one `Ready` loop.
struct NodeIo<'a, C: Core, S> {
    id: NodeId,
    node: &'a mut Node<C, S>,
    queue: &'a mut VecDeque<Envelope<C::Message>>,
    trace: Option<&'a mut Vec<String>>,
}

impl<C: Core, S: Machine<C::Message>> ReadyDriver<C::Message> for NodeIo<'_, C, S> {
    type Error = std::convert::Infallible;

    fn send(&mut self, to: NodeId, message: C::Message) {
        assert_ne!(to, self.id, "a node never sends to itself");
        if let Some(trace) = self.trace.as_mut() {
            trace.push(format!("{}->{to} {message}", self.id));
        }
        self.queue.push_back((self.id, to, message));
    }

    async fn persist(
        &mut self,
        ready: Ready<C::Message>,
    ) -> Result<Option<Ready<C::Message>>, Self::Error> {
        self.node.store.persist(&ready).expect("persist");
        Ok(Some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.node.applied_index
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.node.applied_index = snapshot.index;
        self.node.machine.restore(snapshot);
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error> {
        self.node.applied_index = entry.index;
        self.node.machine.apply(self.id, entry);
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        let previous = self.node.completed.insert(ticket, result);
        assert!(previous.is_none(), "ticket {ticket} finished twice");
    }
}
