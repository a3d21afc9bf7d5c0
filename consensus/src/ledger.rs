//! Ledger execution: the finalized state and how a finalized block changes it.
//!
//! The state sits behind [`State`]'s small method set (`account`, `peer`, `peers`,
//! `apply_block`, `state_hash`, `total_coins`, `accounts_len`). It is a value in memory:
//! cvx-peer writes it to the store as a cvx-etch Merkle state tree (`peer/src/persist/tree.rs`)
//! and reads it back; this crate does no I/O.
//!
//! Rules (docs/consensus.md has the prose and the reasons):
//! * a block is applied as a whole or rejected as a whole ([`BlockRejection`]): its
//!   proposer must be a peer with at least `min_stake`, its signature must verify, its body
//!   must match the header, it may carry at most `max_block_txs` transactions, its
//!   timestamp may not be earlier than the proposer's previous finalized block nor more
//!   than `max_block_backdate_ms` before the state's time;
//! * per transaction, in order: origin exists (`NOBODY`), sequence = account sequence + 1
//!   (`SEQUENCE`), signature valid under the origin's current key (`SIGNATURE`), the fee
//!   is payable (`FUNDS`) — none of these charge anything or move the sequence; after
//!   that the fee is charged to the origin and credited to the proposer's controller, the
//!   sequence moves, and the action either applies or fails with a stable code (its own
//!   effects rolled back, the fee kept).

use std::collections::BTreeMap;

use cvx_protocol::account_tree::AccountTree;
use cvx_protocol::consensus::{Block, body_hash};
use cvx_protocol::cow_vec::CowVec;
use cvx_protocol::hash::hash_parts;
use cvx_protocol::ledger::{
    Account, Action, Genesis, MAX_PEERS, Params, PeerRecord, SignedTransaction, TxOutcome,
};
use cvx_protocol::state_root::{StateRootParts, peers_root};
use cvx_protocol::{Address, Amount, Canonical, ErrorCode, Hash, NetworkId, PublicKey, Timestamp};

use crate::verified::Verified;

pub use crate::verified::{BATCH_VERIFY, MIN_BATCH};

/// Why a whole block was not applied. Stable: part of every peer's execution result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockRejection {
    /// The proposer is not a peer, or its stake is below `min_stake`.
    #[error("the block's proposer is not a peer with at least the minimum stake")]
    ProposerStake,
    /// The header signature does not verify under the proposer's key.
    #[error("the block header's signature does not verify under the proposer's key")]
    Signature,
    /// `tx_count`/`tx_hash` do not describe the body.
    #[error("the block body does not match its header")]
    Body,
    /// More transactions than `params.max_block_txs`.
    #[error("the block carries more transactions than the network allows")]
    TooManyTransactions,
    /// Timestamp before the proposer's previous finalized block.
    #[error("the block is dated before its proposer's previous finalized block")]
    EarlierThanPrevious,
    /// Timestamp more than `max_block_backdate_ms` before the state's time.
    #[error("the block is dated too far before the ledger's time")]
    Backdated,
}

/// What executing one block did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Applied; one outcome per transaction, in order.
    Applied(Vec<TxOutcome>),
    /// Not applied at all.
    Rejected(BlockRejection),
}

/// The finalized ledger state. Serializable (postcard, as its four data fields; the
/// Merkle caches are rebuilt on decode): version 1 stores of cvx-peer held it as one blob
/// next to the [`crate::Snapshot`], and are still read and converted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StateData", into = "StateData")]
pub struct State {
    /// Copy-on-write: a clone of the state (a snapshot) shares every unchanged chunk.
    accounts: CowVec<Account>,
    peers: BTreeMap<PublicKey, PeerRecord>,
    /// The newest timestamp of an applied block (genesis time at first).
    time: Timestamp,
    /// Blocks executed so far (applied or rejected).
    height: u64,
    /// The accounts' Merkle tree, current outside of [`State::apply`].
    tree: AccountTree,
    /// [`peers_root`] of the peer table, current outside of [`State::apply`].
    peers_root: Hash,
    /// Addresses changed by the block being applied (empty outside of [`State::apply`]).
    dirty: Vec<u64>,
    /// Signatures already verified (the process-wide set unless replaced; not part of the
    /// state's value: equal and encoded whatever it holds).
    verified: Verified,
}

