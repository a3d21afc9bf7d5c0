//! The store's API, its refusals, and simulated power loss (truncation and flipped bytes past
//! the last checkpoint, torn header copies, bit rot before it).
#![allow(clippy::unwrap_used)]
// Test code: RNG and index arithmetic truncate on purpose.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)]

mod common;

use std::fs::OpenOptions as FsOpen;
use std::os::unix::fs::FileExt;

use common::{Rng, TempDir, rec};
use cvx_etch::{ErrorKind, FORMAT_VERSION, Hash, OpenOptions, Store};

#[test]
fn put_get_roots_survive_close_and_reopen() {
    let dir = TempDir::new("api");
    let path = dir.join("store");
    let (s, report) = Store::open(&path).unwrap();
    assert!(report.created && report.is_clean());
    let a = s.put(b"alpha").unwrap();
    assert_eq!(a, Hash::of(b"alpha"));
    assert_eq!(s.put(b"alpha").unwrap(), a, "idempotent");
    let b = s.put(b"").unwrap();
    assert_eq!(s.get(&a).unwrap().as_deref(), Some(&b"alpha"[..]));
    assert_eq!(s.get(&b).unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(s.get(&Hash::of(b"nope")).unwrap(), None);
    assert_eq!(s.with(&a, <[u8]>::len).unwrap(), Some(5));
    s.set_root("state", Some(a)).unwrap();
    s.set_root("belief", Some(b)).unwrap();
    s.set_root("belief", None).unwrap();
    assert_eq!(s.stats().unwrap().records, 2);
    s.close().unwrap();

    let (s, report) = Store::open(&path).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 2);
    assert_eq!(s.root("state").unwrap(), Some(a));
    assert_eq!(s.root("belief").unwrap(), None);
    assert_eq!(s.get(&a).unwrap().unwrap(), b"alpha");
}

#[test]
fn refusals_have_stable_kinds_and_helpful_messages() {
    let dir = TempDir::new("refuse");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();

    // A second opener (same process, separate open file description) is refused.
    let e = Store::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert_eq!(e.kind().code(), "ETCH_LOCKED");
    assert!(e.to_string().contains("in use by another process"), "{e}");

    assert_eq!(s.set_root("", None).unwrap_err().kind(), ErrorKind::BadRoot);
    assert_eq!(
        s.set_root(&"x".repeat(65), None).unwrap_err().kind(),
        ErrorKind::BadRoot
    );
    for i in 0..32 {
        s.set_root(&format!("r{i}"), Some(Hash::ZERO)).unwrap();
    }
    let e = s.set_root("one-too-many", Some(Hash::ZERO)).unwrap_err();
    assert!(e.to_string().contains("at most 32 roots"), "{e}");

    let e = s.import(&Hash::of(b"a"), b"b").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HashMismatch);
    assert!(s.import(&Hash::of(b"a"), b"a").unwrap());

    let big = vec![0u8; cvx_etch::MAX_RECORD + 1];
    assert_eq!(s.put(&big).unwrap_err().kind(), ErrorKind::TooLarge);
    drop(s);

    let missing = dir.join("absent");
    let e = Store::open_with(&missing, &OpenOptions { create: false }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);

    let junk = dir.join("junk");
    std::fs::write(&junk, vec![7u8; 20000]).unwrap();
    let e = Store::open(&junk).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAStore);
}

#[test]
fn newer_format_version_is_refused_by_name() {
    let dir = TempDir::new("version");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    s.put(b"x").unwrap();
    s.close().unwrap();
    let f = FsOpen::new().write(true).open(&path).unwrap();
    // Bytes 8..12 of a header copy are the version; bump it in one copy only.
    f.write_at(&(FORMAT_VERSION + 1).to_le_bytes(), 4096 + 8)
        .unwrap();
    drop(f);
    let e = Store::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Version);
    let msg = e.to_string();
    assert!(
        msg.contains("format version 2") && msg.contains("only version 1"),
        "{msg}"
    );
}

/// Writes `n` records starting at `from`, returns their hashes.
fn put_range(s: &Store, from: u64, n: u64) -> Vec<Hash> {
    (from..from + n).map(|i| s.put(&rec(i)).unwrap()).collect()
}

