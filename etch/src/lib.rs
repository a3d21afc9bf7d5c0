//! cvx-etch: the peer's memory-mapped, content-addressed store.
//!
//! One file holds every record under the SHA-256 of its bytes (the protocol's content
//! address), an index of them, named roots, and two checksummed header copies with a
//! generation counter. Writes append through the mapping; [`Store::checkpoint`] makes them
//! durable (msync + fdatasync, then the next header copy, msync + fdatasync). Opening after a
//! crash keeps exactly the last checkpoint and reports what it dropped ([`RecoveryReport`]).
//! [`Store::collect_garbage`] copies what the roots reach into a new file while reads and writes
//! go on, and swaps it in atomically. [`merkle`] keeps ledger state as a canonical Merkle trie
//! in the store, with the walk and import primitives a joining peer syncs state with.
//!
//! What is deliberately absent: no code from other cvx crates, no network, no async, and no
//! unsafe outside `map.rs` (the one module that maps the file). The file format is in
//! docs/etch.md.
#![deny(unsafe_code)]

mod error;
mod file;
mod format;
mod gc;
mod hash;
mod index;
#[allow(unsafe_code)]
mod map;
pub mod merkle;
mod store;

// The store maps whole files and keeps 64-bit offsets, so it builds only for 64-bit targets,
// where every u64 -> usize conversion below (through `us`) is lossless.
const _: () = assert!(usize::BITS == 64, "cvx-etch needs a 64-bit target");

/// u64 -> usize, lossless on the 64-bit targets this crate builds for (asserted above).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn us(x: u64) -> usize {
    x as usize
}

pub use error::{ErrorKind, EtchError, Result};
pub use format::{FORMAT_VERSION, MAX_RECORD, MAX_ROOT_NAME, MAX_ROOTS};
pub use gc::{GcOutcome, GcPhase, GcProgress, GcReport};
pub use hash::Hash;
pub use store::{Children, GcHold, NoChildren, OpenOptions, RecoveryReport, Stats, Store};
