//! The machine's physical floor, measured in the same run as the protocols:
//! what one fdatasync costs in the data directory, and what one QUIC round
//! trip costs on loopback. A commit cannot be cheaper than one of each.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::results::Percentiles;

/// A histogram in microseconds, 1 µs .. 100 s.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Writes `samples` blocks of 4 KiB into a preallocated scratch file in `dir`
/// (as the store writes into its preallocated segments), each followed by
/// one `fdatasync`, and returns the latency distribution of write + sync.
pub fn measure_fdatasync(dir: &Path, samples: usize) -> std::io::Result<Percentiles> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fdatasync-probe.tmp");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = vec![0xa5u8; 4096];
    // The store overwrites preallocated segments, so the floor does too: one
    // fallocate up front (falls back to appending where unsupported), then
    // write + fdatasync at increasing offsets inside it.
    let len = (block.len() * samples.max(1)) as u64;
    consensus_storage::disk::preallocate(&file, len)?;
    file.sync_all()?;
    let mut histogram = micros_histogram();
    let mut offset = 0u64;
    for _ in 0..samples {
        let started = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(took.max(1));
        offset += block.len() as u64;
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(Percentiles::of(&histogram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdatasync_probe_records_every_sample_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let result = measure_fdatasync(dir.path(), 20).unwrap();
        assert_eq!(result.count, 20);
        assert!(result.p50_us >= 1.0 && result.p50_us <= result.max_us);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

/// The message of the QUIC round-trip probe.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Probe {
    /// Asks for an echo.
    Ping(u64),
    /// The echo.
    Pong(u64),
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Ping(n) => write!(f, "Ping {n}"),
            Probe::Pong(n) => write!(f, "Pong {n}"),
        }
    }
}

impl consensus::ProtocolMessage for Probe {}

/// Round trips of a small message between two `QuicTransport`s on loopback
/// (the same transport, TLS and framing the protocols use).
pub async fn measure_quic_rtt(samples: usize) -> Result<Percentiles, String> {
    use consensus::{Transport, TransportEvent};
    use std::sync::Arc;
    use transport_quic::{ClusterId, QuicConfig, QuicTransport};

    let cluster = ClusterId::new("floor").map_err(|e| e.to_string())?;
    let (ca, certs) =
        consensus::certs::generate_cluster(&cluster, [1, 2]).map_err(|e| e.to_string())?;
    let bind = |id: u64| {
        let config = QuicConfig::new(
            id,
            "127.0.0.1:0".parse().expect("address"),
            cluster.clone(),
            "probe",
            certs[(id - 1) as usize].tls(&ca),
        );
        QuicTransport::<Probe>::bind(config).map_err(|e| e.to_string())
    };
    let one = Arc::new(bind(1)?);
    let two = Arc::new(bind(2)?);
    // The acceptor (2) learns the dialer (1) first, so 1's first dial is
    // not refused as coming from a stranger.
    two.add_peer(1, one.local_addr())
        .map_err(|e| e.to_string())?;
    one.add_peer(2, two.local_addr())
        .map_err(|e| e.to_string())?;
    let echo = {
        let two = two.clone();
        tokio::spawn(async move {
            while let Some(event) = two.recv().await {
                if let TransportEvent::Message {
                    from,
                    message: Probe::Ping(n),
                } = event
                {
                    let _ = two.send(from, Probe::Pong(n));
                }
            }
        })
    };
    let mut histogram = micros_histogram();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    // Warm up: the first round trip includes the connection handshake.
    let mut n = 0u64;
    let mut measured = 0;
    while measured < samples {
        if Instant::now() > deadline {
            return Err("the QUIC round-trip probe timed out".into());
        }
        n += 1;
        let started = Instant::now();
        one.send(2, Probe::Ping(n)).map_err(|e| e.to_string())?;
        let answered = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Some(event) = one.recv().await {
                if let TransportEvent::Message {
                    message: Probe::Pong(m),
                    ..
                } = event
                {
                    if m == n {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if answered && n > 10 {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(us.max(1));
            measured += 1;
        }
    }
    one.shutdown().await;
    two.shutdown().await;
    echo.abort();
    Ok(Percentiles::of(&histogram))
}
