//! Fault tests of the whole service (issue 9): real `consensus-kv serve`
//! processes on loopback, real QUIC, real disks, real `kill -9`, every
//! client history checked.
//!
//! * `torture_<protocol>_<n>`: one bounded torture run per protocol and
//!   cluster size with every fault kind (kill -9 of a random node and of the
//!   leader, SIGSTOP pauses, majority/minority and isolated-leader and
//!   bridge partitions, power loss). `TORTURE_SECONDS` sets the seconds of
//!   faults (default 16), `TORTURE_SEED` the seed.
//! * power loss, a torn WAL record and a full disk, per protocol. The full
//!   disk is a small tmpfs where this process may mount (root: the VM, CI),
//!   and the test then demands the store's `DiskFull` error; otherwise, or
//!   with `TORTURE_DISK_FAULT=fsize`, a file size limit (`EFBIG`). Each
//!   test says on stderr which one it used;
//! * the admin fault-injection command: off by default, authenticated.
//!
//! Longer runs: `consensus-torture run --duration 10m --seed S ...` (see
//! the crate docs of `consensus-torture`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use consensus::{NodeId, Protocol};
use consensus_kv::admin::{cut_between, AdminClient, AdminError};
use consensus_kv::client::{ClientOptions, KvClient, KvError};
use consensus_kv::wire::{AdminCommand, AdminRefusal};
use consensus_torture::checks::CheckOutcome;
use consensus_torture::disk::{
    fill, limit_file_size, segment_layout, segments, tear_last_record, Tmpfs,
};
use consensus_torture::harness::{Harness, HarnessOptions, LIVENESS_KEY};
use consensus_torture::nemesis::FaultKind;
use consensus_torture::workload::Outcome;
use consensus_torture::{self as torture, TortureOptions};

mod support;

use support::{kv_binary, TORTURE};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Keeps the directory of a failed test and says where it is.
fn keep_on_failure(dir: tempfile::TempDir, passed: bool) {
    if !passed {
        let path = dir.keep();
        eprintln!("kept for investigation: {}", path.display());
    }
}

fn assert_all_passed(what: &str, checks: &[CheckOutcome], context: &str) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(ToString::to_string)
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: checks failed:\n{}\n{context}",
        failed.join("\n")
    );
}

fn torture_run(protocol: &str, nodes: u64) {
    let seconds = env_u64("TORTURE_SECONDS", 16);
    let seed = env_u64("TORTURE_SEED", 0x5eed_0000 + nodes);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = TortureOptions::new(
        kv_binary(),
        protocol.parse::<Protocol>().expect("protocol"),
        nodes,
        Duration::from_secs(seconds),
        seed,
        dir.path().join("history.jsonl"),
    );
    options.dir = Some(dir.path().join("cluster"));
    let report = runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(seconds + 300), torture::run(&options)).await
    });
    let report = match report {
        Ok(Ok(report)) => report,
        Ok(Err(error)) => {
            keep_on_failure(dir, false);
            panic!("{protocol}/{nodes}: the run could not be carried out: {error}");
        }
        Err(_) => {
            keep_on_failure(dir, false);
            panic!("{protocol}/{nodes}: the run exceeded its deadline");
        }
    };
    eprintln!("{}", report.describe());
    let passed = report.passed();
    let text = report.describe();
    keep_on_failure(dir, passed);
    assert!(passed, "{text}");
    let injected: Vec<FaultKind> = report.kinds_injected.clone();
    assert_eq!(
        injected,
        FaultKind::ALL.to_vec(),
        "every fault kind is injected at least once:\n{text}"
    );
    assert!(
        report.operations.total() >= 100,
        "the clients did work: {text}"
    );
    assert!(report.operations.processes >= 10, "{text}");
}

macro_rules! torture_test {
    ($name:ident, $protocol:literal, $nodes:literal) => {
        #[test]
        fn $name() {
            torture_run($protocol, $nodes);
        }
    };
}

torture_test!(torture_raft_3, "raft", 3);
torture_test!(torture_raft_5, "raft", 5);
torture_test!(torture_multipaxos_3, "multipaxos", 3);
torture_test!(torture_multipaxos_5, "multipaxos", 5);
torture_test!(torture_paxos_3, "paxos", 3);
torture_test!(torture_paxos_5, "paxos", 5);
torture_test!(torture_zab_3, "zab", 3);
torture_test!(torture_zab_5, "zab", 5);

