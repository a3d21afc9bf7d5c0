//! The `--netns` run: each peer's addresses, the relays in front of the peers, the
//! nemesis carrying out its schedule on the real processes, and the checker's sampling
//! through the peers' API. The launcher ([`crate::launch`]) calls [`Wan::tick`] from its
//! progress loop and [`Wan::finish`] before it stops the processes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use cvx_protocol::peer_wire::{Answer, Query, Status};

use crate::checker::{Checker, Violation, quantile};
use crate::children::Children;
use crate::host::io;
use crate::nemesis::{Fault, FaultKind, Kind, Partition, Plan};
use crate::netns::{HUB_ADDR, peer_addr};
use crate::relay::{LinkParams, Links};
use crate::timeline::{Timeline, Window};
use crate::{DevnetError, query};

/// Each peer's peer-wire port inside its namespace.
pub const PEER_PORT: u16 = 7000;
/// Peer I's relay listens on the hub at this port + I.
pub const RELAY_PORT: u16 = 7100;
/// A cut-off peer must say it no longer takes part (clients get NETWORK) within this.
pub const NETWORK_GRACE_MS: u64 = 10_000;
/// Default recovery bound (`--recovery-bound`).
pub const DEFAULT_RECOVERY_BOUND_SECS: u64 = 30;

/// What `--netns`, `--latency`, `--loss`, `--bandwidth` and `--nemesis` ask for.
#[derive(Clone, Debug)]
pub struct WanOptions {
    /// The namespaces (made by the caller before the runtime starts).
    pub hub: String,
    /// Peer i's namespace.
    pub peer_ns: Vec<String>,
    /// The shape of every link when no fault is active.
    pub base: LinkParams,
    /// The nemesis seed.
    pub nemesis: Option<u64>,
    /// The fault kinds it may use.
    pub kinds: Vec<Kind>,
    /// After a heal, every running peer must catch up within this (ms).
    pub recovery_bound_ms: u64,
}

/// Peer `i`'s peer-wire listen address.
#[must_use]
pub fn listen(i: usize) -> String {
    format!("{}:{PEER_PORT}", peer_addr(i))
}

/// Peer `i`'s API listen address.
#[must_use]
pub fn api_listen(i: usize) -> String {
    format!("{}:0", peer_addr(i))
}

/// Peer `i`'s registered host: its relay on the hub.
#[must_use]
pub fn registered(i: usize) -> String {
    format!("{HUB_ADDR}:{}", RELAY_PORT + u16::try_from(i).unwrap_or(0))
}

/// The nemesis and the checker of one run.
#[derive(Debug)]
pub(crate) struct Wan {
    opts: WanOptions,
    n: usize,
    links: Arc<Links>,
    seed: u64,
    faults: Vec<Fault>,
    next: usize,
    active: Option<usize>,
    checker: Checker,
    series: Vec<Vec<(u64, u64)>>,
    t0: Option<Instant>,
    common: u64,
    peer_bin: PathBuf,
    signer_bin: PathBuf,
    dir: PathBuf,
    log: Option<std::fs::File>,
    printed: usize,
}

impl Wan {
    /// A run of `n` peers lasting `run_ms` (the schedule fits in it).
    ///
    /// # Errors
    /// The nemesis log cannot be created.
    pub(crate) fn new(
        opts: WanOptions,
        n: usize,
        run_ms: u64,
        dir: &Path,
        peer_bin: PathBuf,
        signer_bin: PathBuf,
    ) -> Result<Self, DevnetError> {
        let seed = opts.nemesis.unwrap_or(0);
        let faults = match opts.nemesis {
            Some(seed) => crate::nemesis::schedule(
                seed,
                &Plan {
                    peers: n,
                    run_ms,
                    kinds: opts.kinds.clone(),
                    warmup_ms: 5_000,
                    quiet_ms: opts.recovery_bound_ms.clamp(5_000, 15_000),
                },
            ),
            None => Vec::new(),
        };
        let path = dir.join("nemesis.log");
        let mut log =
            std::fs::File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        let mut head = format!(
            "nemesis seed {seed}, {n} peers, faults {}, recovery bound {} ms\nschedule:\n",
            opts.kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(","),
            opts.recovery_bound_ms
        );
        for (i, f) in faults.iter().enumerate() {
            let _ = writeln!(head, "  #{i} {f}");
        }
        let _ = log.write_all(head.as_bytes());
        Ok(Self {
            links: Links::new(n, opts.base, seed ^ 0x5EED),
            checker: Checker::new(n, opts.recovery_bound_ms),
            opts,
            n,
            seed,
            faults,
            next: 0,
            active: None,
            series: vec![Vec::new(); n],
            t0: None,
            common: 0,
            peer_bin,
            signer_bin,
            dir: dir.to_path_buf(),
            log: Some(log),
            printed: 0,
        })
    }

