//! The task that owns a core and drives it: the `Ready` loop.
//!
//! One tokio task per node owns the core, the store and the state machine, so
//! nothing is shared and nothing needs a lock. Each turn of the loop:
//!
//! 1. waits for one input (a tick, a message, a client request), then takes
//!    every other input that is already waiting (up to a bound) without
//!    waiting again — so everything that arrived during the last fsync is
//!    handed to the core together and shares the next round trip and fsync
//!    (group commit);
//! 2. drains `core.ready()` through the one `Ready` loop of
//!    `consensus-api` ([`handle_ready`]; this task supplies its I/O as a
//!    [`ReadyDriver`]): send the messages that may leave early (a leader's
//!    own replication) → apply the committed entries earlier batches made
//!    durable and answer their proposals → persist (write + one fdatasync,
//!    on the blocking pool) → restore a received snapshot → send the other
//!    messages → apply the other committed entries → finish the other
//!    tickets; then answer reads whose index is now applied. No input reaches the core while a batch is being
//!    persisted, which is what lets a leader count its own copy towards a
//!    quorum only once it is synced;
//! 3. compacts the log when enough entries were applied since the last
//!    snapshot, and publishes the status.
//!
//! A storage failure stops the node: every waiting request gets
//! `ClientError::Storage`, later ones `Stopped`; nothing is retried.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use consensus_api::{
    handle_ready, Applied, ClientError, Core, Entry, Handled, LogIndex, LogStore, Membership,
    NodeId, Payload, ReadConsistency, Ready, ReadyDriver, ReadyError, Rejected, Snapshot,
    StateMachine, Status, StorageError, Ticket, Transport, TransportEvent,
};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use crate::config::RuntimeConfig;
use crate::metrics::{Metrics, RuntimeMetrics};

/// Responses of applied commands are kept this many entries back while
/// proposals are pending, so a ticket finished after its entry was applied
/// still gets its response.
const RESPONSE_WINDOW: u64 = 200_000;

