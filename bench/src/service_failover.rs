//! Service-level failover: `kill -9` and `SIGSTOP` of the leader's
//! `consensus-kv serve` process while one client writes without pause.
//!
//! The figure per sample is the longest gap between two consecutive
//! successful writes of that client around the fault — the figure etcd's and
//! ZooKeeper's published failover numbers use. It runs from the last write
//! that succeeded before the fault to the first success of a write that was
//! *started* after the fault (so a reply already on its way when the leader
//! died does not end the gap early; the longest gap in that window counts).
//!
//! The client is part of the measurement, as an etcd client's settings are
//! part of etcd's: it gives up on one node after [`attempt_timeout`] (100 ms
//! at the default timing, 2.5 heartbeat intervals when that is shorter: 50
//! ms for the fast profile) and retries elsewhere with a backoff of
//! [`BACKOFF_INITIAL`] doubling up to [`BACKOFF_MAX`], following the nodes'
//! leader redirects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consensus::{NodeId, Protocol, Role};
use consensus_kv::client::{ClientOptions, KvClient};
use consensus_kv::demo::LocalCluster;
use consensus_kv::wire::NodeReport;

/// The longest the measuring client waits for one node before trying
/// another.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

/// How long the measuring client waits for one node before trying another
/// under `tuning`: [`ATTEMPT_TIMEOUT`], or 2.5 heartbeat intervals when that
/// is shorter. A leader silent for that long has missed two heartbeats, so
/// its followers are about to suspect it too; a client that waited a fixed
/// 100 ms would, with the fast profile (60-100 ms election timeout), still
/// be waiting on a dead leader after its successor took over.
pub fn attempt_timeout(tuning: &consensus::Tuning) -> Duration {
    ATTEMPT_TIMEOUT.min(tuning.heartbeat_interval * 5 / 2)
}
/// The measuring client's first retry delay (doubles per retry, jittered).
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(10);
/// The measuring client's largest retry delay: 25 ms, etcd clientv3's
/// default wait between retries (`defaultBackoffWaitBetween`).
pub const BACKOFF_MAX: Duration = Duration::from_millis(25);
/// Bound on every wait of a sample (a write after the fault, a leader, a
/// healed cluster).
pub const SAMPLE_WAIT: Duration = Duration::from_secs(20);
/// How long a status query may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// The key the measuring client overwrites.
const KEY: &str = "failover-probe";

/// The measuring client's settings, for the report.
pub fn client_description(value_bytes: usize, attempt_timeout: Duration) -> String {
    format!(
        "one client, put of a {value_bytes}-byte value to one key in a loop; \
         attempt timeout {} ms, retry backoff {}-{} ms, follows leader redirects, \
         connected to every node before each fault",
        attempt_timeout.as_millis(),
        BACKOFF_INITIAL.as_millis(),
        BACKOFF_MAX.as_millis()
    )
}

/// The fault injected into the leader's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`; the node is restarted after the client has written again.
    Kill,
    /// `SIGSTOP`; `SIGCONT` after the client has written again.
    Pause,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::Kill => "kill -9",
            Fault::Pause => "SIGSTOP",
        })
    }
}

/// The longest gap between consecutive successes that the fault caused:
/// among the successes from the last one at or before `fault` up to
/// `recovered` (inclusive), the largest distance between neighbours. `None`
/// without a success at or before `fault` or without one in
/// (`fault`, `recovered`]. The successes need not be sorted.
pub fn longest_gap(successes: &[Instant], fault: Instant, recovered: Instant) -> Option<Duration> {
    let mut sorted: Vec<Instant> = successes.to_vec();
    sorted.sort_unstable();
    let first = sorted.iter().rposition(|t| *t <= fault)?;
    let window: Vec<Instant> = sorted[first..]
        .iter()
        .copied()
        .take_while(|t| *t <= recovered)
        .collect();
    window.windows(2).map(|pair| pair[1] - pair[0]).max()
}

/// One successful write: when its `put` was called and when it returned.
#[derive(Clone, Copy, Debug)]
struct Success {
    started: Instant,
    finished: Instant,
}

