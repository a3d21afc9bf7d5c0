//! Every way a vault operation fails, and the documented exit code of each kind.
//!
//! Callers (the binary, the tests) branch on [`VaultError::kind`], never on text. The
//! messages say what happened and what to do next; `vault/tests/snapshots/errors.txt`
//! holds every one of them and a test keeps it in step.

use std::path::PathBuf;

/// The stable exit codes of `cvx-vault` (docs/vault.md lists them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitKind {
    /// 0: done.
    Ok = 0,
    /// 2: the command line is wrong (unknown flag, missing value, ...).
    Usage = 2,
    /// 3: a file could not be read or written (missing, unreadable, disk full).
    Io = 3,
    /// 4: the output already exists; nothing was written (use `--force` where offered).
    Exists = 4,
    /// 5: the passphrase is wrong — certain, because the backup matched its manifest.
    WrongPassphrase = 5,
    /// 6: the backup is damaged (truncated, altered) or does not match its manifest.
    Damaged = 6,
    /// 7: decryption failed and no manifest says why (wrong passphrase or damage).
    DecryptFailed = 7,
    /// 8: the file demands more scrypt work than the stated maximum; refused at once.
    WorkFactor = 8,
    /// 9: the decrypted key is not the key the manifest names, or not a cvx key.
    KeyMismatch = 9,
    /// 10: an input value is invalid (transaction field, request file, words, shares,
    /// network id).
    Invalid = 10,
    /// 11: the operator declined (or could not be asked) to confirm.
    Declined = 11,
    /// 12: the audit log's hash chain is broken.
    AuditBroken = 12,
    /// 13: the offline sandbox (seccomp filter, locked key memory) could not be set up;
    /// the vault refuses to handle keys without it.
    Sandbox = 13,
}

impl ExitKind {
    /// The process exit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// What kind of damage a backup check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than the manifest says.
    Truncated,
    /// Longer than the manifest says.
    Extended,
    /// Same length, different bytes.
    Altered,
}

impl Damage {
    /// A short description.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Truncated => "truncated (shorter than the manifest records)",
            Self::Extended => "extended (longer than the manifest records)",
            Self::Altered => "altered (same length, different bytes)",
        }
    }
}

