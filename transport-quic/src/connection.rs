//! Running one established connection: the control stream in both
//! directions, bulk streams, fault injection on receive, draining on
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use consensus_api::{NodeId, ProtocolMessage, TransportError, TransportEvent};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::fault::DelayLine;
use crate::peer::{classify, write_error, Ended, Established, Peer};
use crate::stats::bump;
use crate::transport::{EventBatch, Shared};
use crate::wire::{decode_payload, FrameDecoder};

/// Runs `established` until it fails, is replaced, the peer is removed or
/// moves, or the transport shuts down (then both writers drain first).
pub(crate) async fn run<M: ProtocolMessage>(
    shared: &Arc<Shared<M>>,
    peer: &Arc<Peer>,
    established: Established,
    inbound: &mut mpsc::Receiver<Established>,
    removed: &mut watch::Receiver<bool>,
    addr_changes: &mut watch::Receiver<SocketAddr>,
    dialer: bool,
) -> Ended {
    let Established {
        conn,
        mut send,
        recv,
        decoder,
    } = established;
    let writers = async {
        tokio::try_join!(
            control_writer(shared, peer, &mut send),
            bulk_writer(shared, peer, &conn)
        )
    };
    let readers = async {
        tokio::try_join!(
            control_reader(shared, peer.id, &conn, recv, decoder),
            bulk_reader(shared, peer.id, &conn)
        )
    };
    tokio::select! {
        result = writers => match result {
            Ok(_) => Ended::Shutdown,
            Err(error) => Ended::Failed(error),
        },
        result = readers => match result {
            // Both readers only return on failure.
            Ok(_) => Ended::Failed(TransportError::Connection("connection ended".into())),
            Err(error) => Ended::Failed(error),
        },
        established = inbound.recv() => match established {
            Some(established) => Ended::Replaced(established),
            None => Ended::Failed(TransportError::Closed),
        },
        _ = removed.wait_for(|gone| *gone) => Ended::Removed,
        _ = addr_changes.changed(), if dialer => Ended::Moved,
    }
}

/// Writes queued control frames, many per write, in order.
async fn control_writer<M: ProtocolMessage>(
    shared: &Shared<M>,
    peer: &Peer,
    send: &mut quinn::SendStream,
) -> Result<(), TransportError> {
    loop {
        if let Some((frames, count)) = peer.take_control() {
            send.write_chunk(frames).await.map_err(write_error)?;
            bump(&shared.stats.frames_sent, count as u64);
            bump(&shared.stats.writes, 1);
            continue;
        }
        if shared.is_closing() {
            // Everything queued is written: finish, and wait until the peer
            // has acknowledged all of it before the connection may close.
            let _ = send.finish();
            return match send.stopped().await {
                Ok(_) => Ok(()),
                Err(quinn::StoppedError::ConnectionLost(error)) => Err(classify(error)),
                Err(error) => Err(TransportError::Connection(error.to_string())),
            };
        }
        peer.control_ready.notified().await;
    }
}

/// Writes queued bulk frames, each batch on its own unidirectional stream.
async fn bulk_writer<M: ProtocolMessage>(
    shared: &Shared<M>,
    peer: &Peer,
    conn: &quinn::Connection,
) -> Result<(), TransportError> {
    let mut unacknowledged = JoinSet::new();
    loop {
        let mut frames = peer.take_bulk();
        if !frames.is_empty() {
            let count = frames.len();
            let mut stream = conn.open_uni().await.map_err(classify)?;
            stream
                .write_all_chunks(&mut frames)
                .await
                .map_err(write_error)?;
            let _ = stream.finish();
            unacknowledged.spawn(stream.stopped());
            while unacknowledged.try_join_next().is_some() {}
            bump(&shared.stats.frames_sent, count as u64);
            bump(&shared.stats.writes, 1);
            continue;
        }
        if shared.is_closing() {
            while unacknowledged.join_next().await.is_some() {}
            return Ok(());
        }
        peer.bulk_ready.notified().await;
    }
}

fn read_error(error: quinn::ReadError) -> TransportError {
    match error {
        quinn::ReadError::ConnectionLost(error) => classify(error),
        other => TransportError::Connection(other.to_string()),
    }
}

/// Received chunks taken per read: everything that has arrived is decoded
/// and handed over as one batch (one channel operation, one wake-up).
const READ_CHUNKS: usize = 64;

/// Hands received messages to the consumer, through the fault layer.
struct Delivery<M: ProtocolMessage> {
    shared: Arc<Shared<M>>,
    from: NodeId,
    delayed: Option<DelayLine<EventBatch<M>>>,
}

