//! The coordination client: one session, one server at a time.
//!
//! A [`CoordClient`] opens a session on one node (any node: the client
//! does not need the leader) and keeps it alive with pings every third of
//! the session timeout. If the server stops answering for half the timeout,
//! the client reconnects to another node **with the same session**, sending
//! the highest log index it has seen (the new server first catches up to
//! it, so the client never goes back in time) and its outstanding watches
//! (each fires at once if its node changed in between, so none is missed).
//! Requests that were in flight are sent again; writes carry the session's
//! sequence number, so a write whose reply was lost is applied once.
//!
//! If the session expired in the meantime the server says so: every call
//! then fails with [`CoordError::SessionExpired`], every pending watch
//! resolves with that error, and [`CoordClient::state`] becomes
//! [`SessionState::Expired`]. **Missed watches on expiry**: changes made
//! while the session was disconnected and then expired are never notified;
//! the session's ephemerals are gone; an application must open a new
//! session and re-read everything it cares about.
//!
//! Consistency: writes are linearizable and each session's requests take
//! effect in the order it issued them. Reads are served by the connected
//! node and may miss writes of *other* sessions committed very recently
//! (never the session's own), unless preceded by [`CoordClient::sync`] or
//! made with [`Read::linearizable`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{ClusterId, LogIndex, NodeId};
use consensus_service::config::ClusterConfig;
use consensus_service::retry::Backoff;
use rand::seq::SliceRandom;
use rand::Rng;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::path;
use crate::state::{CommandResponse, Write};
use crate::tls;
use crate::types::{
    CoordError, CreateMode, EventKind, MultiError, Op, OpResult, SessionId, Stat, WatchEvent,
    WatchKind,
};
use crate::wire::{
    self, Answer, ClientFrame, Hello, HelloReply, Open, Request, ServerFrame, ServiceError,
};

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The session timeout asked for (the service clamps it to 100 ms..10 min).
    pub session_timeout: Duration,
    /// All attempts of one operation together.
    pub operation_timeout: Duration,
    /// Connect to this node first (default: a random order).
    pub prefer: Option<NodeId>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(15),
            prefer: None,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The operation failed (no node, bad version, session expired, ...).
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A transaction failed; nothing was applied.
    #[error(transparent)]
    Multi(#[from] MultiError),
    /// No server could serve the request in time; it was not applied.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A write may or may not have been applied.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// The service refused the request.
    #[error("{0}")]
    Refused(ServiceError),
    /// The client could not be set up.
    #[error("client setup: {0}")]
    Setup(String),
}

impl ClientError {
    /// True when the session is gone (expired or closed).
    pub fn is_session_expired(&self) -> bool {
        matches!(self, ClientError::Coord(CoordError::SessionExpired(_)))
    }
}

impl From<ServiceError> for ClientError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Coord(error) => ClientError::Coord(error),
            ServiceError::OutcomeUnknown(reason) => ClientError::OutcomeUnknown(reason),
            ServiceError::Unavailable(reason) | ServiceError::NotReady(reason) => {
                ClientError::Unavailable(reason)
            }
            other => ClientError::Refused(other),
        }
    }
}

/// Where the session stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Looking for a server.
    Connecting,
    /// Attached to a node.
    Connected(NodeId),
    /// Lost its server; reconnecting (the session may still be alive).
    Disconnected,
    /// The session expired: its ephemerals and watches are gone.
    Expired,
    /// Closed by the application.
    Closed,
}

/// How to read.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// Leave a one-shot watch.
    pub watch: bool,
    /// Run a sync barrier first: the read reflects every write committed
    /// before it started.
    pub linearizable: bool,
}

impl Read {
    /// A read leaving a watch.
    pub fn watch() -> Read {
        Read {
            watch: true,
            linearizable: false,
        }
    }

    /// A linearizable read.
    pub fn linearizable() -> Read {
        Read {
            watch: false,
            linearizable: true,
        }
    }
}

