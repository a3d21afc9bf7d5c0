//! The signer's formats: the framed messages on its Unix socket, the two-slot watermark
//! state file, and the hash-chained audit log. Pure: encoding, decoding and checks only;
//! cvx-signer does the I/O. docs/signer.md describes every byte.
//!
//! # Frames
//!
//! ```text
//! frame = length (u32 little-endian, 1..=MAX_FRAME) ‖ payload (canonical postcard)
//! ```
//!
//! A client sends [`ClientMessage`]s and receives one [`SignerMessage`] per request, in
//! order. A length of 0 or above [`MAX_FRAME`] is a protocol violation: the signer
//! closes the connection without allocating.
//!
//! # State file
//!
//! Two [`SLOT_LEN`]-byte slots; the valid slot with the higher sequence is current, and
//! each update overwrites the other slot (see [`encode_slot`] for the layout).
//!
//! # Audit log
//!
//! A header ([`AUDIT_MAGIC`], version, network id) then records, each
//! `length (u32 LE) ‖ postcard(AuditRecord)`, where every record carries the SHA-256 of
//! the previous record's encoding (the first: of the header), so any edit, insertion or
//! removal breaks the chain (see [`verify_audit`]). A log continued after rotation
//! (version 2) also carries, in its header, the record count, head and last state
//! sequence of the file it continues, so the chain runs on across files.

use serde::{Deserialize, Serialize};

use crate::certificate::{CertRequest, TrustedTable};
use crate::encoding::{BoundedString, Canonical, DecodeError};
use crate::hash::{Hash, hash, hash_parts};
use crate::policy::{RefuseCode, Request, Watermark};
use crate::primitives::{NetworkId, PublicKey, Signature, Timestamp};

/// Version of the socket protocol (in [`ClientMessage::Hello`] and [`SignerMessage::Hello`]).
pub const WIRE_VERSION: u16 = 1;
/// Largest frame payload, in bytes (64 KiB).
pub const MAX_FRAME: usize = 64 * 1024;

// The largest sign request (a full order with a full bridge) must fit one frame, or the
// signer would close it as oversized.
const _: () = assert!(ClientMessage::MAX_LEN <= MAX_FRAME);
/// Bytes of the frame length prefix.
pub const FRAME_HEADER: usize = 4;
/// Cap on a refusal's human detail.
pub const MAX_DETAIL: usize = 512;

/// What a client may ask the signer.
// A request lives only while it is decided; boxing the large variant would add an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// 0: version handshake; the answer names the signer's version, network and key.
    Hello {
        /// The client's [`WIRE_VERSION`].
        version: u16,
    },
    /// 1: the signer's public key.
    PublicKey,
    /// 2: sign a typed value (the policy decides).
    Sign(Request),
    /// 3: public key, watermark and counters.
    Status,
    /// 4: the breach button: refuse every sign request from now on, persistently.
    Lock,
    /// 5: a finality or lock certificate: catch up or release the lock
    /// (`certificate::decide_certificate`, docs/consensus.md §7).
    Certify(CertRequest),
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

impl Canonical for ClientMessage {
    const NAME: &'static str = "ClientMessage";
    const MAX_LEN: usize = 1 + max(Request::MAX_LEN, CertRequest::MAX_LEN);
}

/// The signer's view of itself, for `cvx-signer status` and monitoring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The signer's public key.
    pub public_key: PublicKey,
    /// The one network it signs for.
    pub network: NetworkId,
    /// The durable watermark.
    pub watermark: Watermark,
    /// True once locked (breach button); only `cvx-signer unlock` clears it.
    pub locked: bool,
    /// Sequence number of the current state slot.
    pub state_sequence: u64,
    /// Signatures returned since start.
    pub signed: u64,
    /// Refusals since start.
    pub refused: u64,
    /// Open client connections.
    pub connections: u32,
}

