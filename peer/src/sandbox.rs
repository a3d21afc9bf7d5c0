//! The peer's own sandbox: what `cvx-peer run` enters after reading its config and
//! before the async runtime starts (so every runtime thread inherits it), and what the
//! hidden `cvx-peer sandbox-probe` test hook enters before its one probed action.
//!
//! * Landlock: read-write beneath `data_dir` (the store, the pid file), read of the
//!   genesis file and of the resolver's files (`/etc/hosts`, `/etc/resolv.conf`, ...,
//!   when present: bootstrap and on-chain hosts may be names), nothing else. TCP is not
//!   restricted (the peer dials peers and listens). A pathname Unix socket (the signer's)
//!   stays connectable: Landlock up to ABI 7 does not mediate `connect()` to one.
//! * seccomp: two programs from `policies/seccomp/cvx-peer.json`, compiled at build
//!   time by the same code as the signer's: `cvx-peer-clone3` answers `clone3` with
//!   ENOSYS (its flags are in memory, beyond BPF's reach, so glibc falls back to
//!   `clone`), then the `cvx-peer` allowlist with a kill-process default, which lets
//!   `clone` create threads only (CLONE_THREAD), never processes, and maps nothing
//!   executable.
//! * Panics abort, not dumpable, no core files, no-new-privs, RLIMIT_NOFILE sized from
//!   the config, RLIMIT_FSIZE 1 TiB, stray descriptors closed, environment cleared.

use std::path::{Path, PathBuf};

use cvx_sandbox::landlock::FsAccess;
use cvx_sandbox::probe::Forbidden;
use cvx_sandbox::{Report, SandboxError, ServiceProfile};

use crate::config::Settings;

include!(concat!(env!("OUT_DIR"), "/seccomp_filter.rs"));

/// Largest file the peer may write (the store): 1 TiB. Past it, writes fail with EFBIG
/// (SIGXFSZ is ignored), which the store reports as a write error.
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// Descriptors beyond the peer and client connections: the store, listeners, the
/// signer, epoll and wake-up descriptors, resolver sockets (the HTTP API's connections are
/// counted apart: `crate::api::Limits::fds`).
pub const SPARE_FDS: u64 = 256;

/// Files the C library's resolver reads when a host is a name; allowed read-only when
/// present.
pub const RESOLVER_FILES: [&str; 5] = [
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
];

/// Why the peer's sandbox could not be entered. The peer must not start.
#[derive(Debug, thiserror::Error)]
pub enum PeerSandboxError {
    /// The data directory could not be created (Landlock needs it to exist).
    #[error(
        "cannot create the data directory {path}: {source}; check `data_dir` and its parent's permissions"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A sandbox step failed.
    #[error(
        "entering the peer's sandbox failed: {0}; see docs/operations.md, \"Peer sandbox\" \
         (`sandbox = false` in the config turns it off, for debugging only)"
    )]
    Enter(#[from] SandboxError),
}

/// The RLIMIT_NOFILE the peer asks for under `settings`.
#[must_use]
pub fn nofile(settings: &Settings) -> u64 {
    let conns = settings.max_connections
        + settings.target_outgoing
        + settings
            .api_listen
            .map_or(0, |_| crate::api::Limits::default().fds());
    u64::try_from(conns).unwrap_or(u64::MAX / 2) + SPARE_FDS
}

