//! Golden interaction tests (`datadriven`, `consensus-testkit`):
//! `testdata/*.txt` are ZAB's own message-level traces (elections,
//! replication, recovery); the shared protocol-neutral scripts of the
//! testkit must pass unchanged. `REWRITE=1 cargo test -p zab --test golden`
//! regenerates this crate's expected output.

use zab::ZabCore;

#[test]
fn zab_trace_scripts() {
    consensus_testkit::run_scripts::<ZabCore>("testdata");
}

#[test]
fn shared_protocol_neutral_scripts() {
    consensus_testkit::run_shared_scripts::<ZabCore>();
}
