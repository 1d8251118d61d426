//! A tiny deterministic harness for rule tests: nodes, one message queue
//! the test controls (deliver, drop, filter), `MemStore`s with the fsync
//! boundary, and crash / restart. No simulator, no randomness unless a test
//! brings its own.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use consensus_api::{
    handle_ready_now, Bytes, Core, CoreConfig, Entry, LogIndex, LogStore, Membership, NodeId,
    Payload, Ready, ReadyDriver, Rejected, Snapshot, Ticket,
};
use consensus_storage::MemStore;
use multipaxos::{Message, MultiPaxosCore};

/// One node of the harness.
pub struct Node {
    pub core: Option<MultiPaxosCore>,
    pub store: MemStore,
    pub config: CoreConfig,
    /// Entries applied, across incarnations (a restart re-applies from the
    /// snapshot; the harness checks the re-applied prefix is identical).
    pub applied: Vec<Entry>,
    /// Applied index in the current incarnation.
    pub applied_index: LogIndex,
    pub completed: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
}

/// A message in flight.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message,
}

pub struct Harness {
    pub nodes: BTreeMap<NodeId, Node>,
    pub queue: VecDeque<Envelope>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message ever sent, as `from->to Display` lines.
    pub trace: Vec<String>,
}

pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config.heartbeat_interval_ticks = 3;
    // Rule tests drive elections by ticking one node; pre-vote (which asks
    // the others whether their leader went silent) is tested on its own.
    config.pre_vote = false;
    config
}

