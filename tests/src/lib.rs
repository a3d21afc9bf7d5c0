//! cvx-systest: system tests that start the real binaries (in `tests/`, with the shared
//! devnet helpers of [`devnet`]), and the dependency-boundary checker ([`deps`]) that
//! keeps crate boundaries privilege boundaries.

#![forbid(unsafe_code)]

pub mod deps;
pub mod devnet;
pub mod proc;
pub mod rooms;

use std::path::PathBuf;

/// The workspace's crates, by directory (each has its sources in `<dir>/src`). The
/// source scans (line limit, import cycles, `unsafe`) walk all of them.
pub const CRATE_DIRS: &[&str] = &[
    "protocol",
    "sandbox",
    "signer",
    "consensus",
    "peer",
    "devnet",
    "vault",
    "etch",
    "loadgen",
    "tests",
];

/// The workspace root (this crate lives in `<root>/tests`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or(here.clone(), std::path::Path::to_path_buf)
}

/// Build (once per process) the binaries of `packages` into this test's target dir, in
/// the test's profile, and return the directory that holds them.
///
/// # Panics
/// When the build fails (the message names the command that shows why).
#[must_use]
pub fn built_binaries(packages: &[&str]) -> PathBuf {
    use std::collections::BTreeSet;
    use std::process::Command;
    use std::sync::Mutex;
    // Build each package at most once per test process (tests run in parallel threads).
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<test-exe>
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .map_or(profile_dir.clone(), std::path::Path::to_path_buf);
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let pending: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !built.contains(*p))
        .collect();
    if pending.is_empty() {
        return profile_dir;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "--bins"]);
    for p in &pending {
        cmd.args(["-p", p]);
    }
    cmd.arg("--target-dir").arg(&target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success(),
        "building {} failed: run `cargo build -p {}` to see why",
        packages.join(", "),
        packages.join(" -p ")
    );
    built.extend(pending.iter().map(|p| (*p).to_owned()));
    profile_dir
}
