//! The nemesis: faults scheduled from the seed for a randomized run.
//!
//! One fault at a time: wait a random gap, inject a fault, hold it for a
//! random duration, heal, repeat, until the workload ends. Which faults are
//! drawn depends on [`FaultMode`]:
//!
//! * **partitions**: a majority / minority split (random sides; at even
//!   sizes also an even split, where neither side holds a majority), one node
//!   isolated (often the leader), one-way (asymmetric) cuts around the leader,
//!   random link failures, and the three *partial connectivity* scenarios of
//!   Jensen, Howard and Mortier, "Examining Raft's behaviour during partial
//!   network failures" (HAOC 2021), where links fail without a clean split:
//!   - *quorum-loss*: the leader keeps a link to one node only, which stays
//!     connected to everyone else (a leader without a quorum that still
//!     looks alive to its bridge);
//!   - *constrained-election*: the leader is gone and the most up-to-date
//!     follower (the only one that can win) reaches a bare majority only
//!     through some links, the others are cut from it;
//!   - *chained*: the nodes form a chain `a - b - c - ...`, each linked only
//!     to its neighbours, so `a` and `c` never hear each other directly;
//! * **crashes**: crash one node or a minority (sometimes a majority), often
//!   between a `write` and its `sync`, restart them at heal time;
//! * **clock**: one node's clock runs up to 3x slower or faster for a while
//!   (its timers fire at a skewed rate relative to everyone else's: a slow
//!   leader believes a quorum answered more recently than it did, a fast
//!   follower times out early); a stop-the-world pause during which client
//!   requests wait in the node's socket and after which it resumes at once
//!   with its stale view, answering them before it reads the mail that
//!   queued up ([`Cluster::pause_stale`]); and the case a
//!   leader lease must survive, a leader with a slow clock cut off from
//!   every peer (its clients still reach it). A core that serves reads or
//!   acknowledges anything on an expired belief of leadership (check-quorum
//!   step-down taken as a lease) fails here; see `docs/testing.md`;
//! * **all**: partitions, crashes and clock faults, plus stop-the-world
//!   pauses (resumed with the mail handled first) and bursts of network
//!   loss and duplication;
//! * **all-but-clock**: `all` without the clock faults, which is what `all`
//!   meant before they existed: the seeds recorded under the old `all`
//!   replay bit for bit under this name.

use std::fmt;
use std::str::FromStr;

use consensus_api::{Core, NodeId};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::Cluster;
use crate::network::{Links, NetworkConfig};

/// Which faults a randomized run injects.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum FaultMode {
    /// A healthy network (random delays and reordering only), no crashes.
    #[default]
    None,
    /// Partitions, asymmetric cuts and partial connectivity.
    Partitions,
    /// Crashes and restarts (including crashes between write and sync).
    Crashes,
    /// Clock faults: skewed tick rates, pauses resumed with a stale view, a
    /// slow-clocked leader cut off from its peers.
    Clock,
    /// Everything: partitions, crashes, clock faults, pauses, lossy bursts.
    All,
    /// Everything but the clock faults (the `all` of before clock faults
    /// existed; its seeds replay unchanged).
    AllButClock,
}

