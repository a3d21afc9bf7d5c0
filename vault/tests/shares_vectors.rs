//! Trezor's official SLIP-39 test vectors, every one: each valid vector reproduces its
//! master secret with the passphrase "TREZOR", each invalid one is refused.
//!
//! `data/slip39-vectors.json` is `vectors.json` of trezor/python-shamir-mnemonic
//! (vectors 1–40); `data/slip39-vectors-41-45.json` holds vectors 41–45 that upstream
//! added later (the extendable flag, and the modular-arithmetic check). See
//! `data/README.md` for their origin.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use cvx_vault::VaultError;
use cvx_vault::shares::{self, Share};

fn load(name: &str) -> Vec<(String, Vec<String>, String)> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = e.as_array().unwrap();
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_owned())
                    .collect(),
                e[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_official_vector_passes() {
    let mut all = load("slip39-vectors.json");
    assert_eq!(all.len(), 40, "upstream vectors.json has 40 vectors");
    all.extend(load("slip39-vectors-41-45.json"));
    assert_eq!(all.len(), 45);
    let (mut valid, mut invalid) = (0, 0);
    for (i, (name, mnemonics, secret)) in all.iter().enumerate() {
        assert!(
            name.starts_with(&format!("{}. ", i + 1)),
            "vector order: {name}"
        );
        let refs: Vec<&str> = mnemonics.iter().map(String::as_str).collect();
        let got = shares::combine(&refs, b"TREZOR");
        if secret.is_empty() {
            let e = got.expect_err(name);
            assert!(matches!(e, VaultError::Shares(_)), "{name}: {e:?}");
            println!("{name}: refused: {e}");
            invalid += 1;
        } else {
            let s = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hex::encode(s.bytes()), *secret, "{name}");
            // Each valid share re-encodes to exactly the words it was read from.
            for (k, m) in mnemonics.iter().enumerate() {
                let share = Share::parse(m, k + 1).unwrap();
                assert_eq!(&share.to_words()[..], m.as_str(), "{name}: share {}", k + 1);
            }
            valid += 1;
        }
    }
    println!("{valid} valid and {invalid} invalid vectors");
    assert_eq!((valid, invalid), (15, 30));
}

/// The refusals name the right cause for the vectors whose cause is in their name.
#[test]
fn invalid_vectors_are_refused_for_the_stated_reason() {
    let all = load("slip39-vectors.json");
    let cause = |i: usize| {
        let (_, m, _) = &all[i - 1];
        let refs: Vec<&str> = m.iter().map(String::as_str).collect();
        match shares::combine(&refs, b"TREZOR") {
            Err(VaultError::Shares(e)) => e,
            other => panic!("vector {i}: {other:?}"),
        }
    };
    use shares::ShareError as E;
    for i in [2, 21] {
        assert!(matches!(cause(i), E::Checksum { share: 1 }), "vector {i}");
    }
    for i in [3, 22] {
        assert!(matches!(cause(i), E::Padding { share: 1 }), "vector {i}");
    }
    for i in [5, 14, 15, 16, 24, 33, 34, 35] {
        assert!(
            matches!(cause(i), E::TooFew(_)),
            "vector {i}: {:?}",
            cause(i)
        );
    }
    for i in [6, 7, 8, 9, 12, 25, 26, 27, 28, 31] {
        assert!(
            matches!(cause(i), E::Mismatch { share: 2.., .. }),
            "vector {i}: {:?}",
            cause(i)
        );
    }
    for i in [10, 29] {
        assert!(
            matches!(cause(i), E::Parameters { .. }),
            "vector {i}: {:?}",
            cause(i)
        );
    }
    for i in [11, 30] {
        assert!(
            matches!(cause(i), E::Duplicate { share: 2, other: 1 }),
            "vector {i}"
        );
    }
    for i in [13, 32] {
        assert!(matches!(cause(i), E::Digest), "vector {i}");
    }
    for i in [39, 40] {
        assert!(matches!(cause(i), E::Length { share: 1, .. }), "vector {i}");
    }
}

/// Base58 (Bitcoin alphabet) of `bytes` with its 4-byte double-SHA-256 checksum.
fn base58check(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let sum = Sha256::digest(Sha256::digest(bytes));
    let mut data = bytes.to_vec();
    data.extend_from_slice(&sum[..4]);
    let mut digits: Vec<u8> = Vec::new(); // base 58, least significant first
    for &b in &data {
        let mut carry = u32::from(b);
        for d in &mut digits {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(
            digits
                .iter()
                .rev()
                .map(|&d| char::from(ALPHABET[usize::from(d)])),
        )
        .collect()
}

/// BIP-32: the master extended private key (mainnet xprv) of a seed.
fn xprv(seed: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(b"Bitcoin seed").unwrap();
    mac.update(seed);
    let i = mac.finalize().into_bytes();
    let mut raw = vec![0x04, 0x88, 0xAD, 0xE4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    raw.extend_from_slice(&i[32..]);
    raw.push(0);
    raw.extend_from_slice(&i[..32]);
    base58check(&raw)
}

/// The vectors' xprv column: the recovered master secret is the seed of exactly that
/// BIP-32 master key.
#[test]
#[allow(clippy::cast_possible_truncation)]
fn recovered_secrets_give_the_vectors_xprv() {
    let mut all = load("slip39-vectors.json");
    all.extend(load("slip39-vectors-41-45.json"));
    let path = format!("{}/tests/data/slip39-xprv.json", env!("CARGO_MANIFEST_DIR"));
    let x: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let x = x.as_object().unwrap();
    assert_eq!(x.len(), 4);
    for (n, want) in x {
        let (name, mnemonics, _) = &all[n.parse::<usize>().unwrap() - 1];
        let refs: Vec<&str> = mnemonics.iter().map(String::as_str).collect();
        let s = shares::combine(&refs, b"TREZOR").unwrap();
        assert_eq!(xprv(s.bytes()), want.as_str().unwrap(), "{name}");
    }
}