/// Most transport messages handed to the core in one turn.
const MESSAGES_PER_TURN_MAX: usize = 4096;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// A request from a [`Node`](crate::Node) handle to its driver.
pub(crate) enum Request {
    Append {
        command: Bytes,
        started: Instant,
        reply: Reply<Applied>,
    },
    ReadBarrier {
        reply: Reply<LogIndex>,
    },
    Read {
        query: Bytes,
        consistency: ReadConsistency,
        reply: Reply<Bytes>,
    },
    ChangeMembership {
        to: Membership,
        reply: Reply<LogIndex>,
    },
    TransferLeadership {
        to: NodeId,
        reply: Reply<()>,
    },
    Metrics {
        reply: oneshot::Sender<RuntimeMetrics>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A request the core accepted and has not finished.
enum Pending {
    Append {
        started: Instant,
        reply: Reply<Applied>,
    },
    Barrier {
        reply: Reply<LogIndex>,
    },
    Read {
        query: Bytes,
        reply: Reply<Bytes>,
    },
    Membership {
        reply: Reply<LogIndex>,
    },
}

/// A read whose barrier index is known but not yet applied.
enum WaitingRead {
    Barrier {
        index: LogIndex,
        reply: Reply<LogIndex>,
    },
    Read {
        query: Bytes,
        reply: Reply<Bytes>,
    },
}

enum Turn {
    Continue,
    Stop(Option<oneshot::Sender<()>>),
}

pub(crate) struct Driver<C: Core> {
    core: C,
    store: Option<Box<dyn LogStore>>,
    state_machine: Box<dyn StateMachine>,
    transport: Arc<dyn Transport<C::Message>>,
    config: RuntimeConfig,
    pending: BTreeMap<Ticket, Pending>,
    pending_appends: usize,
    waiting_reads: BTreeMap<LogIndex, Vec<WaitingRead>>,
    responses: BTreeMap<LogIndex, Bytes>,
    applied: LogIndex,
    /// Entries applied while handling the current batch (for metrics).
    batch_applied: u64,
    snapshot_index: LogIndex,
    status: watch::Sender<Status>,
    stopped: Arc<Mutex<Option<String>>>,
    metrics: Metrics,
}

impl<C: Core> Driver<C> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        core: C,
        store: Box<dyn LogStore>,
        state_machine: Box<dyn StateMachine>,
        transport: Arc<dyn Transport<C::Message>>,
        config: RuntimeConfig,
        applied: LogIndex,
        status: watch::Sender<Status>,
        stopped: Arc<Mutex<Option<String>>>,
    ) -> Self {
        let id = core.status().id;
        Driver {
            core,
            store: Some(store),
            state_machine,
            transport,
            config,
            pending: BTreeMap::new(),
            pending_appends: 0,
            waiting_reads: BTreeMap::new(),
            responses: BTreeMap::new(),
            applied,
            batch_applied: 0,
            snapshot_index: applied,
            status,
            stopped,
            metrics: Metrics::new(id, C::PROTOCOL),
        }
    }

    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The first tick of a tokio interval fires at once; consume it.
        ticker.tick().await;
        self.publish_status();
        let stop_reply = loop {
            let turn = tokio::select! {
                _ = ticker.tick() => {
                    self.core.tick();
                    Turn::Continue
                }
                event = self.transport.recv() => match event {
                    Some(event) => {
                        self.on_transport_event(event);
                        Turn::Continue
                    }
                    None => {
                        tracing::warn!("transport closed; stopping the node");
                        Turn::Stop(None)
                    }
                },
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => Turn::Stop(None),
                },
            };
            if let Turn::Stop(reply) = turn {
                break reply;
            }
            if let Turn::Stop(reply) = self.drain_waiting_inputs(&mut requests) {
                break reply;
            }
            self.metrics.observe_queues(
                requests.len(),
                self.pending_appends,
                self.pending.len() - self.pending_appends + self.waiting_reads.len(),
            );
            if let Err(error) = self.process_ready().await {
                self.fail(error.to_string());
                break None;
            }
        };
        self.stop(stop_reply).await;
    }

    /// Takes inputs that are already waiting, without waiting for more.
    fn drain_waiting_inputs(&mut self, requests: &mut mpsc::Receiver<Request>) -> Turn {
        for _ in 0..MESSAGES_PER_TURN_MAX {
            match self.transport.recv().now_or_never() {
                Some(Some(event)) => self.on_transport_event(event),
                _ => break,
            }
        }
        for _ in 0..self.config.requests_per_batch_max {
            match requests.try_recv() {
                Ok(request) => {
                    if let Turn::Stop(reply) = self.on_request(request) {
                        return Turn::Stop(reply);
                    }
                }
                Err(_) => break,
            }
        }
        Turn::Continue
    }

    fn on_transport_event(&mut self, event: TransportEvent<C::Message>) {
        match event {
            TransportEvent::Message { from, message } => self.core.step(from, message),
            TransportEvent::PeerConnected(peer) => tracing::debug!(peer, "peer connected"),
            TransportEvent::PeerDisconnected(peer) => tracing::debug!(peer, "peer disconnected"),
        }
    }

    fn on_request(&mut self, request: Request) -> Turn {
        match request {
            Request::Append {
                command,
                started,
                reply,
            } => match self.core.propose(command) {
                Ok(ticket) => {
                    self.pending_appends += 1;
                    self.pending
                        .insert(ticket, Pending::Append { started, reply });
                }
                Err(rejected) => self.reject(reply, rejected),
            },
            Request::ReadBarrier { reply } => match self.core.read_barrier() {
                Ok(ticket) => {
                    self.pending.insert(ticket, Pending::Barrier { reply });
                }
                Err(rejected) => self.reject(reply, rejected),
            },
            Request::Read {
                query,
                consistency: ReadConsistency::Stale,
                reply,
            } => {
                let _ = reply.send(Ok(self.state_machine.query(&query)));
            }
            Request::Read {
                query,
                consistency: ReadConsistency::Linearizable,
                reply,
            } => match self.core.read_barrier() {
                Ok(ticket) => {
                    self.pending.insert(ticket, Pending::Read { query, reply });
                }
                Err(rejected) => self.reject(reply, rejected),
            },
            Request::ChangeMembership { to, reply } => match self.core.change_membership(to) {
                Ok(ticket) => {
                    self.pending.insert(ticket, Pending::Membership { reply });
                }
                Err(rejected) => self.reject(reply, rejected),
            },
            Request::TransferLeadership { to, reply } => {
                let _ = reply.send(self.core.transfer_leadership(to).map_err(ClientError::from));
            }
            Request::Metrics { reply } => {
                let _ = reply.send(self.metrics.snapshot());
            }
            Request::Shutdown { reply } => return Turn::Stop(Some(reply)),
        }
        Turn::Continue
    }

    fn reject<T>(&mut self, reply: Reply<T>, rejected: Rejected) {
        self.metrics.record_rejected(&rejected);
        let _ = reply.send(Err(rejected.into()));
    }

    /// Drains every pending `Ready` through the one loop
    /// ([`consensus_api::handle_ready`]), then answers reads, compacts and
    /// publishes the status.
    async fn process_ready(&mut self) -> Result<(), StorageError> {
        while let Some(ready) = self.core.ready() {
            self.batch_applied = 0;
            let handled = handle_ready(self, ready).await;
            self.metrics.record_applied(self.batch_applied);
            match handled {
                Ok(Handled::Done) => {}
                Ok(Handled::Crashed) => {
                    return Err(StorageError::Failed("the store lost a batch".into()))
                }
                Err(ReadyError::Driver(error)) => return Err(error),
                Err(violation) => {
                    return Err(StorageError::Failed(format!(
                        "the core broke the Ready contract: {violation}"
                    )))
                }
            }
            self.forget_responses();
            self.release_reads();
        }
        self.maybe_compact().await?;
        self.publish_status();
        Ok(())
    }

    /// Drops kept responses no pending proposal can still ask for.
    fn forget_responses(&mut self) {
        if self.pending_appends == 0 {
            self.responses.clear();
        } else if self.applied > RESPONSE_WINDOW {
            self.responses = self.responses.split_off(&(self.applied - RESPONSE_WINDOW));
        }
    }

    /// Answers reads whose index the state machine has reached.
    fn release_reads(&mut self) {
        while let Some(entry) = self.waiting_reads.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for waiting in entry.remove() {
                match waiting {
                    WaitingRead::Barrier { index, reply } => {
                        let _ = reply.send(Ok(index));
                    }
                    WaitingRead::Read { query, reply } => {
                        let _ = reply.send(Ok(self.state_machine.query(&query)));
                    }
                }
            }
        }
    }

    async fn maybe_compact(&mut self) -> Result<(), StorageError> {
        let interval = self.config.snapshot_interval_entries;
        if interval == 0 || self.applied < self.snapshot_index + interval {
            return Ok(());
        }
        let data = self.state_machine.snapshot();
        let snapshot = match self.core.compact(self.applied, data) {
            Ok(snapshot) => snapshot,
            Err(rejected) => {
                tracing::debug!(%rejected, "compaction refused");
                return Ok(());
            }
        };
        let mut store = self
            .store
            .take()
            .ok_or_else(|| StorageError::Failed("store lost".into()))?;
        let (store, result) = tokio::task::spawn_blocking(move || {
            let result = store.save_snapshot(&snapshot);
            (store, result)
        })
        .await
        .map_err(|e| StorageError::Failed(format!("storage task failed: {e}")))?;
        self.store = Some(store);
        result?;
        self.snapshot_index = self.applied;
        Ok(())
    }

    fn publish_status(&mut self) {
        let status = self.core.status();
        self.metrics.observe_status(&status);
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "storage failure: the node stops");
        *self.stopped.lock().expect("stopped lock") = Some(format!("storage failure: {reason}"));
        let error = ClientError::Storage(reason);
        self.finish_all(|| error.clone());
    }

    fn finish_all(&mut self, error: impl Fn() -> ClientError) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            match pending {
                Pending::Append { reply, .. } => drop(reply.send(Err(error()))),
                Pending::Barrier { reply } | Pending::Membership { reply } => {
                    drop(reply.send(Err(error())))
                }
                Pending::Read { reply, .. } => drop(reply.send(Err(error()))),
            }
        }
        for (_, waiting) in std::mem::take(&mut self.waiting_reads) {
            for read in waiting {
                match read {
                    WaitingRead::Barrier { reply, .. } => drop(reply.send(Err(error()))),
                    WaitingRead::Read { reply, .. } => drop(reply.send(Err(error()))),
                }
            }
        }
        self.pending_appends = 0;
    }

    async fn stop(mut self, reply: Option<oneshot::Sender<()>>) {
        {
            let mut stopped = self.stopped.lock().expect("stopped lock");
            if stopped.is_none() {
                *stopped = Some("shut down".into());
            }
        }
        self.finish_all(|| ClientError::Stopped("the node is shutting down".into()));
        let _ = tokio::time::timeout(self.config.shutdown_timeout, self.transport.shutdown()).await;
        if let Some(store) = self.store.take() {
            // Dropping the store closes its files; everything was synced already.
            let _ = tokio::task::spawn_blocking(move || drop(store)).await;
        }
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }
}

