//! One peer: its outgoing queue, and the task that keeps one connection to
//! it alive (dial or accept, handshake, run, reconnect with backoff).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use consensus_api::{MessageClass, NodeId, ProtocolMessage, TransportError, TransportEvent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::Limits;
use crate::connection;
use crate::stats::bump;
use crate::tls::{certificate_node_id, node_dns_name};
use crate::transport::Shared;
use crate::wire::{
    decode_payload, encode_frame, encode_frame_into, CloseCode, FrameDecoder, Hello,
    HELLO_MAX_BYTES,
};

/// Frames waiting to be written to one peer.
#[derive(Default)]
struct Outbox {
    /// Control frames, already encoded back to back: one write sends them all.
    control: BytesMut,
    control_messages: usize,
    /// Bulk frames, one buffer each (shared, never copied again).
    bulk: VecDeque<Bytes>,
    bulk_bytes: usize,
}

impl Outbox {
    fn has_room(&self, limits: &Limits) -> bool {
        self.control_messages + self.bulk.len() < limits.queue_max_messages
            && self.control.len() + self.bulk_bytes < limits.queue_max_bytes
    }
}

/// A connection whose TLS and transport handshakes are done.
pub(crate) struct Established {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    /// Holds any bytes that followed the peer's handshake frame.
    pub decoder: FrameDecoder,
}

/// Shared state of one peer.
pub(crate) struct Peer {
    pub id: NodeId,
    addr: watch::Sender<SocketAddr>,
    queue: Mutex<Outbox>,
    pub control_ready: Notify,
    pub bulk_ready: Notify,
    inbound: mpsc::Sender<Established>,
    removed: watch::Sender<bool>,
    connected: AtomicBool,
}

impl Peer {
    pub fn new(id: NodeId, addr: SocketAddr) -> (Peer, mpsc::Receiver<Established>) {
        let (inbound, inbound_rx) = mpsc::channel(2);
        let peer = Peer {
            id,
            addr: watch::channel(addr).0,
            queue: Mutex::new(Outbox::default()),
            control_ready: Notify::new(),
            bulk_ready: Notify::new(),
            inbound,
            removed: watch::channel(false).0,
            connected: AtomicBool::new(false),
        };
        (peer, inbound_rx)
    }

    pub fn addr(&self) -> SocketAddr {
        *self.addr.borrow()
    }

    pub fn set_addr(&self, addr: SocketAddr) {
        self.addr.send_if_modified(|current| {
            let changed = *current != addr;
            *current = addr;
            changed
        });
    }

    pub fn remove(&self) {
        self.removed.send_replace(true);
        self.wake_writers();
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn wake_writers(&self) {
        self.control_ready.notify_one();
        self.bulk_ready.notify_one();
    }

    /// Encodes `message` into this peer's queue.
    pub fn enqueue<M: ProtocolMessage>(
        &self,
        message: &M,
        limits: &Limits,
    ) -> Result<(), TransportError> {
        match message.class() {
            MessageClass::Control => {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !queue.has_room(limits) {
                    return Err(TransportError::QueueFull(self.id));
                }
                let was_empty = queue.control.is_empty();
                encode_frame_into(&mut queue.control, message, limits.max_frame_bytes)?;
                queue.control_messages += 1;
                drop(queue);
                if was_empty {
                    self.control_ready.notify_one();
                }
            }
            MessageClass::Bulk => {
                // Encoded outside the lock: bulk messages are large.
                let frame = encode_frame(message, limits.max_frame_bytes)?;
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if !queue.has_room(limits) {
                    return Err(TransportError::QueueFull(self.id));
                }
                let was_empty = queue.bulk.is_empty();
                queue.bulk_bytes += frame.len();
                queue.bulk.push_back(frame);
                drop(queue);
                if was_empty {
                    self.bulk_ready.notify_one();
                }
            }
        }
        Ok(())
    }

    /// Takes every queued control frame as one buffer.
    pub fn take_control(&self) -> Option<(Bytes, usize)> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.control.is_empty() {
            return None;
        }
        let count = std::mem::take(&mut queue.control_messages);
        Some((queue.control.split().freeze(), count))
    }

