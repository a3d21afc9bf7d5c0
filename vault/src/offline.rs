//! Offline by construction, part two: the vault's own seccomp filter.
//!
//! Part one is the dependency graph (no network crate is linked; a test over
//! `cargo metadata` enforces it). This filter makes the kernel refuse, for the whole
//! process and everything it might exec, every system call that creates or uses a
//! socket endpoint, and io_uring (which can create sockets without `socket(2)`):
//!
//! | syscall | why refused |
//! |---|---|
//! | socket, socketpair | no socket may ever exist in the vault |
//! | connect, bind, listen, accept, accept4 | an inherited socket fd must not be used either |
//! | io_uring_setup | io_uring can open sockets (IORING_OP_SOCKET) behind the filter's back |
//!
//! Action: the call fails with `EACCES`; everything else is allowed (default allow).
//! Why an error and not a kill: the vault is an interactive tool whose operations
//! write files; glibc's NSS may probe nscd over a Unix socket (e.g. for user names),
//! and a kill there would abort a half-finished command, while `EACCES` makes such a
//! library fall back to files. The guarantee is the same — no socket can be created or
//! connected — and acceptance test 5 checks under strace that the vault never even
//! tries. The filter is installed with `PR_SET_NO_NEW_PRIVS` and TSYNC (all threads).

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::error::{Result, VaultError};

/// The refused system calls (name, number) on this architecture. The numbers are the
/// kernel ABI; a unit test checks them against libc's.
#[cfg(target_arch = "x86_64")]
pub const REFUSED: &[(&str, i64)] = &[
    ("socket", 41),
    ("connect", 42),
    ("accept", 43),
    ("bind", 49),
    ("listen", 50),
    ("socketpair", 53),
    ("accept4", 288),
    ("io_uring_setup", 425),
];

/// The refused system calls (name, number) on this architecture.
#[cfg(target_arch = "aarch64")]
pub const REFUSED: &[(&str, i64)] = &[
    ("socket", 198),
    ("socketpair", 199),
    ("bind", 200),
    ("listen", 201),
    ("accept", 202),
    ("connect", 203),
    ("accept4", 242),
    ("io_uring_setup", 425),
];

/// The errno a refused call returns.
pub const REFUSAL_ERRNO: u32 = 13; // EACCES

fn program() -> Result<BpfProgram> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| VaultError::Sandbox(e.to_string()))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        REFUSED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(REFUSAL_ERRNO),
        arch,
    )
    .map_err(|e| VaultError::Sandbox(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| VaultError::Sandbox(e.to_string()))
}

/// Install the filter on every thread of the process (the binary calls this first).
///
/// # Errors
/// [`VaultError::Sandbox`] — the binary then refuses to run.
pub fn lockdown() -> Result<()> {
    let prog = program()?;
    seccompiler::apply_filter_all_threads(&prog).map_err(|e| VaultError::Sandbox(e.to_string()))
}

/// Install the filter on the calling thread only (tests: prove it refuses sockets
/// without locking down the whole test process).
///
/// # Errors
/// [`VaultError::Sandbox`].
pub fn lockdown_this_thread() -> Result<()> {
    let prog = program()?;
    seccompiler::apply_filter(&prog).map_err(|e| VaultError::Sandbox(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_match_libc() {
        let libc_numbers: &[(&str, i64)] = &[
            ("socket", libc::SYS_socket),
            ("connect", libc::SYS_connect),
            ("accept", libc::SYS_accept),
            ("bind", libc::SYS_bind),
            ("listen", libc::SYS_listen),
            ("socketpair", libc::SYS_socketpair),
            ("accept4", libc::SYS_accept4),
            ("io_uring_setup", libc::SYS_io_uring_setup),
        ];
        for (name, nr) in REFUSED {
            let expected = libc_numbers.iter().find(|(n, _)| n == name).unwrap().1;
            assert_eq!(*nr, expected, "{name}");
        }
        assert_eq!(REFUSAL_ERRNO, libc::EACCES as u32);
    }

    #[test]
    fn the_filter_refuses_sockets_on_its_thread() {
        std::thread::spawn(|| {
            // Before: a socket pair can be made.
            assert!(std::os::unix::net::UnixStream::pair().is_ok());
            lockdown_this_thread().unwrap();
            let e = std::os::unix::net::UnixStream::pair().unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES));
            let e = std::net::TcpStream::connect("127.0.0.1:9").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES));
            let e = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES));
            let e = std::os::unix::net::UnixListener::bind("/tmp/cvx-vault-should-not-exist.sock")
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        })
        .join()
        .unwrap();
        // Other threads are untouched.
        assert!(std::os::unix::net::UnixStream::pair().is_ok());
    }
}
