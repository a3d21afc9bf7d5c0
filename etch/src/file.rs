//! One store file: open + recovery, append, read, checkpoint. Used by [`crate::Store`] for the
//! live file and by garbage collection for the file it is building.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{EtchError, Result};
use crate::format::{
    self, DATA_START, HEADER_SLOT, Header, HeaderError, MAX_RECORD, RecordError, TAG_DATA,
    TAG_INDEX,
};
use crate::index::Index;
use crate::map::MappedFile;
use crate::{Hash, RecoveryReport, us};

/// Growth step bounds for the preallocated tail.
const GROW_MIN: u64 = 1 << 20;
const GROW_MAX: u64 = 64 << 20;
/// Most entries in one index segment (16 bytes each; 2^22 * 16 = 64 MiB = MAX_RECORD).
const SEGMENT_MAX_ENTRIES: usize = MAX_RECORD / 16;

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

/// Opens `path` read-write and takes its exclusive lock, checking that the lock is on the inode
/// the path names (a GC swap may replace the file between our open and our lock).
fn open_locked(path: &Path) -> Result<Option<File>> {
    for _ in 0..5 {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EtchError::io(path, "open")(e)),
        };
        lock(&file, path)?;
        let ours = file.metadata().map_err(EtchError::io(path, "stat"))?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(EtchError::io(path, "stat")(e)),
        }
    }
    Err(EtchError::Locked {
        path: path.to_path_buf(),
    })
}

