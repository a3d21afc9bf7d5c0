//! The vault's hash-chained audit log: one JSON object per line, each carrying the
//! previous record's hash, so a removed, reordered or edited record breaks the chain.
//!
//! ```text
//! line     = {"record": {seq, time_unix, op, public_key, files, detail, prev}, "hash": "…"}
//! hash     = SHA-256("cvx-vault-audit/v1\n" ‖ compact JSON of "record", fields in that order)
//! record 1: prev = 64 zeros
//! ```
//!
//! Records name the operation, public keys, and the SHA-256 of every file read or
//! written — never a passphrase, seed, word or plaintext. Only completed operations are
//! recorded (a refused or failed command changes no file, the log included). Cutting
//! records off the end is not detectable from the log alone: note the head hash that
//! each command prints, or keep a copy of the log elsewhere.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, VaultError};
use crate::fsio::read_capped;

/// The hash domain of audit records.
pub const DOMAIN: &[u8] = b"cvx-vault-audit/v1\n";
/// The largest audit log `audit verify` reads.
pub const LOG_CAP: u64 = 64 * 1024 * 1024;

/// A file an operation read or wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// "read" or "wrote".
    pub access: String,
    /// The path as given.
    pub path: String,
    /// SHA-256 of the contents (for a written plaintext key: of the plaintext file,
    /// which is a hash, not the key).
    pub sha256: String,
}

/// The hashed part of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// 1-based position.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub time_unix: u64,
    /// The operation (keygen, restore, provision, tx, ladder, qr).
    pub op: String,
    /// The key involved (hex), if any.
    pub public_key: Option<String>,
    /// Files read and written.
    pub files: Vec<FileRef>,
    /// Public details (e.g. transaction ids, network id, sequence numbers).
    pub detail: Vec<(String, String)>,
    /// The previous record's hash (64 zeros for the first).
    pub prev: String,
}

/// A stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(rename = "record")]
    body: Body,
    hash: String,
}

fn record_hash(body: &Body) -> String {
    let json = serde_json::to_vec(body).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(&json);
    hex::encode(h.finalize())
}

/// What one operation wants recorded.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// Operation name.
    pub op: String,
    /// Key (hex).
    pub public_key: Option<String>,
    /// Files.
    pub files: Vec<FileRef>,
    /// Details.
    pub detail: Vec<(String, String)>,
}

impl Entry {
    /// Start an entry.
    #[must_use]
    pub fn new(op: &str, public_key: Option<String>) -> Self {
        Self {
            op: op.to_owned(),
            public_key,
            files: Vec::new(),
            detail: Vec::new(),
        }
    }

    /// Record a file and its contents' hash.
    pub fn file(&mut self, access: &str, path: &Path, bytes: &[u8]) {
        self.files.push(FileRef {
            access: access.to_owned(),
            path: path.display().to_string(),
            sha256: crate::fsio::sha256_hex(bytes),
        });
    }

    /// Record a public detail.
    pub fn detail(&mut self, k: &str, v: impl Into<String>) {
        self.detail.push((k.to_owned(), v.into()));
    }
}

/// The outcome of checking a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of records.
    pub records: u64,
    /// Hash of the last record (64 zeros for an empty log).
    pub head: String,
}

/// The audit log at a path.
#[derive(Clone, Debug)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log at `path` (created on the first append).
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Check the whole chain.
    ///
    /// # Errors
    /// [`VaultError::Audit`] naming the first bad record; read errors.
    pub fn verify(&self) -> Result<Summary> {
        let bytes = match read_capped(&self.path, LOG_CAP) {
            Ok(b) => b,
            Err(VaultError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Summary {
                    records: 0,
                    head: "0".repeat(64),
                });
            }
            Err(e) => return Err(e),
        };
        let bad = |record: usize, reason: String| VaultError::Audit {
            path: self.path.clone(),
            record,
            reason,
        };
        if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
            let n = bytes.split(|&b| b == b'\n').count();
            return Err(bad(n, "the last record is incomplete (no final newline): the log was cut or a write was torn".into()));
        }
        let mut head = "0".repeat(64);
        let mut count = 0u64;
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let lines: Vec<&[u8]> = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').collect()
        };
        for (i, line) in lines.into_iter().enumerate() {
            let n = i + 1;
            let s: Stored = serde_json::from_slice(line)
                .map_err(|e| bad(n, format!("not a valid record ({e})")))?;
            if s.body.seq != n as u64 {
                return Err(bad(
                    n,
                    format!(
                        "sequence {} where {n} was expected (a record was removed or reordered)",
                        s.body.seq
                    ),
                ));
            }
            if s.body.prev != head {
                return Err(bad(n, "prev does not match the previous record's hash (a record before it was changed or removed)".into()));
            }
            let h = record_hash(&s.body);
            if h != s.hash {
                return Err(bad(
                    n,
                    "the record's hash does not match its contents (the record was edited)".into(),
                ));
            }
            head = h;
            count += 1;
        }
        Ok(Summary {
            records: count,
            head,
        })
    }

    /// Verify the chain, then append one record (fsynced). Returns the new head.
    ///
    /// # Errors
    /// [`VaultError::Audit`] when the existing chain is broken (nothing is appended to
    /// a broken log), write errors.
    pub fn append(&self, entry: Entry) -> Result<Summary> {
        let prev = self.verify()?;
        let time_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = Body {
            seq: prev.records + 1,
            time_unix,
            op: entry.op,
            public_key: entry.public_key,
            files: entry.files,
            detail: entry.detail,
            prev: prev.head,
        };
        let hash = record_hash(&body);
        let stored = Stored {
            body,
            hash: hash.clone(),
        };
        let mut line = serde_json::to_vec(&stored).map_err(|e| VaultError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let write_err = |source| VaultError::Write {
            path: self.path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(write_err)?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(write_err)?;
        Ok(Summary {
            records: stored.body.seq,
            head: hash,
        })
    }
}
