//! Deliberately forbidden system calls, for the test program that proves the sandbox
//! kills (like Firecracker's "malicious" binary). Each function makes exactly the
//! named call with raw arguments; under the signer's filter the process dies by
//! SIGSYS before the call returns.

#![allow(unsafe_code)]

/// A forbidden action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    /// `socket(AF_INET, SOCK_STREAM, 0)`.
    SocketInet,
    /// `openat(AT_FDCWD, "/etc/hostname", O_RDONLY)`.
    Openat,
    /// `execve("/bin/true", ["true"], [])`.
    Execve,
    /// `ptrace(PTRACE_TRACEME)`.
    Ptrace,
    /// `mmap(NULL, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`.
    MmapExec,
    /// `mprotect` of a fresh page to PROT_EXEC.
    MprotectExec,
    /// `clone(SIGCHLD)`: a new process (fork), not a thread.
    Fork,
}

impl Forbidden {
    /// Every action.
    pub const ALL: [Self; 7] = [
        Self::SocketInet,
        Self::Openat,
        Self::Execve,
        Self::Ptrace,
        Self::MmapExec,
        Self::MprotectExec,
        Self::Fork,
    ];

    /// Command-line name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SocketInet => "socket-inet",
            Self::Openat => "openat",
            Self::Execve => "execve",
            Self::Ptrace => "ptrace",
            Self::MmapExec => "mmap-exec",
            Self::MprotectExec => "mprotect-exec",
            Self::Fork => "fork",
        }
    }
}

/// Make the call; returns the raw result (only reached when the sandbox allowed it).
#[must_use]
pub fn attempt(action: Forbidden) -> i64 {
    match action {
        Forbidden::SocketInet => {
            // SAFETY: socket() creates a descriptor; no memory is touched.
            i64::from(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) })
        }
        Forbidden::Openat => {
            // SAFETY: a NUL-terminated static path; the descriptor (if any) is leaked.
            i64::from(unsafe {
                libc::openat(libc::AT_FDCWD, c"/etc/hostname".as_ptr(), libc::O_RDONLY)
            })
        }
        Forbidden::Execve => {
            let argv = [c"true".as_ptr(), core::ptr::null()];
            let envp = [core::ptr::null()];
            // SAFETY: NUL-terminated path, NULL-terminated argv and envp arrays that
            // outlive the call.
            i64::from(unsafe { libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), envp.as_ptr()) })
        }
        // SAFETY: PTRACE_TRACEME takes no pointers.
        Forbidden::Ptrace => unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) },
        Forbidden::MmapExec => {
            // SAFETY: a fresh anonymous mapping chosen by the kernel (leaked).
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            p as i64
        }
        Forbidden::MprotectExec => {
            // SAFETY: a fresh anonymous mapping chosen by the kernel (leaked).
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    4096,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return -1;
            }
            // SAFETY: changing the protection of the page mapped just above, which no
            // Rust reference points into.
            i64::from(unsafe { libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC) })
        }
        Forbidden::Fork => {
            // SAFETY: a raw clone without CLONE_VM gives the child a copy of the address
            // space; if the sandbox let it through, the child leaves at once with
            // _exit (no destructors, no shared state touched) and the parent reports.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    libc::c_long::from(libc::SIGCHLD),
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if r == 0 {
                // SAFETY: _exit ends the child without running anything else.
                unsafe { libc::_exit(0) };
            }
            r
        }
    }
}

/// A real invalid memory access (a read of address 8): under the sandbox the process
/// must end with SIGSEGV, not SIGSYS. Returns only if the read somehow succeeded.
#[must_use]
pub fn segfault() -> u8 {
    let p = core::ptr::without_provenance::<u8>(8);
    // SAFETY: deliberately unsound: the page at address 0 is never mapped, so the read
    // faults and the process ends by SIGSEGV; nothing after it runs.
    unsafe { core::ptr::read_volatile(p) }
}

/// Recurse until the main thread's stack overflows: std's handler must print "has
/// overflowed its stack" and abort (SIGABRT), not die by SIGSYS. Never returns normally
/// (the depth parameter keeps the compiler from turning it into a loop).
#[must_use]
#[allow(unconditional_recursion)]
pub fn overflow_stack(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 512]);
    let below = overflow_stack(core::hint::black_box(depth + 1));
    core::hint::black_box(frame[usize::try_from(depth % 512).unwrap_or(0)]).wrapping_add(below)
}
