//! SLIP-39 (Trezor's "Shamir's Secret-Sharing for Mnemonic Codes"): split a master
//! secret into word shares, k of n, optionally in groups; combine them again.
//!
//! * [`share`] — one share's words and fields, with the RS1024 checksum ([`rs1024`])
//!   over the 1024-word list ([`wordlist`]);
//! * [`gf256`] — Lagrange interpolation in GF(256); the digest share sits at x = 254
//!   and the shared secret at x = 255;
//! * [`cipher`] — the 4-round Feistel encryption of the master secret with
//!   PBKDF2-HMAC-SHA256, the passphrase and the iteration exponent.
//!
//! `vault/tests/shares_vectors.rs` runs every one of Trezor's official vectors.
//!
//! Memory: the master secret and the encrypted master secret live in cvx-sandbox's
//! locked memory ([`MasterSecret`]); encryption and decryption run in place there.
//! Share values, group secrets, the digest share, the random parts and the share words
//! are heap buffers that are only zeroized on drop (docs/vault.md, "Shares").

pub mod cipher;
pub mod command;
pub mod error;
pub mod gf256;
pub mod rs1024;
pub mod share;
pub mod wordlist;

use core::fmt;

use cvx_sandbox::Locked;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::secret::locked;
pub use error::ShareError;
pub use share::Share;

/// The most shares in a group, and the most groups.
pub const MAX_SHARES: u8 = 16;
/// The x coordinate of the digest share.
pub const DIGEST_INDEX: u8 = 254;
/// The x coordinate of the shared secret.
pub const SECRET_INDEX: u8 = 255;
/// The digest's length in bytes.
pub const DIGEST_BYTES: usize = 4;
/// The highest iteration exponent (4 bits).
pub const MAX_ITERATION_EXPONENT: u8 = 15;

/// A master (or encrypted master) secret of up to 64 bytes, in locked memory.
pub struct MasterSecret(Locked<SecretBuf>);

/// The bytes of a [`MasterSecret`] (zeroed with their mapping when dropped).
pub(crate) struct SecretBuf {
    bytes: [u8; share::MAX_VALUE_BYTES],
    len: usize,
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterSecret({} bytes, redacted)", self.0.len)
    }
}

impl MasterSecret {
    /// `len` zero bytes in locked memory.
    ///
    /// # Errors
    /// [`VaultError::Memory`]; [`ShareError::Plan`] above 64 bytes.
    pub fn zero(len: usize) -> Result<Self> {
        if len > share::MAX_VALUE_BYTES {
            return Err(ShareError::Plan(format!(
                "a secret of {len} bytes is above the {}-byte limit",
                share::MAX_VALUE_BYTES
            ))
            .into());
        }
        Ok(Self(locked("master secret", || SecretBuf {
            bytes: [0u8; share::MAX_VALUE_BYTES],
            len,
        })?))
    }

    /// A locked copy of `bytes`.
    ///
    /// # Errors
    /// As [`MasterSecret::zero`].
    pub fn copy_of(bytes: &[u8]) -> Result<Self> {
        let mut s = Self::zero(bytes.len())?;
        s.bytes_mut().copy_from_slice(bytes);
        Ok(s)
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes[..self.0.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len;
        &mut self.0.bytes[..len]
    }
}

/// One group of a split: `threshold` of `count` member shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// Members needed.
    pub threshold: u8,
    /// Members made.
    pub count: u8,
}

/// How to split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups.
    pub groups: Vec<Group>,
    /// The iteration exponent (PBKDF2 runs 10000 * 2^e times).
    pub iteration_exponent: u8,
    /// Set the extendable-backup flag (SLIP-39's current default).
    pub extendable: bool,
}

impl Plan {
    /// One group, `threshold` of `count`.
    #[must_use]
    pub fn single(threshold: u8, count: u8) -> Self {
        Self {
            group_threshold: 1,
            groups: vec![Group { threshold, count }],
            iteration_exponent: 1,
            extendable: true,
        }
    }

