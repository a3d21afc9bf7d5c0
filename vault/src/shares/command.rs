//! `shares split` and `shares combine`: the vault operations around the SLIP-39
//! library. Like every operation in [`crate::ops`], each returns a report and prints
//! nothing; shares reach only the terminal, through the [`Operator`].

use std::path::PathBuf;

use cvx_protocol::PublicKey;

use super::{MasterSecret, Plan, Recovery, Share, ShareError};
use crate::audit::{AuditLog, Entry, Summary};
use crate::backup::{self, Origin, Role};
use crate::error::{Result, VaultError};
use crate::fsio;
use crate::ops;
use crate::prompt::Operator;
use crate::secret::Seed;

/// The most shares `combine` reads (16 groups of 16).
pub const MAX_TYPED: usize = 256;

/// `shares split` options.
#[derive(Clone, Debug)]
pub struct SplitOptions {
    /// The key's backup.
    pub backup: PathBuf,
    /// Its manifest (default beside it).
    pub manifest: Option<PathBuf>,
    /// Thresholds, counts, iteration exponent.
    pub plan: Plan,
    /// The highest scrypt work factor accepted.
    pub max_work_factor: u8,
}

/// What `shares split` did.
#[derive(Clone, Debug)]
pub struct SplitReport {
    /// The key split.
    pub public_key: PublicKey,
    /// Its role.
    pub role: Role,
    /// The plan as text.
    pub plan: String,
    /// How many shares were shown.
    pub shares: usize,
    /// The split's identifier (also in the first words of every share).
    pub identifier: u16,
    /// Whether a SLIP-39 passphrase was set.
    pub passphrase: bool,
    /// The audit head.
    pub audit: Summary,
}

/// The heading above one share on the terminal.
fn heading(plan: &Plan, k: usize, total: usize, group: usize, member: usize) -> String {
    let g = &plan.groups[group];
    if plan.groups.len() == 1 {
        format!(
            "Share {k} of {total} (any {} of the {} shares rebuild the key)",
            g.threshold, g.count
        )
    } else {
        format!(
            "Share {k} of {total}: group {} member {} (any {} of this group's {} shares make the group; any {} of the {} groups rebuild the key)",
            group + 1,
            member + 1,
            g.threshold,
            g.count,
            plan.group_threshold,
            plan.groups.len()
        )
    }
}

/// Split a key's backup into SLIP-39 shares, check that they rebuild the key, show
/// each once (retyped), and record the split in the audit log.
///
/// # Errors
/// Any [`VaultError`]; nothing is recorded when a share is not shown and retyped.
pub fn split(audit: &AuditLog, op: &mut dyn Operator, o: &SplitOptions) -> Result<SplitReport> {
    o.plan.check()?;
    audit.verify()?;
    let (_plain, seed, public_key, checked) =
        ops::open_backup(op, &o.backup, o.manifest.as_ref(), false, o.max_work_factor)?;
    let checked = checked.ok_or_else(|| VaultError::Manifest {
        path: ops::manifest_path(&o.backup, o.manifest.as_ref()),
        reason: "no manifest was checked".into(),
    })?;
    let pass = op.shares_passphrase(true)?;
    let secret = MasterSecret::copy_of(seed.bytes())?;
    let groups = super::split(&secret, pass.as_bytes(), &o.plan)?;
    // Before anything is shown: the threshold of shares rebuilds this very key.
    let mut check = Recovery::new();
    let mut n = 0;
    for (g, group) in groups
        .iter()
        .enumerate()
        .take(usize::from(o.plan.group_threshold))
    {
        for share in group.iter().take(usize::from(o.plan.groups[g].threshold)) {
            n += 1;
            check.add(Share::parse(&share.to_words(), n)?, n)?;
        }
    }
    if check.recover(pass.as_bytes())?.bytes() != secret.bytes() {
        return Err(VaultError::KeyMismatch {
            path: o.backup.clone(),
            reason: "the new shares do not rebuild the key (nothing was shown)".into(),
        });
    }
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut k = 0;
    let mut identifier = 0;
    for (g, group) in groups.iter().enumerate() {
        for (m, share) in group.iter().enumerate() {
            k += 1;
            identifier = share.identifier;
            let words = share.to_words();
            let typed = op.show_share(&heading(&o.plan, k, total, g, m), &words)?;
            let same = Share::parse(&typed, k).is_ok_and(|again| again.to_words() == words);
            if !same {
                return Err(ShareError::Retyped(k).into());
            }
        }
    }
    let mut e = Entry::new("shares-split", Some(public_key.to_hex()));
    e.file("read", &o.backup, &checked.ciphertext);
    e.detail("role", checked.manifest.role.name());
    e.detail("plan", o.plan.describe());
    e.detail("shares", total.to_string());
    e.detail("identifier", identifier.to_string());
    e.detail("iteration_exponent", o.plan.iteration_exponent.to_string());
    e.detail("extendable", o.plan.extendable.to_string());
    e.detail("slip39_passphrase", (!pass.is_empty()).to_string());
    let summary = audit.append(e)?;
    Ok(SplitReport {
        public_key,
        role: checked.manifest.role,
        plan: o.plan.describe(),
        shares: total,
        identifier,
        passphrase: !pass.is_empty(),
        audit: summary,
    })
}

