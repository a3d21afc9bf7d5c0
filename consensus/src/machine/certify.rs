//! Finality certificates from the orders in view (docs/consensus.md §7.4): what a peer
//! answers a peer that asks for one to resync.
use cvx_protocol::certificate::{
    CertKind, CertRequest, Certificate, MAX_CERT_IDS, OrderHeader, supermajority,
};

use super::*;

impl Peer {
    /// A finality certificate for the highest position `P` that the newest signed orders
    /// (the own one and the others' held) of peers holding more than 2/3 of the stake
    /// table cover, on this peer's chain, with the table it is counted against
    /// (docs/consensus.md §7.4). `None` when no such quorum is in view.
    ///
    /// Exactly:
    /// * the table is this peer's finalized one ([`stake_table`] of its ledger); a vote is
    ///   the newest order of a peer in it whose `stake_root` is that table's root and whose
    ///   consensus chain equals this peer's chain at the order's consensus point;
    /// * `P` is the highest position with `checkpoint <= P <= finality` of this peer (its
    ///   chain value is known and its ledger has executed up to `P`, so the peer's own
    ///   state, or any later finalized state, is a state at or past `P`) such that votes
    ///   with `finality >= P` and `consensus <= P + MAX_CERT_IDS` hold more than 2/3 of the
    ///   table's stake;
    /// * anchor `C` = this peer's chain at `P`; ids = this peer's block ids from `P` (at
    ///   most [`MAX_CERT_IDS`]); kind [`CertKind::Finality`];
    /// * `table` is always `Some(table)`: the signer ignores it when the certificate's root
    ///   is its trusted one, and needs it when the table changed (`decide_certificate`).
    #[must_use]
    pub fn certificate(&self) -> Option<CertRequest> {
        let table = stake_table(&self.ledger, self.cfg.genesis.params.min_stake);
        let root = table.root();
        let signed: Vec<(OrderHeader, Signature)> = self
            .others
            .values()
            .chain(self.signed.iter())
            .filter(|so| so.order.stake_root == root && table.stake_of(&so.order.peer).is_some())
            .filter_map(|so| Some((OrderHeader::of(&so.order, root)?, so.signature)))
            .filter(|(h, _)| self.chain_value_at(h.consensus) == Some(h.consensus_chain))
            .collect();
        let lo = self.checkpoint.position;
        let hi = self
            .finality
            .min(self.checkpoint.position + self.ids.len() as u64);
        let mut candidates: Vec<u64> = signed
            .iter()
            .map(|(h, _)| h.finality.min(hi))
            .filter(|p| *p >= lo)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let total = table.total();
        for p in candidates.into_iter().rev() {
            let weight: u128 = signed
                .iter()
                .filter(|(h, _)| h.finality >= p && h.consensus <= p + MAX_CERT_IDS as u64)
                .filter_map(|(h, _)| table.stake_of(&h.peer))
                .map(u128::from)
                .sum();
            if !supermajority(weight, total) {
                continue;
            }
            let (Some(chain), Some(ids)) = (self.chain_value_at(p), self.own_ids_from(p)) else {
                continue;
            };
            let anchor = Checkpoint { position: p, chain };
            let ids = &ids[..ids.len().min(MAX_CERT_IDS)];
            if let Some(certificate) = Certificate::assemble(
                self.network,
                CertKind::Finality,
                anchor,
                ids,
                &table,
                &signed,
            ) {
                return Some(CertRequest {
                    certificate,
                    table: Some(table),
                });
            }
        }
        None
    }

    /// The chain value at absolute position `q`, from the own order's checkpoint to its
    /// end (`None` outside).
    #[must_use]
    pub fn chain_value_at(&self, q: u64) -> Option<Hash> {
        let i = usize::try_from(q.checked_sub(self.checkpoint.position)?).ok()?;
        if i == 0 {
            Some(self.checkpoint.chain)
        } else {
            self.chains.get(i - 1).copied()
        }
    }

    /// The own order's block ids from absolute position `q` (at or above the checkpoint).
    fn own_ids_from(&self, q: u64) -> Option<&[Hash]> {
        let i = usize::try_from(q.checked_sub(self.checkpoint.position)?).ok()?;
        self.ids.get(i..)
    }

    /// Block ids at positions `from .. to` of this peer's finalized history and own order
    /// (the last `MAX_BRIDGE` finalized ids below the checkpoint are kept): the bridge a
    /// signer locked at `from` needs to accept an order whose checkpoint is `to`. `None`
    /// when this peer does not hold them all.
    #[must_use]
    pub fn ids_between(&self, from: u64, to: u64) -> Option<Vec<Hash>> {
        let n = usize::try_from(to.checked_sub(from)?).ok()?;
        let mut v = self.ids_from(from)?;
        (v.len() >= n).then(|| {
            v.truncate(n);
            v
        })
    }
}

#[cfg(test)]
#[path = "certify_tests.rs"]
mod tests;
