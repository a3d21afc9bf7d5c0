//! The checker: what the launcher sees through the peers' API, and the invariants.
//!
//! Pure: the launcher feeds it observations (each peer's finality, the chain value a
//! peer finalized at a position, whether an isolated peer still says it takes part) and
//! the nemesis's heals; it records violations:
//! - **fork**: two peers finalized different chain values at one position;
//! - **regression**: a peer's finality went down while it ran. A peer killed with -9
//!   restarts from its last checkpoint (written every second), so it may report a lower
//!   finality until it has caught up; the launcher says so ([`Checker::restarted`]), and
//!   what the peer finalizes again is held to the fork check;
//! - **no recovery**: after a heal, a running peer did not pass the highest finality any
//!   peer had at the heal within the bound;
//! - **no NETWORK**: a peer cut off from every other still said it takes part in
//!   consensus (its clients would not get NETWORK) after the grace time.

use std::collections::BTreeMap;

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// Two chain values at one position.
    Fork {
        /// The position.
        position: u64,
        /// (peer, chain value hex) of the first and the other.
        first: (usize, String),
        /// The other peer and its value.
        other: (usize, String),
    },
    /// Finality went down.
    Regression {
        /// The peer.
        peer: usize,
        /// From.
        from: u64,
        /// To.
        to: u64,
    },
    /// A peer did not catch up within the bound after a heal.
    NoRecovery {
        /// The fault (index in the schedule).
        fault: usize,
        /// The peers still behind.
        peers: Vec<usize>,
        /// The finality they had to pass.
        target: u64,
    },
    /// A cut-off peer still took part in consensus.
    NoNetworkError {
        /// The fault.
        fault: usize,
        /// The peer.
        peer: usize,
    },
}

/// One violation, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// ms after the network came up.
    pub at_ms: u64,
    /// What.
    pub kind: ViolationKind,
}

impl Violation {
    /// One line for the operator.
    #[must_use]
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            ViolationKind::Fork {
                position,
                first,
                other,
            } => format!(
                "FORK at position {position}: peer {} finalized chain {} but peer {} finalized {}",
                first.0, first.1, other.0, other.1
            ),
            ViolationKind::Regression { peer, from, to } => {
                format!("REGRESSION: peer {peer}'s finality went from {from} down to {to}")
            }
            ViolationKind::NoRecovery {
                fault,
                peers,
                target,
            } => format!(
                "NO RECOVERY after fault #{fault}: peers {peers:?} did not pass finality {target} within the bound"
            ),
            ViolationKind::NoNetworkError { fault, peer } => format!(
                "NO NETWORK ERROR during fault #{fault}: cut-off peer {peer} still says it takes part in consensus (its clients would not get NETWORK)"
            ),
        };
        #[allow(clippy::cast_precision_loss)]
        let s = self.at_ms as f64 / 1000.0;
        format!("[{s:.1}s] {what}")
    }

    /// The kind's name in the JSON summary.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self.kind {
            ViolationKind::Fork { .. } => "fork",
            ViolationKind::Regression { .. } => "regression",
            ViolationKind::NoRecovery { .. } => "no_recovery",
            ViolationKind::NoNetworkError { .. } => "no_network_error",
        }
    }
}

/// A heal being watched.
#[derive(Clone, Debug)]
struct Pending {
    fault: usize,
    healed_ms: u64,
    target: u64,
    late: bool,
}

/// One fault's recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The fault (index in the schedule).
    pub fault: usize,
    /// ms from the heal until every running peer passed the target (None: never).
    pub recovery_ms: Option<u64>,
}

/// The checker's state.
#[derive(Clone, Debug)]
pub struct Checker {
    bound_ms: u64,
    last: Vec<Option<u64>>,
    regressed: Vec<bool>,
    chains: BTreeMap<u64, (usize, String)>,
    pending: Vec<Pending>,
    recoveries: Vec<Recovery>,
    violations: Vec<Violation>,
    reported_forks: std::collections::BTreeSet<u64>,
}

impl Checker {
    /// A checker for `peers` peers; recovery must take at most `bound_ms`.
    #[must_use]
    pub fn new(peers: usize, bound_ms: u64) -> Self {
        Self {
            bound_ms,
            last: vec![None; peers],
            regressed: vec![false; peers],
            chains: BTreeMap::new(),
            pending: Vec::new(),
            recoveries: Vec::new(),
            violations: Vec::new(),
            reported_forks: std::collections::BTreeSet::new(),
        }
    }

    /// The recovery bound (ms).
    #[must_use]
    pub fn bound_ms(&self) -> u64 {
        self.bound_ms
    }

