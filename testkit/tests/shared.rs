//! The shared, protocol-neutral scripts, verified against the simulator's
//! reference core (`REWRITE=1 cargo test -p consensus-testkit` regenerates
//! their expected output). Each protocol crate runs the same files with
//! `consensus_testkit::run_shared_scripts::<TheirCore>()`.

use consensus_sim::testing::TinyRaft;
use consensus_testkit::{run_scripts, run_scripts_in, shared_scripts_dir, Mode};

#[test]
fn shared_scripts_pass_on_the_reference_core() {
    let dir = shared_scripts_dir();
    run_scripts_in::<TinyRaft>(dir.to_str().unwrap(), Mode::Neutral);
}

#[test]
fn trace_scripts_of_the_reference_core() {
    run_scripts::<TinyRaft>("testdata/tiny-raft");
}
