//! [`QuicTransport`]: the public handle, the peer table and the accept loop.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use consensus_api::{NodeId, ProtocolMessage, Transport, TransportError, TransportEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Backoff, ClusterId, Limits, QuicConfig, SetupError, Timeouts};
use crate::fault::FaultController;
use crate::peer::{self, Peer};
use crate::stats::{bump, ErrorRecord, Stats, TransportStats};
use crate::tls::{self, Members};
use crate::wire::{CloseCode, Hello, HELLO_MAGIC};

/// A batch of events, as produced by one read of a stream.
pub(crate) type EventBatch<M> = Vec<TransportEvent<M>>;

/// What every task of one transport shares.
pub(crate) struct Shared<M> {
    pub id: NodeId,
    pub cluster: ClusterId,
    pub hello: Hello,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub backoff: Backoff,
    /// Taken out (and dropped) at shutdown, which releases the UDP port.
    endpoint: Mutex<Option<quinn::Endpoint>>,
    pub client_config: quinn::ClientConfig,
    pub members: Members,
    pub peers: RwLock<BTreeMap<NodeId, Arc<Peer>>>,
    pub events: mpsc::Sender<EventBatch<M>>,
    pub faults: FaultController,
    pub stats: Arc<Stats>,
    /// Set once `shutdown` starts: no new sends, writers drain and finish.
    pub closing: AtomicBool,
    pub shutdown: watch::Sender<bool>,
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    _message: PhantomData<fn() -> M>,
}

impl<M: ProtocolMessage> Shared<M> {
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The QUIC endpoint, until shutdown.
    pub fn endpoint(&self) -> Option<quinn::Endpoint> {
        let endpoint = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        endpoint.clone()
    }

    fn take_endpoint(&self) -> Option<quinn::Endpoint> {
        let mut endpoint = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        endpoint.take()
    }

    pub fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers.get(&id).cloned()
    }

    /// Sends a connection event to the consumer (skipped while shutting
    /// down, so a consumer that stopped reading cannot hold up shutdown).
    pub async fn emit(&self, event: TransportEvent<M>) {
        if !self.is_closing() {
            let _ = self.events.send(vec![event]).await;
        }
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|task| !task.is_finished());
        tasks.push(task);
    }

    fn start_peer(self: &Arc<Self>, id: NodeId, addr: SocketAddr) {
        let (peer, inbound) = Peer::new(id, addr);
        let peer = Arc::new(peer);
        {
            let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
            peers.insert(id, peer.clone());
        }
        self.members.insert(id);
        let task = tokio::spawn(peer::run(self.clone(), peer, inbound));
        self.track(task);
    }
}

/// The [`Transport`] over QUIC. See the crate documentation for the wire
/// format, the connection rules and the certificate layout.
///
/// Create it with [`QuicTransport::bind`] inside a tokio runtime. Dropping it
/// without [`shutdown`](Transport::shutdown) closes every connection at once
/// (queued frames are lost).
pub struct QuicTransport<M: ProtocolMessage> {
    shared: Arc<Shared<M>>,
    /// The receiving end of the event channel (one consumer).
    inbox: tokio::sync::Mutex<mpsc::Receiver<EventBatch<M>>>,
    /// Events of the last batch taken from the channel, not yet returned.
    buffered: Mutex<VecDeque<TransportEvent<M>>>,
    local_addr: SocketAddr,
}

impl<M: ProtocolMessage> std::fmt::Debug for QuicTransport<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("node_id", &self.shared.id)
            .field("local_addr", &self.local_addr)
            .field("cluster", &self.shared.cluster)
            .field("protocol", &self.shared.hello.protocol)
            .finish()
    }
}

fn transport_config(timeouts: &Timeouts) -> Result<Arc<quinn::TransportConfig>, SetupError> {
    let mut config = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(timeouts.idle)
        .map_err(|e| SetupError::InvalidConfig(format!("idle timeout: {e}")))?;
    config
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(timeouts.keep_alive))
        .initial_rtt(timeouts.initial_rtt)
        // One control stream per connection, opened by the dialer.
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
        // Bulk streams: one per batch of bulk messages.
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(64))
        .datagram_receive_buffer_size(None);
    // Congestion control stays quinn's default (Cubic) and GSO stays on
    // (quinn's default `enable_segmentation_offload(true)`).
    Ok(Arc::new(config))
}