    /// Start the relays on the hub (the caller's thread is in the hub namespace).
    ///
    /// # Errors
    /// A relay's port cannot be bound.
    pub(crate) async fn start_relays(&self) -> Result<(), DevnetError> {
        let sources: Arc<Vec<IpAddr>> =
            Arc::new((0..self.n).map(|i| IpAddr::V4(peer_addr(i))).collect());
        for i in 0..self.n {
            let addr = registered(i);
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(io(format!("binding relay {addr}")))?;
            let target = SocketAddr::new(IpAddr::V4(peer_addr(i)), PEER_PORT);
            tokio::spawn(crate::relay::serve(
                l,
                i,
                target,
                Arc::clone(&sources),
                Arc::clone(&self.links),
            ));
        }
        Ok(())
    }

    /// A command running `bin` in peer `i`'s namespace.
    #[must_use]
    pub(crate) fn command(&self, i: usize, bin: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"])
            .arg(self.opts.peer_ns.get(i).map_or("", String::as_str))
            .arg(bin);
        c
    }

    fn ms(&self) -> u64 {
        self.t0.map_or(0, |t| {
            u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }

    fn note(&mut self, line: &str) {
        let t = ms_s(self.ms());
        eprintln!("\ndevnet: nemesis [{t:.1}s] {line}");
        if let Some(l) = &mut self.log {
            let _ = writeln!(l, "[{t:.1}s] {line}");
        }
    }

    /// The schedule so far, for a violation report.
    fn so_far(&self) -> String {
        let upto = self
            .active
            .map_or(self.next, |a| a + 1)
            .min(self.faults.len());
        let mut s = format!(
            "seed {} (replay: --nemesis {} --nemesis-faults {}); faults so far:",
            self.seed,
            self.seed,
            self.opts
                .kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(",")
        );
        if upto == 0 {
            s.push_str(" none");
        }
        for (i, f) in self.faults[..upto].iter().enumerate() {
            let _ = write!(s, "\n    #{i} {f}");
        }
        s
    }

    fn report(&mut self) {
        let new: Vec<Violation> = self.checker.violations()[self.printed..].to_vec();
        self.printed = self.checker.violations().len();
        for v in new {
            let text = format!("VIOLATION {}\n  {}", v.describe(), self.so_far());
            self.note(&text);
        }
    }

    /// The network is up: the clock starts.
    pub(crate) fn started(&mut self) {
        self.t0 = Some(Instant::now());
    }

    fn inject(&mut self, idx: usize, children: &mut Children) {
        let f = self.faults[idx].clone();
        self.note(&format!("fault #{idx} {}", f.label()));
        let n = self.n;
        match &f.kind {
            FaultKind::Partition(p) => {
                for a in 0..n {
                    for b in 0..n {
                        if p.cuts(a, b, n) {
                            self.links.update(a, b, |l| l.cut = true);
                        }
                    }
                }
            }
            FaultKind::Delay { ms } => {
                let d = self.opts.base.delay_ms + ms;
                self.links.update_all(|l| l.delay_ms = d);
            }
            #[allow(clippy::cast_precision_loss)]
            FaultKind::Loss { pct } => {
                let p = *pct as f64;
                self.links.update_all(|l| l.loss_pct = p);
            }
            FaultKind::KillPeer { peer } => children.kill9(&format!("peer-{peer}")),
            FaultKind::KillSigner { peer } => children.kill9(&format!("signer-{peer}")),
            FaultKind::Freeze { peer } => {
                children.signal(&format!("peer-{peer}"), nix::sys::signal::Signal::SIGSTOP);
            }
        }
        self.active = Some(idx);
    }

    fn heal(&mut self, idx: usize, children: &mut Children) {
        let f = self.faults[idx].clone();
        let base = self.opts.base;
        match &f.kind {
            FaultKind::Partition(_) | FaultKind::Delay { .. } | FaultKind::Loss { .. } => {
                self.links.update_all(|l| *l = base);
            }
            FaultKind::KillPeer { peer } => {
                let r = self.respawn_peer(*peer);
                self.replace(children, &format!("peer-{peer}"), r);
                self.checker.restarted(*peer);
            }
            FaultKind::KillSigner { peer } => {
                let r = self.respawn_signer(*peer);
                self.replace(children, &format!("signer-{peer}"), r);
            }
            FaultKind::Freeze { peer } => {
                children.signal(&format!("peer-{peer}"), nix::sys::signal::Signal::SIGCONT);
            }
        }
        self.note(&format!("heal #{idx} {}", f.label()));
        self.checker.healed(self.ms(), idx);
        self.active = None;
    }

    fn replace(&mut self, children: &mut Children, name: &str, r: Result<Child, DevnetError>) {
        match r {
            Ok(c) => children.replace(name, c),
            Err(e) => self.note(&format!("could not restart {name}: {e}")),
        }
    }

    fn append(path: &Path) -> Result<std::fs::File, DevnetError> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(format!("opening {}", path.display())))
    }

