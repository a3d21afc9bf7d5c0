//! Errors. Callers branch on [`ErrorKind`] (or its stable [`ErrorKind::code`]), never on text.

use std::io;
use std::path::PathBuf;

use crate::Hash;

/// Everything that can go wrong in the store. Each message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtchError {
    /// An operating-system call on the store file failed.
    #[error(
        "store {path}: {op} failed: {source}; check the disk, its free space and the file's permissions"
    )]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What we were doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another handle in this one) holds the store's exclusive lock.
    #[error(
        "store {path} is in use by another process (its exclusive lock is held); stop that process first: only one process may open a store"
    )]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The file was written by a newer (or unknown) format version.
    #[error(
        "store {path} has format version {found}, but this build reads only version {supported}; run a cvx-peer build that supports version {found}, or restore a backup made with this one"
    )]
    UnsupportedVersion {
        /// The store file.
        path: PathBuf,
        /// The version found in the header.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// The file does not start with the etch magic.
    #[error("{path} is not an etch store (no etch magic in either header copy); check the path")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged beyond what crash recovery may repair without losing checkpointed data.
    #[error(
        "store {path} is damaged: {detail}; it was not opened, to avoid losing checkpointed data: restore it from a backup, or move it aside and re-sync state from the network"
    )]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A stored record failed its checksum; its bytes were not returned.
    #[error(
        "record {hash} at offset {offset} is corrupt (checksum mismatch); its bytes were not returned: re-fetch it from a peer or run garbage collection after restoring it"
    )]
    Corrupt {
        /// The record's key.
        hash: Hash,
        /// Where it sits in the file.
        offset: u64,
    },
    /// A record is larger than the store accepts.
    #[error("record of {len} bytes exceeds the store's limit of {max} bytes; split the value")]
    TooLarge {
        /// The offered length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A root name is invalid or there are too many roots.
    #[error("invalid root: {detail}")]
    BadRoot {
        /// What is wrong.
        detail: String,
    },
    /// Imported bytes do not hash to the hash they were offered under.
    #[error(
        "imported node does not match its hash: expected {expected}, the bytes hash to {actual}; the sender is faulty: drop the bytes and ask another peer"
    )]
    HashMismatch {
        /// The hash the node was asked for under.
        expected: Hash,
        /// The hash of the bytes received.
        actual: Hash,
    },
    /// A Merkle node is malformed (or does not fit where it was found).
    #[error(
        "malformed Merkle node {hash}: {detail}; the sender (or the store) is faulty: re-fetch the node from another peer"
    )]
    BadNode {
        /// The node's hash.
        hash: Hash,
        /// What is wrong.
        detail: String,
    },
    /// A node needed for a Merkle operation is not in the store.
    #[error(
        "Merkle node {hash} is not in the store; fetch it first (list what is missing with merkle::missing)"
    )]
    Missing {
        /// The node's hash.
        hash: Hash,
    },
    /// A garbage collection is already running on this store.
    #[error("a garbage collection is already running on this store; wait for it to finish")]
    Busy,
    /// An internal lock was poisoned by a panic in another thread.
    #[error(
        "the store's internal lock was poisoned by a panic in another thread; restart the process (the file is recovered on the next open)"
    )]
    Poisoned,
}

/// The stable kinds of [`EtchError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`EtchError::Io`]
    Io,
    /// [`EtchError::Locked`]
    Locked,
    /// [`EtchError::UnsupportedVersion`]
    Version,
    /// [`EtchError::NotAStore`]
    NotAStore,
    /// [`EtchError::Damaged`]
    Damaged,
    /// [`EtchError::Corrupt`]
    Corrupt,
    /// [`EtchError::TooLarge`]
    TooLarge,
    /// [`EtchError::BadRoot`]
    BadRoot,
    /// [`EtchError::HashMismatch`]
    HashMismatch,
    /// [`EtchError::BadNode`]
    BadNode,
    /// [`EtchError::Missing`]
    Missing,
    /// [`EtchError::Busy`]
    Busy,
    /// [`EtchError::Poisoned`]
    Poisoned,
}

impl ErrorKind {
    /// A stable upper-case code for logs and operators.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "ETCH_IO",
            ErrorKind::Locked => "ETCH_LOCKED",
            ErrorKind::Version => "ETCH_VERSION",
            ErrorKind::NotAStore => "ETCH_NOT_A_STORE",
            ErrorKind::Damaged => "ETCH_DAMAGED",
            ErrorKind::Corrupt => "ETCH_CORRUPT",
            ErrorKind::TooLarge => "ETCH_TOO_LARGE",
            ErrorKind::BadRoot => "ETCH_BAD_ROOT",
            ErrorKind::HashMismatch => "ETCH_HASH_MISMATCH",
            ErrorKind::BadNode => "ETCH_BAD_NODE",
            ErrorKind::Missing => "ETCH_MISSING",
            ErrorKind::Busy => "ETCH_BUSY",
            ErrorKind::Poisoned => "ETCH_POISONED",
        }
    }
}

impl EtchError {
    /// The stable kind of this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            EtchError::Io { .. } => ErrorKind::Io,
            EtchError::Locked { .. } => ErrorKind::Locked,
            EtchError::UnsupportedVersion { .. } => ErrorKind::Version,
            EtchError::NotAStore { .. } => ErrorKind::NotAStore,
            EtchError::Damaged { .. } => ErrorKind::Damaged,
            EtchError::Corrupt { .. } => ErrorKind::Corrupt,
            EtchError::TooLarge { .. } => ErrorKind::TooLarge,
            EtchError::BadRoot { .. } => ErrorKind::BadRoot,
            EtchError::HashMismatch { .. } => ErrorKind::HashMismatch,
            EtchError::BadNode { .. } => ErrorKind::BadNode,
            EtchError::Missing { .. } => ErrorKind::Missing,
            EtchError::Busy => ErrorKind::Busy,
            EtchError::Poisoned => ErrorKind::Poisoned,
        }
    }

    pub(crate) fn io(path: &std::path::Path, op: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| EtchError::Io { path, op, source }
    }
}

/// Result alias for the store.
pub type Result<T, E = EtchError> = std::result::Result<T, E>;
