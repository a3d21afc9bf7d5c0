//! Opening a store file: lock it, create it if absent, or recover it after a crash (header
//! choice, index reload or rebuild from the records, torn-tail truncation).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{EtchFile, GROW_MIN, damaged, sibling, sync_dir};
use crate::error::{EtchError, Result};
use crate::format::{
    self, DATA_START, HEADER_SLOT, Header, HeaderError, RecordError, TAG_DATA, TAG_INDEX,
};
use crate::index::Index;
use crate::map::MappedFile;
use crate::{Hash, RecoveryReport, us};

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

fn empty_header(generation: u64) -> Header {
    Header {
        generation,
        data_end: DATA_START,
        index_head: 0,
        record_count: 0,
        roots: BTreeMap::new(),
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
}
