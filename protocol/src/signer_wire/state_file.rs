//! The two-slot watermark state file: the slot layout, its encoding and checks, and the
//! choice of the current slot.

use serde::{Deserialize, Serialize};

use crate::encoding::{Canonical, DecodeError};
use crate::hash::{Hash, hash};
use crate::policy::Watermark;
use crate::primitives::NetworkId;

/// Magic at the start of each state slot.
pub const STATE_MAGIC: &[u8; 8] = b"CVXSTAT1";
/// Version of the slot layout.
pub const STATE_VERSION: u16 = 1;
/// Bytes per slot (one 4 KiB page: one aligned write per update).
pub const SLOT_LEN: usize = 4096;
/// Bytes of the whole state file (two slots).
pub const STATE_FILE_LEN: usize = 2 * SLOT_LEN;
/// Offset of the payload in a slot.
pub const SLOT_PAYLOAD: usize = 20;
/// Offset of the SHA-256 checksum at the end of a slot.
pub const SLOT_CHECKSUM: usize = SLOT_LEN - 32;

/// The audit log's durable head, as recorded in the state: the number of records known
/// to be on disk and the hash of the last of them (the header hash when there are none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// Records durably in the log.
    pub records: u64,
    /// Hash of the last of them.
    pub hash: Hash,
}

/// What one state slot holds besides its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The network this state belongs to (the signer refuses another).
    pub network: NetworkId,
    /// Locked by the breach button.
    pub locked: bool,
    /// The audit log head known durable when this slot was written.
    pub audit: AuditHead,
    /// The watermark.
    pub watermark: Watermark,
}

impl Canonical for StateRecord {
    const NAME: &'static str = "StateRecord";
    const MAX_LEN: usize = 32 + 1 + (10 + 32) + Watermark::MAX_LEN;
}

/// One decoded slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Strictly increasing with every update (the newer valid slot wins).
    pub sequence: u64,
    /// The content.
    pub record: StateRecord,
}

/// Why a slot is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// Never written (all zero).
    #[error("slot is empty (never written)")]
    Empty,
    /// Wrong size.
    #[error("slot is {0} bytes, expected {SLOT_LEN}")]
    Length(usize),
    /// Wrong magic.
    #[error("slot does not start with CVXSTAT1 (not a cvx-signer state file)")]
    Magic,
    /// Unknown layout version.
    #[error("slot layout version {0} is not supported (this signer reads version {STATE_VERSION})")]
    Version(u16),
    /// Checksum mismatch (torn write or corruption).
    #[error("slot checksum does not match (torn write or corruption)")]
    Checksum,
    /// The payload does not decode.
    #[error("slot payload: {0}")]
    Payload(DecodeError),
}

/// The slot layout:
///
/// ```text
/// 0    8  "CVXSTAT1"
/// 8    2  layout version (u16 LE) = 1
/// 10   2  payload length n (u16 LE)
/// 12   8  sequence (u64 LE)
/// 20   n  postcard(StateRecord)
/// ..      zero padding
/// 4064 32 SHA-256 of bytes 0..4064
/// ```
#[must_use]
pub fn encode_slot(slot: &Slot) -> Vec<u8> {
    let payload = slot.record.encode();
    let mut out = vec![0u8; SLOT_LEN];
    out[..8].copy_from_slice(STATE_MAGIC);
    out[8..10].copy_from_slice(&STATE_VERSION.to_le_bytes());
    // StateRecord::MAX_LEN is far below u16::MAX and SLOT_CHECKSUM - SLOT_PAYLOAD.
    let n = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out[10..12].copy_from_slice(&n.to_le_bytes());
    out[12..20].copy_from_slice(&slot.sequence.to_le_bytes());
    out[SLOT_PAYLOAD..SLOT_PAYLOAD + payload.len()].copy_from_slice(&payload);
    let sum = hash(&out[..SLOT_CHECKSUM]);
    out[SLOT_CHECKSUM..].copy_from_slice(&sum.0);
    out
}

/// Decode and check one slot.
///
/// # Errors
/// [`SlotError`] naming the first check that fails.
pub fn decode_slot(bytes: &[u8]) -> Result<Slot, SlotError> {
    if bytes.len() != SLOT_LEN {
        return Err(SlotError::Length(bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(SlotError::Empty);
    }
    if &bytes[..8] != STATE_MAGIC {
        return Err(SlotError::Magic);
    }
    if hash(&bytes[..SLOT_CHECKSUM]).0 != bytes[SLOT_CHECKSUM..] {
        return Err(SlotError::Checksum);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != STATE_VERSION {
        return Err(SlotError::Version(version));
    }
    let n = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[12..20]);
    let end = SLOT_PAYLOAD.saturating_add(n).min(SLOT_CHECKSUM);
    let record = StateRecord::decode(&bytes[SLOT_PAYLOAD..end]).map_err(SlotError::Payload)?;
    if bytes[end..SLOT_CHECKSUM].iter().any(|b| *b != 0) {
        return Err(SlotError::Payload(DecodeError::Trailing {
            what: StateRecord::NAME,
            extra: SLOT_CHECKSUM - end,
        }));
    }
    Ok(Slot {
        sequence: u64::from_le_bytes(seq),
        record,
    })
}

/// Why a state file has no usable slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateFileError {
    /// Not two slots long.
    #[error("state file is {0} bytes, expected {STATE_FILE_LEN} (truncated or not a state file)")]
    Length(usize),
    /// Neither slot is valid.
    #[error("no valid slot: slot A: {a}; slot B: {b}")]
    NoValidSlot {
        /// Why slot A failed.
        a: SlotError,
        /// Why slot B failed.
        b: SlotError,
    },
}

/// The current slot of a state file, which slot index (0 or 1) it is, and why the other
/// slot is invalid (if it is: a torn update or corruption, for the log).
///
/// # Errors
/// [`StateFileError`] when the file has the wrong size or no valid slot.
pub fn current_slot(file: &[u8]) -> Result<(Slot, usize, Option<SlotError>), StateFileError> {
    if file.len() != STATE_FILE_LEN {
        return Err(StateFileError::Length(file.len()));
    }
    let a = decode_slot(&file[..SLOT_LEN]);
    let b = decode_slot(&file[SLOT_LEN..]);
    match (a, b) {
        (Ok(a), Ok(b)) if b.sequence > a.sequence => Ok((b, 1, None)),
        (Ok(a), Ok(_)) => Ok((a, 0, None)),
        (Ok(a), Err(e)) => Ok((a, 0, Some(e))),
        (Err(e), Ok(b)) => Ok((b, 1, Some(e))),
        (Err(a), Err(b)) => Err(StateFileError::NoValidSlot { a, b }),
    }
}
