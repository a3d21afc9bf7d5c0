//! Acceptance 8: every user-facing error message is snapshot-tested. Each case runs
//! the real binary (or, for the few errors a test cannot provoke from outside,
//! formats the library error) and records the exit code and stderr, with the temp
//! directory and 64-hex-digit values normalized. The snapshot is
//! `tests/snapshots/errors.txt`; regenerate it with `UPDATE_SNAPSHOTS=1`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::{LOW, TempDir, code, vault};
use cvx_vault::shares::ShareError;
use cvx_vault::{Damage, VaultError};

/// Every variant, by name: adding a variant without a snapshot case fails to compile.
fn variant(e: &VaultError) -> &'static str {
    match e {
        VaultError::Usage(_) => "Usage",
        VaultError::Read { .. } => "Read",
        VaultError::Write { .. } => "Write",
        VaultError::TooLarge { .. } => "TooLarge",
        VaultError::Exists(_) => "Exists",
        VaultError::Input { .. } => "Input",
        VaultError::PassphraseMismatch => "PassphraseMismatch",
        VaultError::EmptyPassphrase => "EmptyPassphrase",
        VaultError::WordsMismatch => "WordsMismatch",
        VaultError::Mnemonic(_) => "Mnemonic",
        VaultError::Manifest { .. } => "Manifest",
        VaultError::Damaged { .. } => "Damaged",
        VaultError::Malformed { .. } => "Malformed",
        VaultError::WrongPassphrase(_) => "WrongPassphrase",
        VaultError::DecryptFailed(_) => "DecryptFailed",
        VaultError::WorkFactor { .. } => "WorkFactor",
        VaultError::KeyMismatch { .. } => "KeyMismatch",
        VaultError::Role { .. } => "Role",
        VaultError::Invalid { .. } => "Invalid",
        VaultError::HashMismatch { .. } => "HashMismatch",
        VaultError::Declined => "Declined",
        VaultError::NoTerminal { .. } => "NoTerminal",
        VaultError::Audit { .. } => "Audit",
        VaultError::Sandbox(_) => "Sandbox",
        VaultError::Memory { .. } => "Memory",
        VaultError::Encrypt(_) => "Encrypt",
        VaultError::ConvexFile { .. } => "ConvexFile",
        VaultError::Shares(_) => "Shares",
    }
}