impl FaultMode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultMode::None => "none",
            FaultMode::Partitions => "partitions",
            FaultMode::Crashes => "crashes",
            FaultMode::Clock => "clock",
            FaultMode::All => "all",
            FaultMode::AllButClock => "all-but-clock",
        }
    }

    /// Every mode, in the order the command line lists them.
    pub const ALL_MODES: [FaultMode; 6] = [
        FaultMode::None,
        FaultMode::Partitions,
        FaultMode::Crashes,
        FaultMode::Clock,
        FaultMode::All,
        FaultMode::AllButClock,
    ];

    fn partitions(self) -> bool {
        matches!(
            self,
            FaultMode::Partitions | FaultMode::All | FaultMode::AllButClock
        )
    }

    fn crashes(self) -> bool {
        matches!(
            self,
            FaultMode::Crashes | FaultMode::All | FaultMode::AllButClock
        )
    }

    fn clock(self) -> bool {
        matches!(self, FaultMode::Clock | FaultMode::All)
    }

    fn pauses_and_loss(self) -> bool {
        matches!(self, FaultMode::All | FaultMode::AllButClock)
    }

    /// The kinds of fault ([`Fault::kind`]) this mode can inject. A
    /// randomized test that claims to exercise a mode checks that each of
    /// them was injected at least once over its slice
    /// ([`SimReport::fault_kinds`](crate::SimReport::fault_kinds)).
    pub fn fault_kinds(self) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        if self.partitions() {
            kinds.extend([
                "partition",
                "isolate",
                "one-way",
                "random-links",
                "quorum-loss",
                "constrained-election",
                "chained",
            ]);
        }
        if self.crashes() {
            kinds.push("crash");
        }
        if self.clock() {
            kinds.extend(["clock-skew", "stale-pause", "slow-isolated-leader"]);
        }
        if self.pauses_and_loss() {
            kinds.extend(["pause", "lossy-network"]);
        }
        kinds
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown fault mode name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault mode `{0}` (expected none, partitions, crashes, clock, all or all-but-clock)"
)]
pub struct UnknownFaultMode(pub String);

impl FromStr for FaultMode {
    type Err = UnknownFaultMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultMode::None),
            "partitions" => Ok(FaultMode::Partitions),
            "crashes" => Ok(FaultMode::Crashes),
            "clock" => Ok(FaultMode::Clock),
            "all" => Ok(FaultMode::All),
            "all-but-clock" => Ok(FaultMode::AllButClock),
            other => Err(UnknownFaultMode(other.to_owned())),
        }
    }
}

/// One injected fault, as reported.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// A clean split into groups.
    Partition(Vec<Vec<NodeId>>),
    /// Every link of the node cut.
    Isolate(NodeId),
    /// Directed links cut (asymmetric).
    OneWay(Vec<(NodeId, NodeId)>),
    /// Random links cut both ways.
    RandomLinks(Vec<(NodeId, NodeId)>),
    /// Partial connectivity: quorum-loss around the leader.
    QuorumLoss {
        /// The leader (or chosen node) left with one link.
        leader: NodeId,
        /// Its only remaining peer.
        bridge: NodeId,
    },
    /// Partial connectivity: constrained election.
    ConstrainedElection {
        /// The node cut away (usually the leader).
        leader: NodeId,
        /// The most up-to-date follower, reaching only a bare majority.
        candidate: NodeId,
    },
    /// Partial connectivity: a chain of nodes.
    Chained(Vec<NodeId>),
    /// Nodes crashed (the flag: crash armed between write and sync).
    Crash(Vec<(NodeId, bool)>),
    /// A stop-the-world pause.
    Pause(NodeId),
    /// A burst of loss and duplication.
    LossyNetwork,
    /// The node's clock runs at `rate` times the nominal speed.
    ClockSkew {
        /// The node.
        node: NodeId,
        /// Ticks per nominal tick (1/3 to 3).
        rate: f64,
    },
    /// A pause after which the node resumes at once with its stale view
    /// ([`Cluster::resume_stale`]).
    StalePause(NodeId),
    /// The leader's clock runs slow and every link of it is cut (clients
    /// still reach it).
    SlowIsolatedLeader {
        /// The leader (or a random node when there is none).
        node: NodeId,
        /// Its clock rate (below 1).
        rate: f64,
    },
}

impl Eq for Fault {}

