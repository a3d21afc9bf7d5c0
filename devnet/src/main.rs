//! `cvx-devnet`: parse arguments, run the devnet, print its summary, map errors to exit
//! codes (0 success, 2 bad command line, 11 the devnet failed).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cvx_devnet::nemesis::Kind;
use cvx_devnet::netns::Netns;
use cvx_devnet::relay::LinkParams;
use cvx_devnet::wan::{DEFAULT_RECOVERY_BOUND_SECS, WanOptions};
use cvx_devnet::{DEFAULT_ACCOUNTS, DevnetOptions};

/// Exit code: the devnet failed (binaries missing, a child process failed at start-up).
const EXIT_DEVNET: u8 = 11;
/// Exit code: bad command line (also what clap uses for a usage error).
const EXIT_USAGE: u8 = 2;
/// `--bench`'s last step: this percentage of the highest finalized tx/s before it.
const BENCH_SATURATION_PERCENT: u64 = 80;
/// Exit code: the checker found a violation (fork, regression, no recovery, no NETWORK);
/// the summary is still printed.
const EXIT_VIOLATION: u8 = 12;
/// Exit code: --netns cannot make namespaces here (not root, no `ip`).
const EXIT_NETNS: u8 = 13;

/// A local cvx network of real processes: N cvx-signer + N cvx-peer + cvx-loadgen load.
///
/// Finds cvx-peer, cvx-signer and cvx-loadgen next to its own executable. Every key,
/// config and log is kept in the devnet directory. Never install it on a peer host.
#[derive(Debug, Parser)]
#[command(
    name = "cvx-devnet",
    version,
    after_help = "EXIT CODES:\n    0  success\n    2  bad command line\n   11  devnet: binaries missing or a child process failed at start-up\n   12  --netns: the checker found a violation (summary still printed)\n   13  --netns: network namespaces cannot be made here (not root, no ip)"
)]
struct Cli {
    /// Number of peers (each with its own sandboxed signer), 1 to 256 (a genesis holds at
    /// most 256 peers).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = parse_peers)]
    peers: usize,
    /// Stop after SECS (default: run until Ctrl-C or SIGTERM). With --bench: the length of
    /// each offered-load step (default 8).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// The devnet directory (default: a fresh one under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Offered load, transactions per second (0: none).
    #[arg(long, value_name = "TPS", default_value_t = 5_000)]
    rate: u64,
    /// Demo accounts in the genesis, 1 to 1,048,576 (raised to the number of peers if
    /// smaller: the first ones are the peers' control accounts); the load uses the first
    /// min(N, 10,000) of them, one transaction in flight each.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ACCOUNTS, value_parser = parse_accounts)]
    accounts: usize,
    /// Each peer's `max_queue`.
    #[arg(long, value_name = "N")]
    max_queue: Option<usize>,
    /// Print one JSON summary object at the end.
    #[arg(long)]
    json: bool,
    /// Benchmark: offered load 500..20000 tx/s in steps, then one step at 80% of the
    /// highest finalized tx/s (`saturation_percent`); finalized tx/s and finality p50/p99
    /// per step, next to the crypto ceiling measured in the same run.
    #[arg(long)]
    bench: bool,
    /// Hosts to register on-chain instead of the peers' own addresses (one per peer,
    /// comma-separated; e.g. fault-injecting proxies).
    #[arg(long, value_name = "H0,H1,..", value_delimiter = ',')]
    registered_hosts: Option<Vec<String>>,
    /// Also prepare N spare peers, not started and not staked, that join by state sync
    /// (listed in DIR/spares).
    #[arg(long, value_name = "N", default_value_t = 0)]
    spare: usize,
    /// Each peer's `gc_interval_secs`.
    #[arg(long, value_name = "SECS")]
    gc_interval: Option<u64>,
    #[command(flatten)]
    wan: WanArgs,
}

