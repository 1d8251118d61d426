//! Backup and restore of a coordination cluster (real processes):
//! `snapshot save` from a Raft cluster, `snapshot restore` into a ZAB
//! cluster, the tree identical (paths, data, the sequential counter), new
//! writes on top. The format, the refusals and every protocol pair are
//! tested through the key-value service (`kv/tests/backup.rs`) and the
//! service edge's unit tests; this checks coord's wiring.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use consensus_coord::{ClientOptions, ClusterConfig, CoordClient, CreateMode, Read};
use consensus_service::demo::{prepare, LocalCluster};
use consensus_service::members::write_secret;

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

fn prepared(dir: &Path, protocol: &str) -> std::path::PathBuf {
    let path = prepare(dir, &format!("coordb-{protocol}"), protocol, 3, None).expect("prepare");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&ClusterConfig::render_operator("operator-token"));
    std::fs::write(&path, text).expect("config");
    write_secret(&dir.join("operator-token")).expect("token");
    path
}

fn cli(args: &[&str], config: &Path) -> String {
    let output = Command::new(BINARY)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run consensus-coord");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{args:?}: {text}");
    text
}

/// The tree under /app: (name, data) of every child, in order.
async fn tree(client: &CoordClient) -> Vec<(String, Vec<u8>)> {
    let (mut names, _) = client
        .children("/app", Read::linearizable())
        .await
        .expect("children");
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let (data, _, _) = client
            .get(&format!("/app/{name}"), Read::linearizable())
            .await
            .expect("get");
        out.push((name, data.to_vec()));
    }
    out
}

#[test]
fn raft_backup_restores_into_zab() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("coord.backup");
    let file_arg = file.to_str().expect("utf-8");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let source_path = prepared(&dir.path().join("source"), "raft");
            let mut source = LocalCluster::new(BINARY, &source_path).expect("cluster");
            source.start_all().expect("start");
            let writer = client(&source.config).await;
            writer
                .create("/app", "root", CreateMode::Persistent)
                .await
                .expect("create");
            for i in 0..40 {
                writer
                    .create(
                        &format!("/app/n{i:02}"),
                        format!("data {i}"),
                        CreateMode::Persistent,
                    )
                    .await
                    .expect("create");
            }
            let sequential = writer
                .create("/app/seq-", "s", CreateMode::PersistentSequential)
                .await
                .expect("sequential");
            let before = tree(&writer).await;
            writer.close().await.expect("close");
            let saved = cli(&["snapshot", "save", file_arg], &source_path);
            assert!(saved.contains("saved"), "{saved}");
            source.stop_all(Duration::from_secs(10));

            let target_path = prepared(&dir.path().join("target"), "zab");
            for id in ["1", "2", "3"] {
                let out = cli(&["snapshot", "restore", file_arg, "--id", id], &target_path);
                assert!(out.contains("seeded"), "{out}");
            }
            let mut target = LocalCluster::new(BINARY, &target_path).expect("cluster");
            target.start_all().expect("start");
            let reader = client(&target.config).await;
            assert_eq!(tree(&reader).await, before, "the restored tree differs");
            let next = reader
                .create("/app/seq-", "t", CreateMode::PersistentSequential)
                .await
                .expect("a write after restore");
            assert!(
                next > sequential,
                "the sequence counter continues: {next} after {sequential}"
            );
            reader.close().await.expect("close");
            target.stop_all(Duration::from_secs(10));
        });
}
