//! `cvx-loadgen`: throwaway account keys and signed demo traffic for a devnet.
//!
//! (`cvx-loadgen --help` and `cvx-loadgen SUBCOMMAND --help` have the details.)
//!
//! ```text
//! cvx-loadgen keys --seed S --count N          public keys of accounts 0..N (hex, one a line)
//! cvx-loadgen run --genesis F --seed S --accounts N --rate TPS --peer HOST:PORT ...
//!                                              submit transfers; one JSON report a second
//! cvx-loadgen run ... --schedule TPS:SECS,TPS:SECS,...[,P%:SECS]
//!                                              benchmark: step the offered load, one JSON
//!                                              line per step ("step": true), then exit;
//!                                              P% = P percent of the best step before it
//! cvx-loadgen verify-bench [--count N]         single vs batch verification (the rule's)
//!                                              of N transactions: the ingress bound (JSON)
//! cvx-loadgen withdraw --genesis F --seed S --account I --sequence Q --peer-key HEX --out FILE
//!                                              a signed set-peer-stake 0 file (tests)
//! ```
//!
//! Every account has at most one transaction in flight, so sequence numbers stay exact:
//! a refusal at ingress (NETWORK, LOAD) is retried with the same signed transaction.

#![forbid(unsafe_code)]

mod cli;
mod verify_bench;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser as _;
use cli::{Cli, Cmd};
use cvx_loadgen::Keypair;
use cvx_protocol::ledger::{Action, Genesis, SignedTransaction, Transaction};
use cvx_protocol::peer_wire::{self, Hello, Message, PEER_WIRE_VERSION, Role};
use cvx_protocol::txfile::TxFile;
use cvx_protocol::{Address, Amount, Canonical, Hash, NetworkId, PublicKey, Timestamp, Token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const LABEL: &str = cvx_loadgen::DEVNET_ACCOUNT;

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// What `run` drives.
struct Flags {
    seed: u64,
    count: usize,
    rate: u64,
    peers: Vec<String>,
    schedule: Vec<(cli::Load, u64)>,
}

fn load_genesis(p: &Path) -> Result<Genesis, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Genesis::decode(&bytes).map_err(|e| format!("{}: {e}", p.display()))
}

/// The network of the genesis file `p`: the hash of its bytes, once they read as a
/// genesis (`Genesis::stakes_of`: the layout is checked, the accounts are skipped). The load
/// needs only the network id; decoding a genesis of 10^6 accounts in full (every key
/// validated) kept the load generator off the network for 9–14 s after the devnet was
/// ready, while the peers, which validate every key, were already running.
fn genesis_network(p: &Path) -> Result<NetworkId, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let network = NetworkId(cvx_protocol::hash::hash(&bytes));
    Genesis::stakes_of(&bytes, &network).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(network)
}

fn count(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|e| e.to_string())
}

