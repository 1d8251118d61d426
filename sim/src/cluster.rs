//! [`Cluster`]: a set of nodes running one [`Core`] type, driven by virtual
//! time over a seeded faulty network, with invariants checked after every
//! event.
//!
//! The driver loop per node is exactly the contract of `consensus-api`: after
//! each input, `core.ready()` → `store.write` + `sync` (or a simulated crash
//! in between) → restore the state machine from `ready.snapshot` → hand
//! `messages` to the network → apply `committed` → record `completed`.

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
    /// Entries applied, over all nodes.
    pub entries_applied: u64,
    /// Distinct (epoch, leader) pairs seen.
    pub leaders_elected: u64,
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
    crash_armed: bool,
    ticks: u64,
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
            paused_inbox: Vec::new(),
            applied: Vec::new(),
            applied_index: 0,
            responses: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            tick_period_ns: tick_period_ns.max(1),
            commit_seen: 0,
            epoch_seen: 0,
            crash_armed: false,
            ticks: 0,
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
        if !self.defer_ready && status.applied_index != node.applied_index {
            let message = format!(
                "node {id} reports applied index {} but handed out entries up to {}",
                status.applied_index, node.applied_index
            );
            self.violation("applied-index", message);
        }
    }

    // ------------------------------------------------------------------
    // The event loop
    // ------------------------------------------------------------------

    fn schedule(&mut self, at_ns: u64, event: Event<C::Message>) {
        self.next_seq += 1;
        self.queue.insert((at_ns, self.next_seq), event);
    }

    /// Schedules [`Stepped::Timer`]`(token)` at virtual time `at_ns`.
    pub fn schedule_timer(&mut self, at_ns: u64, token: u64) {
        self.schedule(at_ns.max(self.now_ns), Event::Timer(token));
    }

    /// Time of the next scheduled event.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Processes the next event if it is due at or before `limit_ns`;
    /// otherwise moves the clock to `limit_ns` and returns
    /// [`Stepped::Idle`]. Does nothing once a violation is recorded.
    pub fn step_event(&mut self, limit_ns: u64) -> Stepped {
        if self.failure.is_some() {
            return Stepped::Idle;
        }
        let due = matches!(self.queue.keys().next(), Some((at, _)) if *at <= limit_ns);
        if !due {
            self.now_ns = self.now_ns.max(limit_ns);
            return Stepped::Idle;
        }
        let ((at, _), event) = self.queue.pop_first().expect("checked non-empty");
        self.now_ns = self.now_ns.max(at);
        self.stats.events += 1;
        match event {
            Event::Timer(token) => return Stepped::Timer(token),
            Event::Tick(id) => self.on_tick_event(id),
            Event::Deliver { from, to, message } => self.on_deliver(from, to, message),
        }
        if self.failure.is_none() && !self.invariants.is_empty() {
            self.run_invariants();
        }
        Stepped::Internal
    }

    /// Advances virtual time by `ticks` nominal ticks, processing every
    /// event due meanwhile (each node ticks about `ticks` times).
    pub fn run_ticks(&mut self, ticks: u64) {
        let limit = self.now_ns + ticks * self.tick_ns;
        self.run_to(limit, &mut |_| false);
    }

    /// Runs until `done(self)` holds (checked before the first and after
    /// every event) or `max_ticks` ticks passed; returns whether it held.
    pub fn run_until(&mut self, max_ticks: u64, mut done: impl FnMut(&Cluster<C>) -> bool) -> bool {
        let limit = self.now_ns + max_ticks * self.tick_ns;
        if done(self) {
            return true;
        }
        self.run_to(limit, &mut done)
    }

    fn run_to(&mut self, limit_ns: u64, done: &mut dyn FnMut(&Cluster<C>) -> bool) -> bool {
        loop {
            match self.step_event(limit_ns) {
                Stepped::Idle => return done(self),
                Stepped::Internal | Stepped::Timer(_) => {
                    if done(self) {
                        return true;
                    }
                }
            }
            if self.failure.is_some() {
                return false;
            }
        }
    }

    fn on_tick_event(&mut self, id: NodeId) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        let jitter = self
            .rng
            .random_range(0..=self.nodes[index].tick_period_ns / 50);
        let next = self.now_ns + self.nodes[index].tick_period_ns + jitter;
        self.schedule(next, Event::Tick(id));
        let node = &mut self.nodes[index];
        if node.paused {
            return;
        }
        if let Some(core) = node.core.as_mut() {
            core.tick();
            node.ticks += 1;
            self.after_input(index);
        }
    }

    /// Ticks one node once, now (manual mode and scripted tests).
    pub fn tick_node(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        if node.paused {
            return;
        }
        if let Some(core) = node.core.as_mut() {
            core.tick();
            node.ticks += 1;
            self.after_input(index);
            if self.failure.is_none() && !self.invariants.is_empty() {
                self.run_invariants();
            }
        }
    }

    fn on_deliver(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        if !self.links.is_up(from, to) {
            self.stats.messages_cut += 1;
            return;
        }
        let Some(index) = self.index_of(to) else {
            self.stats.messages_cut += 1;
            return;
        };
        let node = &mut self.nodes[index];
        if node.paused {
            node.paused_inbox.push((from, message));
            return;
        }
        let Some(core) = node.core.as_mut() else {
            self.stats.messages_cut += 1;
            return;
        };
        core.step(from, message);
        self.stats.messages_delivered += 1;
        self.after_input(index);
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        self.stats.messages_sent += 1;
        if self.manual {
            self.in_flight.push_back(InFlight { from, to, message });
            return;
        }
        self.send_unchecked(from, to, message);
    }

    /// Puts a message on the simulated wire (drop, duplication, delay).
    fn send_unchecked(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        if self.network.drop_rate > 0.0 && self.rng.random_bool(self.network.drop_rate) {
            self.stats.messages_dropped += 1;
            return;
        }
        if self.network.duplicate_rate > 0.0 && self.rng.random_bool(self.network.duplicate_rate) {
            self.stats.messages_duplicated += 1;
            let delay = self.draw_delay_ns();
            self.schedule(
                self.now_ns + delay,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
        let delay = self.draw_delay_ns();
        self.schedule(self.now_ns + delay, Event::Deliver { from, to, message });
    }

    fn draw_delay_ns(&mut self) -> u64 {
        let config = &self.network;
        let mut ticks = if config.delay_ticks_max > config.delay_ticks_min {
            self.rng
                .random_range(config.delay_ticks_min..config.delay_ticks_max)
        } else {
            config.delay_ticks_min
        };
        if config.long_delay_rate > 0.0
            && config.long_delay_ticks > 0.0
            && self.rng.random_bool(config.long_delay_rate)
        {
            ticks += self.rng.random_range(0.0..config.long_delay_ticks);
        }
        ((ticks * self.tick_ns as f64) as u64).max(1)
    }

    /// Delivers (or drops) in-flight messages of manual mode: `decide` sees
    /// each message in send order and returns `Some(true)` to deliver it,
    /// `Some(false)` to drop it, `None` to leave it in flight. Returns the
    /// delivered and dropped messages. Messages sent while delivering stay
    /// in flight.
    pub fn deliver_where(
        &mut self,
        mut decide: impl FnMut(&InFlight<C::Message>) -> Option<bool>,
    ) -> Delivered<C::Message> {
        let batch = std::mem::take(&mut self.in_flight);
        let mut keep = VecDeque::new();
        let mut delivered = Vec::new();
        let mut dropped = Vec::new();
        let mut to_deliver = Vec::new();
        for message in batch {
            match decide(&message) {
                Some(true) => to_deliver.push(message),
                Some(false) => dropped.push(message),
                None => keep.push_back(message),
            }
        }
        self.in_flight = keep;
        for message in to_deliver {
            delivered.push(message.clone());
            self.stats.events += 1;
            self.on_deliver(message.from, message.to, message.message);
            if self.failure.is_none() && !self.invariants.is_empty() {
                self.run_invariants();
            }
        }
        (delivered, dropped)
    }

    // ------------------------------------------------------------------
    // The driver: Ready handling
    // ------------------------------------------------------------------

    fn after_input(&mut self, index: usize) {
        if !self.defer_ready {
            self.drain_ready(index);
        }
        self.check_node(index);
    }

    /// Processes every pending `Ready` of the node (also used after
    /// [`Cluster::core_mut`] and in deferred-ready mode). Returns the
    /// batches handled.
    pub fn process_ready(&mut self, id: NodeId) -> Vec<Ready<C::Message>> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let handled = self.drain_ready_collect(index, true);
        self.check_node(index);
        handled
    }

    fn drain_ready(&mut self, index: usize) {
        self.drain_ready_collect(index, false);
    }

    fn drain_ready_collect(&mut self, index: usize, keep: bool) -> Vec<Ready<C::Message>> {
        let mut handled = Vec::new();
        for _ in 0..10_000 {
            if self.failure.is_some() {
                break;
            }
            let Some(core) = self.nodes[index].core.as_mut() else {
                break;
            };
            let Some(ready) = core.ready() else { break };
            let copy = keep.then(|| ready.clone());
            let crashed = self.handle_ready(index, ready);
            if let Some(copy) = copy {
                handled.push(copy);
            }
            if crashed {
                break;
            }
        }
        handled
    }

    /// Handles one batch; returns true if the node crashed in the middle.
    fn handle_ready(&mut self, index: usize, ready: Ready<C::Message>) -> bool {
        self.stats.readies += 1;
        let id = self.nodes[index].id;
        let has_writes = ready.has_writes();
        if has_writes && !ready.must_sync {
            self.violation(
                "ready-contract",
                format!(
                    "node {id}: Ready #{} changes durable state but must_sync is false",
                    ready.number
                ),
            );
            return false;
        }
        // 1. Persist.
        if has_writes {
            if let Err(error) = self.nodes[index].store.write(&ready.write_batch()) {
                self.violation(
                    "storage",
                    format!(
                        "node {id}: the store refused Ready #{}: {error}",
                        ready.number
                    ),
                );
                return false;
            }
            if self.nodes[index].crash_armed {
                // Crash between write and sync: any prefix of the unsynced
                // batches may have reached the disk.
                let unsynced = self.nodes[index].store.unsynced_batches();
                let keep = self.rng.random_range(0..=unsynced);
                self.stats.torn_crashes += 1;
                self.crash_with(id, keep);
                return true;
            }
        }
        if ready.must_sync {
            if let Err(error) = self.nodes[index].store.sync() {
                self.violation("storage", format!("node {id}: sync failed: {error}"));
                return false;
            }
        }
        // 2. Restore the state machine from a received snapshot.
        if let Some(snapshot) = &ready.snapshot {
            let node = &mut self.nodes[index];
            if snapshot.index < node.applied_index {
                let message = format!(
                    "node {id} installs a snapshot at {} below its applied index {}",
                    snapshot.index, node.applied_index
                );
                self.violation("snapshot", message);
                return false;
            }
            if let Err(error) = node.sm.restore(snapshot.index, &snapshot.data) {
                self.violation(
                    "snapshot",
                    format!(
                        "node {id}: snapshot at {} does not restore: {error}",
                        snapshot.index
                    ),
                );
                return false;
            }
            node.applied_index = snapshot.index;
            node.responses.clear();
            self.stats.snapshots_installed += 1;
            if let Some((data, taker)) = self.snapshot_digests.get(&snapshot.index) {
                if *data != snapshot.data {
                    let message = format!(
                        "node {id} installed a snapshot at {} that differs from the one node {taker} took there",
                        snapshot.index
                    );
                    self.violation("snapshot", message);
                    return false;
                }
            }
            self.applied_progress.insert(id);
        }
        // 3. Send.
        for (to, message) in ready.messages {
            self.send(id, to, message);
        }
        // 4. Apply.
        for entry in ready.committed {
            if !self.apply_entry(index, entry) {
                return false;
            }
        }
        // 5. Finish tickets.
        let incarnation = self.nodes[index].incarnation;
        for (ticket, result) in ready.completed {
            let response = match &result {
                Ok(at) => self.nodes[index].responses.get(at).cloned(),
                Err(_) => None,
            };
            self.nodes[index].outcomes.insert(ticket, result.clone());
            self.finish_kv(id, incarnation, ticket, &result, response.as_ref());
            if self.record_completions {
                self.completions.push(Completion {
                    node: id,
                    incarnation,
                    ticket,
                    result,
                    response,
                });
            }
        }
        false
    }

    fn apply_entry(&mut self, index: usize, entry: Entry) -> bool {
        let id = self.nodes[index].id;
        let expected = self.nodes[index].applied_index + 1;
        if entry.index != expected {
            let message = format!(
                "node {id} was handed committed entry {} but its next index to apply is {expected}",
                entry.index
            );
            self.violation("applied-contiguous", message);
            return false;
        }
        match self.log.get(&entry.index) {
            Some((payload, first)) if *payload != entry.payload => {
                let message = format!(
                    "node {id} applied [{}] at index {} but node {first} applied [{}] there",
                    describe_payload(&entry.payload),
                    entry.index,
                    describe_payload(payload)
                );
                self.violation("agreement", message);
                return false;
            }
            Some(_) => {}
            None => {
                self.log.insert(entry.index, (entry.payload.clone(), id));
            }
        }
        let node = &mut self.nodes[index];
        if let Payload::Command(command) = &entry.payload {
            let response = node.sm.apply(entry.index, command);
            node.responses.insert(entry.index, response);
            if node.responses.len() as u64 > RESPONSES_KEPT {
                node.responses.pop_first();
            }
        }
        node.applied_index = entry.index;
        node.applied.push(entry);
        self.stats.entries_applied += 1;
        self.applied_progress.insert(id);
        self.resolve_kv_reads(id);
        true
    }

    // ------------------------------------------------------------------
    // Faults
    // ------------------------------------------------------------------

    fn start_node(&mut self, id: NodeId) {
        let index = self.index_of(id).expect("node exists");
        let state = match self.nodes[index].store.load() {
            Ok(state) => state,
            Err(error) => {
                self.violation(
                    "restart",
                    format!("node {id}: the store does not load: {error}"),
                );
                return;
            }
        };
        let mut sm = Sessions::new(KvStore::new(), SESSION_CAPACITY);
        let mut applied_index = 0;
        if let Some(snapshot) = &state.snapshot {
            if let Err(error) = sm.restore(snapshot.index, &snapshot.data) {
                self.violation(
                    "restart",
                    format!("node {id}: stored snapshot does not restore: {error}"),
                );
                return;
            }
            applied_index = snapshot.index;
        }
        let config = self.nodes[index].config.clone();
        let core = match C::restore(config, state) {
            Ok(core) => core,
            Err(error) => {
                self.violation(
                    "restart",
                    format!("node {id}: Core::restore failed: {error}"),
                );
                return;
            }
        };
        let node = &mut self.nodes[index];
        node.core = Some(core);
        node.sm = sm;
        node.applied.clear();
        node.applied_index = applied_index;
        node.responses.clear();
        node.outcomes.clear();
        node.commit_seen = 0;
        node.epoch_seen = 0;
        node.paused = false;
        node.crash_armed = false;
        self.applied_progress.insert(id);
        self.after_input(index);
    }

    /// Crashes the node: its core and state machine are gone, its store
    /// keeps only synced data, messages to it are lost until it restarts.
    pub fn crash(&mut self, id: NodeId) {
        self.crash_with(id, 0);
    }

    /// Arms a crash of the node at its next durable write, between the
    /// `write` and the `sync` (a random prefix of the unsynced batches
    /// survives). Crashes at once if the node has nothing to write before
    /// `crash_now_if_idle` is called; see [`Cluster::crash`].
    pub fn crash_during_next_write(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            self.node_mut(id).crash_armed = true;
        }
    }

    /// True when a crash is armed for the node's next write.
    pub fn crash_armed(&self, id: NodeId) -> bool {
        self.node(id).crash_armed
    }

    fn crash_with(&mut self, id: NodeId, keep_unsynced: usize) {
        let node = self.node_mut(id);
        if node.core.is_none() {
            return;
        }
        node.core = None;
        node.store.crash_keeping(keep_unsynced);
        node.paused = false;
        node.paused_inbox.clear();
        node.outcomes.clear();
        node.responses.clear();
        node.crash_armed = false;
        self.stats.crashes += 1;
        self.crashed_events.push(id);
        self.kv_pending.retain(|(node, _, _), _| *node != id);
    }

    /// Restarts a crashed node: the core is rebuilt with [`Core::restore`]
    /// from what its store synced; the state machine from the stored
    /// snapshot. Does nothing if the node runs.
    pub fn restart(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            return;
        }
        let seed = self.rng.random();
        let node = self.node_mut(id);
        node.incarnation += 1;
        node.config.seed = seed;
        self.stats.restarts += 1;
        self.start_node(id);
    }

    /// A stop-the-world pause (GC, VM migration): no ticks, no message
    /// handling; messages queue until [`Cluster::resume`].
    pub fn pause(&mut self, id: NodeId) {
        if self.node(id).core.is_some() {
            self.node_mut(id).paused = true;
        }
    }

    /// Ends a pause: queued messages are handled now, in arrival order.
    pub fn resume(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        if !self.nodes[index].paused {
            return;
        }
        self.nodes[index].paused = false;
        let inbox = std::mem::take(&mut self.nodes[index].paused_inbox);
        for (from, message) in inbox {
            if self.failure.is_some() {
                return;
            }
            self.on_deliver(from, id, message);
        }
    }

    /// Splits the cluster: links inside each group are up, links between
    /// groups (and of nodes in no group) are cut both ways.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let ids = self.node_ids();
        self.links.partition(&ids, groups);
    }

    /// Cuts every link of `id`, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        for other in self.node_ids() {
            self.links.cut(id, other);
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.links.cut(a, b);
    }

    /// Cuts `from -> to` only (asymmetric partition).
    pub fn cut_one_way(&mut self, from: NodeId, to: NodeId) {
        self.links.cut_one_way(from, to);
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.links.heal();
    }

    /// Replaces the link table.
    pub fn set_links(&mut self, links: Links) {
        self.links = links;
    }

    /// Snapshots the node's state machine at its applied index
    /// (`core.compact`, then `store.save_snapshot`). Returns the snapshot
    /// index, or the core's refusal.
    pub fn compact(&mut self, id: NodeId) -> Result<LogIndex, Rejected> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        let Some(core) = node.core.as_mut() else {
            return Err(Rejected::Unavailable);
        };
        let applied = node.applied_index;
        let data = node.sm.snapshot();
        let snapshot = core.compact(applied, data.clone())?;
        if snapshot.index != applied || snapshot.data != data {
            let message = format!(
                "node {id}: compact({applied}) returned a snapshot at {} with other data",
                snapshot.index
            );
            self.violation("compact", message);
            return Err(Rejected::InvalidCompaction {
                index: applied,
                applied,
                snapshot: snapshot.index,
            });
        }
        if let Err(error) = node.store.save_snapshot(&snapshot) {
            self.violation(
                "storage",
                format!("node {id}: save_snapshot failed: {error}"),
            );
            return Err(Rejected::Unavailable);
        }
        self.stats.compactions += 1;
        match self.snapshot_digests.get(&applied) {
            Some((other, taker)) if *other != snapshot.data => {
                let message = format!(
                    "node {id}'s state at index {applied} differs from node {taker}'s state there"
                );
                self.violation("agreement", message);
            }
            Some(_) => {}
            None => {
                self.snapshot_digests
                    .insert(applied, (snapshot.data.clone(), id));
            }
        }
        self.after_input(index);
        Ok(applied)
    }

    // ------------------------------------------------------------------
    // Client requests
    // ------------------------------------------------------------------

    fn with_live_core<T>(
        &mut self,
        id: NodeId,
        call: impl FnOnce(&mut C) -> Result<T, Rejected>,
    ) -> Result<T, Rejected> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        if node.paused {
            return Err(Rejected::Unavailable);
        }
        let Some(core) = node.core.as_mut() else {
            return Err(Rejected::Unavailable);
        };
        let result = call(core);
        self.after_input(index);
        if self.failure.is_none() && !self.invariants.is_empty() {
            self.run_invariants();
        }
        result
    }

    /// Proposes a raw command at the node (crashed or paused nodes answer
    /// [`Rejected::Unavailable`]). The command is applied to the
    /// session-wrapped key-value machine, which answers malformed commands
    /// with an error response, so any bytes may be proposed.
    pub fn propose(&mut self, id: NodeId, command: Bytes) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.propose(command))
    }

    /// Asks the node for a read barrier.
    pub fn read_barrier(&mut self, id: NodeId) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.read_barrier())
    }

    /// Asks the node to change the membership.
    pub fn change_membership(&mut self, id: NodeId, to: Membership) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.change_membership(to))
    }

    /// Asks the node to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, id: NodeId, to: NodeId) -> Result<(), Rejected> {
        self.with_live_core(id, |core| core.transfer_leadership(to))
    }

    fn next_kv_command(&mut self, command: KvCommand) -> Bytes {
        self.kv_sequence += 1;
        SessionCommand {
            client: self.kv_client,
            sequence: self.kv_sequence,
            body: command.encode(),
        }
        .encode()
    }

    /// Writes `value` to `key` through the node (a session-wrapped command
    /// of the cluster's own client). Follow it with [`Cluster::kv_outcome`].
    pub fn write(&mut self, id: NodeId, key: &str, value: i64) -> Result<Ticket, Rejected> {
        let command = self.next_kv_command(KvCommand::Write {
            key: key.to_owned(),
            value,
        });
        let ticket = self.propose(id, command)?;
        self.track_kv(id, ticket, PendingKv::Command);
        Ok(ticket)
    }

    /// Compare-and-set through the node.
    pub fn cas(
        &mut self,
        id: NodeId,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<Ticket, Rejected> {
        let command = self.next_kv_command(KvCommand::Cas {
            key: key.to_owned(),
            expected,
            new,
        });
        let ticket = self.propose(id, command)?;
        self.track_kv(id, ticket, PendingKv::Command);
        Ok(ticket)
    }

    /// A linearizable read of `key` through the node: a read barrier, then
    /// a local query once the node applied the barrier index.
    pub fn read(&mut self, id: NodeId, key: &str) -> Result<Ticket, Rejected> {
        let ticket = self.read_barrier(id)?;
        self.track_kv(
            id,
            ticket,
            PendingKv::Read {
                key: key.to_owned(),
                at: None,
            },
        );
        Ok(ticket)
    }

    fn track_kv(&mut self, id: NodeId, ticket: Ticket, pending: PendingKv) {
        let incarnation = self.node(id).incarnation;
        // The ticket may have finished inside the call already.
        if let Some(result) = self.node(id).outcomes.get(&ticket).cloned() {
            let response = match &result {
                Ok(at) => self.node(id).responses.get(at).cloned(),
                Err(_) => None,
            };
            self.kv_pending.insert((id, incarnation, ticket), pending);
            self.finish_kv(id, incarnation, ticket, &result, response.as_ref());
        } else {
            self.kv_pending.insert((id, incarnation, ticket), pending);
        }
    }

    fn finish_kv(
        &mut self,
        id: NodeId,
        incarnation: u64,
        ticket: Ticket,
        result: &Result<LogIndex, Rejected>,
        response: Option<&Bytes>,
    ) {
        let key = (id, incarnation, ticket);
        let Some(pending) = self.kv_pending.get_mut(&key) else {
            return;
        };
        let outcome = match (pending, result) {
            (_, Err(rejected)) => Some(Err(OpError::Rejected(rejected.clone()))),
            (PendingKv::Command, Ok(_)) => Some(match response {
                Some(bytes) => match Sessions::<KvStore>::decode_response(bytes) {
                    Ok(body) => Ok(KvResponse::decode(&body)),
                    Err(error) => Err(OpError::Session(error)),
                },
                None => Err(OpError::ResponseLost),
            }),
            (PendingKv::Read { at, .. }, Ok(index)) => {
                *at = Some(*index);
                None
            }
        };
        let Some(outcome) = outcome else {
            self.resolve_kv_reads(id);
            return;
        };
        self.kv_pending.remove(&key);
        self.kv_done.insert((id, ticket), outcome);
    }

    fn resolve_kv_reads(&mut self, id: NodeId) {
        if self.kv_pending.is_empty() {
            return;
        }
        let incarnation = self.node(id).incarnation;
        let applied = self.node(id).applied_index;
        let ready: Vec<((NodeId, u64, Ticket), String)> = self
            .kv_pending
            .iter()
            .filter_map(|(key, pending)| match pending {
                PendingKv::Read {
                    key: register,
                    at: Some(at),
                } if key.0 == id && key.1 == incarnation && *at <= applied => {
                    Some((*key, register.clone()))
                }
                _ => None,
            })
            .collect();
        for (key, register) in ready {
            self.kv_pending.remove(&key);
            let answer = KvResponse::decode(&self.node(id).sm.query(&encode_read(&register)));
            self.kv_done.insert((key.0, key.2), Ok(answer));
        }
    }

    /// The result of a [`Cluster::write`] / [`Cluster::cas`] /
    /// [`Cluster::read`] once known.
    pub fn kv_outcome(&self, id: NodeId, ticket: Ticket) -> Option<&KvOutcome> {
        self.kv_done.get(&(id, ticket))
    }

    /// Writes through the node and runs until the result is known or
    /// `max_ticks` passed ([`OpError::Timeout`]).
    pub fn write_sync(&mut self, id: NodeId, key: &str, value: i64, max_ticks: u64) -> KvOutcome {
        let ticket = self.write(id, key, value).map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    /// Compare-and-set through the node, waiting for the result.
    pub fn cas_sync(
        &mut self,
        id: NodeId,
        key: &str,
        expected: i64,
        new: i64,
        max_ticks: u64,
    ) -> KvOutcome {
        let ticket = self
            .cas(id, key, expected, new)
            .map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    /// Linearizable read through the node, waiting for the result.
    pub fn read_sync(&mut self, id: NodeId, key: &str, max_ticks: u64) -> KvOutcome {
        let ticket = self.read(id, key).map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    fn wait_kv(&mut self, id: NodeId, ticket: Ticket, max_ticks: u64) -> KvOutcome {
        self.run_until(max_ticks, |c| c.kv_done.contains_key(&(id, ticket)));
        self.kv_done
            .remove(&(id, ticket))
            .unwrap_or(Err(OpError::Timeout))
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
