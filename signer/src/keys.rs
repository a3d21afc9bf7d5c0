//! The peer key: an age-encrypted file whose plaintext is the 72-byte
//! `cvx_protocol::keyfile` layout, decrypted straight into locked memory.
//!
//! The age stream decrypts chunk by chunk into its own zeroize-on-drop buffer; we
//! `read_exact` the 72 bytes into the scratch area of a [`Locked`] mapping, derive the
//! `SigningKey` there, check it against the recorded public key, and the scratch is
//! wiped. No `Vec` of the plaintext exists. The passphrase lives in age's
//! `SecretString` (zeroized on drop) and never comes from argv or the environment.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use cvx_protocol::PublicKey;
use cvx_protocol::keyfile::{self, KeyFileError};
use cvx_sandbox::{Locked, LockedError, Prefer};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::config::KeySource;

/// The largest scrypt work factor (log2 N) accepted when decrypting, pinned so that
/// debug and release builds (and every machine) accept the same files: 2^20 needs
/// 1 GiB and about 2 s. cvx-vault writes 18 by default.
pub const MAX_SCRYPT_LOG_N: u8 = 20;
/// The work factor `keygen --passphrase-fd` uses unless told otherwise.
pub const DEFAULT_SCRYPT_LOG_N: u8 = 18;
/// Longest passphrase accepted.
pub const MAX_PASSPHRASE: usize = 1024;

/// Why the key could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Cannot open or read.
    #[error("cannot read {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or world can read or write it.
    #[error(
        "{path} has mode {mode:o}: a key or identity file must not be accessible by group or others (chmod 600 {path})"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Owned by someone else.
    #[error(
        "{path} is owned by uid {owner}, but the signer runs as uid {euid}: chown it to the signer's user"
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our uid.
        euid: u32,
    },
    /// Not an age file.
    #[error("{path} is not an age-encrypted file ({detail})")]
    NotAge {
        /// The file.
        path: PathBuf,
        /// age's message.
        detail: String,
    },
    /// Passphrase file but identity configured, or the reverse.
    #[error(
        "{path} is encrypted {found}, but the config says {configured}; fix [key] in the config"
    )]
    WrongSource {
        /// The file.
        path: PathBuf,
        /// What the file is.
        found: &'static str,
        /// What the config expects.
        configured: &'static str,
    },
    /// Wrong passphrase.
    #[error("wrong passphrase for {path} (nothing was decrypted)")]
    WrongPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// The identity does not open the file.
    #[error(
        "{path} is not encrypted to the configured identity (wrong identity, or the key was provisioned for another host)"
    )]
    NoMatchingIdentity {
        /// The file.
        path: PathBuf,
    },
    /// scrypt work factor above the pinned maximum.
    #[error(
        "{path} uses scrypt work factor {required}, above the accepted maximum {MAX_SCRYPT_LOG_N}; re-encrypt it with a lower one"
    )]
    ExcessiveWork {
        /// The file.
        path: PathBuf,
        /// Its work factor.
        required: u8,
    },
    /// Other decryption failure.
    #[error("decrypting {path} failed: {detail}")]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// age's message.
        detail: String,
    },
    /// The plaintext is not a cvx key.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: KeyFileError,
    },
    /// The seed does not derive the recorded public key.
    #[error(
        "{path}: the seed does not derive the public key recorded next to it (damaged or forged key file)"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
    },
    /// The identity file is unusable.
    #[error("identity {path}: {detail}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The passphrase could not be read.
    #[error("cannot read the passphrase: {0}")]
    Passphrase(String),
    /// Locked memory could not be set up.
    #[error("{0}")]
    Memory(String),
    /// Could not generate a key.
    #[error("the OS random generator failed: {0}")]
    Random(String),
    /// Could not write a new file.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Open a secret file after checking it: a regular file (no symlink), owned by this
