//! Typed transactions from fields — never from opaque bytes — their human-readable
//! form, the short hash phrase, signing, the signed-transaction file and its JSON
//! description.

use std::path::Path;

use cvx_protocol::hash::Hash;
use cvx_protocol::ledger::{Action, SignedTransaction, Transaction};
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Amount, Canonical, HostAddr, NetworkId, PublicKey, Signable};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::secret::KeyPair;

/// Request files are small.
pub const REQUEST_CAP: u64 = 16 * 1024;
/// The request file's format name.
pub const REQUEST_FORMAT: &str = "cvx-vault-tx-request";
/// Words in the hash phrase (11 bits each: 55 bits of the sign-bytes hash).
pub const PHRASE_WORDS: usize = 5;
/// The most withdrawals one ladder signs.
pub const LADDER_MAX: u64 = 100;

/// The transaction kinds the vault signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// set-peer-stake to 0: the whole stake returns to the controller.
    Withdraw,
    /// set-peer-stake to a new amount.
    SetPeerStake,
    /// move coins to another account.
    Transfer,
    /// rotate the origin account's key.
    SetKey,
    /// set or clear a peer's public endpoint.
    SetPeerHost,
}

impl Kind {
    /// Parse the CLI/request name.
    ///
    /// # Errors
    /// [`VaultError::Invalid`].
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "withdraw" => Self::Withdraw,
            "set-peer-stake" => Self::SetPeerStake,
            "transfer" => Self::Transfer,
            "set-key" => Self::SetKey,
            "set-peer-host" => Self::SetPeerHost,
            other => {
                return Err(VaultError::invalid(
                    "action",
                    format!(
                        "{other:?} is not a transaction the vault signs (withdraw, set-peer-stake, transfer, set-key, set-peer-host)"
                    ),
                ));
            }
        })
    }
}

/// The fields of a transaction, as typed on the command line or in a request file
/// (text, validated by [`Fields::build`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// Network id (64 hex digits).
    pub network: Option<String>,
    /// Origin account number.
    pub origin: Option<u64>,
    /// Sequence (the account's current sequence + 1).
    pub sequence: Option<u64>,
    /// Peer key (hex) for withdraw, set-peer-stake, set-peer-host.
    pub peer: Option<String>,
    /// New stake for set-peer-stake.
    pub stake: Option<u64>,
    /// Receiving account for transfer.
    pub to: Option<u64>,
    /// Amount for transfer.
    pub amount: Option<u64>,
    /// New key (hex) for set-key.
    pub new_key: Option<String>,
    /// New host for set-peer-host (`host:port`).
    pub host: Option<String>,
    /// set-peer-host: clear the host.
    #[serde(default)]
    pub clear_host: bool,
}

/// A request file written on an online machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Always [`REQUEST_FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The transaction kind.
    pub action: Kind,
    /// The fields.
    pub fields: Fields,
    /// The transaction id (SHA-256 of the canonical transaction) the requester computed;
    /// the vault refuses to sign when its own differs.
    pub expected_hash: Option<String>,
}

impl Request {
    /// Read and parse strictly.
    ///
    /// # Errors
    /// Read errors, [`VaultError::Invalid`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsio::read_capped(path, REQUEST_CAP)?;
        let r: Self = serde_json::from_slice(&bytes).map_err(|e| {
            VaultError::invalid(
                path.display().to_string(),
                format!("not a valid request file: {e}"),
            )
        })?;
        if r.format != REQUEST_FORMAT || r.version != 1 {
            return Err(VaultError::invalid(
                path.display().to_string(),
                format!("format must be {REQUEST_FORMAT:?} version 1"),
            ));
        }
        Ok(r)
    }
}

fn need<T: Clone>(v: Option<&T>, field: &str, kind: &str) -> Result<T> {
    v.cloned()
        .ok_or_else(|| VaultError::invalid(field, format!("{kind} needs --{field}")))
}

fn refuse_extra(present: bool, field: &str, kind: &str) -> Result<()> {
    if present {
        return Err(VaultError::invalid(
            field,
            format!("{kind} takes no --{field}; remove it"),
        ));
    }
    Ok(())
}

/// Parse a network id.
///
/// # Errors
/// [`VaultError::Invalid`].
pub fn parse_network(s: &str) -> Result<NetworkId> {
    let h = Hash::from_hex(s).map_err(|_| {
        VaultError::invalid("network", "a network id is 64 hex digits (the hash of the network's genesis; `cvx-peer status` shows it)")
    })?;
    if h == Hash::ZERO {
        return Err(VaultError::invalid(
            "network",
            "the all-zero network id is no network's id",
        ));
    }
    Ok(NetworkId(h))
}

fn parse_key(field: &str, s: &str) -> Result<PublicKey> {
    PublicKey::from_hex(s).map_err(|e| VaultError::invalid(field, e))
}

fn amount(field: &str, v: u64) -> Result<Amount> {
    Amount::new(v)
        .ok_or_else(|| VaultError::invalid(field, format!("{v} is above the maximum supply")))
}

/// A validated transaction for one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The network.
    pub network: NetworkId,
    /// What it is.
    pub kind: Kind,
    /// The transaction.
    pub tx: Transaction,
}

