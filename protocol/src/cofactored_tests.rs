//! The cofactored rule against strict verification, its batch against its single form,
//! and a signature crafted with a small-order component in `R`.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};

use super::*;
use crate::NetworkId;
use crate::hash::Hash;
use crate::sign::SignKind;

/// A key from a scalar, and a signature made by hand: `R = [r]B + torsion`.
struct Key {
    a: Scalar,
    public: PublicKey,
}

fn key(seed: u8) -> Key {
    let a = Scalar::from_bytes_mod_order_wide(&[seed.wrapping_add(1); 64]);
    let public =
        PublicKey::from_bytes((ED25519_BASEPOINT_POINT * a).compress().as_bytes()).unwrap();
    Key { a, public }
}

fn msg(i: u8) -> SignBytes {
    SignBytes::new(
        SignKind::Transaction,
        &NetworkId(Hash([7; 32])),
        &Hash([i; 32]),
    )
}

/// Sign `sb` with nonce `r`, adding `torsion` to `R` (0: an ordinary signature).
fn sign(k: &Key, sb: &SignBytes, r_seed: u8, torsion: usize) -> Signature {
    let r = Scalar::from_bytes_mod_order_wide(&[r_seed; 64]);
    let big_r = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion];
    let r_bytes = big_r.compress().to_bytes();
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(k.public.as_bytes());
    h.update(sb.as_bytes());
    let c = Scalar::from_bytes_mod_order_wide(&wide(h));
    let s = r + c * k.a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    Signature(sig)
}

fn strict(sb: &SignBytes, k: &PublicKey, sig: &Signature) -> bool {
    k.verify_sign_bytes(sb, sig).is_ok()
}

#[test]
fn ordinary_signatures_pass_both_rules_and_tampered_ones_neither() {
    for i in 0..16u8 {
        let k = key(i);
        let sb = msg(i);
        let sig = sign(&k, &sb, i + 100, 0);
        assert!(strict(&sb, &k.public, &sig), "strict {i}");
        assert!(verify(&sb, &k.public, &sig), "cofactored {i}");
        for byte in [0usize, 17, 31, 32, 45, 63] {
            let mut bad = sig;
            bad.0[byte] ^= 0x04;
            assert!(!verify(&sb, &k.public, &bad), "tampered byte {byte}");
            assert!(!strict(&sb, &k.public, &bad));
        }
        assert!(!verify(&msg(i + 1), &k.public, &sig), "another message");
        assert!(!verify(&sb, &key(i + 1).public, &sig), "another key");
    }
}

#[test]
fn a_signature_made_by_the_real_signer_passes() {
    // Signed by ed25519-dalek (what clients use), checked by the rule.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let public = PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap();
    let sb = msg(3);
    let sig = Signature(ed25519_dalek::Signer::sign(&sk, sb.as_bytes()).to_bytes());
    assert!(verify(&sb, &public, &sig));
    assert!(verify_batch(&[(&sb, &public, &sig)]));
}

#[test]
fn non_canonical_s_and_small_order_r_are_refused() {
    let k = key(1);
    let sb = msg(1);
    let sig = sign(&k, &sb, 50, 0);
    // s + ℓ: the same scalar, not canonical.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig.0[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    let mut bad = sig;
    bad.0[32..].copy_from_slice(&s_plus_l);
    assert!(!verify(&sb, &k.public, &bad));
    assert!(!verify_batch(&[(&sb, &k.public, &bad)]));
    // R of small order (here: a point of order 8), whatever s.
    let mut small = sig;
    small.0[..32].copy_from_slice(EIGHT_TORSION[1].compress().as_bytes());
    assert!(!verify(&sb, &k.public, &small));
    assert!(!verify_batch(&[(&sb, &k.public, &small)]));
}

/// The difference between the rules, and why the batch can count: a signature whose `R`
/// carries a small-order component fails strict (cofactorless) verification and passes
/// the cofactored rule, and the batch agrees with the rule whatever shares the batch.
#[test]
fn a_torsioned_r_passes_the_rule_and_every_batch_that_holds_it() {
    let k = key(4);
    let sb = msg(4);
    for t in 1..8 {
        let crafted = sign(&k, &sb, 60 + t as u8, t);
        assert!(
            !strict(&sb, &k.public, &crafted),
            "strict refuses torsion {t}"
        );
        assert!(
            verify(&sb, &k.public, &crafted),
            "the rule accepts torsion {t}"
        );
    }
    let crafted = sign(&k, &sb, 77, 3);
    let others: Vec<(Key, SignBytes)> = (10..30u8).map(|i| (key(i), msg(i))).collect();
    let sigs: Vec<Signature> = others
        .iter()
        .enumerate()
        .map(|(j, (k, m))| sign(k, m, 200 + j as u8, 0))
        .collect();
    for n in 0..others.len() {
        for at in [0, n / 2, n] {
            let mut items: Vec<Item<'_>> = others[..n]
                .iter()
                .zip(&sigs)
                .map(|((k, m), s)| (m, &k.public, s))
                .collect();
            items.insert(at, (&sb, &k.public, &crafted));
            assert!(
                verify_batch(&items),
                "batch of {} with the crafted one at {at}",
                n + 1
            );
        }
    }
}

#[test]
fn a_batch_fails_exactly_when_one_signature_is_bad() {
    let keys: Vec<(Key, SignBytes)> = (40..72u8).map(|i| (key(i), msg(i))).collect();
    let sigs: Vec<Signature> = keys.iter().map(|(k, m)| sign(k, m, 9, 0)).collect();
    let items = |sigs: &[Signature]| -> bool {
        let v: Vec<Item<'_>> = keys
            .iter()
            .zip(sigs)
            .map(|((k, m), s)| (m, &k.public, s))
            .collect();
        verify_batch(&v)
    };
    assert!(items(&sigs));
    assert!(verify_batch(&[]));
    for bad in [0, 13, 31] {
        let mut s = sigs.clone();
        s[bad].0[40] ^= 1;
        assert!(!items(&s), "bad signature {bad}");
        // Two signatures swapped between messages: each is someone's good signature.
        let mut s = sigs.clone();
        s.swap(bad, (bad + 1) % sigs.len());
        assert!(!items(&s), "swapped at {bad}");
    }
}