#[test]
fn power_loss_truncation_and_flips_past_checkpoint() {
    let mut rng = Rng::new(0x5eed_0001);
    let dir = TempDir::new("power");
    for round in 0..40 {
        let path = dir.join(&format!("s{round}"));
        let (s, _) = Store::open(&path).unwrap();
        let n = rng.range(1, 300);
        let kept = put_range(&s, 0, n);
        s.set_root("state", Some(kept[0])).unwrap();
        s.checkpoint().unwrap();
        let ckpt = s.stats().unwrap().checkpoint_end;
        let m = rng.range(0, 300);
        let lost = put_range(&s, 1000, m);
        s.set_root("state", lost.first().copied()).unwrap();
        let used = s.stats().unwrap().used_bytes;
        drop(s); // a crash: no checkpoint

        let f = FsOpen::new().read(true).write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let mode = rng.range(0, 3);
        if mode != 1 {
            // truncate somewhere at or past the checkpoint
            f.set_len(rng.range(ckpt, used + 1)).unwrap();
        }
        let len_now = f.metadata().unwrap().len().min(len);
        if mode != 0 && len_now > ckpt {
            for _ in 0..rng.range(1, 20) {
                let at = rng.range(ckpt, len_now);
                let mut b = [0u8];
                f.read_at(&mut b, at).unwrap();
                b[0] ^= 1 << rng.range(0, 8);
                f.write_at(&b, at).unwrap();
            }
        }
        drop(f);

        let (s, report) = Store::open(&path).unwrap();
        assert_eq!(report.checkpoint_end, ckpt, "{report:?}");
        assert_eq!(report.records, n);
        if m > 0 && mode == 1 {
            assert!(report.dropped_bytes > 0, "round {round}: {report:?}");
        }
        assert!(report.dropped_records <= m);
        for (i, h) in kept.iter().enumerate() {
            assert_eq!(s.get(h).unwrap().unwrap(), rec(i as u64));
        }
        for h in &lost {
            assert_eq!(s.get(h).unwrap(), None, "uncheckpointed record survived");
        }
        assert_eq!(s.root("state").unwrap(), Some(kept[0]));
        // The store works on after recovery, and reopens clean.
        s.put(b"after").unwrap();
        s.close().unwrap();
        let (_, again) = Store::open(&path).unwrap();
        assert!(again.is_clean(), "{again:?}");
    }
}

#[test]
fn torn_newest_header_falls_back_to_previous_checkpoint() {
    let dir = TempDir::new("torn");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let a = put_range(&s, 0, 50);
    let g1 = s.checkpoint().unwrap();
    let b = put_range(&s, 100, 50);
    let g2 = s.checkpoint().unwrap();
    assert_eq!(g2, g1 + 1);
    drop(s);
    let f = FsOpen::new().read(true).write(true).open(&path).unwrap();
    let slot = (g2 % 2) * 4096;
    f.write_at(&[0xff; 8], slot + 20).unwrap(); // tear the newest copy
    drop(f);
    let (s, report) = Store::open(&path).unwrap();
    assert_eq!(report.generation, g1);
    assert!(!report.other_header_ok);
    assert!(
        report.dropped_bytes > 0 && report.dropped_records == 50,
        "{report:?}"
    );
    for (i, h) in a.iter().enumerate() {
        assert_eq!(s.get(h).unwrap().unwrap(), rec(i as u64));
    }
    assert_eq!(s.get(&b[0]).unwrap(), None);
    // The next checkpoint rewrites the torn copy.
    s.put(b"z").unwrap();
    s.close().unwrap();
    let (_, r) = Store::open(&path).unwrap();
    assert!(r.other_header_ok && r.is_clean(), "{r:?}");
}

#[test]
fn bit_rot_in_checkpointed_record_is_an_error_never_data() {
    let dir = TempDir::new("rot");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let hs = put_range(&s, 0, 20);
    s.close().unwrap();
    // Record 5 sits after records 0..5; find it by scanning for its bytes.
    let raw = std::fs::read(&path).unwrap();
    let needle = rec(5);
    let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
    let f = FsOpen::new().write(true).open(&path).unwrap();
    f.write_at(&[raw[at + 2] ^ 0x40], (at + 2) as u64).unwrap();
    drop(f);
    let (s, _) = Store::open(&path).unwrap();
    let e = s.get(&hs[5]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    for (i, h) in hs.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert_eq!(s.get(h).unwrap().unwrap(), rec(i as u64));
    }
}

#[test]
fn damaged_index_is_rebuilt_from_records() {
    let dir = TempDir::new("index");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    let hs = put_range(&s, 0, 100);
    s.checkpoint().unwrap();
    let idx_at = s.stats().unwrap().used_bytes;
    let more = put_range(&s, 100, 10);
    s.close().unwrap();
    // The last index segment starts right after record 109 ... find its tag at some offset
    // >= idx_at (the segment for the second checkpoint).
    let raw = std::fs::read(&path).unwrap();
    let seg = (idx_at as usize..raw.len())
        .step_by(8)
        .find(|&o| raw[o] == 2 && raw[o + 1..o + 4] == [0, 0, 0])
        .unwrap();
    let f = FsOpen::new().write(true).open(&path).unwrap();
    f.write_at(&[raw[seg + 60] ^ 1], (seg + 60) as u64).unwrap();
    drop(f);
    let (s, report) = Store::open(&path).unwrap();
    assert!(report.index_rebuilt, "{report:?}");
    assert_eq!(report.records, 110);
    for (i, h) in hs.iter().chain(&more).enumerate() {
        assert_eq!(s.get(h).unwrap().unwrap(), rec(i as u64));
    }
}

#[test]
fn file_shorter_than_its_checkpoint_is_refused_not_silently_rolled_back() {
    let dir = TempDir::new("short");
    let path = dir.join("store");
    let (s, _) = Store::open(&path).unwrap();
    put_range(&s, 0, 100);
    s.close().unwrap();
    let f = FsOpen::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 100).unwrap();
    drop(f);
    let e = Store::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Damaged);
    assert!(
        e.to_string().contains("checkpointed data is missing"),
        "{e}"
    );
}
