//! Message transport between the nodes of one cluster.

use async_trait::async_trait;

use crate::error::TransportError;
use crate::types::NodeId;

/// Something that happened on a transport.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent<M> {
    /// A message arrived from an authenticated peer.
    Message {
        /// The sender (checked against its certificate by secure transports).
        from: NodeId,
        /// The decoded message.
        message: M,
    },
    /// A connection to a peer came up.
    PeerConnected(NodeId),
    /// A connection to a peer went down (it will be re-established with
    /// backoff; messages sent meanwhile are dropped).
    PeerDisconnected(NodeId),
}

/// Sends protocol messages to peers and receives theirs.
///
/// Contract: messages to one peer are delivered in the order sent, or not at
/// all (they may be lost when a connection breaks; protocols retransmit).
/// `send` never blocks: a message to an unreachable peer, or beyond a full
/// per-peer queue, is dropped with an error, without delaying sends to others.
/// A transport delivers only messages from authenticated members of its
/// cluster that speak the same protocol and wire version.
#[async_trait]
pub trait Transport<M: Send + 'static>: Send + Sync {
    /// Queues `message` for `to`.
    fn send(&self, to: NodeId, message: M) -> Result<(), TransportError>;

    /// The next event; `None` once the transport is shut down. There is one
    /// consumer (the node's driver). Must be cancel-safe: dropping the future
    /// before it completes loses no event (the driver polls it in `select!`
    /// and with `now_or_never` to drain what is already waiting).
    async fn recv(&self) -> Option<TransportEvent<M>>;

    /// Closes every connection (flushing what was already queued, within a
    /// bounded time) and stops accepting new ones.
    async fn shutdown(&self);
}
