//! Issue 13: `--help` works on every subcommand (found by reading the "Commands:"
//! section of each help text, so a new subcommand is covered without editing this
//! test), `help PATH...` says the same, and `--version` works; all exit 0.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::BIN;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The names listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn usage_ok(what: &str, (code, out, err): &(i32, String, String)) {
    assert_eq!(*code, 0, "{what}: exit {code}\nstderr: {err}");
    assert!(
        out.contains("Usage: cvx-vault") && out.trim().len() > 20,
        "{what}: no usage on stdout:\n{out}"
    );
}

#[test]
fn every_subcommand_answers_help_and_the_binary_its_version() {
    let v = run(&["--version"]);
    assert_eq!(v.0, 0, "--version: {}", v.2);
    assert!(v.1.starts_with("cvx-vault "), "--version: {:?}", v.1);
    for flag in ["--help", "-h"] {
        usage_ok(flag, &run(&[flag]));
    }
    usage_ok("help", &run(&["help"]));

    let mut stack: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    while let Some(path) = stack.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let r = run(&args);
        usage_ok(&args.join(" "), &r);
        if !path.is_empty() {
            let mut h = vec!["help"];
            h.extend(path.iter().map(String::as_str));
            let hr = run(&h);
            usage_ok(&h.join(" "), &hr);
            assert_eq!(hr.1, r.1, "`{}` and `... --help` differ", h.join(" "));
        }
        for sub in subcommands(&r.1) {
            let mut p = path.clone();
            p.push(sub);
            stack.push(p);
        }
        seen.push(path.join(" "));
    }
    // The discovery really recursed: the known commands, and one level deeper.
    for must in [
        "keygen",
        "verify",
        "restore",
        "provision",
        "tx",
        "ladder",
        "qr",
        "audit",
        "audit verify",
        "convex withdraw",
        "convex transfer",
        "convex verify",
        "help",
    ] {
        assert!(
            seen.iter().any(|s| s == must),
            "{must} not discovered: {seen:?}"
        );
    }
}

#[test]
fn usage_errors_keep_exit_code_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["verify", "--frob"],
        &["verify"],
        &["help", "frobnicate"],
        &["keygen", "--role", "admin", "--out", "x"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: usage errors go to stderr: {out}");
        assert!(err.starts_with("cvx-vault: error: "), "{args:?}: {err}");
    }
}
