//! `cvx-vault convex withdraw | transfer | verify`: sign Convex transactions offline
//! with a vault account key (one, or a ladder of consecutive sequences), write each
//! one's outputs side by side, and check a signed file. Nothing here prints.

use std::path::{Path, PathBuf};

use super::tx::{Action, Signed, SubmitBody, Tx, WRAPPER_MAX};
use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Role};
use crate::error::{Result, VaultError};
use crate::fsio::{self, PUBLIC_MODE};
use crate::ops::{DirGuard, check_role, manifest_path, open_for_role};
use crate::prompt::Operator;
use crate::qr;
use crate::txbuild::LADDER_MAX;

/// The QR payload prefix of a Convex wrapper: `CONVEX1:<i>/<n>:<UPPER-CASE HEX>`.
pub const QR_PREFIX: &str = "CONVEX1";
/// A file `convex verify` reads is small: a wrapper, or its submit JSON.
pub const VERIFY_CAP: u64 = 4096;

/// `convex withdraw` / `convex transfer` options.
#[derive(Clone, Debug)]
pub struct SignOptions {
    /// The signing account.
    pub origin: u64,
    /// The first sequence (the account's current sequence + 1).
    pub sequence: u64,
    /// How many consecutive sequences (1 = a single transaction).
    pub count: u64,
    /// What each transaction does.
    pub action: Action,
    /// The account key backup.
    pub backup: PathBuf,
    /// Its manifest.
    pub manifest: Option<PathBuf>,
    /// A new directory for the outputs.
    pub out_dir: PathBuf,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
    /// Show, sign nothing.
    pub dry_run: bool,
}

/// The files written for one signed transaction.
#[derive(Clone, Debug)]
pub struct Files {
    /// The wrapper bytes (`application/cvx-raw`).
    pub raw: PathBuf,
    /// The `/api/v1/transaction/submit` body.
    pub json: PathBuf,
    /// The human summary with the replay warning and the submit commands.
    pub txt: PathBuf,
    /// The QR code(s) as SVG.
    pub svg: PathBuf,
}

/// What a signing command did.
#[derive(Clone, Debug)]
pub struct SignReport {
    /// What was shown for confirmation (every field and the bytes to sign).
    pub human: String,
    /// Each signed transaction, its files and its QR codes for the terminal.
    pub signed: Vec<(Signed, Files, Vec<String>)>,
    /// The audit head (none for a dry run).
    pub audit: Option<Summary>,
}

