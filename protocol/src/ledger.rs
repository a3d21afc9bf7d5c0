//! Ledger values: accounts, peer records, transactions, genesis, results.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::encoding::{BoundedVec, Canonical, DecodeError, ensure};
use crate::hash::Hash;
use crate::primitives::{
    Address, Amount, HostAddr, MAX_SUPPLY, Name, NetworkId, PublicKey, Signature, Timestamp,
};
use crate::sign::{SignKind, Signable};

/// Protocol cap on transactions per block (a genesis may set a lower one).
pub const MAX_BLOCK_TXS: usize = 4096;
/// Protocol cap on genesis accounts (2^20: a genesis of a million accounts, about 43 MB
/// encoded; the genesis is a local file, never received from the network).
pub const MAX_GENESIS_ACCOUNTS: usize = 1 << 20;
/// Protocol cap on peers (genesis peers, and orders in a belief).
pub const MAX_PEERS: usize = 256;

// Encoded-size bounds used for the per-type caps (postcard varints: u64 <= 10 bytes,
// u32 <= 5, an Amount <= 9 since it is <= 10^18 < 2^63).
const VARINT64: usize = 10;
const VARINT32: usize = 5;
const AMOUNT: usize = 9;
const KEY: usize = 32;
const SIG: usize = 64;
const HASH: usize = 32;
const OPT_HOST: usize = 1 + 2 + 255;

/// An account. Its address is its index in the account table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The key that signs the account's transactions (rotated by `SetKey`).
    pub key: PublicKey,
    /// Spendable coins.
    pub balance: Amount,
    /// The sequence number of the last transaction applied; the next must be this + 1.
    pub sequence: u64,
}

impl Canonical for Account {
    const NAME: &'static str = "Account";
    const MAX_LEN: usize = KEY + AMOUNT + VARINT64;
}

/// A peer as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's signing key (held by its cvx-signer).
    pub key: PublicKey,
    /// The account that controls the peer's stake and host (its cold key in the vault).
    pub controller: Address,
    /// Coins staked on the peer.
    pub stake: Amount,
    /// Where other peers connect to it, if it accepts connections.
    pub host: Option<HostAddr>,
    /// The timestamp of the newest block of this peer's that was finalized (stake decay
    /// starts from here).
    pub last_block_time: Timestamp,
}

impl Canonical for PeerRecord {
    const NAME: &'static str = "PeerRecord";
    const MAX_LEN: usize = KEY + VARINT64 + AMOUNT + OPT_HOST + VARINT64;
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// 0: move `amount` from the origin to `to`.
    Transfer {
        /// Receiving account.
        to: Address,
        /// Coins moved (must be > 0).
        amount: Amount,
    },
    /// 1: create an account with `key`, funded with `balance` from the origin.
    CreateAccount {
        /// The new account's key.
        key: PublicKey,
        /// Coins moved from the origin into the new account (may be 0).
        balance: Amount,
    },
    /// 2: create a peer; the origin becomes its controller and `stake` moves from the
    /// origin's balance into the peer's stake.
    CreatePeer {
        /// The peer key (generated in the vault, provisioned into cvx-signer).
        key: PublicKey,
        /// Initial stake (at least the genesis minimum).
        stake: Amount,
        /// Public endpoint.
        host: Option<HostAddr>,
    },
    /// 3: set the stake of a peer the origin controls. The difference moves between the
    /// stake and the origin's balance; **0 returns the whole stake to the controller** —
    /// the emergency withdrawal.
    SetPeerStake {
        /// The peer.
        peer: PublicKey,
        /// New stake: 0, or at least the genesis minimum.
        stake: Amount,
    },
    /// 4: set (or clear) the public endpoint of a peer the origin controls.
    SetPeerHost {
        /// The peer.
        peer: PublicKey,
        /// New endpoint, or none.
        host: Option<HostAddr>,
    },
    /// 5: rotate the origin account's key (e.g. after a compromise).
    SetKey {
        /// The new key.
        key: PublicKey,
    },
}

