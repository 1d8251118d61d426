//! [`Cluster`]: a set of nodes running one [`Core`] type, driven by virtual
//! time over a seeded faulty network, with invariants checked after every
//! event.
//!
//! The driver loop per node is exactly the contract of `consensus-api`: after
//! each input, `core.ready()` → hand the early messages (a leader's own
//! replication) to the network → `store.write` + `sync` (or a simulated
//! crash in between, after the early messages left) → restore the state
//! machine from `ready.snapshot` → hand the other `messages` to the network
//! → apply `committed` → record `completed`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use consensus_api::{
    Core, CoreConfig, Entry, LogIndex, LogStore, Membership, NodeId, Payload, Ready, Rejected,
    Role, SessionCommand, Sessions, StateMachine, Status, Ticket,
};
use consensus_storage::MemStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::failure::SimFailure;

mod driver;
mod events;
mod faults;
mod requests;
use crate::kv::{describe_payload, encode_read, KvCommand, KvResponse, KvStore};
use crate::network::{Links, NetworkConfig};
use crate::ops::{KvOutcome, OpError, PendingKv};

/// Virtual nanoseconds per tick by default (10 ms, the tick the
/// [`CoreConfig::new`] defaults are designed for).
pub const DEFAULT_TICK_NS: u64 = 10_000_000;

/// Most client sessions the replicated state machine keeps.
pub const SESSION_CAPACITY: usize = 4096;

/// How many recent command responses a node keeps for tickets that finish
/// after their entry was applied.
const RESPONSES_KEPT: u64 = 8192;

/// Messages delivered and dropped by [`Cluster::deliver_where`].
pub type Delivered<M> = (Vec<InFlight<M>>, Vec<InFlight<M>>);

type InvariantFn<C> = Box<dyn Fn(&Cluster<C>) -> Result<(), String>>;

struct Invariant<C: Core> {
    name: String,
    check: InvariantFn<C>,
}

/// Something scheduled on the virtual clock.
enum Event<M> {
    /// A node's logical clock ticks.
    Tick(NodeId),
    /// A message arrives.
    Deliver {
        from: NodeId,
        to: NodeId,
        message: M,
    },
    /// A timer of the caller (the randomized-run workload).
    Timer(u64),
}

/// What [`Cluster::step_event`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// Processed one internal event (a tick or a message).
    Internal,
    /// A timer set with [`Cluster::schedule_timer`] fired.
    Timer(u64),
    /// Nothing is scheduled at or before the limit; the clock moved to it.
    Idle,
}

/// A finished ticket, as the randomized workload consumes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The node that finished the ticket.
    pub node: NodeId,
    /// The node's incarnation (restart count) when it finished it.
    pub incarnation: u64,
    /// The ticket.
    pub ticket: Ticket,
    /// Its result.
    pub result: Result<LogIndex, Rejected>,
    /// For `Ok(index)`: what this node's state machine answered for the
    /// command at `index`, when it applied it in this incarnation.
    pub response: Option<Bytes>,
}

/// One in-flight message in manual network mode ([`Cluster::set_manual`]).
#[derive(Clone, Debug)]
pub struct InFlight<M> {
    /// Sender.
    pub from: NodeId,
    /// Destination.
    pub to: NodeId,
    /// The message.
    pub message: M,
}

/// Counters of one cluster's life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Events processed.
    pub events: u64,
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Bytes of the messages handed to the network, as postcard encodes
    /// them (the transport's frame body, without framing). Counted only
    /// after [`Cluster::set_count_bytes`]`(true)`; 0 otherwise.
    pub bytes_sent: u64,
    /// Messages handed to a core.
    pub messages_delivered: u64,
    /// Messages lost to the drop rate.
    pub messages_dropped: u64,
    /// Messages lost to a cut link or a crashed destination.
    pub messages_cut: u64,
    /// Extra copies created by duplication.
    pub messages_duplicated: u64,
    /// Crashes (including crashes between a write and its sync).
    pub crashes: u64,
    /// Crashes that happened between a `write` and its `sync`.
    pub torn_crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Snapshots taken by [`Cluster::compact`].
    pub compactions: u64,
    /// Snapshots installed from a `Ready`.
    pub snapshots_installed: u64,
    /// Ready batches processed.
    pub readies: u64,
    /// Messages sent before their batch was durable
    /// ([`Ready::early_messages`]).
    pub early_messages: u64,
    /// Entries applied, over all nodes.
    pub entries_applied: u64,
    /// Distinct (epoch, leader) pairs seen.
    pub leaders_elected: u64,
    /// Stop-the-world pauses started ([`Cluster::pause`]).
    pub pauses: u64,
    /// Clock rate changes away from nominal ([`Cluster::set_clock_rate`]).
    pub clock_skews: u64,
}