impl Fields {
    /// Validate into a transaction.
    ///
    /// # Errors
    /// [`VaultError::Invalid`] naming the field.
    pub fn build(&self, kind: Kind) -> Result<Built> {
        let name = match kind {
            Kind::Withdraw => "withdraw",
            Kind::SetPeerStake => "set-peer-stake",
            Kind::Transfer => "transfer",
            Kind::SetKey => "set-key",
            Kind::SetPeerHost => "set-peer-host",
        };
        let network = parse_network(&need(self.network.as_ref(), "network", name)?)?;
        let origin = Address(need(self.origin.as_ref(), "origin", name)?);
        let sequence = need(self.sequence.as_ref(), "sequence", name)?;
        if sequence == 0 {
            return Err(VaultError::invalid(
                "sequence",
                "0 is never valid: a transaction's sequence is the account's current sequence + 1",
            ));
        }
        let uses_peer = matches!(
            kind,
            Kind::Withdraw | Kind::SetPeerStake | Kind::SetPeerHost
        );
        refuse_extra(!uses_peer && self.peer.is_some(), "peer", name)?;
        refuse_extra(
            kind != Kind::SetPeerStake && self.stake.is_some(),
            "stake",
            name,
        )?;
        refuse_extra(kind != Kind::Transfer && self.to.is_some(), "to", name)?;
        refuse_extra(
            kind != Kind::Transfer && self.amount.is_some(),
            "amount",
            name,
        )?;
        refuse_extra(
            kind != Kind::SetKey && self.new_key.is_some(),
            "new-key",
            name,
        )?;
        refuse_extra(
            kind != Kind::SetPeerHost && self.host.is_some(),
            "host",
            name,
        )?;
        refuse_extra(
            kind != Kind::SetPeerHost && self.clear_host,
            "clear-host",
            name,
        )?;
        let action = match kind {
            Kind::Withdraw => Action::SetPeerStake {
                peer: parse_key("peer", &need(self.peer.as_ref(), "peer", name)?)?,
                stake: Amount::ZERO,
            },
            Kind::SetPeerStake => {
                let stake = need(self.stake.as_ref(), "stake", name)?;
                if stake == 0 {
                    return Err(VaultError::invalid(
                        "stake",
                        "use `tx withdraw` to set the stake to 0",
                    ));
                }
                Action::SetPeerStake {
                    peer: parse_key("peer", &need(self.peer.as_ref(), "peer", name)?)?,
                    stake: amount("stake", stake)?,
                }
            }
            Kind::Transfer => {
                let to = Address(need(self.to.as_ref(), "to", name)?);
                if to == origin {
                    return Err(VaultError::invalid(
                        "to",
                        "a transfer to the origin itself does nothing",
                    ));
                }
                let amt = need(self.amount.as_ref(), "amount", name)?;
                if amt == 0 {
                    return Err(VaultError::invalid(
                        "amount",
                        "a transfer moves at least 1 coin",
                    ));
                }
                Action::Transfer {
                    to,
                    amount: amount("amount", amt)?,
                }
            }
            Kind::SetKey => Action::SetKey {
                key: parse_key("new-key", &need(self.new_key.as_ref(), "new-key", name)?)?,
            },
            Kind::SetPeerHost => {
                let host = match (&self.host, self.clear_host) {
                    (Some(_), true) => {
                        return Err(VaultError::invalid(
                            "host",
                            "give --host or --clear-host, not both",
                        ));
                    }
                    (None, false) => {
                        return Err(VaultError::invalid(
                            "host",
                            "set-peer-host needs --host HOST:PORT or --clear-host",
                        ));
                    }
                    (Some(h), false) => {
                        Some(HostAddr::new(h).map_err(|e| VaultError::invalid("host", e))?)
                    }
                    (None, true) => None,
                };
                Action::SetPeerHost {
                    peer: parse_key("peer", &need(self.peer.as_ref(), "peer", name)?)?,
                    host,
                }
            }
        };
        let tx = Transaction {
            origin,
            sequence,
            action,
        };
        // The protocol's own rules (sequence >= 1, caps) on the exact encoding.
        Transaction::decode(&tx.encode())
            .map_err(|e| VaultError::invalid("transaction", e.to_string()))?;
        Ok(Built { network, kind, tx })
    }
}