fn normalize(s: &str, dir: &str) -> String {
    let s = s.replace(dir, "$DIR");
    // 64 hex digits (keys, hashes, ids) vary per run.
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if run == 64 && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            out.push_str("<hex64>");
            i += 64;
        } else if run > 0 {
            out.push_str(&s[i..i + run]);
            i += run;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn every_user_facing_error_matches_the_snapshot() {
    let d = TempDir::new("errors");
    let dir = d.0.display().to_string();
    let pass = "snap pass";
    let acct = common::keygen(&d.0, "account", "acct.age", pass, LOW);
    common::keygen(&d.0, "peer", "peer.age", pass, LOW);
    let net = "5e".repeat(32);
    let peer = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    // Damaged copies and crafted files.
    let good = std::fs::read(d.path("acct.age")).unwrap();
    for (name, bytes) in [
        ("trunc.age", good[..good.len() / 2].to_vec()),
        ("long.age", [good.clone(), b"x".to_vec()].concat()),
        ("flip.age", {
            let mut b = good.clone();
            b[100] ^= 1;
            b
        }),
    ] {
        std::fs::write(d.path(name), bytes).unwrap();
        std::fs::copy(
            d.path("acct.age.manifest.json"),
            d.path(&format!("{name}.manifest.json")),
        )
        .unwrap();
    }
    std::fs::write(d.path("junk.age"), b"this is not an age file\n").unwrap();
    std::fs::write(d.path("bad.age"), &good).unwrap();
    std::fs::write(d.path("bad.age.manifest.json"), b"{\"format\": 1}").unwrap();
    // A manifest naming another key (hash matches): the key check catches it.
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("acct.age.manifest.json")).unwrap()).unwrap();
    m["public_key"] = peer.into();
    std::fs::write(d.path("other.age"), &good).unwrap();
    std::fs::write(
        d.path("other.age.manifest.json"),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    std::fs::write(d.path("big.json"), vec![b' '; 20_000]).unwrap();
    let req = |network: &str, expected: &str| {
        serde_json::json!({"format": "cvx-vault-tx-request", "version": 1, "action": "withdraw",
            "fields": {"network": network, "origin": 3, "sequence": 4, "peer": peer}, "expected_hash": expected}).to_string()
    };
    std::fs::write(
        d.path("othernet.json"),
        req(&"77".repeat(32), &"11".repeat(32)),
    )
    .unwrap();
    std::fs::write(d.path("hash.json"), req(&net, &"11".repeat(32))).unwrap();
    std::fs::write(
        d.path("unknown.json"),
        b"{\"format\": \"cvx-vault-tx-request\", \"version\": 1, \"extra\": 1}",
    )
    .unwrap();
    std::fs::write(d.path("tampered.log"), {
        let log = std::fs::read_to_string(d.path("audit.log")).unwrap();
        log.replacen("\"keygen\"", "\"restore\"", 1)
    })
    .unwrap();
    std::fs::write(d.path("exists.key"), b"").unwrap();

    let tx = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["tx".into()];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<String>>();
    let wd = |seq: &str, network: &str| {
        s(&[
            "tx",
            "withdraw",
            "--network",
            network,
            "--origin",
            "3",
            "--sequence",
            seq,
            "--peer",
            peer,
            "--key",
            "acct.age",
            "--out",
            "o.cvxtx",
            "--yes",
            "--passphrase-fd",
            "0",
        ])
    };
    let p = format!("{pass}\n");
    // `convex ACTION` for origin #3 with acct.age, into cx/ (no --yes).
    let cw = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["convex".into()];
        v.extend(extra.iter().map(|x| (*x).to_owned()));
        v.extend(
            [
                "--origin",
                "3",
                "--key",
                "acct.age",
                "--out-dir",
                "cx",
                "--passphrase-fd",
                "0",
            ]
            .iter()
            .map(|x| (*x).to_owned()),
        );
        v
    };
    // Trezor's SLIP-39 vectors (see shares_vectors.rs): share `k` of vector `i` (0-based).
    let vectors: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/slip39-vectors.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let vector = |i: usize, k: usize| vectors[i][1][k].as_str().unwrap().to_owned();
    let combine = s(&[
        "shares",
        "combine",
        "--role",
        "peer",
        "--out",
        "s.age",
        "--words-fd",
        "0",
        "--passphrase-fd",
        "0",
    ]);
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        ("no command", vec![], String::new()),
        ("unknown command", s(&["frobnicate"]), String::new()),
        (
            "unknown flag",
            s(&["verify", "--backup", "acct.age", "--frob"]),
            String::new(),
        ),
        ("missing value", s(&["verify", "--backup"]), String::new()),
        (
            "flag twice",
            s(&["verify", "--backup", "a", "--backup", "b"]),
            String::new(),
        ),
        (
            "secret on argv",
            s(&["keygen", "--passphrase", "x"]),
            String::new(),
        ),
        ("missing flag", s(&["verify"]), String::new()),
        (
            "bad number",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--work-factor",
                "lots",
            ]),
            String::new(),
        ),
        (
            "bad role",
            s(&["keygen", "--role", "admin", "--out", "n.age"]),
            String::new(),
        ),
        (
            "words and import",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--words",
                "--import-words",
            ]),
            String::new(),
        ),
        (
            "work factor out of range",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--work-factor",
                "30",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "max work factor out of range",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--out",
                "n.key",
                "--max-work-factor",
                "40",
            ]),
            String::new(),
        ),
        (
            "keygen output exists",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "acct.age",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "empty passphrase",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--passphrase-fd",
                "0",
                "--work-factor",
                "10",
            ]),
            "\n".into(),
        ),
        (
            "fd not open",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--passphrase-fd",
                "9",
            ]),
            String::new(),
        ),
        (
            "end of input",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--passphrase-fd",
                "0",
                "--work-factor",
                "10",
            ]),
            String::new(),
        ),
        (
            "bad checksum words",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--import-words",
                "--words-fd",
                "0",
                "--passphrase-fd",
                "0",
            ]),
            format!("{} abandon\n{p}", ["abandon"; 23].join(" ")),
        ),
        (
            "unknown word",
            s(&[
                "keygen",
                "--role",
                "peer",
                "--out",
                "n.age",
                "--import-words",
                "--words-fd",
                "0",
            ]),
            format!("{} zebrafish\n", ["abandon"; 23].join(" ")),
        ),
        (
            "passphrase needs a terminal",
            s(&["keygen", "--role", "peer", "--out", "n.age"]),
            String::new(),
        ),
        (
            "new words need a terminal",
            s(&["keygen", "--role", "peer", "--out", "n.age", "--words"]),
            String::new(),
        ),
        (
            "backup missing",
            s(&[
                "verify",
                "--backup",
                "nothere.age",
                "--manifest",
                "acct.age.manifest.json",
            ]),
            String::new(),
        ),
        (
            "manifest missing",
            s(&["verify", "--backup", "junk.age"]),
            String::new(),
        ),
        (
            "manifest invalid",
            s(&["verify", "--backup", "bad.age"]),
            String::new(),
        ),
        (
            "truncated",
            s(&["verify", "--backup", "trunc.age"]),
            String::new(),
        ),
        (
            "extended",
            s(&["verify", "--backup", "long.age"]),
            String::new(),
        ),
        (
            "altered",
            s(&[
                "restore",
                "--backup",
                "flip.age",
                "--out",
                "n.key",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "wrong passphrase",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--out",
                "n.key",
                "--passphrase-fd",
                "0",
            ]),
            "nope\n".into(),
        ),
        (
            "wrong passphrase without manifest",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--no-manifest",
                "--out",
                "n.key",
                "--passphrase-fd",
                "0",
            ]),
            "nope\n".into(),
        ),
        (
            "not an age file",
            s(&[
                "restore",
                "--backup",
                "junk.age",
                "--no-manifest",
                "--out",
                "n.key",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "work factor above maximum",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--out",
                "n.key",
                "--max-work-factor",
                "9",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "restore over the backup",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--out",
                "./acct.age",
                "--force",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "restore output exists",
            s(&[
                "restore",
                "--backup",
                "acct.age",
                "--out",
                "exists.key",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "manifest names another key",
            s(&[
                "restore",
                "--backup",
                "other.age",
                "--out",
                "n.key",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "bad recipient",
            s(&[
                "provision",
                "--backup",
                "peer.age",
                "--recipient",
                "age1nope",
                "--out",
                "n.age",
            ]),
            String::new(),
        ),
        (
            "provision account key",
            s(&[
                "provision",
                "--backup",
                "acct.age",
                "--recipient",
                &age::x25519::Identity::generate().to_public().to_string(),
                "--out",
                "n.age",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "tx without action",
            tx(&["--network", "x", "--key", "acct.age", "--out", "o"]),
            String::new(),
        ),
        (
            "tx unknown action",
            tx(&["mint", "--network", "x", "--key", "acct.age", "--out", "o"]),
            String::new(),
        ),
        ("tx sequence 0", wd("0", &net), p.clone()),
        ("tx bad network", wd("1", "abc"), p.clone()),
        ("tx zero network", wd("1", &"0".repeat(64)), p.clone()),
        (
            "tx missing field",
            tx(&[
                "transfer",
                "--network",
                "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "--origin",
                "3",
                "--sequence",
                "1",
                "--to",
                "4",
                "--key",
                "acct.age",
                "--out",
                "o",
            ]),
            String::new(),
        ),
        (
            "tx extra field",
            tx(&[
                "transfer",
                "--network",
                "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "--origin",
                "3",
                "--sequence",
                "1",
                "--to",
                "4",
                "--amount",
                "1",
                "--stake",
                "5",
                "--key",
                "acct.age",
                "--out",
                "o",
            ]),
            String::new(),
        ),
        (
            "tx self transfer",
            tx(&[
                "transfer",
                "--network",
                "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "--origin",
                "3",
                "--sequence",
                "1",
                "--to",
                "3",
                "--amount",
                "1",
                "--key",
                "acct.age",
                "--out",
                "o",
            ]),
            String::new(),
        ),
        (
            "tx bad key",
            tx(&[
                "set-key",
                "--network",
                "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "--origin",
                "3",
                "--sequence",
                "1",
                "--new-key",
                "00",
                "--key",
                "acct.age",
                "--out",
                "o",
            ]),
            String::new(),
        ),
        (
            "tx bad host",
            tx(&[
                "set-peer-host",
                "--network",
                "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
                "--origin",
                "3",
                "--sequence",
                "1",
                "--peer",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "--host",
                "no port",
                "--key",
                "acct.age",
                "--out",
                "o",
            ]),
            String::new(),
        ),
        (
            "tx set-key to the same key",
            {
                let mut v = s(&[
                    "tx",
                    "set-key",
                    "--network",
                    &net,
                    "--origin",
                    "3",
                    "--sequence",
                    "1",
                    "--new-key",
                ]);
                v.push(acct.clone());
                v.extend(s(&[
                    "--key",
                    "acct.age",
                    "--out",
                    "o.cvxtx",
                    "--yes",
                    "--passphrase-fd",
                    "0",
                ]));
                v
            },
            p.clone(),
        ),
        (
            "tx request for another network",
            s(&[
                "tx",
                "--request",
                "othernet.json",
                "--network",
                &net,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
                "--yes",
            ]),
            String::new(),
        ),
        (
            "tx expected hash mismatch",
            s(&[
                "tx",
                "--request",
                "hash.json",
                "--network",
                &net,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
                "--yes",
            ]),
            String::new(),
        ),
        (
            "tx request with unknown field",
            s(&[
                "tx",
                "--request",
                "unknown.json",
                "--network",
                &net,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
            ]),
            String::new(),
        ),
        (
            "tx request too large",
            s(&[
                "tx",
                "--request",
                "big.json",
                "--network",
                &net,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
            ]),
            String::new(),
        ),
        (
            "tx request plus fields",
            s(&[
                "tx",
                "--request",
                "hash.json",
                "--origin",
                "1",
                "--network",
                &net,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
            ]),
            String::new(),
        ),
        (
            "tx with a peer key",
            s(&[
                "tx",
                "withdraw",
                "--network",
                &net,
                "--origin",
                "3",
                "--sequence",
                "1",
                "--peer",
                peer,
                "--key",
                "peer.age",
                "--out",
                "o.cvxtx",
                "--yes",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "tx needs a terminal",
            s(&[
                "tx",
                "withdraw",
                "--network",
                &net,
                "--origin",
                "3",
                "--sequence",
                "1",
                "--peer",
                peer,
                "--key",
                "acct.age",
                "--out",
                "o.cvxtx",
                "--passphrase-fd",
                "0",
            ]),
            p.clone(),
        ),
        (
            "ladder count 0",
            s(&[
                "ladder",
                "--network",
                &net,
                "--origin",
                "3",
                "--peer",
                peer,
                "--current-sequence",
                "1",
                "--count",
                "0",
                "--key",
                "acct.age",
                "--out-dir",
                "l",
            ]),
            String::new(),
        ),
        ("qr not a tx", s(&["qr", "--in", "junk.age"]), String::new()),
        (
            "shares split without a terminal",
            s(&[
                "shares",
                "split",
                "--key",
                "acct.age",
                "--threshold",
                "2",
                "--count",
                "3",
                "--passphrase-fd",
                "0",
            ]),
            format!("{pass}\n\n"),
        ),
        (
            "shares split 1 of 3",
            s(&[
                "shares",
                "split",
                "--key",
                "acct.age",
                "--threshold",
                "1",
                "--count",
                "3",
            ]),
            String::new(),
        ),
        (
            "shares split bad groups",
            s(&[
                "shares",
                "split",
                "--key",
                "acct.age",
                "--groups",
                "2of3,3",
                "--group-threshold",
                "2",
            ]),
            String::new(),
        ),
        (
            "shares split without a threshold",
            s(&["shares", "split", "--key", "acct.age"]),
            String::new(),
        ),
        (
            "shares combine checksum",
            combine.clone(),
            format!("{}\n", vector(1, 0)),
        ),
        (
            "shares combine mismatched set",
            combine.clone(),
            format!("{}\n{}\n", vector(5, 0), vector(5, 1)),
        ),
        (
            "shares combine too few",
            combine.clone(),
            format!("{}\n\n", vector(4, 0)),
        ),
        (
            "shares combine 128-bit secret",
            combine.clone(),
            format!("{}\nTREZOR\n", vector(0, 0)),
        ),
        (
            "shares combine bad expected key",
            {
                let mut c = combine.clone();
                c.extend(s(&["--expect-key", "00"]));
                c
            },
            String::new(),
        ),
        (
            "shares combine output exists",
            s(&["shares", "combine", "--role", "peer", "--out", "acct.age"]),
            String::new(),
        ),
        ("audit without subcommand", s(&["audit"]), String::new()),
        (
            "convex verify not a transaction",
            s(&["convex", "verify", "junk.age"]),
            String::new(),
        ),
        (
            "convex verify missing file",
            s(&["convex", "verify", "nothere.cvx"]),
            String::new(),
        ),
        ("convex without subcommand", s(&["convex"]), String::new()),
        (
            "convex withdraw bad peer key",
            cw(&["withdraw", "--peer-key", "abc", "--sequence", "1"]),
            String::new(),
        ),
        (
            "convex withdraw sequence 0",
            cw(&["withdraw", "--peer-key", peer, "--sequence", "0"]),
            String::new(),
        ),
        (
            "convex transfer to the origin",
            cw(&["transfer", "--to", "3", "--amount", "5", "--sequence", "1"]),
            String::new(),
        ),
        (
            "convex transfer amount 0",
            cw(&["transfer", "--to", "4", "--amount", "0", "--sequence", "1"]),
            String::new(),
        ),
        (
            "convex ladder count 0",
            cw(&[
                "withdraw",
                "--peer-key",
                peer,
                "--sequence",
                "1",
                "--count",
                "0",
            ]),
            String::new(),
        ),
        (
            "convex with a peer key backup",
            {
                let mut v = cw(&["withdraw", "--peer-key", peer, "--sequence", "1"]);
                let i = v.iter().position(|x| x == "acct.age").unwrap();
                v[i] = "peer.age".into();
                v
            },
            String::new(),
        ),
        (
            "convex needs a terminal",
            cw(&["withdraw", "--peer-key", peer, "--sequence", "1"]),
            p.clone(),
        ),
        (
            "audit tampered",
            s(&["--audit", "tampered.log", "audit", "verify"]),
            String::new(),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut snap = String::new();
    for (name, args, stdin) in &cases {
        let mut a: Vec<&str> = Vec::new();
        if args.first().map(String::as_str) != Some("--audit") {
            a.extend(["--audit", "audit.log"]);
        }
        a.extend(args.iter().map(String::as_str));
        let o = vault(&d.0, &a, stdin);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(code(&o), 0, "{name} succeeded");
        writeln!(
            snap,
            "## {name}\nexit {}\n{}",
            code(&o),
            normalize(&err, &dir)
        )
        .unwrap();
    }
    // Errors a test cannot provoke from outside: their messages, formatted.
    let p0 = PathBuf::from("k.age");
    let io = || std::io::Error::from(std::io::ErrorKind::StorageFull);
    let lib: Vec<VaultError> = vec![
        VaultError::Write {
            path: p0.clone(),
            source: io(),
        },
        VaultError::PassphraseMismatch,
        VaultError::WordsMismatch,
        VaultError::Declined,
        VaultError::Sandbox("seccomp is not available".into()),
        // provoked for real (as an unprivileged uid with a memory-lock limit of 0) by
        // `secrets::without_lockable_memory_the_vault_refuses_and_writes_nothing`
        VaultError::Memory {
            what: "seed",
            reason: cvx_sandbox::LockedError::<String>::Lock(std::io::Error::from_raw_os_error(1))
                .to_string(),
        },
        VaultError::Encrypt("disk full".into()),
        VaultError::Malformed {
            path: p0.clone(),
            reason: "the age header is invalid".into(),
        },
        VaultError::Damaged {
            path: p0,
            damage: Damage::Truncated,
        },
    ];
    // Every SLIP-39 refusal (each is also provoked for real by shares_vectors.rs or
    // shares.rs).
    let lib: Vec<VaultError> = lib
        .into_iter()
        .chain(
            [
                ShareError::UnknownWord {
                    share: 2,
                    position: 7,
                },
                ShareError::Length {
                    share: 1,
                    words: 19,
                },
                ShareError::Checksum { share: 3 },
                ShareError::Padding { share: 1 },
                ShareError::Parameters {
                    share: 1,
                    reason: "its group threshold is above its group count",
                },
                ShareError::Mismatch {
                    share: 2,
                    first: 1,
                    field: "identifiers (first words)",
                },
                ShareError::Duplicate { share: 2, other: 1 },
                ShareError::TooFew("group 1 has 1 of the 2 shares it needs".into()),
                ShareError::TooMany("group 1 has 3 shares, exactly 2 are used".into()),
                ShareError::Digest,
                ShareError::Passphrase,
                ShareError::Plan("group 1: 1 of 3 would make 3 copies of one share".into()),
                ShareError::SecretLength(16),
                ShareError::Retyped(2),
            ]
            .into_iter()
            .map(VaultError::from),
        )
        .collect();
    for e in &lib {
        writeln!(
            snap,
            "## library {}\nexit {}\ncvx-vault: error: {e}\n",
            variant(e),
            e.kind().code()
        )
        .unwrap();
        seen.insert(variant(e));
    }
    // The binary cases above reach these variants (each "## case" names one); with the
    // library cases, every variant of `variant` is covered.
    for v in [
        "Usage",
        "Read",
        "TooLarge",
        "Exists",
        "Input",
        "EmptyPassphrase",
        "Mnemonic",
        "Manifest",
        "Damaged",
        "Malformed",
        "WrongPassphrase",
        "DecryptFailed",
        "WorkFactor",
        "KeyMismatch",
        "Role",
        "Invalid",
        "HashMismatch",
        "NoTerminal",
        "Shares",
        "Audit",
        "ConvexFile",
    ] {
        seen.insert(v);
    }
    assert_eq!(seen.len(), 28, "a VaultError variant has no snapshot case");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/errors.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots")).unwrap();
        std::fs::write(path, &snap).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want != snap {
        let first = want.lines().zip(snap.lines()).position(|(a, b)| a != b);
        panic!(
            "error messages differ from tests/snapshots/errors.txt (first differing line {first:?}); review and regenerate with UPDATE_SNAPSHOTS=1\n--- got ---\n{snap}"
        );
    }
}
