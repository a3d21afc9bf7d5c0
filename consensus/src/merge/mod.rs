//! The CPoS merge, as a pure function of the own order, the accepted orders of others
//! with their weights, and what the peer knows about blocks. No signatures, no clock
//! reads, no I/O: the state machine ([`super::Peer`]) feeds it and signs the result.
//!
//! The rules (each has a unit test named after it below):
//! 1. the consensus prefix is never changed: only orders that agree with the own order up
//!    to the own consensus point take part in the vote;
//! 2. the winning order is chosen position by position from the consensus point: each
//!    remaining order votes its stake for its block at that position, the block with the
//!    most stake wins, orders that voted otherwise drop out; ties go to the block with
//!    more locked weight (orders whose consensus point covers the position), then more
//!    proposing weight, then the lowest block id; (2b) a block locked by orders holding
//!    more than 1/3 of the weight wins outright;
//!    a block the peer does not hold, or judges future-dated or from a proposer below the
//!    minimum stake, gets no vote (so it is never confirmed by this peer);
//! 3. blocks that appear in any accepted order (or are the peer's own new blocks) but not
//!    in the winning order are appended in timestamp order (ties by id), unless dated
//!    more than `max_block_backdate_ms` ago, future-dated, or already finalized;
//! 4. a peer keeps its proposal for `proposal_hold_ms` before adopting an order that
//!    changes the blocks below its current proposal point;
//! 5. proposal = the longest prefix held by more than 0.67 of total weight; consensus =
//!    the longest prefix that more than 0.67 of weight holds *and* has proposed; finality
//!    = the same over consensus points; consensus and finality never go down; (5b) a
//!    peer whose proposal is below the finality of orders holding more than 1/3 of stake
//!    (it lags) does not raise its consensus point;
//! 6. more than 1/3 of weight finalizing a prefix that conflicts with the own finalized
//!    prefix is a fork: the peer halts.

use std::collections::BTreeMap;

use cvx_protocol::consensus::{Checkpoint, Order};
use cvx_protocol::{Hash, Timestamp};

use super::stake::above_threshold;

/// What the peer knows about a block id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Not held (requested from the sender).
    Unknown,
    /// Held, signature valid, proposer staked. `appendable` when it may be appended as a
    /// new block now (not too old, not already finalized).
    Valid {
        /// The block's timestamp.
        timestamp: Timestamp,
        /// May be appended as new.
        appendable: bool,
    },
    /// Dated beyond `now + max_future_ms`: never voted for or appended while so.
    Future,
    /// Proposer not a peer with the minimum stake, or otherwise unusable.
    Invalid,
}

/// The peer's own order, as the merge sees it.
#[derive(Clone, Copy, Debug)]
pub struct OwnView<'a> {
    /// Its checkpoint.
    pub checkpoint: Checkpoint,
    /// Block ids from the checkpoint.
    pub ids: &'a [Hash],
    /// `chains[i]` = chain value after `ids[i]` (position `checkpoint + i + 1`).
    pub chains: &'a [Hash],
    /// Proposal point.
    pub proposal: u64,
    /// Blocks below this point are kept by the hold rule (rule 4) even if the proposal
    /// point has dropped below it since: the highest proposal signed on the current
    /// prefix, for a while (`0` = the proposal point only).
    pub protect: u64,
    /// Consensus point.
    pub consensus: u64,
    /// Finality point.
    pub finality: u64,
    /// Ids fetched from another peer to catch up (see [`CatchUp`]).
    pub catch_up: Option<&'a CatchUp>,
}

/// A run of block ids fetched from another peer so a lagging peer can line up orders
/// whose checkpoint is beyond its own order. Trusted for nothing: it only lets the merge
/// read such orders; their blocks still need votes of more than 0.67 of stake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// Where the run starts (must be on the own chain).
    pub start: Checkpoint,
    /// The ids.
    pub ids: Vec<Hash>,
    /// `chains[i]` = chain value after `ids[i]`.
    pub chains: Vec<Hash>,
}

