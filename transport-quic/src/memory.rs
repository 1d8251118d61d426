//! An in-memory [`Transport`] over tokio channels, for fast runtime tests.
//!
//! ```no_run
//! # async fn example() {
//! use consensus_api::Transport;
//! use transport_quic::memory::MemoryNetwork;
//! # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping;
//! # impl std::fmt::Display for Ping { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("Ping") } }
//! # impl consensus_api::ProtocolMessage for Ping {}
//! let network = MemoryNetwork::new();
//! let one = network.endpoint::<Ping>(1);
//! let two = network.endpoint::<Ping>(2);
//! one.send(2, Ping).unwrap();
//! let event = two.recv().await;
//! network.faults().cut(1, 2); // partition 1 and 2
//! # }
//! ```
//!
//! It keeps the [`Transport`] contract: per-link order, `send` never blocks,
//! a bounded inbox per endpoint (`QueueFull` when it is full), messages to an
//! endpoint that does not exist (not started, shut down) are dropped. Each
//! endpoint is told `PeerConnected` for every other endpoint of the same
//! message type when either starts, and `PeerDisconnected` when one shuts
//! down; endpoints of different message types share nothing (a raft node
//! never hears a zab node). Messages are moved, not encoded.
//!
//! Faults come from the network's [`FaultController`] with the same rules
//! as the QUIC transport (block / partition / isolate at both ends, random
//! drops on send, delays on receive). Bulk stalls do not apply: there are no
//! streams.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use consensus_api::{NodeId, ProtocolMessage, Transport, TransportError, TransportEvent};
use tokio::sync::{mpsc, watch};

use crate::fault::{DelayLine, FaultController};

/// Default inbox capacity of an endpoint, in messages.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

struct Endpoint<M> {
    id: NodeId,
    tx: mpsc::Sender<TransportEvent<M>>,
    closed: watch::Sender<bool>,
}

impl<M> Endpoint<M> {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

type AnyEndpoint = Arc<dyn Any + Send + Sync>;

struct NetworkInner {
    endpoints: Mutex<BTreeMap<NodeId, AnyEndpoint>>,
    faults: FaultController,
    capacity: usize,
}

impl NetworkInner {
    fn lookup<M: ProtocolMessage>(&self, id: NodeId) -> Option<Arc<Endpoint<M>>> {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        endpoints
            .get(&id)
            .and_then(|endpoint| endpoint.clone().downcast::<Endpoint<M>>().ok())
            .filter(|endpoint| !endpoint.is_closed())
    }

    fn live<M: ProtocolMessage>(&self) -> Vec<Arc<Endpoint<M>>> {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        endpoints
            .values()
            .filter_map(|endpoint| endpoint.clone().downcast::<Endpoint<M>>().ok())
            .filter(|endpoint| !endpoint.is_closed())
            .collect()
    }
}

/// A set of in-memory endpoints that can reach each other.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<NetworkInner>,
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f.debug_struct("MemoryNetwork")
            .field("nodes", &endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MemoryNetwork {
    /// An empty network without faults.
    pub fn new() -> Self {
        Self::with_faults(FaultController::new(), DEFAULT_QUEUE_CAPACITY)
    }

    /// A network consulting `faults`, with inboxes of `capacity` messages.
    pub fn with_faults(faults: FaultController, capacity: usize) -> Self {
        MemoryNetwork {
            inner: Arc::new(NetworkInner {
                endpoints: Mutex::new(BTreeMap::new()),
                faults,
                capacity: capacity.max(1),
            }),
        }
    }

    /// The fault rules of this network.
    pub fn faults(&self) -> &FaultController {
        &self.inner.faults
    }

    /// Starts endpoint `id` (restarts it: an earlier endpoint with this id
    /// is closed, as if its node had crashed).
    pub fn endpoint<M: ProtocolMessage>(&self, id: NodeId) -> MemoryTransport<M> {
        let (tx, rx) = mpsc::channel(self.inner.capacity);
        let endpoint = Arc::new(Endpoint {
            id,
            tx,
            closed: watch::channel(false).0,
        });
        let previous = {
            let mut endpoints = self
                .inner
                .endpoints
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            endpoints.insert(id, endpoint.clone() as AnyEndpoint)
        };
        if let Some(previous) = previous.and_then(|p| p.downcast::<Endpoint<M>>().ok()) {
            previous.closed.send_replace(true);
        }
        for other in self.inner.live::<M>() {
            if other.id != id {
                let _ = other.tx.try_send(TransportEvent::PeerConnected(id));
                let _ = endpoint
                    .tx
                    .try_send(TransportEvent::PeerConnected(other.id));
            }
        }
        MemoryTransport {
            network: self.inner.clone(),
            me: endpoint,
            rx: tokio::sync::Mutex::new(rx),
            delays: Mutex::new(BTreeMap::new()),
        }
    }
}

/// One node's endpoint on a [`MemoryNetwork`].
pub struct MemoryTransport<M: ProtocolMessage> {
    network: Arc<NetworkInner>,
    me: Arc<Endpoint<M>>,
    rx: tokio::sync::Mutex<mpsc::Receiver<TransportEvent<M>>>,
    delays: Mutex<BTreeMap<NodeId, DelayLine<Delayed<M>>>>,
}

/// A message waiting on a delayed link, with the endpoint it goes to.
type Delayed<M> = (Arc<Endpoint<M>>, TransportEvent<M>);

impl<M: ProtocolMessage> std::fmt::Debug for MemoryTransport<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("node_id", &self.me.id)
            .finish()
    }
}

