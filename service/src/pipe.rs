//! The pipelined request/response channel of the client API.
//!
//! A client opens **one long-lived bidirectional stream** per connection
//! (its *pipe*) and sends [frames](crate::frame) on it, each with a request
//! id; many requests are outstanding at once and the server answers each
//! with a frame carrying the same id, in whatever order the answers become
//! ready. Both sides write many frames per stream write. No stream is
//! opened per request.
//!
//! Rules, enforced by [`serve_pipe`]:
//! * request ids increase strictly on a pipe; a reused (or lower) id closes
//!   the connection with [`codes::PROTOCOL_VIOLATION`] — an answer could no
//!   longer be matched to its request;
//! * a frame above the limit, a frame too short for an id, or a stream that
//!   ends inside a frame closes the connection with [`codes::BAD_FRAME`];
//! * at most [`PipeLimits::requests_in_flight_max`] requests are handled at
//!   once per pipe; beyond that the server stops reading it, and QUIC flow
//!   control holds the client back (a busy client slows only itself);
//! * a client that does not read its answers within
//!   [`PipeLimits::write_timeout`] is disconnected with
//!   [`codes::SLOW_READER`]; other clients are never stalled by it.
//!
//! A request the server cannot decode is answered (under its id) by the
//! service's own error reply: that is the service's business, not the
//! pipe's.
//!
//! On the client, [`PipeClient::call`] sends one request and waits for its
//! answer. An answer naming an id that is not outstanding closes the
//! connection with [`codes::PROTOCOL_VIOLATION`]; every outstanding call
//! then fails with [`PipeError::Lost`] (it may have been executed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{join, ready, Join, Ready};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::frame::{encode_frame, FrameDecoder, FrameError};

/// QUIC application error codes with which a pipe closes its connection.
pub mod codes {
    /// Closed normally (shutdown, client finished).
    pub const DONE: u32 = 0;
    /// A reused request id, or an answer to an id that is not outstanding.
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// An oversized, too short or truncated frame.
    pub const BAD_FRAME: u32 = 2;
    /// The peer did not read its answers in time.
    pub const SLOW_READER: u32 = 3;
}

/// Largest chunk taken from a stream in one read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Limits of one pipe.
#[derive(Clone, Debug)]
pub struct PipeLimits {
    /// Largest frame accepted (request id included).
    pub frame_bytes_max: usize,
    /// Requests of one pipe handled at once (server side).
    pub requests_in_flight_max: usize,
    /// How long one write of answers may wait for the peer to read.
    pub write_timeout: Duration,
}

