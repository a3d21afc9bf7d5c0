//! Benchmark: cvx-etch against redb, the same work in the same run (house rule 9: ratios from
//! one run, never a timed test).
//!
//! Work per size N: write N records of 100 bytes, keyed by the SHA-256 of their bytes (both
//! stores hash, as the peer would), committing durably every BATCH records (etch: `checkpoint`,
//! redb: a write transaction with the default `Immediate` durability); then 10^6 random reads
//! of present keys (etch: `Store::with`, no copy; redb: `Table::get`, no copy).
//!
//! Run: `cargo bench -p cvx-etch --bench store -- [N ...]` (default 100000 1000000 10000000).
#![allow(clippy::print_stdout, clippy::unwrap_used)] // a program that prints its figures
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // 64-bit counts into indexes and rates

use std::path::Path;
use std::time::Instant;

use cvx_etch::{Hash, Store};
use redb::{Database, ReadableDatabase, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const VALUE: usize = 100;
const BATCH: u64 = 10_000;
const READS: u64 = 1_000_000;

fn value(i: u64, out: &mut [u8; VALUE]) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    out[..8].copy_from_slice(&i.to_le_bytes());
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

struct Figures {
    writes_s: f64,
    reads_s: f64,
    bytes: u64,
}

fn bench_etch(dir: &Path, n: u64, keys: &mut Vec<Hash>) -> Figures {
    let path = dir.join("etch.store");
    let (s, _) = Store::open(&path).unwrap();
    let mut v = [0u8; VALUE];
    let t = Instant::now();
    for i in 0..n {
        value(i, &mut v);
        keys.push(s.put(&v).unwrap());
        if (i + 1) % BATCH == 0 {
            s.checkpoint().unwrap();
        }
    }
    s.checkpoint().unwrap();
    let writes_s = n as f64 / t.elapsed().as_secs_f64();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let t = Instant::now();
    let mut total = 0usize;
    for _ in 0..READS {
        let k = &keys[rng.below(n) as usize];
        total += s.with(k, <[u8]>::len).unwrap().unwrap();
    }
    let reads_s = READS as f64 / t.elapsed().as_secs_f64();
    assert_eq!(total, READS as usize * VALUE);
    s.close().unwrap();
    Figures {
        writes_s,
        reads_s,
        bytes: dir_size(&path),
    }
}

fn bench_redb(dir: &Path, n: u64, keys: &[Hash]) -> Figures {
    let path = dir.join("redb.db");
    let db = Database::create(&path).unwrap();
    let mut v = [0u8; VALUE];
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for _ in 0..BATCH.min(n - i) {
                value(i, &mut v);
                let k = Hash::of(&v);
                table.insert(&k.0[..], &v[..]).unwrap();
                i += 1;
            }
        }
        txn.commit().unwrap();
    }
    let writes_s = n as f64 / t.elapsed().as_secs_f64();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    let t = Instant::now();
    let mut total = 0usize;
    for _ in 0..READS {
        let k = &keys[rng.below(n) as usize];
        total += table.get(&k.0[..]).unwrap().unwrap().value().len();
    }
    let reads_s = READS as f64 / t.elapsed().as_secs_f64();
    assert_eq!(total, READS as usize * VALUE);
    drop(table);
    drop(txn);
    drop(db);
    Figures {
        writes_s,
        reads_s,
        bytes: dir_size(&path),
    }
}

fn main() {
    let mut sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000, 10_000_000];
    }
    let base = std::env::var_os("ETCH_BENCH_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
        .join(format!("etch-bench-{}", std::process::id()));
    println!(
        "cvx-etch vs redb: {VALUE}-byte records keyed by SHA-256, durable commit every {BATCH}, {READS} random reads"
    );
    println!(
        "{:>10} | {:>12} {:>12} {:>6} | {:>12} {:>12} {:>6} | {:>9} {:>9} | {:>8} {:>8}",
        "records",
        "etch wr/s",
        "redb wr/s",
        "ratio",
        "etch rd/s",
        "redb rd/s",
        "ratio",
        "etch MB",
        "redb MB",
        "etch ns/w",
        "redb ns/w"
    );
    for n in sizes {
        let dir = base.join(n.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut keys = Vec::with_capacity(n as usize);
        let e = bench_etch(&dir, n, &mut keys);
        let r = bench_redb(&dir, n, &keys);
        println!(
            "{:>10} | {:>12.0} {:>12.0} {:>5.2}x | {:>12.0} {:>12.0} {:>5.2}x | {:>9.1} {:>9.1} | {:>8.0} {:>8.0}",
            n,
            e.writes_s,
            r.writes_s,
            e.writes_s / r.writes_s,
            e.reads_s,
            r.reads_s,
            e.reads_s / r.reads_s,
            e.bytes as f64 / 1e6,
            r.bytes as f64 / 1e6,
            1e9 / e.writes_s,
            1e9 / r.writes_s,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&base);
}
