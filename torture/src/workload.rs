//! The clients: Jepsen "processes" doing random reads, writes and
//! compare-and-sets on a few keys, each operation recorded in the JSON Lines
//! history of `shared/HISTORY.md` as it happens.
//!
//! * A **process** is one [`KvClient`] (one client session). It has one
//!   operation outstanding at a time. After an operation whose outcome is
//!   unknown (`info`) the process is retired: its client is closed and a new
//!   process id with a new client (a new session) takes its place, so no
//!   process ever invokes after an `info`.
//! * Values are integers, unique per run (one counter), stored as their
//!   decimal text; a read of anything else is an anomaly.
//! * Outcomes: success → `ok` (a compare-and-set that did not match →
//!   `fail`: it definitely changed nothing); [`KvError::OutcomeUnknown`]
//!   (timeouts, lost connections) or the per-operation deadline → `info`;
//!   [`KvError::Unavailable`] / [`KvError::Refused`] → `fail` (the client
//!   guarantees such an operation was not applied: the checker holds it to
//!   that).
//! * Every event is stamped with monotonic nanoseconds since the start of
//!   the run, taken under the writer's lock, so line order is time order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use consensus_sim::history::{Event, EventType, HistoryError, HistoryWriter, Op, ProcessId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use consensus_kv::client::{ClientOptions, KvClient, KvError};
use consensus_kv::config::ClusterConfig;

/// Operation counts by function and outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    /// Reads: invoked / ok / fail / info.
    pub reads: OutcomeCounts,
    /// Writes.
    pub writes: OutcomeCounts,
    /// Compare-and-sets.
    pub cas: OutcomeCounts,
    /// Process ids used (one per client session).
    pub processes: u64,
}

/// How operations of one kind ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// Invoked.
    pub invoked: u64,
    /// Took effect.
    pub ok: u64,
    /// Definitely did not take effect.
    pub fail: u64,
    /// Unknown outcome.
    pub info: u64,
}

impl OpStats {
    /// Every operation invoked.
    pub fn total(&self) -> u64 {
        self.reads.invoked + self.writes.invoked + self.cas.invoked
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        let part = |name: &str, c: &OutcomeCounts| {
            format!(
                "{name} {} ({} ok, {} fail, {} info)",
                c.invoked, c.ok, c.fail, c.info
            )
        };
        format!(
            "{} operations by {} processes: {}, {}, {}",
            self.total(),
            self.processes,
            part("reads", &self.reads),
            part("writes", &self.writes),
            part("cas", &self.cas)
        )
    }
}

struct Sink {
    writer: HistoryWriter,
    error: Option<String>,
}

/// Writes the history as events happen and hands out process ids and
/// unique values.
pub struct Recorder {
    start: Instant,
    path: PathBuf,
    sink: Mutex<Sink>,
    next_process: AtomicU64,
    next_value: AtomicI64,
    stats: Mutex<OpStats>,
    latest: Mutex<BTreeMap<String, i64>>,
    anomalies: Mutex<Vec<String>>,
}

impl Recorder {
    /// Creates (truncates) the history file at `path`; times are measured
    /// from `start`.
    pub fn create(path: &Path, start: Instant) -> Result<Arc<Recorder>, HistoryError> {
        Ok(Arc::new(Recorder {
            start,
            path: path.to_path_buf(),
            sink: Mutex::new(Sink {
                writer: HistoryWriter::create(path)?,
                error: None,
            }),
            next_process: AtomicU64::new(0),
            next_value: AtomicI64::new(0),
            stats: Mutex::new(OpStats::default()),
            latest: Mutex::new(BTreeMap::new()),
            anomalies: Mutex::new(Vec::new()),
        }))
    }

