//! The command line of `cvx-loadgen` (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// cvx-loadgen: throwaway account keys and signed demo traffic for a devnet (never
/// installed on a peer host).
#[derive(Debug, Parser)]
#[command(
    name = "cvx-loadgen",
    version,
    after_help = "EXIT CODES:\n    0  success\n    2  bad command line, or the command failed (the message says why)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Public keys of the demo accounts 0..N (hex, one a line).
    Keys {
        /// The seed of the throwaway keys.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How many accounts.
        #[arg(
            long,
            visible_alias = "accounts",
            value_name = "N",
            default_value_t = 100
        )]
        count: u64,
    },
    /// Submit transfers to the peers; one JSON report a second (with --schedule: step the
    /// offered load, one JSON line per step with "step": true, then exit).
    Run {
        /// The network's genesis file.
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// The seed of the throwaway keys.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Demo accounts (one transaction in flight each).
        #[arg(long, visible_alias = "count", value_name = "N", default_value_t = 100)]
        accounts: u64,
        /// Offered load, transactions per second.
        #[arg(long, value_name = "TPS", default_value_t = 1000)]
        rate: u64,
        /// A peer to submit to (repeat for several).
        #[arg(long = "peer", value_name = "HOST:PORT", required = true)]
        peers: Vec<String>,
        /// Benchmark steps: offered load and duration of each. A load written `P%` is P
        /// percent of the highest finalized tx/s of the steps before it (e.g. `80%:8` after
        /// the others: a step at 80% of saturation); it runs 4 s at its load before its
        /// measurement starts, so the backlog of the steps before it drains first.
        #[arg(long, value_name = "TPS:SECS,...", value_parser = parse_schedule)]
        schedule: Option<Schedule>,
    },
    /// Single vs batch verification of N transactions under the transaction signature
    /// rule (cofactored Ed25519): the ingress bound (JSON).
    VerifyBench {
        /// Transactions to verify (at least 64).
        #[arg(
            long,
            visible_alias = "accounts",
            value_name = "N",
            default_value_t = 100
        )]
        count: u64,
    },
    /// Write a signed set-peer-stake 0 file for a demo account (tests).
    Withdraw {
        /// The network's genesis file.
        #[arg(long, value_name = "FILE")]
        genesis: PathBuf,
        /// The seed of the throwaway keys.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The controller account (a demo account index).
        #[arg(long, default_value_t = 0)]
        account: u64,
        /// The transaction's sequence (the account's sequence + 1).
        #[arg(long, default_value_t = 0)]
        sequence: u64,
        /// The peer whose stake is withdrawn (hex).
        #[arg(long, value_name = "HEX")]
        peer_key: String,
        /// Where to write the signed-transaction file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// The offered load of one benchmark step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// Transactions per second.
    Rate(u64),
    /// This percentage of the highest finalized tx/s of the steps before it.
    OfBest(u64),
}

/// Offered-load steps `(load, seconds)`.
#[derive(Clone, Debug)]
pub struct Schedule(pub Vec<(Load, u64)>);

fn parse_schedule(v: &str) -> Result<Schedule, String> {
    let n = |x: &str| x.parse::<u64>().map_err(|_| format!("{x} is not a number"));
    let mut steps = Vec::new();
    for step in v.split(',') {
        let (r, d) = step
            .split_once(':')
            .ok_or(format!("step {step}: want TPS:SECS or P%:SECS"))?;
        let load = match r.strip_suffix('%') {
            Some(p) => {
                let p = n(p)?;
                if steps.is_empty() || p == 0 || p > 1000 {
                    return Err(format!(
                        "step {step}: a P% step needs a step before it, and 0 < P <= 1000"
                    ));
                }
                Load::OfBest(p)
            }
            None => Load::Rate(n(r)?),
        };
        steps.push((load, n(d)?));
    }
    Ok(Schedule(steps))
}
