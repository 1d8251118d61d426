//! The client of membership commands (`consensus-kv member ...`): sends a
//! [`MemberCommand`] to the cluster, follows the leader hint of a
//! follower's refusal, and learns the addresses of members the cluster
//! file does not list from the answers. The server side, the procedure
//! and the rules are in [`consensus_service::members`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consensus::{ClusterId, ConsensusNode, NodeId};
use consensus_service::backup::{BackupCommand, BackupReply, BackupRequest, BackupSender};
use consensus_service::members::{run_on_leader, MemberSender};
use consensus_service::pipe::PipeClient;

pub use consensus_service::members::MemberClientError;

use crate::client::{client_endpoint, read_ca};
use crate::config::ClusterConfig;
use crate::tls;
use crate::wire::{
    self, MemberCommand, MemberReply, MemberRequest, MemberView, Request, MESSAGE_BYTES_MAX,
};

/// Sends membership commands to one cluster.
pub struct MemberClient {
    endpoint: quinn::Endpoint,
    cluster: ClusterId,
    nodes: Mutex<BTreeMap<NodeId, SocketAddr>>,
    leader: Mutex<Option<NodeId>>,
    token: String,
    /// How long a change may take (it waits for a learner to catch up).
    pub change_timeout: Duration,
    /// How long one node may take to answer `list`.
    pub list_timeout: Duration,
}

impl MemberClient {
    /// A client of the nodes of `config`, authenticating with `token`.
    pub fn new(config: &ClusterConfig, token: String) -> Result<MemberClient, MemberClientError> {
        let setup = |e: String| MemberClientError::Setup(e);
        let cluster =
            ClusterId::new(config.cluster_id.clone()).map_err(|e| setup(e.to_string()))?;
        let ca_pem = read_ca(config).map_err(|e| setup(e.to_string()))?;
        let endpoint = client_endpoint(config.nodes.iter().map(|n| &n.client_addr), &ca_pem)
            .map_err(|e| setup(e.to_string()))?;
        Ok(MemberClient {
            endpoint,
            cluster,
            nodes: Mutex::new(config.nodes.iter().map(|n| (n.id, n.client_addr)).collect()),
            leader: Mutex::new(None),
            token,
            change_timeout: Duration::from_secs(90),
            list_timeout: Duration::from_secs(2),
        })
    }

    /// A client that reads the secret from the configuration's
    /// `[operator] token_file`.
    pub fn from_config(config: &ClusterConfig) -> Result<MemberClient, MemberClientError> {
        let path = config.operator_token_file.as_ref().ok_or_else(|| {
            MemberClientError::Setup(format!(
                "{} has no `[operator] token_file`: membership changes are disabled",
                config.path.display()
            ))
        })?;
        let token = std::fs::read_to_string(path)
            .map_err(|e| MemberClientError::Setup(format!("reading {}: {e}", path.display())))?;
        MemberClient::new(config, token.trim().to_string())
    }

    /// Adds (or moves) a node's client address, e.g. one that is not in the
    /// cluster file.
    pub fn add_node(&self, id: NodeId, client_addr: SocketAddr) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, client_addr);
    }

    fn learn(&self, view: &MemberView) {
        if view.leader.is_some() {
            *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = view.leader;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for member in &view.members {
            if let Some(addrs) = member.addrs {
                nodes.insert(member.id, addrs.client_addr);
            }
        }
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Sends `command` to node `id` and returns its answer as is.
    pub async fn send_to(
        &self,
        id: NodeId,
        command: MemberCommand,
        timeout: Duration,
    ) -> Result<MemberReply, String> {
        let request = Request::Member(MemberRequest {
            token: self.token.clone(),
            command,
        });
        let reply = tokio::time::timeout(timeout, self.exchange(id, &request))
            .await
            .map_err(|_| format!("node {id}: no answer within {timeout:?}"))??;
        if let Ok(view) = &reply {
            self.learn(view);
        }
        Ok(reply)
    }

    async fn exchange<R: serde::de::DeserializeOwned>(
        &self,
        id: NodeId,
        request: &Request,
    ) -> Result<R, String> {
        let addr = self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .ok_or_else(|| format!("node {id}: address unknown"))?;
        let connection = self
            .endpoint
            .connect(addr, &tls::server_name(&self.cluster, id))
            .map_err(|e| format!("node {id}: connecting to {addr}: {e}"))?
            .await
            .map_err(|e| format!("node {id}: connecting to {addr}: {e}"))?;
        let pipe = PipeClient::open(connection, MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
        let result = pipe.call(wire::encode(request)).await;
        pipe.close();
        let bytes = result.map_err(|e| format!("node {id}: {e}"))?;
        wire::decode::<R>(&bytes).map_err(|e| format!("node {id}: reply does not decode: {e}"))
    }

    /// The membership as the leader sees it (any node's view when no
    /// leader answers, e.g. on classic Paxos).
    pub async fn list(&self) -> Result<MemberView, MemberClientError> {
        self.run(MemberCommand::List).await
    }

    /// Runs `command` on the leader: starts anywhere and follows the
    /// leader hint of a refusal. A change is sent once to the node that
    /// runs it (no blind retry: it is not idempotent); only `list` moves on
    /// to another node after a failure.
    pub async fn run(&self, command: MemberCommand) -> Result<MemberView, MemberClientError> {
        run_on_leader(self, command, self.list_timeout, self.change_timeout).await
    }

    /// Closes the endpoint.
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"member client closing");
        self.endpoint.wait_idle().await;
    }
}

