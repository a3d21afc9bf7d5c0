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
use cvx_protocol::ledger::{Genesis, Params, SignedTransaction};
use cvx_protocol::policy::{MAX_BRIDGE, Refusal, RefuseCode, Request, SignRequest};
use cvx_protocol::{BoundedVec, Hash, NetworkId, PublicKey, Signature, Timestamp};

pub use crate::ids::IdHasher;
use crate::ids::{IdMap, IdSet};
use crate::ledger::{BlockOutcome, State};
use crate::merge::{BlockStatus, CatchUp, ForkDetected, MergeParams, OwnView, Voter};

/// Settings of one peer's state machine (network rules come from the genesis).
#[derive(Clone, Debug)]
pub struct Config {
    /// The network.
    pub genesis: Genesis,
    /// This peer's public key (its signer holds the private half).
    pub key: PublicKey,
    /// Most block ids an own order lists above its checkpoint (`..=MAX_ORDER_BLOCKS`).
    pub max_order_blocks: usize,
    /// Transactions per own block (at most `params.max_block_txs`; match the signer's
    /// `PolicyParams::max_block_txs`).
    pub block_tx_cap: u32,
    /// Resend the belief at least this often.
    pub rebroadcast_ms: u64,
    /// Re-run the merge at least this often (time-dependent rules: decay, future blocks).
    pub merge_interval_ms: u64,
    /// Pending transactions held at most.
    pub max_mempool: usize,
    /// Produce an empty block when the own stake would otherwise start to decay.
    pub heartbeat: bool,
    /// Own blocks signed but not yet in the own order, at most.
    pub max_own_pending: usize,
    /// At least this long between two merges (and so between two own orders): bounds
    /// the order rate and batches incoming beliefs.
    pub min_order_gap_ms: u64,
    /// Finalized blocks kept listed above the checkpoint (so peers a little behind can
    /// line orders up without fetching ids); the checkpoint trails finality by this.
    pub keep_finalized: u64,
}

