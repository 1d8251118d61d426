//! Membership changes of a coordination cluster (real processes): a node
//! added with `member add` (listed in the file with `join = true` on Raft;
//! on ZAB not in the file, started with `serve --join --peer-addr
//! --client-addr` and certified by `certs --add-node`), the
//! leader removed, the data still there. The procedure is the service
//! edge's, tested on every protocol by the key-value service
//! (`kv/tests/membership.rs`); this checks coord's wiring, on Raft and ZAB.

use std::time::{Duration, Instant};

use consensus::{certs, ClusterId, NodeId};
use consensus_coord::members::{MemberClient, MemberCommand};
use consensus_coord::{ClientOptions, ClusterConfig, CoordClient, CreateMode, Read};
use consensus_service::demo::{free_udp_addrs, prepare, LocalCluster};
use consensus_service::members::{write_secret, MemberAddrs, MemberRole};

const BINARY: &str = env!("CARGO_BIN_EXE_consensus-coord");

async fn client(config: &ClusterConfig) -> CoordClient {
    let options = ClientOptions {
        session_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(30),
        prefer: None,
    };
    CoordClient::connect_config(config, options)
        .await
        .expect("a session")
}

/// How node 4 is told it joins.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Joining {
    /// Listed in the cluster file with `join = true`; certificate issued
    /// through the library.
    FileEntry,
    /// Not in the file: `serve --join --peer-addr A --client-addr B`, its
    /// certificate from `certs --add-node 4`.
    Flags,
}

async fn add_and_remove_the_leader(protocol: &'static str, joining: Joining) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = prepare(dir.path(), "coordm", protocol, 3, None).expect("prepare");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&ClusterConfig::render_operator("operator-token"));
    let addrs = free_udp_addrs(2).expect("ports");
    if joining == Joining::FileEntry {
        text.push_str(&ClusterConfig::render_join(4, addrs[0], addrs[1]));
    }
    std::fs::write(&path, text).expect("config");
    write_secret(&dir.path().join("operator-token")).expect("token");
    let certs_dir = dir.path().join("certs");
    match joining {
        Joining::FileEntry => {
            let cluster_id = ClusterId::new("coordm".to_string()).expect("cluster id");
            let ca = certs::load_ca(&certs_dir, &cluster_id).expect("ca");
            certs::write_node(&certs_dir, &ca.issue_node(4).expect("cert")).expect("cert");
        }
        Joining::Flags => {
            let output = std::process::Command::new(BINARY)
                .args([
                    "certs",
                    "--cluster-id",
                    "coordm",
                    "--add-node",
                    "4",
                    "--out",
                ])
                .arg(&certs_dir)
                .output()
                .expect("certs --add-node");
            assert!(
                output.status.success(),
                "certs --add-node 4: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let mut nodes = LocalCluster::new(BINARY, &path).expect("cluster");
    for id in [1, 2, 3] {
        nodes.start(id).expect("start");
    }
    let config = nodes.config.clone();
    let logs = |nodes: &LocalCluster| {
        (1..=4)
            .map(|id: NodeId| {
                let text = std::fs::read_to_string(nodes.log_path(id)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- node {id}\n{}",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = client(&config).await;
    first
        .create("/before", "x", CreateMode::Persistent)
        .await
        .expect("create");
    first.close().await.expect("close");

    let members = MemberClient::from_config(&config).expect("member client");
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        match members.run(MemberCommand::List).await {
            Ok(view) if view.leader.is_some() => break view,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("{protocol}: no leader in the list: {other:?}"),
        }
    };
    assert_eq!(view.membership.voters.len(), 3, "{view:#?}");

    match joining {
        Joining::FileEntry => nodes.start(4).expect("start node 4"),
        Joining::Flags => {
            members.add_node(4, addrs[1]);
            let flags = [
                "--join".to_string(),
                "--peer-addr".to_string(),
                addrs[0].to_string(),
                "--client-addr".to_string(),
                addrs[1].to_string(),
            ];
            nodes.start_with(4, &flags).expect("start node 4");
        }
    }
    let view = members
        .run(MemberCommand::Add {
            id: 4,
            addrs: MemberAddrs {
                peer_addr: addrs[0],
                client_addr: addrs[1],
            },
            learner: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{protocol}: add 4: {e}\n{}", logs(&nodes)));
    assert_eq!(
        view.member(4).map(|m| m.role),
        Some(MemberRole::Voter),
        "{protocol}: {view:#?}"
    );
    let leader = view.leader.expect("a leader");
    let view = members
        .run(MemberCommand::Remove { id: leader })
        .await
        .unwrap_or_else(|e| panic!("{protocol}: remove leader {leader}: {e}\n{}", logs(&nodes)));
    assert!(!view.membership.contains(leader), "{protocol}: {view:#?}");
    nodes.stop(leader, Duration::from_secs(5)).expect("stop");

    // The data survived, and the cluster (with node 4) takes writes.
    let options = ClientOptions {
        session_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(30),
        prefer: None,
    };
    let after = CoordClient::connect_config(&config, options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{protocol}: a session after the changes: {e}\n{}",
                logs(&nodes)
            )
        });
    let (data, _, _) = after
        .get("/before", Read::linearizable())
        .await
        .unwrap_or_else(|e| panic!("{protocol}: get: {e}\n{}", logs(&nodes)));
    assert_eq!(&data[..], b"x");
    after
        .create("/after", "y", CreateMode::Persistent)
        .await
        .expect("create after the changes");
    after.close().await.expect("close");
    members.close().await;
    nodes.stop_all(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_membership_raft() {
    tokio::time::timeout(
        Duration::from_secs(120),
        add_and_remove_the_leader("raft", Joining::FileEntry),
    )
    .await
    .expect("in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_membership_zab() {
    tokio::time::timeout(
        Duration::from_secs(120),
        add_and_remove_the_leader("zab", Joining::Flags),
    )
    .await
    .expect("in time");
}