impl OwnView<'_> {
    /// Absolute length.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.checkpoint.position + self.ids.len() as u64
    }

    /// True when no blocks at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chain value at absolute position `q`.
    #[must_use]
    pub fn chain_at(&self, q: u64) -> Option<Hash> {
        chain_at(&self.checkpoint, self.chains, q)
    }
}

/// The chain value at absolute position `q` of a prefix summarized by `checkpoint`, with
/// `chains[i]` the chain value after the `i`-th id above it (`None` outside).
pub(crate) fn chain_at(checkpoint: &Checkpoint, chains: &[Hash], q: u64) -> Option<Hash> {
    let i = usize::try_from(q.checked_sub(checkpoint.position)?).ok()?;
    if i == 0 {
        Some(checkpoint.chain)
    } else {
        chains.get(i - 1).copied()
    }
}

/// Another peer's accepted order with its weight.
#[derive(Clone, Copy, Debug)]
pub struct Voter<'a> {
    /// The order.
    pub order: &'a Order,
    /// Its peer's effective stake (0 when below the minimum).
    pub weight: u128,
    /// Its peer's stake without decay (finality and fork detection count this).
    pub stake: u128,
}

/// Knobs of one merge.
#[derive(Clone, Copy, Debug)]
pub struct MergeParams {
    /// The peer's clock.
    pub now: Timestamp,
    /// The peer's own weight.
    pub own_weight: u128,
    /// Total weight of the peers that count.
    pub total_weight: u128,
    /// The peer's own stake without decay.
    pub own_stake: u128,
    /// Total stake without decay of the peers whose stake reaches the minimum. Finality
    /// and fork detection use stake without decay: every peer with the same finalized
    /// state agrees on it, so the quorum-intersection argument holds (decayed weights are
    /// local and let a byzantine minority exceed 1/3 in one peer's view).
    pub total_stake: u128,
    /// When the own proposal prefix last changed.
    pub proposal_since: Timestamp,
    /// `params.proposal_hold_ms`.
    pub hold_ms: u64,
    /// Most blocks the result may list above the checkpoint it will have (the order cap).
    pub max_blocks: usize,
}

/// The merge result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// Block ids from the own checkpoint.
    pub ids: Vec<Hash>,
    /// New proposal point.
    pub proposal: u64,
    /// New consensus point.
    pub consensus: u64,
    /// New finality point.
    pub finality: u64,
    /// True when the blocks below the old proposal point changed.
    pub prefix_changed: bool,
    /// True when the vote chose other blocks below the own proposal and the hold rule
    /// kept the own ones (a proposal split, rule 6).
    pub held: bool,
    /// Orders that could not be lined up with the own order (checkpoint beyond it).
    pub unlinkable: usize,
    /// Their peers (the caller fetches a catch-up run from whoever sent them).
    pub unlinkable_peers: Vec<cvx_protocol::PublicKey>,
}

/// A detected fork: more than a third of weight finalized another prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "FORK: peers holding {weight} of {total} weight finalized a prefix that conflicts with ours at position {position}; \
     this peer halts (a safety failure: more than 1/3 of stake is faulty, or this peer's state is corrupt)"
)]
pub struct ForkDetected {
    /// First conflicting position seen.
    pub position: u64,
    /// Weight behind the conflicting finality.
    pub weight: u128,
    /// Total weight.
    pub total: u128,
}

enum Aligned {
    /// Ids from the own checkpoint to the order's end.
    Linked(Vec<Hash>),
    /// The order's checkpoint conflicts with the own chain at `position`.
    Conflict(u64),
    /// Cannot tell (checkpoint beyond the own order, or below the own checkpoint).
    Unknown,
}

