//! An in-process cluster of any protocol for benchmarks: every node is a
//! full `ConsensusNode` (runtime + QUIC on loopback + storage), built with
//! the one [`Settings`](crate::settings::Settings) every protocol shares.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use consensus::{
    certs, Bytes, ClientError, ClusterId, ConsensusNode, LogIndex, NodeBuilder, NodeId, Protocol,
    RecoverError, ReplicatedLog, Role, StateMachine, Status, Storage, TlsMaterial,
};

use crate::settings::{Settings, StorageKind};

/// The benchmark's state machine: counts commands and keeps the last one,
/// so applying costs about the same for every protocol and little overall.
#[derive(Default)]
pub struct BenchMachine {
    applied: u64,
    last: Bytes,
}

impl StateMachine for BenchMachine {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        self.applied += 1;
        self.last = command.clone();
        Bytes::new()
    }

    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::from(self.applied.to_le_bytes().to_vec())
    }

    fn snapshot(&self) -> Bytes {
        let mut data = self.applied.to_le_bytes().to_vec();
        data.extend_from_slice(&self.last);
        Bytes::from(data)
    }

    fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        if data.len() < 8 {
            return Err(RecoverError::CorruptSnapshot(
                "bench machine snapshot too short".into(),
            ));
        }
        self.applied = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        self.last = data.slice(8..);
        Ok(())
    }
}

/// The running nodes of a cluster, shared with client tasks (nodes come and
/// go as the failover benchmark stops and restarts them).
#[derive(Clone, Default)]
pub struct NodeSet(Arc<RwLock<BTreeMap<NodeId, Arc<ConsensusNode>>>>);

impl NodeSet {
    /// Running node `id`.
    pub fn get(&self, id: NodeId) -> Option<Arc<ConsensusNode>> {
        self.0.read().expect("node set lock").get(&id).cloned()
    }

