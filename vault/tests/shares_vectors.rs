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
