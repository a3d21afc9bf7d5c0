//! Process hardening: not dumpable, no core files, tight resource limits, no stray file
//! descriptors, an empty environment, and panics that abort.

#![allow(unsafe_code)]

use std::io::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

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
    /// Could not install the fault-signal handler.
    #[error("cannot install the {0} handler: {1}")]
    FaultHandler(&'static str, std::io::Error),
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

/// The fault signals whose handler [`external_faults_end_the_process`] wraps.
const FAULT_SIGNALS: [(libc::c_int, &str); 2] =
    [(libc::SIGSEGV, "SIGSEGV"), (libc::SIGBUS, "SIGBUS")];

/// The handler (address) and `sa_flags` that were installed before ours, per entry of
/// [`FAULT_SIGNALS`] (std's stack-overflow handler). Written once before the filter,
/// read only by the signal handler.
static PREVIOUS: [(AtomicUsize, AtomicUsize); 2] = [
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
];

fn reset_to_default(sig: libc::c_int) {
    // SAFETY: a zeroed sigaction is a valid value (SIG_DFL, empty mask, no flags);
    // sigaction is async-signal-safe.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &raw const dfl, core::ptr::null_mut());
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let code = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
        unsafe { (*info).si_code }
    };
    // si_code <= 0 (SI_USER, SI_QUEUE, SI_TKILL): another process (or this one) sent
    // the signal; it is no fault of this process. Take the default action at once:
    // std's handler would treat it as a fault, restore the default and return, and a
    // sent signal does not recur, so the process would go on as if nothing happened.
    if code <= 0 {
        reset_to_default(sig);
        // SAFETY: tgkill to this very thread with the same signal; it stays pending
        // (blocked while this handler runs) and kills with the default action as soon
        // as the handler returns. getpid/gettid/tgkill are async-signal-safe.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::c_long::from(libc::getpid()),
                libc::c_long::from(libc::gettid()),
                libc::c_long::from(sig),
            );
        }
        return;
    }
    let slot = FAULT_SIGNALS.iter().position(|(s, _)| *s == sig);
    let (handler, flags) = slot.map_or((libc::SIG_DFL, 0), |i| {
        (
            PREVIOUS[i].0.load(Ordering::Relaxed),
            PREVIOUS[i].1.load(Ordering::Relaxed),
        )
    });
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // A real fault re-faults on return and then takes the default action.
        reset_to_default(sig);
        return;
    }
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    let siginfo = flags as libc::c_int & libc::SA_SIGINFO != 0;
    // SAFETY: `handler` is the address the previous sigaction held, of the type its
    // SA_SIGINFO flag says; calling it with the kernel's arguments is what the kernel
    // would have done. (std's handler prints "has overflowed its stack" and aborts for
    // a guard-page hit, else restores the default and returns to re-fault.)
    unsafe {
        if siginfo {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = core::mem::transmute(handler);
            f(sig);
        }
    }
}

/// Make fault signals tell the truth inside the sandbox: a SIGSEGV or SIGBUS *sent* by
/// another process ends this one with that signal at once, and a real fault goes to the
/// handler installed before (std's: a stack overflow prints "has overflowed its stack"
/// and aborts; any other fault restores the default and re-faults). The seccomp policy
/// must allow `rt_sigaction` and `tgkill` for these two signals. Call before the filter,
/// single-threaded.
///
/// # Errors
/// [`HardenError::FaultHandler`].
pub fn external_faults_end_the_process() -> Result<(), HardenError> {
    for (i, (sig, name)) in FAULT_SIGNALS.iter().enumerate() {
        // SAFETY: zeroed sigaction values are valid; `on_fault` is an extern "C"
        // handler of the SA_SIGINFO type that only makes async-signal-safe calls;
        // SA_ONSTACK keeps it on std's alternate stack (needed after a stack overflow).
        unsafe {
            let mut new: libc::sigaction = core::mem::zeroed();
            let mut old: libc::sigaction = core::mem::zeroed();
            new.sa_sigaction = on_fault as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut new.sa_mask);
            if libc::sigaction(*sig, &raw const new, &raw mut old) != 0 {
                return Err(HardenError::FaultHandler(
                    name,
                    std::io::Error::last_os_error(),
                ));
            }
            if old.sa_sigaction != on_fault as *const () as usize {
                PREVIOUS[i].0.store(old.sa_sigaction, Ordering::Relaxed);
                #[allow(clippy::cast_sign_loss)]
                PREVIOUS[i]
                    .1
                    .store(old.sa_flags as usize, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Set by the SIGUSR1 handler ([`lock_on_sigusr1`]): a lock was requested.
static LOCK_REQUESTED: AtomicBool = AtomicBool::new(false);
/// The uid that sent the last SIGUSR1.
static LOCK_SENDER: AtomicU32 = AtomicU32::new(u32::MAX);

extern "C" fn on_lock_signal(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    let uid = if info.is_null() {
        u32::MAX
    } else {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler; for a
        // signal sent by kill/tgkill the sender's uid is in the `_kill` member.
        unsafe { (*info).si_uid() }
    };
    // Only atomics: async-signal-safe, no system call.
    LOCK_SENDER.store(uid, Ordering::Relaxed);
    LOCK_REQUESTED.store(true, Ordering::Release);
}

/// The breach button by signal: SIGUSR1 (which only root, or a process of the same uid,
/// may send) sets a flag that [`take_lock_request`] reads; the handler makes no system
/// call, and `poll` returns EINTR so the serving loop sees it at once. Install before
/// the filter (the filter need only allow `rt_sigreturn`).
///
/// # Errors
/// [`HardenError::FaultHandler`] naming SIGUSR1.
pub fn lock_on_sigusr1() -> Result<(), HardenError> {
    // SAFETY: zeroed sigaction values are valid; `on_lock_signal` is an extern "C"
    // SA_SIGINFO handler that only stores to atomics.
    unsafe {
        let mut new: libc::sigaction = core::mem::zeroed();
        new.sa_sigaction = on_lock_signal as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&raw mut new.sa_mask);
        if libc::sigaction(libc::SIGUSR1, &raw const new, core::ptr::null_mut()) != 0 {
            return Err(HardenError::FaultHandler(
                "SIGUSR1",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// A lock requested by SIGUSR1 since the last call: the sender's uid.
#[must_use]
pub fn take_lock_request() -> Option<u32> {
    LOCK_REQUESTED
        .swap(false, Ordering::Acquire)
        .then(|| LOCK_SENDER.load(Ordering::Relaxed))
}
