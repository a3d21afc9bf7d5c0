//! `cvx-peer`: parse arguments, call the library, print, map errors to exit codes.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cvx_peer::config::Settings;
use cvx_peer::devnet::{self, DevnetOptions};
use cvx_peer::exit::Exit;
use cvx_peer::net::client::PeerClient;
use cvx_peer::node::Node;
use cvx_protocol::Canonical;
use cvx_protocol::peer_wire::{Answer, Query};
use cvx_protocol::txfile::TxFile;

const USAGE: &str = "\
cvx-peer: a cvx peer (consensus, store, network); never holds a key

USAGE:
  cvx-peer run --config FILE [--require-landlock]
                                        run the peer (prints `listening ADDR` on stdout) inside
                                        its sandbox (Landlock to data_dir, seccomp allowlist)
  cvx-peer submit FILE --peer HOST:PORT [--timeout SECS]
                                        submit a signed-transaction file (cvx-vault's output)
                                        and wait for its finalized result
  cvx-peer query account ADDRESS --peer HOST:PORT
  cvx-peer query peer KEYHEX --peer HOST:PORT
  cvx-peer query tx IDHEX --peer HOST:PORT
  cvx-peer query sync latest|POSITION --peer HOST:PORT
                                        state-sync point: position, chain value, state hash,
                                        tree root (what a joining peer syncs and confirms)
  cvx-peer status --peer HOST:PORT      finality, state root, connection counts (JSON)
  cvx-peer halt --config FILE           breach button: lock the signer, then stop the peer
  cvx-peer gc --config FILE             collect the store's garbage once (peer stopped)
  cvx-peer devnet [--peers N] [--duration SECS] [--dir DIR] [--rate TPS] [--accounts N] [--max-queue N] [--json]
                 [--bench [--duration STEP_SECS]]
                                        a local network of N signers + N peers + load
                                        (--registered-hosts H0,H1,..: on-chain hosts, e.g. proxies)
                                        (--spare N: also prepare N spare peers, not started and
                                        not staked, that join by state sync; see DIR/spares)
                                        (--gc-interval SECS: each peer's gc_interval_secs)
                                        --bench: offered load 500..20000 tx/s in steps, finalized
                                        tx/s and finality p50/p99 per step, next to the batch-
                                        verification bound measured in the same run
";

fn help() -> String {
    let mut s = USAGE.to_owned();
    s.push_str("\nEXIT CODES:\n");
    for e in Exit::ALL {
        s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
    }
    s
}

struct Failure(Exit, String);

fn usage(msg: &str) -> Failure {
    Failure(Exit::Usage, format!("{msg}\n\n{USAGE}"))
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

#[derive(Default)]
struct Flags {
    config: Option<PathBuf>,
    peer: Option<String>,
    dir: Option<PathBuf>,
    peers: Option<usize>,
    duration: Option<u64>,
    rate: Option<u64>,
    accounts: Option<usize>,
    timeout: Option<u64>,
    json: bool,
    hosts: Option<Vec<String>>,
    max_queue: Option<usize>,
    bench: bool,
    spare: Option<usize>,
    gc_interval: Option<u64>,
    require_landlock: bool,
    positional: Vec<String>,
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Failure> {
    v.parse()
        .map_err(|_| usage(&format!("{name} {v}: not a number")))
}

fn parse_flags(args: &[String]) -> Result<Flags, Failure> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--config" => f.config = Some(val(a)?.into()),
            "--peer" => f.peer = Some(val(a)?),
            "--dir" => f.dir = Some(val(a)?.into()),
            "--peers" => f.peers = Some(num(a, &val(a)?)?),
            "--duration" => f.duration = Some(num(a, &val(a)?)?),
            "--rate" => f.rate = Some(num(a, &val(a)?)?),
            "--accounts" => f.accounts = Some(num(a, &val(a)?)?),
            "--timeout" => f.timeout = Some(num(a, &val(a)?)?),
            "--max-queue" => f.max_queue = Some(num(a, &val(a)?)?),
            "--spare" => f.spare = Some(num(a, &val(a)?)?),
            "--gc-interval" => f.gc_interval = Some(num(a, &val(a)?)?),
            "--json" => f.json = true,
            "--bench" => f.bench = true,
            "--require-landlock" => f.require_landlock = true,
            "--registered-hosts" => {
                f.hosts = Some(val(a)?.split(',').map(str::to_owned).collect());
            }
            s if s.starts_with("--") => return Err(usage(&format!("unknown flag {s}"))),
            s => f.positional.push(s.to_owned()),
        }
    }
    Ok(f)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure(Exit::Usage, format!("cannot start the async runtime: {e}")))
}

