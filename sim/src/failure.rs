//! What the simulator reports when a check fails.

use std::fmt;

/// A broken invariant, contract rule or end-of-run check, with everything
/// needed to reproduce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFailure {
    /// Seed of the run; the same seed replays the same run exactly.
    pub seed: u64,
    /// Number of simulator events processed when the check failed.
    pub step: u64,
    /// Virtual time in ticks (`time_ns / tick_duration_ns`).
    pub tick: u64,
    /// Virtual time in nanoseconds.
    pub time_ns: u64,
    /// The check that failed (`agreement`, `leader-per-epoch`,
    /// `linearizability`, `liveness-after-heal`, a custom invariant name ...).
    pub check: String,
    /// What broke, in words.
    pub message: String,
    /// A command line (or test hint) that reproduces the run.
    pub reproduce: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed: seed {} at step {} (tick {}, t={:.3}s): check `{}` violated: {}\n  reproduce with: {}",
            self.seed,
            self.step,
            self.tick,
            self.time_ns as f64 / 1e9,
            self.check,
            self.message,
            self.reproduce
        )
    }
}

impl std::error::Error for SimFailure {}
