//! What a run measured, and the tally over many seeds.

use std::collections::BTreeMap;

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Members, byzantine members.
    pub members: (usize, usize),
    /// Highest finality reached by an honest peer.
    pub max_finality: u64,
    /// Lowest finality among honest peers at the end.
    pub min_finality: u64,
    /// Transactions applied.
    pub applied_txs: u64,
    /// Recovery times after heals (ms).
    pub recoveries: Vec<u64>,
    /// Signer refusals seen by honest peers.
    pub refusals: u64,
    /// Orders dropped by honest peers (byzantine garbage and stale copies).
    pub dropped: u64,
    /// Messages delivered.
    pub messages: u64,
    /// A long-outage run (its recoveries are bounded by `LONG_RECOVERY_BOUND_MS`).
    pub long: bool,
    /// `Action::Resync` emitted by honest peers.
    pub resync_asked: u64,
    /// Resyncs completed (certificate accepted, state restored).
    pub resyncs: u64,
    /// Forged certificates (from byzantine members) the honest signers refused, by code.
    pub forged_refused: BTreeMap<&'static str, u64>,
    /// Honest certificates a signer refused (e.g. below its lock), by code.
    pub honest_refused: BTreeMap<&'static str, u64>,
}

/// Summary statistics of recovery times (ms): (count, p50, p90, p99, max).
#[must_use]
pub fn distribution(mut v: Vec<u64>) -> (usize, u64, u64, u64, u64) {
    if v.is_empty() {
        return (0, 0, 0, 0, 0);
    }
    v.sort_unstable();
    let q = |p: usize| v[(v.len() - 1) * p / 100];
    (v.len(), q(50), q(90), q(99), v[v.len() - 1])
}

/// Tally of a multi-seed run.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Seeds run.
    pub seeds: u64,
    /// Forks seen (always 0 when the run passed).
    pub forks: u64,
    /// Finality regressions (always 0 when the run passed).
    pub regressions: u64,
    /// All recovery times.
    pub recoveries: Vec<u64>,
    /// Sum of the highest finality per seed.
    pub blocks: u64,
    /// Transactions applied.
    pub txs: u64,
    /// Byzantine members over all seeds.
    pub byzantine: u64,
    /// Signer refusals.
    pub refusals: u64,
    /// Seeds that had at least one byzantine member.
    pub byz_seeds: u64,
    /// Long-outage seeds.
    pub long_seeds: u64,
    /// Recovery times of long-outage seeds.
    pub long_recoveries: Vec<u64>,
    /// `Action::Resync` emitted.
    pub resync_asked: u64,
    /// Resyncs completed.
    pub resyncs: u64,
    /// Forged certificates refused, by code.
    pub forged_refused: BTreeMap<&'static str, u64>,
    /// Honest certificates refused, by code.
    pub honest_refused: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Add one report.
    pub fn add(&mut self, r: &Report) {
        self.seeds += 1;
        if r.long {
            self.long_seeds += 1;
            self.long_recoveries.extend_from_slice(&r.recoveries);
        } else {
            self.recoveries.extend_from_slice(&r.recoveries);
        }
        self.resync_asked += r.resync_asked;
        self.resyncs += r.resyncs;
        for (k, v) in &r.forged_refused {
            *self.forged_refused.entry(k).or_default() += v;
        }
        for (k, v) in &r.honest_refused {
            *self.honest_refused.entry(k).or_default() += v;
        }
        self.blocks += r.max_finality;
        self.txs += r.applied_txs;
        self.byzantine += r.members.1 as u64;
        self.byz_seeds += u64::from(r.members.1 > 0);
        self.refusals += r.refusals;
    }

    /// Add another tally (of another thread).
    pub fn merge(&mut self, t: Self) {
        self.seeds += t.seeds;
        self.forks += t.forks;
        self.regressions += t.regressions;
        self.recoveries.extend(t.recoveries);
        self.blocks += t.blocks;
        self.txs += t.txs;
        self.byzantine += t.byzantine;
        self.refusals += t.refusals;
        self.byz_seeds += t.byz_seeds;
        self.long_seeds += t.long_seeds;
        self.long_recoveries.extend(t.long_recoveries);
        self.resync_asked += t.resync_asked;
        self.resyncs += t.resyncs;
        for (k, v) in t.forged_refused {
            *self.forged_refused.entry(k).or_default() += v;
        }
        for (k, v) in t.honest_refused {
            *self.honest_refused.entry(k).or_default() += v;
        }
    }
}