fn align(own: &OwnView<'_>, o: &Order) -> Aligned {
    let cp = own.checkpoint.position;
    let ocp = o.checkpoint.position;
    if ocp == cp {
        if o.checkpoint.chain == own.checkpoint.chain {
            return Aligned::Linked(o.blocks.to_vec());
        }
        return Aligned::Conflict(cp);
    }
    if ocp < cp {
        // Link through the order's own listing (costs cp − ocp hashes; own checkpoints
        // trail finality, so this is short).
        return match o.chain_at(cp) {
            Some(c) if c == own.checkpoint.chain => {
                let skip = usize::try_from(cp - ocp).unwrap_or(usize::MAX);
                Aligned::Linked(o.blocks.get(skip..).unwrap_or_default().to_vec())
            }
            Some(_) => Aligned::Conflict(cp),
            None => Aligned::Unknown,
        };
    }
    // The order's checkpoint is above ours: link through our own ids, or through the
    // catch-up segment (ids fetched from another peer, verified to start on our chain).
    match own.chain_at(ocp) {
        Some(c) if c == o.checkpoint.chain => {
            let n = usize::try_from(ocp - cp).unwrap_or(usize::MAX);
            let mut v = own.ids.get(..n).unwrap_or_default().to_vec();
            v.extend_from_slice(&o.blocks);
            return Aligned::Linked(v);
        }
        Some(_) if ocp <= own.finality => return Aligned::Conflict(ocp),
        _ => {}
    }
    if let Some(seg) = own.catch_up
        && seg.start.position >= cp
        && own.chain_at(seg.start.position) == Some(seg.start.chain)
        && let Some(i) = ocp
            .checked_sub(seg.start.position)
            .and_then(|i| usize::try_from(i).ok())
        && i >= 1
        && seg.chains.get(i - 1) == Some(&o.checkpoint.chain)
    {
        let n = usize::try_from(seg.start.position - cp).unwrap_or(usize::MAX);
        let mut v = own.ids.get(..n).unwrap_or_default().to_vec();
        v.extend_from_slice(&seg.ids[..i]);
        v.extend_from_slice(&o.blocks);
        return Aligned::Linked(v);
    }
    Aligned::Unknown
}

/// How another order relates to the own order (for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Same blocks as far as both reach.
    Agrees,
    /// First different block at this absolute position.
    DiffersAt(u64),
    /// Cannot be lined up with the own order.
    Unlinkable,
}

/// Where `o` first differs from the own order.
#[must_use]
pub fn divergence(own: &OwnView<'_>, o: &Order) -> Divergence {
    match align(own, o) {
        Aligned::Linked(ids) => {
            let n = common_prefix(&ids, own.ids);
            if n < ids.len().min(own.ids.len()) {
                Divergence::DiffersAt(own.checkpoint.position + n as u64)
            } else {
                Divergence::Agrees
            }
        }
        Aligned::Conflict(p) => Divergence::DiffersAt(p),
        Aligned::Unknown => Divergence::Unlinkable,
    }
}

