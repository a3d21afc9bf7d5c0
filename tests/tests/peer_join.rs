//! System test of joining by state sync with real processes (issue 6, acceptance 4): a
//! 4-peer `cvx-devnet` runs with one spare peer prepared (`--spare 1`: its own
//! running signer, a funded controller account, a config with `state_sync = true`); the
//! spare starts with an empty store, syncs the ledger by hash from the others at a position
//! past genesis (it replays nothing), catches up to the same finalized state, and once a
//! create-peer transaction signed by its controller stakes it, its own blocks get
//! finalized.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cvx_protocol::ledger::{Action, Genesis, Transaction};
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Amount, Canonical, HostAddr, PublicKey};
use cvx_systest::devnet::{
    account_seed, api_in, bin_dir, cvx_peer, devnet, finality, http_get, listen_of, metric, serial,
    status, tmp_dir, wait_ready, wait_until,
};

struct Spare {
    dir: String,
    key: String,
    controller: u64,
    listen: String,
}

fn spare(dir: &Path) -> Spare {
    let text = std::fs::read_to_string(dir.join("spares")).unwrap();
    let f: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    Spare {
        dir: f[0].to_owned(),
        key: f[1].to_owned(),
        controller: f[2].parse().unwrap(),
        listen: f[3].to_owned(),
    }
}