    /// Restart peer `i` as its unit would (same binary, same config).
    fn respawn_peer(&self, i: usize) -> Result<Child, DevnetError> {
        let pd = self.dir.join(format!("peer-{i}"));
        let bin = self.peer_bin.clone();
        self.command(i, &bin)
            .arg("run")
            .arg("--config")
            .arg(pd.join("peer.toml"))
            .stdin(Stdio::null())
            .stdout(Self::append(&pd.join("peer.out"))?)
            .stderr(Self::append(&pd.join("peer.log"))?)
            .spawn()
            .map_err(io("restarting cvx-peer"))
    }

    /// Restart signer `i` as its unit would.
    fn respawn_signer(&self, i: usize) -> Result<Child, DevnetError> {
        let sd = self.dir.join(format!("signer-{i}"));
        let bin = self.signer_bin.clone();
        self.command(i, &bin)
            .arg("run")
            .arg("--config")
            .arg(sd.join("signer.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Self::append(&sd.join("signer.log"))?)
            .spawn()
            .map_err(io("restarting cvx-signer"))
    }

    /// The peer that does not run now (killed or frozen by the nemesis).
    fn stopped(&self) -> Option<usize> {
        self.active.and_then(|a| self.faults[a].stopped_peer())
    }

    /// One step: start or heal a fault when due, sample every peer, check.
    pub(crate) async fn tick(&mut self, children: &mut Children, addrs: &[String]) {
        if self.t0.is_none() {
            self.started();
        }
        if let Some(a) = self.active
            && self.ms() >= self.faults[a].end_ms()
        {
            self.heal(a, children);
            self.next = a + 1;
        }
        if self.active.is_none()
            && let Some(f) = self.faults.get(self.next)
            && self.ms() >= f.start_ms
        {
            self.inject(self.next, children);
        }
        let samples = sample(addrs, self.common).await;
        let t = self.ms();
        let mut running = vec![None; self.n];
        for (i, s) in samples.iter().enumerate() {
            if let Some((st, own, common)) = s {
                self.checker.finality(t, i, st.finality);
                self.series[i].push((t, st.finality));
                if let Some((pos, c)) = own {
                    self.checker.chain(t, i, *pos, c);
                }
                if let Some((pos, c)) = common {
                    self.checker.chain(t, i, *pos, c);
                }
            }
            if self.stopped() != Some(i) {
                running[i] = Some(s.as_ref().map_or(0, |s| s.0.finality));
            }
        }
        let fins: Vec<u64> = samples.iter().flatten().map(|s| s.0.finality).collect();
        if fins.len() == self.n {
            self.common = fins.iter().copied().min().unwrap_or(0);
        }
        // A peer that sees no more than 2/3 of the stake (equal stakes) must refuse
        // clients with NETWORK.
        if let Some(a) = self.active
            && let FaultKind::Partition(p) = &self.faults[a].kind
        {
            let p: Partition = p.clone();
            let since = t.saturating_sub(self.faults[a].start_ms);
            for (i, s) in samples.iter().enumerate() {
                if p.view(i, self.n).len() * 3 <= self.n * 2
                    && let Some((st, _, _)) = s
                {
                    self.checker
                        .cut_off(t, a, i, since, NETWORK_GRACE_MS, st.in_consensus);
                }
            }
        }
        self.checker.tick(t, &running);
        self.report();
    }

    /// Heal the active fault now (the run ends).
    pub(crate) fn heal_active(&mut self, children: &mut Children) {
        if let Some(a) = self.active {
            self.heal(a, children);
            self.next = a + 1;
        }
    }

    /// The end: heal what is active, compare recent positions across every peer once
    /// more, write the timeline; the `--json` fields.
    pub(crate) async fn finish(
        &mut self,
        children: &mut Children,
        addrs: &[String],
        finality_ms: (u64, u64),
    ) -> serde_json::Value {
        self.heal_active(children);
        // Final comparison: the lowest finality of all and the positions just below.
        let t = self.ms();
        let samples = sample(addrs, self.common).await;
        let low = samples
            .iter()
            .flatten()
            .map(|s| s.0.finality)
            .min()
            .unwrap_or(0);
        for pos in low.saturating_sub(8)..=low {
            for (i, a) in addrs.iter().enumerate() {
                if let Some(c) = chain_at(a, pos).await {
                    self.checker.chain(t, i, pos, &c);
                }
            }
        }
        for (i, s) in samples.iter().enumerate() {
            if let Some((st, _, _)) = s {
                self.checker.finality(t, i, st.finality);
                self.series[i].push((t, st.finality));
            }
        }
        self.checker.finish();
        self.report();
        let timeline = self.dir.join("timeline.svg");
        let svg = crate::timeline::render(&self.picture(t));
        if let Err(e) = std::fs::write(&timeline, svg) {
            self.note(&format!("could not write {}: {e}", timeline.display()));
        }
        self.json(finality_ms, &timeline)
    }

    fn picture(&self, run_ms: u64) -> Timeline {
        let b = self.opts.base;
        Timeline {
            title: format!(
                "cvx devnet --netns: {} peers, latency {} ms{} one way, loss {}%, nemesis seed {} ({})",
                self.n,
                b.delay_ms,
                if b.jitter_ms > 0 {
                    format!(" ±{}", b.jitter_ms)
                } else {
                    String::new()
                },
                b.loss_pct,
                self.opts
                    .nemesis
                    .map_or_else(|| "off".into(), |s| s.to_string()),
                self.opts
                    .kinds
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            series: self.series.clone(),
            windows: self.faults[..self.next.min(self.faults.len())]
                .iter()
                .enumerate()
                .map(|(i, f)| Window {
                    start_ms: f.start_ms,
                    end_ms: f.end_ms(),
                    label: format!("#{i} {}", f.label()),
                    kind: kind_name(&f.kind),
                })
                .collect(),
            marks: self
                .checker
                .violations()
                .iter()
                .map(|v| (v.at_ms, v.describe()))
                .collect(),
            run_ms,
        }
    }

    fn json(&self, finality_ms: (u64, u64), timeline: &Path) -> serde_json::Value {
        let rec = self.checker.recoveries();
        let faults: Vec<serde_json::Value> = self.faults[..self.next.min(self.faults.len())]
            .iter()
            .enumerate()
            .map(|(i, f)| {
                serde_json::json!({
                    "index": i,
                    "kind": kind_name(&f.kind),
                    "label": f.label(),
                    "start_ms": f.start_ms,
                    "end_ms": f.end_ms(),
                    "recovery_ms": rec.iter().find(|r| r.fault == i).and_then(|r| r.recovery_ms),
                })
            })
            .collect();
        let measured: Vec<u64> = rec.iter().filter_map(|r| r.recovery_ms).collect();
        let unrecovered = rec.iter().filter(|r| r.recovery_ms.is_none()).count();
        let b = self.opts.base;
        serde_json::json!({
            "netns": true,
            "latency_ms": b.delay_ms,
            "jitter_ms": b.jitter_ms,
            "loss_pct": b.loss_pct,
            "nemesis_seed": self.opts.nemesis,
            "nemesis_faults": self.opts.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "faults_injected": faults.len(),
            "faults": faults,
            "forks": self.checker.count("fork"),
            "regressions": self.checker.count("regression"),
            "no_recovery": self.checker.count("no_recovery"),
            "no_network_error": self.checker.count("no_network_error"),
            "violations": self.checker.violations().iter().map(|v| serde_json::json!({
                "kind": v.name(), "at_ms": v.at_ms, "text": v.describe(),
            })).collect::<Vec<_>>(),
            "recovery_bound_ms": self.checker.bound_ms(),
            "recovery_ms": rec.iter().map(|r| r.recovery_ms).collect::<Vec<_>>(),
            "max_recovery_ms": if unrecovered == 0 { measured.iter().copied().max() } else { None },
            "recovery_ms_p50": quantile(&measured, 0.5),
            "unrecovered": unrecovered,
            "positions_compared": self.checker.positions_compared(),
            "finality_ms_p50": finality_ms.0,
            "finality_ms_p99": finality_ms.1,
            "timeline": timeline.display().to_string(),
        })
    }
}

fn kind_name(k: &FaultKind) -> &'static str {
    match k {
        FaultKind::Partition(_) => "partition",
        FaultKind::Delay { .. } => "delay",
        FaultKind::Loss { .. } => "loss",
        FaultKind::KillPeer { .. } => "kill",
        FaultKind::KillSigner { .. } => "kill-signer",
        FaultKind::Freeze { .. } => "freeze",
    }
}

#[allow(clippy::cast_precision_loss)]
fn ms_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A peer's sample: its status, the chain value at its own finality and at `common`.
type Sample = (Status, Option<(u64, String)>, Option<(u64, String)>);

/// Every peer at once (a frozen peer costs one timeout, not one per peer).
async fn sample(addrs: &[String], common: u64) -> Vec<Option<Sample>> {
    let tasks: Vec<_> = addrs
        .iter()
        .cloned()
        .map(|a| {
            tokio::spawn(async move {
                let Some(Answer::Status(st)) = query::ask(&a, Query::Status).await else {
                    return None;
                };
                let own = chain_at(&a, st.finality).await.map(|c| (st.finality, c));
                let com = if common > 0 && common <= st.finality {
                    chain_at(&a, common).await.map(|c| (common, c))
                } else {
                    None
                };
                Some((st, own, com))
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    out
}

/// The chain value and state hash a peer finalized at `position` (hex), if it has them.
async fn chain_at(addr: &str, position: u64) -> Option<String> {
    match query::ask(addr, Query::SyncPoint(Some(position))).await {
        Some(Answer::SyncPoint(Some(sp))) if sp.position == position => {
            Some(format!("{}/{}", sp.chain.to_hex(), sp.state_hash.to_hex()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_point_at_the_relays() {
        assert_eq!(listen(0), "10.77.0.1:7000");
        assert_eq!(api_listen(2), "10.77.0.3:0");
        assert_eq!(registered(3), "10.77.0.254:7103");
        assert!(cvx_protocol::HostAddr::new(&registered(3)).is_ok());
    }
}