impl Fault {
    /// A short name of the fault's kind (`partition`, `crash`,
    /// `clock-skew` ...), as listed by [`FaultMode::fault_kinds`].
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition(_) => "partition",
            Fault::Isolate(_) => "isolate",
            Fault::OneWay(_) => "one-way",
            Fault::RandomLinks(_) => "random-links",
            Fault::QuorumLoss { .. } => "quorum-loss",
            Fault::ConstrainedElection { .. } => "constrained-election",
            Fault::Chained(_) => "chained",
            Fault::Crash(_) => "crash",
            Fault::Pause(_) => "pause",
            Fault::LossyNetwork => "lossy-network",
            Fault::ClockSkew { .. } => "clock-skew",
            Fault::StalePause(_) => "stale-pause",
            Fault::SlowIsolatedLeader { .. } => "slow-isolated-leader",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(groups) => write!(f, "partition {groups:?}"),
            Fault::Isolate(node) => write!(f, "isolate {node}"),
            Fault::OneWay(links) => write!(f, "one-way cuts {links:?}"),
            Fault::RandomLinks(links) => write!(f, "random link cuts {links:?}"),
            Fault::QuorumLoss { leader, bridge } => {
                write!(f, "quorum-loss leader={leader} bridge={bridge}")
            }
            Fault::ConstrainedElection { leader, candidate } => {
                write!(
                    f,
                    "constrained-election leader={leader} candidate={candidate}"
                )
            }
            Fault::Chained(chain) => write!(f, "chained {chain:?}"),
            Fault::Crash(nodes) => write!(f, "crash {nodes:?}"),
            Fault::Pause(node) => write!(f, "pause {node}"),
            Fault::LossyNetwork => write!(f, "lossy network burst"),
            Fault::ClockSkew { node, rate } => write!(f, "clock of {node} at {rate:.2}x"),
            Fault::StalePause(node) => write!(f, "pause {node} (resumes with a stale view)"),
            Fault::SlowIsolatedLeader { node, rate } => {
                write!(f, "isolate {node} with its clock at {rate:.2}x")
            }
        }
    }
}

/// Draws and applies faults on a cluster.
pub(crate) struct Nemesis {
    mode: FaultMode,
    base_network: NetworkConfig,
    pub(crate) injected: Vec<(u64, Fault)>,
    active: bool,
    /// Nodes paused by a stale-pause fault (resumed with
    /// [`Cluster::resume_stale`] at heal time).
    stale_paused: Vec<NodeId>,
}

