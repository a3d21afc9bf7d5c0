//! The one compiler of `policies/seccomp/*.json` into BPF, for build scripts (feature
//! `build`): the signer's and the peer's `build.rs` call [`emit`], so both binaries embed
//! instructions made by the same code, and a policy entry without a reason fails the build.
//!
//! Policy format (seccompiler's JSON): `{ "<filter>": { "default_action": ..,
//! "filter_action": .., "filter": [ { "syscall": .., "comment": "why", "args": [..] } ] } }`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::seccomp::Instruction;

/// Why a policy could not be compiled. Build scripts print it and fail.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("reading seccomp policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// seccompiler refused it (syntax, unknown syscall, bad argument rule).
    #[error("compiling seccomp policy {path}: {message}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// seccompiler's message.
        message: String,
    },
    /// A rule breaks the house rules (no reason, listed twice, filter missing).
    #[error("seccomp policy {path}: {problem}")]
    Rule {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A build-script environment variable is missing or writing the output failed.
    #[error("seccomp build step: {0}")]
    Build(String),
}

/// Check the house rules on the policy text: every rule gives a reason (`comment`, more
/// than 10 characters), and a system call is listed once, or several times only as
/// alternatives that each carry argument conditions.
///
/// # Errors
/// [`PolicyError::Rule`] naming the rule.
pub fn check_reasons(path: &Path, json: &[u8]) -> Result<(), PolicyError> {
    let bad = |problem: String| PolicyError::Rule {
        path: path.to_path_buf(),
        problem,
    };
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let filters = v
        .as_object()
        .ok_or_else(|| bad("the top level must be an object of filters".into()))?;
    for (name, f) in filters {
        let rules = f["filter"]
            .as_array()
            .ok_or_else(|| bad(format!("filter {name:?} has no \"filter\" array")))?;
        // syscall -> whether an entry for it has no argument conditions
        let mut seen = std::collections::BTreeMap::new();
        for r in rules {
            let sys = r["syscall"]
                .as_str()
                .ok_or_else(|| bad(format!("filter {name:?}: a rule has no \"syscall\"")))?;
            let unconditional = r["args"].as_array().is_none_or(Vec::is_empty);
            // Several entries for one call are alternatives (any may match); that is only
            // meaningful when each has argument conditions (an unconditional entry
            // would silently allow every argument).
            if let Some(prev) = seen.insert(sys, unconditional)
                && (prev || unconditional)
            {
                return Err(bad(format!(
                    "filter {name:?}: {sys} is listed twice; merge the rules into one entry \
                     (alternatives must each have \"args\")"
                )));
            }
            let why = r["comment"].as_str().unwrap_or_default();
            if why.trim().len() <= 10 {
                return Err(bad(format!(
                    "filter {name:?}: {sys} has no reason; add a \"comment\" saying why it is allowed"
                )));
            }
        }
    }
    Ok(())
}

/// Compile the filter `filter` of the policy text for `arch` (a Rust target arch name).
///
/// # Errors
/// [`PolicyError`].
pub fn compile(
    path: &Path,
    json: &[u8],
    filter: &str,
    arch: &str,
) -> Result<Vec<Instruction>, PolicyError> {
    check_reasons(path, json)?;
    let compile_err = |message: String| PolicyError::Compile {
        path: path.to_path_buf(),
        message,
    };
    let arch = seccompiler::TargetArch::try_from(arch)
        .map_err(|e| compile_err(format!("unsupported target architecture {arch}: {e:?}")))?;
    let mut filters =
        seccompiler::compile_from_json(json, arch).map_err(|e| compile_err(e.to_string()))?;
    let program = filters.remove(filter).ok_or_else(|| PolicyError::Rule {
        path: path.to_path_buf(),
        problem: format!("the policy has no {filter:?} filter"),
    })?;
    Ok(program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect())
}

/// Build-script entry: compile `<workspace>/policies/seccomp/<policy>.json` (relative to
/// `CARGO_MANIFEST_DIR/..`) for the target architecture and write
/// `$OUT_DIR/seccomp_filter.rs`, holding one `pub const NAME: &[Instruction]` per
/// `(filter, NAME)` pair. Include it with
/// `include!(concat!(env!("OUT_DIR"), "/seccomp_filter.rs"));`.
///
/// # Errors
/// [`PolicyError`]; the build script should return it (cargo prints it and fails).
pub fn emit(policy: &str, consts: &[(&str, &str)]) -> Result<(), PolicyError> {
    let var = |k: &str| std::env::var(k).map_err(|_| PolicyError::Build(format!("{k} is not set")));
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let path = manifest
        .join("..")
        .join("policies")
        .join("seccomp")
        .join(format!("{policy}.json"));
    // A build script talks to cargo on stdout: this line is cargo's protocol, not output.
    #[allow(clippy::print_stdout)]
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let arch = var("CARGO_CFG_TARGET_ARCH")?;
    let json = std::fs::read(&path).map_err(|source| PolicyError::Read {
        path: path.clone(),
        source,
    })?;
    let mut out = String::new();
    for (filter, name) in consts {
        let program = compile(&path, &json, filter, &arch)?;
        let _ = writeln!(
            out,
            "/// The {filter:?} seccomp program, compiled from policies/seccomp/{policy}.json.\n\
             pub const {name}: &[cvx_sandbox::seccomp::Instruction] = &["
        );
        for (code, jt, jf, k) in program {
            let _ = writeln!(out, "    ({code}, {jt}, {jf}, {k}),");
        }
        out.push_str("];\n");
    }
    let dest = PathBuf::from(var("OUT_DIR")?).join("seccomp_filter.rs");
    std::fs::write(&dest, out)
        .map_err(|e| PolicyError::Build(format!("writing {}: {e}", dest.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str) -> (PathBuf, Vec<u8>) {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../policies/seccomp")
            .join(format!("{name}.json"));
        let json = std::fs::read(&p).unwrap();
        (p, json)
    }

    #[test]
    fn every_shipped_policy_compiles_with_reasons() {
        for (name, filters) in [
            ("cvx-signer", &["cvx-signer"][..]),
            ("cvx-peer", &["cvx-peer", "cvx-peer-clone3"][..]),
        ] {
            let (p, json) = policy(name);
            for f in filters {
                assert!(!compile(&p, &json, f, "x86_64").unwrap().is_empty(), "{f}");
            }
        }
    }

    #[test]
    fn a_rule_without_reason_or_listed_twice_fails() {
        let p = Path::new("t.json");
        let no_reason = br#"{"f":{"default_action":"kill_process","filter_action":"allow","filter":[{"syscall":"read"}]}}"#;
        let e = compile(p, no_reason, "f", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("read has no reason"), "{e}");
        let twice = br#"{"f":{"default_action":"kill_process","filter_action":"allow","filter":[
            {"syscall":"read","comment":"reads a thing we need"},{"syscall":"read","comment":"reads a thing we need"}]}}"#;
        let e = compile(p, twice, "f", "x86_64").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let ok = br#"{"f":{"default_action":"kill_process","filter_action":"allow","filter":[{"syscall":"read","comment":"reads a thing we need"}]}}"#;
        let e = compile(p, ok, "g", "x86_64").unwrap_err().to_string();
        assert!(e.contains("no \"g\" filter"), "{e}");
    }
}