/// `--netns` and what needs it (docs/operations.md, "Network namespaces and the nemesis").
#[derive(Debug, clap::Args)]
struct WanArgs {
    /// Every peer and its signer in its own network namespace, joined through a bridge in
    /// a hub namespace; every directed link goes through a userspace relay (needs root).
    #[arg(long)]
    netns: bool,
    /// One-way delay on every link, and optional jitter (ms): `25` or `25,5`
    /// (a round trip is twice the delay). Needs --netns.
    #[arg(long, value_name = "MS[,JITTER]", value_parser = parse_latency)]
    latency: Option<(u64, u64)>,
    /// Loss on every link, percent (a lost chunk costs a TCP retransmission timeout).
    /// Needs --netns.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    loss: Option<f64>,
    /// Bandwidth of every link, kbit/s. Needs --netns.
    #[arg(long, value_name = "KBITS")]
    bandwidth: Option<u64>,
    /// A seeded fault schedule (partitions, delay spikes, loss, kill -9, SIGSTOP); the
    /// same seed replays the same schedule. Needs --netns.
    #[arg(long, value_name = "SEED")]
    nemesis: Option<u64>,
    /// The kinds of fault the nemesis uses: partition, delay, loss, kill, kill-signer,
    /// freeze (comma-separated), or all.
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = parse_kinds)]
    nemesis_faults: Kinds,
    /// After each heal, every running peer must pass the highest finality seen at the
    /// heal within SECS, or the checker reports a violation.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_RECOVERY_BOUND_SECS)]
    recovery_bound: u64,
    /// Remove what killed --netns launchers left (their namespaces and the processes in
    /// them), then exit.
    #[arg(long)]
    netns_clean: bool,
}

fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let (d, j) = s.split_once(',').unwrap_or((s, "0"));
    let num = |x: &str| {
        x.trim()
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= 10_000)
            .ok_or_else(|| format!("{x:?} is not a number of ms (0..=10000): use MS or MS,JITTER"))
    };
    Ok((num(d)?, num(j)?))
}

fn parse_peers(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=cvx_protocol::ledger::MAX_PEERS).contains(n))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a number of peers: use 1 to {} (4 is the smallest network that survives a faulty peer)",
                cvx_protocol::ledger::MAX_PEERS
            )
        })
}

fn parse_accounts(s: &str) -> Result<usize, String> {
    let max = cvx_protocol::ledger::MAX_GENESIS_ACCOUNTS;
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!(
                "{s:?} is not a number of accounts: use 1 to {max} (a genesis holds at most 2^20 accounts; spare peers take one each on top)"
            )
        })
}

fn parse_pct(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("{s:?} is not a percentage (0..=100)"))
}

/// The nemesis's fault kinds.
#[derive(Clone, Debug)]
struct Kinds(Vec<Kind>);

