//! Multi-process leader election, the same body for every protocol: 20
//! candidate processes (`consensus-coord elect`) on a 3-node cluster of
//! server processes. Exactly one leader at any time, checked by the fencing
//! token sequence (tokens strictly increase, the leader always holds the
//! lowest live candidate node); killing the leader's process (kill -9)
//! makes exactly one successor leader after the session timeout; each
//! leader change wakes exactly one candidate (watch notifications counted
//! in every candidate process: no herd effect).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consensus_coord::{path, Read};
use support::{enabled, eventually, TestCluster, BINARY};

const CANDIDATES: usize = 20;
const SESSION_TIMEOUT: Duration = Duration::from_secs(3);
const LEADER_CHANGES: usize = 3;

/// One 20-process election at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Candidate {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    alive: bool,
}

impl Candidate {
    fn spawn(cluster: &TestCluster, index: usize) -> Candidate {
        let log = std::fs::File::create(cluster.dir.path().join(format!("candidate-{index}.log")))
            .expect("log file");
        let mut child = Command::new(BINARY)
            .args(["elect", "jobs", "--print-events", "--timeout", "60s"])
            .arg("--config")
            .arg(&cluster.config_path)
            .arg("--session-timeout")
            .arg(format!("{}ms", SESSION_TIMEOUT.as_millis()))
            .arg("--node")
            .arg(((index % 3) + 1).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn a candidate");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => sink.lock().expect("lines").push(line),
                    Err(_) => return,
                }
            }
        });
        Candidate {
            child,
            lines,
            alive: true,
        }
    }

    fn leader_token(&self) -> Option<u64> {
        self.lines.lock().expect("lines").iter().find_map(|line| {
            let rest = line.strip_prefix("leader jobs token ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
    }

    fn events(&self) -> u64 {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .rev()
            .find_map(|line| line.strip_prefix("events ")?.parse().ok())
            .unwrap_or(0)
    }

    fn lost(&self) -> Option<String> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .find(|l| l.starts_with("lost"))
            .cloned()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.alive = false;
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if self.alive {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn leaders(candidates: &[Candidate]) -> Vec<(usize, u64)> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.alive)
        .filter_map(|(i, c)| c.leader_token().map(|t| (i, t)))
        .collect()
}

async fn election(protocol: &str) {
    if !enabled(protocol) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = TestCluster::start(protocol).await;
    let observer = cluster.client(Duration::from_secs(10), None).await;
    let mut candidates: Vec<Candidate> = (0..CANDIDATES)
        .map(|i| Candidate::spawn(&cluster, i))
        .collect();
    let registered = eventually(Duration::from_secs(90), || async {
        let (children, _) = observer
            .children("/election/jobs", Read::default())
            .await
            .ok()?;
        (children.len() == CANDIDATES).then_some(())
    })
    .await;
    assert!(
        registered.is_some(),
        "{protocol}: all {CANDIDATES} candidates registered\n{}",
        cluster.logs()
    );
    let first = eventually(Duration::from_secs(30), || async {
        let found = leaders(&candidates);
        (!found.is_empty()).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("{protocol}: no leader elected\n{}", cluster.logs()));
    assert_eq!(first.len(), 1, "{protocol}: exactly one leader: {first:?}");
    let (mut leader, mut token) = first[0];
    assert_lowest(&observer, token).await;
    let mut tokens = vec![token];
    for change in 0..LEADER_CHANGES {
        // Let watches settle, then count notifications from here on.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before: Vec<u64> = candidates.iter().map(Candidate::events).collect();
        candidates[leader].kill();
        let killed = Instant::now();
        let next = eventually(SESSION_TIMEOUT * 6, || async {
            let found = leaders(&candidates);
            (!found.is_empty()).then_some(found)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{protocol}: no successor after change {change}\n{}",
                cluster.logs()
            )
        });
        let waited = killed.elapsed();
        assert_eq!(next.len(), 1, "{protocol}: exactly one successor: {next:?}");
        let (successor, successor_token) = next[0];
        assert!(
            successor_token > token,
            "{protocol}: fencing tokens strictly increase: {successor_token} after {token}"
        );
        assert!(
            waited >= SESSION_TIMEOUT / 2,
            "{protocol}: the successor took over after {waited:?}, before the old leader's session could expire"
        );
        assert_lowest(&observer, successor_token).await;
        // Settle: no second leader appears, and count who was woken.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = leaders(&candidates);
        assert_eq!(
            now,
            vec![(successor, successor_token)],
            "{protocol}: still exactly one leader"
        );
        let woken: u64 = candidates
            .iter()
            .zip(&before)
            .filter(|(c, _)| c.alive)
            .map(|(c, before)| c.events() - before)
            .sum();
        assert_eq!(
            woken, 1,
            "{protocol}: leader change {change} woke {woken} candidates (herd effect)"
        );
        for candidate in candidates.iter().filter(|c| c.alive) {
            assert_eq!(
                candidate.lost(),
                None,
                "{protocol}: no live candidate lost its session"
            );
        }
        eprintln!("{protocol}: leader change {change}: token {token} -> {successor_token} after {waited:?}");
        leader = successor;
        token = successor_token;
        tokens.push(token);
    }
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "{protocol}: tokens {tokens:?}"
    );
    observer.close().await.expect("close");
    eprintln!("{protocol}: election test took {:?}", started.elapsed());
}

/// The leader's token is the lowest live candidate's sequence number.
async fn assert_lowest(observer: &consensus_coord::CoordClient, token: u64) {
    observer.sync("/").await.expect("sync");
    let (children, _) = observer
        .children("/election/jobs", Read::default())
        .await
        .expect("ls");
    let lowest = children.iter().filter_map(|n| path::sequence_of(n)).min();
    assert_eq!(
        lowest,
        Some(token),
        "the leader holds the lowest candidate node: {children:?}"
    );
}

macro_rules! per_protocol {
    ($($name:ident => $protocol:literal),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            election($protocol).await;
        }
    )*};
}

per_protocol! {
    election_raft => "raft",
    election_multipaxos => "multipaxos",
    election_paxos => "paxos",
    election_zab => "zab",
}
