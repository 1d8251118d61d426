//! Golden interaction scripts (`datadriven`, etcd-io/raft style):
//! `paxos/testdata/*.txt` print every `Ready` and message of classic Paxos
//! (regenerate with `REWRITE=1 cargo test -p paxos --test golden`), and the
//! protocol-neutral scripts shared by all four protocols
//! (`testkit/testdata/shared/`) pass unchanged.

use paxos::PaxosCore;

#[test]
fn paxos_scripts() {
    consensus_testkit::run_scripts::<PaxosCore>("testdata");
}

#[test]
fn shared_scripts() {
    consensus_testkit::run_shared_scripts::<PaxosCore>();
}
