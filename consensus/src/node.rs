//! Building and running a node of the chosen protocol.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use consensus_api::{
    Applied, ClientError, Core, LogIndex, LogStore, Membership, NodeId, ReadConsistency,
    ReplicatedLog, StateMachine, Status, StorageError, TransportError,
};
use consensus_runtime::{Node, RuntimeConfig, RuntimeMetrics, StartError};
use consensus_storage::{DiskOptions, DiskStore, MemStore};
use thiserror::Error;
use transport_quic::certs::{load_node_tls, CertError};
use transport_quic::{
    ClusterId, FaultController, Limits, QuicConfig, QuicTransport, SetupError, TlsMaterial,
    TransportStats,
};

use crate::protocol::{Protocol, ProtocolError};
use crate::tuning::Tuning;

/// Why a node could not be built or started. Each message says what to fix.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The protocol is unknown or not compiled in.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// No TLS material was given.
    #[error("no TLS material: call `tls(...)` or `tls_from_dir(...)` (create development certificates with `consensus-kv certs --out DIR --nodes N`)")]
    MissingTls,
    /// The certificates could not be loaded.
    #[error("loading certificates: {0}")]
    Certificates(#[from] CertError),
    /// The transport could not be set up (bad address, bad TLS material).
    #[error("setting up the QUIC transport: {0}")]
    Transport(#[from] SetupError),
    /// The data directory could not be opened.
    #[error("opening the data directory: {0}")]
    Storage(#[from] StorageError),
    /// The node could not start from its stored state.
    #[error("starting the node: {0}")]
    Start(#[from] StartError),
    /// A configuration value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Where a node keeps its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// A durable write-ahead log in this directory (fdatasync on every batch).
    Disk(PathBuf),
    /// In memory only: everything is lost when the process ends. For tests
    /// and benchmarks of the protocol alone.
    Memory,
}

/// Everything about one node; build with [`NodeBuilder`].
pub struct NodeBuilder {
    protocol: Protocol,
    cluster_id: String,
    id: NodeId,
    listen: SocketAddr,
    peers: BTreeMap<NodeId, SocketAddr>,
    membership: Option<Membership>,
    storage: Storage,
    tls: Option<TlsMaterial>,
    tuning: Tuning,
    runtime: RuntimeConfig,
    faults: Option<FaultController>,
    limits: Option<Limits>,
    seed: Option<u64>,
}

impl NodeBuilder {
    /// Node `id` of cluster `cluster_id` (one DNS label: `[a-z0-9-]`)
    /// running `protocol`. Defaults: listen on `127.0.0.1:0`, no peers,
    /// data in `./data/node-<id>`, [`Tuning::default`], [`RuntimeConfig::default`].
    pub fn new(protocol: Protocol, cluster_id: impl Into<String>, id: NodeId) -> Self {
        NodeBuilder {
            protocol,
            cluster_id: cluster_id.into(),
            id,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: BTreeMap::new(),
            membership: None,
            storage: Storage::Disk(PathBuf::from(format!("data/node-{id}"))),
            tls: None,
            tuning: Tuning::default(),
            runtime: RuntimeConfig::default(),
            faults: None,
            limits: None,
            seed: None,
        }
    }

    /// The UDP address this node's QUIC endpoint binds (peers connect here).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds another member and the address it listens on.
    pub fn peer(mut self, id: NodeId, addr: SocketAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Adds several members.
    pub fn peers(mut self, peers: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// The initial membership of a new cluster (default: this node and every
    /// peer as voters). Ignored once the data directory holds state.
    pub fn membership(mut self, membership: Membership) -> Self {
        self.membership = Some(membership);
        self
    }

    /// Durable storage in `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Storage::Disk(dir.into());
        self
    }

    /// Where to keep the log.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// TLS material given directly.
    pub fn tls(mut self, tls: TlsMaterial) -> Self {
        self.tls = Some(tls);
        self
    }

    /// TLS material from a certificate directory (`ca.pem`,
    /// `node-<id>.pem`, `node-<id>-key.pem`).
    pub fn tls_from_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, BuildError> {
        let cluster = cluster_id(&self.cluster_id)?;
        self.tls = Some(load_node_tls(dir.as_ref(), &cluster, self.id)?);
        Ok(self)
    }

    /// Protocol timing and batching.
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Runtime queue sizes and timeouts (the tick comes from [`Tuning`]).
    pub fn runtime(mut self, runtime: RuntimeConfig) -> Self {
        self.runtime = runtime;
        self
    }

    /// Shares a fault-injection controller with the transport (tests only:
    /// it drops, delays or partitions real QUIC traffic).
    pub fn faults(mut self, faults: FaultController) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Transport size limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Seed of the core's RNG (default: derived from the node id and the
    /// start time; fix it for reproducible runs).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts the node on the current tokio runtime.
    pub fn start(self, state_machine: impl StateMachine) -> Result<ConsensusNode, BuildError> {
        let state_machine: Box<dyn StateMachine> = Box::new(state_machine);
        let protocol = self.protocol;
        let replica: Box<dyn Replica> = match protocol {
            #[cfg(feature = "raft")]
            Protocol::Raft => Box::new(self.start_core::<raft::RaftCore>(state_machine)?),
            #[cfg(feature = "multipaxos")]
            Protocol::MultiPaxos => {
                Box::new(self.start_core::<multipaxos::MultiPaxosCore>(state_machine)?)
            }
            #[cfg(feature = "paxos")]
            Protocol::Paxos => Box::new(self.start_core::<paxos::PaxosCore>(state_machine)?),
            #[cfg(feature = "zab")]
            Protocol::Zab => Box::new(self.start_core::<zab::ZabCore>(state_machine)?),
        };
        Ok(ConsensusNode { protocol, replica })
    }

    fn start_core<C: Core>(
        self,
        state_machine: Box<dyn StateMachine>,
    ) -> Result<Backend<C>, BuildError> {
        let cluster = cluster_id(&self.cluster_id)?;
        if self.id == 0 {
            return Err(BuildError::Config(
                "node id 0 is reserved; number nodes from 1".into(),
            ));
        }
        if self.peers.contains_key(&self.id) {
            return Err(BuildError::Config(format!(
                "node {} lists itself as a peer",
                self.id
            )));
        }
        let tls = self.tls.ok_or(BuildError::MissingTls)?;
        let membership = self
            .membership
            .unwrap_or_else(|| Membership::new(self.peers.keys().copied().chain([self.id])));
        membership
            .validate()
            .map_err(|e| BuildError::Config(format!("initial membership: {e}")))?;
        let mut quic = QuicConfig::for_core::<C>(self.id, self.listen, cluster.clone(), tls);
        quic.peers = self.peers.clone();
        if let Some(faults) = self.faults {
            quic.faults = faults;
        }
        if let Some(limits) = self.limits {
            quic.limits = limits;
        }
        let transport = Arc::new(QuicTransport::<C::Message>::bind(quic)?);
        let store: Box<dyn LogStore> = match &self.storage {
            Storage::Disk(dir) => {
                let options = DiskOptions {
                    node_id: Some(self.id),
                    cluster_id: Some(cluster.as_str().to_string()),
                    ..DiskOptions::default()
                };
                Box::new(DiskStore::open(dir, options)?)
            }
            Storage::Memory => Box::new(MemStore::new()),
        };
        let seed = self.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ self.id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let core_config = self.tuning.core_config(self.id, membership, seed);
        let mut runtime = self.runtime;
        runtime.tick = self.tuning.tick;
        let node = Node::<C>::start(
            core_config,
            runtime,
            store,
            state_machine,
            transport.clone(),
        )?;
        Ok(Backend { node, transport })
    }
}

fn cluster_id(text: &str) -> Result<ClusterId, BuildError> {
    ClusterId::new(text).map_err(|e| BuildError::Config(e.to_string()))
}

/// What every backend offers beyond [`ReplicatedLog`].
#[async_trait]
trait Replica: ReplicatedLog {
    async fn metrics(&self) -> Result<RuntimeMetrics, ClientError>;
    async fn transfer_leadership(&self, to: NodeId) -> Result<(), ClientError>;
    fn transport_stats(&self) -> TransportStats;
    fn local_addr(&self) -> SocketAddr;
    fn faults(&self) -> FaultController;
    fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError>;
    fn remove_peer(&self, id: NodeId) -> Result<(), TransportError>;
    fn status_watch(&self) -> tokio::sync::watch::Receiver<Status>;
}

struct Backend<C: Core> {
    node: Node<C>,
    transport: Arc<QuicTransport<C::Message>>,
}

#[async_trait]
impl<C: Core> ReplicatedLog for Backend<C> {
    async fn append(&self, command: Bytes) -> Result<Applied, ClientError> {
        self.node.append(command).await
    }
    async fn read_barrier(&self) -> Result<LogIndex, ClientError> {
        self.node.read_barrier().await
    }
    async fn read(&self, query: Bytes, consistency: ReadConsistency) -> Result<Bytes, ClientError> {
        self.node.read(query, consistency).await
    }
    async fn change_membership(&self, to: Membership) -> Result<LogIndex, ClientError> {
        self.node.change_membership(to).await
    }
    fn status(&self) -> Status {
        self.node.status()
    }
    async fn shutdown(&self) -> Result<(), ClientError> {
        self.node.shutdown().await
    }
}

#[async_trait]
impl<C: Core> Replica for Backend<C> {
    async fn metrics(&self) -> Result<RuntimeMetrics, ClientError> {
        self.node.metrics().await
    }
    async fn transfer_leadership(&self, to: NodeId) -> Result<(), ClientError> {
        self.node.transfer_leadership(to).await
    }
    fn transport_stats(&self) -> TransportStats {
        self.transport.stats()
    }
    fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }
    fn faults(&self) -> FaultController {
        self.transport.faults().clone()
    }
    fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        self.transport.add_peer(id, addr)
    }
    fn remove_peer(&self, id: NodeId) -> Result<(), TransportError> {
        self.transport.remove_peer(id)
    }
    fn status_watch(&self) -> tokio::sync::watch::Receiver<Status> {
        self.node.status_watch()
    }
}

/// A running node of any compiled protocol. Implements [`ReplicatedLog`];
/// application code written against that trait runs on every backend.
pub struct ConsensusNode {
    protocol: Protocol,
    replica: Box<dyn Replica>,
}

impl ConsensusNode {
    /// The protocol running underneath.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The UDP address the node's QUIC endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.replica.local_addr()
    }

    /// Runtime metrics (elections, commit and fsync latency, follower lag...).
    pub async fn metrics(&self) -> Result<RuntimeMetrics, ClientError> {
        self.replica.metrics().await
    }

    /// Asks this node (the leader) to hand leadership to `to`.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), ClientError> {
        self.replica.transfer_leadership(to).await
    }

    /// Transport counters (connections, frames, refusals).
    pub fn transport_stats(&self) -> TransportStats {
        self.replica.transport_stats()
    }

    /// The transport's fault-injection controller (inactive unless a test
    /// sets rules on it).
    pub fn faults(&self) -> FaultController {
        self.replica.faults()
    }

    /// The node's status as a watch that wakes on every change (role,
    /// leader, epoch, commit index...): for timing events as they happen.
    pub fn status_watch(&self) -> tokio::sync::watch::Receiver<Status> {
        self.replica.status_watch()
    }

    /// Tells the transport where a (new) member listens.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        self.replica.add_peer(id, addr)
    }

    /// Tells the transport that `id` left the membership: its connection is
    /// closed and its certificate refused from now on.
    pub fn remove_peer(&self, id: NodeId) -> Result<(), TransportError> {
        self.replica.remove_peer(id)
    }
}

#[async_trait]
impl ReplicatedLog for ConsensusNode {
    async fn append(&self, command: Bytes) -> Result<Applied, ClientError> {
        self.replica.append(command).await
    }
    async fn read_barrier(&self) -> Result<LogIndex, ClientError> {
        self.replica.read_barrier().await
    }
    async fn read(&self, query: Bytes, consistency: ReadConsistency) -> Result<Bytes, ClientError> {
        self.replica.read(query, consistency).await
    }
    async fn change_membership(&self, to: Membership) -> Result<LogIndex, ClientError> {
        self.replica.change_membership(to).await
    }
    fn status(&self) -> Status {
        self.replica.status()
    }
    async fn shutdown(&self) -> Result<(), ClientError> {
        self.replica.shutdown().await
    }
}