/// What survives a crash armed between a write and its sync.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum TornCrash {
    /// A random prefix of the unsynced batches (the nemesis' choice).
    RandomPrefix,
    /// None of them (rule tests that need the loss for certain).
    LoseUnsynced,
}

/// One simulated node: a core (absent while crashed), its store, its state
/// machine, and what the driver observed of it.
struct Node<C: Core> {
    id: NodeId,
    config: CoreConfig,
    core: Option<C>,
    store: MemStore,
    sm: Sessions<KvStore>,
    incarnation: u64,
    paused: bool,
    /// A stale pause ([`Cluster::pause_stale`]): client requests still reach
    /// the core, its output waits for the resume.
    frozen: bool,
    paused_inbox: Vec<(NodeId, C::Message)>,
    /// Entries handed to the state machine in this incarnation.
    applied: Vec<Entry>,
    applied_index: LogIndex,
    responses: BTreeMap<LogIndex, Bytes>,
    outcomes: BTreeMap<Ticket, Result<LogIndex, Rejected>>,
    tick_period_ns: u64,
    commit_seen: LogIndex,
    epoch_seen: u64,
    /// Crash at the next durable write, between `write` and `sync`.
    crash_armed: Option<TornCrash>,
    ticks: u64,
    /// How fast the node's clock runs relative to its nominal tick period
    /// ([`Cluster::set_clock_rate`]): 2.0 ticks twice as often, 0.5 half as
    /// often. 1.0 outside clock faults.
    clock_rate: f64,
}

impl<C: Core> Node<C> {
    /// The node's tick period under its current clock rate (exactly the
    /// nominal period at rate 1, so runs without clock faults are unchanged).
    fn effective_tick_period_ns(&self) -> u64 {
        if self.clock_rate == 1.0 {
            self.tick_period_ns
        } else {
            ((self.tick_period_ns as f64 / self.clock_rate) as u64).max(1)
        }
    }
}

/// A simulated cluster of nodes running the core `C`.
///
/// Node ids are `1..=n`. Every node runs `C`, a [`MemStore`] and the
/// simulator's replicated key-value state machine ([`KvStore`]) wrapped in
/// [`Sessions`]. Time is virtual; every random choice comes from one
/// `ChaCha8Rng` seeded with the cluster's seed, so a seed replays a run
/// exactly on any machine.
///
/// Checks run after every event: the built-in invariants (agreement on
/// applied entries, applied sequences contiguous and never rolled back, at
/// most one leader per epoch, commit index monotone within an incarnation,
/// the driver-visible parts of the `Ready` contract) and every invariant
/// added with [`Cluster::add_invariant`]. A violation panics with a
/// reproducing message (the default, convenient in tests) or, after
/// [`Cluster::set_panic_on_violation(false)`](Cluster::set_panic_on_violation),
/// is recorded, stops the simulation and is returned by [`Cluster::check`].
pub struct Cluster<C: Core> {
    seed: u64,
    rng: ChaCha8Rng,
    tick_ns: u64,
    now_ns: u64,
    next_seq: u64,
    queue: BTreeMap<(u64, u64), Event<C::Message>>,
    nodes: Vec<Node<C>>,
    links: Links,
    network: NetworkConfig,
    invariants: Vec<Invariant<C>>,
    /// The committed log as the first node that applied each index saw it.
    log: BTreeMap<LogIndex, (Payload, NodeId)>,
    leaders: BTreeMap<u64, NodeId>,
    snapshot_digests: BTreeMap<LogIndex, (Bytes, NodeId)>,
    failure: Option<SimFailure>,
    panic_on_violation: bool,
    reproduce: String,
    manual: bool,
    defer_ready: bool,
    in_flight: VecDeque<InFlight<C::Message>>,
    stats: ClusterStats,
    record_completions: bool,
    completions: Vec<Completion>,
    crashed_events: Vec<NodeId>,
    applied_progress: BTreeSet<NodeId>,
    kv_client: u64,
    kv_sequence: u64,
    kv_pending: BTreeMap<(NodeId, u64, Ticket), PendingKv>,
    kv_done: BTreeMap<(NodeId, Ticket), KvOutcome>,
    count_bytes: bool,
    /// Delay factor of every message to or from a node ([`Cluster::slow_node`]).
    slowdown: BTreeMap<NodeId, f64>,
}

