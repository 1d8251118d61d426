//! The key-value client: caches the leader, follows redirects, retries with
//! exponential backoff and jitter, and makes retries idempotent with a client
//! session (client id + sequence number), as the seed asks. A request whose
//! outcome cannot be known (timeout, lost connection after sending) is
//! reported as [`KvError::OutcomeUnknown`], never as a failure. A leader
//! hint that points at a node which has just failed to answer in this
//! operation is not followed for a while (see `Silent`): when a leader
//! dies, the followers name it until they elect another.
//!
//! One client keeps one connection per node, with one pipelined stream on
//! it ([`consensus_service::pipe`]): any number of operations may run on
//! one client at once (call it from many tasks), each on its own *session
//! lane* (a session id with its own sequence numbers), so a retry of one
//! operation is deduplicated however many others are in flight. Many
//! clients can share one QUIC endpoint ([`KvClient::with_endpoint`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{ClusterId, NodeId};
use consensus_service::pipe::{PipeClient, PipeError};
use consensus_service::retry::{next_node, Backoff, Silent};
use thiserror::Error;

use crate::config::ClusterConfig;
use crate::state::Response;
use crate::tls;
use crate::wire::{self, NodeReport, Reply, Request, ServiceError, Session, MESSAGE_BYTES_MAX};

/// How a client waits and retries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// One attempt at one node.
    pub attempt_timeout: Duration,
    /// All attempts of one operation together.
    pub operation_timeout: Duration,
    /// First retry delay (doubles each retry, with jitter).
    pub backoff_initial: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            attempt_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
        }
    }
}

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KvError {
    /// The operation may or may not have been applied (it timed out or the
    /// connection was lost after it was sent). Retrying it is safe only
    /// through the same client (same session sequence number).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// No node could serve the request in time; it was not applied.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The cluster refused the request; it was not applied.
    #[error("{0}")]
    Refused(ServiceError),
    /// The client could not be set up.
    #[error("client setup: {0}")]
    Setup(String),
}

/// A connection to a cluster: one pipelined connection per node, any number
/// of operations at once.
pub struct KvClient {
    endpoint: quinn::Endpoint,
    owns_endpoint: bool,
    cluster: ClusterId,
    /// The nodes (those given, and leaders learned from redirects), one
    /// slot each with its own lock, so connecting to a node that does not
    /// answer holds up only the operations aimed at it.
    nodes: std::sync::RwLock<BTreeMap<NodeId, Arc<NodeSlot>>>,
    leader: AtomicU64,
    client_id: u64,
    lanes: Mutex<Vec<Session>>,
    options: ClientOptions,
    rng: Mutex<rand::rngs::StdRng>,
    lost_replies: AtomicU64,
}

/// One node of a client: where it serves clients and the pipe to it.
struct NodeSlot {
    addr: SocketAddr,
    pipe: tokio::sync::Mutex<Option<PipeClient>>,
}

impl NodeSlot {
    fn new(addr: SocketAddr) -> Arc<NodeSlot> {
        Arc::new(NodeSlot {
            addr,
            pipe: tokio::sync::Mutex::new(None),
        })
    }
}

/// A session lane taken by one operation; handed back when the operation
/// ends (also when its future is dropped), with its sequence advanced.
struct Lane<'a> {
    client: &'a KvClient,
    session: Session,
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        self.client
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.session);
    }
}

/// A QUIC endpoint for clients of the nodes at `addrs`, trusting `ca_pem`:
/// bound to loopback when every node is on loopback, else to any address.
pub fn client_endpoint<'a>(
    addrs: impl IntoIterator<Item = &'a SocketAddr>,
    ca_pem: &str,
) -> Result<quinn::Endpoint, KvError> {
    consensus_service::tls::client_endpoint(addrs, ca_pem, &tls::options()).map_err(KvError::Setup)
}

/// The cluster CA of a configuration, as PEM.
pub fn read_ca(config: &ClusterConfig) -> Result<String, KvError> {
    consensus_service::tls::read_cluster_ca(config).map_err(KvError::Setup)
}

