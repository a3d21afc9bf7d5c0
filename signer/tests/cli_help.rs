//! Every subcommand of the real `cvx-signer` binary answers `--help` with exit 0. The
//! subcommands are discovered from the "Commands:" section of each help text,
//! recursively, so a new subcommand is covered without editing this test.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cvx-signer");

fn help(path: &[String]) -> String {
    let out = Command::new(BIN).args(path).arg("--help").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "cvx-signer {} --help: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names listed under "Commands:" (up to the next blank line), without clap's `help`.
fn commands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_subcommand_answers_help_with_exit_0() {
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = Vec::new();
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for c in commands(&text) {
            let mut next = path.clone();
            next.push(c);
            todo.push(next);
        }
        seen.push(path.join(" "));
    }
    for expected in [
        "init",
        "run",
        "keygen",
        "status",
        "lock",
        "unlock",
        "audit",
        "audit verify",
        "export-watermark",
        "import-watermark",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not found: {seen:?}"
        );
    }
}

#[test]
fn version_and_usage_errors_keep_their_exit_codes() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with("cvx-signer ") && v.contains("wire version"),
        "{v}"
    );
    for bad in [
        &[][..],
        &["frobnicate"][..],
        &["status"][..],
        &["init"][..],
        &["audit"][..],
        &["audit", "verify"][..],
        &["import-watermark", "--config", "c"][..],
        &[
            "import-watermark",
            "--config",
            "c",
            "--file",
            "f",
            "--margin-ms",
            "5",
        ][..],
        &["run", "--config", "x", "--passphrase", "secret"][..],
        &[
            "keygen",
            "--out",
            "k",
            "--recipient",
            "r",
            "--identity",
            "i",
        ][..],
        &[
            "keygen",
            "--out",
            "k",
            "--passphrase-fd",
            "0",
            "--work-factor",
            "9",
        ][..],
    ] {
        let out = Command::new(BIN).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?}: says why on stderr");
    }
    let out = Command::new(BIN)
        .args(["run", "--config", "x", "--passphrase", "secret"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never taken from the command line"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}