async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

fn cmd_run(f: &Flags) -> Result<(), Failure> {
    let path = f
        .config
        .clone()
        .ok_or_else(|| usage("run needs --config FILE"))?;
    let mut settings = Settings::load(&path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    settings.require_landlock |= f.require_landlock;
    init_logs();
    // Before the runtime: every thread it starts inherits Landlock and seccomp.
    cvx_peer::sandbox::enter(&settings).map_err(|e| Failure(Exit::Sandbox, e.to_string()))?;
    let pidfile = settings.data_dir.join("cvx-peer.pid");
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::start(settings)
            .await
            .map_err(|e| Failure(Exit::from(&e), e.to_string()))?;
        let addr = node
            .local_addr()
            .map_err(|e| Failure(Exit::Bind, e.to_string()))?;
        let _ = std::fs::write(&pidfile, format!("{}\n", std::process::id()));
        out(&format!("listening {addr}\n"));
        if let Some(api) = node.api_addr() {
            out(&format!("api {api}\n"));
        }
        tracing::info!(%addr, network = %node.network(), "serving");
        let r = node
            .run(terminated())
            .await
            .map_err(|e| Failure(Exit::from(&e), e.to_string()));
        let _ = std::fs::remove_file(&pidfile);
        r
    })
}

/// Hidden test hook (tests/tests/peer_sandbox.rs): `sandbox-probe --config FILE ACTION
/// [ARG]` enters exactly `run`'s sandbox (same settings, same function, same runtime),
/// does ACTION and prints `allowed ACTION` or `denied ACTION: ERROR`. A forbidden call
/// must kill the process by SIGSYS; if it returns, exit 12 (`NOT KILLED`).
fn cmd_sandbox_probe(f: &Flags) -> Result<(), Failure> {
    use cvx_peer::sandbox::{ProbeAction, ProbeOutcome};
    let path = f
        .config
        .clone()
        .ok_or_else(|| usage("sandbox-probe needs --config FILE"))?;
    let name = f
        .positional
        .get(1)
        .ok_or_else(|| usage("sandbox-probe needs an ACTION"))?;
    let action =
        ProbeAction::parse(name, f.positional.get(2).map(String::as_str)).map_err(|e| usage(&e))?;
    let mut settings = Settings::load(&path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    settings.require_landlock |= f.require_landlock;
    init_logs();
    cvx_peer::sandbox::enter(&settings).map_err(|e| Failure(Exit::Sandbox, e.to_string()))?;
    let rt = runtime()?;
    match rt.block_on(cvx_peer::sandbox::probe(action, &settings)) {
        ProbeOutcome::Allowed => out(&format!("allowed {name}\n")),
        ProbeOutcome::Denied(e) => out(&format!("denied {name}: {e}\n")),
        ProbeOutcome::NotKilled(r) => {
            return Err(Failure(
                Exit::Sandbox,
                format!("NOT KILLED: {name} returned {r}"),
            ));
        }
    }
    Ok(())
}

fn peer_addr(f: &Flags) -> Result<String, Failure> {
    f.peer
        .clone()
        .ok_or_else(|| usage("needs --peer HOST:PORT"))
}

fn client_err(e: &cvx_peer::net::client::ClientError) -> Failure {
    Failure(Exit::Client, e.to_string())
}

fn cmd_submit(f: &Flags) -> Result<(), Failure> {
    let file = f
        .positional
        .get(1)
        .ok_or_else(|| usage("submit needs a FILE"))?;
    let bytes = std::fs::read(file).map_err(|e| Failure(Exit::Usage, format!("{file}: {e}")))?;
    let txf = TxFile::decode(&bytes).map_err(|e| {
        Failure(
            Exit::Usage,
            format!("{file}: not a cvx signed-transaction file: {e}"),
        )
    })?;
    let addr = peer_addr(f)?;
    let timeout = Duration::from_secs(f.timeout.unwrap_or(60));
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = PeerClient::connect(&addr, Some(txf.network), timeout)
            .await
            .map_err(|e| match e {
                cvx_peer::net::client::ClientError::WrongNetwork { .. } => Failure(
                    Exit::TxFailed,
                    format!("{file} is for another network than the peer's: {e}"),
                ),
                e => client_err(&e),
            })?;
        let id = txf.signed.id();
        match c.submit(txf.signed).await.map_err(|e| client_err(&e))? {
            Ok(r) => {
                let outcome = match r.outcome {
                    cvx_protocol::ledger::TxOutcome::Applied => "applied".to_owned(),
                    cvx_protocol::ledger::TxOutcome::Failed(code) => format!("failed {code}"),
                };
                out(&format!(
                    "{{\"id\":\"{}\",\"block\":{},\"index\":{},\"outcome\":\"{outcome}\"}}\n",
                    id.to_hex(),
                    r.block_position,
                    r.index
                ));
                if matches!(r.outcome, cvx_protocol::ledger::TxOutcome::Applied) {
                    Ok(())
                } else {
                    Err(Failure(Exit::TxFailed, format!("transaction {outcome}")))
                }
            }
            Err(code) => Err(Failure(
                Exit::TxFailed,
                format!("the peer refused the transaction: {code}"),
            )),
        }
    })
}

