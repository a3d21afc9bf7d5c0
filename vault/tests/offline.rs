//! Acceptance 5 and deliverable 7: offline by construction. No network crate in the
//! vault's normal dependency closure; every subcommand runs in a network namespace
//! with no interfaces and, under strace, makes no network system call at all.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::{LOW, TempDir, have, is_root};

/// Crates that open sockets, speak network protocols or run an async network runtime.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "socket2",
    "hyper",
    "reqwest",
    "ureq",
    "curl",
    "curl-sys",
    "h2",
    "h3",
    "quinn",
    "rustls",
    "native-tls",
    "openssl",
    "openssl-sys",
    "tungstenite",
    "tokio-tungstenite",
    "tonic",
    "surf",
    "isahc",
    "attohttpc",
    "trust-dns-resolver",
    "hickory-resolver",
    "libp2p",
    "zmq",
    "axum",
    "actix-web",
    "warp",
    "tower",
    "async-io",
    "polling",
    "pinentry",
];

#[test]
fn no_network_crate_in_the_vaults_dependency_closure() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let nodes: BTreeMap<String, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| *n == "cvx-vault")
        .unwrap()
        .0
        .clone();
    // Normal dependencies only (dev- and build-dependencies never reach the binary).
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for d in nodes[&id]["deps"].as_array().unwrap() {
            let normal = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(d["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    let closure: BTreeSet<&str> = seen.iter().map(|id| names[id].as_str()).collect();
    println!("cvx-vault links {} crates", closure.len());
    assert!(
        closure.contains("age") && closure.contains("cvx-protocol"),
        "closure looks wrong: {closure:?}"
    );
    let bad: Vec<&&str> = FORBIDDEN.iter().filter(|f| closure.contains(**f)).collect();
    assert!(
        bad.is_empty(),
        "network crates in cvx-vault's closure: {bad:?}"
    );
}

/// Why the namespace + strace test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("not root (unshare -n needs CAP_SYS_ADMIN)".into());
    }
    for tool in ["unshare", "strace"] {
        if !have(tool) {
            return Some(format!(
                "{tool} is not installed (apt-get install -y {tool})"
            ));
        }
    }
    let probe = Command::new("unshare")
        .args(["-n", "--", "strace", "-f", "-qq", "-o", "/dev/null", "true"])
        .output()
        .unwrap();
    if !probe.status.success() {
        return Some(format!(
            "unshare -n + strace do not work here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    None
}

/// Trezor's SLIP-39 vector 20: one share of a 256-bit secret (passphrase "TREZOR").
const VECTOR_20: &str = "theory painting academic academic armed sweater year military elder discuss acne wildlife boring employer fused large satoshi bundle carbon diagnose anatomy hamster leaves tracks paces beyond phantom capital marvel lips brave detect luck";

#[test]
fn every_subcommand_runs_without_a_network_and_makes_no_socket_call() {
    if let Some(why) = skip_reason() {
        println!("SKIPPED: {why}");
        return;
    }
    let d = TempDir::new("offline");
    let pass = "offline pass\n";
    let net = "5e".repeat(32);
    let peer = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let wf = LOW.to_string();
    let steps: Vec<(&str, Vec<String>, String)> = vec![
        ("help", vec!["help".into()], String::new()),
        (
            "keygen peer",
            vec![
                "keygen",
                "--role",
                "peer",
                "--out",
                "peer.age",
                "--work-factor",
                &wf,
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "keygen account (imported words)",
            vec![
                "keygen",
                "--role",
                "account",
                "--out",
                "acct.age",
                "--work-factor",
                &wf,
                "--import-words",
                "--words-fd",
                "0",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            format!("{} art\n{pass}", ["abandon"; 23].join(" ")),
        ),
        (
            "verify",
            vec!["verify", "--backup", "peer.age"]
                .into_iter()
                .map(String::from)
                .collect(),
            String::new(),
        ),
        (
            "restore",
            vec![
                "restore",
                "--backup",
                "peer.age",
                "--out",
                "peer.key",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "provision",
            vec![
                "provision",
                "--backup",
                "peer.age",
                "--recipient",
                &recipient,
                "--out",
                "prov.age",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "tx",
            vec![
                "tx",
                "withdraw",
                "--network",
                &net,
                "--origin",
                "1",
                "--sequence",
                "1",
                "--peer",
                peer,
                "--key",
                "acct.age",
                "--out",
                "w.cvxtx",
                "--yes",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "ladder",
            vec![
                "ladder",
                "--network",
                &net,
                "--origin",
                "1",
                "--peer",
                peer,
                "--current-sequence",
                "1",
                "--count",
                "2",
                "--key",
                "acct.age",
                "--out-dir",
                "ladder",
                "--yes",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "qr",
            vec!["qr", "--in", "w.cvxtx", "--svg", "w.svg"]
                .into_iter()
                .map(String::from)
                .collect(),
            String::new(),
        ),
        (
            "convex withdraw (a ladder of 2)",
            [
                "convex",
                "withdraw",
                "--origin",
                "12",
                "--sequence",
                "14",
                "--count",
                "2",
                "--peer-key",
                peer,
                "--key",
                "acct.age",
                "--out-dir",
                "cw",
                "--yes",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "convex transfer",
            [
                "convex",
                "transfer",
                "--origin",
                "12",
                "--sequence",
                "16",
                "--to",
                "13",
                "--amount",
                "1000",
                "--key",
                "acct.age",
                "--out-dir",
                "ct",
                "--yes",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            pass.into(),
        ),
        (
            "convex verify",
            vec!["convex", "verify", "cw/withdraw-seq-15.cvx"]
                .into_iter()
                .map(String::from)
                .collect(),
            String::new(),
        ),
        (
            "audit verify",
            vec!["audit", "verify"]
                .into_iter()
                .map(String::from)
                .collect(),
            String::new(),
        ),
        (
            "a failing command",
            vec![
                "restore",
                "--backup",
                "peer.age",
                "--out",
                "x.key",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "wrong\n".into(),
        ),
        (
            "shares combine (Trezor's vector 20: one 256-bit share)",
            [
                "shares",
                "combine",
                "--role",
                "peer",
                "--out",
                "shares.age",
                "--work-factor",
                &wf,
                "--words-fd",
                "0",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            format!("{VECTOR_20}\nTREZOR\n{pass}"),
        ),
        (
            // Shares are shown on a terminal only; with one it makes no network call
            // either (`shares_split_and_combine_make_no_socket_call`).
            "a failing command: shares split without a terminal",
            [
                "shares",
                "split",
                "--key",
                "peer.age",
                "--threshold",
                "2",
                "--count",
                "3",
                "--passphrase-fd",
                "0",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            format!("{pass}\n"),
        ),
    ];
    // Every leaf command the help texts list is among the steps (a new subcommand
    // without an offline step fails here).
    for leaf in leaf_commands(&[]) {
        assert!(
            steps
                .iter()
                .any(|(_, args, _)| args.len() >= leaf.len() && args[..leaf.len()] == leaf[..]),
            "`cvx-vault {}` has no step in the offline test",
            leaf.join(" ")
        );
    }
    for (name, args, stdin) in steps {
        let trace = d.path("trace.txt");
        let mut cmd = Command::new("unshare");
        cmd.current_dir(&d.0)
            .args([
                "-n",
                "--",
                "strace",
                "-f",
                "-qq",
                "-e",
                "trace=%network",
                "-o",
            ])
            .arg(&trace)
            .arg(common::BIN)
            .args(["--audit", "audit.log"])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let expect_ok = !name.starts_with("a failing command");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = std::fs::read_to_string(&trace).unwrap();
        assert!(
            calls.trim().is_empty(),
            "{name} made network system calls:\n{calls}"
        );
        println!("{name}: ok, no network system call");
    }
}

/// The leaf commands (no "Commands:" section of their own), from the help texts.
fn leaf_commands(path: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = Command::new(common::BIN).args(&args).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let subs: Vec<String> = help
        .lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    if subs.is_empty() {
        return vec![path.to_vec()];
    }
    subs.into_iter()
        .flat_map(|s| {
            let mut p = path.to_vec();
            p.push(s);
            leaf_commands(&p)
        })
        .collect()
}

/// Issue 19: `shares split` (on a pseudo-terminal, where the shares are shown) and
/// `shares combine` (shares from a descriptor) run in a network namespace with no
/// interfaces and make no network system call.
#[test]
fn shares_split_and_combine_make_no_socket_call() {
    if let Some(why) = skip_reason() {
        println!("SKIPPED: {why}");
        return;
    }
    if !have("python3") {
        println!("SKIPPED: python3 is not installed (the pty driver needs it)");
        return;
    }
    let d = TempDir::new("offline-shares");
    let pass = "offline pass";
    let key = common::keygen(&d.0, "peer", "peer.age", pass, LOW);
    let trace = d.path("split-trace.txt");
    let captures = d.path("captures.json");
    let spec = serde_json::json!({
        "argv": ["unshare", "-n", "--", "strace", "-f", "-qq", "-e", "trace=%network",
                 "-o", trace.to_str().unwrap(), common::BIN,
                 "--audit", d.path("audit.log").to_str().unwrap(), "shares", "split",
                 "--key", d.path("peer.age").to_str().unwrap(), "--threshold", "2", "--count", "2"],
        "stdout": d.path("split-stdout.txt").to_str().unwrap(),
        "transcript": d.path("split-transcript.txt").to_str().unwrap(),
        "captures_out": captures.to_str().unwrap(),
        "timeout": 120,
        "steps": [
            {"expect": "Passphrase for [^:]*: ", "send": format!("{pass}\n")},
            {"expect": "SLIP-39 passphrase of the shares[^:]*: ", "send": "\n"},
            {"expect": "Repeat the SLIP-39 passphrase: ", "send": "\n"},
            {"expect": "Share 1 of 2.*?Press Enter[^\n]*", "capture_words": "s1", "send": "\n"},
            {"expect": "Type the share again[^:]*: ", "send": "{s1}\n"},
            {"expect": "Share 2 of 2.*?Press Enter[^\n]*", "capture_words": "s2", "send": "\n"},
            {"expect": "Type the share again[^:]*: ", "send": "{s2}\n"},
        ],
    });
    let rc = common::pty(&spec, &d.0);
    assert_eq!(
        rc,
        0,
        "shares split: {}",
        String::from_utf8_lossy(&std::fs::read(d.path("split-transcript.txt")).unwrap())
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(
        calls.trim().is_empty(),
        "shares split made network system calls:\n{calls}"
    );
    println!("shares split: ok, no network system call");
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&captures).unwrap()).unwrap();
    let input = format!(
        "{}\n{}\n\n{pass}\n",
        c["s2"].as_str().unwrap(),
        c["s1"].as_str().unwrap()
    );
    let trace = d.path("combine-trace.txt");
    let mut child = Command::new("unshare")
        .current_dir(&d.0)
        .args([
            "-n",
            "--",
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=%network",
            "-o",
        ])
        .arg(&trace)
        .arg(common::BIN)
        .args([
            "--audit",
            "audit.log",
            "shares",
            "combine",
            "--role",
            "peer",
            "--out",
            "back.age",
        ])
        .args([
            "--expect-key",
            &key,
            "--work-factor",
            "10",
            "--words-fd",
            "0",
            "--passphrase-fd",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "shares combine: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    assert!(
        calls.trim().is_empty(),
        "shares combine made network system calls:\n{calls}"
    );
    println!("shares combine: ok, no network system call");
}