impl KvClient {
    /// A client of the nodes (`id`, client API address) of `cluster`,
    /// trusting `ca_pem`, on its own QUIC endpoint.
    pub fn new(
        cluster: &str,
        nodes: BTreeMap<NodeId, SocketAddr>,
        ca_pem: &str,
        options: ClientOptions,
    ) -> Result<KvClient, KvError> {
        if nodes.is_empty() {
            return Err(KvError::Setup("no nodes to connect to".into()));
        }
        let endpoint = client_endpoint(nodes.values(), ca_pem)?;
        let mut client = KvClient::with_endpoint(endpoint, cluster, nodes, options)?;
        client.owns_endpoint = true;
        Ok(client)
    }

    /// A client on a shared endpoint (made by [`client_endpoint`]): many
    /// clients, one UDP socket and one endpoint driver.
    pub fn with_endpoint(
        endpoint: quinn::Endpoint,
        cluster: &str,
        nodes: BTreeMap<NodeId, SocketAddr>,
        options: ClientOptions,
    ) -> Result<KvClient, KvError> {
        if nodes.is_empty() {
            return Err(KvError::Setup("no nodes to connect to".into()));
        }
        let cluster =
            ClusterId::new(cluster.to_string()).map_err(|e| KvError::Setup(e.to_string()))?;
        let client_id = new_session_id();
        let nodes = nodes
            .into_iter()
            .map(|(id, addr)| (id, NodeSlot::new(addr)))
            .collect();
        Ok(KvClient {
            endpoint,
            owns_endpoint: false,
            cluster,
            nodes: std::sync::RwLock::new(nodes),
            leader: AtomicU64::new(0),
            client_id,
            lanes: Mutex::new(vec![Session {
                client: client_id,
                sequence: 0,
            }]),
            options,
            rng: Mutex::new(rand::SeedableRng::seed_from_u64(client_id)),
            lost_replies: AtomicU64::new(0),
        })
    }

    /// A client for the cluster described by a configuration file.
    pub fn from_config(
        config: &ClusterConfig,
        options: ClientOptions,
    ) -> Result<KvClient, KvError> {
        let nodes = config.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
        KvClient::new(&config.cluster_id, nodes, &read_ca(config)?, options)
    }

    /// A client for the cluster of a configuration file on a shared endpoint.
    pub fn from_config_on(
        config: &ClusterConfig,
        endpoint: quinn::Endpoint,
        options: ClientOptions,
    ) -> Result<KvClient, KvError> {
        let nodes = config.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
        KvClient::with_endpoint(endpoint, &config.cluster_id, nodes, options)
    }

    /// Fault injection for tests: the next `count` replies that reach this
    /// client are thrown away as if the network had lost them (the server
    /// did the work). The client then retries with the same session number.
    pub fn inject_lost_replies(&self, count: u64) {
        self.lost_replies.store(count, Ordering::Relaxed);
    }

    /// Sets the node this client sends to first (as if it were the cached
    /// leader).
    pub fn prefer(&self, id: NodeId) {
        self.leader.store(id, Ordering::Relaxed);
    }

