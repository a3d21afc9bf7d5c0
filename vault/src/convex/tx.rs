//! The two Convex transactions the vault signs, typed: the emergency withdrawal
//! `(set-peer-stake <peer-key> 0)` as an Invoke, and a coin transfer as a Transfer.
//! Their CAD3 encodings, the signed wrapper (`0x90` ‖ key ‖ signature ‖ transaction),
//! the transaction id, the JSON body of `/api/v1/transaction/submit`, the human
//! summary, and the strict decoder behind `cvx-vault convex verify`.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::cad3::{self, Cell, Reader, tag};
use crate::error::{Result, VaultError};

/// Convex's supply in its smallest unit (copper): 10^18. No amount can exceed it.
pub const MAX_SUPPLY: u64 = 1_000_000_000_000_000_000;
/// The symbol of the withdrawal's command.
pub const SET_PEER_STAKE: &str = "set-peer-stake";
/// Wrapper length bounds: `0x90`, key, signature, and an inline transaction.
pub const WRAPPER_MIN: usize = 1 + 32 + 64 + 1;
/// The largest wrapper the vault writes or reads (the transaction is always inline).
pub const WRAPPER_MAX: usize = 1 + 32 + 64 + cad3::EMBED_MAX;

/// Said with every Convex transaction the vault shows, signs or verifies.
pub const REPLAY_WARNING: &str = "\
REPLAY WARNING: a Convex signature has no network id and no expiry. These exact bytes
are valid on ANY Convex network where account #ORIGIN has this key and its sequence is
SEQ-1. Anyone who holds them can submit them there. Keep them like the key until used.
";

/// What a Convex transaction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `(set-peer-stake <peer-key> 0)`: the peer's whole stake returns to the account.
    Withdraw {
        /// The peer's Ed25519 key.
        peer_key: [u8; 32],
    },
    /// Move `amount` copper to account `to`.
    Transfer {
        /// The receiving account.
        to: u64,
        /// The amount, in copper.
        amount: u64,
    },
}

impl Action {
    /// The short name used in file names and the audit log.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Withdraw { .. } => "withdraw",
            Self::Transfer { .. } => "transfer",
        }
    }
}

/// An unsigned Convex transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tx {
    /// The account that signs and pays.
    pub origin: u64,
    /// The account's current sequence + 1.
    pub sequence: u64,
    /// What it does.
    pub action: Action,
}

/// A 64-hex-digit Ed25519 key that is a valid curve point.
///
/// # Errors
/// [`VaultError::Invalid`] naming `field`.
pub fn parse_key(field: &str, text: &str) -> Result<[u8; 32]> {
    let t = text.strip_prefix("0x").unwrap_or(text);
    let bytes: [u8; 32] = hex::decode(t)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            VaultError::invalid(
                field,
                format!("{text:?} is not 64 hex digits (an Ed25519 public key)"),
            )
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| {
        VaultError::invalid(
            field,
            "not a valid Ed25519 public key (check it against the peer's records)",
        )
    })?;
    Ok(bytes)
}

impl Tx {
    /// Build and check a transaction from its fields.
    ///
    /// # Errors
    /// [`VaultError::Invalid`] naming the field and the fix.
    pub fn new(origin: u64, sequence: u64, action: Action) -> Result<Self> {
        let long = i64::MAX.unsigned_abs();
        if origin > long {
            return Err(VaultError::invalid("origin", "above the largest address"));
        }
        if sequence == 0 || sequence > long {
            return Err(VaultError::invalid(
                "sequence",
                format!(
                    "{sequence} is never valid: a Convex transaction's sequence is the account's current sequence + 1 (1..={long})"
                ),
            ));
        }
        if let Action::Transfer { to, amount } = action {
            if to > long {
                return Err(VaultError::invalid("to", "above the largest address"));
            }
            if to == origin {
                return Err(VaultError::invalid(
                    "to",
                    "is the origin itself; a transfer to oneself only burns fees",
                ));
            }
            if amount == 0 || amount > MAX_SUPPLY {
                return Err(VaultError::invalid(
                    "amount",
                    format!("must be 1..={MAX_SUPPLY} copper (Convex's whole supply)"),
                ));
            }
        }
        Ok(Self {
            origin,
            sequence,
            action,
        })
    }

