//! Moving a signer between hosts: `export-watermark` and `import-watermark`
//! (docs/signer.md "Watermark export file", docs/operations.md "Moving a signer to a new
//! host"). The file format is `cvx_protocol::watermark_file`; the merge rule is
//! `Watermark::merge` (per-field maximum). Both commands take the state file's
//! exclusive `flock` — the lock a running signer holds for its whole life — so they
//! refuse while a signer runs on that state, and a signer started meanwhile refuses to
//! start (exit 5) until they are done.

use std::path::PathBuf;

use cvx_protocol::policy::Watermark;
use cvx_protocol::signer_wire::{AuditEvent, AuditSummary, StateRecord};
use cvx_protocol::watermark_file::{Exported, WatermarkFileError};
use cvx_protocol::{PublicKey, Timestamp};

use crate::audit::{AuditLog, AuditLogError};
use crate::config::Settings;
use crate::keys::{self, KeyError, PassphraseFrom};
use crate::state::{StateError, StateFile};

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The state file (includes "in use by a running signer").
    #[error(transparent)]
    State(#[from] StateError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    /// Appending to or syncing the audit log, or committing the state.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file (import: the key the destination will sign with).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The watermark file cannot be read or parsed.
    #[error("watermark file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The watermark file's content is invalid.
    #[error("watermark file {path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Why.
        source: WatermarkFileError,
    },
    /// The file is for another network.
    #[error(
        "watermark file {path} is for network {found}, but this signer's config says {configured}: import only a file exported from a signer of this network"
    )]
    WrongNetwork {
        /// The file.
        path: PathBuf,
        /// In the file.
        found: String,
        /// In the config.
        configured: String,
    },
    /// The file is for another key.
    #[error(
        "watermark file {path} is for key {found}, but this signer's key is {ours}: import only a file exported from the signer whose key this one holds"
    )]
    WrongKey {
        /// The file.
        path: PathBuf,
        /// In the file (hex).
        found: String,
        /// This signer's (hex).
        ours: String,
    },
    /// Export: the key is not known from the audit log.
    #[error(
        "the audit log {path} has no Start record (this signer never served since its log began), so its public key is unknown; an unused signer has nothing to export"
    )]
    NeverStarted {
        /// The audit log.
        path: PathBuf,
    },
    /// `--margin-ms` below the policy's future skew.
    #[error(
        "--margin-ms {margin} is below the signing policy's max_future_skew_ms {skew}: the lost signer may have signed up to that far ahead of its clock"
    )]
    MarginTooSmall {
        /// Given.
        margin: u64,
        /// The policy's.
        skew: u64,
    },
}

/// The public key of the last `Start` record (the key the signer last served with).
#[must_use]
pub fn last_started_key(summary: &AuditSummary) -> Option<PublicKey> {
    summary.records.iter().rev().find_map(|r| match r.event {
        AuditEvent::Start { public_key } => Some(public_key),
        _ => None,
    })
}

/// Open state and log as the serving signer would, holding the state's lock.
fn open(s: &Settings) -> Result<(StateFile, AuditLog, AuditSummary), MigrateError> {
    crate::state::check_owner(&s.state_file)?;
    let state = StateFile::open(&s.state_file, &s.network)?;
    let cur = state.current().clone();
    let (mut log, summary) = AuditLog::open_checked(
        &s.audit_log,
        &s.network,
        &s.state_file,
        cur.sequence,
        cur.record.audit,
    )?;
    log.sync_if_due(true).map_err(|source| MigrateError::Io {
        what: "syncing the audit log",
        source,
    })?;
    Ok((state, log, summary))
}

/// Commit `record` (with the log's durable head) and append `event` at the new
/// sequence, synced: the order `unlock` uses, so the log never records a commit the
/// state lacks.
fn commit_and_record(
    state: &mut StateFile,
    log: &mut AuditLog,
    mut record: StateRecord,
    event: AuditEvent,
) -> Result<(), MigrateError> {
    record.audit = log.durable_head();
    state.commit(record).map_err(|source| MigrateError::Io {
        what: "writing the state file",
        source,
    })?;
    let seq = state.current().sequence;
    log.append([(event, seq)], crate::now())
        .and_then(|()| log.sync_if_due(true))
        .map_err(|source| MigrateError::Io {
            what: "appending to the audit log",
            source,
        })
}

/// `export-watermark`: read the final watermark of a stopped signer. Unless
/// `keep_unlocked`, the source is locked first (durably, audit record `Lock{uid}`), so a
/// revived old host refuses to sign. The returned export carries the audit head after
/// that record.
///
/// # Errors
/// [`MigrateError`]; `State(InUse)` while a signer runs on this state.
pub fn export(s: &Settings, keep_unlocked: bool) -> Result<Exported, MigrateError> {
    let (mut state, mut log, summary) = open(s)?;
    let public_key = last_started_key(&summary).ok_or_else(|| MigrateError::NeverStarted {
        path: s.audit_log.clone(),
    })?;
    let cur = state.current().record.clone();
    if !keep_unlocked && !cur.locked {
        let mut record = cur.clone();
        record.locked = true;
        commit_and_record(
            &mut state,
            &mut log,
            record,
            AuditEvent::Lock { uid: crate::euid() },
        )?;
    }
    Ok(Exported {
        network: s.network,
        public_key,
        exported_at: crate::now(),
        state_sequence: state.current().sequence,
        watermark: state.current().record.watermark.clone(),
        audit_head: log.durable_head(),
    })
}

