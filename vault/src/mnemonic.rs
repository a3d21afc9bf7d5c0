//! BIP-39 recovery words and SLIP-10 Ed25519 derivation at Convex's path
//! `m/44'/864'/0'/0'/0'`.
//!
//! * 24 English words from 256 bits of OS entropy (checksum per BIP-39);
//! * seed = PBKDF2-HMAC-SHA512(words, "mnemonic", 2048) (BIP-39, empty passphrase);
//! * SLIP-10 for Ed25519: master `I = HMAC-SHA512("ed25519 seed", seed)`, then for each
//!   (necessarily hardened) index `I = HMAC-SHA512(chain, 0x00 ‖ key ‖ ser32(i | 2^31))`;
//!   the key is `I[..32]`, the chain code `I[32..]`.
//!
//! `tests/slip10.rs` checks [`derive`] against the published SLIP-10 Ed25519 test vectors.

use core::fmt;

use bip39::{Language, Mnemonic};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::secret::Seed;

/// Convex's derivation path (BIP-44 coin type 864), all hardened.
pub const CONVEX_PATH: [u32; 5] = [44, 864, 0, 0, 0];
/// The path as text (recorded in manifests).
pub const CONVEX_PATH_TEXT: &str = "m/44'/864'/0'/0'/0'";
/// The hardened-index offset.
pub const HARDENED: u32 = 0x8000_0000;

/// Recovery words (the third-party type, boxed so it is not moved around; it zeroizes
/// its word indices on drop).
pub struct Words(Box<Mnemonic>);

impl fmt::Debug for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Words(redacted)")
    }
}

impl Words {
    /// 24 new words from 32 bytes of OS entropy.
    ///
    /// # Errors
    /// When the OS generator fails.
    pub fn generate() -> Result<Self> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut entropy[..]).map_err(|e| VaultError::Input {
            what: "random bytes",
            reason: e.to_string(),
        })?;
        let m = Mnemonic::from_entropy_in(Language::English, &entropy[..])
            .map_err(|e| VaultError::Mnemonic(e.to_string()))?;
        Ok(Self(Box::new(m)))
    }

    /// Parse typed words (whitespace-separated, case-insensitive); the BIP-39 checksum
    /// must hold.
    ///
    /// # Errors
    /// [`VaultError::Mnemonic`] for an unknown word, a wrong count or a bad checksum.
    pub fn parse(text: &str) -> Result<Self> {
        let mut lower = Zeroizing::new(String::with_capacity(text.len() + 1));
        for (i, w) in text.split_whitespace().enumerate() {
            if i > 0 {
                lower.push(' ');
            }
            for c in w.chars() {
                lower.push(c.to_ascii_lowercase());
            }
        }
        let m = Mnemonic::parse_in_normalized(Language::English, &lower)
            .map_err(|e| VaultError::Mnemonic(e.to_string()))?;
        Ok(Self(Box::new(m)))
    }

    /// The words, for showing on the terminal (never on stdout or in a log).
    pub fn words(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.words()
    }

    /// Same words?
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.0.word_indices().eq(other.0.word_indices())
    }

    /// The Ed25519 seed at [`CONVEX_PATH`].
    ///
    /// # Errors
    /// [`VaultError::Memory`] when locked memory is not available.
    pub fn seed(&self) -> Result<Seed> {
        let bip39_seed = Zeroizing::new(self.0.to_seed_normalized(""));
        derive(&bip39_seed[..], &CONVEX_PATH)
    }
}

/// One SLIP-10 node: the key and chain code.
struct Node(Zeroizing<[u8; 64]>);

fn hmac512(key: &[u8], parts: &[&[u8]]) -> Node {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        mac.update(p);
    }
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Node(out)
}

fn derive_node(bip39_seed: &[u8], path: &[u32]) -> Node {
    let mut node = hmac512(b"ed25519 seed", &[bip39_seed]);
    for &i in path {
        let index = (i | HARDENED).to_be_bytes();
        node = hmac512(&node.0[32..], &[&[0u8], &node.0[..32], &index]);
    }
    node
}