    /// The history file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Time since the start of the run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The instant times are measured from.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// A fresh process id.
    pub fn new_process(&self) -> ProcessId {
        self.stats.lock().expect("stats").processes += 1;
        self.next_process.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A value never written before in this run.
    pub fn new_value(&self) -> i64 {
        self.next_value.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Appends one event stamped with the current time; returns the stamp.
    pub fn record(&self, process: ProcessId, kind: EventType, key: &str, op: Op) -> Duration {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let at = self.start.elapsed();
        let event = Event::new(process, kind, key, op).at(at.as_nanos() as u64);
        if let Err(error) = sink.writer.append(&event) {
            if sink.error.is_none() {
                sink.error = Some(error.to_string());
            }
        }
        drop(sink);
        let mut stats = self.stats.lock().expect("stats");
        let counts = match op {
            Op::Read(_) => &mut stats.reads,
            Op::Write(_) => &mut stats.writes,
            Op::Cas(_, _) => &mut stats.cas,
        };
        match kind {
            EventType::Invoke => counts.invoked += 1,
            EventType::Ok => counts.ok += 1,
            EventType::Fail => counts.fail += 1,
            EventType::Info => counts.info += 1,
        }
        at
    }

    /// The first error writing the history, if any (the run then fails).
    pub fn write_error(&self) -> Option<String> {
        self.sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }

    /// Operation counts so far.
    pub fn stats(&self) -> OpStats {
        self.stats.lock().expect("stats").clone()
    }

    /// Things clients saw that no history can express (a value this run
    /// never wrote); each is a failure.
    pub fn anomalies(&self) -> Vec<String> {
        self.anomalies.lock().expect("anomalies").clone()
    }

    fn anomaly(&self, text: String) {
        self.anomalies.lock().expect("anomalies").push(text);
    }

    fn saw(&self, key: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.latest
                .lock()
                .expect("latest")
                .insert(key.to_string(), value);
        }
    }

    fn latest(&self, key: &str) -> Option<i64> {
        self.latest.lock().expect("latest").get(key).copied()
    }
}

/// How one recorded operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It took effect (a compare-and-set: `Ok(swapped)`).
    Ok(T),
    /// It did not take effect.
    Fail(String),
    /// Unknown: the process was retired.
    Info(String),
}

impl<T> Outcome<T> {
    /// Whether it took effect.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }
}

/// A failed operation: `fail` or `info`.
enum Failure {
    Fail(String),
    Info(String),
}

impl<T> From<Failure> for Outcome<T> {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Fail(reason) => Outcome::Fail(reason),
            Failure::Info(reason) => Outcome::Info(reason),
        }
    }
}

/// A key-value client whose every operation is recorded in the history
/// under its current process id.
pub struct RecordedClient {
    recorder: Arc<Recorder>,
    config: ClusterConfig,
    options: ClientOptions,
    client: KvClient,
    process: ProcessId,
    deadline: Duration,
}

impl RecordedClient {
    /// A new process. Each operation is bounded by
    /// `options.operation_timeout` plus one second of grace.
    pub fn new(
        recorder: Arc<Recorder>,
        config: &ClusterConfig,
        options: ClientOptions,
    ) -> Result<RecordedClient, KvError> {
        let client = KvClient::from_config(config, options.clone())?;
        let deadline = options.operation_timeout + Duration::from_secs(1);
        Ok(RecordedClient {
            process: recorder.new_process(),
            recorder,
            config: config.clone(),
            options,
            client,
            deadline,
        })
    }

    /// The current process id.
    pub fn process(&self) -> ProcessId {
        self.process
    }

    /// Retires the process after an unknown outcome: a new session under a
    /// new process id.
    async fn retire(&mut self) {
        match KvClient::from_config(&self.config, self.options.clone()) {
            Ok(client) => {
                let old = std::mem::replace(&mut self.client, client);
                tokio::spawn(async move { old.close().await });
            }
            Err(error) => {
                // Keep the old client (its session is spent, the process id
                // is not reused either way).
                tracing::warn!(%error, "could not create a new client; keeping the old one");
            }
        }
        self.process = self.recorder.new_process();
    }

    fn classify<T>(&self, result: Option<Result<T, KvError>>) -> Result<T, Failure> {
        match result {
            None => Err(Failure::Info(format!(
                "no outcome within {:?}",
                self.deadline
            ))),
            Some(Ok(value)) => Ok(value),
            Some(Err(KvError::OutcomeUnknown(reason) | KvError::Setup(reason))) => {
                Err(Failure::Info(reason))
            }
            Some(Err(error @ (KvError::Unavailable(_) | KvError::Refused(_)))) => {
                Err(Failure::Fail(error.to_string()))
            }
        }
    }

    /// Records the completion; retires the process after `info`.
    async fn complete(&mut self, key: &str, op: Op, kind: EventType) {
        self.recorder.record(self.process, kind, key, op);
        if kind == EventType::Info {
            self.retire().await;
        }
    }

    async fn failed<T>(&mut self, key: &str, op: Op, failure: Failure) -> Outcome<T> {
        let kind = match failure {
            Failure::Fail(_) => EventType::Fail,
            Failure::Info(_) => EventType::Info,
        };
        self.complete(key, op, kind).await;
        failure.into()
    }

