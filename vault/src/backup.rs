//! age backups: passphrase encryption with an explicit scrypt work factor, the public
//! manifest beside each backup, verification without the passphrase, and decryption
//! whose failures are classified.
//!
//! Why the manifest makes "wrong passphrase" certain: it records the SHA-256 and the
//! length of the ciphertext as written. When the file on disk still has that hash, its
//! bytes are exactly the bytes age produced, so a failure to unwrap the file key can
//! only come from the passphrase. Any damage changes the hash and is reported as
//! damage before a passphrase is even asked for.

use std::io::Read;
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::{DecryptError, Decryptor, Encryptor};
use cvx_protocol::PublicKey;
use serde::{Deserialize, Serialize};

use crate::error::{Damage, Result, VaultError};
use crate::fsio::{read_capped, sha256_hex};
use crate::secret::{KeyPlaintext, Passphrase};

/// The default scrypt work factor (log2 N) for new backups: 0.55 s and 256 MiB here,
/// and what the `age` CLI itself uses.
pub const DEFAULT_LOG_N: u8 = 18;
/// The default maximum work factor decryption accepts.
pub const DEFAULT_MAX_LOG_N: u8 = 20;
/// The lowest work factor the vault writes (test backups only; see docs/vault.md).
pub const MIN_LOG_N: u8 = 10;
/// The highest work factor the vault writes or accepts: the `age` CLI refuses more.
pub const MAX_LOG_N: u8 = 22;
/// Backups and age files are small; anything larger is the wrong file.
pub const CIPHERTEXT_CAP: u64 = 64 * 1024;
/// Manifests are small.
pub const MANIFEST_CAP: u64 = 16 * 1024;
/// The manifest's format name.
pub const MANIFEST_FORMAT: &str = "cvx-vault-backup";
/// The manifest's format version.
pub const MANIFEST_VERSION: u32 = 1;

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A peer's signing key (provisioned into cvx-signer; never signs transactions).
    Peer,
    /// A control-account key (signs transactions; never leaves the vault).
    Account,
}

impl Role {
    /// With its article, for messages.
    #[must_use]
    pub const fn with_article(self) -> &'static str {
        match self {
            Self::Peer => "a peer key",
            Self::Account => "an account key",
        }
    }

    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Account => "account",
        }
    }
}

/// Where a key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// 32 bytes from the OS generator.
    Random,
    /// New BIP-39 words, derived by SLIP-10 at the recorded path.
    Bip39,
    /// Existing BIP-39 words typed in, derived the same way.
    Imported,
    /// Rebuilt from SLIP-39 shares (`shares combine`).
    Slip39,
}

/// The public sidecar of a backup (JSON, no secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// Peer or account key.
    pub role: Role,
    /// The Ed25519 public key in the backup (64 hex digits).
    pub public_key: String,
    /// SHA-256 of the backup file as written (64 hex digits).
    pub ciphertext_sha256: String,
    /// Length of the backup file in bytes.
    pub ciphertext_len: u64,
    /// The scrypt work factor (log2 N) the backup was encrypted with.
    pub scrypt_log_n: u8,
    /// Creation time, seconds since the Unix epoch (UTC).
    pub created_unix: u64,
    /// How the key was made.
    pub origin: Origin,
    /// The SLIP-10 path for BIP-39 keys.
    pub derivation: Option<String>,
}

impl Manifest {
    /// Parse strictly and check every field's form.
    ///
    /// # Errors
    /// [`VaultError::Manifest`] naming the field.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Self, PublicKey)> {
        let bad = |reason: String| VaultError::Manifest {
            path: path.to_owned(),
            reason,
        };
        let m: Self =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {MANIFEST_FORMAT:?}",
                m.format
            )));
        }
        if m.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "version {} is not supported (this vault reads version {MANIFEST_VERSION})",
                m.version
            )));
        }
        let key =
            PublicKey::from_hex(&m.public_key).map_err(|e| bad(format!("public_key: {e}")))?;
        if m.ciphertext_sha256.len() != 64
            || !m.ciphertext_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("ciphertext_sha256 must be 64 hex digits".into()));
        }
        if !(1..64).contains(&m.scrypt_log_n) {
            return Err(bad("scrypt_log_n must be 1..63".into()));
        }
        Ok((m, key))
    }

    /// Pretty JSON with a final newline.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Where the manifest of `backup` lives by default: `<backup>.manifest.json`.
