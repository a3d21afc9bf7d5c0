//! Process hardening: not dumpable, no core files, tight resource limits, no stray file
//! descriptors, an empty environment, and panics that abort.

#![allow(unsafe_code)]

use std::io::Write as _;
use std::os::fd::RawFd;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Why a hardening step failed.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    /// prctl failed.
    #[error("prctl({what}) failed: {source}")]
    Prctl {
        /// Which setting.
        what: &'static str,
        /// The OS error.
        source: nix::Error,
    },
    /// setrlimit failed.
    #[error("setrlimit({what}) failed: {source}")]
    Rlimit {
        /// Which limit.
        what: &'static str,
        /// The OS error.
        source: nix::Error,
    },
    /// Could not close stray descriptors.
    #[error("closing stray file descriptors failed: {0}")]
    CloseFds(std::io::Error),
    /// A step that must run single-threaded was called with other threads alive.
    #[error("{0} must run while the process has one thread (it has more)")]
    Threads(&'static str),
    /// Could not change a signal disposition.
    #[error("cannot ignore SIGXFSZ: {0}")]
    Signal(nix::Error),
}

/// Resource limits applied by [`apply_limits`] (soft = hard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_NOFILE: highest fd number + 1 the process may open.
    pub nofile: u64,
    /// RLIMIT_NPROC: processes/threads of this uid (0: no fork; root is exempt).
    pub nproc: u64,
    /// RLIMIT_FSIZE: largest file the process may write (the audit log grows).
    pub fsize: u64,
}

/// `PR_SET_DUMPABLE 0`: no core dumps, /proc/PID/{mem,maps,environ} owned by root and
/// unreadable by the same uid, no ptrace attach by the same uid.
///
/// # Errors
/// [`HardenError::Prctl`].
pub fn set_not_dumpable() -> Result<(), HardenError> {
    nix::sys::prctl::set_dumpable(false).map_err(|source| HardenError::Prctl {
        what: "PR_SET_DUMPABLE",
        source,
    })
}

/// `PR_SET_NO_NEW_PRIVS 1` (also implied by seccomp and Landlock).
///
/// # Errors
/// [`HardenError::Prctl`].
pub fn set_no_new_privs() -> Result<(), HardenError> {
    nix::sys::prctl::set_no_new_privs().map_err(|source| HardenError::Prctl {
        what: "PR_SET_NO_NEW_PRIVS",
        source,
    })
}

/// RLIMIT_CORE 0 plus the given limits.
///
/// # Errors
/// [`HardenError::Rlimit`] naming the limit.
pub fn apply_limits(limits: &Limits) -> Result<(), HardenError> {
    let set =
        |what, r, v: u64| setrlimit(r, v, v).map_err(|source| HardenError::Rlimit { what, source });
    set("RLIMIT_CORE", Resource::RLIMIT_CORE, 0)?;
    set("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE, limits.nofile)?;
    set("RLIMIT_NPROC", Resource::RLIMIT_NPROC, limits.nproc)?;
    set("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE, limits.fsize)?;
    Ok(())
}

/// RLIMIT_CORE 0, and RLIMIT_NOFILE / RLIMIT_FSIZE lowered to `nofile` / `fsize` (soft =
/// hard; a hard limit already below is kept, never raised), with no process-count limit:
/// for a multi-threaded service (RLIMIT_NPROC counts threads) whose seccomp filter
/// refuses fork instead. Returns the NOFILE and FSIZE limits now in force.
///
/// # Errors
/// [`HardenError::Rlimit`] naming the limit.
pub fn apply_file_limits(nofile: u64, fsize: u64) -> Result<(u64, u64), HardenError> {
    let lower = |what, r, v: u64| {
        let err = |source| HardenError::Rlimit { what, source };
        let (_, hard) = getrlimit(r).map_err(err)?;
        let v = v.min(hard);
        setrlimit(r, v, v).map_err(err)?;
        Ok(v)
    };
    lower("RLIMIT_CORE", Resource::RLIMIT_CORE, 0)?;
    let nofile = lower("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE, nofile)?;
    let fsize = lower("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE, fsize)?;
    Ok((nofile, fsize))
}

/// Ignore SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG (an error the caller
/// handles) instead of killing the process.
///
/// # Errors
/// [`HardenError::Signal`].
pub fn ignore_sigxfsz() -> Result<(), HardenError> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_IGN runs no handler code, so no async-signal-safety rule
    // can be broken.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }
        .map(|_| ())
        .map_err(HardenError::Signal)
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(usize::MAX)
}

/// Remove every environment variable except those named in `keep`.
///
/// # Errors
/// [`HardenError::Threads`] when other threads are alive (changing the environment
/// is only sound single-threaded).
pub fn clear_env(keep: &[&str]) -> Result<(), HardenError> {
    if threads() != 1 {
        return Err(HardenError::Threads("clearing the environment"));
    }
    let names: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
    for k in names {
        if !keep.iter().any(|w| k == *w) {
            // SAFETY: the process is single-threaded (checked above), so no other
            // thread can read the environment concurrently.
            unsafe { std::env::remove_var(&k) };
        }
    }
    Ok(())
}

/// Remove the named environment variables.
///
/// # Errors
/// [`HardenError::Threads`] when other threads are alive.
pub fn clear_env_vars(names: &[&str]) -> Result<(), HardenError> {
    if threads() != 1 {
        return Err(HardenError::Threads("changing the environment"));
    }
    for k in names {
        // SAFETY: single-threaded (checked above): no concurrent environment access.
        unsafe { std::env::remove_var(k) };
    }
    Ok(())
}

/// Close every descriptor above 2 that is not in `keep`.
///
/// Contract: call during single-threaded start-up, when every descriptor the process
/// still owns (a `File`, a listener, ...) is listed in `keep`; anything else is a stray
/// (inherited, or leaked by a library) and is closed.
///
/// # Errors
/// [`HardenError::CloseFds`] when `close_range` fails, or other threads are alive.
pub fn close_stray_fds(keep: &[RawFd]) -> Result<(), HardenError> {
    if threads() != 1 {
        return Err(HardenError::Threads("closing stray descriptors"));
    }
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 3u32;
    for k in keep.iter().copied().filter(|k| *k >= 3).chain([u32::MAX]) {
        if k > from {
            let last = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range only closes descriptors; by this function's contract
            // none in the range is owned by a live Rust object.
            let r = unsafe { libc::syscall(libc::SYS_close_range, from, last, 0u32) };
            if r != 0 {
                return Err(HardenError::CloseFds(std::io::Error::last_os_error()));
            }
        }
        from = k.saturating_add(1);
    }
    Ok(())
}

/// Make every panic print one line to stderr and abort (SIGABRT), with no backtrace
/// (capturing one opens files, which the sandbox forbids, and would die by SIGSYS).
/// Install this before the seccomp filter.
pub fn abort_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "fatal: panic: {info}; aborting");
        std::process::abort();
    }));
}
