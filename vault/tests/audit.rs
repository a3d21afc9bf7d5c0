//! Deliverable 8: the hash-chained audit log detects edits, removals, reordering and a
//! torn tail, and nothing is appended to a broken log.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::TempDir;
use cvx_vault::VaultError;
use cvx_vault::audit::{AuditLog, Entry};

fn log_with(n: usize) -> (TempDir, AuditLog, Vec<String>) {
    let d = TempDir::new("audit");
    let log = AuditLog::new(&d.path("audit.log"));
    for i in 0..n {
        let mut e = Entry::new("keygen", Some(format!("{i:064x}")));
        e.file(
            "wrote",
            std::path::Path::new("k.age"),
            format!("content {i}").as_bytes(),
        );
        let s = log.append(e).unwrap();
        assert_eq!(s.records, i as u64 + 1);
    }
    let lines = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (d, log, lines)
}

fn write(log: &AuditLog, lines: &[String]) {
    std::fs::write(
        log.path(),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn broken_at(log: &AuditLog) -> usize {
    match log.verify() {
        Err(VaultError::Audit { record, .. }) => record,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn the_chain_catches_edits_removals_reordering_and_torn_tails() {
    let (_d, log, lines) = log_with(4);
    assert_eq!(log.verify().unwrap().records, 4);
    // Edit a field of record 2.
    let mut edited = lines.clone();
    edited[1] = edited[1]
        .replace("content", "x")
        .replace("keygen", "restore");
    write(&log, &edited);
    assert_eq!(broken_at(&log), 2);
    // Remove record 2.
    let mut removed = lines.clone();
    removed.remove(1);
    write(&log, &removed);
    assert_eq!(broken_at(&log), 2);
    // Swap 2 and 3.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    write(&log, &swapped);
    assert_eq!(broken_at(&log), 2);
    // Torn tail.
    let mut torn = lines.join("\n");
    torn.push('\n');
    torn.truncate(torn.len() - 10);
    std::fs::write(log.path(), &torn).unwrap();
    assert_eq!(broken_at(&log), 4);
    // Nothing is appended to a broken log.
    let before = std::fs::read(log.path()).unwrap();
    assert!(log.append(Entry::new("keygen", None)).is_err());
    assert_eq!(std::fs::read(log.path()).unwrap(), before);
    // The intact log verifies again, and a missing log is an empty chain.
    write(&log, &lines);
    assert_eq!(log.verify().unwrap().records, 4);
    std::fs::remove_file(log.path()).unwrap();
    assert_eq!(log.verify().unwrap().records, 0);
}