#[must_use]
pub fn manifest_path_for(backup: &Path) -> PathBuf {
    let mut s = backup.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

/// Check a work factor for writing.
///
/// # Errors
/// [`VaultError::Invalid`] outside `MIN_LOG_N..=MAX_LOG_N`.
pub fn check_write_log_n(log_n: u8) -> Result<()> {
    if (MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
        Ok(())
    } else {
        Err(VaultError::invalid(
            "--work-factor",
            format!(
                "{log_n} is outside {MIN_LOG_N}..={MAX_LOG_N} (18 is the default; above {MAX_LOG_N} the age CLI cannot decrypt)"
            ),
        ))
    }
}

fn finish_armored(encryptor: Encryptor, plaintext: &[u8]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| VaultError::Encrypt(e.to_string());
    let mut out = Vec::with_capacity(1024);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(err)?;
    let mut w = encryptor.wrap_output(armor).map_err(err)?;
    std::io::Write::write_all(&mut w, plaintext).map_err(err)?;
    w.finish().and_then(ArmoredWriter::finish).map_err(err)?;
    Ok(out)
}

/// Encrypt a key plaintext with a passphrase at work factor `log_n`, ASCII-armored.
///
/// # Errors
/// [`VaultError::Invalid`] for a work factor out of range, [`VaultError::Encrypt`].
pub fn encrypt_with_passphrase(
    plain: &KeyPlaintext,
    pass: &Passphrase,
    log_n: u8,
) -> Result<Vec<u8>> {
    check_write_log_n(log_n)?;
    let mut r = age::scrypt::Recipient::new(pass.secret());
    r.set_work_factor(log_n);
    let enc = Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        .map_err(|e| VaultError::Encrypt(e.to_string()))?;
    finish_armored(enc, plain.bytes())
}

/// Encrypt a key plaintext to an age X25519 recipient, ASCII-armored.
///
/// # Errors
/// [`VaultError::Encrypt`].
pub fn encrypt_to_recipient(
    plain: &KeyPlaintext,
    recipient: &age::x25519::Recipient,
) -> Result<Vec<u8>> {
    let enc = Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| VaultError::Encrypt(e.to_string()))?;
    finish_armored(enc, plain.bytes())
}

/// Parse an age X25519 recipient (`age1…`).
///
/// # Errors
/// [`VaultError::Invalid`].
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient> {
    s.trim().parse::<age::x25519::Recipient>().map_err(|e| {
        VaultError::invalid(
            "--recipient",
            format!("{e}: expected an age X25519 recipient (age1…)"),
        )
    })
}

/// The scrypt work factor an age file's header asks for, read without any key
/// derivation (None when the file is not a passphrase file or the header is unreadable;
/// age's own parser then gives the precise error).
#[must_use]
pub fn header_log_n(ciphertext: &[u8]) -> Option<u8> {
    let mut head = [0u8; 256];
    let mut r = ArmoredReader::new(ciphertext);
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let text = &head[..n];
    let mut lines = text.split(|&b| b == b'\n');
    if lines.next()? != b"age-encryption.org/v1" {
        return None;
    }
    let stanza = core::str::from_utf8(lines.next()?).ok()?;
    let mut parts = stanza.split(' ');
    if parts.next()? != "->" || parts.next()? != "scrypt" {
        return None;
    }
    let _salt = parts.next()?;
    let log_n = parts.next()?;
    if log_n.is_empty() || log_n.len() > 3 || !log_n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    log_n.parse().ok()
}

/// A backup that matched its manifest.
#[derive(Debug)]
pub struct Checked {
    /// The manifest.
    pub manifest: Manifest,
    /// The manifest's public key.
    pub public_key: PublicKey,
    /// The backup bytes (public: ciphertext).
    pub ciphertext: Vec<u8>,
}