impl<M: ProtocolMessage> QuicTransport<M> {
    /// Binds the UDP socket, starts accepting, and starts one connection
    /// task per configured peer (the lower node id of a pair dials).
    pub fn bind(config: QuicConfig) -> Result<Self, SetupError> {
        config.validate()?;
        tls::check_own_identity(&config.tls, &config.cluster_id, config.node_id)?;
        let stats = Arc::new(Stats::default());
        let members = Members::new(config.peers.keys().copied());
        let transport = transport_config(&config.timeouts)?;
        let server_config = tls::server_config(
            &config.tls,
            &config.cluster_id,
            members.clone(),
            transport.clone(),
        )?;
        let client_config = tls::client_config(&config.tls, transport)?;
        let endpoint_config = tls::endpoint_config(&config.tls)?;
        let socket = UdpSocket::bind(config.bind).map_err(|source| SetupError::Bind {
            addr: config.bind,
            source,
        })?;
        let runtime = quinn::default_runtime().ok_or_else(|| {
            SetupError::InvalidConfig("QuicTransport::bind must run inside a tokio runtime".into())
        })?;
        let endpoint = quinn::Endpoint::new(endpoint_config, Some(server_config), socket, runtime)
            .map_err(|source| SetupError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = endpoint.local_addr().map_err(|source| SetupError::Bind {
            addr: config.bind,
            source,
        })?;
        let (events, rx) = mpsc::channel(config.limits.inbound_batches);
        let shared = Arc::new(Shared {
            id: config.node_id,
            cluster: config.cluster_id.clone(),
            hello: Hello {
                magic: HELLO_MAGIC,
                wire_version: config.wire_version,
                cluster_id: config.cluster_id.to_string(),
                protocol: config.protocol.clone(),
                node_id: config.node_id,
            },
            limits: config.limits.clone(),
            timeouts: config.timeouts.clone(),
            backoff: config.backoff.clone(),
            endpoint: Mutex::new(Some(endpoint)),
            client_config,
            members,
            peers: RwLock::new(BTreeMap::new()),
            events,
            faults: config.faults.clone(),
            stats,
            closing: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            _message: PhantomData,
        });
        for (&id, &addr) in &config.peers {
            shared.start_peer(id, addr);
        }
        let accept = tokio::spawn(peer::accept_loop(shared.clone()));
        shared.track(accept);
        tracing::info!(
            node = config.node_id,
            %local_addr,
            cluster = %config.cluster_id,
            protocol = %config.protocol,
            peers = ?config.peers,
            "QUIC transport listening"
        );
        Ok(QuicTransport {
            shared,
            inbox: tokio::sync::Mutex::new(rx),
            buffered: Mutex::new(VecDeque::new()),
            local_addr,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.shared.id
    }

    /// Adds a peer (membership change), or moves a known peer to a new
    /// address (its connection is then re-established). Its certificate is
    /// accepted from now on.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        if self.shared.is_closing() {
            return Err(TransportError::Closed);
        }
        if id == self.shared.id {
            return Err(TransportError::UnknownPeer(id));
        }
        match self.shared.peer(id) {
            Some(peer) => {
                peer.set_addr(addr);
                Ok(())
            }
            None => {
                self.shared.start_peer(id, addr);
                Ok(())
            }
        }
    }

    /// Removes a peer (membership change): its connection is closed, queued
    /// messages are dropped and its certificate is refused from now on.
    pub fn remove_peer(&self, id: NodeId) -> Result<(), TransportError> {
        self.shared.members.remove(id);
        let removed = {
            let mut peers = self.shared.peers.write().unwrap_or_else(|e| e.into_inner());
            peers.remove(&id)
        };
        match removed {
            Some(peer) => {
                peer.remove();
                Ok(())
            }
            None => Err(TransportError::UnknownPeer(id)),
        }
    }

    /// The peers and their addresses.
    pub fn peers(&self) -> BTreeMap<NodeId, SocketAddr> {
        let peers = self.shared.peers.read().unwrap_or_else(|e| e.into_inner());
        peers.iter().map(|(&id, peer)| (id, peer.addr())).collect()
    }

    /// Whether a connection to `id` is up (handshake done).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.shared.peer(id).is_some_and(|peer| peer.is_connected())
    }

