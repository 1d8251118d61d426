//! Golden interaction tests (datadriven, etcd-raft style).
//!
//! * `testdata/*.txt`: Multi-Paxos's own message-level traces (elections,
//!   replication, recovery); `REWRITE=1 cargo test -p multipaxos --test
//!   golden` regenerates their expected output.
//! * the shared, protocol-neutral scripts of `consensus-testkit`, which every
//!   protocol passes unchanged.

use multipaxos::MultiPaxosCore;

#[test]
fn multipaxos_traces() {
    consensus_testkit::run_scripts::<MultiPaxosCore>("testdata");
}

#[test]
fn shared_protocol_neutral_scripts() {
    consensus_testkit::run_shared_scripts::<MultiPaxosCore>();
}
