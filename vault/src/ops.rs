//! The vault's operations. Each returns a report for the binary to print; none prints.
//! Every operation that writes records itself in the audit log as its last fallible
//! step, and removes what it wrote if that step fails.

use std::path::{Path, PathBuf};

use cvx_protocol::ledger::Action;
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Canonical, PublicKey};

use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Checked, Manifest, Origin, Role};
use crate::error::{Result, VaultError};
use crate::fsio::{self, PUBLIC_MODE, SECRET_MODE};
use crate::mnemonic::{CONVEX_PATH_TEXT, Words};
use crate::prompt::Operator;
use crate::secret::{KeyPlaintext, Seed};
use crate::txbuild::{Built, Description, Fields, Kind, LADDER_MAX, LADDER_WARNING, Request};

/// Where new keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// OS randomness.
    Random,
    /// New BIP-39 words (shown once on the terminal, retyped).
    NewWords,
    /// Existing BIP-39 words.
    ImportWords,
}

/// `keygen` options.
#[derive(Clone, Debug)]
pub struct KeygenOptions {
    /// Peer or account.
    pub role: Role,
    /// Random or words.
    pub source: KeySource,
    /// The backup to write.
    pub backup: PathBuf,
    /// The manifest to write (default: beside the backup).
    pub manifest: Option<PathBuf>,
    /// scrypt log2 N.
    pub work_factor: u8,
}

/// What `keygen` did.
#[derive(Clone, Debug)]
pub struct KeygenReport {
    /// The new public key.
    pub public_key: PublicKey,
    /// The backup written.
    pub backup: PathBuf,
    /// The manifest written.
    pub manifest: PathBuf,
    /// The audit head after the record.
    pub audit: Summary,
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn manifest_path(backup: &Path, manifest: Option<&PathBuf>) -> PathBuf {
    manifest
        .cloned()
        .unwrap_or_else(|| backup::manifest_path_for(backup))
}

/// Generate a key and write its passphrase backup and manifest.
///
/// # Errors
/// Any [`VaultError`]; nothing is left behind on failure.
pub fn keygen(audit: &AuditLog, op: &mut dyn Operator, o: &KeygenOptions) -> Result<KeygenReport> {
    backup::check_write_log_n(o.work_factor)?;
    let mpath = manifest_path(&o.backup, o.manifest.as_ref());
    fsio::ensure_absent(&o.backup)?;
    fsio::ensure_absent(&mpath)?;
    audit.verify()?;
    let (seed, origin): (Seed, Origin) = match o.source {
        KeySource::Random => (Seed::random()?, Origin::Random),
        KeySource::NewWords => {
            let words = Words::generate()?;
            op.show_words(&words)?;
            (words.seed()?, Origin::Bip39)
        }
        KeySource::ImportWords => (op.existing_words()?.seed()?, Origin::Imported),
    };
    let nb = write_new_backup(op, &seed, o.role, origin, &o.backup, &mpath, o.work_factor)?;
    let (public_key, ciphertext, mjson) = (nb.public_key, &nb.ciphertext, &nb.manifest_json);
    let mut e = Entry::new("keygen", Some(public_key.to_hex()));
    e.file("wrote", &o.backup, ciphertext);
    e.file("wrote", &mpath, mjson);
    e.detail("role", o.role.name());
    e.detail("origin", format!("{origin:?}").to_lowercase());
    e.detail("scrypt_log_n", o.work_factor.to_string());
    let summary = audit.append(e)?;
    nb.keep();
    Ok(KeygenReport {
        public_key,
        backup: o.backup.clone(),
        manifest: mpath,
        audit: summary,
    })
}

/// A backup and its manifest just written (removed again on drop unless kept).
pub(crate) struct NewBackup {
    /// The key in it.
    pub(crate) public_key: PublicKey,
    /// The backup's bytes.
    pub(crate) ciphertext: Vec<u8>,
    /// The manifest's bytes.
    pub(crate) manifest_json: Vec<u8>,
    written: [fsio::Written; 2],
}

impl NewBackup {
    /// Keep both files (after the audit record was written).
    pub(crate) fn keep(self) {
        for w in self.written {
            w.keep();
        }
    }
}

/// Ask for a new passphrase, encrypt `seed`'s key file with it, check that the fresh
/// backup decrypts to the same key, and write the backup and its manifest (both
/// created new). Shared by `keygen` and `shares combine`.
///
/// # Errors
/// Any [`VaultError`]; nothing is left behind on failure.
pub(crate) fn write_new_backup(
    op: &mut dyn Operator,
    seed: &Seed,
    role: Role,
    origin: Origin,
    backup_path: &Path,
    mpath: &Path,
    work_factor: u8,
) -> Result<NewBackup> {
    let public_key = seed.public_key()?;
    let pass = op.new_passphrase(&format!(
        "the {} key backup {}",
        role.name(),
        backup_path.display()
    ))?;
    let plain = seed.key_plaintext()?;
    let ciphertext = backup::encrypt_with_passphrase(&plain, &pass, work_factor)?;
    // A backup that was never decrypted is not a backup: check it now.
    let back = backup::decrypt_with_passphrase(backup_path, &ciphertext, &pass, work_factor, true)?;
    let (_, check) = back.open(backup_path)?;
    if check != public_key {
        return Err(VaultError::KeyMismatch {
            path: backup_path.to_owned(),
            reason: "the fresh backup decrypts to another key".into(),
        });
    }
    let manifest = Manifest {
        format: backup::MANIFEST_FORMAT.into(),
        version: backup::MANIFEST_VERSION,
        role,
        public_key: public_key.to_hex(),
        ciphertext_sha256: fsio::sha256_hex(&ciphertext),
        ciphertext_len: ciphertext.len() as u64,
        scrypt_log_n: work_factor,
        created_unix: now_unix(),
        origin,
        derivation: matches!(origin, Origin::Bip39 | Origin::Imported)
            .then(|| CONVEX_PATH_TEXT.to_owned()),
    };
    let mjson = manifest.to_json();
    let w1 = fsio::write_new(backup_path, &ciphertext, SECRET_MODE)?;
    let w2 = fsio::write_new(mpath, &mjson, PUBLIC_MODE)?;
    Ok(NewBackup {
        public_key,
        ciphertext,
        manifest_json: mjson,
        written: [w1, w2],
    })
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The manifest.
    pub manifest: Manifest,
    /// Its public key.
    pub public_key: PublicKey,
}

/// Verify a backup against its manifest, without a passphrase.
///
/// # Errors
/// [`VaultError::Damaged`], [`VaultError::Manifest`], read errors.
pub fn verify(backup_path: &Path, manifest: Option<&PathBuf>) -> Result<VerifyReport> {
    let c = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
    if let Some(n) = backup::header_log_n(&c.ciphertext)
        && n != c.manifest.scrypt_log_n
    {
        return Err(VaultError::Manifest {
            path: manifest_path(backup_path, manifest),
            reason: format!(
                "records work factor {} but the backup's header says {n}",
                c.manifest.scrypt_log_n
            ),
        });
    }
    Ok(VerifyReport {
        manifest: c.manifest,
        public_key: c.public_key,
    })
}

/// `restore` options.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The backup.
    pub backup: PathBuf,
    /// Its manifest (default beside it).
    pub manifest: Option<PathBuf>,
    /// Decrypt without a manifest (a failure is then unclassified).
    pub no_manifest: bool,
    /// Where to write the plaintext key file.
    pub out: PathBuf,
    /// Replace an existing output.
    pub force: bool,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `restore` did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The restored key.
    pub public_key: PublicKey,
    /// Whether a manifest was checked.
    pub manifest_checked: bool,
    /// The key file written.
    pub out: PathBuf,
    /// The audit head.
    pub audit: Summary,
}

