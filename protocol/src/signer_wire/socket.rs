//! The socket protocol: what a client may ask the signer, the signer's answers, and the
//! length-prefixed frames both travel in.

use serde::{Deserialize, Serialize};

use crate::certificate::CertRequest;
use crate::encoding::{BoundedString, Canonical};
use crate::policy::{RefuseCode, Request, Watermark};
use crate::primitives::{NetworkId, PublicKey, Signature};

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
