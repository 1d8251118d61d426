//! Backup and restore on real `consensus-kv` processes: `snapshot save`
//! from a running Raft cluster under the command line a user runs,
//! `snapshot restore` into a new cluster of each protocol, the data
//! identical (state digest on every node), the restored cluster taking new
//! writes, and a backup of that cluster restored back into Raft. Corrupt,
//! truncated and foreign files and a non-empty data directory are refused
//! with errors that say what is wrong.
//!
//! One test per target protocol (they run in parallel).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus_kv::client::{ClientOptions, KvClient};
use consensus_kv::config::ClusterConfig;
use consensus_kv::demo::{prepare, LocalCluster};

const WAIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_consensus-kv");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A 3-node cluster of `protocol` in `dir`, with an operator token;
/// started unless `seed` is given, in which case every node's data
/// directory is first restored from that backup file.
struct Cluster {
    cluster: LocalCluster,
    config: PathBuf,
}

impl Cluster {
    fn create(dir: &Path, protocol: &str, seed: Option<&Path>) -> Cluster {
        let id = format!("kvbackup-{protocol}");
        let config = prepare(dir, &id, protocol, 3, None).expect("prepare");
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.push_str(&ClusterConfig::render_operator("operator-token"));
        std::fs::write(&config, text).expect("config");
        consensus_kv::admin::write_token(&dir.join("operator-token")).expect("token");
        if let Some(file) = seed {
            for node in 1..=3 {
                let out = cli(
                    &["snapshot", "restore", path(file), "--id", &node.to_string()],
                    &config,
                );
                assert!(out.0, "restore node {node}: {}", out.1);
                assert!(out.1.contains("seeded"), "{}", out.1);
            }
        }
        let mut cluster = LocalCluster::new(BIN, &config).expect("cluster");
        cluster.start_all().expect("start");
        Cluster { cluster, config }
    }

    fn client(&self) -> KvClient {
        let options = ClientOptions {
            operation_timeout: WAIT,
            ..ClientOptions::default()
        };
        KvClient::from_config(&self.cluster.config, options).expect("client")
    }

    /// Waits until every node reports the same state digest at the same
    /// applied index; returns (keys, crc).
    async fn settled_digest(&self, client: &KvClient) -> (u64, u32) {
        let deadline = Instant::now() + WAIT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let mut reports = Vec::new();
            for id in 1..=3u64 {
                if let Ok(report) = client.status(id).await {
                    reports.push((report.state_applied, report.keys, report.state_crc));
                }
            }
            if reports.len() == 3 && reports.iter().all(|r| *r == reports[0]) {
                return (reports[0].1, reports[0].2);
            }
            last = reports;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the nodes never agreed on one state digest: {last:?}");
    }

    fn save(&self, file: &Path) {
        let out = cli(&["snapshot", "save", path(file)], &self.config);
        assert!(out.0, "snapshot save: {}", out.1);
        assert!(out.1.contains("saved"), "{}", out.1);
    }

