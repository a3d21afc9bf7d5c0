//! The command line of `cvx-vault`, declared with clap (derive). Every flag, its
//! meaning and its default are here, in one line of help each; docs/vault.md is the
//! manual. The binary maps every clap error to exit code 2 ([`ExitKind::Usage`]), and
//! `--help` / `--version` to 0.
//!
//! [`ExitKind::Usage`]: crate::ExitKind::Usage

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backup;
use crate::error::VaultError;

/// Flag names that would carry a secret on the command line: refused before parsing,
/// whatever the command (secrets come from the terminal or a file descriptor).
const SECRET_FLAGS: [&str; 11] = [
    "passphrase",
    "password",
    "pass",
    "seed",
    "words-text",
    "mnemonic",
    "secret",
    "share",
    "shares",
    "private-key",
    "secret-key",
];

/// Refuse a secret on the command line (`--passphrase x`, `--passphrase=x`, ...),
/// before clap sees the arguments (so that the refusal is the same in every command).
///
/// # Errors
/// [`VaultError::Usage`] naming the flag and the way secrets are read instead.
pub fn refuse_secret_flags<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<(), VaultError> {
    for a in args {
        let Some(a) = a.as_ref().to_str() else {
            continue;
        };
        let Some(name) = a.strip_prefix("--") else {
            continue;
        };
        let name = name.split('=').next().unwrap_or(name);
        if SECRET_FLAGS.contains(&name) {
            return Err(VaultError::Usage(format!(
                "--{name} refused: secrets are never taken from the command line (use the terminal prompt, or --passphrase-fd N / --words-fd N)"
            )));
        }
    }
    Ok(())
}

/// `cvx-vault`: the offline cvx tool (never touches a network).
///
/// Passphrases and recovery words come from the terminal, or from --passphrase-fd /
/// --words-fd; never from the command line or the environment.
#[derive(Debug, Parser)]
#[command(
    name = "cvx-vault",
    version,
    about = "cvx-vault: the offline cvx tool (never touches a network)",
    long_about = None,
    after_help = "Passphrases and recovery words come from the terminal, or from \
--passphrase-fd / --words-fd; never from the command line or the environment.\n\
Exit codes: docs/vault.md (2 = usage).",
    subcommand_required = true,
    arg_required_else_help = false,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The hash-chained audit log (give it before the command) [default: ./cvx-vault-audit.log]
    #[arg(
        long,
        value_name = "FILE",
        default_value = "cvx-vault-audit.log",
        hide_default_value = true
    )]
    pub audit: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new Ed25519 key, its age backup and its public manifest.
    Keygen(KeygenArgs),
    /// Check a backup against its manifest, without the passphrase.
    Verify(VerifyArgs),
    /// Decrypt a backup into a 72-byte key file (mode 0600), after every check.
    Restore(RestoreArgs),
    /// Re-encrypt a peer key backup to a signer host's age recipient.
    Provision(ProvisionArgs),
    /// Sign one cvx transaction from typed fields (never blind).
    Tx(TxArgs),
    /// Pre-sign withdrawals (set-peer-stake 0) for consecutive sequences.
    Ladder(LadderArgs),
    /// Show a signed-transaction file as QR codes (terminal, optional SVG).
    Qr(QrArgs),
    /// The audit log.
    Audit(AuditArgs),
    /// Convex's own transactions for a real Convex network (withdraw, transfer, verify).
    Convex(ConvexArgs),
    /// SLIP-39 Shamir shares of a key: split it into word shares, or rebuild it from them.
    Shares(SharesArgs),
    /// Print this help, or the help of the given command (`help tx`, `help audit verify`).
    Help(HelpArgs),
}

/// `cvx-vault help [COMMAND...]`.
#[derive(Debug, Args)]
pub struct HelpArgs {
    /// The command (and subcommand) to explain [default: none: the list of commands]
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A key's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// A peer's signing key (later provisioned into cvx-signer).
    Peer,
    /// A control-account key (signs transactions; never leaves the vault).
    Account,
}

impl From<RoleArg> for backup::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Peer => Self::Peer,
            RoleArg::Account => Self::Account,
        }
    }
}

/// `--passphrase-fd` and the maximum work factor, shared by the commands that decrypt.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Refuse a backup whose scrypt work factor is above N, before any work (1..=22) [default: 20]
    #[arg(long, value_name = "N")]
    pub max_work_factor: Option<u8>,
    /// Read the passphrase as one line from file descriptor N (0 = stdin) [default: the terminal]
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

impl DecryptArgs {
    /// The maximum work factor, checked.
    ///
    /// # Errors
    /// [`VaultError::Usage`] outside 1..=[`backup::MAX_LOG_N`].
    pub fn max_work_factor(&self) -> Result<u8, VaultError> {
        let v = self.max_work_factor.unwrap_or(backup::DEFAULT_MAX_LOG_N);
        if v == 0 || v > backup::MAX_LOG_N {
            return Err(VaultError::Usage(format!(
                "--max-work-factor must be 1..={}",
                backup::MAX_LOG_N
            )));
        }
        Ok(v)
    }
}

