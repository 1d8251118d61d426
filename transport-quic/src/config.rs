//! Configuration of a [`QuicTransport`](crate::QuicTransport).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use consensus_api::{Core, NodeId};
use thiserror::Error;

use crate::fault::FaultController;
use crate::wire::WIRE_VERSION;

/// Why a transport (or its TLS material) could not be set up.
#[derive(Debug, Error)]
pub enum SetupError {
    /// A configuration value is unusable.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// The certificates or the key do not parse or do not fit together.
    #[error("TLS material is unusable: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}

/// The id of a cluster: one DNS label (`[a-z0-9-]`, 1 to 63 characters, not
/// starting or ending with `-`), because it is part of every node
/// certificate's DNS name (`node-<id>.<cluster>.consensus`, see
/// [`crate::certs`]). A numeric id (`ClusterId::from(42u64)`) is its decimal
/// text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(String);

impl ClusterId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, SetupError> {
        let id = id.into();
        let valid_chars = id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if id.is_empty()
            || id.len() > 63
            || !valid_chars
            || id.starts_with('-')
            || id.ends_with('-')
        {
            return Err(SetupError::InvalidConfig(format!(
                "cluster id {id:?} must be one DNS label: 1 to 63 characters of a-z, 0-9 and '-', \
                 not starting or ending with '-'"
            )));
        }
        Ok(ClusterId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<u64> for ClusterId {
    fn from(id: u64) -> Self {
        ClusterId(id.to_string())
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PEM-encoded TLS material of one node (see [`crate::certs`] for the layout
/// that `certs::load_node_tls` reads).
#[derive(Clone)]
pub struct TlsMaterial {
    /// The cluster CA certificate(s): the only trust anchors, for both
    /// directions.
    pub ca_pem: String,
    /// This node's certificate (optionally followed by intermediates),
    /// naming it `node-<id>.<cluster>.consensus`.
    pub cert_pem: String,
    /// This node's private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub key_pem: String,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Size limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload accepted or sent (default 4 MiB). A peer
    /// announcing a larger frame has its connection closed.
    pub max_frame_bytes: usize,
    /// Most messages queued for one peer and not yet written (default 4096).
    pub queue_max_messages: usize,
    /// Most encoded bytes queued for one peer (default 64 MiB; must be at
    /// least `max_frame_bytes`).
    pub queue_max_bytes: usize,
    /// Capacity of the inbound event queue, in batches of received frames
    /// (default 1024). When the consumer falls behind, reading stops and QUIC
    /// flow control pushes back on the senders.
    pub inbound_batches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 4 * 1024 * 1024,
            queue_max_messages: 4096,
            queue_max_bytes: 64 * 1024 * 1024,
            inbound_batches: 1024,
        }
    }
}

/// Timeouts, all set explicitly on every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection with no packet from the peer for this long is dead
    /// (QUIC idle timeout; default 5 s).
    pub idle: Duration,
    /// Interval of QUIC keep-alive pings on an otherwise idle connection
    /// (default 1 s; must be below `idle`).
    pub keep_alive: Duration,
    /// Limit for connect + TLS + the transport handshake (default 5 s).
    pub handshake: Duration,
    /// How long one dial waits for the peer's first answer before it is
    /// abandoned and retried after the [`Backoff`] delay (default 300 ms).
    /// A dial sent while the peer is down would otherwise wait for QUIC's
    /// retransmission of its first packet, whose interval doubles each time
    /// (1 s, 2 s, 4 s with quinn's internet defaults), and so reach a peer
    /// that restarted only seconds later, long after an election needed it.
    /// Raise it above two round trips for links slower than a data centre.
    pub dial_attempt: Duration,
    /// QUIC's round-trip estimate before the first measurement (default
    /// 10 ms; quinn's default of 333 ms is meant for the internet). It sets
    /// when the first handshake packet is sent again if lost or unanswered.
    pub initial_rtt: Duration,
    /// Limit for `shutdown` to flush queued frames and wait for their
    /// acknowledgement (default 5 s).
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            handshake: Duration::from_secs(5),
            dial_attempt: Duration::from_millis(300),
            initial_rtt: Duration::from_millis(10),
            shutdown: Duration::from_secs(5),
        }
    }
}

/// Reconnect backoff: exponential, bounded, with jitter. Attempt `n` (from
/// 0) waits a uniformly random time in `[d/2, d]` where
/// `d = min(initial * 2^n, max)`; the attempt counter resets once a
/// connection completes its handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay (default 50 ms).
    pub initial: Duration,
    /// Upper bound (default 250 ms: a dial costs a few packets, and a peer
    /// that comes back must be reached before the protocol needs it, e.g.
    /// for an election; etcd's peer streams retry every 100 ms).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(250),
        }
    }
}

