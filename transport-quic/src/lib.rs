//! # transport-quic: the consensus `Transport` over QUIC
//!
//! [`QuicTransport<M>`] implements [`consensus_api::Transport<M>`] with
//! [quinn] and rustls (the `ring` provider only): mutual TLS against a
//! cluster CA, the peer's node id taken from its certificate, one long-lived
//! connection per pair of nodes, length-prefixed postcard frames, bulk
//! messages on their own streams, reconnect with jittered backoff, and a
//! fault-injection layer for tests. [`memory`] has an in-memory transport
//! with the same contract for fast runtime tests.
//!
//! ## Identity and certificates
//!
//! Every node holds a certificate signed by the cluster CA whose DNS
//! subject-alternative name is **`node-<id>.<cluster>.consensus`**
//! ([`tls::node_dns_name`]); the cluster id is one DNS label
//! ([`ClusterId`]). Certificates allow both server and client authentication
//! (extended key usages `serverAuth` and `clientAuth`).
//!
//! * The accepting node verifies the client certificate against the CA
//!   (webpki), reads the node id from its name, and refuses the handshake
//!   unless that id is a current member (its peer table).
//! * The dialing node connects with server name `node-<id>.<cluster>.consensus`
//!   of the node it means to reach; webpki verifies the CA **and** that name,
//!   so reaching node 3 at the address configured for node 2 fails.
//! * Each QUIC endpoint's stateless-reset key is derived from the node's
//!   private key, so a restarted node resets its previous incarnation's
//!   connections at once (peers notice the restart without waiting for the
//!   idle timeout).
//!
//! [`certs`] makes development certificates with rcgen and stores them as
//! `ca.pem`, `ca-key.pem`, `node-<id>.pem`, `node-<id>-key.pem` in one
//! directory (keys mode 0600). Production users bring their own PEM files
//! that follow the naming rule.
//!
//! ## Connections
//!
//! * **Who dials**: of two nodes, the one with the **lower id dials**; the
//!   other only accepts. A connection accepted from a peer replaces any
//!   older connection from the same peer (it restarted), which is closed
//!   with [`CloseCode::Superseded`]. So each pair has one connection. Both
//!   nodes must list each other ([`QuicTransport::add_peer`] on membership
//!   changes): the acceptor refuses a certificate that is not in its table,
//!   and a higher id that is not in the lower id's table is never dialed.
//! * The dialer reconnects after a failure with exponential backoff and
//!   jitter ([`Backoff`], at most 250 ms by default); the attempt counter
//!   resets after a successful handshake. One dial waits at most
//!   [`Timeouts::dial_attempt`] for the peer's answer, so a peer that was
//!   down when the dial began is reached by the next attempt once it is
//!   back, not by QUIC's doubling retransmissions seconds later (a Raft
//!   election between two survivors waited up to 1.6 s for exactly that).
//! * Each peer has a bounded queue ([`Limits::queue_max_messages`],
//!   [`Limits::queue_max_bytes`]); `send` encodes the message into it and
//!   returns at once ([`TransportError::QueueFull`] when full). Messages
//!   queue while a connection is being set up (so the first votes of a new
//!   cluster are not lost) and the queue is dropped when a connection fails
//!   (protocols retransmit). Sends to one peer never wait for another.
//! * QUIC idle timeout and keep-alive are set explicitly ([`Timeouts`]);
//!   congestion control is quinn's default (Cubic) and GSO stays on.
//!
//! ## Streams
//!
//! * **Control stream**: the one bidirectional stream, opened by the dialer;
//!   each direction carries the handshake frame, then the sender's
//!   [`MessageClass::Control`](consensus_api::MessageClass::Control)
//!   messages in order. It has a higher send priority than bulk streams.
//!   The writer drains the whole queue into one buffer per write (many
//!   frames per stream write; no copy per message beyond the encoding).
//! * **Bulk streams**: each batch of
//!   [`MessageClass::Bulk`](consensus_api::MessageClass::Bulk) messages
//!   (snapshot chunks, large catch-up batches) goes on a new unidirectional
//!   stream, so heartbeats and votes never wait behind a snapshot (no
//!   head-of-line blocking). Bulk streams are read one after another, so
//!   bulk messages keep their order among themselves; they are not ordered
//!   with respect to control messages. Resuming an interrupted snapshot
//!   transfer is a protocol matter: the cores send snapshots in chunks that
//!   carry their offset and re-send from the last acknowledged one; the
//!   transport needs no total size up front.
//! * **Shutdown** stops new sends, writes what is queued, `finish()`es every
//!   stream and waits until the peer has acknowledged it (`stopped()`)
//!   before closing the connection ([`CloseCode::Shutdown`]), all within
//!   [`Timeouts::shutdown`].
//!
//! ## Wire format (version [`WIRE_VERSION`])
//!
//! TLS 1.3, ALPN `consensus-quic/1`. Every frame, on every stream:
//!
//! ```text
//! +----------------------+------------------------------+
//! | length: u32, big end.| payload: `length` bytes      |
//! +----------------------+------------------------------+
//! ```
//!
//! The payload is one message encoded with postcard; it must decode as the
//! protocol's message type and use every byte. `length` above
//! [`Limits::max_frame_bytes`] (default 4 MiB) is refused as soon as the
//! prefix arrives, before the payload is buffered.
//!
//! The **handshake frame** ([`Hello`]) is the first frame in each direction
//! of the control stream (payload at most 1 KiB), encoded with postcard in
//! this field order, which never changes across wire versions:
//!
//! ```text
//! magic: [u8; 4] = "CQT1"   wire_version: u32 (varint)
//! cluster_id: string        protocol: string ("raft", "zab", ...)
//! node_id: u64 (varint)     -- must equal the id in the sender's certificate
//! ```
//!
//! The dialer sends its handshake first; the acceptor answers with its own
//! and then checks the dialer's; the dialer checks the acceptor's. Nothing
//! else is sent before both checks pass.
//!
//! ## Close codes
//!
//! Application close codes ([`CloseCode`]), with a readable reason:
//!
//! | code | name | when |
//! |---|---|---|
//! | 0 | `Shutdown` | the node shuts down (after draining) |
//! | 1 | `HandshakeMismatch` | cluster id, protocol, wire version or node id differ |
//! | 2 | `FrameTooLarge` | a length prefix above the limit |
//! | 3 | `Decode` | a payload that does not decode, or a stream ending inside a frame |
//! | 4 | `ProtocolViolation` | other broken stream rules |
//! | 5 | `Superseded` | a newer connection from the same peer replaced this one |
//! | 6 | `PeerRemoved` | the peer left the membership |
//!
//! TLS refusals (unknown CA, non-member, wrong node) are QUIC crypto errors
//! (TLS alerts), not application codes. Every refusal and close for bad
//! input is logged with `tracing` (warn) and counted in [`TransportStats`];
//! the typed [`TransportError`] is kept in
//! [`QuicTransport::recent_errors`]. Bad input only ever closes the
//! connection it came on: the node and its other connections carry on.
//!
//! ## Running
//!
//! ```text
//! cargo test -p transport-quic                  # unit + loopback tests (~30 s)
//! cargo bench -p transport-quic --bench frames  # transport vs bare quinn loop
//! ```
//!
//! The benchmark prints frames/s of 100-byte messages through the transport
//! and through a bare quinn stream loop (pre-built frames of the same size
//! written in batches), then CPU time per frame of both and the transport's
//! frames per write.
//!
//! ## Fault injection
//!
//! [`FaultController`] (see [`fault`]): block / cut / isolate / partition /
//! heal, random drops, delays, bulk stalls, per directed link, shared by
//! any number of transports. Off by default; a check costs one atomic load
//! while no rule is set.
#![deny(missing_docs)]

pub mod certs;
pub mod config;
mod connection;
pub mod fault;
pub mod memory;
mod peer;
pub mod stats;
pub mod tls;
mod transport;
pub mod wire;

pub use config::{Backoff, ClusterId, Limits, QuicConfig, SetupError, Timeouts, TlsMaterial};
pub use consensus_api::{Transport, TransportError, TransportEvent};
pub use fault::FaultController;
pub use memory::{MemoryNetwork, MemoryTransport};
pub use stats::{ErrorRecord, TransportStats};
pub use transport::QuicTransport;
pub use wire::{CloseCode, Hello, WIRE_VERSION};
