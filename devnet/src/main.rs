//! `cvx-devnet`: parse arguments, run the devnet, print its summary, map errors to exit
//! codes (0 success, 2 bad command line, 11 the devnet failed).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cvx_devnet::{DEFAULT_ACCOUNTS, DevnetOptions};

/// Exit code: the devnet failed (binaries missing, a child process failed at start-up).
const EXIT_DEVNET: u8 = 11;
/// Exit code: bad command line (also what clap uses for a usage error).
const EXIT_USAGE: u8 = 2;

/// A local cvx network of real processes: N cvx-signer + N cvx-peer + cvx-loadgen load.
///
/// Finds cvx-peer, cvx-signer and cvx-loadgen next to its own executable. Every key,
/// config and log is kept in the devnet directory. Never install it on a peer host.
#[derive(Debug, Parser)]
#[command(
    name = "cvx-devnet",
    version,
    after_help = "EXIT CODES:\n    0  success\n    2  bad command line\n   11  devnet: binaries missing or a child process failed at start-up"
)]
struct Cli {
    /// Number of peers (each with its own sandboxed signer).
    #[arg(long, value_name = "N", default_value_t = 4)]
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
    /// Demo accounts in the genesis (at most 1,048,576); the load uses the first
    /// min(N, 10,000) of them, one transaction in flight each.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ACCOUNTS)]
    accounts: usize,
    /// Each peer's `max_queue`.
    #[arg(long, value_name = "N")]
    max_queue: Option<usize>,
    /// Print one JSON summary object at the end.
    #[arg(long)]
    json: bool,
    /// Benchmark: offered load 500..20000 tx/s in steps; finalized tx/s and finality
    /// p50/p99 per step, next to the batch-verification bound measured in the same run.
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

fn options(cli: &Cli) -> DevnetOptions {
    DevnetOptions {
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
        bench: cli.bench.then(|| {
            let step = cli.duration.unwrap_or(8);
            [500, 1000, 2000, 4000, 8000, 12000, 16000, 20000]
                .into_iter()
                .map(|r| (r, step))
                .collect()
        }),
    }
}

fn run(cli: &Cli) -> Result<(), (u8, String)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| (EXIT_USAGE, format!("cannot start the async runtime: {e}")))?;
    let summary = rt
        .block_on(cvx_devnet::run(options(cli), terminated()))
        .map_err(|e| (EXIT_DEVNET, e.to_string()))?;
    if cli.bench && !cli.json {
        for st in &summary.bench_steps {
            out(&format!(
                "offered {:>6} tx/s -> finalized {:>8} tx/s, finality p50 {:>5} ms, p99 {:>5} ms, ceiling {} tx/s, ratio {}\n",
                st["offered_tx_per_sec"],
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
        let o = options(&cli);
        assert_eq!(o.registered_hosts, Some(vec!["a:1".into(), "b:2".into()]));
        assert_eq!(o.duration, Some(Duration::from_secs(5)));
        assert_eq!(
            (o.spares, o.gc_interval, o.max_queue),
            (1, Some(3), Some(10))
        );
        let bench =
            Cli::try_parse_from(["cvx-devnet", "--bench", "--duration", "6"]).expect("bench");
        let o = options(&bench);
        assert_eq!(o.duration, None);
        assert_eq!(o.bench.map(|b| b[0]), Some((500, 6)));
        let e = Cli::try_parse_from(["cvx-devnet", "--peers", "x"]).expect_err("not a number");
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
    }
}
