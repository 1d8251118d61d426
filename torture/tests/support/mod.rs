//! Where the tests find the two executables: `consensus-torture` is this
//! package's (`CARGO_BIN_EXE_consensus-torture`); `consensus-kv` belongs to
//! another package, so Cargo does not hand its path to these tests. It is
//! asked for once per test process with `cargo test --workspace --no-run`,
//! the build `cargo test --workspace` has just made: inside that run every
//! unit is fresh, so nothing is compiled and no second copy of the
//! dependency graph lands in `target/` (a `cargo build -p consensus-kv`
//! resolves features differently and rebuilt it all, which filled CI's
//! disk). Run alone (`cargo test -p consensus-torture`), the same command
//! builds what is missing. `CONSENSUS_KV_BIN` overrides it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The `consensus-torture` executable.
#[allow(dead_code)]
pub const TORTURE: &str = env!("CARGO_BIN_EXE_consensus-torture");

/// The `consensus-kv` executable the nodes run.
pub fn kv_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("CONSENSUS_KV_BIN") {
            return PathBuf::from(path);
        }
        build_kv()
    })
}

/// Asks Cargo for the workspace's test build (building what is stale) and
/// returns the `consensus-kv` executable it reports: the plain binary, not
/// the unit-test harness of its `main.rs`.
///
/// The variables Cargo sets for this test process (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ...) are removed first: build scripts that declare
/// `rerun-if-env-changed` on them (ring does) would otherwise see them
/// change, and the inner and outer builds would rebuild each other's
/// dependencies every time.
fn build_kv() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo_for_this_crate = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_CFG_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref());
        if set_by_cargo_for_this_crate {
            command.env_remove(name.as_ref());
        }
    }
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ]);
    // The profile this test executable was built with (target/<profile>/deps),
    // so that `cargo test --release` does not start a debug build.
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.file_name()?.to_owned()));
    if profile_dir.is_some_and(|dir| dir == "release") {
        command.arg("--release");
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo test --workspace --no-run");
    assert!(
        output.status.success(),
        "cargo test --workspace --no-run failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "consensus-kv")
        .filter(|message| message["profile"]["test"] == false)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the consensus-kv executable")
}
