//! Where the tests find the two executables: `consensus-torture` is this
//! package's (`CARGO_BIN_EXE_consensus-torture`); `consensus-kv` belongs to
//! another package, so Cargo does not build it for these tests: it is
//! built here once (`cargo build --profile test -p consensus-kv`, a no-op
//! when it is up to date), or taken from `CONSENSUS_KV_BIN`.

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

/// Builds `consensus-kv` with the profile the tests use and returns the
/// executable Cargo reports.
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
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--profile",
            "test",
            "-p",
            "consensus-kv",
            "--bin",
            "consensus-kv",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build -p consensus-kv");
    assert!(
        output.status.success(),
        "cargo build -p consensus-kv failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "consensus-kv")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the consensus-kv executable")
}
