//! Garbage collection of the peer's store: what each record refers to, and the periodic
//! online collection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cvx_etch::Store;
use cvx_etch::merkle;

use super::{RECORD_V2, RECORD_VERSION, Record, RecordV1};

/// [`cvx_etch::Children`] for the peer's store: what each record refers to, for garbage
/// collection. Records carry no kind tag, so every reading that fits is taken and the
/// union kept (keeping too much is harmless, dropping a live record is not): a snapshot
/// record (version 1, 2 or 3) refers to its block records and (versions 2 and 3) its state
/// root; a
/// state-tree branch refers to its children ([`merkle::node_children`]); blocks, leaves
/// and anything unknown refer to nothing. Never panics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerChildren;

impl cvx_etch::Children for PeerChildren {
    fn children(&self, record: &[u8], out: &mut Vec<cvx_etch::Hash>) {
        merkle::node_children(record, out);
        match postcard::take_from_bytes::<u16>(record) {
            Ok((RECORD_V2 | RECORD_VERSION, _)) => {
                if let Ok(r) = postcard::from_bytes::<Record>(record) {
                    out.extend(r.blocks.iter().map(|b| cvx_etch::Hash(*b)));
                    out.push(cvx_etch::Hash(r.state_root));
                }
            }
            Ok((1, _)) => {
                if let Ok(r) = postcard::from_bytes::<RecordV1>(record) {
                    out.extend(r.blocks.iter().map(|b| cvx_etch::Hash(*b)));
                }
            }
            _ => {}
        }
    }
}

/// Collect the store's garbage once (online: readers and writers go on; see
/// [`Store::collect_garbage`]). Returns the report, or `None` if interrupted.
///
/// # Errors
/// Store failures ([`cvx_etch::ErrorKind`] `Busy` when a collection is already running).
pub fn collect_garbage(store: &Store) -> Result<Option<cvx_etch::GcReport>, cvx_etch::EtchError> {
    match store.collect_garbage(&PeerChildren, &mut |_| std::ops::ControlFlow::Continue(()))? {
        cvx_etch::GcOutcome::Done(r) => Ok(Some(r)),
        cvx_etch::GcOutcome::Interrupted => Ok(None),
    }
}

/// The store's record count from which a collection starts before its interval is up
/// (or twice what the last collection kept, if more): the index then stays within 2^21
/// slots (32 MiB; it doubles at 70% full) between collections.
pub const GC_GROWTH_MIN_RECORDS: u64 = 1_000_000;

/// A new store's first checkpoint is all live records (1.35 M at 10^6 accounts), so the
/// growth trigger waits for it: while the store has no snapshot the trigger is off, and once
/// the first snapshot appears it counts from twice the records then. A store that already
/// had a snapshot at start keeps the plain rule (its garbage from before is collected as
/// soon as it is over the bound). Without this, the first collection of a large new ledger
/// ran right after (or during) its first checkpoint, reclaimed nothing and took 3–9 s of a
/// core while the network started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// Not looked yet.
    Unknown,
    /// No snapshot at the first look: the first checkpoint is being written.
    Waiting,
    /// The baseline is set (or was not needed).
    Done,
}

/// Periodic online garbage collection of the peer's store: at most one at a time, on a
/// blocking thread (consensus goes on; the store stays usable, etch's contract), with the
/// counters `/metrics` shows.
#[derive(Debug)]
pub struct PeriodicGc {
    interval: Duration,
    next: std::sync::Mutex<Option<Instant>>,
    /// Collect sooner once the store holds more records than this: twice what the last
    /// collection kept, at least [`GC_GROWTH_MIN_RECORDS`]. The store's in-memory index
    /// takes 16 bytes per slot (at most 70% full) and grows with the records written
    /// since the last collection, so under heavy load a fixed interval alone let the
    /// peer's memory grow with the load (issue 15).
    grow_at: Arc<std::sync::atomic::AtomicU64>,
    grow_min: u64,
    /// Whether the store had a snapshot when this process first looked ([`Fresh`]).
    fresh: std::sync::Mutex<Fresh>,
    running: Arc<std::sync::atomic::AtomicBool>,
    /// Completed collections.
    pub runs: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes reclaimed by completed collections.
    pub reclaimed: Arc<std::sync::atomic::AtomicU64>,
}

impl PeriodicGc {
    /// Every `interval_secs` seconds (0: never); the first one `interval_secs` after start.
    #[must_use]
    pub fn new(interval_secs: u64) -> Self {
        let interval = Duration::from_secs(interval_secs);
        Self {
            interval,
            next: std::sync::Mutex::new((interval_secs > 0).then(|| Instant::now() + interval)),
            grow_at: Arc::new(std::sync::atomic::AtomicU64::new(GC_GROWTH_MIN_RECORDS)),
            grow_min: GC_GROWTH_MIN_RECORDS,
            fresh: std::sync::Mutex::new(Fresh::Unknown),
            running: Arc::default(),
            runs: Arc::default(),
            reclaimed: Arc::default(),
        }
    }

    /// Whether the growth trigger applies now ([`Fresh`]); sets the baseline of a new
    /// store once its first snapshot is there.
    fn growth_counts(&self, store: &Store, records: Option<u64>) -> bool {
        let Ok(mut fresh) = self.fresh.lock() else {
            return true;
        };
        if *fresh == Fresh::Done {
            return true;
        }
        let has_snapshot = store.root("snapshot").ok().flatten().is_some();
        match (*fresh, has_snapshot) {
            (_, false) => *fresh = Fresh::Waiting,
            (Fresh::Waiting, true) => {
                let base = records.unwrap_or(0).saturating_mul(2).max(self.grow_min);
                self.grow_at
                    .store(base, std::sync::atomic::Ordering::Relaxed);
                *fresh = Fresh::Done;
            }
            (_, true) => *fresh = Fresh::Done,
        }
        *fresh == Fresh::Done
    }