/// A transaction: signed by the origin account's key with kind [`SignKind::Transaction`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The account that pays and signs.
    pub origin: Address,
    /// Must be the origin's sequence + 1 (so never 0).
    pub sequence: u64,
    /// What it does.
    pub action: Action,
}

impl Canonical for Transaction {
    const NAME: &'static str = "Transaction";
    const MAX_LEN: usize = VARINT64 + VARINT64 + 1 + KEY + AMOUNT + OPT_HOST;
    fn validate(&self) -> Result<(), DecodeError> {
        ensure(
            Self::NAME,
            self.sequence >= 1,
            "sequence numbers start at 1",
        )
    }

    /// The same hash as the default (of [`Canonical::encode`]'s bytes), encoded on the
    /// stack: a transaction is hashed several times on its way (id, sign-bytes, at
    /// ingress and at execution on every peer), and this saves an allocation each time.
    fn hash(&self) -> Hash {
        let mut buf = [0u8; Self::MAX_LEN];
        match postcard::to_slice(self, &mut buf) {
            Ok(bytes) => crate::hash::hash(bytes),
            // Unreachable for a valid transaction (MAX_LEN bounds every encoding); the
            // default path gives the same answer whatever happens.
            Err(_) => crate::hash::hash(&self.encode()),
        }
    }
}

impl Signable for Transaction {
    const KIND: SignKind = SignKind::Transaction;
}

/// A transaction with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// Ed25519 over the transaction's sign-bytes.
    pub signature: Signature,
}

impl Canonical for SignedTransaction {
    const NAME: &'static str = "SignedTransaction";
    const MAX_LEN: usize = Transaction::MAX_LEN + SIG;
    fn validate(&self) -> Result<(), DecodeError> {
        self.tx.validate()
    }
}

impl SignedTransaction {
    /// The transaction's id: the hash of the transaction (not of the signature, so a
    /// transaction has one id whatever bytes its signature has).
    #[must_use]
    pub fn id(&self) -> Hash {
        self.tx.hash()
    }
}

/// Network parameters, fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Minimum stake for a peer to propose blocks and have its orders counted.
    pub min_stake: Amount,
    /// Flat fee per transaction, paid to the block's proposer.
    pub fee: Amount,
    /// Transactions per block, `1..=MAX_BLOCK_TXS`.
    pub max_block_txs: u32,
    /// Minimum time between two blocks of one peer.
    pub min_block_time_ms: u64,
    /// A block older than this (relative to the proposer's clock at merge) is not
    /// accepted into an order.
    pub max_block_backdate_ms: u64,
    /// Orders and blocks dated more than this in the future are ignored.
    pub max_future_ms: u64,
    /// How long a peer keeps its proposal before adopting a different one (Convex: 100).
    pub proposal_hold_ms: u64,
    /// A peer that stops producing blocks keeps its full weight this long.
    pub decay_grace_ms: u64,
    /// After the grace period, weight decays by a factor e every this many ms.
    pub decay_time_ms: u64,
    /// Decayed weight never falls below this fraction (parts per million) of stake.
    pub decay_floor_ppm: u32,
}

impl Params {
    fn check(&self) -> Result<(), DecodeError> {
        let w = Genesis::NAME;
        ensure(w, !self.min_stake.is_zero(), "params.min_stake must be > 0")?;
        ensure(
            w,
            self.max_block_txs >= 1 && self.max_block_txs as usize <= MAX_BLOCK_TXS,
            "params.max_block_txs must be 1..=4096",
        )?;
        ensure(
            w,
            self.decay_time_ms > 0,
            "params.decay_time_ms must be > 0",
        )?;
        ensure(
            w,
            self.decay_floor_ppm <= 1_000_000,
            "params.decay_floor_ppm must be <= 1000000",
        )
    }
}

/// A genesis account (its address is its index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// Its key.
    pub key: PublicKey,
    /// Its balance.
    pub balance: Amount,
}

/// A genesis peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisPeer {
    /// Peer key.
    pub key: PublicKey,
    /// Controlling account (an index into the genesis accounts).
    pub controller: Address,
    /// Stake (at least `min_stake`; counted in the total supply).
    pub stake: Amount,
    /// Endpoint.
    pub host: Option<HostAddr>,
}

