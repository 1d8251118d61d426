//! A tiny deterministic harness for ZAB tests: nodes (core + `MemStore` +
//! a trivial state machine), one FIFO message queue, link cuts, crashes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use consensus_api::{
    handle_ready_now, Bytes, Core, CoreConfig, Entry, LogIndex, LogStore, Membership, NodeId,
    Payload, Ready, ReadyDriver, Rejected, Role, Snapshot, Status, Ticket,
};
use consensus_storage::MemStore;
use zab::{Message, ZabCore};

/// The state machine: applied commands as `(index, text)`.
pub type Machine = Vec<(LogIndex, String)>;

pub fn encode_machine(machine: &Machine) -> Bytes {
    let text: Vec<String> = machine.iter().map(|(i, s)| format!("{i}\t{s}")).collect();
    Bytes::from(text.join("\n"))
}

pub fn decode_machine(data: &Bytes) -> Machine {
    let text = String::from_utf8(data.to_vec()).expect("utf8");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (i, s) = l.split_once('\t').expect("tab");
            (i.parse().expect("index"), s.to_string())
        })
        .collect()
}

pub struct Node {
    pub config: CoreConfig,
    pub core: Option<ZabCore>,
    pub store: MemStore,
    pub machine: Machine,
    pub applied: LogIndex,
    pub outcomes: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
    /// Every `Ready` that sent messages had its writes synced first.
    pub readies: u64,
    /// Ready batches that carried an installed snapshot.
    pub snapshots_installed: u64,
    /// Ready batches that truncated the history.
    pub truncations: Vec<LogIndex>,
}

pub struct Net {
    pub nodes: BTreeMap<NodeId, Node>,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub trace: Vec<String>,
    pub tracing: bool,
    /// Every message ever sent (from, to, message).
    pub sent: Vec<(NodeId, NodeId, Message)>,
}

pub fn config(id: NodeId, voters: &[NodeId]) -> CoreConfig {
    let mut config = CoreConfig::new(id, Membership::new(voters.iter().copied()));
    config.seed = id * 7919;
    config
}

impl Net {
    pub fn new(n: u64) -> Net {
        Net::with_config(n, |_| {})
    }

    pub fn with_config(n: u64, tweak: impl Fn(&mut CoreConfig)) -> Net {
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut net = Net {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            trace: Vec::new(),
            tracing: false,
            sent: Vec::new(),
        };
        for id in 1..=n {
            let mut c = config(id, &voters);
            tweak(&mut c);
            net.add_node(c, consensus_api::InitialState::default());
        }
        net
    }

    /// Adds a node restored from `state` (also written to its store).
    pub fn add_node(&mut self, config: CoreConfig, state: consensus_api::InitialState) {
        let id = config.id;
        let mut store = MemStore::new();
        if let Some(snapshot) = &state.snapshot {
            store.save_snapshot(snapshot).unwrap();
        }
        store
            .write(&consensus_api::WriteBatch {
                hard_state: state.hard_state.as_ref(),
                truncate_from: None,
                append: &state.entries,
                snapshot: None,
            })
            .unwrap();
        store.sync().unwrap();
        let (machine, applied) = match &state.snapshot {
            Some(s) => (decode_machine(&s.data), s.index),
            None => (Vec::new(), 0),
        };
        let core = ZabCore::restore(config.clone(), state).expect("restore");
        self.nodes.insert(
            id,
            Node {
                config,
                core: Some(core),
                store,
                machine,
                applied,
                outcomes: BTreeMap::new(),
                readies: 0,
                snapshots_installed: 0,
                truncations: Vec::new(),
            },
        );
        self.process(id);
    }

    pub fn core(&self, id: NodeId) -> &ZabCore {
        self.nodes[&id].core.as_ref().expect("node is up")
    }

    pub fn core_mut(&mut self, id: NodeId) -> &mut ZabCore {
        self.nodes
            .get_mut(&id)
            .unwrap()
            .core
            .as_mut()
            .expect("node is up")
    }

    pub fn status(&self, id: NodeId) -> Status {
        self.core(id).status()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[&id].core.is_some()
    }

    /// Drains `id`'s output through the one `Ready` loop
    /// ([`consensus_api::handle_ready_now`]).
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..1000 {
            let node = self.nodes.get_mut(&id).unwrap();
            let Some(core) = node.core.as_mut() else {
                return;
            };
            let Some(ready) = core.ready() else { return };
            node.readies += 1;
            if let Some(t) = ready.truncate_from {
                node.truncations.push(t);
            }
            if ready.snapshot.is_some() {
                node.snapshots_installed += 1;
            }
            let mut io = NodeIo {
                id,
                node,
                queue: &mut self.queue,
                sent: &mut self.sent,
                trace: self.tracing.then_some(&mut self.trace),
            };
            handle_ready_now(&mut io, ready).unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
        panic!("node {id} never ran out of output");
    }

