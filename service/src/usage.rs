//! What a closed-loop load generator measures besides throughput: the
//! latency of its operations ([`LatencyReport`] from an HDR histogram) and
//! the CPU time it used itself ([`CpuWindow`]), so it can say how much of
//! the machine it took from the servers it measures. Used by `consensus-kv
//! bench` and `consensus-coord bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencyReport {
    /// The percentiles of a histogram recorded in microseconds (all zero
    /// when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return LatencyReport::default();
        }
        LatencyReport {
            p50_us: histogram.value_at_quantile(0.5),
            p90_us: histogram.value_at_quantile(0.9),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// An empty histogram for operation latencies in microseconds (1 µs to
/// 60 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Failed operations by kind as `kind=count ...`, or `none`.
pub fn describe_errors(errors: &std::collections::BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".to_string();
    }
    errors
        .iter()
        .map(|(kind, count)| format!("{kind}={count}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The end of a load generator's one-line summary: `latency p50 X ms, p99
/// X ms, p99.9 X ms, max X ms; errors: ...; load generator CPU X cores`.
pub fn describe_outcome(
    latency: &LatencyReport,
    errors: &std::collections::BTreeMap<String, u64>,
    load_cpu_cores: f64,
) -> String {
    format!(
        "latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; errors: {}; load \
         generator CPU {:.2} cores",
        latency.p50_us as f64 / 1000.0,
        latency.p99_us as f64 / 1000.0,
        latency.p999_us as f64 / 1000.0,
        latency.max_us as f64 / 1000.0,
        describe_errors(errors),
        load_cpu_cores,
    )
}

/// Records the time from `began` to `finished` into `histogram`.
pub fn record_latency(histogram: &mut Histogram<u64>, began: Instant, finished: Instant) {
    let micros = u64::try_from((finished - began).as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// This process's CPU time over a measured window that starts at a given
/// instant (after a warm-up) and ends when [`cores`](Self::cores) is asked.
pub struct CpuWindow {
    start: Arc<Mutex<Option<Duration>>>,
}

impl CpuWindow {
    /// Marks the CPU time at `from` (a task on the current tokio runtime
    /// waits for it).
    pub fn starting_at(from: Instant) -> CpuWindow {
        let start = Arc::new(Mutex::new(None));
        let mark = start.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            *mark.lock().unwrap_or_else(|p| p.into_inner()) = process_cpu_time();
        });
        CpuWindow { start }
    }

    /// CPU used since the start, in cores over `seconds` (1.0 = one core
    /// busy all the time); 0 when the platform does not report CPU time or
    /// the window has not started.
    pub fn cores(&self, seconds: f64) -> f64 {
        let start = *self.start.lock().unwrap_or_else(|p| p.into_inner());
        match (start, process_cpu_time()) {
            (Some(from), Some(to)) => {
                to.saturating_sub(from).as_secs_f64() / seconds.max(f64::MIN_POSITIVE)
            }
            _ => 0.0,
        }
    }
}

/// User + system CPU time this process has used so far (all threads), or
/// `None` where the platform does not report it.
pub fn process_cpu_time() -> Option<Duration> {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if status != 0 {
        return None;
    }
    let micros = |t: libc::timeval| -> u64 {
        (t.tv_sec.max(0) as u64) * 1_000_000 + t.tv_usec.max(0) as u64
    };
    Some(Duration::from_micros(
        micros(usage.ru_utime) + micros(usage.ru_stime),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_time().expect("getrusage works on Linux");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = process_cpu_time().unwrap();
        assert!(after > before, "{after:?} > {before:?}");
    }
}
