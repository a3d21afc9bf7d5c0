//! The nemesis: a seeded, replayable fault schedule (`--nemesis SEED`).
//!
//! Pure: [`schedule`] maps (seed, peers, run length, fault kinds) to the same list of
//! faults every time. The launcher carries each fault out at its start and heals it at
//! its end; the checker measures recovery after each heal. Faults never overlap: after
//! each heal comes a quiet window (at least the recovery bound) in which the network
//! must catch up before the next fault starts.

use std::fmt;

/// SplitMix64: small, fast, and the same on every platform (no dependency).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64;
        x / (1u64 << 53) as f64
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The kinds of fault `--nemesis-faults` can choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Network partitions (halves, one isolated, majority ring).
    Partition,
    /// Delay spikes of 50–300 ms on every link.
    Delay,
    /// Loss of 1–20 % on every link.
    Loss,
    /// kill -9 of a peer, restarted after 5 s (the unit's `RestartSec`).
    Kill,
    /// kill -9 of a signer, restarted after 2 s (the unit's `RestartSec`).
    KillSigner,
    /// SIGSTOP of a peer for 1–60 s, then SIGCONT.
    Freeze,
}

impl Kind {
    /// Every kind, in the order `--nemesis-faults` lists them.
    pub const ALL: [Self; 6] = [
        Self::Partition,
        Self::Delay,
        Self::Loss,
        Self::Kill,
        Self::KillSigner,
        Self::Freeze,
    ];

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::Delay => "delay",
            Self::Loss => "loss",
            Self::Kill => "kill",
            Self::KillSigner => "kill-signer",
            Self::Freeze => "freeze",
        }
    }

    /// Parse a comma-separated list (`partition,delay,loss`); `all` is every kind.
    ///
    /// # Errors
    /// The unknown name and the known ones.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                out.extend(Self::ALL);
                continue;
            }
            let k = Self::ALL
                .into_iter()
                .find(|k| k.name() == part)
                .ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "unknown fault kind {part:?}: use a comma-separated list of {} (or all)",
                        names.join(", ")
                    )
                })?;
            out.push(k);
        }
        out.dedup();
        if out.is_empty() {
            return Err("no fault kind given: use e.g. partition,delay,loss or all".into());
        }
        Ok(out)
    }
}

/// A partition: which directed links are cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// The peers in `side` on one side, the rest on the other.
    Halves {
        /// One side (the other is the complement).
        side: Vec<usize>,
    },
    /// One peer cut off from every other.
    Isolate {
        /// The peer.
        peer: usize,
    },
    /// Peers on a ring (this order): each sees only its ring neighbours within
    /// `radius`, which with itself are a majority, and no two peers see the same one.
    MajorityRing {
        /// The ring order.
        ring: Vec<usize>,
        /// How far each peer sees along the ring.
        radius: usize,
    },
}

impl Partition {
    /// Whether the link between `a` and `b` (both directions) is cut.
    #[must_use]
    pub fn cuts(&self, a: usize, b: usize, peers: usize) -> bool {
        if a == b {
            return false;
        }
        match self {
            Self::Halves { side } => side.contains(&a) != side.contains(&b),
            Self::Isolate { peer } => a == *peer || b == *peer,
            Self::MajorityRing { ring, radius } => {
                let pa = ring.iter().position(|x| *x == a);
                let pb = ring.iter().position(|x| *x == b);
                match (pa, pb) {
                    (Some(pa), Some(pb)) => {
                        let d = pa.abs_diff(pb);
                        d.min(peers - d) > *radius
                    }
                    _ => false,
                }
            }
        }
    }

    /// The peers `peer` still sees (itself included).
    #[must_use]
    pub fn view(&self, peer: usize, peers: usize) -> Vec<usize> {
        (0..peers).filter(|q| !self.cuts(peer, *q, peers)).collect()
    }
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Cut links.
    Partition(Partition),
    /// Extra one-way delay on every link (ms).
    Delay {
        /// Added to the base delay, each way.
        ms: u64,
    },
    /// Loss on every link (percent).
    Loss {
        /// Percent of chunks lost.
        pct: u64,
    },
    /// kill -9 of a peer; restarted at the fault's end.
    KillPeer {
        /// The peer.
        peer: usize,
    },
    /// kill -9 of a peer's signer; restarted at the fault's end.
    KillSigner {
        /// The peer whose signer.
        peer: usize,
    },
    /// SIGSTOP of a peer; SIGCONT at the fault's end.
    Freeze {
        /// The peer.
        peer: usize,
    },
}