/// The client writing continuously in a task.
struct Writer {
    client: Arc<KvClient>,
    successes: Arc<Mutex<Vec<Success>>>,
    last_error: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(
        cluster: &LocalCluster,
        value_bytes: usize,
        attempt_timeout: Duration,
    ) -> Result<Writer, String> {
        let client = Arc::new(
            KvClient::from_config(
                &cluster.config,
                ClientOptions {
                    attempt_timeout,
                    operation_timeout: Duration::from_secs(5),
                    backoff_initial: BACKOFF_INITIAL,
                    backoff_max: BACKOFF_MAX,
                },
            )
            .map_err(|e| format!("the failover client: {e}"))?,
        );
        let successes = Arc::new(Mutex::new(Vec::new()));
        let last_error = Arc::new(Mutex::new(String::from("none")));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let client = client.clone();
            let successes = successes.clone();
            let last_error = last_error.clone();
            let stop = stop.clone();
            let value = consensus::Bytes::from(vec![b'v'; value_bytes]);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match client.put(KEY, value.clone()).await {
                        Ok(()) => {
                            let finished = Instant::now();
                            if let Ok(mut list) = successes.lock() {
                                list.push(Success { started, finished });
                            }
                        }
                        Err(error) => {
                            if let Ok(mut last) = last_error.lock() {
                                *last = error.to_string();
                            }
                        }
                    }
                }
            })
        };
        Ok(Writer {
            client,
            successes,
            last_error,
            stop,
            task,
        })
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The finish time of the first write started after `after`, waiting up
    /// to `deadline`.
    async fn first_started_after(&self, after: Instant, deadline: Instant) -> Option<Instant> {
        loop {
            let found = self.successes.lock().ok().and_then(|list| {
                list.iter()
                    .rev()
                    .take_while(|s| s.started > after)
                    .last()
                    .map(|s| s.finished)
            });
            if found.is_some() {
                return found;
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn finish_times(&self) -> Vec<Instant> {
        self.successes
            .lock()
            .map(|list| list.iter().map(|s| s.finished).collect())
            .unwrap_or_default()
    }

    /// Drops old successes (keeps memory flat over a long run).
    fn forget_before(&self, before: Instant) {
        if let Ok(mut list) = self.successes.lock() {
            // Keep the last success before `before`: it may start a gap.
            let keep_from = list.iter().rposition(|s| s.finished <= before).unwrap_or(0);
            list.drain(..keep_from);
        }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        // A put returns within its operation timeout (5 s).
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.close()).await;
    }
}

/// Every running node's status through a fresh client (a cached connection
/// to a process that has since died would make queries wait for nothing).
/// Nodes are asked one at a time: a query to a dead node only costs its
/// timeout.
async fn statuses(
    cluster: &mut LocalCluster,
    skip: Option<NodeId>,
) -> Result<Vec<Result<NodeReport, String>>, String> {
    let client = KvClient::from_config(
        &cluster.config,
        ClientOptions {
            attempt_timeout: STATUS_TIMEOUT,
            ..ClientOptions::default()
        },
    )
    .map_err(|e| format!("the status client: {e}"))?;
    let mut reports = Vec::new();
    for id in cluster.ids() {
        if Some(id) == skip {
            continue;
        }
        if !cluster.is_running(id) {
            reports.push(Err(format!("node {id} is not running")));
            continue;
        }
        reports.push(client.status(id).await.map_err(|e| e.to_string()));
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
    Ok(reports)
}

/// The leader every answering node agrees on, if all answer.
fn agreed_leader(reports: &[Result<NodeReport, String>]) -> Option<NodeId> {
    let reports: Vec<&NodeReport> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    let leader = reports
        .iter()
        .filter(|r| r.role == Role::Leader)
        .max_by_key(|r| r.epoch)?;
    reports
        .iter()
        .all(|r| r.leader == Some(leader.id))
        .then_some(leader.id)
}

fn describe(reports: &[Result<NodeReport, String>]) -> String {
    reports
        .iter()
        .map(|r| match r {
            Ok(r) => format!(
                "node {}: {} leader {:?} epoch {} commit {} applied {}{}",
                r.id,
                r.role,
                r.leader,
                r.epoch,
                r.commit_index,
                r.applied_index,
                r.stopped
                    .as_ref()
                    .map(|s| format!(" STOPPED: {s}"))
                    .unwrap_or_default()
            ),
            Err(e) => e.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits until every node runs and answers, none has stopped, (leader
/// protocols) all agree on one leader, and every node has applied what was
/// committed when the wait began.
async fn wait_healthy(cluster: &mut LocalCluster, protocol: Protocol) -> Result<(), String> {
    let deadline = Instant::now() + SAMPLE_WAIT;
    let mut target = None;
    loop {
        let reports = statuses(cluster, None).await?;
        let answered: Vec<&NodeReport> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
        if target.is_none() && !answered.is_empty() {
            target = answered.iter().map(|r| r.commit_index).max();
        }
        let healthy = answered.len() == reports.len()
            && answered.iter().all(|r| r.stopped.is_none())
            && (!protocol.has_leader() || agreed_leader(&reports).is_some())
            && target.is_some_and(|t| answered.iter().all(|r| r.applied_index >= t));
        if healthy {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the cluster did not heal (all nodes answering, one agreed leader, every node \
                 caught up to index {}) within {SAMPLE_WAIT:?}: {}",
                target.unwrap_or(0),
                describe(&reports)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node to fault: the leader all nodes agree on that the client has just
/// written through; for leaderless protocols the node the client talks to.
async fn pick_victim(
    cluster: &mut LocalCluster,
    protocol: Protocol,
    writer: &Writer,
) -> Result<NodeId, String> {
    let deadline = Instant::now() + SAMPLE_WAIT;
    loop {
        let asked = Instant::now();
        let wrote = writer.first_started_after(asked, deadline).await.is_some();
        let talks_to = writer.client.cached_leader();
        if wrote && !protocol.has_leader() {
            if let Some(id) = talks_to {
                return Ok(id);
            }
        }
        let reports = statuses(cluster, None).await?;
        if wrote {
            if let Some(leader) = agreed_leader(&reports) {
                if talks_to == Some(leader) {
                    return Ok(leader);
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no agreed leader that the client writes through within {SAMPLE_WAIT:?} \
                 (client talks to {talks_to:?}; last client error: {}): {}",
                writer.last_error(),
                describe(&reports)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One sample: fault the victim, wait for a write started after the fault,
/// then heal (restart or resume) and wait until the cluster is healthy.
/// Returns the gap and the victim.
async fn sample(
    cluster: &mut LocalCluster,
    protocol: Protocol,
    writer: &Writer,
    fault: Fault,
) -> Result<(Duration, NodeId), String> {
    wait_healthy(cluster, protocol).await?;
    // The client holds a connection to every node (a node healed after the
    // last sample included), as `KvClient::connect_all` lets a user's
    // client do: the gap measures the failover, not a TLS handshake.
    writer.client.connect_all().await;
    let victim = pick_victim(cluster, protocol, writer).await?;
    let at = Instant::now();
    writer.forget_before(at - Duration::from_secs(1));
    match fault {
        Fault::Kill => cluster.kill(victim)?,
        Fault::Pause => cluster.pause(victim)?,
    }
    let recovered = writer.first_started_after(at, at + SAMPLE_WAIT).await;
    // Heal before anything else can fail.
    let healed = match fault {
        Fault::Kill => cluster.start(victim),
        Fault::Pause => cluster.resume(victim),
    };
    let recovered = recovered.ok_or_else(|| {
        format!(
            "no write succeeded within {SAMPLE_WAIT:?} after {fault} of node {victim}; \
             the client's last error: {}",
            writer.last_error()
        )
    })?;
    healed.map_err(|e| format!("healing node {victim} after {fault}: {e}"))?;
    let gap = longest_gap(&writer.finish_times(), at, recovered).ok_or_else(|| {
        format!("no write succeeded before {fault} of node {victim}, so there is no gap to measure")
    })?;
    wait_healthy(cluster, protocol)
        .await
        .map_err(|e| format!("after {fault} of node {victim}: {e}"))?;
    Ok((gap, victim))
}

/// Measures `samples` leader failures by `fault`; calls `progress` before
/// (`None`) and after (`Some((gap_ms, victim))`) each. Returns the gaps in
/// milliseconds.
pub async fn measure(
    cluster: &mut LocalCluster,
    protocol: Protocol,
    fault: Fault,
    samples: usize,
    value_bytes: usize,
    attempt_timeout: Duration,
    mut progress: impl FnMut(usize, Option<(f64, NodeId)>),
) -> Result<Vec<f64>, String> {
    if samples == 0 {
        return Ok(Vec::new());
    }
    let writer = Writer::start(cluster, value_bytes, attempt_timeout)?;
    let mut gaps = Vec::with_capacity(samples);
    let mut outcome = Ok(());
    for index in 0..samples {
        progress(index, None);
        match sample(cluster, protocol, &writer, fault).await {
            Ok((gap, victim)) => {
                let ms = gap.as_secs_f64() * 1000.0;
                gaps.push(ms);
                progress(index, Some((ms, victim)));
            }
            Err(error) => {
                outcome = Err(format!(
                    "{protocol} service, {fault} sample {}: {error}",
                    index + 1
                ));
                break;
            }
        }
    }
    writer.finish().await;
    outcome.map(|()| gaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: &[u64]) -> Vec<Instant> {
        ms.iter()
            .map(|m| base + Duration::from_millis(*m))
            .collect()
    }

    #[test]
    fn gap_from_last_success_before_to_first_after() {
        let base = Instant::now();
        let successes = at(base, &[0, 5, 10, 15, 320, 325]);
        let fault = base + Duration::from_millis(12);
        let recovered = base + Duration::from_millis(325);
        assert_eq!(
            longest_gap(&successes, fault, recovered),
            Some(Duration::from_millis(305))
        );
    }

    #[test]
    fn a_reply_in_flight_at_the_fault_does_not_end_the_gap() {
        let base = Instant::now();
        // 11 arrived just after the fault at 10.5 (already answered); the
        // real outage is 11 -> 300.
        let successes = at(base, &[0, 5, 10, 11, 300, 303]);
        let fault = base + Duration::from_micros(10_500);
        let recovered = base + Duration::from_millis(303);
        assert_eq!(
            longest_gap(&successes, fault, recovered),
            Some(Duration::from_millis(289))
        );
    }

    #[test]
    fn gaps_outside_the_window_do_not_count() {
        let base = Instant::now();
        // A long gap before the fault and one after recovery are not the fault's.
        let successes = at(base, &[0, 1000, 1002, 1200, 1203, 5000]);
        let fault = base + Duration::from_millis(1100);
        let recovered = base + Duration::from_millis(1203);
        assert_eq!(
            longest_gap(&successes, fault, recovered),
            Some(Duration::from_millis(198))
        );
    }

    #[test]
    fn unsorted_input_and_success_at_the_fault_instant() {
        let base = Instant::now();
        let successes = at(base, &[250, 0, 100]);
        let fault = base + Duration::from_millis(100);
        let recovered = base + Duration::from_millis(250);
        assert_eq!(
            longest_gap(&successes, fault, recovered),
            Some(Duration::from_millis(150))
        );
    }

    #[test]
    fn no_gap_without_a_success_on_both_sides() {
        let base = Instant::now();
        let fault = base + Duration::from_millis(50);
        let recovered = base + Duration::from_millis(400);
        assert_eq!(longest_gap(&at(base, &[100, 200]), fault, recovered), None);
        assert_eq!(longest_gap(&at(base, &[0, 10]), fault, recovered), None);
        assert_eq!(longest_gap(&at(base, &[0, 500]), fault, recovered), None);
        assert_eq!(longest_gap(&[], fault, recovered), None);
    }
}
