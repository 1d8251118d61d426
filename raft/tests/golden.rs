//! Golden interaction scripts (`raft/testdata/*.txt`, message-level traces of
//! elections, replication, recovery and snapshots; `REWRITE=1 cargo test -p
//! raft --test golden` regenerates their expected output) and the shared
//! protocol-neutral scripts of `consensus-testkit`, which must pass
//! unchanged.

use raft::RaftCore;

#[test]
fn raft_trace_scripts() {
    consensus_testkit::run_scripts::<RaftCore>("testdata");
}

#[test]
fn shared_protocol_neutral_scripts() {
    consensus_testkit::run_shared_scripts::<RaftCore>();
}