/// Decrypt a backup that matched its manifest (or, with `no_manifest`, any passphrase
/// age file) into the key plaintext, checking the key.
pub(crate) fn open_backup(
    op: &mut dyn Operator,
    backup_path: &Path,
    manifest: Option<&PathBuf>,
    no_manifest: bool,
    max: u8,
) -> Result<(KeyPlaintext, Seed, PublicKey, Option<Checked>)> {
    let checked = if no_manifest {
        None
    } else {
        let c = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
        if c.manifest.scrypt_log_n > max {
            return Err(VaultError::WorkFactor {
                path: backup_path.to_owned(),
                required: c.manifest.scrypt_log_n,
                max,
            });
        }
        Some(c)
    };
    let ciphertext = match &checked {
        Some(c) => c.ciphertext.clone(),
        None => fsio::read_capped(backup_path, backup::CIPHERTEXT_CAP)?,
    };
    if let Some(required) = backup::header_log_n(&ciphertext)
        && required > max
    {
        return Err(VaultError::WorkFactor {
            path: backup_path.to_owned(),
            required,
            max,
        });
    }
    let pass = op.passphrase(&backup_path.display().to_string())?;
    let plain =
        backup::decrypt_with_passphrase(backup_path, &ciphertext, &pass, max, checked.is_some())?;
    let (seed, public) = plain.open(backup_path)?;
    if let Some(c) = &checked
        && c.public_key != public
    {
        return Err(VaultError::KeyMismatch {
            path: backup_path.to_owned(),
            reason: format!(
                "the backup holds key {public}, but the manifest names {} (wrong manifest for this backup?)",
                c.public_key
            ),
        });
    }
    Ok((plain, seed, public, checked))
}