/// One fault in the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Start, ms after the network is up.
    pub start_ms: u64,
    /// How long it lasts (the heal is at `start_ms + duration_ms`).
    pub duration_ms: u64,
    /// What it does.
    pub kind: FaultKind,
}

impl Fault {
    /// When it heals.
    #[must_use]
    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.duration_ms
    }

    /// The peers that do not run (killed or frozen) while it lasts.
    #[must_use]
    pub fn stopped_peer(&self) -> Option<usize> {
        match self.kind {
            FaultKind::KillPeer { peer } | FaultKind::Freeze { peer } => Some(peer),
            _ => None,
        }
    }

    /// A short label for the timeline and the reports (`halves 0,2|1,3`, `freeze p1 12s`).
    #[must_use]
    pub fn label(&self) -> String {
        match &self.kind {
            FaultKind::Partition(Partition::Halves { side }) => {
                format!("halves {}", join(side))
            }
            FaultKind::Partition(Partition::Isolate { peer }) => format!("isolate p{peer}"),
            FaultKind::Partition(Partition::MajorityRing { ring, .. }) => {
                format!("ring {}", join(ring))
            }
            FaultKind::Delay { ms } => format!("delay +{ms}ms"),
            FaultKind::Loss { pct } => format!("loss {pct}%"),
            FaultKind::KillPeer { peer } => format!("kill -9 p{peer}"),
            FaultKind::KillSigner { peer } => format!("kill -9 signer{peer}"),
            FaultKind::Freeze { peer } => format!("freeze p{peer}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>7.1}s..{:>7.1}s {}",
            ms_to_s(self.start_ms),
            ms_to_s(self.end_ms()),
            self.label()
        )
    }
}

#[allow(clippy::cast_precision_loss)]
fn ms_to_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// How the schedule is laid out.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Peers in the network.
    pub peers: usize,
    /// Length of the run after the network is up (ms).
    pub run_ms: u64,
    /// The kinds to choose from.
    pub kinds: Vec<Kind>,
    /// No fault before this (ms): the network warms up.
    pub warmup_ms: u64,
    /// Quiet time after each heal (ms): at least the recovery bound.
    pub quiet_ms: u64,
}

/// The fault schedule of `seed`: the same seed and plan give the same faults.
#[must_use]
pub fn schedule(seed: u64, plan: &Plan) -> Vec<Fault> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let n = plan.peers;
    if n < 2 || plan.kinds.is_empty() {
        return out;
    }
    let mut t = plan.warmup_ms;
    loop {
        let kind = plan.kinds[rng.below(plan.kinds.len())];
        let (duration_ms, fk) = match kind {
            Kind::Partition => (
                rng.range(2_000, 15_000),
                FaultKind::Partition(partition(&mut rng, n)),
            ),
            Kind::Delay => (
                rng.range(3_000, 15_000),
                FaultKind::Delay {
                    ms: rng.range(50, 300),
                },
            ),
            Kind::Loss => (
                rng.range(3_000, 15_000),
                FaultKind::Loss {
                    pct: rng.range(1, 20),
                },
            ),
            // The units restart a crashed peer after 5 s and a signer after 2 s.
            Kind::Kill => (5_000, FaultKind::KillPeer { peer: rng.below(n) }),
            Kind::KillSigner => (2_000, FaultKind::KillSigner { peer: rng.below(n) }),
            Kind::Freeze => (
                rng.range(1_000, 60_000),
                FaultKind::Freeze { peer: rng.below(n) },
            ),
        };
        if t + duration_ms + plan.quiet_ms > plan.run_ms {
            break;
        }
        out.push(Fault {
            start_ms: t,
            duration_ms,
            kind: fk,
        });
        t += duration_ms + plan.quiet_ms;
    }
    out
}

