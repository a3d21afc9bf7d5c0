//! Making and checking key backups: `keygen` (a new key, its passphrase backup and
//! manifest) and `verify` (a backup against its manifest, without a passphrase).

use std::path::{Path, PathBuf};

use cvx_protocol::PublicKey;

use super::{manifest_path, now_unix};
use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Manifest, Origin, Role};
use crate::error::{Result, VaultError};
use crate::fsio::{self, PUBLIC_MODE, SECRET_MODE};
use crate::mnemonic::{CONVEX_PATH_TEXT, Words};
use crate::prompt::Operator;
use crate::secret::Seed;

/// Where new keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// OS randomness.
    Random,
    /// New BIP-39 words (shown once on the terminal, retyped).
    NewWords,
    /// Existing BIP-39 words.
    ImportWords,
}

/// `keygen` options.
#[derive(Clone, Debug)]
pub struct KeygenOptions {
    /// Peer or account.
    pub role: Role,
    /// Random or words.
    pub source: KeySource,
    /// The backup to write.
    pub backup: PathBuf,
    /// The manifest to write (default: beside the backup).
    pub manifest: Option<PathBuf>,
    /// scrypt log2 N.
    pub work_factor: u8,
}

/// What `keygen` did.
#[derive(Clone, Debug)]
pub struct KeygenReport {
    /// The new public key.
    pub public_key: PublicKey,
    /// The backup written.
    pub backup: PathBuf,
    /// The manifest written.
    pub manifest: PathBuf,
    /// The audit head after the record.
    pub audit: Summary,
}

/// Generate a key and write its passphrase backup and manifest.
///
/// # Errors
/// Any [`VaultError`]; nothing is left behind on failure.
pub fn keygen(audit: &AuditLog, op: &mut dyn Operator, o: &KeygenOptions) -> Result<KeygenReport> {
    backup::check_write_log_n(o.work_factor)?;
    let mpath = manifest_path(&o.backup, o.manifest.as_ref());
    fsio::ensure_absent(&o.backup)?;
    fsio::ensure_absent(&mpath)?;
    audit.verify()?;
    let (seed, origin): (Seed, Origin) = match o.source {
        KeySource::Random => (Seed::random()?, Origin::Random),
        KeySource::NewWords => {
            let words = Words::generate()?;
            op.show_words(&words)?;
            (words.seed()?, Origin::Bip39)
        }
        KeySource::ImportWords => (op.existing_words()?.seed()?, Origin::Imported),
    };
    let nb = write_new_backup(op, &seed, o.role, origin, &o.backup, &mpath, o.work_factor)?;
    let (public_key, ciphertext, mjson) = (nb.public_key, &nb.ciphertext, &nb.manifest_json);
    let mut e = Entry::new("keygen", Some(public_key.to_hex()));
    e.file("wrote", &o.backup, ciphertext);
    e.file("wrote", &mpath, mjson);
    e.detail("role", o.role.name());
    e.detail("origin", format!("{origin:?}").to_lowercase());
    e.detail("scrypt_log_n", o.work_factor.to_string());
    let summary = audit.append(e)?;
    nb.keep();
    Ok(KeygenReport {
        public_key,
        backup: o.backup.clone(),
        manifest: mpath,
        audit: summary,
    })
}

/// A backup and its manifest just written (removed again on drop unless kept).
pub(crate) struct NewBackup {
    /// The key in it.
    pub(crate) public_key: PublicKey,
    /// The backup's bytes.
    pub(crate) ciphertext: Vec<u8>,
    /// The manifest's bytes.
    pub(crate) manifest_json: Vec<u8>,
    written: [fsio::Written; 2],
}

impl NewBackup {
    /// Keep both files (after the audit record was written).
    pub(crate) fn keep(self) {
        for w in self.written {
            w.keep();
        }
    }
}

/// Ask for a new passphrase, encrypt `seed`'s key file with it, check that the fresh
/// backup decrypts to the same key, and write the backup and its manifest (both
/// created new). Shared by `keygen` and `shares combine`.
///
/// # Errors
/// Any [`VaultError`]; nothing is left behind on failure.
pub(crate) fn write_new_backup(
    op: &mut dyn Operator,
    seed: &Seed,
    role: Role,
    origin: Origin,
    backup_path: &Path,
    mpath: &Path,
    work_factor: u8,
) -> Result<NewBackup> {
    let public_key = seed.public_key()?;
    let pass = op.new_passphrase(&format!(
        "the {} key backup {}",
        role.name(),
        backup_path.display()
    ))?;
    let plain = seed.key_plaintext()?;
    let ciphertext = backup::encrypt_with_passphrase(&plain, &pass, work_factor)?;
    // A backup that was never decrypted is not a backup: check it now.
    let back = backup::decrypt_with_passphrase(backup_path, &ciphertext, &pass, work_factor, true)?;
    let (_, check) = back.open(backup_path)?;
    if check != public_key {
        return Err(VaultError::KeyMismatch {
            path: backup_path.to_owned(),
            reason: "the fresh backup decrypts to another key".into(),
        });
    }
    let manifest = Manifest {
        format: backup::MANIFEST_FORMAT.into(),
        version: backup::MANIFEST_VERSION,
        role,
        public_key: public_key.to_hex(),
        ciphertext_sha256: fsio::sha256_hex(&ciphertext),
        ciphertext_len: ciphertext.len() as u64,
        scrypt_log_n: work_factor,
        created_unix: now_unix(),
        origin,
        derivation: matches!(origin, Origin::Bip39 | Origin::Imported)
            .then(|| CONVEX_PATH_TEXT.to_owned()),
    };
    let mjson = manifest.to_json();
    let w1 = fsio::write_new(backup_path, &ciphertext, SECRET_MODE)?;
    let w2 = fsio::write_new(mpath, &mjson, PUBLIC_MODE)?;
    Ok(NewBackup {
        public_key,
        ciphertext,
        manifest_json: mjson,
        written: [w1, w2],
    })
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The manifest.
    pub manifest: Manifest,
    /// Its public key.
    pub public_key: PublicKey,
}

/// Verify a backup against its manifest, without a passphrase.
///
/// # Errors
/// [`VaultError::Damaged`], [`VaultError::Manifest`], read errors.
pub fn verify(backup_path: &Path, manifest: Option<&PathBuf>) -> Result<VerifyReport> {
    let c = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
    if let Some(n) = backup::header_log_n(&c.ciphertext)
        && n != c.manifest.scrypt_log_n
    {
        return Err(VaultError::Manifest {
            path: manifest_path(backup_path, manifest),
            reason: format!(
                "records work factor {} but the backup's header says {n}",
                c.manifest.scrypt_log_n
            ),
        });
    }
    Ok(VerifyReport {
        manifest: c.manifest,
        public_key: c.public_key,
    })
}
