//! cvx-sandbox: the OS-level protections of cvx's key-holding processes, behind a safe
//! API.
//!
//! * [`secret`] — [`Locked<T>`](secret::Locked): a value in locked, dump-excluded memory
//!   (memfd_secret, or mlock + MADV_DONTDUMP + MADV_WIPEONFORK), wiped on drop;
//! * [`harden`] — not dumpable, RLIMIT_CORE 0, tight limits, stray fds closed, empty
//!   environment, panics abort;
//! * [`landlock`] — deny all filesystem and network access, report ABI and enforcement;
//! * [`seccomp`] — install a kill-process allowlist compiled from a policy file;
//! * [`activation`] — take a systemd-activated listening socket;
//! * [`probe`] — deliberately forbidden calls, for the test program that proves the filter kills.
//!
//! [`enter`] runs them in the one safe order. With etch's map module, this crate holds
//! cvx's only `unsafe` code, in `secret.rs`, `harden.rs`, `activation.rs` and `probe.rs`, each block with a SAFETY
//! comment.

pub mod activation;
pub mod harden;
pub mod landlock;
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
/// (core 0), SIGXFSZ ignored, stray descriptors closed, environment cleared, Landlock,
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
    harden::close_stray_fds(profile.keep_fds)?;
    harden::clear_env(profile.keep_env)?;
    let landlock = landlock::deny_all(profile.require_landlock)?;
    seccomp::install(profile.seccomp)?;
    Ok(Report { landlock })
}
