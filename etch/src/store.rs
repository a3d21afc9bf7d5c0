//! The public store: a [`Store`] shared between threads (`&self` everywhere), backed by one
//! [`EtchFile`] behind a read-write lock. Readers share the lock; a writer holds it only to
//! append; garbage collection holds it only for its final catch-up and the swap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Hash;
use crate::error::{EtchError, Result};
use crate::file::EtchFile;
use crate::format::{MAX_ROOT_NAME, MAX_ROOTS};

/// What opening a store found and did. A store that closed cleanly gives
/// [`RecoveryReport::is_clean`] == true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The store did not exist and was created.
    pub created: bool,
    /// Generation of the checkpoint the store was opened at.
    pub generation: u64,
    /// Which header copy (0 or 1) held that checkpoint.
    pub header_slot: u8,
    /// Whether the other header copy was valid too (false after a torn header write; it is
    /// rewritten by the next checkpoint).
    pub other_header_ok: bool,
    /// End of the checkpointed record area, in bytes.
    pub checkpoint_end: u64,
    /// Data records in the store after recovery.
    pub records: u64,
    /// Bytes found after the last checkpoint and discarded (records written after it, torn or
    /// not).
    pub dropped_bytes: u64,
    /// Complete, checksum-valid data records among the dropped bytes.
    pub dropped_records: u64,
    /// The dropped bytes ended in a torn or corrupt record.
    pub torn_tail: bool,
    /// The in-file index was damaged and was rebuilt by walking the records.
    pub index_rebuilt: bool,
    /// Checkpointed records that failed their checksum during that walk (now absent).
    pub corrupt_records: u64,
    /// A temporary file left by an interrupted garbage collection was removed.
    pub removed_gc_leftover: bool,
}

impl RecoveryReport {
    /// True when nothing was dropped, rebuilt or repaired.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.dropped_bytes == 0
            && !self.torn_tail
            && !self.index_rebuilt
            && self.corrupt_records == 0
            && !self.removed_gc_leftover
            && (self.other_header_ok || self.created)
    }
}

/// How a caller tells the store which hashes a record refers to. Records are opaque bytes to
/// the store; garbage collection keeps everything reachable from the roots through this.
pub trait Children: Sync {
    /// Appends the hashes `record` refers to onto `out`.
    fn children(&self, record: &[u8], out: &mut Vec<Hash>);
}

impl<F: Fn(&[u8], &mut Vec<Hash>) + Sync> Children for F {
    fn children(&self, record: &[u8], out: &mut Vec<Hash>) {
        self(record, out);
    }
}

/// Records that refer to nothing (garbage collection keeps only the roots themselves).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChildren;

impl Children for NoChildren {
    fn children(&self, _: &[u8], _: &mut Vec<Hash>) {}
}

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the store if the file does not exist (default true).
    pub create: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { create: true }
    }
}

/// Sizes and positions, for status output and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Data records in the file (checkpointed or not).
    pub records: u64,
    /// Bytes used by records and index segments (including the 8 KiB of headers).
    pub used_bytes: u64,
    /// File length, including preallocated space.
    pub file_bytes: u64,
    /// Generation of the last checkpoint.
    pub generation: u64,
    /// End of the last checkpoint.
    pub checkpoint_end: u64,
}

/// A memory-mapped, content-addressed store. See the crate docs.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    pub(crate) inner: RwLock<EtchFile>,
    pub(crate) gc_running: Mutex<()>,
    /// Held shared by [`Store::hold_gc`] across a write sequence; garbage collection takes
    /// it exclusively only while it snapshots the roots (see [`GcHold`]).
    pub(crate) gc_gate: RwLock<()>,
}

/// Keeps a garbage collection from *starting* (from snapshotting the roots) while held;
/// collections already past their snapshot go on, and so do readers and writers.
///
/// Hold one across a sequence of writes whose records become reachable from a root only
/// at its end (put the children, put the parent, `set_root`): a collection that started in
/// the middle would see the early records as garbage (no root reaches them yet, and they
/// were written before its snapshot), and could swap its new file in before the parent is
/// written, leaving the parent pointing at records that are gone. With the hold, a
/// collection's snapshot comes either before the sequence (then every record of it was
/// appended after the snapshot, and collections copy all of those) or after it (then the
/// root reaches them).
#[derive(Debug)]
pub struct GcHold<'a> {
    _guard: RwLockReadGuard<'a, ()>,
}