    /// This client's first session id (the one a client doing one
    /// operation at a time always uses).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The leader this client currently sends to, if known.
    pub fn cached_leader(&self) -> Option<NodeId> {
        match self.leader.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    /// A free session lane with its next sequence number (a new lane when
    /// every lane is busy).
    fn lane(&self) -> Lane<'_> {
        let free = self.lanes.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut session = free.unwrap_or_else(|| Session {
            client: new_session_id(),
            sequence: 0,
        });
        session.sequence += 1;
        Lane {
            client: self,
            session,
        }
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<(), KvError> {
        let lane = self.lane();
        let request = Request::Put {
            session: lane.session,
            key: key.to_string(),
            value,
        };
        match self.call(&request, true).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Removes `key`; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let lane = self.lane();
        let request = Request::Delete {
            session: lane.session,
            key: key.to_string(),
        };
        match self.call(&request, true).await? {
            Response::Deleted(existed) => Ok(existed),
            other => Err(unexpected(other)),
        }
    }

    /// Compare-and-set: returns whether it swapped and the value it found.
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<(bool, Option<Bytes>), KvError> {
        let lane = self.lane();
        let request = Request::Cas {
            session: lane.session,
            key: key.to_string(),
            expected,
            new,
        };
        match self.call(&request, true).await? {
            Response::Cas { swapped, previous } => Ok((swapped, previous)),
            other => Err(unexpected(other)),
        }
    }

    /// Reads `key`: linearizable, or from whichever node answers when `stale`.
    pub async fn get(&self, key: &str, stale: bool) -> Result<Option<Bytes>, KvError> {
        let request = Request::Get {
            key: key.to_string(),
            stale,
        };
        match self.call(&request, false).await? {
            Response::Value(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Asks one node for its report.
    pub async fn status(&self, id: NodeId) -> Result<NodeReport, KvError> {
        match tokio::time::timeout(
            self.options.attempt_timeout,
            self.send(id, &Request::Status),
        )
        .await
        {
            Ok(Ok(Reply::Status(report))) => Ok(*report),
            Ok(Ok(Reply::Error(error))) => Err(KvError::Refused(error)),
            Ok(Ok(other)) => Err(KvError::Unavailable(format!(
                "node {id} answered {other:?}"
            ))),
            Ok(Err(error)) => Err(KvError::Unavailable(format!("node {id}: {error}"))),
            Err(_) => {
                // The connection may be to a process that is gone (killed
                // and restarted): the next query connects afresh instead of
                // waiting for QUIC's idle timeout to notice.
                self.forget_pipe(id).await;
                Err(KvError::Unavailable(format!(
                    "node {id} did not answer in time"
                )))
            }
        }
    }

    /// Connects to every node now instead of on first use, so moving to
    /// another node after a failure (which a classic Paxos client, with no
    /// leader to follow, does at every failover) costs no QUIC and TLS
    /// handshake. A connection lost later is made again on its next use. A
    /// node that does not answer within the attempt timeout is left for
    /// later. Returns how many nodes are connected.
    pub async fn connect_all(&self) -> usize {
        let ids = self.node_ids();
        let attempts = ids
            .iter()
            .map(|&id| tokio::time::timeout(self.options.attempt_timeout, self.pipe(id)));
        futures::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|attempt| matches!(attempt, Ok(Ok(_))))
            .count()
    }

    /// The node ids this client knows.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.read_nodes().keys().copied().collect()
    }

    fn read_nodes(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, Arc<NodeSlot>>> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: NodeId) -> Option<Arc<NodeSlot>> {
        self.read_nodes().get(&id).cloned()
    }

    /// Learns (or moves) node `id` from a redirect: a member added after
    /// this client's node list was written.
    fn learn_node(&self, id: NodeId, addr: SocketAddr) {
        if self.slot(id).is_some_and(|slot| slot.addr == addr) {
            return;
        }
        tracing::debug!(node = id, %addr, "client learned a node from a redirect");
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, NodeSlot::new(addr));
    }

    fn next_node(&self, after: NodeId) -> NodeId {
        next_node(&self.node_ids(), after, |_| false)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let backoff = Backoff {
            initial: self.options.backoff_initial,
            max: self.options.backoff_max,
        };
        backoff.pause(
            attempt,
            &mut *self.rng.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Runs one operation with redirects and retries. `write` operations
    /// that may have reached a node are reported as outcome-unknown when
    /// they finally fail.
    async fn call(&self, request: &Request, write: bool) -> Result<Response, KvError> {
        let deadline = Instant::now() + self.options.operation_timeout;
        let mut target = self.cached_leader().unwrap_or_else(|| self.next_node(0));
        let mut maybe_applied = false;
        let mut last_problem = String::from("no attempt made");
        let mut attempt = 0u32;
        let ids = self.node_ids();
        let mut silent = Silent::new(silent_window(&self.options));
        while Instant::now() < deadline {
            // Set when this attempt ended by the attempt timeout: the client
            // has waited already, so it tries the next node at once (an
            // answer such as "unavailable" or "no leader yet" is what the
            // backoff paces).
            let mut timed_out = false;
            let left = deadline.saturating_duration_since(Instant::now());
            let result = tokio::time::timeout(
                self.options.attempt_timeout.min(left),
                self.send(target, request),
            )
            .await;
            let retry_elsewhere = match result {
                Ok(Ok(Reply::Kv(Response::Malformed))) => {
                    return Err(KvError::Refused(ServiceError::Invalid(
                        "the server could not decode the request".into(),
                    )))
                }
                Ok(Ok(Reply::Kv(response))) => {
                    self.leader.store(target, Ordering::Relaxed);
                    return Ok(response);
                }
                Ok(Ok(Reply::Status(_))) => {
                    return Err(KvError::Refused(ServiceError::Invalid(
                        "unexpected status reply".into(),
                    )))
                }
                Ok(Ok(Reply::Error(error))) => match error {
                    ServiceError::NotLeader {
                        leader: Some(leader),
                        leader_addr,
                    } if leader != target
                        && (leader_addr.is_some() || self.slot(leader).is_some())
                        && !silent.avoids(leader, Instant::now()) =>
                    {
                        if let Some(addr) = leader_addr {
                            self.learn_node(leader, addr);
                        }
                        last_problem = format!("node {target} redirected to {leader}");
                        target = leader;
                        self.leader.store(leader, Ordering::Relaxed);
                        continue;
                    }
                    ServiceError::NotLeader { .. }
                    | ServiceError::Unavailable
                    | ServiceError::Overloaded
                    | ServiceError::Stopped(_)
                    | ServiceError::Storage(_) => {
                        last_problem = format!("node {target}: {error}");
                        true
                    }
                    ServiceError::OutcomeUnknown(_) => {
                        maybe_applied = true;
                        last_problem = format!("node {target}: {error}");
                        true
                    }
                    ServiceError::ValueTooLarge { .. } | ServiceError::Invalid(_) => {
                        return Err(KvError::Refused(error));
                    }
                    ServiceError::Session(_) => {
                        // The session moved past this request: its outcome is whatever happened before.
                        return Err(KvError::OutcomeUnknown(error.to_string()));
                    }
                },
                Ok(Err(SendError::BeforeSending(problem))) => {
                    silent.note(target, Instant::now());
                    last_problem = format!("node {target}: {problem}");
                    true
                }
                Ok(Err(SendError::AfterSending(problem))) => {
                    silent.note(target, Instant::now());
                    maybe_applied |= write;
                    last_problem = format!("node {target}: {problem}");
                    true
                }
                Err(_) => {
                    timed_out = true;
                    silent.note(target, Instant::now());
                    maybe_applied |= write;
                    self.forget_pipe(target).await;
                    last_problem = format!(
                        "node {target} did not answer within {:?}",
                        self.options.attempt_timeout
                    );
                    true
                }
            };
            if retry_elsewhere {
                self.leader.store(0, Ordering::Relaxed);
                let now = Instant::now();
                let previous = target;
                target = next_node(&ids, target, |id| silent.avoids(id, now));
                if timed_out && target != previous {
                    continue;
                }
                let pause = self
                    .backoff(attempt)
                    .min(deadline.saturating_duration_since(Instant::now()));
                attempt += 1;
                tokio::time::sleep(pause).await;
            }
        }
        if maybe_applied {
            Err(KvError::OutcomeUnknown(format!(
                "no answer within {:?}; the last problem: {last_problem}",
                self.options.operation_timeout
            )))
        } else {
            Err(KvError::Unavailable(format!(
                "no node could serve the request within {:?}; the last problem: {last_problem}. \
                 Check that a majority of the nodes are running and reachable.",
                self.options.operation_timeout
            )))
        }
    }

    /// The pipe to node `id`, connecting first if there is none (or the last
    /// one closed).
    async fn pipe(&self, id: NodeId) -> Result<PipeClient, String> {
        let node = self.slot(id).ok_or_else(|| format!("unknown node {id}"))?;
        let mut slot = node.pipe.lock().await;
        if let Some(pipe) = slot.as_ref() {
            if !pipe.is_closed() {
                return Ok(pipe.clone());
            }
        }
        let addr = node.addr;
        let name = tls::server_name(&self.cluster, id);
        let connecting = self
            .endpoint
            .connect(addr, &name)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let connection = connecting
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let pipe = PipeClient::open(connection, MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| format!("opening the request stream to {addr}: {e}"))?;
        *slot = Some(pipe.clone());
        Ok(pipe)
    }

    async fn forget_pipe(&self, id: NodeId) {
        if let Some(slot) = self.slot(id) {
            if let Some(pipe) = slot.pipe.lock().await.take() {
                pipe.close();
            }
        }
    }

    async fn send(&self, id: NodeId, request: &Request) -> Result<Reply, SendError> {
        let pipe = self.pipe(id).await.map_err(SendError::BeforeSending)?;
        let bytes = match pipe.call(wire::encode(request)).await {
            Ok(bytes) => bytes,
            Err(PipeError::Closed(problem)) => {
                self.forget_pipe(id).await;
                return Err(SendError::BeforeSending(problem));
            }
            Err(error) => {
                self.forget_pipe(id).await;
                return Err(SendError::AfterSending(error.to_string()));
            }
        };
        let lose = self
            .lost_replies
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(SendError::AfterSending("reply lost (injected)".into()));
        }
        wire::decode::<Reply>(&bytes)
            .map_err(|e| SendError::AfterSending(format!("reply does not decode: {e}")))
    }

    /// Closes the client's connections; a client that owns its endpoint
    /// also waits (briefly) for the endpoint to tell the servers.
    pub async fn close(&self) {
        let slots: Vec<Arc<NodeSlot>> = self.read_nodes().values().cloned().collect();
        for slot in slots {
            if let Some(pipe) = slot.pipe.lock().await.take() {
                pipe.close();
            }
        }
        if self.owns_endpoint {
            let _ = tokio::time::timeout(CLOSE_WAIT_MAX, self.endpoint.wait_idle()).await;
        }
    }
}

/// Longest a closing client waits for its endpoint to go idle (the close
/// frames to be sent); the servers time idle connections out anyway.
pub const CLOSE_WAIT_MAX: Duration = Duration::from_millis(500);

/// A fresh random session id (odd, never 0).
fn new_session_id() -> u64 {
    rand::random::<u64>() | 1
}

/// How long one operation avoids a node that did not answer: twice the
/// attempt timeout (long enough for the other nodes to elect a new leader
/// with 150-250 ms election timeouts and a 100 ms attempt timeout), but at
/// most a quarter of the operation timeout (a node that was only slow is
/// asked again within the operation).
fn silent_window(options: &ClientOptions) -> Duration {
    options
        .attempt_timeout
        .saturating_mul(2)
        .min(options.operation_timeout / 4)
}

enum SendError {
    /// The request certainly did not reach the node.
    BeforeSending(String),
    /// The request may have reached the node.
    AfterSending(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::BeforeSending(problem) => write!(f, "{problem}"),
            SendError::AfterSending(problem) => {
                write!(f, "{problem} (the request may have arrived)")
            }
        }
    }
}

fn unexpected(response: Response) -> KvError {
    KvError::Refused(ServiceError::Invalid(format!(
        "unexpected response {response:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded_by_the_operation_timeout() {
        let short = ClientOptions {
            attempt_timeout: Duration::from_millis(100),
            operation_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        };
        assert_eq!(silent_window(&short), Duration::from_millis(200));
        assert_eq!(
            silent_window(&ClientOptions::default()),
            Duration::from_millis(2500)
        );
    }
}
