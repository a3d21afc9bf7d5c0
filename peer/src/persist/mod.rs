//! What the node keeps in its cvx-etch store: the consensus machine's [`Snapshot`], so
//! a restarted peer continues from where it stopped, and the finalized ledger as a Merkle
//! state tree, so a joining peer can sync it by hash instead of replaying blocks.
//!
//! Layout (all records content-addressed by SHA-256 of their bytes):
//! - one record per block (its canonical encoding), deduplicated by the store;
//! - the ledger state tree ([`cvx_etch::merkle`]): one leaf per account, per peer and one
//!   meta leaf (see [`account_key`], [`peer_key`], [`META_KEY_TAG`]), each value the
//!   canonical encoding of the entry; updated at each checkpoint by writing only the
//!   entries that changed since the previous one; its root is also the store root `state`;
//! - the root `snapshot` → a postcard [`Record`] (layout version [`RECORD_VERSION`]): the
//!   own signed order, the store keys of the snapshot's blocks, the ids below the
//!   checkpoint, the state tree root with the state hash, the position and the chain value
//!   it belongs to, and the two timestamps.
//!
//! Version 1 records (which held the ledger as one postcard blob) and version 2 records
//! (whose state hash is the version 1 hash, re-hashing the whole ledger) are read, checked
//! and converted on open; the next checkpoint writes a version 3 record (logged).
//!
//! Written and checkpointed at most every [`CHECKPOINT_EVERY`] and at shutdown. After a
//! crash the last checkpoint is restored; the signer's watermark may be ahead of it, so
//! the peer catches up from the others' beliefs before its own orders are signed again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cvx_etch::Store;
use cvx_protocol::consensus::{Block, Checkpoint, SignedOrder};
use cvx_protocol::peer_wire::SyncPoint;
use cvx_protocol::{Canonical, Hash, NetworkId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use cvx_consensus::ledger::State;
use cvx_consensus::{Config, Snapshot};

/// Write and checkpoint the snapshot at most this often (plus at shutdown).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Version of [`Record`]'s layout. 1: ledger as a postcard blob in the record (read and
/// converted on open). 2: ledger in the state tree, root in the record, `state_hash` the
/// version 1 state hash (read and converted on open). 3: as 2, `state_hash` the state root
/// (format 2, incremental; docs/protocol.md "State root"). 4: as 3, the own order carries
/// `stake_root` and is signed through its header (docs/consensus.md §7.2); the orders of
/// versions 1–3 are converted on open (`legacy.rs`).
pub const RECORD_VERSION: u16 = 4;
/// The record version whose order has no `stake_root` (and whose `state_hash` is the state
/// root).
pub(crate) const RECORD_V3: u16 = 3;
/// The record version whose `state_hash` is the version 1 state hash.
pub(crate) const RECORD_V2: u16 = 2;

mod gc;
mod legacy;
mod tree;
mod writer;

use legacy::LegacySignedOrder;

pub use gc::{PeerChildren, PeriodicGc, collect_garbage};
pub use tree::{
    ACCOUNT_KEY_TAG, META_KEY_TAG, PEER_KEY_TAG, StateTreeError, account_key, meta_key, peer_key,
    read_state, write_state,
};
pub use writer::Checkpoints;

/// The chain value at the ledger's position, from the own signed order (or the genesis).
fn chain_at(order: Option<&SignedOrder>, position: u64, network: &NetworkId) -> Option<Hash> {
    match order {
        Some(so) => so.order.chain_at(position),
        None => (position == 0).then(|| Checkpoint::genesis(network).chain),
    }
}

/// The persisted snapshot (layout versions 2–4: 2 and 3 differ in what `state_hash` is, 3
/// and 4 in the order, `O`).
#[derive(Serialize, Deserialize)]
struct RecordOf<O> {
    version: u16,
    network: Hash,
    order: Option<O>,
    blocks: Vec<[u8; 32]>,
    history: Vec<Hash>,
    /// Root of the state tree (cvx-etch hash).
    state_root: [u8; 32],
    /// `State::state_hash` of the ledger in the tree (checked on load); in version 2,
    /// `State::legacy_state_hash_v1`.
    state_hash: Hash,
    /// Chain value at the ledger's height, when the own order covers it.
    chain: Option<Hash>,
    last_block_ts: Timestamp,
    proposal_since: Timestamp,
}

/// The current record.
type Record = RecordOf<SignedOrder>;
/// Record versions 2 and 3.
type RecordV3 = RecordOf<LegacySignedOrder>;

/// The version 1 layout, kept to read and convert old stores.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    version: u16,
    network: Hash,
    order: Option<LegacySignedOrder>,
    blocks: Vec<[u8; 32]>,
    history: Vec<Hash>,
    ledger: State,
    last_block_ts: Timestamp,
    proposal_since: Timestamp,
}

