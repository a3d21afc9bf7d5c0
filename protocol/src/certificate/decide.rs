//! The certificate policy: verification of a certificate against the trusted table, and
//! the catch-up and lock-release decision built on it.

use super::cert::{CertKind, CertRequest};
use super::stake::{StakeTable, TrustedTable, supermajority};
use crate::consensus::Checkpoint;
use crate::encoding::Canonical;
use crate::policy::{Refusal, RefuseCode, Watermark};
use crate::primitives::{NetworkId, Timestamp};

/// The certificate policy's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertDecision {
    /// Make `watermark` and `trusted` durable (in one write), then answer.
    Allow {
        /// The new watermark (lock moved to the anchor unless already there).
        watermark: Watermark,
        /// The new trusted table (possibly the same table, re-confirmed).
        trusted: TrustedTable,
        /// True when the lock moved.
        moved: bool,
    },
    /// Change nothing.
    Refuse(Refusal),
}

impl CertDecision {
    /// The refusal code, if refused.
    #[must_use]
    pub fn refusal(&self) -> Option<RefuseCode> {
        match self {
            Self::Allow { .. } => None,
            Self::Refuse(r) => Some(r.code),
        }
    }
}

fn refusal(code: RefuseCode, detail: String) -> Refusal {
    Refusal { code, detail }
}

/// Check `req` against the trusted table; on success, the table the certificate was
/// counted against from now on (the trusted one, or the new one it proved).
///
/// # Errors
/// A [`Refusal`] with a `CERT_*` code naming the first rule broken.
pub fn verify_certificate(
    network: &NetworkId,
    trusted: &TrustedTable,
    req: &CertRequest,
    now: Timestamp,
    trust_period_ms: u64,
) -> Result<StakeTable, Refusal> {
    let cert = &req.certificate;
    if cert.network != *network {
        return Err(refusal(
            RefuseCode::CertNetwork,
            format!(
                "the certificate is for network {}, this signer signs only for {network}",
                cert.network
            ),
        ));
    }
    let age = now.0.saturating_sub(trusted.confirmed_at.0);
    if age > trust_period_ms {
        return Err(refusal(
            RefuseCode::CertTrustExpired,
            format!(
                "the trusted stake table was last confirmed {age} ms ago, beyond the trust period of \
                 {trust_period_ms} ms: re-anchor the signer from a table obtained out of band"
            ),
        ));
    }
    let old_root = trusted.table.root();
    let new = if cert.stake_root == old_root {
        None
    } else {
        if cert.anchor.position < trusted.position {
            return Err(refusal(
                RefuseCode::CertStaleTable,
                format!(
                    "the certificate names another stake table at position {}, below the position {} \
                     the trusted table is known at (an old certificate replayed)",
                    cert.anchor.position, trusted.position
                ),
            ));
        }
        match &req.table {
            Some(t) if t.root() == cert.stake_root && t.validate().is_ok() => Some(t),
            Some(_) => {
                return Err(refusal(
                    RefuseCode::CertTableUnproven,
                    format!(
                        "the table sent with the certificate does not have its stake root {}",
                        cert.stake_root
                    ),
                ));
            }
            None => {
                return Err(refusal(
                    RefuseCode::CertTableUnproven,
                    format!(
                        "the certificate names stake root {}, not the trusted {old_root}, and no \
                         table came with it",
                        cert.stake_root
                    ),
                ));
            }
        }
    };
    let (mut w_old, mut w_new) = (0u128, 0u128);
    for v in cert.votes.iter() {
        let in_old = trusted.table.stake_of(&v.peer);
        let in_new = new.and_then(|t| t.stake_of(&v.peer));
        if in_old.is_none() && in_new.is_none() {
            return Err(refusal(
                RefuseCode::CertUnknownSigner,
                format!("vote by {} whose key is not in the stake table", v.peer),
            ));
        }
        let covered = match cert.kind {
            CertKind::Finality => v.finality >= cert.anchor.position,
            CertKind::Lock => v.consensus >= cert.anchor.position,
        };
        if !covered {
            return Err(refusal(
                RefuseCode::CertNotCovered,
                format!(
                    "vote by {} (finality {}, consensus {}) does not cover the anchor {}",
                    v.peer, v.finality, v.consensus, cert.anchor.position
                ),
            ));
        }
        let Some(header) = cert.header(v) else {
            return Err(refusal(
                RefuseCode::CertMalformed,
                format!(
                    "vote by {}: consensus point {} is not reachable from the anchor {} with {} ids",
                    v.peer,
                    v.consensus,
                    cert.anchor.position,
                    cert.ids.len()
                ),
            ));
        };
        if v.peer.verify(network, &header, &v.signature).is_err() {
            return Err(refusal(
                RefuseCode::CertBadSignature,
                format!("vote by {}: the signature does not verify", v.peer),
            ));
        }
        w_old += u128::from(in_old.unwrap_or(0));
        w_new += u128::from(in_new.unwrap_or(0));
    }
    match new {
        None => {
            if !supermajority(w_old, trusted.table.total()) {
                return Err(refusal(
                    RefuseCode::CertWeakQuorum,
                    format!(
                        "the votes hold {w_old} of {} stake: not more than 2/3",
                        trusted.table.total()
                    ),
                ));
            }
            Ok(trusted.table.clone())
        }
        Some(t) => {
            if !supermajority(w_new, t.total()) {
                return Err(refusal(
                    RefuseCode::CertWeakQuorum,
                    format!(
                        "the votes hold {w_new} of the new table's {} stake: not more than 2/3",
                        t.total()
                    ),
                ));
            }
            if !supermajority(w_old, trusted.table.total()) {
                return Err(refusal(
                    RefuseCode::CertStaleTable,
                    format!(
                        "the votes hold {w_old} of the trusted table's {} stake: not more than 2/3, so \
                         the change of table is not vouched for; present the handoff certificates first",
                        trusted.table.total()
                    ),
                ));
            }
            Ok(t.clone())
        }
    }
}

