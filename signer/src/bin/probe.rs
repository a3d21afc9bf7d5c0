//! `cvx-signer-probe ACTION`: applies exactly the signer's sandbox (the same
//! `cvx_signer::sandbox::enter` as `cvx-signer run`), then does ACTION:
//!
//! * `ok` — nothing; exits 0 (the sandbox itself lets a process finish cleanly);
//! * `panic` — panics; must end in SIGABRT (the panic hook is installed before the filter);
//! * `segfault` — reads address 8; must end by SIGSEGV (not SIGSYS);
//! * `stack-overflow` — recurses without end; std must print "has overflowed its stack"
//!   and abort (SIGABRT), not die by SIGSYS;
//! * `socket-inet`, `openat`, `execve`, `ptrace`, `mmap-exec`, `mprotect-exec` — the
//!   forbidden call; must die by SIGSYS. Returning is a failure (exit 1).
//!
//! A test program for tests/tests/signer_sandbox.rs; never installed.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use cvx_sandbox::probe::{Forbidden, attempt};

fn main() -> ExitCode {
    let action = std::env::args().nth(1).unwrap_or_default();
    let forbidden = Forbidden::ALL.into_iter().find(|f| f.name() == action);
    let others = ["ok", "panic", "segfault", "stack-overflow"];
    if forbidden.is_none() && !others.contains(&action.as_str()) {
        let _ = writeln!(
            std::io::stderr(),
            "usage: cvx-signer-probe ok|panic|segfault|stack-overflow|socket-inet|openat|execve|ptrace|mmap-exec|mprotect-exec|fork"
        );
        return ExitCode::from(2);
    }
    let report = match cvx_signer::sandbox::enter(&[], 16, false) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "sandbox failed: {e}");
            return ExitCode::from(cvx_signer::exit::Exit::Sandbox.code());
        }
    };
    let _ = writeln!(
        std::io::stderr(),
        "sandboxed: landlock abi {} enforcement {}; action {action}",
        report.landlock.kernel_abi,
        report.landlock.enforcement.name()
    );
    match forbidden {
        Some(f) => {
            let r = attempt(f);
            let _ = writeln!(std::io::stderr(), "NOT KILLED: {} returned {r}", f.name());
            ExitCode::from(1)
        }
        None if action == "panic" => panic!("deliberate panic after sandboxing"),
        None if action == "segfault" => {
            let v = cvx_sandbox::probe::segfault();
            let _ = writeln!(std::io::stderr(), "NOT KILLED: the read returned {v}");
            ExitCode::from(1)
        }
        None if action == "stack-overflow" => {
            let v = cvx_sandbox::probe::overflow_stack(0);
            let _ = writeln!(std::io::stderr(), "NOT KILLED: recursion returned {v}");
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}
