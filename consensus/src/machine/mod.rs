//! The sans-I/O CPoS state machine: events in, actions out.
//!
//! [`Peer::handle`] takes the time (`now`) and one [`Event`] and returns the [`Action`]s
//! the host must carry out: ask the signer ([`Action::Sign`]), send messages, persist a
//! [`Snapshot`], report finalized blocks, or halt on a fork. The peer never holds a key:
//! it emits a sign request and continues when [`Event::SignatureReturned`] comes back,
//! with a signature or a refusal, however late. Its own order and points change only when
//! the signer has signed the new order, so what the peer acts on is always what the
//! signer committed to.
//!
//! docs/consensus.md describes the rules; [`crate::merge`] holds the merge itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use cvx_protocol::consensus::{
    Belief, Block, BlockBody, BlockHeader, Checkpoint, MAX_ORDER_BLOCKS, Order, SignedOrder,
    body_hash,
};
use cvx_protocol::hash::chain_step;
use cvx_protocol::ledger::{Params, SignedTransaction};
use cvx_protocol::policy::{MAX_BRIDGE, Refusal, RefuseCode, Request, SignRequest};
use cvx_protocol::{BoundedVec, Hash, NetworkId, PublicKey, Signature, Timestamp};

pub use crate::ids::IdHasher;
use crate::ids::{IdMap, IdSet};
use crate::ledger::{BlockOutcome, State};
use crate::merge::{BlockStatus, CatchUp, ForkDetected, MergeParams, OwnView, Voter};
pub use limits::{FINAL_BODIES_SHARE, Held, MAX_HELD_BLOCKS, MAX_HELD_TXS, MAX_REQUESTED};

mod catch_up;
mod certify;
mod config;
pub use certify::stake_table;
pub use config::Config;
mod finality;
mod inputs;
mod limits;
mod merging;
mod produce;
mod report;
mod resync;

/// Correlates a sign request with its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// An opaque handle for the connection a message came from (for replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Peer-to-peer messages (in-process values; the wire envelope is the networked peer's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The sender's belief: its own order and the newest order it holds of every peer.
    Belief(Belief),
    /// A block.
    Block(Arc<Block>),
    /// Please send these blocks.
    GetBlocks(Vec<Hash>),
    /// Please send the block ids from this position on (a lagging peer catching up).
    GetChain(u64),
    /// Block ids from position `start` on (answer to [`Message::GetChain`]).
    Chain {
        /// Position of the first id.
        start: u64,
        /// The ids.
        ids: Vec<Hash>,
    },
}

/// An input.
// Events are moved once, straight into `handle`; boxing the transaction would cost an
// allocation per transaction for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Event {
    /// Time passed (the host calls this regularly, e.g. every 5–10 ms).
    Tick,
    /// A message from another peer.
    Message {
        /// Where it came from (replies go there).
        from: ConnId,
        /// The message.
        msg: Message,
    },
    /// A client submitted a transaction.
    Transaction(SignedTransaction),
    /// The signer answered request `id`.
    SignatureReturned {
        /// The request.
        id: RequestId,
        /// The signature, or why it was refused.
        result: Result<Signature, Refusal>,
    },
}

/// A block that reached finality and was executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized {
    /// Its position (0-based) in the finalized sequence.
    pub position: u64,
    /// Its id.
    pub id: Hash,
    /// The state hash after it.
    pub state_hash: Hash,
    /// What execution did.
    pub outcome: BlockOutcome,
    /// The ids of its transactions, in order.
    pub tx_ids: Vec<Hash>,
}

/// An output.
// Actions are moved once, out of `handle`; see `Event`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Action {
    /// Ask the signer; answer with [`Event::SignatureReturned`] carrying `id`.
    Sign {
        /// Correlation id.
        id: RequestId,
        /// What to sign.
        request: Request,
    },
    /// Send to every connected peer.
    Broadcast(Message),
    /// Send to one connection.
    Send {
        /// The connection.
        to: ConnId,
        /// The message.
        msg: Message,
    },
    /// Persist this state durably (restart with [`Peer::restore`]).
    Persist(Box<Snapshot>),
    /// A block was finalized and executed.
    Finalized(Box<Finalized>),
    /// A fork was detected: the peer has stopped and will do nothing more.
    Halted(ForkDetected),
    /// This peer is too far behind to catch up from orders (or its lock conflicts with a
    /// network that moved on): the host should fetch a certificate and a state from an
    /// up-to-date peer, have the signer accept the certificate, and restore the machine at
    /// the synced state (docs/consensus.md §7, step 3). Repeated at most every
    /// [`RESYNC_RETRY_MS`] while the condition holds ([`RESYNC_GAP`], [`RESYNC_STALL_MS`]).
    Resync {
        /// This peer's finality when it gave up on catching up.
        finality: u64,
        /// The finality that peers holding more than 1/3 of stake report (at least one
        /// honest peer is there).
        network_finality: u64,
    },
}

