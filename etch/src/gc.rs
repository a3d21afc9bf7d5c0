//! Online garbage collection: copy what is reachable from the roots into a new file, catch up
//! with what writers appended meanwhile, then swap the new file in atomically.
//!
//! Protocol (docs/etch.md, "Garbage collection"):
//! 1. Copy: snapshot the roots and the append position (read lock, briefly). Walk from the
//!    roots, copying each record into `<store>.gc` (a fresh, locked store file) and following
//!    the caller's [`Children`]. Each record is read under the read lock, so readers and writers
//!    go on.
//! 2. Catch up: copy every data record appended to the old file since the snapshot (all of
//!    them: they are new, and may become reachable), and the closure of their children, in
//!    batches under the read lock, until the remainder is small.
//! 3. Swap, under the write lock: copy the last appended records, the closure of the current
//!    roots (a root may have moved to an old record during the collection), set the roots,
//!    checkpoint the new file (fdatasync), rename it over the store path, fsync the directory,
//!    and switch the in-memory handle to it.
//!
//! The old file is untouched and valid until the rename; the new one is complete and durable
//! before it. A crash anywhere leaves one or the other at the store path; a leftover `.gc` file
//! is removed by the next open. Interruption (the progress callback returns `Break`) removes
//! the temporary file and leaves the store as it was.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::TryLockError;

use crate::Hash;
use crate::error::{EtchError, Result};
use crate::file::{EtchFile, sibling, sync_dir};
use crate::store::{Children, Store};

/// Stop catching up under the read lock once less than this much is left to copy.
const CATCH_UP_BYTES: u64 = 256 << 10;
/// Records per catch-up batch (one read-lock hold).
const CATCH_UP_BATCH: usize = 4096;
/// Report progress every this many copied records.
const REPORT_EVERY: u64 = 4096;

/// Which step a collection is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcPhase {
    /// Copying what the roots reach.
    Copying,
    /// Copying what writers appended during the collection.
    CatchingUp,
    /// Final catch-up and swap (writers wait).
    Swapping,
}

/// Progress, passed to the callback every few thousand records and at each phase change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcProgress {
    /// The current phase.
    pub phase: GcPhase,
    /// Records copied so far.
    pub records_copied: u64,
    /// Bytes written to the new file so far.
    pub bytes_copied: u64,
    /// Data records in the old file when the collection started (an upper bound for the
    /// copying phase).
    pub records_at_start: u64,
}

/// What a finished collection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Data records in the old file at the swap.
    pub records_before: u64,
    /// Data records in the new file.
    pub records_after: u64,
    /// Bytes used in the old file at the swap.
    pub bytes_before: u64,
    /// Bytes used in the new file.
    pub bytes_after: u64,
    /// Hashes reachable from the roots that were not in the store (nothing to copy).
    pub dangling: u64,
    /// The generation the new file was checkpointed at.
    pub generation: u64,
}

/// How a collection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcOutcome {
    /// The new file replaced the old one.
    Done(GcReport),
    /// The callback asked to stop; the store is unchanged and the temporary file is gone.
    Interrupted,
}

/// Removes the temporary file unless disarmed.
struct TmpFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

struct Copier<'a> {
    new: EtchFile,
    children: &'a dyn Children,
    stack: Vec<Hash>,
    kids: Vec<Hash>,
    dangling: u64,
    records: u64,
    since_report: u64,
}

