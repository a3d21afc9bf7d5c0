//! The faults of one run, derived from its seed.

use super::{LONG_RECOVERY_BOUND_MS, RECOVERY_BOUND_MS, Rng};

/// Fault knobs of one run (derived from the seed by [`Faults::from_seed`]).
#[derive(Clone, Debug)]
pub struct Faults {
    /// Per-mille message loss.
    pub loss_per_mille: u64,
    /// Delay range in ms.
    pub delay_ms: (u64, u64),
    /// Per-mille chance of a long extra delay (reordering).
    pub spike_per_mille: u64,
    /// (start, duration) of partitions, with the group of each member.
    pub partitions: Vec<(u64, u64, Vec<u8>)>,
    /// (member, crash time, restart time) of honest crashes; no restart time = the peer
    /// stays down for the rest of the run (as a peer killed for good).
    pub crashes: Vec<(usize, u64, Option<u64>)>,
    /// (member, start, duration) of freezes of honest peers (as SIGSTOP): the peer gets no
    /// events; its signer still answers, and the answers reach it when it resumes.
    pub freezes: Vec<(usize, u64, u64)>,
    /// A long-outage run ([`Faults::long_from_seed`]): recovery is bounded by
    /// [`LONG_RECOVERY_BOUND_MS`], and a restart or a resume starts the recovery clock.
    pub long: bool,
}

impl Faults {
    /// Random faults for `n` members over `duration` ms, heals leaving time to recover.
    #[must_use]
    pub fn from_seed(rng: &mut Rng, n: usize, honest: &[bool], duration: u64) -> Self {
        let loss_per_mille = [0, 0, 20, 50, 100][rng.index(5)];
        let delay_ms = (1, rng.range(5, 40));
        let spike_per_mille = rng.range(0, 50);
        let mut partitions = Vec::new();
        let latest_heal = duration.saturating_sub(RECOVERY_BOUND_MS + 100);
        let mut t = rng.range(100, 250);
        for _ in 0..rng.range(0, 2) {
            let len = rng.range(100, 350);
            if t + len > latest_heal {
                break;
            }
            let groups: Vec<u8> = (0..n).map(|_| u8::from(rng.chance(500))).collect();
            partitions.push((t, len, groups));
            t += len + rng.range(50, 200);
        }
        let mut crashes = Vec::new();
        if rng.chance(500) {
            let candidates: Vec<usize> = (0..n).filter(|i| honest[*i]).collect();
            let who = candidates[rng.index(candidates.len())];
            let at = rng.range(100, duration / 2);
            let back = at + rng.range(100, 700);
            crashes.push((who, at, (!rng.chance(300)).then_some(back)));
        }
        Self {
            loss_per_mille,
            delay_ms,
            spike_per_mille,
            partitions,
            crashes,
            freezes: Vec::new(),
            long: false,
        }
    }

    /// One long outage for `n` members and the run's duration: a partition (1 or 2
    /// members cut off, or random halves), a freeze of 1 or 2 honest members, or an honest
    /// crash and restart from its last persisted state (its signer's watermark kept), each
    /// lasting 1–60 s (35% 1–3 s, 30% 3–10 s, 20% 10–30 s, 15% 30–60 s), and the run ends
    /// [`LONG_TAIL_MS`] after it.
    #[must_use]
    pub fn long_from_seed(rng: &mut Rng, n: usize, honest: &[bool]) -> (Self, u64) {
        let loss_per_mille = [0, 0, 20, 50][rng.index(4)];
        let delay_ms = (1, rng.range(5, 30));
        let spike_per_mille = rng.range(0, 20);
        let start = rng.range(300, 800);
        let len = match rng.range(0, 99) {
            0..35 => rng.range(1_000, 3_000),
            35..65 => rng.range(3_000, 10_000),
            65..85 => rng.range(10_000, 30_000),
            _ => rng.range(30_000, 60_000),
        };
        let honest_ix: Vec<usize> = (0..n).filter(|i| honest[*i]).collect();
        let mut f = Self {
            loss_per_mille,
            delay_ms,
            spike_per_mille,
            partitions: Vec::new(),
            crashes: Vec::new(),
            freezes: Vec::new(),
            long: true,
        };
        match rng.range(0, 2) {
            0 => {
                let groups: Vec<u8> = match rng.range(0, 2) {
                    0 => (0..n).map(|_| u8::from(rng.chance(500))).collect(),
                    k => {
                        let mut g = vec![0u8; n];
                        for _ in 0..k {
                            g[rng.index(n)] = 1;
                        }
                        g
                    }
                };
                f.partitions.push((start, len, groups));
            }
            1 => {
                let k = usize::try_from(rng.range(1, 2))
                    .unwrap_or(1)
                    .min(honest_ix.len());
                let mut who: Vec<usize> = Vec::new();
                while who.len() < k {
                    let i = honest_ix[rng.index(honest_ix.len())];
                    if !who.contains(&i) {
                        who.push(i);
                    }
                }
                f.freezes.extend(who.into_iter().map(|i| (i, start, len)));
            }
            _ => {
                let i = honest_ix[rng.index(honest_ix.len())];
                f.crashes.push((i, start, Some(start + len)));
            }
        }
        (f, start + len + LONG_TAIL_MS)
    }
}

/// A long-outage run goes on this long after its outage ends (the recovery bound and a
/// margin).
pub const LONG_TAIL_MS: u64 = LONG_RECOVERY_BOUND_MS + 500;
