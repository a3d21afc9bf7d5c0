//! Splitting: the plan (groups and thresholds, checked as SLIP-39 requires) and
//! [`split`] itself, from a master secret to the shares of each group.

use super::{
    MAX_ITERATION_EXPONENT, MAX_SHARES, MasterSecret, Share, ShareError, check_passphrase, cipher,
    random, share, split_secret,
};
use crate::error::Result;

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

/// Split `secret` (16 to 64 bytes, even) into shares, encrypted with `passphrase`
/// (printable ASCII, may be empty). Returns the shares per group.
///
/// # Errors
/// [`ShareError`] for impossible parameters;
/// [`VaultError::Memory`](crate::error::VaultError::Memory);
/// [`VaultError::Input`](crate::error::VaultError::Input) when the OS generator fails.
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
