//! Tests of the peer's persistence: the state tree, the record versions and their upgrades, GC.
use super::*;
use cvx_etch::merkle;
use cvx_protocol::PublicKey;
use cvx_protocol::consensus::Order;
use cvx_protocol::hash::hash_parts;
use cvx_protocol::ledger::{Account, PeerRecord};
use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer};
use cvx_protocol::{Address, Amount, BoundedVec, Signature};

/// A valid public key per `i` (no private key: the first hash of `i ‖ n` that
/// decodes as a curve point; about half of all 32-byte strings do).
fn pk(i: u8) -> PublicKey {
    (0u8..=255)
        .find_map(|n| PublicKey::from_bytes(&hash_parts(&[&[i, n]]).0).ok())
        .unwrap()
}

fn genesis() -> Genesis {
    Genesis {
        network_name: cvx_protocol::primitives::Name::new("persist-test").unwrap(),
        time: Timestamp(1_000),
        accounts: BoundedVec::try_from_vec(
            (0..5u8)
                .map(|i| GenesisAccount {
                    key: pk(i + 1),
                    balance: Amount::new(1_000_000).unwrap(),
                })
                .collect(),
        )
        .unwrap(),
        peers: BoundedVec::try_from_vec(vec![GenesisPeer {
            key: pk(50),
            controller: Address(0),
            stake: Amount::new(5_000).unwrap(),
            host: None,
        }])
        .unwrap(),
        params: crate::test_params::params(),
    }
}

/// A ledger that differs from the genesis: more accounts, changed balances, a peer.
fn ledger(g: &Genesis) -> State {
    let base = State::from_genesis(g);
    let mut accounts = base.accounts().to_vec();
    accounts[1].balance = Amount::new(7).unwrap();
    accounts[1].sequence = 3;
    accounts.push(Account {
        key: pk(60),
        balance: Amount::new(99).unwrap(),
        sequence: 0,
    });
    let mut peers: Vec<PeerRecord> = base.peers().cloned().collect();
    peers.push(PeerRecord {
        key: pk(61),
        controller: Address(2),
        stake: Amount::new(2_000).unwrap(),
        host: cvx_protocol::HostAddr::new("127.0.0.1:9").ok(),
        last_block_time: Timestamp(1_500),
    });
    State::from_parts(accounts, peers, Timestamp(2_000), 12)
}

