//! Issue 14, acceptance on real processes (4-peer devnet under load from the loadgen,
//! sandbox on, as the devnet runs it): a peer and its signer recover from outages longer
//! than the signer's bridge window with no operator action (docs/operations.md,
//! "Recovery" and "Network partitions"):
//!
//! * one peer frozen (SIGSTOP) 30 s reaches the others' finality within 5 s of SIGCONT;
//! * a peer killed (SIGKILL) and kept down 60 s, restarted with the same config, data_dir
//!   and signer (no `cvx-signer init`), takes part again at the others' finality within
//!   10 s;
//! * two of four peers frozen 5 s, ten cycles: after each resume the network finalizes
//!   again within 5 s; all four agree at the end;
//! * the one case left to the operator: a signer whose config lost `genesis_file` cannot
//!   accept a certificate, and its peer, restarted far behind, exits 13 saying so.
//!
//! The bounds are the recovery bounds, not benchmarks; the measured times are
//! printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use cvx_systest::devnet::{devnet, listen_of, serial, status, tmp_dir, wait_ready, wait_until};
use cvx_systest::proc::{launch_of, pid_of};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Load offered by the devnet's loadgen, tx/s.
const RATE: u64 = 200;
/// The signer's bridge window (`policy::MAX_BRIDGE`): an outage the network outran by
/// more than this cannot be caught up from orders, only by a resync.
const BRIDGE: u64 = 1016;

fn finality(addr: &str) -> Option<u64> {
    status(addr).and_then(|s| s["finality"].as_u64())
}

fn in_consensus(addr: &str) -> bool {
    status(addr).is_some_and(|s| s["in_consensus"] == true)
}

fn peer_pid(config: &Path) -> u32 {
    pid_of("cvx-peer", config)
}

fn signal(pid: u32, s: Signal) {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), s).unwrap();
}

/// Start again the process `pid` is (as read from /proc before it is killed); returns a
/// closure that does it, its output appended to `out` and `err`.
fn relauncher(pid: u32, out: PathBuf, err: PathBuf) -> impl FnOnce() -> Child {
    let launch = launch_of(pid);
    move || launch.start(&out, &err)
}

/// A running devnet: its directory, its launcher and the peers' addresses.
struct Net {
    dir: PathBuf,
    child: Option<Child>,
    addrs: Vec<String>,
}

impl Net {
    fn start(name: &str, secs: u64) -> Self {
        let dir = tmp_dir(name);
        let mut child = devnet(&dir, secs, RATE, &[]);
        wait_ready(&dir, &mut child, Duration::from_secs(120));
        let addrs: Vec<String> = (0..4).map(|i| listen_of(&dir, i)).collect();
        wait_until("all four in consensus", Duration::from_secs(60), || {
            addrs.iter().all(|a| in_consensus(a))
        });
        // Under load for a while first: every peer has a store and a signer lock well
        // above genesis when the fault starts.
        wait_until(
            "all four past position 200",
            Duration::from_secs(60),
            || addrs.iter().all(|a| finality(a).is_some_and(|f| f >= 200)),
        );
        Self {
            dir,
            child: Some(child),
            addrs,
        }
    }