impl Copier<'_> {
    /// Copies one record into the new file; pushes its children if it was new there.
    fn take(&mut self, key: &Hash, bytes: &[u8]) -> Result<()> {
        if self.new.put_hashed(key, bytes)? {
            self.records += 1;
            self.since_report += 1;
            self.kids.clear();
            self.children.children(bytes, &mut self.kids);
            self.stack.append(&mut self.kids);
        }
        Ok(())
    }

    /// Copies the closure of the stack, reading records with `read`. Stops early (returning
    /// true) when a progress report is due, so the caller can report and check for interruption.
    fn drain(&mut self, read: &dyn Fn(&Hash) -> Result<Option<Vec<u8>>>) -> Result<bool> {
        while let Some(h) = self.stack.pop() {
            if self.new.contains(&h) {
                continue;
            }
            match read(&h)? {
                Some(bytes) => self.take(&h, &bytes)?,
                None => self.dangling += 1,
            }
            if self.since_report >= REPORT_EVERY {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn progress(&mut self, phase: GcPhase, records_at_start: u64) -> GcProgress {
        self.since_report = 0;
        GcProgress {
            phase,
            records_copied: self.records,
            bytes_copied: self.new.end(),
            records_at_start,
        }
    }
}

impl Store {
    /// Collects garbage online (see the module docs for the protocol). `children` says which
    /// hashes a record refers to; `progress` is called every few thousand records and may
    /// return `ControlFlow::Break(())` to stop (the store is then left unchanged).
    pub fn collect_garbage(
        &self,
        children: &dyn Children,
        progress: &mut dyn FnMut(&GcProgress) -> ControlFlow<()>,
    ) -> Result<GcOutcome> {
        let _running = match self.gc_running.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(EtchError::Busy),
        };
        let tmp_path = sibling(self.path(), ".gc");
        let _ = std::fs::remove_file(&tmp_path);
        let mut tmp = TmpFile {
            path: tmp_path.clone(),
            armed: true,
        };
        let mut new = EtchFile::create_file(&tmp_path)?;

        // 1. Copy what the roots reach.
        let (roots, mut done_to, records_at_start, generation) = {
            // No write sequence under a `GcHold` may straddle the snapshot.
            let _gate = self.gc_gate.write().map_err(|_| EtchError::Poisoned)?;
            let g = self.read()?;
            (g.roots().clone(), g.end(), g.record_count(), g.generation())
        };
        new.continue_generation(generation);
        let mut c = Copier {
            new,
            children,
            stack: roots.values().copied().collect(),
            kids: Vec::new(),
            dangling: 0,
            records: 0,
            since_report: 0,
        };
        let read_shared =
            |h: &Hash| -> Result<Option<Vec<u8>>> { Ok(self.read()?.get(h)?.map(<[u8]>::to_vec)) };
        if progress(&c.progress(GcPhase::Copying, records_at_start)).is_break() {
            return Ok(GcOutcome::Interrupted);
        }
        while c.drain(&read_shared)? {
            if progress(&c.progress(GcPhase::Copying, records_at_start)).is_break() {
                return Ok(GcOutcome::Interrupted);
            }
        }

        // 2. Catch up with writers, under the read lock, batch by batch.
        loop {
            if progress(&c.progress(GcPhase::CatchingUp, records_at_start)).is_break() {
                return Ok(GcOutcome::Interrupted);
            }
            let batch = {
                let g = self.read()?;
                if g.end() - done_to < CATCH_UP_BYTES {
                    break;
                }
                let mut batch = Vec::new();
                done_to = g.records_between(done_to, g.end(), CATCH_UP_BATCH, |h, p| {
                    batch.push((h, p.to_vec()));
                    Ok(())
                })?;
                batch
            };
            for (h, p) in batch {
                c.take(&h, &p)?;
            }
            while c.drain(&read_shared)? {
                if progress(&c.progress(GcPhase::CatchingUp, records_at_start)).is_break() {
                    return Ok(GcOutcome::Interrupted);
                }
            }
        }

        // 3. Final catch-up and swap, under the write lock.
        if progress(&c.progress(GcPhase::Swapping, records_at_start)).is_break() {
            return Ok(GcOutcome::Interrupted);
        }
        let mut g = self.write()?;
        let old_end = g.end();
        g.records_between(done_to, old_end, usize::MAX, |h, p| c.take(&h, p))?;
        c.stack.extend(g.roots().values().copied());
        {
            let old: &EtchFile = &g;
            let read_locked =
                |h: &Hash| -> Result<Option<Vec<u8>>> { Ok(old.get(h)?.map(<[u8]>::to_vec)) };
            while c.drain(&read_locked)? {}
        }
        let mut new = c.new;
        new.set_roots(g.roots().clone());
        new.checkpoint()?;
        std::fs::rename(&tmp_path, self.path()).map_err(EtchError::io(
            self.path(),
            "rename collected file into place",
        ))?;
        tmp.armed = false;
        new.set_path(self.path().to_path_buf());
        let report = GcReport {
            records_before: g.record_count(),
            records_after: new.record_count(),
            bytes_before: old_end,
            bytes_after: new.end(),
            dangling: c.dangling,
            generation: new.generation(),
        };
        // Swap before the directory fsync: from the rename on, the path names the new file,
        // so every later write must go there even if the fsync below fails.
        let old = std::mem::replace(&mut *g, new);
        drop(g);
        drop(old);
        sync_dir(self.path())?;
        Ok(GcOutcome::Done(report))
    }
}
