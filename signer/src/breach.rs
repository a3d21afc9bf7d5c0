//! The breach button's second path: SIGUSR1 to the serving signer (see
//! docs/signer.md "Lock"). `cvx-signer lock` uses it when the socket cannot take its
//! request (every slot held by a client of the signer's own admin uid, or a signer too
//! busy to answer). Only root or the signer's own uid may send the signal (the kernel's
//! rule), so a peer of another uid can neither block nor abuse it; its only effect is
//! the durable lock.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cvx_protocol::signer_wire::{self, STATE_FILE_LEN};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{getsockopt, sockopt};
use nix::unistd::Pid;

/// Why the signal path failed.
#[derive(Debug, thiserror::Error)]
pub enum BreachError {
    /// The serving process is unknown.
    #[error("cannot find the signer's process through {path}: {why}")]
    NoPid {
        /// The socket.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The socket's listener is not cvx-signer.
    #[error(
        "the process {pid} listening on the socket is {comm:?}, not cvx-signer; no signal sent"
    )]
    NotSigner {
        /// Its pid.
        pid: i32,
        /// Its name.
        comm: String,
    },
    /// kill failed.
    #[error(
        "cannot send SIGUSR1 to the signer (pid {pid}): {source} (only root or the signer's user may)"
    )]
    Kill {
        /// Its pid.
        pid: i32,
        /// The OS error.
        source: nix::Error,
    },
    /// Sent, but the lock was not seen in the state file.
    #[error(
        "sent SIGUSR1 to the signer (pid {pid}), but could not confirm the lock in its state file {state}: check `cvx-signer status` and the signer's log"
    )]
    Unconfirmed {
        /// Its pid.
        pid: i32,
        /// The state file looked at ("unknown" when none was found).
        state: String,
    },
}

/// A lock made by signal.
#[derive(Debug)]
pub struct SignalLock {
    /// The signer's pid.
    pub pid: i32,
    /// The state file whose current slot says locked.
    pub state: PathBuf,
}

/// The pid of the process that listens on `socket`: `SO_PEERCRED` of a connection,
/// which names the process that called `listen()` (a connection beyond the signer's
/// caps is closed at once, but its credentials are already there).
fn listener_pid(socket: &Path) -> Result<i32, BreachError> {
    let no = |why: String| BreachError::NoPid {
        path: socket.to_owned(),
        why,
    };
    let s = UnixStream::connect(socket).map_err(|e| no(format!("connect: {e}")))?;
    let cred =
        getsockopt(&s, sockopt::PeerCredentials).map_err(|e| no(format!("SO_PEERCRED: {e}")))?;
    let pid = cred.pid();
    if pid <= 1 {
        return Err(no(
            "the socket belongs to systemd (socket activation); send the signal yourself: \
             `systemctl kill -s USR1 cvx-signer.service`"
                .to_owned(),
        ));
    }
    Ok(pid)
}

/// Does the state file at `path` say locked (current slot)?
fn state_locked(path: &Path) -> Option<bool> {
    let bytes = std::fs::read(path).ok()?;
    signer_wire::current_slot(&bytes)
        .ok()
        .map(|(slot, _, _)| slot.record.locked)
}

/// The signer's state file: `state` when known (from the config), else the open file
/// of `pid` that decodes as a state file (readable by root).
fn find_state(pid: i32, state: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = state {
        return Some(p.to_owned());
    }
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == STATE_FILE_LEN as u64)
                && state_locked(p).is_some()
        })
}

/// Send SIGUSR1 to the signer listening on `socket` and wait (up to `wait`) until its
/// state file's current slot says locked.
///
/// # Errors
/// [`BreachError`].
pub fn lock_by_signal(
    socket: &Path,
    state: Option<&Path>,
    wait: Duration,
) -> Result<SignalLock, BreachError> {
    let pid = listener_pid(socket)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim();
    if comm != "cvx-signer" {
        return Err(BreachError::NotSigner {
            pid,
            comm: comm.to_owned(),
        });
    }
    let state = find_state(pid, state);
    kill(Pid::from_raw(pid), Signal::SIGUSR1)
        .map_err(|source| BreachError::Kill { pid, source })?;
    let unconfirmed = |state: &Option<PathBuf>| BreachError::Unconfirmed {
        pid,
        state: state
            .as_ref()
            .map_or("unknown".to_owned(), |p| p.display().to_string()),
    };
    let Some(path) = state.clone() else {
        return Err(unconfirmed(&state));
    };
    let deadline = Instant::now() + wait;
    loop {
        if state_locked(&path) == Some(true) {
            return Ok(SignalLock { pid, state: path });
        }
        if Instant::now() >= deadline {
            return Err(unconfirmed(&state));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