impl<C: Core> Cluster<C> {
    /// A cluster of `n` nodes (ids `1..=n`, all voters) with default
    /// [`CoreConfig`]s (each node's `seed` drawn from the cluster seed).
    pub fn new(n: usize, seed: u64) -> Self {
        Self::with_config(n, seed, |_| {})
    }

    /// Like [`Cluster::new`], letting `configure` adjust every node's
    /// [`CoreConfig`] (called once per node, after `id`, membership and
    /// `seed` are set).
    pub fn with_config(n: usize, seed: u64, configure: impl Fn(&mut CoreConfig)) -> Self {
        assert!(n >= 1, "a cluster needs at least one node");
        let membership = Membership::new(1..=n as NodeId);
        let mut cluster = Cluster {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            tick_ns: DEFAULT_TICK_NS,
            now_ns: 0,
            next_seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::with_capacity(n),
            links: Links::new(),
            network: NetworkConfig::default(),
            invariants: Vec::new(),
            log: BTreeMap::new(),
            leaders: BTreeMap::new(),
            snapshot_digests: BTreeMap::new(),
            failure: None,
            panic_on_violation: true,
            reproduce: format!("re-run the test with seed {seed}"),
            manual: false,
            defer_ready: false,
            in_flight: VecDeque::new(),
            stats: ClusterStats::default(),
            record_completions: false,
            completions: Vec::new(),
            crashed_events: Vec::new(),
            applied_progress: BTreeSet::new(),
            kv_client: 0,
            kv_sequence: 0,
            kv_pending: BTreeMap::new(),
            kv_done: BTreeMap::new(),
            count_bytes: false,
            slowdown: BTreeMap::new(),
        };
        cluster.kv_client = cluster.rng.random::<u64>() | 1;
        for id in 1..=n as NodeId {
            cluster.add_node_with(id, membership.clone(), &configure);
        }
        cluster
    }

    /// Adds node `id` (not a member of anything yet unless `membership`
    /// says so) with the given initial membership, started and ticking.
    /// Used to grow a cluster before a membership change.
    pub fn add_node(
        &mut self,
        id: NodeId,
        membership: Membership,
        configure: impl Fn(&mut CoreConfig),
    ) {
        self.add_node_with(id, membership, &configure);
    }

    fn add_node_with(
        &mut self,
        id: NodeId,
        membership: Membership,
        configure: &dyn Fn(&mut CoreConfig),
    ) {
        assert!(id != 0, "node id 0 is reserved");
        assert!(self.index_of(id).is_none(), "node {id} already exists");
        let mut config = CoreConfig::new(id, membership);
        config.seed = self.rng.random();
        configure(&mut config);
        // Each node's clock runs at its own rate, within 2% of nominal.
        let jitter = self.rng.random_range(0.98..1.02);
        let tick_period_ns = ((self.tick_ns as f64) * jitter) as u64;
        let node = Node {
            id,
            config,
            core: None,
            store: MemStore::new(),
            sm: Sessions::new(KvStore::new(), SESSION_CAPACITY),
            incarnation: 0,
            paused: false,
            frozen: false,
            paused_inbox: Vec::new(),
            applied: Vec::new(),
            applied_index: 0,
            responses: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            tick_period_ns: tick_period_ns.max(1),
            commit_seen: 0,
            epoch_seen: 0,
            crash_armed: None,
            ticks: 0,
            clock_rate: 1.0,
        };
        self.nodes.push(node);
        self.nodes.sort_by_key(|n| n.id);
        self.start_node(id);
        if !self.manual {
            let first = self.rng.random_range(0..self.tick_ns);
            self.schedule(self.now_ns + first, Event::Tick(id));
        }
    }