/// What `import-watermark` should merge.
#[derive(Debug)]
pub struct ImportRequest {
    /// The watermark file's path and text.
    pub file: Option<(PathBuf, String)>,
    /// `--high-watermark`: everything up to now + this margin (ms) counts as signed.
    pub high_watermark_margin: Option<u64>,
    /// How to decrypt the key file when the audit log does not name the key.
    pub passphrase: PassphraseFrom,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// The watermark before.
    pub before: Watermark,
    /// The watermark after (the per-field maximum).
    pub after: Watermark,
    /// The high watermark's time, when given.
    pub high_until: Option<Timestamp>,
    /// A consensus point where the two states committed different chains.
    pub disagreement: Option<u64>,
    /// The new state sequence.
    pub state_sequence: u64,
}

/// Parse and check a watermark file's text.
///
/// # Errors
/// [`MigrateError::File`] or [`MigrateError::Format`].
pub fn parse_file(path: &std::path::Path, text: &str) -> Result<Exported, MigrateError> {
    let file = serde_json::from_str(text).map_err(|e| MigrateError::File {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    Exported::from_file(&file).map_err(|source| MigrateError::Format {
        path: path.to_owned(),
        source,
    })
}

/// `import-watermark`: merge a watermark file and/or a high watermark into this
/// signer's state, never lowering anything; records `Import` in the audit log.
///
/// # Errors
/// [`MigrateError`]; `State(InUse)` while a signer runs on this state.
pub fn import(s: &Settings, req: &ImportRequest) -> Result<ImportReport, MigrateError> {
    let imported = match &req.file {
        Some((path, text)) => Some((path, parse_file(path, text)?)),
        None => None,
    };
    if let Some((path, e)) = &imported
        && e.network != s.network
    {
        return Err(MigrateError::WrongNetwork {
            path: (*path).clone(),
            found: e.network.to_string(),
            configured: s.network.to_string(),
        });
    }
    let high_until = match req.high_watermark_margin {
        Some(margin) if margin < s.policy.max_future_skew_ms => {
            return Err(MigrateError::MarginTooSmall {
                margin,
                skew: s.policy.max_future_skew_ms,
            });
        }
        Some(margin) => Some(crate::now().plus_ms(margin)),
        None => None,
    };
    let (mut state, mut log, summary) = open(s)?;
    if let Some((path, e)) = &imported {
        // This signer's key: the one it last served with, else the key file's.
        let ours = match last_started_key(&summary) {
            Some(k) => k,
            None => {
                let key = keys::load(&s.key_file, &s.key_source, req.passphrase)?;
                keys::public_key(&key)
            }
        };
        if e.public_key != ours {
            return Err(MigrateError::WrongKey {
                path: (*path).clone(),
                found: e.public_key.to_hex(),
                ours: ours.to_hex(),
            });
        }
    }
    let cur = state.current().record.clone();
    let mut after = cur.watermark.clone();
    let mut disagreement = None;
    if let Some((_, e)) = &imported {
        disagreement = after.prefix_disagreement(&e.watermark);
        after = after.merge(&e.watermark);
    }
    if let Some(until) = high_until {
        after = after.merge(&Watermark::high(until));
    }
    let mut record = cur.clone();
    record.watermark = after.clone();
    commit_and_record(
        &mut state,
        &mut log,
        record,
        AuditEvent::Import {
            uid: crate::euid(),
            from: imported.as_ref().map(|(_, e)| e.audit_head),
            high_watermark: high_until.is_some(),
        },
    )?;
    Ok(ImportReport {
        before: cur.watermark,
        after,
        high_until,
        disagreement,
        state_sequence: state.current().sequence,
    })
}

/// The export as its JSON text (pretty, one field a line, newline-terminated).
#[must_use]
pub fn to_json(e: &Exported) -> String {
    // Serializing plain strings and integers cannot fail.
    let mut text = serde_json::to_string_pretty(&e.to_file()).unwrap_or_default();
    text.push('\n');
    text
}

fn describe(w: &Watermark) -> String {
    let mark = |m: Option<(u64, cvx_protocol::Hash)>| {
        m.map_or("none".to_owned(), |(t, id)| format!("t={t} id={id}"))
    };
    format!(
        "  last block:      {}\n  last order:      {}\n  consensus point: {}\n  finality point:  {}\n",
        mark(w.block.map(|b| (b.timestamp.0, b.id))),
        mark(w.order.map(|o| (o.timestamp.0, o.id))),
        w.consensus.map_or("none".to_owned(), |c| format!(
            "{} chain={}",
            c.position, c.chain
        )),
        w.finality
    )
}

impl ImportReport {
    /// What `import-watermark` prints.
    #[must_use]
    pub fn text(&self) -> String {
        let mut text = format!(
            "imported into state sequence {} (per-field maximum; nothing lowered)\nbefore:\n{}after:\n{}",
            self.state_sequence,
            describe(&self.before),
            describe(&self.after)
        );
        if let Some(t) = self.high_until {
            text.push_str(&format!(
                "high watermark: every block and order up to t={} counts as signed\n",
                t.0
            ));
        }
        if let Some(p) = self.disagreement {
            text.push_str(&format!(
                "WARNING: the two states committed different chains at consensus point {p}: this key has two \
                 histories; the higher chain value was kept. Check the peer's history before starting the signer\n"
            ));
        }
        text
    }
}