/// What a peer persists (the networked peer keeps it in cvx-etch).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The last signed own order.
    pub order: Option<SignedOrder>,
    /// Blocks of the own order above its checkpoint, and own blocks not yet in it.
    pub blocks: Vec<Arc<Block>>,
    /// Ids of the newest finalized blocks below the checkpoint (oldest first).
    pub history: Vec<Hash>,
    /// The finalized ledger state.
    pub ledger: State,
    /// Timestamp of the newest own block.
    pub last_block_ts: Timestamp,
    /// When the proposal prefix last changed.
    pub proposal_since: Timestamp,
}

/// Why an incoming value was dropped (counted in [`Stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dropped {
    /// Order from a key that is not a peer.
    OrderNotPeer,
    /// Order from a peer whose stake (without decay) is below the minimum.
    OrderMinStake,
    /// Order whose points are not consistent.
    OrderInconsistent,
    /// Order dated beyond `now + max_future_ms`.
    OrderFuture,
    /// Order not newer than the one held.
    OrderStale,
    /// Order whose signature does not verify.
    OrderSignature,
    /// Block whose proposer is not a peer.
    BlockNotPeer,
    /// Block whose body does not match its header, or over the cap.
    BlockMalformed,
    /// Block whose signature does not verify.
    BlockSignature,
    /// Transaction dropped because the mempool is full.
    TxLoad,
    /// Transaction that can never apply (unknown origin, old sequence) or a duplicate.
    TxUseless,
    /// Block not asked for, dropped because the held blocks are at their cap
    /// ([`MAX_HELD_TXS`], [`MAX_HELD_BLOCKS`]).
    BlockLoad,
    /// Block request not remembered because [`MAX_REQUESTED`] requests are pending.
    RequestLoad,
}

/// Counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Dropped inputs by reason.
    pub dropped: BTreeMap<Dropped, u64>,
    /// Signer refusals by code name.
    pub refusals: BTreeMap<&'static str, u64>,
    /// Orders accepted from others.
    pub orders_accepted: u64,
    /// Own orders signed.
    pub orders_signed: u64,
    /// Merges whose vote chose other blocks below the own proposal, which the hold rule
    /// kept (proposal splits; each costs up to the hold's protect time).
    pub proposals_held: u64,
    /// Own blocks signed.
    pub blocks_signed: u64,
    /// Merges that found an order it could not line up.
    pub unlinkable: u64,
    /// Signatures from the signer that did not verify.
    pub bad_signer_signatures: u64,
}

struct PendingOrder {
    id: RequestId,
    order: Order,
    /// Ids from the current checkpoint.
    ids: Vec<Hash>,
    chains: Vec<Hash>,
    prefix_changed: bool,
}

struct PendingBlock {
    id: RequestId,
    header: BlockHeader,
    body: BlockBody,
}

/// One peer's consensus state machine.
#[derive(Debug)]
pub struct Peer {
    cfg: Config,
    network: NetworkId,
    ledger: State,
    /// The root of the finalized ledger's stake table, and the height it was computed at
    /// (every order carries it: docs/consensus.md §7.3).
    stake_root: Option<(u64, Hash)>,
    checkpoint: Checkpoint,
    ids: Vec<Hash>,
    chains: Vec<Hash>,
    proposal: u64,
    consensus: u64,
    finality: u64,
    signed: Option<SignedOrder>,
    history: VecDeque<Hash>,
    signed_consensus: Option<Checkpoint>,
    blocks: IdMap<Hash, Arc<Block>>,
    /// Transactions in `blocks` (capped: [`MAX_HELD_TXS`]).
    held_txs: usize,
    others: BTreeMap<PublicKey, SignedOrder>,
    own_new: Vec<Hash>,
    /// Pending transactions with their ids; an id missing from `mempool_ids` is a
    /// tombstone (removed lazily, so removal is O(1)).
    mempool: VecDeque<(Hash, SignedTransaction)>,
    mempool_ids: IdSet<Hash>,
    recent_final: IdMap<Hash, Timestamp>,
    requested: IdMap<Hash, Timestamp>,
    pending_order: Option<PendingOrderBox>,
    pending_block: Option<PendingBlockBox>,
    next_id: u64,
    last_block_ts: Timestamp,
    /// Transactions in the last own block (the early-block rule's view of the load).
    last_block_txs: usize,
    /// Moving average (1/8) of the own blocks' time from their timestamp to their
    /// execution here, in ms (the early-block rule's view of the network's speed).
    own_final_ms: Option<u64>,
    last_order_ts: Timestamp,
    proposal_since: Timestamp,
    /// The highest proposal signed on the current prefix and when it was signed (the
    /// hold rule keeps the blocks below it for a while even if the proposal drops).
    proposal_high: (u64, Timestamp),
    dirty: bool,
    last_merge: Timestamp,
    last_broadcast: Timestamp,
    order_retry_at: Timestamp,
    block_retry_at: Timestamp,
    halted: Option<ForkDetected>,
    stats: Stats,
    catch_up: Option<CatchUp>,
    /// Who sent the catch-up run (its blocks are asked from there).
    catch_up_conn: Option<ConnId>,
    last_chain_request: Timestamp,
    order_conn: IdMap<PublicKey, ConnId>,
    resync: resync::Watch,
    /// The signed orders that locked the own finality point when it last advanced: a lock
    /// certificate this peer can still give when a voter has since moved on (§7.8).
    finalized_by: Option<certify::FinalVotes>,
}