    /// Check the parameters as SLIP-39 requires.
    ///
    /// # Errors
    /// [`ShareError::Plan`] saying what to change.
    pub fn check(&self) -> Result<(), ShareError> {
        let n = self.groups.len();
        if n == 0 || n > usize::from(MAX_SHARES) {
            return Err(ShareError::Plan(format!(
                "there must be 1 to {MAX_SHARES} groups, not {n}"
            )));
        }
        if self.group_threshold == 0 || usize::from(self.group_threshold) > n {
            return Err(ShareError::Plan(format!(
                "the group threshold must be 1 to {n} (the number of groups), not {}",
                self.group_threshold
            )));
        }
        if self.iteration_exponent > MAX_ITERATION_EXPONENT {
            return Err(ShareError::Plan(format!(
                "the iteration exponent must be 0 to {MAX_ITERATION_EXPONENT}"
            )));
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.count == 0 || g.count > MAX_SHARES || g.threshold == 0 || g.threshold > g.count {
                return Err(ShareError::Plan(format!(
                    "group {}: {} of {} is impossible; the threshold must be 1 to the count, and the count 1 to {MAX_SHARES}",
                    i + 1,
                    g.threshold,
                    g.count
                )));
            }
            if g.threshold == 1 && g.count > 1 {
                return Err(ShareError::Plan(format!(
                    "group {}: 1 of {} would make {} copies of one share, which SLIP-39 forbids; use 1 of 1 and copy it, or a threshold of 2 or more",
                    i + 1,
                    g.count,
                    g.count
                )));
            }
        }
        Ok(())
    }

    /// The plan as text (`2 of [2of3, 3of5]`), for audit records and messages.
    #[must_use]
    pub fn describe(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("{}of{}", g.threshold, g.count))
            .collect();
        format!("{} of [{}]", self.group_threshold, groups.join(", "))
    }
}

fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| VaultError::Input {
        what: "random bytes",
        reason: e.to_string(),
    })
}

fn digest(random_part: &[u8], secret: &[u8]) -> [u8; DIGEST_BYTES] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(random_part)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(secret);
    let full = mac.finalize().into_bytes();
    let mut d = [0u8; DIGEST_BYTES];
    d.copy_from_slice(&full[..DIGEST_BYTES]);
    d
}

/// A share value with its x coordinate.
type Point = (u8, Zeroizing<Vec<u8>>);

/// SLIP-39's SplitSecret: `count` points of which any `threshold` give `secret`.
fn split_secret(threshold: u8, count: u8, secret: &[u8]) -> Result<Vec<Point>> {
    if threshold == 1 {
        return Ok((0..count)
            .map(|i| (i, Zeroizing::new(secret.to_vec())))
            .collect());
    }
    let len = secret.len();
    let mut base: Vec<Point> = Vec::with_capacity(usize::from(threshold));
    for i in 0..threshold - 2 {
        let mut v = Zeroizing::new(vec![0u8; len]);
        random(&mut v)?;
        base.push((i, v));
    }
    let mut digest_share = Zeroizing::new(vec![0u8; len]);
    random(&mut digest_share[DIGEST_BYTES..])?;
    let d = digest(&digest_share[DIGEST_BYTES..], secret);
    digest_share[..DIGEST_BYTES].copy_from_slice(&d);
    let mut out: Vec<Point> = base
        .iter()
        .map(|(x, v)| (*x, Zeroizing::new(v.to_vec())))
        .collect();
    // The base points, the secret borrowed in place (no copy of it is made).
    let mut pts: Vec<(u8, &[u8])> = base.iter().map(|(x, v)| (*x, &v[..])).collect();
    pts.push((DIGEST_INDEX, &digest_share[..]));
    pts.push((SECRET_INDEX, secret));
    for i in threshold - 2..count {
        let v = gf256::interpolate_new(&pts, i).map_err(|e| ShareError::Plan(format!("{e:?}")))?;
        out.push((i, v));
    }
    Ok(out)
}

