//! Acceptance 7: no secret in argv, stdout, stderr, logs or the audit log. A whole
//! session runs through the binary; everything it prints or writes (except the
//! plaintext key file `restore` is asked to write) is scanned for the seed (raw and
//! hex), the passphrase, and the recovery words (the phrase and every pair of
//! consecutive words).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::{TempDir, code, stderr, vault};
use cvx_protocol::keyfile;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A peer key from the passphrase on stdin, at a test work factor.
const KEYGEN_PEER: [&str; 9] = [
    "keygen",
    "--role",
    "peer",
    "--out",
    "peer.age",
    "--passphrase-fd",
    "0",
    "--work-factor",
    "10",
];

#[test]
fn a_whole_session_leaks_no_seed_word_or_passphrase() {
    let d = TempDir::new("secrets");
    let pass = "s3cret-Passphrase-for-scan";
    // Fixed entropy: a phrase whose words we know.
    let words = bip39::Mnemonic::from_entropy(&[0x5c; 32])
        .unwrap()
        .to_string();
    let net = "5e".repeat(32);
    let peer_pub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut run = |name: &str, args: &[&str], stdin: String| {
        let mut a = vec!["--audit", "audit.log"];
        a.extend_from_slice(args);
        // argv is ours; record it too, so the scan covers it.
        outputs.push((format!("{name} argv"), a.join(" ").into_bytes()));
        let o = vault(&d.0, &a, &stdin);
        assert_eq!(code(&o), 0, "{name}: {}", stderr(&o));
        outputs.push((format!("{name} stdout"), o.stdout));
        outputs.push((format!("{name} stderr"), o.stderr));
    };
    run(
        "keygen",
        &[
            "keygen",
            "--role",
            "account",
            "--out",
            "acct.age",
            "--import-words",
            "--words-fd",
            "0",
            "--passphrase-fd",
            "0",
            "--work-factor",
            "10",
        ],
        format!("{words}\n{pass}\n"),
    );
    run("keygen peer", &KEYGEN_PEER, format!("{pass}\n"));
    run("verify", &["verify", "--backup", "acct.age"], String::new());
    run(
        "restore",
        &[
            "restore",
            "--backup",
            "acct.age",
            "--out",
            "acct.key",
            "--passphrase-fd",
            "0",
        ],
        format!("{pass}\n"),
    );
    run(
        "provision",
        &[
            "provision",
            "--backup",
            "peer.age",
            "--recipient",
            &recipient,
            "--out",
            "prov.age",
            "--passphrase-fd",
            "0",
        ],
        format!("{pass}\n"),
    );
    run(
        "tx",
        &[
            "tx",
            "withdraw",
            "--network",
            &net,
            "--origin",
            "2",
            "--sequence",
            "5",
            "--peer",
            peer_pub,
            "--key",
            "acct.age",
            "--out",
            "w.cvxtx",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        format!("{pass}\n"),
    );
    run(
        "ladder",
        &[
            "ladder",
            "--network",
            &net,
            "--origin",
            "2",
            "--peer",
            peer_pub,
            "--current-sequence",
            "5",
            "--count",
            "3",
            "--key",
            "acct.age",
            "--out-dir",
            "ladder",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        format!("{pass}\n"),
    );
    run(
        "qr",
        &["qr", "--in", "w.cvxtx", "--svg", "w.svg"],
        String::new(),
    );
    run(
        "convex withdraw",
        &[
            "convex",
            "withdraw",
            "--origin",
            "12",
            "--sequence",
            "14",
            "--count",
            "2",
            "--peer-key",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "--key",
            "acct.age",
            "--out-dir",
            "convex",
            "--yes",
            "--passphrase-fd",
            "0",
        ],
        format!("{pass}\n"),
    );
    run(
        "convex verify",
        &["convex", "verify", "convex/withdraw-seq-15.submit.json"],
        String::new(),
    );
    run("audit verify", &["audit", "verify"], String::new());
    // Every file written, except the plaintext key restore was asked for.
    let mut files = vec![d.0.clone()];
    while let Some(dir) = files.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files.push(p);
            } else if p.file_name().unwrap() != "acct.key" {
                outputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let plain = std::fs::read(d.path("acct.key")).unwrap();
    let seed = &plain[keyfile::SEED];
    let seed_hex = hex::encode(seed);
    let w: Vec<&str> = words.split(' ').collect();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("seed bytes".into(), seed.to_vec()),
        ("seed hex".into(), seed_hex.clone().into_bytes()),
        ("seed HEX".into(), seed_hex.to_uppercase().into_bytes()),
        ("passphrase".into(), pass.as_bytes().to_vec()),
        ("phrase".into(), words.clone().into_bytes()),
    ];
    for pair in w.windows(2) {
        needles.push((format!("words {pair:?}"), pair.join(" ").into_bytes()));
    }
    // The peer key's seed too (from its own restore, into a separate dir).
    let d2 = TempDir::new("secrets-peer");
    std::fs::copy(d.path("peer.age"), d2.path("peer.age")).unwrap();
    std::fs::copy(
        d.path("peer.age.manifest.json"),
        d2.path("peer.age.manifest.json"),
    )
    .unwrap();
    let o = vault(
        &d2.0,
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
        &format!("{pass}\n"),
    );
    assert_eq!(code(&o), 0);
    let peer_plain = std::fs::read(d2.path("peer.key")).unwrap();
    needles.push(("peer seed bytes".into(), peer_plain[keyfile::SEED].to_vec()));
    needles.push((
        "peer seed hex".into(),
        hex::encode(&peer_plain[keyfile::SEED]).into_bytes(),
    ));
    assert!(
        outputs.len() > 30,
        "the scan covers {} outputs",
        outputs.len()
    );
    for (what, hay) in &outputs {
        for (secret, needle) in &needles {
            assert!(!contains(hay, needle), "{secret} found in {what}");
        }
    }
    // The scan has teeth: the restored key file does hold the seed.
    assert!(contains(&plain, seed));
}

#[test]
fn secrets_are_refused_on_the_command_line() {
    let d = TempDir::new("argv");
    for flag in [
        "--passphrase",
        "--password",
        "--mnemonic",
        "--seed",
        "--passphrase=x",
    ] {
        let o = vault(
            &d.0,
            &[
                "keygen", "--role", "peer", "--out", "k.age", flag, "hunter2",
            ],
            "",
        );
        assert_eq!(code(&o), 2, "{flag}");
        assert!(
            stderr(&o).contains("secrets are never taken from the command line"),
            "{flag}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("hunter2"));
    }
    assert!(!d.path("k.age").exists());
}

/// Why the locked-memory refusal cannot be provoked here, if it cannot: only a process
/// without CAP_IPC_LOCK is bound by the memory-lock limit, so the test drops to the
/// `nobody` uid (which needs root) with `setpriv` and sets the limit with `prlimit`.
fn drop_privileges_skip_reason() -> Option<String> {
    if !common::is_root() {
        return Some("not root (switching to another uid needs root)".into());
    }
    for tool in ["setpriv", "prlimit"] {
        if !common::have(tool) {
            return Some(format!(
                "{tool} is not installed (apt-get install -y util-linux)"
            ));
        }
    }
    None
}

/// The seed, signing key and key plaintext live in locked memory; a process that cannot
/// lock memory (here: uid 65534 with RLIMIT_MEMLOCK 0, so neither memfd_secret nor mlock
/// is allowed) is refused with exit 13 and a message naming the fix, and writes no key,
/// backup or manifest.
#[test]
fn without_lockable_memory_the_vault_refuses_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(why) = drop_privileges_skip_reason() {
        println!("SKIPPED: {why}");
        return;
    }
    let d = TempDir::new("nolock");
    // uid 65534 must reach the directory: every ancestor searchable by others.
    if let Some(closed) =
        d.0.ancestors()
            .skip(1)
            .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
    {
        println!(
            "SKIPPED: {} is not searchable by other users, so uid 65534 cannot reach the test directory (set TMPDIR elsewhere)",
            closed.display()
        );
        return;
    }
    std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the binary the unprivileged uid can surely execute (the build
    // directory's parents may be closed to it).
    let bin = d.path("cvx-vault");
    std::fs::copy(common::BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pass = d.path("pass.txt");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = |memlock: &str| {
        std::process::Command::new("prlimit")
            .arg(format!("--memlock={memlock}"))
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ])
            .arg(&bin)
            .args(["--audit", "audit.log"])
            .args(KEYGEN_PEER)
            .current_dir(&d.0)
            // The vault reopens the passphrase fd through /proc/self/fd, which checks
            // the file's permissions: a pipe made by root would refuse uid 65534, so the
            // passphrase comes from a file it may read.
            .stdin(std::fs::File::open(&pass).unwrap())
            .output()
            .unwrap()
    };
    let o = run("0:0");
    let err = stderr(&o);
    assert_eq!(code(&o), 13, "stderr: {err}");
    assert!(
        err.contains("in locked memory") && err.contains("ulimit -l"),
        "the message names the problem and the fix: {err}"
    );
    for f in ["peer.age", "peer.age.manifest.json", "peer.age.tmp"] {
        assert!(!d.path(f).exists(), "{f} was written");
    }
    let left: Vec<String> = std::fs::read_dir(&d.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["cvx-vault", "pass.txt", "audit.log"].contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "files written: {left:?}");
    // Positive control: the same uid with a limit of a few pages succeeds, so the
    // refusal above came from the memory-lock limit and nothing else.
    let o = run("1048576:1048576");
    assert_eq!(code(&o), 0, "control run failed: {}", stderr(&o));
    assert!(d.path("peer.age").exists());

    // The same for `shares combine` (issue 19): the rebuilt secret needs locked memory.
    // Trezor's vector 20 is one 256-bit share (passphrase "TREZOR").
    let share = "theory painting academic academic armed sweater year military elder discuss acne wildlife boring employer fused large satoshi bundle carbon diagnose anatomy hamster leaves tracks paces beyond phantom capital marvel lips brave detect luck";
    let input = d.path("shares.txt");
    std::fs::write(&input, format!("{share}\nTREZOR\ncorrect horse battery\n")).unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o644)).unwrap();
    let combine = |memlock: &str| {
        std::process::Command::new("prlimit")
            .arg(format!("--memlock={memlock}"))
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ])
            .arg(&bin)
            .args([
                "--audit",
                "audit.log",
                "shares",
                "combine",
                "--role",
                "peer",
                "--out",
                "s.age",
            ])
            .args([
                "--work-factor",
                "10",
                "--words-fd",
                "0",
                "--passphrase-fd",
                "0",
            ])
            .current_dir(&d.0)
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap()
    };
    let o = combine("0:0");
    let err = stderr(&o);
    assert_eq!(code(&o), 13, "stderr: {err}");
    assert!(err.contains("master secret in locked memory"), "{err}");
    assert!(!d.path("s.age").exists() && !d.path("s.age.manifest.json").exists());
    let o = combine("1048576:1048576");
    assert_eq!(code(&o), 0, "control run failed: {}", stderr(&o));
    assert!(d.path("s.age").exists());
}

