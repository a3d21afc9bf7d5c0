//! Combining: [`Recovery`] gathers shares one at a time, checking each as it comes,
//! and recovers the master secret; [`combine`] does it for a whole set at once.

use zeroize::Zeroizing;

use super::{MasterSecret, Share, ShareError, check_passphrase, cipher, recover_secret, share};
use crate::error::Result;

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
    /// [`VaultError::Memory`](crate::error::VaultError::Memory).
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
/// Any [`ShareError`] (wrapped); [`VaultError::Memory`](crate::error::VaultError::Memory).
pub fn combine(mnemonics: &[&str], passphrase: &[u8]) -> Result<MasterSecret> {
    let mut r = Recovery::new();
    for (i, m) in mnemonics.iter().enumerate() {
        let s = Share::parse(m, i + 1)?;
        r.add(s, i + 1)?;
    }
    r.check_exact()?;
    r.recover(passphrase)
}
