//! systemd socket activation (`sd_listen_fds`), implemented directly: when
//! `LISTEN_PID` is this process and `LISTEN_FDS` >= 1, descriptor 3 is a listening
//! socket handed over by the service manager. The variables are removed so nothing
//! else (and no child) takes the descriptor again.

#![allow(unsafe_code)]

use std::os::fd::{FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why the passed descriptors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// LISTEN_FDS is not a number, or more than one socket was passed.
    #[error(
        "LISTEN_FDS={0:?}: cvx-signer takes exactly one socket (one ListenStream= in its .socket unit)"
    )]
    Count(String),
    /// Descriptor 3 is not open.
    #[error("LISTEN_FDS is set but descriptor 3 is not open")]
    NotOpen,
    /// Changing the environment needs a single thread.
    #[error(transparent)]
    Harden(#[from] crate::harden::HardenError),
}

/// The socket passed by the service manager, if any (`Ok(None)` when not activated).
/// Only the first call can return a descriptor.
///
/// # Errors
/// [`ActivationError`] when the variables are set for this process but unusable.
pub fn take_listen_fd() -> Result<Option<OwnedFd>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let ours = pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    if !ours {
        return Ok(None);
    }
    crate::harden::clear_env_vars(&["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"])?;
    let count = fds.clone().unwrap_or_default();
    if count.trim() != "1" {
        return Err(ActivationError::Count(count));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: F_GETFD only queries the descriptor's flags.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) } < 0 {
        return Err(ActivationError::NotOpen);
    }
    // SAFETY: the service manager passed descriptor 3 to this process (LISTEN_PID is
    // ours) and nothing in this process owns it yet: the TAKEN flag makes this the only
    // place that takes ownership, once, and the variables are gone.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) }))
}