fn cmd_query(f: &Flags, status_only: bool) -> Result<(), Failure> {
    let addr = peer_addr(f)?;
    let q = if status_only {
        Query::Status
    } else {
        let what = f.positional.get(1).map(String::as_str);
        let arg = f
            .positional
            .get(2)
            .ok_or_else(|| usage("query needs WHAT and a value"))?;
        match what {
            Some("account") => Query::Account(cvx_protocol::Address(num("ADDRESS", arg)?)),
            Some("peer") => {
                Query::Peer(cvx_protocol::PublicKey::from_hex(arg).map_err(|e| usage(&e))?)
            }
            Some("tx") => Query::Transaction(cvx_protocol::Hash::from_hex(arg).map_err(usage)?),
            Some("sync") => Query::SyncPoint(if arg == "latest" {
                None
            } else {
                Some(num("POSITION", arg)?)
            }),
            _ => return Err(usage("query account|peer|tx|sync VALUE")),
        }
    };
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = PeerClient::connect(&addr, None, Duration::from_secs(10))
            .await
            .map_err(|e| client_err(&e))?;
        let a = c.query(q).await.map_err(|e| client_err(&e))?;
        let text = match a {
            Answer::Status(s) => cvx_peer::node::status_json(&s),
            Answer::Account(a) => match a {
                Some(a) => serde_json::json!({"key": a.key.to_hex(), "balance": a.balance.get(), "sequence": a.sequence}).to_string(),
                None => "null".into(),
            },
            Answer::Peer(p) => match p {
                Some(p) => serde_json::json!({"key": p.key.to_hex(), "controller": p.controller.0, "stake": p.stake.get(), "host": p.host.as_ref().map(|h| h.as_str().to_owned()), "last_block_time": p.last_block_time.0}).to_string(),
                None => "null".into(),
            },
            Answer::SyncPoint(sp) => match sp {
                Some(sp) => serde_json::json!({"position": sp.position, "chain": sp.chain.to_hex(), "state_hash": sp.state_hash.to_hex(), "root": sp.root.map(|r| r.to_hex())}).to_string(),
                None => "null".into(),
            },
            Answer::Transaction(t) => match t {
                Some(t) => serde_json::json!({"id": t.id.to_hex(), "block": t.block_position, "index": t.index, "outcome": format!("{:?}", t.outcome)}).to_string(),
                None => "null".into(),
            },
        };
        out(&format!("{text}\n"));
        Ok(())
    })
}