fn below_lock(anchor: Checkpoint, lock: Option<&Checkpoint>) -> Refusal {
    refusal(
        RefuseCode::CertBelowLock,
        format!(
            "the certificate's anchor {} is below the committed consensus point {}",
            anchor.position,
            lock.map_or(0, |l| l.position)
        ),
    )
}

/// Catch-up and lock release (docs/consensus.md §7.6): a valid certificate for `(P, C)`
/// at or above the lock moves the lock to `(P, C)` (and, for a finality certificate, the
/// finality watermark to at least `P`). One below the lock never moves it: a valid one of
/// the trusted table re-confirms that table (`Allow` with `moved` false and the watermark
/// unchanged, §7.5); any other is refused (`CERT_BELOW_LOCK`, or `CERT_TRUST_EXPIRED`).
#[must_use]
pub fn decide_certificate(
    network: &NetworkId,
    wm: &Watermark,
    trusted: &TrustedTable,
    req: &CertRequest,
    now: Timestamp,
    trust_period_ms: u64,
) -> CertDecision {
    let anchor = req.certificate.anchor;
    let below = wm
        .consensus
        .as_ref()
        .filter(|lock| anchor.position < lock.position);
    let table = match verify_certificate(network, trusted, req, now, trust_period_ms) {
        Ok(t) => t,
        Err(r) if below.is_none() => return CertDecision::Refuse(r),
        Err(r) if r.code == RefuseCode::CertTrustExpired => return CertDecision::Refuse(r),
        Err(_) => return CertDecision::Refuse(below_lock(anchor, below)),
    };
    if below.is_some() {
        // Below the lock the signer cannot tell whether the certificate conflicts with its
        // lock, so the lock never moves (§7.6). A valid certificate of the *same* table
        // still shows that more than 2/3 of that table signed recently: it re-confirms the
        // table (the trust period starts again), which is how a running peer keeps its
        // signer's table fresh (docs/consensus.md §7.5). A new table below the lock is
        // refused: a table change is taken only with a certificate at or above the lock.
        if table != trusted.table {
            return CertDecision::Refuse(below_lock(anchor, below));
        }
        return CertDecision::Allow {
            watermark: wm.clone(),
            trusted: TrustedTable {
                position: trusted.position,
                confirmed_at: Timestamp(trusted.confirmed_at.0.max(now.0)),
                table,
            },
            moved: false,
        };
    }
    let moved = wm.consensus != Some(anchor);
    let mut watermark = wm.clone();
    watermark.consensus = Some(anchor);
    if req.certificate.kind == CertKind::Finality {
        watermark.finality = watermark.finality.max(anchor.position);
    }
    let changed = table != trusted.table;
    let trusted = TrustedTable {
        position: if changed {
            anchor.position
        } else {
            trusted.position.max(anchor.position)
        },
        confirmed_at: Timestamp(trusted.confirmed_at.0.max(now.0)),
        table,
    };
    CertDecision::Allow {
        watermark,
        trusted,
        moved,
    }
}
