//! The application-facing handle of a running node.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use consensus_api::{
    Applied, ClientError, Core, CoreConfig, LogIndex, LogStore, Membership, NodeId,
    ReadConsistency, RecoverError, ReplicatedLog, StateMachine, Status, StorageError, Transport,
};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::RuntimeConfig;
use crate::driver::{Driver, Request};
use crate::metrics::RuntimeMetrics;

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The store could not be read (corrupt records, I/O errors).
    #[error("reading the store failed: {0}")]
    Storage(#[from] StorageError),
    /// The core could not be rebuilt from the stored state.
    #[error("rebuilding the protocol state failed: {0}")]
    Recover(#[from] RecoverError),
    /// The state machine rejected the stored snapshot.
    #[error("restoring the state machine from the stored snapshot failed: {0}")]
    StateMachine(RecoverError),
}

/// A running node: a core driven by a tokio task, reached through this
/// handle. Implements [`ReplicatedLog`]. Cheap to share behind an `Arc`.
pub struct Node<C: Core> {
    id: NodeId,
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Status>,
    stopped: Arc<Mutex<Option<String>>>,
    config: RuntimeConfig,
    task: Mutex<Option<JoinHandle<()>>>,
    _core: PhantomData<fn() -> C>,
}

impl<C: Core> Node<C> {
    /// Starts a node: loads `store`, restores `state_machine` from the stored
    /// snapshot, rebuilds the core with [`Core::restore`], and spawns its
    /// driver on the current tokio runtime.
    pub fn start(
        core_config: CoreConfig,
        config: RuntimeConfig,
        mut store: Box<dyn LogStore>,
        mut state_machine: Box<dyn StateMachine>,
        transport: Arc<dyn Transport<C::Message>>,
    ) -> Result<Self, StartError> {
        let id = core_config.id;
        let initial = store.load()?;
        let mut applied = 0;
        if let Some(snapshot) = &initial.snapshot {
            state_machine
                .restore(snapshot.index, &snapshot.data)
                .map_err(StartError::StateMachine)?;
            applied = snapshot.index;
        }
        let core = C::restore(core_config, initial)?;
        let (status_tx, status_rx) = watch::channel(core.status());
        let stopped = Arc::new(Mutex::new(None));
        let (requests_tx, requests_rx) = mpsc::channel(config.request_queue_max.max(1));
        let driver = Driver::new(
            core,
            store,
            state_machine,
            transport,
            config.clone(),
            applied,
            status_tx,
            stopped.clone(),
        );
        let task = tokio::spawn(driver.run(requests_rx));
        tracing::info!(node = id, protocol = C::PROTOCOL, "node started");
        Ok(Node {
            id,
            requests: requests_tx,
            status: status_rx,
            stopped,
            config,
            task: Mutex::new(Some(task)),
            _core: PhantomData,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Why the node stopped, if it has.
    pub fn stopped_reason(&self) -> Option<String> {
        self.stopped.lock().expect("stopped lock").clone()
    }

    fn stopped_error(&self) -> ClientError {
        ClientError::Stopped(
            self.stopped_reason()
                .unwrap_or_else(|| "the node has stopped".into()),
        )
    }

    /// Queues a request without waiting: a full queue is `Overloaded`.
    fn submit(&self, request: Request) -> Result<(), ClientError> {
        self.requests
            .try_send(request)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    metrics::counter!(
                        "consensus_proposals_rejected_total",
                        "node" => self.id.to_string(),
                        "protocol" => C::PROTOCOL,
                        "reason" => "queue_full"
                    )
                    .increment(1);
                    ClientError::Overloaded
                }
                mpsc::error::TrySendError::Closed(_) => self.stopped_error(),
            })
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Request,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.submit(make(reply))?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.stopped_error()),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Asks the leader to hand leadership to `to`.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), ClientError> {
        self.call(
            |reply| Request::TransferLeadership { to, reply },
            self.config.request_timeout,
        )
        .await
    }

    /// A snapshot of the runtime metrics.
    pub async fn metrics(&self) -> Result<RuntimeMetrics, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Request::Metrics { reply })?;
        answer.await.map_err(|_| self.stopped_error())
    }

    /// The published status as a watch: `changed()` wakes on every change
    /// (role, leader, epoch, commit/applied index...). For observers that
    /// time events, such as the benchmark's failover phases.
    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until `condition` holds for the published status, or `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&Status) -> bool,
    ) -> Result<Status, ClientError> {
        let mut status = self.status.clone();
        let deadline = Instant::now() + timeout;
        loop {
            {
                let current = status.borrow_and_update();
                if condition(&current) {
                    return Ok(current.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, status.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.stopped_error()),
                Err(_) => return Err(ClientError::Timeout),
            }
        }
    }
}

#[async_trait]
impl<C: Core> ReplicatedLog for Node<C> {
    async fn append(&self, command: Bytes) -> Result<Applied, ClientError> {
        let started = Instant::now();
        self.call(
            |reply| Request::Append {
                command,
                started,
                reply,
            },
            self.config.request_timeout,
        )
        .await
    }

    async fn read_barrier(&self) -> Result<LogIndex, ClientError> {
        self.call(
            |reply| Request::ReadBarrier { reply },
            self.config.request_timeout,
        )
        .await
    }

    async fn read(&self, query: Bytes, consistency: ReadConsistency) -> Result<Bytes, ClientError> {
        self.call(
            |reply| Request::Read {
                query,
                consistency,
                reply,
            },
            self.config.request_timeout,
        )
        .await
    }

    async fn change_membership(&self, to: Membership) -> Result<LogIndex, ClientError> {
        // A membership change takes at least two commits; allow it longer.
        self.call(
            |reply| Request::ChangeMembership { to, reply },
            self.config.request_timeout * 2,
        )
        .await
    }

    fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    async fn shutdown(&self) -> Result<(), ClientError> {
        let task = self.task.lock().expect("task lock").take();
        let Some(task) = task else {
            return Ok(()); // already shut down
        };
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Request::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
        let _ = task.await;
        Ok(())
    }
}

impl<C: Core> Drop for Node<C> {
    fn drop(&mut self) {
        // A node dropped without shutdown: stop its driver so it does not
        // outlive its handle (files are closed when the task ends).
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }
}