/// Enter the peer's sandbox under `settings`, single-threaded, before the runtime
/// starts; logs what was achieved. With `sandbox = false` it does nothing but warn
/// loudly, and returns `None`.
///
/// # Errors
/// [`PeerSandboxError`]; the caller exits with `Exit::Sandbox`.
pub fn enter(settings: &Settings) -> Result<Option<Report>, PeerSandboxError> {
    if !settings.sandbox {
        tracing::warn!(
            "SANDBOX OFF (`sandbox = false` in the config): no Landlock, no seccomp; a \
             compromise of this peer reaches everything its user can. Use only to debug, \
             then turn it back on"
        );
        return Ok(None);
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| PeerSandboxError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let read_write = [settings.data_dir.as_path()];
    let read_only = [settings.genesis.as_path()];
    let resolver = RESOLVER_FILES.map(Path::new);
    let report = cvx_sandbox::enter_service(&ServiceProfile {
        keep_fds: &[],
        keep_env: &[],
        nofile: nofile(settings),
        fsize: MAX_FILE_SIZE,
        fs: FsAccess {
            read_write: &read_write,
            read_only: &read_only,
            read_if_present: &resolver,
        },
        require_landlock: settings.require_landlock,
        seccomp: &[CLONE3_FILTER, FILTER],
    })?;
    tracing::info!(
        landlock_abi = report.landlock.kernel_abi,
        landlock = report.landlock.enforcement.name(),
        seccomp = "kill-process allowlist",
        data_dir = %settings.data_dir.display(),
        "sandbox entered"
    );
    Ok(Some(report))
}

/// One action of the `sandbox-probe` test hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// What a peer does while serving: threads, a blocking task, TCP listen/connect on
    /// localhost, a file created, synced, renamed and removed in `data_dir`, the genesis
    /// read. Fails if any step fails.
    Ok,
    /// Read the file at the path (outside `data_dir`: must be denied).
    Read(PathBuf),
    /// Create the file at the path (outside `data_dir`: must be denied).
    Write(PathBuf),
    /// `connect()` to the configured signer socket (must stay allowed).
    ConnectSigner,
    /// Resolve `HOST:PORT` with the C library's resolver, as dialling a named host does.
    Resolve(String),
    /// A call the filter must kill the process for, made from a runtime worker thread.
    Forbidden(Forbidden),
    /// Panic in a runtime task: must abort (SIGABRT: the hook is installed before the
    /// filter, so the panic path makes no forbidden call).
    Panic,
}

impl ProbeAction {
    /// Parse `ACTION [PATH]`.
    ///
    /// # Errors
    /// A usage message.
    pub fn parse(action: &str, path: Option<&str>) -> Result<Self, String> {
        let need_path = || {
            path.map(PathBuf::from)
                .ok_or_else(|| format!("sandbox-probe {action} needs a PATH"))
        };
        match action {
            "ok" => Ok(Self::Ok),
            "read" => Ok(Self::Read(need_path()?)),
            "write" => Ok(Self::Write(need_path()?)),
            "connect-signer" => Ok(Self::ConnectSigner),
            "panic" => Ok(Self::Panic),
            "resolve" => Ok(Self::Resolve(
                path.map(str::to_owned)
                    .ok_or_else(|| "sandbox-probe resolve needs HOST:PORT".to_owned())?,
            )),
            other => Forbidden::ALL
                .into_iter()
                .filter(|f| !matches!(f, Forbidden::SocketInet | Forbidden::Openat))
                .find(|f| f.name() == other)
                .map(Self::Forbidden)
                .ok_or_else(|| {
                    format!(
                        "unknown probe action {other}: ok, read PATH, write PATH, \
                         connect-signer, resolve HOST:PORT, panic, execve, ptrace, mmap-exec, mprotect-exec, fork"
                    )
                }),
        }
    }
}

/// What a probe found (the action returned; a killed process returns nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The action succeeded.
    Allowed,
    /// The action failed with this OS error.
    Denied(String),
    /// A forbidden call returned instead of killing the process (a sandbox failure).
    NotKilled(i64),
}

/// Run `action` inside the (already entered) sandbox, on the runtime.
pub async fn probe(action: ProbeAction, settings: &Settings) -> ProbeOutcome {
    let r: std::io::Result<()> = match action {
        ProbeAction::Ok => serve_like(settings).await,
        ProbeAction::Read(p) => std::fs::read(&p).map(|_| ()),
        ProbeAction::Write(p) => std::fs::write(&p, b"probe\n"),
        ProbeAction::ConnectSigner => tokio::net::UnixStream::connect(&settings.signer_socket)
            .await
            .map(|_| ()),
        ProbeAction::Resolve(host) => match tokio::net::lookup_host(host.as_str()).await {
            Ok(mut addrs) => addrs
                .next()
                .map(|_| ())
                .ok_or_else(|| std::io::Error::other(format!("{host}: no address"))),
            Err(e) => Err(e),
        },
        ProbeAction::Panic => {
            let r = tokio::spawn(async { panic!("deliberate panic inside the sandbox") }).await;
            return ProbeOutcome::NotKilled(i64::from(r.is_err()));
        }
        ProbeAction::Forbidden(f) => {
            let r = tokio::task::spawn_blocking(move || cvx_sandbox::probe::attempt(f)).await;
            return ProbeOutcome::NotKilled(r.unwrap_or(i64::MIN));
        }
    };
    match r {
        Ok(()) => ProbeOutcome::Allowed,
        Err(e) => ProbeOutcome::Denied(e.to_string()),
    }
}

