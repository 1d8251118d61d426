//! Counters and the most recent connection errors of a transport, for
//! operators (metrics) and tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use consensus_api::{NodeId, TransportError};

/// How many recent errors are kept.
const RECENT_ERRORS: usize = 64;

/// A connection-level error, with the peer when it is known (TLS refusals
/// of unknown certificates have none).
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRecord {
    /// The peer concerned, when its identity was established.
    pub peer: Option<NodeId>,
    /// What went wrong.
    pub error: TransportError,
}

/// A snapshot of a transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections that completed TLS and the handshake.
    pub connections_established: u64,
    /// Outgoing connection attempts.
    pub dial_attempts: u64,
    /// Outgoing attempts that failed (unreachable, TLS, handshake).
    pub dial_failures: u64,
    /// Certificates refused (wrong CA, not a member, wrong node).
    pub tls_rejections: u64,
    /// Handshakes refused for a cluster / protocol / version / node mismatch.
    pub handshake_mismatches: u64,
    /// Connections closed for an oversized or undecodable frame or a
    /// stream-rule violation.
    pub frame_errors: u64,
    /// Frames written (control and bulk).
    pub frames_sent: u64,
    /// Stream writes (each carries every frame queued at that moment:
    /// `frames_sent / writes` is the batching factor).
    pub writes: u64,
    /// Frames received and delivered.
    pub frames_received: u64,
    /// Sends refused because a peer's queue was full.
    pub queue_full: u64,
    /// Messages dropped by the fault-injection layer.
    pub fault_drops: u64,
}

/// Live counters (shared by the tasks of one transport).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub connections_established: AtomicU64,
    pub dial_attempts: AtomicU64,
    pub dial_failures: AtomicU64,
    pub tls_rejections: AtomicU64,
    pub handshake_mismatches: AtomicU64,
    pub frame_errors: AtomicU64,
    pub frames_sent: AtomicU64,
    pub writes: AtomicU64,
    pub frames_received: AtomicU64,
    pub queue_full: AtomicU64,
    pub fault_drops: AtomicU64,
    recent: Mutex<VecDeque<ErrorRecord>>,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Stats {
    pub fn snapshot(&self) -> TransportStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TransportStats {
            connections_established: get(&self.connections_established),
            dial_attempts: get(&self.dial_attempts),
            dial_failures: get(&self.dial_failures),
            tls_rejections: get(&self.tls_rejections),
            handshake_mismatches: get(&self.handshake_mismatches),
            frame_errors: get(&self.frame_errors),
            frames_sent: get(&self.frames_sent),
            writes: get(&self.writes),
            frames_received: get(&self.frames_received),
            queue_full: get(&self.queue_full),
            fault_drops: get(&self.fault_drops),
        }
    }

    /// Counts `error` in the matching counter and keeps it in the recent list.
    pub fn record(&self, peer: Option<NodeId>, error: TransportError) {
        match &error {
            TransportError::HandshakeMismatch { .. } => bump(&self.handshake_mismatches, 1),
            TransportError::FrameTooLarge { .. } | TransportError::Decode(_) => {
                bump(&self.frame_errors, 1)
            }
            TransportError::Tls(_) => bump(&self.tls_rejections, 1),
            _ => {}
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(ErrorRecord { peer, error });
    }

    pub fn recent_errors(&self) -> Vec<ErrorRecord> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }
}