impl Nemesis {
    pub(crate) fn new(mode: FaultMode, base_network: NetworkConfig) -> Self {
        Nemesis {
            mode,
            base_network,
            injected: Vec::new(),
            active: false,
            stale_paused: Vec::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.mode != FaultMode::None
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// Ticks to wait before the next fault.
    pub(crate) fn gap_ticks<C: Core>(&self, cluster: &mut Cluster<C>) -> u64 {
        cluster.rng().random_range(5..60)
    }

    /// Ticks to hold a fault.
    pub(crate) fn hold_ticks<C: Core>(&self, cluster: &mut Cluster<C>) -> u64 {
        let clock_fault = matches!(
            self.injected.last(),
            Some((_, Fault::StalePause(_) | Fault::SlowIsolatedLeader { .. }))
        );
        let rng = cluster.rng();
        if clock_fault {
            // Long enough for the others to elect a new leader and commit
            // (a few election timeouts), so the stale view has something
            // to be stale about.
            return rng.random_range(40..300);
        }
        if rng.random_bool(0.2) {
            rng.random_range(120..400)
        } else {
            rng.random_range(10..120)
        }
    }

    /// Injects one fault.
    pub(crate) fn inject<C: Core>(&mut self, cluster: &mut Cluster<C>) {
        let mut kinds: Vec<u8> = Vec::new();
        if self.mode.partitions() {
            kinds.extend([0, 0, 1, 1, 2, 3, 4, 5, 6]);
        }
        if self.mode.crashes() {
            kinds.extend([7, 7, 7]);
        }
        if self.mode.pauses_and_loss() {
            kinds.extend([7, 8, 9]);
        }
        if self.mode.clock() {
            kinds.extend([10, 10, 11, 11, 12, 12]);
        }
        if kinds.is_empty() {
            return;
        }
        let kind = kinds[cluster.rng().random_range(0..kinds.len())];
        let fault = match kind {
            0 => self.split(cluster),
            1 => {
                let node = self.leader_or_random(cluster);
                cluster.isolate(node);
                Fault::Isolate(node)
            }
            2 => self.one_way(cluster),
            3 => self.random_links(cluster),
            4 => self.quorum_loss(cluster),
            5 => self.constrained_election(cluster),
            6 => self.chained(cluster),
            7 => self.crash(cluster),
            8 => {
                let node = self.leader_or_random(cluster);
                cluster.pause(node);
                Fault::Pause(node)
            }
            10 => self.clock_skew(cluster),
            11 => {
                let node = self.leader_or_random(cluster);
                cluster.pause_stale(node);
                self.stale_paused.push(node);
                Fault::StalePause(node)
            }
            12 => {
                let node = self.leader_or_random(cluster);
                let rate = cluster.rng().random_range(1.0 / 3.0..0.5);
                cluster.set_clock_rate(node, rate);
                cluster.isolate(node);
                Fault::SlowIsolatedLeader { node, rate }
            }
            _ => {
                let mut lossy = NetworkConfig::faulty();
                lossy.drop_rate = cluster.rng().random_range(0.05..0.3);
                lossy.duplicate_rate = cluster.rng().random_range(0.0..0.1);
                lossy.long_delay_rate = cluster.rng().random_range(0.0..0.1);
                cluster.set_network(lossy);
                Fault::LossyNetwork
            }
        };
        tracing::debug!(tick = cluster.now_ticks(), %fault, "nemesis: inject");
        self.injected.push((cluster.now_ticks(), fault));
        self.active = true;
    }

    /// Ends every fault: links healed, crashed nodes restarted, paused nodes
    /// resumed, the base network restored.
    pub(crate) fn heal<C: Core>(&mut self, cluster: &mut Cluster<C>) {
        tracing::debug!(tick = cluster.now_ticks(), "nemesis: heal");
        cluster.heal();
        cluster.set_network(self.base_network.clone());
        for id in std::mem::take(&mut self.stale_paused) {
            cluster.resume_stale(id);
        }
        for id in cluster.node_ids() {
            if cluster.clock_rate(id) != 1.0 {
                cluster.set_clock_rate(id, 1.0);
            }
            if cluster.crash_armed(id) {
                cluster.crash(id);
            }
            if !cluster.is_alive(id) {
                cluster.restart(id);
            }
            if cluster.is_paused(id) {
                cluster.resume(id);
            }
        }
        self.active = false;
    }

    fn leader_or_random<C: Core>(&self, cluster: &mut Cluster<C>) -> NodeId {
        let ids = cluster.node_ids();
        match cluster.leader() {
            Some(leader) if cluster.rng().random_bool(0.7) => leader,
            _ => ids[cluster.rng().random_range(0..ids.len())],
        }
    }

    fn shuffled<C: Core>(cluster: &mut Cluster<C>) -> Vec<NodeId> {
        let mut ids = cluster.node_ids();
        ids.shuffle(cluster.rng());
        ids
    }

    fn split<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let ids = Self::shuffled(cluster);
        let n = ids.len();
        // At most half the nodes on the small side: at an even size that
        // includes the even split (2 | 2, 3 | 3), where neither side holds a
        // majority and an off-by-one quorum lets both elect and commit. At
        // odd sizes `n / 2 == (n - 1) / 2`, so their runs are unchanged.
        let minority = if n <= 1 {
            0
        } else {
            cluster.rng().random_range(1..=n / 2).max(1)
        };
        let (small, large) = ids.split_at(minority.min(n));
        let mut groups = vec![small.to_vec(), large.to_vec()];
        for group in &mut groups {
            group.sort_unstable();
        }
        let refs: Vec<&[NodeId]> = groups.iter().map(Vec::as_slice).collect();
        cluster.partition(&refs);
        Fault::Partition(groups)
    }

    /// One node's clock runs between 3x slower and 3x faster (log-uniform).
    /// A leader is more often slowed (its check-quorum timer then trusts
    /// old answers), a follower more often sped up (it times out early).
    fn clock_skew<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let node = self.leader_or_random(cluster);
        let is_leader = cluster.leader() == Some(node);
        let slow = cluster
            .rng()
            .random_bool(if is_leader { 0.75 } else { 0.25 });
        let factor = 3.0_f64.powf(cluster.rng().random_range(0.2..=1.0));
        let rate = if slow { 1.0 / factor } else { factor };
        cluster.set_clock_rate(node, rate);
        Fault::ClockSkew { node, rate }
    }

