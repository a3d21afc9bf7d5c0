//! Finality certificates from the orders in view (docs/consensus.md §7.4): what a peer
//! answers a peer that asks for one to resync.
use cvx_protocol::certificate::{
    CertKind, CertRequest, Certificate, MAX_CERT_IDS, OrderHeader, supermajority,
};
use cvx_protocol::consensus::Order;

use super::*;

/// The stake table of a finalized ledger: the peers whose stake without decay is at least
/// `min_stake`, the voters of docs/consensus.md §2 rules 1 and 7 (§7.3).
#[must_use]
pub fn stake_table(
    ledger: &State,
    min_stake: cvx_protocol::primitives::Amount,
) -> cvx_protocol::certificate::StakeTable {
    let peers: Vec<cvx_protocol::ledger::PeerRecord> = ledger.peers().cloned().collect();
    cvx_protocol::certificate::StakeTable::from_peers(&peers, min_stake)
}

impl Peer {
    /// The root of the finalized ledger's stake table, the `stake_root` of the next
    /// order (recomputed once per finalized height).
    pub fn stake_root(&mut self) -> Hash {
        let height = self.ledger.height();
        match self.stake_root {
            Some((h, root)) if h == height => root,
            _ => {
                let root = stake_table(&self.ledger, self.cfg.genesis.params.min_stake).root();
                self.stake_root = Some((height, root));
                root
            }
        }
    }

    /// A finality certificate for the highest position `P` that the newest signed orders
    /// (the own one and the others' held) of peers holding more than 2/3 of the stake
    /// table cover, on this peer's chain, with the table it is counted against
    /// (docs/consensus.md §7.4). `None` when no such quorum is in view.
    ///
    /// Exactly:
    /// * the table is this peer's finalized one ([`stake_table`] of its ledger); a vote is
    ///   the newest order held of a peer in it (the own signed order included) whose
    ///   `stake_root` is that table's root;
    /// * `P` is the highest position with `checkpoint <= P <= finality` of this peer (its
    ///   chain value is known and its ledger has executed up to `P`, so the peer's own
    ///   state, or any later finalized state, is a state at or past `P`) such that the
    ///   votes with `finality >= P`, `consensus <= P + MAX_CERT_IDS` and the same chain
    ///   value at `P` as this peer hold more than 2/3 of the table's stake, and their
    ///   consensus chains lie on one list of ids from `P`: this peer's own ids, or else
    ///   one voter's (the votes' blocks above `P` may differ: a voter's consensus point may
    ///   lie past this peer's order, and a byzantine voter's tail may be its own);
    /// * anchor `C` = this peer's chain at `P`; `ids` = that list (at most
    ///   [`MAX_CERT_IDS`]); kind [`CertKind::Finality`];
    /// * `table` is always `Some(table)`: the signer ignores it when the certificate's root
    ///   is its trusted one, and needs it when the table changed (`decide_certificate`).
    #[must_use]
    pub fn certificate(&self) -> Option<CertRequest> {
        let table = stake_table(&self.ledger, self.cfg.genesis.params.min_stake);
        let root = table.root();
        let votes: Vec<(OrderHeader, Signature, &Order)> = self
            .others
            .values()
            .chain(self.signed.iter())
            .filter(|so| so.order.stake_root == root && table.stake_of(&so.order.peer).is_some())
            .filter_map(|so| Some((OrderHeader::of(&so.order, root)?, so.signature, &so.order)))
            .collect();
        let lo = self.checkpoint.position;
        let hi = self
            .finality
            .min(self.checkpoint.position + self.ids.len() as u64);
        let mut candidates: Vec<u64> = votes
            .iter()
            .map(|(h, _, _)| h.finality.min(hi))
            .filter(|p| *p >= lo)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let total = table.total();
        let weight = |vs: &mut dyn Iterator<Item = &PublicKey>| -> u128 {
            vs.filter_map(|k| table.stake_of(k)).map(u128::from).sum()
        };
        for p in candidates.into_iter().rev() {
            let Some(chain) = self.chain_value_at(p) else {
                continue;
            };
            let eligible: Vec<&(OrderHeader, Signature, &Order)> = votes
                .iter()
                .filter(|(h, _, o)| {
                    h.finality >= p
                        && h.consensus <= p + MAX_CERT_IDS as u64
                        && o.chain_at(p) == Some(chain)
                })
                .collect();
            if !supermajority(weight(&mut eligible.iter().map(|v| &v.0.peer)), total) {
                continue;
            }
            let anchor = Checkpoint { position: p, chain };
            let signed: Vec<(OrderHeader, Signature)> =
                eligible.iter().map(|(h, s, _)| (h.clone(), *s)).collect();
            // The own ids first; then each voter's, the first that carries a quorum.
            let tails =
                core::iter::once(self.own_ids_from(p)).chain(eligible.iter().map(|(_, _, o)| {
                    usize::try_from(p.checked_sub(o.checkpoint.position)?)
                        .ok()
                        .and_then(|i| o.blocks.get(i..))
                }));
            let mut tried: Vec<&[Hash]> = Vec::new();
            for ids in tails.flatten() {
                let ids = &ids[..ids.len().min(MAX_CERT_IDS)];
                if tried.contains(&ids) {
                    continue;
                }
                tried.push(ids);
                // Which votes this list carries (their consensus chain is on it), cheaply,
                // before `assemble` checks their signatures.
                let chains = chains_from(&chain, ids);
                let on = signed.iter().filter(|(h, _)| {
                    let n = usize::try_from(h.consensus - p).unwrap_or(usize::MAX);
                    let at = if n == 0 {
                        Some(&chain)
                    } else {
                        chains.get(n - 1)
                    };
                    at == Some(&h.consensus_chain)
                });
                if !supermajority(weight(&mut on.map(|(h, _)| &h.peer)), total) {
                    continue;
                }
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
        }
        None
    }

    /// The chain value at absolute position `q`, from the own order's checkpoint to its
    /// end (`None` outside).
    #[must_use]
    pub fn chain_value_at(&self, q: u64) -> Option<Hash> {
        crate::merge::chain_at(&self.checkpoint, &self.chains, q)
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
