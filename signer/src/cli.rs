//! The command line of `cvx-signer` (clap derive): what `--help` shows.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use cvx_signer::keys;

/// `--version`: the package version and the socket protocol's wire version.
pub(crate) const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (wire version 1)");

/// The command line (clap derive). Usage errors exit 2 (`Exit::Usage`), `--help` and
/// `--version` exit 0.
#[derive(Debug, Parser)]
#[command(
    name = "cvx-signer",
    version = VERSION,
    about = "cvx-signer: the cvx key holder (one key, one Unix socket, sandboxed)",
    long_about = None,
    arg_required_else_help = true,
    after_help = "The passphrase comes from the terminal or --passphrase-fd, never from argv or the environment."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The signer's config file (strict TOML).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
}

/// `--socket PATH` or `--config FILE` (its `socket`); at least one.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct Target {
    /// The signer's socket.
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// The signer's config file (its `socket` is used when --socket is not given).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Create the state file and audit log (refuses if they exist).
    Init(ConfigArg),
    /// Load the key, enter the sandbox, serve.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Read the key's passphrase from this descriptor (else the terminal).
        #[arg(long, value_name = "N")]
        passphrase_fd: Option<i32>,
        /// Fail unless Landlock is fully enforced.
        #[arg(long)]
        require_landlock: bool,
        /// Refused: passphrases never come from the command line.
        #[arg(long, hide = true, num_args = 0..=1, value_name = "ANY")]
        passphrase: Option<Option<String>>,
    },
    /// Write a new age-encrypted key (tests/devnet; operators use cvx-vault); prints the public key.
    Keygen(KeygenArgs),
    /// Print public key, watermark, counters.
    Status(Target),
    /// Breach button: refuse all signing, persistently.
    Lock(Target),
    /// Clear the lock (as the signer's user, while no signer runs).
    Unlock(ConfigArg),
    /// The audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Write this stopped signer's final watermark as a versioned JSON file (and lock it).
    ExportWatermark {
        #[command(flatten)]
        config: ConfigArg,
        /// Write here (created, never overwritten) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Do not lock this signer (for a backup copy; a moved signer must stay locked).
        #[arg(long)]
        keep_unlocked: bool,
    },
    /// Merge a watermark file (per-field maximum) and/or a high watermark into this stopped signer's state.
    #[command(group(ArgGroup::new("what").required(true).multiple(true).args(["file", "high_watermark"])))]
    ImportWatermark {
        #[command(flatten)]
        config: ConfigArg,
        /// The file written by export-watermark.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The last state is lost: count everything up to now + --margin-ms as signed.
        #[arg(long)]
        high_watermark: bool,
        /// For --high-watermark (default: the policy's max_future_skew_ms + 60000).
        #[arg(long, value_name = "MS", requires = "high_watermark")]
        margin_ms: Option<u64>,
        /// Read the key's passphrase from this descriptor (only needed when this signer never started).
        #[arg(long, value_name = "N")]
        passphrase_fd: Option<i32>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["recipient", "identity", "new_identity", "passphrase_fd"])))]
pub(crate) struct KeygenArgs {
    /// The key file to write (created, never overwritten).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Encrypt to this age recipient.
    #[arg(long, value_name = "AGE1...")]
    pub(crate) recipient: Option<String>,
    /// Encrypt to the recipient of this age identity file.
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Option<PathBuf>,
    /// Create a new age identity file and encrypt to it.
    #[arg(long, value_name = "FILE")]
    pub(crate) new_identity: Option<PathBuf>,
    /// Encrypt with a passphrase read from this descriptor.
    #[arg(long, value_name = "N")]
    pub(crate) passphrase_fd: Option<i32>,
    /// scrypt work factor log2 N for --passphrase-fd.
    #[arg(long, value_name = "LOG_N", value_parser = clap::value_parser!(u8).range(10..=i64::from(keys::MAX_SCRYPT_LOG_N)))]
    pub(crate) work_factor: Option<u8>,
    /// Refused: passphrases never come from the command line.
    #[arg(long, hide = true, num_args = 0..=1, value_name = "ANY")]
    pub(crate) passphrase: Option<Option<String>>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Verify the audit log's hash chain; with the rotated-out archives first (oldest first), across files.
    Verify {
        /// The archives (oldest first), then the live log.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// List every record.
        #[arg(long)]
        print: bool,
    },
}
