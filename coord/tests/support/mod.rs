//! A local cluster of `consensus-coord serve` processes for the
//! multi-process tests (loopback only, every wait bounded).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use consensus::{NodeId, Tuning};
use consensus_coord::client::{admin_request, admin_status};
use consensus_coord::wire::{Admin, AdminReply, SessionReport};
use consensus_coord::{ClientOptions, ClusterConfig, CoordClient};
use consensus_service::demo::{prepare_with_metrics, LocalCluster};

pub const BINARY: &str = env!("CARGO_BIN_EXE_consensus-coord");

/// The protocols to run: `COORD_PROTOCOLS=raft,zab` narrows the set.
pub fn enabled(protocol: &str) -> bool {
    match std::env::var("COORD_PROTOCOLS") {
        Ok(list) => list.split(',').any(|p| p.trim() == protocol),
        Err(_) => true,
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    pub nodes: LocalCluster,
    pub protocol: String,
}

impl TestCluster {
    /// Starts a 3-node cluster of `protocol` and waits until it serves a
    /// session.
    pub async fn start(protocol: &str) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let tuning = Tuning::default();
        let config_path =
            prepare_with_metrics(dir.path(), "coord", protocol, 3, Some(&tuning), true)
                .expect("prepare cluster");
        let mut nodes = LocalCluster::new(BINARY, &config_path).expect("local cluster");
        nodes.start_all().expect("start nodes");
        let config = ClusterConfig::load(&config_path).expect("config");
        let cluster = TestCluster {
            dir,
            config_path,
            config,
            nodes,
            protocol: protocol.to_string(),
        };
        eprintln!(
            "{protocol}: cluster started in {}",
            cluster.dir.path().display()
        );
        let client = cluster.client(Duration::from_secs(5), None).await;
        client
            .ensure_path("/ready")
            .await
            .expect("a first write commits");
        client.close().await.expect("close");
        cluster
    }

    /// A client with the given session timeout (optionally preferring a node).
    pub async fn client(&self, session_timeout: Duration, prefer: Option<NodeId>) -> CoordClient {
        let options = ClientOptions {
            session_timeout,
            operation_timeout: Duration::from_secs(30),
            prefer,
        };
        match CoordClient::connect_config(&self.config, options).await {
            Ok(client) => client,
            Err(error) => panic!("{}: no session: {error}\n{}", self.protocol, self.logs()),
        }
    }

    pub async fn session_report(&self, node: NodeId, session: u64) -> Option<SessionReport> {
        match admin_request(
            &self.config,
            node,
            Admin::Session(session),
            Duration::from_secs(3),
        )
        .await
        {
            Ok(AdminReply::Session(report)) => Some(report),
            _ => None,
        }
    }

    pub async fn exists_on(&self, node: NodeId, path: &str) -> Option<(u64, bool)> {
        match admin_request(
            &self.config,
            node,
            Admin::Exists(path.to_string()),
            Duration::from_secs(3),
        )
        .await
        {
            Ok(AdminReply::Exists(applied, stat)) => Some((applied, stat.is_some())),
            _ => None,
        }
    }

    pub async fn leader(&self) -> Option<NodeId> {
        for node in &self.config.nodes {
            if let Ok(report) = admin_status(&self.config, node.id, Duration::from_secs(2)).await {
                if report.expirer {
                    return Some(report.id);
                }
            }
        }
        None
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for id in self.nodes.ids() {
            let text = std::fs::read_to_string(self.nodes.log_path(id)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- node {id} ---\n{}\n", tail.join("\n")));
        }
        out
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.nodes.stop_all(Duration::from_secs(2));
    }
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