/// The serialized form of [`State`] (the layout of version 1 stores).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct StateData {
    accounts: Vec<Account>,
    peers: BTreeMap<PublicKey, PeerRecord>,
    time: Timestamp,
    height: u64,
}

impl From<StateData> for State {
    fn from(d: StateData) -> Self {
        Self::assemble(d.accounts, d.peers, d.time, d.height)
    }
}

impl From<State> for StateData {
    fn from(s: State) -> Self {
        Self {
            accounts: s.accounts.to_vec(),
            peers: s.peers,
            time: s.time,
            height: s.height,
        }
    }
}

/// Domain tag of the version 1 state hash ([`State::legacy_state_hash_v1`]).
const LEGACY_STATE_TAG: &[u8] = b"cvx1/state";

impl State {
    /// The state a genesis describes.
    #[must_use]
    pub fn from_genesis(g: &Genesis) -> Self {
        let accounts = g
            .accounts
            .iter()
            .map(|a| Account {
                key: a.key,
                balance: a.balance,
                sequence: 0,
            })
            .collect();
        let peers = g
            .peers
            .iter()
            .map(|p| {
                (
                    p.key,
                    PeerRecord {
                        key: p.key,
                        controller: p.controller,
                        stake: p.stake,
                        host: p.host.clone(),
                        last_block_time: g.time,
                    },
                )
            })
            .collect();
        Self::assemble(accounts, peers, g.time, 0)
    }

    /// A state with its Merkle caches built from scratch (O(n)).
    fn assemble(
        accounts: Vec<Account>,
        peers: BTreeMap<PublicKey, PeerRecord>,
        time: Timestamp,
        height: u64,
    ) -> Self {
        let tree = AccountTree::build(&accounts);
        let table: Vec<PeerRecord> = peers.values().cloned().collect();
        Self {
            accounts: CowVec::from_vec(accounts),
            peers,
            time,
            height,
            tree,
            peers_root: peers_root(&table),
            dirty: Vec::new(),
            verified: Verified::global(),
        }
    }

    /// A state from its parts (e.g. rebuilt from the store's state tree after a state
    /// sync). Peers are keyed by their own `key`; a later record with the same key replaces
    /// an earlier one (callers that need uniqueness check it before).
    #[must_use]
    pub fn from_parts(
        accounts: Vec<Account>,
        peers: Vec<PeerRecord>,
        time: Timestamp,
        height: u64,
    ) -> Self {
        Self::assemble(
            accounts,
            peers.into_iter().map(|p| (p.key, p)).collect(),
            time,
            height,
        )
    }

    /// Use `cache` for the signatures already verified instead of the process-wide set
    /// (tests, and hosts that keep their own).
    pub fn set_verified(&mut self, cache: Verified) {
        self.verified = cache;
    }

    /// The set of signatures already verified that execution consults.
    #[must_use]
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// Every account, in address order (address = index).
    #[must_use]
    pub const fn accounts(&self) -> &CowVec<Account> {
        &self.accounts
    }

    /// An account.
    #[must_use]
    pub fn account(&self, a: Address) -> Option<&Account> {
        self.accounts.get(usize::try_from(a.0).ok()?)
    }

    /// Number of accounts.
    #[must_use]
    pub fn accounts_len(&self) -> u64 {
        self.accounts.len() as u64
    }

    /// A peer.
    #[must_use]
    pub fn peer(&self, k: &PublicKey) -> Option<&PeerRecord> {
        self.peers.get(k)
    }

    /// Every peer, by key.
    pub fn peers(&self) -> impl Iterator<Item = &PeerRecord> {
        self.peers.values()
    }

    /// The ledger's time: the newest applied block's timestamp.
    #[must_use]
    pub const fn time(&self) -> Timestamp {
        self.time
    }

    /// Number of blocks executed.
    #[must_use]
    pub const fn height(&self) -> u64 {
        self.height
    }

