//! The store's checkpoints on their own thread (issue 15).
//!
//! Writing a checkpoint (the snapshot record, new blocks, the changed part of the state
//! tree, then the store's checkpoint) kept a peer's main loop from consensus while it ran:
//! p50 3 ms at 500 tx/s, 11–32 ms at 8,000 tx/s (once a second), and 7.5 s for the first
//! checkpoint of a 10^6-account ledger, during which the peer sent no order
//! (docs/operations.md, "Idle latency" and "Start-up"). The main loop now hands the newest
//! snapshot to a writer thread and goes on.
//!
//! - **One writer, in order.** One thread owns the [`Persist`]; it writes the snapshots it
//!   is handed one after the other, so the store never goes back to an older state.
//! - **The newest wins.** A snapshot handed over while the writer is busy replaces the one
//!   still waiting: the next checkpoint is of the newest state, and at most one snapshot
//!   waits (bounded memory).
//! - **Same rate.** A snapshot is handed over only once [`CHECKPOINT_EVERY`] has passed
//!   since the last checkpoint ended, as before.
//! - **A failure still stops the peer.** The writer's first store error is kept and stops
//!   it; the main loop returns it (the same [`NodeError::Store`]) at its next snapshot, and
//!   at shutdown.
//! - **Exclusive use when it matters.** Shutdown and a run-time resync first let the writer
//!   finish (the snapshot waiting is written too), then use the [`Persist`] directly; the
//!   writer starts again at the next snapshot.
//!
//! A crash loses at most what the writer had not finished; the restart is from the last
//! complete checkpoint, as it always was (the signer's watermark may be ahead of it, and
//! the peer catches up from the others' beliefs: the module comment of [`super`]).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use cvx_etch::Store;
use cvx_protocol::Hash;
use cvx_protocol::peer_wire::SyncPoint;

use super::{CHECKPOINT_EVERY, Persist};
use crate::error::NodeError;
use cvx_consensus::Snapshot;

/// What the main loop and the writer share.
#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    /// The newest persisted sync point (kept by the writer after each checkpoint).
    sync: Mutex<Option<SyncPoint>>,
    /// When the last checkpoint ended, and the writer's first store failure.
    done: Mutex<(Option<Instant>, Option<String>)>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The snapshot waiting for the writer.
    next: Option<Box<Snapshot>>,
    /// Set to stop the writer once the slot is empty.
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section leaves its value consistent, so a poisoned lock is used as is.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The checkpoint writer and the [`Persist`] it owns while it runs.
#[derive(Debug)]
pub struct Checkpoints {
    shared: Arc<Shared>,
    /// The writer thread, while it runs (it hands the [`Persist`] back when it ends).
    writer: Option<JoinHandle<Persist>>,
    /// The [`Persist`], while no writer runs.
    idle: Option<Persist>,
    store: Arc<Store>,
    path: PathBuf,
    network: Hash,
}

impl Checkpoints {
    /// Wrap `persist` (the writer starts at the first snapshot handed over).
    #[must_use]
    pub fn new(persist: Persist, network: Hash) -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            writer: None,
            store: Arc::clone(persist.store()),
            path: persist.path.clone(),
            idle: Some(persist),
            network,
        }
    }

    /// The store (shared with the connection tasks that serve state nodes).
    #[must_use]
    pub const fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The newest persisted sync point, if the state at it is in the store.
    #[must_use]
    pub fn sync_point(&self) -> Option<SyncPoint> {
        match &self.idle {
            Some(p) => p.sync_point().cloned(),
            None => lock(&self.shared.sync).clone(),
        }
    }

    fn failure(&self, problem: String) -> NodeError {
        NodeError::Store {
            path: self.path.clone(),
            problem,
        }
    }

    /// Hand `snap` to the writer when a checkpoint is due (else drop it). Never waits for
    /// the store.
    ///
    /// # Errors
    /// The writer's store failure (it has stopped writing).
    pub fn submit(&mut self, snap: Box<Snapshot>) -> Result<(), NodeError> {
        let (last, failed) = lock(&self.shared.done).clone();
        if let Some(problem) = failed {
            return Err(self.failure(problem));
        }
        if last.is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY) {
            return Ok(());
        }
        if self.writer.as_ref().is_some_and(JoinHandle::is_finished) {
            // It ended without being asked to: a failure (kept above) or a panic.
            self.pause()?;
        }
        if self.writer.is_none() {
            let persist = self
                .idle
                .take()
                .ok_or_else(|| self.failure("the checkpoint writer is gone".into()))?;
            self.start(persist)?;
        }
        lock(&self.shared.slot).next = Some(snap);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn start(&mut self, persist: Persist) -> Result<(), NodeError> {
        *lock(&self.shared.sync) = persist.sync_point().cloned();
        lock(&self.shared.slot).closed = false;
        let shared = Arc::clone(&self.shared);
        let network = self.network;
        let spawned = std::thread::Builder::new()
            .name("cvx-checkpoint".into())
            .spawn(move || write_loop(persist, &shared, network));
        match spawned {
            Ok(h) => {
                self.writer = Some(h);
                Ok(())
            }
            Err(e) => Err(self.failure(format!("cannot start the checkpoint writer: {e}"))),
        }
    }

    /// Let the writer finish (the snapshot waiting included) and stop it, then lend the
    /// [`Persist`] for direct use (shutdown, a resync). The writer starts again at the next
    /// [`Checkpoints::submit`].
    ///
    /// # Errors
    /// The writer's store failure, or its thread panicked.
    pub fn pause(&mut self) -> Result<&mut Persist, NodeError> {
        match self.stop_writer() {
            Some(Ok(persist)) => self.idle = Some(persist),
            Some(Err(_)) => return Err(self.failure("the checkpoint writer panicked".into())),
            None => {}
        }
        if let Some(problem) = lock(&self.shared.done).1.clone() {
            return Err(self.failure(problem));
        }
        self.idle.as_mut().ok_or_else(|| NodeError::Store {
            path: self.path.clone(),
            problem: "the checkpoint writer is gone".into(),
        })
    }

    /// Ask the writer to end once the slot is empty and wait for it (`None`: none runs).
    fn stop_writer(&mut self) -> Option<std::thread::Result<Persist>> {
        let h = self.writer.take()?;
        lock(&self.shared.slot).closed = true;
        self.shared.wake.notify_one();
        Some(h.join())
    }

    /// Stop the writer and write `snap` durably (shutdown).
    ///
    /// # Errors
    /// Store failures.
    pub fn finish(&mut self, snap: &Snapshot) -> Result<(), NodeError> {
        let network = self.network;
        let persist = self.pause()?;
        persist
            .save(snap, network, true)
            .map_err(|e| persist.error(&e))
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        // Not a shutdown path (that is `finish`): only stop the thread.
        let _ = self.stop_writer();
    }
}

fn write_loop(mut persist: Persist, shared: &Shared, network: Hash) -> Persist {
    loop {
        let snap = {
            let mut slot = lock(&shared.slot);
            loop {
                if let Some(s) = slot.next.take() {
                    break s;
                }
                if slot.closed {
                    return persist;
                }
                slot = shared
                    .wake
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        match persist.save(&snap, network, false) {
            Ok(()) => {
                *lock(&shared.sync) = persist.sync_point().cloned();
                lock(&shared.done).0 = persist.last_checkpoint;
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint failed: the store cannot be written");
                lock(&shared.done).1 = Some(e.to_string());
                return persist;
            }
        }
    }
}
