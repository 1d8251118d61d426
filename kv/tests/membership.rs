//! Membership changes on real `consensus-kv serve` processes, for every
//! protocol: 3 → 5 → 3 nodes under a load of writes, linearizable reads and
//! compare-and-sets on shared registers (its whole history checked for
//! linearizability), a second change refused while one is in flight, a
//! learner never promoted before it has caught up, the leader removed, a
//! dead node replaced by a fresh one; every acknowledged write readable at
//! the end.
//!
//! One cluster per protocol goes through all the steps (the protocols run
//! in parallel, one test each).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus::{certs, ClusterId, NodeId};
use consensus_kv::client::{read_ca, ClientOptions, KvClient, KvError};
use consensus_kv::config::ClusterConfig;
use consensus_kv::demo::{free_udp_addrs, prepare, LocalCluster};
use consensus_kv::members::{MemberClient, MemberClientError};
use consensus_kv::wire::{MemberAddrs, MemberCommand, MemberError, MemberView};
use consensus_service::members::MemberRole;
use consensus_sim::history::{Event, Op};
use consensus_sim::linearizability::check;

const WAIT: Duration = Duration::from_secs(30);
const CLUSTER: &str = "kvmember";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

struct Harness {
    dir: tempfile::TempDir,
    cluster: LocalCluster,
    protocol: &'static str,
    /// Client addresses of every node the test may run (1..=6).
    client_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Peer addresses of the nodes added later (4, 5, 6).
    peer_addrs: BTreeMap<NodeId, SocketAddr>,
}

impl Harness {
    fn start(protocol: &'static str) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = prepare(dir.path(), CLUSTER, protocol, 3, None).expect("prepare");
        let mut text = std::fs::read_to_string(&config_path).expect("config");
        text.push_str(&ClusterConfig::render_operator("operator-token"));
        std::fs::write(&config_path, text).expect("config");
        consensus_kv::admin::write_token(&dir.path().join("operator-token")).expect("token");
        let mut cluster =
            LocalCluster::new(env!("CARGO_BIN_EXE_consensus-kv"), &config_path).expect("cluster");
        cluster.start_all().expect("start");
        let mut client_addrs: BTreeMap<NodeId, SocketAddr> = cluster
            .config
            .nodes
            .iter()
            .map(|n| (n.id, n.client_addr))
            .collect();
        let fresh = free_udp_addrs(6).expect("ports");
        let mut peer_addrs = BTreeMap::new();
        for (i, id) in [4, 5, 6].into_iter().enumerate() {
            peer_addrs.insert(id, fresh[2 * i]);
            client_addrs.insert(id, fresh[2 * i + 1]);
        }
        Harness {
            dir,
            cluster,
            protocol,
            client_addrs,
            peer_addrs,
        }
    }

    fn addrs(&self, id: NodeId) -> MemberAddrs {
        MemberAddrs {
            peer_addr: self.peer_addrs[&id],
            client_addr: self.client_addrs[&id],
        }
    }

    /// A client that knows every node the test may run.
    fn client(&self) -> KvClient {
        let options = ClientOptions {
            operation_timeout: WAIT,
            ..ClientOptions::default()
        };
        let ca = read_ca(&self.cluster.config).expect("ca");
        KvClient::new(CLUSTER, self.client_addrs.clone(), &ca, options).expect("client")
    }

    fn members(&self) -> MemberClient {
        let client = MemberClient::from_config(&self.cluster.config).expect("member client");
        for (id, addr) in &self.client_addrs {
            client.add_node(*id, *addr);
        }
        client
    }

