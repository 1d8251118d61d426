//! A tiny deterministic network of `RaftCore`s for rule-by-rule tests: every
//! node has a `MemStore`; `Ready` batches are persisted and synced, their
//! messages queued, committed entries recorded. Delivery is explicit, so a
//! test controls exactly which messages arrive and in which order.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use consensus_api::{
    handle_ready_now, Bytes, Core, CoreConfig, Entry, InitialState, LogIndex, LogStore, Membership,
    NodeId, Payload, Ready, ReadyDriver, Rejected, Role, Snapshot, Status, Ticket,
};
use consensus_storage::MemStore;
use raft::{HardState, Message, RaftCore};

/// One node: its core, its store and what it applied.
pub struct Node {
    pub core: RaftCore,
    pub store: MemStore,
    pub config: CoreConfig,
    /// Entries applied this incarnation, in order.
    pub applied: Vec<Entry>,
    /// Snapshots installed from the leader this incarnation.
    pub installed: Vec<Snapshot>,
    /// Finished tickets.
    pub completed: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
    /// Every `Ready` handed out (for durability checks).
    pub readies: Vec<Ready<Message>>,
    /// Last index applied (or covered by an installed snapshot).
    pub last_applied: LogIndex,
}

/// Nodes plus an in-flight message queue.
pub struct Network {
    pub nodes: BTreeMap<NodeId, Node>,
    /// Messages sent and not yet delivered: (from, to, message).
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message delivered, in order (from, to, message).
    pub delivered: Vec<(NodeId, NodeId, Message)>,
}

/// The default test configuration: deterministic, small timeouts.
pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 2;
    config
}

pub fn command(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// An entry of `term` at `index` carrying a command named after them.
pub fn entry(index: LogIndex, term: u64) -> Entry {
    Entry {
        index,
        epoch: term,
        payload: Payload::Command(command(&format!("{index}@{term}"))),
    }
}

/// Entries `1..` with the given terms.
pub fn log_with_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| entry(i as u64 + 1, *t))
        .collect()
}

/// A stored state with a term, a vote and entries.
pub fn stored(term: u64, vote: Option<NodeId>, entries: Vec<Entry>) -> InitialState {
    InitialState {
        hard_state: Some(HardState { term, vote }.encode()),
        snapshot: None,
        entries,
    }
}

impl Network {
    /// `n` fresh voters `1..=n` with the test configuration.
    pub fn new(n: u64) -> Network {
        Network::with_config(n, |_| {})
    }

    /// `n` fresh voters with a tweaked configuration.
    pub fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Network {
        let voters: Vec<NodeId> = (1..=n).collect();
        let states = voters
            .iter()
            .map(|id| (*id, InitialState::default()))
            .collect();
        Network::from_states(&voters, states, tweak)
    }

