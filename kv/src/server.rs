//! `consensus-kv serve`: one node of the replicated key-value service.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use consensus::{ConsensusNode, NodeId, ReadConsistency, ReplicatedLog, SessionCommand, Sessions};
use thiserror::Error;

use consensus_service::accept;
use consensus_service::backup::BackupService;
use consensus_service::config::NodeEntry;
use consensus_service::edge::{self, EdgeNode};
use consensus_service::members::{same_secret, MemberService, WithDirectory};
use consensus_service::ops::RequestMetrics;
use consensus_service::pipe::{self, PipeLimits};

use crate::config::ClusterConfig;
use crate::state::{Command, KvState, Query, Response};
use crate::tls;
use crate::wire::{
    self, AdminCommand, AdminRefusal, AdminReply, AdminRequest, Link, NodeReport, Reply, Request,
    ServiceError, Session, ADMIN_LINKS_MAX, MESSAGE_BYTES_MAX,
};
use crate::wire::{MemberReply, MemberRequest};

/// Client sessions kept by the state machine (least recently used evicted).
pub const SESSIONS_MAX: usize = 100_000;

/// Restores a backup's data (see [`consensus_service::backup`]) into a
/// fresh state machine of the service: how `snapshot restore` checks a file
/// before it seeds a data directory.
pub fn check_backup_data(
    index: consensus::LogIndex,
    data: &Bytes,
) -> Result<(), consensus::RecoverError> {
    use consensus::StateMachine;
    let (mut machine, _) = WithDirectory::new(Sessions::new(KvState::new(), SESSIONS_MAX));
    machine.restore(index, data)
}

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
    /// Fault injection is on but its admin secret is unusable.
    #[error("admin token {path}: {message}")]
    AdminToken {
        /// The token file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The client API endpoint could not be set up.
    #[error("client API on {addr}: {message}")]
    ClientApi {
        /// The address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// Shortest admin secret accepted (characters).
pub const ADMIN_TOKEN_CHARS_MIN: usize = 32;

/// Fault injection through admin commands (only with `[testing]
/// fault_injection = true`).
struct Admin {
    token: String,
    members: BTreeSet<NodeId>,
    blocked: Mutex<BTreeSet<Link>>,
}

/// Reads and checks the admin secret.
pub fn read_admin_token(path: &std::path::Path) -> Result<String, ServeError> {
    let error = |message: String| ServeError::AdminToken {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let token = text.trim().to_string();
    if token.chars().count() < ADMIN_TOKEN_CHARS_MIN || token.chars().any(char::is_whitespace) {
        return Err(error(format!(
            "the secret must be one word of at least {ADMIN_TOKEN_CHARS_MIN} characters \
             (create one with `consensus-kv admin token --config FILE`)"
        )));
    }
    Ok(token)
}

/// A running key-value node: the consensus node plus the client API.
pub struct Server {
    node: Arc<ConsensusNode>,
    endpoint: quinn::Endpoint,
    id: NodeId,
    value_bytes_max: usize,
    admin: Option<Admin>,
    members: Arc<MemberService>,
    backup: BackupService,
    requests: RequestMetrics,
}

impl Server {
    /// Starts node `id` of `config`: opens its data directory, joins the
    /// cluster over QUIC and serves the client API.
    pub fn start(config: &ClusterConfig, id: NodeId) -> Result<Arc<Server>, ServeError> {
        let entry = config.node(id)?.clone();
        Server::start_entry(config, entry, None)
    }

    /// Starts the node of `entry`, which the configuration need not list
    /// (a node joining with `serve --join --peer-addr A --client-addr B`).
    /// A node that is not a seed starts with the seeds as its initial
    /// membership, is not a voter of it and so never campaigns: it waits
    /// for the leader, whose log says the real membership (the operator
    /// runs `member add` for it). At start it asks the other nodes for the
    /// address book, so it can reach members the file does not list.
    ///
    /// `initial` replaces the seeds as the initial membership of a node with
    /// an empty data directory: a joining node is given the membership the
    /// cluster has now (ZAB's learners find the leader through the voters
    /// they know). Classic Paxos must start from the seeds (the
    /// configuration of slot 1), so it ignores `initial`.
    pub fn start_entry(
        config: &ClusterConfig,
        entry: NodeEntry,
        initial: Option<consensus::Membership>,
    ) -> Result<Arc<Server>, ServeError> {
        let id = entry.id;
        let (_, material) =
            edge::node_tls(config, id).map_err(|message| ServeError::Certificates {
                dir: config.certs_dir.display().to_string(),
                message,
            })?;
        let admin = match (
            &config.testing.admin_token_file,
            config.testing.fault_injection,
        ) {
            (Some(path), true) => Some(Admin {
                token: read_admin_token(path)?,
                members: config.nodes.iter().map(|n| n.id).collect(),
                blocked: Mutex::new(BTreeSet::new()),
            }),
            _ => None,
        };
        let operator_token = config
            .operator_token_file
            .as_deref()
            .map(read_admin_token)
            .transpose()?;
        let machine = WithDirectory::new(Sessions::new(KvState::new(), SESSIONS_MAX));
        let EdgeNode {
            node,
            members,
            backup,
        } = edge::start_node(
            config,
            &entry,
            material.clone(),
            machine,
            initial,
            "kv",
            operator_token.clone(),
        )?;
        if let Some(token) = operator_token {
            crate::members::spawn_address_fetch(config, id, token, node.clone());
        }
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
        if admin.is_some() {
            tracing::warn!(
                node = id,
                "fault injection is ON ([testing] fault_injection = true): authenticated admin \
                 commands can partition this node; never use this setting in production"
            );
        }
        Ok(Arc::new(Server {
            node,
            endpoint,
            id,
            value_bytes_max: config.value_bytes_max,
            admin,
            members,
            backup,
            requests: RequestMetrics::new("kv", id, config.protocol),
        }))
    }

    /// The consensus node.
    pub fn node(&self) -> &Arc<ConsensusNode> {
        &self.node
    }

    /// Serves clients until `shutdown` resolves, then stops the node cleanly.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let server = self.clone();
        let serve = Arc::new(move |connection: quinn::Connection| {
            let server = server.clone();
            accept::streams_of(connection, move |connection, send, recv| {
                server.clone().serve_pipe(connection, send, recv)
            })
        });
        accept::accept_until(&self.endpoint, shutdown, serve).await;
        if let Err(error) = self.node.shutdown().await {
            tracing::warn!(%error, "shutdown");
        }
        tracing::info!(node = self.id, "key-value node stopped");
    }

    /// Serves one client pipe: many requests in flight, answered by id.
    async fn serve_pipe(
        self: Arc<Self>,
        connection: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) {
        let limits = PipeLimits {
            frame_bytes_max: MESSAGE_BYTES_MAX,
            ..PipeLimits::default()
        };
        let result = pipe::serve_pipe(&connection, send, recv, &limits, |body| {
            let server = self.clone();
            async move { server.answer(&body).await }
        })
        .await;
        if let Err(error) = result {
            tracing::debug!(node = self.id, %error, "client pipe ended");
        }
    }

    /// Decodes one request, executes it, encodes the answer.
    pub async fn answer(&self, request: &[u8]) -> Bytes {
        match wire::decode::<Request>(request) {
            Ok(Request::Admin(request)) => wire::encode(&self.admin(request)),
            Ok(Request::Member(request)) => wire::encode(&self.member(request).await),
            Ok(Request::Backup(request)) => {
                let started = std::time::Instant::now();
                let reply = self.backup.handle(request).await;
                let result = if reply.is_ok() { "ok" } else { "refused" };
                self.requests.record("backup", result, started.elapsed());
                wire::encode(&reply)
            }
            Ok(request) => wire::encode(&self.with_leader_addr(self.handle(request).await)),
            Err(error) => wire::encode(&Reply::Error(ServiceError::Invalid(format!(
                "request does not decode: {error}"
            )))),
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

    /// Executes one client request (and counts it in the client request
    /// metrics).
    pub async fn handle(&self, request: Request) -> Reply {
        let started = std::time::Instant::now();
        let op = request.op();
        let reply = self.execute(request).await;
        self.requests
            .record(op, reply.result_kind(), started.elapsed());
        reply
    }

    async fn execute(&self, request: Request) -> Reply {
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
            Request::Admin(_) | Request::Member(_) | Request::Backup(_) => {
                Reply::Error(ServiceError::Invalid(
                    "admin, member and backup requests are answered by Server::answer".into(),
                ))
            }
        }
    }

    /// A redirect names where the leader serves clients (cluster file or
    /// address book), so a client that does not know a member added since
    /// can follow it.
    fn with_leader_addr(&self, reply: Reply) -> Reply {
        match reply {
            Reply::Error(ServiceError::NotLeader {
                leader: Some(leader),
                leader_addr: None,
            }) => Reply::Error(ServiceError::NotLeader {
                leader: Some(leader),
                leader_addr: self.members.address(leader).map(|a| a.client_addr),
            }),
            other => other,
        }
    }

    /// Executes a membership request (and counts it in the client request
    /// metrics, op `member`).
    pub async fn member(&self, request: MemberRequest) -> MemberReply {
        let started = std::time::Instant::now();
        let reply = self.members.handle(request).await;
        let result = match &reply {
            Ok(_) => "ok",
            Err(error) => member_error_kind(error),
        };
        self.requests.record("member", result, started.elapsed());
        reply
    }

    /// Executes an admin (fault-injection) request: refused unless fault
    /// injection is enabled and the request carries the admin secret.
    pub fn admin(&self, request: AdminRequest) -> AdminReply {
        let Some(admin) = &self.admin else {
            tracing::warn!(node = self.id, command = ?request.command, "admin request refused: fault injection is disabled");
            return AdminReply::Refused(AdminRefusal::Disabled { node: self.id });
        };
        if !same_secret(&request.token, &admin.token) {
            tracing::warn!(node = self.id, "admin request refused: wrong token");
            return AdminReply::Refused(AdminRefusal::Unauthorized { node: self.id });
        }
        let faults = self.node.faults();
        let mut blocked = admin.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: BTreeSet<Link> = match request.command {
            AdminCommand::Show => blocked.clone(),
            AdminCommand::Heal => BTreeSet::new(),
            AdminCommand::SetBlocked { links } => {
                if links.len() > ADMIN_LINKS_MAX {
                    return AdminReply::Refused(AdminRefusal::Invalid(format!(
                        "{} links exceed the limit of {ADMIN_LINKS_MAX}",
                        links.len()
                    )));
                }
                for &(from, to) in &links {
                    if from == to {
                        return AdminReply::Refused(AdminRefusal::Invalid(format!(
                            "link {from} -> {to} joins a node to itself"
                        )));
                    }
                    if let Some(unknown) =
                        [from, to].into_iter().find(|n| !admin.members.contains(n))
                    {
                        return AdminReply::Refused(AdminRefusal::Invalid(format!(
                            "node {unknown} is not in the cluster configuration"
                        )));
                    }
                }
                links.into_iter().collect()
            }
        };
        for &(from, to) in blocked.difference(&wanted) {
            faults.unblock(from, to);
        }
        for &(from, to) in wanted.difference(&blocked) {
            faults.block(from, to);
        }
        if *blocked != wanted {
            tracing::warn!(node = self.id, blocked = ?wanted, "fault injection: blocked links changed");
        }
        *blocked = wanted;
        AdminReply::Done {
            node: self.id,
            blocked: blocked.iter().copied().collect(),
        }
    }

    async fn report(&self) -> NodeReport {
        let status = self.node.status();
        let metrics = self.node.metrics().await.unwrap_or_default();
        let mut stopped = None;
        let (keys, state_crc, state_applied) = match self
            .node
            .read(Query::Digest.encode(), ReadConsistency::Stale)
            .await
            .map(|bytes| Response::decode(&bytes))
        {
            Ok(Response::Digest { keys, applied, crc }) => (keys, crc, applied),
            Ok(_) => (0, 0, 0),
            Err(error) => {
                if let ServiceError::Stopped(reason) | ServiceError::Storage(reason) =
                    ServiceError::from(error)
                {
                    stopped = Some(reason);
                }
                (0, 0, 0)
            }
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
            stopped,
        }
    }
}

fn member_error_kind(error: &consensus_service::members::MemberError) -> &'static str {
    use consensus_service::members::MemberError as E;
    match error {
        E::Disabled { .. } => "disabled",
        E::Unauthorized { .. } => "unauthorized",
        E::NotLeader { .. } => "not_leader",
        E::ChangeInProgress { .. } => "change_in_progress",
        E::AlreadyMember { .. } | E::NotMember { .. } | E::NotLearner { .. } => "invalid",
        E::AddressInUse { .. } | E::Invalid(_) => "invalid",
        E::CatchUpTimeout { .. } => "catch_up_timeout",
        E::Cluster { .. } => "cluster",
    }
}