fn parse_kinds(s: &str) -> Result<Kinds, String> {
    Kind::parse_list(s).map(Kinds)
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
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

fn options(cli: &Cli, ns: Option<&Netns>) -> DevnetOptions {
    let w = &cli.wan;
    DevnetOptions {
        wan: ns.map(|ns| WanOptions {
            hub: ns.hub().to_owned(),
            peer_ns: (0..cli.peers)
                .filter_map(|i| ns.peer(i).map(str::to_owned))
                .collect(),
            base: LinkParams {
                delay_ms: w.latency.map_or(0, |l| l.0),
                jitter_ms: w.latency.map_or(0, |l| l.1),
                loss_pct: w.loss.unwrap_or(0.0),
                bandwidth_bps: w.bandwidth.map(|k| k.saturating_mul(1000)),
                cut: false,
            },
            nemesis: w.nemesis,
            kinds: w.nemesis_faults.0.clone(),
            recovery_bound_ms: w.recovery_bound.saturating_mul(1000),
        }),
        peers: cli.peers,
        duration: if cli.bench {
            None
        } else {
            cli.duration.map(Duration::from_secs)
        },
        dir: cli.dir.clone(),
        accounts: cli.accounts,
        rate: cli.rate,
        progress: true,
        registered_hosts: cli.registered_hosts.clone(),
        max_queue: cli.max_queue,
        spares: cli.spare,
        gc_interval: cli.gc_interval,
        bench_saturation_percent: cli.bench.then_some(BENCH_SATURATION_PERCENT),
        bench: cli.bench.then(|| {
            let step = cli.duration.unwrap_or(8);
            [500, 1000, 2000, 4000, 8000, 12000, 16000, 20000]
                .into_iter()
                .map(|r| (r, step))
                .collect()
        }),
    }
}

/// `--netns-clean`, and the check that the link and nemesis flags come with --netns.
fn netns_first(cli: &Cli) -> Result<Option<Netns>, (u8, String)> {
    let w = &cli.wan;
    if !w.netns
        && (w.latency.is_some() || w.loss.is_some() || w.bandwidth.is_some() || w.nemesis.is_some())
    {
        return Err((
            EXIT_USAGE,
            "--latency, --loss, --bandwidth and --nemesis need --netns (the relays tell the links apart by the peers' namespace addresses)".into(),
        ));
    }
    if !w.netns {
        return Ok(None);
    }
    let code = |e: &cvx_devnet::netns::NetnsError| match e {
        cvx_devnet::netns::NetnsError::Unavailable(_) => EXIT_NETNS,
        _ => EXIT_DEVNET,
    };
    let ns = Netns::create(cli.peers.max(1)).map_err(|e| (code(&e), e.to_string()))?;
    // The launcher's own sockets (relays, checker, load generator) live in the hub: enter
    // it before the runtime's threads start, so that they inherit it.
    ns.enter_hub().map_err(|e| (code(&e), e.to_string()))?;
    Ok(Some(ns))
}

fn run(cli: &Cli) -> Result<(), (u8, String)> {
    if cli.wan.netns_clean {
        let removed =
            cvx_devnet::netns::cleanup_stale().map_err(|e| (EXIT_NETNS, e.to_string()))?;
        out(&format!(
            "removed the namespaces of {} dead launcher(s){}{}\n",
            removed.len(),
            if removed.is_empty() { "" } else { ": " },
            removed.join(", ")
        ));
        return Ok(());
    }
    // Declared before the runtime: dropped (namespaces removed) after it.
    let ns = netns_first(cli)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| (EXIT_USAGE, format!("cannot start the async runtime: {e}")))?;
    let summary = rt
        .block_on(cvx_devnet::run(options(cli, ns.as_ref()), terminated()))
        .map_err(|e| (EXIT_DEVNET, e.to_string()))?;
    if cli.bench && !cli.json {
        for st in &summary.bench_steps {
            out(&format!(
                "offered {:>6} tx/s{} -> finalized {:>8} tx/s, finality p50 {:>5} ms, p99 {:>5} ms, ceiling {} tx/s, ratio {}\n",
                st["offered_tx_per_sec"],
                st["saturation_percent"]
                    .as_u64()
                    .map(|p| format!(" ({p}% of the best step)"))
                    .unwrap_or_default(),
                st["tx_per_sec"],
                st["p50_ms"],
                st["p99_ms"],
                st["ceiling_tx_per_sec"],
                st["ratio"]
            ));
        }
        if let Some(v) = &summary.verify {
            out(&format!(
                "ingress bound (same run): batch verify {} us/sig = {} tx/s per core; single {} us/sig\n",
                v["batch_us_per_sig"], v["batch_bound_tx_per_sec_per_core"], v["single_us_per_sig"]
            ));
        }
    }
    if cli.json {
        out(&format!("{}\n", summary.to_json()));
    } else if !cli.bench {
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
    let v = summary.violations();
    if v > 0 {
        return Err((
            EXIT_VIOLATION,
            format!(
                "the checker found {v} violation(s); see {} and {}",
                summary.dir.join("nemesis.log").display(),
                summary.dir.join("timeline.svg").display()
            ),
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("cvx-devnet: {msg}");
            ExitCode::from(code)
        }
    }
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
    fn todays_flags_parse() {
        let cli = Cli::try_parse_from([
            "cvx-devnet",
            "--peers",
            "4",
            "--json",
            "--accounts",
            "200",
            "--duration",
            "5",
            "--rate",
            "100",
            "--dir",
            "/tmp/x",
            "--registered-hosts",
            "a:1,b:2",
            "--spare",
            "1",
            "--gc-interval",
            "3",
            "--max-queue",
            "10",
        ])
        .expect("today's flags");
        let o = options(&cli, None);
        assert_eq!(o.registered_hosts, Some(vec!["a:1".into(), "b:2".into()]));
        assert_eq!(o.duration, Some(Duration::from_secs(5)));
        assert_eq!(
            (o.spares, o.gc_interval, o.max_queue),
            (1, Some(3), Some(10))
        );
        let bench =
            Cli::try_parse_from(["cvx-devnet", "--bench", "--duration", "6"]).expect("bench");
        let o = options(&bench, None);
        assert_eq!(o.duration, None);
        assert_eq!(o.bench.map(|b| b[0]), Some((500, 6)));
        for bad in ["x", "0", "257"] {
            let e = Cli::try_parse_from(["cvx-devnet", "--peers", bad]).expect_err(bad);
            assert_eq!(e.exit_code(), i32::from(EXIT_USAGE), "{bad}");
        }
        assert_eq!(
            Cli::try_parse_from(["cvx-devnet", "--peers", "256"])
                .expect("the most a genesis holds")
                .peers,
            256
        );
    }
}
