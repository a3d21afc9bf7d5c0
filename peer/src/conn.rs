//! The connection manager, as the seed prescribes — a pure component (no sockets, no
//! clock: time comes in as milliseconds, randomness from a seeded generator) that the
//! node asks what to dial and what to drop.
//!
//! - holds a target number of outgoing connections (config `target_outgoing`, default 20);
//! - dials only the candidates it is given: hosts registered on-chain for staked peers,
//!   and hosts the operator names (bootstrap) — the node builds that list from the ledger;
//! - picks among them with probability proportional to stake;
//! - now and then drops the lowest-stake outgoing connection when better-or-new
//!   candidates wait, so new peers get a chance;
//! - after failures, retries each host with exponential backoff plus jitter, forever,
//!   with no operator action;
//! - never reveals the outgoing list: only counts leave this module.

use std::collections::BTreeMap;

use cvx_protocol::PublicKey;

/// A host that may be dialled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `HOST:PORT`.
    pub host: String,
    /// The staked peer registered at this host (None: a bootstrap host).
    pub key: Option<PublicKey>,
    /// Its stake (bootstrap hosts without a known peer get the mean stake).
    pub stake: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    Dialing,
    Connected { since_ms: u64, stake: u64 },
}

#[derive(Clone, Copy, Debug, Default)]
struct Backoff {
    failures: u32,
    next_ms: u64,
}

/// First retry delay after a failure.
pub const BACKOFF_BASE_MS: u64 = 500;
/// Longest retry delay.
pub const BACKOFF_MAX_MS: u64 = 30_000;
/// A connection is not rotated out before it is this old.
pub const MIN_AGE_MS: u64 = 30_000;
/// Chance per [`ConnManager::rotate`] call (parts per million) of dropping one.
pub const ROTATE_PPM: u64 = 100_000;

/// The manager.
#[derive(Debug)]
pub struct ConnManager {
    target: usize,
    out: BTreeMap<String, Out>,
    backoff: BTreeMap<String, Backoff>,
    rng: u64,
}