/// A genesis as [`Genesis::stakes_of`] reads it: what a signer needs to know the stake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisStakes {
    /// Genesis time.
    pub time: Timestamp,
    /// The genesis peers.
    pub peers: Vec<GenesisPeer>,
    /// The parameters (`min_stake` among them).
    pub params: Params,
}

/// Why [`Genesis::stakes_of`] refused its bytes.
#[derive(Debug, thiserror::Error)]
pub enum GenesisStakesError {
    /// A canonical genesis, of another network.
    #[error("the genesis of network {0}")]
    OtherNetwork(NetworkId),
    /// Not a canonical genesis.
    #[error("not a canonical genesis: {0}")]
    NotGenesis(DecodeError),
}

/// The genesis encoding with the accounts skipped: the same fields in the same order
/// (postcard encodes a struct as its fields, in order), an account read as the bytes of
/// its key and its balance.
#[derive(Deserialize)]
struct StakesView {
    _network_name: Name,
    time: Timestamp,
    _accounts: SkippedAccounts,
    peers: BoundedVec<GenesisPeer, MAX_PEERS>,
    params: Params,
}

/// The genesis accounts, read and dropped one by one (no allocation, no key validation).
struct SkippedAccounts;

impl<'de> Deserialize<'de> for SkippedAccounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Skip;
        impl<'de> serde::de::Visitor<'de> for Skip {
            type Value = SkippedAccounts;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("the genesis accounts")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SkippedAccounts, A::Error> {
                // A `GenesisAccount`: the key's 32 bytes, then the balance (a u64).
                while seq.next_element::<([u8; 32], u64)>()?.is_some() {}
                Ok(SkippedAccounts)
            }
        }
        d.deserialize_seq(Skip)
    }
}

/// The genesis: the first state and the rules. Its hash is the network id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Human name of the network (1..=64 printable ASCII bytes).
    pub network_name: Name,
    /// Genesis time.
    pub time: Timestamp,
    /// Initial accounts; address = index.
    pub accounts: BoundedVec<GenesisAccount, MAX_GENESIS_ACCOUNTS>,
    /// Initial peers (at least one), keys distinct.
    pub peers: BoundedVec<GenesisPeer, MAX_PEERS>,
    /// The parameters.
    pub params: Params,
}

impl Canonical for Genesis {
    const NAME: &'static str = "Genesis";
    const MAX_LEN: usize = 2
        + 64
        + VARINT64
        + 3
        + MAX_GENESIS_ACCOUNTS * (KEY + AMOUNT)
        + 3
        + MAX_PEERS * (KEY + VARINT64 + AMOUNT + OPT_HOST)
        + AMOUNT * 2
        + VARINT32 * 2
        + VARINT64 * 6;

    fn validate(&self) -> Result<(), DecodeError> {
        let w = Self::NAME;
        ensure(
            w,
            !self.network_name.as_str().is_empty(),
            "network_name is empty",
        )?;
        self.params.check()?;
        ensure(
            w,
            !self.peers.is_empty(),
            "a genesis needs at least one peer",
        )?;
        let mut total: u64 = 0;
        for a in self.accounts.iter() {
            total = total.saturating_add(a.balance.get());
        }
        let mut keys: Vec<&PublicKey> = Vec::with_capacity(self.peers.len());
        for p in self.peers.iter() {
            ensure(
                w,
                p.controller.0 < self.accounts.len() as u64,
                "a genesis peer's controller is not a genesis account",
            )?;
            ensure(
                w,
                p.stake >= self.params.min_stake,
                "a genesis peer's stake is below min_stake",
            )?;
            total = total.saturating_add(p.stake.get());
            keys.push(&p.key);
        }
        ensure(
            w,
            total <= MAX_SUPPLY,
            "balances plus stakes exceed the maximum supply",
        )?;
        keys.sort_unstable();
        ensure(
            w,
            keys.windows(2).all(|k| k[0] != k[1]),
            "two genesis peers share a key",
        )
    }
}

