//! The audit log: append-only, hash-chained (`cvx_protocol::signer_wire` format). Every
//! decision — signed, refused with its code, lock, unlock, start — is one record; no
//! key material and no sign-bytes, only the value's kind and hash.
//!
//! Ordering and durability: records of a batch are appended (one `write`) right after
//! the batch's state commit and before the replies leave, so under a process crash the
//! log can only lack the records of the last commit (recorded as a `Gap` at the next
//! start), never claim a commit the state does not have. The log is fdatasynced lazily
//! (at most [`SYNC_INTERVAL`] after a record, off the signing path); each state commit
//! records the head known durable, so a log truncated or replaced below it is detected.
//! A state file older than the log (its sequence below the log's last) is a rollback
//! and refuses to start.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cvx_protocol::signer_wire::{
    self, AuditError, AuditEvent, AuditHead, AuditRecord, AuditSummary, audit_genesis, audit_header,
};
use cvx_protocol::{Hash, NetworkId, Timestamp};

/// Longest time a record stays unsynced.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    /// Missing.
    #[error(
        "audit log {path} does not exist; `cvx-signer init` creates it with the state. If it was lost, the state \
         cannot be checked for rollback: restore both from the same backup"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Cannot open, read or write.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// init: already exists.
    #[error("audit log {path} already exists: init refuses to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The chain is broken.
    #[error("audit log {path} does not verify: {source}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// Where and how.
        source: AuditError,
    },
    /// For another network.
    #[error("audit log {path} belongs to network {found}, but the config says {configured}")]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// In the log.
        found: NetworkId,
        /// In the config.
        configured: NetworkId,
    },
    /// Shorter than, or diverging from, the head the state recorded as durable.
    #[error(
        "audit log {path} has {have} records but the state recorded {want} durable records (head {head}): the log \
         was truncated, replaced or edited. Restore the log that belongs to this state"
    )]
    BehindState {
        /// The file.
        path: PathBuf,
        /// Records in the log.
        have: u64,
        /// Records the state says are durable.
        want: u64,
        /// The recorded head.
        head: Hash,
    },
    /// The state is older than the log: rolled back.
    #[error(
        "state file {state} is older than the audit log: its sequence is {state_seq}, but the log records commits up \
         to sequence {log_seq}. The state was rolled back (restored from an old copy?): signing from it could \
         equivocate. Restore the newest state file; do not start on this one"
    )]
    RolledBack {
        /// The state file.
        state: PathBuf,
        /// Its sequence.
        state_seq: u64,
        /// The log's last sequence.
        log_seq: u64,
    },
}

/// An open audit log positioned at its end.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
    path: PathBuf,
    next_index: u64,
    head: Hash,
    durable: AuditHead,
    dirty_since: Option<Instant>,
    failed: bool,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditLogError + '_ {
    move |source| AuditLogError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Read and verify an audit log file.
///
/// # Errors
/// [`AuditLogError::Missing`], [`AuditLogError::Io`], [`AuditLogError::Broken`].
pub fn read_and_verify(path: &Path) -> Result<AuditSummary, AuditLogError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AuditLogError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(io_err(path))?;
    signer_wire::verify_audit(&bytes).map_err(|source| AuditLogError::Broken {
        path: path.to_owned(),
        source,
    })
}