/// SLIP-39's RecoverSecret, writing into `out`.
fn recover_secret(threshold: u8, points: &[(u8, &[u8])], out: &mut [u8]) -> Result<(), ShareError> {
    let interp_err = |e: gf256::InterpolateError| match e {
        gf256::InterpolateError::DuplicateX => {
            ShareError::TooFew("two shares have the same number".into())
        }
        gf256::InterpolateError::Lengths => ShareError::Parameters {
            share: 0,
            reason: "the shares' values differ in length",
        },
        gf256::InterpolateError::Empty => ShareError::TooFew("no shares".into()),
    };
    if threshold == 1 {
        let (_, v) = points
            .first()
            .ok_or_else(|| ShareError::TooFew("no shares".into()))?;
        if v.len() != out.len() {
            return Err(interp_err(gf256::InterpolateError::Lengths));
        }
        out.copy_from_slice(v);
        return Ok(());
    }
    gf256::interpolate(points, SECRET_INDEX, out).map_err(interp_err)?;
    let digest_share = gf256::interpolate_new(points, DIGEST_INDEX).map_err(interp_err)?;
    if digest_share.len() < DIGEST_BYTES
        || digest(&digest_share[DIGEST_BYTES..], out) != digest_share[..DIGEST_BYTES]
    {
        return Err(ShareError::Digest);
    }
    Ok(())
}

/// Split `secret` (16 to 64 bytes, even) into shares, encrypted with `passphrase`
/// (printable ASCII, may be empty). Returns the shares per group.
///
/// # Errors
/// [`ShareError`] for impossible parameters; [`VaultError::Memory`];
/// [`VaultError::Input`] when the OS generator fails.
pub fn split(secret: &MasterSecret, passphrase: &[u8], plan: &Plan) -> Result<Vec<Vec<Share>>> {
    plan.check()?;
    check_passphrase(passphrase)?;
    let len = secret.bytes().len();
    if len < share::MIN_VALUE_BYTES || !len.is_multiple_of(2) {
        return Err(ShareError::Plan(format!(
            "the secret must be an even number of bytes, at least {}; it has {len}",
            share::MIN_VALUE_BYTES
        ))
        .into());
    }
    let mut id = [0u8; 2];
    random(&mut id)?;
    let identifier = u16::from_be_bytes(id) & 0x7fff;
    let mut ems = MasterSecret::copy_of(secret.bytes())?;
    cipher::encrypt(
        ems.bytes_mut(),
        passphrase,
        plan.iteration_exponent,
        identifier,
        plan.extendable,
    );
    // Checked above: 1..=16 groups.
    let group_count = u8::try_from(plan.groups.len()).unwrap_or(MAX_SHARES);
    let group_secrets = split_secret(plan.group_threshold, group_count, ems.bytes())?;
    let mut out = Vec::with_capacity(plan.groups.len());
    for (g, (group_index, group_secret)) in plan.groups.iter().zip(group_secrets.iter()) {
        let members = split_secret(g.threshold, g.count, group_secret)?;
        out.push(
            members
                .into_iter()
                .map(|(member_index, value)| Share {
                    identifier,
                    extendable: plan.extendable,
                    iteration_exponent: plan.iteration_exponent,
                    group_index: *group_index,
                    group_threshold: plan.group_threshold,
                    group_count,
                    member_index,
                    member_threshold: g.threshold,
                    value,
                })
                .collect(),
        );
    }
    Ok(out)
}

fn check_passphrase(p: &[u8]) -> Result<(), ShareError> {
    if p.iter().all(|b| (32..=126).contains(b)) {
        Ok(())
    } else {
        Err(ShareError::Passphrase)
    }
}

/// Shares gathered one at a time (as they are typed), checked as they come.
#[derive(Debug, Default)]
pub struct Recovery {
    /// (place typed, share).
    shares: Vec<(usize, Share)>,
}

/// How far a [`Recovery`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Enough shares to try.
    pub complete: bool,
    /// For the operator, e.g. "group 1: 2 of 3 shares; groups complete: 0 of 2".
    pub text: String,
}

