//! A tiny deterministic harness for the paxos core: nodes with a `MemStore`,
//! a list of messages in flight that tests deliver, drop or reorder at will,
//! and a trivial state machine (the list of applied entries) so snapshots
//! can be taken and installed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{
    handle_ready_now, Bytes, Core, CoreConfig, Entry, LogIndex, LogStore, Membership, NodeId,
    Payload, Ready, ReadyDriver, Rejected, Snapshot, Ticket,
};
use consensus_storage::MemStore;
use paxos::{Message, PaxosCore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One node.
pub struct TestNode {
    pub core: Option<PaxosCore>,
    pub store: MemStore,
    pub config: CoreConfig,
    /// The state machine: every entry applied, in order (restored from the
    /// snapshot after a restart).
    pub applied: Vec<Entry>,
    /// Finished tickets of the current incarnation.
    pub outcomes: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
}

impl TestNode {
    pub fn core(&self) -> &PaxosCore {
        self.core.as_ref().expect("node is up")
    }
}

/// The network.
pub struct Net {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub in_flight: Vec<(NodeId, NodeId, Message)>,
    pub rng: ChaCha8Rng,
    /// Every message delivered, as `from->to message`.
    pub trace: Vec<String>,
    pub record: bool,
}

pub fn command(text: &str) -> Bytes {
    Bytes::from(text.to_string())
}

pub fn payload(text: &str) -> Payload {
    Payload::Command(command(text))
}

impl Net {
    pub fn new(n: u64) -> Net {
        Net::with_config(n, 7, |_| {})
    }

    pub fn with_config(n: u64, seed: u64, tweak: impl Fn(&mut CoreConfig)) -> Net {
        Net::with_membership(n, Membership::new(1..=n), seed, tweak)
    }

    /// Nodes `1..=n`, all started with `membership` as the configuration of
    /// slot 1 (nodes outside it start as non-members).
    pub fn with_membership(
        n: u64,
        membership: Membership,
        seed: u64,
        tweak: impl Fn(&mut CoreConfig),
    ) -> Net {
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut config = CoreConfig::new(id, membership.clone());
            config.seed = seed.wrapping_mul(1000).wrapping_add(id);
            tweak(&mut config);
            let mut store = MemStore::new();
            let state = store.load().expect("empty store loads");
            let core = PaxosCore::restore(config.clone(), state).expect("fresh core");
            nodes.insert(
                id,
                TestNode {
                    core: Some(core),
                    store,
                    config,
                    applied: Vec::new(),
                    outcomes: BTreeMap::new(),
                },
            );
        }
        let mut net = Net {
            nodes,
            in_flight: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            trace: Vec::new(),
            record: false,
        };
        for id in 1..=n {
            net.process(id);
        }
        net
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        &self.nodes[&id]
    }

    pub fn core(&self, id: NodeId) -> &PaxosCore {
        self.nodes[&id].core()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].core.is_some()
    }

    /// Drives the node through the one `Ready` loop
    /// ([`consensus_api::handle_ready_now`]): persist + sync, restore, send,
    /// apply, complete.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..1000 {
            let node = self.nodes.get_mut(&id).expect("known node");
            let Some(core) = node.core.as_mut() else {
                return;
            };
            let Some(ready) = core.ready() else {
                return;
            };
            let mut io = NodeIo {
                id,
                node,
                in_flight: &mut self.in_flight,
            };
            handle_ready_now(&mut io, ready).unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
        panic!("node {id} never stopped producing Ready batches");
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        if self.record {
            self.trace.push(format!("{from}->{to} {message}"));
        }
        let node = self.nodes.get_mut(&to).expect("known node");
        if let Some(core) = node.core.as_mut() {
            core.step(from, message);
            self.process(to);
        }
    }

    /// Delivers the messages in flight that match, in order; messages they
    /// cause stay in flight. Returns how many were delivered.
    pub fn deliver_where(&mut self, keep: impl Fn(NodeId, NodeId, &Message) -> bool) -> usize {
        let batch = std::mem::take(&mut self.in_flight);
        let mut delivered = 0;
        let mut rest = Vec::new();
        for (from, to, message) in batch {
            if keep(from, to, &message) {
                delivered += 1;
                self.deliver(from, to, message);
            } else {
                rest.push((from, to, message));
            }
        }
        rest.append(&mut self.in_flight);
        self.in_flight = rest;
        delivered
    }

    /// Drops the messages in flight that match.
    pub fn drop_where(&mut self, matches: impl Fn(NodeId, NodeId, &Message) -> bool) -> usize {
        let before = self.in_flight.len();
        self.in_flight.retain(|(f, t, m)| !matches(*f, *t, m));
        before - self.in_flight.len()
    }

    /// Delivers everything until nothing is in flight.
    pub fn deliver_all(&mut self) {
        for _ in 0..10_000 {
            if self.in_flight.is_empty() {
                return;
            }
            self.deliver_where(|_, _, _| true);
        }
        panic!("messages never settle");
    }

    /// Delivers everything until nothing is in flight, dropping (before
    /// every round) the messages that match `lost`.
    pub fn deliver_all_losing(&mut self, lost: impl Fn(NodeId, NodeId, &Message) -> bool) {
        for _ in 0..10_000 {
            self.drop_where(&lost);
            if self.in_flight.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut self.in_flight);
            for (from, to, message) in batch {
                if lost(from, to, &message) {
                    continue;
                }
                self.deliver(from, to, message);
            }
        }
        panic!("messages never settle");
    }

    /// Delivers the message at position `i` of the in-flight list.
    pub fn deliver_index(&mut self, i: usize) {
        let (from, to, message) = self.in_flight.swap_remove(i);
        self.deliver(from, to, message);
    }

    /// Delivers one random message in flight (random order = reordering).
    pub fn deliver_random(&mut self) -> bool {
        if self.in_flight.is_empty() {
            return false;
        }
        let i = self.rng.random_range(0..self.in_flight.len());
        let (from, to, message) = self.in_flight.swap_remove(i);
        self.deliver(from, to, message);
        true
    }

    pub fn tick(&mut self, id: NodeId) {
        if let Some(core) = self.nodes.get_mut(&id).expect("known").core.as_mut() {
            core.tick();
            self.process(id);
        }
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    /// `ticks` rounds of: tick every node, deliver everything.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Like `run`, but only messages between nodes of the same group.
    pub fn run_partitioned(&mut self, ticks: u64, groups: &[&[NodeId]]) {
        let group_of = |n: NodeId| groups.iter().position(|g| g.contains(&n));
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all_losing(|f, t, _| group_of(f) != group_of(t));
        }
    }

    pub fn propose(&mut self, id: NodeId, text: &str) -> Ticket {
        self.try_propose(id, text).expect("proposal accepted")
    }

    pub fn try_propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        let node = self.nodes.get_mut(&id).expect("known");
        let result = node.core.as_mut().expect("up").propose(command(text));
        self.process(id);
        result
    }

    pub fn read_barrier(&mut self, id: NodeId) -> Ticket {
        let node = self.nodes.get_mut(&id).expect("known");
        let ticket = node
            .core
            .as_mut()
            .expect("up")
            .read_barrier()
            .expect("read accepted");
        self.process(id);
        ticket
    }

    pub fn outcome(&self, id: NodeId, ticket: Ticket) -> Option<&Result<LogIndex, Rejected>> {
        self.nodes[&id].outcomes.get(&ticket)
    }

    /// Crash: volatile state and unsynced writes are lost.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known");
        node.core = None;
        node.store.crash();
        self.in_flight.retain(|(_, to, _)| *to != id);
    }

    /// Restart from the store.
    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known");
        assert!(node.core.is_none(), "crash first");
        let state = node.store.load().expect("load");
        node.applied = match &state.snapshot {
            Some(snapshot) => postcard::from_bytes(&snapshot.data).expect("snapshot data"),
            None => Vec::new(),
        };
        node.outcomes.clear();
        node.core = Some(PaxosCore::restore(node.config.clone(), state).expect("restore"));
        self.process(id);
    }

    /// The state machine of `id` serializes itself and the core compacts.
    pub fn compact(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("known");
        let index = node.applied.len() as u64;
        let data = Bytes::from(postcard::to_allocvec(&node.applied).expect("encode"));
        let snapshot = node
            .core
            .as_mut()
            .expect("up")
            .compact(index, data)
            .expect("compact");
        node.store.save_snapshot(&snapshot).expect("save snapshot");
        self.process(id);
    }

    /// Safety: no two nodes applied different values at the same slot.
    pub fn check_agreement(&self) {
        let mut by_slot: BTreeMap<LogIndex, (NodeId, &Payload)> = BTreeMap::new();
        for (id, node) in &self.nodes {
            for entry in &node.applied {
                match by_slot.get(&entry.index) {
                    Some((other, payload)) => assert_eq!(
                        *payload, &entry.payload,
                        "nodes {other} and {id} applied different values at slot {}",
                        entry.index
                    ),
                    None => {
                        by_slot.insert(entry.index, (*id, &entry.payload));
                    }
                }
            }
        }
    }

    /// The commands applied by `id`, in order (no-ops skipped).
    pub fn commands(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id]
            .applied
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Command(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// Asserts no command was applied twice on any node.
    pub fn check_no_duplicates(&self) {
        for id in self.nodes.keys() {
            let commands = self.commands(*id);
            let unique: BTreeSet<&String> = commands.iter().collect();
            assert_eq!(
                unique.len(),
                commands.len(),
                "node {id} applied a command twice: {commands:?}"
            );
        }
    }
}

/// One node's I/O for the one `Ready` loop.
struct NodeIo<'a> {
    id: NodeId,
    node: &'a mut TestNode,
    in_flight: &'a mut Vec<(NodeId, NodeId, Message)>,
}

impl ReadyDriver<Message> for NodeIo<'_> {
    type Error = std::convert::Infallible;

    fn send(&mut self, to: NodeId, message: Message) {
        assert_ne!(to, self.id, "a node never sends to itself");
        self.in_flight.push((self.id, to, message));
    }

    async fn persist(
        &mut self,
        ready: Ready<Message>,
    ) -> Result<Option<Ready<Message>>, Self::Error> {
        self.node.store.persist(&ready).expect("persist");
        Ok(Some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.node.applied.len() as LogIndex
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.node.applied = postcard::from_bytes(&snapshot.data).expect("snapshot data");
        assert_eq!(self.node.applied.len() as u64, snapshot.index);
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error> {
        self.node.applied.push(entry);
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        let previous = self.node.outcomes.insert(ticket, result);
        assert!(previous.is_none(), "ticket {ticket} finished twice");
    }
}