    /// Peer `peer` reports finality `fin`; new violations are returned.
    pub fn finality(&mut self, at_ms: u64, peer: usize, fin: u64) -> Vec<Violation> {
        let mut out = Vec::new();
        if let Some(slot) = self.last.get_mut(peer) {
            let below = slot.is_some_and(|prev| fin < prev);
            // Reported once until the peer is back at its high-water mark.
            if below && !self.regressed[peer] {
                out.push(Violation {
                    at_ms,
                    kind: ViolationKind::Regression {
                        peer,
                        from: slot.unwrap_or(0),
                        to: fin,
                    },
                });
            }
            self.regressed[peer] = below;
            *slot = Some(slot.map_or(fin, |p| p.max(fin)));
        }
        self.record(out)
    }

    /// Peer `peer` finalized chain value `chain` at `position`.
    pub fn chain(&mut self, at_ms: u64, peer: usize, position: u64, chain: &str) -> Vec<Violation> {
        let mut out = Vec::new();
        match self.chains.get(&position) {
            None => {
                self.chains.insert(position, (peer, chain.to_owned()));
            }
            Some((p0, c0)) if c0 != chain && self.reported_forks.insert(position) => {
                out.push(Violation {
                    at_ms,
                    kind: ViolationKind::Fork {
                        position,
                        first: (*p0, c0.clone()),
                        other: (peer, chain.to_owned()),
                    },
                });
            }
            Some(_) => {}
        }
        self.record(out)
    }

    /// Peer `peer` was restarted after a kill -9: its finality restarts from its last
    /// checkpoint, so its high-water mark starts again (the chain values it finalized stay
    /// recorded, so finalizing another value at a position is still a fork).
    pub fn restarted(&mut self, peer: usize) {
        if let Some(slot) = self.last.get_mut(peer) {
            *slot = None;
        }
        if let Some(r) = self.regressed.get_mut(peer) {
            *r = false;
        }
    }

    /// Fault `fault` healed: from now, every running peer must pass the highest
    /// finality seen so far within the bound.
    pub fn healed(&mut self, at_ms: u64, fault: usize) {
        let target = self.last.iter().flatten().copied().max().unwrap_or(0);
        self.pending.push(Pending {
            fault,
            healed_ms: at_ms,
            target,
            late: false,
        });
    }

    /// Peer `peer` was cut off from every other for `cut_for_ms` and says whether it
    /// takes part in consensus; `grace_ms` is how long it may take to notice.
    pub fn cut_off(
        &mut self,
        at_ms: u64,
        fault: usize,
        peer: usize,
        cut_for_ms: u64,
        grace_ms: u64,
        in_consensus: bool,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let already = self.violations.iter().any(
            |v| matches!(v.kind, ViolationKind::NoNetworkError { fault: f, .. } if f == fault),
        );
        if in_consensus && cut_for_ms > grace_ms && !already {
            out.push(Violation {
                at_ms,
                kind: ViolationKind::NoNetworkError { fault, peer },
            });
        }
        self.record(out)
    }

    /// Look at pending heals with the current finality of the running peers
    /// (`None`: the peer does not run now).
    pub fn tick(&mut self, at_ms: u64, running: &[Option<u64>]) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut done = Vec::new();
        for (i, p) in self.pending.iter_mut().enumerate() {
            let behind: Vec<usize> = running
                .iter()
                .enumerate()
                .filter(|(_, f)| f.is_some_and(|f| f <= p.target))
                .map(|(i, _)| i)
                .collect();
            let any_running = running.iter().any(Option::is_some);
            if behind.is_empty() && any_running {
                self.recoveries.push(Recovery {
                    fault: p.fault,
                    recovery_ms: Some(at_ms.saturating_sub(p.healed_ms)),
                });
                done.push(i);
            } else if !p.late && at_ms.saturating_sub(p.healed_ms) > self.bound_ms {
                p.late = true;
                out.push(Violation {
                    at_ms,
                    kind: ViolationKind::NoRecovery {
                        fault: p.fault,
                        peers: behind,
                        target: p.target,
                    },
                });
            }
        }
        for i in done.into_iter().rev() {
            self.pending.remove(i);
        }
        self.record(out)
    }

    /// The end of the run: heals still pending never recovered.
    pub fn finish(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.recoveries.push(Recovery {
                fault: p.fault,
                recovery_ms: None,
            });
        }
        self.recoveries.sort_by_key(|r| r.fault);
    }

    fn record(&mut self, v: Vec<Violation>) -> Vec<Violation> {
        self.violations.extend(v.iter().cloned());
        v
    }

    /// Every violation so far.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Recoveries measured so far.
    #[must_use]
    pub fn recoveries(&self) -> &[Recovery] {
        &self.recoveries
    }

    /// Positions at which chain values were compared.
    #[must_use]
    pub fn positions_compared(&self) -> usize {
        self.chains.len()
    }

    /// The violations of one kind.
    #[must_use]
    pub fn count(&self, name: &str) -> usize {
        self.violations.iter().filter(|v| v.name() == name).count()
    }
}

