//! Issue 19 (SLIP-39 shares) through the real binary: a split → combine round trip on
//! a pseudo-terminal, the terminal discipline of `shares split` (shares on the terminal
//! only), and the refusals of `shares combine` (a share failing its checksum, a
//! mismatched set, too few shares, a key other than the expected one).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::path::Path;

use common::{LOW, TempDir, code, have, pty, stderr, stdout, vault};
use serde_json::json;

const PASS: &str = "backup pass phrase";
const SLIP_PASS: &str = "slip39 words of passage";

/// Run `shares split` on a pty with the given plan flags; returns the shares shown, in
/// order (`count` of them), and the transcript.
fn split_on_pty(
    d: &Path,
    backup: &str,
    plan: &[&str],
    count: usize,
    tag: &str,
) -> (Vec<String>, String) {
    let mut argv = vec![
        common::BIN.to_owned(),
        "--audit".into(),
        d.join("audit.log").display().to_string(),
        "shares".into(),
        "split".into(),
        "--key".into(),
        d.join(backup).display().to_string(),
    ];
    argv.extend(plan.iter().map(|s| (*s).to_owned()));
    let mut steps = vec![
        json!({"expect": "Passphrase for [^:]*: ", "send": format!("{PASS}\n")}),
        json!({"expect": "SLIP-39 passphrase of the shares[^:]*: ", "send": format!("{SLIP_PASS}\n")}),
        json!({"expect": "Repeat the SLIP-39 passphrase: ", "send": format!("{SLIP_PASS}\n")}),
    ];
    for k in 1..=count {
        steps.push(
            json!({"expect": format!("Share {k} of {count}.*?Press Enter[^\n]*"),
                          "capture_words": format!("s{k}"), "send": "\n"}),
        );
        steps.push(json!({"expect": "Type the share again[^:]*: ", "send": format!("{{s{k}}}\n")}));
    }
    let captures = d.join(format!("{tag}-captures.json"));
    let transcript = d.join(format!("{tag}-transcript.txt"));
    let spec = json!({
        "argv": argv,
        "stdout": d.join(format!("{tag}-stdout.txt")).to_str().unwrap(),
        "transcript": transcript.to_str().unwrap(),
        "captures_out": captures.to_str().unwrap(),
        "timeout": 120,
        "steps": steps,
    });
    let rc = pty(&spec, d);
    let t = String::from_utf8_lossy(&std::fs::read(&transcript).unwrap()).into_owned();
    assert_eq!(rc, 0, "split failed:\n{t}");
    let caps: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&captures).unwrap()).unwrap();
    let shares = (1..=count)
        .map(|k| caps[format!("s{k}")].as_str().unwrap().to_owned())
        .collect();
    (shares, t)
}

/// No two consecutive words of any share appear in `text`.
fn assert_no_share_in(what: &str, text: &str, shares: &[String]) {
    let tokens: Vec<&str> = text
        .split(|c: char| !c.is_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for s in shares {
        let w: Vec<&str> = s.split(' ').collect();
        // Words 5.. carry the share value (1-4: identifier and parameters).
        for pair in w[4..].windows(2) {
            assert!(
                !tokens.windows(2).any(|t| t == pair),
                "share words {pair:?} in {what}"
            );
        }
    }
}

fn manifest_key(d: &Path, backup: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(d.join(format!("{backup}.manifest.json"))).unwrap())
        .unwrap()
}

fn restore(d: &Path, backup: &str, out: &str) -> Vec<u8> {
    let o = vault(
        d,
        &[
            "--audit",
            "audit.log",
            "restore",
            "--backup",
            backup,
            "--out",
            out,
            "--passphrase-fd",
            "0",
        ],
        &format!("{PASS}\n"),
    );
    assert_eq!(code(&o), 0, "restore: {}", stderr(&o));
    std::fs::read(d.join(out)).unwrap()
}

