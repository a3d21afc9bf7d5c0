//! The breach button when its first step fails (issue 13, deliver 3): `cvx-peer halt` stops
//! the peer even when the signer cannot be locked, and its exit code names the step that
//! failed (docs/operations.md, Security breach; 14 = the signer is NOT locked, the peer
//! was stopped).
//!
//! The devnet runs every process as this test's uid, which is the uid its signers allow:
//! the starving client below is "a client of the peer's uid", what a compromised peer is.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cvx_systest::devnet::{bin_dir, devnet, serial, summary, tmp_dir, wait_for_peer, wait_until};

/// Peer `i`'s pid, from its pid file.
fn peer_pid(dir: &Path, i: usize) -> i32 {
    std::fs::read_to_string(dir.join(format!("peer-{i}/data/cvx-peer.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The pid of the `cvx-signer run` of signer `i` of this devnet.
fn signer_pid(dir: &Path, i: usize) -> Option<i32> {
    let cfg = dir.join(format!("signer-{i}/signer.toml"));
    let cfg = cfg.to_string_lossy();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "run") && args.iter().any(|a| a == cfg.as_ref())).then_some(pid)
    })
}

/// Is `pid` running (a zombie is not)?
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// `cvx-peer halt` for peer `i`, bounded (a halt that hangs fails the test).
fn halt(dir: &Path, i: usize) -> Output {
    let mut child = Command::new(bin_dir().join("cvx-peer"))
        .arg("halt")
        .arg("--config")
        .arg(dir.join(format!("peer-{i}/peer.toml")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("cvx-peer halt did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn peer_halt_stops_the_peer_when_the_signer_cannot_be_locked() {
    let _g = serial();
    let dir = tmp_dir("halt-starved");
    let mut child = devnet(&dir, 40, 200, &[]);
    let _ = wait_for_peer(&dir, &mut child);

    // 1. A client of the peer's uid holds every connection slot of peer 3's signer (16 by
    //    default, one of them the peer's own) and never reads or writes.
    let sock = dir.join("signer-3/sock/signer.sock");
    let hogs: Vec<UnixStream> = (0..24)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    assert!(hogs.len() >= 16, "only {} connections", hogs.len());
    let pid3 = peer_pid(&dir, 3);
    assert!(alive(pid3));
    let out = halt(&dir, 3);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    println!("halt under starvation: {:?}\n{so}{se}", out.status.code());
    wait_until("peer 3 stops", Duration::from_secs(10), || !alive(pid3));
    assert!(
        so.contains(&format!("peer (pid {pid3}) stopped")),
        "{so}{se}"
    );
    // The exit code names what failed: 14 while the lock is starved out; 0 once the
    // signer reserves a way for its breach button (the signer's side of this issue).
    let locked = match out.status.code() {
        Some(14) => {
            assert!(se.contains("signer is NOT locked"), "{se}");
            false
        }
        Some(0) => {
            assert!(so.contains("signer locked"), "{so}");
            true
        }
        other => panic!("halt exited {other:?}: {so}{se}"),
    };
    // The exit code told the truth: ask the signer once its slots are free again.
    drop(hogs);
    let mut status = String::new();
    wait_until("signer 3 answers", Duration::from_secs(20), || {
        let st = Command::new(bin_dir().join("cvx-signer"))
            .args(["status", "--config"])
            .arg(dir.join("signer-3/signer.toml"))
            .output()
            .unwrap();
        status = text(&st.stdout);
        st.status.success()
    });
    assert_eq!(
        status.contains("locked:          true"),
        locked,
        "exit code and the signer's state disagree: {status}"
    );

    // 2. The signer is gone (killed): the lock fails at once, the peer is stopped, exit 14.
    let spid = signer_pid(&dir, 2).expect("signer 2 runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("signer 2 dies", Duration::from_secs(10), || !alive(spid));
    let pid2 = peer_pid(&dir, 2);
    let out = halt(&dir, 2);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(14), "{so}{se}");
    assert!(se.contains("signer is NOT locked"), "{se}");
    wait_until("peer 2 stops", Duration::from_secs(10), || !alive(pid2));

    let v = summary(child);
    let exited: Vec<&str> = v["exited"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    for name in ["peer-3", "peer-2", "signer-2"] {
        assert!(exited.contains(&name), "{name} not reported exited: {v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