fn lock(file: &File, path: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(EtchError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(EtchError::io(path, "lock")(e)),
    }
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

fn empty_header(generation: u64) -> Header {
    Header {
        generation,
        data_end: DATA_START,
        index_head: 0,
        record_count: 0,
        roots: BTreeMap::new(),
    }
}

fn damaged(path: &Path, detail: impl Into<String>) -> EtchError {
    EtchError::Damaged {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Result of scanning records in a range.
struct Scan {
    entries: Vec<(u64, u64)>,
    records: u64,
    corrupt: u64,
    /// Where the scan stopped.
    stop: u64,
    /// Why: None = reached the limit, Some(Empty) = zero tag, other = damage.
    stopped_by: Option<RecordError>,
}

/// Walks records from `from` up to `limit`. Records with a bad checksum whose length field still
/// fits are skipped (counted in `corrupt`); anything else stops the walk.
fn scan(bytes: &[u8], from: u64, limit: u64) -> Scan {
    let mut s = Scan {
        entries: Vec::new(),
        records: 0,
        corrupt: 0,
        stop: from,
        stopped_by: None,
    };
    let mut at = from;
    while at < limit {
        match format::read_record(bytes, at, limit) {
            Ok(r) => {
                if r.tag == TAG_DATA {
                    s.entries.push((Hash(*r.key).prefix(), at));
                    s.records += 1;
                }
                at = r.next;
            }
            Err(RecordError::Checksum) => {
                s.corrupt += 1;
                // read_record checked that the length field fits below `limit`.
                let len = format::read_u64(bytes, us(at)) >> 32;
                at += format::record_size(us(len));
            }
            Err(e) => {
                s.stopped_by = Some(e);
                break;
            }
        }
    }
    s.stop = at;
    s
}

/// Rebuilds the index from the segment chain. Errors name what is wrong.
fn load_index(bytes: &[u8], h: &Header) -> std::result::Result<Index, String> {
    let cap = usize::try_from(h.record_count).map_err(|_| "record count too large".to_owned())?;
    let mut ix = Index::with_capacity(cap);
    let mut off = h.index_head;
    let mut limit = h.data_end;
    let mut total = 0u64;
    while off != 0 {
        let r = format::read_record(bytes, off, limit)
            .map_err(|e| format!("index segment at {off} unreadable ({e:?})"))?;
        if r.tag != TAG_INDEX {
            return Err(format!("record at {off} is not an index segment"));
        }
        let prev = format::read_u64(r.key, 0);
        let count = format::read_u64(r.key, 8);
        if r.key[16..] != [0u8; 16] || (prev != 0 && prev >= off) {
            return Err(format!("index segment at {off} has a bad chain link"));
        }
        if count.checked_mul(16) != Some(r.payload.len() as u64) {
            return Err(format!("index segment at {off} has a bad entry count"));
        }
        for e in r.payload.chunks_exact(16) {
            let prefix = format::read_u64(e, 0);
            let at = format::read_u64(e, 8);
            if at < DATA_START || at >= off || !at.is_multiple_of(8) {
                return Err(format!(
                    "index segment at {off} points outside the record area"
                ));
            }
            ix.insert(prefix, at);
        }
        total += count;
        limit = off;
        off = prev;
    }
    if total != h.record_count {
        return Err(format!(
            "index segments list {total} records, the header says {}",
            h.record_count
        ));
    }
    Ok(ix)
}

/// Offset one past the last non-zero byte in `bytes[from..]`, or `from` if all zero.
fn last_nonzero(bytes: &[u8], from: usize) -> usize {
    let tail = &bytes[from.min(bytes.len())..];
    match tail.iter().rposition(|&b| b != 0) {
        Some(i) => from + i + 1,
        None => from,
    }
}

impl EtchFile {
    /// Opens (creating if allowed and absent) the store at `path`, recovering after a crash.
    pub(crate) fn open(path: &Path, create: bool) -> Result<(EtchFile, RecoveryReport)> {
        for _ in 0..3 {
            if let Some(file) = open_locked(path)? {
                return Self::recover(path, file);
            }
            if !create {
                return Err(EtchError::Io {
                    path: path.to_path_buf(),
                    op: "open",
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
            match Self::create_at(path)? {
                Some(f) => {
                    let report = RecoveryReport {
                        created: true,
                        ..RecoveryReport::default()
                    };
                    return Ok((f, report));
                }
                None => continue, // someone else created it first: open theirs
            }
        }
        Err(EtchError::Locked {
            path: path.to_path_buf(),
        })
    }

    /// Builds an empty store in a private temporary file, then links it into place without
    /// ever replacing an existing file. Returns None if `path` appeared meanwhile.
    fn create_at(path: &Path) -> Result<Option<EtchFile>> {
        let tmp = sibling(path, &format!(".new.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let f = Self::create_file(&tmp)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(EtchError::io(path, "link new store")(e)),
        }
        sync_dir(path)?;
        Ok(Some(EtchFile {
            path: path.to_path_buf(),
            ..f
        }))
    }

    /// Creates a new, empty, locked, durable store file at `path` (which must not exist).
    pub(crate) fn create_file(path: &Path) -> Result<EtchFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(EtchError::io(path, "create"))?;
        lock(&file, path)?;
        let mut map = MappedFile::new(file).map_err(EtchError::io(path, "map"))?;
        map.resize(DATA_START + GROW_MIN)
            .map_err(EtchError::io(path, "grow"))?;
        for g in 0..2u64 {
            let enc = empty_header(g).encode();
            let at = us(g * HEADER_SLOT);
            map.bytes_mut()[at..at + us(HEADER_SLOT)].copy_from_slice(&enc);
        }
        map.flush_range(0, DATA_START)
            .and_then(|()| map.sync_data())
            .map_err(EtchError::io(path, "sync new store"))?;
        Ok(EtchFile {
            path: path.to_path_buf(),
            map,
            index: Index::with_capacity(0),
            end: DATA_START,
            committed: empty_header(1),
            roots: BTreeMap::new(),
            pending: Vec::new(),
            record_count: 0,
            broken: false,
        })
    }

    fn recover(path: &Path, file: File) -> Result<(EtchFile, RecoveryReport)> {
        let mut map = MappedFile::new(file).map_err(EtchError::io(path, "map"))?;
        let len = map.len();
        if len < DATA_START {
            return Err(if len >= 8 && map.bytes()[..8] != format::MAGIC {
                EtchError::NotAStore {
                    path: path.to_path_buf(),
                }
            } else {
                damaged(
                    path,
                    format!("the file is {len} bytes, shorter than its two header copies"),
                )
            });
        }
        let bytes = map.bytes();
        let slots = [
            Header::decode(&bytes[..us(HEADER_SLOT)]),
            Header::decode(&bytes[us(HEADER_SLOT)..us(DATA_START)]),
        ];
        // A newer format in either copy: refuse, whatever the other copy says.
        for s in &slots {
            if let Err(HeaderError::Version(found)) = s {
                return Err(EtchError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found: *found,
                    supported: format::FORMAT_VERSION,
                });
            }
        }
        let best = match (&slots[0], &slots[1]) {
            (Ok(a), Ok(b)) => Some(if b.generation > a.generation { 1 } else { 0 }),
            (Ok(_), Err(_)) => Some(0),
            (Err(_), Ok(_)) => Some(1),
            (Err(_), Err(_)) => None,
        };
        let Some(slot) = best else {
            if slots.iter().all(|s| matches!(s, Err(HeaderError::NoMagic))) {
                return Err(EtchError::NotAStore {
                    path: path.to_path_buf(),
                });
            }
            return Err(damaged(path, "both header copies fail their checksums"));
        };
        let header = match &slots[slot] {
            Ok(h) => h.clone(),
            Err(_) => return Err(damaged(path, "internal: chosen header unreadable")),
        };
        if header.data_end > len {
            return Err(damaged(
                path,
                format!(
                    "the last checkpoint (generation {}) ends at byte {}, but the file has only {len} bytes: checkpointed data is missing",
                    header.generation, header.data_end
                ),
            ));
        }
        let mut report = RecoveryReport {
            generation: header.generation,
            header_slot: u8::from(slot == 1),
            other_header_ok: slots[1 - slot].is_ok(),
            checkpoint_end: header.data_end,
            ..RecoveryReport::default()
        };
        let (index, record_count) = match load_index(bytes, &header) {
            Ok(ix) => (ix, header.record_count),
            Err(why) => {
                // The index is damaged: rebuild it from the records themselves.
                let s = scan(bytes, DATA_START, header.data_end);
                if s.stop != header.data_end {
                    return Err(damaged(
                        path,
                        format!(
                            "{why}, and the records cannot be walked past byte {} (of {})",
                            s.stop, header.data_end
                        ),
                    ));
                }
                report.index_rebuilt = true;
                report.corrupt_records = s.corrupt;
                let mut ix = Index::with_capacity(s.entries.len());
                for (p, o) in s.entries {
                    ix.insert(p, o);
                }
                (ix, s.records)
            }
        };
        report.records = record_count;
        // The tail past the checkpoint is never trusted: count it for the report, then drop it.
        let data_end = usize::try_from(header.data_end)
            .map_err(|_| damaged(path, "data end beyond the address space"))?;
        let tail_end = last_nonzero(bytes, data_end) as u64;
        if tail_end > header.data_end {
            let s = scan(bytes, header.data_end, tail_end);
            report.dropped_records = s.records;
            report.torn_tail = s.stop < tail_end || s.corrupt > 0;
            report.dropped_bytes = tail_end - header.data_end;
            map.resize(header.data_end)
                .map_err(EtchError::io(path, "truncate torn tail"))?;
        }
        let gc_tmp = sibling(path, ".gc");
        if gc_tmp.exists() {
            std::fs::remove_file(&gc_tmp).map_err(EtchError::io(&gc_tmp, "remove GC leftover"))?;
            report.removed_gc_leftover = true;
        }
        let mut f = EtchFile {
            path: path.to_path_buf(),
            map,
            index,
            end: header.data_end,
            roots: header.roots.clone(),
            committed: header,
            pending: Vec::new(),
            record_count,
            broken: false,
        };
        f.reserve(GROW_MIN)?;
        Ok((f, report))
    }

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

    fn offset_of(&self, key: &Hash) -> Option<u64> {
        let bytes = self.map.bytes();
        self.index.find(key.prefix(), |off| {
            let at = us(off);
            bytes.get(at + 8..at + 40) == Some(&key.0[..])
        })
    }

    /// True if a record with this key is present (its checksum is checked on read, not here).
    pub(crate) fn contains(&self, key: &Hash) -> bool {
        self.offset_of(key).is_some()
    }

    /// The payload stored under `key`, checksum verified.
    pub(crate) fn get(&self, key: &Hash) -> Result<Option<&[u8]>> {
        let Some(off) = self.offset_of(key) else {
            return Ok(None);
        };
        match format::read_record(self.map.bytes(), off, self.end) {
            Ok(r) if r.tag == TAG_DATA && r.key == &key.0 => Ok(Some(r.payload)),
            _ => Err(EtchError::Corrupt {
                hash: *key,
                offset: off,
            }),
        }
    }

    /// Data records in `[from, to)` (both record boundaries this file produced), as
    /// `(key, payload)`, in file order. Stops early after `max` records; returns where it stopped.
    pub(crate) fn records_between(
        &self,
        from: u64,
        to: u64,
        max: usize,
        mut f: impl FnMut(Hash, &[u8]) -> Result<()>,
    ) -> Result<u64> {
        let bytes = self.map.bytes();
        let mut at = from;
        let mut n = 0;
        while at < to && n < max {
            match format::read_record(bytes, at, to) {
                Ok(r) => {
                    if r.tag == TAG_DATA {
                        f(Hash(*r.key), r.payload)?;
                        n += 1;
                    }
                    at = r.next;
                }
                Err(_) => {
                    return Err(EtchError::Corrupt {
                        hash: Hash::ZERO,
                        offset: at,
                    });
                }
            }
        }
        Ok(at)
    }

    fn check_usable(&self) -> Result<()> {
        if self.broken {
            return Err(damaged(
                &self.path,
                "an earlier sync of this store failed, so its later writes cannot be trusted; close and reopen it (recovery rolls back to the last good checkpoint)",
            ));
        }
        Ok(())
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

    fn append(&mut self, tag: u8, key: &[u8; 32], payload: &[u8]) -> Result<u64> {
        if payload.len() > MAX_RECORD {
            return Err(EtchError::TooLarge {
                len: payload.len(),
                max: MAX_RECORD,
            });
        }
        let size = format::record_size(payload.len());
        self.reserve(size)?;
        let at = self.end;
        // reserve() made the mapping at least `end + size` long, and it fits in memory.
        let (a, b) = (us(at), us(at + size));
        format::write_record(&mut self.map.bytes_mut()[a..b], tag, key, payload);
        self.end += size;
        Ok(at)
    }

    /// Appends a data record under `key` (the caller computed `key = Hash::of(payload)`, or
    /// checked it). Returns false if it was already present.
    pub(crate) fn put_hashed(&mut self, key: &Hash, payload: &[u8]) -> Result<bool> {
        self.check_usable()?;
        if self.contains(key) {
            return Ok(false);
        }
        let at = self.append(TAG_DATA, &key.0, payload)?;
        self.index.insert(key.prefix(), at);
        self.pending.push((key.prefix(), at));
        self.record_count += 1;
        Ok(true)
    }

    /// True if nothing changed since the last checkpoint.
    pub(crate) fn is_clean(&self) -> bool {
        self.pending.is_empty()
            && self.end == self.committed.data_end
            && self.roots == self.committed.roots
    }

    /// Durable checkpoint: index segment, flush + fdatasync of the records, then the next header
    /// copy, flush + fdatasync. Returns the new generation.
    pub(crate) fn checkpoint(&mut self) -> Result<u64> {
        self.check_usable()?;
        if self.is_clean() {
            return Ok(self.committed.generation);
        }
        let result = self.checkpoint_inner();
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn checkpoint_inner(&mut self) -> Result<u64> {
        let mut head = self.committed.index_head;
        let pending = std::mem::take(&mut self.pending);
        for chunk in pending.chunks(SEGMENT_MAX_ENTRIES) {
            let mut payload = Vec::with_capacity(chunk.len() * 16);
            for &(p, o) in chunk {
                payload.extend_from_slice(&p.to_le_bytes());
                payload.extend_from_slice(&o.to_le_bytes());
            }
            head = self.append(
                TAG_INDEX,
                &format::index_key(head, chunk.len() as u64),
                &payload,
            )?;
        }
        let from = self.committed.data_end;
        self.map
            .flush_range(from, self.end - from)
            .and_then(|()| self.map.sync_data())
            .map_err(EtchError::io(&self.path, "sync records"))?;
        let h = Header {
            generation: self.committed.generation + 1,
            data_end: self.end,
            index_head: head,
            record_count: self.record_count,
            roots: self.roots.clone(),
        };
        let at = (h.generation % 2) * HEADER_SLOT;
        let enc = h.encode();
        self.map.bytes_mut()[us(at)..us(at + HEADER_SLOT)].copy_from_slice(&enc);
        self.map
            .flush_range(at, HEADER_SLOT)
            .and_then(|()| self.map.sync_data())
            .map_err(EtchError::io(&self.path, "sync header"))?;
        self.committed = h;
        Ok(self.committed.generation)
    }

    /// Checkpoint, then drop the preallocated tail so a closed file holds only its records.
    pub(crate) fn close(mut self) -> Result<()> {
        self.checkpoint()?;
        let end = self.end;
        self.map
            .resize(end)
            .and_then(|()| self.map.sync_data())
            .map_err(EtchError::io(&self.path, "trim on close"))
    }

    pub(crate) fn file_len(&self) -> u64 {
        self.map.len()
    }
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl EtchFile {
    /// Makes this (fresh) file's next checkpoint generation `g + 1`, so generations keep
    /// increasing across a garbage-collection swap.
    pub(crate) fn continue_generation(&mut self, g: u64) {
        self.committed.generation = self.committed.generation.max(g);
    }
}
