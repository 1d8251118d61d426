//! A real cluster in one process: every node is a `Node<C>` with a
//! `DiskStore` in a temporary directory and a `QuicTransport` on loopback,
//! with certificates from a fresh cluster CA. The same harness runs every
//! protocol.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus_api::{
    Applied, ClientError, Core, CoreConfig, LogIndex, Membership, NodeId, ReadConsistency,
    RecoverError, ReplicatedLog, Role, SessionCommand, Sessions, StateMachine, Transport,
};
use consensus_runtime::{Node, RuntimeConfig};
use consensus_storage::{DiskOptions, DiskStore};
use transport_quic::certs::{generate_cluster, ClusterCa, NodeCert};
use transport_quic::{ClusterId, FaultController, QuicConfig, QuicTransport};

/// Query asking the recorder for its whole log.
pub const QUERY_LOG: &[u8] = b"log";

/// A state machine that records every command it applies, in order.
#[derive(Default)]
pub struct Recorder {
    log: Vec<(LogIndex, Bytes)>,
}

impl StateMachine for Recorder {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.log.push((index, command.clone()));
        Bytes::from(index.to_le_bytes().to_vec())
    }

    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::from(postcard::to_allocvec(&self.log).expect("encode"))
    }

    fn snapshot(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(&self.log).expect("encode"))
    }

    fn restore(&mut self, _index: LogIndex, data: &Bytes) -> Result<(), RecoverError> {
        self.log =
            postcard::from_bytes(data).map_err(|e| RecoverError::CorruptSnapshot(e.to_string()))?;
        Ok(())
    }
}

/// Decodes a recorder log (the commands, unwrapped from their session envelope).
pub fn decode_log(bytes: &Bytes) -> Vec<(LogIndex, Bytes)> {
    let log: Vec<(LogIndex, Bytes)> = postcard::from_bytes(bytes).expect("recorder log");
    log
}

pub struct TestCluster<C: Core> {
    pub cluster_id: ClusterId,
    pub dir: tempfile::TempDir,
    pub ca: ClusterCa,
    pub certs: BTreeMap<NodeId, NodeCert>,
    pub addrs: BTreeMap<NodeId, SocketAddr>,
    pub nodes: BTreeMap<NodeId, Arc<Node<C>>>,
    pub transports: BTreeMap<NodeId, Arc<QuicTransport<C::Message>>>,
    pub faults: FaultController,
    pub runtime: RuntimeConfig,
    client: u64,
    sequence: u64,
    next_target: NodeId,
}

/// How long a test waits for any one condition before failing.
pub const WAIT: Duration = Duration::from_secs(20);

impl<C: Core> TestCluster<C> {
    pub async fn start(size: u64) -> Self {
        Self::start_with(size, RuntimeConfig::default()).await
    }

    pub async fn start_with(size: u64, runtime: RuntimeConfig) -> Self {
        let all: Vec<NodeId> = (1..=size).collect();
        Self::start_subset(size, &all, runtime).await
    }

    /// A cluster of `size` members of which only `running` start; the
    /// others' addresses are reserved in every peer table.
    pub async fn start_subset(size: u64, running: &[NodeId], runtime: RuntimeConfig) -> Self {
        let cluster_id = ClusterId::new("testcluster").unwrap();
        let (ca, certs) = generate_cluster(&cluster_id, 1..=size).expect("certificates");
        let certs: BTreeMap<NodeId, NodeCert> = certs.into_iter().map(|c| (c.node_id, c)).collect();
        let mut cluster = TestCluster {
            cluster_id,
            dir: tempfile::tempdir().expect("temp dir"),
            ca,
            certs,
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            transports: BTreeMap::new(),
            faults: FaultController::new(),
            runtime,
            client: 0x5eed_0000 + size,
            sequence: 0,
            next_target: 1,
        };
        // Bind every transport first so each knows every address.
        let mut transports = BTreeMap::new();
        for id in 1..=size {
            let transport = cluster.bind(id, "127.0.0.1:0".parse().unwrap());
            cluster.addrs.insert(id, transport.local_addr());
            transports.insert(id, transport);
        }
        for (id, transport) in &transports {
            for (peer, addr) in &cluster.addrs {
                if peer != id {
                    transport.add_peer(*peer, *addr).expect("add peer");
                }
            }
        }
        for (id, transport) in transports {
            if running.contains(&id) {
                cluster.start_node(id, transport);
            } else {
                transport.shutdown().await;
            }
        }
        cluster
    }

    fn membership(&self) -> Membership {
        Membership::new(self.certs.keys().copied())
    }

    fn bind(&self, id: NodeId, addr: SocketAddr) -> Arc<QuicTransport<C::Message>> {
        let mut config = QuicConfig::for_core::<C>(
            id,
            addr,
            self.cluster_id.clone(),
            self.certs[&id].tls(&self.ca),
        );
        config.faults = self.faults.clone();
        for (peer, peer_addr) in &self.addrs {
            if *peer != id {
                config.peers.insert(*peer, *peer_addr);
            }
        }
        Arc::new(QuicTransport::bind(config).expect("bind transport"))
    }

    fn start_node(&mut self, id: NodeId, transport: Arc<QuicTransport<C::Message>>) {
        let mut config = CoreConfig::new(id, self.membership());
        config.seed = id * 7919;
        let store = DiskStore::open(
            self.dir.path().join(format!("node-{id}")),
            DiskOptions::default(),
        )
        .expect("open store");
        let state_machine = Sessions::new(Recorder::default(), 1024);
        self.transports.insert(id, transport.clone());
        let node = Node::<C>::start(
            config,
            self.runtime.clone(),
            Box::new(store),
            Box::new(state_machine),
            transport,
        )
        .expect("start node");
        self.nodes.insert(id, Arc::new(node));
    }

