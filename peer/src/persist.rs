//! What the node keeps in its cvx-etch store: the consensus machine's [`Snapshot`], so
//! a restarted peer continues from where it stopped.
//!
//! Layout (all records content-addressed by SHA-256 of their bytes):
//! - one record per block (its canonical encoding), deduplicated by the store;
//! - the root `snapshot` → a postcard [`Record`]: the own signed order, the store keys of
//!   the snapshot's blocks, the ids below the checkpoint, the finalized ledger
//!   ([`crate::ledger::State`], postcard) and the two timestamps.
//!
//! Written and checkpointed at most every [`CHECKPOINT_EVERY`] and at shutdown. After a
//! crash the last checkpoint is restored; the signer's watermark may be ahead of it, so
//! the peer catches up from the others' beliefs before its own orders are signed again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cvx_etch::Store;
use cvx_protocol::Canonical;
use cvx_protocol::consensus::{Block, SignedOrder};
use cvx_protocol::{Hash, Timestamp};
use serde::{Deserialize, Serialize};

use crate::consensus::{Config, Snapshot};
use crate::ledger::State;
use crate::node::NodeError;

/// Write and checkpoint the snapshot at most this often (plus at shutdown).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Version of [`Record`]'s layout.
pub const RECORD_VERSION: u16 = 1;

/// The persisted snapshot.
#[derive(Serialize, Deserialize)]
struct Record {
    version: u16,
    network: Hash,
    order: Option<SignedOrder>,
    blocks: Vec<[u8; 32]>,
    history: Vec<Hash>,
    ledger: State,
    last_block_ts: Timestamp,
    proposal_since: Timestamp,
}

/// The store handle and its bookkeeping.
#[derive(Debug)]
pub struct Persist {
    store: Store,
    path: PathBuf,
    last_checkpoint: Option<Instant>,
}

impl Persist {
    /// Wrap an open store.
    #[must_use]
    pub fn new(store: Store, path: PathBuf) -> Self {
        Self {
            store,
            path,
            last_checkpoint: None,
        }
    }

    fn bad(&self, problem: String) -> NodeError {
        NodeError::Store {
            path: self.path.clone(),
            problem,
        }
    }

    /// The snapshot to restart from, if the store holds one.
    ///
    /// # Errors
    /// Store failures, a snapshot of another network, or an undecodable record.
    pub fn load(&self, cfg: &Config) -> Result<Option<Snapshot>, NodeError> {
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
        let rec: Record =
            postcard::from_bytes(&bytes).map_err(|e| self.bad(format!("snapshot record: {e}")))?;
        if rec.version != RECORD_VERSION {
            return Err(self.bad(format!(
                "snapshot layout version {} (this peer reads {RECORD_VERSION})",
                rec.version
            )));
        }
        if rec.network != cfg.genesis.network_id().0 {
            return Err(self.bad(
                "the store belongs to another network: use a fresh data_dir for this genesis"
                    .into(),
            ));
        }
        let mut blocks = Vec::with_capacity(rec.blocks.len());
        for k in &rec.blocks {
            let b = self
                .store
                .get(&cvx_etch::Hash(*k))
                .map_err(|e| self.bad(e.to_string()))?
                .ok_or_else(|| self.bad("a snapshot block is missing".into()))?;
            let block = Block::decode(&b).map_err(|e| self.bad(format!("stored block: {e}")))?;
            blocks.push(Arc::new(block));
        }
        Ok(Some(Snapshot {
            order: rec.order,
            blocks,
            history: rec.history,
            ledger: rec.ledger,
            last_block_ts: rec.last_block_ts,
            proposal_since: rec.proposal_since,
        }))
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
        let mut keys = Vec::with_capacity(snap.blocks.len());
        for b in &snap.blocks {
            keys.push(self.store.put(&b.encode())?.0);
        }
        let rec = Record {
            version: RECORD_VERSION,
            network,
            order: snap.order.clone(),
            blocks: keys,
            history: snap.history.clone(),
            ledger: snap.ledger.clone(),
            last_block_ts: snap.last_block_ts,
            proposal_since: snap.proposal_since,
        };
        // Encoding our own serde types into a Vec cannot fail (no I/O, no size limit).
        let bytes = postcard::to_allocvec(&rec).unwrap_or_default();
        let h = self.store.put(&bytes)?;
        self.store.set_root("snapshot", Some(h))?;
        self.store.checkpoint()?;
        self.last_checkpoint = Some(Instant::now());
        Ok(())
    }

    /// A store failure as a node error.
    #[must_use]
    pub fn error(&self, e: &cvx_etch::EtchError) -> NodeError {
        self.bad(e.to_string())
    }
}
