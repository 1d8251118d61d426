//! The scenario harness: one [`Cluster`] on virtual time, its clients, the
//! faults a script injects (recorded as spans), a sample of every node every
//! [`SAMPLE_NS`], and the checks that run after every event.

use std::collections::{BTreeMap, BTreeSet};

use consensus_api::{Core, LogIndex, Membership, NodeId, Role, Ticket};
use consensus_sim::{Cluster, ClusterStats, Links, Stepped};

use super::clients::Client;
use super::record::{FaultSpan, NodeKind, NodeState, Note, OpRecord, Sample, SECOND_NS};

/// Virtual time between two samples of every node (5 ticks).
pub const SAMPLE_NS: u64 = 50_000_000;

/// Timer kinds (low 8 bits of a timer token).
pub(super) const K_SAMPLE: u64 = 1;
pub(super) const K_INVOKE: u64 = 2;
pub(super) const K_DEADLINE: u64 = 3;
pub(super) const K_COMPACT: u64 = 4;

/// Every node takes a snapshot this often by default (as real deployments
/// do every N entries), so logs stay short and laggards may need one.
pub const COMPACT_EVERY_NS: u64 = 1_000_000_000;

pub(super) fn token(kind: u64, client: usize, seq: u64) -> u64 {
    kind | ((client as u64) << 8) | (seq << 24)
}

fn untoken(token: u64) -> (u64, usize, u64) {
    (token & 0xff, ((token >> 8) & 0xffff) as usize, token >> 24)
}

/// What kind of protocol the harness drives, from `Core::PROTOCOL`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Flavor {
    /// The protocol name.
    pub protocol: &'static str,
    /// Classic Paxos: no node is ever `Role::Leader`.
    pub leaderless: bool,
    /// A new leader must already hold every committed entry (Raft's voting
    /// rule, ZAB's leader with the highest zxid after synchronization).
    /// Multi-Paxos may elect a node with a stale log: Phase 1 hands it the
    /// accepted values.
    pub complete_leaders: bool,
}

impl Flavor {
    /// The flavor of the core `C`.
    pub fn of<C: Core>() -> Flavor {
        let protocol = C::PROTOCOL;
        Flavor {
            protocol,
            leaderless: protocol == "paxos",
            complete_leaders: protocol != "paxos" && protocol != "multipaxos",
        }
    }
}

/// Links and stopped nodes from a point in time on (for the rule "a node cut
/// off from a quorum acknowledges nothing").
#[derive(Clone, Debug)]
pub(super) struct Connectivity {
    pub(super) since_ns: u64,
    pub(super) links: Links,
    pub(super) down: BTreeSet<NodeId>,
}

/// A condition checked after every event: `Some(what broke)` on violation.
type WatchFn<C> = Box<dyn FnMut(&Cluster<C>) -> Option<String>>;

/// A condition checked after every event; the first violation is kept.
struct Watch<C: Core> {
    check: WatchFn<C>,
    active: bool,
    first: Option<String>,
}

/// First violations of the checks that run during the run.
#[derive(Clone, Debug, Default)]
pub(super) struct Violations {
    /// An entry applied while fewer than a quorum had it durably.
    pub(super) uncommitted_apply: Option<String>,
    /// A leader without every committed entry.
    pub(super) stale_leader: Option<String>,
    /// A write acknowledged by a node cut off from a quorum.
    pub(super) isolated_ack: Option<String>,
}

/// One scenario run of the core `C`.
pub struct Harness<C: Core> {
    /// The simulated cluster.
    pub cluster: Cluster<C>,
    /// What kind of protocol runs.
    pub flavor: Flavor,
    pub(super) clients: Vec<Client>,
    pub(super) pending: BTreeMap<(NodeId, u64, Ticket), usize>,
    pub(super) held: BTreeMap<NodeId, Vec<usize>>,
    pub(super) next_process: u64,
    pub(super) next_value: i64,
    pub(super) event_seq: u64,
    pub(super) ops: Vec<OpRecord>,
    pub(super) samples: Vec<Sample>,
    pub(super) faults: Vec<FaultSpan>,
    pub(super) notes: Vec<Note>,
    pub(super) violations: Violations,
    pub(super) connectivity: Vec<Connectivity>,
    pub(super) initial_membership: Membership,
    applied_checked: BTreeMap<NodeId, (u64, usize)>,
    verified_leaders: BTreeSet<(u64, NodeId)>,
    watches: Vec<Watch<C>>,
    last_leader: Option<(NodeId, u64)>,
    pub(super) base: Option<(u64, ClusterStats)>,
    /// Nodes removed from the membership by the script (not expected to
    /// catch up).
    pub(super) removed: BTreeSet<NodeId>,
    compact_every_ns: u64,
    /// When the clients were stopped (the summary's window ends there).
    pub(super) clients_stopped_ns: Option<u64>,
}