/// Collect the store's garbage once, with the peer stopped (a running peer holds the
/// store's lock, and collects periodically itself: `gc_interval_secs`).
fn cmd_gc(f: &Flags) -> Result<(), Failure> {
    let path = f
        .config
        .clone()
        .ok_or_else(|| usage("gc needs --config FILE"))?;
    let settings = Settings::load(&path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    let store_path = settings.data_dir.join("peer.etch");
    let store_err = |e: &cvx_etch::EtchError| {
        if e.kind() == cvx_etch::ErrorKind::Locked {
            Failure(
                Exit::Store,
                format!(
                    "{e} (the peer is running: it collects by itself every `gc_interval_secs`; stop it to run `cvx-peer gc`)"
                ),
            )
        } else {
            Failure(Exit::Store, format!("store {}: {e}", store_path.display()))
        }
    };
    if !store_path.exists() {
        return Err(Failure(
            Exit::Store,
            format!(
                "no store at {}: check `data_dir` in the config",
                store_path.display()
            ),
        ));
    }
    let (store, _) = cvx_etch::Store::open(&store_path).map_err(|e| store_err(&e))?;
    match cvx_peer::persist::collect_garbage(&store).map_err(|e| store_err(&e))? {
        Some(r) => out(&format!(
            "store collected: records {} -> {}, bytes {} -> {}\n",
            r.records_before, r.records_after, r.bytes_before, r.bytes_after
        )),
        None => out("store collection interrupted: the store is unchanged\n"),
    }
    store.close().map_err(|e| store_err(&e))?;
    Ok(())
}

fn cmd_halt(f: &Flags) -> Result<(), Failure> {
    let path = f
        .config
        .clone()
        .ok_or_else(|| usage("halt needs --config FILE"))?;
    let settings = Settings::load(&path).map_err(|e| Failure(Exit::Config, e.to_string()))?;
    let rt = runtime()?;
    rt.block_on(async {
        let mut s = cvx_peer::signer_client::SignerClient::connect(&settings.signer_socket)
            .await
            .map_err(|e| Failure(Exit::Signer, e.to_string()))?;
        s.lock()
            .await
            .map_err(|e| Failure(Exit::Signer, e.to_string()))?;
        out("signer locked: it refuses every signature from now on\n");
        Ok::<(), Failure>(())
    })?;
    let pidfile = settings.data_dir.join("cvx-peer.pid");
    match std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        Some(pid) => {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .map_err(|e| Failure(Exit::Client, format!("cannot stop peer pid {pid}: {e}")))?;
            out(&format!("peer (pid {pid}) stopped\n"));
        }
        None => out(&format!(
            "no running peer found ({} missing)\n",
            pidfile.display()
        )),
    }
    Ok(())
}

fn cmd_devnet(f: &Flags) -> Result<(), Failure> {
    let opts = DevnetOptions {
        peers: f.peers.unwrap_or(4),
        duration: if f.bench {
            None
        } else {
            f.duration.map(Duration::from_secs)
        },
        dir: f.dir.clone(),
        accounts: f.accounts.unwrap_or(devnet::DEFAULT_ACCOUNTS),
        rate: f.rate.unwrap_or(5_000),
        progress: true,
        registered_hosts: f.hosts.clone(),
        max_queue: f.max_queue,
        spares: f.spare.unwrap_or(0),
        gc_interval: f.gc_interval,
        bench: f.bench.then(|| {
            let step = f.duration.unwrap_or(8);
            [500, 1000, 2000, 4000, 8000, 12000, 16000, 20000]
                .into_iter()
                .map(|r| (r, step))
                .collect()
        }),
    };
    let rt = runtime()?;
    let summary = rt
        .block_on(devnet::run(opts, terminated()))
        .map_err(|e| Failure(Exit::Devnet, e.to_string()))?;
    if f.bench && !f.json {
        for st in &summary.bench_steps {
            out(&format!(
                "offered {:>6} tx/s -> finalized {:>8} tx/s, finality p50 {:>5} ms, p99 {:>5} ms\n",
                st["offered_tx_per_sec"], st["tx_per_sec"], st["p50_ms"], st["p99_ms"]
            ));
        }
        if let Some(v) = &summary.verify {
            out(&format!(
                "ingress bound (same run): batch verify {} us/sig = {} tx/s per core; single {} us/sig\n",
                v["batch_us_per_sig"], v["batch_bound_tx_per_sec_per_core"], v["single_us_per_sig"]
            ));
        }
    }
    if f.json {
        out(&format!("{}\n", summary.to_json()));
    } else if !f.bench {
        out(&format!(
            "{} peers: {} transactions finalized, {:.0} tx/s, finality p50 {} ms, p99 {} ms (dir {})\n",
            summary.peers,
            summary.finalized_tx,
            summary.tx_per_sec,
            summary.finality_ms_p50,
            summary.finality_ms_p99,
            summary.dir.display()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = (|| {
        let f = parse_flags(&args)?;
        match f.positional.first().map(String::as_str) {
            Some("run") => cmd_run(&f),
            Some("submit") => cmd_submit(&f),
            Some("query") => cmd_query(&f, false),
            Some("status") => cmd_query(&f, true),
            Some("halt") => cmd_halt(&f),
            Some("gc") => cmd_gc(&f),
            Some("devnet") => cmd_devnet(&f),
            Some("sandbox-probe") => cmd_sandbox_probe(&f),
            Some("help") | None => {
                out(&help());
                Ok(())
            }
            Some(other) => Err(usage(&format!("unknown command {other}"))),
        }
    })();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("cvx-peer: {msg}");
            ExitCode::from(code.code())
        }
    }
}