#[test]
fn split_and_combine_round_trip_on_a_pseudo_terminal() {
    if !have("python3") {
        println!("SKIPPED: python3 is not installed");
        return;
    }
    let d = TempDir::new("shares-pty");
    let key = common::keygen(&d.0, "account", "acct.age", PASS, LOW);
    let (shares, transcript) = split_on_pty(
        &d.0,
        "acct.age",
        &["--threshold", "2", "--count", "3"],
        3,
        "split",
    );
    for s in &shares {
        assert_eq!(
            s.split(' ').count(),
            33,
            "a 256-bit share has 33 words: {s}"
        );
        assert!(transcript.contains(s.split(' ').nth(10).unwrap()));
    }
    assert_ne!(shares[0], shares[1]);
    // stdout (a file here) reports the split and holds no share.
    let out = std::fs::read_to_string(d.path("split-stdout.txt")).unwrap();
    assert!(
        out.contains(&format!(
            "shares split: account key {key} into 3 SLIP-39 shares"
        )),
        "{out}"
    );
    let audit = std::fs::read_to_string(d.path("audit.log")).unwrap();
    assert!(audit.contains("\"shares-split\""));
    assert_no_share_in("stdout", &out, &shares);
    assert_no_share_in("the audit log", &audit, &shares);

    // Combine shares 3 and 1 on the pty, with the expected key.
    let spec = json!({
        "argv": [common::BIN, "--audit", d.path("audit.log").to_str().unwrap(), "shares", "combine",
                 "--role", "account", "--out", d.path("back.age").to_str().unwrap(),
                 "--expect-key", key, "--work-factor", "10"],
        "stdout": d.path("combine-stdout.txt").to_str().unwrap(),
        "transcript": d.path("combine-transcript.txt").to_str().unwrap(),
        "timeout": 120,
        "steps": [
            {"expect": "no share yet\\s+Share 1, [^:]*: ", "send": format!("{}\n", shares[2])},
            {"expect": "1 of the 2 shares needed\\s+Share 2, [^:]*: ", "send": format!("{}\n", shares[0].to_uppercase())},
            {"expect": "SLIP-39 passphrase of the shares[^:]*: ", "send": format!("{SLIP_PASS}\n")},
            {"expect": "New passphrase[^:]*: ", "send": format!("{PASS}\n")},
            {"expect": "Repeat the passphrase: ", "send": format!("{PASS}\n")},
        ],
    });
    let rc = pty(&spec, &d.0);
    let t = String::from_utf8_lossy(&std::fs::read(d.path("combine-transcript.txt")).unwrap())
        .into_owned();
    assert_eq!(rc, 0, "combine failed:\n{t}");
    // Typed shares are not echoed.
    assert_no_share_in("the combine transcript", &t, &shares);
    let out = std::fs::read_to_string(d.path("combine-stdout.txt")).unwrap();
    assert!(
        out.contains(&format!("account key {key} rebuilt from 2 shares")),
        "{out}"
    );
    assert!(out.contains("matches the expected public key"));
    // An ordinary backup with its manifest: it verifies, restores to the same key file.
    let m = manifest_key(&d.0, "back.age");
    assert_eq!(m["public_key"], key.as_str());
    assert_eq!(m["origin"], "slip39");
    assert_eq!(m["role"], "account");
    let o = vault(
        &d.0,
        &["--audit", "audit.log", "verify", "--backup", "back.age"],
        "",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        restore(&d.0, "acct.age", "a.key"),
        restore(&d.0, "back.age", "b.key")
    );
    let audit = std::fs::read_to_string(d.path("audit.log")).unwrap();
    assert!(audit.contains("\"shares-combine\""));
    assert_no_share_in("the audit log", &audit, &shares);
    let o = vault(&d.0, &["--audit", "audit.log", "audit", "verify"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// `shares combine` from a descriptor: shares one per line, then the SLIP-39
/// passphrase, then the new backup's passphrase.
fn combine_fd(
    d: &Path,
    out: &str,
    shares: &[&str],
    slip: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "--audit",
        "audit.log",
        "shares",
        "combine",
        "--role",
        "peer",
        "--out",
        out,
        "--work-factor",
        "10",
        "--words-fd",
        "0",
        "--passphrase-fd",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut input = String::new();
    for s in shares {
        input.push_str(s);
        input.push('\n');
    }
    input.push_str(&format!("{slip}\n{PASS}\n"));
    vault(d, &args, &input)
}

#[test]
fn groups_split_and_combine_refusals_name_the_share_and_the_fix() {
    if !have("python3") {
        println!("SKIPPED: python3 is not installed");
        return;
    }
    let d = TempDir::new("shares-groups");
    let key = common::keygen(&d.0, "peer", "peer.age", PASS, LOW);
    // Groups: 1of1 and 2of3, any 2 groups... i.e. both groups are needed.
    let (g, _) = split_on_pty(
        &d.0,
        "peer.age",
        &[
            "--groups",
            "1of1,2of3",
            "--group-threshold",
            "2",
            "--iteration-exponent",
            "0",
        ],
        4,
        "groups",
    );
    let (a, _) = split_on_pty(
        &d.0,
        "peer.age",
        &["--threshold", "2", "--count", "2"],
        2,
        "other",
    );
    // The group set rebuilds the key from a descriptor.
    let o = combine_fd(
        &d.0,
        "g.age",
        &[&g[2], &g[0], &g[3]],
        SLIP_PASS,
        &["--expect-key", &key],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("peer key {key} rebuilt from 3 shares")));
    assert_no_share_in("stderr", &stderr(&o), &g);

    let fails = |name: &str, o: &std::process::Output, exit: i32, text: &str| {
        let err = stderr(o);
        assert_eq!(code(o), exit, "{name}: {err}");
        assert!(err.contains(text), "{name}: {err}");
        assert_no_share_in(name, &err, &g);
        assert_no_share_in(name, &stdout(o), &g);
    };
    // A mistyped word: share 2 fails its checksum.
    let mut w: Vec<&str> = g[1].split(' ').collect();
    w[12] = if w[12] == "academic" {
        "acid"
    } else {
        "academic"
    };
    let typo = w.join(" ");
    fails(
        "checksum",
        &combine_fd(&d.0, "x.age", &[&g[0], &typo], SLIP_PASS, &[]),
        10,
        "share 2 fails its checksum",
    );
    // A word not in the list.
    let bad = g[1].replacen(' ', " zzzz ", 1);
    fails(
        "unknown word",
        &combine_fd(&d.0, "x.age", &[&bad], SLIP_PASS, &[]),
        10,
        "share 1: word 2 is not in the SLIP-39 word list",
    );
    // A share of another split.
    fails(
        "mismatch",
        &combine_fd(&d.0, "x.age", &[&g[1], &a[0]], SLIP_PASS, &[]),
        10,
        "share 2 does not belong with share 1",
    );
    // The same share twice.
    fails(
        "duplicate",
        &combine_fd(&d.0, "x.age", &[&g[1], &g[1]], SLIP_PASS, &[]),
        10,
        "share 2 has the same group and member number as share 1",
    );
    // Too few: an empty line says there are no more.
    fails(
        "too few",
        &combine_fd(&d.0, "x.age", &[&g[1], &g[2], ""], SLIP_PASS, &[]),
        10,
        "too few shares: group 2: 2 of 2 shares; groups complete: 1 of 2 needed",
    );
    // A wrong SLIP-39 passphrase rebuilds another key, caught by --expect-key.
    fails(
        "wrong passphrase",
        &combine_fd(
            &d.0,
            "x.age",
            &[&g[0], &g[1], &g[2]],
            "not it",
            &["--expect-key", &key],
        ),
        9,
        "check the passphrase",
    );
    assert!(!d.path("x.age").exists() && !d.path("x.age.manifest.json").exists());
    // An existing output is refused before any share is asked for.
    fails(
        "exists",
        &combine_fd(&d.0, "g.age", &[], "", &[]),
        4,
        "already exists",
    );
}

#[test]
fn split_shows_shares_only_on_a_terminal() {
    let d = TempDir::new("shares-notty");
    common::keygen(&d.0, "account", "acct.age", PASS, LOW);
    let before = std::fs::read(d.path("audit.log")).unwrap();
    // Both passphrases from stdin, no terminal: refused, nothing recorded.
    let o = vault(
        &d.0,
        &[
            "--audit",
            "audit.log",
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
        ],
        &format!("{PASS}\n\n"),
    );
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("showing shares needs a terminal"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "stdout: {}", stdout(&o));
    assert_eq!(std::fs::read(d.path("audit.log")).unwrap(), before);
    // Impossible plans are refused before any passphrase is asked.
    for (plan, text) in [
        (
            vec!["--threshold", "1", "--count", "3"],
            "1 of 3 would make 3 copies",
        ),
        (
            vec!["--threshold", "4", "--count", "3"],
            "4 of 3 is impossible",
        ),
        (
            vec!["--groups", "2of3,x", "--group-threshold", "1"],
            "--groups: \"x\" is not THRESHOLDofCOUNT",
        ),
        (
            vec!["--groups", "2of3", "--group-threshold", "2"],
            "the group threshold must be 1 to 1",
        ),
    ] {
        let mut args = vec![
            "--audit",
            "audit.log",
            "shares",
            "split",
            "--key",
            "acct.age",
        ];
        args.extend(plan.iter());
        let o = vault(&d.0, &args, "");
        assert!(matches!(code(&o), 2 | 10), "{plan:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(text), "{plan:?}: {}", stderr(&o));
    }
}