fn order() -> SignedOrder {
    let cp = Checkpoint {
        position: 10,
        chain: Hash([4; 32]),
    };
    SignedOrder {
        order: Order {
            peer: pk(50),
            timestamp: Timestamp(2_100),
            checkpoint: cp,
            blocks: BoundedVec::try_from_vec(vec![Hash([1; 32]), Hash([2; 32])]).unwrap(),
            proposal: 12,
            consensus: 12,
            finality: 12,
            stake_root: Hash::ZERO,
        },
        signature: Signature([9; 64]),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvx-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d.join("peer.etch")
}

#[test]
fn state_tree_round_trips_and_updates_only_changes() {
    let g = genesis();
    let path = tmp("tree");
    let (store, _) = Store::open(&path).unwrap();
    let s0 = State::from_genesis(&g);
    let r0 = write_state(&store, None, &s0).unwrap();
    assert_eq!(read_state(&store, &r0).unwrap(), s0);
    let s1 = ledger(&g);
    let incremental = write_state(&store, Some((&r0, &s0)), &s1).unwrap();
    let full = write_state(&store, None, &s1).unwrap();
    assert_eq!(incremental, full, "the root depends only on the state");
    let back = read_state(&store, &full).unwrap();
    assert_eq!(back, s1);
    assert_eq!(back.state_hash(), s1.state_hash());
    // No change: same root, nothing to write.
    let before = store.stats().unwrap().records;
    assert_eq!(write_state(&store, Some((&full, &s1)), &s1).unwrap(), full);
    assert_eq!(store.stats().unwrap().records, before);
    // A peer removed (not done by the ledger today, but the tree must follow).
    let mut peers: Vec<PeerRecord> = s1.peers().cloned().collect();
    peers.pop();
    let s2 = State::from_parts(s1.accounts().to_vec(), peers, s1.time(), 13);
    let r2 = write_state(&store, Some((&full, &s1)), &s2).unwrap();
    assert_eq!(read_state(&store, &r2).unwrap(), s2);
    assert_eq!(r2, write_state(&store, None, &s2).unwrap());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Issue 15, deliver 2: a ledger of 10^6 accounts round-trips through the store
/// (built directly, not through transactions; one key shared by all accounts, since
/// deriving a million keys would only measure key derivation), then a checkpoint
/// that changes a few accounts and appends one writes only those and reads back
/// equal, with the same state root as the in-memory ledger.
#[test]
fn a_ledger_of_a_million_accounts_round_trips_through_the_store() {
    const N: u64 = 1_000_000;
    let g = genesis();
    let base = State::from_genesis(&g);
    let key = base.accounts()[0].key;
    let accounts: Vec<Account> = (0..N)
        .map(|i| Account {
            key,
            balance: Amount::new(i + 1).unwrap(),
            sequence: i % 7,
        })
        .collect();
    let s0 = State::from_parts(accounts, base.peers().cloned().collect(), g.time, 0);
    assert_eq!(s0.accounts_len(), N);
    let path = tmp("million");
    let (store, _) = Store::open(&path).unwrap();
    let r0 = write_state(&store, None, &s0).unwrap();
    store.checkpoint().unwrap();
    let back = read_state(&store, &r0).unwrap();
    assert_eq!(back.state_hash(), s0.state_hash());
    assert!(back == s0, "the ledger read back differs");
    let mut accounts = back.accounts().to_vec();
    accounts[0].balance = Amount::new(5).unwrap();
    accounts[777_777].sequence = 99;
    accounts.push(Account {
        key: pk(60),
        balance: Amount::new(3).unwrap(),
        sequence: 0,
    });
    let s1 = State::from_parts(accounts, back.peers().cloned().collect(), g.time, 1);
    let before = store.stats().unwrap().records;
    let r1 = write_state(&store, Some((&r0, &s0)), &s1).unwrap();
    let written = store.stats().unwrap().records - before;
    assert!(
        written < 200,
        "{written} records for 3 changed entries and the meta"
    );
    let again = read_state(&store, &r1).unwrap();
    assert_eq!(again.state_hash(), s1.state_hash());
    assert_eq!(again.accounts_len(), N + 1);
    drop(store);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn a_tree_with_foreign_entries_is_refused() {
    let g = genesis();
    let path = tmp("foreign");
    let (store, _) = Store::open(&path).unwrap();
    let r = write_state(&store, None, &State::from_genesis(&g)).unwrap();
    let r = merkle::insert(&store, &r, &[7; 32], b"junk").unwrap();
    assert!(read_state(&store, &r).is_err());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Issue 8, deliver 3: a genuine version 1 record is read by this version, the
/// ledger, positions and order survive, and the next checkpoint rewrites it as
/// version 3 (with the state tree), which reads back the same.
#[test]
fn store_upgrade_from_record_version_1() {
    let g = genesis();
    let cfg = Config::new(g.clone(), pk(50));
    let path = tmp("upgrade");
    let led = ledger(&g);
    let so = order();
    let block_key = {
        let (store, _) = Store::open(&path).unwrap();
        let v1 = RecordV1 {
            version: 1,
            network: g.network_id().0,
            order: Some(LegacySignedOrder::of(&so)),
            blocks: Vec::new(),
            history: vec![Hash([5; 32]), Hash([6; 32])],
            ledger: led.clone(),
            last_block_ts: Timestamp(2_050),
            proposal_since: Timestamp(2_060),
        };
        let h = store.put(&postcard::to_allocvec(&v1).unwrap()).unwrap();
        store.set_root("snapshot", Some(h)).unwrap();
        store.checkpoint().unwrap();
        store.close().unwrap();
        h
    };
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let snap = p.load(&cfg).unwrap().unwrap();
    assert_eq!(snap.ledger, led, "ledger survives");
    assert_eq!(snap.order, Some(so.clone()), "order and positions survive");
    assert_eq!(snap.history, vec![Hash([5; 32]), Hash([6; 32])]);
    assert_eq!(snap.last_block_ts, Timestamp(2_050));
    assert_eq!(snap.proposal_since, Timestamp(2_060));
    assert_eq!(p.upgraded_from, Some(1));
    p.save(&snap, g.network_id().0, true).unwrap();
    assert_eq!(p.upgraded_from, None);
    let root = p.store().root("snapshot").unwrap().unwrap();
    assert_ne!(root, block_key, "the record was rewritten");
    let bytes = p.store().get(&root).unwrap().unwrap();
    assert_eq!(
        postcard::take_from_bytes::<u16>(&bytes).unwrap().0,
        RECORD_VERSION
    );
    let sp = p.sync_point().cloned().unwrap();
    assert_eq!(sp.position, 12);
    assert_eq!(sp.chain, so.order.chain_at(12).unwrap());
    drop(p);
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let again = p.load(&cfg).unwrap().unwrap();
    assert_eq!(again.ledger, led);
    assert_eq!(again.order, Some(so));
    assert_eq!(p.sync_point(), Some(&sp));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Issue 15, deliver 1: a version 2 record (its state hash the version 1 hash over
/// the whole ledger) is checked against that hash, converted, answers sync points with
/// the state root, and the next checkpoint rewrites it as version 3; a version 2 record
/// whose hash does not match its tree is refused.
#[test]
fn store_upgrade_from_record_version_2() {
    let g = genesis();
    let cfg = Config::new(g.clone(), pk(50));
    let path = tmp("upgrade2");
    let led = ledger(&g);
    let so = order();
    let put_v2 = |store: &Store, state_hash: Hash| {
        let root = write_state(store, None, &led).unwrap();
        let v2 = RecordV3 {
            version: 2,
            network: g.network_id().0,
            order: Some(LegacySignedOrder::of(&so)),
            blocks: Vec::new(),
            history: vec![Hash([5; 32])],
            state_root: root.0,
            state_hash,
            chain: so.order.chain_at(12),
            last_block_ts: Timestamp(2_050),
            proposal_since: Timestamp(2_060),
        };
        let h = store.put(&postcard::to_allocvec(&v2).unwrap()).unwrap();
        store.set_root("snapshot", Some(h)).unwrap();
        store.checkpoint().unwrap();
    };
    {
        let (store, _) = Store::open(&path).unwrap();
        // The new root in a version 2 record is a mismatch: refused.
        put_v2(&store, led.state_hash());
        let mut p = Persist::new(Arc::new(store), path.clone());
        let e = p.load(&cfg).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        put_v2(p.store(), led.legacy_state_hash_v1());
    }
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let snap = p.load(&cfg).unwrap().unwrap();
    assert_eq!(snap.ledger, led);
    assert_eq!(p.upgraded_from, Some(2));
    let sp = p.sync_point().cloned().unwrap();
    assert_eq!(
        sp.state_hash,
        led.state_hash(),
        "sync points carry the state root"
    );
    p.save(&snap, g.network_id().0, true).unwrap();
    assert_eq!(p.upgraded_from, None);
    let root = p.store().root("snapshot").unwrap().unwrap();
    let bytes = p.store().get(&root).unwrap().unwrap();
    assert_eq!(
        postcard::take_from_bytes::<u16>(&bytes).unwrap().0,
        RECORD_VERSION
    );
    drop(p);
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let again = p.load(&cfg).unwrap().unwrap();
    assert_eq!(again.ledger.state_hash(), led.state_hash());
    assert_eq!(p.upgraded_from, None);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A snapshot whose ledger is numbered `i` (balances, a sequence, the time and the height
/// differ with it), without blocks.
fn snapshot_at(g: &Genesis, i: u64) -> Snapshot {
    let base = ledger(g);
    let mut accounts = base.accounts().to_vec();
    accounts[1].balance = Amount::new(1_000 + i).unwrap();
    accounts[2].sequence = i;
    let led = State::from_parts(
        accounts,
        base.peers().cloned().collect(),
        Timestamp(2_000 + i),
        12 + i,
    );
    Snapshot {
        order: Some(order()),
        blocks: Vec::new(),
        history: vec![Hash([5; 32])],
        ledger: led,
        last_block_ts: Timestamp(2_050 + i),
        proposal_since: Timestamp(2_060),
    }
}

/// Issue 15: checkpoints are written by the writer thread; pausing lets it finish, and a
/// reader of the same store then finds one of the snapshots handed over (the newest wins
/// a race, an older one is never written after it); `finish` writes the last snapshot
/// durably; a paused writer starts again at the next snapshot.
#[test]
fn checkpoints_are_written_by_the_writer_and_finish_writes_the_last_one() {
    let g = genesis();
    let cfg = Config::new(g.clone(), pk(50));
    let path = tmp("writer");
    let (store, _) = Store::open(&path).unwrap();
    let store = Arc::new(store);
    let mut cp = Checkpoints::new(
        Persist::new(Arc::clone(&store), path.clone()),
        g.network_id().0,
    );
    assert!(cp.sync_point().is_none());
    let (a, b) = (snapshot_at(&g, 1), snapshot_at(&g, 2));
    cp.submit(Box::new(a.clone())).unwrap();
    cp.submit(Box::new(b.clone())).unwrap();
    cp.pause().unwrap();
    let read = || {
        Persist::new(Arc::clone(&store), path.clone())
            .load(&cfg)
            .unwrap()
            .expect("a checkpoint was written")
            .ledger
    };
    let got = read();
    assert!(got == a.ledger || got == b.ledger, "a snapshot handed over");
    // Height 12: the order covers it, so the checkpoint is also a sync point.
    let c = snapshot_at(&g, 0);
    cp.finish(&c).unwrap();
    assert_eq!(read(), c.ledger);
    assert_eq!(cp.sync_point().map(|s| s.position), Some(c.ledger.height()));
    // Inside the rate after the writer's checkpoint: dropped, not an error; a new writer
    // then stops cleanly.
    cp.submit(Box::new(snapshot_at(&g, 4))).unwrap();
    cp.pause().unwrap();
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Issue 15: a checkpoint the writer cannot write stops it, and the failure reaches the main
/// loop as the store error at its next snapshot (and at shutdown), never silently. The
/// failure is real: the base tree the incremental write must read is not in the store.
#[test]
fn a_failed_checkpoint_stops_the_writer_and_is_returned_at_the_next_snapshot() {
    let g = genesis();
    let path = tmp("writer-fail");
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    p.adopt_tree(cvx_etch::Hash([9; 32]), snapshot_at(&g, 1).ledger);
    let mut cp = Checkpoints::new(p, g.network_id().0);
    cp.submit(Box::new(snapshot_at(&g, 2))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        if let Err(e) = cp.submit(Box::new(snapshot_at(&g, 3))) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the failure never reached the caller"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(err, NodeError::Store { .. }), "{err}");
    assert!(
        err.to_string().contains("peer.etch"),
        "names the store: {err}"
    );
    assert!(
        cp.finish(&snapshot_at(&g, 4)).is_err(),
        "shutdown reports it too"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Issue 6: many checkpoints with changing ledger and blocks, then GC and reopen: the
/// snapshot, its blocks and the ledger (state hash) are intact and the file shrank.
#[test]
fn gc_keeps_the_snapshot_its_blocks_and_the_ledger() {
    let g = genesis();
    let cfg = Config::new(g.clone(), pk(50));
    let path = tmp("gc");
    let (store, _) = Store::open(&path).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let mut last = None;
    for i in 0..60u64 {
        let blocks: Vec<Arc<Block>> = (0..3u64)
            .map(|j| {
                let body = BoundedVec::try_from_vec(Vec::new()).unwrap();
                Arc::new(Block {
                    header: cvx_protocol::consensus::BlockHeader {
                        proposer: pk(50),
                        timestamp: Timestamp(10_000 + i * 10 + j),
                        tx_count: 0,
                        tx_hash: cvx_protocol::consensus::body_hash(&body),
                    },
                    signature: Signature([7; 64]),
                    transactions: body,
                })
            })
            .collect();
        let snap = Snapshot {
            blocks,
            ..snapshot_at(&g, i)
        };
        p.save(&snap, g.network_id().0, true).unwrap();
        last = Some(snap);
    }
    let last = last.unwrap();
    let before = p.store().stats().unwrap();
    let report = collect_garbage(p.store()).unwrap().unwrap();
    assert!(report.records_after < report.records_before, "{report:?}");
    assert_eq!(report.dangling, 0, "{report:?}");
    // The store stays usable after the swap.
    assert!(p.store().root("snapshot").unwrap().is_some());
    drop(p);
    let (store, _) = Store::open(&path).unwrap();
    let after = store.stats().unwrap();
    assert!(
        after.used_bytes < before.used_bytes && after.records < before.records,
        "before {before:?} after {after:?}"
    );
    let mut p = Persist::new(Arc::new(store), path.clone());
    let back = p.load(&cfg).unwrap().unwrap();
    assert_eq!(back.ledger, last.ledger);
    assert_eq!(back.ledger.state_hash(), last.ledger.state_hash());
    assert_eq!(back.blocks, last.blocks);
    assert_eq!(back.order, last.order);
    assert_eq!(back.last_block_ts, last.last_block_ts);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn peer_children_never_panics_on_junk() {
    use cvx_etch::Children as _;
    let mut out = Vec::new();
    for junk in [&[][..], &[1], &[2, 0, 0], &[2; 200], &[1; 40], &[0xff; 64]] {
        PeerChildren.children(junk, &mut out);
    }
}

#[test]
fn an_unknown_record_version_is_refused_with_a_fix() {
    let g = genesis();
    let cfg = Config::new(g, pk(50));
    let path = tmp("future");
    let (store, _) = Store::open(&path).unwrap();
    let h = store
        .put(&postcard::to_allocvec(&(RECORD_VERSION + 1, 0u8)).unwrap())
        .unwrap();
    store.set_root("snapshot", Some(h)).unwrap();
    let mut p = Persist::new(Arc::new(store), path.clone());
    let e = p.load(&cfg).unwrap_err().to_string();
    let v = format!("version {}", RECORD_VERSION + 1);
    assert!(e.contains(&v) && e.contains("newer"), "{e}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