    /// Delivers one queued message (dropping it if its link is cut or the
    /// target is down). Returns false when the queue is empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some((from, to, message)) = self.queue.pop_front() else {
            return false;
        };
        self.deliver(from, to, message);
        true
    }

    pub fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        if self.cut.contains(&(from, to)) || self.nodes.get(&to).is_none_or(|n| n.core.is_none()) {
            return;
        }
        self.core_mut(to).step(from, message);
        self.process(to);
        self.check_agreement();
    }

    /// Delivers until the queue is empty.
    pub fn deliver_all(&mut self) {
        for _ in 0..200_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("message storm: the queue never drained");
    }

    /// Takes the queued messages out (to drop or reorder them).
    pub fn take_queue(&mut self) -> Vec<(NodeId, NodeId, Message)> {
        self.queue.drain(..).collect()
    }

    pub fn tick(&mut self, id: NodeId) {
        if self.is_up(id) {
            self.core_mut(id).tick();
            self.process(id);
        }
    }

    /// `ticks` rounds of: every live node ticks, then all messages flow.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.tick(id);
            }
            self.deliver_all();
        }
    }

    /// Runs until `done` holds (checked after every tick), at most `max` ticks.
    pub fn run_until(&mut self, max: u64, done: impl Fn(&Net) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.run(1);
        }
        done(self)
    }

    /// The established leader with the highest epoch.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.core.as_ref().map(|c| (*id, c.status())))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.epoch)
            .map(|(id, _)| id)
    }

    pub fn elect(&mut self) -> NodeId {
        assert!(
            self.run_until(300, |n| n.leader().is_some()),
            "a leader is elected"
        );
        let leader = self.leader().unwrap();
        // Let every reachable follower finish synchronizing.
        self.run(10);
        leader
    }

    pub fn propose(&mut self, id: NodeId, text: &str) -> Result<Ticket, Rejected> {
        let result = self.core_mut(id).propose(Bytes::from(text.to_string()));
        self.process(id);
        result
    }

    pub fn outcome(&self, id: NodeId, ticket: Ticket) -> Option<&Result<LogIndex, Rejected>> {
        self.nodes[&id].outcomes.get(&ticket)
    }

    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

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

    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.core = None;
        node.store.crash();
        node.machine.clear();
        node.applied = 0;
        node.outcomes.clear();
        self.queue.retain(|(_, to, _)| *to != id);
    }

    pub fn restart(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let state = node.store.load().unwrap();
        let (machine, applied) = match &state.snapshot {
            Some(s) => (decode_machine(&s.data), s.index),
            None => (Vec::new(), 0),
        };
        node.machine = machine;
        node.applied = applied;
        node.core = Some(ZabCore::restore(node.config.clone(), state).expect("restore"));
        self.process(id);
    }

    /// Snapshot `id`'s state machine at its applied index.
    pub fn compact(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let data = encode_machine(&node.machine);
        let applied = node.applied;
        let snapshot = node
            .core
            .as_mut()
            .unwrap()
            .compact(applied, data)
            .expect("compact");
        node.store.save_snapshot(&snapshot).unwrap();
    }

    /// Durable entries of `id`'s store.
    pub fn stored(&self, id: NodeId) -> Vec<Entry> {
        self.nodes[&id]
            .store
            .durable()
            .entries
            .values()
            .cloned()
            .collect()
    }

    /// Applied state machines agree: each is a prefix of the longest.
    pub fn check_agreement(&self) {
        let machines: Vec<(&NodeId, &Node)> = self.nodes.iter().collect();
        for (a, na) in &machines {
            for (b, nb) in &machines {
                let common = na.machine.len().min(nb.machine.len());
                assert_eq!(
                    na.machine[..common],
                    nb.machine[..common],
                    "nodes {a} and {b} applied different commands"
                );
            }
        }
    }

    pub fn machine(&self, id: NodeId) -> Vec<String> {
        self.nodes[&id]
            .machine
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

impl Net {
    /// One tick round in which messages matching `drop` are lost.
    pub fn run_ticks_dropping(&mut self, drop: impl Fn(&Message) -> bool) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
        for _ in 0..200_000 {
            let Some((from, to, message)) = self.queue.pop_front() else {
                return;
            };
            if drop(&message) {
                continue;
            }
            self.deliver(from, to, message);
        }
    }
}

/// One node's I/O for the one `Ready` loop.
struct NodeIo<'a> {
    id: NodeId,
    node: &'a mut Node,
    queue: &'a mut VecDeque<(NodeId, NodeId, Message)>,
    sent: &'a mut Vec<(NodeId, NodeId, Message)>,
    trace: Option<&'a mut Vec<String>>,
}

impl ReadyDriver<Message> for NodeIo<'_> {
    type Error = std::convert::Infallible;

    fn send(&mut self, to: NodeId, message: Message) {
        if let Some(trace) = self.trace.as_mut() {
            trace.push(format!("{}->{to} {message}", self.id));
        }
        self.sent.push((self.id, to, message.clone()));
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
        self.node.applied
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::Error> {
        self.node.machine = decode_machine(&snapshot.data);
        self.node.applied = snapshot.index;
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), Self::Error> {
        self.node.applied = entry.index;
        if let Payload::Command(bytes) = &entry.payload {
            self.node
                .machine
                .push((entry.index, String::from_utf8_lossy(bytes).into_owned()));
        }
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        assert!(
            self.node.outcomes.insert(ticket, result).is_none(),
            "ticket finished twice"
        );
    }
}