impl Backoff {
    /// The un-jittered delay before attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Everything a [`QuicTransport`](crate::QuicTransport) needs.
#[derive(Clone, Debug)]
pub struct QuicConfig {
    /// This node.
    pub node_id: NodeId,
    /// Local UDP address (port 0 picks a free one; see
    /// [`QuicTransport::local_addr`](crate::QuicTransport::local_addr)).
    pub bind: SocketAddr,
    /// The other members and where they listen.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster; both the handshake and the certificates carry it.
    pub cluster_id: ClusterId,
    /// Protocol name ([`Core::PROTOCOL`]): a raft node never talks to a zab
    /// node.
    pub protocol: String,
    /// Wire-format version; peers must match exactly (default
    /// [`WIRE_VERSION`]).
    pub wire_version: u32,
    /// Certificates and key.
    pub tls: TlsMaterial,
    /// Size limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Fault injection (off unless a test turns it on).
    pub faults: FaultController,
}

impl QuicConfig {
    /// A configuration with default limits, timeouts and backoff, no peers
    /// and no faults.
    pub fn new(
        node_id: NodeId,
        bind: SocketAddr,
        cluster_id: ClusterId,
        protocol: impl Into<String>,
        tls: TlsMaterial,
    ) -> Self {
        QuicConfig {
            node_id,
            bind,
            peers: BTreeMap::new(),
            cluster_id,
            protocol: protocol.into(),
            wire_version: WIRE_VERSION,
            tls,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            backoff: Backoff::default(),
            faults: FaultController::new(),
        }
    }

    /// [`QuicConfig::new`] with the protocol name of core `C`.
    pub fn for_core<C: Core>(
        node_id: NodeId,
        bind: SocketAddr,
        cluster_id: ClusterId,
        tls: TlsMaterial,
    ) -> Self {
        Self::new(node_id, bind, cluster_id, C::PROTOCOL, tls)
    }

    /// Adds (or moves) a peer.
    pub fn with_peer(mut self, id: NodeId, addr: SocketAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Checks the values that do not involve TLS.
    pub fn validate(&self) -> Result<(), SetupError> {
        let invalid = |what: String| Err(SetupError::InvalidConfig(what));
        if self.peers.contains_key(&self.node_id) {
            return invalid(format!("node {} lists itself as a peer", self.node_id));
        }
        if self.protocol.is_empty() || self.protocol.len() > 64 {
            return invalid(format!(
                "protocol name {:?} must be 1 to 64 bytes",
                self.protocol
            ));
        }
        let limits = &self.limits;
        if limits.max_frame_bytes == 0 || limits.max_frame_bytes > u32::MAX as usize {
            return invalid(format!(
                "max_frame_bytes {} must be in 1..=u32::MAX",
                limits.max_frame_bytes
            ));
        }
        if limits.queue_max_messages == 0 || limits.inbound_batches == 0 {
            return invalid("queue_max_messages and inbound_batches must be positive".into());
        }
        if limits.queue_max_bytes < limits.max_frame_bytes {
            return invalid(format!(
                "queue_max_bytes {} is below max_frame_bytes {}",
                limits.queue_max_bytes, limits.max_frame_bytes
            ));
        }
        let timeouts = &self.timeouts;
        if timeouts.keep_alive.is_zero() || timeouts.keep_alive >= timeouts.idle {
            return invalid(format!(
                "keep_alive {:?} must be positive and below idle {:?}",
                timeouts.keep_alive, timeouts.idle
            ));
        }
        if timeouts.handshake.is_zero() || timeouts.shutdown.is_zero() {
            return invalid("handshake and shutdown timeouts must be positive".into());
        }
        if timeouts.dial_attempt.is_zero() || timeouts.dial_attempt > timeouts.handshake {
            return invalid(format!(
                "dial_attempt {:?} must be positive and at most handshake {:?}",
                timeouts.dial_attempt, timeouts.handshake
            ));
        }
        if timeouts.initial_rtt.is_zero() || timeouts.initial_rtt >= timeouts.dial_attempt {
            return invalid(format!(
                "initial_rtt {:?} must be positive and below dial_attempt {:?}",
                timeouts.initial_rtt, timeouts.dial_attempt
            ));
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return invalid(format!(
                "backoff initial {:?} must be positive and at most max {:?}",
                self.backoff.initial, self.backoff.max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_dns_labels() {
        assert!(ClusterId::new("prod-kv-1").is_ok());
        assert!(ClusterId::new("42").is_ok());
        assert_eq!(ClusterId::from(42u64).as_str(), "42");
        for bad in ["", "-a", "a-", "Upper", "a.b", "a_b", &"x".repeat(64)] {
            assert!(ClusterId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        };
        assert_eq!(backoff.ceiling(0), Duration::from_millis(10));
        assert_eq!(backoff.ceiling(1), Duration::from_millis(20));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(80));
        assert_eq!(backoff.ceiling(4), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(100));
    }
}
