//! Opening a backup with its passphrase (checked against its manifest, its work
//! factor bounded, the key compared), and checking that a backup holds the right role.

use std::path::{Path, PathBuf};

use cvx_protocol::PublicKey;

use super::manifest_path;
use crate::backup::{self, Checked, Role};
use crate::error::{Result, VaultError};
use crate::fsio;
use crate::prompt::Operator;
use crate::secret::{KeyPlaintext, Seed};

/// Decrypt a backup that matched its manifest (or, with `no_manifest`, any passphrase
/// age file) into the key plaintext, checking the key.
pub(crate) fn open_backup(
    op: &mut dyn Operator,
    backup_path: &Path,
    manifest: Option<&PathBuf>,
    no_manifest: bool,
    max: u8,
) -> Result<(KeyPlaintext, Seed, PublicKey, Option<Checked>)> {
    let checked = if no_manifest {
        None
    } else {
        let c = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
        if c.manifest.scrypt_log_n > max {
            return Err(VaultError::WorkFactor {
                path: backup_path.to_owned(),
                required: c.manifest.scrypt_log_n,
                max,
            });
        }
        Some(c)
    };
    let ciphertext = match &checked {
        Some(c) => c.ciphertext.clone(),
        None => fsio::read_capped(backup_path, backup::CIPHERTEXT_CAP)?,
    };
    if let Some(required) = backup::header_log_n(&ciphertext)
        && required > max
    {
        return Err(VaultError::WorkFactor {
            path: backup_path.to_owned(),
            required,
            max,
        });
    }
    let pass = op.passphrase(&backup_path.display().to_string())?;
    let plain =
        backup::decrypt_with_passphrase(backup_path, &ciphertext, &pass, max, checked.is_some())?;
    let (seed, public) = plain.open(backup_path)?;
    if let Some(c) = &checked
        && c.public_key != public
    {
        return Err(VaultError::KeyMismatch {
            path: backup_path.to_owned(),
            reason: format!(
                "the backup holds key {public}, but the manifest names {} (wrong manifest for this backup?)",
                c.public_key
            ),
        });
    }
    Ok((plain, seed, public, checked))
}

pub(crate) fn open_for_role(
    op: &mut dyn Operator,
    backup_path: &Path,
    manifest: Option<&PathBuf>,
    max: u8,
    role: Role,
) -> Result<(KeyPlaintext, Seed, PublicKey)> {
    let pre = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
    check_role(backup_path, pre.manifest.role, role)?;
    let (plain, seed, public, _) = open_backup(op, backup_path, manifest, false, max)?;
    Ok((plain, seed, public))
}

pub(crate) fn check_role(path: &Path, found: Role, needed: Role) -> Result<()> {
    if found != needed {
        return Err(VaultError::Role {
            path: path.to_owned(),
            found: found.with_article(),
            needed: needed.with_article(),
        });
    }
    Ok(())
}