type WatchSender = oneshot::Sender<Result<WatchEvent, CoordError>>;

/// A one-shot watch: resolves with the event (or `SessionExpired`).
pub struct Watch {
    receiver: oneshot::Receiver<Result<WatchEvent, CoordError>>,
}

impl Future for Watch {
    type Output = Result<WatchEvent, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|result| match result {
                Ok(Ok(event)) => Ok(event),
                Ok(Err(error)) => Err(ClientError::Coord(error)),
                Err(_) => Err(ClientError::Closed),
            })
    }
}

struct Shared {
    session: SessionId,
    secret: u64,
    timeout: Duration,
    last_seen: LogIndex,
    sequence: u64,
    watches: BTreeMap<(WatchKind, String), Vec<WatchSender>>,
    events: u64,
    ended: Option<CoordError>,
}

impl Shared {
    fn dispatch(&mut self, event: &WatchEvent) {
        self.events += 1;
        self.last_seen = self.last_seen.max(event.index);
        let kinds: &[WatchKind] = match event.kind {
            EventKind::NodeCreated | EventKind::NodeDataChanged => {
                &[WatchKind::Data, WatchKind::Exist]
            }
            EventKind::NodeDeleted => &[WatchKind::Data, WatchKind::Exist, WatchKind::Child],
            EventKind::NodeChildrenChanged => &[WatchKind::Child],
        };
        for kind in kinds {
            for sender in self
                .watches
                .remove(&(*kind, event.path.clone()))
                .unwrap_or_default()
            {
                let _ = sender.send(Ok(event.clone()));
            }
        }
    }

    fn end(&mut self, error: CoordError) {
        self.ended = Some(error.clone());
        for (_, senders) in std::mem::take(&mut self.watches) {
            for sender in senders {
                let _ = sender.send(Err(error.clone()));
            }
        }
    }

    fn live_watches(&mut self) -> Vec<(WatchKind, String)> {
        self.watches.retain(|_, senders| {
            senders.retain(|s| !s.is_closed());
            !senders.is_empty()
        });
        self.watches.keys().cloned().collect()
    }
}

/// Pauses between the attempts of one request.
const REQUEST_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(320),
};

/// Pauses between the attempts to re-attach a session.
const ATTACH_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(40),
    max: Duration::from_millis(640),
};

