//! SLIP-39's encryption of the master secret: a 4-round Feistel network whose round
//! function is PBKDF2-HMAC-SHA256 keyed by the round number and the passphrase,
//! salted with "shamir" ‖ identifier (nothing for extendable shares) ‖ the right half,
//! with (10000 << e) / 4 iterations per round.
//!
//! The buffer is encrypted in place, so a caller that holds it in locked memory never
//! has a second copy of the secret; the round outputs are zeroized on drop.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Rounds of the Feistel network.
pub const ROUNDS: u8 = 4;
/// PBKDF2 iterations of the whole cipher at iteration exponent 0.
pub const BASE_ITERATIONS: u32 = 10_000;
/// The longest half the round function produces in one PBKDF2 block.
pub const MAX_HALF: usize = 32;

/// PBKDF2-HMAC-SHA256 with `out.len() <= 32` (one block).
fn pbkdf2_one_block(password: &[u8], salt: &[&[u8]], iterations: u32, out: &mut [u8]) {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(password)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    let mut mac = keyed.clone();
    for s in salt {
        mac.update(s);
    }
    mac.update(&1u32.to_be_bytes());
    let mut u = Zeroizing::new([0u8; 32]);
    u.copy_from_slice(&mac.finalize().into_bytes());
    let mut t = Zeroizing::new(*u);
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u[..]);
        u.copy_from_slice(&mac.finalize().into_bytes());
        for (a, b) in t.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    let n = out.len().min(32);
    out[..n].copy_from_slice(&t[..n]);
}

fn salt_prefix(identifier: u16, extendable: bool) -> Vec<u8> {
    if extendable {
        Vec::new()
    } else {
        let mut s = super::rs1024::CUSTOM_ORIG.to_vec();
        s.extend_from_slice(&identifier.to_be_bytes());
        s
    }
}

/// One pass of the network over `buf` (L ‖ R), rounds in the given order.
fn feistel(
    buf: &mut [u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
    rounds: impl Iterator<Item = u8>,
) {
    let half = buf.len() / 2;
    debug_assert!(buf.len().is_multiple_of(2) && half <= MAX_HALF);
    let salt = salt_prefix(identifier, extendable);
    let iterations = (BASE_ITERATIONS << exponent) / u32::from(ROUNDS);
    let mut key = Zeroizing::new(Vec::with_capacity(passphrase.len() + 1));
    let mut f = Zeroizing::new([0u8; MAX_HALF]);
    for i in rounds {
        key.clear();
        key.push(i);
        key.extend_from_slice(passphrase);
        pbkdf2_one_block(&key, &[&salt, &buf[half..]], iterations, &mut f[..half]);
        // (L, R) -> (R, L ^ F(R)): xor into L, then swap the halves in place.
        for (l, x) in buf[..half].iter_mut().zip(f.iter()) {
            *l ^= x;
        }
        buf.rotate_left(half);
    }
    // The output is R ‖ L.
    buf.rotate_left(half);
}

/// Encrypt the master secret in place (its length is even and at most 64 bytes).
pub fn encrypt(buf: &mut [u8], passphrase: &[u8], exponent: u8, identifier: u16, extendable: bool) {
    feistel(buf, passphrase, exponent, identifier, extendable, 0..ROUNDS);
}

/// Decrypt the encrypted master secret in place.
pub fn decrypt(buf: &mut [u8], passphrase: &[u8], exponent: u8, identifier: u16, extendable: bool) {
    feistel(
        buf,
        passphrase,
        exponent,
        identifier,
        extendable,
        (0..ROUNDS).rev(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256("passwd", "salt", 1), first block.
        let mut out = [0u8; 32];
        pbkdf2_one_block(b"passwd", &[b"salt"], 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn decrypt_inverts_encrypt_and_the_passphrase_matters() {
        for extendable in [false, true] {
            let secret: Vec<u8> = (0..32u8).collect();
            let mut buf = secret.clone();
            encrypt(&mut buf, b"TREZOR", 0, 7, extendable);
            assert_ne!(buf, secret);
            let mut back = buf.clone();
            decrypt(&mut back, b"TREZOR", 0, 7, extendable);
            assert_eq!(back, secret);
            let mut wrong = buf.clone();
            decrypt(&mut wrong, b"TREZOR2", 0, 7, extendable);
            assert_ne!(wrong, secret);
        }
    }
}
