//! The watermark interchange file of `cvx-signer export-watermark` / `import-watermark`
//! (format `"cvx-signer-watermark"`, version 1): a JSON document, described field by
//! field in docs/signer.md ("Watermark export file"). Hashes and keys are 64 lower-case
//! hex digits, times are milliseconds since the Unix epoch. cvx-signer does the JSON
//! (serde_json); this module owns the schema (unknown fields are refused), the version
//! check and the conversion to typed values. The merge rule is
//! [`Watermark::merge`](crate::policy::Watermark::merge).

use serde::{Deserialize, Serialize};

use crate::consensus::Checkpoint;
use crate::hash::Hash;
use crate::policy::{BlockMark, OrderMark, Watermark};
use crate::primitives::{NetworkId, PublicKey, Timestamp};
use crate::signer_wire::AuditHead;

/// The `format` field.
pub const FORMAT: &str = "cvx-signer-watermark";
/// The `version` field this code writes and reads.
pub const VERSION: u16 = 1;

/// Why a watermark file was refused. Stable codes for callers: the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkFileError {
    /// `format` is not [`FORMAT`].
    #[error("not a cvx-signer watermark file (format {found:?}, expected {FORMAT:?})")]
    Format {
        /// What the file says.
        found: String,
    },
    /// `version` is not [`VERSION`].
    #[error(
        "watermark file version {found} is not supported (this cvx-signer reads version {VERSION}); export it again with this version"
    )]
    Version {
        /// What the file says.
        found: u16,
    },
    /// A hex field is malformed.
    #[error("watermark file field `{field}`: {problem}")]
    Field {
        /// The field's path, e.g. `watermark.block.id`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A block or order mark: `{"timestamp_ms": u64, "id": hex}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkJson {
    /// The value's timestamp.
    pub timestamp_ms: u64,
    /// Its id (block header hash / order hash).
    pub id: String,
}

/// The committed prefix: `{"position": u64, "chain": hex}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointJson {
    /// The last signed consensus point.
    pub position: u64,
    /// The chain value there.
    pub chain: String,
}

/// [`Watermark`], field for field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkJson {
    /// The last signed block (`null`: none).
    pub block: Option<MarkJson>,
    /// The last signed order (`null`: none).
    pub order: Option<MarkJson>,
    /// The prefix the last order committed to (`null`: no order yet).
    pub consensus: Option<CheckpointJson>,
    /// The last signed finality point.
    pub finality: u64,
}

/// The audit log's head: `{"records": u64, "hash": hex}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHeadJson {
    /// Records in the log (across rotations).
    pub records: u64,
    /// Hash of the last record (of the header when there is none).
    pub hash: String,
}

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u16,
    /// The network id.
    pub network: String,
    /// The signer's public key.
    pub public_key: String,
    /// When the export was made (the exporting host's clock).
    pub exported_at_ms: u64,
    /// The state file's sequence at export.
    pub state_sequence: u64,
    /// The watermark.
    pub watermark: WatermarkJson,
    /// The source audit log's head after the export was recorded in it.
    pub audit_head: AuditHeadJson,
}

/// A checked watermark file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The network.
    pub network: NetworkId,
    /// The key.
    pub public_key: PublicKey,
    /// When exported.
    pub exported_at: Timestamp,
    /// The source state's sequence.
    pub state_sequence: u64,
    /// The watermark.
    pub watermark: Watermark,
    /// The source audit log's head.
    pub audit_head: AuditHead,
}

fn hash_field(field: &'static str, s: &str) -> Result<Hash, WatermarkFileError> {
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(WatermarkFileError::Field {
            field,
            problem: "expected 64 lower-case hex digits".to_owned(),
        });
    }
    Hash::from_hex(s).map_err(|e| WatermarkFileError::Field {
        field,
        problem: e.to_owned(),
    })
}

