//! Finality and lock certificates, the stake table a signer trusts, and the pure policy
//! that lets a signer catch up or release a lock on a certificate (docs/consensus.md §7,
//! byte layouts in docs/protocol.md §11).
//!
//! * [`OrderHeader`] — the fixed-size value an order is signed through (its
//!   `consensus_chain` and `stake_root` make a handful of headers a proof);
//! * [`StakeTable`] — `(key, stake)` of the voting peers, and its [`StakeTable::root`];
//! * [`Certificate`] — votes (order headers minus the shared fields) of peers holding more
//!   than 2/3 of a table's stake, all covering `(P, C)`;
//! * [`decide_certificate`] — catch-up and lock release, refusing bad certificates with
//!   codes of their own (`CERT_*`).

mod cert;
mod decide;
mod header;
mod stake;

pub use cert::{CertKind, CertRequest, Certificate, MAX_CERT_IDS, MAX_CERT_VOTES, Vote};
pub use decide::{CertDecision, decide_certificate, verify_certificate};
pub use header::{ORDER_BODY_TAG, OrderHeader, order_body_hash};
pub use stake::{
    DEFAULT_TRUST_PERIOD_MS, STAKE_ROOT_TAG, StakeEntry, StakeTable, TrustedTable, supermajority,
};

#[cfg(test)]
mod tests;