/// A vault failure.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A usage error from the command line.
    #[error("{0}\n(run `cvx-vault help` for the commands and their flags)")]
    Usage(String),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source} (nothing usable was left behind)")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is larger than the vault ever reads.
    #[error(
        "{path} is {len} bytes, above the {cap}-byte limit for this kind of file; is it the right file?"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// The output exists and the vault never overwrites silently.
    #[error(
        "{0} already exists; nothing was written (choose another path, or pass --force where the command offers it)"
    )]
    Exists(PathBuf),
    /// Reading a secret from the terminal or an fd failed.
    #[error("cannot read the {what}: {reason}")]
    Input {
        /// What was asked for.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A passphrase and its confirmation differ.
    #[error("the two passphrases differ; nothing was written (try again)")]
    PassphraseMismatch,
    /// An empty passphrase.
    #[error("the passphrase is empty; a backup needs a passphrase")]
    EmptyPassphrase,
    /// The retyped recovery words differ from the ones shown.
    #[error("the retyped words differ from the ones shown; nothing was written (run keygen again)")]
    WordsMismatch,
    /// A recovery phrase that is not valid BIP-39.
    #[error(
        "the recovery words are not a valid BIP-39 English phrase: {0} (check each word and its order)"
    )]
    Mnemonic(String),
    /// The manifest is missing or unreadable.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backup does not match its manifest.
    #[error(
        "backup {path} is damaged: {}; it was not decrypted and no key was written (use another copy of the backup)",
        damage.describe()
    )]
    Damaged {
        /// The backup.
        path: PathBuf,
        /// What kind of damage.
        damage: Damage,
    },
    /// The backup is not a well-formed age file (found without the manifest's help).
    #[error("{path} is not a readable age backup: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backup matches its manifest and did not decrypt: the passphrase is wrong.
    #[error(
        "wrong passphrase for {0} (the file matches its manifest, so it is not damaged); nothing was written"
    )]
    WrongPassphrase(PathBuf),
    /// Decryption failed with no manifest to tell why.
    #[error(
        "{0} did not decrypt: either the passphrase is wrong or the file is damaged (without a manifest the vault cannot tell which); nothing was written"
    )]
    DecryptFailed(PathBuf),
    /// The file demands too much scrypt work.
    #[error(
        "{path} demands scrypt work factor {required} (2^{required} iterations), above the maximum of {max}; refused before any work (raise --max-work-factor only for a file you trust)"
    )]
    WorkFactor {
        /// The file.
        path: PathBuf,
        /// What the file asks.
        required: u8,
        /// What the vault accepts.
        max: u8,
    },
    /// The decrypted plaintext is not a cvx key, or not the manifest's key.
    #[error("{path}: {reason}; nothing was written")]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The key has the wrong role for this command.
    #[error("{path} holds {found}, but this command needs {needed}")]
    Role {
        /// The backup.
        path: PathBuf,
        /// The role found in the manifest.
        found: &'static str,
        /// The role needed.
        needed: &'static str,
    },
    /// An invalid input value.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field or file.
        field: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file given to `convex verify` is not a valid signed Convex transaction.
    #[error(
        "{path}: not a valid signed Convex transaction: {problem}; do not submit it (sign it again on the vault machine, or use an intact copy)"
    )]
    ConvexFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The transaction's hash differs from the one the request expects.
    #[error(
        "the transaction's hash {actual} differs from the request's expected_hash {expected}; refused (the request or the fields were changed)"
    )]
    HashMismatch {
        /// The request's value.
        expected: String,
        /// The computed value.
        actual: String,
    },
    /// The operator declined.
    #[error("not confirmed; nothing was signed or written")]
    Declined,
    /// No terminal to ask on.
    #[error("{action} needs a terminal, and none is available ({hint})")]
    NoTerminal {
        /// What needed the terminal.
        action: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// A broken audit log.
    #[error("audit log {path}, record {record}: {reason}")]
    Audit {
        /// The log.
        path: PathBuf,
        /// The 1-based record number.
        record: usize,
        /// What is wrong.
        reason: String,
    },
    /// The sandbox could not be applied.
    #[error("cannot apply the offline sandbox (seccomp): {0}; refusing to run without it")]
    Sandbox(String),
    /// Locked memory for key material could not be set up.
    #[error(
        "cannot hold the {what} in locked memory: {reason}; the vault refuses to handle key material in memory that could be swapped or dumped"
    )]
    Memory {
        /// Which secret.
        what: &'static str,
        /// Why (from cvx-sandbox, with the fix).
        reason: String,
    },
    /// Encryption failed inside age.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// SLIP-39 shares that cannot be split or combined as asked.
    #[error("{0}")]
    Shares(#[from] crate::shares::error::ShareError),
}

impl VaultError {
    /// The exit kind of this error.
    #[must_use]
    pub const fn kind(&self) -> ExitKind {
        match self {
            Self::Usage(_) => ExitKind::Usage,
            Self::Read { .. }
            | Self::Write { .. }
            | Self::TooLarge { .. }
            | Self::Input { .. }
            | Self::Encrypt(_) => ExitKind::Io,
            Self::Exists(_) => ExitKind::Exists,
            Self::WrongPassphrase(_) => ExitKind::WrongPassphrase,
            Self::Damaged { .. } | Self::Manifest { .. } | Self::Malformed { .. } => {
                ExitKind::Damaged
            }
            Self::DecryptFailed(_) => ExitKind::DecryptFailed,
            Self::WorkFactor { .. } => ExitKind::WorkFactor,
            Self::KeyMismatch { .. } | Self::Role { .. } => ExitKind::KeyMismatch,
            Self::PassphraseMismatch
            | Self::EmptyPassphrase
            | Self::WordsMismatch
            | Self::Mnemonic(_)
            | Self::Invalid { .. }
            | Self::HashMismatch { .. }
            | Self::ConvexFile { .. }
            | Self::Shares(_) => ExitKind::Invalid,
            Self::Declined | Self::NoTerminal { .. } => ExitKind::Declined,
            Self::Audit { .. } => ExitKind::AuditBroken,
            Self::Sandbox(_) | Self::Memory { .. } => ExitKind::Sandbox,
        }
    }

    /// Shorthand for [`VaultError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = VaultError> = core::result::Result<T, E>;
