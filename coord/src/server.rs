//! `consensus-coord serve`: one node of the coordination service.
//!
//! A client attaches to any node and sends everything there, on one ordered
//! session stream. Reads are served from this node's replica (possibly
//! stale unless the client asks for `sync` or a linearizable read). Writes
//! are proposed locally, or forwarded to the leader's server when this node
//! is not the leader, and are answered only once **this** node applied
//! them, so the client reads its own writes and sees the watch events of a
//! change before the reply that reflects it.
//!
//! Three background tasks per server: the accept loop; the heartbeat
//! batcher (client pings become one `Touch` entry per batch, at most one per
//! session every quarter timeout); and the expirer loop (see
//! [`crate::expiry`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use consensus::{
    ClientError, ClusterId, ConsensusNode, LogIndex, NodeId, ReadConsistency, ReplicatedLog, Role,
};
use consensus_service::accept;
use consensus_service::backup::{BackupReply, BackupService};
use consensus_service::config::{ClusterConfig, NodeEntry};
use consensus_service::edge::{self, EdgeNode};
use consensus_service::members::{MemberService, WithDirectory};
use consensus_service::ops::RequestMetrics;
use consensus_service::pipe::{self, PipeClient, PipeError, PipeLimits};
use consensus_service::retry::Backoff;
use thiserror::Error;
use tokio::sync::{mpsc, Mutex};

use crate::machine::{ConnId, CoordMachine, Hub, MachineQuery, QueryAnswer};
use crate::state::{Command, CommandResponse, Write};
use crate::tls;
use crate::types::{CoordError, Op, SessionId};
use crate::wire::MemberReply;
use crate::wire::{
    self, Admin, AdminReply, Answer, Attached, ClientFrame, Forward, ForwardReply, Forwarded,
    Hello, NodeReport, Open, Request, ServerFrame, ServiceError,
};

/// How long a write or barrier is retried (redirects, elections) before the
/// server answers unavailable / outcome unknown.
const PROPOSE_DEADLINE: Duration = Duration::from_secs(8);
/// How long a request forwarded to the leader may wait for its answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC stream error code with which a forwarding pipe from a connection
/// without a node certificate is refused.
const FORWARD_REFUSED: u32 = 0x46;
/// How often a forwarded request checks that its target is still the leader.
const LEADER_CHECK_INTERVAL: Duration = Duration::from_millis(25);
/// How long a server waits to catch up with a reconnecting client's last
/// seen index before refusing it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);
/// Heartbeat batching window.
const TOUCH_BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Expirer loop period.
const EXPIRER_PERIOD: Duration = Duration::from_millis(25);

