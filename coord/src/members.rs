//! The client of membership commands (`consensus-coord member ...`): one
//! [`Open::Member`](crate::wire::Open::Member) stream per command, the
//! leader-following loop of the service edge
//! ([`consensus_service::members::run_on_leader`]), which also holds the
//! server side and the rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use consensus::{ClusterId, NodeId};
use consensus_service::backup::{BackupCommand, BackupReply, BackupRequest, BackupSender};
use consensus_service::config::ClusterConfig;
use consensus_service::members::{run_on_leader, MemberSender};

pub use consensus_service::members::{
    MemberClientError, MemberCommand, MemberError, MemberRequest, MemberView,
};

use crate::tls;
use crate::wire::{self, MemberReply, Open};

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
    /// A client that reads the secret from the configuration's
    /// `[operator] token_file`.
    pub fn from_config(config: &ClusterConfig) -> Result<MemberClient, MemberClientError> {
        let setup = |e: String| MemberClientError::Setup(e);
        let path = config.operator_token_file.as_ref().ok_or_else(|| {
            setup(format!(
                "{} has no `[operator] token_file`: membership changes are disabled",
                config.path.display()
            ))
        })?;
        let token = std::fs::read_to_string(path)
            .map_err(|e| setup(format!("reading {}: {e}", path.display())))?;
        let cluster =
            ClusterId::new(config.cluster_id.clone()).map_err(|e| setup(e.to_string()))?;
        let ca_path = config.certs_dir.join("ca.pem");
        let ca_pem = std::fs::read_to_string(&ca_path)
            .map_err(|e| setup(format!("reading the cluster CA {}: {e}", ca_path.display())))?;
        let loopback = config
            .nodes
            .iter()
            .all(|n| n.client_addr.ip().is_loopback());
        let bind: SocketAddr = if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }
            .parse()
            .expect("address");
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| setup(format!("binding {bind}: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(&ca_pem).map_err(setup)?);
        Ok(MemberClient {
            endpoint,
            cluster,
            nodes: Mutex::new(config.nodes.iter().map(|n| (n.id, n.client_addr)).collect()),
            leader: Mutex::new(None),
            token: token.trim().to_string(),
            change_timeout: Duration::from_secs(90),
            list_timeout: Duration::from_secs(2),
        })
    }

    /// Adds (or moves) a node's client address.
    pub fn add_node(&self, id: NodeId, client_addr: SocketAddr) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, client_addr);
    }

    /// Runs `command` on the leader.
    pub async fn run(&self, command: MemberCommand) -> Result<MemberView, MemberClientError> {
        run_on_leader(self, command, self.list_timeout, self.change_timeout).await
    }

    /// Sends `command` to node `id` and returns its answer as is.
    pub async fn send_to(
        &self,
        id: NodeId,
        command: MemberCommand,
        timeout: Duration,
    ) -> Result<MemberReply, String> {
        let request = Open::Member(MemberRequest {
            token: self.token.clone(),
            command,
        });
        let reply: MemberReply = self.exchange(id, &request, timeout).await?;
        if let Ok(view) = &reply {
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
        Ok(reply)
    }

    /// Sends one backup step to node `id` (an [`Open::Backup`] stream).
    pub async fn backup_to(
        &self,
        id: NodeId,
        command: BackupCommand,
        timeout: Duration,
    ) -> Result<BackupReply, String> {
        let request = Open::Backup(BackupRequest {
            token: self.token.clone(),
            command,
        });
        self.exchange(id, &request, timeout).await
    }

    /// One request on its own stream of a fresh connection to node `id`,
    /// and its one answer frame.
    async fn exchange<R: serde::de::DeserializeOwned>(
        &self,
        id: NodeId,
        request: &Open,
        timeout: Duration,
    ) -> Result<R, String> {
        let addr = self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .ok_or_else(|| format!("node {id}: address unknown"))?;
        let exchange = async {
            let connection = self
                .endpoint
                .connect(addr, &tls::server_name(&self.cluster, id))
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            wire::write_frame(&mut send, request).await?;
            let _ = send.finish();
            let reply = wire::read_frame::<R>(&mut recv).await;
            connection.close(0u32.into(), b"done");
            reply?.ok_or_else(|| "the node closed the stream".to_string())
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("node {id}: no answer within {timeout:?}"))?
            .map_err(|e| format!("node {id}: {e}"))
    }

    /// Closes the endpoint.
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"member client closing");
        self.endpoint.wait_idle().await;
    }
}

impl MemberSender for MemberClient {
    fn node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
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
        self.backup_to(id, command, timeout).await
    }
}