impl Default for PipeLimits {
    fn default() -> Self {
        PipeLimits {
            frame_bytes_max: 8 << 20,
            requests_in_flight_max: 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a pipe ended or a call failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PipeError {
    /// The bytes on the stream are not frames.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer reused a request id (server) or answered an id that was not
    /// outstanding (client).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer did not read its answers within the write timeout.
    #[error("the peer did not read its answers within {0:?}")]
    SlowReader(Duration),
    /// The request was not sent: the pipe was already closed.
    #[error("the connection is closed: {0}")]
    Closed(String),
    /// The connection ended while the request was outstanding: it may have
    /// been executed.
    #[error("the connection was lost with the request outstanding: {0}")]
    Lost(String),
    /// Reading or writing the stream failed.
    #[error("stream: {0}")]
    Stream(String),
}

impl PipeError {
    fn close_code(&self) -> u32 {
        match self {
            PipeError::Frame(_) => codes::BAD_FRAME,
            PipeError::Protocol(_) => codes::PROTOCOL_VIOLATION,
            PipeError::SlowReader(_) => codes::SLOW_READER,
            _ => codes::DONE,
        }
    }
}

/// Serves one pipe (server side): reads requests, runs `handle` on each
/// (up to the in-flight limit at once, all driven by this one task: no task
/// per request), writes the answers in batches. Returns when the client
/// finishes its side and every answer is written, or with the error that
/// closed the connection (the connection is closed with its code).
pub async fn serve_pipe<F, Fut>(
    connection: &quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    limits: &PipeLimits,
    handle: F,
) -> Result<(), PipeError>
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = Bytes>,
{
    let result = serve_pipe_inner(&mut send, &mut recv, limits, handle).await;
    match &result {
        Ok(()) => {
            let _ = send.finish();
        }
        Err(error) => {
            tracing::debug!(%error, "client pipe closed");
            let code = error.close_code();
            if code != codes::DONE {
                connection.close(code.into(), error.to_string().as_bytes());
            }
        }
    }
    result
}

async fn serve_pipe_inner<F, Fut>(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    limits: &PipeLimits,
    handle: F,
) -> Result<(), PipeError>
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = Bytes>,
{
    let mut decoder = FrameDecoder::new(limits.frame_bytes_max);
    // Each request's answer future, tagged with its id (a nameable type, so
    // no box per request).
    let mut in_flight: FuturesUnordered<Join<Ready<u64>, Fut>> = FuturesUnordered::new();
    let mut last_id: Option<u64> = None;
    let mut finished = false;
    let mut out = BytesMut::new();
    loop {
        // Start every request already received, up to the limit; the rest
        // wait in the decoder, and the stream is not read while it is full.
        while in_flight.len() < limits.requests_in_flight_max {
            let Some((id, body)) = decoder.next_frame()? else {
                break;
            };
            if let Some(last) = last_id.filter(|last| id <= *last) {
                return Err(PipeError::Protocol(format!(
                    "request id {id} does not increase (last {last})"
                )));
            }
            last_id = Some(id);
            in_flight.push(join(ready(id), handle(body)));
        }
        tokio::select! {
            biased;
            Some((id, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                encode_frame(&mut out, id, &answer);
                // Every other answer already available goes in the same write.
                while let Some(Some((id, answer))) = in_flight.next().now_or_never() {
                    encode_frame(&mut out, id, &answer);
                }
                write_batch(send, &mut out, limits.write_timeout).await?;
            }
            chunk = recv.read_chunk(READ_CHUNK_BYTES, true),
                if !finished && in_flight.len() < limits.requests_in_flight_max =>
            {
                match chunk {
                    Ok(Some(chunk)) => decoder.extend(&chunk.bytes),
                    Ok(None) => {
                        decoder.finish()?;
                        finished = true;
                    }
                    Err(error) => return Err(PipeError::Stream(error.to_string())),
                }
            }
            else => return Ok(()),
        }
    }
}

async fn write_batch(
    send: &mut quinn::SendStream,
    out: &mut BytesMut,
    timeout: Duration,
) -> Result<(), PipeError> {
    let bytes = out.split().freeze();
    match tokio::time::timeout(timeout, send.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(PipeError::Stream(error.to_string())),
        Err(_) => Err(PipeError::SlowReader(timeout)),
    }
}

type Waiters = Arc<Mutex<PipeState>>;

struct PipeState {
    waiting: HashMap<u64, oneshot::Sender<Bytes>>,
    /// The id the next call gets; every id below it was issued.
    next_id: u64,
    closed: Option<String>,
}

impl PipeState {
    fn close(&mut self, reason: String) {
        if self.closed.is_none() {
            self.closed = Some(reason);
        }
        // Dropping the senders fails every outstanding call.
        self.waiting.clear();
    }
}

fn lock(state: &Waiters) -> std::sync::MutexGuard<'_, PipeState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client side of one pipe: many calls outstanding at once on one
/// connection. Cloning is cheap; every clone shares the pipe.
#[derive(Clone)]
pub struct PipeClient {
    connection: quinn::Connection,
    outgoing: mpsc::UnboundedSender<(u64, Bytes)>,
    state: Waiters,
}

impl PipeClient {
    /// Opens the pipe on `connection` and starts its reader and writer
    /// tasks (two per connection, none per request).
    pub async fn open(
        connection: quinn::Connection,
        frame_bytes_max: usize,
    ) -> Result<PipeClient, PipeError> {
        Self::open_after(connection, frame_bytes_max, Bytes::new()).await
    }

    /// Like [`open`](Self::open), but the stream starts with `preamble`
    /// (written before the first request frame): for a service whose
    /// streams announce what they carry, e.g. a first frame that says
    /// "the rest of this stream is a pipe".
    pub async fn open_after(
        connection: quinn::Connection,
        frame_bytes_max: usize,
        preamble: Bytes,
    ) -> Result<PipeClient, PipeError> {
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| PipeError::Closed(e.to_string()))?;
        let state: Waiters = Arc::new(Mutex::new(PipeState {
            waiting: HashMap::new(),
            next_id: 1,
            closed: None,
        }));
        let (outgoing, queue) = mpsc::unbounded_channel();
        tokio::spawn(client_writer(
            connection.clone(),
            send,
            preamble,
            queue,
            state.clone(),
        ));
        tokio::spawn(client_reader(
            connection.clone(),
            recv,
            frame_bytes_max,
            state.clone(),
        ));
        Ok(PipeClient {
            connection,
            outgoing,
            state,
        })
    }

    /// True once the pipe can carry no more calls.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed.is_some() || self.connection.close_reason().is_some()
    }

    /// The connection under the pipe.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Sends `request` and waits for its answer. Dropping the future
    /// abandons the call (its answer is discarded when it arrives).
    pub async fn call(&self, request: Bytes) -> Result<Bytes, PipeError> {
        let (answer, waiting) = oneshot::channel();
        let id = {
            let mut state = lock(&self.state);
            if let Some(reason) = &state.closed {
                return Err(PipeError::Closed(reason.clone()));
            }
            let id = state.next_id;
            // Queued under the same lock that hands out the id: ids must
            // reach the wire in increasing order (the server closes a pipe
            // whose ids go back), and two callers on two threads would
            // otherwise queue in either order.
            if self.outgoing.send((id, request)).is_err() {
                return Err(PipeError::Closed("the pipe's writer stopped".into()));
            }
            state.next_id += 1;
            state.waiting.insert(id, answer);
            id
        };
        let guard = Abandon {
            state: &self.state,
            id,
        };
        let result = waiting.await.map_err(|_| {
            let reason = lock(&self.state).closed.clone();
            PipeError::Lost(reason.unwrap_or_else(|| "the pipe closed".into()))
        });
        std::mem::forget(guard);
        result
    }

    /// Closes the connection (outstanding calls fail with
    /// [`PipeError::Lost`]).
    pub fn close(&self) {
        lock(&self.state).close("closed by the client".into());
        self.connection.close(codes::DONE.into(), b"client closing");
    }
}

/// Removes an abandoned call from the waiting table.
struct Abandon<'a> {
    state: &'a Waiters,
    id: u64,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        lock(self.state).waiting.remove(&self.id);
    }
}

