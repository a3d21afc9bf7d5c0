//! Sign-bytes and strict verification.
//!
//! The only bytes any cvx key ever signs are
//!
//! ```text
//! sign_bytes = "cvx1" ‖ kind (1 byte) ‖ network id (32 bytes) ‖ SHA-256(canonical encoding)
//! ```
//!
//! 69 bytes, built only from a typed [`Signable`] value. There is no function that
//! signs raw bytes, so a signature is always over exactly one kind of value, for exactly
//! one network.

use core::fmt;

use crate::encoding::Canonical;
use crate::primitives::{NetworkId, PublicKey, Signature};

/// The 4-byte domain tag that starts every sign-bytes.
pub const SIGN_TAG: &[u8; 4] = b"cvx1";
/// Length of sign-bytes.
pub const SIGN_BYTES_LEN: usize = 4 + 1 + 32 + 32;

/// What a signature is over. The byte values never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SignKind {
    /// A [`crate::consensus::BlockHeader`] (peer key).
    Block = 1,
    /// An [`crate::consensus::Order`] (peer key).
    Order = 2,
    /// A [`crate::consensus::ChallengeResponse`] (peer key).
    ChallengeResponse = 3,
    /// A [`crate::ledger::Transaction`] (account key; never the peer key).
    Transaction = 4,
    /// A [`crate::certificate::OrderHeader`] (peer key): its own kind, so that no
    /// signature over a whole order can ever be read as one over a header (their
    /// encodings are different byte strings, but a crafted order's could parse as a
    /// header). Not signed by cvx-signer until orders are signed through their headers
    /// (docs/consensus.md §7, step 1).
    OrderHeader = 5,
}

impl SignKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Block,
        Self::Order,
        Self::ChallengeResponse,
        Self::Transaction,
        Self::OrderHeader,
    ];

    /// The kind byte.
    #[must_use]
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// Lower-case name (as in docs/vectors.json).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Order => "order",
            Self::ChallengeResponse => "challenge_response",
            Self::Transaction => "transaction",
            Self::OrderHeader => "order_header",
        }
    }
}

/// A value that can be signed.
pub trait Signable: Canonical {
    /// Its kind byte.
    const KIND: SignKind;

    /// Its sign-bytes on `network`.
    fn sign_bytes(&self, network: &NetworkId) -> SignBytes {
        SignBytes::new(Self::KIND, network, &self.hash())
    }
}

/// The 69 bytes a key signs. Only constructible from a [`Signable`] value (or, for a
/// verifier that already has the value's hash, from kind + network + hash).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignBytes([u8; SIGN_BYTES_LEN]);

impl SignBytes {
    /// Assemble sign-bytes from their parts.
    #[must_use]
    pub fn new(kind: SignKind, network: &NetworkId, value_hash: &crate::hash::Hash) -> Self {
        let mut b = [0u8; SIGN_BYTES_LEN];
        b[..4].copy_from_slice(SIGN_TAG);
        b[4] = kind.byte();
        b[5..37].copy_from_slice(&network.0.0);
        b[37..].copy_from_slice(&value_hash.0);
        Self(b)
    }

    /// The bytes to sign or verify.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SIGN_BYTES_LEN] {
        &self.0
    }
}

impl fmt::Debug for SignBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log full sign-bytes (house rule 7): kind and a short prefix only.
        write!(f, "SignBytes(kind {}, …)", self.0[4])
    }
}

/// A signature that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify (strict Ed25519) under the given key")]
pub struct BadSignature;

impl PublicKey {
    /// Strict Ed25519 verification of `signature` over `value`'s sign-bytes on
    /// `network`: rejects non-canonical `s`, small-order `R` and (by construction of
    /// [`PublicKey`]) small-order keys.
    ///
    /// # Errors
    /// [`BadSignature`] when it does not verify.
    pub fn verify<T: Signable>(
        &self,
        network: &NetworkId,
        value: &T,
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        self.verify_sign_bytes(&value.sign_bytes(network), signature)
    }

    /// Strict verification over already-built sign-bytes.
    ///
    /// # Errors
    /// [`BadSignature`] when it does not verify.
    pub fn verify_sign_bytes(
        &self,
        sign_bytes: &SignBytes,
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.verifying_key()
            .verify_strict(sign_bytes.as_bytes(), &sig)
            .map_err(|_| BadSignature)
    }
}