/// uid, no group/other permission bits.
///
/// # Errors
/// [`KeyError::Open`], [`KeyError::Permissions`], [`KeyError::Owner`].
pub fn open_secret_file(path: &Path) -> Result<File, KeyError> {
    let open_err = |source| KeyError::Open {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(open_err)?;
    let md = f.metadata().map_err(open_err)?;
    if !md.is_file() {
        return Err(open_err(std::io::Error::other("not a regular file")));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let euid = crate::euid();
    if md.uid() != euid {
        return Err(KeyError::Owner {
            path: path.to_owned(),
            owner: md.uid(),
            euid,
        });
    }
    Ok(f)
}

/// Read a passphrase from descriptor `fd` (up to EOF or the first newline).
///
/// # Errors
/// [`KeyError::Passphrase`].
pub fn passphrase_from_fd(fd: i32) -> Result<SecretString, KeyError> {
    // Reopening /proc/self/fd/N gives a file on the same pipe or file without taking
    // ownership of N.
    let mut f = File::open(format!("/proc/self/fd/{fd}"))
        .map_err(|e| KeyError::Passphrase(format!("descriptor {fd} is not open: {e}")))?;
    read_passphrase(&mut f)
}

fn read_passphrase(r: &mut impl Read) -> Result<SecretString, KeyError> {
    let mut buf = Zeroizing::new([0u8; MAX_PASSPHRASE + 1]);
    let mut n = 0;
    loop {
        let got = r
            .read(&mut buf[n..])
            .map_err(|e| KeyError::Passphrase(e.to_string()))?;
        if got == 0 {
            break;
        }
        n += got;
        if buf[..n].contains(&b'\n') || n > MAX_PASSPHRASE {
            break;
        }
    }
    let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_PASSPHRASE {
        return Err(KeyError::Passphrase(format!(
            "longer than {MAX_PASSPHRASE} bytes"
        )));
    }
    if line.is_empty() {
        return Err(KeyError::Passphrase("empty passphrase".to_owned()));
    }
    let s = core::str::from_utf8(line).map_err(|_| KeyError::Passphrase("not UTF-8".to_owned()))?;
    Ok(SecretString::from(s.to_owned()))
}

/// Read a passphrase from the controlling terminal, echo off.
///
/// # Errors
/// [`KeyError::Passphrase`] when there is no terminal.
pub fn passphrase_from_tty(prompt: &str) -> Result<SecretString, KeyError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            KeyError::Passphrase(format!(
                "no terminal ({e}); pass it with --passphrase-fd N, or use an identity ([key] identity_file)"
            ))
        })?;
    let old = tcgetattr(&tty).map_err(|e| KeyError::Passphrase(e.to_string()))?;
    let mut quiet = old.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).map_err(|e| KeyError::Passphrase(e.to_string()))?;
    let _ = write!(tty, "{prompt}");
    let r = read_passphrase(&mut tty);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &old);
    let _ = writeln!(tty);
    r
}

/// Where the passphrase comes from, when the key file needs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassphraseFrom {
    /// The controlling terminal.
    Tty,
    /// A descriptor (`--passphrase-fd N`).
    Fd(i32),
}

