//! Crash tests: a child process (this test binary, re-executed with `ETCH_CHILD` set) writes and
//! checkpoints, or collects garbage, and is killed with SIGKILL at a random moment. After each
//! kill the store must open, hold every checkpointed record exactly, and never return wrong
//! bytes. Also: a second process is refused while the first holds the store.
#![allow(clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

mod common;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Rng, TempDir, chain_node, check_chain, node_children, rec, side_rec};
use cvx_etch::{ErrorKind, Hash, Store};

const CHILD_ENV: &str = "ETCH_CHILD";

fn spawn(mode: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{mode}:{}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill(mut c: Child) {
    let _ = c.kill(); // SIGKILL on Unix
    let _ = c.wait();
}

/// Opens the store after a child was killed. The lock is an `flock` on the open file
/// description, and the tests of this binary run in parallel threads that spawn children:
/// a child forked by another thread holds a copy of every descriptor of this process
/// (ours included) until it execs and `O_CLOEXEC` closes them, so on a loaded machine the
/// lock can stay taken for a moment after our own handle is gone. Wait that out (a few
/// seconds at most); any other error, or a lock held longer, fails the test.
fn open_after_kill(dir: &Path) -> Result<(Store, cvx_etch::RecoveryReport), cvx_etch::EtchError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(dir.join("store")) {
            Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn count_rec(n: u64) -> Vec<u8> {
    format!("count {n}").into_bytes()
}

fn parse_count(b: &[u8]) -> u64 {
    std::str::from_utf8(b)
        .unwrap()
        .strip_prefix("count ")
        .unwrap()
        .parse()
        .unwrap()
}

/// The child side. A no-op in a normal test run.
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once(':').unwrap();
    let dir = Path::new(dir);
    match mode {
        "writer" => writer_child(dir),
        "gc" => gc_child(dir),
        "hold" => {
            let (_s, _) = Store::open(dir.join("store")).unwrap();
            std::fs::write(dir.join("ready"), b"1").unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown child mode {mode}"),
    }
}

/// Writes records rec(n), rec(n+1), ... forever; after each checkpoint appends the count to
/// `progress` (a killed process loses no completed write() to the page cache).
fn writer_child(dir: &Path) {
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let mut n = match s.root("count").unwrap() {
        Some(h) => parse_count(&s.get(&h).unwrap().unwrap()),
        None => 0,
    };
    let mut progress = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("progress"))
        .unwrap();
    let mut rng = Rng::from_time();
    loop {
        for _ in 0..rng.range(1, 120) {
            s.put(&rec(n)).unwrap();
            n += 1;
        }
        let c = s.put(&count_rec(n)).unwrap();
        s.set_root("count", Some(c)).unwrap();
        s.checkpoint().unwrap();
        progress.write_all(format!("{n}\n").as_bytes()).unwrap();
    }
}

fn last_progress(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("progress")).unwrap_or_default();
    text.split_inclusive('\n')
        .rfind(|l| l.ends_with('\n'))
        .map_or(0, |l| l.trim().parse().unwrap())
}

#[test]
fn sigkill_during_writes_and_checkpoints_loses_nothing_checkpointed() {
    let iterations = 200;
    let mut rng = Rng::from_time();
    let started = Instant::now();
    let mut dir = TempDir::new("crash");
    let mut keys: Vec<Hash> = Vec::new();
    let mut dropped_total = 0;
    for it in 0..iterations {
        if it % 10 == 0 {
            dir = TempDir::new("crash"); // keep each verification small
            keys.clear();
        }
        let child = spawn("writer", dir.path());
        std::thread::sleep(Duration::from_micros(rng.range(2_000, 45_000)));
        kill(child);

        let promised = last_progress(dir.path());
        let (s, report) = open_after_kill(dir.path())
            .unwrap_or_else(|e| panic!("iteration {it}: store does not open after SIGKILL: {e}"));
        dropped_total += report.dropped_records;
        let have = match s.root("count").unwrap() {
            Some(h) => parse_count(&s.get(&h).unwrap().unwrap()),
            None => 0,
        };
        assert!(
            have >= promised,
            "iteration {it}: checkpoint of {promised} records lost (store has {have})"
        );
        while (keys.len() as u64) < have + 50 {
            keys.push(Hash::of(&rec(keys.len() as u64)));
        }
        for i in 0..have {
            let got = s.get(&keys[i as usize]).unwrap();
            assert_eq!(
                got,
                Some(rec(i)),
                "iteration {it}: checkpointed record {i} wrong or missing"
            );
        }
        // Past the checkpoint: absent, or exactly right (never other bytes).
        for i in have..have + 50 {
            if let Some(v) = s.get(&keys[i as usize]).unwrap() {
                assert_eq!(v, rec(i));
            }
        }
        assert_eq!(report.records, s.stats().unwrap().records);
        if it % 2 == 0 {
            s.close().unwrap();
        } // else: dropped without checkpoint, like another crash
    }
    eprintln!(
        "{iterations} SIGKILLs in {:.1?}; {dropped_total} uncheckpointed records dropped in total",
        started.elapsed()
    );
}

