//! Compile the signer's seccomp policy (policies/seccomp/cvx-signer.json: one entry per
//! system call, each with its reason) into BPF at build time, as Firecracker does; the
//! binary embeds the instructions and parses nothing at run time.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let policy = manifest.join("../policies/seccomp/cvx-signer.json");
    println!("cargo:rerun-if-changed={}", policy.display());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH")?;
    let arch = seccompiler::TargetArch::try_from(arch.as_str())
        .map_err(|e| format!("seccomp: unsupported target architecture {arch}: {e:?}"))?;
    let json = std::fs::read(&policy).map_err(|e| format!("reading {}: {e}", policy.display()))?;
    let mut filters = seccompiler::compile_from_json(json.as_slice(), arch)
        .map_err(|e| format!("compiling {}: {e}", policy.display()))?;
    let program = filters
        .remove("cvx-signer")
        .ok_or("the policy has no \"cvx-signer\" filter")?;
    let mut out = String::from(
        "/// The signer's seccomp program, compiled from policies/seccomp/cvx-signer.json.\n\
         pub const FILTER: &[cvx_sandbox::seccomp::Instruction] = &[\n",
    );
    for i in &program {
        writeln!(out, "    ({}, {}, {}, {}),", i.code, i.jt, i.jf, i.k)?;
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR")?).join("seccomp_filter.rs");
    std::fs::write(dest, out)?;
    Ok(())
}
