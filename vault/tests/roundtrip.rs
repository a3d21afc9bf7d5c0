//! Acceptance 1: keygen → backup → verify → restore gives the same key (property
//! test at a low work factor, one case at the production work factor 18).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::{LOW, Script, TempDir, code, stderr, stdout, vault};
use cvx_protocol::keyfile;
use cvx_vault::audit::AuditLog;
use cvx_vault::backup::Role;
use cvx_vault::ops::{self, KeySource, KeygenOptions, RestoreOptions};
use proptest::prelude::*;

fn round_trip(role: Role, source: KeySource, pass: &str, words: Option<String>) {
    let d = TempDir::new("rt");
    let audit = AuditLog::new(&d.path("audit.log"));
    let backup = d.path("k.age");
    let mut op = Script {
        passphrases: vec![pass.to_owned()],
        words: words.clone(),
        ..Script::default()
    };
    let k = ops::keygen(
        &audit,
        &mut op,
        &KeygenOptions {
            role,
            source,
            backup: backup.clone(),
            manifest: None,
            work_factor: LOW,
        },
    )
    .unwrap();
    let v = ops::verify(&backup, None).unwrap();
    assert_eq!(v.public_key, k.public_key);
    assert_eq!(v.manifest.role, role);
    assert_eq!(v.manifest.scrypt_log_n, LOW);
    let out = d.path("restored.key");
    let mut op2 = Script {
        passphrases: vec![pass.to_owned()],
        ..Script::default()
    };
    let r = ops::restore(
        &audit,
        &mut op2,
        &RestoreOptions {
            backup: backup.clone(),
            manifest: None,
            no_manifest: false,
            out: out.clone(),
            force: false,
            max_work_factor: 20,
        },
    )
    .unwrap();
    assert_eq!(r.public_key, k.public_key);
    let plain = std::fs::read(&out).unwrap();
    assert_eq!(keyfile::public_key(&plain).unwrap(), k.public_key);
    // The seed really derives the key.
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&plain[keyfile::SEED]);
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    assert_eq!(sk.verifying_key().as_bytes(), k.public_key.as_bytes());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Imported words give the same key every time (the SLIP-10 path is fixed).
    if let Some(w) = words {
        let again = cvx_vault::mnemonic::Words::parse(&w)
            .unwrap()
            .seed()
            .unwrap()
            .public_key()
            .unwrap();
        assert_eq!(again, k.public_key);
    }
    assert_eq!(audit.verify().unwrap().records, 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn keygen_backup_verify_restore_gives_the_same_key(
        pass in "[ -~]{1,40}",
        peer in any::<bool>(),
        kind in 0u8..3,
        entropy in any::<[u8; 32]>(),
    ) {
        let role = if peer { Role::Peer } else { Role::Account };
        let (source, words) = match kind {
            0 => (KeySource::Random, None),
            1 => (KeySource::NewWords, None),
            _ => {
                let m = bip39::Mnemonic::from_entropy(&entropy).unwrap();
                (KeySource::ImportWords, Some(m.to_string()))
            }
        };
        round_trip(role, source, &pass, words);
    }
}

#[test]
fn production_work_factor_18_through_the_binary() {
    let d = TempDir::new("rt18");
    let key = common::keygen(&d.0, "peer", "peer.age", "correct horse battery staple", 18);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("peer.age.manifest.json")).unwrap()).unwrap();
    assert_eq!(m["scrypt_log_n"], 18);
    assert_eq!(m["public_key"], key.as_str());
    let v = vault(
        &d.0,
        &["--audit", "audit.log", "verify", "--backup", "peer.age"],
        "",
    );
    assert_eq!(code(&v), 0, "{}", stderr(&v));
    assert!(stdout(&v).contains(&key));
    let r = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "peer.age",
            "--out",
            "peer.key",
            "--passphrase-fd",
            "0",
        ],
        "correct horse battery staple\n",
    );
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let plain = std::fs::read(d.path("peer.key")).unwrap();
    assert_eq!(keyfile::public_key(&plain).unwrap().to_hex(), key);
    // A maximum below the file's work factor is refused before any derivation.
    let low = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "peer.age",
            "--out",
            "x.key",
            "--passphrase-fd",
            "0",
            "--max-work-factor",
            "17",
        ],
        "correct horse battery staple\n",
    );
    assert_eq!(code(&low), 8, "{}", stderr(&low));
    assert!(!d.path("x.key").exists());
    // restore never overwrites without --force ...
    let again = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "peer.age",
            "--out",
            "peer.key",
            "--passphrase-fd",
            "0",
        ],
        "correct horse battery staple\n",
    );
    assert_eq!(code(&again), 4, "{}", stderr(&again));
    // ... and with --force replaces it atomically, leaving no staging file.
    std::fs::write(d.path("peer.key"), b"old").unwrap();
    let forced = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "peer.age",
            "--out",
            "peer.key",
            "--force",
            "--passphrase-fd",
            "0",
        ],
        "correct horse battery staple\n",
    );
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(std::fs::read(d.path("peer.key")).unwrap(), plain);
    assert!(!d.path("peer.key.cvx-vault-new").exists());
}
