//! The byte-exact file format (documented in docs/etch.md). All integers little-endian.
//!
//! ```text
//! [0, 4096)      header copy A (slot 0)   generation g is written to slot g % 2
//! [4096, 8192)   header copy B (slot 1)
//! [8192, ...)    records, each starting at a multiple of 8
//! ```

use std::collections::BTreeMap;

use crate::{Hash, us};

/// The format version this build writes, and the only one it reads. A later upgrade bumps this
/// and adds a migration from every older version; `open` refuses anything newer.
pub const FORMAT_VERSION: u32 = 1;

/// First 8 bytes of each header copy.
pub const MAGIC: [u8; 8] = *b"CVXETCH\0";

/// Size of one header slot.
pub const HEADER_SLOT: u64 = 4096;
/// First byte of the record area.
pub const DATA_START: u64 = 2 * HEADER_SLOT;

/// Largest payload a record may carry (64 MiB).
pub const MAX_RECORD: usize = 64 << 20;
/// Most roots a store holds.
pub const MAX_ROOTS: usize = 32;
/// Longest root name, in bytes.
pub const MAX_ROOT_NAME: usize = 64;

/// Record tags.
pub const TAG_DATA: u8 = 1;
/// An index segment written by a checkpoint.
pub const TAG_INDEX: u8 = 2;

/// Bytes of a record header.
pub const RECORD_HEADER: usize = 48;
/// Offset of the CRC in a record header (it covers bytes [0, 40) and the payload).
const RECORD_CRC_AT: usize = 40;
/// Fixed part of a header before the roots.
const HEADER_FIXED: usize = 52;

/// One header copy, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub generation: u64,
    /// End of the checkpointed record area: everything in [DATA_START, data_end) is durable.
    pub data_end: u64,
    /// Offset of the newest index segment, 0 when there is none.
    pub index_head: u64,
    /// Data records in [DATA_START, data_end).
    pub record_count: u64,
    pub roots: BTreeMap<String, Hash>,
}

/// Why a header slot was not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// No magic: not ours (or never written).
    NoMagic,
    /// Magic present, version not ours (bytes 0..12 are stable across versions).
    Version(u32),
    /// Magic and version fine, but the checksum or a field is wrong (a torn write, or damage).
    Invalid(&'static str),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    u64_at(b, at)
}

impl Header {
    /// Encodes into a full slot (4096 bytes, zero padded).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(us(HEADER_SLOT));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // header_len, patched below
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.data_end.to_le_bytes());
        out.extend_from_slice(&self.index_head.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        // Bounded by MAX_ROOTS (32), checked by set_root and decode.
        #[allow(clippy::cast_possible_truncation)]
        let root_count = self.roots.len() as u32;
        out.extend_from_slice(&root_count.to_le_bytes());
        for (name, hash) in &self.roots {
            // Bounded by MAX_ROOT_NAME (64), checked by set_root.
            #[allow(clippy::cast_possible_truncation)]
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&hash.0);
        }
        #[allow(clippy::cast_possible_truncation)]
        let header_len = out.len() as u32; // <= 52 + 32 * 97 < 4096
        out[12..16].copy_from_slice(&header_len.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.resize(us(HEADER_SLOT), 0);
        out
    }

    /// Decodes one slot strictly.
    pub(crate) fn decode(slot: &[u8]) -> Result<Header, HeaderError> {
        if slot.len() < us(HEADER_SLOT) || slot[..8] != MAGIC {
            return Err(HeaderError::NoMagic);
        }
        let version = u32_at(slot, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let header_len = u32_at(slot, 12) as usize;
        if !(HEADER_FIXED..=us(HEADER_SLOT) - 4).contains(&header_len) {
            return Err(HeaderError::Invalid("header length out of range"));
        }
        if crc32fast::hash(&slot[..header_len]) != u32_at(slot, header_len) {
            return Err(HeaderError::Invalid("header checksum mismatch"));
        }
        let generation = u64_at(slot, 16);
        let data_end = u64_at(slot, 24);
        let index_head = u64_at(slot, 32);
        let record_count = u64_at(slot, 40);
        let root_count = u32_at(slot, 48) as usize;
        if data_end < DATA_START || !data_end.is_multiple_of(8) {
            return Err(HeaderError::Invalid("data end out of range"));
        }
        // Every record takes at least RECORD_HEADER bytes: a larger count is a forged header,
        // and would otherwise size the index allocation.
        if record_count > (data_end - DATA_START) / RECORD_HEADER as u64 {
            return Err(HeaderError::Invalid(
                "record count larger than the record area",
            ));
        }
        if index_head != 0 && (index_head < DATA_START || index_head >= data_end) {
            return Err(HeaderError::Invalid("index head out of range"));
        }
        if root_count > MAX_ROOTS {
            return Err(HeaderError::Invalid("too many roots"));
        }
        let mut roots = BTreeMap::new();
        let mut at = HEADER_FIXED;
        for _ in 0..root_count {
            let n = *slot
                .get(at)
                .ok_or(HeaderError::Invalid("root table truncated"))? as usize;
            at += 1;
            if n == 0 || n > MAX_ROOT_NAME || at + n + 32 > header_len {
                return Err(HeaderError::Invalid("root entry out of range"));
            }
            let name = std::str::from_utf8(&slot[at..at + n])
                .map_err(|_| HeaderError::Invalid("root name is not UTF-8"))?;
            at += n;
            let mut h = [0u8; 32];
            h.copy_from_slice(&slot[at..at + 32]);
            at += 32;
            if roots.insert(name.to_owned(), Hash(h)).is_some() {
                return Err(HeaderError::Invalid("duplicate root name"));
            }
        }
        if at != header_len {
            return Err(HeaderError::Invalid("trailing bytes in header"));
        }
        Ok(Header {
            generation,
            data_end,
            index_head,
            record_count,
            roots,
        })
    }
}