pub fn command(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn payload_text(payload: &Payload) -> String {
    match payload {
        Payload::Command(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Payload::Noop => "noop".into(),
        Payload::Membership(m) => format!("conf{m}"),
    }
}

impl Harness {
    pub fn new(n: u64) -> Harness {
        Self::with_config(n, |_| {})
    }

    pub fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Harness {
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut config = config(id, &voters);
            tweak(&mut config);
            let mut store = MemStore::new();
            let state = store.load().unwrap();
            let core = MultiPaxosCore::restore(config.clone(), state).unwrap();
            nodes.insert(
                id,
                Node {
                    core: Some(core),
                    store,
                    config,
                    applied: Vec::new(),
                    applied_index: 0,
                    completed: BTreeMap::new(),
                },
            );
        }
        Harness {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            trace: Vec::new(),
        }
    }

    pub fn core(&self, id: NodeId) -> &MultiPaxosCore {
        self.nodes[&id].core.as_ref().expect("node is up")
    }

    pub fn core_mut(&mut self, id: NodeId) -> &mut MultiPaxosCore {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .core
            .as_mut()
            .expect("node is up")
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].core.is_some()
    }

    /// Runs the one `Ready` loop ([`consensus_api::handle_ready_now`]) for
    /// one node: persist, send, apply, complete.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..100 {
            let node = self.nodes.get_mut(&id).unwrap();
            let Some(core) = node.core.as_mut() else {
                return;
            };
            let Some(ready) = core.ready() else { return };
            let mut io = NodeIo {
                id,
                node,
                queue: &mut self.queue,
                trace: &mut self.trace,
            };
            handle_ready_now(&mut io, ready).unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
        panic!("node {id} never ran out of output");
    }

    pub fn process_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    /// Delivers one message (dropped if the link is cut or a node is down).
    pub fn deliver(&mut self, envelope: Envelope) {
        if self.cut.contains(&(envelope.from, envelope.to)) || !self.is_up(envelope.to) {
            return;
        }
        self.core_mut(envelope.to)
            .step(envelope.from, envelope.message);
        self.process(envelope.to);
    }

    /// Delivers everything queued (and what that produces), up to `limit`.
    pub fn stabilize(&mut self) {
        self.process_all();
        for _ in 0..100_000 {
            let Some(envelope) = self.queue.pop_front() else {
                return;
            };
            self.deliver(envelope);
        }
        panic!("no quiescence after 100000 messages");
    }

    /// Takes the queued messages matching `keep` out of the queue.
    pub fn take(&mut self, keep: impl Fn(&Envelope) -> bool) -> Vec<Envelope> {
        let (taken, rest): (Vec<Envelope>, Vec<Envelope>) =
            self.queue.drain(..).partition(|e| keep(e));
        self.queue = rest.into();
        taken
    }

    /// Drops every queued message.
    pub fn drop_all(&mut self) {
        self.queue.clear();
    }

    pub fn tick(&mut self, id: NodeId) {
        if self.is_up(id) {
            self.core_mut(id).tick();
            self.process(id);
        }
    }

    pub fn tick_all(&mut self, ticks: u64) {
        for _ in 0..ticks {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.tick(id);
            }
            self.stabilize();
        }
    }

    /// Ticks only `id` until it leads (delivering messages in between).
    pub fn elect(&mut self, id: NodeId) {
        for _ in 0..200 {
            if self.core(id).status().role == consensus_api::Role::Leader {
                self.stabilize();
                return;
            }
            self.tick(id);
            self.stabilize();
        }
        panic!("node {id} did not become leader");
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.core.as_ref().map(|c| (*id, c.status())))
            .filter(|(_, s)| s.role == consensus_api::Role::Leader)
            .max_by_key(|(_, s)| s.epoch)
            .map(|(id, _)| id)
    }

    pub fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        let result = self.core_mut(id).propose(command(text));
        self.process(id);
        result
    }

    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.core = None;
        node.store.crash();
        node.completed.clear();
    }

    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let state = node.store.load().unwrap();
        node.applied_index = state.snapshot.as_ref().map_or(0, |s| s.index);
        node.core = Some(MultiPaxosCore::restore(node.config.clone(), state).unwrap());
        self.process(id);
    }

    /// The applied payloads of a node, as text.
    pub fn applied_texts(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id]
            .applied
            .iter()
            .map(|e| payload_text(&e.payload))
            .collect()
    }

    /// Applied sequences agree on their common prefix (state machine safety).
    pub fn check_agreement(&self) {
        let mut longest: Vec<Entry> = Vec::new();
        for node in self.nodes.values() {
            let common = longest.len().min(node.applied.len());
            assert_eq!(
                node.applied[..common]
                    .iter()
                    .map(|e| &e.payload)
                    .collect::<Vec<_>>(),
                longest[..common]
                    .iter()
                    .map(|e| &e.payload)
                    .collect::<Vec<_>>(),
                "two nodes applied different values"
            );
            if node.applied.len() > longest.len() {
                longest = node.applied.clone();
            }
        }
    }
}

/// One node's I/O for the one `Ready` loop.
struct NodeIo<'a> {
    id: NodeId,
    node: &'a mut Node,
    queue: &'a mut VecDeque<Envelope>,
    trace: &'a mut Vec<String>,
}

impl ReadyDriver<Message> for NodeIo<'_> {
    type Error = std::convert::Infallible;

    fn send(&mut self, to: NodeId, message: Message) {
        self.trace.push(format!("{}->{to} {message}", self.id));
        self.queue.push_back(Envelope {
            from: self.id,
            to,
            message,
        });
    }

    async fn persist(
        &mut self,
        ready: Ready<Message>,
    ) -> Result<Option<Ready<Message>>, Self::Error> {
        self.node.store.persist(&ready).expect("persist");
        Ok(Some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.node.applied_index
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.node.applied_index = snapshot.index;
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error> {
        let id = self.id;
        let node = &mut *self.node;
        node.applied_index = entry.index;
        let position = (entry.index - 1) as usize;
        if position < node.applied.len() {
            assert_eq!(
                node.applied[position].payload, entry.payload,
                "node {id} re-applied a different value at {}",
                entry.index
            );
        } else {
            assert_eq!(position, node.applied.len(), "applied sequence has a hole");
            node.applied.push(entry);
        }
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        assert!(
            self.node.completed.insert(ticket, result).is_none(),
            "ticket finished twice"
        );
    }
}