/// `cvx-vault keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// What the key is for: peer (a signer's key) or account (a control account's key) [required]
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The backup to write (age, passphrase, ASCII armor; created new, mode 0600) [required]
    #[arg(long, value_name = "BACKUP")]
    pub out: PathBuf,
    /// Where to write the public manifest [default: BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Make the key from 24 new BIP-39 words, shown once on the terminal [default: 32 random bytes]
    #[arg(long, conflicts_with = "import_words")]
    pub words: bool,
    /// Derive the key from existing BIP-39 words (terminal or --words-fd) [default: off]
    #[arg(long)]
    pub import_words: bool,
    /// The scrypt work factor log2(N) of the encryption, 10..=22 [default: 18]
    #[arg(long, value_name = "N")]
    pub work_factor: Option<u8>,
    /// Read the passphrase as one line from file descriptor N (0 = stdin) [default: the terminal]
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Read existing recovery words as one line from file descriptor N [default: the terminal]
    #[arg(long, value_name = "N")]
    pub words_fd: Option<u32>,
}

/// `cvx-vault verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The age backup to check [required]
    #[arg(long, value_name = "BACKUP")]
    pub backup: PathBuf,
    /// Its manifest [default: BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

/// `cvx-vault restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The age backup to decrypt [required]
    #[arg(long, value_name = "BACKUP")]
    pub backup: PathBuf,
    /// Its manifest [default: BACKUP.manifest.json]
    #[arg(long, value_name = "FILE", conflicts_with = "no_manifest")]
    pub manifest: Option<PathBuf>,
    /// Decrypt without a manifest (a failed decrypt is then "wrong passphrase or damage") [default: off]
    #[arg(long)]
    pub no_manifest: bool,
    /// The key file to write (72 bytes, mode 0600, created new) [required]
    #[arg(long, value_name = "KEYFILE")]
    pub out: PathBuf,
    /// Replace an existing KEYFILE atomically [default: off: an existing file is an error]
    #[arg(long)]
    pub force: bool,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The peer key's age backup [required]
    #[arg(long, value_name = "PEER_BACKUP")]
    pub backup: PathBuf,
    /// Its manifest [default: PEER_BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The signer host's age X25519 recipient, age1... (`age-keygen -y`) [required]
    #[arg(long, value_name = "AGE1...")]
    pub recipient: String,
    /// The encrypted key file for the signer host (created new) [required]
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault tx`.
#[derive(Debug, Args)]
#[command(
    after_help = "ACTION and its fields: withdraw --peer KEY | set-peer-stake --peer KEY --stake N \
| transfer --to N --amount N | set-key --new-key KEY | set-peer-host --peer KEY (--host HOST:PORT | --clear-host)"
)]
pub struct TxArgs {
    /// The transaction: withdraw, set-peer-stake, transfer, set-key, set-peer-host [or --request]
    #[arg(value_name = "ACTION")]
    pub action: Option<String>,
    /// A request file written on an online machine; the fields come from it [default: none]
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
    /// The network id: 64 hex digits, the hash of the genesis [required]
    #[arg(long, value_name = "ID")]
    pub network: String,
    /// The origin account number [required without --request]
    #[arg(long, value_name = "N")]
    pub origin: Option<u64>,
    /// The origin account's current sequence + 1 [required without --request]
    #[arg(long, value_name = "N")]
    pub sequence: Option<u64>,
    /// The peer's key, 64 hex digits (withdraw, set-peer-stake, set-peer-host) [default: none]
    #[arg(long, value_name = "KEY")]
    pub peer: Option<String>,
    /// The new stake, above 0 (set-peer-stake) [default: none]
    #[arg(long, value_name = "N")]
    pub stake: Option<u64>,
    /// The receiving account number (transfer) [default: none]
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// The amount to move (transfer) [default: none]
    #[arg(long, value_name = "N")]
    pub amount: Option<u64>,
    /// The origin account's new key, 64 hex digits (set-key) [default: none]
    #[arg(long, value_name = "KEY")]
    pub new_key: Option<String>,
    /// The peer's new endpoint HOST:PORT (set-peer-host) [default: none]
    #[arg(long, value_name = "HOST:PORT")]
    pub host: Option<String>,
    /// Clear the peer's endpoint (set-peer-host) [default: off]
    #[arg(long)]
    pub clear_host: bool,
    /// The account key's age backup that signs [required]
    #[arg(long, value_name = "ACCOUNT_BACKUP")]
    pub key: PathBuf,
    /// The backup's manifest [default: ACCOUNT_BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The signed-transaction file to write, plus FILE.json (created new) [required unless --dry-run]
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    pub out: Option<PathBuf>,
    /// Confirm without the terminal prompt (check the --dry-run output first) [default: ask]
    #[arg(long)]
    pub yes: bool,
    /// Show the transaction and sign nothing (no passphrase needed) [default: off]
    #[arg(long)]
    pub dry_run: bool,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault ladder`.