    fn stop(mut self) {
        self.cluster.stop_all(Duration::from_secs(10));
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `consensus-kv ARGS --config CONFIG`: (success, stdout + stderr).
fn cli(args: &[&str], config: &Path) -> (bool, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run consensus-kv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes a fixed data set: puts, overwrites, deletes, and three values
/// of 600 KB, so the backup file spans several chunks.
async fn write_data(client: &KvClient) {
    for i in 0..150u32 {
        client
            .put(&format!("key-{i:03}"), Bytes::from(format!("value {i}")))
            .await
            .expect("put");
    }
    for i in (0..150u32).step_by(7) {
        client.delete(&format!("key-{i:03}")).await.expect("delete");
    }
    for i in (0..150u32).step_by(5) {
        client
            .put(&format!("key-{i:03}"), Bytes::from(format!("second {i}")))
            .await
            .expect("overwrite");
    }
    for i in 0..3u8 {
        client
            .put(&format!("big-{i}"), Bytes::from(vec![b'a' + i; 600_000]))
            .await
            .expect("big put");
    }
}

fn backup_to(source: &str, target: &'static str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{source}.backup"));
    runtime().block_on(async {
        // The source cluster, its data and its backup.
        let source_cluster = Cluster::create(&dir.path().join("source"), source, None);
        let client = source_cluster.client();
        write_data(&client).await;
        let digest = source_cluster.settled_digest(&client).await;
        source_cluster.save(&file);
        let inspected = cli(
            &["snapshot", "inspect", path(&file)],
            &source_cluster.config,
        );
        assert!(
            inspected.0 && inspected.1.contains("checksum ok"),
            "{}",
            inspected.1
        );
        client.close().await;
        source_cluster.stop();
        assert!(
            std::fs::metadata(&file).expect("backup file").len() > 1_800_000,
            "the backup holds the three large values"
        );

        // The new cluster of `target`, seeded from the file.
        let restored = Cluster::create(&dir.path().join("target"), target, Some(&file));
        let client = restored.client();
        assert_eq!(
            restored.settled_digest(&client).await,
            digest,
            "{source} -> {target}: the restored data differs"
        );
        assert_eq!(
            client.get("key-005", false).await.expect("get"),
            Some(Bytes::from("second 5"))
        );
        assert_eq!(client.get("key-007", false).await.expect("get"), None);
        // It takes writes on top of the restored state.
        client
            .put("after-restore", Bytes::from("yes"))
            .await
            .expect("a write after restore");
        assert_eq!(
            client.get("after-restore", false).await.expect("get"),
            Some(Bytes::from("yes"))
        );
        let digest = restored.settled_digest(&client).await;
        let again = dir.path().join("again.backup");
        restored.save(&again);
        client.close().await;

        // Refusals: a non-empty data directory, a corrupt, a truncated file.
        let refused = cli(
            &["snapshot", "restore", path(&again), "--id", "1"],
            &restored.config,
        );
        assert!(
            !refused.0 && refused.1.contains("is not empty"),
            "{}",
            refused.1
        );
        let restored_config = restored.config.clone();
        restored.stop();
        let bytes = std::fs::read(&again).expect("read backup");
        let corrupt = dir.path().join("corrupt.backup");
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        std::fs::write(&corrupt, &flipped).expect("write");
        let out = cli(&["snapshot", "inspect", path(&corrupt)], &restored_config);
        assert!(!out.0 && out.1.contains("checksum mismatch"), "{}", out.1);
        let truncated = dir.path().join("truncated.backup");
        std::fs::write(&truncated, &bytes[..bytes.len() - 100]).expect("write");
        let fresh = dir.path().join("fresh");
        let fresh_config = prepare(&fresh, "kvbackup-fresh", "raft", 3, None).expect("prepare");
        let out = cli(
            &["snapshot", "restore", path(&truncated), "--id", "1"],
            &fresh_config,
        );
        assert!(!out.0 && out.1.contains("truncated"), "{}", out.1);
        let out = cli(
            &["snapshot", "restore", path(&corrupt), "--id", "1"],
            &fresh_config,
        );
        assert!(!out.0 && out.1.contains("checksum mismatch"), "{}", out.1);

        // And back into Raft (from every protocol).
        let back = Cluster::create(&dir.path().join("back"), "raft", Some(&again));
        let client = back.client();
        assert_eq!(
            back.settled_digest(&client).await,
            digest,
            "{target} -> raft: the restored data differs"
        );
        client.close().await;
        back.stop();
    });
}

#[test]
fn raft_to_raft_and_back() {
    backup_to("raft", "raft");
}

#[test]
fn raft_to_multipaxos_and_back() {
    backup_to("raft", "multipaxos");
}

#[test]
fn raft_to_paxos_and_back() {
    backup_to("raft", "paxos");
}

#[test]
fn raft_to_zab_and_back() {
    backup_to("raft", "zab");
}
