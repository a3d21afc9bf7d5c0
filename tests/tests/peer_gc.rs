//! System test of periodic store garbage collection in running, sandboxed peers: a devnet
//! with `--gc-interval 2` collects while consensus goes on (issue 6, storage management).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use cvx_systest::devnet::{
    api_of, bin_dir, devnet, finality, http_get, metric, tmp_dir, wait_for_peer,
};
use std::process::Command;
use std::time::{Duration, Instant};

/// Sandboxed devnet peers with `gc_interval_secs = 2`: every peer logs completed
/// collections, peer 0's metrics count them, finality advances across them, and all four
/// peers are still running and agree at the end (a missing syscall would kill a peer with
/// SIGSYS under its seccomp filter).
#[test]
fn peer_gc_runs_periodically_while_the_network_finalizes() {
    let dir = tmp_dir("gc");
    let mut child = devnet(&dir, 16, 300, &["--gc-interval", "2"]);
    let addr = wait_for_peer(&dir, &mut child);
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