/// The signer's answers.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignerMessage {
    /// 0: answer to [`ClientMessage::Hello`].
    Hello {
        /// The signer's [`WIRE_VERSION`].
        version: u16,
        /// Its network.
        network: NetworkId,
        /// Its key.
        public_key: PublicKey,
    },
    /// 1: answer to [`ClientMessage::PublicKey`].
    PublicKey(PublicKey),
    /// 2: the signature over the request's sign-bytes (made after the new watermark
    /// was durable).
    Signed {
        /// Ed25519 signature over `policy::Decision::Allow::sign_bytes`.
        signature: Signature,
        /// True when this repeats the last signed value (watermark unchanged).
        repeat: bool,
    },
    /// 3: nothing was signed.
    Refused {
        /// Stable code.
        code: RefuseCode,
        /// What exactly was wrong (printable ASCII, capped).
        detail: BoundedString<MAX_DETAIL>,
    },
    /// 4: answer to [`ClientMessage::Status`].
    Status(StatusReport),
    /// 5: answer to [`ClientMessage::Lock`]: the lock is durable.
    Locked,
    /// 6: answer to [`ClientMessage::Certify`]: the certificate was accepted and the new
    /// watermark and trusted table are durable.
    Certified {
        /// True when the lock moved (catch-up or release); false when it was there already.
        moved: bool,
        /// The durable watermark now.
        watermark: Watermark,
    },
}

impl Canonical for SignerMessage {
    const NAME: &'static str = "SignerMessage";
    const MAX_LEN: usize = 1 + 32 + 32 + Watermark::MAX_LEN + 1 + 4 * 10 + MAX_DETAIL + 3;
}

impl SignerMessage {
    /// A refusal, with `detail` made printable and cut to [`MAX_DETAIL`] bytes.
    #[must_use]
    pub fn refused(code: RefuseCode, detail: &str) -> Self {
        let clean: String = detail
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .take(MAX_DETAIL)
            .collect();
        // Infallible: printable ASCII of at most MAX_DETAIL bytes by construction.
        let detail = BoundedString::new(&clean).unwrap_or_default();
        Self::Refused { code, detail }
    }
}

/// Why a frame header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Zero-length frame.
    #[error("empty frame (length 0)")]
    Empty,
    /// Declared length above the cap.
    #[error("frame declares {0} bytes, above the cap of {MAX_FRAME}")]
    TooLong(u32),
}

/// The payload length declared by a frame header, checked against the cap.
///
/// # Errors
/// [`FrameError`] when it is 0 or above [`MAX_FRAME`].
pub fn frame_len(header: [u8; FRAME_HEADER]) -> Result<usize, FrameError> {
    let n = u32::from_le_bytes(header);
    match usize::try_from(n) {
        Ok(0) => Err(FrameError::Empty),
        Ok(len) if len <= MAX_FRAME => Ok(len),
        _ => Err(FrameError::TooLong(n)),
    }
}

