//! Taking a key out of its backup: `restore` (to a plaintext key file) and `provision`
//! (encrypted to a signer host's age recipient).

use std::path::PathBuf;

use cvx_protocol::PublicKey;

use super::open::{open_backup, open_for_role};
use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Role};
use crate::error::{Result, VaultError};
use crate::fsio::{self, PUBLIC_MODE, SECRET_MODE};
use crate::prompt::Operator;

/// `restore` options.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The backup.
    pub backup: PathBuf,
    /// Its manifest (default beside it).
    pub manifest: Option<PathBuf>,
    /// Decrypt without a manifest (a failure is then unclassified).
    pub no_manifest: bool,
    /// Where to write the plaintext key file.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `restore` did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The restored key.
    pub public_key: PublicKey,
    /// Whether a manifest was checked.
    pub manifest_checked: bool,
    /// The key file written.
    pub out: PathBuf,
    /// The audit head.
    pub audit: Summary,
}

/// Restore a backup to a plaintext key file (0600, created new unless `force`).
///
/// # Errors
/// Any [`VaultError`]; no key is written on failure.
pub fn restore(
    audit: &AuditLog,
    op: &mut dyn Operator,
    o: &RestoreOptions,
) -> Result<RestoreReport> {
    if !o.force {
        fsio::ensure_absent(&o.out)?;
    } else if let (Ok(out), Ok(backup)) = (
        std::fs::canonicalize(&o.out),
        std::fs::canonicalize(&o.backup),
    ) && out == backup
    {
        return Err(VaultError::invalid(
            "--out",
            "is the backup itself; --force would replace the encrypted backup with the plaintext key",
        ));
    }
    audit.verify()?;
    let ciphertext_hash;
    let (plain, _seed, public_key, checked) = {
        let r = open_backup(
            op,
            &o.backup,
            o.manifest.as_ref(),
            o.no_manifest,
            o.max_work_factor,
        )?;
        ciphertext_hash = r.3.as_ref().map(|c| fsio::sha256_hex(&c.ciphertext));
        r
    };
    let w = fsio::write_file(&o.out, plain.bytes(), SECRET_MODE, o.force)?;
    let mut e = Entry::new("restore", Some(public_key.to_hex()));
    e.files.push(crate::audit::FileRef {
        access: "read".into(),
        path: o.backup.display().to_string(),
        sha256: ciphertext_hash.unwrap_or_else(|| "unchecked (no manifest)".into()),
    });
    e.detail("out", o.out.display().to_string());
    e.detail("manifest_checked", checked.is_some().to_string());
    let summary = audit.append(e)?;
    w.keep();
    Ok(RestoreReport {
        public_key,
        manifest_checked: checked.is_some(),
        out: o.out.clone(),
        audit: summary,
    })
}

/// `provision` options.
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// The peer key backup.
    pub backup: PathBuf,
    /// Its manifest.
    pub manifest: Option<PathBuf>,
    /// The signer host's age recipient (`age1…`).
    pub recipient: String,
    /// The file to write.
    pub out: PathBuf,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `provision` did.
#[derive(Clone, Debug)]
pub struct ProvisionReport {
    /// The peer key.
    pub public_key: PublicKey,
    /// The recipient.
    pub recipient: String,
    /// The file written.
    pub out: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// The audit head.
    pub audit: Summary,
}

/// Export a peer key for a signer host, encrypted to its age X25519 recipient.
///
/// # Errors
/// Any [`VaultError`].
pub fn provision(
    audit: &AuditLog,
    op: &mut dyn Operator,
    o: &ProvisionOptions,
) -> Result<ProvisionReport> {
    let recipient = backup::parse_recipient(&o.recipient)?;
    fsio::ensure_absent(&o.out)?;
    audit.verify()?;
    let (plain, _seed, public_key) = open_for_role(
        op,
        &o.backup,
        o.manifest.as_ref(),
        o.max_work_factor,
        Role::Peer,
    )?;
    let ct = backup::encrypt_to_recipient(&plain, &recipient)?;
    let w = fsio::write_new(&o.out, &ct, PUBLIC_MODE)?;
    let sha = fsio::sha256_hex(&ct);
    let mut e = Entry::new("provision", Some(public_key.to_hex()));
    e.file("wrote", &o.out, &ct);
    e.detail("recipient", recipient.to_string());
    let summary = audit.append(e)?;
    w.keep();
    Ok(ProvisionReport {
        public_key,
        recipient: recipient.to_string(),
        out: o.out.clone(),
        sha256: sha,
        audit: summary,
    })
}
