//! Belief gossip as deltas: per connection, remember the newest order of each peer that
//! the other side is known to hold (sent to it, or received from it), and send only newer
//! orders. A full belief still goes out every [`FULL_EVERY_MS`] per connection (the
//! seed's rebroadcast on a timer), so nothing depends on every delta arriving.

use std::collections::HashMap;

use cvx_protocol::consensus::{Belief, SignedOrder};
use cvx_protocol::{BoundedVec, PublicKey, Timestamp};

/// A connection gets the whole belief at least this often.
pub const FULL_EVERY_MS: u64 = 2_000;
/// Peers whose newest order is remembered per connection, at most (a belief names any keys
/// it likes; the consensus machine drops orders of non-peers later). Beyond, an order of a
/// new key is not remembered: it is sent again, never lost.
pub const MAX_KNOWN: usize = 4096;

/// What one connection is known to hold.
#[derive(Debug, Default)]
pub struct Known {
    newest: HashMap<PublicKey, Timestamp>,
    full_at: Option<u64>,
}

impl Known {
    /// The other side sent us these orders: it holds them.
    pub fn received(&mut self, orders: &[SignedOrder]) {
        for so in orders {
            self.note(so);
        }
    }

    fn note(&mut self, so: &SignedOrder) {
        if self.newest.len() >= MAX_KNOWN && !self.newest.contains_key(&so.order.peer) {
            return;
        }
        let t = self
            .newest
            .entry(so.order.peer)
            .or_insert(so.order.timestamp);
        if so.order.timestamp > *t {
            *t = so.order.timestamp;
        }
    }

    /// What to send of `belief` at `now_ms`: the whole belief when the last full one is
    /// [`FULL_EVERY_MS`] old (or there was none), else only the orders newer than what
    /// the other side holds; `None` when that is nothing. Records what it returns.
    pub fn outgoing(&mut self, belief: &Belief, now_ms: u64) -> Option<Belief> {
        let full = self
            .full_at
            .is_none_or(|t| now_ms.saturating_sub(t) >= FULL_EVERY_MS);
        let orders: Vec<SignedOrder> = if full {
            self.full_at = Some(now_ms);
            belief.orders.to_vec()
        } else {
            belief
                .orders
                .iter()
                .filter(|so| {
                    self.newest
                        .get(&so.order.peer)
                        .is_none_or(|t| so.order.timestamp > *t)
                })
                .cloned()
                .collect()
        };
        if orders.is_empty() {
            return None;
        }
        for so in &orders {
            self.note(so);
        }
        // A subset of a valid belief stays within its cap.
        BoundedVec::try_from_vec(orders)
            .ok()
            .map(|orders| Belief { orders })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cvx_protocol::consensus::{Checkpoint, Order};
    use cvx_protocol::{Hash, Signature};

    fn key(i: u8) -> PublicKey {
        (0u8..=255)
            .find_map(|j| PublicKey::from_bytes(&cvx_protocol::hash::hash(&[i, j]).0).ok())
            .unwrap()
    }

    fn so(peer: u8, ts: u64) -> SignedOrder {
        SignedOrder {
            order: Order {
                peer: key(peer),
                timestamp: Timestamp(ts),
                checkpoint: Checkpoint {
                    position: 0,
                    chain: Hash::ZERO,
                },
                blocks: BoundedVec::try_from_vec(vec![]).unwrap(),
                proposal: 0,
                consensus: 0,
                finality: 0,
                stake_root: Hash::ZERO,
            },
            signature: Signature([0; 64]),
        }
    }

    fn belief(v: Vec<SignedOrder>) -> Belief {
        Belief {
            orders: BoundedVec::try_from_vec(v).unwrap(),
        }
    }

    fn peers_of(b: &Belief) -> Vec<(PublicKey, u64)> {
        b.orders
            .iter()
            .map(|s| (s.order.peer, s.order.timestamp.0))
            .collect()
    }

    #[test]
    fn first_send_is_full_then_only_newer_orders_then_full_again() {
        let mut k = Known::default();
        let b1 = belief(vec![so(1, 10), so(2, 10), so(3, 10)]);
        assert_eq!(k.outgoing(&b1, 0).unwrap().orders.len(), 3);
        // Nothing new: nothing sent.
        assert!(k.outgoing(&b1, 100).is_none());
        // Peer 2's order is newer: only it goes.
        let b2 = belief(vec![so(1, 10), so(2, 20), so(3, 10)]);
        assert_eq!(peers_of(&k.outgoing(&b2, 200).unwrap()), vec![(key(2), 20)]);
        // The timer: a full belief again.
        assert_eq!(k.outgoing(&b2, 2_000).unwrap().orders.len(), 3);
    }

    #[test]
    fn a_belief_flood_of_fresh_keys_is_remembered_up_to_the_cap_and_gossip_goes_on() {
        let mut k = Known::default();
        let fresh = |i: usize| {
            let mut o = so(1, 10);
            o.order.peer = (0u32..)
                .find_map(|j| {
                    let h = cvx_protocol::hash::hash(
                        &[(i as u64).to_le_bytes(), u64::from(j).to_le_bytes()].concat(),
                    );
                    PublicKey::from_bytes(&h.0).ok()
                })
                .unwrap();
            o
        };
        let flood: Vec<SignedOrder> = (0..MAX_KNOWN + 100).map(fresh).collect();
        k.received(&flood);
        assert_eq!(k.newest.len(), MAX_KNOWN, "the cap holds");
        // Orders of the real peers still go out (as a delta: none was remembered).
        let _ = k.outgoing(&belief(vec![so(1, 10)]), 0);
        let b = belief(vec![so(1, 10), so(2, 20)]);
        assert_eq!(
            peers_of(&k.outgoing(&b, 10).unwrap()),
            vec![(key(1), 10), (key(2), 20)]
        );
        assert_eq!(k.newest.len(), MAX_KNOWN);
    }

    #[test]
    fn orders_received_from_the_connection_are_not_echoed() {
        let mut k = Known::default();
        let _ = k.outgoing(&belief(vec![so(1, 10)]), 0);
        k.received(&[so(2, 30), so(3, 5)]);
        let b = belief(vec![so(1, 10), so(2, 30), so(3, 7)]);
        // Peer 2's order came from them; peer 3's is newer than what they sent.
        assert_eq!(peers_of(&k.outgoing(&b, 10).unwrap()), vec![(key(3), 7)]);
        // An older order than what they hold is never sent in a delta.
        k.received(&[so(1, 50)]);
        assert!(k.outgoing(&belief(vec![so(1, 40)]), 20).is_none());
    }
}
