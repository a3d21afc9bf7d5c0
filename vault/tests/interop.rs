//! Acceptance 2: interop with the standard `age` command-line tool (Debian's `age`;
//! .ci/run installs it). Passphrase prompts are driven through a pseudo-terminal.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::{LOW, TempDir, code, have, pty, stderr, stdout, vault};
use cvx_protocol::keyfile;
use serde_json::json;

const PASS: &str = "interop passphrase 42";

fn age_or_skip() -> bool {
    if have("age") && have("age-keygen") && have("python3") {
        return true;
    }
    println!("SKIPPED: the age CLI (apt-get install age) or python3 is not installed");
    false
}

#[test]
fn a_vault_backup_decrypts_with_age_d() {
    if !age_or_skip() {
        return;
    }
    let d = TempDir::new("age-d");
    let key = common::keygen(&d.0, "peer", "k.age", PASS, LOW);
    let plain = d.path("plain.bin");
    let spec = json!({
        "argv": ["/usr/bin/env", "age", "-d", "-o", plain.to_str().unwrap(), d.path("k.age").to_str().unwrap()],
        "transcript": d.path("t.txt").to_str().unwrap(),
        "timeout": 60,
        "steps": [{"expect": "(?i)passphrase", "send": format!("{PASS}\n")}],
    });
    assert_eq!(
        pty(&spec, &d.0),
        0,
        "age -d failed: {}",
        String::from_utf8_lossy(&std::fs::read(d.path("t.txt")).unwrap_or_default())
    );
    let bytes = std::fs::read(&plain).unwrap();
    assert_eq!(bytes.len(), keyfile::LEN);
    assert_eq!(keyfile::public_key(&bytes).unwrap().to_hex(), key);
}

#[test]
fn a_file_made_by_age_p_restores_in_the_vault() {
    if !age_or_skip() {
        return;
    }
    let d = TempDir::new("age-p");
    // A key file in the shared layout, from a fixed test seed.
    let seed = [7u8; 32];
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let public = cvx_protocol::PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap();
    let mut plain = vec![0u8; keyfile::LEN];
    plain[keyfile::SEED].copy_from_slice(&seed);
    keyfile::frame(&mut plain, &public).unwrap();
    std::fs::write(d.path("plain.key"), &plain).unwrap();
    let made = d.path("made.age");
    let spec = json!({
        "argv": ["/usr/bin/env", "age", "-p", "-a", "-o", made.to_str().unwrap(), d.path("plain.key").to_str().unwrap()],
        "transcript": d.path("t.txt").to_str().unwrap(),
        "timeout": 60,
        "steps": [
            {"expect": "(?i)enter passphrase", "send": format!("{PASS}\n")},
            {"expect": "(?i)confirm passphrase", "send": format!("{PASS}\n")},
        ],
    });
    assert_eq!(
        pty(&spec, &d.0),
        0,
        "age -p failed: {}",
        String::from_utf8_lossy(&std::fs::read(d.path("t.txt")).unwrap_or_default())
    );
    // age -p uses work factor 18; the vault's default maximum (20) accepts it.
    assert_eq!(
        cvx_vault::backup::header_log_n(&std::fs::read(&made).unwrap()),
        Some(18)
    );
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "made.age",
            "--no-manifest",
            "--out",
            "restored.key",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(&public.to_hex()));
    assert_eq!(std::fs::read(d.path("restored.key")).unwrap(), plain);
    // Without a manifest, a wrong passphrase cannot be told from damage: exit 7, not 5.
    let w = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            "made.age",
            "--no-manifest",
            "--out",
            "x.key",
            "--passphrase-fd",
            "0",
        ],
        "wrong\n",
    );
    assert_eq!(code(&w), 7, "{}", stderr(&w));
}

#[test]
fn a_provisioned_key_decrypts_with_age_d_i() {
    if !age_or_skip() {
        return;
    }
    let d = TempDir::new("age-i");
    let key = common::keygen(&d.0, "peer", "peer.age", PASS, LOW);
    let kg = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(d.path("host.txt"))
        .output()
        .unwrap();
    assert!(kg.status.success());
    let y = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(d.path("host.txt"))
        .output()
        .unwrap();
    let recipient = String::from_utf8(y.stdout).unwrap().trim().to_owned();
    assert!(recipient.starts_with("age1"));
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "provision",
            "--backup",
            "peer.age",
            "--recipient",
            &recipient,
            "--out",
            "signer.key.age",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dec = std::process::Command::new("age")
        .args(["-d", "-i"])
        .arg(d.path("host.txt"))
        .arg(d.path("signer.key.age"))
        .output()
        .unwrap();
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert_eq!(dec.stdout.len(), keyfile::LEN);
    assert_eq!(keyfile::public_key(&dec.stdout).unwrap().to_hex(), key);
    // An account key is never provisioned to a signer host.
    common::keygen(&d.0, "account", "acct.age", PASS, LOW);
    let a = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "provision",
            "--backup",
            "acct.age",
            "--recipient",
            &recipient,
            "--out",
            "x.age",
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&a), 9, "{}", stderr(&a));
    assert!(!d.path("x.age").exists());
}