const CHAIN: &str = "gc";

fn gc_children(b: &[u8], out: &mut Vec<Hash>) {
    node_children(b, out);
}

/// Prepares a store with a reachable chain (root "live") and unreachable junk.
fn prepare_gc_store(dir: &Path, len: u64) {
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let mut prev = None;
    for i in 0..len {
        let side = s.put(&side_rec(CHAIN, i)).unwrap();
        prev = Some(s.put(&chain_node(prev, side, i)).unwrap());
        s.put(format!("junk {i}").as_bytes()).unwrap();
    }
    s.set_root("live", prev).unwrap();
    s.close().unwrap();
}

/// Collects garbage over and over, extending the chain (and adding junk) between collections.
fn gc_child(dir: &Path) {
    let (s, _) = Store::open(dir.join("store")).unwrap();
    let head = s.root("live").unwrap().unwrap();
    let mut i = check_chain(&s, head, CHAIN) + 1;
    let mut prev = Some(head);
    let mut progress = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("progress"))
        .unwrap();
    loop {
        s.collect_garbage(&gc_children, &mut |_| ControlFlow::Continue(()))
            .unwrap();
        for _ in 0..50 {
            let side = s.put(&side_rec(CHAIN, i)).unwrap();
            prev = Some(s.put(&chain_node(prev, side, i)).unwrap());
            s.put(format!("junk {i}").as_bytes()).unwrap();
            i += 1;
        }
        s.set_root("live", prev).unwrap();
        s.checkpoint().unwrap();
        progress
            .write_all(format!("{}\n", i - 1).as_bytes())
            .unwrap();
    }
}

#[test]
fn sigkill_during_garbage_collection_keeps_every_reachable_record() {
    let iterations = 40;
    let mut rng = Rng::from_time();
    let started = Instant::now();
    let dir = TempDir::new("gccrash");
    prepare_gc_store(dir.path(), 3000);
    let mut gc_done = 0;
    for it in 0..iterations {
        let before = std::fs::metadata(dir.join("store")).unwrap();
        let child = spawn("gc", dir.path());
        std::thread::sleep(Duration::from_micros(rng.range(5_000, 120_000)));
        kill(child);
        let promised = last_progress(dir.path());
        let (s, _report) = open_after_kill(dir.path()).unwrap_or_else(|e| {
            panic!("iteration {it}: store does not open after SIGKILL in GC: {e}")
        });
        let head = s.root("live").unwrap().expect("root lost");
        let top = check_chain(&s, head, CHAIN);
        assert!(
            top >= promised,
            "iteration {it}: chain head {top} older than checkpointed {promised}"
        );
        assert!(
            !dir.join("store.gc").exists(),
            "open removes the GC leftover"
        );
        let after = std::fs::metadata(dir.join("store")).unwrap();
        if std::os::unix::fs::MetadataExt::ino(&after)
            != std::os::unix::fs::MetadataExt::ino(&before)
        {
            gc_done += 1;
        }
        drop(s);
    }
    eprintln!(
        "{iterations} SIGKILLs during GC in {:.1?}; the file was swapped before {gc_done} of them",
        started.elapsed()
    );
}

#[test]
fn second_process_is_refused() {
    let dir = TempDir::new("lock");
    let child = spawn("hold", dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "child never opened the store");
        std::thread::sleep(Duration::from_millis(5));
    }
    let e = Store::open(dir.join("store")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    kill(child);
    Store::open(dir.join("store")).unwrap();
}