    /// Nodes restored from the given stored states (each written into its
    /// `MemStore` first, so restarts see it).
    pub fn from_states(
        voters: &[NodeId],
        states: BTreeMap<NodeId, InitialState>,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Network {
        let mut network = Network {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            delivered: Vec::new(),
        };
        for (id, state) in states {
            let mut config = config(id, voters);
            tweak(&mut config);
            network.add_node(config, state);
        }
        network
    }

    /// Adds a node restored from `state`.
    pub fn add_node(&mut self, config: CoreConfig, state: InitialState) {
        let mut store = MemStore::new();
        if let Some(snapshot) = &state.snapshot {
            store.save_snapshot(snapshot).expect("store snapshot");
        }
        let batch = consensus_api::WriteBatch {
            hard_state: state.hard_state.as_ref(),
            truncate_from: None,
            append: &state.entries,
            snapshot: None,
        };
        store.write(&batch).expect("store write");
        store.sync().expect("store sync");
        let last_applied = state.snapshot.as_ref().map_or(0, |s| s.index);
        let core = RaftCore::restore(config.clone(), state).expect("restore");
        self.nodes.insert(
            config.id,
            Node {
                core,
                store,
                config,
                applied: Vec::new(),
                installed: Vec::new(),
                completed: BTreeMap::new(),
                readies: Vec::new(),
                last_applied,
            },
        );
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn core(&self, id: NodeId) -> &RaftCore {
        &self.nodes[&id].core
    }

    pub fn core_mut(&mut self, id: NodeId) -> &mut RaftCore {
        &mut self.nodes.get_mut(&id).expect("node").core
    }

    pub fn status(&self, id: NodeId) -> Status {
        self.core(id).status()
    }

    /// Drains `id`'s `Ready` through the one loop
    /// ([`consensus_api::handle_ready_now`]): persist + sync, queue
    /// messages, apply, finish tickets; keeps every batch for the tests.
    pub fn process(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        let mut guard = 0;
        while let Some(ready) = node.core.ready() {
            guard += 1;
            assert!(guard < 100, "ready() never runs dry");
            if !ready.committed.is_empty() || !ready.messages.is_empty() {
                assert!(
                    ready.number > node.readies.last().map_or(0, |r| r.number),
                    "ready numbers increase"
                );
            }
            let copy = ready.clone();
            let mut io = NodeIo {
                id,
                node: &mut *node,
                queue: &mut self.queue,
            };
            handle_ready_now(&mut io, ready).unwrap_or_else(|e| panic!("node {id}: {e}"));
            node.readies.push(copy);
        }
    }

    /// Processes every node's pending output.
    pub fn process_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    pub fn tick(&mut self, id: NodeId) {
        self.core_mut(id).tick();
        self.process(id);
    }

    /// Ticks every node `n` times (delivering nothing).
    pub fn tick_all(&mut self, n: u64) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.tick(id);
            }
        }
    }

    /// Ticks every node `n` times, delivering all messages after each round.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.tick_all(1);
            self.deliver_all();
        }
    }

    /// Delivers one message to its destination (dropped if the link is cut
    /// or the node unknown).
    pub fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        self.delivered.push((from, to, message.clone()));
        self.core_mut(to).step(from, message);
        self.process(to);
    }

    /// Delivers queued messages until the queue is empty (bounded).
    pub fn deliver_all(&mut self) -> usize {
        let mut count = 0;
        while let Some((from, to, message)) = self.queue.pop_front() {
            count += 1;
            assert!(count < 100_000, "message storm");
            self.deliver(from, to, message);
        }
        count
    }

    /// Delivers queued messages matching `predicate` (also those sent in
    /// response, if they match) and leaves the others queued, in order.
    pub fn deliver_matching(
        &mut self,
        predicate: impl Fn(NodeId, NodeId, &Message) -> bool,
    ) -> usize {
        let mut count = 0;
        loop {
            let Some(position) = self
                .queue
                .iter()
                .position(|(from, to, message)| predicate(*from, *to, message))
            else {
                return count;
            };
            let (from, to, message) = self.queue.remove(position).expect("queued");
            count += 1;
            assert!(count < 100_000, "message storm");
            self.deliver(from, to, message);
        }
    }

    /// Takes the queued messages without delivering them.
    pub fn take_queue(&mut self) -> Vec<(NodeId, NodeId, Message)> {
        self.queue.drain(..).collect()
    }

    /// Ticks `id` alone until it leaves the follower role (its election
    /// timeout fires), then delivers everything.
    pub fn campaign(&mut self, id: NodeId) {
        for _ in 0..=self.node(id).config.election_timeout_ticks_max {
            self.tick(id);
            if self.status(id).role != Role::Follower {
                break;
            }
        }
        self.deliver_all();
    }

    /// Elects `id` (pre-vote and vote) and settles replication.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert_eq!(
            self.status(id).role,
            Role::Leader,
            "node {id} should have won"
        );
        self.deliver_all();
    }

    pub fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        let result = self.core_mut(id).propose(command(text));
        self.process(id);
        result
    }

    pub fn outcome(&self, id: NodeId, ticket: Ticket) -> Option<&Result<LogIndex, Rejected>> {
        self.node(id).completed.get(&ticket)
    }

    /// Drops every message between `id` and the others.
    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids.into_iter().filter(|o| *o != id) {
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

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes `id` (volatile state lost; the store keeps what was synced)
    /// and restarts it from its store.
    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node");
        node.store.crash();
        let state = node.store.load().expect("load");
        let state_snapshot_index = state.snapshot.as_ref().map_or(0, |s| s.index);
        node.core = RaftCore::restore(node.config.clone(), state).expect("restore");
        node.applied.clear();
        node.installed.clear();
        node.completed.clear();
        node.readies.clear();
        node.last_applied = state_snapshot_index;
        self.queue.retain(|(from, to, _)| *from != id && *to != id);
    }

    /// The single node in the leader role with the highest term.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.core.is_leader())
            .max_by_key(|n| n.core.term())
            .map(|n| n.core.id())
    }

    /// Payloads applied by `id`, as text.
    pub fn applied_commands(&self, id: NodeId) -> Vec<String> {
        self.node(id)
            .applied
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Command(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// The durable log of `id` as (index, term) pairs.
    pub fn stored_log(&self, id: NodeId) -> Vec<(LogIndex, u64)> {
        self.node(id)
            .store
            .durable()
            .entries
            .values()
            .map(|e| (e.index, e.epoch))
            .collect()
    }

    /// Number of delivered messages matching `predicate`.
    pub fn count_delivered(&self, predicate: impl Fn(NodeId, NodeId, &Message) -> bool) -> usize {
        self.delivered
            .iter()
            .filter(|(from, to, message)| predicate(*from, *to, message))
            .count()
    }

    /// Checks State Machine Safety across the nodes: no two nodes applied
    /// different entries at the same index.
    pub fn check_applied_agree(&self) {
        let mut by_index: BTreeMap<LogIndex, &Entry> = BTreeMap::new();
        for node in self.nodes.values() {
            for entry in &node.applied {
                if let Some(other) = by_index.insert(entry.index, entry) {
                    assert_eq!(
                        other, entry,
                        "two nodes applied different entries at {}",
                        entry.index
                    );
                }
            }
        }
    }
}

/// One node's I/O for the one `Ready` loop.
struct NodeIo<'a> {
    id: NodeId,
    node: &'a mut Node,
    queue: &'a mut VecDeque<(NodeId, NodeId, Message)>,
}

impl ReadyDriver<Message> for NodeIo<'_> {
    type Error = std::convert::Infallible;

    fn send(&mut self, to: NodeId, message: Message) {
        self.queue.push_back((self.id, to, message));
    }

    async fn persist(
        &mut self,
        ready: Ready<Message>,
    ) -> Result<Option<Ready<Message>>, Self::Error> {
        self.node.store.persist(&ready).expect("persist");
        Ok(Some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.node.last_applied
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.node.last_applied = snapshot.index;
        self.node.installed.push(snapshot.clone());
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error> {
        self.node.last_applied = entry.index;
        self.node.applied.push(entry);
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        let previous = self.node.completed.insert(ticket, result);
        assert!(previous.is_none(), "ticket {ticket} finished twice");
    }
}