// Debug-printable wrappers (the pending values are large; print ids only).
struct PendingOrderBox(PendingOrder);
struct PendingBlockBox(PendingBlock);
impl core::fmt::Debug for PendingOrderBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PendingOrder({:?})", self.0.id)
    }
}
impl core::fmt::Debug for PendingBlockBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PendingBlock({:?})", self.0.id)
    }
}

const REQUEST_RETRY_MS: u64 = 200;
/// How many proposal hold times a dropped proposal still protects its blocks.
const PROTECT_HOLDS: u64 = 5;

const REFUSAL_BACKOFF_MS: u64 = 50;
/// [`Action::Resync`] when peers holding more than 1/3 of stake report a finality more
/// than this above the own: half the bridge a signer accepts, so the peer gives up on
/// catching up from orders well before it could no longer bridge its signer.
pub const RESYNC_GAP: u64 = MAX_BRIDGE as u64 / 2;
/// [`Action::Resync`] when the own finality has not advanced for this long while peers
/// holding more than 1/3 of stake report a higher one and that finality moved within
/// this time (a peer that cannot line up, e.g. because the blocks it lacks have aged out
/// of every peer's memory, or whose lock conflicts with a network that moved on; never
/// while the network as a whole stands still). One second: a resync after it still fits
/// the simulation's 2 s recovery bound (docs/consensus.md §6).
pub const RESYNC_STALL_MS: u64 = 1_000;
/// [`Action::Resync`] is repeated at most this often while its condition holds.
pub const RESYNC_RETRY_MS: u64 = 3_000;
const MAX_GET_BLOCKS: usize = 256;

impl Peer {
    /// A peer at genesis.
    #[must_use]
    pub fn new(cfg: Config) -> Self {
        let network = cfg.genesis.network_id();
        let ledger = State::from_genesis(&cfg.genesis);
        let mut p = Self::empty(cfg, network, ledger);
        p.checkpoint = Checkpoint::genesis(&network);
        p
    }

    fn empty(mut cfg: Config, network: NetworkId, ledger: State) -> Self {
        cfg.max_order_blocks = cfg.max_order_blocks.clamp(1, MAX_ORDER_BLOCKS);
        cfg.block_tx_cap = cfg.block_tx_cap.clamp(0, cfg.genesis.params.max_block_txs);
        Self {
            cfg,
            network,
            ledger,
            stake_root: None,
            checkpoint: Checkpoint::genesis(&network),
            ids: Vec::new(),
            chains: Vec::new(),
            proposal: 0,
            consensus: 0,
            finality: 0,
            signed: None,
            history: VecDeque::new(),
            signed_consensus: None,
            blocks: IdMap::default(),
            held_txs: 0,
            others: BTreeMap::new(),
            own_new: Vec::new(),
            mempool: VecDeque::new(),
            mempool_ids: IdSet::default(),
            recent_final: IdMap::default(),
            requested: IdMap::default(),
            pending_order: None,
            pending_block: None,
            next_id: 1,
            last_block_ts: Timestamp(0),
            last_block_txs: 0,
            own_final_ms: None,
            last_order_ts: Timestamp(0),
            proposal_since: Timestamp(0),
            proposal_high: (0, Timestamp(0)),
            dirty: true,
            last_merge: Timestamp(0),
            last_broadcast: Timestamp(0),
            order_retry_at: Timestamp(0),
            block_retry_at: Timestamp(0),
            halted: None,
            stats: Stats::default(),
            catch_up: None,
            catch_up_conn: None,
            last_chain_request: Timestamp(0),
            order_conn: IdMap::default(),
            resync: resync::Watch::default(),
            finalized_by: None,
        }
    }

