//! The hash-chained audit log as the signer writes it: headers (first and continued),
//! events, records, and the chain's start.

use serde::{Deserialize, Serialize};

use super::state_file::AuditHead;
use crate::encoding::Canonical;
use crate::hash::{Hash, hash, hash_parts};
use crate::policy::RefuseCode;
use crate::primitives::{NetworkId, PublicKey, Timestamp};

/// Magic at the start of an audit log.
pub const AUDIT_MAGIC: &[u8; 8] = b"CVXAUDT1";
/// Version of the audit log format (a log started by `init`).
pub const AUDIT_VERSION: u16 = 1;
/// Version of a log that continues a rotated-out file ([`AuditContinuation`]).
pub const AUDIT_VERSION_CONTINUED: u16 = 2;
/// Bytes of the audit log header: magic, version (u16 LE), network id.
pub const AUDIT_HEADER_LEN: usize = 8 + 2 + 32;
/// Bytes of a continued log's header: the version-1 fields, then the continuation:
/// record count (u64 LE), head (32), last state sequence (u64 LE).
pub const AUDIT_CONTINUED_HEADER_LEN: usize = AUDIT_HEADER_LEN + 8 + 32 + 8;

/// Where a continued audit log picks up: the file it continues ended after `records`
/// records (indices `0..records` across all earlier files) with hash `head` and state
/// sequence `last_sequence`. Its first record has index `records` and `prev == head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditContinuation {
    /// Records before this file.
    pub records: u64,
    /// Hash of the last record before this file.
    pub head: Hash,
    /// State sequence of the last record before this file.
    pub last_sequence: u64,
}
/// Domain tag of the chain's start.
pub const AUDIT_TAG: &[u8] = b"cvx1/audit";

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditEvent {
    /// 0: `cvx-signer init` created the state.
    Init,
    /// 1: the signer started serving with this key.
    Start {
        /// Its public key.
        public_key: PublicKey,
    },
    /// 2: a signature was returned.
    Signed {
        /// The client's uid.
        uid: u32,
        /// Sign kind byte (1 block, 2 order, 3 challenge response).
        kind: u8,
        /// Hash of the signed value's canonical encoding (never the sign-bytes).
        value: Hash,
        /// An identical repeat of the last signed value.
        repeat: bool,
    },
    /// 3: a request was refused.
    Refused {
        /// The client's uid.
        uid: u32,
        /// Sign kind byte (0 when the request did not decode).
        kind: u8,
        /// Hash of the value's encoding (of the frame, when it did not decode).
        value: Hash,
        /// Why.
        code: RefuseCode,
    },
    /// 4: the breach button was pressed.
    Lock {
        /// The client's uid.
        uid: u32,
    },
    /// 5: `cvx-signer unlock` cleared the lock.
    Unlock {
        /// The uid that ran it.
        uid: u32,
    },
    /// 6: at start, the log ended before the state's sequence: the records of the last
    /// update were lost in a crash between the state write and the log append.
    Gap {
        /// The log's last state sequence.
        log_sequence: u64,
        /// The state's sequence.
        state_sequence: u64,
    },
    /// 7: `cvx-signer import-watermark` merged a watermark into the state (per-field
    /// maximum; the new watermark is in the state slot of this record's sequence).
    Import {
        /// The uid that ran it.
        uid: u32,
        /// The exporting signer's audit head, as the file carried it (`None`: no file,
        /// only `--high-watermark`).
        from: Option<AuditHead>,
        /// `--high-watermark` was given.
        high_watermark: bool,
    },
    /// 8: a certificate was accepted (docs/consensus.md §7); the new watermark is in the
    /// state slot of this record's sequence. Refused certificates are `Refused` records
    /// with kind [`CERTIFICATE_KIND`].
    Certified {
        /// The client's uid.
        uid: u32,
        /// Hash of the certificate's canonical encoding.
        value: Hash,
        /// Its anchor position.
        position: u64,
        /// True when the lock moved.
        moved: bool,
    },
}

/// The kind byte of audit records about certificates (not a [`crate::SignKind`]: nothing
/// is signed).
pub const CERTIFICATE_KIND: u8 = 0x10;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 0-based position in the log.
    pub index: u64,
    /// Hash of the previous record's encoding (for the first: [`audit_genesis`]).
    pub prev: Hash,
    /// The signer's clock.
    pub time: Timestamp,
    /// The state sequence after this decision was committed.
    pub state_sequence: u64,
    /// What happened.
    pub event: AuditEvent,
}

impl Canonical for AuditRecord {
    const NAME: &'static str = "AuditRecord";
    // index, prev, time, state sequence, then the largest event: Import (tag, uid,
    // Some(records, hash), bool).
    const MAX_LEN: usize = 10 + 32 + 10 + 10 + 1 + 5 + 1 + 10 + 32 + 1;
}

/// The audit log header bytes for `network`.
#[must_use]
pub fn audit_header(network: &NetworkId) -> [u8; AUDIT_HEADER_LEN] {
    let mut h = [0u8; AUDIT_HEADER_LEN];
    h[..8].copy_from_slice(AUDIT_MAGIC);
    h[8..10].copy_from_slice(&AUDIT_VERSION.to_le_bytes());
    h[10..].copy_from_slice(&network.0.0);
    h
}

/// The header of a log continuing another ([`AUDIT_VERSION_CONTINUED`]).
#[must_use]
pub fn audit_continued_header(
    network: &NetworkId,
    from: &AuditContinuation,
) -> [u8; AUDIT_CONTINUED_HEADER_LEN] {
    let mut h = [0u8; AUDIT_CONTINUED_HEADER_LEN];
    h[..AUDIT_HEADER_LEN].copy_from_slice(&audit_header(network));
    h[8..10].copy_from_slice(&AUDIT_VERSION_CONTINUED.to_le_bytes());
    let mut at = AUDIT_HEADER_LEN;
    h[at..at + 8].copy_from_slice(&from.records.to_le_bytes());
    at += 8;
    h[at..at + 32].copy_from_slice(&from.head.0);
    at += 32;
    h[at..at + 8].copy_from_slice(&from.last_sequence.to_le_bytes());
    h
}

/// The `prev` of the first record: SHA-256("cvx1/audit" ‖ header).
#[must_use]
pub fn audit_genesis(network: &NetworkId) -> Hash {
    hash_parts(&[AUDIT_TAG, &audit_header(network)])
}

/// `length ‖ encoding` of a record, and the record's hash (the next record's `prev`).
#[must_use]
pub fn encode_audit_record(rec: &AuditRecord) -> (Vec<u8>, Hash) {
    let payload = rec.encode();
    let h = hash(&payload);
    // AuditRecord::MAX_LEN is far below u32::MAX.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    (out, h)
}
