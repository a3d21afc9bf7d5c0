//! When a peer cannot recover from orders and must resync ([`Action::Resync`]): it is too
//! far behind, or its finality stands still while the network's moves on.
use super::*;

/// The trigger is evaluated at most this often (it sorts the orders held).
const WATCH_EVERY_MS: u64 = 10;

/// What the resync trigger remembers between steps.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Watch {
    /// The own finality last seen, and when it was first seen (`None` before the first
    /// step).
    own: Option<(u64, Timestamp)>,
    /// The highest network finality seen, and when it last rose (`None` until it rose
    /// while this peer watched: a network that never moves is not "moving on").
    network: Option<(u64, Option<Timestamp>)>,
    /// When the condition was last evaluated (at most every [`WATCH_EVERY_MS`]).
    checked: Option<Timestamp>,
    /// Since when the network has been ahead of the own finality.
    behind_since: Option<Timestamp>,
    /// When the last [`Action::Resync`] was emitted.
    last: Option<Timestamp>,
}

impl Peer {
    /// The finality that peers holding more than 1/3 of the stake (without decay) report in
    /// the newest orders held: the highest `F` such that orders with `finality >= F` hold
    /// more than 1/3 of the total. At least one honest peer (less than 1/3 is byzantine)
    /// reports `F` or more. `None` when the orders held do not reach 1/3.
    #[must_use]
    pub fn network_finality(&self) -> Option<u64> {
        self.reported_finality(1)
    }

    /// The highest `F` such that the others' newest orders with `finality >= F` hold more
    /// than `thirds`/3 of the stake (without decay).
    fn reported_finality(&self, thirds: u128) -> Option<u64> {
        let total = self.voting_total();
        let mut reports: Vec<(u64, u128)> = self
            .others
            .values()
            .filter_map(|so| Some((so.order.finality, self.voting_stake(&so.order.peer)?)))
            .collect();
        reports.sort_unstable_by_key(|r| core::cmp::Reverse(r.0));
        let mut acc = 0u128;
        for (f, s) in reports {
            acc += s;
            if acc.saturating_mul(3) > total.saturating_mul(thirds) {
                return Some(f);
            }
        }
        None
    }

    /// Emit [`Action::Resync`] (at most every [`RESYNC_RETRY_MS`]) when the network's
    /// finality ([`Peer::network_finality`]) is more than [`RESYNC_GAP`] above the own, or
    /// when it is above the own, the own has not advanced for [`RESYNC_STALL_MS`] while it
    /// was, and either it rose within the last [`RESYNC_STALL_MS`] or peers holding more
    /// than 2/3 of the stake report a finality above the own (the network finalized past
    /// this peer and then stood still: it can still hand over a state).
    pub(super) fn watch_resync(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let own = self.finality;
        let w = &mut self.resync;
        if w.checked.is_some_and(|t| now < t.plus_ms(WATCH_EVERY_MS)) {
            return;
        }
        w.checked = Some(now);
        match w.own {
            Some((f, _)) if f == own => {}
            _ => w.own = Some((own, now)),
        }
        let Some(net) = self.network_finality() else {
            self.resync.behind_since = None;
            return;
        };
        let w = &mut self.resync;
        match w.network {
            // The first report seen is not a move: the network may have stood there for good.
            None => w.network = Some((net, None)),
            Some((high, _)) if net > high => w.network = Some((net, Some(now))),
            Some(_) => {}
        }
        if net <= own {
            w.behind_since = None;
            return;
        }
        let behind_since = *w.behind_since.get_or_insert(now);
        let own_since = w.own.map_or(now, |(_, at)| at);
        let stalled_from = behind_since.max(own_since);
        let gap = net > own.saturating_add(RESYNC_GAP);
        let rose = w
            .network
            .and_then(|(_, rose)| rose)
            .is_some_and(|rose| now < rose.plus_ms(RESYNC_STALL_MS));
        let stalled = now >= stalled_from.plus_ms(RESYNC_STALL_MS)
            && (rose || self.reported_finality(2).is_some_and(|f| f > own));
        let w = &mut self.resync;
        if (gap || stalled) && w.last.is_none_or(|t| now >= t.plus_ms(RESYNC_RETRY_MS)) {
            w.last = Some(now);
            out.push(Action::Resync {
                finality: own,
                network_finality: net,
            });
        }
    }
}