impl<M: ProtocolMessage> MemoryTransport<M> {
    /// This endpoint's node id.
    pub fn node_id(&self) -> NodeId {
        self.me.id
    }

    /// The fault rules of the network.
    pub fn faults(&self) -> &FaultController {
        &self.network.faults
    }

    fn close(&self) {
        if self.me.closed.send_replace(true) {
            return;
        }
        {
            let mut endpoints = self
                .network
                .endpoints
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let ours = endpoints
                .get(&self.me.id)
                .is_some_and(|e| Arc::ptr_eq(e, &(self.me.clone() as AnyEndpoint)));
            if ours {
                endpoints.remove(&self.me.id);
            }
        }
        for other in self.network.live::<M>() {
            let _ = other
                .tx
                .try_send(TransportEvent::PeerDisconnected(self.me.id));
        }
    }
}

#[async_trait]
impl<M: ProtocolMessage> Transport<M> for MemoryTransport<M> {
    fn send(&self, to: NodeId, message: M) -> Result<(), TransportError> {
        let from = self.me.id;
        if self.me.is_closed() {
            return Err(TransportError::Closed);
        }
        if to == from {
            return Err(TransportError::UnknownPeer(to));
        }
        let faults = &self.network.faults;
        if !faults.allow_send(from, to) {
            return Ok(());
        }
        let Some(target) = self.network.lookup::<M>(to) else {
            return Ok(()); // unreachable: dropped, like a lost packet
        };
        let Some(delay) = faults.on_receive(from, to) else {
            return Ok(());
        };
        let event = TransportEvent::Message { from, message };
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let line_idle = delays.get(&to).is_none_or(|line| line.is_idle());
        if delay.is_zero() && line_idle {
            return match target.tx.try_send(event) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(TransportError::QueueFull(to)),
                Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            };
        }
        let line = delays.entry(to).or_insert_with(|| {
            DelayLine::spawn(|(target, event): Delayed<M>| async move {
                let _ = target.tx.try_send(event);
                true
            })
        });
        line.push(delay, (target, event));
        Ok(())
    }

    async fn recv(&self) -> Option<TransportEvent<M>> {
        let mut closed = self.me.closed.subscribe();
        let mut rx = self.rx.lock().await;
        if *closed.borrow_and_update() {
            return None;
        }
        tokio::select! {
            event = rx.recv() => event,
            _ = closed.wait_for(|closed| *closed) => None,
        }
    }

    async fn shutdown(&self) {
        self.close();
    }
}

impl<M: ProtocolMessage> Drop for MemoryTransport<M> {
    fn drop(&mut self) {
        self.close();
    }
}