    /// A peer restarted from a persisted [`Snapshot`].
    #[must_use]
    pub fn restore(cfg: Config, snap: Snapshot) -> Self {
        let network = cfg.genesis.network_id();
        let mut p = Self::empty(cfg, network, snap.ledger);
        for b in snap.blocks {
            p.held_txs += b.transactions.len();
            p.blocks.insert(b.id(), b);
        }
        p.history = snap.history.into_iter().collect();
        p.last_block_ts = snap.last_block_ts;
        p.proposal_since = snap.proposal_since;
        if let Some(so) = snap.order {
            let o = &so.order;
            p.checkpoint = o.checkpoint;
            p.ids = o.blocks.to_vec();
            p.chains = chains_from(&o.checkpoint.chain, &p.ids);
            p.proposal = o.proposal;
            p.consensus = o.consensus;
            p.finality = o.finality;
            p.last_order_ts = o.timestamp;
            p.signed_consensus = o.chain_at(o.consensus).map(|chain| Checkpoint {
                position: o.consensus,
                chain,
            });
            p.signed = Some(so);
        }
        let window: IdSet<Hash> = p.ids.iter().copied().collect();
        p.own_new = p
            .blocks
            .iter()
            .filter(|(id, b)| b.header.proposer == p.cfg.key && !window.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        p.own_new.sort_unstable();
        p
    }

    /// The state as it would be persisted now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let mut blocks: Vec<Arc<Block>> = self
            .ids
            .iter()
            .filter_map(|id| self.blocks.get(id).cloned())
            .collect();
        blocks.extend(
            self.own_new
                .iter()
                .filter_map(|id| self.blocks.get(id).cloned()),
        );
        Snapshot {
            order: self.signed.clone(),
            blocks,
            history: self.history.iter().copied().collect(),
            ledger: self.ledger.clone(),
            last_block_ts: self.last_block_ts,
            proposal_since: self.proposal_since,
        }
    }

    /// This peer's key.
    #[must_use]
    pub const fn key(&self) -> &PublicKey {
        &self.cfg.key
    }

    /// The finalized ledger state.
    #[must_use]
    pub const fn ledger(&self) -> &State {
        &self.ledger
    }

    /// (proposal, consensus, finality) of the own signed order.
    #[must_use]
    pub const fn points(&self) -> (u64, u64, u64) {
        (self.proposal, self.consensus, self.finality)
    }

    /// The own signed order, if any.
    #[must_use]
    pub const fn order(&self) -> Option<&SignedOrder> {
        self.signed.as_ref()
    }

    /// The own order's block ids above its checkpoint, and the checkpoint.
    #[must_use]
    pub fn chain(&self) -> (Checkpoint, &[Hash]) {
        (self.checkpoint, &self.ids)
    }

    /// True when something is waiting to be finalized: own blocks or transactions above
    /// finality, or another peer's order that has finalized further. (An idle network's
    /// finality legitimately stands still between heartbeats.)
    #[must_use]
    pub fn has_work_pending(&self) -> bool {
        self.proposal > self.finality
            || !self.mempool_ids.is_empty()
            || !self.own_new.is_empty()
            || self
                .others
                .values()
                .any(|so| so.order.finality > self.finality)
    }

    /// Counters.
    #[must_use]
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The fork that stopped this peer, if one did.
    #[must_use]
    pub const fn halted(&self) -> Option<&ForkDetected> {
        self.halted.as_ref()
    }

    /// Transactions waiting for a block.
    #[must_use]
    pub fn mempool_len(&self) -> usize {
        self.mempool_ids.len()
    }

    /// The network parameters.
    #[must_use]
    pub const fn params(&self) -> &Params {
        &self.cfg.genesis.params
    }

    /// Handle one event at time `now`.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.halted.is_some() {
            return out;
        }
        match event {
            Event::Tick => {}
            Event::Message { from, msg } => self.on_message(now, from, msg, &mut out),
            Event::Transaction(tx) => self.on_transaction(tx),
            Event::SignatureReturned { id, result } => self.on_signature(now, id, result, &mut out),
        }
        self.step(now, &mut out);
        out
    }

    fn step(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.halted.is_some() {
            return;
        }
        if now >= self.last_merge.plus_ms(self.cfg.merge_interval_ms) {
            self.dirty = true;
        }
        self.watch_resync(now, out);
        self.try_produce(now, out);
        self.try_merge(now, out);
        if self.signed.is_some() && now >= self.last_broadcast.plus_ms(self.cfg.rebroadcast_ms) {
            self.broadcast_belief(now, out);
        }
    }
}

fn chains_from(start: &Hash, ids: &[Hash]) -> Vec<Hash> {
    let mut prev = *start;
    ids.iter()
        .map(|id| {
            prev = chain_step(&prev, id);
            prev
        })
        .collect()
}

#[cfg(test)]
mod tests;
