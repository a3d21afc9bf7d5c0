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
//!
//! Rotation ([`AuditLog::rotate`]): at start, before the sandbox, a log past the
//! configured size is archived under `<log>.<first>-<last>` (record indices) and
//! continued in a new file whose header carries the archived file's record count, head
//! and last state sequence, so the chain runs on and `audit verify ARCHIVE... LOG`
//! checks it across files. The start-up check and its memory then cover only the
//! current file. Crash-safe at every step: the new file is written and synced as
//! `<log>.new`, the archive is a hard link to the old file, and one `rename` swaps the
//! new file in.

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
    /// Rotation could not archive the log.
    #[error("audit log {path}: cannot rotate: {reason}")]
    Rotate {
        /// The log.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
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
    /// Index of this file's first record (0 unless it continues a rotated-out file).
    first_index: u64,
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

/// `<path>.<suffix>`, beside the log.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
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
        let have = summary.record_count();
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
            first_index: summary.first_index(),
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

    /// Archive this log and continue in a new file (see the module documentation).
    /// Call only when everything appended is durable and the state records that head
    /// (so the new file's first index is the state's durable head). Returns the new
    /// log and the archive's path.
    ///
    /// # Errors
    /// [`AuditLogError::Rotate`] or [`AuditLogError::Io`]. Before the swap the old log
    /// is still in place and valid; after it (reopening failed) the next start finds
    /// the continued log.
    pub fn rotate(
        self,
        network: &NetworkId,
        last_sequence: u64,
    ) -> Result<(Self, PathBuf), AuditLogError> {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.path.clone();
        let fail = |reason: String| AuditLogError::Rotate {
            path: path.clone(),
            reason,
        };
        let full = AuditHead {
            records: self.next_index,
            hash: self.head,
        };
        if self.durable != full || self.dirty_since.is_some() {
            return Err(fail(
                "records not yet synced (a bug: sync before rotating)".into(),
            ));
        }
        let from = signer_wire::AuditContinuation {
            records: full.records,
            head: full.hash,
            last_sequence,
        };
        let first = self.first_index;
        let archive = sibling(
            &path,
            &format!("{first}-{}", full.records.saturating_sub(1)),
        );
        let fresh = sibling(&path, "new");
        // 1. the new file, complete and synced, under a temporary name (a stale one
        //    from a crash is replaced).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&fresh)
            .map_err(io_err(&fresh))?;
        let header = signer_wire::audit_continued_header(network, &from);
        f.write_all(&header).map_err(io_err(&fresh))?;
        f.sync_all().map_err(io_err(&fresh))?;
        drop(f);
        // 2. the archive: a second name for the old file. After a crash between this
        //    step and the next, the same link exists already; anything else there is
        //    not ours to replace.
        let old = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        match std::fs::symlink_metadata(&archive) {
            Ok(m) if m.dev() == old.dev() && m.ino() == old.ino() => {}
            Ok(_) => {
                return Err(fail(format!(
                    "{} exists and is not this log; move it away and start again",
                    archive.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::hard_link(&path, &archive).map_err(io_err(&archive))?;
            }
            Err(e) => return Err(io_err(&archive)(e)),
        }
        // 3. one rename swaps the continued file in; then make the swap durable.
        std::fs::rename(&fresh, &path).map_err(io_err(&path))?;
        crate::state::sync_dir(&path).map_err(io_err(&path))?;
        // The archive is a record now: read-only (the rotation is done either way).
        if let Err(e) = std::fs::set_permissions(
            &archive,
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        ) {
            tracing::warn!(archive = %archive.display(), error = %e, "cannot make the audit archive read-only");
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path))?;
        let log = Self {
            file,
            path,
            first_index: full.records,
            next_index: full.records,
            head: full.hash,
            durable: full,
            dirty_since: None,
            failed: false,
        };
        Ok((log, archive))
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use cvx_protocol::hash;

    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cvx-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn net() -> NetworkId {
        NetworkId(hash(b"rotate"))
    }

    /// A log with `n` Lock records after Init, synced; returns it with its path and the
    /// head the state would record.
    fn log_with(d: &Path, n: u64) -> (AuditLog, PathBuf, AuditHead) {
        let path = d.join("audit.log");
        let head = AuditLog::create(&path, &net(), Timestamp(1)).unwrap();
        let (mut log, _) =
            AuditLog::open_checked(&path, &net(), &d.join("state"), 1, head).unwrap();
        log.append(
            (0..n).map(|i| (AuditEvent::Lock { uid: 1 }, 1 + i / 3)),
            Timestamp(2),
        )
        .unwrap();
        log.sync_if_due(true).unwrap();
        let h = log.durable_head();
        (log, path, h)
    }

    #[test]
    fn rotation_archives_read_only_and_the_chain_runs_on() {
        let d = dir("rotate");
        let (log, path, head) = log_with(&d, 9);
        assert_eq!(head.records, 10);
        let (mut log, archive) = log.rotate(&net(), 3).unwrap();
        assert_eq!(archive, d.join("audit.log.0-9"));
        assert_eq!(
            std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert!(!d.join("audit.log.new").exists());
        let old = read_and_verify(&archive).unwrap();
        let new = read_and_verify(&path).unwrap();
        assert_eq!((new.first_index(), new.record_count()), (10, 10));
        signer_wire::check_continuation(&old, &new).unwrap();
        // The new file goes on from the carried head, and reopens against the head the
        // state recorded at rotation.
        log.append([(AuditEvent::Lock { uid: 2 }, 4)], Timestamp(3))
            .unwrap();
        log.sync_if_due(true).unwrap();
        drop(log);
        let (log, s) = AuditLog::open_checked(&path, &net(), &d.join("state"), 4, head).unwrap();
        assert_eq!((s.first_index(), s.record_count()), (10, 11));
        signer_wire::check_continuation(&old, &s).unwrap();
        // A second rotation names its archive by the indices it holds.
        drop(log);
        let (mut log, _) =
            AuditLog::open_checked(&path, &net(), &d.join("state"), 4, head).unwrap();
        log.sync_if_due(true).unwrap();
        let (_, second) = log.rotate(&net(), 4).unwrap();
        assert_eq!(second, d.join("audit.log.10-10"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rotation_completes_after_a_crash_between_its_steps() {
        let d = dir("rotate-crash");
        let (log, path, _) = log_with(&d, 4);
        // As left by a crash after the archive link, before the rename: a stale
        // `.new` (half written) and the archive as a second name of the log.
        std::fs::write(d.join("audit.log.new"), b"CVXAUDT1 half").unwrap();
        std::fs::hard_link(&path, d.join("audit.log.0-4")).unwrap();
        let (_, archive) = log.rotate(&net(), 2).unwrap();
        let old = read_and_verify(&archive).unwrap();
        signer_wire::check_continuation(&old, &read_and_verify(&path).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn rotation_refuses_to_replace_a_foreign_archive_and_leaves_the_log() {
        let d = dir("rotate-foreign");
        let (log, path, _) = log_with(&d, 2);
        let before = std::fs::read(&path).unwrap();
        std::fs::write(d.join("audit.log.0-2"), b"someone else's").unwrap();
        let e = log.rotate(&net(), 1).unwrap_err();
        assert!(
            matches!(&e, AuditLogError::Rotate { reason, .. } if reason.contains("is not this log")),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let _ = std::fs::remove_dir_all(&d);
    }
}