/// The membership and addresses as some node of `config` (not `id`) sees
/// them, asking each in turn for up to `within`; for a node that joins.
pub async fn fetch_view(
    config: &ClusterConfig,
    id: NodeId,
    token: String,
    within: Duration,
) -> Result<MemberView, MemberClientError> {
    let client = MemberClient::new(config, token)?;
    let deadline = Instant::now() + within;
    let mut problems = Vec::new();
    while Instant::now() < deadline {
        for other in client.node_ids().into_iter().filter(|n| *n != id) {
            match client
                .send_to(other, MemberCommand::List, Duration::from_secs(2))
                .await
            {
                Ok(Ok(view)) => {
                    client.close().await;
                    return Ok(view);
                }
                Ok(Err(error)) => {
                    client.close().await;
                    return Err(error.into());
                }
                Err(problem) => problems.push(problem),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    client.close().await;
    Err(MemberClientError::Unreachable(problems.join("; ")))
}

/// At start, asks the other nodes (the cluster file's, one after the
/// other, until one answers) for the address book and tells the
/// transport every member address it did not know: a joining node, and a
/// node that was down while members were added, so reach members the file
/// does not list before their addresses come through the log.
pub fn spawn_address_fetch(
    config: &ClusterConfig,
    id: NodeId,
    token: String,
    node: Arc<ConsensusNode>,
) {
    let client = match MemberClient::new(config, token) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(node = id, %error, "cannot ask the cluster for member addresses");
            return;
        }
    };
    let known: BTreeMap<NodeId, SocketAddr> =
        config.nodes.iter().map(|n| (n.id, n.peer_addr)).collect();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            for other in client.node_ids().into_iter().filter(|n| *n != id) {
                let Ok(Ok(view)) = client
                    .send_to(other, MemberCommand::List, Duration::from_secs(2))
                    .await
                else {
                    continue;
                };
                for member in view.members.iter().filter(|m| m.id != id) {
                    let Some(addrs) = member.addrs else { continue };
                    if known.get(&member.id) == Some(&addrs.peer_addr) {
                        continue;
                    }
                    match node.add_peer(member.id, addrs.peer_addr) {
                        Ok(()) => {
                            tracing::info!(node = id, peer = member.id, addr = %addrs.peer_addr, "member address learned from node {other}")
                        }
                        Err(error) => {
                            tracing::debug!(node = id, peer = member.id, %error, "adding a peer")
                        }
                    }
                }
                client.close().await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::warn!(
            node = id,
            "no node answered with the member addresses within 60 s"
        );
        client.close().await;
    });
}

impl MemberSender for MemberClient {
    fn node_ids(&self) -> Vec<NodeId> {
        MemberClient::node_ids(self)
    }

    fn last_leader(&self) -> Option<NodeId> {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(
        &self,
        id: NodeId,
        command: MemberCommand,
        timeout: Duration,
    ) -> Result<MemberReply, String> {
        self.send_to(id, command, timeout).await
    }
}

impl BackupSender for MemberClient {
    async fn send_backup(
        &self,
        id: NodeId,
        command: BackupCommand,
        timeout: Duration,
    ) -> Result<BackupReply, String> {
        let request = Request::Backup(BackupRequest {
            token: self.token.clone(),
            command,
        });
        tokio::time::timeout(timeout, self.exchange::<BackupReply>(id, &request))
            .await
            .map_err(|_| format!("node {id}: no answer within {timeout:?}"))?
    }
}
