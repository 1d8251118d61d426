//! Rule-by-rule tests of the Raft core, driven through its public `Core`
//! interface by a small deterministic network (`harness`). Tests that check
//! a rule of the paper cite its section.

mod harness;

mod election;
mod membership;
mod read;
mod replication;
mod robustness;
mod snapshot;
mod transfer;