/// The `q`-quantile (0..=1) of a list of values (nearest rank; 0 when empty).
#[must_use]
pub fn quantile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_is_reported_once_with_both_peers() {
        let mut c = Checker::new(3, 10_000);
        assert!(c.chain(1, 0, 5, "aa").is_empty());
        assert!(c.chain(2, 1, 5, "aa").is_empty());
        let v = c.chain(3, 2, 5, "bb");
        assert_eq!(v.len(), 1);
        assert!(
            v[0].describe()
                .contains("peer 0 finalized chain aa but peer 2 finalized bb")
        );
        assert!(c.chain(4, 2, 5, "bb").is_empty());
        assert_eq!(c.count("fork"), 1);
    }

    #[test]
    fn a_restart_after_a_kill_starts_the_high_water_mark_again_but_not_the_fork_check() {
        let mut c = Checker::new(2, 1_000);
        assert!(c.finality(0, 0, 500).is_empty());
        assert!(c.chain(0, 0, 500, "aa").is_empty());
        c.restarted(0);
        assert!(
            c.finality(10, 0, 420).is_empty(),
            "a restart from the checkpoint"
        );
        assert_eq!(c.finality(20, 0, 400).len(), 1, "then a real regression");
        assert_eq!(
            c.chain(30, 0, 500, "bb").len(),
            1,
            "another value at 500 is a fork"
        );
    }

    #[test]
    fn regression_is_caught_and_progress_is_not() {
        let mut c = Checker::new(2, 10_000);
        assert!(c.finality(0, 0, 10).is_empty());
        assert!(c.finality(1, 0, 12).is_empty());
        let v = c.finality(2, 0, 11);
        assert_eq!(
            v[0].kind,
            ViolationKind::Regression {
                peer: 0,
                from: 12,
                to: 11
            }
        );
        // Reported once while below the high-water mark (12), again after a new dip.
        assert!(c.finality(3, 0, 11).is_empty());
        assert!(c.finality(4, 0, 12).is_empty());
        assert_eq!(c.finality(5, 0, 10).len(), 1);
        assert!(c.finality(3, 1, 1).is_empty());
    }

    #[test]
    fn recovery_is_measured_from_the_heal_past_the_target() {
        let mut c = Checker::new(2, 5_000);
        c.finality(0, 0, 10);
        c.finality(0, 1, 4);
        c.healed(1_000, 0);
        assert!(c.tick(2_000, &[Some(11), Some(9)]).is_empty());
        // A peer that does not run (killed, frozen) is not waited for.
        assert!(c.tick(3_000, &[Some(11), None]).is_empty());
        assert_eq!(
            c.recoveries(),
            &[Recovery {
                fault: 0,
                recovery_ms: Some(2_000)
            }]
        );
    }

    #[test]
    fn no_recovery_within_the_bound_is_a_violation_and_still_measured() {
        let mut c = Checker::new(2, 5_000);
        c.finality(0, 0, 10);
        c.healed(0, 3);
        assert!(c.tick(5_000, &[Some(10), Some(10)]).is_empty());
        let v = c.tick(5_001, &[Some(11), Some(10)]);
        assert_eq!(
            v[0].kind,
            ViolationKind::NoRecovery {
                fault: 3,
                peers: vec![1],
                target: 10
            }
        );
        assert!(
            c.tick(6_000, &[Some(11), Some(10)]).is_empty(),
            "reported once"
        );
        assert!(c.tick(9_000, &[Some(12), Some(11)]).is_empty());
        assert_eq!(c.recoveries()[0].recovery_ms, Some(9_000));
    }

    #[test]
    fn a_heal_that_never_recovers_is_none_at_the_end() {
        let mut c = Checker::new(1, 5_000);
        c.finality(0, 0, 3);
        c.healed(0, 0);
        c.tick(1_000, &[Some(3)]);
        c.finish();
        assert_eq!(
            c.recoveries(),
            &[Recovery {
                fault: 0,
                recovery_ms: None
            }]
        );
    }

    #[test]
    fn a_cut_off_peer_in_consensus_after_the_grace_is_a_violation() {
        let mut c = Checker::new(2, 5_000);
        assert!(
            c.cut_off(1, 0, 1, 2_000, 5_000, true).is_empty(),
            "within grace"
        );
        assert!(c.cut_off(1, 0, 1, 6_000, 5_000, false).is_empty());
        assert_eq!(c.cut_off(1, 0, 1, 6_000, 5_000, true).len(), 1);
        assert!(
            c.cut_off(1, 0, 1, 7_000, 5_000, true).is_empty(),
            "once per fault"
        );
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[5, 1, 3], 0.5), 3);
        assert_eq!(quantile(&(1..=100).collect::<Vec<_>>(), 0.99), 99);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