    /// The fault-injection handle this transport consults.
    pub fn faults(&self) -> &FaultController {
        &self.shared.faults
    }

    /// Counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot()
    }

    /// The most recent connection errors (oldest first, at most 64).
    pub fn recent_errors(&self) -> Vec<ErrorRecord> {
        self.shared.stats.recent_errors()
    }

    fn buffered_event(&self) -> Option<TransportEvent<M>> {
        let mut buffered = self.buffered.lock().unwrap_or_else(|e| e.into_inner());
        buffered.pop_front()
    }

    fn buffer(&self, batch: EventBatch<M>) {
        let mut buffered = self.buffered.lock().unwrap_or_else(|e| e.into_inner());
        buffered.extend(batch);
    }

    fn stop_now(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.shutdown.send_replace(true);
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        if let Some(endpoint) = self.shared.take_endpoint() {
            endpoint.close(CloseCode::Shutdown.code(), b"node shut down");
        }
    }
}

#[async_trait]
impl<M: ProtocolMessage> Transport<M> for QuicTransport<M> {
    fn send(&self, to: NodeId, message: M) -> Result<(), TransportError> {
        let shared = &self.shared;
        if shared.is_closing() {
            return Err(TransportError::Closed);
        }
        let peers = shared.peers.read().unwrap_or_else(|e| e.into_inner());
        let Some(peer) = peers.get(&to) else {
            return Err(TransportError::UnknownPeer(to));
        };
        if !shared.faults.allow_send(shared.id, to) {
            bump(&shared.stats.fault_drops, 1);
            return Ok(());
        }
        let result = peer.enqueue(&message, &shared.limits);
        if let Err(TransportError::QueueFull(_)) = result {
            bump(&shared.stats.queue_full, 1);
        }
        result.map_err(|error| match error {
            TransportError::QueueFull(_) => TransportError::QueueFull(to),
            other => other,
        })
    }

    async fn recv(&self) -> Option<TransportEvent<M>> {
        // Fast path without any await: an event is already buffered.
        if self.shared.is_closing() {
            return None;
        }
        if let Some(event) = self.buffered_event() {
            return Some(event);
        }
        let mut rx = self.inbox.lock().await;
        loop {
            if self.shared.is_closing() {
                return None;
            }
            if let Some(event) = self.buffered_event() {
                return Some(event);
            }
            match rx.try_recv() {
                Ok(batch) => self.buffer(batch),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            if *shutdown.borrow_and_update() {
                return None;
            }
            if let Some(event) = self.buffered_event() {
                return Some(event);
            }
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => self.buffer(batch),
                    None => return None,
                },
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn shutdown(&self) {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let started = tokio::time::Instant::now();
        self.shared.shutdown.send_replace(true);
        let peers: Vec<Arc<Peer>> = {
            let peers = self.shared.peers.read().unwrap_or_else(|e| e.into_inner());
            peers.values().cloned().collect()
        };
        for peer in &peers {
            peer.wake_writers();
        }
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = started + self.shared.timeouts.shutdown;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        if let Some(endpoint) = self.shared.take_endpoint() {
            endpoint.close(CloseCode::Shutdown.code(), b"node shut down");
            // Let the CONNECTION_CLOSE frames go out and closed connections
            // drain, then drop the endpoint: its driver task releases the UDP
            // socket. Wait (bounded) until the port can be bound again, so a
            // node can be restarted on the same address at once.
            let deadline = deadline.max(tokio::time::Instant::now() + Duration::from_millis(500));
            let _ = tokio::time::timeout_at(deadline, endpoint.wait_idle()).await;
            drop(endpoint);
            while UdpSocket::bind(self.local_addr).is_err()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        tracing::info!(
            node = self.shared.id,
            elapsed = ?started.elapsed(),
            "QUIC transport shut down"
        );
    }
}

impl<M: ProtocolMessage> Drop for QuicTransport<M> {
    fn drop(&mut self) {
        self.stop_now();
    }
}