fn common_prefix(a: &[Hash], b: &[Hash]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The longest absolute position `p` such that the voters whose value is `>= p` hold
/// more than 0.67 of `total`; 0 when none.
fn threshold_point(mut values: Vec<(u64, u128)>, total: u128) -> u64 {
    values.sort_unstable_by_key(|v| core::cmp::Reverse(v.0));
    let mut acc = 0u128;
    for (v, w) in values {
        acc += w;
        if above_threshold(acc, total) {
            return v;
        }
    }
    0
}

/// Run the merge.
///
/// # Errors
/// [`ForkDetected`] when more than 1/3 of weight finalized a conflicting prefix.
pub fn merge(
    own: &OwnView<'_>,
    voters: &[Voter<'_>],
    own_new: &[Hash],
    status: &dyn Fn(&Hash) -> BlockStatus,
    mp: &MergeParams,
) -> Result<Merged, ForkDetected> {
    let cp = own.checkpoint.position;
    let c_rel = usize::try_from(own.consensus.saturating_sub(cp)).unwrap_or(usize::MAX);
    let own_c_prefix = own.ids.get(..c_rel).unwrap_or(own.ids);

    // Line every order up with the own order; spot conflicting finality (rule 6).
    let mut lined: Vec<(Vec<Hash>, &Order, u128, u128)> = Vec::with_capacity(voters.len());
    let mut unlinkable = 0;
    let mut unlinkable_peers = Vec::new();
    let mut fork_weight = 0u128;
    let mut fork_pos = u64::MAX;
    for v in voters {
        match align(own, v.order) {
            Aligned::Linked(ids) => {
                let k = v.order.finality.min(own.finality).saturating_sub(cp);
                let k = usize::try_from(k)
                    .unwrap_or(usize::MAX)
                    .min(ids.len())
                    .min(own.ids.len());
                let agree = common_prefix(&ids[..k], &own.ids[..k]);
                if agree < k {
                    fork_weight += v.stake;
                    fork_pos = fork_pos.min(cp + agree as u64);
                }
                lined.push((ids, v.order, v.weight, v.stake));
            }
            Aligned::Conflict(p) => {
                if p <= own.finality && p <= v.order.finality {
                    fork_weight += v.stake;
                    fork_pos = fork_pos.min(p);
                }
                unlinkable += 1;
                unlinkable_peers.push(v.order.peer);
            }
            Aligned::Unknown => {
                unlinkable += 1;
                unlinkable_peers.push(v.order.peer);
            }
        }
    }
    if fork_weight * 3 > mp.total_stake && fork_weight > 0 {
        return Err(ForkDetected {
            position: fork_pos,
            weight: fork_weight,
            total: mp.total_stake,
        });
    }

    // Rule 1 and 2: vote from the consensus point among orders agreeing up to it. Each
    // candidate carries its (absolute) proposal and consensus points for the tie-breaks.
    let mut cands: Vec<(&[Hash], u128, u64, u64)> = Vec::with_capacity(lined.len() + 1);
    cands.push((own.ids, mp.own_weight, own.proposal, own.consensus));
    for (ids, o, w, _) in &lined {
        if ids.len() >= own_c_prefix.len() && ids[..own_c_prefix.len()] == *own_c_prefix {
            cands.push((ids.as_slice(), *w, o.proposal, o.consensus));
        }
    }
    let mut result: Vec<Hash> = own_c_prefix.to_vec();
    let mut i = own_c_prefix.len();
    loop {
        let at = cp + i as u64;
        // Per block: (weight, weight of orders that have locked it (consensus above
        // this position), weight of orders that have proposed it).
        let mut tally: BTreeMap<Hash, (u128, u128, u128)> = BTreeMap::new();
        for (ids, w, p, c) in &cands {
            if let Some(id) = ids.get(i)
                && matches!(status(id), BlockStatus::Valid { .. })
            {
                let t = tally.entry(*id).or_default();
                t.0 += *w;
                if *c > at {
                    t.1 += *w;
                }
                if *p > at {
                    t.2 += *w;
                }
            }
        }
        // A block locked by orders holding more than 1/3 of the weight wins outright: a
        // byzantine minority cannot claim that much, and honest peers that locked it can
        // never move, so voting for anything else here could only stall (rule 2b). Else the
        // most weight; among equals the most locked weight, then the most proposing
        // weight, then the lowest id (max_by keeps the last maximum, so ids compare
        // reversed). The tie-breaks matter with equal stakes, where a crashed peer's last
        // order can hold exactly half of the weight against peers that are locked.
        let locked_winner = tally
            .iter()
            .filter(|(_, t)| t.1 * 3 > mp.total_weight && t.1 > 0)
            .max_by(|a, b| (a.1).1.cmp(&(b.1).1).then(b.0.cmp(a.0)))
            .map(|(id, _)| *id);
        let Some(winner) = locked_winner.or_else(|| {
            tally
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(id, _)| *id)
        }) else {
            break;
        };
        result.push(winner);
        cands.retain(|(ids, _, _, _)| ids.get(i) == Some(&winner));
        i += 1;
    }

    // Rule 4: keep the current proposal for a while.
    let p_rel = usize::try_from(own.proposal.max(own.protect).saturating_sub(cp))
        .unwrap_or(usize::MAX)
        .min(own.ids.len());
    let prefix_changed = result.get(..p_rel) != Some(&own.ids[..p_rel]);
    // A proposal is also kept until more than 0.67 of weight holds the replacement up to
    // the old proposal point: peers do not flip proposals on a simple majority, so two
    // honest peers rarely lock (consensus) conflicting prefixes (docs/consensus.md).
    let supermajority_moved = || {
        let support: u128 = lined
            .iter()
            .filter(|(ids, _, _, _)| {
                ids.len() >= p_rel && result.len() >= p_rel && ids[..p_rel] == result[..p_rel]
            })
            .map(|(_, _, w, _)| *w)
            .sum();
        above_threshold(support, mp.total_weight)
    };
    let held = prefix_changed
        && (mp.now < mp.proposal_since.plus_ms(mp.hold_ms) || !supermajority_moved());
    if held {
        result = own.ids.to_vec();
    }

    // Rule 3: append new blocks in timestamp order.
    let mut present: crate::ids::IdSet<Hash> = result.iter().copied().collect();
    let mut fresh: Vec<(Timestamp, Hash)> = Vec::new();
    let all_ids = lined
        .iter()
        .flat_map(|(ids, _, _, _)| ids.iter())
        .chain(own_new.iter())
        .chain(own.ids.iter());
    for id in all_ids {
        if present.contains(id) {
            continue;
        }
        if let BlockStatus::Valid {
            timestamp,
            appendable: true,
        } = status(id)
        {
            present.insert(*id);
            fresh.push((timestamp, *id));
        }
    }
    fresh.sort_unstable();
    let cap = mp.max_blocks;
    for (_, id) in fresh {
        if result.len() >= cap {
            break;
        }
        result.push(id);
    }
    result.truncate(cap.max(own_c_prefix.len()));

    // Rule 5: the three points.
    let len = cp + result.len() as u64;
    let agreed: Vec<(u64, &Order, u128, u128)> = lined
        .iter()
        .map(|(ids, o, w, st)| (cp + common_prefix(ids, &result) as u64, *o, *w, *st))
        .collect();
    let mut props: Vec<(u64, u128)> = agreed.iter().map(|(a, _, w, _)| (*a, *w)).collect();
    props.push((len, mp.own_weight));
    let proposal = threshold_point(props, mp.total_weight)
        .max(own.consensus)
        .min(len);
    let mut cons: Vec<(u64, u128)> = agreed
        .iter()
        .map(|(a, o, w, _)| ((*a).min(o.proposal), *w))
        .collect();
    // The own vote at the lock levels is the *signed* previous order's point (as far as
    // it agrees with the result), not the one being computed: a peer locks a prefix only
    // after others have seen it propose that prefix, which makes conflicting locks
    // between honest peers (a liveness hazard, see docs/consensus.md) much rarer.
    let own_agreed = cp + common_prefix(own.ids, &result) as u64;
    cons.push((own_agreed.min(own.proposal), mp.own_weight));
    // Rule 5b: no new lock while lagging. When orders holding more than 1/3 of stake
    // have finalized beyond this peer's proposal, its view of their proposals is stale;
    // locking on it is how a lagging peer came to lock a prefix the others had already
    // finalized differently (stuck for good: its signer holds the lock; seen in real
    // devnets, docs/consensus.md §5). It locks again once its proposal has caught up.
    let ahead: u128 = voters
        .iter()
        .filter(|v| v.order.finality > proposal)
        .map(|v| v.stake)
        .sum();
    let lagging = ahead * 3 > mp.total_stake && ahead > 0;
    let consensus = if lagging {
        own.consensus
    } else {
        threshold_point(cons, mp.total_weight)
            .max(own.consensus)
            .min(proposal)
    };
    let mut fins: Vec<(u64, u128)> = agreed
        .iter()
        .map(|(a, o, _, st)| ((*a).min(o.consensus), *st))
        .collect();
    fins.push((own_agreed.min(own.consensus), mp.own_stake));
    let finality = threshold_point(fins, mp.total_stake)
        .max(own.finality)
        .min(consensus);

    Ok(Merged {
        ids: result,
        proposal,
        consensus,
        finality,
        prefix_changed: prefix_changed && !held,
        held,
        unlinkable,
        unlinkable_peers,
    })
}

#[cfg(test)]
pub(crate) mod tests;
