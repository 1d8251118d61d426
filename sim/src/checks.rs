//! End-of-run history checks.

use crate::history::Event;
use crate::linearizability::{check, CheckResult};

/// Checks that the client history is linearizable (per key). Returns the
/// failing check's name and what broke.
pub(crate) fn check_linearizable(events: &[Event]) -> Result<(), (&'static str, String)> {
    match check(events) {
        CheckResult::Linearizable => Ok(()),
        violation @ CheckResult::NotLinearizable { .. } => {
            Err(("linearizability", violation.to_string()))
        }
        unknown @ CheckResult::Unknown { .. } => Err((
            "linearizability-unknown",
            format!("the checker could not decide (nothing is proven): {unknown}"),
        )),
        malformed @ CheckResult::Malformed(_) => Err(("history-malformed", malformed.to_string())),
    }
}