    /// Ids of the running nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.0
            .read()
            .expect("node set lock")
            .keys()
            .copied()
            .collect()
    }

    fn insert(&self, id: NodeId, node: Arc<ConsensusNode>) {
        self.0.write().expect("node set lock").insert(id, node);
    }

    fn remove(&self, id: NodeId) -> Option<Arc<ConsensusNode>> {
        self.0.write().expect("node set lock").remove(&id)
    }

    /// The running node after `id` (wrapping).
    pub fn next_running(&self, id: NodeId) -> NodeId {
        let ids = self.ids();
        ids.iter()
            .copied()
            .find(|n| *n > id)
            .or_else(|| ids.first().copied())
            .unwrap_or(id)
    }

    /// Appends one command through `target`, following leader hints and
    /// moving on from nodes that fail, until it commits or `deadline`;
    /// returns the node that committed it.
    pub async fn append_via(
        &self,
        mut target: NodeId,
        command: Bytes,
        deadline: Instant,
    ) -> Result<NodeId, ClientError> {
        let mut last = ClientError::Unavailable;
        while Instant::now() < deadline {
            let Some(node) = self.get(target) else {
                target = self.next_running(target);
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            match node.append(command.clone()).await {
                Ok(_) => return Ok(target),
                Err(ClientError::NotLeader { hint: Some(hint) })
                    if hint != target && self.get(hint).is_some() =>
                {
                    target = hint;
                }
                Err(error) => {
                    last = error;
                    target = self.next_running(target);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        Err(last)
    }
}

/// A running cluster.
pub struct BenchCluster {
    /// The protocol.
    pub protocol: Protocol,
    settings: Settings,
    cluster_id: ClusterId,
    tls: BTreeMap<NodeId, TlsMaterial>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    dir: Option<tempfile::TempDir>,
    data_root: PathBuf,
    nodes: NodeSet,
    /// Nodes started so far (restarts included): each incarnation gets its
    /// own seed, as a node seeded from the clock does.
    starts: u64,
}

/// How long cluster operations wait before giving up.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(30);

impl BenchCluster {
    /// Starts a cluster of `settings.nodes` nodes of `protocol`.
    pub async fn start(protocol: Protocol, settings: &Settings) -> Result<BenchCluster, String> {
        let cluster_id = ClusterId::new("bench").map_err(|e| e.to_string())?;
        let ids: Vec<NodeId> = (1..=settings.nodes as NodeId).collect();
        let (ca, node_certs) =
            certs::generate_cluster(&cluster_id, ids.clone()).map_err(|e| e.to_string())?;
        let tls = node_certs.iter().map(|c| (c.node_id, c.tls(&ca))).collect();
        let dir = match &settings.data_dir {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("creating a data directory: {e}"))?;
        let data_root = dir.path().to_path_buf();
        let sockets = ids
            .iter()
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let addrs = ids
            .iter()
            .zip(&sockets)
            .map(|(id, socket)| socket.local_addr().map(|a| (*id, a)))
            .collect::<std::io::Result<BTreeMap<_, _>>>()
            .map_err(|e| e.to_string())?;
        drop(sockets);
        let mut cluster = BenchCluster {
            protocol,
            settings: settings.clone(),
            cluster_id,
            tls,
            addrs,
            dir: Some(dir),
            data_root,
            nodes: NodeSet::default(),
            starts: 0,
        };
        for id in ids {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    /// Node ids of the configuration.
    pub fn ids(&self) -> Vec<NodeId> {
        self.addrs.keys().copied().collect()
    }

    /// Running node `id`.
    pub fn node(&self, id: NodeId) -> Option<Arc<ConsensusNode>> {
        self.nodes.get(id)
    }

    /// The shared set of running nodes.
    pub fn nodes(&self) -> NodeSet {
        self.nodes.clone()
    }

    /// (Re)starts node `id` on its address and data directory.
    pub fn start_node(&mut self, id: NodeId) -> Result<(), String> {
        let storage = match self.settings.storage {
            StorageKind::Disk => Storage::Disk(self.data_root.join(format!("node-{id}"))),
            StorageKind::Memory => Storage::Memory,
        };
        let deadline = Instant::now() + CLUSTER_WAIT;
        // A restarted node must not replay its previous incarnation's
        // random draws: with the seed of its first start, a node's first
        // election timeout was the same after every restart, so every
        // failover sample of Multi-Paxos and ZAB waited for the same one or
        // two timeouts (node 1: 220 ms, node 2: 240 ms) instead of the
        // earliest of the survivors' random ones.
        self.starts += 1;
        let seed = id.wrapping_mul(0x2545_f491_4f6c_dd1d)
            ^ self.settings.seed
            ^ self.starts.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        loop {
            let builder = NodeBuilder::new(self.protocol, self.cluster_id.as_str(), id)
                .listen(self.addrs[&id])
                .peers(
                    self.addrs
                        .iter()
                        .filter(|(p, _)| **p != id)
                        .map(|(p, a)| (*p, *a)),
                )
                .storage(storage.clone())
                .tls(self.tls[&id].clone())
                .tuning(self.settings.tuning.clone())
                .runtime(self.settings.runtime.clone())
                .seed(seed);
            match builder.start(BenchMachine::default()) {
                Ok(node) => {
                    self.nodes.insert(id, Arc::new(node));
                    return Ok(());
                }
                // The port of a node that just stopped may take a moment to free.
                Err(error) if Instant::now() < deadline && error.to_string().contains("bind") => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => return Err(format!("starting node {id}: {error}")),
            }
        }
    }

    /// Stops node `id` (the runtime stops at once; the transport drains).
    pub async fn stop_node(&mut self, id: NodeId) -> Result<(), String> {
        let node = self
            .nodes
            .remove(id)
            .ok_or_else(|| format!("node {id} is not running"))?;
        node.shutdown().await.map_err(|e| e.to_string())
    }

    /// The statuses of the running nodes.
    pub fn statuses(&self) -> Vec<Status> {
        self.nodes
            .ids()
            .into_iter()
            .filter_map(|id| self.nodes.get(id))
            .map(|n| n.status())
            .collect()
    }

    /// Each running node's count of epoch changes so far.
    pub async fn epoch_changes(&self) -> std::collections::BTreeMap<NodeId, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for id in self.ids() {
            if let Some(node) = self.node(id) {
                if let Ok(metrics) = node.metrics().await {
                    counts.insert(id, metrics.epoch_changes);
                }
            }
        }
        counts
    }

    /// The leader every running node agrees on (leader-based protocols).
    pub fn agreed_leader(&self) -> Option<NodeId> {
        let statuses = self.statuses();
        let leader = statuses.iter().find(|s| s.role == Role::Leader)?.id;
        statuses
            .iter()
            .all(|s| s.leader == Some(leader))
            .then_some(leader)
    }

    /// Waits until a write commits (the cluster is ready for load).
    pub async fn wait_writable(&self) -> Result<NodeId, String> {
        let first = *self.nodes.ids().first().ok_or("no node runs")?;
        self.nodes
            .append_via(
                first,
                Bytes::from_static(b"warm-up"),
                Instant::now() + CLUSTER_WAIT,
            )
            .await
            .map_err(|e| {
                format!(
                    "{}: no write committed within {CLUSTER_WAIT:?}: {e}",
                    self.protocol
                )
            })
    }

    /// Waits until every running node has applied `index`.
    pub async fn wait_applied(&self, index: LogIndex) -> Result<(), String> {
        for id in self.nodes.ids() {
            let Some(node) = self.nodes.get(id) else {
                continue;
            };
            let deadline = Instant::now() + CLUSTER_WAIT;
            while node.status().applied_index < index {
                if Instant::now() > deadline {
                    return Err(format!("a node did not catch up to {index}"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// Stops every node and removes the data.
    pub async fn shutdown(mut self) {
        for id in self.nodes.ids() {
            let _ = self.stop_node(id).await;
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