#[derive(Debug, Args)]
pub struct LadderArgs {
    /// The network id: 64 hex digits, the hash of the genesis [required]
    #[arg(long, value_name = "ID")]
    pub network: String,
    /// The controlling account number [required]
    #[arg(long, value_name = "N")]
    pub origin: u64,
    /// The peer's key, 64 hex digits [required]
    #[arg(long, value_name = "KEY")]
    pub peer: String,
    /// The account's current sequence N; files are signed for N+1 ... N+K [required]
    #[arg(long, value_name = "N")]
    pub current_sequence: u64,
    /// How many withdrawals K to sign, 1..=100 [required]
    #[arg(long, value_name = "K")]
    pub count: u64,
    /// The account key's age backup that signs [required]
    #[arg(long, value_name = "ACCOUNT_BACKUP")]
    pub key: PathBuf,
    /// The backup's manifest [default: ACCOUNT_BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The new directory for the files (mode 0700; an existing one is refused) [required]
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Confirm without the terminal prompt [default: ask]
    #[arg(long)]
    pub yes: bool,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault qr`.
#[derive(Debug, Args)]
pub struct QrArgs {
    /// The signed-transaction file to show [required]
    #[arg(long = "in", value_name = "SIGNED_TX")]
    pub input: PathBuf,
    /// Also write the codes as an SVG image (created new) [default: none]
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Draw the dark modules on the terminal (for light terminals) [default: the light ones]
    #[arg(long)]
    pub invert: bool,
}

/// `cvx-vault audit`.
#[derive(Debug, Args)]
#[command(disable_help_subcommand = true)]
pub struct AuditArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
}

/// `cvx-vault audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; print the record count and the head hash.
    Verify,
}

/// `cvx-vault convex`.
#[derive(Debug, Args)]
#[command(
    disable_help_subcommand = true,
    after_help = "Convex signatures carry no network id and no expiry: the same bytes replay on any \
Convex network where the account has the same key and sequence (docs/vault.md, \"Convex network\")."
)]
pub struct ConvexArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConvexCommand,
}

/// `cvx-vault convex ...`.
#[derive(Debug, Subcommand)]
pub enum ConvexCommand {
    /// Sign (set-peer-stake PEER-KEY 0): withdraw a peer's whole stake to the origin account.
    Withdraw(ConvexWithdrawArgs),
    /// Sign a transfer of coins (copper) to another account.
    Transfer(ConvexTransferArgs),
    /// Decode a signed Convex transaction (.cvx or .submit.json), check its signature, show it.
    Verify(ConvexVerifyArgs),
}