impl Store {
    /// Opens the store at `path`, creating it if absent, recovering after a crash.
    pub fn open(path: impl AsRef<Path>) -> Result<(Store, RecoveryReport)> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens with explicit options.
    pub fn open_with(
        path: impl AsRef<Path>,
        opts: &OpenOptions,
    ) -> Result<(Store, RecoveryReport)> {
        let path = path.as_ref().to_path_buf();
        let (file, report) = EtchFile::open(&path, opts.create)?;
        Ok((
            Store {
                path,
                inner: RwLock::new(file),
                gc_running: Mutex::new(()),
                gc_gate: RwLock::new(()),
            },
            report,
        ))
    }

    /// The store's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, EtchFile>> {
        self.inner.read().map_err(|_| EtchError::Poisoned)
    }

    pub(crate) fn write(&self) -> Result<RwLockWriteGuard<'_, EtchFile>> {
        self.inner.write().map_err(|_| EtchError::Poisoned)
    }

    /// Holds off the start of garbage collection until the hold is dropped ([`GcHold`]).
    ///
    /// # Errors
    /// [`EtchError::Poisoned`].
    pub fn hold_gc(&self) -> Result<GcHold<'_>> {
        self.gc_gate
            .read()
            .map(|g| GcHold { _guard: g })
            .map_err(|_| EtchError::Poisoned)
    }

    /// Stores `bytes` under their SHA-256 and returns it. Storing the same bytes again is a
    /// no-op. Not durable until the next [`Store::checkpoint`].
    pub fn put(&self, bytes: &[u8]) -> Result<Hash> {
        let key = Hash::of(bytes);
        self.write()?.put_hashed(&key, bytes)?;
        Ok(key)
    }

    /// Stores `bytes` received under `expected` (e.g. from a peer), refusing them unless they
    /// hash to it. Returns whether they were new.
    pub fn import(&self, expected: &Hash, bytes: &[u8]) -> Result<bool> {
        let actual = Hash::of(bytes);
        if actual != *expected {
            return Err(EtchError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        self.write()?.put_hashed(&actual, bytes)
    }

    /// A copy of the record stored under `key`; `Err(Corrupt)` if it fails its checksum.
    pub fn get(&self, key: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(self.read()?.get(key)?.map(<[u8]>::to_vec))
    }

    /// Calls `f` on the record in place (no copy), under the read lock: keep `f` short.
    pub fn with<R>(&self, key: &Hash, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.read()?.get(key)?.map(f))
    }

    /// Whether a record is stored under `key` (its checksum is checked on `get`, not here).
    pub fn contains(&self, key: &Hash) -> Result<bool> {
        Ok(self.read()?.contains(key))
    }

    /// The hash a named root points to.
    pub fn root(&self, name: &str) -> Result<Option<Hash>> {
        Ok(self.read()?.roots().get(name).copied())
    }

    /// All roots.
    pub fn roots(&self) -> Result<BTreeMap<String, Hash>> {
        Ok(self.read()?.roots().clone())
    }

    /// Points the root `name` at `hash` (or removes it with `None`). Durable at the next
    /// checkpoint. Names are 1..=64 bytes of UTF-8; at most 32 roots.
    pub fn set_root(&self, name: &str, hash: Option<Hash>) -> Result<()> {
        if name.is_empty() || name.len() > MAX_ROOT_NAME {
            return Err(EtchError::BadRoot {
                detail: format!(
                    "root name {name:?} is {} bytes; use 1 to {MAX_ROOT_NAME} bytes",
                    name.len()
                ),
            });
        }
        let mut g = self.write()?;
        let mut roots = g.roots().clone();
        match hash {
            Some(h) => {
                roots.insert(name.to_owned(), h);
            }
            None => {
                roots.remove(name);
            }
        }
        if roots.len() > MAX_ROOTS {
            return Err(EtchError::BadRoot {
                detail: format!("a store holds at most {MAX_ROOTS} roots; remove one first"),
            });
        }
        g.set_roots(roots);
        Ok(())
    }

    /// Durable checkpoint: everything put and every root set so far survives any crash from
    /// now on. Returns the checkpoint generation. After an I/O error here the store refuses
    /// further writes (reopen it).
    pub fn checkpoint(&self) -> Result<u64> {
        self.write()?.checkpoint()
    }

    /// Checkpoints and closes the store, trimming preallocated space.
    pub fn close(self) -> Result<()> {
        let file = self.inner.into_inner().map_err(|_| EtchError::Poisoned)?;
        file.close()
    }

    /// Sizes and positions.
    pub fn stats(&self) -> Result<Stats> {
        let g = self.read()?;
        Ok(Stats {
            records: g.record_count(),
            used_bytes: g.end(),
            file_bytes: g.file_len(),
            generation: g.generation(),
            checkpoint_end: g.checkpoint_end(),
        })
    }
}
