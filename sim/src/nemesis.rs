//! The nemesis: faults scheduled from the seed for a randomized run.
//!
//! One fault at a time: wait a random gap, inject a fault, hold it for a
//! random duration, heal, repeat, until the workload ends. Which faults are
//! drawn depends on [`FaultMode`]:
//!
//! * **partitions**: a majority / minority split (random sides), one node
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
//! * **all**: both, plus stop-the-world pauses (GC) and bursts of network
//!   loss and duplication.

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
    /// Everything: partitions, crashes, pauses, lossy bursts.
    All,
}

impl FaultMode {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultMode::None => "none",
            FaultMode::Partitions => "partitions",
            FaultMode::Crashes => "crashes",
            FaultMode::All => "all",
        }
    }

    fn partitions(self) -> bool {
        matches!(self, FaultMode::Partitions | FaultMode::All)
    }

    fn crashes(self) -> bool {
        matches!(self, FaultMode::Crashes | FaultMode::All)
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown fault mode name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault mode `{0}` (expected none, partitions, crashes or all)")]
pub struct UnknownFaultMode(pub String);

impl FromStr for FaultMode {
    type Err = UnknownFaultMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FaultMode::None),
            "partitions" => Ok(FaultMode::Partitions),
            "crashes" => Ok(FaultMode::Crashes),
            "all" => Ok(FaultMode::All),
            other => Err(UnknownFaultMode(other.to_owned())),
        }
    }
}

/// One injected fault, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        }
    }
}

/// Draws and applies faults on a cluster.
pub(crate) struct Nemesis {
    mode: FaultMode,
    base_network: NetworkConfig,
    pub(crate) injected: Vec<(u64, Fault)>,
    active: bool,
}

impl Nemesis {
    pub(crate) fn new(mode: FaultMode, base_network: NetworkConfig) -> Self {
        Nemesis {
            mode,
            base_network,
            injected: Vec::new(),
            active: false,
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
        let rng = cluster.rng();
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
        if self.mode == FaultMode::All {
            kinds.extend([7, 8, 9]);
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
        for id in cluster.node_ids() {
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
        let minority = if n <= 1 {
            0
        } else {
            cluster.rng().random_range(1..=(n - 1) / 2).max(1)
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