    // ------------------------------------------------------------------
    // Configuration
    // ------------------------------------------------------------------

    /// Adds a check run after every event. It gets a read-only view of the
    /// cluster and returns `Err(what broke)` on violation.
    pub fn add_invariant(
        &mut self,
        name: &str,
        check: impl Fn(&Cluster<C>) -> Result<(), String> + 'static,
    ) {
        self.invariants.push(Invariant {
            name: name.to_owned(),
            check: Box::new(check),
        });
    }

    /// Whether a violation panics (default `true`) or is recorded and
    /// returned by [`Cluster::check`] (the randomized runner's choice).
    pub fn set_panic_on_violation(&mut self, panic: bool) {
        self.panic_on_violation = panic;
    }

    /// The command line (or hint) printed in failures to reproduce the run.
    pub fn set_reproduce(&mut self, reproduce: String) {
        self.reproduce = reproduce;
    }

    /// Sets the per-message network behaviour (rates are clamped to
    /// `[0, 1]`, delays to non-negative).
    pub fn set_network(&mut self, mut config: NetworkConfig) {
        config.drop_rate = config.drop_rate.clamp(0.0, 1.0);
        config.duplicate_rate = config.duplicate_rate.clamp(0.0, 1.0);
        config.long_delay_rate = config.long_delay_rate.clamp(0.0, 1.0);
        config.delay_ticks_min = config.delay_ticks_min.max(0.0);
        config.delay_ticks_max = config.delay_ticks_max.max(config.delay_ticks_min);
        config.long_delay_ticks = config.long_delay_ticks.max(0.0);
        self.network = config;
    }

    /// The current network behaviour.
    pub fn network(&self) -> &NetworkConfig {
        &self.network
    }

    /// Manual mode (golden tests): nodes tick only through
    /// [`Cluster::tick_node`], and sent messages wait in
    /// [`Cluster::in_flight`] until [`Cluster::deliver_where`] delivers them.
    pub fn set_manual(&mut self, manual: bool) {
        if manual == self.manual {
            return;
        }
        self.manual = manual;
        if manual {
            // Messages already on the wire wait in flight, in arrival order.
            let queue = std::mem::take(&mut self.queue);
            for (key, event) in queue {
                match event {
                    Event::Deliver { from, to, message } => {
                        self.in_flight.push_back(InFlight { from, to, message })
                    }
                    Event::Timer(_) => {
                        self.queue.insert(key, event);
                    }
                    Event::Tick(_) => {}
                }
            }
        } else {
            for id in self.node_ids() {
                let first = self.rng.random_range(0..self.tick_ns);
                self.schedule(self.now_ns + first, Event::Tick(id));
            }
            for InFlight { from, to, message } in std::mem::take(&mut self.in_flight) {
                self.send_unchecked(from, to, message);
            }
        }
    }

    /// When set, a core's `Ready` is processed only by
    /// [`Cluster::process_ready`] (golden tests that show each step).
    pub fn set_defer_ready(&mut self, defer: bool) {
        self.defer_ready = defer;
    }

    /// Count the encoded size of every message sent
    /// ([`ClusterStats::bytes_sent`]). Off by default: it costs an encoding
    /// per message. Changes nothing else (no random draw).
    pub fn set_count_bytes(&mut self, count: bool) {
        self.count_bytes = count;
    }

    /// Collect [`Completion`]s for [`Cluster::take_completions`].
    pub fn set_record_completions(&mut self, record: bool) {
        self.record_completions = record;
    }

