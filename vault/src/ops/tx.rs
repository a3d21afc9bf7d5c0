//! Transactions: build, confirm, sign and write one (`tx`), pre-sign a withdrawal
//! ladder (`ladder`), and render a signed transaction file as QR codes (`qr`).

use std::path::{Path, PathBuf};

use cvx_protocol::ledger::Action;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Canonical};

use super::open::{check_role, open_for_role};
use super::{DirGuard, manifest_path};
use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Role};
use crate::error::{Result, VaultError};
use crate::fsio::{self, PUBLIC_MODE};
use crate::prompt::Operator;
use crate::txbuild::{Built, Description, Fields, Kind, LADDER_MAX, LADDER_WARNING, Request};

/// `tx` options.
#[derive(Clone, Debug)]
pub struct TxOptions {
    /// The kind (from the command line; with a request file it comes from the file).
    pub kind: Option<Kind>,
    /// Fields from the command line.
    pub fields: Fields,
    /// A request file.
    pub request: Option<PathBuf>,
    /// The network id typed on the command line (always required; a request's must equal it).
    pub network: String,
    /// The account key backup.
    pub backup: PathBuf,
    /// Its manifest.
    pub manifest: Option<PathBuf>,
    /// The signed transaction file to write (`<out>.json` gets the description).
    pub out: PathBuf,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
    /// Show, do not sign.
    pub dry_run: bool,
}

/// What `tx` did.
#[derive(Clone, Debug)]
pub struct TxReport {
    /// The human-readable transaction.
    pub human: String,
    /// The description (None for a dry run).
    pub description: Option<Description>,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The audit head.
    pub audit: Option<Summary>,
}

fn json_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn build_tx(o: &TxOptions) -> Result<(Built, Option<String>)> {
    let (kind, mut fields, expected) = if let Some(rp) = &o.request {
        let r = Request::load(rp)?;
        if o.kind.is_some_and(|k| k != r.action) {
            return Err(VaultError::invalid(
                "action",
                "the command line and the request file name different actions",
            ));
        }
        (r.action, r.fields, r.expected_hash)
    } else {
        let kind = o.kind.ok_or_else(|| VaultError::Usage("tx needs an action (withdraw, set-peer-stake, transfer, set-key, set-peer-host) or --request FILE".into()))?;
        (kind, o.fields.clone(), None)
    };
    let typed = crate::txbuild::parse_network(&o.network)?;
    match &fields.network {
        Some(n) => {
            let in_file = crate::txbuild::parse_network(n)?;
            if in_file != typed {
                return Err(VaultError::invalid(
                    "network",
                    format!(
                        "the request is for network {in_file}, but --network says {typed}; refused (check which network you mean)"
                    ),
                ));
            }
        }
        None => fields.network = Some(o.network.clone()),
    }
    let built = fields.build(kind)?;
    built.check_expected(expected.as_deref())?;
    Ok((built, expected))
}

/// Build, show, confirm, sign and write one transaction.
///
/// # Errors
/// Any [`VaultError`].
pub fn tx(audit: &AuditLog, op: &mut dyn Operator, o: &TxOptions) -> Result<TxReport> {
    let (built, _) = build_tx(o)?;
    let mpath = manifest_path(&o.backup, o.manifest.as_ref());
    let pre = backup::verify(&o.backup, &mpath)?;
    check_role(&o.backup, pre.manifest.role, Role::Account)?;
    let human = built.human(&pre.public_key);
    if o.dry_run {
        return Ok(TxReport {
            human,
            description: None,
            files: Vec::new(),
            audit: None,
        });
    }
    let djson = json_path(&o.out);
    fsio::ensure_absent(&o.out)?;
    fsio::ensure_absent(&djson)?;
    audit.verify()?;
    op.confirm("signing a transaction", &human)?;
    let (_plain, seed, public) = open_for_role(
        op,
        &o.backup,
        o.manifest.as_ref(),
        o.max_work_factor,
        Role::Account,
    )?;
    if let Action::SetKey { key } = &built.tx.action
        && *key == public
    {
        return Err(VaultError::invalid(
            "new-key",
            "that is the key already in use; a rotation needs a new key",
        ));
    }
    let file = built.sign(&seed.signing_key()?, &public)?;
    let bytes = file.encode();
    let desc = Description::of(&built, &public, &bytes);
    let w1 = fsio::write_new(&o.out, &bytes, PUBLIC_MODE)?;
    let djson_bytes = desc.to_json();
    let w2 = fsio::write_new(&djson, &djson_bytes, PUBLIC_MODE)?;
    let mut e = Entry::new("tx", Some(public.to_hex()));
    e.file("wrote", &o.out, &bytes);
    e.file("wrote", &djson, &djson_bytes);
    e.detail("network", built.network.to_string());
    e.detail("tx_id", built.id().to_hex());
    e.detail("origin", built.tx.origin.0.to_string());
    e.detail("sequence", built.tx.sequence.to_string());
    e.detail("action", desc.summary.clone());
    let summary = audit.append(e)?;
    w1.keep();
    w2.keep();
    Ok(TxReport {
        human,
        description: Some(desc),
        files: vec![o.out.clone(), djson],
        audit: Some(summary),
    })
}