    pub fn node(&self, id: NodeId) -> &Arc<Node<C>> {
        &self.nodes[&id]
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Stops a node (clean shutdown: its peers see it vanish).
    pub async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).expect("running node");
        node.shutdown().await.expect("shutdown");
    }

    /// Restarts a stopped node on the same address and data directory.
    pub async fn restart(&mut self, id: NodeId) {
        let addr = self.addrs[&id];
        let deadline = Instant::now() + WAIT;
        // The UDP port is free again once the old endpoint is gone; retry briefly.
        let transport = loop {
            let mut config = QuicConfig::for_core::<C>(
                id,
                addr,
                self.cluster_id.clone(),
                self.certs[&id].tls(&self.ca),
            );
            config.faults = self.faults.clone();
            config.peers = self
                .addrs
                .iter()
                .filter(|(p, _)| **p != id)
                .map(|(p, a)| (*p, *a))
                .collect();
            match QuicTransport::bind(config) {
                Ok(transport) => break Arc::new(transport),
                Err(error) if Instant::now() < deadline => {
                    eprintln!("rebinding node {id}: {error}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("cannot rebind node {id}: {error}"),
            }
        };
        self.start_node(id, transport);
    }

    pub async fn shutdown_all(&mut self) {
        for id in self.ids() {
            self.stop(id).await;
        }
    }

    /// The node every running node agrees is leader (leaderless protocols: none).
    pub fn agreed_leader(&self) -> Option<NodeId> {
        let mut leaders = self
            .nodes
            .values()
            .map(|n| n.status())
            .filter(|s| s.role == Role::Leader);
        let leader = leaders.next()?;
        let all_agree = self
            .nodes
            .values()
            .all(|n| n.status().leader == Some(leader.id));
        all_agree.then_some(leader.id)
    }

    /// Waits until the cluster can take writes: a write through
    /// [`TestCluster::append`] succeeds.
    pub async fn wait_ready(&mut self) {
        self.append(Bytes::from_static(b"ready"))
            .await
            .expect("cluster never became writable");
    }

    fn next_command(&mut self, body: Bytes) -> Bytes {
        self.sequence += 1;
        SessionCommand {
            client: self.client,
            sequence: self.sequence,
            body,
        }
        .encode()
    }

    /// Appends through whichever node will take it: follows leader hints,
    /// retries (with the same session sequence number) on errors that leave
    /// the outcome unknown or mean "try elsewhere", until [`WAIT`].
    pub async fn append(&mut self, body: Bytes) -> Result<Applied, ClientError> {
        let command = self.next_command(body);
        let deadline = Instant::now() + WAIT;
        let mut last_error = ClientError::Unavailable;
        let mut target = self.next_target;
        while Instant::now() < deadline {
            if !self.nodes.contains_key(&target) {
                target = self.rotate(target);
                continue;
            }
            match self.nodes[&target].append(command.clone()).await {
                Ok(applied) => {
                    self.next_target = target;
                    let response = Sessions::<Recorder>::decode_response(&applied.response)
                        .expect("session response");
                    assert_eq!(response.len(), 8, "recorder answers with the index");
                    return Ok(applied);
                }
                Err(ClientError::NotLeader { hint: Some(hint) })
                    if hint != target && self.nodes.contains_key(&hint) =>
                {
                    target = hint;
                }
                Err(error) => {
                    last_error = error;
                    target = self.rotate(target);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last_error)
    }

    fn rotate(&self, from: NodeId) -> NodeId {
        let ids = self.ids();
        ids.iter().copied().find(|id| *id > from).unwrap_or(ids[0])
    }

    /// A linearizable read of node `id`'s recorded log.
    pub async fn read_log(&self, id: NodeId) -> Result<Vec<(LogIndex, Bytes)>, ClientError> {
        let bytes = self.nodes[&id]
            .read(Bytes::from_static(QUERY_LOG), ReadConsistency::Linearizable)
            .await?;
        Ok(decode_log(&bytes))
    }

    /// A linearizable read through whichever node serves it (followers of
    /// leader-based protocols answer `NotLeader`: follow the hint), retried
    /// until [`WAIT`].
    pub async fn read_log_anywhere(&self) -> Vec<(LogIndex, Bytes)> {
        let deadline = Instant::now() + WAIT;
        let mut target = self.ids()[0];
        loop {
            match self.read_log(target).await {
                Ok(log) => return log,
                Err(ClientError::NotLeader { hint: Some(hint) })
                    if self.nodes.contains_key(&hint) =>
                {
                    target = hint
                }
                Err(error) if Instant::now() < deadline => {
                    eprintln!("linearizable read at node {target}: {error}; retrying");
                    target = self.rotate(target);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("no linearizable read within {WAIT:?}: {error}"),
            }
        }
    }

    /// Node `id`'s log as it is now (no barrier).
    pub async fn local_log(&self, id: NodeId) -> Vec<(LogIndex, Bytes)> {
        let bytes = self.nodes[&id]
            .read(Bytes::from_static(QUERY_LOG), ReadConsistency::Stale)
            .await
            .expect("stale read");
        decode_log(&bytes)
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_applied(&self, index: LogIndex) {
        for node in self.nodes.values() {
            node.wait_for(WAIT, |s| s.applied_index >= index)
                .await
                .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", node.id()));
        }
    }
}
