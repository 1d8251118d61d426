//! The operations endpoint of a node: Prometheus metrics at `/metrics` and
//! a health check at `/health`, on one plain-HTTP (TCP) listener, opened by
//! `serve --metrics-addr ADDR` or by `metrics_addr` in the node's entry of
//! the cluster file (the flag wins).
//!
//! The text at `/metrics` is rendered by `metrics-exporter-prometheus`, the
//! recorder of the `metrics` facade through which the runtime, the
//! transport counters and the services record. Latency histograms
//! (`*_seconds`) are exported as Prometheus histograms with
//! [`LATENCY_BUCKETS_SECONDS`]. Every series carries `node` and `protocol`
//! labels, and the global label `cluster`. [`METRICS`] lists every name
//! with its type and meaning; `docs/operations.md` says what an operator
//! watches.
//!
//! `/health` answers `200` once the node knows a leader and has applied up
//! to the commit index it last learned, and `503` otherwise, with one line
//! of text saying why (see [`assess`] for the exact rule, which also covers
//! a leader or a classic Paxos peer that no longer hears from a majority).
//!
//! The HTTP side is deliberately small: `GET` (or `HEAD`) of `/metrics` or
//! `/health`, one request per connection (`Connection: close`), the request
//! head bounded to [`REQUEST_HEAD_BYTES_MAX`] and [`REQUEST_TIMEOUT`], at
//! most [`CONNECTIONS_MAX`] connections at once. It carries no secrets and
//! no control: bind it to an address only your monitoring reaches.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consensus::{ConsensusNode, NodeId, ReplicatedLog, Role, Status, Tuning};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::{ClusterConfig, ConfigError};

/// Upper bounds (seconds) of the buckets of every `*_seconds` histogram.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Largest HTTP request head read.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed unanswered.
pub const CONNECTIONS_MAX: usize = 32;
/// How long `/health` waits for the node's driver to answer.
pub const DRIVER_TIMEOUT: Duration = Duration::from_secs(1);

/// Every metric a node exports: name, Prometheus type, meaning. Labels
/// `node`, `protocol` (and `cluster`) on all; extra labels are named in
/// the meaning.
pub const METRICS: &[(&str, &str, &str)] = &[
    // Recorded by the runtime (consensus-runtime, `metrics.rs`).
    ("consensus_epoch", "gauge", "Current term / ballot / epoch of this node."),
    ("consensus_epoch_changes_total", "counter", "Times this node saw the epoch change."),
    ("consensus_leader_changes_total", "counter", "Times the leader this node knows changed (including to none)."),
    ("consensus_leader", "gauge", "Id of the leader this node knows; 0 for none (always 0 on classic Paxos)."),
    ("consensus_is_leader", "gauge", "1 while this node is the leader, else 0."),
    ("consensus_commit_index", "gauge", "Highest log index this node knows committed."),
    ("consensus_applied_index", "gauge", "Highest log index applied to the state machine."),
    ("consensus_last_index", "gauge", "Highest log index this node holds."),
    ("consensus_snapshot_index", "gauge", "Index of this node's last snapshot."),
    ("consensus_applied_entries_total", "counter", "Log entries applied to the state machine."),
    ("consensus_follower_lag_entries", "gauge", "Leader only (label peer): entries the peer is behind the leader's last index; 0 on other nodes."),
    ("consensus_commit_seconds", "histogram", "Proposal latency: from append to its commit on this node."),
    ("consensus_fsync_seconds", "histogram", "Duration of each group-committed fdatasync."),
    ("consensus_proposals_rejected_total", "counter", "Client requests refused by the node (label reason: not_leader, unavailable, overloaded, queue_full, outcome_unknown, change_in_progress, invalid_membership, other)."),
    ("consensus_request_queue_depth", "gauge", "Client requests queued for the node's driver."),
    ("consensus_pending_proposals", "gauge", "Proposals accepted by the core and not yet committed."),
    ("consensus_pending_reads", "gauge", "Read barriers and linearizable reads (and a membership change) not yet answered."),
    // Copied from the transport's counters at each scrape.
    ("consensus_transport_connections_total", "counter", "Peer connections that completed TLS and the handshake."),
    ("consensus_transport_dial_attempts_total", "counter", "Outgoing peer connection attempts."),
    ("consensus_transport_dial_failures_total", "counter", "Outgoing peer connection attempts that failed."),
    ("consensus_transport_refusals_total", "counter", "Peer traffic refused (label reason: tls = certificate refused, handshake = cluster/protocol/version/node mismatch, frame = bad frame or stream rule, queue_full = a peer's send queue was full)."),
    ("consensus_transport_fault_drops_total", "counter", "Messages dropped by fault injection (tests only)."),
    ("consensus_transport_frames_sent_total", "counter", "Frames written to peers."),
    ("consensus_transport_frames_received_total", "counter", "Frames received from peers."),
    // Recorded by the services (consensus-kv, consensus-coord).
    ("consensus_client_requests_total", "counter", "Client requests answered (labels service, op, result: ok or the error's kind)."),
    ("consensus_client_request_seconds", "histogram", "Client request latency at the server (labels service, op)."),
    // Set at each scrape and each health check.
    ("consensus_healthy", "gauge", "1 while /health answers 200, else 0."),
];