impl<C: Core> Harness<C> {
    /// A fresh cluster of `nodes` nodes with the seed, byte counting on,
    /// `configure` applied to every node's config.
    pub fn new(
        nodes: usize,
        seed: u64,
        configure: impl Fn(&mut consensus_api::CoreConfig),
    ) -> Self {
        let mut cluster = Cluster::<C>::with_config(nodes, seed, configure);
        cluster.set_panic_on_violation(false);
        cluster.set_record_completions(true);
        cluster.set_count_bytes(true);
        let initial_membership = Membership::new(1..=nodes as NodeId);
        let mut harness = Harness {
            cluster,
            flavor: Flavor::of::<C>(),
            clients: Vec::new(),
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
            next_process: 0,
            next_value: 1,
            event_seq: 0,
            ops: Vec::new(),
            samples: Vec::new(),
            faults: Vec::new(),
            notes: Vec::new(),
            violations: Violations::default(),
            connectivity: Vec::new(),
            initial_membership,
            applied_checked: BTreeMap::new(),
            verified_leaders: BTreeSet::new(),
            watches: Vec::new(),
            last_leader: None,
            base: None,
            removed: BTreeSet::new(),
            compact_every_ns: COMPACT_EVERY_NS,
            clients_stopped_ns: None,
        };
        harness.record_connectivity();
        harness.take_sample();
        harness
            .cluster
            .schedule_timer(SAMPLE_NS, token(K_SAMPLE, 0, 0));
        harness
            .cluster
            .schedule_timer(COMPACT_EVERY_NS, token(K_COMPACT, 0, 0));
        harness
    }

    /// Changes how often every node takes a snapshot (from the next one on).
    pub fn set_compaction(&mut self, every_ns: u64) {
        self.compact_every_ns = every_ns.max(SAMPLE_NS);
    }

    fn compact_all(&mut self) {
        for id in self.cluster.node_ids() {
            if self.cluster.is_alive(id) && !self.cluster.is_paused(id) {
                // Refused when nothing new was applied: fine.
                let _ = self.cluster.compact(id);
            }
        }
        let next = self.now_ns() + self.compact_every_ns;
        self.cluster.schedule_timer(next, token(K_COMPACT, 0, 0));
    }

    // ------------------------------------------------------------------
    // Time
    // ------------------------------------------------------------------

    /// Virtual time now.
    pub fn now_ns(&self) -> u64 {
        self.cluster.now_ns()
    }

    /// Runs every event up to `seconds` of virtual time.
    pub fn run_to(&mut self, seconds: f64) {
        let limit = (seconds * SECOND_NS as f64).round() as u64;
        self.run_until_ns(limit, |_| false);
    }

