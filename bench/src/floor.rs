//! The machine's physical floor, measured in the same run as the protocols:
//! what one fdatasync costs in the data directory, and what one QUIC round
//! trip costs on loopback. A commit cannot be cheaper than one of each.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::results::Percentiles;

/// A histogram in microseconds, 1 µs .. 100 s.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Appends `samples` blocks of 4 KiB to a scratch file in `dir`, each followed
/// by one `fdatasync`, and returns the latency distribution of write + sync.
pub fn measure_fdatasync(dir: &Path, samples: usize) -> std::io::Result<Percentiles> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("fdatasync-probe.tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = vec![0xa5u8; 4096];
    let mut histogram = micros_histogram();
    for _ in 0..samples {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(took.max(1));
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
