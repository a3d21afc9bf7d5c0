//! The vault's operations. Each returns a report for the binary to print; none prints.
//! Every operation that writes records itself in the audit log as its last fallible
//! step, and removes what it wrote if that step fails.
//!
//! * `keys` — `keygen` and `verify`: making a key backup and checking one;
//! * `open` — opening a backup with its passphrase, and the role check;
//! * `export` — `restore` and `provision`: taking a key out of its backup;
//! * `tx` — `tx`, `ladder` and `qr`: signing transactions and showing them.
//!
//! This module keeps what all of them share: the clock, the default manifest path,
//! and the guard of a directory a run creates.

mod export;
mod keys;
mod open;
mod tx;

use std::path::{Path, PathBuf};

use crate::backup;
use crate::error::{Result, VaultError};

pub use export::{
    ProvisionOptions, ProvisionReport, RestoreOptions, RestoreReport, provision, restore,
};
pub(crate) use keys::write_new_backup;
pub use keys::{KeySource, KeygenOptions, KeygenReport, VerifyReport, keygen, verify};
pub(crate) use open::{check_role, open_backup, open_for_role};
pub use tx::{LadderOptions, LadderReport, QrReport, TxOptions, TxReport, ladder, qr, tx};

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn manifest_path(backup: &Path, manifest: Option<&PathBuf>) -> PathBuf {
    manifest
        .cloned()
        .unwrap_or_else(|| backup::manifest_path_for(backup))
}

pub(crate) trait DirMode {
    fn mode_0700(&mut self) -> &mut Self;
}
impl DirMode for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// Removes a directory this run created unless kept (files inside are removed by
/// their own guards first).
pub(crate) struct DirGuard(pub(crate) Option<PathBuf>);
impl DirGuard {
    /// Creates `dir` (mode 0700; it must not exist) and removes it again on drop unless
    /// [`DirGuard::keep`] is called.
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        std::fs::DirBuilder::new()
            .mode_0700()
            .create(dir)
            .map_err(|source| VaultError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self(Some(dir.to_path_buf())))
    }

    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}
impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir(p);
        }
    }
}