impl Exported {
    /// The file for these values.
    #[must_use]
    pub fn to_file(&self) -> WatermarkFile {
        let w = &self.watermark;
        let mark = |timestamp: Timestamp, id: Hash| MarkJson {
            timestamp_ms: timestamp.0,
            id: id.to_hex(),
        };
        WatermarkFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            network: self.network.0.to_hex(),
            public_key: self.public_key.to_hex(),
            exported_at_ms: self.exported_at.0,
            state_sequence: self.state_sequence,
            watermark: WatermarkJson {
                block: w.block.map(|m| mark(m.timestamp, m.id)),
                order: w.order.map(|m| mark(m.timestamp, m.id)),
                consensus: w.consensus.map(|c| CheckpointJson {
                    position: c.position,
                    chain: c.chain.to_hex(),
                }),
                finality: w.finality,
            },
            audit_head: AuditHeadJson {
                records: self.audit_head.records,
                hash: self.audit_head.hash.to_hex(),
            },
        }
    }

    /// Check a parsed file: format, version, every hex field.
    ///
    /// # Errors
    /// [`WatermarkFileError`] naming the field.
    pub fn from_file(f: &WatermarkFile) -> Result<Self, WatermarkFileError> {
        if f.format != FORMAT {
            return Err(WatermarkFileError::Format {
                found: f.format.clone(),
            });
        }
        if f.version != VERSION {
            return Err(WatermarkFileError::Version { found: f.version });
        }
        let w = &f.watermark;
        let block = match &w.block {
            None => None,
            Some(m) => Some(BlockMark {
                timestamp: Timestamp(m.timestamp_ms),
                id: hash_field("watermark.block.id", &m.id)?,
            }),
        };
        let order = match &w.order {
            None => None,
            Some(m) => Some(OrderMark {
                timestamp: Timestamp(m.timestamp_ms),
                id: hash_field("watermark.order.id", &m.id)?,
            }),
        };
        let consensus = match &w.consensus {
            None => None,
            Some(c) => Some(Checkpoint {
                position: c.position,
                chain: hash_field("watermark.consensus.chain", &c.chain)?,
            }),
        };
        let key_hash = hash_field("public_key", &f.public_key)?;
        let public_key =
            PublicKey::from_bytes(&key_hash.0).map_err(|e| WatermarkFileError::Field {
                field: "public_key",
                problem: e.to_string(),
            })?;
        Ok(Self {
            network: NetworkId(hash_field("network", &f.network)?),
            public_key,
            exported_at: Timestamp(f.exported_at_ms),
            state_sequence: f.state_sequence,
            watermark: Watermark {
                block,
                order,
                consensus,
                finality: w.finality,
            },
            audit_head: AuditHead {
                records: f.audit_head.records,
                hash: hash_field("audit_head.hash", &f.audit_head.hash)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash;

    fn sample() -> Exported {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        Exported {
            network: NetworkId(hash(b"n")),
            public_key: PublicKey::from_bytes(sk.verifying_key().as_bytes()).unwrap(),
            exported_at: Timestamp(5),
            state_sequence: 3,
            watermark: Watermark {
                block: Some(BlockMark {
                    timestamp: Timestamp(4),
                    id: hash(b"b"),
                }),
                order: None,
                consensus: Some(Checkpoint {
                    position: 2,
                    chain: hash(b"c"),
                }),
                finality: 1,
            },
            audit_head: AuditHead {
                records: 7,
                hash: hash(b"h"),
            },
        }
    }

    #[test]
    fn round_trip_and_field_errors() {
        let e = sample();
        assert_eq!(Exported::from_file(&e.to_file()).unwrap(), e);
        let mut f = e.to_file();
        f.version = 2;
        assert_eq!(
            Exported::from_file(&f),
            Err(WatermarkFileError::Version { found: 2 })
        );
        let mut f = e.to_file();
        f.format = "eip-3076".into();
        assert!(matches!(
            Exported::from_file(&f),
            Err(WatermarkFileError::Format { .. })
        ));
        let mut f = e.to_file();
        f.watermark.consensus.as_mut().unwrap().chain = "AB".repeat(32);
        let err = Exported::from_file(&f).unwrap_err().to_string();
        assert!(err.contains("watermark.consensus.chain"), "{err}");
    }
}