impl Genesis {
    /// The network id: the hash of the canonical encoding.
    #[must_use]
    pub fn network_id(&self) -> NetworkId {
        NetworkId(self.hash())
    }

    /// What a signer needs of the genesis whose encoding is `bytes`, when it is the
    /// genesis of `network`: its time, its peers and its parameters.
    ///
    /// The bytes are hashed first. When they hash to `network` they are the canonical
    /// genesis of that network (the network id is that hash), which every peer decodes
    /// and checks in full, so the accounts are skipped without building or validating
    /// their keys: at 10^6 accounts that validation took the signer ~5 s of CPU at each
    /// start. Anything else is decoded in full only to say what it is.
    ///
    /// # Errors
    /// [`GenesisStakesError::OtherNetwork`] for the canonical genesis of another network,
    /// [`GenesisStakesError::NotGenesis`] for bytes that are not a canonical genesis.
    pub fn stakes_of(
        bytes: &[u8],
        network: &NetworkId,
    ) -> Result<GenesisStakes, GenesisStakesError> {
        if crate::hash::hash(bytes) != network.0 {
            return Err(match Self::decode(bytes) {
                Ok(g) => GenesisStakesError::OtherNetwork(g.network_id()),
                Err(e) => GenesisStakesError::NotGenesis(e),
            });
        }
        let view: StakesView = postcard::from_bytes(bytes).map_err(|e| {
            GenesisStakesError::NotGenesis(DecodeError::Malformed {
                what: Self::NAME,
                detail: e.to_string(),
            })
        })?;
        Ok(GenesisStakes {
            time: view.time,
            peers: view.peers.iter().cloned().collect(),
            params: view.params,
        })
    }

    /// The sum of all balances and stakes (the supply that execution conserves).
    #[must_use]
    pub fn total_coins(&self) -> u64 {
        let balances: u64 = self.accounts.iter().map(|a| a.balance.get()).sum();
        let stakes: u64 = self.peers.iter().map(|p| p.stake.get()).sum();
        balances + stakes
    }
}

/// The outcome of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxOutcome {
    /// 0: applied.
    Applied,
    /// 1: not applied; the fee rules for failures are in docs/protocol.md.
    Failed(ErrorCode),
}

impl Canonical for TxOutcome {
    const NAME: &'static str = "TxOutcome";
    const MAX_LEN: usize = 2;
}

/// A finalized transaction's result, as a peer reports it to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResult {
    /// The transaction id ([`SignedTransaction::id`]).
    pub id: Hash,
    /// The position of its block in the finalized sequence.
    pub block_position: u64,
    /// Its index in the block.
    pub index: u32,
    /// What happened.
    pub outcome: TxOutcome,
}

impl Canonical for TxResult {
    const NAME: &'static str = "TxResult";
    const MAX_LEN: usize = HASH + VARINT64 + VARINT32 + 2;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The stack-encoded transaction hash equals the hash of the canonical encoding, for
    /// every action, the longest ones included.
    #[test]
    fn the_transaction_hash_is_the_hash_of_its_encoding() {
        let key =
            PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        let amount = Amount::new(1_000_000_000_000_000_000).unwrap();
        let long = vec!["h".repeat(61); 4].join(".");
        let host = Some(HostAddr::new(&format!("{long}:65535")).unwrap());
        let actions = [
            Action::Transfer {
                to: Address(u64::MAX),
                amount,
            },
            Action::CreateAccount {
                key,
                balance: amount,
            },
            Action::CreatePeer {
                key,
                stake: amount,
                host: host.clone(),
            },
            Action::SetPeerStake {
                peer: key,
                stake: amount,
            },
            Action::SetPeerHost { peer: key, host },
            Action::SetKey { key },
        ];
        for action in actions {
            let tx = Transaction {
                origin: Address(u64::MAX),
                sequence: u64::MAX,
                action,
            };
            assert_eq!(tx.hash(), crate::hash::hash(&tx.encode()), "{tx:?}");
        }
    }
}
