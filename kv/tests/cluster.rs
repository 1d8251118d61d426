//! Multi-process tests: real `consensus-kv serve` processes on loopback, the
//! same test body for every protocol (the proof that backends swap).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{NodeId, Role};
use consensus_kv::client::{ClientOptions, KvClient, KvError};
use consensus_kv::demo::{prepare, prepare_with_metrics, LocalCluster};
use consensus_kv::wire::NodeReport;
use consensus_service::ops::{http_get, sample};

const WAIT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

struct Harness {
    _dir: tempfile::TempDir,
    cluster: LocalCluster,
    protocol: &'static str,
}

impl Harness {
    fn start(protocol: &'static str, nodes: u64) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = prepare_with_metrics(dir.path(), "kvtest", protocol, nodes, None, true)
            .expect("prepare cluster");
        let mut cluster =
            LocalCluster::new(env!("CARGO_BIN_EXE_consensus-kv"), config).expect("cluster");
        cluster.start_all().expect("start nodes");
        Harness {
            _dir: dir,
            cluster,
            protocol,
        }
    }

    fn client(&self) -> KvClient {
        let options = ClientOptions {
            operation_timeout: WAIT,
            ..ClientOptions::default()
        };
        KvClient::from_config(&self.cluster.config, options).expect("client")
    }

