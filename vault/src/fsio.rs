//! File reading with caps, and writing that never overwrites silently and never leaves
//! a partial file behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, VaultError};

/// Mode of files that hold a secret (plaintext keys).
pub const SECRET_MODE: u32 = 0o600;
/// Mode of public files (encrypted backups, manifests, signed transactions).
pub const PUBLIC_MODE: u32 = 0o644;

/// Read a whole file, refusing one longer than `cap` before reading it.
///
/// # Errors
/// [`VaultError::Read`] or [`VaultError::TooLarge`].
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let read_err = |source| VaultError::Read {
        path: path.to_owned(),
        source,
    };
    let f = File::open(path).map_err(read_err)?;
    let len = f.metadata().map_err(read_err)?.len();
    if len > cap {
        return Err(VaultError::TooLarge {
            path: path.to_owned(),
            len,
            cap,
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take` guards against a file that grows while we read it.
    f.take(cap + 1).read_to_end(&mut out).map_err(read_err)?;
    if out.len() as u64 > cap {
        return Err(VaultError::TooLarge {
            path: path.to_owned(),
            len: out.len() as u64,
            cap,
        });
    }
    Ok(out)
}

/// SHA-256 in lower-case hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuse when `path` exists (checked up front so a multi-file command writes nothing).
///
/// # Errors
/// [`VaultError::Exists`].
pub fn ensure_absent(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(VaultError::Exists(path.to_owned()));
    }
    Ok(())
}

/// A file written by this run; removed again unless [`Written::keep`] is called (so a
/// failure part-way through a multi-file command leaves nothing behind).
#[derive(Debug)]
pub struct Written {
    path: PathBuf,
    keep: bool,
}

impl Written {
    /// Keep the file.
    pub fn keep(mut self) {
        self.keep = true;
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Best effort: the data itself is already fsynced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Create `path` (never replacing anything), write `bytes`, fsync file and directory.
/// On any failure the partial file is removed.
///
/// # Errors
/// [`VaultError::Exists`] or [`VaultError::Write`].
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<Written> {
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(VaultError::Exists(path.to_owned()));
        }
        Err(source) => {
            return Err(VaultError::Write {
                path: path.to_owned(),
                source,
            });
        }
    };
    let guard = Written {
        path: path.to_owned(),
        keep: false,
    };
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| VaultError::Write {
            path: path.to_owned(),
            source,
        })?;
    sync_dir(path);
    Ok(guard)
}

/// Write `bytes` to `path`; with `force`, an existing file is replaced atomically (a
/// new file beside it, fsynced, then renamed over it); without, an existing file is
/// an error.
///
/// # Errors
/// [`VaultError::Exists`] or [`VaultError::Write`].
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<Written> {
    if !force || path.symlink_metadata().is_err() {
        return write_new(path, bytes, mode);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".cvx-vault-new");
    let tmp = PathBuf::from(tmp);
    let staged = write_new(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(|source| VaultError::Write {
        path: path.to_owned(),
        source,
    })?;
    // The staged name no longer exists; keep() stops the guard removing anything.
    staged.keep();
    sync_dir(path);
    Ok(Written {
        path: path.to_owned(),
        keep: false,
    })
}