impl AuditLog {
    /// Create a new log (init) holding one `Init` record at state sequence 1; returns the
    /// log's durable head.
    ///
    /// # Errors
    /// [`AuditLogError::Exists`] or [`AuditLogError::Io`].
    pub fn create(
        path: &Path,
        network: &NetworkId,
        time: Timestamp,
    ) -> Result<AuditHead, AuditLogError> {
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(AuditLogError::Exists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        let rec = AuditRecord {
            index: 0,
            prev: audit_genesis(network),
            time,
            state_sequence: 1,
            event: AuditEvent::Init,
        };
        let (bytes, hash) = signer_wire::encode_audit_record(&rec);
        let mut all = audit_header(network).to_vec();
        all.extend_from_slice(&bytes);
        f.write_all(&all).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        crate::state::sync_dir(path).map_err(io_err(path))?;
        Ok(AuditHead { records: 1, hash })
    }

    /// Open the log for appending after checking it against the state: same network,
    /// contains the durable head the state recorded, and no record newer than the
    /// state (else the state was rolled back). A torn final record (crash mid-append)
    /// is cut off. Returns the log and the verified summary.
    ///
    /// # Errors
    /// [`AuditLogError`] saying why and what to do.
    pub fn open_checked(
        path: &Path,
        network: &NetworkId,
        state_path: &Path,
        state_seq: u64,
        recorded: AuditHead,
    ) -> Result<(Self, AuditSummary), AuditLogError> {
        let summary = read_and_verify(path)?;
        if summary.network != *network {
            return Err(AuditLogError::WrongNetwork {
                path: path.to_owned(),
                found: summary.network,
                configured: *network,
            });
        }
        let have = summary.records.len() as u64;
        if summary.head_at(recorded.records) != Some(recorded.hash) {
            return Err(AuditLogError::BehindState {
                path: path.to_owned(),
                have,
                want: recorded.records,
                head: recorded.hash,
            });
        }
        if summary.last_sequence() > state_seq {
            return Err(AuditLogError::RolledBack {
                state: state_path.to_owned(),
                state_seq,
                log_seq: summary.last_sequence(),
            });
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err(path))?;
        if summary.torn_tail > 0 {
            tracing::warn!(path = %path.display(), bytes = summary.torn_tail, "cutting a torn final audit record (crash mid-append)");
            file.set_len(summary.verified_len).map_err(io_err(path))?;
            file.sync_data().map_err(io_err(path))?;
        }
        let log = Self {
            file,
            path: path.to_owned(),
            next_index: have,
            head: summary.head,
            durable: AuditHead {
                records: recorded.records,
                hash: recorded.hash,
            },
            dirty_since: Some(Instant::now()),
            failed: false,
        };
        Ok((log, summary))
    }

    /// Append records (one `write`). Not synced: see the module documentation.
    ///
    /// # Errors
    /// The OS error; the log is then marked failed and the signer stops signing.
    pub fn append(
        &mut self,
        events: impl IntoIterator<Item = (AuditEvent, u64)>,
        time: Timestamp,
    ) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other("audit log failed earlier"));
        }
        let mut buf = Vec::new();
        let mut head = self.head;
        let mut index = self.next_index;
        for (event, state_sequence) in events {
            let rec = AuditRecord {
                index,
                prev: head,
                time,
                state_sequence,
                event,
            };
            let (bytes, h) = signer_wire::encode_audit_record(&rec);
            buf.extend_from_slice(&bytes);
            head = h;
            index += 1;
        }
        if buf.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&buf) {
            Ok(()) => {
                self.head = head;
                self.next_index = index;
                self.dirty_since.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// fdatasync if records have waited [`SYNC_INTERVAL`] (or `force`).
    ///
    /// # Errors
    /// The OS error; the log is then marked failed.
    pub fn sync_if_due(&mut self, force: bool) -> std::io::Result<()> {
        let Some(since) = self.dirty_since else {
            return Ok(());
        };
        if !force && since.elapsed() < SYNC_INTERVAL {
            return Ok(());
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.durable = AuditHead {
                    records: self.next_index,
                    hash: self.head,
                };
                self.dirty_since = None;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// When the next lazy sync is due, if records are waiting.
    #[must_use]
    pub fn sync_due_in(&self) -> Option<Duration> {
        self.dirty_since
            .map(|s| SYNC_INTERVAL.saturating_sub(s.elapsed()))
    }

    /// The head known durable (recorded in each state commit).
    #[must_use]
    pub fn durable_head(&self) -> AuditHead {
        self.durable
    }

    /// True after a write or sync error.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor (kept open through the sandbox).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
