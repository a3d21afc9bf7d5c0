//! The read path: finding a key through the index and reading records back, checksum
//! verified.

use super::EtchFile;
use crate::error::{EtchError, Result};
use crate::format::{self, TAG_DATA};
use crate::{Hash, us};

impl EtchFile {
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
}