impl ConnManager {
    /// A manager holding `target` outgoing connections, randomness from `seed`.
    #[must_use]
    pub fn new(target: usize, seed: u64) -> Self {
        Self {
            target: target.max(1),
            out: BTreeMap::new(),
            backoff: BTreeMap::new(),
            rng: seed | 1,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: fine for choosing hosts; not for secrets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Number of outgoing connections established.
    #[must_use]
    pub fn connected(&self) -> usize {
        self.out
            .values()
            .filter(|o| matches!(o, Out::Connected { .. }))
            .count()
    }

    /// Number of dials in progress.
    #[must_use]
    pub fn dialing(&self) -> usize {
        self.out.values().filter(|o| **o == Out::Dialing).count()
    }

    /// Hosts to dial now (each is then reported back through
    /// [`ConnManager::on_connected`] or [`ConnManager::on_failed`]).
    pub fn plan(&mut self, now_ms: u64, candidates: &[Candidate]) -> Vec<String> {
        // Forget the backoff of hosts no longer candidates (hosts change on-chain): the map
        // stays within the candidates, not every host ever seen.
        if self.backoff.len() > candidates.len() {
            let hosts: std::collections::BTreeSet<&str> =
                candidates.iter().map(|c| c.host.as_str()).collect();
            self.backoff.retain(|h, _| hosts.contains(h.as_str()));
        }
        let mut pool: Vec<(String, u64)> = candidates
            .iter()
            .filter(|c| !self.out.contains_key(&c.host))
            .filter(|c| {
                self.backoff
                    .get(&c.host)
                    .is_none_or(|b| now_ms >= b.next_ms)
            })
            .map(|c| (c.host.clone(), c.stake.max(1)))
            .collect();
        pool.sort();
        pool.dedup_by(|a, b| a.0 == b.0);
        let mut chosen = Vec::new();
        while self.out.len() < self.target && !pool.is_empty() {
            let total: u128 = pool.iter().map(|(_, s)| u128::from(*s)).sum();
            let mut pick = u128::from(self.next_u64()) % total.max(1);
            let mut idx = pool.len() - 1;
            for (i, (_, s)) in pool.iter().enumerate() {
                if pick < u128::from(*s) {
                    idx = i;
                    break;
                }
                pick -= u128::from(*s);
            }
            let (host, _) = pool.swap_remove(idx);
            self.out.insert(host.clone(), Out::Dialing);
            chosen.push(host);
        }
        chosen
    }

    /// A dial succeeded (and the other side proved `stake` worth of peer key).
    pub fn on_connected(&mut self, now_ms: u64, host: &str, stake: u64) {
        self.backoff.remove(host);
        self.out.insert(
            host.to_owned(),
            Out::Connected {
                since_ms: now_ms,
                stake,
            },
        );
    }

    /// A dial failed or an outgoing connection closed: retry later with backoff.
    pub fn on_failed(&mut self, now_ms: u64, host: &str) {
        self.out.remove(host);
        let jitter = self.next_u64();
        let b = self.backoff.entry(host.to_owned()).or_default();
        b.failures = b.failures.saturating_add(1);
        let exp = BACKOFF_BASE_MS.saturating_mul(1u64 << b.failures.min(16).saturating_sub(1));
        let delay = exp.min(BACKOFF_MAX_MS);
        // jitter: 50%..150% of the delay, so a partitioned network does not reconnect in
        // lockstep.
        let delay = delay / 2 + jitter % delay.max(1);
        b.next_ms = now_ms.saturating_add(delay);
    }

    /// Maybe pick one low-stake outgoing connection to drop, when candidates are waiting.
    /// The caller closes it and calls [`ConnManager::on_failed`] (or `on_closed`).
    pub fn rotate(&mut self, now_ms: u64, candidates: &[Candidate]) -> Option<String> {
        let waiting = candidates.iter().any(|c| !self.out.contains_key(&c.host));
        if !waiting || self.connected() < self.target {
            return None;
        }
        if self.next_u64() % 1_000_000 >= ROTATE_PPM {
            return None;
        }
        let victim = self
            .out
            .iter()
            .filter_map(|(h, o)| match o {
                Out::Connected { since_ms, stake } if now_ms >= since_ms + MIN_AGE_MS => {
                    Some((*stake, h.clone()))
                }
                _ => None,
            })
            .min()?;
        self.out.remove(&victim.1);
        Some(victim.1)
    }

    /// An outgoing connection closed cleanly (rotation): no backoff.
    pub fn on_closed(&mut self, host: &str) {
        self.out.remove(host);
    }

    /// When `host` may be retried (ms), if it is backing off.
    #[must_use]
    pub fn retry_at(&self, host: &str) -> Option<u64> {
        self.backoff.get(host).map(|b| b.next_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(stakes: &[u64]) -> Vec<Candidate> {
        stakes
            .iter()
            .enumerate()
            .map(|(i, s)| Candidate {
                host: format!("10.0.0.{i}:18888"),
                key: None,
                stake: *s,
            })
            .collect()
    }

    #[test]
    fn target_count_is_held() {
        let c = cands(&[10; 50]);
        let mut m = ConnManager::new(20, 7);
        let d = m.plan(0, &c);
        assert_eq!(d.len(), 20);
        for h in &d {
            m.on_connected(1, h, 10);
        }
        assert!(m.plan(2, &c).is_empty(), "at target: nothing more");
        m.on_failed(3, &d[0]);
        let again = m.plan(4, &c);
        assert_eq!(again.len(), 1, "one lost, one replaced");
        assert_ne!(again[0], d[0], "the failed host waits for its backoff");
        assert_eq!(m.connected() + m.dialing(), 20);
    }

    #[test]
    fn backoff_is_kept_only_for_current_candidates() {
        let mut m = ConnManager::new(4, 3);
        // Hosts change on-chain again and again; every old one failed once.
        for round in 0..1_000u64 {
            let c = vec![Candidate {
                host: format!("10.1.{}.{}:18888", round / 256, round % 256),
                key: None,
                stake: 1,
            }];
            for h in m.plan(round * 100_000, &c) {
                m.on_failed(round * 100_000, &h);
            }
            assert!(m.backoff.len() <= 2, "{}", m.backoff.len());
        }
        // The current candidate's backoff is kept: it is not redialled at once.
        let c = vec![Candidate {
            host: "10.1.3.231:18888".into(),
            key: None,
            stake: 1,
        }];
        assert!(m.retry_at("10.1.3.231:18888").is_some());
        assert!(m.plan(99_900_001, &c).is_empty());
    }

    #[test]
    fn only_given_hosts_are_dialled() {
        let c = cands(&[5, 5, 5]);
        let mut m = ConnManager::new(20, 1);
        let d = m.plan(0, &c);
        assert_eq!(
            d.len(),
            3,
            "fewer candidates than the target: all of them, no more"
        );
        for h in d {
            assert!(c.iter().any(|x| x.host == h), "{h} was not a candidate");
        }
    }

    #[test]
    fn choice_follows_stake() {
        // One heavy (900) against nine light (100 each): the heavy one is picked first
        // about half the time (900 / 1800).
        let mut stakes = vec![900];
        stakes.extend([100; 9]);
        let c = cands(&stakes);
        let mut heavy = 0;
        let n = 4000;
        for seed in 0..n {
            let mut m = ConnManager::new(1, seed * 2 + 1);
            let d = m.plan(0, &c);
            if d[0] == c[0].host {
                heavy += 1;
            }
        }
        let share = f64::from(heavy) / f64::from(u32::try_from(n).unwrap());
        assert!((0.45..0.55).contains(&share), "heavy share {share}");
    }

    #[test]
    fn low_stake_connections_are_rotated() {
        let c = cands(&[1000, 1000, 1, 1000, 500]);
        let mut m = ConnManager::new(4, 3);
        let mut held = Vec::new();
        for h in m.plan(0, &c) {
            let s = c.iter().find(|x| x.host == h).unwrap().stake;
            m.on_connected(0, &h, s);
            held.push(s);
        }
        // Too young: never rotated.
        for _ in 0..100 {
            assert_eq!(m.rotate(MIN_AGE_MS - 1, &c), None);
        }
        let dropped = (0..1000)
            .find_map(|_| m.rotate(MIN_AGE_MS, &c))
            .expect("rotation happens over time");
        let ds = c.iter().find(|x| x.host == dropped).unwrap().stake;
        assert_eq!(ds, *held.iter().min().unwrap(), "the lowest stake goes");
        assert_eq!(m.connected(), 3);
        assert_eq!(m.plan(MIN_AGE_MS, &c).len(), 1, "the free slot is refilled");
    }

    #[test]
    fn failures_back_off_then_retry_forever() {
        let c = cands(&[10]);
        let mut m = ConnManager::new(5, 9);
        let mut now = 0;
        let mut last_delay = 0;
        for round in 0..12 {
            let d = m.plan(now, &c);
            assert_eq!(d.len(), 1, "round {round}: retried");
            m.on_failed(now, &d[0]);
            let at = m.retry_at(&d[0]).unwrap();
            assert!(m.plan(now, &c).is_empty(), "not before the backoff");
            let delay = at - now;
            assert!(delay <= BACKOFF_MAX_MS * 3 / 2);
            if round < 4 {
                assert!(delay >= last_delay / 4);
            }
            last_delay = delay;
            now = at;
        }
        m.on_connected(now, &c[0].host, 10);
        assert_eq!(m.retry_at(&c[0].host), None, "success resets the backoff");
    }
}