async fn serve_like(settings: &Settings) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await?;
        s.write_all(&buf).await?;
        Ok::<_, std::io::Error>(())
    });
    let mut c = tokio::net::TcpStream::connect(addr).await?;
    c.write_all(b"hello").await?;
    let mut back = [0u8; 5];
    c.read_exact(&mut back).await?;
    server.await.map_err(std::io::Error::other)??;
    let dir = settings.data_dir.clone();
    let genesis = settings.genesis.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let tmp = dir.join("probe.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(b"probe")?;
        f.sync_data()?;
        f.set_len(3)?;
        drop(f);
        let done = dir.join("probe.done");
        std::fs::rename(&tmp, &done)?;
        std::fs::remove_file(&done)?;
        std::fs::read(&genesis).map(|_| ())
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy's peer filter: kill by default, a reason per rule, no exec/ptrace/
    /// process-creation calls, mmap/mprotect never executable, clone threads only.
    #[test]
    fn policy_allows_no_dangerous_call() {
        let text = include_str!("../../policies/seccomp/cvx-peer.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let f = &v["cvx-peer"];
        assert_eq!(f["default_action"], "kill_process");
        let rules = f["filter"].as_array().unwrap();
        let names: Vec<&str> = rules
            .iter()
            .map(|r| r["syscall"].as_str().unwrap())
            .collect();
        for forbidden in [
            "execve",
            "execveat",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kexec_load",
            "kexec_file_load",
            "mount",
            "umount2",
            "bpf",
            "fork",
            "vfork",
            "init_module",
            "finit_module",
            "setuid",
            "unshare",
            "setns",
            "pivot_root",
            "chroot",
            "perf_event_open",
            "userfaultfd",
            "io_uring_setup",
            "keyctl",
            "add_key",
            "personality",
            "seccomp",
            "memfd_create",
        ] {
            assert!(
                !names.contains(&forbidden),
                "{forbidden} must not be allowed"
            );
        }
        for exec_guarded in ["mmap", "mprotect"] {
            let r = rules.iter().find(|r| r["syscall"] == exec_guarded).unwrap();
            assert_eq!(
                r["args"][0]["op"]["masked_eq"], 4,
                "{exec_guarded} must exclude PROT_EXEC"
            );
        }
        let prctl = rules.iter().find(|r| r["syscall"] == "prctl").unwrap();
        assert_eq!(prctl["args"][0]["val"], 15, "prctl: PR_SET_NAME only");
        let clone = rules.iter().find(|r| r["syscall"] == "clone").unwrap();
        assert_eq!(
            clone["args"][0]["op"]["masked_eq"], 0x1_0000,
            "threads only"
        );
        assert_eq!(clone["args"][0]["val"], 0x1_0000, "threads only");
        assert!(
            names.contains(&"clone3"),
            "clone3 passes the allowlist so the clone3 filter's ENOSYS is the answer"
        );
        let c3 = &v["cvx-peer-clone3"];
        assert_eq!(c3["default_action"], "allow");
        assert_eq!(c3["filter_action"]["errno"], 38, "clone3 -> ENOSYS");
        assert_eq!(c3["filter"].as_array().unwrap().len(), 1);
        assert_eq!(c3["filter"][0]["syscall"], "clone3");
        assert!(!FILTER.is_empty() && !CLONE3_FILTER.is_empty());
    }

    #[test]
    fn probe_actions_parse() {
        assert_eq!(ProbeAction::parse("ok", None), Ok(ProbeAction::Ok));
        assert!(ProbeAction::parse("read", None).is_err());
        assert_eq!(
            ProbeAction::parse("execve", None),
            Ok(ProbeAction::Forbidden(Forbidden::Execve))
        );
        assert_eq!(
            ProbeAction::parse("fork", None),
            Ok(ProbeAction::Forbidden(Forbidden::Fork))
        );
        assert!(
            ProbeAction::parse("socket-inet", None).is_err(),
            "the peer may open TCP sockets"
        );
    }
}