/// Set once this process installed the Prometheus recorder: until then
/// [`RequestMetrics::record`] does nothing (not even build its labels).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// True once this process exports metrics ([`Exporter::install`]).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The `--metrics-addr` option of `serve`, shared by the services.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics and a health check
    /// at http://ADDR/health (plain HTTP over TCP; overrides the node's
    /// `metrics_addr` in the cluster file).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Where node `id` serves its metrics: the flag, else the cluster file.
    pub fn address(
        &self,
        config: &ClusterConfig,
        id: NodeId,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        if self.metrics_addr.is_some() {
            return Ok(self.metrics_addr);
        }
        // A node joining with `serve --join --peer-addr ...` is not in the
        // file: without the flag it has no metrics address.
        match config.node(id) {
            Ok(entry) => Ok(entry.metrics_addr),
            Err(ConfigError::UnknownNode { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Binds the metrics listener of node `id` (if it has an address) and
    /// installs the Prometheus recorder. Call before the node starts: the
    /// runtime registers its metrics when it starts.
    pub fn install(&self, config: &ClusterConfig, id: NodeId) -> Result<Exporter, String> {
        match self.address(config, id).map_err(|e| e.to_string())? {
            Some(addr) => Exporter::install(addr, &config.cluster_id),
            None => Ok(Exporter { active: None }),
        }
    }
}

/// A bound metrics listener and the installed recorder (or nothing, when
/// the node has no metrics address).
pub struct Exporter {
    active: Option<(std::net::TcpListener, PrometheusHandle)>,
}

impl Exporter {
    /// Binds `addr` and installs the Prometheus recorder as the global
    /// `metrics` recorder (once per process).
    pub fn install(addr: SocketAddr, cluster_id: &str) -> Result<Exporter, String> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("metrics listener on {addr}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("metrics listener on {addr}: {e}"))?;
        let recorder = PrometheusBuilder::new()
            .add_global_label("cluster", cluster_id)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
            .map_err(|e| format!("metrics exporter: {e}"))?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| format!("metrics exporter: {e}"))?;
        EXPORTING.store(true, Ordering::Relaxed);
        describe();
        Ok(Exporter {
            active: Some((listener, handle)),
        })
    }

    /// The listener's address (`None` when inactive).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.active
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves `/metrics` and `/health` of `node` on the current tokio
    /// runtime until the runtime stops (a no-op when inactive).
    pub fn serve(
        self,
        node: Arc<ConsensusNode>,
        id: NodeId,
        tuning: &Tuning,
    ) -> Result<(), String> {
        let Some((listener, handle)) = self.active else {
            return Ok(());
        };
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let listener = TcpListener::from_std(listener)
            .map_err(|e| format!("metrics listener on {addr}: {e}"))?;
        let probe = Arc::new(Probe::new(node, id, tuning, handle.clone()));
        tokio::spawn(upkeep(handle));
        tokio::spawn(accept_loop(listener, probe));
        tracing::info!(node = id, %addr, "serving /metrics and /health");
        Ok(())
    }
}

fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

/// Keeps the recorder's histograms bounded between scrapes.
async fn upkeep(handle: PrometheusHandle) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        handle.run_upkeep();
    }
}

/// What `/health` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// `200` when true, `503` when false.
    pub healthy: bool,
    /// One line for the operator.
    pub reason: String,
}

