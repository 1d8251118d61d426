//! `consensus-kv serve`: one node of the replicated key-value service.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use consensus::{
    certs, ClusterId, ConsensusNode, NodeBuilder, NodeId, ReadConsistency, ReplicatedLog,
    SessionCommand, Sessions,
};
use thiserror::Error;

use crate::config::ClusterConfig;
use crate::state::{Command, KvState, Query, Response};
use crate::tls;
use crate::wire::{self, NodeReport, Reply, Request, ServiceError, Session, MESSAGE_BYTES_MAX};

/// Client sessions kept by the state machine (least recently used evicted).
pub const SESSIONS_MAX: usize = 100_000;

/// Why a server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The configuration does not list the node.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The certificates could not be loaded.
    #[error("certificates in {dir}: {message} (create them with `consensus-kv certs --out {dir} --nodes N`)")]
    Certificates {
        /// The directory.
        dir: String,
        /// What failed.
        message: String,
    },
    /// The consensus node could not start.
    #[error("starting the consensus node: {0}")]
    Node(#[from] consensus::BuildError),
    /// The client API endpoint could not be set up.
    #[error("client API on {addr}: {message}")]
    ClientApi {
        /// The address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// A running key-value node: the consensus node plus the client API.
pub struct Server {
    node: Arc<ConsensusNode>,
    endpoint: quinn::Endpoint,
    id: NodeId,
    value_bytes_max: usize,
}

impl Server {
    /// Starts node `id` of `config`: opens its data directory, joins the
    /// cluster over QUIC and serves the client API.
    pub fn start(config: &ClusterConfig, id: NodeId) -> Result<Arc<Server>, ServeError> {
        let entry = config.node(id)?.clone();
        let cluster =
            ClusterId::new(config.cluster_id.clone()).map_err(|e| ServeError::Certificates {
                dir: config.certs_dir.display().to_string(),
                message: e.to_string(),
            })?;
        let material = certs::load_node_tls(&config.certs_dir, &cluster, id).map_err(|e| {
            ServeError::Certificates {
                dir: config.certs_dir.display().to_string(),
                message: e.to_string(),
            }
        })?;
        let node = NodeBuilder::new(config.protocol, config.cluster_id.clone(), id)
            .listen(entry.peer_addr)
            .peers(
                config
                    .nodes
                    .iter()
                    .filter(|n| n.id != id)
                    .map(|n| (n.id, n.peer_addr)),
            )
            .data_dir(entry.data_dir.clone())
            .tls(material.clone())
            .tuning(config.tuning.clone())
            .start(Sessions::new(KvState::new(), SESSIONS_MAX))?;
        let server_config =
            tls::server_config(&material).map_err(|message| ServeError::ClientApi {
                addr: entry.client_addr.to_string(),
                message,
            })?;
        let endpoint = quinn::Endpoint::server(server_config, entry.client_addr).map_err(|e| {
            ServeError::ClientApi {
                addr: entry.client_addr.to_string(),
                message: e.to_string(),
            }
        })?;
        tracing::info!(
            node = id,
            protocol = %config.protocol,
            peer_addr = %entry.peer_addr,
            client_addr = %entry.client_addr,
            data_dir = %entry.data_dir.display(),
            "key-value node started"
        );
        Ok(Arc::new(Server {
            node: Arc::new(node),
            endpoint,
            id,
            value_bytes_max: config.value_bytes_max,
        }))
    }

    /// The consensus node.
    pub fn node(&self) -> &Arc<ConsensusNode> {
        &self.node
    }

    /// Serves clients until `shutdown` resolves, then stops the node cleanly.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let server = self.clone();
                    tokio::spawn(async move {
                        match incoming.await {
                            Ok(connection) => server.serve_connection(connection).await,
                            Err(error) => tracing::debug!(%error, "client handshake failed"),
                        }
                    });
                }
            }
        }
        self.endpoint.close(0u32.into(), b"shutting down");
        if let Err(error) = self.node.shutdown().await {
            tracing::warn!(%error, "shutdown");
        }
        tracing::info!(node = self.id, "key-value node stopped");
    }

    async fn serve_connection(self: Arc<Self>, connection: quinn::Connection) {
        loop {
            match connection.accept_bi().await {
                Ok((send, recv)) => {
                    let server = self.clone();
                    tokio::spawn(async move { server.serve_stream(send, recv).await });
                }
                Err(error) => {
                    tracing::trace!(%error, "client connection ended");
                    return;
                }
            }
        }
    }

    async fn serve_stream(&self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let reply = match recv.read_to_end(MESSAGE_BYTES_MAX).await {
            Ok(bytes) => match wire::decode::<Request>(&bytes) {
                Ok(request) => self.handle(request).await,
                Err(error) => Reply::Error(ServiceError::Invalid(format!(
                    "request does not decode: {error}"
                ))),
            },
            Err(error) => Reply::Error(ServiceError::Invalid(format!(
                "request unreadable: {error}"
            ))),
        };
        if send.write_all(&wire::encode(&reply)).await.is_ok() {
            let _ = send.finish();
            let _ = send.stopped().await;
        }
    }

    async fn write(&self, session: Session, command: Command) -> Reply {
        let body = command.encode();
        let command = SessionCommand {
            client: session.client,
            sequence: session.sequence,
            body,
        }
        .encode();
        match self.node.append(command).await {
            Ok(applied) => match Sessions::<KvState>::decode_response(&applied.response) {
                Ok(response) => Reply::Kv(Response::decode(&response)),
                Err(error) => Reply::Error(ServiceError::Session(error.to_string())),
            },
            Err(error) => Reply::Error(error.into()),
        }
    }

    fn check_size(&self, values: &[Option<&Bytes>]) -> Result<(), ServiceError> {
        for value in values.iter().flatten() {
            if value.len() > self.value_bytes_max {
                return Err(ServiceError::ValueTooLarge {
                    size: value.len(),
                    max: self.value_bytes_max,
                });
            }
        }
        Ok(())
    }

    /// Executes one client request.
    pub async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Put {
                session,
                key,
                value,
            } => match self.check_size(&[Some(&value)]) {
                Ok(()) => self.write(session, Command::Put { key, value }).await,
                Err(error) => Reply::Error(error),
            },
            Request::Delete { session, key } => self.write(session, Command::Delete { key }).await,
            Request::Cas {
                session,
                key,
                expected,
                new,
            } => match self.check_size(&[expected.as_ref(), new.as_ref()]) {
                Ok(()) => {
                    self.write(session, Command::Cas { key, expected, new })
                        .await
                }
                Err(error) => Reply::Error(error),
            },
            Request::Get { key, stale } => {
                let consistency = if stale {
                    ReadConsistency::Stale
                } else {
                    ReadConsistency::Linearizable
                };
                match self
                    .node
                    .read(Query::Get { key }.encode(), consistency)
                    .await
                {
                    Ok(bytes) => Reply::Kv(Response::decode(&bytes)),
                    Err(error) => Reply::Error(error.into()),
                }
            }
            Request::Status => Reply::Status(Box::new(self.report().await)),
        }
    }

    async fn report(&self) -> NodeReport {
        let status = self.node.status();
        let metrics = self.node.metrics().await.unwrap_or_default();
        let (keys, state_crc, state_applied) = match self
            .node
            .read(Query::Digest.encode(), ReadConsistency::Stale)
            .await
            .map(|bytes| Response::decode(&bytes))
        {
            Ok(Response::Digest { keys, applied, crc }) => (keys, crc, applied),
            _ => (0, 0, 0),
        };
        NodeReport {
            id: status.id,
            protocol: self.node.protocol().to_string(),
            role: status.role,
            leader: status.leader,
            epoch: status.epoch,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            follower_lag: metrics.follower_lag.clone(),
            keys,
            state_crc,
            state_applied,
            commit_p50_us: metrics.commit_latency.p50_us,
            commit_p99_us: metrics.commit_latency.p99_us,
            fsync_p50_us: metrics.fsync_latency.p50_us,
            epoch_changes: metrics.epoch_changes,
        }
    }
}