/// `shares combine` options.
#[derive(Clone, Debug)]
pub struct CombineOptions {
    /// What the key is for (shares do not say).
    pub role: Role,
    /// The backup to write.
    pub backup: PathBuf,
    /// Its manifest (default beside it).
    pub manifest: Option<PathBuf>,
    /// The public key the shares must rebuild (hex), when known.
    pub expect_key: Option<String>,
    /// scrypt log2 N of the new backup.
    pub work_factor: u8,
}

/// What `shares combine` did.
#[derive(Clone, Debug)]
pub struct CombineReport {
    /// The rebuilt key.
    pub public_key: PublicKey,
    /// Whether it was compared with an expected key.
    pub expected_checked: bool,
    /// How many shares were typed.
    pub shares: usize,
    /// The backup written.
    pub backup: PathBuf,
    /// The manifest written.
    pub manifest: PathBuf,
    /// The audit head.
    pub audit: Summary,
}

fn parse_expected(k: Option<&String>) -> Result<Option<PublicKey>> {
    k.map(|k| {
        PublicKey::from_hex(k).map_err(|e| {
            VaultError::invalid(
                "--expect-key",
                format!(
                    "{e} (give the key's 64 hex digits, from its old manifest or your records)"
                ),
            )
        })
    })
    .transpose()
}

/// Rebuild a key from shares typed in (checked one by one), compare its public key,
/// and write it as a new backup with its manifest.
///
/// # Errors
/// Any [`VaultError`]; nothing is left behind on failure.
pub fn combine(
    audit: &AuditLog,
    op: &mut dyn Operator,
    o: &CombineOptions,
) -> Result<CombineReport> {
    backup::check_write_log_n(o.work_factor)?;
    let expected = parse_expected(o.expect_key.as_ref())?;
    let mpath = ops::manifest_path(&o.backup, o.manifest.as_ref());
    fsio::ensure_absent(&o.backup)?;
    fsio::ensure_absent(&mpath)?;
    audit.verify()?;
    let mut r = Recovery::new();
    let mut identifier = 0;
    loop {
        let p = r.progress();
        if p.complete {
            break;
        }
        let n = r.len() + 1;
        if n > MAX_TYPED {
            return Err(ShareError::TooMany(format!(
                "{MAX_TYPED} shares typed without completing a set"
            ))
            .into());
        }
        let line = op.share(n, &p.text)?;
        if line.trim().is_empty() {
            return Err(ShareError::TooFew(if r.is_empty() {
                "no share was given".into()
            } else {
                p.text
            })
            .into());
        }
        let s = Share::parse(&line, n)?;
        identifier = s.identifier;
        r.add(s, n)?;
    }
    let pass = op.shares_passphrase(false)?;
    let secret = r.recover(pass.as_bytes())?;
    if secret.bytes().len() != 32 {
        return Err(ShareError::SecretLength(secret.bytes().len()).into());
    }
    let mut seed = Seed::zero()?;
    seed.bytes_mut().copy_from_slice(secret.bytes());
    drop(secret);
    let public = seed.public_key()?;
    if let Some(want) = expected
        && want != public
    {
        return Err(VaultError::KeyMismatch {
            path: o.backup.clone(),
            reason: format!(
                "the shares rebuild key {public}, not the expected {want}: a wrong SLIP-39 passphrase silently gives another key, so check the passphrase (or these are shares of another key)"
            ),
        });
    }
    let nb = ops::write_new_backup(
        op,
        &seed,
        o.role,
        Origin::Slip39,
        &o.backup,
        &mpath,
        o.work_factor,
    )?;
    let mut e = Entry::new("shares-combine", Some(public.to_hex()));
    e.file("wrote", &o.backup, &nb.ciphertext);
    e.file("wrote", &mpath, &nb.manifest_json);
    e.detail("role", o.role.name());
    e.detail("shares", r.len().to_string());
    e.detail("identifier", identifier.to_string());
    e.detail("expected_key_checked", expected.is_some().to_string());
    e.detail("scrypt_log_n", o.work_factor.to_string());
    let summary = audit.append(e)?;
    nb.keep();
    Ok(CombineReport {
        public_key: public,
        expected_checked: expected.is_some(),
        shares: r.len(),
        backup: o.backup.clone(),
        manifest: mpath,
        audit: summary,
    })
}

/// Parse `--groups 2of3,3of5` into groups.
///
/// # Errors
/// [`VaultError::Usage`] naming the bad part.
pub fn parse_groups(text: &str) -> Result<Vec<super::Group>> {
    text.split(',')
        .map(|part| {
            let bad = || {
                VaultError::Usage(format!(
                    "--groups: {part:?} is not THRESHOLDofCOUNT (write e.g. --groups 2of3,3of5)"
                ))
            };
            let (t, c) = part.trim().split_once("of").ok_or_else(bad)?;
            Ok(super::Group {
                threshold: t.trim().parse().map_err(|_| bad())?,
                count: c.trim().parse().map_err(|_| bad())?,
            })
        })
        .collect()
}
