//! The two-slot trust file: the stake table the signer checks certificates against, in
//! slots laid out like the state file's.

use serde::{Deserialize, Serialize};

use super::state_file::SLOT_PAYLOAD;
use crate::certificate::TrustedTable;
use crate::encoding::{Canonical, DecodeError};
use crate::hash::hash;
use crate::primitives::NetworkId;

/// Magic at the start of each trust-file slot.
pub const TRUST_MAGIC: &[u8; 8] = b"CVXTRST1";
/// Version of the trust-file slot layout.
pub const TRUST_VERSION: u16 = 1;
/// Bytes per trust-file slot (16 KiB: the largest [`TrustRecord`] fits).
pub const TRUST_SLOT_LEN: usize = 16 * 1024;
/// Bytes of the whole trust file (two slots).
pub const TRUST_FILE_LEN: usize = 2 * TRUST_SLOT_LEN;
const TRUST_CHECKSUM: usize = TRUST_SLOT_LEN - 32;
const _: () = assert!(SLOT_PAYLOAD + TrustRecord::MAX_LEN <= TRUST_CHECKSUM);

/// What one trust-file slot holds: the stake table the signer checks certificates
/// against (docs/consensus.md §7.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRecord {
    /// The network (the signer refuses another).
    pub network: NetworkId,
    /// The trusted table.
    pub trusted: TrustedTable,
}

impl Canonical for TrustRecord {
    const NAME: &'static str = "TrustRecord";
    const MAX_LEN: usize = 32 + TrustedTable::MAX_LEN;
    fn validate(&self) -> Result<(), DecodeError> {
        self.trusted.validate()
    }
}

/// Why a trust-file slot or file is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustFileError {
    /// Not two slots long.
    #[error("trust file is {0} bytes, expected {TRUST_FILE_LEN} (truncated or not a trust file)")]
    Length(usize),
    /// Neither slot is valid.
    #[error("no valid slot in the trust file: slot A: {a}; slot B: {b}")]
    NoValidSlot {
        /// Why slot A failed.
        a: String,
        /// Why slot B failed.
        b: String,
    },
}

/// The trust-file slot layout (as the state file's, with its own magic and size):
///
/// ```text
/// 0     8  "CVXTRST1"
/// 8     2  layout version (u16 LE) = 1
/// 10    2  payload length n (u16 LE)
/// 12    8  sequence (u64 LE)
/// 20    n  postcard(TrustRecord)
/// ..       zero padding
/// 16352 32 SHA-256 of bytes 0..16352
/// ```
#[must_use]
pub fn encode_trust_slot(sequence: u64, record: &TrustRecord) -> Vec<u8> {
    let payload = record.encode();
    let mut out = vec![0u8; TRUST_SLOT_LEN];
    out[..8].copy_from_slice(TRUST_MAGIC);
    out[8..10].copy_from_slice(&TRUST_VERSION.to_le_bytes());
    // TrustRecord::MAX_LEN fits u16 and the slot (the assertion above).
    let n = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out[10..12].copy_from_slice(&n.to_le_bytes());
    out[12..20].copy_from_slice(&sequence.to_le_bytes());
    out[SLOT_PAYLOAD..SLOT_PAYLOAD + payload.len()].copy_from_slice(&payload);
    let sum = hash(&out[..TRUST_CHECKSUM]);
    out[TRUST_CHECKSUM..].copy_from_slice(&sum.0);
    out
}

/// Decode and check one trust-file slot: `(sequence, record)`.
///
/// # Errors
/// A description of the first check that fails (`"empty"` for a never-written slot).
pub fn decode_trust_slot(bytes: &[u8]) -> Result<(u64, TrustRecord), String> {
    if bytes.len() != TRUST_SLOT_LEN {
        return Err(format!(
            "slot is {} bytes, expected {TRUST_SLOT_LEN}",
            bytes.len()
        ));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err("empty (never written)".to_owned());
    }
    if &bytes[..8] != TRUST_MAGIC {
        return Err("does not start with CVXTRST1 (not a cvx-signer trust file)".to_owned());
    }
    if hash(&bytes[..TRUST_CHECKSUM]).0 != bytes[TRUST_CHECKSUM..] {
        return Err("checksum does not match (torn write or corruption)".to_owned());
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != TRUST_VERSION {
        return Err(format!(
            "layout version {version} is not supported (this signer reads version {TRUST_VERSION})"
        ));
    }
    let n = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[12..20]);
    let end = SLOT_PAYLOAD.saturating_add(n).min(TRUST_CHECKSUM);
    let record = TrustRecord::decode(&bytes[SLOT_PAYLOAD..end]).map_err(|e| e.to_string())?;
    if bytes[end..TRUST_CHECKSUM].iter().any(|b| *b != 0) {
        return Err("bytes after the payload are not zero".to_owned());
    }
    Ok((u64::from_le_bytes(seq), record))
}

/// The current slot of a trust file: `(sequence, record, slot index)`.
///
/// # Errors
/// [`TrustFileError`] when the file has the wrong size or no valid slot.
pub fn current_trust_slot(file: &[u8]) -> Result<(u64, TrustRecord, usize), TrustFileError> {
    if file.len() != TRUST_FILE_LEN {
        return Err(TrustFileError::Length(file.len()));
    }
    let a = decode_trust_slot(&file[..TRUST_SLOT_LEN]);
    let b = decode_trust_slot(&file[TRUST_SLOT_LEN..]);
    match (a, b) {
        (Ok(a), Ok(b)) if b.0 > a.0 => Ok((b.0, b.1, 1)),
        (Ok(a), _) => Ok((a.0, a.1, 0)),
        (Err(_), Ok(b)) => Ok((b.0, b.1, 1)),
        (Err(a), Err(b)) => Err(TrustFileError::NoValidSlot { a, b }),
    }
}