/// Verify a backup against its manifest without the passphrase: length, then SHA-256.
///
/// # Errors
/// [`VaultError::Manifest`], [`VaultError::Damaged`], read errors.
pub fn verify(backup: &Path, manifest_path: &Path) -> Result<Checked> {
    let mbytes = read_capped(manifest_path, MANIFEST_CAP).map_err(|e| match e {
        VaultError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => VaultError::Manifest {
            path: manifest_path.to_owned(),
            reason: "not found (pass --manifest PATH, or --no-manifest to decrypt without one; then a failed decrypt cannot be told from damage)".into(),
        },
        other => other,
    })?;
    let (manifest, public_key) = Manifest::parse(manifest_path, &mbytes)?;
    let ciphertext = read_capped(backup, CIPHERTEXT_CAP).map_err(|e| match e {
        VaultError::TooLarge { path, .. } => VaultError::Damaged {
            path,
            damage: Damage::Extended,
        },
        other => other,
    })?;
    let len = ciphertext.len() as u64;
    let damage = if len < manifest.ciphertext_len {
        Some(Damage::Truncated)
    } else if len > manifest.ciphertext_len {
        Some(Damage::Extended)
    } else if !sha256_hex(&ciphertext).eq_ignore_ascii_case(&manifest.ciphertext_sha256) {
        Some(Damage::Altered)
    } else {
        None
    };
    if let Some(damage) = damage {
        return Err(VaultError::Damaged {
            path: backup.to_owned(),
            damage,
        });
    }
    Ok(Checked {
        manifest,
        public_key,
        ciphertext,
    })
}

/// Decrypt a passphrase backup. `matched` says the bytes matched their manifest (then a
/// failed unwrap is certainly a wrong passphrase). The work factor is checked against
/// `max_log_n` before any derivation.
///
/// # Errors
/// [`VaultError::WorkFactor`], [`VaultError::WrongPassphrase`],
/// [`VaultError::DecryptFailed`], [`VaultError::Malformed`].
pub fn decrypt_with_passphrase(
    path: &Path,
    ciphertext: &[u8],
    pass: &Passphrase,
    max_log_n: u8,
    matched: bool,
) -> Result<KeyPlaintext> {
    if let Some(required) = header_log_n(ciphertext)
        && required > max_log_n
    {
        return Err(VaultError::WorkFactor {
            path: path.to_owned(),
            required,
            max: max_log_n,
        });
    }
    let mut id = age::scrypt::Identity::new(pass.secret());
    id.set_max_work_factor(max_log_n);
    decrypt(path, ciphertext, &id, max_log_n, matched)
}

/// Decrypt with an age X25519 identity (tests and provisioning checks).
///
/// # Errors
/// As [`decrypt_with_passphrase`].
pub fn decrypt_with_identity(
    path: &Path,
    ciphertext: &[u8],
    id: &age::x25519::Identity,
) -> Result<KeyPlaintext> {
    decrypt(path, ciphertext, id, 0, false)
}

/// Classify "the file key did not unwrap": certain with a matching manifest.
fn unwrap_failed(path: &Path, matched: bool) -> VaultError {
    if matched {
        VaultError::WrongPassphrase(path.to_owned())
    } else {
        VaultError::DecryptFailed(path.to_owned())
    }
}

fn decrypt(
    path: &Path,
    ciphertext: &[u8],
    id: &dyn age::Identity,
    max_log_n: u8,
    matched: bool,
) -> Result<KeyPlaintext> {
    let malformed = |reason: String| VaultError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let classify = |e: DecryptError| match e {
        DecryptError::ExcessiveWork { required, .. } => VaultError::WorkFactor {
            path: path.to_owned(),
            required,
            max: max_log_n,
        },
        DecryptError::DecryptionFailed
        | DecryptError::NoMatchingKeys
        | DecryptError::KeyDecryptionFailed
        | DecryptError::InvalidMac => unwrap_failed(path, matched),
        DecryptError::InvalidHeader => malformed("the age header is invalid".into()),
        DecryptError::UnknownFormat => {
            malformed("not an age v1 file (or a newer age format)".into())
        }
        DecryptError::Io(e) => malformed(format!("unreadable armor or header ({e})")),
        other => malformed(other.to_string()),
    };
    let decryptor = Decryptor::new(ArmoredReader::new(ciphertext)).map_err(classify)?;
    let mut reader = decryptor.decrypt(std::iter::once(id)).map_err(classify)?;
    // Decrypt straight into locked memory of fixed size, one byte longer than a key
    // file, so the plaintext is never reallocated (no stray copies) and an over-long
    // one shows.
    let mut plain = KeyPlaintext::empty()?;
    plain.fill_with(|buf| {
        let mut n = 0;
        while n < buf.len() {
            match reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    // The header (and so the passphrase) was right; the payload is damaged.
                    return Err(malformed(format!(
                        "the header decrypted but the encrypted payload is damaged or truncated ({e})"
                    )));
                }
            }
        }
        Ok(n)
    })?;
    Ok(plain)
}
