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

mod audit;
mod audit_verify;
mod socket;
mod state_file;
mod trust_file;

pub use audit::{
    AUDIT_CONTINUED_HEADER_LEN, AUDIT_HEADER_LEN, AUDIT_MAGIC, AUDIT_TAG, AUDIT_VERSION,
    AUDIT_VERSION_CONTINUED, AuditContinuation, AuditEvent, AuditRecord, CERTIFICATE_KIND,
    audit_continued_header, audit_genesis, audit_header, encode_audit_record,
};
pub use audit_verify::{AuditError, AuditSummary, check_continuation, verify_audit};
pub use socket::{
    ClientMessage, FRAME_HEADER, FrameError, MAX_DETAIL, MAX_FRAME, SignerMessage, StatusReport,
    WIRE_VERSION, encode_frame, frame_len,
};
pub use state_file::{
    AuditHead, SLOT_CHECKSUM, SLOT_LEN, SLOT_PAYLOAD, STATE_FILE_LEN, STATE_MAGIC, STATE_VERSION,
    Slot, SlotError, StateFileError, StateRecord, current_slot, decode_slot, encode_slot,
};
pub use trust_file::{
    TRUST_FILE_LEN, TRUST_MAGIC, TRUST_SLOT_LEN, TRUST_VERSION, TrustFileError, TrustRecord,
    current_trust_slot, decode_trust_slot, encode_trust_slot,
};

#[cfg(test)]
mod tests;
