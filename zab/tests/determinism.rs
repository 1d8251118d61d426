//! The core is deterministic and sans-IO: no async runtime among its
//! dependencies, and the same inputs give the same outputs.

mod common;

use common::{Net, ZabNet};

#[test]
fn the_crate_does_not_depend_on_tokio() {
    let manifest = include_str!("../Cargo.toml");
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for banned in ["tokio", "async-std", "smol"] {
        assert!(
            !dependencies
                .lines()
                .any(|l| l.trim_start().starts_with(banned)),
            "the zab core must not depend on {banned}"
        );
    }
}

#[test]
fn same_inputs_same_outputs() {
    let run = || {
        let mut net = Net::new(5);
        net.tracing = true;
        let leader = net.elect();
        for i in 0..10 {
            net.propose(leader, &format!("v{i}")).unwrap();
        }
        net.crash(leader);
        net.run(60);
        net.restart(leader);
        net.run(30);
        net.trace
    };
    assert_eq!(run(), run());
}