impl Health {
    fn unhealthy(reason: String) -> Self {
        Health {
            healthy: false,
            reason,
        }
    }
}

/// The health rule, on a node's published status.
///
/// * a candidate (election, discovery, synchronisation) is unhealthy: no
///   leader;
/// * a follower or learner is unhealthy while it knows no leader;
/// * a leader, and a classic Paxos peer (no leader in that protocol), is
///   unhealthy when it has not heard from a majority of the voters (itself
///   included) within `heard_window_ticks` ticks: it is cut off, whatever
///   role it still holds;
/// * otherwise healthy once it has applied up to its commit index.
pub fn assess(status: &Status, heard_window_ticks: u64) -> Health {
    let hears_majority = || {
        status.membership.is_quorum(|n| {
            n == status.id
                || status
                    .peers
                    .get(&n)
                    .is_some_and(|peer| peer.ticks_since_heard <= heard_window_ticks)
        })
    };
    match status.role {
        Role::Candidate => {
            return Health::unhealthy(format!(
                "no leader: election in progress (epoch {})",
                status.epoch
            ))
        }
        Role::Follower | Role::Learner if status.leader.is_none() => {
            return Health::unhealthy(format!("no known leader (epoch {})", status.epoch))
        }
        Role::Leader | Role::Peer if !hears_majority() => {
            return Health::unhealthy(format!(
            "cut off: has not heard from a majority of the voters for {heard_window_ticks} ticks"
        ))
        }
        _ => {}
    }
    if status.applied_index < status.commit_index {
        return Health::unhealthy(format!(
            "catching up: applied {} of commit index {}",
            status.applied_index, status.commit_index
        ));
    }
    let leader = match status.leader {
        Some(leader) => format!("leader {leader}"),
        None => "no leader (leaderless protocol)".to_string(),
    };
    Health {
        healthy: true,
        reason: format!(
            "ok: {}, {leader}, epoch {}, applied {} of commit index {}",
            status.role, status.epoch, status.applied_index, status.commit_index
        ),
    }
}

/// The ticks within which a leader must have heard from a majority:
/// the longest election timeout.
pub fn heard_window_ticks(tuning: &Tuning) -> u64 {
    let tick = tuning.tick.as_nanos().max(1);
    u64::try_from(tuning.election_timeout_max.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What the endpoint reads from a node.
struct Probe {
    node: Arc<ConsensusNode>,
    node_label: Arc<str>,
    protocol: &'static str,
    heard_window_ticks: u64,
    handle: PrometheusHandle,
}

impl Probe {
    fn new(
        node: Arc<ConsensusNode>,
        id: NodeId,
        tuning: &Tuning,
        handle: PrometheusHandle,
    ) -> Self {
        Probe {
            protocol: node.protocol().name(),
            node,
            node_label: Arc::from(id.to_string()),
            heard_window_ticks: heard_window_ticks(tuning),
            handle,
        }
    }

    /// The health rule, after checking that the node's driver answers.
    async fn health(&self) -> Health {
        let health = match tokio::time::timeout(DRIVER_TIMEOUT, self.node.metrics()).await {
            Ok(Ok(_)) => assess(&self.node.status(), self.heard_window_ticks),
            Ok(Err(error)) => Health::unhealthy(format!("the node does not serve: {error}")),
            Err(_) => Health::unhealthy(format!(
                "the node's driver did not answer within {DRIVER_TIMEOUT:?}"
            )),
        };
        self.gauge("consensus_healthy")
            .set(if health.healthy { 1.0 } else { 0.0 });
        health
    }

    fn gauge(&self, name: &'static str) -> metrics::Gauge {
        metrics::gauge!(name, "node" => self.node_label.clone(), "protocol" => self.protocol)
    }

    fn counter(&self, name: &'static str, value: u64) {
        metrics::counter!(name, "node" => self.node_label.clone(), "protocol" => self.protocol)
            .absolute(value);
    }

    /// Copies the transport's counters into the recorder.
    fn collect_transport(&self) {
        let stats = self.node.transport_stats();
        self.counter(
            "consensus_transport_connections_total",
            stats.connections_established,
        );
        self.counter(
            "consensus_transport_dial_attempts_total",
            stats.dial_attempts,
        );
        self.counter(
            "consensus_transport_dial_failures_total",
            stats.dial_failures,
        );
        self.counter("consensus_transport_fault_drops_total", stats.fault_drops);
        self.counter("consensus_transport_frames_sent_total", stats.frames_sent);
        self.counter(
            "consensus_transport_frames_received_total",
            stats.frames_received,
        );
        for (reason, value) in [
            ("tls", stats.tls_rejections),
            ("handshake", stats.handshake_mismatches),
            ("frame", stats.frame_errors),
            ("queue_full", stats.queue_full),
        ] {
            metrics::counter!(
                "consensus_transport_refusals_total",
                "node" => self.node_label.clone(),
                "protocol" => self.protocol,
                "reason" => reason
            )
            .absolute(value);
        }
    }

    async fn metrics_text(&self) -> String {
        self.collect_transport();
        self.health().await;
        self.handle.render()
    }
}

async fn accept_loop(listener: TcpListener, probe: Arc<Probe>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics listener: too many connections");
            continue;
        };
        let probe = probe.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_connection(stream, &probe).await {
                tracing::debug!(%peer, %error, "metrics request failed");
            }
            drop(slot);
        });
    }
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
struct RequestLine<'a> {
    method: &'a str,
    path: &'a str,
}

