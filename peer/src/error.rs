//! Why the peer could not start or stopped: [`NodeError`], which the store layer
//! ([`crate::persist`]) and the runtime ([`crate::node`]) both return, kept apart from
//! both so that neither depends on the other for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::signer_session::SignError;

/// Why the peer could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The genesis file is unreadable or invalid.
    #[error("genesis {path}: {problem}")]
    Genesis {
        /// File.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store could not be opened or written.
    #[error("store {path}: {problem} (check the data_dir; see docs/operations.md, Recovery)")]
    Store {
        /// File.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The signer could not be used at start (unreachable, another key or network...).
    #[error(transparent)]
    Signer(#[from] SignError),
    /// Cannot bind the port.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The consensus machine halted on a fork.
    #[error("consensus halted: {0} (see docs/operations.md, Security breach)")]
    Halted(String),
    /// Joining or resyncing by state sync failed (nothing of the new state was adopted: the
    /// store keeps what it had).
    #[error(
        "joining by state sync: {0} (check `bootstrap` and that those peers are up; see docs/operations.md, Joining by state sync and Recovery)"
    )]
    Join(String),
}