    /// A linearizable read.
    pub async fn read(&mut self, key: &str) -> Outcome<Option<i64>> {
        self.recorder
            .record(self.process, EventType::Invoke, key, Op::Read(None));
        let result = tokio::time::timeout(self.deadline, self.client.get(key, false))
            .await
            .ok();
        let value = match self.classify(result) {
            Ok(value) => value,
            Err(failure) => return self.failed(key, Op::Read(None), failure).await,
        };
        let Some(bytes) = value else {
            self.complete(key, Op::Read(None), EventType::Ok).await;
            return Outcome::Ok(None);
        };
        match parse_value(&bytes) {
            Some(number) => {
                self.recorder.saw(key, Some(number));
                self.complete(key, Op::Read(Some(number)), EventType::Ok)
                    .await;
                Outcome::Ok(Some(number))
            }
            None => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                self.recorder.anomaly(format!(
                    "process {} read key {key:?} = {text:?}: not an integer this run wrote",
                    self.process
                ));
                // The history cannot express the value: nothing learned.
                self.failed(key, Op::Read(None), Failure::Info(format!("read {text:?}")))
                    .await
            }
        }
    }

    /// Writes `value`.
    pub async fn write(&mut self, key: &str, value: i64) -> Outcome<()> {
        let op = Op::Write(value);
        self.recorder
            .record(self.process, EventType::Invoke, key, op);
        let result = tokio::time::timeout(
            self.deadline,
            self.client.put(key, Bytes::from(value.to_string())),
        )
        .await
        .ok();
        match self.classify(result) {
            Ok(()) => {
                self.recorder.saw(key, Some(value));
                self.complete(key, op, EventType::Ok).await;
                Outcome::Ok(())
            }
            Err(failure) => self.failed(key, op, failure).await,
        }
    }

    /// Compare-and-set from `expected` to `new`: `Ok(true)` swapped
    /// (recorded `ok`), `Ok(false)` did not match (recorded `fail`).
    pub async fn cas(&mut self, key: &str, expected: i64, new: i64) -> Outcome<bool> {
        let op = Op::Cas(expected, new);
        self.recorder
            .record(self.process, EventType::Invoke, key, op);
        let result = tokio::time::timeout(
            self.deadline,
            self.client.cas(
                key,
                Some(Bytes::from(expected.to_string())),
                Some(Bytes::from(new.to_string())),
            ),
        )
        .await
        .ok();
        match self.classify(result) {
            Ok((true, _)) => {
                self.recorder.saw(key, Some(new));
                self.complete(key, op, EventType::Ok).await;
                Outcome::Ok(true)
            }
            Ok((false, found)) => {
                self.recorder
                    .saw(key, found.as_deref().and_then(parse_value));
                self.complete(key, op, EventType::Fail).await;
                Outcome::Ok(false)
            }
            Err(failure) => self.failed(key, op, failure).await,
        }
    }

    /// Closes the client's connections.
    pub async fn close(self) {
        self.client.close().await;
    }
}

/// A value as the workload writes it: decimal text of an `i64`.
pub fn parse_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// What the client processes do.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent processes (at least 10 for a torture run).
    pub clients: usize,
    /// The keys (independent registers).
    pub keys: Vec<String>,
    /// Relative weights of read, write and compare-and-set.
    pub mix: (u32, u32, u32),
    /// Seeds each process's choices.
    pub seed: u64,
    /// Client timeouts and retries.
    pub client: ClientOptions,
}

/// The client options of a torture run: `operation_timeout` per
/// operation, one attempt at one node at most a third of it.
pub fn client_options(operation_timeout: Duration) -> ClientOptions {
    ClientOptions {
        attempt_timeout: (operation_timeout / 3).max(Duration::from_millis(200)),
        operation_timeout,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
    }
}

/// Starts `options.clients` processes; they run until `stop` is set.
pub fn spawn_workers(
    recorder: Arc<Recorder>,
    config: &ClusterConfig,
    options: &WorkloadOptions,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..options.clients)
        .map(|index| {
            let recorder = recorder.clone();
            let config = config.clone();
            let options = options.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let seed = options.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut client =
                    match RecordedClient::new(recorder.clone(), &config, options.client.clone()) {
                        Ok(client) => client,
                        Err(error) => {
                            recorder.anomaly(format!("client {index} could not start: {error}"));
                            return;
                        }
                    };
                while !stop.load(Ordering::Relaxed) {
                    one_operation(&mut client, &recorder, &options, &mut rng).await;
                }
                client.close().await;
            })
        })
        .collect()
}

async fn one_operation(
    client: &mut RecordedClient,
    recorder: &Recorder,
    options: &WorkloadOptions,
    rng: &mut ChaCha8Rng,
) {
    let key = &options.keys[rng.random_range(0..options.keys.len().max(1))];
    let (read, write, cas) = options.mix;
    let roll = rng.random_range(0..(read + write + cas).max(1));
    if roll < read {
        client.read(key).await;
    } else if roll < read + write {
        client.write(key, recorder.new_value()).await;
    } else {
        // Expect the latest value seen (often right), else an older one.
        let expected = match recorder.latest(key) {
            Some(latest) if rng.random_bool(0.8) => latest,
            Some(latest) => (latest - rng.random_range(0..3)).max(1),
            None => {
                client.write(key, recorder.new_value()).await;
                return;
            }
        };
        client.cas(key, expected, recorder.new_value()).await;
    }
}