/// The store handle and its bookkeeping.
#[derive(Debug)]
pub struct Persist {
    store: Arc<Store>,
    path: PathBuf,
    last_checkpoint: Option<Instant>,
    /// The state tree as last written: its root and the state it holds.
    tree: Option<(cvx_etch::Hash, State)>,
    /// The newest persisted sync point (what `Query::SyncPoint(None)` answers).
    sync: Option<SyncPoint>,
    /// The record version the store was opened at, when older than [`RECORD_VERSION`]
    /// (cleared by the next checkpoint, which rewrites it).
    upgraded_from: Option<u16>,
}

impl Persist {
    /// Wrap an open store.
    #[must_use]
    pub fn new(store: Arc<Store>, path: PathBuf) -> Self {
        Self {
            store,
            path,
            last_checkpoint: None,
            tree: None,
            sync: None,
            upgraded_from: None,
        }
    }

    /// The store (shared with the connection tasks that serve state nodes).
    #[must_use]
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The newest persisted sync point, if the state at it is in the store.
    #[must_use]
    pub const fn sync_point(&self) -> Option<&SyncPoint> {
        self.sync.as_ref()
    }

    fn bad(&self, problem: String) -> NodeError {
        NodeError::Store {
            path: self.path.clone(),
            problem,
        }
    }

    /// The snapshot to restart from, if the store holds one. A version 1 record is
    /// converted (its ledger is written as the state tree at the next checkpoint).
    ///
    /// # Errors
    /// Store failures, a snapshot of another network, an unknown layout version, an
    /// undecodable record, or a state tree that does not match the recorded state hash.
    pub fn load(&mut self, cfg: &Config) -> Result<Option<Snapshot>, NodeError> {
        let Some(root) = self
            .store
            .root("snapshot")
            .map_err(|e| self.bad(e.to_string()))?
        else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(&root)
            .map_err(|e| self.bad(e.to_string()))?
            .ok_or_else(|| self.bad("the snapshot root names a missing record".into()))?;
        let (version, _) = postcard::take_from_bytes::<u16>(&bytes)
            .map_err(|e| self.bad(format!("snapshot record: {e}")))?;
        let network = cfg.genesis.network_id();
        let (rec_network, order, blocks, history, ledger, last_block_ts, proposal_since) =
            match version {
                1 => {
                    let r: RecordV1 = postcard::from_bytes(&bytes)
                        .map_err(|e| self.bad(format!("snapshot record (v1): {e}")))?;
                    tracing::warn!(
                        from = 1,
                        to = RECORD_VERSION,
                        "store snapshot record is layout version 1: converted; the next checkpoint writes the state tree and a version {RECORD_VERSION} record"
                    );
                    self.upgraded_from = Some(1);
                    (
                        r.network,
                        r.order.map(LegacySignedOrder::convert),
                        r.blocks,
                        r.history,
                        r.ledger,
                        r.last_block_ts,
                        r.proposal_since,
                    )
                }
                RECORD_V2 | RECORD_V3 | RECORD_VERSION => {
                    let r: Record = if version == RECORD_VERSION {
                        postcard::from_bytes(&bytes)
                            .map_err(|e| self.bad(format!("snapshot record: {e}")))?
                    } else {
                        let r: RecordV3 = postcard::from_bytes(&bytes)
                            .map_err(|e| self.bad(format!("snapshot record (v{version}): {e}")))?;
                        tracing::warn!(
                            from = version,
                            to = RECORD_VERSION,
                            "store snapshot record is layout version {version}: its own order predates stake roots and header signatures; converted (the peer signs a new order at once); the next checkpoint writes a version {RECORD_VERSION} record"
                        );
                        self.upgraded_from = Some(version);
                        RecordOf {
                            version: r.version,
                            network: r.network,
                            order: r.order.map(LegacySignedOrder::convert),
                            blocks: r.blocks,
                            history: r.history,
                            state_root: r.state_root,
                            state_hash: r.state_hash,
                            chain: r.chain,
                            last_block_ts: r.last_block_ts,
                            proposal_since: r.proposal_since,
                        }
                    };
                    let sroot = cvx_etch::Hash(r.state_root);
                    let ledger =
                        read_state(&self.store, &sroot).map_err(|e| self.bad(e.to_string()))?;
                    let recorded = if version == RECORD_V2 {
                        ledger.legacy_state_hash_v1()
                    } else {
                        ledger.state_hash()
                    };
                    if recorded != r.state_hash {
                        return Err(self
                            .bad("the state tree does not match the recorded state hash".into()));
                    }
                    if version == RECORD_V2 {
                        tracing::warn!(
                            from = RECORD_V2,
                            to = RECORD_VERSION,
                            "store snapshot record is layout version 2 (version 1 state hash): checked and converted; the next checkpoint writes a version {RECORD_VERSION} record"
                        );
                        self.upgraded_from = Some(RECORD_V2);
                    }
                    self.sync = r.chain.map(|chain| SyncPoint {
                        position: ledger.height(),
                        chain,
                        state_hash: ledger.state_hash(),
                        root: Some(Hash(r.state_root)),
                    });
                    self.tree = Some((sroot, ledger.clone()));
                    (
                        r.network,
                        r.order,
                        r.blocks,
                        r.history,
                        ledger,
                        r.last_block_ts,
                        r.proposal_since,
                    )
                }
                v => {
                    return Err(self.bad(format!(
                        "snapshot layout version {v} is newer than this peer reads ({RECORD_VERSION}): run the newer cvx-peer, or restore a backup of the data_dir"
                    )));
                }
            };
        if rec_network != network.0 {
            return Err(self.bad(
                "the store belongs to another network: use a fresh data_dir for this genesis"
                    .into(),
            ));
        }
        let mut bs = Vec::with_capacity(blocks.len());
        for k in &blocks {
            let b = self
                .store
                .get(&cvx_etch::Hash(*k))
                .map_err(|e| self.bad(e.to_string()))?
                .ok_or_else(|| self.bad("a snapshot block is missing".into()))?;
            let block = Block::decode(&b).map_err(|e| self.bad(format!("stored block: {e}")))?;
            bs.push(Arc::new(block));
        }
        Ok(Some(Snapshot {
            order,
            blocks: bs,
            history,
            ledger,
            last_block_ts,
            proposal_since,
        }))
    }

