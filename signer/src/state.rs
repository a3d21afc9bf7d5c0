//! The watermark state file: two slots (`cvx_protocol::signer_wire` layout), pwrite of
//! the older slot + fdatasync per update, an exclusive `flock` held for the signer's
//! life (a second signer on the same state refuses to start). Missing, truncated or
//! corrupt state refuses to start; an fsync error poisons the file (every later sign
//! request is refused) — the kernel may have dropped the dirty page, so a retried
//! fsync proves nothing.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use cvx_protocol::NetworkId;
use cvx_protocol::signer_wire::{
    self, AuditHead, SLOT_LEN, STATE_FILE_LEN, Slot, SlotError, StateFileError, StateRecord,
};
use nix::fcntl::{Flock, FlockArg};

pub use crate::slots::sync_dir;
use crate::slots::{self, Slots};

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Missing.
    #[error(
        "state file {path} does not exist. If this is a new signer, create it with `cvx-signer init --config FILE`; \
         if it existed before, restore it from the newest copy — never start a signer on empty state"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Cannot open or read.
    #[error("cannot open state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "state file {path} is locked by another process (another cvx-signer is running on this state); stop it first"
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// Wrong size or no valid slot.
    #[error(
        "state file {path} is unusable: {source}. Do not recreate it: restore the newest copy, or check that no \
         other tool wrote it"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: Box<StateFileError>,
    },
    /// For another network.
    #[error("state file {path} belongs to network {found}, but the config says {configured}")]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// In the file.
        found: NetworkId,
        /// In the config.
        configured: NetworkId,
    },
    /// init: already exists.
    #[error("state file {path} already exists: init refuses to overwrite a watermark")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// unlock: not the owner.
    #[error(
        "state file {path} is owned by uid {owner}; run unlock as the signer's user (uid {owner}), you are uid {euid}"
    )]
    NotOwner {
        /// The file.
        path: PathBuf,
        /// Owner.
        owner: u32,
        /// Us.
        euid: u32,
    },
}

/// An open, locked state file and its current slot.
#[derive(Debug)]
pub struct StateFile {
    file: Flock<File>,
    path: PathBuf,
    current: Slot,
    pub(crate) slots: Slots,
    /// Why the other slot is invalid at open (a torn update, or corruption).
    pub other_slot: Option<SlotError>,
}

fn lock(path: &Path, file: File) -> Result<Flock<File>, StateError> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            StateError::InUse {
                path: path.to_owned(),
            }
        } else {
            StateError::Io {
                path: path.to_owned(),
                source: errno.into(),
            }
        }
    })
}

impl StateFile {
    /// Open, lock and read the state file; check it belongs to `network`.
    ///
    /// # Errors
    /// [`StateError`] saying why and what to do.
    pub fn open(path: &Path, network: &NetworkId) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            path: path.to_owned(),
            source,
        };
        let file = match slots::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io(e)),
        };
        let file = lock(path, file)?;
        let bytes = slots::read(&file, STATE_FILE_LEN).map_err(io)?;
        let (current, index, other_slot) =
            signer_wire::current_slot(&bytes).map_err(|source| StateError::Corrupt {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        if current.record.network != *network {
            return Err(StateError::WrongNetwork {
                path: path.to_owned(),
                found: current.record.network,
                configured: *network,
            });
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            current,
            slots: Slots::new(SLOT_LEN, index),
            other_slot,
        })
    }

    /// Create a new state file (init): slot A holds sequence 1 and `record`, slot B is
    /// empty; file and directory are fsynced.
    ///
    /// # Errors
    /// [`StateError::Exists`] when it exists; [`StateError::Io`].
    pub fn create(path: &Path, record: StateRecord) -> Result<(), StateError> {
        let first = signer_wire::encode_slot(&Slot {
            sequence: 1,
            record,
        });
        slots::create(path, &first, STATE_FILE_LEN).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                StateError::Exists {
                    path: path.to_owned(),
                }
            } else {
                StateError::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })
    }

    /// The current slot.
    #[must_use]
    pub fn current(&self) -> &Slot {
        &self.current
    }

    /// True after a failed write: the signer must not sign again until restarted.
    #[must_use]
    pub const fn poisoned(&self) -> bool {
        self.slots.poisoned()
    }

    /// The path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor (kept open through the sandbox).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_fd().as_raw_fd()
    }

    /// Write `record` as the next sequence into the other slot and fdatasync. Returns
    /// only after the data is durable.
    ///
    /// # Errors
    /// The OS error; the file is then poisoned.
    pub fn commit(&mut self, record: StateRecord) -> std::io::Result<()> {
        let slot = Slot {
            sequence: self.current.sequence + 1,
            record,
        };
        self.slots
            .write_next(&self.file, &signer_wire::encode_slot(&slot), "state file")?;
        self.current = slot;
        Ok(())
    }

    /// The audit head recorded in the current slot.
    #[must_use]
    pub fn audit_head(&self) -> AuditHead {
        self.current.record.audit
    }
}

/// Check that the caller owns the state file (for `unlock`).
///
/// # Errors
/// [`StateError::NotOwner`] or [`StateError::Io`].
pub fn check_owner(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            StateError::Missing {
                path: path.to_owned(),
            }
        } else {
            StateError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let euid = crate::euid();
    if md.uid() != euid {
        return Err(StateError::NotOwner {
            path: path.to_owned(),
            owner: md.uid(),
            euid,
        });
    }
    Ok(())
}