    fn log_tail(&self, id: NodeId) -> String {
        let text = std::fs::read_to_string(self.cluster.log_path(id)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn reports(&mut self, client: &KvClient) -> Vec<NodeReport> {
        let mut reports = Vec::new();
        for id in self.cluster.ids() {
            if self.cluster.is_running(id) {
                if let Ok(report) = client.status(id).await {
                    reports.push(report);
                }
            }
        }
        reports
    }

    /// The node every running node agrees leads (leader-based protocols).
    async fn leader(&mut self, client: &KvClient) -> Option<NodeId> {
        let reports = self.reports(client).await;
        let leader = reports.iter().find(|r| r.role == Role::Leader)?.id;
        reports
            .iter()
            .all(|r| r.leader == Some(leader))
            .then_some(leader)
    }

    /// `GET path` on node `id`'s metrics listener.
    async fn http(&self, id: NodeId, path: &str) -> Result<(u16, String), String> {
        let addr = self.cluster.config.node(id).expect("node").metrics_addr;
        http_get(
            addr.expect("a metrics address"),
            path,
            Duration::from_secs(3),
        )
        .await
    }

    /// Node `id`'s `/metrics` text.
    async fn metrics(&self, id: NodeId) -> String {
        match self.http(id, "/metrics").await {
            Ok((200, text)) => text,
            other => panic!("{}: /metrics of node {id}: {other:?}", self.protocol),
        }
    }

    /// One series of node `id` (labels `node` = `id` and `extra`).
    async fn metric(&self, id: NodeId, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
        let node = id.to_string();
        let mut labels = vec![("node", node.as_str())];
        labels.extend_from_slice(extra);
        sample(&self.metrics(id).await, name, &labels)
    }

    /// Waits (bounded) until node `id`'s `/health` answers `status`;
    /// returns the body.
    async fn wait_health(&self, id: NodeId, status: u16, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.http(id, "/health").await;
            if let Ok((code, body)) = &answer {
                if *code == status {
                    return body.clone();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: /health of node {id} did not answer {status} within {within:?} (last: {answer:?})\n{}",
                    self.protocol,
                    self.log_tail(id)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node has applied `index` and all report
    /// the same state digest.
    async fn wait_converged(&mut self, client: &KvClient, index: u64) -> Vec<NodeReport> {
        let deadline = Instant::now() + WAIT;
        loop {
            let reports = self.reports(client).await;
            let running = self
                .cluster
                .ids()
                .into_iter()
                .filter(|id| self.cluster.is_running(*id))
                .count();
            let applied =
                reports.len() == running && reports.iter().all(|r| r.applied_index >= index);
            let same_state = reports.windows(2).all(|w| {
                w[0].state_applied != w[1].state_applied || w[0].state_crc == w[1].state_crc
            });
            assert!(
                same_state,
                "replicas at the same applied index differ: {reports:#?}"
            );
            if applied && reports.windows(2).all(|w| w[0].state_crc == w[1].state_crc) {
                return reports;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: nodes did not converge on index {index}: {reports:#?}",
                    self.protocol
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn applied_index(harness: &mut Harness, client: &KvClient) -> u64 {
    harness
        .reports(client)
        .await
        .iter()
        .map(|r| r.commit_index)
        .max()
        .unwrap_or(0)
}

/// The whole life of a 3-node cluster, for one protocol.
async fn cluster_lifecycle(protocol: &'static str) {
    let mut harness = Harness::start(protocol, 3);
    let client = Arc::new(harness.client());

    // The cluster comes up and takes writes.
    client
        .put("k0", Bytes::from("v0"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{protocol}: first put failed: {e}\nnode 1 log:\n{}",
                harness.log_tail(1)
            )
        });

    // The client can connect to every node ahead of need.
    assert_eq!(
        client.connect_all().await,
        3,
        "{protocol}: the client connects to every node"
    );

    // A write sent to a follower is redirected and applied once.
    if let Some(leader) = harness.leader(&client).await {
        let follower = harness
            .cluster
            .ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a follower");
        let before = harness.reports(&client).await;
        client.prefer(follower);
        client
            .put("redirected", Bytes::from("once"))
            .await
            .expect("redirected put");
        assert_eq!(
            client.cached_leader(),
            Some(leader),
            "{protocol}: the client follows the redirect"
        );
        let after = harness.reports(&client).await;
        let leader_before = before
            .iter()
            .find(|r| r.id == leader)
            .expect("leader report");
        let leader_after = after
            .iter()
            .find(|r| r.id == leader)
            .expect("leader report");
        if leader_before.epoch == leader_after.epoch {
            assert_eq!(
                leader_after.applied_index,
                leader_before.applied_index + 1,
                "{protocol}: the redirected put was applied exactly once"
            );
        }
    } else {
        // Leaderless: any node takes the write.
        client.prefer(2);
        client
            .put("redirected", Bytes::from("once"))
            .await
            .expect("put at any node");
    }
    assert_eq!(
        client.get("redirected", false).await.expect("get"),
        Some(Bytes::from("once"))
    );

    // A retried compare-and-set after a lost reply is applied once: the
    // retry returns the first (cached) answer, not "not swapped".
    client.put("counter", Bytes::from("1")).await.expect("put");
    client.inject_lost_replies(1);
    let (swapped, previous) = client
        .cas("counter", Some(Bytes::from("1")), Some(Bytes::from("2")))
        .await
        .expect("cas with a lost reply");
    assert!(
        swapped,
        "{protocol}: the retry must see the first outcome (swapped), so it was applied once"
    );
    assert_eq!(previous, Some(Bytes::from("1")));
    assert_eq!(
        client.get("counter", false).await.expect("get"),
        Some(Bytes::from("2"))
    );

    pipelined_on_one_connection(protocol, &client).await;

    // kill -9 of the leader (or the node the client talks to) with requests
    // in flight on the client's one connection: each gets its answer or
    // "outcome unknown", never a wrong one, and the next operations succeed
    // after failover.
    let victim = match harness.leader(&client).await {
        Some(leader) => leader,
        None => client.cached_leader().unwrap_or(1),
    };
    let has_leader = protocol != "paxos";
    exporting(&harness, has_leader.then_some(victim)).await;
    let survivors: Vec<NodeId> = harness
        .cluster
        .ids()
        .into_iter()
        .filter(|id| *id != victim)
        .collect();
    let mut changes_before = Vec::new();
    for &id in &survivors {
        let changes = harness
            .metric(id, "consensus_leader_changes_total", &[])
            .await
            .expect("a leader-change counter");
        changes_before.push((id, changes));
    }
    let in_flight = in_flight_writes(&client, 64);
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.cluster.kill(victim).expect("kill");
    let acknowledged = collect_in_flight(protocol, in_flight).await;
    for i in 0..10 {
        client
            .put(&format!("after-kill-{i}"), Bytes::from(format!("{i}")))
            .await
            .unwrap_or_else(|e| {
                panic!("{protocol}: write after killing node {victim} failed: {e}")
            });
    }

    // A new client connects to the survivors and leaves the dead node out.
    let fresh = KvClient::from_config(
        &harness.cluster.config,
        ClientOptions {
            attempt_timeout: Duration::from_millis(500),
            operation_timeout: WAIT,
            ..ClientOptions::default()
        },
    )
    .expect("client");
    assert_eq!(
        fresh.connect_all().await,
        2,
        "{protocol}: only the two survivors are connected"
    );
    fresh.close().await;

    // The survivors' metrics saw the failover: the leader-change counter
    // moved and they name a new, live leader.
    if has_leader {
        leader_change_seen(&harness, victim, &changes_before).await;
    }

    // The killed node restarts and catches up to the same state.
    harness.cluster.start(victim).expect("restart");
    let index = applied_index(&mut harness, &client).await;
    harness.wait_converged(&client, index).await;

    // Stop all, restart all: every acknowledged write is there.
    harness.cluster.stop_all(Duration::from_secs(5));
    harness.cluster.start_all().expect("restart all");
    let client = harness.client();
    for i in 0..10 {
        assert_eq!(
            client
                .get(&format!("after-kill-{i}"), false)
                .await
                .expect("get after full restart"),
            Some(Bytes::from(format!("{i}"))),
            "{protocol}: lost after-kill-{i}"
        );
    }
    assert_eq!(
        client.get("k0", false).await.expect("get"),
        Some(Bytes::from("v0"))
    );
    assert_eq!(
        client.get("counter", false).await.expect("get"),
        Some(Bytes::from("2"))
    );
    for (key, value) in acknowledged {
        assert_eq!(
            client.get(&key, false).await.expect("get"),
            Some(Bytes::from(value.clone())),
            "{protocol}: {key} was acknowledged as {value} while the leader was killed"
        );
    }
    client.close().await;
    health_when_cut_off(&mut harness).await;
    harness.cluster.stop_all(Duration::from_secs(5));
}

/// Every node is healthy and exports the runtime's, the transport's and
/// the service's metrics; the leader (if any) its followers' lag.
async fn exporting(harness: &Harness, leader: Option<NodeId>) {
    let protocol = harness.protocol;
    let mut puts = 0.0;
    let mut commits = 0.0;
    for id in harness.cluster.ids() {
        let body = harness.wait_health(id, 200, WAIT).await;
        assert!(body.starts_with("ok"), "{protocol}: node {id}: {body}");
        let text = harness.metrics(id).await;
        for name in [
            "consensus_epoch{",
            "consensus_leader_changes_total{",
            "consensus_commit_index{",
            "consensus_applied_index{",
            "consensus_fsync_seconds_bucket{",
            "consensus_request_queue_depth{",
            "consensus_pending_proposals{",
            "consensus_transport_connections_total{",
            "consensus_transport_refusals_total{",
            "consensus_healthy{",
        ] {
            assert!(
                text.contains(name),
                "{protocol}: node {id} does not export {name}:\n{text}"
            );
        }
        let labels = [("node", id.to_string()), ("protocol", protocol.to_string())];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            sample(&text, "consensus_healthy", &labels),
            Some(1.0),
            "{protocol}: node {id}"
        );
        puts += sample(
            &text,
            "consensus_client_requests_total",
            &[("service", "kv"), ("op", "put"), ("result", "ok")],
        )
        .unwrap_or(0.0);
        commits += sample(&text, "consensus_commit_seconds_count", &[]).unwrap_or(0.0);
    }
    assert!(puts >= 1.0, "{protocol}: no node counted the puts");
    assert!(commits >= 1.0, "{protocol}: no node timed a commit");
    if let Some(leader) = leader {
        let text = harness.metrics(leader).await;
        assert!(
            text.contains("consensus_follower_lag_entries{"),
            "{protocol}: the leader exports no follower lag:\n{text}"
        );
        assert_eq!(
            harness.metric(leader, "consensus_is_leader", &[]).await,
            Some(1.0)
        );
    }
}

/// Waits (bounded) until every survivor's leader-change counter passed its
/// value before `victim` (the leader) was killed, and it names a live leader.
async fn leader_change_seen(harness: &Harness, victim: NodeId, before: &[(NodeId, f64)]) {
    let deadline = Instant::now() + WAIT;
    for &(id, changes) in before {
        loop {
            let now = harness
                .metric(id, "consensus_leader_changes_total", &[])
                .await;
            let leader = harness.metric(id, "consensus_leader", &[]).await;
            let new_leader = leader.is_some_and(|l| l != 0.0 && l != victim as f64);
            if now.is_some_and(|n| n > changes) && new_leader {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: node {id}'s metrics did not show the failover from node {victim} \
                 (leader changes {changes} -> {now:?}, leader {leader:?})",
                harness.protocol
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `/health` is 200 on every node of the whole cluster, then 503 on a node
/// whose two peers were killed (it is cut off from the majority).
async fn health_when_cut_off(harness: &mut Harness) {
    let ids = harness.cluster.ids();
    for &id in &ids {
        harness.wait_health(id, 200, WAIT).await;
    }
    let (alone, others) = ids.split_first().expect("nodes");
    for &id in others {
        harness.cluster.kill(id).expect("kill");
    }
    let body = harness
        .wait_health(*alone, 503, Duration::from_secs(15))
        .await;
    assert!(
        ["no known leader", "election", "cut off"]
            .iter()
            .any(|why| body.contains(why)),
        "{}: node {alone} cut off: {body}",
        harness.protocol
    );
}

/// Many operations at once on one client (one connection per node, one
/// pipelined stream on it): 200 compare-and-sets on fresh keys, a tenth of
/// whose replies are lost and retried, each applied once (a second
/// application would answer "not swapped"), then read back concurrently.
async fn pipelined_on_one_connection(protocol: &str, client: &KvClient) {
    client.inject_lost_replies(20);
    let cas = (0..200).map(|i| async move {
        let key = format!("pipelined-{i}");
        let answer = client
            .cas(&key, None, Some(Bytes::from(format!("v{i}"))))
            .await;
        (i, answer)
    });
    for (i, answer) in futures::future::join_all(cas).await {
        let (swapped, previous) =
            answer.unwrap_or_else(|e| panic!("{protocol}: pipelined cas {i} failed: {e}"));
        assert!(
            swapped && previous.is_none(),
            "{protocol}: cas {i} must be applied exactly once, retry or not \
             (got swapped={swapped}, previous={previous:?})"
        );
    }
    let gets =
        (0..200).map(|i| async move { (i, client.get(&format!("pipelined-{i}"), false).await) });
    for (i, value) in futures::future::join_all(gets).await {
        assert_eq!(
            value.expect("pipelined get"),
            Some(Bytes::from(format!("v{i}"))),
            "{protocol}: pipelined-{i}"
        );
    }
}

type InFlight = Vec<tokio::task::JoinHandle<Vec<(String, String, Result<(), KvError>)>>>;

/// `writers` concurrent writers on one client, each putting fresh keys for
/// 1.5 s.
fn in_flight_writes(client: &Arc<KvClient>, writers: usize) -> InFlight {
    let until = Instant::now() + Duration::from_millis(1500);
    (0..writers)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = 0;
                while Instant::now() < until {
                    let (key, value) = (format!("inflight-{w}-{n}"), format!("{w}.{n}"));
                    let result = client.put(&key, Bytes::from(value.clone())).await;
                    outcomes.push((key, value, result));
                    n += 1;
                }
                outcomes
            })
        })
        .collect()
}

/// Every outcome is a success or an honest "outcome unknown" /
/// "unavailable"; returns the acknowledged writes.
async fn collect_in_flight(protocol: &str, writers: InFlight) -> Vec<(String, String)> {
    let mut acknowledged = Vec::new();
    let mut unknown = 0;
    for writer in writers {
        for (key, value, result) in writer.await.expect("writer task") {
            match result {
                Ok(()) => acknowledged.push((key, value)),
                Err(KvError::OutcomeUnknown(_) | KvError::Unavailable(_)) => unknown += 1,
                Err(other) => panic!("{protocol}: {key} failed with a wrong answer: {other}"),
            }
        }
    }
    assert!(
        acknowledged.len() > 64,
        "{protocol}: the writers made progress ({} acknowledged, {unknown} unknown)",
        acknowledged.len()
    );
    acknowledged
}

/// Bad input: unreachable cluster, oversized values, malformed config.
#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path(), "kvtest", "raft", 3, None).unwrap();
    let binary = env!("CARGO_BIN_EXE_consensus-kv");
    // Nothing runs: a bounded wait, then a clear message and a non-zero exit.
    let output = std::process::Command::new(binary)
        .args(["get", "k", "--timeout", "1s", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unavailable") && stderr.contains("majority"),
        "{stderr}"
    );
    // A malformed config names the file, the line and the field.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "cluster_id = \"x\"\nprotocol = \"raft\"\n[[node]]\nid = 0\npeer_addr = \"1.2.3.4:1\"\nclient_addr = \"1.2.3.4:2\"\n").unwrap();
    let output = std::process::Command::new(binary)
        .args(["serve", "--id", "1", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:4: field `node.id`"), "{stderr}");
    // An unknown command is refused.
    let output = std::process::Command::new(binary)
        .arg("frobnicate")
        .output()
        .unwrap();
    assert!(!output.status.success());
}

/// `serve --metrics-addr`: an address in use is a clear startup error; a
/// free one serves `/health` (a one-node cluster is its own majority) and
/// `/metrics`.
#[test]
fn metrics_addr_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = prepare(dir.path(), "kvtest", "raft", 1, None).unwrap();
    let binary = env!("CARGO_BIN_EXE_consensus-kv");
    let serve = |metrics: std::net::SocketAddr| {
        std::process::Command::new(binary)
            .args([
                "serve",
                "--id",
                "1",
                "--metrics-addr",
                &metrics.to_string(),
                "--config",
            ])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Bounded: the child is killed if it neither exits nor gets healthy.
    let deadline = Instant::now() + WAIT;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = serve(taken.local_addr().unwrap());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve with a metrics address in use did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("metrics listener on"), "{stderr}");
    drop(taken);

    let free = consensus_service::demo::free_tcp_addrs(1).unwrap()[0];
    let mut child = serve(free);
    let answer = runtime().block_on(async {
        loop {
            match http_get(free, "/health", Duration::from_secs(2)).await {
                Ok((200, body)) => {
                    let metrics = http_get(free, "/metrics", Duration::from_secs(2)).await;
                    break Ok((body, metrics));
                }
                other if Instant::now() > deadline => break Err(other),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let (body, metrics) = answer.unwrap_or_else(|last| panic!("never healthy: {last:?}"));
    assert!(body.starts_with("ok: leader, leader 1"), "{body}");
    let (status, text) = metrics.expect("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &text,
            "consensus_is_leader",
            &[("node", "1"), ("protocol", "raft")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn value_over_the_limit_is_refused_and_nothing_is_written() {
    runtime().block_on(async {
        let mut harness = Harness::start("raft", 3);
        let client = harness.client();
        client.put("small", Bytes::from("ok")).await.expect("put");
        let huge = Bytes::from(vec![
            b'x';
            consensus_kv::config::DEFAULT_VALUE_BYTES_MAX + 1
        ]);
        let error = client.put("huge", huge).await.expect_err("oversized value");
        assert!(error.to_string().contains("exceeds the limit"), "{error}");
        assert_eq!(client.get("huge", false).await.expect("get"), None);
        garbage_and_reused_ids(&harness).await;
        assert_eq!(
            client
                .get("small", false)
                .await
                .expect("other clients are unaffected"),
            Some(Bytes::from("ok"))
        );
        client.close().await;
        harness.cluster.stop_all(Duration::from_secs(5));
        let _ = harness.reports(&client).await;
    });
}

macro_rules! lifecycle {
    ($name:ident, $protocol:literal) => {
        #[test]
        fn $name() {
            runtime().block_on(async {
                tokio::time::timeout(Duration::from_secs(240), cluster_lifecycle($protocol))
                    .await
                    .expect("test deadline");
            });
        }
    };
}

lifecycle!(raft_cluster_lifecycle, "raft");
lifecycle!(multipaxos_cluster_lifecycle, "multipaxos");
lifecycle!(paxos_cluster_lifecycle, "paxos");
lifecycle!(zab_cluster_lifecycle, "zab");

/// A raw connection to a node's client API: a frame whose body is garbage
/// gets a typed "invalid request" answer under its id and the connection
/// stays up; a reused request id closes that connection with the protocol
/// violation code.
async fn garbage_and_reused_ids(harness: &Harness) {
    use consensus_service::frame::{encode_frame, FrameDecoder};
    use consensus_service::pipe::codes;

    let config = &harness.cluster.config;
    let ca = std::fs::read_to_string(config.certs_dir.join("ca.pem")).expect("ca");
    let endpoint =
        consensus_kv::client::client_endpoint(config.nodes.iter().map(|n| &n.client_addr), &ca)
            .expect("endpoint");
    let cluster = consensus::ClusterId::new(config.cluster_id.clone()).expect("cluster id");
    let connection = endpoint
        .connect(
            config.nodes[0].client_addr,
            &consensus_kv::tls::server_name(&cluster, config.nodes[0].id),
        )
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    let mut frames = bytes::BytesMut::new();
    encode_frame(&mut frames, 7, b"\xff\xfe not a request");
    send.write_all(&frames).await.expect("write");
    let mut decoder = FrameDecoder::new(1 << 20);
    let (id, body) = loop {
        if let Some(frame) = decoder.next_frame().expect("valid answer frames") {
            break frame;
        }
        let chunk = tokio::time::timeout(WAIT, recv.read_chunk(1 << 16, true))
            .await
            .expect("an answer in time")
            .expect("read")
            .expect("not finished");
        decoder.extend(&chunk.bytes);
    };
    assert_eq!(id, 7, "the answer carries the request's id");
    let reply: consensus_kv::wire::Reply = consensus_kv::wire::decode(&body).expect("a reply");
    assert!(
        matches!(&reply, consensus_kv::wire::Reply::Error(consensus_kv::wire::ServiceError::Invalid(text)) if text.contains("does not decode")),
        "{reply:?}"
    );
    let mut frames = bytes::BytesMut::new();
    encode_frame(&mut frames, 7, b"again");
    send.write_all(&frames).await.expect("write");
    tokio::time::timeout(WAIT, connection.closed())
        .await
        .expect("closed in time");
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            assert_eq!(
                close.error_code.into_inner(),
                u64::from(codes::PROTOCOL_VIOLATION)
            );
        }
        other => panic!("expected a protocol-violation close, got {other:?}"),
    }
}
