//! Reading the audit log back: verification of a whole file, its summary, and the link
//! between a rotated-out file and the one that continues it.

use super::audit::{
    AUDIT_CONTINUED_HEADER_LEN, AUDIT_HEADER_LEN, AUDIT_MAGIC, AUDIT_VERSION,
    AUDIT_VERSION_CONTINUED, AuditContinuation, AuditRecord, audit_genesis, encode_audit_record,
};
use crate::encoding::{Canonical, DecodeError};
use crate::hash::{Hash, hash};
use crate::primitives::NetworkId;

/// A verified audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSummary {
    /// The network in the header.
    pub network: NetworkId,
    /// For a continued log (version 2): where the file it continues ended.
    pub continues: Option<AuditContinuation>,
    /// The verified records of this file.
    pub records: Vec<AuditRecord>,
    /// Hash of the last record (the genesis hash when there are none).
    pub head: Hash,
    /// Byte length of the verified part (header and complete records).
    pub verified_len: u64,
    /// Bytes after the last complete record: a torn final append (crash mid-write).
    pub torn_tail: u64,
}

impl AuditSummary {
    /// The index of this file's first record (records before it are in earlier files).
    #[must_use]
    pub fn first_index(&self) -> u64 {
        self.continues.map_or(0, |c| c.records)
    }

    /// Records in the whole chain up to this file's end (earlier files included).
    #[must_use]
    pub fn record_count(&self) -> u64 {
        self.first_index() + self.records.len() as u64
    }

    /// The largest state sequence of any record (0 when there are none).
    #[must_use]
    pub fn last_sequence(&self) -> u64 {
        self.records.last().map_or_else(
            || self.continues.map_or(0, |c| c.last_sequence),
            |r| r.state_sequence,
        )
    }

    /// The head after `n` records of the chain (the hash of record `n - 1`), if this
    /// file can tell: `n` from [`first_index`](Self::first_index) to
    /// [`record_count`](Self::record_count).
    #[must_use]
    pub fn head_at(&self, n: u64) -> Option<Hash> {
        let first = self.first_index();
        if n == first {
            return Some(
                self.continues
                    .map_or_else(|| audit_genesis(&self.network), |c| c.head),
            );
        }
        let i = usize::try_from(n.checked_sub(first + 1)?).ok()?;
        self.records.get(i).map(|r| encode_audit_record(r).1)
    }
}

/// Why an audit log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// Shorter than the header, or the wrong magic or version.
    #[error("not a cvx-signer audit log (bad header)")]
    Header,
    /// A continued log does not continue the file given before it.
    #[error(
        "does not continue the previous file: {what} (files out of order, one missing, or one altered)"
    )]
    Link {
        /// What differs.
        what: String,
    },
    /// A record's length prefix is 0 or above the cap.
    #[error("record {index} at byte {offset}: length {len} is out of range")]
    Length {
        /// Record position.
        index: u64,
        /// Byte offset.
        offset: u64,
        /// Declared length.
        len: u32,
    },
    /// A record does not decode.
    #[error("record {index} at byte {offset}: {error}")]
    Decode {
        /// Record position.
        index: u64,
        /// Byte offset.
        offset: u64,
        /// The decode error.
        error: DecodeError,
    },
    /// A record's index or chain link is wrong: the log was edited.
    #[error(
        "record {index} at byte {offset}: {what} does not follow the previous record (the log was altered)"
    )]
    Chain {
        /// Record position.
        index: u64,
        /// Byte offset.
        offset: u64,
        /// "index", "prev hash" or "state sequence".
        what: &'static str,
    },
}

/// Verify a whole audit log: header, every record's encoding, index, chain link, and
/// non-decreasing state sequence. A final record cut short (a crash mid-append) is
/// reported as `torn_tail`, not an error; anything else broken is an error.
///
/// # Errors
/// [`AuditError`] at the first broken record.
pub fn verify_audit(bytes: &[u8]) -> Result<AuditSummary, AuditError> {
    if bytes.len() < AUDIT_HEADER_LEN || &bytes[..8] != AUDIT_MAGIC {
        return Err(AuditError::Header);
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[10..AUDIT_HEADER_LEN]);
    let network = NetworkId(Hash(id));
    let (continues, mut at) = match u16::from_le_bytes([bytes[8], bytes[9]]) {
        AUDIT_VERSION => (None, AUDIT_HEADER_LEN),
        AUDIT_VERSION_CONTINUED => {
            let c = bytes
                .get(AUDIT_HEADER_LEN..AUDIT_CONTINUED_HEADER_LEN)
                .ok_or(AuditError::Header)?;
            let u64_at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&c[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let mut head = [0u8; 32];
            head.copy_from_slice(&c[8..40]);
            let from = AuditContinuation {
                records: u64_at(0),
                head: Hash(head),
                last_sequence: u64_at(40),
            };
            (Some(from), AUDIT_CONTINUED_HEADER_LEN)
        }
        _ => return Err(AuditError::Header),
    };
    let mut prev = continues.map_or_else(|| audit_genesis(&network), |c| c.head);
    let mut records = Vec::new();
    let mut last_seq = continues.map_or(0, |c| c.last_sequence);
    let mut index = continues.map_or(0, |c| c.records);
    while at < bytes.len() {
        let offset = at as u64;
        let Some(header) = bytes.get(at..at + 4) else {
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if n == 0 || n > AuditRecord::MAX_LEN {
            return Err(AuditError::Length { index, offset, len });
        }
        let Some(payload) = bytes.get(at + 4..at + 4 + n) else {
            break;
        };
        let rec = AuditRecord::decode(payload).map_err(|error| AuditError::Decode {
            index,
            offset,
            error,
        })?;
        let chain = |what| AuditError::Chain {
            index,
            offset,
            what,
        };
        if rec.index != index {
            return Err(chain("index"));
        }
        if rec.prev != prev {
            return Err(chain("prev hash"));
        }
        if rec.state_sequence < last_seq {
            return Err(chain("state sequence"));
        }
        last_seq = rec.state_sequence;
        prev = hash(payload);
        records.push(rec);
        index += 1;
        at += 4 + n;
    }
    Ok(AuditSummary {
        network,
        continues,
        records,
        head: prev,
        verified_len: at as u64,
        torn_tail: (bytes.len() - at) as u64,
    })
}

/// Check that `next` continues `prev` (a rotated-out file and its successor): same
/// network, and `next`'s header carries `prev`'s record count, head and last state
/// sequence.
///
/// # Errors
/// [`AuditError::Link`] naming what differs.
pub fn check_continuation(prev: &AuditSummary, next: &AuditSummary) -> Result<(), AuditError> {
    let link = |what: String| Err(AuditError::Link { what });
    if prev.network != next.network {
        return link(format!(
            "network {} after network {}",
            next.network, prev.network
        ));
    }
    let Some(c) = next.continues else {
        return link("it is a first log (version 1), not a continuation".into());
    };
    if c.records != prev.record_count() {
        return link(format!(
            "it starts at record {} but the previous file ends after {}",
            c.records,
            prev.record_count()
        ));
    }
    if c.head != prev.head {
        return link(format!(
            "it carries head {} but the previous file ends with {}",
            c.head, prev.head
        ));
    }
    if c.last_sequence != prev.last_sequence() {
        return link(format!(
            "it carries state sequence {} but the previous file ends at {}",
            c.last_sequence,
            prev.last_sequence()
        ));
    }
    Ok(())
}
