//! Launching: keys, genesis, configs, the child processes, the load, the progress line
//! and the summary.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cvx_protocol::ledger::{Genesis, GenesisAccount, GenesisPeer};
use cvx_protocol::peer_wire::Status;
use cvx_protocol::{Amount, BoundedVec, Canonical, HostAddr, PublicKey};

use crate::children::Children;
use crate::children::check_alive;
use crate::host::{free_ports, io, log_file, mkdir_private};
use crate::query::{state_hashes_at, statuses};
use crate::wan::Wan;
use crate::{DevnetError, DevnetOptions, Summary, devnet_params, now};

fn sibling(name: &str) -> Result<PathBuf, DevnetError> {
    let exe = std::env::current_exe().map_err(io("locating cvx-devnet"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DevnetError::Missing(p))
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<String, DevnetError> {
    let out = cmd.output().map_err(io(what.to_owned()))?;
    if !out.status.success() {
        return Err(DevnetError::Child(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Shared view of the load generator's reports.
#[derive(Debug, Default, Clone)]
struct LoadReport {
    steps: Vec<serde_json::Value>,
    finalized: u64,
    p50: u64,
    p99: u64,
    elapsed_ms: u64,
    refused: String,
}

/// Run the devnet until `stop` resolves or the duration passes.
///
/// # Errors
/// [`DevnetError`].
#[allow(clippy::too_many_lines)]
pub async fn run(
    opts: DevnetOptions,
    stop: impl Future<Output = ()>,
) -> Result<Summary, DevnetError> {
    let signer_bin = sibling("cvx-signer")?;
    let loadgen_bin = sibling("cvx-loadgen")?;
    let peer_bin = sibling("cvx-peer")?;
    // Refused before anything is made: no key, no directory.
    let accounts = opts.accounts.max(opts.peers.max(1));
    if accounts + opts.spares > cvx_protocol::ledger::MAX_GENESIS_ACCOUNTS {
        return Err(too_many(accounts, opts.spares));
    }
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cvx-devnet-{}-{}", std::process::id(), now().0)),
    };
    mkdir_private(&dir)?;
    let uid = std::fs::metadata(&dir)
        .map_err(io("stat devnet dir"))?
        .uid();
    let n = opts.peers.max(1);
    let spares = opts.spares;
    let seed = now().0;
    let mut wan = match &opts.wan {
        Some(w) => {
            if spares > 0 {
                return Err(DevnetError::Child(
                    "--spare is not supported with --netns".into(),
                ));
            }
            let run_ms = opts.duration.map_or(u64::MAX / 4, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
            });
            let w = Wan::new(
                w.clone(),
                n,
                run_ms,
                &dir,
                peer_bin.clone(),
                signer_bin.clone(),
            )?;
            w.start_relays().await?;
            Some(w)
        }
        None => None,
    };

    // Keys (spares' last).
    let mut keys = Vec::with_capacity(n + spares);
    for i in 0..n + spares {
        let sd = dir.join(format!("signer-{i}"));
        mkdir_private(&sd)?;
        let out = run_ok(
            Command::new(&signer_bin)
                .arg("keygen")
                .arg("--out")
                .arg(sd.join("peer.key.age"))
                .arg("--new-identity")
                .arg(sd.join("host.identity")),
            "cvx-signer keygen",
        )?;
        let hex = out.split_whitespace().last().unwrap_or_default().to_owned();
        let pk = PublicKey::from_hex(&hex)
            .map_err(|e| DevnetError::Child(format!("cvx-signer keygen printed {hex:?}: {e}")))?;
        keys.push(pk);
    }
    // Throwaway demo keys: the seed is kept in the directory so tests and operators can
    // sign with the same accounts (`cvx-loadgen withdraw --seed ...`).
    std::fs::write(dir.join("accounts.seed"), format!("{seed}\n"))
        .map_err(io("writing accounts.seed"))?;
    let account_keys = cvx_loadgen::derived_publics(
        cvx_loadgen::DEVNET_ACCOUNT,
        seed,
        (accounts + spares) as u64,
    );

    // Genesis.
    let ports = free_ports(n + spares)?;
    // 10^12 each, or less so that a large genesis stays within half the maximum supply.
    let per_account =
        (cvx_protocol::primitives::MAX_SUPPLY / 2) / (account_keys.len().max(1) as u64);
    let gaccounts: Vec<GenesisAccount> = account_keys
        .iter()
        .map(|k| GenesisAccount {
            key: *k,
            balance: Amount::new(per_account.min(1_000_000_000_000)).unwrap_or(Amount::ZERO),
        })
        .collect();
    let gpeers: Vec<GenesisPeer> = keys[..n]
        .iter()
        .zip(&ports)
        .enumerate()
        .map(|(i, (k, p))| GenesisPeer {
            key: *k,
            controller: cvx_protocol::Address(i as u64),
            stake: Amount::new(1_000_000_000).unwrap_or(Amount::ZERO),
            host: HostAddr::new(
                &opts
                    .registered_hosts
                    .as_ref()
                    .and_then(|h| h.get(i).cloned())
                    .unwrap_or_else(|| {
                        if opts.wan.is_some() {
                            crate::wan::registered(i)
                        } else {
                            format!("127.0.0.1:{p}")
                        }
                    }),
            )
            .ok(),
        })
        .collect();
    let genesis = Genesis {
        network_name: cvx_protocol::primitives::Name::new("cvx-devnet").unwrap_or_default(),
        time: now(),
        accounts: BoundedVec::try_from_vec(gaccounts).map_err(|_| too_many(accounts, spares))?,
        peers: BoundedVec::try_from_vec(gpeers)
            .map_err(|_| DevnetError::Child("too many peers".into()))?,
        params: devnet_params(),
    };
    let network = genesis.network_id();
    let genesis_path = dir.join("genesis.bin");
    std::fs::write(&genesis_path, genesis.encode()).map_err(io("writing genesis"))?;

    let mut children = Children { list: Vec::new() };
    let mut signer_pids = Vec::new();
    let mut peer_pids = Vec::new();

    // Signers (spares' too: a spare peer needs its signer running to join).
    for i in 0..n + spares {
        let sd = dir.join(format!("signer-{i}"));
        let cfg = sd.join("signer.toml");
        let text = format!(
            "network = \"{}\"\ngenesis_file = \"{}\"\nstate_file = \"{}\"\naudit_log = \"{}\"\nsocket = \"{}\"\nallowed_uids = [{uid}]\n\n[key]\nfile = \"{}\"\nidentity_file = \"{}\"\n",
            network.0.to_hex(),
            genesis_path.display(),
            sd.join("state").display(),
            sd.join("audit.log").display(),
            sd.join("sock").join("signer.sock").display(),
            sd.join("peer.key.age").display(),
            sd.join("host.identity").display(),
        );
        std::fs::write(&cfg, text).map_err(io("writing signer config"))?;
        run_ok(
            Command::new(&signer_bin)
                .arg("init")
                .arg("--config")
                .arg(&cfg),
            "cvx-signer init",
        )?;
        let child = spawn_cmd(wan.as_ref(), i, &signer_bin)
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&sd.join("signer.log"))?)
            .spawn()
            .map_err(io("starting cvx-signer"))?;
        signer_pids.push(child.id());
        children.list.push((format!("signer-{i}"), child));
    }
    // How long a start may take: 30 s, plus 30 s per 100,000 genesis accounts. Each signer
    // decodes the genesis (`genesis_file`: ~10 s of CPU at 10^6 accounts); each peer
    // decodes it, builds the ledger and its Merkle tree, and writes the state tree to its
    // store before it serves; they start in parallel on the machine's cores.
    let start_limit = Duration::from_secs(30 + 30 * (accounts as u64 / 100_000));
    let t0 = Instant::now();
    for i in 0..n + spares {
        let sock = dir
            .join(format!("signer-{i}"))
            .join("sock")
            .join("signer.sock");
        while !sock.exists() {
            if t0.elapsed() > start_limit {
                return Err(DevnetError::Child(format!(
                    "signer {i} did not create its socket within {} s; see {}",
                    start_limit.as_secs(),
                    dir.join(format!("signer-{i}/signer.log")).display()
                )));
            }
            check_alive(&mut children)?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Peers.
    let mut addrs = Vec::with_capacity(n);
    for (i, (k, port)) in keys[..n].iter().zip(&ports).enumerate() {
        let pd = dir.join(format!("peer-{i}"));
        mkdir_private(&pd)?;
        let cfg = pd.join("peer.toml");
        let (listen, api_listen) = if wan.is_some() {
            (crate::wan::listen(i), crate::wan::api_listen(i))
        } else {
            (format!("127.0.0.1:{port}"), "127.0.0.1:0".to_owned())
        };
        let text = format!(
            "genesis = \"{}\"\nkey = \"{}\"\ndata_dir = \"{}\"\nsigner_socket = \"{}\"\nlisten = \"{listen}\"\napi_listen = \"{api_listen}\"\n{}",
            genesis_path.display(),
            k.to_hex(),
            pd.join("data").display(),
            dir.join(format!("signer-{i}"))
                .join("sock")
                .join("signer.sock")
                .display(),
            opts.max_queue
                .map(|q| format!("max_queue = {q}\n"))
                .unwrap_or_default()
                + &opts
                    .gc_interval
                    .map(|g| format!("gc_interval_secs = {g}\n"))
                    .unwrap_or_default(),
        );
        std::fs::write(&cfg, text).map_err(io("writing peer config"))?;
        let child = spawn_cmd(wan.as_ref(), i, &peer_bin)
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log_file(&pd.join("peer.out"))?)
            .stderr(log_file(&pd.join("peer.log"))?)
            .spawn()
            .map_err(io("starting cvx-peer"))?;
        peer_pids.push(child.id());
        children.list.push((format!("peer-{i}"), child));
        addrs.push(listen);
    }
    // Wait until every peer answers and takes part in consensus (see `start_limit`).
    let t0 = Instant::now();
    loop {
        check_alive(&mut children)?;
        let st = statuses(&addrs).await;
        if st
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.in_consensus))
        {
            break;
        }
        if t0.elapsed() > start_limit {
            return Err(DevnetError::Child(format!(
                "peers did not connect within {} s; see the logs in {}",
                start_limit.as_secs(),
                dir.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Spare peers: configs only (the operator or a test starts them).
    let mut spare_lines = String::new();
    for s in 0..spares {
        let i = n + s;
        let pd = dir.join(format!("peer-{i}"));
        mkdir_private(&pd)?;
        let cfg = pd.join("peer.toml");
        let bootstrap: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        let text = format!(
            "genesis = \"{}\"\nkey = \"{}\"\ndata_dir = \"{}\"\nsigner_socket = \"{}\"\nlisten = \"127.0.0.1:{}\"\napi_listen = \"127.0.0.1:0\"\nbootstrap = [{}]\nstate_sync = true\n",
            genesis_path.display(),
            keys[i].to_hex(),
            pd.join("data").display(),
            dir.join(format!("signer-{i}"))
                .join("sock")
                .join("signer.sock")
                .display(),
            ports[i],
            bootstrap.join(", "),
        );
        std::fs::write(&cfg, text).map_err(io("writing spare peer config"))?;
        // peer dir, peer key, controller account address, listen address
        let _ = writeln!(
            spare_lines,
            "peer-{i} {} {} 127.0.0.1:{}",
            keys[i].to_hex(),
            accounts + s,
            ports[i]
        );
    }
    if spares > 0 {
        std::fs::write(dir.join("spares"), spare_lines).map_err(io("writing spares"))?;
    }

    // Every peer takes part: tell watchers (tests, scripts) the network is up.
    std::fs::write(dir.join("devnet.ready"), addrs.join("\n") + "\n")
        .map_err(io("writing devnet.ready"))?;
    if let Some(w) = &mut wan {
        w.started();
    }

    // Load.
    let report = Arc::new(Mutex::new(LoadReport::default()));
    let mut loadgen_pid = None;
    if opts.rate > 0 {
        let mut cmd = Command::new(&loadgen_bin);
        cmd.arg("run")
            .arg("--genesis")
            .arg(&genesis_path)
            .arg("--seed")
            .arg(seed.to_string())
            .arg("--accounts")
            .arg(accounts.min(crate::LOAD_ACCOUNTS).to_string())
            .arg("--rate")
            .arg(opts.rate.to_string());
        for a in &addrs {
            cmd.arg("--peer").arg(a);
        }
        if let Some(steps) = &opts.bench {
            let mut sched: Vec<String> = steps.iter().map(|(r, d)| format!("{r}:{d}")).collect();
            if let (Some(p), Some((_, d))) = (opts.bench_saturation_percent, steps.last()) {
                sched.push(format!("{p}%:{d}"));
            }
            cmd.arg("--schedule").arg(sched.join(","));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&dir.join("loadgen.log"))?)
            .spawn()
            .map_err(io("starting cvx-loadgen"))?;
        loadgen_pid = Some(child.id());
        if let Some(out) = child.stdout.take() {
            let r = Arc::clone(&report);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if let Ok(mut g) = r.lock() {
                        if v["step"] == true {
                            g.steps.push(v);
                            continue;
                        }
                        g.finalized = v["finalized"].as_u64().unwrap_or(g.finalized);
                        g.p50 = v["p50_ms"].as_u64().unwrap_or(g.p50);
                        g.p99 = v["p99_ms"].as_u64().unwrap_or(g.p99);
                        g.elapsed_ms = v["elapsed_ms"].as_u64().unwrap_or(g.elapsed_ms);
                        g.refused = v["refused"].to_string();
                    }
                }
            });
        }
        // Loadgen is stopped before the peers: insert it last (terminated first).
        children.list.push(("loadgen".into(), child));
    }

    // Progress until the end.
    let started = Instant::now();
    tokio::pin!(stop);
    let mut last_fin = 0u64;
    let mut exited: Vec<String> = Vec::new();
    let mut last_t = Instant::now();
    loop {
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Benchmark mode ends when the load generator has run its schedule.
        if opts.bench.is_some()
            && children
                .list
                .iter_mut()
                .any(|(n, c)| n == "loadgen" && matches!(c.try_wait(), Ok(Some(_))))
        {
            break;
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(if wan.is_some() { 500 } else { 1000 })) => {}
        }
        // The nemesis and the checker (--netns).
        if let Some(w) = &mut wan {
            w.tick(&mut children, &addrs).await;
        }
        // Once running, a process that exits (a halted or killed peer) is reported,
        // and the rest of the network goes on without it.
        for (name, c) in &mut children.list {
            if exited.contains(name) && matches!(c.try_wait(), Ok(None)) {
                exited.retain(|e| e != name);
            }
            if !exited.contains(name)
                && let Ok(Some(st)) = c.try_wait()
            {
                eprintln!("\ndevnet: {name} exited ({st}); the others go on");
                exited.push(name.clone());
            }
        }
        if opts.progress && last_t.elapsed() >= Duration::from_millis(900) {
            let st = statuses(&addrs).await;
            let fin: Vec<String> = st
                .iter()
                .map(|s| s.as_ref().map_or("-".into(), |s| s.finality.to_string()))
                .collect();
            let r = report.lock().map(|g| g.clone()).unwrap_or_default();
            let dt = last_t.elapsed().as_secs_f64().max(0.001);
            #[allow(clippy::cast_precision_loss)]
            let rate = r.finalized.saturating_sub(last_fin) as f64 / dt;
            last_fin = r.finalized;
            last_t = Instant::now();
            eprint!(
                "\r[{:>4}s] finality {} | {:>8.0} tx/s finalized | total {} | latency p50 {} ms p99 {} ms   ",
                started.elapsed().as_secs(),
                fin.join("/"),
                rate,
                r.finalized,
                r.p50,
                r.p99
            );
        }
    }
    if opts.progress {
        eprintln!();
    }
    // The nemesis stops: a fault still active is healed now.
    if let Some(w) = &mut wan {
        w.heal_active(&mut children);
    }
    // Stop the load, let consensus settle, then read the final positions.
    if let Some(pos) = children.list.iter().position(|(n, _)| n == "loadgen") {
        let (_, mut c) = children.list.remove(pos);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    let mut positions = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let st: Vec<Status> = statuses(&addrs).await.into_iter().flatten().collect();
        let alive = addrs
            .iter()
            .enumerate()
            .filter(|(i, _)| !exited.contains(&format!("peer-{i}")))
            .count();
        let settled = st.len() >= alive
            && st
                .iter()
                .all(|s| s.finality == st[0].finality && s.state_root == st[0].state_root);
        positions = st;
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Agreement at one position even if the peers never stood still at the same instant
    // (heartbeats, a client flood): every running peer's state hash at the lowest
    // finality among them (a peer remembers the hashes of its recent positions).
    // (Running = answering now: a peer restarted by hand counts, a halted one does not.)
    let running: Vec<String> = addrs
        .iter()
        .zip(statuses(&addrs).await)
        .filter(|(_, s)| s.is_some())
        .map(|(a, _)| a.clone())
        .collect();
    let agreement = match positions.iter().map(|s| s.finality).min() {
        Some(p) if p > 0 => {
            let hashes = state_hashes_at(&running, p).await;
            hashes.first().copied().flatten().map(|first| {
                let agree = hashes.iter().filter(|h| **h == Some(first)).count();
                (p, first, agree, running.len())
            })
        }
        _ => None,
    };
    let wan_report = match &mut wan {
        Some(w) => {
            let r = report.lock().map(|g| g.clone()).unwrap_or_default();
            Some(w.finish(&mut children, &addrs, (r.p50, r.p99)).await)
        }
        None => None,
    };
    children.terminate_all();
    children.list.clear();
    let verify = if opts.bench.is_some() {
        run_ok(
            Command::new(&loadgen_bin).args(["verify-bench", "--count", "1024"]),
            "cvx-loadgen verify-bench",
        )
        .ok()
        .and_then(|t| serde_json::from_str(t.trim()).ok())
    } else {
        None
    };
    let mut r = report.lock().map(|g| g.clone()).unwrap_or_default();
    if let Some(v) = &verify {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        crate::ceiling::annotate_steps(&mut r.steps, v, n, cores);
    }
    #[allow(clippy::cast_precision_loss)]
    let tx_per_sec = if r.elapsed_ms > 0 {
        r.finalized as f64 * 1000.0 / r.elapsed_ms as f64
    } else {
        0.0
    };
    Ok(Summary {
        peers: n,
        finalized_tx: r.finalized,
        tx_per_sec,
        finality_ms_p50: r.p50,
        finality_ms_p99: r.p99,
        positions,
        signer_pids,
        peer_pids,
        loadgen_pid,
        dir,
        exited,
        bench_steps: r.steps.clone(),
        verify,
        refused: if r.refused.is_empty() {
            "{}".into()
        } else {
            r.refused
        },
        agreement,
        wan: wan_report,
    })
}

/// A command for child `i`: in its namespace under `--netns`.
fn spawn_cmd(wan: Option<&Wan>, i: usize, bin: &Path) -> Command {
    match wan {
        Some(w) => w.command(i, bin),
        None => Command::new(bin),
    }
}

/// The genesis cannot hold `accounts` demo accounts plus one per spare peer.
fn too_many(accounts: usize, spares: usize) -> DevnetError {
    DevnetError::Child(format!(
        "{} genesis accounts ({accounts} demo accounts and {spares} for spare peers): a genesis holds at most {}; lower --accounts or --spare",
        accounts + spares,
        cvx_protocol::ledger::MAX_GENESIS_ACCOUNTS
    ))
}