/// Parses `METHOD TARGET HTTP/1.x` (the query string is dropped).
fn parse_request_line(head: &str) -> Option<RequestLine<'_>> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some(RequestLine { method, path })
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return Err(std::io::Error::other("request head too large"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, stream.read(&mut buffer))
            .await
            .map_err(|_| std::io::Error::other("request head timed out"))??;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(head)
}

async fn serve_connection(mut stream: TcpStream, probe: &Probe) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let head = String::from_utf8_lossy(&head);
    let (status, content_type, body, head_only) = match parse_request_line(&head) {
        None => (400, "text/plain", "bad request\n".to_string(), false),
        Some(request) if request.method != "GET" && request.method != "HEAD" => {
            (405, "text/plain", "only GET and HEAD\n".to_string(), false)
        }
        Some(request) => {
            let head_only = request.method == "HEAD";
            match request.path {
                "/metrics" => (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    probe.metrics_text().await,
                    head_only,
                ),
                "/health" => {
                    let health = probe.health().await;
                    let status = if health.healthy { 200 } else { 503 };
                    (
                        status,
                        "text/plain",
                        format!("{}\n", health.reason),
                        head_only,
                    )
                }
                _ => (
                    404,
                    "text/plain",
                    "not found: try /metrics or /health\n".to_string(),
                    head_only,
                ),
            }
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(&response))
        .await
        .map_err(|_| std::io::Error::other("response write timed out"))??;
    let _ = stream.shutdown().await;
    Ok(())
}

/// A minimal HTTP/1.1 `GET` of `path` on `addr` (for tests and scripts):
/// the status code and the body, everything within `timeout`.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("writing to {addr}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{addr}: no HTTP response head in {response:?}"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("{addr}: bad status line in {head:?}"))?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