impl Recovery {
    /// An empty recovery.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many shares were added.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// No share yet?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// Add a share typed in place `n`.
    ///
    /// # Errors
    /// [`ShareError::Mismatch`] and [`ShareError::Duplicate`].
    pub fn add(&mut self, share: Share, n: usize) -> Result<Progress, ShareError> {
        if let Some((first_n, first)) = self.shares.first() {
            let fields: [(&'static str, bool); 5] = [
                (
                    "identifiers (first words)",
                    first.identifier == share.identifier,
                ),
                ("extendable flags", first.extendable == share.extendable),
                (
                    "iteration exponents",
                    first.iteration_exponent == share.iteration_exponent,
                ),
                (
                    "group thresholds",
                    first.group_threshold == share.group_threshold,
                ),
                ("group counts", first.group_count == share.group_count),
            ];
            if let Some((field, _)) = fields.iter().find(|(_, same)| !same) {
                return Err(ShareError::Mismatch {
                    share: n,
                    first: *first_n,
                    field,
                });
            }
            if first.value.len() != share.value.len() {
                return Err(ShareError::Mismatch {
                    share: n,
                    first: *first_n,
                    field: "lengths",
                });
            }
        }
        for (m, s) in &self.shares {
            if s.group_index == share.group_index {
                if s.member_threshold != share.member_threshold {
                    return Err(ShareError::Mismatch {
                        share: n,
                        first: *m,
                        field: "member thresholds (same group)",
                    });
                }
                if s.member_index == share.member_index {
                    return Err(ShareError::Duplicate {
                        share: n,
                        other: *m,
                    });
                }
            }
        }
        self.shares.push((n, share));
        Ok(self.progress())
    }

    /// The groups seen, by index: (member threshold, shares).
    fn groups(&self) -> Vec<(u8, u8, Vec<&Share>)> {
        let mut gs: Vec<(u8, u8, Vec<&Share>)> = Vec::new();
        for (_, s) in &self.shares {
            match gs.iter_mut().find(|(g, _, _)| *g == s.group_index) {
                Some((_, _, v)) => v.push(s),
                None => gs.push((s.group_index, s.member_threshold, vec![s])),
            }
        }
        gs
    }

    /// Where the recovery stands.
    #[must_use]
    pub fn progress(&self) -> Progress {
        let Some((_, first)) = self.shares.first() else {
            return Progress {
                complete: false,
                text: "no share yet".into(),
            };
        };
        let gs = self.groups();
        let done = gs
            .iter()
            .filter(|(_, t, v)| v.len() >= usize::from(*t))
            .count();
        if first.group_count == 1
            && let Some((_, t, v)) = gs.first()
        {
            return Progress {
                complete: done >= 1,
                text: format!("{} of the {t} shares needed", v.len().min(usize::from(*t))),
            };
        }
        let mut parts: Vec<String> = gs
            .iter()
            .map(|(g, t, v)| {
                format!(
                    "group {}: {} of {} shares",
                    g + 1,
                    v.len().min(usize::from(*t)),
                    t
                )
            })
            .collect();
        parts.push(format!(
            "groups complete: {} of {} needed ({} groups in all)",
            done, first.group_threshold, first.group_count
        ));
        Progress {
            complete: done >= usize::from(first.group_threshold),
            text: parts.join("; "),
        }
    }

    /// Combine the complete groups (the first `threshold` of them, the first
    /// `member threshold` shares of each) and decrypt with `passphrase`.
    ///
    /// # Errors
    /// [`ShareError::TooFew`], [`ShareError::Digest`], [`ShareError::Passphrase`];
    /// [`VaultError::Memory`].
    pub fn recover(&self, passphrase: &[u8]) -> Result<MasterSecret> {
        check_passphrase(passphrase)?;
        let Some((_, first)) = self.shares.first() else {
            return Err(ShareError::TooFew("no shares were given".into()).into());
        };
        let gs = self.groups();
        let complete: Vec<&(u8, u8, Vec<&Share>)> = gs
            .iter()
            .filter(|(_, t, v)| v.len() >= usize::from(*t))
            .collect();
        if complete.len() < usize::from(first.group_threshold) {
            return Err(ShareError::TooFew(self.progress().text).into());
        }
        let len = first.value.len();
        let mut group_values: Vec<(u8, Zeroizing<Vec<u8>>)> = Vec::new();
        for (g, t, members) in complete.iter().take(usize::from(first.group_threshold)) {
            let pts: Vec<(u8, &[u8])> = members
                .iter()
                .take(usize::from(*t))
                .map(|s| (s.member_index, &s.value[..]))
                .collect();
            let mut v = Zeroizing::new(vec![0u8; len]);
            recover_secret(*t, &pts, &mut v)?;
            group_values.push((*g, v));
        }
        let pts: Vec<(u8, &[u8])> = group_values.iter().map(|(g, v)| (*g, &v[..])).collect();
        let mut ems = MasterSecret::zero(len)?;
        recover_secret(first.group_threshold, &pts, ems.bytes_mut())?;
        if len < share::MIN_VALUE_BYTES || !len.is_multiple_of(2) {
            return Err(ShareError::Parameters {
                share: 1,
                reason: "the secret's length is not an even number of bytes of at least 16",
            }
            .into());
        }
        cipher::decrypt(
            ems.bytes_mut(),
            passphrase,
            first.iteration_exponent,
            first.identifier,
            first.extendable,
        );
        Ok(ems)
    }

    /// The reference's strict rule for a complete set given at once: exactly the
    /// group threshold of groups, exactly the member threshold in each.
    ///
    /// # Errors
    /// [`ShareError::TooFew`], [`ShareError::TooMany`].
    pub fn check_exact(&self) -> Result<(), ShareError> {
        let Some((_, first)) = self.shares.first() else {
            return Err(ShareError::TooFew("no shares were given".into()));
        };
        let gs = self.groups();
        let gt = usize::from(first.group_threshold);
        if gs.len() < gt {
            return Err(ShareError::TooFew(format!(
                "shares of {} groups were given, {gt} are needed",
                gs.len()
            )));
        }
        if gs.len() > gt {
            return Err(ShareError::TooMany(format!(
                "shares of {} groups were given, exactly {gt} are used",
                gs.len()
            )));
        }
        for (g, t, v) in &gs {
            if v.len() < usize::from(*t) {
                return Err(ShareError::TooFew(format!(
                    "group {} has {} of the {t} shares it needs",
                    g + 1,
                    v.len()
                )));
            }
            if v.len() > usize::from(*t) {
                return Err(ShareError::TooMany(format!(
                    "group {} has {} shares, exactly {t} are used",
                    g + 1,
                    v.len()
                )));
            }
        }
        Ok(())
    }
}

/// Combine a whole set of shares at once, as Trezor's reference `combine_mnemonics`
/// does (strict about the number of groups and members).
///
/// # Errors
/// Any [`ShareError`] (wrapped); [`VaultError::Memory`].
pub fn combine(mnemonics: &[&str], passphrase: &[u8]) -> Result<MasterSecret> {
    let mut r = Recovery::new();
    for (i, m) in mnemonics.iter().enumerate() {
        let s = Share::parse(m, i + 1)?;
        r.add(s, i + 1)?;
    }
    r.check_exact()?;
    r.recover(passphrase)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn secret(len: usize) -> MasterSecret {
        let v: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
        MasterSecret::copy_of(&v).unwrap()
    }

    #[test]
    fn split_then_combine_every_threshold_subset() {
        let s = secret(32);
        let plan = Plan::single(3, 5);
        let groups = split(&s, b"pass", &plan).unwrap();
        let words: Vec<Zeroizing<String>> = groups[0].iter().map(Share::to_words).collect();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let set = [&words[a][..], &words[b][..], &words[c][..]];
                    assert_eq!(combine(&set, b"pass").unwrap().bytes(), s.bytes());
                }
                let two = [&words[a][..], &words[b][..]];
                assert!(matches!(
                    combine(&two, b"pass"),
                    Err(VaultError::Shares(ShareError::TooFew(_)))
                ));
            }
        }
        // A wrong passphrase gives another secret, silently (SLIP-39 by design).
        let set = [&words[0][..], &words[1][..], &words[2][..]];
        assert_ne!(combine(&set, b"other").unwrap().bytes(), s.bytes());
    }

    #[test]
    fn groups_split_and_combine() {
        let s = secret(16);
        let plan = Plan {
            group_threshold: 2,
            groups: vec![
                Group {
                    threshold: 1,
                    count: 1,
                },
                Group {
                    threshold: 2,
                    count: 3,
                },
                Group {
                    threshold: 3,
                    count: 5,
                },
            ],
            iteration_exponent: 0,
            extendable: false,
        };
        let g = split(&s, b"", &plan).unwrap();
        let w = |gi: usize, mi: usize| g[gi][mi].to_words();
        let (a, b, c, d, e) = (w(0, 0), w(1, 2), w(1, 0), w(2, 4), w(2, 1));
        assert_eq!(combine(&[&a, &b, &c], b"").unwrap().bytes(), s.bytes());
        let f = w(2, 2);
        assert_eq!(combine(&[&d, &a, &e, &f], b"").unwrap().bytes(), s.bytes());
        assert!(combine(&[&a, &b], b"").is_err());
        // Interactive: shares of a third group do not disturb a complete pair.
        let mut r = Recovery::new();
        for (i, m) in [&d, &b, &a, &c].iter().enumerate() {
            let p = r.add(Share::parse(m, i + 1).unwrap(), i + 1).unwrap();
            assert_eq!(p.complete, i == 3, "{}", p.text);
        }
        assert_eq!(r.recover(b"").unwrap().bytes(), s.bytes());
    }

    #[test]
    fn bad_plans_and_passphrases_are_refused() {
        let s = secret(32);
        for plan in [
            Plan::single(1, 3),
            Plan::single(4, 3),
            Plan::single(2, 17),
            Plan {
                group_threshold: 3,
                ..Plan::single(2, 3)
            },
        ] {
            assert!(
                matches!(
                    split(&s, b"", &plan),
                    Err(VaultError::Shares(ShareError::Plan(_)))
                ),
                "{plan:?}"
            );
        }
        assert!(matches!(
            split(&s, "pässword".as_bytes(), &Plan::single(2, 3)),
            Err(VaultError::Shares(ShareError::Passphrase))
        ));
    }

    #[test]
    fn mixed_and_repeated_shares_are_named() {
        let s = secret(32);
        let a = split(&s, b"", &Plan::single(2, 3)).unwrap();
        let b = split(&s, b"", &Plan::single(2, 3)).unwrap();
        let (a0, a1, b1) = (a[0][0].to_words(), a[0][1].to_words(), b[0][1].to_words());
        let e = combine(&[&a0, &b1], b"").unwrap_err();
        assert!(
            matches!(
                e,
                VaultError::Shares(ShareError::Mismatch {
                    share: 2,
                    first: 1,
                    ..
                })
            ),
            "{e:?}"
        );
        let e = combine(&[&a0, &a1, &a0], b"").unwrap_err();
        assert!(
            matches!(
                e,
                VaultError::Shares(ShareError::Duplicate { share: 3, other: 1 })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn master_secrets_live_in_locked_memory() {
        let s = secret(32);
        crate::secret::tests::assert_locked("master secret", s.bytes().as_ptr() as usize);
        let g = split(&s, b"", &Plan::single(2, 2)).unwrap();
        let (a, b) = (g[0][0].to_words(), g[0][1].to_words());
        let back = combine(&[&a, &b], b"").unwrap();
        crate::secret::tests::assert_locked("recovered secret", back.bytes().as_ptr() as usize);
    }
}