/// The runtime's I/O for the one `Ready` loop: the log store on the
/// blocking pool, the transport, the state machine, the waiting requests.
impl<C: Core> ReadyDriver<C::Message> for Driver<C> {
    type Error = StorageError;

    fn send(&mut self, to: NodeId, message: C::Message) {
        if let Err(error) = self.transport.send(to, message) {
            tracing::trace!(to, %error, "message dropped");
        }
    }

    /// Writes and fsyncs a batch on the blocking pool.
    async fn persist(
        &mut self,
        ready: Ready<C::Message>,
    ) -> Result<Option<Ready<C::Message>>, StorageError> {
        let mut store = self
            .store
            .take()
            .ok_or_else(|| StorageError::Failed("store lost".into()))?;
        let (store, ready, result, took) = tokio::task::spawn_blocking(move || {
            let result = store.write(&ready.write_batch());
            let started = Instant::now();
            let result = result.and_then(|()| store.sync());
            (store, ready, result, started.elapsed())
        })
        .await
        .map_err(|e| StorageError::Failed(format!("storage task failed: {e}")))?;
        self.store = Some(store);
        result?;
        self.metrics.record_fsync(took);
        if let Some(snapshot) = &ready.snapshot {
            self.snapshot_index = self.snapshot_index.max(snapshot.index);
        }
        Ok(Some(ready))
    }