    /// Takes every queued bulk frame.
    pub fn take_bulk(&self) -> Vec<Bytes> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.bulk_bytes = 0;
        queue.bulk.drain(..).collect()
    }

    /// Drops everything queued (the connection it was meant for is gone).
    fn clear(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        *queue = Outbox::default();
    }
}

/// Turns a quinn connection error into a transport error.
pub(crate) fn classify(error: quinn::ConnectionError) -> TransportError {
    use quinn::ConnectionError as E;
    let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match error {
        E::TransportError(error) if is_crypto(error.code) => TransportError::Tls(error.to_string()),
        E::ConnectionClosed(close) if is_crypto(close.error_code) => {
            TransportError::Tls(format!("the peer refused the TLS handshake: {close}"))
        }
        E::ApplicationClosed(close) => {
            let code = CloseCode::from_code(close.error_code)
                .map(|code| format!("{code:?}"))
                .unwrap_or_else(|| close.error_code.to_string());
            TransportError::Connection(format!(
                "closed by the peer ({code}): {}",
                String::from_utf8_lossy(&close.reason)
            ))
        }
        other => TransportError::Connection(other.to_string()),
    }
}

/// Reads the peer's handshake frame from the control stream.
async fn read_hello(
    recv: &mut quinn::RecvStream,
    decoder: &mut FrameDecoder,
) -> Result<Hello, TransportError> {
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return decode_payload::<Hello>(&frame)
                .map_err(|e| TransportError::Decode(format!("handshake frame: {e}")));
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => decoder.push(&chunk.bytes),
            Ok(None) => {
                return Err(TransportError::Connection(
                    "control stream ended before the handshake".into(),
                ))
            }
            Err(quinn::ReadError::ConnectionLost(error)) => return Err(classify(error)),
            Err(error) => return Err(TransportError::Connection(error.to_string())),
        }
    }
}

/// Closes `conn` because of `error`, with the matching code and the error
/// text as reason.
pub(crate) fn close_for(conn: &quinn::Connection, error: &TransportError) {
    let reason = error.to_string();
    let reason = &reason.as_bytes()[..reason.len().min(512)];
    conn.close(CloseCode::for_error(error).code(), reason);
}

pub(crate) fn write_error(error: quinn::WriteError) -> TransportError {
    match error {
        quinn::WriteError::ConnectionLost(error) => classify(error),
        other => TransportError::Connection(other.to_string()),
    }
}

/// Dials `peer` and runs both handshakes.
async fn dial<M: ProtocolMessage>(
    shared: &Shared<M>,
    peer: &Peer,
) -> Result<Established, TransportError> {
    bump(&shared.stats.dial_attempts, 1);
    let addr = peer.addr();
    let name = node_dns_name(&shared.cluster, peer.id);
    let endpoint = shared.endpoint().ok_or(TransportError::Closed)?;
    let connecting = endpoint
        .connect_with(shared.client_config.clone(), addr, &name)
        .map_err(|e| TransportError::Connection(format!("cannot dial {addr}: {e}")))?;
    let handshake = async {
        // The peer must answer within one attempt; a peer that is down (or
        // restarting) is dialed again after the backoff, not reached by a
        // QUIC retransmission seconds later.
        let conn = match tokio::time::timeout(shared.timeouts.dial_attempt, connecting).await {
            Ok(connected) => connected.map_err(classify)?,
            Err(_) => {
                return Err(TransportError::Connection(format!(
                    "no answer from {addr} within {:?}",
                    shared.timeouts.dial_attempt
                )))
            }
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(classify)?;
        let _ = send.set_priority(1);
        let hello = encode_frame(&shared.hello, HELLO_MAX_BYTES)?;
        send.write_chunk(hello).await.map_err(write_error)?;
        let mut decoder = FrameDecoder::new(HELLO_MAX_BYTES);
        let result = match read_hello(&mut recv, &mut decoder).await {
            Ok(theirs) => theirs.check(&shared.hello, peer.id),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            if !matches!(
                error,
                TransportError::Connection(_) | TransportError::Tls(_)
            ) {
                close_for(&conn, &error);
            }
            return Err(error);
        }
        decoder.set_max(shared.limits.max_frame_bytes);
        Ok(Established {
            conn,
            send,
            recv,
            decoder,
        })
    };
    match tokio::time::timeout(shared.timeouts.handshake, handshake).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::Connection(format!(
            "no connection to {addr} within {:?}",
            shared.timeouts.handshake
        ))),
    }
}