/// Total bytes a record with `payload_len` payload bytes occupies (header, payload, padding to 8).
pub(crate) fn record_size(payload_len: usize) -> u64 {
    ((RECORD_HEADER + payload_len + 7) & !7) as u64
}

/// Writes a record (header + payload + zero padding) into `out`, which is exactly
/// `record_size(payload.len())` bytes long.
pub(crate) fn write_record(out: &mut [u8], tag: u8, key: &[u8; 32], payload: &[u8]) {
    out[0] = tag;
    out[1..4].fill(0);
    // Bounded by MAX_RECORD (< 4 GiB), checked by every caller.
    #[allow(clippy::cast_possible_truncation)]
    out[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[8..40].copy_from_slice(key);
    let mut h = crc32fast::Hasher::new();
    h.update(&out[..RECORD_CRC_AT]);
    h.update(payload);
    out[40..44].copy_from_slice(&h.finalize().to_le_bytes());
    out[44..48].fill(0);
    out[RECORD_HEADER..RECORD_HEADER + payload.len()].copy_from_slice(payload);
    out[RECORD_HEADER + payload.len()..].fill(0);
}

/// A record read back from the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub tag: u8,
    pub key: &'a [u8; 32],
    pub payload: &'a [u8],
    /// Offset just past the record (and its padding).
    pub next: u64,
}

/// Why a record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Zero tag: nothing was ever written here (the end of the log).
    Empty,
    /// The header does not describe a record that fits in `limit`, or the tag is unknown.
    Malformed,
    /// Header plausible, checksum wrong.
    Checksum,
}

/// Reads the record at `offset`, which must lie wholly below `limit`; verifies the checksum.
pub(crate) fn read_record(
    bytes: &[u8],
    offset: u64,
    limit: u64,
) -> Result<RecordView<'_>, RecordError> {
    let limit = limit.min(bytes.len() as u64);
    if !offset.is_multiple_of(8) || offset < DATA_START || offset + RECORD_HEADER as u64 > limit {
        return Err(RecordError::Malformed);
    }
    // offset < limit <= bytes.len(), so it fits in usize.
    let at = us(offset);
    let h = &bytes[at..at + RECORD_HEADER];
    let tag = h[0];
    if tag == 0 {
        return Err(RecordError::Empty);
    }
    if !(tag == TAG_DATA || tag == TAG_INDEX) || h[1..4] != [0, 0, 0] || h[44..48] != [0; 4] {
        return Err(RecordError::Malformed);
    }
    let len = u32_at(h, 4) as usize;
    if len > MAX_RECORD {
        return Err(RecordError::Malformed);
    }
    let next = offset + record_size(len);
    if next > limit {
        return Err(RecordError::Malformed);
    }
    let payload = &bytes[at + RECORD_HEADER..at + RECORD_HEADER + len];
    let mut c = crc32fast::Hasher::new();
    c.update(&h[..RECORD_CRC_AT]);
    c.update(payload);
    if c.finalize() != u32_at(h, RECORD_CRC_AT) {
        return Err(RecordError::Checksum);
    }
    let key: &[u8; 32] = h[8..40].try_into().map_err(|_| RecordError::Malformed)?;
    Ok(RecordView {
        tag,
        key,
        payload,
        next,
    })
}

/// The key field of an index segment: previous segment offset, entry count, zeros.
pub(crate) fn index_key(prev: u64, count: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&prev.to_le_bytes());
    k[8..16].copy_from_slice(&count.to_le_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_flips() {
        let mut roots = BTreeMap::new();
        roots.insert("state".to_owned(), Hash::of(b"x"));
        roots.insert("belief".to_owned(), Hash::of(b"y"));
        let h = Header {
            generation: 7,
            data_end: DATA_START + 96,
            index_head: DATA_START + 48,
            record_count: 1,
            roots,
        };
        let enc = h.encode();
        assert_eq!(Header::decode(&enc), Ok(h));
        // 52 fixed bytes, two roots (1 + 6 + 32, 1 + 5 + 32), then the 4-byte CRC.
        let used = 52 + 39 + 38 + 4;
        assert_eq!(enc[used..], vec![0u8; enc.len() - used][..]);
        for i in 0..used {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert!(Header::decode(&bad).is_err(), "flip at {i} accepted");
        }
        let mut newer = enc.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Header::decode(&newer), Err(HeaderError::Version(2)));
    }

    #[test]
    fn record_round_trips_and_detects_flips() {
        let payload = b"hello etch";
        let key = Hash::of(payload).0;
        let size = us(record_size(payload.len()));
        let mut file = vec![0u8; us(DATA_START) + size];
        write_record(&mut file[us(DATA_START)..], TAG_DATA, &key, payload);
        let r = read_record(&file, DATA_START, file.len() as u64).expect("reads");
        assert_eq!(r.payload, payload);
        assert_eq!(r.key, &key);
        for i in us(DATA_START)..us(DATA_START) + RECORD_HEADER + payload.len() {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(
                read_record(&bad, DATA_START, file.len() as u64).is_err(),
                "flip at {i}"
            );
        }
    }
}
