//! Two-slot files: the state file ([`crate::state`]) and the trust file ([`crate::trust`]).
//!
//! Each update overwrites the older of two fixed-size slots with pwrite + fdatasync and
//! counts only once it is durable; at open the valid slot with the higher sequence wins
//! (the layouts and that choice are `cvx_protocol::signer_wire`'s). A failed write poisons
//! the file for the rest of the process's life: after an fsync error the kernel may have
//! dropped the dirty page, so a retried fsync proves nothing.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Which slot is current, and whether writing is still allowed.
#[derive(Debug)]
pub struct Slots {
    slot_len: usize,
    index: usize,
    poisoned: bool,
    /// Test hook: make the next writes fail like a disk error.
    #[cfg(test)]
    pub(crate) fail_writes: bool,
}

impl Slots {
    /// Slots of `slot_len` bytes, slot `index` current.
    #[must_use]
    pub const fn new(slot_len: usize, index: usize) -> Self {
        Self {
            slot_len,
            index,
            poisoned: false,
            #[cfg(test)]
            fail_writes: false,
        }
    }

    /// True after a failed write.
    #[must_use]
    pub const fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Write `bytes` (one encoded slot) over the older slot of `file` and fdatasync; the
    /// written slot is current only when this returns `Ok`.
    ///
    /// # Errors
    /// The OS error (the file is then poisoned), or the poison of an earlier one (`what`
    /// names the file in it).
    pub fn write_next(&mut self, file: &File, bytes: &[u8], what: &str) -> std::io::Result<()> {
        if self.poisoned {
            return Err(std::io::Error::other(format!(
                "{what} poisoned by an earlier write error"
            )));
        }
        #[cfg(test)]
        if self.fail_writes {
            self.poisoned = true;
            return Err(std::io::Error::from_raw_os_error(nix::libc::EIO));
        }
        let target = 1 - self.index;
        let r = file
            .write_all_at(bytes, (target * self.slot_len) as u64)
            .and_then(|()| file.sync_data());
        match r {
            Ok(()) => {
                self.index = target;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

/// Create `path` (mode 0600, never through a symlink, never over an existing file) holding
/// `first` padded with zeros to `len`; file and directory fsynced.
///
/// # Errors
/// The OS error (`AlreadyExists` when the file exists).
pub fn create(path: &Path, first: &[u8], len: usize) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    let mut bytes = first.to_vec();
    bytes.resize(len, 0);
    file.write_all_at(&bytes, 0)?;
    file.sync_all()?;
    sync_dir(path)
}

/// Open `path` for reading and writing (never through a symlink).
///
/// # Errors
/// The OS error.
pub fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// The file's bytes, at most `len + 1` (one more than a valid file, so a longer one shows).
///
/// # Errors
/// The OS error.
pub fn read(mut file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len + 1);
    (&mut file).take(len as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// fsync the directory holding `path` (so a new file's name is durable).
///
/// # Errors
/// The OS error.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}
