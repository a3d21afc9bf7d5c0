//! The write path: appending data records, durable checkpoints (index segment, records,
//! next header copy) and closing.

use super::{EtchFile, damaged};
use crate::error::{EtchError, Result};
use crate::format::{self, HEADER_SLOT, Header, MAX_RECORD, TAG_DATA, TAG_INDEX};
use crate::{Hash, us};

/// Most entries in one index segment (16 bytes each; 2^22 * 16 = 64 MiB = MAX_RECORD).
const SEGMENT_MAX_ENTRIES: usize = MAX_RECORD / 16;

impl EtchFile {
    fn check_usable(&self) -> Result<()> {
        if self.broken {
            return Err(damaged(
                &self.path,
                "an earlier sync of this store failed, so its later writes cannot be trusted; close and reopen it (recovery rolls back to the last good checkpoint)",
            ));
        }
        Ok(())
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
}