/// The value of the series `name` whose labels include every pair of
/// `labels`, in Prometheus text (for tests and scripts).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (series_labels, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let matches = labels
            .iter()
            .all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\"")));
        if matches {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Client request counters of a service (`consensus_client_requests_total`
/// and `consensus_client_request_seconds`); free when the process exports
/// no metrics ([`exporting`]).
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    service: &'static str,
    node: Arc<str>,
    protocol: &'static str,
    /// The recorder's handles, looked up (labels built, key hashed) once
    /// per operation and result rather than once per request.
    handles: Arc<std::sync::Mutex<RequestHandles>>,
}

#[derive(Debug, Default)]
struct RequestHandles {
    counters: std::collections::HashMap<(&'static str, &'static str), metrics::Counter>,
    histograms: std::collections::HashMap<&'static str, metrics::Histogram>,
}

impl RequestMetrics {
    /// Counters of `service` (`kv`, `coord`) on node `id`.
    pub fn new(service: &'static str, id: NodeId, protocol: consensus::Protocol) -> Self {
        RequestMetrics {
            service,
            node: Arc::from(id.to_string()),
            protocol: protocol.name(),
            handles: Arc::default(),
        }
    }

    /// One answered request: its operation, its result (`ok` or the
    /// error's kind) and how long the server took.
    pub fn record(&self, op: &'static str, result: &'static str, took: Duration) {
        if !exporting() {
            return;
        }
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles
            .counters
            .entry((op, result))
            .or_insert_with(|| {
                metrics::counter!(
                    "consensus_client_requests_total",
                    "node" => self.node.clone(),
                    "protocol" => self.protocol,
                    "service" => self.service,
                    "op" => op,
                    "result" => result
                )
            })
            .increment(1);
        handles
            .histograms
            .entry(op)
            .or_insert_with(|| {
                metrics::histogram!(
                    "consensus_client_request_seconds",
                    "node" => self.node.clone(),
                    "protocol" => self.protocol,
                    "service" => self.service,
                    "op" => op
                )
            })
            .record(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use consensus::{Membership, PeerProgress};

    use super::*;

    fn status(role: Role, leader: Option<NodeId>) -> Status {
        Status {
            id: 1,
            role,
            leader,
            epoch: 3,
            commit_index: 10,
            applied_index: 10,
            last_index: 10,
            snapshot_index: 0,
            membership: Membership::new([1, 2, 3]),
            peers: BTreeMap::new(),
        }
    }

    fn heard(ticks: [u64; 2]) -> BTreeMap<NodeId, PeerProgress> {
        [(2, ticks[0]), (3, ticks[1])]
            .into_iter()
            .map(|(peer, ticks_since_heard)| {
                (
                    peer,
                    PeerProgress {
                        match_index: 10,
                        ticks_since_heard,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_health_rule() {
        assert!(assess(&status(Role::Follower, Some(2)), 30).healthy);
        let no_leader = assess(&status(Role::Follower, None), 30);
        assert!(!no_leader.healthy && no_leader.reason.contains("no known leader"));
        let candidate = assess(&status(Role::Candidate, None), 30);
        assert!(!candidate.healthy && candidate.reason.contains("election"));

        let mut behind = status(Role::Follower, Some(2));
        behind.applied_index = 7;
        let health = assess(&behind, 30);
        assert!(!health.healthy && health.reason.contains("applied 7 of commit index 10"));

        for role in [Role::Leader, Role::Peer] {
            let leader = (role == Role::Leader).then_some(1);
            let mut hearing = status(role, leader);
            hearing.peers = heard([5, 100]);
            assert!(
                assess(&hearing, 30).healthy,
                "{role}: one peer of two is a majority"
            );
            let mut cut_off = status(role, leader);
            cut_off.peers = heard([31, 100]);
            let health = assess(&cut_off, 30);
            assert!(
                !health.healthy && health.reason.contains("cut off"),
                "{role}"
            );
            let mut nobody = status(role, leader);
            nobody.peers.clear();
            assert!(!assess(&nobody, 30).healthy, "{role}: no peer heard");
        }
    }

    #[test]
    fn the_window_is_the_longest_election_timeout() {
        let tuning = Tuning::default();
        let expected = tuning.election_timeout_max.as_millis() / tuning.tick.as_millis();
        assert_eq!(heard_window_ticks(&tuning) as u128, expected);
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line("GET /health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(RequestLine {
                method: "GET",
                path: "/health"
            })
        );
        assert_eq!(parse_request_line("GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line("garbage"), None);
        assert_eq!(parse_request_line("GET / HTTP/2 extra\r\n"), None);
    }

    #[test]
    fn samples() {
        let text = "# HELP x y\nconsensus_leader{cluster=\"c\",node=\"1\"} 2\nconsensus_leader{cluster=\"c\",node=\"2\"} 3\nconsensus_up 1\n";
        assert_eq!(
            sample(text, "consensus_leader", &[("node", "2")]),
            Some(3.0)
        );
        assert_eq!(sample(text, "consensus_leader", &[]), Some(2.0));
        assert_eq!(sample(text, "consensus_up", &[]), Some(1.0));
        assert_eq!(sample(text, "consensus_leader", &[("node", "9")]), None);
        assert_eq!(sample(text, "consensus_lead", &[]), None);
    }

    #[test]
    fn the_docs_name_every_metric() {
        let docs = include_str!("../../docs/operations.md");
        for (name, _, _) in METRICS {
            assert!(
                docs.contains(name),
                "docs/operations.md does not describe {name}"
            );
        }
    }
}
