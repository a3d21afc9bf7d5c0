//! The signer's sandbox profile: exactly what `run` applies after start-up (and what
//! the `cvx-signer-probe` test program applies before its forbidden call).

use std::os::fd::RawFd;

use cvx_sandbox::harden::Limits;
use cvx_sandbox::{Profile, Report, SandboxError};

include!(concat!(env!("OUT_DIR"), "/seccomp_filter.rs"));

/// Largest file the signer may write (the audit log): 1 TiB. Past it, writes fail
/// with EFBIG (SIGXFSZ is ignored) and the signer stops signing.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// Enter the signer's sandbox, keeping only `keep_fds` (besides 0, 1, 2).
///
/// # Errors
/// [`SandboxError`]; the caller must exit with `Exit::Sandbox`.
pub fn enter(
    keep_fds: &[RawFd],
    max_connections: usize,
    require_landlock: bool,
) -> Result<Report, SandboxError> {
    let limits = Limits {
        // Descriptor numbers: 0-2, listener, state, audit, trust file, then one per
        // connection, serve::ADMIN_SLOTS admin connections, plus one briefly for a
        // connection beyond the caps (closed at once): 7 + max + 4 + 1 < max + 16.
        nofile: u64::try_from(max_connections).unwrap_or(1024) + 16,
        nproc: 0,
        fsize: MAX_FILE_SIZE,
    };
    cvx_sandbox::enter(&Profile {
        keep_fds,
        keep_env: &[],
        limits,
        require_landlock,
        seccomp: FILTER,
    })
}

#[cfg(test)]
mod tests {
    /// Every rule of the policy names a system call once and says why it is allowed.
    #[test]
    fn every_policy_entry_has_a_reason() {
        let text = include_str!("../../policies/seccomp/cvx-signer.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let f = &v["cvx-signer"];
        assert_eq!(f["default_action"], "kill_process");
        let rules = f["filter"].as_array().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in rules {
            let name = r["syscall"].as_str().unwrap();
            // A call listed twice only as alternatives that each filter arguments.
            let conditional = r["args"].as_array().is_some_and(|a| !a.is_empty());
            assert!(
                seen.insert(name.to_owned()) || conditional,
                "{name} listed twice"
            );
            let why = r["comment"].as_str().unwrap_or_default();
            assert!(why.len() > 10, "{name} has no reason");
        }
        // Signal dispositions and self-signals only for the fault signals (and abort).
        for (call, index, allowed) in [
            ("rt_sigaction", 0, &[7, 11][..]),
            ("tgkill", 2, &[6, 7, 11][..]),
        ] {
            for r in rules.iter().filter(|r| r["syscall"] == call) {
                let arg = &r["args"][0];
                assert_eq!(
                    arg["index"], index,
                    "{call}: must filter the signal argument"
                );
                assert_eq!(arg["op"], "eq", "{call}");
                let sig = arg["val"].as_i64().unwrap();
                assert!(allowed.contains(&sig), "{call} allowed for signal {sig}");
            }
        }
        for forbidden in [
            "socket", "connect", "openat", "open", "execve", "execveat", "ptrace", "clone",
            "clone3", "fork",
        ] {
            assert!(!seen.contains(forbidden), "{forbidden} must not be allowed");
        }
        for exec_guarded in ["mmap", "mprotect"] {
            let r = rules.iter().find(|r| r["syscall"] == exec_guarded).unwrap();
            assert_eq!(
                r["args"][0]["op"]["masked_eq"], 4,
                "{exec_guarded} must exclude PROT_EXEC"
            );
        }
        assert!(!super::FILTER.is_empty());
    }
}