    fn log_tail(&self, id: NodeId) -> String {
        let text = std::fs::read_to_string(self.cluster.log_path(id)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    fn logs(&self, ids: &[NodeId]) -> String {
        ids.iter()
            .map(|id| format!("--- node {id}\n{}", self.log_tail(*id)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Appends node `id` to the cluster file as `join = true`, with a
    /// certificate issued by the CA in the certs directory (node 4 through
    /// the `certs --add-node` command, the others through the library).
    fn add_to_file(&mut self, id: NodeId) {
        self.issue_cert(id);
        let path = self.cluster.config_path().to_path_buf();
        let mut text = std::fs::read_to_string(&path).expect("config");
        text.push_str(&ClusterConfig::render_join(
            id,
            self.peer_addrs[&id],
            self.client_addrs[&id],
        ));
        std::fs::write(&path, text).expect("config");
        self.cluster.reload().expect("reload");
    }

    fn issue_cert(&self, id: NodeId) {
        let certs_dir = self.dir.path().join("certs");
        if id == 4 {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_consensus-kv"))
                .args(["certs", "--cluster-id", CLUSTER, "--add-node", "4", "--out"])
                .arg(&certs_dir)
                .output()
                .expect("certs --add-node");
            assert!(
                output.status.success(),
                "certs --add-node 4: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        } else {
            let cluster = ClusterId::new(CLUSTER.to_string()).expect("cluster id");
            let ca = certs::load_ca(&certs_dir, &cluster).expect("ca");
            certs::write_node(&certs_dir, &ca.issue_node(id).expect("issue")).expect("write");
        }
    }

    /// Runs `command`, panicking with the nodes' logs on failure.
    async fn change(&self, members: &MemberClient, command: MemberCommand) -> MemberView {
        match members.run(command.clone()).await {
            Ok(view) => view,
            Err(error) => panic!(
                "{}: {command:?} failed: {error}\n{}",
                self.protocol,
                self.logs(&self.running())
            ),
        }
    }

    fn running(&self) -> Vec<NodeId> {
        (1..=6)
            .filter(|id| self.cluster.pid(*id).is_some())
            .collect()
    }

    /// Waits until the leader's (any node's, on Paxos) list satisfies `ok`.
    async fn wait_view(
        &self,
        members: &MemberClient,
        what: &str,
        ok: impl Fn(&MemberView) -> bool,
    ) -> MemberView {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(view) = members.list().await {
                if ok(&view) {
                    return view;
                }
                last = Some(view);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{}: {what} did not happen within {WAIT:?}; last view: {last:#?}\n{}",
            self.protocol,
            self.logs(&self.running())
        );
    }
}

fn voters(view: &MemberView) -> Vec<NodeId> {
    view.membership.voters.iter().copied().collect()
}

/// Registers the load works on (few, so operations of different clients
/// meet on the same key and the linearizability check has work to do).
const LOAD_KEYS: u64 = 4;

/// Clients that write unique values, read (linearizably) and compare-and-set
/// a few registers until told to stop, recording every operation in a
/// history (HISTORY.md's format) that is checked for linearizability at the
/// end; each also returns the writes that were acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Event>>>,
    started: Instant,
    writers: Vec<tokio::task::JoinHandle<Vec<(String, String)>>>,
}

fn record(history: &Mutex<Vec<Event>>, started: Instant, event: Event) {
    let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
    history.push(event.at(started.elapsed().as_nanos() as u64));
}

fn parse(value: Option<Bytes>) -> Option<i64> {
    value.map(|v| {
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a load register holds {v:?}"))
    })
}

fn start_load(client: &Arc<KvClient>, writers: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let writers = (0..writers)
        .map(|w| {
            let client = client.clone();
            let stop = stop.clone();
            let history = history.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                // A process whose operation ended unknown never invokes
                // again: the next one takes a fresh id.
                let mut process = w;
                let mut last_seen: Option<i64> = None;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("reg-{}", (w + i) % LOAD_KEYS);
                    let value = (w as i64 + 1) * 1_000_000 + i as i64;
                    let op = match (i % 3, last_seen) {
                        (1, _) => Op::Read(None),
                        (2, Some(expected)) => Op::Cas(expected, value),
                        _ => Op::Write(value),
                    };
                    record(&history, started, Event::invoke(process, &key, op));
                    let outcome: Result<Option<Op>, KvError> = match op {
                        Op::Write(v) => {
                            client
                                .put(&key, Bytes::from(v.to_string()))
                                .await
                                .map(|()| {
                                    acknowledged.push((key.clone(), v.to_string()));
                                    Some(op)
                                })
                        }
                        Op::Read(_) => client.get(&key, false).await.map(|found| {
                            let found = parse(found);
                            last_seen = found;
                            Some(Op::Read(found))
                        }),
                        Op::Cas(expected, new) => client
                            .cas(
                                &key,
                                Some(Bytes::from(expected.to_string())),
                                Some(Bytes::from(new.to_string())),
                            )
                            .await
                            .map(|(swapped, _)| swapped.then_some(op)),
                    };
                    match outcome {
                        Ok(Some(done)) => record(&history, started, Event::ok(process, &key, done)),
                        // A compare-and-set that did not swap had no effect.
                        Ok(None) => record(&history, started, Event::fail(process, &key, op)),
                        // Not applied (no node could serve it).
                        Err(KvError::Unavailable(_)) => {
                            record(&history, started, Event::fail(process, &key, op))
                        }
                        Err(KvError::OutcomeUnknown(_)) => {
                            record(&history, started, Event::info(process, &key, op));
                            process += 1000;
                        }
                        Err(error) => panic!("load writer {w}: {error}"),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                acknowledged
            })
        })
        .collect();
    Load {
        stop,
        history,
        started,
        writers,
    }
}

impl Load {
    /// Stops the clients, reads every register once more (through
    /// `reader`, recorded as process 999), checks the whole history for
    /// linearizability; returns how many writes were acknowledged and the
    /// registers' final values.
    async fn finish(
        self,
        protocol: &str,
        reader: &KvClient,
    ) -> (usize, Vec<(String, Option<i64>)>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for writer in self.writers {
            all.extend(writer.await.expect("load writer"));
        }
        let mut finals = Vec::new();
        for k in 0..LOAD_KEYS {
            let key = format!("reg-{k}");
            record(
                &self.history,
                self.started,
                Event::invoke(999, &key, Op::Read(None)),
            );
            let found = parse(reader.get(&key, false).await.expect("final read"));
            record(
                &self.history,
                self.started,
                Event::ok(999, &key, Op::Read(found)),
            );
            finals.push((key, found));
        }
        let history = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let operations = history.len() / 2;
        let verdict = check(&history);
        assert!(
            verdict.is_linearizable(),
            "{protocol}: the history of {operations} operations is not linearizable: {verdict:?}"
        );
        println!("{protocol}: {operations} operations, linearizable");
        (all.len(), finals)
    }
}

async fn membership_changes(protocol: &'static str) {
    let mut harness = Harness::start(protocol);
    let client = Arc::new(harness.client());
    client
        .put("before", Bytes::from("changes"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{protocol}: first put failed: {e}\n{}",
                harness.logs(&[1, 2, 3])
            )
        });
    let members = Arc::new(harness.members());
    let view = harness
        .wait_view(&members, "a stable 3-node membership", |v| {
            voters(v) == [1, 2, 3] && v.members.iter().all(|m| m.addrs.is_some())
        })
        .await;
    assert!(view.describe().contains("voter"), "{}", view.describe());
    let load = start_load(&client, 3);

    // --- 3 -> 5. Node 4 is added while it is not running: the change stays
    // in flight (node 4 cannot catch up), so it is observable.
    harness.add_to_file(4);
    harness.add_to_file(5);
    let adding = {
        let members = members.clone();
        let addrs = harness.addrs(4);
        tokio::spawn(async move {
            members
                .run(MemberCommand::Add {
                    id: 4,
                    addrs,
                    learner: false,
                })
                .await
        })
    };
    let in_flight = harness
        .wait_view(&members, "node 4 a learner with the add in flight", |v| {
            v.member(4).is_some_and(|m| m.role == MemberRole::Learner) && v.in_flight.is_some()
        })
        .await;
    assert!(
        in_flight.member(4).and_then(|m| m.addrs).is_some(),
        "{protocol}: the leader knows node 4's address: {in_flight:#?}"
    );
    // One change at a time: a second one is refused with a typed error.
    let second = members
        .run(MemberCommand::Add {
            id: 5,
            addrs: harness.addrs(5),
            learner: false,
        })
        .await;
    assert!(
        matches!(
            second,
            Err(MemberClientError::Refused(
                MemberError::ChangeInProgress { .. }
            ))
        ),
        "{protocol}: a second change while one is in flight must be refused, got {second:?}"
    );
    // Catch-up before promotion: node 4 is down, so it must still be a
    // learner a while later (with writes going on).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = members.list().await.expect("list");
    assert_eq!(
        still.member(4).map(|m| m.role),
        Some(MemberRole::Learner),
        "{protocol}: node 4 was promoted before it caught up: {still:#?}"
    );
    assert!(!adding.is_finished(), "{protocol}: the add ended early");
    harness.cluster.start(4).expect("start node 4");
    let added = adding.await.expect("add task");
    let added = added.unwrap_or_else(|e| {
        panic!(
            "{protocol}: add 4 failed: {e}\n{}",
            harness.logs(&[1, 2, 3, 4])
        )
    });
    assert!(
        voters(&added).contains(&4),
        "{protocol}: node 4 is a voter: {added:#?}"
    );
    harness.cluster.start(5).expect("start node 5");
    let view = harness
        .change(
            &members,
            MemberCommand::Add {
                id: 5,
                addrs: harness.addrs(5),
                learner: false,
            },
        )
        .await;
    assert_eq!(voters(&view), [1, 2, 3, 4, 5], "{protocol}: {view:#?}");

    // --- 5 -> 3: remove the leader first (on Paxos, which has no leader,
    // the node that answers), then another node.
    let first = view.leader.unwrap_or(view.answered_by);
    let view = harness
        .change(&members, MemberCommand::Remove { id: first })
        .await;
    assert!(
        !view.membership.contains(first),
        "{protocol}: node {first} removed: {view:#?}"
    );
    if protocol != "paxos" {
        assert_ne!(
            view.leader,
            Some(first),
            "{protocol}: the removed leader no longer leads: {view:#?}"
        );
    }
    let second = *view
        .membership
        .voters
        .iter()
        .find(|id| Some(**id) != view.leader && **id != view.answered_by)
        .expect("a follower");
    let view = harness
        .change(&members, MemberCommand::Remove { id: second })
        .await;
    assert_eq!(view.membership.voters.len(), 3, "{protocol}: {view:#?}");
    harness.cluster.stop(first, Duration::from_secs(5)).ok();
    harness.cluster.stop(second, Duration::from_secs(5)).ok();

    // --- Replace a dead node: kill -9 a follower, wipe its data, remove it,
    // add a fresh node 6 on new ports (not in the cluster file).
    let dead = *view
        .membership
        .voters
        .iter()
        .find(|id| Some(**id) != view.leader && **id != view.answered_by)
        .expect("a follower");
    harness.cluster.kill(dead).expect("kill");
    let data_dir = harness
        .cluster
        .config
        .node(dead)
        .expect("entry")
        .data_dir
        .clone();
    std::fs::remove_dir_all(&data_dir).expect("wipe the dead node's data");
    let view = harness
        .change(&members, MemberCommand::Remove { id: dead })
        .await;
    assert_eq!(view.membership.voters.len(), 2, "{protocol}: {view:#?}");
    harness.issue_cert(6);
    let addrs6 = harness.addrs(6);
    harness
        .cluster
        .start_with(
            6,
            &[
                "--join".into(),
                "--peer-addr".into(),
                addrs6.peer_addr.to_string(),
                "--client-addr".into(),
                addrs6.client_addr.to_string(),
            ],
        )
        .expect("start node 6");
    let view = harness
        .change(
            &members,
            MemberCommand::Add {
                id: 6,
                addrs: addrs6,
                learner: false,
            },
        )
        .await;
    assert_eq!(view.membership.voters.len(), 3, "{protocol}: {view:#?}");
    assert!(view.membership.voters.contains(&6), "{protocol}: {view:#?}");
    assert!(view.membership.learners.is_empty(), "{protocol}: {view:#?}");

    // Writes go on a little at full strength; then the history (final
    // reads of every register included) must be linearizable: no
    // acknowledged write lost, no stale or invented read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reader = harness.client();
    let (acknowledged, finals) = load.finish(protocol, &reader).await;
    assert!(
        acknowledged > 20,
        "{protocol}: the load made progress ({acknowledged} writes)"
    );
    assert_eq!(
        reader.get("before", false).await.expect("get"),
        Some(Bytes::from("changes"))
    );
    // Node 6 has the data too (stale reads from it alone).
    let six = KvClient::new(
        CLUSTER,
        [(6, harness.client_addrs[&6])].into_iter().collect(),
        &read_ca(&harness.cluster.config).expect("ca"),
        ClientOptions {
            operation_timeout: WAIT,
            ..ClientOptions::default()
        },
    )
    .expect("client of node 6");
    let deadline = Instant::now() + WAIT;
    for (key, value) in &finals {
        loop {
            if six.get(key, true).await.ok().map(parse) == Some(*value) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{protocol}: node 6 never caught up on {key}\n{}",
                harness.log_tail(6)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "{protocol}: {acknowledged} acknowledged writes, a linearizable history through 3 -> 5 -> 3 and a replacement"
    );
    // A client that knows one follower only (as one whose cluster file
    // predates the changes) follows the redirect to a leader it was never
    // told about: the redirect carries the leader's address.
    let view = members.list().await.expect("member list");
    if let Some(leader) = view.leader {
        let follower = view
            .membership
            .voters
            .iter()
            .copied()
            .find(|id| *id != leader)
            .expect("a follower");
        let narrow = KvClient::new(
            CLUSTER,
            [(follower, harness.client_addrs[&follower])]
                .into_iter()
                .collect(),
            &read_ca(&harness.cluster.config).expect("ca"),
            ClientOptions {
                operation_timeout: WAIT,
                ..ClientOptions::default()
            },
        )
        .expect("client of one follower");
        narrow
            .put("redirected", Bytes::from("yes"))
            .await
            .unwrap_or_else(|e| panic!("{protocol}: a client of node {follower} only: {e}"));
        assert!(
            narrow.node_ids().contains(&leader),
            "{protocol}: the client learned leader {leader} from the redirect"
        );
        narrow.close().await;
    }
    six.close().await;
    reader.close().await;
    client.close().await;
    members.close().await;
    harness.cluster.stop_all(Duration::from_secs(5));
}

macro_rules! membership_test {
    ($name:ident, $protocol:literal) => {
        #[test]
        fn $name() {
            runtime().block_on(async {
                tokio::time::timeout(Duration::from_secs(240), membership_changes($protocol))
                    .await
                    .expect("the membership test finished in time")
            });
        }
    };
}

membership_test!(membership_raft, "raft");
membership_test!(membership_multipaxos, "multipaxos");
membership_test!(membership_zab, "zab");
membership_test!(membership_paxos, "paxos");

/// A node whose certificate comes from another CA is refused by the
/// members: added as a learner, it never receives an entry.
#[test]
fn a_node_with_a_foreign_certificate_never_joins() {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(90), foreign_certificate())
            .await
            .expect("the foreign-certificate test finished in time")
    });
}

async fn foreign_certificate() {
    let harness = Harness::start("raft");
    let client = harness.client();
    client
        .put("k", Bytes::from("v"))
        .await
        .unwrap_or_else(|e| panic!("first put: {e}\n{}", harness.logs(&[1, 2, 3])));
    // Node 7 gets a certificate for the right cluster and id, from a CA of
    // its own, and a copy of the cluster file pointing at it.
    let dir = harness.dir.path();
    let cluster = ClusterId::new(CLUSTER.to_string()).expect("cluster id");
    certs::generate_cluster_dir(&dir.join("foreign"), &cluster, 7..=7).expect("foreign CA");
    let text = std::fs::read_to_string(harness.cluster.config_path()).expect("config");
    let foreign_config = dir.join("foreign.toml");
    std::fs::write(
        &foreign_config,
        text.replace("certs_dir = \"certs\"", "certs_dir = \"foreign\""),
    )
    .expect("foreign config");
    let addrs = free_udp_addrs(2).expect("ports");
    let log = std::fs::File::create(dir.join("node-7.log")).expect("log");
    let mut node7 = Reaped(
        std::process::Command::new(env!("CARGO_BIN_EXE_consensus-kv"))
            .arg("serve")
            .arg("--config")
            .arg(&foreign_config)
            .args(["--id", "7", "--join", "--peer-addr"])
            .env("RUST_LOG", "info")
            .arg(addrs[0].to_string())
            .arg("--client-addr")
            .arg(addrs[1].to_string())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start node 7"),
    );
    // Node 7 first asks the cluster for the membership (in vain: it does
    // not trust the cluster's certificates either), then starts.
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(dir.join("node-7.log"))
        .unwrap_or_default()
        .contains("key-value node started")
    {
        assert!(Instant::now() < deadline, "node 7 did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let members = harness.members();
    let view = members
        .run(MemberCommand::Add {
            id: 7,
            addrs: MemberAddrs {
                peer_addr: addrs[0],
                client_addr: addrs[1],
            },
            learner: true,
        })
        .await
        .expect("add 7 as a learner");
    assert!(view.membership.learners.contains(&7), "{view:#?}");
    // Writes go on; node 7 stays at match index 0 on the leader.
    for i in 0..20 {
        client
            .put(&format!("after-{i}"), Bytes::from("x"))
            .await
            .expect("put");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let view = members.list().await.expect("list");
    let seven = view.member(7).expect("node 7 listed");
    assert_eq!(
        seven.match_index.unwrap_or(0),
        0,
        "a node with a foreign certificate received entries: {view:#?}"
    );
    let node7_log = std::fs::read_to_string(dir.join("node-7.log")).unwrap_or_default();
    node7.stop();
    let view = members
        .run(MemberCommand::Remove { id: 7 })
        .await
        .expect("remove 7");
    assert!(!view.membership.contains(7), "{view:#?}");
    assert!(
        node7_log.contains("certificate") || node7_log.contains("TLS") || node7_log.contains("tls"),
        "node 7's log shows the TLS failure:\n{node7_log}"
    );
    members.close().await;
    client.close().await;
}

/// A child process killed (and reaped) when the test ends, also on a panic.
struct Reaped(std::process::Child);

impl Reaped {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node removed while it was down comes back with its old view: the
/// members refuse its connections, keep their membership and a leader
/// among themselves, take writes, and it learns nothing (it stays behind),
/// as docs/operations.md says.
async fn removed_while_down(protocol: &'static str) {
    let mut harness = Harness::start(protocol);
    let client = harness.client();
    client
        .put("k", Bytes::from("v"))
        .await
        .unwrap_or_else(|e| panic!("{protocol}: first put: {e}\n{}", harness.logs(&[1, 2, 3])));
    let members = harness.members();
    let view = harness
        .wait_view(&members, "a leader", |v| v.leader.is_some())
        .await;
    let leader = view.leader.expect("a leader");
    let victim = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    harness
        .cluster
        .stop(victim, Duration::from_secs(5))
        .expect("stop");
    harness
        .change(&members, MemberCommand::Remove { id: victim })
        .await;
    client
        .put("after-remove", Bytes::from("1"))
        .await
        .expect("a write after the removal");
    let survivor = [1, 2, 3]
        .into_iter()
        .find(|id| *id != victim && *id != leader)
        .expect("the other member");
    // The removed node comes back, and is given time to try everything
    // (several election timeouts).
    harness
        .cluster
        .start(victim)
        .expect("restart the removed node");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..10 {
        client
            .put(&format!("while-back-{i}"), Bytes::from("x"))
            .await
            .unwrap_or_else(|e| panic!("{protocol}: write {i}: {e}\n{}", harness.logs(&[1, 2, 3])));
    }
    let after = client.status(survivor).await.expect("status");
    // The members refuse its connections (its certificate is valid, but
    // it is no longer a member) ...
    let refusals = std::fs::read_to_string(harness.cluster.log_path(survivor))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&format!("node {victim} is not a member")))
        .count();
    assert!(
        refusals > 0,
        "{protocol}: node {survivor} never refused the removed node\n{}",
        harness.logs(&[survivor])
    );
    // ... so it never counts: the members keep their membership and a
    // leader among themselves.
    let view = members.list().await.expect("member list");
    assert!(!view.membership.contains(victim), "{protocol}: {view:#?}");
    assert!(
        view.leader.is_some_and(|l| l != victim),
        "{protocol}: {view:#?}"
    );
    // It learned nothing: its applied index stays below the members'.
    if let Ok(report) = client.status(victim).await {
        assert!(
            report.applied_index < after.applied_index,
            "{protocol}: the removed node caught up ({} of {})",
            report.applied_index,
            after.applied_index
        );
    }
    client.close().await;
    members.close().await;
    harness.cluster.stop_all(Duration::from_secs(5));
}

#[test]
fn a_node_removed_while_down_disturbs_nobody_raft() {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(120), removed_while_down("raft"))
            .await
            .expect("in time")
    });
}

#[test]
fn a_node_removed_while_down_disturbs_nobody_zab() {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(120), removed_while_down("zab"))
            .await
            .expect("in time")
    });
}
