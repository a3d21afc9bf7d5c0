//! System test of periodic store garbage collection in running, sandboxed peers: a devnet
//! with `--gc-interval 2` collects while consensus goes on (issue 6, storage management).
//! Helpers copied from peer_devnet.rs.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| cvx_systest::built_binaries(&["cvx-peer", "cvx-signer", "cvx-loadgen"]))
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvx-systest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn devnet(dir: &Path, secs: u64, rate: u64, gc: u64) -> Child {
    Command::new(bin_dir().join("cvx-peer"))
        .args(["devnet", "--peers", "4", "--json", "--accounts", "200"])
        .args(["--gc-interval", &gc.to_string()])
        .args(["--duration", &secs.to_string(), "--rate", &rate.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn listen_of(dir: &Path, i: usize) -> String {
    let cfg = std::fs::read_to_string(dir.join(format!("peer-{i}/peer.toml"))).unwrap();
    let line = cfg.lines().find(|l| l.starts_with("listen")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

fn wait_for_peer(dir: &Path) -> String {
    let t = Instant::now();
    loop {
        if dir.join("devnet.ready").exists() {
            let addr = listen_of(dir, 0);
            let st = Command::new(bin_dir().join("cvx-peer"))
                .args(["status", "--peer", &addr])
                .output()
                .unwrap();
            if st.status.success()
                && String::from_utf8_lossy(&st.stdout).contains("\"in_consensus\":true")
            {
                return addr;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "devnet did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn api_of(dir: &Path, i: usize) -> String {
    let out = std::fs::read_to_string(dir.join(format!("peer-{i}/peer.out"))).unwrap();
    let line = out.lines().find(|l| l.starts_with("api ")).unwrap();
    line[4..].trim().to_owned()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn finality(addr: &str) -> u64 {
    let out = Command::new(bin_dir().join("cvx-peer"))
        .args(["status", "--peer", addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status of {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["finality"].as_u64().unwrap()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Sandboxed devnet peers with `gc_interval_secs = 2`: every peer logs completed
/// collections, peer 0's metrics count them, finality advances across them, and all four
/// peers are still running and agree at the end (a missing syscall would kill a peer with
/// SIGSYS under its seccomp filter).
#[test]
fn peer_gc_runs_periodically_while_the_network_finalizes() {
    let dir = tmp_dir("gc");
    let child = devnet(&dir, 16, 300, 2);
    let addr = wait_for_peer(&dir);
    let fin_before = finality(&addr);
    let api = api_of(&dir, 0);
    let t = Instant::now();
    let metrics = loop {
        let m = http_get(&api, "/metrics");
        if metric(&m, "cvx_peer_gc_runs_total") >= 2 {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(12),
            "no two completed collections within 12 s: {m}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(metric(&metrics, "cvx_peer_store_bytes") > 0, "{metrics}");
    assert!(
        metrics.contains("# TYPE cvx_peer_gc_bytes_reclaimed_total counter"),
        "{metrics}"
    );
    assert!(
        finality(&addr) > fin_before,
        "finality advances across collections"
    );
    // The manual `cvx-peer gc` refuses a running peer's store with a clear message.
    let cfg = dir.join("peer-1/peer.toml");
    let gc = Command::new(bin_dir().join("cvx-peer"))
        .args(["gc", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&gc.stderr);
    assert_eq!(gc.status.code(), Some(5), "{err}");
    assert!(err.contains("the peer is running"), "{err}");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "devnet failed: {:?} {text}",
        out.status
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    println!("{metrics}\n{v}");
    let a = &v["agreement"];
    assert_eq!(
        a["asked"].as_u64(),
        Some(4),
        "all four peers still running: {v}"
    );
    assert_eq!(a["agree"], a["asked"], "the peers agree: {v}");
    for i in 0..4 {
        let log = std::fs::read_to_string(dir.join(format!("peer-{i}/peer.log"))).unwrap();
        assert!(
            log.contains("store garbage collection done"),
            "peer {i} completed a collection: {log}"
        );
        assert!(
            !log.contains("store garbage collection failed"),
            "peer {i}: {log}"
        );
    }
    // With the peers stopped, `cvx-peer gc` collects once.
    let gc = Command::new(bin_dir().join("cvx-peer"))
        .args(["gc", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&gc.stdout);
    assert!(
        gc.status.success() && said.starts_with("store collected: records"),
        "{said} {}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
