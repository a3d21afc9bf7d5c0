//! SLIP-39 (Trezor's "Shamir's Secret-Sharing for Mnemonic Codes"): split a master
//! secret into word shares, k of n, optionally in groups; combine them again.
//!
//! * [`share`] — one share's words and fields, with the RS1024 checksum ([`rs1024`])
//!   over the 1024-word list ([`wordlist`]);
//! * [`gf256`] — Lagrange interpolation in GF(256); the digest share sits at x = 254
//!   and the shared secret at x = 255;
//! * [`cipher`] — the 4-round Feistel encryption of the master secret with
//!   PBKDF2-HMAC-SHA256, the passphrase and the iteration exponent;
//! * [`split()`] with its [`Plan`], and [`Recovery`] (or [`combine`]), build on the
//!   secret sharing of one level kept here: SLIP-39's SplitSecret and RecoverSecret
//!   with the digest share.
//!
//! `vault/tests/shares_vectors.rs` runs every one of Trezor's official vectors.
//!
//! Memory: the master secret and the encrypted master secret live in cvx-sandbox's
//! locked memory ([`MasterSecret`]); encryption and decryption run in place there.
//! Share values, group secrets, the digest share, the random parts and the share words
//! are heap buffers that are only zeroized on drop (docs/vault.md, "Shares").

pub mod cipher;
pub mod command;
pub mod error;
pub mod gf256;
mod recovery;
pub mod rs1024;
pub mod share;
mod split;
pub mod wordlist;

use core::fmt;

use cvx_sandbox::Locked;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::secret::locked;
pub use error::ShareError;
pub use recovery::{Progress, Recovery, combine};
pub use share::Share;
pub use split::{Group, Plan, split};

/// The most shares in a group, and the most groups.
pub const MAX_SHARES: u8 = 16;
/// The x coordinate of the digest share.
pub const DIGEST_INDEX: u8 = 254;
/// The x coordinate of the shared secret.
pub const SECRET_INDEX: u8 = 255;
/// The digest's length in bytes.
pub const DIGEST_BYTES: usize = 4;
/// The highest iteration exponent (4 bits).
pub const MAX_ITERATION_EXPONENT: u8 = 15;

/// A master (or encrypted master) secret of up to 64 bytes, in locked memory.
pub struct MasterSecret(Locked<SecretBuf>);

/// The bytes of a [`MasterSecret`] (zeroed with their mapping when dropped).
pub(crate) struct SecretBuf {
    bytes: [u8; share::MAX_VALUE_BYTES],
    len: usize,
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterSecret({} bytes, redacted)", self.0.len)
    }
}

impl MasterSecret {
    /// `len` zero bytes in locked memory.
    ///
    /// # Errors
    /// [`VaultError::Memory`]; [`ShareError::Plan`] above 64 bytes.
    pub fn zero(len: usize) -> Result<Self> {
        if len > share::MAX_VALUE_BYTES {
            return Err(ShareError::Plan(format!(
                "a secret of {len} bytes is above the {}-byte limit",
                share::MAX_VALUE_BYTES
            ))
            .into());
        }
        Ok(Self(locked("master secret", || SecretBuf {
            bytes: [0u8; share::MAX_VALUE_BYTES],
            len,
        })?))
    }

    /// A locked copy of `bytes`.
    ///
    /// # Errors
    /// As [`MasterSecret::zero`].
    pub fn copy_of(bytes: &[u8]) -> Result<Self> {
        let mut s = Self::zero(bytes.len())?;
        s.bytes_mut().copy_from_slice(bytes);
        Ok(s)
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes[..self.0.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len;
        &mut self.0.bytes[..len]
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| VaultError::Input {
        what: "random bytes",
        reason: e.to_string(),
    })
}

fn digest(random_part: &[u8], secret: &[u8]) -> [u8; DIGEST_BYTES] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(random_part)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(secret);
    let full = mac.finalize().into_bytes();
    let mut d = [0u8; DIGEST_BYTES];
    d.copy_from_slice(&full[..DIGEST_BYTES]);
    d
}

/// A share value with its x coordinate.
type Point = (u8, Zeroizing<Vec<u8>>);

/// SLIP-39's SplitSecret: `count` points of which any `threshold` give `secret`.
fn split_secret(threshold: u8, count: u8, secret: &[u8]) -> Result<Vec<Point>> {
    if threshold == 1 {
        return Ok((0..count)
            .map(|i| (i, Zeroizing::new(secret.to_vec())))
            .collect());
    }
    let len = secret.len();
    let mut base: Vec<Point> = Vec::with_capacity(usize::from(threshold));
    for i in 0..threshold - 2 {
        let mut v = Zeroizing::new(vec![0u8; len]);
        random(&mut v)?;
        base.push((i, v));
    }
    let mut digest_share = Zeroizing::new(vec![0u8; len]);
    random(&mut digest_share[DIGEST_BYTES..])?;
    let d = digest(&digest_share[DIGEST_BYTES..], secret);
    digest_share[..DIGEST_BYTES].copy_from_slice(&d);
    let mut out: Vec<Point> = base
        .iter()
        .map(|(x, v)| (*x, Zeroizing::new(v.to_vec())))
        .collect();
    // The base points, the secret borrowed in place (no copy of it is made).
    let mut pts: Vec<(u8, &[u8])> = base.iter().map(|(x, v)| (*x, &v[..])).collect();
    pts.push((DIGEST_INDEX, &digest_share[..]));
    pts.push((SECRET_INDEX, secret));
    for i in threshold - 2..count {
        let v = gf256::interpolate_new(&pts, i).map_err(|e| ShareError::Plan(format!("{e:?}")))?;
        out.push((i, v));
    }
    Ok(out)
}

/// SLIP-39's RecoverSecret, writing into `out`.
fn recover_secret(threshold: u8, points: &[(u8, &[u8])], out: &mut [u8]) -> Result<(), ShareError> {
    let interp_err = |e: gf256::InterpolateError| match e {
        gf256::InterpolateError::DuplicateX => {
            ShareError::TooFew("two shares have the same number".into())
        }
        gf256::InterpolateError::Lengths => ShareError::Parameters {
            share: 0,
            reason: "the shares' values differ in length",
        },
        gf256::InterpolateError::Empty => ShareError::TooFew("no shares".into()),
    };
    if threshold == 1 {
        let (_, v) = points
            .first()
            .ok_or_else(|| ShareError::TooFew("no shares".into()))?;
        if v.len() != out.len() {
            return Err(interp_err(gf256::InterpolateError::Lengths));
        }
        out.copy_from_slice(v);
        return Ok(());
    }
    gf256::interpolate(points, SECRET_INDEX, out).map_err(interp_err)?;
    let digest_share = gf256::interpolate_new(points, DIGEST_INDEX).map_err(interp_err)?;
    if digest_share.len() < DIGEST_BYTES
        || digest(&digest_share[DIGEST_BYTES..], out) != digest_share[..DIGEST_BYTES]
    {
        return Err(ShareError::Digest);
    }
    Ok(())
}

fn check_passphrase(p: &[u8]) -> Result<(), ShareError> {
    if p.iter().all(|b| (32..=126).contains(b)) {
        Ok(())
    } else {
        Err(ShareError::Passphrase)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests;