fn identities_from(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, KeyError> {
    let f = open_secret_file(path)?;
    let file =
        age::IdentityFile::from_buffer(BufReader::new(f)).map_err(|e| KeyError::Identity {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    let ids = file.into_identities().map_err(|e| KeyError::Identity {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if ids.is_empty() {
        return Err(KeyError::Identity {
            path: path.to_owned(),
            detail: "holds no identity (expected an AGE-SECRET-KEY-1... line)".to_owned(),
        });
    }
    Ok(ids)
}

fn map_decrypt(path: &Path, e: age::DecryptError, scrypt: bool) -> KeyError {
    let path = path.to_owned();
    match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed if scrypt => {
            KeyError::WrongPassphrase { path }
        }
        age::DecryptError::NoMatchingKeys if scrypt => KeyError::WrongPassphrase { path },
        age::DecryptError::NoMatchingKeys => KeyError::NoMatchingIdentity { path },
        age::DecryptError::ExcessiveWork { required, .. } => {
            KeyError::ExcessiveWork { path, required }
        }
        other => KeyError::Decrypt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Decrypt the key file into locked memory and return the signing key living there.
///
/// # Errors
/// [`KeyError`] naming the problem; nothing is written anywhere.
pub fn load(
    path: &Path,
    source: &KeySource,
    passphrase: PassphraseFrom,
) -> Result<Locked<SigningKey>, KeyError> {
    let f = open_secret_file(path)?;
    // An age-encrypted cvx key is a few hundred bytes; never read more than 64 KiB.
    let mut ciphertext = Vec::new();
    f.take(64 * 1024 + 1)
        .read_to_end(&mut ciphertext)
        .map_err(|source| KeyError::Open {
            path: path.to_owned(),
            source,
        })?;
    if ciphertext.len() > 64 * 1024 {
        return Err(KeyError::NotAge {
            path: path.to_owned(),
            detail: "larger than 64 KiB; a cvx key file is a few hundred bytes".to_owned(),
        });
    }
    let decryptor =
        age::Decryptor::new_buffered(ciphertext.as_slice()).map_err(|e| KeyError::NotAge {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    let scrypt = decryptor.is_scrypt();
    let reader = match (source, scrypt) {
        (KeySource::Passphrase, true) => {
            let pass = match passphrase {
                PassphraseFrom::Tty => {
                    passphrase_from_tty(&format!("passphrase for {}: ", path.display()))?
                }
                PassphraseFrom::Fd(fd) => passphrase_from_fd(fd)?,
            };
            let mut id = age::scrypt::Identity::new(pass);
            id.set_max_work_factor(MAX_SCRYPT_LOG_N);
            decryptor
                .decrypt(core::iter::once(&id as &dyn age::Identity))
                .map_err(|e| map_decrypt(path, e, true))?
        }
        (KeySource::Identity(idpath), false) => {
            let ids = identities_from(idpath)?;
            decryptor
                .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .map_err(|e| map_decrypt(path, e, false))?
        }
        (KeySource::Passphrase, false) => {
            return Err(KeyError::WrongSource {
                path: path.to_owned(),
                found: "to an age identity",
                configured: "passphrase",
            });
        }
        (KeySource::Identity(_), true) => {
            return Err(KeyError::WrongSource {
                path: path.to_owned(),
                found: "with a passphrase",
                configured: "identity",
            });
        }
    };
    decrypt_into_locked(path, reader)
}

fn decrypt_into_locked(path: &Path, mut reader: impl Read) -> Result<Locked<SigningKey>, KeyError> {
    let fmt_err = |source| KeyError::Format {
        path: path.to_owned(),
        source,
    };
    Locked::new_with(keyfile::LEN + 1, Prefer::Auto, |scratch: &mut [u8]| {
        let (plain, extra) = scratch.split_at_mut(keyfile::LEN);
        let mut n = 0;
        while n < keyfile::LEN {
            match reader.read(&mut plain[n..]) {
                Ok(0) => return Err(fmt_err(KeyFileError::Length(n))),
                Ok(k) => n += k,
                Err(e) => {
                    return Err(KeyError::Decrypt {
                        path: path.to_owned(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        if reader.read(extra).map_err(|e| KeyError::Decrypt {
            path: path.to_owned(),
            detail: e.to_string(),
        })? != 0
        {
            return Err(fmt_err(KeyFileError::Length(keyfile::LEN + 1)));
        }
        let recorded = keyfile::public_key(plain).map_err(fmt_err)?;
        let seed: &[u8; 32] = plain[keyfile::SEED]
            .try_into()
            .map_err(|_| fmt_err(KeyFileError::Length(plain.len())))?;
        let key = SigningKey::from_bytes(seed);
        if key.verifying_key().as_bytes() != recorded.as_bytes() {
            return Err(KeyError::Mismatch {
                path: path.to_owned(),
            });
        }
        Ok(key)
    })
    .map_err(|e| match e {
        LockedError::Init(k) => k,
        other => KeyError::Memory(other.to_string()),
    })
}

/// The public key of a locked signing key.
#[must_use]
pub fn public_key(key: &SigningKey) -> PublicKey {
    // A key derived by ed25519-dalek from a seed is never a small-order point; the
    // fallback is unreachable but keeps this total.
    PublicKey::from_bytes(key.verifying_key().as_bytes()).unwrap_or_else(|_| {
        tracing::error!("derived public key rejected; refusing");
        std::process::abort()
    })
}

/// How `keygen` encrypts the new key.
#[derive(Debug)]
pub enum KeygenTarget {
    /// To an age X25519 recipient (`age1...`).
    Recipient(String),
    /// To an existing identity file's recipient.
    Identity(PathBuf),
    /// To a new identity, written (mode 0600) to this path.
    NewIdentity(PathBuf),
    /// With a passphrase read from a descriptor, at this scrypt work factor.
    Passphrase {
        /// The descriptor.
        fd: i32,
        /// log2 of scrypt's N.
        log_n: u8,
    },
}

fn create_private(path: &Path) -> Result<File, KeyError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| KeyError::Write {
            path: path.to_owned(),
            source,
        })
}

/// Generate a new key (seed from the OS, in locked memory) and write it, age-encrypted,
/// to `out` (created new, mode 0600). For tests and the devnet; operators use cvx-vault,
/// which writes the same format.
///
/// # Errors
/// [`KeyError`]; an existing `out` is never overwritten.
pub fn keygen(out: &Path, target: &KeygenTarget) -> Result<PublicKey, KeyError> {
    let recipient: Box<dyn age::Recipient> = match target {
        KeygenTarget::Recipient(r) => Box::new(r.parse::<age::x25519::Recipient>().map_err(
            |e| KeyError::Identity {
                path: PathBuf::from(r),
                detail: e.to_string(),
            },
        )?),
        KeygenTarget::Identity(p) => {
            let text =
                Zeroizing::new(std::fs::read_to_string(p).map_err(|source| KeyError::Open {
                    path: p.clone(),
                    source,
                })?);
            let id = text
                .lines()
                .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                .and_then(|l| l.trim().parse::<age::x25519::Identity>().ok())
                .ok_or_else(|| KeyError::Identity {
                    path: p.clone(),
                    detail: "no AGE-SECRET-KEY-1 line".to_owned(),
                })?;
            Box::new(id.to_public())
        }
        KeygenTarget::NewIdentity(p) => {
            let id = age::x25519::Identity::generate();
            let mut f = create_private(p)?;
            let text = id.to_string();
            writeln!(f, "# cvx-signer identity; recipient: {}", id.to_public())
                .and_then(|()| writeln!(f, "{}", text.expose_secret()))
                .and_then(|()| f.sync_all())
                .map_err(|source| KeyError::Write {
                    path: p.clone(),
                    source,
                })?;
            Box::new(id.to_public())
        }
        KeygenTarget::Passphrase { fd, log_n } => {
            let mut r = age::scrypt::Recipient::new(passphrase_from_fd(*fd)?);
            r.set_work_factor(*log_n);
            Box::new(r)
        }
    };
    let encryptor =
        age::Encryptor::with_recipients(core::iter::once(recipient.as_ref())).map_err(|e| {
            KeyError::Decrypt {
                path: out.to_owned(),
                detail: e.to_string(),
            }
        })?;
    let file = create_private(out)?;
    let write_err = |source| KeyError::Write {
        path: out.to_owned(),
        source,
    };
    let locked = Locked::new_with(keyfile::LEN, Prefer::Auto, |plain: &mut [u8]| {
        getrandom::fill(&mut plain[keyfile::SEED]).map_err(|e| KeyError::Random(e.to_string()))?;
        let seed: &[u8; 32] = plain[keyfile::SEED]
            .try_into()
            .map_err(|_| KeyError::Random("seed slice".to_owned()))?;
        let key = SigningKey::from_bytes(seed);
        let public = public_key(&key);
        keyfile::frame(plain, &public).map_err(|source| KeyError::Format {
            path: out.to_owned(),
            source,
        })?;
        let mut w = encryptor.wrap_output(&file).map_err(write_err)?;
        w.write_all(plain).map_err(write_err)?;
        w.finish().map_err(write_err)?;
        Ok(public)
    })
    .map_err(|e| match e {
        LockedError::Init(k) => k,
        other => KeyError::Memory(other.to_string()),
    })?;
    file.sync_all().map_err(write_err)?;
    Ok(*locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_parsing() {
        let p = read_passphrase(&mut &b"hunter2\nrest"[..]).unwrap();
        assert_eq!(p.expose_secret(), "hunter2");
        let p = read_passphrase(&mut &b"pw\r\n"[..]).unwrap();
        assert_eq!(p.expose_secret(), "pw");
        assert!(read_passphrase(&mut &b"\n"[..]).is_err());
        assert!(read_passphrase(&mut &[b'a'; 2000][..]).is_err());
    }
}