async fn started_harness(protocol: &str, dir: &Path, seed: u64) -> std::sync::Arc<Harness> {
    let mut options = HarnessOptions::new(
        kv_binary(),
        protocol.parse().expect("protocol"),
        3,
        &dir.join("cluster"),
    );
    options.history = dir.join("history.jsonl");
    options.seed = seed;
    options.recovery_timeout = Duration::from_secs(45);
    let harness = std::sync::Arc::new(Harness::prepare(options).await.expect("prepare"));
    harness.start().await.expect("cluster starts");
    harness.start_monitor();
    harness
}

/// Writes `count` distinct keys (`prefix0..`), returning the acknowledged
/// ones with their values.
async fn acknowledged_writes(harness: &Harness, prefix: &str, count: usize) -> Vec<(String, i64)> {
    let mut client = harness.client().expect("client");
    let mut acked = Vec::new();
    for i in 0..count {
        let key = format!("{prefix}{i}");
        let value = harness.recorder().new_value();
        if let Outcome::Ok(()) = client.write(&key, value).await {
            acked.push((key, value));
        }
    }
    client.close().await;
    acked
}

async fn read_back(harness: &Harness, acked: &[(String, i64)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in acked {
        match harness.final_read(key, Duration::from_secs(30)).await {
            Ok(Some(read)) if read == *value => {}
            other => problems.push(format!("{key}: wrote {value}, read {other:?}")),
        }
    }
    problems
}

/// Acknowledged writes, then `kill -9` of every node at once while clients
/// write, then a restart: every acknowledged write is there and the history
/// checks out.
async fn power_loss(protocol: &'static str, dir: &Path) -> Result<(), String> {
    let harness = started_harness(protocol, dir, 11).await;
    harness.start_workload();
    let acked = acknowledged_writes(&harness, "durable-", 30).await;
    if acked.len() < 20 {
        return Err(format!(
            "only {} of 30 writes were acknowledged before the power loss",
            acked.len()
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.kill_all();
    harness.log().note("power loss: kill -9 every node");
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.start_all()?;
    harness.log().note("restart every node");
    let lost = read_back(&harness, &acked).await;
    let outcome = harness.finish().await;
    harness.shutdown();
    if !lost.is_empty() {
        return Err(format!(
            "acknowledged writes lost after the power loss: {lost:?}"
        ));
    }
    let failed: Vec<String> = outcome
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(ToString::to_string)
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{}\nnemesis:\n{}",
            failed.join("\n"),
            harness.log().describe()
        ));
    }
    Ok(())
}

/// Acknowledged writes, quiesce, power loss, then one node's last WAL
/// segment is cut in the middle of its last record (a torn write): it
/// recovers to the prefix before that record, rejoins and converges, and
/// every acknowledged write is there.
async fn torn_wal(protocol: &'static str, dir: &Path) -> Result<(), String> {
    let harness = started_harness(protocol, dir, 12).await;
    harness.start_workload();
    let acked = acknowledged_writes(&harness, "durable-", 20).await;
    harness.stop_workload().await;
    let target = harness
        .statuses()
        .await
        .values()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.commit_index)
        .max()
        .unwrap_or(0);
    let quiet = harness
        .wait_converged(target, Duration::from_secs(30))
        .await;
    if !quiet.passed {
        return Err(format!("before the cut: {quiet}"));
    }
    let victim: NodeId = harness.leader().await.unwrap_or(2);
    harness.kill_all();
    let data_dir = harness
        .config()
        .node(victim)
        .expect("victim")
        .data_dir
        .clone();
    let torn = tear_last_record(&data_dir)
        .map_err(|e| format!("tearing the WAL of node {victim}: {e}"))?;
    harness.log().note(format!(
        "power loss; node {victim}'s {} cut from {} to {} bytes, inside its last record ({} bytes at {})",
        torn.segment.display(),
        torn.len_before,
        torn.cut_to,
        torn.record_len,
        torn.record_start
    ));
    harness.start_all()?;
    let lost = read_back(&harness, &acked).await;
    let outcome = harness.finish().await;
    let log = std::fs::read_to_string(harness.log_path(victim)).unwrap_or_default();
    harness.shutdown();
    if !lost.is_empty() {
        return Err(format!("acknowledged writes lost: {lost:?}"));
    }
    let failed: Vec<String> = outcome
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(ToString::to_string)
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{}\nnemesis:\n{}",
            failed.join("\n"),
            harness.log().describe()
        ));
    }
    if !log.contains("cutting a torn tail") {
        return Err(format!(
            "node {victim} did not report cutting the torn tail; its log ends:\n{}",
            harness.log_tail(victim, 30)
        ));
    }
    let recovered = std::fs::metadata(&torn.segment)
        .map(|m| m.len())
        .unwrap_or(0);
    if recovered < torn.record_start {
        return Err(format!(
            "node {victim}'s segment shrank below the synced prefix: {recovered} < {}",
            torn.record_start
        ));
    }
    Ok(())
}

