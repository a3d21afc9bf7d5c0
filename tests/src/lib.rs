//! cvx-systest: system tests that start the real binaries (in `tests/`), and the
//! dependency-boundary checker ([`deps`]) that keeps crate boundaries privilege
//! boundaries.

#![forbid(unsafe_code)]

pub mod deps;

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/tests`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or(here.clone(), std::path::Path::to_path_buf)
}