/// Issue 19: `shares split` and `shares combine` leak neither the seed, nor a
/// passphrase (the backup's or the SLIP-39 one), nor any share: argv, stdout, stderr,
/// the audit log, the new backup and manifests are scanned (the shares reach only the
/// terminal, whose transcript is kept apart).
#[test]
fn shares_leak_no_seed_share_or_passphrase() {
    if !common::have("python3") {
        println!("SKIPPED: python3 is not installed (the pty driver needs it)");
        return;
    }
    let d = TempDir::new("secrets-shares");
    let side = TempDir::new("secrets-shares-tty");
    let pass = "s3cret-Passphrase-for-scan";
    let slip = "slip39-Passphrase-for-scan";
    let key = common::keygen(&d.0, "account", "acct.age", pass, 10);
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let (audit_log, backup) = (d.path("audit.log"), d.path("acct.age"));
    let split_argv = [
        common::BIN,
        "--audit",
        audit_log.to_str().unwrap(),
        "shares",
        "split",
        "--key",
        backup.to_str().unwrap(),
        "--groups",
        "2of3,2of2",
        "--group-threshold",
        "1",
    ];
    outputs.push(("split argv".into(), split_argv.join(" ").into_bytes()));
    let mut steps = vec![
        serde_json::json!({"expect": "Passphrase for [^:]*: ", "send": format!("{pass}\n")}),
        serde_json::json!({"expect": "SLIP-39 passphrase of the shares[^:]*: ", "send": format!("{slip}\n")}),
        serde_json::json!({"expect": "Repeat the SLIP-39 passphrase: ", "send": format!("{slip}\n")}),
    ];
    for k in 1..=5 {
        steps.push(
            serde_json::json!({"expect": format!("Share {k} of 5.*?Press Enter[^\n]*"),
            "capture_words": format!("s{k}"), "send": "\n"}),
        );
        steps.push(serde_json::json!({"expect": "Type the share again[^:]*: ", "send": format!("{{s{k}}}\n")}));
    }
    let spec = serde_json::json!({
        "argv": split_argv,
        "stdout": d.path("split-stdout.txt").to_str().unwrap(),
        "transcript": side.path("transcript.txt").to_str().unwrap(),
        "captures_out": side.path("captures.json").to_str().unwrap(),
        "timeout": 120,
        "steps": steps,
    });
    assert_eq!(common::pty(&spec, &side.0), 0);
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(side.path("captures.json")).unwrap()).unwrap();
    let shares: Vec<String> = (1..=5)
        .map(|k| c[format!("s{k}")].as_str().unwrap().to_owned())
        .collect();
    // Combine the second group (shares 4 and 5) from stdin.
    let args = [
        "--audit",
        "audit.log",
        "shares",
        "combine",
        "--role",
        "account",
        "--out",
        "back.age",
        "--expect-key",
        &key,
        "--work-factor",
        "10",
        "--words-fd",
        "0",
        "--passphrase-fd",
        "0",
    ];
    outputs.push(("combine argv".into(), args.join(" ").into_bytes()));
    let o = vault(
        &d.0,
        &args,
        &format!("{}\n{}\n{slip}\n{pass}\n", shares[4], shares[3]),
    );
    assert_eq!(code(&o), 0, "combine: {}", stderr(&o));
    outputs.push(("combine stdout".into(), o.stdout));
    outputs.push(("combine stderr".into(), o.stderr));
    // A failing combine (a mistyped share) prints nothing secret either.
    let mut w: Vec<&str> = shares[3].split(' ').collect();
    w[9] = if w[9] == "acid" { "academic" } else { "acid" };
    let typo = w.join(" ");
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
            "shares",
            "combine",
            "--role",
            "account",
            "--out",
            "x.age",
            "--words-fd",
            "0",
            "--passphrase-fd",
            "0",
        ],
        &format!("{}\n{typo}\n{slip}\n{pass}\n", shares[4]),
    );
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    outputs.push(("failing combine stderr".into(), o.stderr));
    outputs.push(("failing combine stdout".into(), o.stdout));
    for e in std::fs::read_dir(&d.0).unwrap() {
        let p = e.unwrap().path();
        outputs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    // The seed, from a restore into the side directory.
    let o = vault(
        &d.0,
        &[
            "--audit",
            side.path("audit.log").to_str().unwrap(),
            "restore",
            "--backup",
            "acct.age",
            "--out",
            side.path("acct.key").to_str().unwrap(),
            "--passphrase-fd",
            "0",
        ],
        &format!("{pass}\n"),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let plain = std::fs::read(side.path("acct.key")).unwrap();
    let seed = &plain[keyfile::SEED];
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("seed bytes".into(), seed.to_vec()),
        ("seed hex".into(), hex::encode(seed).into_bytes()),
        ("passphrase".into(), pass.as_bytes().to_vec()),
        ("SLIP-39 passphrase".into(), slip.as_bytes().to_vec()),
    ];
    for (k, s) in shares.iter().enumerate() {
        let w: Vec<&str> = s.split(' ').collect();
        // Words 5.. carry the share value (1-4: the identifier and parameters).
        for pair in w[4..].windows(2) {
            needles.push((
                format!("share {} words {pair:?}", k + 1),
                pair.join(" ").into_bytes(),
            ));
        }
    }
    assert!(
        outputs.len() > 10,
        "the scan covers {} outputs",
        outputs.len()
    );
    for (what, hay) in &outputs {
        for (secret, needle) in &needles {
            assert!(!contains(hay, needle), "{secret} found in {what}");
        }
    }
    // The scan has teeth: the needles are the shares the terminal showed (as captured
    // from it), and the terminal showed their words.
    let caught = std::fs::read(side.path("captures.json")).unwrap();
    assert!(needles[4..].iter().all(|(_, n)| contains(&caught, n)));
    let t =
        String::from_utf8_lossy(&std::fs::read(side.path("transcript.txt")).unwrap()).into_owned();
    assert!(shares.iter().all(|s| s.split(' ').all(|w| t.contains(w))));
}