macro_rules! durability_test {
    ($name:ident, $scenario:ident, $protocol:literal) => {
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().expect("temp dir");
            let result = runtime().block_on(async {
                tokio::time::timeout(Duration::from_secs(300), $scenario($protocol, dir.path()))
                    .await
                    .unwrap_or_else(|_| Err("deadline exceeded".into()))
            });
            let passed = result.is_ok();
            keep_on_failure(dir, passed);
            if let Err(problem) = result {
                panic!("{}: {}: {problem}", stringify!($scenario), $protocol);
            }
        }
    };
}

durability_test!(power_loss_raft, power_loss, "raft");
durability_test!(power_loss_multipaxos, power_loss, "multipaxos");
durability_test!(power_loss_paxos, power_loss, "paxos");
durability_test!(power_loss_zab, power_loss, "zab");
durability_test!(torn_wal_raft, torn_wal, "raft");
durability_test!(torn_wal_multipaxos, torn_wal, "multipaxos");
durability_test!(torn_wal_paxos, torn_wal, "paxos");
durability_test!(torn_wal_zab, torn_wal, "zab");

/// A node whose disk fills up stops accepting work with a clear error,
/// loses nothing acknowledged, and the others carry on; after space is
/// freed it restarts from its own data directory and converges.
async fn disk_full(protocol: &'static str, dir: &Path) -> Result<(), String> {
    let mut options = HarnessOptions::new(
        kv_binary(),
        protocol.parse().expect("protocol"),
        3,
        &dir.join("cluster"),
    );
    options.history = dir.join("history.jsonl");
    options.seed = 13;
    options.recovery_timeout = Duration::from_secs(45);
    let harness = std::sync::Arc::new(Harness::prepare(options).await.map_err(|e| e.to_string())?);
    let victim: NodeId = 1;
    let data_dir = harness
        .config()
        .node(victim)
        .expect("victim")
        .data_dir
        .clone();
    // A full disk where this process may mount (root in the VM and in CI);
    // otherwise a file size limit (see `torture::disk`).
    // `TORTURE_DISK_FAULT=fsize` picks the file size limit even where a
    // tmpfs could be mounted, to test that path too.
    let force_fsize = std::env::var("TORTURE_DISK_FAULT").is_ok_and(|v| v == "fsize");
    let mounted = if force_fsize {
        Err(std::io::Error::other("TORTURE_DISK_FAULT=fsize"))
    } else {
        Tmpfs::mount(&data_dir, 8 << 20)
    };
    let mut tmpfs = match mounted {
        Ok(tmpfs) => Some(tmpfs),
        Err(error) => {
            eprintln!(
                "disk_full_{protocol}: cannot mount a tmpfs ({error}); using a file size limit \
                 instead"
            );
            None
        }
    };
    let mechanism = if tmpfs.is_some() {
        "a full 8 MiB tmpfs (ENOSPC)"
    } else {
        "a file size limit (EFBIG)"
    };
    eprintln!("disk_full_{protocol}: the disk fault is {mechanism}");
    harness.log().note(format!("disk fault: {mechanism}"));
    harness.start().await.map_err(|e| e.to_string())?;
    harness.start_monitor();
    harness.start_workload();
    let before = acknowledged_writes(&harness, "before-", 10).await;
    let expected_error = if tmpfs.is_some() {
        let (ballast, bytes) = fill(&data_dir).map_err(|e| format!("filling the disk: {e}"))?;
        harness.log().note(format!(
            "disk of node {victim} full: {} bytes of ballast in {}",
            bytes,
            ballast.display()
        ));
        // The store's typed `StorageError::DiskFull`, not just any I/O
        // error that mentions ENOSPC: its message tells the operator what
        // to do.
        "no space left on device while writing"
    } else {
        let pid = harness.cluster().pid(victim).ok_or("victim not running")?;
        let active = segments(&data_dir)
            .ok()
            .and_then(|s| s.last().cloned())
            .ok_or("no segment")?;
        // RLIMIT_FSIZE refuses writes at offsets at or past the limit, and
        // the store preallocates its segments: the limit is where the
        // records end (the next write's offset), not the file's length.
        let size = segment_layout(&active)
            .map(|layout| layout.end)
            .map_err(|e| e.to_string())?;
        limit_file_size(pid, Some(size)).map_err(|e| format!("prlimit: {e}"))?;
        harness.log().note(format!(
            "file size limit of node {victim} set to {size} bytes"
        ));
        // EFBIG reaches the store as an I/O error (`StorageError::Io`).
        "file too large"
    };
    // The victim stops accepting work: its status says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        let statuses = harness.statuses().await;
        if let Some(Ok(report)) = statuses.get(&victim) {
            if let Some(reason) = &report.stopped {
                break reason.clone();
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "node {victim} never reported a storage failure: {statuses:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    harness
        .log()
        .note(format!("node {victim} reports: {reason}"));
    if !reason.to_lowercase().contains(expected_error) {
        return Err(format!(
            "unclear stop reason {reason:?} under {mechanism} (expected it to say \
             {expected_error:?})"
        ));
    }
    if tmpfs.is_some() && !reason.contains("free space and restart the node") {
        return Err(format!(
            "a full disk did not stop the node with the store's DiskFull error: {reason:?}"
        ));
    }
    // Asked directly, it refuses with that error.
    let config = harness.config();
    let ca = std::fs::read_to_string(config.certs_dir.join("ca.pem")).map_err(|e| e.to_string())?;
    let only_victim: BTreeMap<NodeId, _> =
        [(victim, config.node(victim).expect("victim").client_addr)]
            .into_iter()
            .collect();
    let direct = KvClient::new(
        &config.cluster_id,
        only_victim,
        &ca,
        ClientOptions {
            operation_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    match direct.put("refused", bytes::Bytes::from("1")).await {
        Err(KvError::Unavailable(message)) if message.contains("storage failure") => {}
        other => return Err(format!("node {victim} answered a write with {other:?}")),
    }
    direct.close().await;
    // The others carry on.
    let during = acknowledged_writes(&harness, "during-", 10).await;
    if during.len() < 8 {
        return Err(format!(
            "the other nodes acknowledged only {} of 10 writes",
            during.len()
        ));
    }
    // Free the space, restart the victim from its own data directory.
    harness.kill(victim);
    if let Some(mount) = tmpfs.as_ref() {
        std::fs::remove_file(mount.path().join(consensus_torture::disk::BALLAST))
            .map_err(|e| e.to_string())?;
    }
    harness.start_node(victim)?;
    harness
        .log()
        .note(format!("space freed; node {victim} restarted"));
    let mut acked = before;
    acked.extend(during);
    let lost = read_back(&harness, &acked).await;
    let outcome = harness.finish().await;
    harness.shutdown();
    if let Some(mut mount) = tmpfs.take() {
        let _ = mount.unmount();
    }
    if !lost.is_empty() {
        return Err(format!("acknowledged writes lost: {lost:?}"));
    }
    let failed: Vec<String> = outcome
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(ToString::to_string)
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{}\nnemesis:\n{}",
            failed.join("\n"),
            harness.log().describe()
        ));
    }
    Ok(())
}

durability_test!(disk_full_raft, disk_full, "raft");
durability_test!(disk_full_multipaxos, disk_full, "multipaxos");
durability_test!(disk_full_paxos, disk_full, "paxos");
durability_test!(disk_full_zab, disk_full, "zab");

/// The admin command is refused unless the configuration enables fault
/// injection and the request carries the secret; with both, a partition
/// installed through it really cuts a node off.
#[test]
fn admin_fault_injection_is_off_by_default_and_authenticated() {
    let dir = tempfile::tempdir().expect("temp dir");
    runtime().block_on(async {
        // Off by default: refused whatever the token.
        let mut options =
            HarnessOptions::new(kv_binary(), Protocol::Raft, 3, &dir.path().join("plain"));
        options.fault_injection = false;
        options.history = dir.path().join("plain.jsonl");
        let plain = Harness::prepare(options).await.expect("prepare");
        plain.start().await.expect("start");
        let intruder = AdminClient::new(plain.config(), "x".repeat(64)).expect("admin client");
        match intruder.send(1, AdminCommand::Show).await {
            Err(AdminError::Refused(AdminRefusal::Disabled { node: 1 })) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        let message = AdminRefusal::Disabled { node: 1 }.to_string();
        assert!(message.contains("fault_injection = true"), "{message}");
        plain.shutdown();

        // On: the secret is required.
        let mut options =
            HarnessOptions::new(kv_binary(), Protocol::Raft, 3, &dir.path().join("testing"));
        options.history = dir.path().join("testing.jsonl");
        let harness = Harness::prepare(options).await.expect("prepare");
        harness.start().await.expect("start");
        let wrong = AdminClient::new(harness.config(), "y".repeat(64)).expect("admin client");
        match wrong.send(2, AdminCommand::Heal).await {
            Err(AdminError::Refused(AdminRefusal::Unauthorized { node: 2 })) => {}
            other => panic!("expected unauthorized, got {other:?}"),
        }
        let admin = harness.admin().expect("admin");
        assert_eq!(admin.send(1, AdminCommand::Show).await, Ok(vec![]));
        for bad in [vec![(1, 9)], vec![(2, 2)]] {
            match admin
                .send(1, AdminCommand::SetBlocked { links: bad.clone() })
                .await
            {
                Err(AdminError::Refused(AdminRefusal::Invalid(_))) => {}
                other => panic!("{bad:?} should be invalid, got {other:?}"),
            }
        }

        // A partition through it: the leader is cut off, the others elect a
        // new leader and commit; the old leader's commit index stands still.
        let leader = harness.leader().await.expect("a leader");
        let others: Vec<NodeId> = harness.ids().into_iter().filter(|&n| n != leader).collect();
        let links = cut_between(&[leader], &others);
        assert!(harness.partition(&links).await.is_empty());
        let shown = admin.send(leader, AdminCommand::Show).await.expect("show");
        assert_eq!(shown.len(), 4, "{shown:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let commit_of =
            |statuses: &BTreeMap<NodeId, Result<consensus_kv::wire::NodeReport, String>>,
             id: NodeId| {
                statuses[&id].as_ref().map(|r| r.commit_index).unwrap_or(0)
            };
        let frozen = commit_of(&harness.statuses().await, leader);
        harness
            .commit_liveness(3, Duration::from_secs(30))
            .await
            .expect("the majority side commits");
        let statuses = harness.statuses().await;
        assert_eq!(
            commit_of(&statuses, leader),
            frozen,
            "the isolated node learned nothing"
        );
        assert!(
            others.iter().all(|&n| commit_of(&statuses, n) > frozen),
            "{statuses:?}"
        );
        assert!(harness.heal_network().await.is_empty());
        let outcome = harness.finish().await;
        harness.shutdown();
        assert_all_passed("partition through the admin command", &outcome.checks, "");
        assert!(outcome.finals.contains_key(LIVENESS_KEY));
    });
}

/// The command line: a short run passes and prints its report; the saved
/// history re-checks; a bad fault name is refused.
#[test]
fn torture_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = dir.path().join("cli.jsonl");
    let output = std::process::Command::new(TORTURE)
        .arg("run")
        .arg("--kv-bin")
        .arg(kv_binary())
        .args([
            "--protocol",
            "raft",
            "--nodes",
            "3",
            "--duration",
            "4s",
            "--seed",
            "3",
            "--faults",
            "kill,partition",
            "--clients",
            "10",
            "--history",
        ])
        .arg(&history)
        .output()
        .expect("run consensus-torture run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("PASSED") && stdout.contains("linearizable"),
        "{stdout}"
    );
    let check = std::process::Command::new(TORTURE)
        .arg("check-history")
        .arg(&history)
        .output()
        .expect("run consensus-torture check-history");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("no-lost-writes"), "{text}");

    let bad = std::process::Command::new(TORTURE)
        .arg("run")
        .arg("--kv-bin")
        .arg(kv_binary())
        .args(["--protocol", "raft", "--faults", "meteor"])
        .output()
        .expect("run consensus-torture run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown fault"));
}
