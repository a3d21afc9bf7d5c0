//! The transaction signature rule: cofactored Ed25519 verification (docs/protocol.md §6,
//! "Transaction signatures").
//!
//! A transaction's signature `(R, s)` by key `A` over sign-bytes `M` is valid when
//! - `s` is canonical (below the group order ℓ),
//! - `R` decodes to a curve point that is not of small order (the key `A` is always a
//!   validated [`PublicKey`]: canonical, not of small order),
//! - and `[8]([s]B − R − [k]A)` is the identity, where `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
//!
//! This is RFC 8032's cofactored equation (§5.1.7 allows it). Every signature an honest
//! Ed25519 signer makes passes it, exactly as it passes strict cofactorless verification;
//! the two differ only for signatures made to carry a small-order component in `R` or `A`,
//! which only the holder of the key can make. The reason for the rule: its batch form
//! ([`verify_batch`]) agrees with it signature by signature, whatever else shares the batch
//! — a batch passes exactly when every signature in it is valid (up to a 2^-128 chance
//! over coefficients derived from all inputs). The cofactorless batch of ed25519-dalek does
//! not have that property, so a peer could not count a passing batch as verification of
//! each signature in it; with this rule it can, and a peer never verifies the same
//! transaction signature twice (issue 15).
//!
//! Orders, blocks and challenge responses keep strict verification (`verify_strict`):
//! they are checked one by one, and their signer is a cvx-signer.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

use crate::{PublicKey, SignBytes, Signature};

/// Domain tag of the batch coefficients' derivation.
const BATCH_TAG: &[u8] = b"cvx1/cofactored-batch";

/// One signature to check: the sign-bytes, the key and the signature.
pub type Item<'a> = (&'a SignBytes, &'a PublicKey, &'a Signature);

/// A signature decoded for the equation: `R`, `s`, `k` and `A`.
struct Parsed {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
    a: EdwardsPoint,
}

fn wide(h: Sha512) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(&h.finalize());
    out
}

/// `None` when `s` is not canonical or `R` is not a point or is of small order.
fn parse(sb: &SignBytes, key: &PublicKey, sig: &Signature) -> Option<Parsed> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig.0[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig.0[32..]);
    let s: Scalar = Option::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    if r.is_small_order() {
        return None;
    }
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    h.update(sb.as_bytes());
    let k = Scalar::from_bytes_mod_order_wide(&wide(h));
    Some(Parsed {
        r,
        s,
        k,
        a: key.verifying_key().to_edwards(),
    })
}

/// Whether `sig` is a valid signature of `sb` by `key` under the rule (module comment).
#[must_use]
pub fn verify(sb: &SignBytes, key: &PublicKey, sig: &Signature) -> bool {
    let Some(p) = parse(sb, key, sig) else {
        return false;
    };
    // [k](−A) + [s]B − R, times the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.a, &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// Whether every signature in `items` is valid under the rule, checked as one batch:
/// `[8](Σ zᵢ·Rᵢ + Σ (zᵢ·kᵢ)·Aᵢ − (Σ zᵢ·sᵢ)·B)` is the identity, with 128-bit coefficients
/// `zᵢ` derived from SHA-512 over every input (deterministic: every peer computes the same).
/// It is `true` exactly when [`verify`] is `true` for each item (up to a 2^-128 chance),
/// so a passing batch counts as a check of each signature. An empty batch passes.
#[must_use]
pub fn verify_batch(items: &[Item<'_>]) -> bool {
    let mut parsed = Vec::with_capacity(items.len());
    let mut transcript = Sha512::new();
    transcript.update(BATCH_TAG);
    transcript.update((items.len() as u64).to_le_bytes());
    for (sb, key, sig) in items {
        let Some(p) = parse(sb, key, sig) else {
            return false;
        };
        // R and s (the signature), A, and k (which binds R, A and the sign-bytes).
        transcript.update(sig.0);
        transcript.update(key.as_bytes());
        transcript.update(p.k.as_bytes());
        parsed.push(p);
    }
    let seed = wide(transcript);
    let mut b_coeff = Scalar::ZERO;
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * parsed.len() + 1);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(2 * parsed.len() + 1);
    for (i, p) in parsed.iter().enumerate() {
        let mut h = Sha512::new();
        h.update(seed);
        h.update((i as u64).to_le_bytes());
        let mut z16 = [0u8; 16];
        z16.copy_from_slice(&wide(h)[..16]);
        let z = Scalar::from(u128::from_le_bytes(z16));
        b_coeff -= z * p.s;
        scalars.push(z);
        points.push(p.r);
        scalars.push(z * p.k);
        points.push(p.a);
    }
    scalars.push(b_coeff);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
#[path = "cofactored_tests.rs"]
mod tests;