fn lock_shared(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

struct Outgoing {
    id: u64,
    linearizable: bool,
    request: Request,
    reply: oneshot::Sender<Result<(LogIndex, Answer), ServiceError>>,
}

/// A session with the coordination service. Cheap to clone (clones share
/// the session). Operations of one client run one at a time, in order.
#[derive(Clone)]
pub struct CoordClient {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Mutex<Shared>>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    state: watch::Receiver<SessionState>,
    options: ClientOptions,
    one_at_a_time: tokio::sync::Mutex<()>,
    request_ids: Mutex<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

struct Connector {
    endpoint: quinn::Endpoint,
    cluster: ClusterId,
    nodes: BTreeMap<NodeId, SocketAddr>,
    prefer: Option<NodeId>,
}

impl CoordClient {
    /// Opens a session with the cluster described by a configuration file.
    pub async fn connect_config(
        config: &ClusterConfig,
        options: ClientOptions,
    ) -> Result<CoordClient, ClientError> {
        let ca_pem = consensus_service::tls::read_cluster_ca(config).map_err(ClientError::Setup)?;
        let nodes = config.nodes.iter().map(|n| (n.id, n.client_addr)).collect();
        CoordClient::connect(&config.cluster_id, nodes, &ca_pem, options).await
    }

    /// Opens a session with the nodes (`id`, client address) of `cluster`,
    /// trusting `ca_pem`.
    pub async fn connect(
        cluster: &str,
        nodes: BTreeMap<NodeId, SocketAddr>,
        ca_pem: &str,
        options: ClientOptions,
    ) -> Result<CoordClient, ClientError> {
        if nodes.is_empty() {
            return Err(ClientError::Setup("no nodes to connect to".into()));
        }
        let cluster =
            ClusterId::new(cluster.to_string()).map_err(|e| ClientError::Setup(e.to_string()))?;
        let endpoint =
            consensus_service::tls::client_endpoint(nodes.values(), ca_pem, &tls::options())
                .map_err(ClientError::Setup)?;
        let shared = Arc::new(Mutex::new(Shared {
            session: 0,
            secret: rand::rng().random::<u64>() | 1,
            timeout: options.session_timeout,
            last_seen: 0,
            sequence: 0,
            watches: BTreeMap::new(),
            events: 0,
            ended: None,
        }));
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(SessionState::Connecting);
        let connector = Connector {
            endpoint,
            cluster,
            nodes,
            prefer: options.prefer,
        };
        let task = tokio::spawn(run_session(
            connector,
            shared.clone(),
            outgoing_rx,
            state_tx,
        ));
        let client = CoordClient {
            inner: Arc::new(Inner {
                shared,
                outgoing,
                state,
                options: options.clone(),
                one_at_a_time: tokio::sync::Mutex::new(()),
                request_ids: Mutex::new(0),
                task: Mutex::new(Some(task)),
            }),
        };
        let mut state = client.inner.state.clone();
        let attached = tokio::time::timeout(
            options.operation_timeout,
            state.wait_for(|s| !matches!(s, SessionState::Connecting)),
        )
        .await
        .map(|result| result.map(|s| *s));
        match attached {
            Ok(Ok(SessionState::Connected(_))) => Ok(client),
            Ok(Ok(_)) | Ok(Err(_)) => Err(client.ended_error().unwrap_or(ClientError::Closed)),
            Err(_) => Err(ClientError::Unavailable(format!(
                "no node accepted a session within {:?}",
                options.operation_timeout
            ))),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        lock_shared(&self.inner.shared)
    }

    fn ended_error(&self) -> Option<ClientError> {
        self.shared().ended.clone().map(ClientError::Coord)
    }

    /// The session id.
    pub fn session_id(&self) -> SessionId {
        self.shared().session
    }

    /// The session timeout granted by the service.
    pub fn session_timeout(&self) -> Duration {
        self.shared().timeout
    }

    /// The highest log index this client has seen.
    pub fn last_seen(&self) -> LogIndex {
        self.shared().last_seen
    }

    /// Watch events received so far (for tests and diagnostics: the
    /// election recipe's "no herd effect" is checked with it).
    pub fn events_received(&self) -> u64 {
        self.shared().events
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        *self.inner.state.borrow()
    }

    /// A receiver of session state changes.
    pub fn state_changes(&self) -> watch::Receiver<SessionState> {
        self.inner.state.clone()
    }

    /// Resolves when the session has expired or was closed.
    pub async fn session_lost(&self) {
        let mut state = self.inner.state.clone();
        let _ = state
            .wait_for(|s| matches!(s, SessionState::Expired | SessionState::Closed))
            .await;
    }

    async fn call(
        &self,
        request: Request,
        linearizable: bool,
        watch: Option<WatchKind>,
    ) -> Result<(LogIndex, Answer, Option<Watch>), ClientError> {
        let _turn = self.inner.one_at_a_time.lock().await;
        self.call_locked(request, linearizable, watch).await
    }

    /// One operation with retries; the caller holds the op lock.
    async fn call_locked(
        &self,
        request: Request,
        linearizable: bool,
        watch: Option<WatchKind>,
    ) -> Result<(LogIndex, Answer, Option<Watch>), ClientError> {
        let deadline = Instant::now() + self.inner.options.operation_timeout;
        let mut attempt = 0u32;
        let mut last: ClientError = ClientError::Unavailable("no attempt made".into());
        let mut maybe_applied = false;
        while Instant::now() < deadline {
            if let Some(error) = self.ended_error() {
                return Err(error);
            }
            // Register the waiter before sending: the event may arrive right
            // after the server registered the watch, before the reply.
            let watch_handle = watch.map(|kind| {
                let (sender, receiver) = oneshot::channel();
                self.shared()
                    .watches
                    .entry((kind, request_path(&request).to_string()))
                    .or_default()
                    .push(sender);
                Watch { receiver }
            });
            let (reply, answer) = oneshot::channel();
            let id = {
                let mut counter = self.inner.one_at_a_time_counter();
                *counter += 1;
                *counter
            };
            if self
                .inner
                .outgoing
                .send(Outgoing {
                    id,
                    linearizable,
                    request: request.clone(),
                    reply,
                })
                .is_err()
            {
                return Err(self.ended_error().unwrap_or(ClientError::Closed));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, answer).await {
                Ok(Ok(Ok((index, answer)))) => return Ok((index, answer, watch_handle)),
                Ok(Ok(Err(error))) => {
                    maybe_applied |= error.is_outcome_unknown();
                    if !error.is_retryable() {
                        return Err(error.into());
                    }
                    last = error.into();
                }
                Ok(Err(_)) => return Err(self.ended_error().unwrap_or(ClientError::Closed)),
                Err(_) => {
                    maybe_applied |= request.is_write();
                    last = ClientError::Unavailable("no reply in time".into());
                }
            }
            let pause = REQUEST_BACKOFF
                .pause(attempt, &mut rand::rng())
                .min(deadline.saturating_duration_since(Instant::now()));
            attempt += 1;
            tokio::time::sleep(pause).await;
        }
        if maybe_applied {
            Err(ClientError::OutcomeUnknown(format!(
                "no answer within {:?}: {last}",
                self.inner.options.operation_timeout
            )))
        } else {
            Err(last)
        }
    }

    fn next_sequence(&self) -> u64 {
        let mut shared = self.shared();
        shared.sequence += 1;
        shared.sequence
    }

    async fn write(&self, write: Write) -> Result<CommandResponse, ClientError> {
        // The sequence number is taken under the op lock, so writes reach
        // the service in sequence order.
        let _turn = self.inner.one_at_a_time.lock().await;
        let request = Request::Write {
            sequence: self.next_sequence(),
            write,
        };
        match self.call_locked(request, false, None).await? {
            (_, Answer::Written(CommandResponse::Refused(error)), _) => Err(error.into()),
            (_, Answer::Written(response), _) => Ok(response),
            (_, other, _) => Err(unexpected(other)),
        }
    }

    async fn op(&self, op: Op) -> Result<OpResult, ClientError> {
        match self.write(Write::Op(op)).await? {
            CommandResponse::Op(result) => result.map_err(ClientError::from),
            other => Err(ClientError::Refused(ServiceError::Invalid(format!(
                "unexpected response {other:?}"
            )))),
        }
    }

    /// Creates a node; returns its actual path (with the sequence suffix
    /// for sequential modes).
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        mode: CreateMode,
    ) -> Result<String, ClientError> {
        let op = Op::Create {
            path: path.to_string(),
            data: data.into(),
            mode,
        };
        match self.op(op).await? {
            OpResult::Created { path, .. } => Ok(path),
            other => Err(ClientError::Refused(ServiceError::Invalid(format!(
                "unexpected result {other:?}"
            )))),
        }
    }

    /// Creates every missing persistent node on the way to `path`
    /// (including `path`), ignoring those that exist.
    pub async fn ensure_path(&self, target: &str) -> Result<(), ClientError> {
        path::validate(target)?;
        if target == "/" {
            return Ok(());
        }
        let mut current = String::new();
        for component in target[1..].split('/') {
            current.push('/');
            current.push_str(component);
            if self.exists(&current, Read::default()).await?.0.is_some() {
                continue;
            }
            match self
                .create(&current, Bytes::new(), CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(ClientError::Coord(CoordError::NodeExists(_))) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Replaces a node's data if it has `version` (any version if `None`).
    pub async fn set_data(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: Option<u32>,
    ) -> Result<Stat, ClientError> {
        let op = Op::SetData {
            path: path.to_string(),
            data: data.into(),
            version,
        };
        match self.op(op).await? {
            OpResult::Set(stat) => Ok(stat),
            other => Err(ClientError::Refused(ServiceError::Invalid(format!(
                "unexpected result {other:?}"
            )))),
        }
    }

    /// Deletes a node if it has `version` (any version if `None`).
    pub async fn delete(&self, path: &str, version: Option<u32>) -> Result<(), ClientError> {
        self.op(Op::Delete {
            path: path.to_string(),
            version,
        })
        .await
        .map(|_| ())
    }

    /// Runs `ops` all-or-nothing.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, ClientError> {
        match self.write(Write::Multi(ops)).await? {
            CommandResponse::Multi(result) => result.map_err(ClientError::from),
            other => Err(ClientError::Refused(ServiceError::Invalid(format!(
                "unexpected response {other:?}"
            )))),
        }
    }

    /// Data and stat of a node.
    pub async fn get(
        &self,
        path: &str,
        read: Read,
    ) -> Result<(Bytes, Stat, Option<Watch>), ClientError> {
        let request = Request::Get {
            path: path.to_string(),
            watch: read.watch,
        };
        match self
            .call(
                request,
                read.linearizable,
                read.watch.then_some(WatchKind::Data),
            )
            .await
        {
            Ok((_, Answer::Data { data, stat }, watch)) => Ok((data, stat, watch)),
            Ok((_, other, _)) => Err(unexpected(other)),
            Err(error) => {
                self.forget_watch(WatchKind::Data, path);
                Err(error)
            }
        }
    }

    /// Stat of a node if it exists; with a watch, it is left either way.
    pub async fn exists(
        &self,
        path: &str,
        read: Read,
    ) -> Result<(Option<Stat>, Option<Watch>), ClientError> {
        let request = Request::Exists {
            path: path.to_string(),
            watch: read.watch,
        };
        match self
            .call(
                request,
                read.linearizable,
                read.watch.then_some(WatchKind::Exist),
            )
            .await?
        {
            (_, Answer::Exists(stat), watch) => Ok((stat, watch)),
            (_, other, _) => Err(unexpected(other)),
        }
    }

    /// Children names of a node, sorted.
    pub async fn children(
        &self,
        path: &str,
        read: Read,
    ) -> Result<(Vec<String>, Option<Watch>), ClientError> {
        let request = Request::Children {
            path: path.to_string(),
            watch: read.watch,
        };
        match self
            .call(
                request,
                read.linearizable,
                read.watch.then_some(WatchKind::Child),
            )
            .await
        {
            Ok((_, Answer::Children { children, .. }, watch)) => Ok((children, watch)),
            Ok((_, other, _)) => Err(unexpected(other)),
            Err(error) => {
                self.forget_watch(WatchKind::Child, path);
                Err(error)
            }
        }
    }

    fn forget_watch(&self, kind: WatchKind, path: &str) {
        let mut shared = self.shared();
        if let Some(senders) = shared.watches.get_mut(&(kind, path.to_string())) {
            senders.retain(|s| !s.is_closed());
        }
    }

    /// Brings the connected server up to date with the leader: reads after
    /// it reflect every write committed before the call (`path` is
    /// accepted for ZooKeeper compatibility; the barrier covers the whole
    /// tree).
    pub async fn sync(&self, path: &str) -> Result<LogIndex, ClientError> {
        path::validate(path)?;
        match self.call(Request::Sync, false, None).await? {
            (index, Answer::Synced, _) => Ok(index),
            (_, other, _) => Err(unexpected(other)),
        }
    }

    /// Closes the session: its ephemerals are deleted now, its watches
    /// dropped.
    pub async fn close(&self) -> Result<(), ClientError> {
        let result = match self.write(Write::Close).await {
            Ok(CommandResponse::Closed(_)) => Ok(()),
            Ok(other) => Err(ClientError::Refused(ServiceError::Invalid(format!(
                "unexpected response {other:?}"
            )))),
            Err(error) if error.is_session_expired() => Ok(()),
            Err(error) => Err(error),
        };
        let session = self.session_id();
        self.shared().end(CoordError::SessionExpired(session));
        if let Some(task) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        result
    }
}

impl Inner {
    fn one_at_a_time_counter(&self) -> std::sync::MutexGuard<'_, u64> {
        self.request_ids.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn request_path(request: &Request) -> &str {
    match request {
        Request::Get { path, .. }
        | Request::Exists { path, .. }
        | Request::Children { path, .. } => path,
        Request::Sync | Request::Write { .. } => "/",
    }
}

fn unexpected(answer: Answer) -> ClientError {
    ClientError::Refused(ServiceError::Invalid(format!(
        "unexpected answer {answer:?}"
    )))
}

// ----------------------------------------------------------------------
// The session task
// ----------------------------------------------------------------------

struct Link {
    node: NodeId,
    connection: quinn::Connection,
    send: quinn::SendStream,
    frames: mpsc::UnboundedReceiver<Result<ServerFrame, String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Connector {
    /// Nodes to try: the preferred one first, the one just lost last.
    fn order(&self, lost: Option<NodeId>) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        ids.shuffle(&mut rand::rng());
        if let Some(prefer) = self.prefer {
            if let Some(at) = ids.iter().position(|id| *id == prefer) {
                ids.remove(at);
                ids.insert(0, prefer);
            }
        }
        if let Some(lost) = lost {
            if let Some(at) = ids.iter().position(|id| *id == lost) {
                ids.remove(at);
                ids.push(lost);
            }
        }
        ids
    }

    /// Connects (the QUIC handshake within `handshake`) and attaches (the
    /// whole exchange within `timeout`).
    async fn attach(
        &self,
        id: NodeId,
        hello: &Hello,
        handshake: Duration,
        timeout: Duration,
    ) -> Result<(Link, wire::Attached), ServiceError> {
        let addr = self.nodes[&id];
        let name = tls::server_name(&self.cluster, id);
        let step = async {
            let connecting = self
                .endpoint
                .connect(addr, &name)
                .map_err(|e| ServiceError::NotReady(format!("connecting to node {id}: {e}")))?;
            let connection = tokio::time::timeout(handshake, connecting)
                .await
                .map_err(|_| {
                    ServiceError::NotReady(format!("node {id}: no handshake within {handshake:?}"))
                })?
                .map_err(|e| ServiceError::NotReady(format!("connecting to node {id}: {e}")))?;
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| ServiceError::NotReady(format!("node {id}: {e}")))?;
            wire::write_frame(&mut send, &Open::Session(hello.clone()))
                .await
                .map_err(|e| ServiceError::NotReady(format!("node {id}: {e}")))?;
            let reply = wire::read_frame::<HelloReply>(&mut recv)
                .await
                .map_err(|e| ServiceError::NotReady(format!("node {id}: {e}")))?
                .ok_or_else(|| ServiceError::NotReady(format!("node {id} closed the stream")))?;
            let attached = reply?;
            let (frames_tx, frames) = mpsc::unbounded_channel();
            let reader = tokio::spawn(async move {
                loop {
                    match wire::read_frame::<ServerFrame>(&mut recv).await {
                        Ok(Some(frame)) => {
                            if frames_tx.send(Ok(frame)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            let _ =
                                frames_tx.send(Err("the server closed the session stream".into()));
                            return;
                        }
                        Err(error) => {
                            let _ = frames_tx.send(Err(error));
                            return;
                        }
                    }
                }
            });
            Ok::<(Link, wire::Attached), ServiceError>((
                Link {
                    node: id,
                    connection,
                    send,
                    frames,
                    reader,
                },
                attached,
            ))
        };
        match tokio::time::timeout(timeout, step).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::NotReady(format!(
                "node {id} did not attach in {timeout:?}"
            ))),
        }
    }
}

async fn run_session(
    connector: Connector,
    shared: Arc<Mutex<Shared>>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    state: watch::Sender<SessionState>,
) {
    let mut pending: BTreeMap<u64, Outgoing> = BTreeMap::new();
    let mut attempt = 0u32;
    let mut lost: Option<NodeId> = None;
    loop {
        // Find a server.
        let hello = {
            let mut s = lock_shared(&shared);
            Hello {
                session: s.session,
                secret: s.secret,
                timeout_ms: s.timeout.as_millis() as u64,
                last_seen: s.last_seen,
                watches: s.live_watches(),
            }
        };
        let timeout = lock_shared(&shared).timeout;
        let mut link = None;
        let handshake = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        for id in connector.order(lost) {
            match connector
                .attach(
                    id,
                    &hello,
                    handshake,
                    timeout.max(Duration::from_millis(500)),
                )
                .await
            {
                Ok((l, attached)) => {
                    let mut s = lock_shared(&shared);
                    s.session = attached.session;
                    s.timeout = Duration::from_millis(attached.timeout_ms);
                    s.last_seen = s.last_seen.max(attached.index);
                    link = Some(l);
                    break;
                }
                Err(ServiceError::Coord(error @ CoordError::SessionExpired(_))) => {
                    lock_shared(&shared).end(error.clone());
                    fail_all(&mut pending, &mut outgoing, ServiceError::Coord(error));
                    let _ = state.send(SessionState::Expired);
                    return;
                }
                Err(error) => tracing::debug!(node = id, %error, "attach failed"),
            }
        }
        let Some(mut link) = link else {
            if outgoing.is_closed() {
                return;
            }
            let pause = ATTACH_BACKOFF.pause(attempt, &mut rand::rng());
            attempt += 1;
            tokio::time::sleep(pause).await;
            continue;
        };
        attempt = 0;
        let _ = state.send(SessionState::Connected(link.node));
        let outcome = serve_link(&mut link, &shared, &mut pending, &mut outgoing).await;
        link.reader.abort();
        match outcome {
            LinkEnd::Expired => {
                let error = CoordError::SessionExpired(lock_shared(&shared).session);
                lock_shared(&shared).end(error.clone());
                fail_all(&mut pending, &mut outgoing, ServiceError::Coord(error));
                link.connection.close(0u32.into(), b"session expired");
                let _ = state.send(SessionState::Expired);
                return;
            }
            LinkEnd::ClientGone => {
                link.connection.close(0u32.into(), b"client closed");
                let _ = state.send(SessionState::Closed);
                return;
            }
            LinkEnd::Lost(reason) => {
                tracing::debug!(node = link.node, %reason, "lost the server; reconnecting");
                lost = Some(link.node);
                link.connection.close(0u32.into(), b"reconnecting");
                let _ = state.send(SessionState::Disconnected);
            }
        }
    }
}

enum LinkEnd {
    Expired,
    ClientGone,
    Lost(String),
}

async fn serve_link(
    link: &mut Link,
    shared: &Arc<Mutex<Shared>>,
    pending: &mut BTreeMap<u64, Outgoing>,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
) -> LinkEnd {
    let timeout = lock_shared(shared).timeout;
    // Requests that were in flight on the previous link are sent again.
    for request in pending.values() {
        let frame = ClientFrame::Request {
            id: request.id,
            linearizable: request.linearizable,
            request: request.request.clone(),
        };
        if let Err(error) = wire::write_frame(&mut link.send, &frame).await {
            return LinkEnd::Lost(error);
        }
    }
    let mut ping = tokio::time::interval(timeout / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let silence_max = timeout / 2;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            request = outgoing.recv() => {
                let Some(request) = request else { return LinkEnd::ClientGone };
                let frame = ClientFrame::Request { id: request.id, linearizable: request.linearizable, request: request.request.clone() };
                pending.insert(request.id, request);
                if let Err(error) = wire::write_frame(&mut link.send, &frame).await {
                    return LinkEnd::Lost(error);
                }
            }
            frame = link.frames.recv() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(ServerFrame::Reply { id, index, result })) => {
                        {
                            let mut s = lock_shared(shared);
                            s.last_seen = s.last_seen.max(index);
                        }
                        if let Some(request) = pending.remove(&id) {
                            let _ = request.reply.send(result.map(|answer| (index, answer)));
                        }
                    }
                    Some(Ok(ServerFrame::Event(event))) => lock_shared(shared).dispatch(&event),
                    Some(Ok(ServerFrame::Pong)) => {}
                    Some(Ok(ServerFrame::SessionExpired)) => return LinkEnd::Expired,
                    Some(Err(error)) => return LinkEnd::Lost(error),
                    None => return LinkEnd::Lost("reader ended".into()),
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > silence_max {
                    return LinkEnd::Lost(format!("no answer from node {} for {:?}", link.node, last_heard.elapsed()));
                }
                if let Err(error) = wire::write_frame(&mut link.send, &ClientFrame::Ping).await {
                    return LinkEnd::Lost(error);
                }
            }
        }
    }
}