    /// Runs until `done` holds (checked after every event) or virtual time
    /// reaches `limit_ns`; returns whether it held.
    pub fn run_until_ns(&mut self, limit_ns: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.cluster.failure().is_some() {
                return false;
            }
            match self.cluster.step_event(limit_ns) {
                Stepped::Idle => return done(self),
                Stepped::Timer(token) => self.on_timer(token),
                Stepped::Internal => {}
            }
            self.after_event();
        }
    }

    fn on_timer(&mut self, token: u64) {
        let (kind, client, seq) = untoken(token);
        match kind {
            K_SAMPLE => {
                self.take_sample();
                let next = self.now_ns() + SAMPLE_NS;
                self.cluster.schedule_timer(next, token_sample());
            }
            K_COMPACT => self.compact_all(),
            K_INVOKE => self.invoke(client),
            K_DEADLINE => self.deadline(client, seq as usize),
            _ => {}
        }
    }

    /// After every event: clients learn about crashes and answers, applied
    /// entries are checked, reads are served, watches run.
    pub(super) fn after_event(&mut self) {
        for crashed in self.cluster.take_crashed() {
            self.on_node_crashed(crashed);
        }
        for completion in self.cluster.take_completions() {
            self.on_completion(completion);
        }
        let progressed = self.cluster.take_applied_progress();
        if !progressed.is_empty() {
            self.check_applied(&progressed);
            self.serve_reads(&progressed);
        }
        for watch in self.watches.iter_mut().filter(|w| w.active) {
            if watch.first.is_none() {
                watch.first = (watch.check)(&self.cluster);
            }
        }
    }

    // ------------------------------------------------------------------
    // Watches
    // ------------------------------------------------------------------

    /// Starts checking `check` after every event; returns its handle.
    pub fn watch(&mut self, check: impl FnMut(&Cluster<C>) -> Option<String> + 'static) -> usize {
        self.watches.push(Watch {
            check: Box::new(check),
            active: true,
            first: None,
        });
        self.watches.len() - 1
    }

    /// Stops a watch; returns its first violation, if any.
    pub fn unwatch(&mut self, handle: usize) -> Option<String> {
        let watch = &mut self.watches[handle];
        watch.active = false;
        watch.first.clone()
    }

    // ------------------------------------------------------------------
    // Samples and notes
    // ------------------------------------------------------------------

    /// The state of node `id` now.
    pub fn node_state(&self, id: NodeId) -> NodeState {
        match self.cluster.try_status(id) {
            None => NodeState::CRASHED,
            Some(status) => NodeState {
                kind: if self.cluster.is_paused(id) {
                    NodeKind::Paused(status.role)
                } else {
                    NodeKind::Up(status.role)
                },
                epoch: status.epoch,
                commit: status.commit_index,
                applied: status.applied_index,
            },
        }
    }

    fn take_sample(&mut self) {
        let sample = Sample {
            time_ns: self.now_ns(),
            nodes: self
                .cluster
                .node_ids()
                .into_iter()
                .map(|id| self.node_state(id))
                .collect(),
        };
        let leader = sample.leader();
        if leader != self.last_leader {
            if let Some((id, epoch)) = leader {
                let text = format!(
                    "node {id} becomes leader ({})",
                    super::record::format_epoch(self.flavor.protocol, epoch)
                );
                self.note(text);
            }
            self.last_leader = leader;
        }
        self.samples.push(sample);
        self.check_leader_complete();
    }

    /// Adds a line of commentary at the current time.
    pub fn note(&mut self, text: String) {
        self.notes.push(Note {
            time_ns: self.now_ns(),
            text,
        });
    }

    /// Marks the end of the warm-up: totals count from here.
    pub fn end_warmup(&mut self) {
        self.base = Some((self.now_ns(), self.cluster.stats().clone()));
    }

    // ------------------------------------------------------------------
    // Faults (recorded as spans)
    // ------------------------------------------------------------------

    /// Records the start of a fault; returns its index for [`Self::end_fault`].
    pub fn begin_fault(&mut self, label: String, nodes: Vec<NodeId>) -> usize {
        self.faults.push(FaultSpan {
            label,
            nodes,
            start_ns: self.now_ns(),
            end_ns: None,
        });
        self.record_connectivity();
        self.faults.len() - 1
    }

    /// Records the end of a fault.
    pub fn end_fault(&mut self, fault: usize) {
        if self.faults[fault].end_ns.is_none() {
            self.faults[fault].end_ns = Some(self.now_ns());
        }
        self.record_connectivity();
    }

    /// Crashes a node (a fault span until [`Self::restart`]).
    pub fn crash(&mut self, id: NodeId) -> usize {
        self.cluster.crash(id);
        self.after_event();
        self.begin_fault(format!("node {id} crashed"), vec![id])
    }

    /// Restarts a crashed node and ends its crash span.
    pub fn restart(&mut self, id: NodeId, fault: usize) {
        self.cluster.restart(id);
        self.after_event();
        self.end_fault(fault);
        self.note(format!("node {id} restarts"));
    }

    /// Installs a partition (both ways) between `groups`.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) -> usize {
        let slices: Vec<&[NodeId]> = groups.iter().map(Vec::as_slice).collect();
        self.cluster.partition(&slices);
        let label = groups
            .iter()
            .map(|g| {
                let mut sorted = g.clone();
                sorted.sort_unstable();
                format_set(&sorted)
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let nodes = groups.first().cloned().unwrap_or_default();
        self.begin_fault(format!("partition {label}"), nodes)
    }

    /// Restores every link and ends the link fault `fault`.
    pub fn heal(&mut self, fault: usize) {
        self.cluster.heal();
        self.end_fault(fault);
    }

    /// Pauses a node (a stop-the-world GC).
    pub fn pause(&mut self, id: NodeId) -> usize {
        self.cluster.pause(id);
        self.begin_fault(format!("node {id} paused (GC)"), vec![id])
    }

    /// Resumes a paused node: requests that waited in its socket are handled
    /// first, then its mail; ends the pause span.
    pub fn resume(&mut self, id: NodeId, fault: usize) {
        self.cluster.resume_queued(id);
        self.end_fault(fault);
        self.flush_held(id);
        self.after_event();
    }

    /// The nodes that can reach each other directly, both ways.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        let links = self.cluster.links();
        links.is_up(a, b) && links.is_up(b, a)
    }

    pub(super) fn record_connectivity(&mut self) {
        let down = self
            .cluster
            .node_ids()
            .into_iter()
            .filter(|&n| !self.cluster.is_alive(n) || self.cluster.is_paused(n))
            .collect();
        self.connectivity.push(Connectivity {
            since_ns: self.now_ns(),
            links: self.cluster.links().clone(),
            down,
        });
    }

    // ------------------------------------------------------------------
    // Who is who
    // ------------------------------------------------------------------

    /// The live leader with the highest epoch (leader-based protocols).
    pub fn leader(&self) -> Option<NodeId> {
        self.cluster.leader()
    }

    /// The node of the most recent successful write (classic Paxos' "last
    /// successful proposer"), if any.
    pub fn last_proposer(&self) -> Option<NodeId> {
        self.ops
            .iter()
            .filter(|op| op.is_write() && op.outcome == Some(super::record::Outcome::Ok))
            .max_by_key(|op| op.ended_ns)
            .map(|op| op.node)
    }

    /// Node ids other than `except`, in order.
    pub fn others(&self, except: &[NodeId]) -> Vec<NodeId> {
        self.cluster
            .node_ids()
            .into_iter()
            .filter(|n| !except.contains(n))
            .collect()
    }

    /// The highest commit index of the given nodes (crashed ones count 0).
    pub fn max_commit(&self, nodes: &[NodeId]) -> LogIndex {
        nodes
            .iter()
            .filter_map(|&n| self.cluster.try_status(n))
            .map(|s| s.commit_index)
            .max()
            .unwrap_or(0)
    }

    /// The role of a running node.
    pub fn role(&self, id: NodeId) -> Option<Role> {
        self.cluster.try_status(id).map(|s| s.role)
    }

    // ------------------------------------------------------------------
    // Checks after every event
    // ------------------------------------------------------------------

    /// "A follower never applies an uncommitted entry": every entry a node
    /// applies is, at that moment, durable on a quorum (stored with the
    /// same payload, or covered by a snapshot).
    fn check_applied(&mut self, nodes: &BTreeSet<NodeId>) {
        if self.violations.uncommitted_apply.is_some() {
            return;
        }
        for &id in nodes {
            if !self.cluster.is_alive(id) {
                continue;
            }
            let incarnation = self.cluster.incarnation(id);
            let checked = match self.applied_checked.get(&id) {
                Some(&(seen, count)) if seen == incarnation => count,
                _ => 0,
            };
            let applied = self.cluster.applied(id);
            let membership = self.cluster.status(id).membership;
            for entry in &applied[checked.min(applied.len())..] {
                let holds = |n: NodeId| {
                    let durable = self.cluster.store(n).durable();
                    durable.snapshot_index() >= entry.index
                        || durable
                            .entries
                            .get(&entry.index)
                            .is_some_and(|e| e.payload == entry.payload)
                };
                let holders: Vec<NodeId> = self
                    .cluster
                    .node_ids()
                    .into_iter()
                    .filter(|&n| holds(n))
                    .collect();
                let quorum = |m: &Membership| {
                    let voters = m.all_voters();
                    holders.iter().filter(|n| voters.contains(n)).count() > voters.len() / 2
                };
                if !quorum(&membership) && !quorum(&self.initial_membership) {
                    self.violations.uncommitted_apply = Some(format!(
                        "at {} node {id} applied entry {} while only nodes {} had it on disk (no quorum)",
                        super::record::seconds(self.cluster.now_ns()),
                        entry.index,
                        format_set(&holders)
                    ));
                    return;
                }
            }
            self.applied_checked
                .insert(id, (incarnation, applied.len()));
        }
    }

    /// "A stale log never wins an election": the newest leader holds every
    /// entry applied anywhere so far (checked once per leadership, at the
    /// first sample that shows it).
    fn check_leader_complete(&mut self) {
        if !self.flavor.complete_leaders || self.violations.stale_leader.is_some() {
            return;
        }
        let Some(leader) = self.cluster.leader() else {
            return;
        };
        let epoch = self.cluster.status(leader).epoch;
        if !self.verified_leaders.insert((epoch, leader)) {
            return;
        }
        let store = self.cluster.store(leader);
        let durable = store.durable();
        let snapshot = durable.snapshot_index();
        let mut volatile = None;
        for (index, payload) in self.cluster.committed_log() {
            if index <= snapshot {
                continue;
            }
            let held = durable
                .entries
                .get(&index)
                .is_some_and(|e| e.payload == *payload)
                || volatile
                    .get_or_insert_with(|| store.volatile())
                    .entries
                    .get(&index)
                    .is_some_and(|e| e.payload == *payload);
            if !held {
                self.violations.stale_leader = Some(format!(
                    "at {} node {leader} leads {} without the committed entry {index}",
                    super::record::seconds(self.cluster.now_ns()),
                    super::record::format_epoch(self.flavor.protocol, epoch)
                ));
                return;
            }
        }
    }
}

fn token_sample() -> u64 {
    token(K_SAMPLE, 0, 0)
}

/// `{1,2,3}`.
pub fn format_set(nodes: &[NodeId]) -> String {
    let inner: Vec<String> = nodes.iter().map(NodeId::to_string).collect();
    format!("{{{}}}", inner.join(","))
}