#[test]
fn bip39_keygen_shows_words_on_the_terminal_only_and_needs_them_retyped() {
    if !have("python3") {
        println!("SKIPPED: python3 is not installed");
        return;
    }
    let d = TempDir::new("words");
    let out = d.path("stdout.txt");
    let words_out = d.path("words.txt");
    let spec = json!({
        "argv": [common::BIN, "--audit", d.path("audit.log").to_str().unwrap(), "keygen", "--role", "account",
                 "--out", d.path("w.age").to_str().unwrap(), "--words", "--work-factor", "10"],
        "stdout": out.to_str().unwrap(),
        "transcript": d.path("t.txt").to_str().unwrap(),
        "words_out": words_out.to_str().unwrap(),
        "timeout": 60,
        "steps": [
            {"expect": "Recovery words.*?Press Enter[^\n]*", "capture_words": true, "send": "\n"},
            {"expect": "Type the recovery words again[^:]*: ", "send": "{words}\n"},
            {"expect": "New passphrase[^:]*: ", "send": format!("{PASS}\n")},
            {"expect": "Repeat the passphrase: ", "send": format!("{PASS}\n")},
        ],
    });
    let rc = pty(&spec, &d.0);
    let transcript = String::from_utf8_lossy(&std::fs::read(d.path("t.txt")).unwrap()).into_owned();
    assert_eq!(rc, 0, "{transcript}");
    let words = std::fs::read_to_string(&words_out).unwrap();
    assert_eq!(words.split(' ').count(), 24);
    let stdout_text = std::fs::read_to_string(&out).unwrap();
    assert!(stdout_text.contains("keygen: new account key"));
    // The words reached the terminal, and nothing else: neither the phrase nor any two
    // consecutive words appear in stdout, the audit log or the manifest (single words
    // can be ordinary English, e.g. "account").
    let list: Vec<&str> = words.split(' ').collect();
    assert!(
        transcript.contains(list[0]),
        "the words were shown on the terminal"
    );
    for (name, text) in [
        ("stdout", stdout_text.clone()),
        (
            "audit",
            std::fs::read_to_string(d.path("audit.log")).unwrap(),
        ),
        (
            "manifest",
            std::fs::read_to_string(d.path("w.age.manifest.json")).unwrap(),
        ),
    ] {
        let tokens: Vec<&str> = text
            .split(|c: char| !c.is_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        for pair in list.windows(2) {
            assert!(
                !tokens.windows(2).any(|t| t == pair),
                "words {pair:?} in {name}"
            );
        }
    }
    // The same words restore the same key.
    let key = cvx_vault::mnemonic::Words::parse(&words)
        .unwrap()
        .seed()
        .unwrap()
        .public_key()
        .unwrap();
    assert!(stdout_text.contains(&key.to_hex()));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("w.age.manifest.json")).unwrap()).unwrap();
    assert_eq!(m["derivation"], "m/44'/864'/0'/0'/0'");
    assert_eq!(m["origin"], "bip39");

    // Retyping the words wrongly writes nothing.
    let spec2 = json!({
        "argv": [common::BIN, "--audit", d.path("audit.log").to_str().unwrap(), "keygen", "--role", "account",
                 "--out", d.path("w2.age").to_str().unwrap(), "--words", "--work-factor", "10"],
        "transcript": d.path("t2.txt").to_str().unwrap(),
        "timeout": 60,
        "steps": [
            {"expect": "Recovery words.*?Press Enter[^\n]*", "capture_words": true, "send": "\n"},
            {"expect": "Type the recovery words again[^:]*: ", "send": "abandon abandon abandon\n"},
        ],
    });
    assert_eq!(pty(&spec2, &d.0), 10);
    assert!(!d.path("w2.age").exists());
    assert!(!d.path("w2.age.manifest.json").exists());
}