impl<M: ProtocolMessage> Delivery<M> {
    fn new(shared: &Arc<Shared<M>>, from: NodeId) -> Self {
        Delivery {
            shared: shared.clone(),
            from,
            delayed: None,
        }
    }

    fn line_idle(&self) -> bool {
        self.delayed.as_ref().is_none_or(|line| line.is_idle())
    }

    async fn deliver(&mut self, batch: EventBatch<M>) -> Result<(), TransportError> {
        let shared = &self.shared;
        let count = batch.len() as u64;
        if !shared.faults.is_active() && self.line_idle() {
            shared
                .events
                .send(batch)
                .await
                .map_err(|_| TransportError::Closed)?;
            bump(&shared.stats.frames_received, count);
            return Ok(());
        }
        for event in batch {
            let Some(delay) = shared.faults.on_receive(self.from, shared.id) else {
                bump(&shared.stats.fault_drops, 1);
                continue;
            };
            bump(&shared.stats.frames_received, 1);
            if delay.is_zero() && self.line_idle() {
                shared
                    .events
                    .send(vec![event])
                    .await
                    .map_err(|_| TransportError::Closed)?;
                continue;
            }
            let line = self.delayed.get_or_insert_with(|| {
                let events = shared.events.clone();
                DelayLine::spawn(move |batch| {
                    let events = events.clone();
                    async move { events.send(batch).await.is_ok() }
                })
            });
            line.push(delay, vec![event]);
        }
        Ok(())
    }
}

/// Decodes every complete frame buffered in `decoder`.
fn decode_all<M: ProtocolMessage>(
    decoder: &mut FrameDecoder,
    from: NodeId,
) -> Result<EventBatch<M>, TransportError> {
    let mut batch = Vec::new();
    while let Some(frame) = decoder.next_frame()? {
        let message = decode_payload::<M>(&frame)?;
        batch.push(TransportEvent::Message { from, message });
    }
    Ok(batch)
}

/// Reads the peer's control stream. Returns only with an error (including
/// the connection closing after the peer finished the stream).
async fn control_reader<M: ProtocolMessage>(
    shared: &Arc<Shared<M>>,
    from: NodeId,
    conn: &quinn::Connection,
    mut recv: quinn::RecvStream,
    mut decoder: FrameDecoder,
) -> Result<(), TransportError> {
    let mut delivery = Delivery::new(shared, from);
    let mut chunks: [Bytes; READ_CHUNKS] = std::array::from_fn(|_| Bytes::new());
    loop {
        let batch = decode_all::<M>(&mut decoder, from)?;
        if !batch.is_empty() {
            delivery.deliver(batch).await?;
        }
        match recv.read_chunks(&mut chunks).await {
            Ok(Some(count)) => chunks[..count].iter().for_each(|chunk| decoder.push(chunk)),
            Ok(None) if decoder.buffered() > 0 => {
                return Err(TransportError::Decode(format!(
                    "control stream ended inside a frame ({} bytes left over)",
                    decoder.buffered()
                )))
            }
            // The peer is draining before it closes the connection.
            Ok(None) => return Err(classify(conn.closed().await)),
            Err(error) => return Err(read_error(error)),
        }
    }
}

/// Reads the peer's bulk streams one after the other (so bulk messages keep
/// their order among themselves). Returns only with an error.
async fn bulk_reader<M: ProtocolMessage>(
    shared: &Arc<Shared<M>>,
    from: NodeId,
    conn: &quinn::Connection,
) -> Result<(), TransportError> {
    let mut delivery = Delivery::new(shared, from);
    let mut chunks: [Bytes; READ_CHUNKS] = std::array::from_fn(|_| Bytes::new());
    loop {
        let mut recv = conn.accept_uni().await.map_err(classify)?;
        let mut decoder = FrameDecoder::new(shared.limits.max_frame_bytes);
        loop {
            let batch = decode_all::<M>(&mut decoder, from)?;
            if !batch.is_empty() {
                delivery.deliver(batch).await?;
            }
            shared.faults.bulk_unstalled(from, shared.id).await;
            match recv.read_chunks(&mut chunks).await {
                Ok(Some(count)) => chunks[..count].iter().for_each(|chunk| decoder.push(chunk)),
                Ok(None) if decoder.buffered() > 0 => {
                    return Err(TransportError::Decode(format!(
                        "bulk stream ended inside a frame ({} bytes left over)",
                        decoder.buffered()
                    )))
                }
                Ok(None) => break,
                // The sender abandoned this stream: its messages are lost
                // (protocols retransmit); the connection carries on.
                Err(quinn::ReadError::Reset(code)) => {
                    tracing::debug!(node = shared.id, peer = from, %code, "bulk stream reset by the peer");
                    break;
                }
                Err(error) => return Err(read_error(error)),
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_proptests.rs"]
mod proptests;
