//! Helpers for the system tests that run `cvx-devnet` and talk to its peers
//! (`tests/tests/peer_*.rs`). Test support: failures panic with what went wrong.
#![allow(clippy::expect_used, clippy::missing_panics_doc)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Devnets use both cores: the tests of one file take this to run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Build (once) and locate `cvx-devnet`, `cvx-peer`, `cvx-signer` and `cvx-loadgen`.
#[must_use]
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::built_binaries(&["cvx-devnet", "cvx-peer", "cvx-signer", "cvx-loadgen"])
    })
}

/// A fresh (removed) directory under the temp dir, unique to this process.
#[must_use]
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvx-systest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(devnet_err(&d));
    d
}

/// Where [`devnet`] writes the launcher's stderr: beside `dir`, which the launcher makes.
#[must_use]
pub fn devnet_err(dir: &Path) -> PathBuf {
    dir.with_extension("err")
}

/// Start a 4-peer `cvx-devnet --json` in `dir` for `secs` at `rate` tx/s, with
/// `extra` flags; its summary comes from [`summary`].
#[must_use]
pub fn devnet(dir: &Path, secs: u64, rate: u64, extra: &[&str]) -> Child {
    Command::new(bin_dir().join("cvx-devnet"))
        .args(["--peers", "4", "--json", "--accounts", "200"])
        .args(extra)
        .args(["--duration", &secs.to_string(), "--rate", &rate.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(devnet_err(dir)).expect("create the devnet's stderr file"))
        .spawn()
        .expect("start cvx-devnet")
}

/// Wait until the devnet in `dir` is up (its `devnet.ready`: every peer takes part). If
/// the launcher exits first, or `limit` passes, panic with what it and its children said
/// ([`start_report`]), so that a start that failed names its cause.
pub fn wait_ready(dir: &Path, devnet: &mut Child, limit: Duration) {
    let t = Instant::now();
    while !dir.join("devnet.ready").exists() {
        if let Ok(Some(status)) = devnet.try_wait() {
            panic!(
                "cvx-devnet exited ({status}) before it was ready\n{}",
                start_report(dir)
            );
        }
        assert!(
            t.elapsed() < limit,
            "timed out: the devnet was not ready within {} s\n{}",
            limit.as_secs(),
            start_report(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a devnet that did not start left behind: the launcher's stderr (when [`devnet`]
/// started it) and the last lines of every signer's and peer's log.
#[must_use]
pub fn start_report(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(err) = std::fs::read_to_string(devnet_err(dir)) {
        // Its progress lines end in \r; the error, if any, is the last line.
        let tail: String = err
            .chars()
            .rev()
            .take(2_000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        out += &format!("cvx-devnet stderr (end): {}\n", tail.replace('\r', "\n"));
    }
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            [p.join("signer.log"), p.join("peer.log")]
        })
        .filter(|p| p.exists())
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!("--- {} (last lines)\n", log.display());
        for l in &lines[lines.len().saturating_sub(8)..] {
            out += &format!("{}\n", l.chars().take(400).collect::<String>());
        }
    }
    out
}

/// Wait for the devnet to end and parse its `--json` summary.
#[must_use]
pub fn summary(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait for the devnet");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "devnet failed: {:?} {text}",
        out.status
    );
    serde_json::from_str(text.trim()).expect("the devnet summary is JSON")
}

/// Peer `i`'s listen address, from its config.
#[must_use]
pub fn listen_of(dir: &Path, i: usize) -> String {
    let cfg = std::fs::read_to_string(dir.join(format!("peer-{i}/peer.toml")))
        .expect("the peer's config");
    let line = cfg
        .lines()
        .find(|l| l.starts_with("listen"))
        .expect("a listen line");
    line.split('"').nth(1).expect("a quoted address").to_owned()
}

/// The HTTP API address a peer printed to `out_file` (`api ADDR`); empty until it has.
#[must_use]
pub fn api_in(out_file: &Path) -> String {
    let out = std::fs::read_to_string(out_file).unwrap_or_default();
    out.lines()
        .find_map(|l| l.strip_prefix("api "))
        .map(|a| a.trim().to_owned())
        .unwrap_or_default()
}

/// Devnet peer `i`'s HTTP API address.
#[must_use]
pub fn api_of(dir: &Path, i: usize) -> String {
    api_in(&dir.join(format!("peer-{i}/peer.out")))
}

/// One HTTP GET; the whole response.
#[must_use]
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the peer's API");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    text
}

/// A Prometheus counter or gauge by its full name.
#[must_use]
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .trim()
        .parse()
        .expect("a whole number")
}

/// Run `cvx-peer ARGS` and parse its JSON output; `None` when it fails.
#[must_use]
pub fn cvx_peer(args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(bin_dir().join("cvx-peer"))
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `cvx-peer status --peer ADDR`; `None` when the peer does not answer.
#[must_use]
pub fn status(addr: &str) -> Option<serde_json::Value> {
    cvx_peer(&["status", "--peer", addr])
}

/// A peer's finality point; 0 while it does not answer.
#[must_use]
pub fn finality(addr: &str) -> u64 {
    status(addr).map_or(0, |v| v["finality"].as_u64().unwrap_or(0))
}

/// Poll `f` every 200 ms until it holds; panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the devnet is ready ([`wait_ready`]) and peer 0 takes part in consensus;
/// its address.
#[must_use]
pub fn wait_for_peer(dir: &Path, devnet: &mut Child) -> String {
    wait_ready(dir, devnet, Duration::from_secs(60));
    let addr = listen_of(dir, 0);
    wait_until(
        "peer 0 takes part in consensus",
        Duration::from_secs(60),
        || status(&addr).is_some_and(|v| v["in_consensus"] == true),
    );
    addr
}

/// The seed the devnet in `dir` derived its demo accounts' throwaway keys from (its
/// `accounts.seed`; `cvx_loadgen::Keypair::derive("devnet-account", seed, i)` is account
/// `i`'s key).
///
/// # Panics
/// When the file is missing or not a number.
#[must_use]
pub fn account_seed(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("accounts.seed"))
        .expect("the devnet's accounts.seed")
        .trim()
        .parse()
        .expect("accounts.seed holds a number")
}