/// Why a server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The configuration does not list the node.
    #[error(transparent)]
    Config(#[from] consensus_service::config::ConfigError),
    /// The certificates could not be loaded.
    #[error("certificates in {dir}: {message} (create them with `consensus-coord certs --out {dir} --nodes N`)")]
    Certificates {
        /// The directory.
        dir: String,
        /// What failed.
        message: String,
    },
    /// The consensus node could not start.
    #[error("starting the consensus node: {0}")]
    Node(#[from] consensus::BuildError),
    /// The client endpoint could not be set up.
    #[error("client API on {addr}: {message}")]
    ClientApi {
        /// The address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// Restores a backup's data (see [`consensus_service::backup`]) into a
/// fresh coordination state: how `snapshot restore` checks a file before it
/// seeds a data directory.
pub fn check_backup_data(
    index: consensus::LogIndex,
    data: &Bytes,
) -> Result<(), consensus::RecoverError> {
    crate::state::CoordState::restore(index, data).map(drop)
}

/// Writes the one answer frame of a stream and finishes it (waiting until
/// the client has it).
async fn answer<T: serde::Serialize>(mut send: quinn::SendStream, reply: &T) {
    let _ = wire::write_frame(&mut send, reply).await;
    let _ = send.finish();
    let _ = send.stopped().await;
}

/// A running coordination node.
pub struct Server {
    node: Arc<ConsensusNode>,
    /// The node's published status, read without cloning it.
    status: tokio::sync::watch::Receiver<consensus::Status>,
    members: Arc<MemberService>,
    backup: BackupService,
    endpoint: quinn::Endpoint,
    id: NodeId,
    hub: Arc<Hub>,
    data_bytes_max: usize,
    cluster: ClusterId,
    forward_endpoint: quinn::Endpoint,
    forward_connections: Mutex<BTreeMap<NodeId, quinn::Connection>>,
    forward_pipes: Mutex<BTreeMap<NodeId, PipeClient>>,
    touches: mpsc::UnboundedSender<SessionId>,
    touch_queue: std::sync::Mutex<Option<mpsc::UnboundedReceiver<SessionId>>>,
    next_conn: AtomicU64,
    expirer: std::sync::atomic::AtomicBool,
    requests: RequestMetrics,
}

impl Server {
    /// Starts node `id` of `config`.
    pub fn start(config: &ClusterConfig, id: NodeId) -> Result<Arc<Server>, ServeError> {
        Server::start_with(config, id, None)
    }

    /// Starts node `id` of `config`; `initial` replaces the seeds as the
    /// initial membership of a node with an empty data directory (a node
    /// joining a running cluster is given the membership the cluster has
    /// now; classic Paxos must start from the seeds and ignores it).
    pub fn start_with(
        config: &ClusterConfig,
        id: NodeId,
        initial: Option<consensus::Membership>,
    ) -> Result<Arc<Server>, ServeError> {
        Server::start_entry(config, config.node(id)?.clone(), initial)
    }

    /// Starts the node of `entry`, which the configuration need not list (a
    /// node joining with `serve --join --peer-addr A --client-addr B`); see
    /// [`Server::start_with`] for `initial`.
    pub fn start_entry(
        config: &ClusterConfig,
        entry: NodeEntry,
        initial: Option<consensus::Membership>,
    ) -> Result<Arc<Server>, ServeError> {
        let id = entry.id;
        let (cluster, material) =
            edge::node_tls(config, id).map_err(|message| ServeError::Certificates {
                dir: config.certs_dir.display().to_string(),
                message,
            })?;
        let hub = Arc::new(Hub::new());
        let operator_token = match &config.operator_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ServeError::ClientApi {
                        addr: entry.client_addr.to_string(),
                        message: format!("operator token {}: {e}", path.display()),
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let notified = hub.clone();
        let (machine, directory) = WithDirectory::new(CoordMachine::new(hub.clone()));
        let machine = machine.on_directory_entry(move |index| notified.note_applied(index));
        let EdgeNode {
            node,
            members,
            backup,
        } = edge::start_node(
            config,
            &entry,
            material.clone(),
            (machine, directory),
            initial,
            "coord",
            operator_token,
        )?;
        let api = |message: String| ServeError::ClientApi {
            addr: entry.client_addr.to_string(),
            message,
        };
        let endpoint = quinn::Endpoint::server(
            tls::server_config(&material).map_err(api)?,
            entry.client_addr,
        )
        .map_err(|e| api(e.to_string()))?;
        let bind: SocketAddr = if entry.client_addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .expect("address");
        let bind = if entry.client_addr.ip().is_loopback() {
            SocketAddr::new(entry.client_addr.ip(), 0)
        } else {
            bind
        };
        let mut forward_endpoint =
            quinn::Endpoint::client(bind).map_err(|e| api(format!("forwarding endpoint: {e}")))?;
        forward_endpoint
            .set_default_client_config(tls::node_client_config(&material).map_err(api)?);
        let (touches, touch_queue) = mpsc::unbounded_channel();
        tracing::info!(
            node = id,
            protocol = %config.protocol,
            peer_addr = %entry.peer_addr,
            client_addr = %entry.client_addr,
            "coordination node started"
        );
        Ok(Arc::new(Server {
            status: node.status_watch(),
            node,
            members,
            backup,
            endpoint,
            id,
            hub,
            data_bytes_max: config.value_bytes_max.min(crate::types::DATA_BYTES_MAX),
            cluster,
            forward_endpoint,
            forward_connections: Mutex::new(BTreeMap::new()),
            forward_pipes: Mutex::new(BTreeMap::new()),
            touches,
            touch_queue: std::sync::Mutex::new(Some(touch_queue)),
            next_conn: AtomicU64::new(1),
            expirer: std::sync::atomic::AtomicBool::new(false),
            requests: RequestMetrics::new("coord", id, config.protocol),
        }))
    }

    /// The consensus node.
    pub fn node(&self) -> &Arc<ConsensusNode> {
        &self.node
    }

    /// The watch / session hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `shutdown` resolves, then stops the node cleanly.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let touch_queue = self.touch_queue.lock().expect("touch queue").take();
        let mut background = Vec::new();
        if let Some(queue) = touch_queue {
            background.push(tokio::spawn(self.clone().touch_batcher(queue)));
        }
        background.push(tokio::spawn(self.clone().expirer_loop()));
        let server = self.clone();
        let serve = Arc::new(move |connection: quinn::Connection| {
            let server = server.clone();
            accept::streams_of(connection, move |connection, send, recv| {
                server.clone().serve_stream(connection, send, recv)
            })
        });
        accept::accept_until(&self.endpoint, shutdown, serve).await;
        for task in background {
            task.abort();
        }
        if let Err(error) = self.node.shutdown().await {
            tracing::warn!(%error, "shutdown");
        }
        tracing::info!(node = self.id, "coordination node stopped");
    }

    async fn serve_stream(
        self: Arc<Self>,
        connection: quinn::Connection,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let open = match wire::read_frame::<Open>(&mut recv).await {
            Ok(Some(open)) => open,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "dropping a stream whose first frame does not decode");
                return;
            }
        };
        match open {
            Open::Session(hello) => self.serve_session(send, recv, hello).await,
            Open::ForwardPipe => {
                if !tls::is_node_connection(&connection) {
                    tracing::debug!("refusing a forwarding pipe from a non-node connection");
                    let _ = send.reset(FORWARD_REFUSED.into());
                    let _ = recv.stop(FORWARD_REFUSED.into());
                    return;
                }
                let limits = PipeLimits {
                    frame_bytes_max: wire::FRAME_BYTES_MAX,
                    ..PipeLimits::default()
                };
                let server = &self;
                let result =
                    pipe::serve_pipe(&connection, send, recv, &limits, |body| async move {
                        Bytes::from(wire::encode(&server.serve_forward(&body).await))
                    })
                    .await;
                if let Err(error) = result {
                    tracing::debug!(%error, "forwarding pipe closed");
                }
            }
            Open::Member(request) => {
                let started = std::time::Instant::now();
                let reply: MemberReply = self.members.handle(request).await;
                self.answer_operator("member", started, &reply, send).await;
            }
            Open::Backup(request) => {
                let started = std::time::Instant::now();
                let reply: BackupReply = self.backup.handle(request).await;
                self.answer_operator("backup", started, &reply, send).await;
            }
            Open::Admin(request) => {
                let reply = self.admin(request).await;
                answer(send, &reply).await;
            }
        }
    }

    /// Counts and times an operator request (`op`: "member", "backup")
    /// by its outcome, then writes its answer.
    async fn answer_operator<T, E>(
        &self,
        op: &'static str,
        started: std::time::Instant,
        reply: &Result<T, E>,
        send: quinn::SendStream,
    ) where
        Result<T, E>: serde::Serialize,
    {
        let result = if reply.is_ok() { "ok" } else { "refused" };
        self.requests.record(op, result, started.elapsed());
        answer(send, reply).await;
    }

    async fn query(&self, query: MachineQuery) -> Result<QueryAnswer, ServiceError> {
        let bytes = self
            .node
            .read(query.encode(), ReadConsistency::Stale)
            .await?;
        match QueryAnswer::decode(&bytes) {
            QueryAnswer::Malformed => Err(ServiceError::Invalid(
                "the state machine did not understand a query".into(),
            )),
            answer => Ok(answer),
        }
    }

    /// A status report of this node.
    pub async fn report(&self) -> NodeReport {
        let status = self.node.status();
        let (applied, znodes, sessions, digest) = match self.query(MachineQuery::Status).await {
            Ok(QueryAnswer::Status {
                applied,
                znodes,
                sessions,
                digest,
            }) => (applied, znodes, sessions, digest),
            _ => (self.hub.applied(), 0, 0, 0),
        };
        NodeReport {
            id: self.id,
            protocol: self.node.protocol().to_string(),
            role: status.role,
            leader: status.leader,
            epoch: status.epoch,
            commit_index: status.commit_index,
            applied_index: applied,
            znodes,
            sessions,
            connections: self.hub.connection_count() as u64,
            expirer: self.expirer.load(Ordering::Relaxed),
            digest,
        }
    }

    async fn admin(&self, request: Admin) -> AdminReply {
        match request {
            Admin::Status => AdminReply::Status(Box::new(self.report().await)),
            Admin::Session(session) => match self.query(MachineQuery::Session(session)).await {
                Ok(QueryAnswer::Session(report)) => AdminReply::Session(report),
                Ok(_) => AdminReply::Error(ServiceError::Invalid("unexpected answer".into())),
                Err(error) => AdminReply::Error(error),
            },
            Admin::Exists(path) => {
                match self.query(MachineQuery::Exists { path, watch: None }).await {
                    Ok(QueryAnswer::Read {
                        applied,
                        result: Ok(Answer::Exists(stat)),
                    }) => AdminReply::Exists(applied, stat),
                    Ok(QueryAnswer::Read {
                        result: Err(error), ..
                    }) => AdminReply::Error(error.into()),
                    Ok(_) => AdminReply::Error(ServiceError::Invalid("unexpected answer".into())),
                    Err(error) => AdminReply::Error(error),
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // Writes and barriers: local, or forwarded to the leader's server
    // ------------------------------------------------------------------

    async fn forward_connection(&self, to: NodeId) -> Result<quinn::Connection, String> {
        let mut connections = self.forward_connections.lock().await;
        if let Some(connection) = connections.get(&to) {
            if connection.close_reason().is_none() {
                return Ok(connection.clone());
            }
        }
        // The cluster file's nodes and those added since (address book).
        let addr = self
            .members
            .address(to)
            .map(|a| a.client_addr)
            .ok_or_else(|| format!("unknown node {to}"))?;
        let name = tls::server_name(&self.cluster, to);
        let connecting = self
            .forward_endpoint
            .connect(addr, &name)
            .map_err(|e| format!("connecting to node {to} at {addr}: {e}"))?;
        let connection = tokio::time::timeout(Duration::from_secs(2), connecting)
            .await
            .map_err(|_| format!("connecting to node {to} at {addr}: timed out"))?
            .map_err(|e| format!("connecting to node {to} at {addr}: {e}"))?;
        connections.insert(to, connection.clone());
        Ok(connection)
    }

    /// Runs one request that a follower's server forwarded here.
    async fn serve_forward(&self, body: &[u8]) -> ForwardReply {
        match wire::decode::<Forward>(body) {
            Ok(Forward::Append(command)) => match self.node.append(command).await {
                Ok(applied) => Ok(Forwarded::Appended {
                    index: applied.index,
                    response: applied.response,
                }),
                Err(error) => Err(redirect_error(error)),
            },
            Ok(Forward::Barrier) => match self.node.read_barrier().await {
                Ok(index) => Ok(Forwarded::Barrier { index }),
                Err(error) => Err(redirect_error(error)),
            },
            Err(error) => Err(ServiceError::Invalid(format!(
                "a forwarded request that does not decode: {error}"
            ))),
        }
    }

    /// The forwarding pipe to node `to`'s server, opened on first use and
    /// reopened once it closed.
    async fn forward_pipe(&self, to: NodeId) -> Result<PipeClient, String> {
        let mut pipes = self.forward_pipes.lock().await;
        if let Some(pipe) = pipes.get(&to) {
            if !pipe.is_closed() {
                return Ok(pipe.clone());
            }
        }
        pipes.remove(&to);
        let connection = self.forward_connection(to).await?;
        let preamble = wire::frame(&Open::ForwardPipe)?;
        let pipe = PipeClient::open_after(connection, wire::FRAME_BYTES_MAX, preamble.into())
            .await
            .map_err(|e| e.to_string())?;
        pipes.insert(to, pipe.clone());
        Ok(pipe)
    }

    async fn forward(&self, to: NodeId, request: Forward) -> Result<Forwarded, ForwardError> {
        let pipe = self.forward_pipe(to).await.map_err(ForwardError::NotSent)?;
        // Wait for the answer, but not for a leader that is gone: a leader
        // killed after the request left never answers, and its connection
        // only times out after the QUIC idle timeout. Once this node's own
        // view of the leader is no longer `to` (it noticed the loss, or
        // follows a newer leader), the request may or may not have been
        // committed: the caller retries (every command is idempotent).
        let body = Bytes::from(wire::encode(&request));
        let reply = pipe.call(body);
        tokio::pin!(reply);
        // One timer per forwarded request: the leader check, whose first
        // tick is one interval away (most answers come sooner), also
        // enforces the deadline.
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        let mut check = tokio::time::interval_at(
            tokio::time::Instant::now() + LEADER_CHECK_INTERVAL,
            LEADER_CHECK_INTERVAL,
        );
        loop {
            tokio::select! {
                answer = &mut reply => {
                    return match answer {
                        Ok(bytes) => match wire::decode::<ForwardReply>(&bytes) {
                            Ok(Ok(done)) => Ok(done),
                            Ok(Err(error)) => Err(ForwardError::Refused(error)),
                            Err(error) => Err(ForwardError::MaybeSent(format!(
                                "node {to} answered with bytes that do not decode: {error}"
                            ))),
                        },
                        Err(PipeError::Closed(problem)) => Err(ForwardError::NotSent(problem)),
                        Err(error) => Err(ForwardError::MaybeSent(error.to_string())),
                    };
                }
                _ = check.tick() => {
                    if Instant::now() >= deadline {
                        return Err(ForwardError::MaybeSent(format!(
                            "node {to} did not answer in time"
                        )));
                    }
                    if self.status.borrow().leader != Some(to) {
                        return Err(ForwardError::MaybeSent(format!(
                            "node {to} stopped being the leader while the request was forwarded"
                        )));
                    }
                }
            }
        }
    }

    /// The leader this node follows, when it is a follower that knows
    /// another node as leader reachable by forwarding.
    fn known_leader(&self) -> Option<NodeId> {
        let status = self.status.borrow();
        match (status.role, status.leader) {
            (Role::Follower | Role::Learner, Some(leader))
                if leader != self.id && self.members.address(leader).is_some() =>
            {
                Some(leader)
            }
            _ => None,
        }
    }

    /// Proposes `command` (every coordination command is idempotent under
    /// retry: session writes by sequence number, heartbeats and guarded
    /// expiries by nature, session creation by secret) and waits until this
    /// node applied it. Returns the index and the state machine's response.
    pub async fn propose(&self, command: Bytes) -> Result<(LogIndex, Bytes), ServiceError> {
        let deadline = Instant::now() + PROPOSE_DEADLINE;
        let mut maybe_applied = false;
        let mut last_problem = String::from("no attempt");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            // A follower that knows its leader forwards at once rather than
            // asking its own consensus node first (which would answer "not
            // leader" with the same hint); a stale view is corrected by the
            // answer of the node it names.
            let local = match self.known_leader() {
                Some(leader) => Err(ClientError::NotLeader { hint: Some(leader) }),
                None => self.node.append(command.clone()).await,
            };
            let outcome: Result<(LogIndex, Bytes), (ServiceError, bool)> = match local {
                Ok(applied) => Ok((applied.index, applied.response)),
                Err(ClientError::NotLeader { hint: Some(leader) })
                    if leader != self.id && self.members.address(leader).is_some() =>
                {
                    match self.forward(leader, Forward::Append(command.clone())).await {
                        Ok(Forwarded::Appended { index, response }) => Ok((index, response)),
                        Ok(Forwarded::Barrier { .. }) => Err((
                            ServiceError::OutcomeUnknown(format!(
                                "node {leader} answered a forwarded write with a barrier"
                            )),
                            true,
                        )),
                        Err(ForwardError::Refused(error)) => {
                            let unknown = error.is_outcome_unknown();
                            Err((error, unknown))
                        }
                        Err(ForwardError::NotSent(problem)) => {
                            Err((ServiceError::NotReady(problem), false))
                        }
                        Err(ForwardError::MaybeSent(problem)) => {
                            Err((ServiceError::OutcomeUnknown(problem), true))
                        }
                    }
                }
                Err(error) => {
                    let unknown = error.is_outcome_unknown();
                    Err((redirect_error(error), unknown))
                }
            };
            match outcome {
                Ok((index, response)) => {
                    if !self.hub.wait_applied(index, PROPOSE_DEADLINE).await {
                        return Err(ServiceError::NotReady(format!(
                            "this node has not applied index {index} yet"
                        )));
                    }
                    return Ok((index, response));
                }
                Err((error, unknown)) => {
                    maybe_applied |= unknown;
                    if !error.is_retryable() {
                        return Err(error);
                    }
                    last_problem = error.to_string();
                }
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
        if maybe_applied {
            Err(ServiceError::OutcomeUnknown(last_problem))
        } else {
            Err(ServiceError::Unavailable(last_problem))
        }
    }

    /// A read barrier through the leader: resolves once this node applied
    /// every write committed before the call (ZooKeeper's `sync`).
    pub async fn barrier(&self) -> Result<LogIndex, ServiceError> {
        let deadline = Instant::now() + PROPOSE_DEADLINE;
        let mut last_problem = String::from("no attempt");
        let mut attempt = 0u32;
        while Instant::now() < deadline {
            let local = match self.known_leader() {
                Some(leader) => Err(ClientError::NotLeader { hint: Some(leader) }),
                None => self.node.read_barrier().await,
            };
            let outcome = match local {
                Ok(index) => Ok(index),
                Err(ClientError::NotLeader { hint: Some(leader) })
                    if leader != self.id && self.members.address(leader).is_some() =>
                {
                    match self.forward(leader, Forward::Barrier).await {
                        Ok(Forwarded::Barrier { index }) => Ok(index),
                        Ok(Forwarded::Appended { .. }) => Err(ServiceError::NotReady(format!(
                            "node {leader} answered a forwarded barrier with a write"
                        ))),
                        Err(ForwardError::Refused(error)) => Err(error),
                        Err(ForwardError::NotSent(problem) | ForwardError::MaybeSent(problem)) => {
                            Err(ServiceError::NotReady(problem))
                        }
                    }
                }
                Err(error) => Err(redirect_error(error)),
            };
            match outcome {
                Ok(index) => {
                    if self.hub.wait_applied(index, PROPOSE_DEADLINE).await {
                        return Ok(index);
                    }
                    return Err(ServiceError::NotReady(format!(
                        "this node has not applied index {index} yet"
                    )));
                }
                Err(error) if error.is_retryable() => last_problem = error.to_string(),
                Err(error) => return Err(error),
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(ServiceError::Unavailable(last_problem))
    }

    // ------------------------------------------------------------------
    // Sessions
    // ------------------------------------------------------------------

    async fn attach(&self, hello: &Hello) -> Result<Attached, ServiceError> {
        if !self.hub.wait_applied(hello.last_seen, CATCH_UP_WAIT).await {
            return Err(ServiceError::NotReady(format!(
                "node {} is behind the client (applied {} < last seen {}); try another node",
                self.id,
                self.hub.applied(),
                hello.last_seen
            )));
        }
        if hello.session == 0 {
            let command = Command::CreateSession {
                timeout_ms: hello.timeout_ms,
                secret: hello.secret,
            };
            let (index, response) = self.propose(command.encode()).await?;
            return match CommandResponse::decode(&response) {
                CommandResponse::SessionCreated {
                    session,
                    timeout_ms,
                } => Ok(Attached {
                    session,
                    timeout_ms,
                    index,
                    node: self.id,
                }),
                other => Err(ServiceError::Invalid(format!(
                    "unexpected answer to session creation: {other:?}"
                ))),
            };
        }
        let timeout_ms = match self
            .query(MachineQuery::SessionAlive {
                session: hello.session,
                secret: hello.secret,
            })
            .await?
        {
            QueryAnswer::Alive {
                result: Ok(timeout_ms),
                ..
            } => timeout_ms,
            QueryAnswer::Alive {
                result: Err(CoordError::BadArguments(_)),
                ..
            } => {
                return Err(ServiceError::Forbidden(format!(
                    "wrong secret for session {:#x}",
                    hello.session
                )))
            }
            QueryAnswer::Alive {
                result: Err(error), ..
            } => return Err(error.into()),
            _ => return Err(ServiceError::Invalid("unexpected answer".into())),
        };
        // Confirm through the log (the leader may have expired it already).
        let touch = Command::Touch {
            sessions: vec![hello.session],
        };
        let (index, response) = self.propose(touch.encode()).await?;
        match CommandResponse::decode(&response) {
            CommandResponse::Touched { dead } if dead.contains(&hello.session) => {
                Err(CoordError::SessionExpired(hello.session).into())
            }
            CommandResponse::Touched { .. } => Ok(Attached {
                session: hello.session,
                timeout_ms,
                index,
                node: self.id,
            }),
            other => Err(ServiceError::Invalid(format!(
                "unexpected answer to a heartbeat: {other:?}"
            ))),
        }
    }

    async fn serve_session(
        self: Arc<Self>,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        hello: Hello,
    ) {
        let attached = match self.attach(&hello).await {
            Ok(attached) => attached,
            Err(error) => {
                let _ = wire::write_frame(&mut send, &wire::HelloReply::Err(error)).await;
                let _ = send.finish();
                let _ = send.stopped().await;
                return;
            }
        };
        let conn: ConnId = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (outbound, mut outbound_rx) = mpsc::unbounded_channel::<ServerFrame>();
        self.hub.connect(conn, attached.session, outbound.clone());
        let session = attached.session;
        let timeout = Duration::from_millis(attached.timeout_ms);
        // This task is the one ordered path to the client: watch events
        // and expiry notices queued on `outbound` (by the apply task), pongs
        // and replies leave in its stream writes, every frame already
        // queued in the same write.
        let mut output = Output::default();
        if let Err(error) = output.push(&wire::HelloReply::Ok(attached)) {
            tracing::debug!(%error, session, "hello reply");
            self.hub.disconnect(conn);
            return;
        }
        if !hello.watches.is_empty() {
            let _ = self
                .query(MachineQuery::SetWatches {
                    conn,
                    last_seen: hello.last_seen,
                    watches: hello.watches.clone(),
                })
                .await;
        }
        // One task reads the stream and runs its requests, one at a time in
        // arrival order (no hand-off to a second task per request); pings
        // are answered while a request runs.
        let touch_every = timeout / 4;
        let mut last_touch: Option<Instant> = None;
        let mut frames = FrameReader::default();
        let mut queued: VecDeque<(u64, bool, Request)> = VecDeque::new();
        let mut running: Option<Running<'_>> = None;
        'session: loop {
            loop {
                match frames.next() {
                    Ok(Some(ClientFrame::Ping)) => {
                        if let Err(error) = output
                            .drain(&mut outbound_rx)
                            .and_then(|()| output.push_frame(ServerFrame::Pong))
                        {
                            tracing::debug!(%error, session, "session output");
                            break 'session;
                        }
                        if last_touch.is_none_or(|at| at.elapsed() >= touch_every) {
                            last_touch = Some(Instant::now());
                            let _ = self.touches.send(session);
                        }
                    }
                    Ok(Some(ClientFrame::Request {
                        id,
                        linearizable,
                        request,
                    })) => {
                        if request.is_write() {
                            last_touch = Some(Instant::now());
                        }
                        queued.push_back((id, linearizable, request));
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(%error, session, "session stream ended");
                        break 'session;
                    }
                }
            }
            if running.is_none() {
                if let Some((id, linearizable, request)) = queued.pop_front() {
                    let server = &self;
                    running = Some(Box::pin(async move {
                        let (index, result) =
                            server.execute(conn, session, linearizable, request).await;
                        ServerFrame::Reply { id, index, result }
                    }));
                }
            }
            if !output.bytes.is_empty() {
                if let Err(error) = send.write_all(&output.bytes).await {
                    tracing::debug!(%error, session, "session stream ended");
                    break;
                }
                output.bytes.clear();
                if output.finish {
                    output.finish = false;
                    let _ = send.finish();
                }
            }
            tokio::select! {
                biased;
                reply = async { running.as_mut().expect("running").await }, if running.is_some() => {
                    running = None;
                    // The events queued before the reply (those of the
                    // changes it reflects among them) leave before it.
                    if let Err(error) = output
                        .drain(&mut outbound_rx)
                        .and_then(|()| output.push_frame(reply))
                    {
                        tracing::debug!(%error, session, "session output");
                        break;
                    }
                }
                frame = outbound_rx.recv(), if output.open => {
                    let Some(frame) = frame else { break };
                    if let Err(error) = output
                        .push_frame(frame)
                        .and_then(|()| output.drain(&mut outbound_rx))
                    {
                        tracing::debug!(%error, session, "session output");
                        break;
                    }
                }
                chunk = recv.read_chunk(READ_CHUNK_BYTES, true) => match chunk {
                    Ok(Some(chunk)) => frames.extend(&chunk.bytes),
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(%error, session, "session stream ended");
                        break;
                    }
                },
            }
        }
        drop(running);
        self.hub.disconnect(conn);
    }

    /// Executes one session request and counts it in the client request
    /// metrics.
    async fn execute(
        &self,
        conn: ConnId,
        session: SessionId,
        linearizable: bool,
        request: Request,
    ) -> (LogIndex, Result<Answer, ServiceError>) {
        let started = Instant::now();
        let op = request.op();
        let answer = self.run_request(conn, session, linearizable, request).await;
        let result = answer.1.as_ref().map_or_else(ServiceError::kind, |_| "ok");
        self.requests.record(op, result, started.elapsed());
        answer
    }

    async fn run_request(
        &self,
        conn: ConnId,
        session: SessionId,
        linearizable: bool,
        request: Request,
    ) -> (LogIndex, Result<Answer, ServiceError>) {
        if linearizable && !request.is_write() {
            if let Err(error) = self.barrier().await {
                return (self.hub.applied(), Err(error));
            }
        }
        let watch = |w: bool| w.then_some(conn);
        let query = match request {
            Request::Get { path, watch: w } => MachineQuery::Get {
                path,
                watch: watch(w),
            },
            Request::Exists { path, watch: w } => MachineQuery::Exists {
                path,
                watch: watch(w),
            },
            Request::Children { path, watch: w } => MachineQuery::Children {
                path,
                watch: watch(w),
            },
            Request::Sync => {
                return match self.barrier().await {
                    Ok(index) => (index, Ok(Answer::Synced)),
                    Err(error) => (self.hub.applied(), Err(error)),
                };
            }
            Request::Write { sequence, write } => {
                if let Err(error) = self.check_write(&write) {
                    return (self.hub.applied(), Err(error));
                }
                let command = Command::Request {
                    session,
                    sequence,
                    write,
                };
                return match self.propose(command.encode()).await {
                    Ok((index, response)) => (
                        index,
                        Ok(Answer::Written(CommandResponse::decode(&response))),
                    ),
                    Err(error) => (self.hub.applied(), Err(error)),
                };
            }
        };
        match self.query(query).await {
            Ok(QueryAnswer::Read { applied, result }) => {
                (applied, result.map_err(ServiceError::from))
            }
            Ok(_) => (
                self.hub.applied(),
                Err(ServiceError::Invalid("unexpected answer".into())),
            ),
            Err(error) => (self.hub.applied(), Err(error)),
        }
    }

    fn check_write(&self, write: &Write) -> Result<(), ServiceError> {
        let ops: &[Op] = match write {
            Write::Op(op) => std::slice::from_ref(op),
            Write::Multi(ops) => ops,
            Write::Close => &[],
        };
        let mut total = 0usize;
        for op in ops {
            if let Op::Create { data, .. } | Op::SetData { data, .. } = op {
                if data.len() > self.data_bytes_max {
                    return Err(CoordError::DataTooLarge {
                        size: data.len(),
                        max: self.data_bytes_max,
                    }
                    .into());
                }
                total += data.len();
            }
        }
        if total > wire::FRAME_BYTES_MAX / 2 {
            return Err(ServiceError::Invalid(format!(
                "a transaction may carry at most {} bytes of data",
                wire::FRAME_BYTES_MAX / 2
            )));
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Heartbeats and expiry
    // ------------------------------------------------------------------

    async fn touch_batcher(self: Arc<Self>, mut queue: mpsc::UnboundedReceiver<SessionId>) {
        while let Some(first) = queue.recv().await {
            tokio::time::sleep(TOUCH_BATCH_WINDOW).await;
            let mut sessions = BTreeSet::from([first]);
            while let Ok(session) = queue.try_recv() {
                sessions.insert(session);
            }
            let server = self.clone();
            tokio::spawn(async move {
                let command = Command::Touch {
                    sessions: sessions.into_iter().collect(),
                };
                match server.propose(command.encode()).await {
                    Ok((_, response)) => {
                        if let CommandResponse::Touched { dead } =
                            CommandResponse::decode(&response)
                        {
                            for session in dead {
                                server.hub.notify_ended(session);
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, "heartbeat batch not committed"),
                }
            });
        }
    }

    /// This node's rank as expirer: 0 for a leader; for leaderless
    /// protocols (Paxos) its position among the sorted voters; `None` when
    /// another node is the expirer.
    fn expirer_rank(&self) -> Option<u64> {
        let status = self.node.status();
        match status.role {
            Role::Leader => Some(0),
            Role::Peer => status
                .membership
                .all_voters()
                .iter()
                .position(|id| *id == self.id)
                .map(|rank| rank as u64),
            _ => None,
        }
    }

    async fn expirer_loop(self: Arc<Self>) {
        let mut was_leader = false;
        let mut ticker = tokio::time::interval(EXPIRER_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let rank = self.expirer_rank();
            self.expirer.store(rank == Some(0), Ordering::Relaxed);
            let is_leader = self.node.status().role == Role::Leader;
            let now = self.hub.now_ms();
            if is_leader && !was_leader {
                self.hub.with_tracker(|tracker| tracker.extend_all(now));
            }
            was_leader = is_leader;
            let Some(rank) = rank else { continue };
            let due = self.hub.with_tracker(|tracker| tracker.due(now, rank));
            for (session, last_active) in due {
                tracing::info!(
                    node = self.id,
                    session,
                    last_active,
                    "proposing session expiry"
                );
                let server = self.clone();
                tokio::spawn(async move {
                    let command = Command::ExpireSession {
                        session,
                        last_active,
                    };
                    if let Err(error) = server.propose(command.encode()).await {
                        tracing::debug!(%error, session, "expiry not committed");
                    }
                });
            }
        }
    }
}

/// The request a session is running.
type Running<'a> = std::pin::Pin<Box<dyn Future<Output = ServerFrame> + Send + 'a>>;

/// The frames a session has yet to write to its client.
struct Output {
    bytes: Vec<u8>,
    /// False once `SessionExpired` is queued: nothing follows it.
    open: bool,
    /// The stream is to be finished after the next write.
    finish: bool,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            bytes: Vec::new(),
            open: true,
            finish: false,
        }
    }
}

impl Output {
    fn push<T: serde::Serialize>(&mut self, frame: &T) -> Result<(), String> {
        if self.open {
            wire::append_frame(&mut self.bytes, frame)?;
        }
        Ok(())
    }

    fn push_frame(&mut self, frame: ServerFrame) -> Result<(), String> {
        self.push(&frame)?;
        if frame == ServerFrame::SessionExpired && self.open {
            self.open = false;
            self.finish = true;
        }
        Ok(())
    }

    /// Queues every frame already waiting on `queue`.
    fn drain(&mut self, queue: &mut mpsc::UnboundedReceiver<ServerFrame>) -> Result<(), String> {
        while self.open {
            match queue.try_recv() {
                Ok(frame) => self.push_frame(frame)?,
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// How much of a session stream is read at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Splits a session stream into [`ClientFrame`]s: the frames of
/// [`wire::read_frame`] (a little-endian `u32` length, then the body), read
/// from whatever chunks the stream delivers.
#[derive(Default)]
struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` until one is complete; an error for
    /// a frame above [`wire::FRAME_BYTES_MAX`] or a body that does not
    /// decode.
    fn next(&mut self) -> Result<Option<ClientFrame>, String> {
        let Some(header) = self.buffer.get(..4) else {
            return Ok(None);
        };
        let length = u32::from_le_bytes(header.try_into().expect("four bytes")) as usize;
        if length > wire::FRAME_BYTES_MAX {
            return Err(format!(
                "frame of {length} bytes exceeds {}",
                wire::FRAME_BYTES_MAX
            ));
        }
        if self.buffer.len() < 4 + length {
            return Ok(None);
        }
        let frame = self.buffer.split_to(4 + length);
        wire::decode(&frame[4..]).map(Some)
    }
}

enum ForwardError {
    /// Certainly not delivered.
    NotSent(String),
    /// Maybe delivered.
    MaybeSent(String),
    /// Delivered and answered with this error.
    Refused(ServiceError),
}

/// A node's own refusal, as a retryable service error.
fn redirect_error(error: ClientError) -> ServiceError {
    ServiceError::from(error)
}

/// Pauses between a forwarding server's retries.
const FORWARD_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_millis(300),
};

fn backoff(attempt: u32) -> Duration {
    FORWARD_BACKOFF.pause(attempt, &mut rand::rng())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_reader_splits_frames_written_by_append_frame_whatever_the_chunks() {
        let frames = vec![
            ClientFrame::Ping,
            ClientFrame::Request {
                id: 7,
                linearizable: true,
                request: Request::Sync,
            },
            ClientFrame::Request {
                id: 8,
                linearizable: false,
                request: Request::Get {
                    path: "/a/b".into(),
                    watch: true,
                },
            },
        ];
        let mut stream = Vec::new();
        for frame in &frames {
            wire::append_frame(&mut stream, frame).unwrap();
        }
        for chunk in [1, 3, 5, stream.len()] {
            let mut reader = FrameReader::default();
            let mut read = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.extend(piece);
                while let Some(frame) = reader.next().unwrap() {
                    read.push(frame);
                }
            }
            assert_eq!(read, frames, "chunks of {chunk} bytes");
            assert!(reader.buffer.is_empty());
        }
    }

    #[test]
    fn session_output_keeps_queue_order_and_ends_with_the_expiry_notice() {
        let (queue, mut queued) = mpsc::unbounded_channel();
        let event = |path: &str| {
            ServerFrame::Event(crate::types::WatchEvent {
                kind: crate::types::EventKind::NodeDataChanged,
                path: path.into(),
                index: 3,
            })
        };
        queue.send(event("/a")).unwrap();
        queue.send(event("/b")).unwrap();
        let mut output = Output::default();
        output.drain(&mut queued).unwrap();
        output.push_frame(ServerFrame::Pong).unwrap();
        queue.send(ServerFrame::SessionExpired).unwrap();
        queue.send(event("/c")).unwrap();
        output.drain(&mut queued).unwrap();
        output.push_frame(ServerFrame::Pong).unwrap();
        assert!(!output.open && output.finish);
        let mut written = Vec::new();
        for frame in [
            event("/a"),
            event("/b"),
            ServerFrame::Pong,
            ServerFrame::SessionExpired,
        ] {
            wire::append_frame(&mut written, &frame).unwrap();
        }
        assert_eq!(output.bytes, written, "nothing follows the expiry notice");
    }

    #[test]
    fn the_frame_reader_refuses_an_oversized_frame_and_a_body_that_does_not_decode() {
        let mut reader = FrameReader::default();
        reader.extend(&((wire::FRAME_BYTES_MAX as u32 + 1).to_le_bytes()));
        assert!(reader.next().is_err());
        let mut reader = FrameReader::default();
        reader.extend(&3u32.to_le_bytes());
        assert_eq!(reader.next(), Ok(None), "incomplete");
        reader.extend(&[0xff, 0xff, 0xff]);
        assert!(reader.next().is_err());
    }
}