pub(crate) fn open_for_role(
    op: &mut dyn Operator,
    backup_path: &Path,
    manifest: Option<&PathBuf>,
    max: u8,
    role: Role,
) -> Result<(KeyPlaintext, Seed, PublicKey)> {
    let pre = backup::verify(backup_path, &manifest_path(backup_path, manifest))?;
    check_role(backup_path, pre.manifest.role, role)?;
    let (plain, seed, public, _) = open_backup(op, backup_path, manifest, false, max)?;
    Ok((plain, seed, public))
}

pub(crate) fn check_role(path: &Path, found: Role, needed: Role) -> Result<()> {
    if found != needed {
        return Err(VaultError::Role {
            path: path.to_owned(),
            found: found.with_article(),
            needed: needed.with_article(),
        });
    }
    Ok(())
}

/// Restore a backup to a plaintext key file (0600, created new unless `force`).
///
/// # Errors
/// Any [`VaultError`]; no key is written on failure.
pub fn restore(
    audit: &AuditLog,
    op: &mut dyn Operator,
    o: &RestoreOptions,
) -> Result<RestoreReport> {
    if !o.force {
        fsio::ensure_absent(&o.out)?;
    } else if let (Ok(out), Ok(backup)) = (
        std::fs::canonicalize(&o.out),
        std::fs::canonicalize(&o.backup),
    ) && out == backup
    {
        return Err(VaultError::invalid(
            "--out",
            "is the backup itself; --force would replace the encrypted backup with the plaintext key",
        ));
    }
    audit.verify()?;
    let ciphertext_hash;
    let (plain, _seed, public_key, checked) = {
        let r = open_backup(
            op,
            &o.backup,
            o.manifest.as_ref(),
            o.no_manifest,
            o.max_work_factor,
        )?;
        ciphertext_hash = r.3.as_ref().map(|c| fsio::sha256_hex(&c.ciphertext));
        r
    };
    let w = fsio::write_file(&o.out, plain.bytes(), SECRET_MODE, o.force)?;
    let mut e = Entry::new("restore", Some(public_key.to_hex()));
    e.files.push(crate::audit::FileRef {
        access: "read".into(),
        path: o.backup.display().to_string(),
        sha256: ciphertext_hash.unwrap_or_else(|| "unchecked (no manifest)".into()),
    });
    e.detail("out", o.out.display().to_string());
    e.detail("manifest_checked", checked.is_some().to_string());
    let summary = audit.append(e)?;
    w.keep();
    Ok(RestoreReport {
        public_key,
        manifest_checked: checked.is_some(),
        out: o.out.clone(),
        audit: summary,
    })
}

/// `provision` options.
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// The peer key backup.
    pub backup: PathBuf,
    /// Its manifest.
    pub manifest: Option<PathBuf>,
    /// The signer host's age recipient (`age1…`).
    pub recipient: String,
    /// The file to write.
    pub out: PathBuf,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `provision` did.
#[derive(Clone, Debug)]
pub struct ProvisionReport {
    /// The peer key.
    pub public_key: PublicKey,
    /// The recipient.
    pub recipient: String,
    /// The file written.
    pub out: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// The audit head.
    pub audit: Summary,
}

/// Export a peer key for a signer host, encrypted to its age X25519 recipient.
///
/// # Errors
/// Any [`VaultError`].
pub fn provision(
    audit: &AuditLog,
    op: &mut dyn Operator,
    o: &ProvisionOptions,
) -> Result<ProvisionReport> {
    let recipient = backup::parse_recipient(&o.recipient)?;
    fsio::ensure_absent(&o.out)?;
    audit.verify()?;
    let (plain, _seed, public_key) = open_for_role(
        op,
        &o.backup,
        o.manifest.as_ref(),
        o.max_work_factor,
        Role::Peer,
    )?;
    let ct = backup::encrypt_to_recipient(&plain, &recipient)?;
    let w = fsio::write_new(&o.out, &ct, PUBLIC_MODE)?;
    let sha = fsio::sha256_hex(&ct);
    let mut e = Entry::new("provision", Some(public_key.to_hex()));
    e.file("wrote", &o.out, &ct);
    e.detail("recipient", recipient.to_string());
    let summary = audit.append(e)?;
    w.keep();
    Ok(ProvisionReport {
        public_key,
        recipient: recipient.to_string(),
        out: o.out.clone(),
        sha256: sha,
        audit: summary,
    })
}

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

pub(crate) trait DirMode {
    fn mode_0700(&mut self) -> &mut Self;
}
impl DirMode for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

/// Removes a directory this run created unless kept (files inside are removed by
/// their own guards first).
pub(crate) struct DirGuard(pub(crate) Option<PathBuf>);
impl DirGuard {
    /// Creates `dir` (mode 0700; it must not exist) and removes it again on drop unless
    /// [`DirGuard::keep`] is called.
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        std::fs::DirBuilder::new()
            .mode_0700()
            .create(dir)
            .map_err(|source| VaultError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self(Some(dir.to_path_buf())))
    }

    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}
impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir(p);
        }
    }
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
