//! CPU time of this process, so a load generator can say how much of the
//! machine it took from the servers it measures.

use std::time::Duration;

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