    /// The CAD3 value.
    fn cell(&self) -> Cell {
        // `new` keeps every number within i64: the casts are exact.
        let origin = Cell::Address(self.origin);
        let seq = Cell::Long(i64::try_from(self.sequence).unwrap_or(i64::MAX));
        match self.action {
            Action::Withdraw { peer_key } => {
                Cell::Record(tag::INVOKE, vec![origin, seq, Self::command(&peer_key)])
            }
            Action::Transfer { to, amount } => Cell::Record(
                tag::TRANSFER,
                vec![
                    origin,
                    seq,
                    Cell::Address(to),
                    Cell::Long(i64::try_from(amount).unwrap_or(i64::MAX)),
                ],
            ),
        }
    }

    /// The command form `(set-peer-stake <peer-key> 0)`: a List, not a String.
    fn command(peer_key: &[u8; 32]) -> Cell {
        Cell::List(vec![
            Cell::Symbol(SET_PEER_STAKE.into()),
            Cell::Blob(peer_key.to_vec()),
            Cell::Long(0),
        ])
    }

    /// The transaction's CAD3 encoding: exactly the bytes the Ed25519 signature covers
    /// (always at most 140 bytes, so it is embedded in the wrapper as is).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        self.cell().encode()
    }

    /// The command in Convex Lisp, for people.
    #[must_use]
    pub fn lisp(&self) -> String {
        match self.action {
            Action::Withdraw { peer_key } => {
                format!("({SET_PEER_STAKE} 0x{} 0)", hex::encode(peer_key))
            }
            Action::Transfer { to, amount } => format!("(transfer #{to} {amount})"),
        }
    }

    /// The summary before signing: every field, and the bytes to be signed.
    #[must_use]
    pub fn human(&self, key: &[u8; 32]) -> String {
        let enc = self.encode();
        let (what, detail) = match self.action {
            Action::Withdraw { peer_key } => (
                "withdraw: set-peer-stake 0 (the peer's whole stake returns to the origin)",
                format!(
                    "  peer key   0x{}\n  amount     0 (the new stake)\n",
                    hex::encode(peer_key)
                ),
            ),
            Action::Transfer { to, amount } => (
                "transfer",
                format!("  to         #{to}\n  amount     {amount} copper\n"),
            ),
        };
        format!(
            "Convex transaction ({kind}, CAD3)\n  action     {what}\n  origin     #{o}\n  sequence   {s} (the account's current sequence must be {prev})\n{detail}  key        0x{k} (must be account #{o}'s key)\n  form       {lisp}\n  signs      {n} bytes: {bytes}\n",
            kind = if matches!(self.action, Action::Withdraw { .. }) {
                "Invoke"
            } else {
                "Transfer"
            },
            o = self.origin,
            s = self.sequence,
            prev = self.sequence - 1,
            k = hex::encode(key),
            lisp = self.lisp(),
            n = enc.len(),
            bytes = hex::encode(&enc),
        )
    }

    /// The replay warning with this transaction's origin and sequence.
    #[must_use]
    pub fn replay_warning(&self) -> String {
        REPLAY_WARNING
            .replace("ORIGIN", &self.origin.to_string())
            .replace("SEQ-1", &(self.sequence - 1).to_string())
    }
}

/// A signed Convex transaction: the account key, its signature, the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The account's public key.
    pub key: [u8; 32],
    /// Ed25519 over [`Tx::encode`].
    pub signature: [u8; 64],
    /// The transaction.
    pub tx: Tx,
}

/// The JSON body of `POST /api/v1/transaction/submit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubmitBody {
    /// Hex of the transaction's encoding (inline, so no `prepare` is needed).
    pub hash: String,
    /// Hex of the account key.
    pub account_key: String,
    /// Hex of the signature.
    pub sig: String,
}

