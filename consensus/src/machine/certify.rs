//! Finality certificates from the orders in view (docs/consensus.md §7.4): what a peer
//! answers a peer that asks for one to resync.
use cvx_protocol::certificate::{
    CertKind, CertRequest, Certificate, MAX_CERT_IDS, OrderHeader, StakeTable, supermajority,
};
use cvx_protocol::consensus::Order;

use super::*;

/// A vote of a certificate: the order's header under a table's root, its signature, the
/// order.
type Vote<'a> = (OrderHeader, Signature, &'a Order);

/// The votes among `orders` that count in `table`: orders of its peers signed under its
/// `root`.
fn votes_of<'a>(
    orders: impl Iterator<Item = &'a SignedOrder>,
    table: &StakeTable,
    root: Hash,
) -> Vec<Vote<'a>> {
    orders
        .filter(|so| so.order.stake_root == root && table.stake_of(&so.order.peer).is_some())
        .filter_map(|so| Some((OrderHeader::of(&so.order, root)?, so.signature, &so.order)))
        .collect()
}

/// The orders that locked the own finality point when it last advanced
/// ([`Peer::keep_final_votes`]).
#[derive(Clone, Debug)]
pub(super) struct FinalVotes {
    /// The finality point and this peer's chain there.
    anchor: Checkpoint,
    /// Orders whose consensus point is at or past it on that chain (more than 2/3 of the
    /// stake when kept).
    votes: Vec<SignedOrder>,
}

/// The stake table of a finalized ledger: the peers whose stake without decay is at least
/// `min_stake`, the voters of docs/consensus.md §2 rules 1 and 7 (§7.3).
#[must_use]
pub fn stake_table(ledger: &State, min_stake: cvx_protocol::primitives::Amount) -> StakeTable {
    let peers: Vec<cvx_protocol::ledger::PeerRecord> = ledger.peers().cloned().collect();
    StakeTable::from_peers(&peers, min_stake)
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
    /// (docs/consensus.md §7.4); failing that, a lock certificate from the orders that
    /// locked the own finality point when it last advanced. `None` when neither quorum is
    /// in view.
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
    /// * when there is no such `P` (a voter whose lock made this peer's finality has since
    ///   signed orders on another chain: a byzantine member, the simulation's long-outage
    ///   seed 9700), kind [`CertKind::Lock`] at the own finality point `F` as it was when
    ///   it last advanced: per peer its newest order if that locks this peer's chain at
    ///   `F`, else the order kept from then. More than 2/3 locked `C` at `F`, so no other
    ///   chain can ever be final there, and this peer's state is at or past `F`;
    /// * `table` is always `Some(table)`: the signer ignores it when the certificate's root
    ///   is its trusted one, and needs it when the table changed (`decide_certificate`).
    #[must_use]
    pub fn certificate(&self) -> Option<CertRequest> {
        let table = stake_table(&self.ledger, self.cfg.genesis.params.min_stake);
        let root = table.root();
        let newest: Vec<&SignedOrder> = self.others.values().chain(self.signed.iter()).collect();
        let votes = votes_of(newest.iter().copied(), &table, root);
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
        for p in candidates.into_iter().rev() {
            let Some(chain) = self.chain_value_at(p) else {
                continue;
            };
            let eligible: Vec<&Vote<'_>> = votes
                .iter()
                .filter(|(h, _, o)| {
                    h.finality >= p
                        && h.consensus <= p + MAX_CERT_IDS as u64
                        && o.chain_at(p) == Some(chain)
                })
                .collect();
            let anchor = Checkpoint { position: p, chain };
            if let Some(req) = self.assemble(CertKind::Finality, anchor, &eligible, &table) {
                return Some(req);
            }
        }
        // The orders that locked the own finality: each peer's newest if it still locks
        // this chain there, else the one kept.
        let kept = self.finalized_by.as_ref()?;
        let anchor = kept.anchor;
        let locks = |so: &&SignedOrder| {
            let o = &so.order;
            o.consensus >= anchor.position
                && o.consensus <= anchor.position + MAX_CERT_IDS as u64
                && o.chain_at(anchor.position) == Some(anchor.chain)
        };
        let mut chosen: BTreeMap<PublicKey, &SignedOrder> = BTreeMap::new();
        for so in kept
            .votes
            .iter()
            .chain(newest.iter().copied())
            .filter(locks)
        {
            chosen.insert(so.order.peer, so);
        }
        let votes = votes_of(chosen.into_values(), &table, root);
        let eligible: Vec<&Vote<'_>> = votes.iter().collect();
        self.assemble(CertKind::Lock, anchor, &eligible, &table)
    }

    /// Keep the orders that locked the own finality point, just advanced: each order held
    /// (the own new one included) whose consensus point is at or past it on this peer's
    /// chain, when they hold more than 2/3 of the stake. [`Peer::certificate`] falls back
    /// on them.
    pub(super) fn keep_final_votes(&mut self) {
        let position = self.finality;
        let Some(chain) = self.chain_value_at(position) else {
            return;
        };
        let votes: Vec<SignedOrder> = self
            .others
            .values()
            .chain(self.signed.iter())
            .filter(|so| {
                so.order.consensus >= position && so.order.chain_at(position) == Some(chain)
            })
            .cloned()
            .collect();
        let weight: u128 = votes
            .iter()
            .filter_map(|so| self.voting_stake(&so.order.peer))
            .sum();
        if supermajority(weight, self.voting_total()) {
            self.finalized_by = Some(FinalVotes {
                anchor: Checkpoint { position, chain },
                votes,
            });
        }
    }

    /// A certificate of `kind` at `anchor` from `eligible` (votes of distinct peers), when
    /// they hold more than 2/3 of `table` and a list of ids from the anchor carries enough
    /// of them: this peer's own ids first, then each voter's.
    fn assemble(
        &self,
        kind: CertKind,
        anchor: Checkpoint,
        eligible: &[&Vote<'_>],
        table: &StakeTable,
    ) -> Option<CertRequest> {
        let total = table.total();
        let weight = |vs: &mut dyn Iterator<Item = &PublicKey>| -> u128 {
            vs.filter_map(|k| table.stake_of(k)).map(u128::from).sum()
        };
        if !supermajority(weight(&mut eligible.iter().map(|v| &v.0.peer)), total) {
            return None;
        }
        let (p, chain) = (anchor.position, anchor.chain);
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
            if let Some(certificate) =
                Certificate::assemble(self.network, kind, anchor, ids, table, &signed)
            {
                return Some(CertRequest {
                    certificate,
                    table: Some(table.clone()),
                });
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