    // ------------------------------------------------------------------
    // Introspection
    // ------------------------------------------------------------------

    /// The seed the cluster was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual nanoseconds per tick.
    pub fn tick_duration_ns(&self) -> u64 {
        self.tick_ns
    }

    /// Current virtual time, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Current virtual time, in (nominal) ticks.
    pub fn now_ticks(&self) -> u64 {
        self.now_ns / self.tick_ns
    }

    /// Events processed so far.
    pub fn steps(&self) -> u64 {
        self.stats.events
    }

    /// Counters.
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// Ids of all nodes, in order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn node(&self, id: NodeId) -> &Node<C> {
        let index = self
            .index_of(id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"));
        &self.nodes[index]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node<C> {
        let index = self
            .index_of(id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"));
        &mut self.nodes[index]
    }

    /// True when the node runs (not crashed; a paused node is alive).
    pub fn is_alive(&self, id: NodeId) -> bool {
        self.node(id).core.is_some()
    }

    /// True when the node is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.node(id).paused
    }

    /// The node's status. Panics if the node is crashed.
    pub fn status(&self, id: NodeId) -> Status {
        self.core(id).status()
    }

    /// The node's status, `None` while crashed.
    pub fn try_status(&self, id: NodeId) -> Option<Status> {
        self.node(id).core.as_ref().map(Core::status)
    }

    /// The node's core. Panics if the node is crashed.
    pub fn core(&self, id: NodeId) -> &C {
        self.node(id)
            .core
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is crashed"))
    }

    /// The node's core, mutably. After feeding it input directly, call
    /// [`Cluster::process_ready`] so its output is handled.
    pub fn core_mut(&mut self, id: NodeId) -> &mut C {
        self.node_mut(id)
            .core
            .as_mut()
            .unwrap_or_else(|| panic!("node {id} is crashed"))
    }

    /// The node's configuration (as used at its next restart).
    pub fn config(&self, id: NodeId) -> &CoreConfig {
        &self.node(id).config
    }

    /// The node's store.
    pub fn store(&self, id: NodeId) -> &MemStore {
        &self.node(id).store
    }

    /// The live node in [`Role::Leader`] with the highest epoch (ties: the
    /// lowest id), if any.
    pub fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for node in &self.nodes {
            if let Some(core) = &node.core {
                let status = core.status();
                if status.role == Role::Leader && best.is_none_or(|(epoch, _)| status.epoch > epoch)
                {
                    best = Some((status.epoch, node.id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Entries the node's state machine applied in this incarnation (a
    /// snapshot install skips the entries it covers).
    pub fn applied(&self, id: NodeId) -> &[Entry] {
        &self.node(id).applied
    }

    /// Highest index the node applied (or restored from a snapshot) in this
    /// incarnation.
    pub fn applied_index(&self, id: NodeId) -> LogIndex {
        self.node(id).applied_index
    }

    /// The node's key-value state.
    pub fn kv(&self, id: NodeId) -> &KvStore {
        self.node(id).sm.inner()
    }

    /// A local (possibly stale) read of `key` on the node.
    pub fn local_value(&self, id: NodeId, key: &str) -> Option<i64> {
        self.kv(id).get(key)
    }

    /// Runs a query against the node's state machine as it is now.
    pub fn query(&self, id: NodeId, query: &Bytes) -> Bytes {
        self.node(id).sm.query(query)
    }

    /// Times the node restarted.
    pub fn incarnation(&self, id: NodeId) -> u64 {
        self.node(id).incarnation
    }

    /// Ticks the node has taken (all incarnations).
    pub fn ticks_of(&self, id: NodeId) -> u64 {
        self.node(id).ticks
    }

    /// The committed log as observed so far: for each index, the payload
    /// applied there (by every node that applied it).
    pub fn committed_log(&self) -> impl Iterator<Item = (LogIndex, &Payload)> + '_ {
        self.log
            .iter()
            .map(|(index, (payload, _))| (*index, payload))
    }

    /// The link table.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The outcome of a ticket the node finished in this incarnation.
    pub fn outcome(&self, id: NodeId, ticket: Ticket) -> Option<&Result<LogIndex, Rejected>> {
        self.node(id).outcomes.get(&ticket)
    }

    /// Every ticket the node finished in this incarnation, in ticket order.
    pub fn outcomes(&self, id: NodeId) -> &BTreeMap<Ticket, Result<LogIndex, Rejected>> {
        &self.node(id).outcomes
    }

    /// The first violation recorded, if any.
    pub fn failure(&self) -> Option<&SimFailure> {
        self.failure.as_ref()
    }

    /// Messages waiting in manual mode, in send order.
    pub fn in_flight(&self) -> &VecDeque<InFlight<C::Message>> {
        &self.in_flight
    }

    /// Drains finished tickets (see [`Cluster::set_record_completions`]).
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// Drains the ids of nodes that crashed since the last call.
    pub fn take_crashed(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.crashed_events)
    }

    /// Drains the ids of nodes whose applied index moved since the last call.
    pub fn take_applied_progress(&mut self) -> BTreeSet<NodeId> {
        std::mem::take(&mut self.applied_progress)
    }

    /// The cluster's random number generator (so callers' random choices
    /// come from the same seed).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    // ------------------------------------------------------------------
    // Checks
    // ------------------------------------------------------------------

    /// Runs every invariant now; returns the first violation recorded so far
    /// or found now.
    pub fn check(&mut self) -> Result<(), SimFailure> {
        if self.failure.is_none() {
            self.run_invariants();
        }
        match &self.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    /// Records a violation of `check` (and panics unless disabled).
    pub fn violation(&mut self, check: &str, message: String) {
        if self.failure.is_some() {
            return;
        }
        let failure = SimFailure {
            seed: self.seed,
            step: self.stats.events,
            tick: self.now_ns / self.tick_ns,
            time_ns: self.now_ns,
            check: check.to_owned(),
            message,
            reproduce: self.reproduce.clone(),
        };
        if self.panic_on_violation {
            panic!("{failure}");
        }
        self.failure = Some(failure);
    }

    fn run_invariants(&mut self) {
        let mut broken = None;
        for invariant in &self.invariants {
            if let Err(message) = (invariant.check)(self) {
                broken = Some((invariant.name.clone(), message));
                break;
            }
        }
        if let Some((name, message)) = broken {
            self.violation(&name, message);
        }
    }

    /// Status-based checks on one node after it handled an input.
    fn check_node(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(core) = &node.core else { return };
        let status = core.status();
        let id = node.id;
        if status.id != id {
            let message = format!("node {id} reports id {}", status.id);
            return self.violation("status", message);
        }
        if status.role == Role::Leader {
            match self.leaders.get(&status.epoch) {
                Some(&other) if other != id => {
                    let message = format!(
                        "nodes {other} and {id} were both leader of epoch {}",
                        status.epoch
                    );
                    return self.violation("leader-per-epoch", message);
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(status.epoch, id);
                    self.stats.leaders_elected += 1;
                }
            }
        }
        let node = &mut self.nodes[index];
        if status.commit_index < node.commit_seen {
            let message = format!(
                "node {id}'s commit index went back from {} to {} within one incarnation",
                node.commit_seen, status.commit_index
            );
            return self.violation("commit-monotone", message);
        }
        node.commit_seen = status.commit_index;
        if status.epoch < node.epoch_seen {
            let message = format!(
                "node {id}'s epoch went back from {} to {} within one incarnation",
                node.epoch_seen, status.epoch
            );
            return self.violation("epoch-monotone", message);
        }
        node.epoch_seen = status.epoch;
        if !self.defer_ready && !node.paused && status.applied_index != node.applied_index {
            let message = format!(
                "node {id} reports applied index {} but handed out entries up to {}",
                status.applied_index, node.applied_index
            );
            self.violation("applied-index", message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_display_in_failure_messages() {
        let mut links = Links::new();
        links.cut(1, 2);
        assert_eq!(links.to_string(), "1x2");
    }
}