async fn client_writer(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    preamble: Bytes,
    mut queue: mpsc::UnboundedReceiver<(u64, Bytes)>,
    state: Waiters,
) {
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble);
    while let Some((id, request)) = queue.recv().await {
        encode_frame(&mut out, id, &request);
        while let Ok((id, request)) = queue.try_recv() {
            encode_frame(&mut out, id, &request);
        }
        let bytes = out.split().freeze();
        if let Err(error) = send.write_all(&bytes).await {
            lock(&state).close(format!("writing requests: {error}"));
            connection.close(codes::DONE.into(), b"write failed");
            return;
        }
    }
    let _ = send.finish();
}

async fn client_reader(
    connection: quinn::Connection,
    mut recv: quinn::RecvStream,
    frame_bytes_max: usize,
    state: Waiters,
) {
    let mut decoder = FrameDecoder::new(frame_bytes_max);
    let reason = loop {
        match recv.read_chunk(READ_CHUNK_BYTES, true).await {
            Ok(Some(chunk)) => decoder.extend(&chunk.bytes),
            Ok(None) => break "the server finished the pipe".to_string(),
            Err(error) => break format!("reading answers: {error}"),
        }
        if let Err(error) = dispatch(&mut decoder, &state) {
            connection.close(error.close_code().into(), error.to_string().as_bytes());
            break error.to_string();
        }
    };
    lock(&state).close(reason);
}

fn dispatch(decoder: &mut FrameDecoder, state: &Waiters) -> Result<(), PipeError> {
    while let Some((id, body)) = decoder.next_frame()? {
        let mut state = lock(state);
        match state.waiting.remove(&id) {
            Some(waiter) => {
                let _ = waiter.send(body);
            }
            // An id this client issued and then abandoned (its call timed
            // out) is fine; one it never issued is a broken server.
            None if id < state.next_id => {}
            None => {
                return Err(PipeError::Protocol(format!(
                    "an answer to request id {id}, which was never sent"
                )))
            }
        }
    }
    Ok(())
}