impl Signed {
    /// The wrapper `0x90` ‖ key ‖ signature ‖ transaction: the body for
    /// `Content-Type: application/cvx-raw`.
    #[must_use]
    pub fn wrapper(&self) -> Vec<u8> {
        let mut out = vec![tag::SIGNED];
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.signature);
        cad3::write_child_encoding(&mut out, &self.tx.encode());
        out
    }

    /// The transaction id a Convex peer reports: SHA3-256 of the wrapper.
    #[must_use]
    pub fn id(&self) -> [u8; 32] {
        cad3::sha3(&self.wrapper())
    }

    /// The submit body.
    #[must_use]
    pub fn submit_body(&self) -> SubmitBody {
        SubmitBody {
            hash: hex::encode(self.tx.encode()),
            account_key: hex::encode(self.key),
            sig: hex::encode(self.signature),
        }
    }

    /// The submit body as pretty JSON with a final newline.
    #[must_use]
    pub fn submit_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.submit_body()).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Verify the signature strictly (RFC 8032 with dalek's strict checks).
    ///
    /// # Errors
    /// A description of what does not hold.
    pub fn verify(&self) -> std::result::Result<(), String> {
        let vk = VerifyingKey::from_bytes(&self.key)
            .map_err(|_| "the key is not a valid Ed25519 public key".to_owned())?;
        vk.verify_strict(&self.tx.encode(), &Signature::from_bytes(&self.signature))
            .map_err(|_| {
                "the signature does not verify over the transaction with this key".to_owned()
            })
    }

    /// The full summary after signing: fields, the replay warning, the id.
    #[must_use]
    pub fn human(&self) -> String {
        format!(
            "{}{}  tx id      0x{} (SHA3-256 of the {}-byte wrapper; the id a Convex peer reports)\n",
            self.tx.human(&self.key),
            self.tx.replay_warning(),
            hex::encode(self.id()),
            self.wrapper().len()
        )
    }

    /// Decode a wrapper strictly: exactly the two shapes the vault writes, every
    /// number minimal, nothing after the end (the bytes must re-encode identically).
    /// The signature is not checked here ([`Signed::verify`]).
    ///
    /// # Errors
    /// A description of the first thing that is wrong.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < WRAPPER_MIN || bytes.len() > WRAPPER_MAX {
            return Err(format!(
                "{} bytes; a signed Convex transaction from the vault is {WRAPPER_MIN}..={WRAPPER_MAX}",
                bytes.len()
            ));
        }
        let mut r = Reader::new(bytes);
        r.expect(tag::SIGNED, "signed data 0x90")?;
        let key: [u8; 32] = r.take(32)?.try_into().map_err(|_| "key".to_owned())?;
        let signature: [u8; 64] = r.take(64)?.try_into().map_err(|_| "signature".to_owned())?;
        let tx_start = WRAPPER_MIN - 1;
        let t = r.take(1)?[0];
        let count = r.vlq()?;
        let origin_n = r.address("origin")?;
        let seq = r.long("sequence")?;
        let sequence = u64::try_from(seq).map_err(|_| format!("sequence {seq} is negative"))?;
        let action = match (t, count) {
            (tag::INVOKE, 3) => {
                r.expect(tag::LIST, "the command: a List")?;
                if r.vlq()? != 3 {
                    return Err("the command is not a 3-element form".into());
                }
                // Reverse order: 0, the key, the symbol.
                let stake = r.long("the new stake")?;
                if stake != 0 {
                    return Err(format!("the new stake is {stake}, not 0"));
                }
                r.expect(tag::BLOB, "the peer key: a Blob")?;
                if r.vlq()? != 32 {
                    return Err("the peer key is not 32 bytes".into());
                }
                let peer_key: [u8; 32] =
                    r.take(32)?.try_into().map_err(|_| "peer key".to_owned())?;
                r.expect(tag::SYMBOL, "the operator: a Symbol")?;
                let n = r.take(1)?[0];
                if r.take(usize::from(n))? != SET_PEER_STAKE.as_bytes() {
                    return Err(format!("the operator is not {SET_PEER_STAKE}"));
                }
                Action::Withdraw { peer_key }
            }
            (tag::TRANSFER, 4) => {
                let to = r.address("target")?;
                let amount = r.long("amount")?;
                let amount =
                    u64::try_from(amount).map_err(|_| format!("amount {amount} is negative"))?;
                Action::Transfer { to, amount }
            }
            _ => {
                return Err(format!(
                    "byte {tx_start} is {t:#04x} with {count} fields: neither an Invoke (0xd0, 3) nor a Transfer (0xd1, 4)"
                ));
            }
        };
        if r.remaining() != 0 {
            return Err(format!("{} bytes after the end", r.remaining()));
        }
        let tx = Tx::new(origin_n, sequence, action).map_err(|e| e.to_string())?;
        let s = Self { key, signature, tx };
        if s.wrapper() != bytes {
            return Err("not the canonical encoding (a number or a count is not minimal)".into());
        }
        Ok(s)
    }

    /// Rebuild the wrapper from a submit body and decode it.
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn from_submit_body(b: &SubmitBody) -> std::result::Result<Self, String> {
        let h = |name: &str, v: &str| hex::decode(v).map_err(|_| format!("\"{name}\" is not hex"));
        let key = h("accountKey", &b.account_key)?;
        let sig = h("sig", &b.sig)?;
        if key.len() != 32 || sig.len() != 64 {
            return Err("\"accountKey\" must be 32 bytes and \"sig\" 64".into());
        }
        let mut w = vec![tag::SIGNED];
        w.extend_from_slice(&key);
        w.extend_from_slice(&sig);
        w.extend_from_slice(&h("hash", &b.hash)?);
        Self::decode(&w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn pk() -> [u8; 32] {
        parse_key("peer", PK).unwrap()
    }

    #[test]
    fn fields_are_checked_with_the_fix_named() {
        let w = Action::Withdraw { peer_key: pk() };
        assert!(Tx::new(12, 0, w).is_err());
        assert!(Tx::new(12, u64::MAX, w).is_err());
        assert!(Tx::new(12, 1, Action::Transfer { to: 12, amount: 1 }).is_err());
        assert!(Tx::new(12, 1, Action::Transfer { to: 13, amount: 0 }).is_err());
        assert!(
            Tx::new(
                12,
                1,
                Action::Transfer {
                    to: 13,
                    amount: MAX_SUPPLY + 1
                }
            )
            .is_err()
        );
        assert!(parse_key("peer", "abc").is_err());
        // Not a point on the curve (y = 2 has no x).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(parse_key("peer", &hex::encode(bad)).is_err());
    }

    #[test]
    fn the_largest_transactions_stay_inline() {
        let max = i64::MAX.unsigned_abs();
        let w = Tx::new(max, max, Action::Withdraw { peer_key: pk() }).unwrap();
        assert_eq!(w.encode().len(), 74);
        let t = Tx::new(
            max,
            max,
            Action::Transfer {
                to: max - 1,
                amount: MAX_SUPPLY,
            },
        )
        .unwrap();
        assert!(t.encode().len() <= 74);
        let s = Signed {
            key: pk(),
            signature: [0; 64],
            tx: w,
        };
        assert_eq!(s.wrapper().len(), 171);
        assert!(s.wrapper().len() <= WRAPPER_MAX);
        assert_eq!(Signed::decode(&s.wrapper()).unwrap(), s);
    }

    #[test]
    fn decode_refuses_a_non_minimal_number_and_trailing_bytes() {
        let tx = Tx::new(
            12,
            15,
            Action::Transfer {
                to: 13,
                amount: 1000,
            },
        )
        .unwrap();
        let s = Signed {
            key: pk(),
            signature: [1; 64],
            tx,
        };
        let w = s.wrapper();
        assert_eq!(Signed::decode(&w).unwrap(), s);
        let mut long = w.clone();
        long.push(0);
        assert!(Signed::decode(&long).is_err());
        // The sequence 15 as 12000f instead of 110f.
        let mut nm = w[..97].to_vec();
        nm.extend_from_slice(&hex::decode("d104ea0c12000fea0d1203e8").unwrap());
        assert!(Signed::decode(&nm).unwrap_err().contains("canonical"));
    }
}