    /// Sum of all balances and stakes.
    #[must_use]
    pub fn total_coins(&self) -> u128 {
        let b: u128 = self
            .accounts
            .iter()
            .map(|a| u128::from(a.balance.get()))
            .sum();
        let s: u128 = self.peers.values().map(|p| u128::from(p.stake.get())).sum();
        b + s
    }

    /// The state root (format 2, `cvx_protocol::state_root`): O(1), from the Merkle
    /// caches that [`State::apply_block`] keeps current.
    #[must_use]
    pub fn state_hash(&self) -> Hash {
        self.root_parts().root()
    }

    /// The parts the state root is composed of.
    #[must_use]
    pub fn root_parts(&self) -> StateRootParts {
        StateRootParts {
            height: self.height,
            time: self.time,
            account_count: self.accounts.len() as u64,
            accounts_root: self.tree.root(),
            peers_root: self.peers_root,
        }
    }

    /// The state root recomputed from scratch (O(n)): what [`State::state_hash`] must
    /// equal. For tests and for checking a state rebuilt from elsewhere.
    #[must_use]
    pub fn state_hash_from_scratch(&self) -> Hash {
        let table: Vec<PeerRecord> = self.peers.values().cloned().collect();
        StateRootParts {
            height: self.height,
            time: self.time,
            account_count: self.accounts.len() as u64,
            accounts_root: AccountTree::build(self.accounts.iter()).root(),
            peers_root: peers_root(&table),
        }
        .root()
    }

    /// The version 1 state hash (O(n), re-hashes every account), kept only to check
    /// stores written before the state root (cvx-peer record version 2) when they are
    /// converted: SHA-256 over `"cvx1/state" ‖ height ‖ time ‖ account count ‖ accounts in
    /// address order ‖ peer count ‖ peers in key order`, each in its canonical encoding.
    #[must_use]
    pub fn legacy_state_hash_v1(&self) -> Hash {
        let mut parts: Vec<Vec<u8>> =
            Vec::with_capacity(self.accounts.len() + self.peers.len() + 4);
        parts.push(self.height.to_le_bytes().to_vec());
        parts.push(self.time.0.to_le_bytes().to_vec());
        parts.push((self.accounts.len() as u64).to_le_bytes().to_vec());
        parts.extend(self.accounts.iter().map(Canonical::encode));
        parts.push((self.peers.len() as u64).to_le_bytes().to_vec());
        parts.extend(self.peers.values().map(Canonical::encode));
        let mut refs: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        refs.push(LEGACY_STATE_TAG);
        refs.extend(parts.iter().map(Vec::as_slice));
        hash_parts(&refs)
    }

    /// Check a block against the state (everything but the per-transaction rules).
    ///
    /// # Errors
    /// The [`BlockRejection`] that applies.
    pub fn check_block(
        &self,
        block: &Block,
        network: &NetworkId,
        params: &Params,
    ) -> Result<(), BlockRejection> {
        self.check_block_inner(block, network, params, false)
    }

    fn check_block_inner(
        &self,
        block: &Block,
        network: &NetworkId,
        params: &Params,
        header_verified: bool,
    ) -> Result<(), BlockRejection> {
        let h = &block.header;
        let Some(p) = self.peers.get(&h.proposer) else {
            return Err(BlockRejection::ProposerStake);
        };
        if p.stake < params.min_stake {
            return Err(BlockRejection::ProposerStake);
        }
        if h.tx_count > params.max_block_txs {
            return Err(BlockRejection::TooManyTransactions);
        }
        if h.tx_count as usize != block.transactions.len()
            || body_hash(&block.transactions) != h.tx_hash
        {
            return Err(BlockRejection::Body);
        }
        if h.timestamp < p.last_block_time {
            return Err(BlockRejection::EarlierThanPrevious);
        }
        if h.timestamp < self.time.minus_ms(params.max_block_backdate_ms) {
            return Err(BlockRejection::Backdated);
        }
        if !header_verified && h.proposer.verify(network, h, &block.signature).is_err() {
            return Err(BlockRejection::Signature);
        }
        Ok(())
    }