/// The short phrase of a transaction's sign-bytes: the first 55 bits of
/// SHA-256(sign-bytes) as 5 BIP-39 English words, so two screens can be compared by ear.
#[must_use]
pub fn hash_phrase(network: &NetworkId, tx: &Transaction) -> String {
    let digest = cvx_protocol::hash(tx.sign_bytes(network).as_bytes());
    let list = bip39::Language::English.word_list();
    let mut bits: u64 = 0;
    for b in &digest.0[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..PHRASE_WORDS)
        .map(|i| {
            let idx = (bits >> (64 - 11 * (i + 1))) & 0x7ff;
            list[usize::try_from(idx).unwrap_or(0)]
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::SetPeerStake { peer, stake } if stake.is_zero() => format!(
            "WITHDRAW ALL STAKE of peer {peer}\n              (set-peer-stake 0: the whole stake returns to the controlling account)"
        ),
        Action::SetPeerStake { peer, stake } => format!("set the stake of peer {peer} to {stake}"),
        Action::Transfer { to, amount } => format!("transfer {amount} to account {to}"),
        Action::SetKey { key } => format!("REPLACE the origin account's key with {key}"),
        Action::SetPeerHost {
            peer,
            host: Some(h),
        } => format!("set the host of peer {peer} to {h}"),
        Action::SetPeerHost { peer, host: None } => format!("clear the host of peer {peer}"),
        Action::CreateAccount { key, balance } => {
            format!("create an account with key {key} and balance {balance}")
        }
        Action::CreatePeer { key, stake, .. } => format!("create peer {key} with stake {stake}"),
    }
}

impl Built {
    /// The transaction id.
    #[must_use]
    pub fn id(&self) -> Hash {
        self.tx.hash()
    }

    /// The human-readable form shown before signing.
    #[must_use]
    pub fn human(&self, signer: &PublicKey) -> String {
        format!(
            "Transaction to sign\n  network     {}\n  origin      {}\n  sequence    {}\n  action      {}\n  signer key  {}\n  tx id       {}\n  phrase      {}\n",
            self.network,
            self.tx.origin,
            self.tx.sequence,
            describe_action(&self.tx.action),
            signer,
            self.id(),
            hash_phrase(&self.network, &self.tx),
        )
    }

    /// Check the request's expected hash.
    ///
    /// # Errors
    /// [`VaultError::HashMismatch`], or [`VaultError::Invalid`] for a malformed value.
    pub fn check_expected(&self, expected: Option<&str>) -> Result<()> {
        let Some(e) = expected else { return Ok(()) };
        let want = Hash::from_hex(e).map_err(|_| {
            VaultError::invalid("expected_hash", "64 hex digits (the transaction id)")
        })?;
        if want != self.id() {
            return Err(VaultError::HashMismatch {
                expected: want.to_hex(),
                actual: self.id().to_hex(),
            });
        }
        Ok(())
    }

    /// Sign, verify the signature with cvx-protocol's strict verification, and wrap it
    /// as a signed-transaction file.
    ///
    /// # Errors
    /// [`VaultError::KeyMismatch`] if the fresh signature does not verify (never
    /// expected; a guard against a broken key).
    pub(crate) fn sign(&self, key: &KeyPair, public: &PublicKey) -> Result<TxFile> {
        let signature = key.sign_tx(&self.network, &self.tx);
        let file = TxFile::new(
            self.network,
            SignedTransaction {
                tx: self.tx.clone(),
                signature,
            },
        );
        file.verify(public).map_err(|e| VaultError::KeyMismatch {
            path: "(signing key)".into(),
            reason: format!("the new signature does not verify: {e}"),
        })?;
        Ok(file)
    }
}

/// The JSON description written beside a signed transaction file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// "cvx-vault-signed-tx".
    pub format: String,
    /// 1.
    pub version: u32,
    /// The kind.
    pub action: Kind,
    /// Human-readable action.
    pub summary: String,
    /// Network id.
    pub network: String,
    /// Origin account.
    pub origin: u64,
    /// Sequence.
    pub sequence: u64,
    /// The signer's public key.
    pub signer: String,
    /// The transaction id.
    pub tx_id: String,
    /// The hash phrase shown before signing.
    pub phrase: String,
    /// SHA-256 of the signed-transaction file.
    pub file_sha256: String,
    /// Length of the signed-transaction file.
    pub file_len: u64,
}

impl Description {
    /// Describe a signed file.
    #[must_use]
    pub fn of(built: &Built, signer: &PublicKey, file_bytes: &[u8]) -> Self {
        Self {
            format: "cvx-vault-signed-tx".into(),
            version: 1,
            action: built.kind,
            summary: describe_action(&built.tx.action).replace("\n              ", " "),
            network: built.network.to_string(),
            origin: built.tx.origin.0,
            sequence: built.tx.sequence,
            signer: signer.to_hex(),
            tx_id: built.id().to_hex(),
            phrase: hash_phrase(&built.network, &built.tx),
            file_sha256: crate::fsio::sha256_hex(file_bytes),
            file_len: file_bytes.len() as u64,
        }
    }

    /// Pretty JSON with a final newline.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// The warning shown (and written) with every ladder.
pub const LADDER_WARNING: &str = "\
WARNING: these files are VALID, SIGNED stake withdrawals.
  * Anyone who holds one can submit it. Submitted while the account's sequence is
    exactly one below the file's, it withdraws the peer's whole stake at once (the
    stake returns to the controlling account; nothing moves anywhere else).
  * Store them like the key itself: offline, encrypted or in a sealed envelope/safe,
    with a record of who holds which copy. Never on the peer host.
  * Each file is bound to one sequence number: once the account uses that sequence
    for any other transaction, the file is void. Files for higher sequences stay
    valid until used up the same way.
  * Destroy every copy when one of them has been used, when the account's sequence
    has passed them, or when the peer is decommissioned: securely delete the files
    and shred the printed QR codes.
";
