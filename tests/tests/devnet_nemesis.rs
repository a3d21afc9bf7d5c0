//! `cvx-devnet --netns --nemesis` on the real binaries (issue 16): every peer and its
//! signer in its own network namespace, links through the launcher's relays, a seeded
//! fault schedule, and the checker's verdict in the `--json` summary.
//!
//! Needs root (network namespaces); skips with a printed reason otherwise.
//!
//! The CI run: 4 peers, 60 s, 20 ms one-way latency, seed 3 with partitions, delay
//! spikes and loss only. Seed 3's schedule is an isolated peer (5.0–11.4 s) and a
//! halves split (26.4–35.5 s); the network must recover from both within the bound
//! (asserted; before the self-healing of issue 14 the halves split sometimes left it
//! standing). Kill -9 and SIGSTOP are not in this run's mix: their recovery is asserted on
//! their own, with tighter bounds, in `tests/tests/peer_heal.rs`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cvx_systest::devnet::{bin_dir, devnet_err, serial, tmp_dir, wait_ready, wait_until};

/// The recovery bound the CI run asserts (s): after each heal every running peer passes
/// the highest finality seen at the heal within this.
const BOUND_SECS: u64 = 30;

/// Why namespaces cannot be made here (None: they can).
fn no_namespaces() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: network namespaces need CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The devnet namespaces of launcher `pid` that exist now.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("cvxd{pid}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ci_nemesis_run_keeps_safety_and_recovers_within_the_bound() {
    if let Some(why) = no_namespaces() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = serial();
    let dir = tmp_dir("nemesis-ci");
    let child = Command::new(bin_dir().join("cvx-devnet"))
        .args([
            "--netns",
            "--peers",
            "4",
            "--latency",
            "20",
            "--nemesis",
            "3",
        ])
        .args(["--nemesis-faults", "partition,delay,loss"])
        .args(["--recovery-bound", &BOUND_SECS.to_string()])
        .args([
            "--duration",
            "60",
            "--rate",
            "100",
            "--accounts",
            "200",
            "--json",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cvx-devnet");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for cvx-devnet");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary is JSON ({e}); stderr: {stderr}"));
    let report = format!(
        "violations: {:#}\nfaults: {:#}\nnemesis.log:\n{}",
        v["violations"],
        v["faults"],
        std::fs::read_to_string(dir.join("nemesis.log")).unwrap_or_default()
    );
    // Safety: no fork, no regression.
    assert_eq!(v["forks"], 0, "{report}");
    assert_eq!(v["regressions"], 0, "{report}");
    assert!(
        v["positions_compared"].as_u64().unwrap() > 10,
        "the checker compared chains: {report}"
    );
    // The schedule of seed 3 ran: both partitions were injected and healed.
    assert_eq!(v["nemesis_seed"], 3);
    assert_eq!(v["faults_injected"], 2, "{report}");
    let labels: Vec<&str> = v["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["isolate p3", "halves 1,3"], "{report}");
    // Recovery: the isolated peer (a minority cut: the other three hold more than 2/3 of
    // the stake and go on) and, after the halves split (no side held more than 2/3, so
    // nobody finalized meanwhile), every peer must pass the highest finality seen at the
    // heal within the bound. Measured after issue 14: 0.6–1.6 s for the halves split.
    let faults = v["faults"].as_array().unwrap();
    for (f, what) in faults.iter().zip(["the isolated peer", "the halves split"]) {
        let ms = f["recovery_ms"].as_u64();
        assert!(
            ms.is_some_and(|ms| ms <= BOUND_SECS * 1000),
            "{what} recovered within {BOUND_SECS} s: {report}"
        );
        eprintln!("{what}: recovered in {} ms", ms.unwrap_or(0));
    }
    // Clients of the cut-off peers got NETWORK (they said they no longer take part), and
    // there is no violation at all.
    assert_eq!(v["no_network_error"], 0, "{report}");
    assert_eq!(v["violations"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(v["recovery_bound_ms"], BOUND_SECS * 1000);
    assert!(out.status.success(), "exit {:?}; {report}", out.status);
    for k in ["finality_ms_p50", "finality_ms_p99", "recovery_ms"] {
        assert!(!v[k].is_null(), "{k} in the summary");
    }
    // The picture: every fault window labelled.
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).expect("timeline.svg");
    assert!(svg.contains("#0 isolate p3") && svg.contains("#1 halves 1,3"));
    assert!(svg.contains("peer 3"));
    // Teardown: nothing of this launcher is left.
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_launchers_namespaces_and_processes_are_removed_by_the_next_run() {
    if let Some(why) = no_namespaces() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = serial();
    let dir = tmp_dir("nemesis-kill");
    let mut child = Command::new(bin_dir().join("cvx-devnet"))
        .args([
            "--netns",
            "--peers",
            "2",
            "--duration",
            "120",
            "--rate",
            "0",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(devnet_err(&dir)).expect("the devnet's stderr file"))
        .spawn()
        .expect("start cvx-devnet");
    let pid = child.id();
    wait_ready(&dir, &mut child, Duration::from_secs(90));
    let names = namespaces_of(pid);
    assert_eq!(names.len(), 3, "hub + 2 peers: {names:?}");
    let inside: Vec<u32> = names
        .iter()
        .filter(|n| !n.ends_with("-hub"))
        .flat_map(|n| {
            let o = Command::new("ip")
                .args(["netns", "pids", n])
                .output()
                .expect("ip netns pids");
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(inside.len() >= 4, "2 peers + 2 signers: {inside:?}");
    // kill -9: no teardown runs; the namespaces and the children stay behind.
    child.kill().expect("kill -9 the launcher");
    child.wait().expect("reap it");
    assert_eq!(namespaces_of(pid).len(), 3);
    // The next launcher (here its clean-up mode) removes them and what runs inside.
    let out = Command::new(bin_dir().join("cvx-devnet"))
        .arg("--netns-clean")
        .output()
        .expect("cvx-devnet --netns-clean");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("cvxd{pid}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(namespaces_of(pid).is_empty());
    wait_until(
        "the orphaned children are gone",
        Duration::from_secs(10),
        || {
            inside
                .iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists() || zombie(*p))
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zombie waits for its (dead) parent's reaper; it runs no more.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

#[test]
fn link_and_nemesis_flags_need_netns() {
    for flags in [
        &["--latency", "20"][..],
        &["--loss", "1"],
        &["--nemesis", "1"],
    ] {
        let out = Command::new(bin_dir().join("cvx-devnet"))
            .args(flags)
            .args(["--duration", "1"])
            .output()
            .expect("run cvx-devnet");
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("need --netns"));
    }
    let out = Command::new(bin_dir().join("cvx-devnet"))
        .args(["--netns", "--nemesis-faults", "partition,flood"])
        .output()
        .expect("run cvx-devnet");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flood"));
}