    fn applied_index(&self) -> LogIndex {
        self.applied
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.state_machine
            .restore(snapshot.index, &snapshot.data)
            .map_err(|e| StorageError::InvalidWrite(format!("snapshot restore failed: {e}")))?;
        self.applied = snapshot.index;
        Ok(())
    }

    fn apply(&mut self, entry: Entry) -> Result<(), StorageError> {
        let response = match &entry.payload {
            Payload::Command(command) => self.state_machine.apply(entry.index, command),
            Payload::Noop | Payload::Membership(_) => Bytes::new(),
        };
        if self.pending_appends > 0 {
            self.responses.insert(entry.index, response);
        }
        self.applied = entry.index;
        self.batch_applied += 1;
        Ok(())
    }

    fn complete(&mut self, ticket: Ticket, result: Result<LogIndex, Rejected>) {
        let Some(pending) = self.pending.remove(&ticket) else {
            return;
        };
        match (pending, result) {
            (Pending::Append { started, reply }, Ok(index)) => {
                self.pending_appends -= 1;
                self.metrics.record_commit(started.elapsed());
                let response = self.responses.remove(&index).unwrap_or_else(|| {
                    tracing::warn!(index, "response of a finished proposal was not kept");
                    Bytes::new()
                });
                let _ = reply.send(Ok(Applied { index, response }));
            }
            (Pending::Append { reply, .. }, Err(rejected)) => {
                self.pending_appends -= 1;
                self.reject(reply, rejected);
            }
            (Pending::Barrier { reply }, Ok(index)) => {
                self.waiting_reads
                    .entry(index)
                    .or_default()
                    .push(WaitingRead::Barrier { index, reply });
            }
            (Pending::Read { query, reply }, Ok(index)) => {
                self.waiting_reads
                    .entry(index)
                    .or_default()
                    .push(WaitingRead::Read { query, reply });
            }
            (Pending::Barrier { reply }, Err(rejected)) => self.reject(reply, rejected),
            (Pending::Read { reply, .. }, Err(rejected)) => self.reject(reply, rejected),
            (Pending::Membership { reply }, result) => {
                let _ = reply.send(result.map_err(ClientError::from));
            }
        }
    }
}
