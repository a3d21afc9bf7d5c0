//! `unsafe` lives only in cvx-sandbox and etch's one mapping module; every other crate
//! root forbids it (house rule 2). The workspace lint is `deny`, so this test is what
//! makes "forbid" hold for every other crate.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};

use cvx_systest::workspace_root;

/// Files allowed to contain `unsafe` blocks or impls.
const UNSAFE_ALLOWED: &[&str] = &["sandbox/src/", "etch/src/map.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') && !name.starts_with("target-") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn relative(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

/// Is this line code that uses `unsafe` (not a comment or a lint attribute)?
fn uses_unsafe(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    code.contains("unsafe ") || code.contains("unsafe{")
}

#[test]
fn unsafe_appears_only_in_the_sandbox_and_the_store_mapping() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in cvx_systest::CRATE_DIRS {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(
        files.len() > 20,
        "found only {} Rust files: wrong root?",
        files.len()
    );
    let mut offenders = Vec::new();
    for f in &files {
        let rel = relative(f);
        if UNSAFE_ALLOWED.iter().any(|a| rel.starts_with(a))
            || rel == "tests/tests/unsafe_boundary.rs"
        {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        for (i, line) in text.lines().enumerate() {
            if uses_unsafe(line) {
                offenders.push(format!("{rel}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe outside cvx-sandbox and etch/src/map.rs:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_other_crate_root_forbids_unsafe() {
    let root = workspace_root();
    let mut roots = Vec::new();
    for krate in [
        "protocol",
        "signer",
        "consensus",
        "peer",
        "devnet",
        "vault",
        "loadgen",
        "tests",
    ] {
        let dir = root.join(krate);
        if !dir.exists() {
            println!("{krate}: not present yet");
            continue;
        }
        for candidate in ["src/lib.rs", "src/main.rs"] {
            let p = dir.join(candidate);
            if p.exists() {
                roots.push(p);
            }
        }
        let mut bins = Vec::new();
        rust_files(&dir.join("src/bin"), &mut bins);
        roots.extend(bins);
    }
    let missing: Vec<String> = roots
        .iter()
        .filter(|p| {
            !std::fs::read_to_string(p).is_ok_and(|t| t.contains("#![forbid(unsafe_code)]"))
        })
        .map(|p| relative(p))
        .collect();
    assert!(
        missing.is_empty(),
        "crate roots without #![forbid(unsafe_code)]:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_unsafe_detector_sees_unsafe() {
    assert!(uses_unsafe("    let x = unsafe { f() };"));
    assert!(uses_unsafe("unsafe impl Send for X {}"));
    assert!(!uses_unsafe("// unsafe { comment }"));
    assert!(!uses_unsafe("#![forbid(unsafe_code)]"));
}