    /// Start a collection on a blocking thread if one is due and none is running (call
    /// from the main loop's housekeeping, inside a Tokio runtime). Logs INFO at start and
    /// end, WARN on failure (the peer keeps running; the next one is tried at the next
    /// interval).
    pub fn poll(&self, store: &Arc<Store>) {
        use std::sync::atomic::Ordering;
        let Ok(mut next) = self.next.lock() else {
            return;
        };
        let Some(due) = *next else { return };
        let now = Instant::now();
        let records = store.stats().map(|s| s.records).ok();
        let counting = self.growth_counts(store, records);
        let grown = counting && records.is_some_and(|r| r > self.grow_at.load(Ordering::Relaxed));
        if (now < due && !grown) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        *next = Some(now + self.interval);
        drop(next);
        let store = Arc::clone(store);
        let running = Arc::clone(&self.running);
        let runs = Arc::clone(&self.runs);
        let reclaimed = Arc::clone(&self.reclaimed);
        let (grow_at, grow_min) = (Arc::clone(&self.grow_at), self.grow_min);
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            match store.stats() {
                Ok(st) => tracing::info!(
                    records = st.records,
                    bytes = st.used_bytes,
                    "store garbage collection started"
                ),
                Err(e) => tracing::info!(error = %e, "store garbage collection started"),
            }
            match collect_garbage(&store) {
                Ok(Some(r)) => {
                    grow_at.store(
                        grow_min.max(r.records_after.saturating_mul(2)),
                        Ordering::Relaxed,
                    );
                    runs.fetch_add(1, Ordering::Relaxed);
                    reclaimed.fetch_add(
                        r.bytes_before.saturating_sub(r.bytes_after),
                        Ordering::Relaxed,
                    );
                    tracing::info!(
                        records_before = r.records_before,
                        records_after = r.records_after,
                        bytes_before = r.bytes_before,
                        bytes_after = r.bytes_after,
                        dangling = r.dangling,
                        ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "store garbage collection done"
                    );
                }
                Ok(None) => tracing::warn!("store garbage collection interrupted"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "store garbage collection failed; the store is unchanged and the peer goes on (retried at the next interval; see docs/operations.md, Storage management)"
                ),
            }
            running.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new store in a fresh directory, and a collector with an hour's interval and a low
    /// growth bound (50 records) for the test.
    fn setup(name: &str) -> (std::path::PathBuf, Arc<Store>, PeriodicGc) {
        let dir = std::env::temp_dir().join(format!("cvx-gc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _) = Store::open(dir.join("peer.etch")).unwrap();
        let mut gc = PeriodicGc::new(3_600);
        gc.grow_min = 50;
        gc.grow_at.store(50, std::sync::atomic::Ordering::Relaxed);
        (dir, Arc::new(store), gc)
    }

    /// Completed collections, once one has completed (or 5 s have passed).
    async fn runs_after_waiting(gc: &PeriodicGc) -> u64 {
        for _ in 0..100 {
            if gc.runs.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gc.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_store_that_grows_fast_is_collected_before_the_interval() {
        let (dir, store, gc) = setup("growth");
        let live = store.put(b"live").unwrap();
        store.set_root("snapshot", Some(live)).unwrap();
        for i in 0..40u32 {
            store.put(&i.to_le_bytes()).unwrap();
        }
        gc.poll(&store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            gc.runs.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "not grown yet"
        );
        for i in 40..100u32 {
            store.put(&i.to_le_bytes()).unwrap();
        }
        gc.poll(&store);
        assert_eq!(runs_after_waiting(&gc).await, 1, "collected early");
        assert!(store.stats().unwrap().records < 10, "garbage reclaimed");
        assert_eq!(store.get(&live).unwrap().as_deref(), Some(&b"live"[..]));
        assert_eq!(gc.grow_at.load(std::sync::atomic::Ordering::Relaxed), 50);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A new store's first checkpoint is all live: no collection while it is written, and
    /// the growth trigger then counts from twice the records it left.
    #[tokio::test]
    async fn a_new_store_is_not_collected_for_its_first_checkpoint() {
        use std::sync::atomic::Ordering::Relaxed;
        let (dir, store, gc) = setup("fresh");
        // The first checkpoint being written: past the bound, but no snapshot yet.
        gc.poll(&store);
        for i in 0..99u32 {
            store.put(&i.to_le_bytes()).unwrap();
        }
        gc.poll(&store);
        // It is done: the snapshot root appears (100 records, all live).
        let snap = store.put(b"snapshot").unwrap();
        store.set_root("snapshot", Some(snap)).unwrap();
        gc.poll(&store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            gc.runs.load(Relaxed),
            0,
            "nothing collected for the first checkpoint"
        );
        assert_eq!(gc.grow_at.load(Relaxed), 200, "twice the records it left");
        // Growth past that bound is collected as before.
        for i in 100..250u32 {
            store.put(&i.to_le_bytes()).unwrap();
        }
        gc.poll(&store);
        assert_eq!(runs_after_waiting(&gc).await, 1, "collected once grown");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