    fn config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("peer-{i}/peer.toml"))
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("peer-{i}/peer.log"))).unwrap_or_default()
    }

    /// The highest finality of the peers `among`.
    fn top(&self, among: &[usize]) -> u64 {
        among
            .iter()
            .filter_map(|i| finality(&self.addrs[*i]))
            .max()
            .unwrap_or(0)
    }

    /// Stop the launcher (SIGTERM: it stops its children and prints its summary); the
    /// summary.
    fn finish(mut self) -> serde_json::Value {
        let child = self.child.take().unwrap();
        signal(child.id(), Signal::SIGTERM);
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
        v
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(
                Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

/// How long after `since` peer `i` reaches finality `target` (polling every 50 ms;
/// `None` after `limit`).
fn reaches(net: &Net, i: usize, target: u64, since: Instant, limit: Duration) -> Option<Duration> {
    while since.elapsed() < limit {
        if finality(&net.addrs[i]).is_some_and(|f| f >= target) && in_consensus(&net.addrs[i]) {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Print the resync lines of a peer's log (what it did, and how long it took).
fn print_resync(log: &str) {
    for l in log.lines().filter(|l| {
        l.contains("resync")
            || l.contains("certificate")
            || l.contains("state sync")
            || l.contains("consensus participation")
    }) {
        println!("  {l}");
    }
}

fn assert_agree(v: &serde_json::Value) {
    println!("{v}");
    assert_eq!(v["positions"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["agreement"]["agree"], 4, "{v}");
    assert_eq!(v["agreement"]["asked"], 4, "{v}");
}

#[test]
fn a_peer_frozen_30_s_under_load_recovers_within_5_s_of_sigcont() {
    let _one = serial();
    let net = Net::start("heal-freeze", 300);
    let pid = peer_pid(&net.config(3));
    let before = finality(&net.addrs[3]).unwrap();
    signal(pid, Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(30));
    let others = net.top(&[0, 1, 2]);
    println!("peer-3 frozen at {before}; the others at {others} after 30 s");
    let resumed = Instant::now();
    signal(pid, Signal::SIGCONT);
    let took = reaches(&net, 3, others, resumed, Duration::from_secs(60));
    println!("peer-3 reached the others' finality {took:?} after SIGCONT");
    let log = net.log(3);
    print_resync(&log);
    let took = took.unwrap_or_else(|| panic!("peer-3 never recovered; its log:\n{log}"));
    if others > before + BRIDGE {
        assert!(log.contains("resynced from position"), "{log}");
    }
    assert!(took <= Duration::from_secs(5), "{took:?}");
    assert_agree(&net.finish());
}

#[test]
fn a_peer_killed_and_down_60_s_rejoins_within_10_s_with_the_same_signer() {
    let _one = serial();
    let net = Net::start("heal-kill", 300);
    let pid = peer_pid(&net.config(3));
    let pd = net.dir.join("peer-3");
    let relaunch = relauncher(pid, pd.join("peer.out"), pd.join("peer.log"));
    let before = finality(&net.addrs[3]).unwrap();
    signal(pid, Signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(60));
    let others = net.top(&[0, 1, 2]);
    println!("peer-3 killed at {before}; the others at {others} after 60 s");
    let log_from = net.log(3).len();
    let restarted = Instant::now();
    let mut peer = relaunch();
    let took = reaches(&net, 3, others, restarted, Duration::from_secs(60));
    println!("peer-3 took part at the others' finality {took:?} after its restart");
    let log = net.log(3)[log_from..].to_owned();
    print_resync(&log);
    if let Ok(Some(st)) = peer.try_wait() {
        panic!("the restarted peer exited ({st}); its log:\n{log}");
    }
    let took = took.unwrap_or_else(|| panic!("peer-3 never rejoined; its log:\n{log}"));
    if others > before + BRIDGE {
        assert!(log.contains("resynced from position"), "{log}");
    }
    assert!(took <= Duration::from_secs(10), "{took:?}");
    let v = net.finish();
    let _ = peer.kill();
    let _ = peer.wait();
    assert_agree(&v);
}

#[test]
fn two_of_four_frozen_5_s_ten_times_finalize_again_within_5_s_and_agree() {
    let _one = serial();
    let net = Net::start("heal-halves", 400);
    let pids = [peer_pid(&net.config(2)), peer_pid(&net.config(3))];
    let all = [0, 1, 2, 3];
    let mut times = Vec::new();
    let mut failed = Vec::new();
    for cycle in 0..10 {
        // The frozen peers cannot finalize while frozen: the highest finality before the
        // freeze bounds theirs.
        let before = net.top(&all);
        for p in pids {
            signal(p, Signal::SIGSTOP);
        }
        std::thread::sleep(Duration::from_secs(5));
        let at = net.top(&[0, 1]).max(before);
        for p in pids {
            signal(p, Signal::SIGCONT);
        }
        let resumed = Instant::now();
        // The network finalizes again: a position beyond the highest finalized while
        // half of the stake was frozen.
        let mut took = None;
        while resumed.elapsed() < Duration::from_secs(30) {
            if net.top(&all) > at {
                took = Some(resumed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!("cycle {cycle}: finalizing again {took:?} after the resume (from {at})");
        match took {
            Some(t) if t <= Duration::from_secs(5) => times.push(t),
            other => failed.push((cycle, at, other)),
        }
        // Everyone at the same finality again before the next cycle.
        let _ = reaches(
            &net,
            2,
            net.top(&[0, 1]),
            Instant::now(),
            Duration::from_secs(20),
        );
        let _ = reaches(
            &net,
            3,
            net.top(&[0, 1]),
            Instant::now(),
            Duration::from_secs(20),
        );
    }
    println!("recovery times: {times:?}; failed cycles: {failed:?}");
    if !failed.is_empty() {
        for i in all {
            println!("--- peer-{i} log tail ---");
            let log = net.log(i);
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            for l in tail.iter().rev() {
                println!("{l}");
            }
        }
    }
    assert!(
        failed.is_empty(),
        "cycles that did not finalize within 5 s: {failed:?}"
    );
    assert_agree(&net.finish());
}

#[test]
fn without_genesis_file_the_signer_takes_no_certificate_and_the_peer_exits_13_saying_so() {
    let _one = serial();
    let net = Net::start("heal-nogenesis", 300);
    let pd = net.dir.join("peer-3");
    let sd = net.dir.join("signer-3");
    let signer_cfg = sd.join("signer.toml");
    let ppid = peer_pid(&net.config(3));
    let spid = pid_of("cvx-signer", &signer_cfg);
    let relaunch_peer = relauncher(ppid, pd.join("peer.out"), pd.join("peer.log"));
    let relaunch_signer = relauncher(spid, sd.join("signer.log"), sd.join("signer.log"));
    let before = finality(&net.addrs[3]).unwrap();
    signal(ppid, Signal::SIGKILL);
    signal(spid, Signal::SIGKILL);
    // The operator's mistake: the signer's config loses `genesis_file`.
    let cfg = std::fs::read_to_string(&signer_cfg).unwrap();
    assert!(cfg.contains("genesis_file"), "the devnet writes it: {cfg}");
    let cut: String = cfg
        .lines()
        .filter(|l| !l.starts_with("genesis_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&signer_cfg, cut).unwrap();
    wait_until(
        "the network outruns the bridge",
        Duration::from_secs(120),
        || net.top(&[0, 1, 2]) > before + BRIDGE + 200,
    );
    let _ = std::fs::remove_file(sd.join("sock/signer.sock"));
    let mut signer = relaunch_signer();
    wait_until("the signer is back", Duration::from_secs(20), || {
        sd.join("sock/signer.sock").exists()
    });
    let log_from = net.log(3).len();
    let mut peer = relaunch_peer();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = peer.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "the peer neither recovered nor exited; its log:\n{}",
            &net.log(3)[log_from..]
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = net.log(3)[log_from..].to_owned();
    println!("the restarted peer exited {status}:");
    print_resync(&log);
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    println!("{last}");
    assert_eq!(status.code(), Some(13), "{log}");
    assert!(
        log.contains("no finality certificate could be had"),
        "{log}"
    );
    assert!(log.contains("CERT_TABLE_UNPROVEN"), "{log}");
    assert!(log.contains("genesis_file"), "{log}");
    assert!(!log.contains("too far to bridge"), "{log}");
    let _ = signer.kill();
    let _ = signer.wait();
    let v = net.finish();
    println!("{v}");
    assert!(
        v["agreement"]["agree"].as_u64() >= Some(3),
        "the three others agree: {v}"
    );
}
