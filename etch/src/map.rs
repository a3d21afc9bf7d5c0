//! The one place in cvx-etch that maps the store file into memory.
//!
//! memmap2's `map_mut` is an `unsafe fn`: a mapping hands out `&[u8]`/`&mut [u8]` over memory
//! that another process (or a truncation) could change or remove under us, which is undefined
//! behaviour (or a SIGBUS). This module owns the `File` and its mapping together and keeps the
//! invariants that make that sound:
//!
//! 1. The file is opened read+write by this process and locked exclusively (`File::try_lock`)
//!    BEFORE it is mapped (the callers in `file.rs` do this; `MappedFile::new` takes the already
//!    locked file). Every cvx-etch opener takes the same lock, so no cooperating process writes
//!    or truncates the file while we map it. A non-cooperating process (root, an editor) can
//!    still break this; that is outside the store's threat model and documented in docs/etch.md.
//! 2. The mapping always covers exactly `[0, file length)`: the only way to change the length
//!    is [`MappedFile::resize`], which drops the old mapping first, changes the length, and maps
//!    again. So no byte of the mapping is ever beyond end-of-file (no SIGBUS from our own
//!    truncation).
//! 3. Slices into the mapping borrow `self`, so none outlives a `resize` (which takes
//!    `&mut self`), and writes go through `&mut self`, so Rust's aliasing rules hold within this
//!    process.

use std::fs::File;
use std::io;

use memmap2::{MmapMut, MmapOptions};

/// A locked file and a writable shared mapping of all of it.
#[derive(Debug)]
pub(crate) struct MappedFile {
    file: File,
    /// `None` only transiently inside `resize`, or for a zero-length file.
    map: Option<MmapMut>,
    len: u64,
}

fn map_whole(file: &File, len: u64) -> io::Result<Option<MmapMut>> {
    if len == 0 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .map_err(|_| io::Error::other("file is larger than the address space"))?;
    // SAFETY: invariants 1 and 2 of this module: `file` is locked exclusively by this process
    // (every caller locks before calling `MappedFile::new`/`resize`), its length is `len`
    // (just read or just set by us under `&mut self`), and the mapping is replaced before the
    // length changes again, so the mapped range never extends past end-of-file and no other
    // cooperating process modifies the file while mapped.
    let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
    Ok(Some(map))
}

impl MappedFile {
    /// Maps all of `file`. The caller must already hold the exclusive lock on it.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let map = map_whole(&file, len)?;
        Ok(Self { file, map, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            Some(m) => m,
            None => &mut [],
        }
    }

    /// Changes the file length to `new_len` and remaps. Drops the old mapping first (invariant 2).
    pub(crate) fn resize(&mut self, new_len: u64) -> io::Result<()> {
        self.map = None;
        self.file.set_len(new_len)?;
        self.len = new_len;
        self.map = map_whole(&self.file, new_len)?;
        Ok(())
    }

    /// Writes back dirty pages in `[offset, offset+len)` and waits (msync MS_SYNC).
    pub(crate) fn flush_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some(map) = &self.map else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        let off = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        let n = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        map.flush_range(off, n)
    }

    /// fdatasync: makes the written data and the file size durable.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
