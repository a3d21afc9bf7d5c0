//! Issue 13, acceptance "System test, signer restart", with real processes: in a 4-peer
//! devnet under load, peer-3's signer is killed with SIGKILL and kept down 5 s. Meanwhile
//! the peer reports `in_consensus: false`, its `cvx_peer_signer_up` gauge reads 0, and a
//! `cvx-peer submit` to it is answered NETWORK (naming the signer) within 1 s. Then the
//! signer is started again exactly as the devnet started it (the command line, the
//! environment and the working directory read from /proc before the kill), and the peer,
//! never restarted, takes part in consensus again within 3 s; its log holds a handful of
//! WARN lines about the signer, not one per request; all four agree at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cvx_systest::devnet::{
    api_of, bin_dir, devnet, http_get, listen_of, metric, serial, status, tmp_dir, wait_ready,
    wait_until,
};
use cvx_systest::proc::{Launch, launch_of, pid_of};

/// The pid of the `cvx-signer run` serving `config`.
fn signer_pid(config: &Path) -> u32 {
    pid_of("cvx-signer", config)
}

/// A transaction file peer-3 accepts at ingress (a sequence ahead of its account's).
fn probe_tx(dir: &Path, addr: &str) -> PathBuf {
    let key3 = std::fs::read_to_string(dir.join("peer-3/peer.toml"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("key"))
        .and_then(|l| l.split('"').nth(1).map(str::to_owned))
        .unwrap();
    let seed = std::fs::read_to_string(dir.join("accounts.seed")).unwrap();
    let acc: serde_json::Value = serde_json::from_slice(
        &Command::new(bin_dir().join("cvx-peer"))
            .args(["query", "account", "3", "--peer", addr])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let seq = acc["sequence"].as_u64().unwrap() + 500;
    let file = dir.join("probe.tx");
    assert!(
        Command::new(bin_dir().join("cvx-loadgen"))
            .args(["withdraw", "--seed", seed.trim(), "--account", "3"])
            .args(["--sequence", &seq.to_string(), "--peer-key", &key3])
            .arg("--genesis")
            .arg(dir.join("genesis.bin"))
            .arg("--out")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    file
}

fn in_consensus(addr: &str) -> Option<bool> {
    status(addr).and_then(|s| s["in_consensus"].as_bool())
}

fn finality(addr: &str) -> u64 {
    status(addr).map_or(0, |s| s["finality"].as_u64().unwrap_or(0))
}

fn signer_up(api: &str) -> u64 {
    metric(&http_get(api, "/metrics"), "cvx_peer_signer_up")
}

/// `cvx-peer submit` of `tx` to `addr`: it must be refused NETWORK (exit 10) within 1 s,
/// with a detail containing `why`.
fn submit_refused_network(tx: &Path, addr: &str, why: &str) {
    let t = Instant::now();
    let out = Command::new(bin_dir().join("cvx-peer"))
        .arg("submit")
        .arg(tx)
        .args(["--peer", addr, "--timeout", "15"])
        .output()
        .unwrap();
    let answered = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("submit while the signer is down: {answered:?}: {err}");
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(err.contains("NETWORK"), "{err}");
    assert!(err.contains(why), "{err}");
    assert!(answered < Duration::from_secs(1), "{answered:?}");
}

/// Start the signer as `launch` says, its stderr appended to the devnet's signer log.
fn start_signer(launch: &Launch, log: &Path) -> Child {
    launch.start(Path::new("/dev/null"), log)
}

/// How long after `since` the peer at `addr` takes part again with its finality past
/// `frozen` (polling every 50 ms; panics after 30 s).
fn rejoined(addr: &str, frozen: u64, since: Instant) -> Duration {
    while since.elapsed() < Duration::from_secs(30) {
        if let Some(s) = status(addr)
            && s["in_consensus"] == true
            && s["finality"].as_u64().unwrap() > frozen
        {
            return since.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("peer-3 does not take part again after its signer came back");
}

/// WARN lines about the signer in `log` past byte `from`, and the text.
fn signer_warns(log: &Path, from: usize) -> (Vec<String>, String) {
    let text = std::fs::read(log).unwrap();
    let text = String::from_utf8_lossy(&text[from..]).into_owned();
    let warns = text
        .lines()
        .filter(|l| l.contains("WARN") && l.to_lowercase().contains("signer"))
        .map(str::to_owned)
        .collect();
    (warns, text)
}

#[test]
fn peer_signer_killed_and_restarted_peer_answers_network_then_rejoins_by_itself() {
    let _one = serial();
    let dir = tmp_dir("signer-restart");
    let mut net = devnet(&dir, 180, 200, &[]);
    wait_ready(&dir, &mut net, Duration::from_secs(90));
    let addrs: Vec<String> = (0..4).map(|i| listen_of(&dir, i)).collect();
    wait_until("all four in consensus", Duration::from_secs(60), || {
        addrs.iter().all(|a| in_consensus(a) == Some(true))
    });
    let a3 = &addrs[3];
    let api3 = api_of(&dir, 3);
    let tx = probe_tx(&dir, a3);
    let signer_cfg = dir.join("signer-3/signer.toml");
    let signer_log = dir.join("signer-3/signer.log");
    let pid = signer_pid(&signer_cfg);
    let launch = launch_of(pid);
    let log = dir.join("peer-3/peer.log");
    let log_before = std::fs::read(&log).unwrap().len();
    assert_eq!(signer_up(&api3), 1);

    // kill -9, down for 5 s.
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    submit_refused_network(&tx, a3, "the peer's signer is unreachable (");
    let s3 = status(a3).unwrap();
    assert_eq!(s3["in_consensus"], false, "{s3}");
    assert_eq!(signer_up(&api3), 0);
    let frozen = s3["finality"].as_u64().unwrap();
    // The others (75% of the stake) keep finalizing meanwhile.
    let f0 = finality(&addrs[0]);
    wait_until("the others go on", Duration::from_secs(10), || {
        finality(&addrs[0]) > f0
    });
    std::thread::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed()));
    assert_eq!(in_consensus(a3), Some(false));

    // Restart the signer as the devnet started it; the peer is not touched.
    let restarted = Instant::now();
    let mut signer = start_signer(&launch, &signer_log);
    let took = rejoined(a3, frozen, restarted);
    println!("peer-3 in consensus, finality moving, {took:?} after the signer restart");
    assert!(took <= Duration::from_secs(3), "{took:?}");
    assert_eq!(signer_up(&api3), 1);
    wait_until("peer-3 catches up", Duration::from_secs(30), || {
        finality(a3) + 2 >= finality(&addrs[0])
    });

    // The log: one WARN when the session went down (a handful at most), not one per
    // request; an INFO when it came back.
    let (warns, text) = signer_warns(&log, log_before);
    println!("signer WARN lines during the outage: {warns:#?}");
    assert!(!warns.is_empty() && warns.len() <= 3, "{warns:#?}");
    assert!(text.contains("signer session up"), "{text}");

    // The breach button: a locked signer answers LOCKED; the peer is out of consensus
    // the same way, and back after the operator's unlock (stop, unlock, start).
    let log_before = std::fs::read(&log).unwrap().len();
    let ok = Command::new(bin_dir().join("cvx-signer"))
        .arg("lock")
        .arg("--config")
        .arg(&signer_cfg)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    wait_until("peer-3 sees the lock", Duration::from_secs(10), || {
        in_consensus(a3) == Some(false)
    });
    submit_refused_network(&tx, a3, "the peer's signer is locked");
    assert_eq!(signer_up(&api3), 0);
    let frozen = finality(a3);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(in_consensus(a3), Some(false));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(signer.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = signer.wait();
    let ok = Command::new(bin_dir().join("cvx-signer"))
        .arg("unlock")
        .arg("--config")
        .arg(&signer_cfg)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let restarted = Instant::now();
    let mut signer = start_signer(&launch, &signer_log);
    let took = rejoined(a3, frozen, restarted);
    println!("peer-3 in consensus again {took:?} after the unlocked signer started");
    assert!(took <= Duration::from_secs(3), "{took:?}");
    let (warns, _) = signer_warns(&log, log_before);
    println!("signer WARN lines while locked and restarted: {warns:#?}");
    assert!(warns.iter().any(|w| w.contains("locked")), "{warns:#?}");
    assert!(warns.len() <= 3, "{warns:#?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(net.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = net.wait_with_output().unwrap();
    let _ = signer.kill();
    let _ = signer.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    println!("{v}");
    assert_eq!(v["positions"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["agreement"]["agree"], 4, "{v}");
    assert_eq!(v["agreement"]["asked"], 4, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
