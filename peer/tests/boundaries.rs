//! cvx-peer never holds a private key: no signing-key type or signing API appears in its
//! sources, and cvx-loadgen (which holds keys) is only a dev-dependency.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn peer_sources_name_no_signing_key_or_signing_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(!files.is_empty());
    let forbidden = [
        "SigningKey",
        "SecretKey",
        "ExpandedSecretKey",
        "ed25519_dalek::Signer",
        "hazmat",
        "cvx_loadgen",
        "try_sign",
        "sign_prehashed",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} contains `{word}`: cvx-peer must never hold or use a private key",
                f.display()
            );
        }
    }
}

#[test]
fn loadgen_is_only_a_dev_dependency_of_the_peer() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut section = "";
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l;
        } else if l.starts_with("cvx-loadgen") {
            assert_eq!(
                section, "[dev-dependencies]",
                "cvx-loadgen may only be a dev-dependency of cvx-peer"
            );
        }
    }
}
