//! cvx-vault: the offline tool of cvx — keys, age backups, signer provisioning, and
//! offline-signed transactions with QR output.
//!
//! All logic is here; the `cvx-vault` binary only parses flags, prints, and maps
//! [`VaultError::kind`] to the exit codes of [`ExitKind`]. docs/vault.md is the
//! operator's manual.
//!
//! * [`offline`] — the self-applied seccomp filter that refuses sockets;
//! * [`secret`] — seeds, key plaintexts and passphrases as zeroizing types;
//! * [`mnemonic`] — BIP-39 words and SLIP-10 derivation at `m/44'/864'/0'/0'/0'`;
//! * [`backup`] — age backups, manifests, verification, classified decryption;
//! * [`txbuild`] — typed transactions from fields, hash phrases, descriptions;
//! * [`convex`] — Convex's own transactions (CAD3), signed offline for a Convex peer;
//! * [`qr`] — QR payloads, terminal and SVG rendering;
//! * [`audit`] — the hash-chained audit log;
//! * [`shares`] — SLIP-39 Shamir shares of a key (split and combine);
//! * [`prompt`] — the terminal and file-descriptor inputs;
//! * [`ops`] — the commands;
//! * [`cli`] — the command line (clap), one line of help per flag.
//!
//! Deliberately absent: any network crate, any async runtime, any way to sign bytes
//! that are not a typed `cvx_protocol` transaction or a typed Convex transaction
//! ([`convex::tx::Tx`], built from fields).

#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
pub mod cli;
pub mod convex;
pub mod error;
pub mod fsio;
pub mod mnemonic;
pub mod offline;
pub mod ops;
pub mod prompt;
pub mod qr;
pub mod secret;
pub mod shares;
pub mod txbuild;

pub use error::{Damage, ExitKind, VaultError};