    fn one_way<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let center = self.leader_or_random(cluster);
        let outbound = cluster.rng().random_bool(0.5);
        let mut cuts = Vec::new();
        for other in cluster.node_ids() {
            if other != center && cluster.rng().random_bool(0.6) {
                let link = if outbound {
                    (center, other)
                } else {
                    (other, center)
                };
                cluster.cut_one_way(link.0, link.1);
                cuts.push(link);
            }
        }
        Fault::OneWay(cuts)
    }

    fn random_links<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let ids = cluster.node_ids();
        let mut cuts = Vec::new();
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                if cluster.rng().random_bool(0.3) {
                    cluster.cut(a, b);
                    cuts.push((a, b));
                }
            }
        }
        Fault::RandomLinks(cuts)
    }

    fn quorum_loss<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let leader = self.leader_or_random(cluster);
        let others: Vec<NodeId> = cluster
            .node_ids()
            .into_iter()
            .filter(|&n| n != leader)
            .collect();
        if others.is_empty() {
            return Fault::QuorumLoss {
                leader,
                bridge: leader,
            };
        }
        let bridge = others[cluster.rng().random_range(0..others.len())];
        cluster.quorum_loss(leader, bridge);
        Fault::QuorumLoss { leader, bridge }
    }

    fn constrained_election<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let ids = cluster.node_ids();
        let leader = cluster.leader().unwrap_or(ids[0]);
        // The most up-to-date follower: the only one that can win.
        let candidate = ids
            .iter()
            .copied()
            .filter(|&n| n != leader && cluster.is_alive(n))
            .max_by_key(|&n| (cluster.try_status(n).map_or(0, |s| s.last_index), n))
            .unwrap_or(leader);
        let mut links = Links::new();
        for &other in &ids {
            links.cut(leader, other);
        }
        // The candidate reaches exactly a bare majority (itself included);
        // the rest stay fully connected among themselves.
        let majority = ids.len() / 2 + 1;
        let mut peers: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|&n| n != leader && n != candidate)
            .collect();
        peers.shuffle(cluster.rng());
        for (i, &peer) in peers.iter().enumerate() {
            if i + 1 >= majority {
                links.cut(candidate, peer);
            }
        }
        cluster.set_links(links);
        Fault::ConstrainedElection { leader, candidate }
    }

    fn chained<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let chain = Self::shuffled(cluster);
        cluster.heal();
        cluster.chain(&chain);
        Fault::Chained(chain)
    }

    fn crash<C: Core>(&self, cluster: &mut Cluster<C>) -> Fault {
        let ids = Self::shuffled(cluster);
        let n = ids.len();
        let count = if cluster.rng().random_bool(0.1) {
            n / 2 + 1
        } else {
            cluster
                .rng()
                .random_range(1..=(n.saturating_sub(1) / 2).max(1))
        };
        let mut crashed = Vec::new();
        for &id in ids.iter().take(count.min(n)) {
            let torn = cluster.rng().random_bool(0.5);
            if torn {
                cluster.crash_during_next_write(id);
            } else {
                cluster.crash(id);
            }
            crashed.push((id, torn));
        }
        Fault::Crash(crashed)
    }
}