/// The submit commands for a transaction whose files are `f`.
#[must_use]
pub fn submit_commands(f: &Files) -> String {
    format!(
        "Submit through any good Convex peer (PEER = its REST URL, e.g. https://peer.example:8080):\n  curl -sS -X POST -H 'Content-Type: application/cvx-raw' --data-binary @{raw} \"$PEER/api/v1/transact\"\n  curl -sS -X POST -H 'Content-Type: application/json' --data-binary @{json} \"$PEER/api/v1/transaction/submit\"\n",
        raw = file_name(&f.raw),
        json = file_name(&f.json),
    )
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn build(o: &SignOptions) -> Result<Vec<Tx>> {
    if o.count > 1 && matches!(o.action, Action::Transfer { .. }) {
        return Err(VaultError::invalid(
            "count",
            "a ladder is for withdrawals only: every transfer of a ladder could be submitted, moving the amount each time; sign one transfer at a time",
        ));
    }
    if o.count == 0 || o.count > LADDER_MAX {
        return Err(VaultError::invalid(
            "count",
            format!("must be 1..={LADDER_MAX}"),
        ));
    }
    let last = o
        .sequence
        .checked_add(o.count - 1)
        .ok_or_else(|| VaultError::invalid("sequence", "too large for this --count"))?;
    (o.sequence..=last)
        .map(|s| Tx::new(o.origin, s, o.action))
        .collect()
}

fn show(txs: &[Tx], key: &[u8; 32]) -> String {
    let mut h = String::new();
    if txs.len() > 1 {
        h.push_str(&format!(
            "LADDER: {} Convex transactions, sequences {}..={} — each is valid on its own; once the account uses a sequence for anything else, that file is void.\n",
            txs.len(),
            txs[0].sequence,
            txs[txs.len() - 1].sequence
        ));
    }
    for t in txs {
        h.push_str(&t.human(key));
    }
    if let Some(t) = txs.first() {
        h.push_str(&t.replay_warning());
    }
    h
}

/// Build, show, confirm, sign and write one Convex transaction or a ladder.
///
/// # Errors
/// Any [`VaultError`]; on failure nothing is left behind.
pub fn sign(audit: &AuditLog, op: &mut dyn Operator, o: &SignOptions) -> Result<SignReport> {
    let txs = build(o)?;
    let pre = backup::verify(&o.backup, &manifest_path(&o.backup, o.manifest.as_ref()))?;
    check_role(&o.backup, pre.manifest.role, Role::Account)?;
    let human = show(&txs, pre.public_key.as_bytes());
    if o.dry_run {
        return Ok(SignReport {
            human,
            signed: Vec::new(),
            audit: None,
        });
    }
    fsio::ensure_absent(&o.out_dir)?;
    audit.verify()?;
    op.confirm("signing a Convex transaction", &human)?;
    let (_plain, seed, public) = open_for_role(
        op,
        &o.backup,
        o.manifest.as_ref(),
        o.max_work_factor,
        Role::Account,
    )?;
    let key = seed.signing_key()?;
    let dir_guard = DirGuard::create(&o.out_dir)?;
    let mut e = Entry::new(
        &format!("convex-{}", o.action.name()),
        Some(public.to_hex()),
    );
    e.detail("origin", format!("#{}", o.origin));
    e.detail(
        "sequences",
        format!("{}..={}", o.sequence, o.sequence + (o.count - 1)),
    );
    e.detail("form", txs[0].lisp());
    let mut written = Vec::new();
    let mut signed = Vec::new();
    for tx in &txs {
        let s = Signed {
            key: *public.as_bytes(),
            signature: key.sign_convex(tx),
            tx: *tx,
        };
        // Never write a signature that does not check.
        s.verify().map_err(|problem| VaultError::ConvexFile {
            path: o.out_dir.clone(),
            problem,
        })?;
        let (files, qr_text, w) = write_one(&o.out_dir, &s, &mut e)?;
        written.extend(w);
        e.detail(&format!("tx_id@{}", tx.sequence), hex::encode(s.id()));
        signed.push((s, files, qr_text));
    }
    let summary = audit.append(e)?;
    for w in written {
        w.keep();
    }
    dir_guard.keep();
    Ok(SignReport {
        human,
        signed,
        audit: Some(summary),
    })
}

fn write_one(
    dir: &Path,
    s: &Signed,
    e: &mut Entry,
) -> Result<(Files, Vec<String>, Vec<fsio::Written>)> {
    let stem = format!("{}-seq-{}", s.tx.action.name(), s.tx.sequence);
    let files = Files {
        raw: dir.join(format!("{stem}.cvx")),
        json: dir.join(format!("{stem}.submit.json")),
        txt: dir.join(format!("{stem}.txt")),
        svg: dir.join(format!("{stem}.svg")),
    };
    let wrapper = s.wrapper();
    let payloads = qr::payloads_with(QR_PREFIX, &wrapper);
    let codes = payloads
        .iter()
        .map(|p| qr::Matrix::encode(p))
        .collect::<Result<Vec<_>>>()?;
    let terminal = codes.iter().map(|c| c.terminal(true)).collect();
    let txt = format!("{}\n{}", s.human(), submit_commands(&files));
    let mut w = Vec::new();
    for (path, bytes) in [
        (&files.raw, wrapper),
        (&files.json, s.submit_json()),
        (&files.txt, txt.into_bytes()),
        (&files.svg, qr::svg_document(&codes).into_bytes()),
    ] {
        w.push(fsio::write_new(path, &bytes, PUBLIC_MODE)?);
        e.file("wrote", path, &bytes);
    }
    Ok((files, terminal, w))
}

/// Read a signed Convex transaction (the wrapper bytes, or the submit JSON), decode it
/// strictly and check its signature.
///
/// # Errors
/// [`VaultError::ConvexFile`] saying what is wrong; read errors.
pub fn verify(path: &Path) -> Result<Signed> {
    let bytes = fsio::read_capped(path, VERIFY_CAP)?;
    let bad = |problem: String| VaultError::ConvexFile {
        path: path.to_owned(),
        problem,
    };
    let s = if bytes.first() == Some(&b'{') {
        let body: SubmitBody =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a submit body ({e})")))?;
        Signed::from_submit_body(&body).map_err(bad)?
    } else {
        if bytes.len() > WRAPPER_MAX {
            return Err(bad(format!(
                "{} bytes, longer than any transaction the vault signs",
                bytes.len()
            )));
        }
        Signed::decode(&bytes).map_err(bad)?
    };
    s.verify().map_err(bad)?;
    Ok(s)
}
