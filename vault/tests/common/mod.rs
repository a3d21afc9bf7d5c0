//! Helpers shared by the vault's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use cvx_vault::VaultError;
use cvx_vault::mnemonic::Words;
use cvx_vault::prompt::Operator;
use cvx_vault::secret::Passphrase;

/// The low work factor of debug-build tests.
pub const LOW: u8 = 10;

/// The vault binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_cvx-vault");

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("cvx-vault-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the binary in `dir` with `stdin` fed in, in a new session without a
/// controlling terminal (`setsid -w`), so a test run from a terminal never stops at a
/// prompt: the vault must then say it has no terminal.
pub fn vault(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = if have("setsid") {
        let mut c = Command::new("setsid");
        c.arg("-w").arg(BIN);
        c
    } else {
        Command::new(BIN)
    };
    let mut child = cmd
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        let _ = i.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Make a backup with the binary at work factor `wf`; returns the public key hex.
pub fn keygen(dir: &Path, role: &str, name: &str, pass: &str, wf: u8) -> String {
    let o = vault(
        dir,
        &[
            "--audit",
            "audit.log",
            "keygen",
            "--role",
            role,
            "--out",
            name,
            "--work-factor",
            &wf.to_string(),
            "--passphrase-fd",
            "0",
        ],
        &format!("{pass}\n"),
    );
    assert_eq!(code(&o), 0, "keygen failed: {}", stderr(&o));
    let out = stdout(&o);
    let line = out.lines().next().unwrap();
    line.rsplit(' ').next().unwrap().to_owned()
}

/// A scripted operator for library tests.
#[derive(Default)]
pub struct Script {
    pub passphrases: Vec<String>,
    pub words: Option<String>,
    pub confirm: bool,
    pub shown_words: Option<String>,
    /// The SLIP-39 passphrase to give.
    pub shares_passphrase: String,
    /// Shares to type in, in order.
    pub shares: Vec<String>,
    /// Shares shown by `shares split` (each is "retyped" as shown).
    pub shown_shares: Vec<String>,
}

impl Operator for Script {
    fn new_passphrase(&mut self, _: &str) -> Result<Passphrase, VaultError> {
        Passphrase::from_text(&self.passphrases.remove(0))
    }
    fn passphrase(&mut self, _: &str) -> Result<Passphrase, VaultError> {
        Passphrase::from_text(&self.passphrases.remove(0))
    }
    fn show_words(&mut self, words: &Words) -> Result<(), VaultError> {
        self.shown_words = Some(words.words().collect::<Vec<_>>().join(" "));
        Ok(())
    }
    fn existing_words(&mut self) -> Result<Words, VaultError> {
        Words::parse(self.words.as_deref().unwrap())
    }
    fn shares_passphrase(&mut self, _: bool) -> Result<zeroize::Zeroizing<String>, VaultError> {
        Ok(zeroize::Zeroizing::new(self.shares_passphrase.clone()))
    }
    fn show_share(
        &mut self,
        _: &str,
        words: &str,
    ) -> Result<zeroize::Zeroizing<String>, VaultError> {
        self.shown_shares.push(words.to_owned());
        Ok(zeroize::Zeroizing::new(words.to_owned()))
    }
    fn share(&mut self, _: usize, _: &str) -> Result<zeroize::Zeroizing<String>, VaultError> {
        if self.shares.is_empty() {
            return Err(VaultError::Input {
                what: "share",
                reason: "end of input before a line was read".into(),
            });
        }
        Ok(zeroize::Zeroizing::new(self.shares.remove(0)))
    }
    fn confirm(&mut self, _: &'static str, _: &str) -> Result<(), VaultError> {
        if self.confirm {
            Ok(())
        } else {
            Err(VaultError::Declined)
        }
    }
}

/// Whether the tests run as root (some need another uid or a namespace).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Is a tool on PATH?
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run the pty driver with a JSON spec; returns the exit code.
pub fn pty(spec: &serde_json::Value, dir: &Path) -> i32 {
    let spec_path = dir.join(format!(
        "pty-spec-{}.json",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_drive.py");
    let st = Command::new("python3")
        .arg(script)
        .arg(&spec_path)
        .status()
        .unwrap();
    std::fs::remove_file(&spec_path).unwrap();
    st.code().unwrap_or(-1)
}

/// Every file in a directory with its bytes (sorted by name).
pub fn snapshot_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A vault account backup (and manifest) holding a given seed, built from the
/// documented formats (the 72-byte key plaintext `"CVXKEY1\n"` ‖ seed ‖ public key,
/// age passphrase encryption, ASCII armor) rather than by keygen, so tests can sign
/// with a fixed published key.
pub fn backup_from_seed(dir: &Path, name: &str, seed: &[u8; 32], pass: &str, wf: u8) {
    use age::secrecy::SecretString;
    let pk = ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes();
    let mut plain = b"CVXKEY1\n".to_vec();
    plain.extend_from_slice(seed);
    plain.extend_from_slice(&pk);
    let mut r = age::scrypt::Recipient::new(SecretString::from(pass.to_owned()));
    r.set_work_factor(wf);
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let armor =
        age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor).unwrap();
    let mut w = enc.wrap_output(armor).unwrap();
    std::io::Write::write_all(&mut w, &plain).unwrap();
    w.finish()
        .and_then(age::armor::ArmoredWriter::finish)
        .unwrap();
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&out))
    };
    let manifest = serde_json::json!({
        "format": "cvx-vault-backup", "version": 1, "role": "account",
        "public_key": hex::encode(pk), "ciphertext_sha256": sha,
        "ciphertext_len": out.len(), "scrypt_log_n": wf, "created_unix": 0,
        "origin": "random", "derivation": null
    });
    std::fs::write(dir.join(name), &out).unwrap();
    std::fs::write(
        dir.join(format!("{name}.manifest.json")),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}