/// SIGTERM on drop (graceful: the devnet stops its children), SIGKILL if it lingers, so
/// a failed assertion leaves no process behind.
struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Acceptance 4: a fifth peer joins by state sync (not by replaying from genesis) and
/// takes part in consensus once staked through a create-peer transaction.
#[test]
#[allow(clippy::too_many_lines)]
fn peer_joins_by_state_sync_and_counts_once_staked() {
    let _g = serial();
    let dir = tmp_dir("join");
    let mut devnet = Running(devnet(&dir, 40, 200, &["--spare", "1"]));
    wait_ready(&dir, &mut devnet.0, Duration::from_secs(60));
    let addr0 = listen_of(&dir, 0);
    // Past genesis, with a persisted sync point.
    wait_until("finality past 10", Duration::from_secs(30), || {
        finality(&addr0) > 10
    });
    // The sync point is the last checkpoint (written at most once a second).
    wait_until("a sync point past genesis", Duration::from_secs(10), || {
        let latest = cvx_peer(&["query", "sync", "latest", "--peer", &addr0]).unwrap();
        assert!(latest["root"].is_string(), "{latest}");
        latest["position"].as_u64().unwrap() > 0
    });

    // Start the spare: empty store, state_sync = true, bootstrap = the four peers.
    let sp = spare(&dir);
    let pd = dir.join(&sp.dir);
    assert!(
        !pd.join("data").exists(),
        "the spare starts with an empty store"
    );
    let t_join = Instant::now();
    let child = Command::new(bin_dir().join("cvx-peer"))
        .arg("run")
        .arg("--config")
        .arg(pd.join("peer.toml"))
        .stdout(std::fs::File::create(pd.join("peer.out")).unwrap())
        .stderr(std::fs::File::create(pd.join("peer.log")).unwrap())
        .spawn()
        .unwrap();
    let spare_peer = Running(child);
    wait_until("the spare joined", Duration::from_secs(30), || {
        std::fs::read_to_string(pd.join("peer.log"))
            .unwrap_or_default()
            .contains("joined by state sync")
    });
    let join_ms = t_join.elapsed().as_millis();
    let log = std::fs::read_to_string(pd.join("peer.log")).unwrap();
    assert!(!log.contains("restored from the store"), "{log}");
    // Confirmed by more than 1/3 of the stake the synced state lists.
    let line = log
        .lines()
        .find(|l| l.contains("joined by state sync"))
        .unwrap();
    let field = |name: &str| -> u128 {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (confirmed, total) = (field("confirmed_stake"), field("total_stake"));
    assert!(confirmed * 3 > total, "{line}");
    println!("{line}");
    let api = api_in(&pd.join("peer.out"));
    let m = http_get(&api, "/metrics");
    let from = metric(&m, "cvx_peer_state_synced_from");
    assert!(from > 0, "joined past genesis: {m}");
    assert_eq!(metric(&m, "cvx_peer_start_position"), from, "{m}");

    // It catches up: finality near the others', and the same finalized state at a
    // position both have (state hash and chain value, via the sync-point query).
    wait_until("the spare catches up", Duration::from_secs(20), || {
        let f = finality(&sp.listen);
        f > from && f + 3 >= finality(&addr0)
    });
    let m = http_get(&api, "/metrics");
    let executed = metric(&m, "cvx_peer_blocks_executed_total");
    let fin = finality(&sp.listen);
    assert!(
        executed <= fin - from,
        "never replayed from genesis: executed {executed} blocks, finality {fin}, joined at {from}"
    );
    let mut compared = false;
    wait_until(
        "same state at a common position",
        Duration::from_secs(10),
        || {
            let f = finality(&sp.listen).min(finality(&addr0));
            let a = cvx_peer(&["query", "sync", &f.to_string(), "--peer", &sp.listen]);
            let b = cvx_peer(&["query", "sync", &f.to_string(), "--peer", &addr0]);
            if let (Some(a), Some(b)) = (a, b)
                && !a.is_null()
                && !b.is_null()
            {
                assert_eq!(a["state_hash"], b["state_hash"], "same state at {f}");
                assert_eq!(a["chain"], b["chain"], "same blocks up to {f}");
                compared = true;
            }
            compared
        },
    );

    // Stake it: create-peer signed by its controller (account `controller`, which the
    // demo load never touches), submitted through peer-0.
    let g = Genesis::decode(&std::fs::read(dir.join("genesis.bin")).unwrap()).unwrap();
    let network = g.network_id();
    let seed = account_seed(&dir);
    let controller = cvx_loadgen::Keypair::derive("devnet-account", seed, sp.controller);
    let peer_key = PublicKey::from_hex(&sp.key).unwrap();
    let tx = controller.sign_tx(
        &network,
        Transaction {
            origin: Address(sp.controller),
            sequence: 1,
            action: Action::CreatePeer {
                key: peer_key,
                stake: Amount::new(1_000_000_000).unwrap(),
                host: HostAddr::new(&sp.listen).ok(),
            },
        },
    );
    let file = dir.join("create-peer.tx");
    std::fs::write(&file, TxFile::new(network, tx).encode()).unwrap();
    let out = Command::new(bin_dir().join("cvx-peer"))
        .arg("submit")
        .arg(&file)
        .args(["--peer", &addr0, "--timeout", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("\"outcome\":\"applied\""),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let staked = cvx_peer(&["query", "peer", &sp.key, "--peer", &addr0]).unwrap();
    assert_eq!(staked["stake"].as_u64().unwrap(), 1_000_000_000, "{staked}");
    let staked_at = staked["last_block_time"].as_u64().unwrap();

    // Its orders count: a block it proposes is finalized by the network (its record's
    // last_block_time moves past the staking time), and it takes part in consensus.
    wait_until(
        "a block of the new peer is finalized",
        Duration::from_secs(20),
        || {
            cvx_peer(&["query", "peer", &sp.key, "--peer", &addr0])
                .is_some_and(|p| p["last_block_time"].as_u64().unwrap() > staked_at)
        },
    );
    let st = status(&sp.listen).unwrap();
    assert_eq!(st["in_consensus"], true, "{st}");
    let m = http_get(&api, "/metrics");
    assert!(metric(&m, "cvx_peer_blocks_signed_total") > 0, "{m}");
    println!(
        "joined at position {from} in {join_ms} ms (state sync + confirmation), executed {executed} blocks to reach {fin}"
    );

    drop(spare_peer);
    drop(devnet);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Recovery: a staked peer loses its store (killed, data_dir removed) and rejoins by state
/// sync; its signer already committed to an older prefix, so the join bridges it (block
/// ids from that point to the sync point) before the signer signs; the peer catches up and
/// its blocks are finalized again.
#[test]
fn peer_that_lost_its_store_rejoins_by_state_sync() {
    let _g = serial();
    let dir = tmp_dir("rejoin");
    let mut devnet = Running(devnet(&dir, 40, 200, &[]));
    wait_ready(&dir, &mut devnet.0, Duration::from_secs(60));
    let addr0 = listen_of(&dir, 0);
    let addr3 = listen_of(&dir, 3);
    wait_until("finality past 50", Duration::from_secs(30), || {
        finality(&addr3) > 50
    });
    let pd = dir.join("peer-3");
    let pid: i32 = std::fs::read_to_string(pd.join("data/cvx-peer.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::remove_dir_all(pd.join("data")).unwrap();
    let key3 = std::fs::read_to_string(pd.join("peer.toml"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("key"))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    let mut cfg = std::fs::OpenOptions::new()
        .append(true)
        .open(pd.join("peer.toml"))
        .unwrap();
    let boot: Vec<String> = (0..3)
        .map(|i| format!("\"{}\"", listen_of(&dir, i)))
        .collect();
    writeln!(cfg, "bootstrap = [{}]\nstate_sync = true", boot.join(", ")).unwrap();
    drop(cfg);
    // The three others go on (3/4 of the stake) past the killed peer's signed prefix.
    let before = finality(&addr0);
    wait_until("the others go on", Duration::from_secs(20), || {
        finality(&addr0) > before + 20
    });
    // Sync points are persisted with the store's checkpoints (about once a second), so
    // 20 blocks can pass before one is offered past the stop: wait for it.
    wait_until(
        "a sync point past the stop",
        Duration::from_secs(20),
        || {
            cvx_peer(&["query", "sync", "latest", "--peer", &addr0])
                .is_some_and(|v| v["position"].as_u64().is_some_and(|p| p > before))
        },
    );

    let child = Command::new(bin_dir().join("cvx-peer"))
        .arg("run")
        .arg("--config")
        .arg(pd.join("peer.toml"))
        .stdout(std::fs::File::create(pd.join("rejoin.out")).unwrap())
        .stderr(std::fs::File::create(pd.join("rejoin.log")).unwrap())
        .spawn()
        .unwrap();
    let rejoined = Running(child);
    wait_until("the peer rejoined", Duration::from_secs(30), || {
        std::fs::read_to_string(pd.join("rejoin.log"))
            .unwrap_or_default()
            .contains("joined by state sync")
    });
    let log = std::fs::read_to_string(pd.join("rejoin.log")).unwrap();
    assert!(
        log.contains("bridged the signer's committed prefix"),
        "the signer's watermark was bridged: {log}"
    );
    let m = http_get(&api_in(&pd.join("rejoin.out")), "/metrics");
    let from = metric(&m, "cvx_peer_state_synced_from");
    assert!(
        from > before,
        "joined at {from}, past where it stopped: {m}"
    );
    wait_until("it catches up", Duration::from_secs(20), || {
        let f = finality(&addr3);
        f > from && f + 3 >= finality(&addr0)
    });
    let rec = cvx_peer(&["query", "peer", &key3, "--peer", &addr0]).unwrap();
    let t = rec["last_block_time"].as_u64().unwrap();
    wait_until(
        "its blocks are finalized again",
        Duration::from_secs(20),
        || {
            cvx_peer(&["query", "peer", &key3, "--peer", &addr0])
                .is_some_and(|p| p["last_block_time"].as_u64().unwrap() > t)
        },
    );
    drop(rejoined);
    drop(devnet);
    let _ = std::fs::remove_dir_all(&dir);
}