/// The flags every Convex signing command takes.
#[derive(Debug, Args)]
pub struct ConvexSignArgs {
    /// The Convex account that signs and pays, as a number (#N without the #) [required]
    #[arg(long, value_name = "N")]
    pub origin: u64,
    /// The account's current sequence + 1; with --count, the first of the ladder [required]
    #[arg(long, value_name = "S")]
    pub sequence: u64,
    /// The account key's age backup that signs (its key must be the Convex account's key) [required]
    #[arg(long, value_name = "ACCOUNT_BACKUP")]
    pub key: PathBuf,
    /// The backup's manifest [default: ACCOUNT_BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// A new directory (mode 0700) for the .cvx, .submit.json, .txt and .svg of each transaction [required unless --dry-run]
    #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
    pub out_dir: Option<PathBuf>,
    /// Confirm without the terminal prompt (check the --dry-run output first) [default: ask]
    #[arg(long)]
    pub yes: bool,
    /// Show exactly what would be signed and sign nothing (no passphrase needed) [default: off]
    #[arg(long)]
    pub dry_run: bool,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault convex withdraw`.
#[derive(Debug, Args)]
pub struct ConvexWithdrawArgs {
    /// The peer's Ed25519 key, 64 hex digits (0x optional) [required]
    #[arg(long, value_name = "HEX")]
    pub peer_key: String,
    /// Sign a ladder: K withdrawals for the consecutive sequences S..S+K-1, 1..=100 [default: 1]
    #[arg(long, value_name = "K", default_value_t = 1, hide_default_value = true)]
    pub count: u64,
    /// The account, sequence, key and output.
    #[command(flatten)]
    pub sign: ConvexSignArgs,
}

/// `cvx-vault convex transfer`.
#[derive(Debug, Args)]
pub struct ConvexTransferArgs {
    /// The receiving account, as a number (#M without the #) [required]
    #[arg(long, value_name = "M")]
    pub to: u64,
    /// The amount in copper (Convex's smallest unit; 10^9 copper = 1 Convex Coin) [required]
    #[arg(long, value_name = "A")]
    pub amount: u64,
    /// The account, sequence, key and output.
    #[command(flatten)]
    pub sign: ConvexSignArgs,
}

/// `cvx-vault convex verify`.
#[derive(Debug, Args)]
pub struct ConvexVerifyArgs {
    /// The signed file: the wrapper bytes (.cvx) or the submit body (.submit.json) [required]
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `cvx-vault shares`.
#[derive(Debug, Args)]
#[command(disable_help_subcommand = true)]
pub struct SharesArgs {
    /// Split or combine.
    #[command(subcommand)]
    pub command: SharesCommand,
}

/// `cvx-vault shares ...`.
#[derive(Debug, Subcommand)]
pub enum SharesCommand {
    /// Split a key into SLIP-39 word shares, each shown once on the terminal and retyped.
    Split(SharesSplitArgs),
    /// Rebuild a key from SLIP-39 shares typed in; write a new backup and its manifest.
    Combine(SharesCombineArgs),
}

/// `cvx-vault shares split`.
#[derive(Debug, Args)]
#[command(
    after_help = "The shares are shown on the terminal only (never on stdout or in a file). \
--passphrase-fd N reads two lines: the backup's passphrase, then the SLIP-39 passphrase \
(an empty line for none)."
)]
pub struct SharesSplitArgs {
    /// The key's age backup [required]
    #[arg(long, value_name = "BACKUP")]
    pub key: PathBuf,
    /// Its manifest [default: BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// How many shares rebuild the key, 2..=COUNT (one group) [required without --groups]
    #[arg(
        long,
        value_name = "T",
        required_unless_present = "groups",
        requires = "count"
    )]
    pub threshold: Option<u8>,
    /// How many shares to make, up to 16 (one group) [required without --groups]
    #[arg(long, value_name = "N", requires = "threshold")]
    pub count: Option<u8>,
    /// Groups instead: THRESHOLDofCOUNT per group, comma-separated, e.g. 1of1,2of3,3of5 [default: one group]
    #[arg(long, value_name = "TofN,...", conflicts_with_all = ["threshold", "count"], requires = "group_threshold")]
    pub groups: Option<String>,
    /// How many of the --groups rebuild the key [required with --groups]
    #[arg(long, value_name = "G", requires = "groups")]
    pub group_threshold: Option<u8>,
    /// SLIP-39 iteration exponent E: the passphrase encryption runs 10000 * 2^E PBKDF2 rounds, 0..=15 [default: 1]
    #[arg(long, value_name = "E", default_value_t = 1, hide_default_value = true)]
    pub iteration_exponent: u8,
    /// The passphrase and work-factor limit.
    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

/// `cvx-vault shares combine`.
#[derive(Debug, Args)]
#[command(
    after_help = "Shares are typed on the terminal (echo off) or read from --words-fd, one per line; \
the prompt says which groups and members are still needed. --passphrase-fd N reads two lines: \
the SLIP-39 passphrase (an empty line for none), then the new backup's passphrase."
)]
pub struct SharesCombineArgs {
    /// What the key is for: peer or account (shares do not record it) [required]
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The backup to write (age, passphrase; created new, mode 0600) [required]
    #[arg(long, value_name = "BACKUP")]
    pub out: PathBuf,
    /// Where to write the public manifest [default: BACKUP.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// The public key the shares must rebuild, 64 hex digits (old manifest, records) [default: none: compare by eye]
    #[arg(long, value_name = "KEY")]
    pub expect_key: Option<String>,
    /// The scrypt work factor log2(N) of the new backup, 10..=22 [default: 18]
    #[arg(long, value_name = "N")]
    pub work_factor: Option<u8>,
    /// Read the SLIP-39 passphrase, then the new backup's passphrase, one line each, from file descriptor N [default: the terminal]
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Read the shares, one per line, from file descriptor N [default: the terminal]
    #[arg(long, value_name = "N")]
    pub words_fd: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn secret_flags_are_refused_in_both_spellings() {
        for a in [
            ["verify", "--passphrase", "x"],
            ["x", "--seed=abc", "y"],
            ["shares", "--share", "academic acid"],
            ["combine", "--shares=academic", "acid"],
            ["create", "--private-key", "00ff"],
        ] {
            assert!(matches!(refuse_secret_flags(&a), Err(VaultError::Usage(_))));
        }
        // Flags whose names only contain a secret word are not secrets.
        assert!(refuse_secret_flags(&["create", "--words", "--key", "ab"]).is_ok());
        assert!(refuse_secret_flags(&["verify", "--passphrase-fd", "0"]).is_ok());
    }
}
