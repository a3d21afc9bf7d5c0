//! cvx-sandbox: the OS-level protections of cvx's key-holding processes, behind a safe
//! API.
//!
//! * [`secret`] — [`Locked<T>`](secret::Locked): a value in locked, dump-excluded memory
//!   (memfd_secret, or mlock + MADV_DONTDUMP + MADV_WIPEONFORK), wiped on drop;
//! * [`harden`] — not dumpable, RLIMIT_CORE 0, tight limits, stray fds closed, empty
//!   environment, panics abort;
//! * [`landlock`] — deny all filesystem and network access (the signer), or all but named
//!   paths (the peer); report ABI and enforcement;
//! * [`seccomp`] — install a kill-process allowlist compiled from a policy file;
//! * [`activation`] — take a systemd-activated listening socket;
//! * [`probe`] — deliberately forbidden calls, for the test program that proves the filter kills;
//! * `policy` (feature `build`) — the one compiler of `policies/seccomp/*.json`, for build scripts.
//!
//! [`enter`] (the single-threaded signer) and [`enter_service`] (the multi-threaded peer)
//! run them in the one safe order. With etch's map module, this crate holds
//! cvx's only `unsafe` code, in `secret.rs`, `harden.rs`, `activation.rs` and `probe.rs`, each block with a SAFETY
//! comment.

pub mod activation;
pub mod harden;
pub mod landlock;
#[cfg(any(feature = "build", test))]
pub mod policy;
pub mod probe;
pub mod seccomp;
pub mod secret;

use std::os::fd::RawFd;

pub use secret::{Backing, Locked, LockedError, Prefer};

/// Everything [`enter`] needs.
#[derive(Clone, Debug)]
pub struct Profile<'a> {
    /// Descriptors to keep open (besides 0, 1, 2).
    pub keep_fds: &'a [RawFd],
    /// Environment variables to keep.
    pub keep_env: &'a [&'a str],
    /// Resource limits.
    pub limits: harden::Limits,
    /// Fail unless Landlock is fully enforced.
    pub require_landlock: bool,
    /// The seccomp program.
    pub seccomp: &'a [seccomp::Instruction],
}

/// What [`enter`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Landlock's ABI and enforcement.
    pub landlock: landlock::LandlockReport,
}

/// Why the sandbox could not be entered. The process must not go on serving.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A hardening step failed.
    #[error(transparent)]
    Harden(#[from] harden::HardenError),
    /// Landlock failed or is not fully enforced when required.
    #[error(transparent)]
    Landlock(#[from] landlock::LandlockError),
    /// seccomp failed.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// Enter the sandbox, in order: panic hook (abort), not dumpable, no-new-privs, limits
/// (core 0), SIGXFSZ ignored, fault signals that tell the truth
/// ([`harden::external_faults_end_the_process`]; the filter must allow `rt_sigaction`
/// and `tgkill` for SIGSEGV and SIGBUS), stray descriptors closed, environment cleared, Landlock,
/// seccomp. Call single-threaded, after every file and socket the process needs is open.
///
/// # Errors
/// [`SandboxError`] at the first step that fails.
pub fn enter(profile: &Profile<'_>) -> Result<Report, SandboxError> {
    harden::abort_on_panic();
    harden::set_not_dumpable()?;
    harden::set_no_new_privs()?;
    harden::apply_limits(&profile.limits)?;
    harden::ignore_sigxfsz()?;
    harden::external_faults_end_the_process()?;
    harden::close_stray_fds(profile.keep_fds)?;
    harden::clear_env(profile.keep_env)?;
    let landlock = landlock::deny_all(profile.require_landlock)?;
    seccomp::install(profile.seccomp)?;
    Ok(Report { landlock })
}

/// Everything [`enter_service`] needs: the profile of a long-running, multi-threaded
/// networked service (the peer).
#[derive(Clone, Debug)]
pub struct ServiceProfile<'a> {
    /// Descriptors to keep open (besides 0, 1, 2).
    pub keep_fds: &'a [RawFd],
    /// Environment variables to keep.
    pub keep_env: &'a [&'a str],
    /// RLIMIT_NOFILE (no RLIMIT_NPROC: threads count against it; the filter refuses fork).
    pub nofile: u64,
    /// RLIMIT_FSIZE.
    pub fsize: u64,
    /// The paths Landlock leaves reachable.
    pub fs: landlock::FsAccess<'a>,
    /// Fail unless Landlock is fully enforced.
    pub require_landlock: bool,
    /// seccomp programs, installed in this order (a later one may only narrow: the
    /// kernel applies the strictest answer of all installed filters).
    pub seccomp: &'a [&'a [seccomp::Instruction]],
}

/// Enter a service's sandbox, in order: panic hook (abort), not dumpable, no-new-privs,
/// limits (core 0, nofile, fsize), SIGXFSZ ignored, stray descriptors closed, environment
/// cleared, Landlock limited to `profile.fs`, the seccomp programs. Call before any
/// thread is started (before the async runtime): Landlock and seccomp bind this thread
/// and every thread it creates later, so the whole process is inside.
///
/// # Errors
/// [`SandboxError`] at the first step that fails.
pub fn enter_service(profile: &ServiceProfile<'_>) -> Result<Report, SandboxError> {
    harden::abort_on_panic();
    harden::set_not_dumpable()?;
    harden::set_no_new_privs()?;
    let _ = harden::apply_file_limits(profile.nofile, profile.fsize)?;
    harden::ignore_sigxfsz()?;
    harden::close_stray_fds(profile.keep_fds)?;
    harden::clear_env(profile.keep_env)?;
    let landlock = landlock::restrict_fs(&profile.fs, profile.require_landlock)?;
    for program in profile.seccomp {
        seccomp::install(program)?;
    }
    Ok(Report { landlock })
}
