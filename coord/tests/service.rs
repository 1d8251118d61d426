//! Multi-process service tests, the same body for every protocol: the data
//! tree and watches through two servers, the recipes (including the watch
//! race), session expiry removing every ephemeral on every replica at the
//! same log index, and a reconnect within the timeout keeping them (the
//! client's server is killed with kill -9).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus_coord::client::SessionState;
use consensus_coord::recipes::{Barrier, ConfigWatch, Election, Lock};
use consensus_coord::state::EndReason;
use consensus_coord::{ClientError, CoordError, CreateMode, EventKind, MultiError, Op, Read};
use support::{enabled, eventually, TestCluster};

const WAIT: Duration = Duration::from_secs(10);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

async fn tree_and_watches(cluster: &TestCluster) {
    let a = cluster.client(Duration::from_secs(5), Some(1)).await;
    let b = cluster.client(Duration::from_secs(5), Some(2)).await;
    assert_eq!(
        a.create("/app", "v1", CreateMode::Persistent)
            .await
            .unwrap(),
        "/app"
    );
    assert_eq!(
        a.create("/app", "again", CreateMode::Persistent).await,
        Err(ClientError::Coord(CoordError::NodeExists("/app".into())))
    );
    // b reads from its own server: sync first (another session wrote).
    b.sync("/app").await.unwrap();
    let (data, stat, watch) = b.get("/app", Read::watch()).await.unwrap();
    assert_eq!((data, stat.version), (Bytes::from("v1"), 0));
    assert_eq!(a.set_data("/app", "v2", Some(0)).await.unwrap().version, 1);
    assert!(matches!(
        a.set_data("/app", "stale", Some(0)).await,
        Err(ClientError::Coord(CoordError::BadVersion {
            expected: 0,
            actual: 1,
            ..
        }))
    ));
    let event = within("data watch", watch.unwrap()).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventKind::NodeDataChanged, "/app")
    );
    // The event came before any reply reflecting the change: reading now
    // (same server, no sync) must show the new data.
    let (data, _, _) = b.get("/app", Read::default()).await.unwrap();
    assert_eq!(
        data,
        Bytes::from("v2"),
        "a client sees the new data after the event"
    );
    // Linearizable read of another session's write.
    a.set_data("/app", "v3", None).await.unwrap();
    let (data, _, _) = b.get("/app", Read::linearizable()).await.unwrap();
    assert_eq!(data, Bytes::from("v3"));
    // Children watch, sequential nodes, ephemerals without children.
    let (children, watch) = b.children("/app", Read::watch()).await.unwrap();
    assert!(children.is_empty());
    let first = a
        .create("/app/q_", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    let second = a
        .create("/app/q_", "", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("/app/q_0000000000", "/app/q_0000000001")
    );
    let event = within("child watch", watch.unwrap()).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventKind::NodeChildrenChanged, "/app")
    );
    assert_eq!(
        a.create(&format!("{second}/x"), "", CreateMode::Persistent)
            .await,
        Err(ClientError::Coord(CoordError::NoChildrenForEphemerals(
            second.clone()
        )))
    );
    // Multi: all or nothing.
    let failed = a
        .multi(vec![
            Op::Create {
                path: "/app/m".into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
            },
            Op::Check {
                path: "/app".into(),
                version: Some(99),
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(ClientError::Multi(MultiError { index: 1, .. }))),
        "{failed:?}"
    );
    assert_eq!(a.exists("/app/m", Read::default()).await.unwrap().0, None);
    let done = a
        .multi(vec![
            Op::Check {
                path: "/app".into(),
                version: Some(2),
            },
            Op::Create {
                path: "/app/m".into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
            },
            Op::Delete {
                path: first.clone(),
                version: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(done.len(), 3);
    // Deleting a node with children fails; the watch on a deleted node fires.
    let (_, watch) = b
        .exists(
            "/app/m",
            Read {
                watch: true,
                linearizable: true,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        a.delete("/app", None).await,
        Err(ClientError::Coord(CoordError::NotEmpty(_)))
    ));
    a.delete("/app/m", None).await.unwrap();
    let event = within("exists watch", watch.unwrap()).await.unwrap();
    assert_eq!(event.kind, EventKind::NodeDeleted);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

async fn watch_race(cluster: &TestCluster) {
    let p = cluster.client(Duration::from_secs(5), Some(1)).await;
    let q = cluster.client(Duration::from_secs(5), Some(3)).await;
    let first = within("first campaign", Election::new(&p, "/race").campaign())
        .await
        .unwrap();
    let deleter = p.clone();
    let waiter = q.clone();
    let hook: consensus_coord::recipes::BeforeWatchHook = Arc::new(move |predecessor: String| {
        let deleter = deleter.clone();
        let waiter = waiter.clone();
        Box::pin(async move {
            // The predecessor goes away between `ls` and setting the watch.
            deleter
                .delete(&predecessor, None)
                .await
                .expect("delete the predecessor");
            // Make sure the candidate's own server has applied the delete,
            // so `exists` finds it gone and only the re-check can help.
            waiter.sync("/").await.expect("sync");
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    let election = Election::new(&q, "/race").before_watch(hook);
    let stats = election.stats();
    let started = Instant::now();
    let second = within("campaign across the watch race", election.campaign())
        .await
        .unwrap();
    assert!(second.token() > first.token());
    assert_eq!(
        stats.wakeups.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no event was needed"
    );
    assert!(
        stats.listings.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the recipe re-listed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "progress without waiting for a timeout"
    );
    p.close().await.unwrap();
    q.close().await.unwrap();
}

async fn lock_with_fencing(cluster: &TestCluster) {
    let one = cluster.client(Duration::from_secs(5), Some(1)).await;
    let two = cluster.client(Duration::from_secs(5), Some(2)).await;
    one.create("/fence", "", CreateMode::Persistent)
        .await
        .unwrap();
    let held = within("lock", Lock::new(&one, "/locks/report").acquire())
        .await
        .unwrap();
    held.guarded(vec![Op::SetData {
        path: "/fence".into(),
        data: Bytes::from(held.token().to_string()),
        version: None,
    }])
    .await
    .unwrap();
    let waiter = {
        let two = two.clone();
        tokio::spawn(async move { Lock::new(&two, "/locks/report").acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "the second client waits while the lock is held"
    );
    let old_token = held.token();
    let old_path = held.path().to_string();
    held.release().await.unwrap();
    let next = within("second holder", waiter).await.unwrap().unwrap();
    assert!(next.token() > old_token, "fencing tokens increase");
    // A deposed holder's fenced write is refused as a whole.
    let refused = one
        .multi(vec![
            Op::Check {
                path: old_path,
                version: None,
            },
            Op::SetData {
                path: "/fence".into(),
                data: Bytes::from("stale"),
                version: None,
            },
        ])
        .await;
    assert!(matches!(
        refused,
        Err(ClientError::Multi(MultiError {
            index: 0,
            error: CoordError::NoNode(_)
        }))
    ));
    next.release().await.unwrap();
    one.close().await.unwrap();
    two.close().await.unwrap();
}

async fn barrier_and_configuration(cluster: &TestCluster) {
    let clients = [
        cluster.client(Duration::from_secs(5), Some(1)).await,
        cluster.client(Duration::from_secs(5), Some(2)).await,
        cluster.client(Duration::from_secs(5), Some(3)).await,
    ];
    let mut entering = Vec::new();
    for client in clients.iter().take(2) {
        let client = client.clone();
        entering.push(tokio::spawn(async move {
            let mut barrier = Barrier::new(&client, "/barrier/b", 3);
            barrier.enter().await.map(|_| barrier)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        entering.iter().all(|t| !t.is_finished()),
        "two of three wait at the barrier"
    );
    let mut third = Barrier::new(&clients[2], "/barrier/b", 3);
    within("third enters", third.enter()).await.unwrap();
    let mut barriers = vec![third];
    for task in entering {
        barriers.push(within("everyone passes", task).await.unwrap().unwrap());
    }
    let leaving: Vec<_> = barriers
        .into_iter()
        .map(|mut barrier| tokio::spawn(async move { barrier.leave().await }))
        .collect();
    for task in leaving {
        within("everyone leaves", task).await.unwrap().unwrap();
    }
    let (children, _) = clients[0]
        .children("/barrier/b", Read::linearizable())
        .await
        .unwrap();
    assert!(children.is_empty(), "the barrier is reset: {children:?}");

    let mut config = ConfigWatch::new(&clients[0], "/config/db").await.unwrap();
    assert!(config.current().is_none());
    clients[1].ensure_path("/config").await.unwrap();
    clients[1]
        .create("/config/db", "primary=a", CreateMode::Persistent)
        .await
        .unwrap();
    let value = within("config created", config.changed())
        .await
        .unwrap()
        .cloned();
    assert_eq!(value.map(|(d, _)| d), Some(Bytes::from("primary=a")));
    clients[2]
        .set_data("/config/db", "primary=b", None)
        .await
        .unwrap();
    let value = within("config changed", config.changed())
        .await
        .unwrap()
        .cloned();
    assert_eq!(value.map(|(d, _)| d), Some(Bytes::from("primary=b")));
    for client in &clients {
        client.close().await.unwrap();
    }
}

async fn expiry_on_every_replica(cluster: &TestCluster) {
    let timeout = Duration::from_secs(1);
    let doomed = cluster.client(timeout, Some(2)).await;
    doomed.ensure_path("/expiry").await.unwrap();
    let mut paths = vec![
        doomed
            .create("/expiry/a", "", CreateMode::Ephemeral)
            .await
            .unwrap(),
        doomed
            .create("/expiry/b", "", CreateMode::Ephemeral)
            .await
            .unwrap(),
        doomed
            .create("/expiry/s_", "", CreateMode::EphemeralSequential)
            .await
            .unwrap(),
    ];
    paths.sort();
    let session = doomed.session_id();
    // The client process dies: no close, no more pings.
    drop(doomed);
    let crashed = Instant::now();
    let ids: Vec<u64> = cluster.config.nodes.iter().map(|n| n.id).collect();
    let ends = eventually(WAIT, || async {
        let mut ends = Vec::new();
        for id in &ids {
            let report = cluster.session_report(*id, session).await?;
            if report.alive {
                return None;
            }
            ends.push(report.end?);
        }
        Some(ends)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{}: the session did not end on every replica\n{}",
            cluster.protocol,
            cluster.logs()
        )
    });
    let expired_after = crashed.elapsed();
    assert!(
        expired_after >= timeout / 2,
        "expired only after its timeout ({expired_after:?})"
    );
    for end in &ends {
        assert_eq!(
            end, &ends[0],
            "every replica ended the session at the same index with the same removals"
        );
    }
    assert_eq!(ends[0].reason, EndReason::Expired);
    assert_eq!(ends[0].removed, paths, "every ephemeral was removed");
    for id in &ids {
        for path in &paths {
            let (applied, exists) = cluster.exists_on(*id, path).await.expect("node answers");
            assert!(
                applied >= ends[0].index && !exists,
                "{path} is gone on node {id}"
            );
        }
    }
    eprintln!(
        "{}: session expired on every replica at index {} after {expired_after:?}",
        cluster.protocol, ends[0].index
    );
}

async fn reconnect_keeps_ephemerals(cluster: &mut TestCluster) {
    let timeout = Duration::from_secs(4);
    let client = cluster.client(timeout, Some(3)).await;
    let SessionState::Connected(server) = client.state() else {
        panic!("connected")
    };
    let other = cluster
        .client(
            Duration::from_secs(5),
            Some(if server == 1 { 2 } else { 1 }),
        )
        .await;
    client.ensure_path("/reconnect").await.unwrap();
    let mine = client
        .create("/reconnect/e", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, watch) = client
        .exists("/reconnect/missed", Read::watch())
        .await
        .unwrap();
    let session = client.session_id();
    cluster.nodes.kill(server).unwrap();
    let killed = Instant::now();
    // A change the client cannot see while it is disconnected.
    other
        .create("/reconnect/missed", "", CreateMode::Persistent)
        .await
        .unwrap();
    eprintln!(
        "{}: a write through node {:?} committed {:?} after the kill",
        cluster.protocol,
        other.state(),
        killed.elapsed()
    );
    let reconnected = eventually(timeout * 2, || async {
        match client.state() {
            SessionState::Connected(node) if node != server => Some(node),
            _ => None,
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "{}: no reconnect ({:?})\n{}",
            cluster.protocol,
            client.state(),
            cluster.logs()
        )
    });
    assert!(
        killed.elapsed() < timeout,
        "{}: reconnected within the session timeout ({:?})\n{}",
        cluster.protocol,
        killed.elapsed(),
        cluster.logs()
    );
    let event = within("re-registered watch", watch.unwrap()).await.unwrap();
    assert_eq!(
        (event.kind, event.path.as_str()),
        (EventKind::NodeCreated, "/reconnect/missed")
    );
    assert_eq!(client.session_id(), session, "the same session");
    let (stat, _) = client.exists(&mine, Read::linearizable()).await.unwrap();
    assert_eq!(
        stat.map(|s| s.ephemeral_owner),
        Some(session),
        "the ephemeral survived the reconnect"
    );
    // And it stays: a whole timeout later the session is still alive.
    tokio::time::sleep(timeout + Duration::from_millis(500)).await;
    assert!(client
        .exists(&mine, Read::linearizable())
        .await
        .unwrap()
        .0
        .is_some());
    client
        .create("/reconnect/after", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    eprintln!(
        "{}: reconnected from node {server} to node {reconnected}",
        cluster.protocol
    );
    cluster.nodes.start(server).unwrap();
    client.close().await.unwrap();
    let (stat, _) = other.exists(&mine, Read::linearizable()).await.unwrap();
    assert!(
        stat.is_none(),
        "closing the session deletes its ephemerals at once"
    );
    other.close().await.unwrap();
}

/// Every node answers `/health` (200: the cluster is whole) and `/metrics`
/// with the runtime's metrics and the coordination service's request
/// counters (the tree test before made writes).
async fn operations_endpoint(cluster: &TestCluster) {
    use consensus_service::ops::{http_get, sample};
    let protocol = &cluster.protocol;
    let mut writes = 0.0;
    for node in &cluster.config.nodes {
        let addr = node.metrics_addr.expect("a metrics address");
        let health = eventually(WAIT, || async {
            match http_get(addr, "/health", Duration::from_secs(2)).await {
                Ok((200, body)) => Some(body),
                _ => None,
            }
        })
        .await;
        assert!(
            health.as_deref().is_some_and(|body| body.starts_with("ok")),
            "{protocol}: node {} is not healthy: {:?}",
            node.id,
            http_get(addr, "/health", Duration::from_secs(2)).await
        );
        let (status, text) = http_get(addr, "/metrics", Duration::from_secs(2))
            .await
            .expect("/metrics");
        assert_eq!(status, 200, "{protocol}: /metrics of node {}", node.id);
        let id = node.id.to_string();
        for name in [
            "consensus_epoch",
            "consensus_commit_index",
            "consensus_healthy",
        ] {
            assert!(
                sample(
                    &text,
                    name,
                    &[("node", id.as_str()), ("protocol", protocol.as_str())]
                )
                .is_some(),
                "{protocol}: node {} does not export {name}:\n{text}",
                node.id
            );
        }
        writes += sample(
            &text,
            "consensus_client_requests_total",
            &[("service", "coord"), ("op", "create"), ("result", "ok")],
        )
        .unwrap_or(0.0);
        let (status, _) = http_get(addr, "/nothing", Duration::from_secs(2))
            .await
            .expect("an answer");
        assert_eq!(status, 404);
    }
    assert!(writes >= 1.0, "{protocol}: no node counted a create");
}

/// The server-to-server forwarding pipe: refused to a connection without a
/// node certificate; with one, many requests share one stream, a request
/// that does not decode is answered with a typed error, a follower refuses
/// an append it would have to forward again, and the leader answers.
async fn forwarding_pipe(cluster: &TestCluster) {
    use consensus::{certs, ClusterId};
    use consensus_coord::tls;
    use consensus_coord::wire::{self, Forward, ForwardReply, Forwarded, Open};
    use consensus_service::pipe::PipeClient;

    let config = &cluster.config;
    let leader = eventually(Duration::from_secs(10), || cluster.leader())
        .await
        .expect("a leader");
    let follower = config
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .expect("a follower");
    let cluster_id = ClusterId::new(config.cluster_id.clone()).expect("cluster id");
    let addr = |id| config.node(id).expect("node").client_addr;
    let connect = |client_config: quinn::ClientConfig, to| {
        let name = tls::server_name(&cluster_id, to);
        async move {
            let mut endpoint =
                quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
            endpoint.set_default_client_config(client_config);
            let connection = within(
                "connecting",
                endpoint.connect(addr(to), &name).expect("connect"),
            )
            .await
            .expect("connected");
            (endpoint, connection)
        }
    };
    let preamble = || Bytes::from(wire::frame(&Open::ForwardPipe).expect("frame"));

    // A client (no node certificate) may not forward: the stream is reset.
    let ca = std::fs::read_to_string(config.certs_dir.join("ca.pem")).expect("ca");
    let (_endpoint, connection) = connect(tls::client_config(&ca).unwrap(), leader).await;
    let pipe = PipeClient::open_after(connection.clone(), wire::FRAME_BYTES_MAX, preamble())
        .await
        .expect("stream");
    let refused = within(
        "a refused forward",
        pipe.call(Bytes::from(wire::encode(&Forward::Barrier))),
    )
    .await;
    assert!(refused.is_err(), "a client forwarded: {refused:?}");

    // A node certificate may.
    let material = certs::load_node_tls(&config.certs_dir, &cluster_id, follower).expect("tls");
    let node_config = tls::node_client_config(&material).expect("node config");
    let (_endpoint, connection) = connect(node_config.clone(), leader).await;
    let pipe = PipeClient::open_after(connection, wire::FRAME_BYTES_MAX, preamble())
        .await
        .expect("pipe");
    let call = |request: Bytes| {
        let pipe = pipe.clone();
        async move {
            let bytes = within("a forwarded request", pipe.call(request))
                .await
                .expect("an answer");
            wire::decode::<ForwardReply>(&bytes).expect("a forward reply")
        }
    };
    match call(Bytes::from_static(&[0xff, 0xff, 0xff])).await {
        Err(consensus_coord::wire::ServiceError::Invalid(message)) => {
            assert!(message.contains("does not decode"), "{message}")
        }
        other => panic!("garbage answered with {other:?}"),
    }
    // Many barriers outstanding at once on the one stream.
    let mut barriers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        barriers.spawn(call(Bytes::from(wire::encode(&Forward::Barrier))));
    }
    while let Some(reply) = barriers.join_next().await {
        let reply = reply.expect("joined");
        assert!(
            matches!(reply, Ok(Forwarded::Barrier { index }) if index > 0),
            "{reply:?}"
        );
    }
    if cluster.protocol == "paxos" {
        return; // no leader: every node runs barriers itself
    }
    // A follower does not forward a forwarded write again (it answers that
    // it is not the leader; the sender retries with the leader).
    let (_endpoint, connection) = connect(node_config, follower).await;
    let to_follower = PipeClient::open_after(connection, wire::FRAME_BYTES_MAX, preamble())
        .await
        .expect("pipe");
    let bytes = within(
        "a forward to a follower",
        to_follower.call(Bytes::from(wire::encode(&Forward::Append(
            Bytes::from_static(b"never decoded: refused before"),
        )))),
    )
    .await
    .expect("an answer");
    let reply = wire::decode::<ForwardReply>(&bytes).expect("a forward reply");
    match reply {
        Err(consensus_coord::wire::ServiceError::NotReady(message)) => {
            assert!(message.contains("not the leader"), "{message}")
        }
        other => panic!("a follower answered a forwarded write with {other:?}"),
    }
}

async fn service(protocol: &str) {
    if !enabled(protocol) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut cluster = TestCluster::start(protocol).await;
    eprintln!("{protocol}: tree_and_watches");
    tree_and_watches(&cluster).await;
    eprintln!("{protocol}: operations_endpoint");
    operations_endpoint(&cluster).await;
    eprintln!("{protocol}: forwarding_pipe");
    forwarding_pipe(&cluster).await;
    eprintln!("{protocol}: watch_race");
    watch_race(&cluster).await;
    eprintln!("{protocol}: lock_with_fencing");
    lock_with_fencing(&cluster).await;
    eprintln!("{protocol}: barrier_and_configuration");
    barrier_and_configuration(&cluster).await;
    eprintln!("{protocol}: expiry_on_every_replica");
    expiry_on_every_replica(&cluster).await;
    eprintln!("{protocol}: reconnect_keeps_ephemerals");
    reconnect_keeps_ephemerals(&mut cluster).await;
    eprintln!("{protocol}: service test took {:?}", started.elapsed());
}

macro_rules! per_protocol {
    ($($name:ident => $protocol:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            service($protocol).await;
        }
    )*};
}

per_protocol! {
    service_raft => "raft",
    service_multipaxos => "multipaxos",
    service_paxos => "paxos",
    service_zab => "zab",
}