fn main_with(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Keys { seed, count } => {
            let hex: String = cvx_loadgen::derived_publics(LABEL, seed, count)
                .iter()
                .map(|k| k.to_hex() + "\n")
                .collect();
            out(&hex);
            Ok(())
        }
        Cmd::Withdraw {
            genesis,
            seed,
            account,
            sequence,
            peer_key,
            out: path,
        } => {
            let g = load_genesis(&genesis)?;
            let network = g.network_id();
            let peer = PublicKey::from_hex(&peer_key)?;
            let key = Keypair::derive(LABEL, seed, account);
            let tx = Transaction {
                origin: Address(account),
                sequence,
                action: Action::SetPeerStake {
                    peer,
                    stake: Amount::ZERO,
                },
            };
            let file = TxFile::new(network, key.sign_tx(&network, tx));
            std::fs::write(&path, file.encode()).map_err(|e| format!("{}: {e}", path.display()))
        }
        Cmd::VerifyBench { count: n } => {
            verify_bench::verify_bench(count(n)?.max(64));
            Ok(())
        }
        Cmd::Run {
            genesis,
            seed,
            accounts,
            rate,
            peers,
            schedule,
        } => {
            let network = genesis_network(&genesis)?;
            let f = Flags {
                seed,
                count: count(accounts)?,
                rate,
                peers,
                schedule: schedule.map(|s| s.0).unwrap_or_default(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(run(network, f));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match main_with(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cvx-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Default)]
struct Stats {
    finalized: u64,
    latencies: Vec<u32>,
    refused: BTreeMap<String, u64>,
}

fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

fn report(stats: &Mutex<Stats>, started: Instant, last: bool) {
    let Ok(g) = stats.lock() else { return };
    let mut l = g.latencies.clone();
    l.sort_unstable();
    let v = serde_json::json!({
        "elapsed_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "finalized": g.finalized,
        "p50_ms": percentile(&l, 50),
        "p99_ms": percentile(&l, 99),
        "refused": g.refused,
        "final": last,
    });
    out(&format!("{v}\n"));
}

async fn run(network: NetworkId, f: Flags) {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let started = Instant::now();
    let n_peers = f.peers.len();
    let first = match f.schedule.first() {
        Some((cli::Load::Rate(r), _)) => *r,
        _ => f.rate,
    };
    let per_peer_rate = Arc::new(std::sync::atomic::AtomicU64::new(
        (first / n_peers as u64).max(1),
    ));
    for (p, addr) in f.peers.iter().enumerate() {
        let accounts: Vec<u64> = (0..f.count as u64)
            .filter(|i| usize::try_from(*i).unwrap_or(0) % n_peers == p)
            .collect();
        tokio::spawn(drive(
            addr.clone(),
            network,
            f.seed,
            accounts,
            Arc::clone(&per_peer_rate),
            Arc::clone(&stats),
        ));
    }
    let st = Arc::clone(&stats);
    let reporter = async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            report(&st, started, false);
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let schedule = f.schedule.clone();
    let st2 = Arc::clone(&stats);
    let stepper = async move {
        if schedule.is_empty() {
            return std::future::pending::<()>().await;
        }
        let mut best = 0.0f64;
        for (load, secs) in schedule {
            let (r, fraction) = match load {
                cli::Load::Rate(r) => (r, None),
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                cli::Load::OfBest(p) => {
                    (((best * p as f64) / 100.0).round().max(1.0) as u64, Some(p))
                }
            };
            per_peer_rate.store(
                (r / n_peers as u64).max(1),
                std::sync::atomic::Ordering::Relaxed,
            );
            if fraction.is_some() {
                // A step after an overloaded one starts with its backlog: let it drain at
                // the new load before measuring.
                tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
            }
            if let Ok(mut g) = st2.lock() {
                g.finalized = 0;
                g.latencies.clear();
            }
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            best = best.max(step_report(&st2, r, fraction, t0));
        }
    };
    tokio::select! {
        () = stepper => return,
        () = reporter => {}
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    report(&stats, started, true);
}

struct Account {
    key: Keypair,
    index: u64,
    seq: u64,
    pending: Option<SignedTransaction>,
}

fn now_ts() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
    )
}

async fn read_msg(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Message> {
    let mut h = [0u8; 4];
    rd.read_exact(&mut h).await.ok()?;
    let n = peer_wire::frame_len(h)?;
    let mut buf = vec![0u8; n];
    rd.read_exact(&mut buf).await.ok()?;
    Message::decode(&buf).ok()
}

/// Drive one peer connection with `accounts`, reconnecting on failure.
async fn drive(
    addr: String,
    network: NetworkId,
    seed: u64,
    accounts: Vec<u64>,
    rate: Arc<std::sync::atomic::AtomicU64>,
    stats: Arc<Mutex<Stats>>,
) {
    let mut accts: Vec<Account> = accounts
        .iter()
        .map(|i| Account {
            key: Keypair::derive(LABEL, seed, *i),
            index: *i,
            seq: 1,
            pending: None,
        })
        .collect();
    loop {
        let Ok(stream) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let hello = Message::Hello(Hello {
            version: PEER_WIRE_VERSION,
            network,
            role: Role::Client,
            challenge: Token([0; 32]),
            time: now_ts(),
        });
        if wr
            .write_all(&peer_wire::encode_frame(&hello))
            .await
            .is_err()
        {
            continue;
        }
        let (mtx, mut mrx) = mpsc::channel::<Message>(65_536);
        tokio::spawn(async move {
            while let Some(m) = read_msg(&mut rd).await {
                if mtx.send(m).await.is_err() {
                    break;
                }
            }
        });
        let mut ready: VecDeque<usize> = (0..accts.len()).collect();
        let mut inflight: HashMap<Hash, (usize, Instant)> = HashMap::new();
        let mut retry: VecDeque<(Instant, usize)> = VecDeque::new();
        let tick_ms = 10u64;
        let mut carry = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        'conn: loop {
            tokio::select! {
                m = mrx.recv() => {
                    let Some(m) = m else { break 'conn };
                    if let Message::Submitted { id, result } = m
                        && let Some((i, t0)) = inflight.remove(&id)
                    {
                        match result {
                            Ok(_) => {
                                let a = &mut accts[i];
                                a.seq += 1;
                                a.pending = None;
                                ready.push_back(i);
                                if let Ok(mut g) = stats.lock() {
                                    g.finalized += 1;
                                    g.latencies.push(u32::try_from(t0.elapsed().as_millis()).unwrap_or(u32::MAX));
                                }
                            }
                            Err(code) => {
                                if let Ok(mut g) = stats.lock() {
                                    *g.refused.entry(code.name().to_owned()).or_default() += 1;
                                }
                                retry.push_back((Instant::now() + Duration::from_millis(200), i));
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    while retry.front().is_some_and(|(t, _)| *t <= now) {
                        if let Some((_, i)) = retry.pop_front() {
                            ready.push_back(i);
                        }
                    }
                    // Lost in flight (e.g. dropped by a full mempool): resend after 10 s.
                    let stale: Vec<Hash> = inflight
                        .iter()
                        .filter(|(_, (_, t))| now.duration_since(*t) > Duration::from_secs(10))
                        .map(|(h, _)| *h)
                        .collect();
                    for h in stale {
                        if let Some((i, _)) = inflight.remove(&h) {
                            ready.push_back(i);
                        }
                    }
                    let mut buf = Vec::new();
                    // Offered load: rate per second, in 10 ms ticks (remainder carried).
                    let milli = rate.load(std::sync::atomic::Ordering::Relaxed) * tick_ms + carry;
                    let per_tick = milli / 1000;
                    carry = milli % 1000;
                    for _ in 0..per_tick {
                        let Some(i) = ready.pop_front() else { break };
                        let a = &mut accts[i];
                        let tx = a.pending.get_or_insert_with(|| {
                            let to = u64::from(a.index == 0);
                            a.key.sign_tx(&network, Transaction {
                                origin: Address(a.index),
                                sequence: a.seq,
                                action: Action::Transfer {
                                    to: Address(to),
                                    amount: Amount::new(1).unwrap_or(Amount::ZERO),
                                },
                            })
                        });
                        inflight.insert(tx.id(), (i, now));
                        buf.extend_from_slice(&peer_wire::encode_frame(&Message::Submit(tx.clone())));
                    }
                    if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
                        break 'conn;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `P%` step runs this long at its load before its measurement starts.
const SETTLE_SECS: u64 = 4;

/// One step's JSON line; returns its finalized tx/s. `of_best`: the step's load was this
/// percentage of the best finalized tx/s before it (`saturation_percent` in the line).
fn step_report(stats: &Mutex<Stats>, offered: u64, of_best: Option<u64>, t0: Instant) -> f64 {
    let Ok(g) = stats.lock() else { return 0.0 };
    let mut l = g.latencies.clone();
    l.sort_unstable();
    let secs = t0.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let tps = g.finalized as f64 / secs.max(0.001);
    let mut v = serde_json::json!({
        "step": true,
        "offered_tx_per_sec": offered,
        "finalized": g.finalized,
        "tx_per_sec": (tps * 10.0).round() / 10.0,
        "p50_ms": percentile(&l, 50),
        "p99_ms": percentile(&l, 99),
        "refused": g.refused,
    });
    if let Some(p) = of_best {
        v["saturation_percent"] = serde_json::json!(p);
    }
    out(&format!("{v}\n"));
    tps
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_devnets_and_the_tests_invocations_parse() {
        for args in [
            &["cvx-loadgen", "keys", "--seed", "7", "--count", "4"][..],
            &[
                "cvx-loadgen",
                "run",
                "--genesis",
                "g.bin",
                "--seed",
                "7",
                "--accounts",
                "20",
                "--rate",
                "100",
                "--peer",
                "a:1",
                "--peer",
                "b:2",
                "--schedule",
                "500:6,1000:6,80%:6",
            ],
            &["cvx-loadgen", "verify-bench", "--count", "1024"],
            &[
                "cvx-loadgen",
                "withdraw",
                "--seed",
                "7",
                "--account",
                "3",
                "--sequence",
                "2",
                "--peer-key",
                "ab",
                "--genesis",
                "g.bin",
                "--out",
                "w.tx",
            ],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
        // Not TPS:SECS; a P% step first; 0%; not a number.
        for bad in ["500", "80%:6", "500:6,0%:6", "500:6,x%:6"] {
            let r = Cli::try_parse_from([
                "cvx-loadgen",
                "run",
                "--genesis",
                "g",
                "--peer",
                "a:1",
                "--schedule",
                bad,
            ]);
            assert_eq!(r.expect_err(bad).exit_code(), 2, "{bad}");
        }
    }
}