/// `ladder` options.
#[derive(Clone, Debug)]
pub struct LadderOptions {
    /// Network id.
    pub network: String,
    /// Origin account (the peer's controller).
    pub origin: u64,
    /// The peer.
    pub peer: String,
    /// The account's current sequence n: files are signed for n+1 ..= n+count.
    pub current_sequence: u64,
    /// How many.
    pub count: u64,
    /// The account key backup.
    pub backup: PathBuf,
    /// Its manifest.
    pub manifest: Option<PathBuf>,
    /// A new directory for the files.
    pub out_dir: PathBuf,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `ladder` did.
#[derive(Clone, Debug)]
pub struct LadderReport {
    /// (sequence, file) per withdrawal.
    pub files: Vec<(u64, PathBuf)>,
    /// The audit head.
    pub audit: Summary,
}

/// Pre-sign withdrawals for sequences n+1..=n+k into a new directory.
///
/// # Errors
/// Any [`VaultError`]; on failure the directory is removed again.
pub fn ladder(audit: &AuditLog, op: &mut dyn Operator, o: &LadderOptions) -> Result<LadderReport> {
    if o.count == 0 || o.count > LADDER_MAX {
        return Err(VaultError::invalid(
            "count",
            format!("must be 1..={LADDER_MAX}"),
        ));
    }
    let first = o
        .current_sequence
        .checked_add(1)
        .ok_or_else(|| VaultError::invalid("current-sequence", "too large"))?;
    let last = o
        .current_sequence
        .checked_add(o.count)
        .ok_or_else(|| VaultError::invalid("current-sequence", "too large"))?;
    let builts: Vec<Built> = (first..=last)
        .map(|sequence| {
            Fields {
                network: Some(o.network.clone()),
                origin: Some(o.origin),
                sequence: Some(sequence),
                peer: Some(o.peer.clone()),
                ..Fields::default()
            }
            .build(Kind::Withdraw)
        })
        .collect::<Result<_>>()?;
    let mpath = manifest_path(&o.backup, o.manifest.as_ref());
    let pre = backup::verify(&o.backup, &mpath)?;
    check_role(&o.backup, pre.manifest.role, Role::Account)?;
    fsio::ensure_absent(&o.out_dir)?;
    audit.verify()?;
    let summary = format!(
        "{}\nLadder: {} withdrawals of peer {} for account {}, sequences {first}..={last}, network {}\n",
        LADDER_WARNING,
        o.count,
        o.peer,
        Address(o.origin),
        builts[0].network
    );
    op.confirm("signing a withdrawal ladder", &summary)?;
    let (_plain, seed, public) = open_for_role(
        op,
        &o.backup,
        o.manifest.as_ref(),
        o.max_work_factor,
        Role::Account,
    )?;
    let key = seed.signing_key()?;
    let dir_guard = DirGuard::create(&o.out_dir)?;
    let mut e = Entry::new("ladder", Some(public.to_hex()));
    e.detail("network", builts[0].network.to_string());
    e.detail("sequences", format!("{first}..={last}"));
    let mut files = Vec::new();
    let mut written = Vec::new();
    let warn = fsio::write_new(
        &o.out_dir.join("WARNING.txt"),
        LADDER_WARNING.as_bytes(),
        PUBLIC_MODE,
    )?;
    written.push(warn);
    for b in &builts {
        let file = b.sign(&key, &public)?;
        let bytes = file.encode();
        let p = o
            .out_dir
            .join(format!("withdraw-seq-{}.cvxtx", b.tx.sequence));
        let d = Description::of(b, &public, &bytes);
        let dj = d.to_json();
        written.push(fsio::write_new(&p, &bytes, PUBLIC_MODE)?);
        written.push(fsio::write_new(&json_path(&p), &dj, PUBLIC_MODE)?);
        e.file("wrote", &p, &bytes);
        files.push((b.tx.sequence, p));
    }
    let s = audit.append(e)?;
    for w in written {
        w.keep();
    }
    dir_guard.keep();
    Ok(LadderReport { files, audit: s })
}

/// What `qr` produced.
#[derive(Clone, Debug)]
pub struct QrReport {
    /// The decoded file (for the caption).
    pub file: TxFile,
    /// One terminal rendering per code.
    pub terminal: Vec<String>,
    /// The payloads.
    pub payloads: Vec<String>,
    /// The SVG written, if any.
    pub svg: Option<PathBuf>,
    /// The audit head, if a file was written.
    pub audit: Option<Summary>,
}

/// Render a signed transaction file as QR code(s); optionally write an SVG.
///
/// # Errors
/// Read errors, [`VaultError::Invalid`] for a file that is not a signed transaction.
pub fn qr(
    audit: &AuditLog,
    input: &Path,
    svg: Option<&Path>,
    light_blocks: bool,
) -> Result<QrReport> {
    let bytes = fsio::read_capped(input, TxFile::MAX_LEN as u64)?;
    let file = TxFile::decode(&bytes).map_err(|e| {
        VaultError::invalid(
            input.display().to_string(),
            format!("not a signed transaction file: {e}"),
        )
    })?;
    let payloads = crate::qr::payloads(&bytes);
    let codes: Vec<crate::qr::Matrix> = payloads
        .iter()
        .map(|p| crate::qr::Matrix::encode(p))
        .collect::<Result<_>>()?;
    let terminal = codes.iter().map(|m| m.terminal(light_blocks)).collect();
    let mut summary = None;
    if let Some(path) = svg {
        let doc = crate::qr::svg_document(&codes);
        let w = fsio::write_new(path, doc.as_bytes(), PUBLIC_MODE)?;
        let mut e = Entry::new("qr", None);
        e.file("read", input, &bytes);
        e.file("wrote", path, doc.as_bytes());
        e.detail("tx_id", file.signed.id().to_hex());
        summary = Some(audit.append(e)?);
        w.keep();
    }
    Ok(QrReport {
        file,
        terminal,
        payloads,
        svg: svg.map(Path::to_path_buf),
        audit: summary,
    })
}