    /// Execute a finalized block.
    pub fn apply_block(
        &mut self,
        block: &Block,
        network: &NetworkId,
        params: &Params,
    ) -> BlockOutcome {
        self.apply(block, network, params, false)
    }

    /// Execute a finalized block whose header signature the caller has already verified
    /// strictly under `block.header.proposer` (the consensus state machine verifies
    /// every block on receipt). The outcome is the same as [`State::apply_block`]'s.
    pub fn apply_verified_block(
        &mut self,
        block: &Block,
        network: &NetworkId,
        params: &Params,
    ) -> BlockOutcome {
        self.apply(block, network, params, true)
    }

    fn apply(
        &mut self,
        block: &Block,
        network: &NetworkId,
        params: &Params,
        header_verified: bool,
    ) -> BlockOutcome {
        self.height += 1;
        if let Err(r) = self.check_block_inner(block, network, params, header_verified) {
            return BlockOutcome::Rejected(r);
        }
        let proposer = block.header.proposer;
        let controller = self
            .peers
            .get(&proposer)
            .map_or(Address(0), |p| p.controller);
        let pre = self.preverify(&block.transactions, network);
        let mut outcomes = Vec::with_capacity(block.transactions.len());
        for (i, stx) in block.transactions.iter().enumerate() {
            let checked = pre.get(i).copied().flatten();
            outcomes.push(self.apply_tx(stx, network, params, controller, checked));
        }
        if let Some(p) = self.peers.get_mut(&proposer) {
            p.last_block_time = p.last_block_time.max(block.header.timestamp);
        }
        self.time = self.time.max(block.header.timestamp);
        self.refresh_roots();
        BlockOutcome::Applied(outcomes)
    }

    /// Bring the Merkle caches up to date with the block just applied: one path per
    /// touched account (ascending, so new accounts append in address order), and the peer
    /// table's root (at most [`MAX_PEERS`] entries; the proposer's record changes with
    /// every block).
    fn refresh_roots(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for a in &dirty {
            if let Ok(i) = usize::try_from(*a)
                && let Some(acc) = self.accounts.get(i)
            {
                self.tree.set(i, acc);
            }
        }
        dirty.clear();
        self.dirty = dirty;
        let table: Vec<PeerRecord> = self.peers.values().cloned().collect();
        self.peers_root = peers_root(&table);
    }

    /// Signature verdicts ([`crate::verified::preverify`]) under the origins' keys at
    /// block start.
    fn preverify(
        &self,
        txs: &[SignedTransaction],
        network: &NetworkId,
    ) -> Vec<Option<(PublicKey, bool)>> {
        let keys: Vec<Option<PublicKey>> = txs
            .iter()
            .map(|stx| self.account(stx.tx.origin).map(|a| a.key))
            .collect();
        crate::verified::preverify(&self.verified, txs, &keys, network)
    }

    fn apply_tx(
        &mut self,
        stx: &SignedTransaction,
        network: &NetworkId,
        params: &Params,
        fee_to: Address,
        checked: Option<(PublicKey, bool)>,
    ) -> TxOutcome {
        let tx = &stx.tx;
        if tx.validate().is_err() {
            return TxOutcome::Failed(ErrorCode::Format);
        }
        let Some(acc) = self.account(tx.origin) else {
            return TxOutcome::Failed(ErrorCode::Nobody);
        };
        if acc.sequence.checked_add(1) != Some(tx.sequence) {
            return TxOutcome::Failed(ErrorCode::Sequence);
        }
        let sig_ok = match checked {
            Some((key, valid)) if key == acc.key => valid,
            _ => self.verified.verify_tx(network, &acc.key, stx),
        };
        if !sig_ok {
            return TxOutcome::Failed(ErrorCode::Signature);
        }
        if acc.balance < params.fee {
            return TxOutcome::Failed(ErrorCode::Funds);
        }
        // Charge the fee and move the sequence; these stay even if the action fails.
        let origin = tx.origin;
        self.debit(origin, params.fee);
        self.credit(fee_to, params.fee);
        if let Some(a) = self.account_mut(origin) {
            a.sequence = tx.sequence;
        }
        match self.apply_action(origin, &tx.action, params) {
            Ok(()) => TxOutcome::Applied,
            Err(c) => TxOutcome::Failed(c),
        }
    }