    /// Record that the state tree rooted at `root` (already in the store, e.g. imported by
    /// a state sync) holds `state`, so the next checkpoint writes only what changes.
    pub fn adopt_tree(&mut self, root: cvx_etch::Hash, state: State) {
        self.tree = Some((root, state));
    }

    /// Record `snap` and checkpoint, when `durable` or the last checkpoint is old enough.
    ///
    /// # Errors
    /// Store failures.
    pub fn save(
        &mut self,
        snap: &Snapshot,
        network: Hash,
        durable: bool,
    ) -> Result<(), cvx_etch::EtchError> {
        if !durable
            && self
                .last_checkpoint
                .is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY)
        {
            return Ok(());
        }
        // The blocks, the tree and the record become reachable only at `set_root` below:
        // no garbage collection may snapshot the roots in between (cvx_etch::GcHold).
        let _hold = self.store.hold_gc()?;
        let mut keys = Vec::with_capacity(snap.blocks.len());
        for b in &snap.blocks {
            keys.push(self.store.put(&b.encode())?.0);
        }
        let base = self.tree.as_ref().map(|(r, s)| (r, s));
        let root = write_state(&self.store, base, &snap.ledger)?;
        let state_hash = snap.ledger.state_hash();
        let position = snap.ledger.height();
        let chain = chain_at(snap.order.as_ref(), position, &NetworkId(network));
        let rec = Record {
            version: RECORD_VERSION,
            network,
            order: snap.order.clone(),
            blocks: keys,
            history: snap.history.clone(),
            state_root: root.0,
            state_hash,
            chain,
            last_block_ts: snap.last_block_ts,
            proposal_since: snap.proposal_since,
        };
        // Encoding our own serde types into a Vec cannot fail (no I/O, no size limit).
        let bytes = postcard::to_allocvec(&rec).unwrap_or_default();
        let h = self.store.put(&bytes)?;
        self.store.set_root("state", Some(root))?;
        self.store.set_root("snapshot", Some(h))?;
        self.store.checkpoint()?;
        self.last_checkpoint = Some(Instant::now());
        self.tree = Some((root, snap.ledger.clone()));
        if let Some(chain) = chain {
            self.sync = Some(SyncPoint {
                position,
                chain,
                state_hash,
                root: Some(Hash(root.0)),
            });
        }
        if let Some(v) = self.upgraded_from.take() {
            tracing::info!(
                from = v,
                to = RECORD_VERSION,
                "store upgraded: state tree written, snapshot record rewritten"
            );
        }
        Ok(())
    }

    /// A store failure as a node error.
    #[must_use]
    pub fn error(&self, e: &cvx_etch::EtchError) -> NodeError {
        self.bad(e.to_string())
    }
}

#[cfg(test)]
mod tests;