/// Accepts connections until shutdown; each is handshaken in its own task.
pub(crate) async fn accept_loop<M: ProtocolMessage>(shared: Arc<Shared<M>>) {
    let mut shutdown = shared.shutdown.subscribe();
    let Some(endpoint) = shared.endpoint() else {
        return;
    };
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    tokio::spawn(handle_incoming(shared.clone(), incoming));
                }
                None => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn handle_incoming<M: ProtocolMessage>(shared: Arc<Shared<M>>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let handshake = async {
        let conn = incoming.await.map_err(|e| (None, classify(e)))?;
        let peer_id = conn
            .peer_identity()
            .and_then(|identity| {
                identity
                    .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .and_then(|chain| {
                chain
                    .first()
                    .map(|cert| certificate_node_id(cert, &shared.cluster))
            })
            .unwrap_or_else(|| Err("no client certificate".into()))
            .map_err(|reason| {
                let error = TransportError::Tls(reason);
                close_for(&conn, &error);
                (None, error)
            })?;
        let fail = |error: TransportError| {
            close_for(&conn, &error);
            (Some(peer_id), error)
        };
        let Some(peer) = shared.peer(peer_id) else {
            return Err(fail(TransportError::UnknownPeer(peer_id)));
        };
        let (mut send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| (Some(peer_id), classify(e)))?;
        let _ = send.set_priority(1);
        let mut decoder = FrameDecoder::new(HELLO_MAX_BYTES);
        let theirs = read_hello(&mut recv, &mut decoder).await.map_err(fail)?;
        let ours = encode_frame(&shared.hello, HELLO_MAX_BYTES).map_err(fail)?;
        send.write_chunk(ours)
            .await
            .map_err(|e| fail(write_error(e)))?;
        if let Err(error) = theirs.check(&shared.hello, peer_id) {
            // Let our handshake frame reach the dialer so that it can tell
            // its operator what differs, then close.
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
            return Err(fail(error));
        }
        decoder.set_max(shared.limits.max_frame_bytes);
        Ok((
            peer,
            Established {
                conn,
                send,
                recv,
                decoder,
            },
        ))
    };
    match tokio::time::timeout(shared.timeouts.handshake, handshake).await {
        Ok(Ok((peer, established))) => {
            if let Err(error) = peer.inbound.try_send(established) {
                let established = match error {
                    mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
                };
                established.conn.close(
                    CloseCode::Superseded.code(),
                    b"too many pending connections",
                );
            }
        }
        Ok(Err((peer, error))) => {
            report_failure(
                &shared,
                peer,
                &error,
                remote,
                "refused an incoming connection",
            );
        }
        Err(_) => {
            let error = TransportError::Connection(format!(
                "incoming connection from {remote} did not finish its handshake within {:?}",
                shared.timeouts.handshake
            ));
            report_failure(
                &shared,
                None,
                &error,
                remote,
                "refused an incoming connection",
            );
        }
    }
}

fn report_failure<M: ProtocolMessage>(
    shared: &Shared<M>,
    peer: Option<NodeId>,
    error: &TransportError,
    remote: SocketAddr,
    what: &'static str,
) {
    match error {
        TransportError::Connection(_) => {
            tracing::debug!(node = shared.id, ?peer, %remote, %error, "{what}");
        }
        _ => {
            tracing::warn!(node = shared.id, ?peer, %remote, %error, "{what}");
        }
    }
    shared.stats.record(peer, error.clone());
}

/// How a connection ended.
pub(crate) enum Ended {
    /// It failed or the peer closed it.
    Failed(TransportError),
    /// A newer connection from the peer replaces it.
    Replaced(Established),
    /// The peer's address changed; redial.
    Moved,
    /// The peer was removed from the table.
    Removed,
    /// The transport shut down (after draining).
    Shutdown,
}

fn jittered(rng: &mut ChaCha8Rng, ceiling: Duration) -> Duration {
    let ceiling = ceiling.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rng.random_range(ceiling / 2..=ceiling.max(1)))
}

/// The task that owns the connection to one peer for the transport's life.
pub(crate) async fn run<M: ProtocolMessage>(
    shared: Arc<Shared<M>>,
    peer: Arc<Peer>,
    mut inbound: mpsc::Receiver<Established>,
) {
    let dialer = shared.id < peer.id;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ shared.id.rotate_left(32)
        ^ peer.id;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shutdown = shared.shutdown.subscribe();
    let mut removed = peer.removed.subscribe();
    let mut addr_changes = peer.addr.subscribe();
    let mut failures: u32 = 0;
    let mut last_failure: Option<String> = None;
    let mut next: Option<Established> = None;
    loop {
        if *shutdown.borrow() || *removed.borrow() {
            return;
        }
        let established = match next.take() {
            Some(established) => established,
            None if dialer => {
                let result = tokio::select! {
                    result = dial(&shared, &peer) => result,
                    established = inbound.recv() => match established {
                        Some(established) => Ok(established),
                        None => return,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = removed.wait_for(|gone| *gone) => return,
                };
                match result {
                    Ok(established) => established,
                    Err(error) => {
                        bump(&shared.stats.dial_failures, 1);
                        // Log a failure once per streak (and when it changes),
                        // not on every retry.
                        let text = error.to_string();
                        if last_failure.as_deref() != Some(text.as_str()) {
                            report_failure(
                                &shared,
                                Some(peer.id),
                                &error,
                                peer.addr(),
                                "dial failed",
                            );
                            last_failure = Some(text);
                        } else {
                            tracing::debug!(node = shared.id, peer = peer.id, %error, "dial failed again");
                            shared.stats.record(Some(peer.id), error);
                        }
                        let delay = jittered(&mut rng, shared.backoff.ceiling(failures));
                        failures = failures.saturating_add(1);
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            established = inbound.recv() => next = established,
                            _ = addr_changes.changed() => {}
                            _ = shutdown.wait_for(|stop| *stop) => return,
                            _ = removed.wait_for(|gone| *gone) => return,
                        }
                        continue;
                    }
                }
            }
            None => {
                tokio::select! {
                    established = inbound.recv() => match established {
                        Some(established) => established,
                        None => return,
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = removed.wait_for(|gone| *gone) => return,
                }
            }
        };
        failures = 0;
        last_failure = None;
        bump(&shared.stats.connections_established, 1);
        peer.connected.store(true, Ordering::Release);
        tracing::info!(
            node = shared.id,
            peer = peer.id,
            remote = %established.conn.remote_address(),
            "connected"
        );
        shared.emit(TransportEvent::PeerConnected(peer.id)).await;
        addr_changes.borrow_and_update();
        let conn = established.conn.clone();
        let ended = connection::run(
            &shared,
            &peer,
            established,
            &mut inbound,
            &mut removed,
            &mut addr_changes,
            dialer,
        )
        .await;
        peer.connected.store(false, Ordering::Release);
        match &ended {
            Ended::Failed(error) => {
                close_for(&conn, error);
                let level_warn = !matches!(error, TransportError::Connection(_));
                if level_warn {
                    tracing::warn!(node = shared.id, peer = peer.id, %error, "connection closed");
                } else {
                    tracing::info!(node = shared.id, peer = peer.id, %error, "connection lost");
                }
                shared.stats.record(Some(peer.id), error.clone());
                peer.clear();
            }
            Ended::Replaced(_) => {
                conn.close(
                    CloseCode::Superseded.code(),
                    b"replaced by a newer connection",
                );
                tracing::info!(
                    node = shared.id,
                    peer = peer.id,
                    "connection replaced by a newer one"
                );
            }
            Ended::Moved => {
                conn.close(CloseCode::Superseded.code(), b"peer address changed");
            }
            Ended::Removed => {
                conn.close(
                    CloseCode::PeerRemoved.code(),
                    b"removed from the membership",
                );
                peer.clear();
            }
            Ended::Shutdown => {
                conn.close(CloseCode::Shutdown.code(), b"node shut down");
            }
        }
        shared.emit(TransportEvent::PeerDisconnected(peer.id)).await;
        match ended {
            Ended::Replaced(established) => next = Some(established),
            Ended::Removed | Ended::Shutdown => return,
            Ended::Failed(_) | Ended::Moved => {}
        }
    }
}