/// `length ‖ canonical encoding` of `msg`.
///
/// # Panics
/// Never for the signer's message types (their `MAX_LEN` fits a `u32`).
#[must_use]
pub fn encode_frame<T: Canonical>(msg: &T) -> Vec<u8> {
    let payload = msg.encode();
    let len = u32::try_from(payload.len()).expect("cvx messages are far below 4 GiB");
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

// ---------------------------------------------------------------- state file

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

// ---------------------------------------------------------------- trust file

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

// ---------------------------------------------------------------- audit log

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::ChallengeResponse;
    use crate::policy::SignRequest;

    use crate::primitives::Token;

    fn net() -> NetworkId {
        NetworkId(hash(b"test network"))
    }

    fn key() -> PublicKey {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        PublicKey::from_bytes(&sk.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn frames_round_trip_and_cap() {
        let msg = ClientMessage::Sign(Request {
            network: net(),
            body: SignRequest::ChallengeResponse(ChallengeResponse {
                challenger: key(),
                responder: key(),
                token: Token([1; 32]),
            }),
        });
        let f = encode_frame(&msg);
        let n = frame_len([f[0], f[1], f[2], f[3]]).unwrap();
        assert_eq!(n, f.len() - 4);
        assert_eq!(ClientMessage::decode(&f[4..]).unwrap(), msg);
        assert_eq!(frame_len([0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(
            frame_len((65_537u32).to_le_bytes()),
            Err(FrameError::TooLong(65_537))
        );
        assert_eq!(frame_len((65_536u32).to_le_bytes()), Ok(65_536));
        let r = SignerMessage::refused(RefuseCode::Locked, "naïve\nline");
        let SignerMessage::Refused { detail, .. } = &r else {
            panic!()
        };
        assert_eq!(detail.as_str(), "na?ve?line");
        let long = SignerMessage::refused(RefuseCode::Locked, &"x".repeat(2000));
        assert!(long.encode().len() <= SignerMessage::MAX_LEN);
    }

    #[test]
    fn frame_bytes_match_docs_signer_md() {
        assert_eq!(encode_frame(&ClientMessage::Status), [1, 0, 0, 0, 3]);
        assert_eq!(encode_frame(&ClientMessage::Lock), [1, 0, 0, 0, 4]);
        assert_eq!(
            encode_frame(&ClientMessage::Hello { version: 1 }),
            [2, 0, 0, 0, 0, 1]
        );
    }

    fn slot(seq: u64) -> Slot {
        Slot {
            sequence: seq,
            record: StateRecord {
                network: net(),
                locked: seq.is_multiple_of(2),
                audit: AuditHead {
                    records: seq,
                    hash: hash(b"h"),
                },
                watermark: Watermark::default(),
            },
        }
    }

    #[test]
    fn slots_pick_newest_valid() {
        let a = encode_slot(&slot(4));
        let b = encode_slot(&slot(5));
        assert_eq!(a.len(), SLOT_LEN);
        assert_eq!(decode_slot(&a).unwrap(), slot(4));
        let mut file = [a.clone(), b.clone()].concat();
        assert_eq!(current_slot(&file).unwrap().0.sequence, 5);
        file[SLOT_LEN + 30] ^= 1;
        let (s, i, err) = current_slot(&file).unwrap();
        assert_eq!((s.sequence, i, err), (4, 0, Some(SlotError::Checksum)));
        file[30] ^= 1;
        assert!(matches!(
            current_slot(&file),
            Err(StateFileError::NoValidSlot { .. })
        ));
        assert_eq!(current_slot(&file[..100]), Err(StateFileError::Length(100)));
        assert_eq!(decode_slot(&[0; SLOT_LEN]), Err(SlotError::Empty));
    }

    /// Append records `from..to` (state sequence = index / 2) to `log`, chaining on
    /// `prev`; returns the new head.
    fn append_records(log: &mut Vec<u8>, mut prev: Hash, from: u64, to: u64) -> Hash {
        for i in from..to {
            let rec = AuditRecord {
                index: i,
                prev,
                time: Timestamp(i),
                state_sequence: i / 2,
                event: AuditEvent::Lock { uid: 7 },
            };
            let (bytes, h) = encode_audit_record(&rec);
            log.extend_from_slice(&bytes);
            prev = h;
        }
        prev
    }

    #[test]
    fn a_continued_log_carries_the_chain_across_files() {
        let mut first = audit_header(&net()).to_vec();
        let head = append_records(&mut first, audit_genesis(&net()), 0, 7);
        let a = verify_audit(&first).unwrap();
        assert_eq!(
            (a.first_index(), a.record_count(), a.last_sequence()),
            (0, 7, 3)
        );
        let from = AuditContinuation {
            records: a.record_count(),
            head: a.head,
            last_sequence: a.last_sequence(),
        };
        let mut second = audit_continued_header(&net(), &from).to_vec();
        assert_eq!(second.len(), AUDIT_CONTINUED_HEADER_LEN);
        // Empty continued log: its head and sequence are the carried ones.
        let empty = verify_audit(&second).unwrap();
        assert_eq!(
            (empty.record_count(), empty.head, empty.last_sequence()),
            (7, head, 3)
        );
        assert_eq!(empty.head_at(7), Some(head));
        let end = append_records(&mut second, head, 7, 10);
        let b = verify_audit(&second).unwrap();
        assert_eq!(b.continues, Some(from));
        assert_eq!((b.first_index(), b.record_count(), b.head), (7, 10, end));
        assert_eq!(b.head_at(7), Some(head));
        assert_eq!(b.head_at(10), Some(end));
        assert_eq!(
            b.head_at(6),
            None,
            "records of the archived file are not in this one"
        );
        assert_eq!(b.head_at(11), None);
        check_continuation(&a, &b).unwrap();
        // Wrong order, a first log in second place, or a gap: refused.
        assert!(matches!(
            check_continuation(&b, &a),
            Err(AuditError::Link { .. })
        ));
        let mut gap =
            audit_continued_header(&net(), &AuditContinuation { records: 8, ..from }).to_vec();
        append_records(&mut gap, head, 8, 9);
        let g = verify_audit(&gap).unwrap();
        assert!(matches!(
            check_continuation(&a, &g),
            Err(AuditError::Link { .. })
        ));
        // A record whose index does not follow the carried count breaks the chain.
        let mut skew = audit_continued_header(&net(), &from).to_vec();
        append_records(&mut skew, head, 8, 9);
        assert!(matches!(verify_audit(&skew), Err(AuditError::Chain { .. })));
        // A continued header cut short, or an unknown version, is not a log.
        assert_eq!(
            verify_audit(&second[..AUDIT_HEADER_LEN + 10]),
            Err(AuditError::Header)
        );
        let mut v3 = second.clone();
        v3[8] = 3;
        assert_eq!(verify_audit(&v3), Err(AuditError::Header));
    }

    #[test]
    fn audit_chain_detects_edits_and_torn_tail() {
        let mut log = audit_header(&net()).to_vec();
        let mut prev = audit_genesis(&net());
        for i in 0..5u64 {
            let rec = AuditRecord {
                index: i,
                prev,
                time: Timestamp(i),
                state_sequence: i / 2,
                event: AuditEvent::Refused {
                    uid: 1,
                    kind: 2,
                    value: hash(&i.to_le_bytes()),
                    code: RefuseCode::PrefixConflict,
                },
            };
            let (bytes, h) = encode_audit_record(&rec);
            assert!(bytes.len() - 4 <= AuditRecord::MAX_LEN);
            log.extend_from_slice(&bytes);
            prev = h;
        }
        let s = verify_audit(&log).unwrap();
        assert_eq!(
            (s.records.len(), s.head, s.torn_tail, s.last_sequence()),
            (5, prev, 0, 2)
        );
        assert_eq!(s.head_at(5), Some(prev));
        assert_eq!(s.head_at(0), Some(audit_genesis(&net())));
        // A torn final append is reported, not an error.
        let torn = &log[..log.len() - 3];
        let t = verify_audit(torn).unwrap();
        assert_eq!(t.records.len(), 4);
        assert!(t.torn_tail > 0);
        // Flipping any byte of a record breaks verification.
        for at in [AUDIT_HEADER_LEN + 4, AUDIT_HEADER_LEN + 20, log.len() - 40] {
            let mut bad = log.clone();
            bad[at] ^= 0x40;
            assert!(
                verify_audit(&bad).is_err() || verify_audit(&bad).unwrap().records.len() < 5,
                "flip at {at}"
            );
        }
        // Removing a record in the middle breaks the chain.
        let first_len = 4 + usize::try_from(u32::from_le_bytes(
            log[AUDIT_HEADER_LEN..AUDIT_HEADER_LEN + 4]
                .try_into()
                .unwrap(),
        ))
        .unwrap();
        let mut cut = log[..AUDIT_HEADER_LEN].to_vec();
        cut.extend_from_slice(&log[AUDIT_HEADER_LEN + first_len..]);
        assert!(matches!(verify_audit(&cut), Err(AuditError::Chain { .. })));
    }
}