    /// The only mutable access to an account: marks it for [`State::refresh_roots`].
    fn account_mut(&mut self, a: Address) -> Option<&mut Account> {
        let acc = self.accounts.get_mut(usize::try_from(a.0).ok()?)?;
        self.dirty.push(a.0);
        Some(acc)
    }

    fn balance(&self, a: Address) -> Amount {
        self.account(a).map_or(Amount::ZERO, |x| x.balance)
    }

    /// Subtract (callers checked the balance).
    fn debit(&mut self, a: Address, amount: Amount) {
        if let Some(acc) = self.account_mut(a) {
            acc.balance = acc.balance.checked_sub(amount).unwrap_or(Amount::ZERO);
        }
    }

    /// Add; the supply bound makes overflow impossible while coins are conserved.
    fn credit(&mut self, a: Address, amount: Amount) {
        if let Some(acc) = self.account_mut(a) {
            acc.balance = acc.balance.checked_add(amount).unwrap_or(acc.balance);
        }
    }

    fn apply_action(
        &mut self,
        origin: Address,
        action: &Action,
        params: &Params,
    ) -> Result<(), ErrorCode> {
        match action {
            Action::Transfer { to, amount } => {
                if amount.is_zero() || *to == origin {
                    return Err(ErrorCode::Argument);
                }
                if self.account(*to).is_none() {
                    return Err(ErrorCode::Nobody);
                }
                if self.balance(origin) < *amount {
                    return Err(ErrorCode::Funds);
                }
                self.debit(origin, *amount);
                self.credit(*to, *amount);
            }
            Action::CreateAccount { key, balance } => {
                if self.balance(origin) < *balance {
                    return Err(ErrorCode::Funds);
                }
                self.debit(origin, *balance);
                self.dirty.push(self.accounts.len() as u64);
                self.accounts.push(Account {
                    key: *key,
                    balance: *balance,
                    sequence: 0,
                });
            }
            Action::CreatePeer { key, stake, host } => {
                if self.peers.contains_key(key) {
                    return Err(ErrorCode::Exists);
                }
                if *stake < params.min_stake {
                    return Err(ErrorCode::Argument);
                }
                if self.peers.len() >= MAX_PEERS {
                    return Err(ErrorCode::State);
                }
                if self.balance(origin) < *stake {
                    return Err(ErrorCode::Funds);
                }
                self.debit(origin, *stake);
                self.peers.insert(
                    *key,
                    PeerRecord {
                        key: *key,
                        controller: origin,
                        stake: *stake,
                        host: host.clone(),
                        last_block_time: self.time,
                    },
                );
            }
            Action::SetPeerStake { peer, stake } => {
                let Some(p) = self.peers.get(peer) else {
                    return Err(ErrorCode::Nobody);
                };
                if p.controller != origin {
                    return Err(ErrorCode::Trust);
                }
                if !stake.is_zero() && *stake < params.min_stake {
                    return Err(ErrorCode::Argument);
                }
                let old = p.stake;
                if *stake > old {
                    let diff = stake.checked_sub(old).unwrap_or(Amount::ZERO);
                    if self.balance(origin) < diff {
                        return Err(ErrorCode::Funds);
                    }
                    self.debit(origin, diff);
                } else {
                    let diff = old.checked_sub(*stake).unwrap_or(Amount::ZERO);
                    self.credit(origin, diff);
                }
                if let Some(p) = self.peers.get_mut(peer) {
                    p.stake = *stake;
                }
            }
            Action::SetPeerHost { peer, host } => {
                let Some(p) = self.peers.get_mut(peer) else {
                    return Err(ErrorCode::Nobody);
                };
                if p.controller != origin {
                    return Err(ErrorCode::Trust);
                }
                p.host.clone_from(host);
            }
            Action::SetKey { key } => {
                if let Some(a) = self.account_mut(origin) {
                    a.key = *key;
                }
            }
        }
        Ok(())
    }
}