fn partition(rng: &mut Rng, n: usize) -> Partition {
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    match rng.below(3) {
        0 => {
            let mut side: Vec<usize> = order[..n / 2].to_vec();
            side.sort_unstable();
            Partition::Halves { side }
        }
        1 => Partition::Isolate { peer: order[0] },
        _ => {
            // Each peer sees itself and `radius` ring neighbours each way: the smallest
            // radius for which that is a majority.
            let majority = n / 2 + 1;
            let radius = majority / 2;
            Partition::MajorityRing {
                ring: order,
                radius,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(peers: usize, kinds: Vec<Kind>) -> Plan {
        Plan {
            peers,
            run_ms: 600_000,
            kinds,
            warmup_ms: 5_000,
            quiet_ms: 20_000,
        }
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let p = plan(4, Kind::ALL.to_vec());
        assert_eq!(schedule(7, &p), schedule(7, &p));
        assert_ne!(schedule(7, &p), schedule(8, &p));
        assert!(!schedule(7, &p).is_empty());
    }

    #[test]
    fn faults_do_not_overlap_and_fit_the_run() {
        for seed in 0..50 {
            let p = plan(5, Kind::ALL.to_vec());
            let s = schedule(seed, &p);
            for w in s.windows(2) {
                assert!(w[0].end_ms() + p.quiet_ms <= w[1].start_ms, "{seed}: {w:?}");
            }
            for f in &s {
                assert!(f.start_ms >= p.warmup_ms);
                assert!(f.end_ms() + p.quiet_ms <= p.run_ms);
            }
        }
    }

    #[test]
    fn fault_ranges_are_the_documented_ones() {
        let p = plan(4, Kind::ALL.to_vec());
        for seed in 0..200 {
            for f in schedule(seed, &p) {
                match f.kind {
                    FaultKind::Delay { ms } => assert!((50..=300).contains(&ms)),
                    FaultKind::Loss { pct } => assert!((1..=20).contains(&pct)),
                    FaultKind::Freeze { peer } => {
                        assert!(peer < 4);
                        assert!((1_000..=60_000).contains(&f.duration_ms));
                    }
                    FaultKind::KillPeer { .. } => assert_eq!(f.duration_ms, 5_000),
                    FaultKind::KillSigner { .. } => assert_eq!(f.duration_ms, 2_000),
                    FaultKind::Partition(_) => {}
                }
            }
        }
    }

    #[test]
    fn only_the_chosen_kinds() {
        let p = plan(4, vec![Kind::Delay, Kind::Loss]);
        for seed in 0..50 {
            for f in schedule(seed, &p) {
                assert!(matches!(
                    f.kind,
                    FaultKind::Delay { .. } | FaultKind::Loss { .. }
                ));
            }
        }
    }

    #[test]
    fn majority_ring_views_are_distinct_majorities() {
        for n in [4usize, 5, 7, 9] {
            let mut rng = Rng::new(n as u64);
            let mut ring: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut ring);
            let majority = n / 2 + 1;
            let p = Partition::MajorityRing {
                ring,
                radius: majority / 2,
            };
            let views: Vec<Vec<usize>> = (0..n).map(|i| p.view(i, n)).collect();
            for (i, v) in views.iter().enumerate() {
                assert!(v.len() >= majority, "n={n} peer {i} sees {v:?}");
                assert!(v.len() < n, "n={n}: peer {i} sees everyone: no partition");
                for w in &views[i + 1..] {
                    assert_ne!(v, w, "n={n}: two peers see the same majority");
                }
            }
        }
    }

    #[test]
    fn halves_and_isolate_cut_the_right_links() {
        let h = Partition::Halves { side: vec![0, 2] };
        assert!(h.cuts(0, 1, 4) && h.cuts(3, 2, 4));
        assert!(!h.cuts(0, 2, 4) && !h.cuts(1, 3, 4));
        let i = Partition::Isolate { peer: 3 };
        assert_eq!(i.view(3, 4), vec![3]);
        assert_eq!(i.view(0, 4), vec![0, 1, 2]);
    }

    #[test]
    fn kinds_parse_strictly() {
        assert_eq!(
            Kind::parse_list("partition,loss").unwrap(),
            vec![Kind::Partition, Kind::Loss]
        );
        assert_eq!(Kind::parse_list("all").unwrap().len(), 6);
        assert!(
            Kind::parse_list("partition,flood")
                .unwrap_err()
                .contains("flood")
        );
        assert!(Kind::parse_list("").is_err());
    }
}
