//! Tidy check (TigerBeetle `tidy.zig` style): the protocol crates are
//! sans-IO, so none of `raft`, `paxos`, `multipaxos`, `zab` may depend on
//! `tokio`, directly or transitively, through normal dependencies.
//!
//! `Cargo.lock` lists every dependency kind of workspace members together
//! (dev-dependencies too), so for workspace members the normal
//! `[dependencies]` are read from their own `Cargo.toml`; for registry
//! packages the lock file's list is used (it holds their normal and build
//! dependencies, never their dev-dependencies).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const PROTOCOLS: &[&str] = &["raft", "paxos", "multipaxos", "zab"];
const FORBIDDEN: &[&str] = &["tokio"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is inside the workspace")
        .to_path_buf()
}

fn read_toml(path: &Path) -> toml::Table {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Package name -> normal dependency names, for every workspace member.
fn member_dependencies(root: &Path) -> BTreeMap<String, Vec<String>> {
    let manifest = read_toml(&root.join("Cargo.toml"));
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .clone();
    let mut result = BTreeMap::new();
    for member in members {
        let dir = root.join(member.as_str().expect("member path"));
        let path = dir.join("Cargo.toml");
        if !path.exists() {
            continue;
        }
        let manifest = read_toml(&path);
        let name = manifest["package"]["name"]
            .as_str()
            .expect("package.name")
            .to_owned();
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|table| {
                table
                    .iter()
                    .map(|(key, value)| {
                        // `alias = { package = "real-name", .. }`
                        value
                            .get("package")
                            .and_then(|p| p.as_str())
                            .unwrap_or(key)
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        result.insert(name, deps);
    }
    result
}

/// Package name -> dependency names, from `Cargo.lock`.
fn lock_dependencies(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let lock = read_toml(&root.join("Cargo.lock"));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("[[package]]") {
        let name = package["name"].as_str().expect("name").to_owned();
        let deps = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|deps| {
                deps.iter()
                    .filter_map(|d| d.as_str())
                    .map(|d| d.split_whitespace().next().unwrap_or(d).to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        graph.entry(name).or_default().extend(deps);
    }
    graph
}

/// The chain of packages from `start` to a forbidden one, if any.
fn forbidden_path(
    start: &str,
    members: &BTreeMap<String, Vec<String>>,
    lock: &BTreeMap<String, BTreeSet<String>>,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![start.to_owned()]];
    while let Some(path) = stack.pop() {
        let current = path.last().expect("non-empty").clone();
        if FORBIDDEN.contains(&current.as_str()) {
            return Some(path);
        }
        if !seen.insert(current.clone()) {
            continue;
        }
        let next: Vec<String> = match members.get(&current) {
            Some(deps) => deps.clone(),
            None => lock
                .get(&current)
                .map(|d| d.iter().cloned().collect())
                .unwrap_or_default(),
        };
        for dep in next {
            let mut longer = path.clone();
            longer.push(dep);
            stack.push(longer);
        }
    }
    None
}

#[test]
fn protocol_crates_do_not_depend_on_tokio() {
    let root = workspace_root();
    let members = member_dependencies(&root);
    let lock = lock_dependencies(&root);
    let mut checked = 0;
    for protocol in PROTOCOLS {
        if !lock.contains_key(*protocol) {
            eprintln!("note: `{protocol}` is not in Cargo.lock yet; skipped");
            continue;
        }
        checked += 1;
        if let Some(path) = forbidden_path(protocol, &members, &lock) {
            panic!(
                "protocol crate `{protocol}` depends on `{}` through normal dependencies: {}\n\
                 protocol cores are sans-IO (docs/conventions.md): move the I/O to consensus-runtime",
                path.last().unwrap(),
                path.join(" -> ")
            );
        }
    }
    eprintln!("{checked} protocol crate(s) checked: no tokio");
}

#[test]
fn the_check_sees_a_tokio_path() {
    // The checker itself can fail: a synthetic graph with a path to tokio.
    let members = BTreeMap::from([
        (
            "raft".to_owned(),
            vec!["consensus-api".to_owned(), "helper".to_owned()],
        ),
        ("consensus-api".to_owned(), vec!["bytes".to_owned()]),
    ]);
    let lock = BTreeMap::from([
        (
            "helper".to_owned(),
            BTreeSet::from(["mio".to_owned(), "tokio".to_owned()]),
        ),
        ("bytes".to_owned(), BTreeSet::new()),
        // Dev-dependency in the lock: must be ignored for members.
        (
            "raft".to_owned(),
            BTreeSet::from(["consensus-runtime".to_owned()]),
        ),
    ]);
    let path = forbidden_path("raft", &members, &lock).expect("path found");
    assert_eq!(path, ["raft", "helper", "tokio"]);
    let clean = BTreeMap::from([("raft".to_owned(), vec!["consensus-api".to_owned()])]);
    assert_eq!(
        forbidden_path("raft", &clean, &lock),
        None,
        "dev-only tokio is allowed"
    );
}