impl Config {
    /// Defaults for `genesis` and `key`.
    #[must_use]
    pub fn new(genesis: Genesis, key: PublicKey) -> Self {
        let cap = genesis.params.max_block_txs.min(1024);
        Self {
            genesis,
            key,
            max_order_blocks: MAX_ORDER_BLOCKS,
            block_tx_cap: cap,
            rebroadcast_ms: 200,
            merge_interval_ms: 20,
            max_mempool: 100_000,
            heartbeat: true,
            max_own_pending: 4,
            min_order_gap_ms: 10,
            keep_finalized: 64,
        }
    }
}

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
        }
    }

    /// A peer restarted from a persisted [`Snapshot`].
    #[must_use]
    pub fn restore(cfg: Config, snap: Snapshot) -> Self {
        let network = cfg.genesis.network_id();
        let mut p = Self::empty(cfg, network, snap.ledger);
        for b in snap.blocks {
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

    /// One line per accepted order of another peer, for an operator looking at a stall:
    /// its points, its stake, and where its blocks first differ from the own order
    /// ("agrees", "differs at N", or "cannot line up").
    #[must_use]
    pub fn stall_report(&self) -> String {
        use core::fmt::Write as _;
        let own = OwnView {
            checkpoint: self.checkpoint,
            ids: &self.ids,
            chains: &self.chains,
            proposal: self.proposal,
            protect: 0,
            consensus: self.consensus,
            finality: self.finality,
            catch_up: self.catch_up.as_ref(),
        };
        let mut s = format!(
            "own: checkpoint {} len {} points {}/{}/{}",
            self.checkpoint.position,
            own.len(),
            self.proposal,
            self.consensus,
            self.finality
        );
        if let Some(c) = &self.catch_up {
            let missing = c
                .ids
                .iter()
                .filter(|id| !self.blocks.contains_key(*id))
                .count();
            let _ = write!(
                s,
                "; catch-up run from {} of {} ids, {missing} blocks not held",
                c.start.position,
                c.ids.len()
            );
        }
        for so in self.others.values() {
            let o = &so.order;
            let k = o.peer.as_bytes();
            let _ = write!(
                s,
                "; {:02x}{:02x}{:02x}{:02x} stake {} checkpoint {} len {} points {}/{}/{} ts {} ",
                k[0],
                k[1],
                k[2],
                k[3],
                self.raw_stake(&o.peer),
                o.checkpoint.position,
                o.checkpoint.position + o.blocks.len() as u64,
                o.proposal,
                o.consensus,
                o.finality,
                o.timestamp.0
            );
            let _ = match crate::merge::divergence(&own, o) {
                crate::merge::Divergence::Agrees => write!(s, "agrees"),
                crate::merge::Divergence::DiffersAt(p) => write!(s, "differs at {p}"),
                crate::merge::Divergence::Unlinkable => write!(s, "cannot line up"),
            };
        }
        s
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
        self.try_produce(now, out);
        self.try_merge(now, out);
        if self.signed.is_some() && now >= self.last_broadcast.plus_ms(self.cfg.rebroadcast_ms) {
            self.broadcast_belief(now, out);
        }
    }

    // ----- inputs -----

    fn reject(&mut self, why: Dropped) {
        *self.stats.dropped.entry(why).or_default() += 1;
    }

    fn on_transaction(&mut self, tx: SignedTransaction) {
        if self.mempool_ids.len() >= self.cfg.max_mempool {
            return self.reject(Dropped::TxLoad);
        }
        let id = tx.id();
        let useful = self
            .ledger
            .account(tx.tx.origin)
            .is_some_and(|a| tx.tx.sequence > a.sequence);
        if !useful || self.mempool_ids.contains(&id) || self.recent_final.contains_key(&id) {
            return self.reject(Dropped::TxUseless);
        }
        self.mempool_ids.insert(id);
        self.mempool.push_back((id, tx));
    }

    fn on_message(&mut self, now: Timestamp, from: ConnId, msg: Message, out: &mut Vec<Action>) {
        match msg {
            Message::Belief(b) => {
                let mut missing = Vec::new();
                for so in b.orders.into_vec() {
                    self.on_order(now, from, so, &mut missing);
                }
                if !missing.is_empty() {
                    missing.truncate(MAX_GET_BLOCKS);
                    out.push(Action::Send {
                        to: from,
                        msg: Message::GetBlocks(missing),
                    });
                }
            }
            Message::Block(b) => self.on_block(b),
            Message::GetChain(start) => {
                if let Some(ids) = self.ids_from(start) {
                    out.push(Action::Send {
                        to: from,
                        msg: Message::Chain { start, ids },
                    });
                }
            }
            Message::Chain { start, ids } => self.on_chain(now, from, start, ids, out),
            Message::GetBlocks(ids) => {
                for id in ids.iter().take(MAX_GET_BLOCKS) {
                    if let Some(b) = self.blocks.get(id) {
                        out.push(Action::Send {
                            to: from,
                            msg: Message::Block(Arc::clone(b)),
                        });
                    }
                }
            }
        }
    }

    fn on_order(&mut self, now: Timestamp, from: ConnId, so: SignedOrder, missing: &mut Vec<Hash>) {
        let o = &so.order;
        if o.peer == self.cfg.key {
            return;
        }
        if let Some(held) = self.others.get(&o.peer)
            && held.order.timestamp >= o.timestamp
        {
            if held != &so {
                self.reject(Dropped::OrderStale);
            }
            return;
        }
        let Some(rec) = self.ledger.peer(&o.peer) else {
            return self.reject(Dropped::OrderNotPeer);
        };
        // Acceptance by stake *without* decay (a deliberate deviation from Convex): the
        // finality quorum counts stake without decay, so it must hear every peer whose
        // stake counts in its total; decay only weighs the vote (docs/consensus.md §2).
        if rec.stake < self.params().min_stake {
            return self.reject(Dropped::OrderMinStake);
        }
        if !o.points_consistent() {
            return self.reject(Dropped::OrderInconsistent);
        }
        if o.timestamp > now.plus_ms(self.params().max_future_ms) {
            return self.reject(Dropped::OrderFuture);
        }
        if o.peer.verify(&self.network, o, &so.signature).is_err() {
            return self.reject(Dropped::OrderSignature);
        }
        for id in o.blocks.iter() {
            if !self.blocks.contains_key(id)
                && !self.recent_final.contains_key(id)
                && self
                    .requested
                    .get(id)
                    .is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
            {
                self.requested.insert(*id, now);
                missing.push(*id);
            }
        }
        self.stats.orders_accepted += 1;
        self.order_conn.insert(o.peer, from);
        self.others.insert(o.peer, so);
        self.dirty = true;
    }

    fn on_block(&mut self, b: Arc<Block>) {
        let id = b.id();
        if self.blocks.contains_key(&id) {
            return;
        }
        let h = &b.header;
        if self.ledger.peer(&h.proposer).is_none() {
            return self.reject(Dropped::BlockNotPeer);
        }
        if h.tx_count > self.params().max_block_txs
            || h.tx_count as usize != b.transactions.len()
            || body_hash(&b.transactions) != h.tx_hash
        {
            return self.reject(Dropped::BlockMalformed);
        }
        if h.proposer.verify(&self.network, h, &b.signature).is_err() {
            return self.reject(Dropped::BlockSignature);
        }
        for t in b.transactions.iter() {
            self.mempool_ids.remove(&t.id());
        }
        self.requested.remove(&id);
        self.blocks.insert(id, b);
        self.dirty = true;
    }

    fn on_signature(
        &mut self,
        now: Timestamp,
        id: RequestId,
        result: Result<Signature, Refusal>,
        out: &mut Vec<Action>,
    ) {
        if self.pending_order.as_ref().is_some_and(|p| p.0.id == id) {
            let Some(PendingOrderBox(p)) = self.pending_order.take() else {
                return;
            };
            match result {
                Ok(sig) if self.cfg.key.verify(&self.network, &p.order, &sig).is_ok() => {
                    self.install(now, p, sig, out);
                }
                Ok(_) => {
                    self.stats.bad_signer_signatures += 1;
                    self.order_retry_at = now.plus_ms(REFUSAL_BACKOFF_MS);
                }
                Err(r) => {
                    self.refused(r.code);
                    self.order_retry_at = now.plus_ms(REFUSAL_BACKOFF_MS);
                    self.dirty = true;
                }
            }
        } else if self.pending_block.as_ref().is_some_and(|p| p.0.id == id) {
            let Some(PendingBlockBox(p)) = self.pending_block.take() else {
                return;
            };
            match result {
                Ok(sig) if self.cfg.key.verify(&self.network, &p.header, &sig).is_ok() => {
                    let block = Arc::new(Block {
                        header: p.header,
                        signature: sig,
                        transactions: p.body,
                    });
                    let bid = block.id();
                    self.last_block_ts = block.header.timestamp;
                    self.stats.blocks_signed += 1;
                    self.blocks.insert(bid, Arc::clone(&block));
                    self.own_new.push(bid);
                    self.dirty = true;
                    out.push(Action::Broadcast(Message::Block(block)));
                }
                other => {
                    match other {
                        Err(r) => self.refused(r.code),
                        Ok(_) => self.stats.bad_signer_signatures += 1,
                    }
                    // Put the transactions back, oldest first.
                    for t in p.body.into_vec().into_iter().rev() {
                        let tid = t.id();
                        self.mempool_ids.insert(tid);
                        self.mempool.push_front((tid, t));
                    }
                    self.block_retry_at =
                        now.plus_ms(self.params().min_block_time_ms.max(REFUSAL_BACKOFF_MS));
                }
            }
        }
    }

    fn refused(&mut self, code: RefuseCode) {
        *self.stats.refusals.entry(code.name()).or_default() += 1;
    }

    fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    // ----- block production -----

    fn try_produce(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.pending_block.is_some()
            || now < self.block_retry_at
            || self.own_new.len() >= self.cfg.max_own_pending
        {
            return;
        }
        let params = self.params().clone();
        let Some(rec) = self.ledger.peer(&self.cfg.key) else {
            return;
        };
        if rec.stake < params.min_stake
            || now < self.last_block_ts.plus_ms(params.min_block_time_ms)
        {
            return;
        }
        let last = rec.last_block_time.max(self.last_block_ts);
        let heartbeat = self.cfg.heartbeat && now >= last.plus_ms(params.decay_grace_ms / 2);
        if self.mempool_ids.is_empty() && !heartbeat {
            return;
        }
        let cap = self.cfg.block_tx_cap as usize;
        let mut txs: Vec<SignedTransaction> = Vec::with_capacity(cap.min(self.mempool_ids.len()));
        while txs.len() < cap {
            let Some((tid, t)) = self.mempool.pop_front() else {
                break;
            };
            if self.mempool_ids.remove(&tid) {
                txs.push(t);
            }
        }
        let Ok(body) = BlockBody::try_from_vec(txs) else {
            return;
        };
        let header = BlockHeader {
            proposer: self.cfg.key,
            timestamp: now.max(self.last_block_ts.plus_ms(1)),
            tx_count: u32::try_from(body.len()).unwrap_or(u32::MAX),
            tx_hash: body_hash(&body),
        };
        let id = self.next_request();
        out.push(Action::Sign {
            id,
            request: Request {
                network: self.network,
                body: SignRequest::Block(header.clone()),
            },
        });
        self.pending_block = Some(PendingBlockBox(PendingBlock { id, header, body }));
    }

    // ----- merge -----

    fn block_status(&self, id: &Hash, now: Timestamp) -> BlockStatus {
        let Some(b) = self.blocks.get(id) else {
            return BlockStatus::Unknown;
        };
        let params = self.params();
        let h = &b.header;
        let staked = self
            .ledger
            .peer(&h.proposer)
            .is_some_and(|r| r.stake >= params.min_stake);
        if !staked {
            return BlockStatus::Invalid;
        }
        if h.timestamp > now.plus_ms(params.max_future_ms) {
            return BlockStatus::Future;
        }
        BlockStatus::Valid {
            timestamp: h.timestamp,
            appendable: h.timestamp.plus_ms(params.max_block_backdate_ms) >= now
                && !self.recent_final.contains_key(id),
        }
    }

    /// Effective weights (with decay) of the peers whose weight reaches `min_stake`, and
    /// their total; and the total stake without decay of peers whose stake reaches it.
    ///
    /// Decay is measured against the ledger's time (the newest finalized block's
    /// timestamp), not the local clock: every peer with the same finalized state computes
    /// the same weights, and a stall of the whole network does not decay everyone (with
    /// the clock, a stall longer than the grace let every peer fall below `min_stake`,
    /// total weight dropped to zero and the stall fed itself; docs/consensus.md §2).
    fn weights(&self) -> (IdMap<PublicKey, u128>, u128, u128) {
        let params = self.params();
        let now = self.ledger.time();
        let min = params.min_stake.get();
        let mut w = IdMap::default();
        let mut total = 0u128;
        let mut raw_total = 0u128;
        for rec in self.ledger.peers() {
            if rec.stake.get() >= min && rec.stake.get() > 0 {
                raw_total += u128::from(rec.stake.get());
            }
            let e = crate::stake::effective_stake(rec, now, params);
            if e >= min && e > 0 {
                w.insert(rec.key, u128::from(e));
                total += u128::from(e);
            }
        }
        (w, total, raw_total)
    }

    fn raw_stake(&self, k: &PublicKey) -> u128 {
        self.ledger.peer(k).map_or(0, |r| u128::from(r.stake.get()))
    }

    fn try_merge(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if !self.dirty
            || self.pending_order.is_some()
            || now < self.order_retry_at
            || now < self.last_merge.plus_ms(self.cfg.min_order_gap_ms)
        {
            return;
        }
        self.dirty = false;
        self.last_merge = now;
        self.request_missing(now, out);
        let (weights, total, total_stake) = self.weights();
        // Every peer whose stake without decay reaches the minimum takes part; one whose
        // decayed weight fell below it votes with weight 0 (proposal, consensus) but its
        // lock still counts with its stake for finality and fork detection.
        let min = u128::from(self.params().min_stake.get());
        let voters: Vec<Voter<'_>> = self
            .others
            .values()
            .filter_map(|so| {
                let stake = self.raw_stake(&so.order.peer);
                (stake >= min && stake > 0).then(|| Voter {
                    order: &so.order,
                    weight: weights.get(&so.order.peer).copied().unwrap_or(0),
                    stake,
                })
            })
            .collect();
        let own = OwnView {
            checkpoint: self.checkpoint,
            ids: &self.ids,
            chains: &self.chains,
            proposal: self.proposal,
            protect: self.protect_point(now),
            consensus: self.consensus,
            finality: self.finality,
            catch_up: self.catch_up.as_ref(),
        };
        let max_blocks = usize::try_from(self.next_checkpoint() - self.checkpoint.position)
            .unwrap_or(usize::MAX)
            + self.cfg.max_order_blocks;
        let mp = MergeParams {
            now,
            own_weight: weights.get(&self.cfg.key).copied().unwrap_or(0),
            total_weight: total,
            own_stake: {
                let st = self.raw_stake(&self.cfg.key);
                if st >= min && st > 0 { st } else { 0 }
            },
            total_stake,
            proposal_since: self.proposal_since,
            hold_ms: self.params().proposal_hold_ms,
            max_blocks,
        };
        let status = |id: &Hash| self.block_status(id, now);
        let merged = match crate::merge::merge(&own, &voters, &self.own_new, &status, &mp) {
            Ok(m) => m,
            Err(fork) => {
                self.halted = Some(fork);
                out.push(Action::Halted(fork));
                return;
            }
        };
        if merged.unlinkable > 0 {
            self.stats.unlinkable += 1;
            if now >= self.last_chain_request.plus_ms(REQUEST_RETRY_MS)
                && let Some(conn) = merged
                    .unlinkable_peers
                    .iter()
                    .find_map(|k| self.order_conn.get(k))
            {
                // A retry goes to another connection: the one that relayed the order may
                // be as far behind as this peer and unable to answer.
                let retry = self.last_chain_request.0 != 0
                    && now < self.last_chain_request.plus_ms(4 * REQUEST_RETRY_MS);
                let conn = self.pick_conn(*conn, &Hash::ZERO, now, retry);
                self.last_chain_request = now;
                out.push(Action::Send {
                    to: conn,
                    msg: Message::GetChain(self.finality),
                });
            }
        }
        let unchanged = merged.ids == self.ids
            && merged.proposal == self.proposal
            && merged.consensus == self.consensus
            && merged.finality == self.finality;
        if unchanged && self.signed.is_some() {
            return;
        }
        // Never change the consensus prefix (merge guarantees it; this is the last guard).
        let c_rel =
            usize::try_from(self.consensus - self.checkpoint.position).unwrap_or(usize::MAX);
        if merged.ids.get(..c_rel) != self.ids.get(..c_rel) {
            let fork = ForkDetected {
                position: self.consensus,
                weight: 0,
                total,
            };
            self.halted = Some(fork);
            out.push(Action::Halted(fork));
            return;
        }
        // Chain values of the new ids (reuse the common prefix).
        let common = merged
            .ids
            .iter()
            .zip(&self.ids)
            .take_while(|(a, b)| a == b)
            .count();
        let mut chains: Vec<Hash> = self.chains[..common].to_vec();
        let mut prev = if common == 0 {
            self.checkpoint.chain
        } else {
            chains[common - 1]
        };
        for id in &merged.ids[common..] {
            prev = chain_step(&prev, id);
            chains.push(prev);
        }
        // Move the checkpoint up (below finality) only as far as the cap needs.
        let cp = self.checkpoint.position;
        let len = cp + merged.ids.len() as u64;
        let new_cp_pos = self.next_checkpoint().min(len);
        let skip = usize::try_from(new_cp_pos - cp).unwrap_or(0);
        let checkpoint = if skip == 0 {
            self.checkpoint
        } else {
            Checkpoint {
                position: new_cp_pos,
                chain: chains[skip - 1],
            }
        };
        let Ok(blocks) = BoundedVec::try_from_vec(merged.ids[skip..].to_vec()) else {
            return;
        };
        let order = Order {
            peer: self.cfg.key,
            timestamp: now.max(self.last_order_ts.plus_ms(1)),
            checkpoint,
            blocks,
            proposal: merged.proposal,
            consensus: merged.consensus,
            finality: merged.finality,
        };
        let bridge = self.bridge(new_cp_pos, &merged.ids);
        let id = self.next_request();
        out.push(Action::Sign {
            id,
            request: Request {
                network: self.network,
                body: SignRequest::Order {
                    order: order.clone(),
                    bridge,
                },
            },
        });
        self.pending_order = Some(PendingOrderBox(PendingOrder {
            id,
            order,
            ids: merged.ids,
            chains,
            prefix_changed: merged.prefix_changed,
        }));
    }

    /// Block ids between the signer's committed consensus point and `new_cp`.
    fn bridge(&self, new_cp: u64, ids: &[Hash]) -> BoundedVec<Hash, MAX_BRIDGE> {
        let Some(sc) = self.signed_consensus else {
            return BoundedVec::new();
        };
        if new_cp <= sc.position {
            return BoundedVec::new();
        }
        let cp = self.checkpoint.position;
        let hist_start = cp - self.history.len() as u64;
        let mut v = Vec::new();
        for pos in sc.position..new_cp {
            let id = if pos < cp {
                pos.checked_sub(hist_start)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.history.get(i))
            } else {
                usize::try_from(pos - cp).ok().and_then(|i| ids.get(i))
            };
            match id {
                Some(h) => v.push(*h),
                None => return BoundedVec::new(),
            }
        }
        BoundedVec::try_from_vec(v).unwrap_or_default()
    }

    /// Ask again for blocks that held orders list and that never arrived (a lost reply
    /// must not stall the vote), each from the connection that brought the order.
    fn request_missing(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let mut asks: BTreeMap<ConnId, Vec<Hash>> = BTreeMap::new();
        for (peer, so) in &self.others {
            let Some(conn) = self.order_conn.get(peer) else {
                continue;
            };
            for id in so.order.blocks.iter() {
                let asked = self.requested.get(id);
                if !self.blocks.contains_key(id)
                    && !self.recent_final.contains_key(id)
                    && asked.is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
                {
                    let conn = self.pick_conn(*conn, id, now, asked.is_some());
                    let v = asks.entry(conn).or_default();
                    if v.len() < MAX_GET_BLOCKS && !v.contains(id) {
                        v.push(*id);
                    }
                }
            }
        }
        // The blocks of a catch-up run: no order lists them, so without this a lost
        // answer left a lagging peer without them for good (its orders line up through
        // the run, so it never asks for the run again).
        if let (Some(seg), Some(conn)) = (&self.catch_up, self.catch_up_conn) {
            for id in &seg.ids {
                let asked = self.requested.get(id);
                if !self.blocks.contains_key(id)
                    && !self.recent_final.contains_key(id)
                    && asked.is_none_or(|t| now >= t.plus_ms(REQUEST_RETRY_MS))
                {
                    let conn = self.pick_conn(conn, id, now, asked.is_some());
                    let v = asks.entry(conn).or_default();
                    if v.len() >= MAX_GET_BLOCKS {
                        break;
                    }
                    if !v.contains(id) {
                        v.push(*id);
                    }
                }
            }
        }
        for (conn, ids) in asks {
            for id in &ids {
                self.requested.insert(*id, now);
            }
            out.push(Action::Send {
                to: conn,
                msg: Message::GetBlocks(ids),
            });
        }
    }

    /// The connection to ask: `first` the first time; on a retry, one of the connections
    /// that delivered orders, chosen by the id and the retry round, so that successive
    /// retries try different peers (the relaying peer may not hold what it relayed).
    fn pick_conn(&self, first: ConnId, id: &Hash, now: Timestamp, retry: bool) -> ConnId {
        if !retry {
            return first;
        }
        let mut conns: Vec<ConnId> = self.order_conn.values().copied().collect();
        conns.sort_unstable();
        conns.dedup();
        if conns.is_empty() {
            return first;
        }
        let round = now.0 / REQUEST_RETRY_MS;
        let salt = u64::from_le_bytes([
            id.0[0], id.0[1], id.0[2], id.0[3], id.0[4], id.0[5], id.0[6], id.0[7],
        ]);
        let i = usize::try_from(round.wrapping_add(salt) % conns.len() as u64).unwrap_or(0);
        conns[i]
    }

    /// Rule 4's protected point: the highest proposal signed on the current prefix, for
    /// `PROTECT_HOLDS` hold times after it was signed. A proposal point drops when
    /// support for it thins; without this the blocks above the lower point were free to
    /// change at once, and a peer re-proposed a different block at a position it had
    /// proposed 30 ms before — while another peer locked on its earlier order (the
    /// conflicting locks of docs/consensus.md §5, traced in the simulation).
    fn protect_point(&self, now: Timestamp) -> u64 {
        let (high, at) = self.proposal_high;
        let hold = self.params().proposal_hold_ms.saturating_mul(PROTECT_HOLDS);
        if now < at.plus_ms(hold) { high } else { 0 }
    }

    /// Where the checkpoint goes next: `keep_finalized` below finality (never down).
    fn next_checkpoint(&self) -> u64 {
        self.finality
            .saturating_sub(self.cfg.keep_finalized)
            .max(self.checkpoint.position)
    }

    /// Ids from absolute position `start` to the end of the own order, if held.
    fn ids_from(&self, start: u64) -> Option<Vec<Hash>> {
        let cp = self.checkpoint.position;
        let hist_start = cp - self.history.len() as u64;
        if start < hist_start || start > cp + self.ids.len() as u64 {
            return None;
        }
        let mut v: Vec<Hash> = Vec::new();
        if start < cp {
            let skip = usize::try_from(start - hist_start).ok()?;
            v.extend(self.history.iter().skip(skip));
        }
        let from = usize::try_from(start.saturating_sub(cp)).ok()?;
        v.extend_from_slice(self.ids.get(from..)?);
        v.truncate(MAX_BRIDGE);
        Some(v)
    }

    fn on_chain(
        &mut self,
        now: Timestamp,
        from: ConnId,
        start: u64,
        ids: Vec<Hash>,
        out: &mut Vec<Action>,
    ) {
        let cp = self.checkpoint.position;
        // Only a run that starts inside the own order is usable (its chain value there
        // is known); longer than the cap is refused.
        let Some(chain) = (start >= cp && start <= cp + self.ids.len() as u64)
            .then(|| {
                let i = usize::try_from(start - cp).unwrap_or(0);
                if i == 0 {
                    Some(self.checkpoint.chain)
                } else {
                    self.chains.get(i - 1).copied()
                }
            })
            .flatten()
        else {
            return;
        };
        if ids.is_empty() || ids.len() > MAX_BRIDGE {
            return;
        }
        let chains = chains_from(&chain, &ids);
        let mut missing: Vec<Hash> = ids
            .iter()
            .filter(|id| !self.blocks.contains_key(*id) && !self.recent_final.contains_key(*id))
            .copied()
            .collect();
        missing.truncate(MAX_GET_BLOCKS);
        for id in &missing {
            self.requested.insert(*id, now);
        }
        if !missing.is_empty() {
            out.push(Action::Send {
                to: from,
                msg: Message::GetBlocks(missing),
            });
        }
        self.catch_up = Some(CatchUp {
            start: Checkpoint {
                position: start,
                chain,
            },
            ids,
            chains,
        });
        self.catch_up_conn = Some(from);
        self.dirty = true;
    }

    fn install(&mut self, now: Timestamp, p: PendingOrder, sig: Signature, out: &mut Vec<Action>) {
        let o = &p.order;
        let old_cp = self.checkpoint.position;
        let skip = usize::try_from(o.checkpoint.position - old_cp).unwrap_or(0);
        for id in &p.ids[..skip] {
            self.history.push_back(*id);
            if self.history.len() > MAX_BRIDGE {
                self.history.pop_front();
            }
        }
        self.checkpoint = o.checkpoint;
        self.ids = p.ids[skip..].to_vec();
        self.chains = p.chains[skip..].to_vec();
        self.proposal = o.proposal;
        self.consensus = o.consensus;
        self.finality = o.finality;
        self.last_order_ts = o.timestamp;
        if p.prefix_changed {
            self.proposal_since = now;
            self.proposal_high = (o.proposal, now);
        } else if o.proposal > self.proposal_high.0 {
            self.proposal_high = (o.proposal, now);
        }
        self.signed_consensus = o.chain_at(o.consensus).map(|chain| Checkpoint {
            position: o.consensus,
            chain,
        });
        self.signed = Some(SignedOrder {
            order: p.order,
            signature: sig,
        });
        self.stats.orders_signed += 1;
        if self.catch_up.as_ref().is_some_and(|c| {
            c.start.position + c.ids.len() as u64 <= self.finality
                || c.start.position < self.checkpoint.position
        }) {
            self.catch_up = None;
        }
        let window: IdSet<&Hash> = self.ids.iter().collect();
        self.own_new.retain(|id| !window.contains(id));
        self.dirty = true;
        self.execute(now, out);
        out.push(Action::Persist(Box::new(self.snapshot())));
        self.broadcast_belief(now, out);
    }

    fn execute(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let params = self.params().clone();
        while self.ledger.height() < self.finality {
            let pos = self.ledger.height();
            let Some(id) = usize::try_from(pos.saturating_sub(self.checkpoint.position))
                .ok()
                .and_then(|i| self.ids.get(i))
                .copied()
            else {
                break;
            };
            let Some(block) = self.blocks.get(&id).cloned() else {
                // Cannot happen: the own order lists only held blocks.
                break;
            };
            let outcome = self
                .ledger
                .apply_verified_block(&block, &self.network, &params);
            let tx_ids: Vec<Hash> = block
                .transactions
                .iter()
                .map(SignedTransaction::id)
                .collect();
            for t in &tx_ids {
                self.mempool_ids.remove(t);
            }
            if self.mempool.len() > 2 * self.mempool_ids.len() + 64 {
                let live = &self.mempool_ids;
                self.mempool.retain(|(tid, _)| live.contains(tid));
            }
            self.recent_final.insert(id, block.header.timestamp);
            out.push(Action::Finalized(Box::new(Finalized {
                position: pos,
                id,
                state_hash: self.ledger.state_hash(),
                outcome,
                tx_ids,
            })));
        }
        // Forget what can no longer matter.
        let horizon = now.minus_ms(params.max_block_backdate_ms.saturating_mul(2));
        self.recent_final.retain(|_, t| *t >= horizon);
        let window: IdSet<Hash> = self
            .ids
            .iter()
            .chain(self.own_new.iter())
            .copied()
            .collect();
        self.blocks
            .retain(|id, b| window.contains(id) || b.header.timestamp >= horizon);
        self.requested
            .retain(|_, t| t.plus_ms(REQUEST_RETRY_MS * 10) >= now);
    }

    fn broadcast_belief(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Some(own) = &self.signed else {
            return;
        };
        self.last_broadcast = now;
        let mut orders: Vec<SignedOrder> = self.others.values().cloned().collect();
        orders.push(own.clone());
        orders.sort_by_key(|o| o.order.peer);
        if let Ok(orders) = BoundedVec::try_from_vec(orders) {
            out.push(Action::Broadcast(Message::Belief(Belief { orders })));
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
