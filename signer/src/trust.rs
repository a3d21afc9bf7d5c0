//! The trust file: the stake table the signer checks certificates against
//! (docs/consensus.md §7.5, layout in `cvx_protocol::signer_wire::encode_trust_slot`).
//!
//! Two 16 KiB slots beside the state file, opened at start-up and kept open through the
//! sandbox (which allows no `open` or `rename` later); each update overwrites the older
//! slot with pwrite + fdatasync, like the state file. It is written *before* the state
//! slot of the same decision: a crash in between leaves the new table with the old
//! watermark, which is safe (the table was vouched for by the old one; the certificate
//! can be presented again). A missing trust file is created at start-up from the genesis
//! table — the upgrade path of a signer whose state predates certificates.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use cvx_protocol::NetworkId;
use cvx_protocol::certificate::TrustedTable;
use cvx_protocol::signer_wire::{
    self, TRUST_FILE_LEN, TRUST_SLOT_LEN, TrustFileError, TrustRecord,
};

use crate::slots::{self, Slots};

/// Why the trust file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Cannot open, read or create.
    #[error("cannot use trust file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Wrong size or no valid slot.
    #[error(
        "trust file {path} is unusable: {source}. Restore it from a copy, or remove it to fall back to the \
         genesis table (certificates older than the trust period will then be refused)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: TrustFileError,
    },
    /// For another network.
    #[error("trust file {path} belongs to network {found}, but the config says {configured}")]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// In the file.
        found: NetworkId,
        /// In the config.
        configured: NetworkId,
    },
}

/// An open trust file and its current slot.
#[derive(Debug)]
pub struct TrustFile {
    file: File,
    path: PathBuf,
    sequence: u64,
    record: TrustRecord,
    pub(crate) slots: Slots,
}

impl TrustFile {
    /// Open the trust file at `path`, or create it holding `initial` when it does not
    /// exist (file and directory fsynced); check that it belongs to `network`.
    ///
    /// # Errors
    /// [`TrustError`].
    pub fn open_or_create(
        path: &Path,
        network: &NetworkId,
        initial: &TrustedTable,
    ) -> Result<Self, TrustError> {
        let io = |source| TrustError::Io {
            path: path.to_owned(),
            source,
        };
        let first = signer_wire::encode_trust_slot(
            1,
            &TrustRecord {
                network: *network,
                trusted: initial.clone(),
            },
        );
        match slots::create(path, &first, TRUST_FILE_LEN) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
            _ => {}
        }
        let file = slots::open(path).map_err(io)?;
        let bytes = slots::read(&file, TRUST_FILE_LEN).map_err(io)?;
        let (sequence, record, index) =
            signer_wire::current_trust_slot(&bytes).map_err(|source| TrustError::Corrupt {
                path: path.to_owned(),
                source,
            })?;
        if record.network != *network {
            return Err(TrustError::WrongNetwork {
                path: path.to_owned(),
                found: record.network,
                configured: *network,
            });
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            sequence,
            record,
            slots: Slots::new(TRUST_SLOT_LEN, index),
        })
    }

    /// The trusted table now.
    #[must_use]
    pub fn trusted(&self) -> &TrustedTable {
        &self.record.trusted
    }

    /// True after a failed write: the signer must not change state again until restarted.
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

    /// Write `trusted` as the next sequence into the other slot and fdatasync.
    ///
    /// # Errors
    /// The OS error; the file is then poisoned (a retried fsync proves nothing).
    pub fn commit(&mut self, trusted: TrustedTable) -> std::io::Result<()> {
        let record = TrustRecord {
            network: self.record.network,
            trusted,
        };
        let bytes = signer_wire::encode_trust_slot(self.sequence + 1, &record);
        self.slots.write_next(&self.file, &bytes, "trust file")?;
        self.sequence += 1;
        self.record = record;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvx_protocol::certificate::{StakeEntry, StakeTable};
    use cvx_protocol::{BoundedVec, Timestamp, hash};

    fn table(n: u8) -> TrustedTable {
        let mut entries: Vec<StakeEntry> = (0..n)
            .map(|i| StakeEntry {
                key: {
                    let sk = ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]);
                    cvx_protocol::PublicKey::from_bytes(sk.verifying_key().as_bytes())
                        .expect("valid")
                },
                stake: 10 + u64::from(i),
            })
            .collect();
        entries.sort_by_key(|e| e.key);
        TrustedTable {
            position: u64::from(n),
            confirmed_at: Timestamp(1_000),
            table: StakeTable {
                entries: BoundedVec::try_from_vec(entries).expect("small"),
            },
        }
    }

    #[test]
    fn created_from_the_initial_table_then_updates_survive_reopen_and_a_torn_slot() {
        let dir = std::env::temp_dir().join(format!("cvx-trust-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("state.trust");
        let net = NetworkId(hash(b"trust"));
        let mut t = TrustFile::open_or_create(&path, &net, &table(2)).expect("create");
        assert_eq!(t.trusted(), &table(2));
        t.commit(table(3)).expect("commit");
        t.commit(table(4)).expect("commit");
        drop(t);
        let t = TrustFile::open_or_create(&path, &net, &table(1)).expect("reopen");
        assert_eq!(t.trusted(), &table(4), "an existing file is never replaced");
        drop(t);
        // Tear the newer slot (sequence 3, slot A: 1 → A, 2 → B, 3 → A): the older is used.
        let mut bytes = std::fs::read(&path).expect("read");
        let (seq, _, idx) = signer_wire::current_trust_slot(&bytes).expect("valid");
        assert_eq!((seq, idx), (3, 0));
        bytes[idx * TRUST_SLOT_LEN + 100] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let t = TrustFile::open_or_create(&path, &net, &table(1)).expect("reopen torn");
        assert_eq!(t.trusted(), &table(3));
        drop(t);
        // Another network is refused.
        assert!(matches!(
            TrustFile::open_or_create(&path, &NetworkId(hash(b"other")), &table(1)),
            Err(TrustError::WrongNetwork { .. })
        ));
        // A write error poisons it.
        let mut t = TrustFile::open_or_create(&path, &net, &table(1)).expect("reopen");
        t.slots.fail_writes = true;
        assert!(t.commit(table(5)).is_err());
        t.slots.fail_writes = false;
        assert!(t.commit(table(5)).is_err(), "poisoned");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