fn fail_all(
    pending: &mut BTreeMap<u64, Outgoing>,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    error: ServiceError,
) {
    for (_, request) in std::mem::take(pending) {
        let _ = request.reply.send(Err(error.clone()));
    }
    outgoing.close();
    while let Ok(request) = outgoing.try_recv() {
        let _ = request.reply.send(Err(error.clone()));
    }
}

// ----------------------------------------------------------------------
// One-shot administration requests
// ----------------------------------------------------------------------

/// Sends one [`Admin`](wire::Admin) request to node `id` of `config`.
pub async fn admin_request(
    config: &ClusterConfig,
    id: NodeId,
    request: wire::Admin,
    timeout: Duration,
) -> Result<wire::AdminReply, ClientError> {
    let entry = config
        .node(id)
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    let ca_path = config.certs_dir.join("ca.pem");
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(|e| {
        ClientError::Setup(format!("reading the cluster CA {}: {e}", ca_path.display()))
    })?;
    let cluster =
        ClusterId::new(config.cluster_id.clone()).map_err(|e| ClientError::Setup(e.to_string()))?;
    let bind = SocketAddr::new(
        if entry.client_addr.ip().is_loopback() {
            entry.client_addr.ip()
        } else if entry.client_addr.is_ipv6() {
            "::".parse().expect("address")
        } else {
            "0.0.0.0".parse().expect("address")
        },
        0,
    );
    let mut endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| ClientError::Setup(format!("binding {bind}: {e}")))?;
    endpoint.set_default_client_config(tls::client_config(&ca_pem).map_err(ClientError::Setup)?);
    let exchange = async {
        let connection = endpoint
            .connect(entry.client_addr, &tls::server_name(&cluster, id))
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
        wire::write_frame(&mut send, &Open::Admin(request)).await?;
        let _ = send.finish();
        let reply = wire::read_frame::<wire::AdminReply>(&mut recv).await;
        connection.close(0u32.into(), b"done");
        reply?.ok_or_else(|| "the node closed the stream".to_string())
    };
    let result = tokio::time::timeout(timeout, exchange).await;
    endpoint.close(0u32.into(), b"done");
    match result {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(ClientError::Unavailable(format!("node {id}: {error}"))),
        Err(_) => Err(ClientError::Unavailable(format!(
            "node {id} did not answer within {timeout:?}"
        ))),
    }
}

/// Node `id`'s status report.
pub async fn admin_status(
    config: &ClusterConfig,
    id: NodeId,
    timeout: Duration,
) -> Result<wire::NodeReport, ClientError> {
    match admin_request(config, id, wire::Admin::Status, timeout).await? {
        wire::AdminReply::Status(report) => Ok(*report),
        wire::AdminReply::Error(error) => Err(error.into()),
        other => Err(ClientError::Refused(ServiceError::Invalid(format!(
            "unexpected reply {other:?}"
        )))),
    }
}
