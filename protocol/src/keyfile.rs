//! The plaintext layout of a peer or account key inside its age encryption.
//!
//! ```text
//! offset 0  "CVXKEY1\n"   8 bytes, magic and version
//! offset 8  seed          32 bytes, the Ed25519 secret seed
//! offset 40 public key    32 bytes, the key the seed must derive to
//! ```
//!
//! 72 bytes exactly. cvx-vault writes it (keygen, provision) and cvx-signer reads it.
//! This module only checks the layout around the seed; it never copies the seed —
//! the caller decrypts into locked memory and derives the key there, then compares the
//! derived public key with [`public_key`]'s answer.

use crate::primitives::{KeyError, PublicKey};

/// Magic and version.
pub const MAGIC: &[u8; 8] = b"CVXKEY1\n";
/// Total plaintext length.
pub const LEN: usize = 72;
/// Where the seed is.
pub const SEED: core::ops::Range<usize> = 8..40;
/// Where the public key is.
pub const PUBLIC: core::ops::Range<usize> = 40..72;

/// Why a decrypted key file is not a cvx key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Wrong length.
    #[error(
        "the decrypted key is {0} bytes; a cvx key file holds exactly 72 (is this a cvx key file?)"
    )]
    Length(usize),
    /// Wrong magic.
    #[error(
        "the decrypted key does not start with CVXKEY1 (not a cvx key file, or a newer format)"
    )]
    Magic,
    /// The recorded public key is not a valid key.
    #[error("the recorded public key is invalid: {0}")]
    Public(KeyError),
}

/// Check length and magic, and return the recorded public key (the caller must
/// compare it with the key derived from the seed).
///
/// # Errors
/// [`KeyFileError`] naming the problem.
pub fn public_key(plaintext: &[u8]) -> Result<PublicKey, KeyFileError> {
    if plaintext.len() != LEN {
        return Err(KeyFileError::Length(plaintext.len()));
    }
    if &plaintext[..8] != MAGIC {
        return Err(KeyFileError::Magic);
    }
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&plaintext[PUBLIC]);
    PublicKey::from_bytes(&pk).map_err(KeyFileError::Public)
}

/// Write the layout around a seed already in `out[SEED]` (the caller fills the seed in
/// place, so it is never copied through here).
///
/// # Errors
/// [`KeyFileError::Length`] when `out` is not 72 bytes.
pub fn frame(out: &mut [u8], public: &PublicKey) -> Result<(), KeyFileError> {
    if out.len() != LEN {
        return Err(KeyFileError::Length(out.len()));
    }
    out[..8].copy_from_slice(MAGIC);
    out[PUBLIC].copy_from_slice(public.as_bytes());
    Ok(())
}
