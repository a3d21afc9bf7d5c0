//! One store file: open + recovery, append, read, checkpoint. Used by [`crate::Store`] for the
//! live file and by garbage collection for the file it is building.
//!
//! This room holds the file's state ([`EtchFile`]), its accessors, the growth of the mapping
//! and the path helpers its rooms (and GC) share; the work itself is in `open` (create, lock,
//! recovery), `read` (lookups) and `write` (append, checkpoint, close).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::Hash;
use crate::error::{EtchError, Result};
use crate::format::Header;
use crate::index::Index;
use crate::map::MappedFile;

mod open;
mod read;
mod write;

/// Growth step bounds for the preallocated tail.
const GROW_MIN: u64 = 1 << 20;
const GROW_MAX: u64 = 64 << 20;

#[derive(Debug)]
pub(crate) struct EtchFile {
    path: PathBuf,
    map: MappedFile,
    index: Index,
    /// Append position: records live in [DATA_START, end).
    end: u64,
    /// The last durable header.
    committed: Header,
    /// Roots as set now (written at the next checkpoint).
    roots: BTreeMap<String, Hash>,
    /// (prefix, offset) of data records appended since the last checkpoint.
    pending: Vec<(u64, u64)>,
    /// Data records in [DATA_START, end).
    record_count: u64,
    /// Set when a sync failed: after a failed fsync the kernel may have dropped dirty pages, so
    /// no later checkpoint can be trusted (fail-stop; reopen to recover).
    broken: bool,
}

/// fsync of the directory holding `path`, so a create or rename in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(EtchError::io(dir, "fsync directory"))
}

fn damaged(path: &Path, detail: impl Into<String>) -> EtchError {
    EtchError::Damaged {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl EtchFile {
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// Append position (bytes used).
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn record_count(&self) -> u64 {
        self.record_count
    }

    pub(crate) fn generation(&self) -> u64 {
        self.committed.generation
    }

    pub(crate) fn checkpoint_end(&self) -> u64 {
        self.committed.data_end
    }

    pub(crate) fn roots(&self) -> &BTreeMap<String, Hash> {
        &self.roots
    }

    pub(crate) fn set_roots(&mut self, roots: BTreeMap<String, Hash>) {
        self.roots = roots;
    }

    /// Makes sure `extra` more bytes fit after `end`.
    fn reserve(&mut self, extra: u64) -> Result<()> {
        let need = self.end + extra;
        if need <= self.map.len() {
            return Ok(());
        }
        let len = self.map.len();
        let step = (len / 4).clamp(GROW_MIN, GROW_MAX);
        let new_len = need.max(len + step).div_ceil(GROW_MIN) * GROW_MIN;
        self.map
            .resize(new_len)
            .map_err(EtchError::io(&self.path, "grow"))
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.map.len()
    }
}

impl EtchFile {
    /// Makes this (fresh) file's next checkpoint generation `g + 1`, so generations keep
    /// increasing across a garbage-collection swap.
    pub(crate) fn continue_generation(&mut self, g: u64) {
        self.committed.generation = self.committed.generation.max(g);
    }
}