/// SLIP-10 Ed25519 derivation of `path` (indices below 2^31; each is hardened, as
/// Ed25519 requires) from a BIP-39 seed, into locked memory.
///
/// # Errors
/// [`VaultError::Memory`] when locked memory is not available.
pub fn derive(bip39_seed: &[u8], path: &[u32]) -> Result<Seed> {
    let node = derive_node(bip39_seed, path);
    let mut seed = Seed::zero()?;
    seed.bytes_mut().copy_from_slice(&node.0[..32]);
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, chain code, private key, public key with SLIP-10's 00 prefix or "").
    type Vector = (&'static [u32], &'static str, &'static str, &'static str);

    // https://github.com/satoshilabs/slips/blob/master/slip-0010.md, test vector 1 for ed25519.
    const SEED1: &str = "000102030405060708090a0b0c0d0e0f";
    const VECTOR1: &[Vector] = &[
        (
            &[],
            "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
            "00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
        ),
        (
            &[0],
            "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
            "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
            "008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
        ),
        (
            &[0, 1],
            "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
            "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
            "001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187",
        ),
        (
            &[0, 1, 2],
            "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
            "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
            "",
        ),
        (
            &[0, 1, 2, 2],
            "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
            "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
            "",
        ),
        (
            &[0, 1, 2, 2, 1_000_000_000],
            "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
            "",
        ),
    ];

    // Test vector 2 for ed25519.
    const SEED2: &str = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
    const VECTOR2: &[Vector] = &[
        (
            &[],
            "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
            "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
            "",
        ),
        (
            &[0],
            "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
            "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
            "",
        ),
        (
            &[0, 2_147_483_647],
            "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
            "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
            "",
        ),
        (
            &[0, 2_147_483_647, 1],
            "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
            "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
            "",
        ),
        (
            &[0, 2_147_483_647, 1, 2_147_483_646],
            "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
            "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
            "",
        ),
        (
            &[0, 2_147_483_647, 1, 2_147_483_646, 2],
            "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
            "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
            "",
        ),
    ];

    #[test]
    fn slip10_ed25519_published_vectors() {
        for (seed_hex, vectors) in [(SEED1, VECTOR1), (SEED2, VECTOR2)] {
            let seed = hex::decode(seed_hex).unwrap();
            for (path, chain, private, public) in vectors {
                let node = derive_node(&seed, path);
                assert_eq!(hex::encode(&node.0[32..]), *chain, "chain code at {path:?}");
                assert_eq!(
                    hex::encode(&node.0[..32]),
                    *private,
                    "private key at {path:?}"
                );
                let key = derive(&seed, path).unwrap();
                assert_eq!(hex::encode(key.bytes()), *private);
                if !public.is_empty() {
                    assert_eq!(
                        format!("00{}", key.public_key().unwrap().to_hex()),
                        *public,
                        "public key at {path:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn bip39_checksum_is_enforced_and_words_round_trip() {
        // BIP-39 vector (entropy 00..00, 24 words): "abandon" x23 + "art".
        let good = format!("{} art", ["abandon"; 23].join(" "));
        let w = Words::parse(&good).unwrap();
        assert_eq!(w.words().count(), 24);
        // Uppercase and extra whitespace are accepted.
        let w2 = Words::parse(&format!("  {}  ", good.to_uppercase())).unwrap();
        assert!(w.same_as(&w2));
        // Last word changed: the checksum fails.
        let bad = format!("{} abandon", ["abandon"; 23].join(" "));
        assert!(matches!(Words::parse(&bad), Err(VaultError::Mnemonic(_))));
        assert!(matches!(
            Words::parse("abandon notaword"),
            Err(VaultError::Mnemonic(_))
        ));
        // Fresh words parse back to the same seed.
        let g = Words::generate().unwrap();
        let text: Vec<&str> = g.words().collect();
        let back = Words::parse(&text.join(" ")).unwrap();
        assert_eq!(g.seed().unwrap().bytes(), back.seed().unwrap().bytes());
    }

    #[test]
    fn bip39_seed_matches_the_trezor_vector() {
        // Trezor's BIP-39 vector 0 (passphrase "TREZOR") pins the PBKDF2 step.
        let m = Mnemonic::parse_in_normalized(
            Language::English,
            &format!("{} about", ["abandon"; 11].join(" ")),
        )
        .unwrap();
        assert_eq!(
            hex::encode(m.to_seed_normalized("TREZOR")),
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
        );
    }
}
