//! The operator's client of a running cluster, written once for every
//! service: it sends membership commands (`member list/add/promote/remove`)
//! and backup steps (`snapshot save`), authenticated with the cluster
//! file's `[operator] token_file`, follows the leader hint of a follower's
//! refusal ([`run_on_leader`]) and learns the addresses of members the
//! cluster file does not list from the answers.
//!
//! What differs between services is only how one request crosses the
//! wire (a pipe `Request` in the key-value store, an `Open` stream in the
//! coordination service): that is an [`OperatorWire`].

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use consensus::{ClusterId, NodeId};
use serde::de::DeserializeOwned;

use crate::backup::{BackupCommand, BackupReply, BackupRequest, BackupSender};
use crate::config::ClusterConfig;
use crate::members::{
    read_secret, run_on_leader, MemberClientError, MemberCommand, MemberError, MemberRequest,
    MemberSender, MemberView,
};

/// A node's answer to a membership command.
pub type MemberReply = Result<MemberView, MemberError>;

/// One authenticated operator request, before a service wraps it in its
/// own wire message.
#[derive(Clone, Debug)]
pub enum OperatorRequest {
    /// A membership command.
    Member(MemberRequest),
    /// A backup step.
    Backup(BackupRequest),
}

/// How a service carries one operator request to one node.
pub trait OperatorWire {
    /// The client endpoint for the nodes of `config` (the text of a setup
    /// error otherwise).
    fn endpoint(config: &ClusterConfig) -> Result<quinn::Endpoint, String>;

    /// Connects to node `id` at `addr` (TLS name `server_name`), sends
    /// `request` and reads its one answer. An error names the node.
    fn exchange<R: DeserializeOwned + Send>(
        endpoint: &quinn::Endpoint,
        id: NodeId,
        addr: SocketAddr,
        server_name: String,
        request: OperatorRequest,
    ) -> impl std::future::Future<Output = Result<R, String>> + Send;
}

/// Sends membership commands and backup steps to one cluster over the
/// wire `W`.
pub struct MemberClient<W> {
    endpoint: quinn::Endpoint,
    cluster: ClusterId,
    nodes: Mutex<BTreeMap<NodeId, SocketAddr>>,
    leader: Mutex<Option<NodeId>>,
    token: String,
    /// How long a change may take (it waits for a learner to catch up).
    pub change_timeout: Duration,
    /// How long one node may take to answer `list`.
    pub list_timeout: Duration,
    wire: PhantomData<fn() -> W>,
}

impl<W: OperatorWire> MemberClient<W> {
    /// A client of the nodes of `config`, authenticating with `token`.
    pub fn new(config: &ClusterConfig, token: String) -> Result<Self, MemberClientError> {
        let setup = |e: String| MemberClientError::Setup(e);
        let cluster =
            ClusterId::new(config.cluster_id.clone()).map_err(|e| setup(e.to_string()))?;
        let endpoint = W::endpoint(config).map_err(setup)?;
        Ok(MemberClient {
            endpoint,
            cluster,
            nodes: Mutex::new(config.nodes.iter().map(|n| (n.id, n.client_addr)).collect()),
            leader: Mutex::new(None),
            token,
            change_timeout: Duration::from_secs(90),
            list_timeout: Duration::from_secs(2),
            wire: PhantomData,
        })
    }

    /// A client that reads the secret from the configuration's
    /// `[operator] token_file`.
    pub fn from_config(config: &ClusterConfig) -> Result<Self, MemberClientError> {
        let path = config.operator_token_file.as_ref().ok_or_else(|| {
            MemberClientError::Setup(format!(
                "{} has no `[operator] token_file`: membership changes are disabled",
                config.path.display()
            ))
        })?;
        let token = read_secret(path).map_err(MemberClientError::Setup)?;
        Self::new(config, token)
    }

    /// Adds (or moves) a node's client address, e.g. one that is not in the
    /// cluster file.
    pub fn add_node(&self, id: NodeId, client_addr: SocketAddr) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, client_addr);
    }

    /// The nodes this client knows (the cluster file's, and those learned
    /// since).
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
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

    /// Sends `command` to node `id` and returns its answer as is.
    pub async fn send_to(
        &self,
        id: NodeId,
        command: MemberCommand,
        timeout: Duration,
    ) -> Result<MemberReply, String> {
        let request = OperatorRequest::Member(MemberRequest {
            token: self.token.clone(),
            command,
        });
        let reply: MemberReply = self.exchange(id, request, timeout).await?;
        if let Ok(view) = &reply {
            self.learn(view);
        }
        Ok(reply)
    }

    /// Sends one backup step to node `id`.
    pub async fn backup_to(
        &self,
        id: NodeId,
        command: BackupCommand,
        timeout: Duration,
    ) -> Result<BackupReply, String> {
        let request = OperatorRequest::Backup(BackupRequest {
            token: self.token.clone(),
            command,
        });
        self.exchange(id, request, timeout).await
    }

    /// One request to node `id` and its answer, within `timeout`.
    async fn exchange<R: DeserializeOwned + Send>(
        &self,
        id: NodeId,
        request: OperatorRequest,
        timeout: Duration,
    ) -> Result<R, String> {
        let addr = self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .ok_or_else(|| format!("node {id}: address unknown"))?;
        let server_name = crate::tls::server_name(&self.cluster, id);
        tokio::time::timeout(
            timeout,
            W::exchange(&self.endpoint, id, addr, server_name, request),
        )
        .await
        .map_err(|_| format!("node {id}: no answer within {timeout:?}"))?
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

impl<W: OperatorWire> MemberSender for MemberClient<W> {
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

impl<W: OperatorWire> BackupSender for MemberClient<W> {
    async fn send_backup(
        &self,
        id: NodeId,
        command: BackupCommand,
        timeout: Duration,
    ) -> Result<BackupReply, String> {
        self.backup_to(id, command, timeout).await
    }
}
