//! The client of membership commands (`consensus-kv member ...`): sends a
//! [`MemberCommand`] to the cluster, follows the leader hint of a
//! follower's refusal, and learns the addresses of members the cluster
//! file does not list from the answers. The server side, the procedure
//! and the rules are in [`consensus_service::members`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::{ConsensusNode, NodeId};
use consensus_service::member_client::{self, OperatorRequest, OperatorWire};
use consensus_service::pipe::PipeClient;

pub use consensus_service::members::MemberClientError;

use crate::client::{client_endpoint, read_ca};
use crate::config::ClusterConfig;
use crate::wire::{self, MemberCommand, MemberView, Request, MESSAGE_BYTES_MAX};

/// Sends membership commands (and backup steps) to one cluster: the
/// service edge's client over the key-value wire.
pub type MemberClient = member_client::MemberClient<KvWire>;

/// The key-value wire of an operator request: one [`Request::Member`] or
/// [`Request::Backup`] on a pipe of a fresh connection.
pub struct KvWire;

impl OperatorWire for KvWire {
    fn endpoint(config: &ClusterConfig) -> Result<quinn::Endpoint, String> {
        let ca_pem = read_ca(config).map_err(|e| e.to_string())?;
        client_endpoint(config.nodes.iter().map(|n| &n.client_addr), &ca_pem)
            .map_err(|e| e.to_string())
    }

    async fn exchange<R: serde::de::DeserializeOwned + Send>(
        endpoint: &quinn::Endpoint,
        id: NodeId,
        addr: SocketAddr,
        server_name: String,
        request: OperatorRequest,
    ) -> Result<R, String> {
        let request = match request {
            OperatorRequest::Member(request) => Request::Member(request),
            OperatorRequest::Backup(request) => Request::Backup(request),
        };
        let connection = endpoint
            .connect(addr, &server_name)
            .map_err(|e| format!("node {id}: connecting to {addr}: {e}"))?
            .await
            .map_err(|e| format!("node {id}: connecting to {addr}: {e}"))?;
        let pipe = PipeClient::open(connection, MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
        let result = pipe.call(wire::encode(&request)).await;
        pipe.close();
        let bytes = result.map_err(|e| format!("node {id}: {e}"))?;
        wire::decode::<R>(&bytes).map_err(|e| format!("node {id}: reply does not decode: {e}"))
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
