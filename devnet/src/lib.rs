//! cvx-devnet: a whole local network of real processes in one command, and the benchmark.
//!
//! In a fresh directory: one key per peer made by `cvx-signer keygen` (age identity, no
//! passphrase), account keys from `cvx-loadgen keys`, a genesis, then N `cvx-signer`
//! (`init`, `run`) and N `cvx-peer run` child processes, and `cvx-loadgen run` driving
//! demo traffic. The peer process never signs a transaction: the load generator does.
//!
//! A launcher: it forks and execs the other binaries (found next to its own executable)
//! and runs outside any sandbox, so it lives in its own crate and is never installed on a
//! peer host. It links none of the daemons' code (`tests/src/deps.rs`): it talks to the
//! peers over the client wire ([`query`]) like any client.

#![forbid(unsafe_code)]

pub mod ceiling;
pub mod checker;
mod children;
mod host;

/// The load generator spreads its traffic over at most this many accounts (the first
/// ones): a genesis may hold up to `MAX_GENESIS_ACCOUNTS` (1,048,576), but deriving a
/// key and keeping a transaction in flight for each would only measure the load
/// generator.
pub const LOAD_ACCOUNTS: usize = 10_000;

mod launch;
pub mod nemesis;
pub mod netns;
pub mod query;
pub mod relay;
pub mod timeline;
pub mod wan;

use std::path::PathBuf;
use std::time::Duration;

use cvx_protocol::ledger::Params;
use cvx_protocol::peer_wire::Status;
use cvx_protocol::{Amount, Hash, Timestamp};

pub use launch::run;

/// Milliseconds since the Unix epoch (the genesis time, the account seed).
pub(crate) fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}

/// What to run.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// Number of peers.
    pub peers: usize,
    /// Stop after this long (None: until Ctrl-C / SIGTERM).
    pub duration: Option<Duration>,
    /// Directory (None: a fresh one under the temp dir).
    pub dir: Option<PathBuf>,
    /// Demo accounts.
    pub accounts: usize,
    /// Offered load (transactions per second, 0: none).
    pub rate: u64,
    /// Print a progress line on stderr.
    pub progress: bool,
    /// Hosts to register on-chain instead of the peers' own addresses (one per peer;
    /// e.g. a fault-injecting proxy in front of each peer, for partition tests).
    pub registered_hosts: Option<Vec<String>>,
    /// Each peer's `max_queue` (None: the default).
    pub max_queue: Option<usize>,
    /// Benchmark mode: offered load steps `(tx/s, seconds)`, run one after the other.
    pub bench: Option<Vec<(u64, u64)>>,
    /// Benchmark mode: one more step after `bench`, at this percentage of the highest
    /// finalized tx/s of the steps before it (its line has `saturation_percent`).
    pub bench_saturation_percent: Option<u64>,
    /// Spare peers to prepare but not start (default 0): each gets its own running
    /// signer, a funded controller account the load never touches, and a peer config
    /// that joins by state sync from the devnet's peers (`peer-N/peer.toml`, listed in
    /// `spares` in the devnet dir). Not in the genesis: stake it with create-peer.
    pub spares: usize,
    /// Each peer's `gc_interval_secs` (None: the default).
    pub gc_interval: Option<u64>,
    /// `--netns`: namespaces, link shaping, the nemesis and the checker (None: loopback).
    pub wan: Option<wan::WanOptions>,
}

/// The summary (`--json`).
#[derive(Clone, Debug)]
pub struct Summary {
    /// Peers.
    pub peers: usize,
    /// Finalized transactions seen by the load generator.
    pub finalized_tx: u64,
    /// Finalized per second over the run.
    pub tx_per_sec: f64,
    /// Finality latency p50 (ms).
    pub finality_ms_p50: u64,
    /// Finality latency p99 (ms).
    pub finality_ms_p99: u64,
    /// Each peer's final status.
    pub positions: Vec<Status>,
    /// Signer pids.
    pub signer_pids: Vec<u32>,
    /// Peer pids.
    pub peer_pids: Vec<u32>,
    /// Load generator pid.
    pub loadgen_pid: Option<u32>,
    /// The directory.
    pub dir: PathBuf,
    /// Processes that exited during the run (e.g. a halted peer).
    pub exited: Vec<String>,
    /// Benchmark mode: one report per offered-load step (JSON objects from cvx-loadgen).
    pub bench_steps: Vec<serde_json::Value>,
    /// Benchmark mode: single vs batch verification measured in the same run.
    pub verify: Option<serde_json::Value>,
    /// Refusals the load generator saw, by code name.
    pub refused: String,
    /// Agreement at a common position: (position, state hash of the first peer, running
    /// peers whose state hash there equals it, running peers asked).
    pub agreement: Option<(u64, Hash, usize, usize)>,
    /// `--netns`: the nemesis and checker fields (merged into the JSON object).
    pub wan: Option<serde_json::Value>,
}

impl Summary {
    /// One JSON object.
    #[must_use]
    pub fn to_json(&self) -> String {
        let positions: Vec<serde_json::Value> = self
            .positions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "peer": s.peer.to_hex(),
                    "proposal": s.proposal,
                    "consensus": s.consensus,
                    "finality": s.finality,
                    "state_root": s.state_root.to_hex(),
                    "in_consensus": s.in_consensus,
                    "outgoing": s.outgoing,
                    "incoming": s.incoming,
                })
            })
            .collect();
        let mut v = serde_json::json!({
            "peers": self.peers,
            "finalized_tx": self.finalized_tx,
            "tx_per_sec": (self.tx_per_sec * 10.0).round() / 10.0,
            "finality_ms_p50": self.finality_ms_p50,
            "finality_ms_p99": self.finality_ms_p99,
            "positions": positions,
            "signer_pids": self.signer_pids,
            "peer_pids": self.peer_pids,
            "loadgen_pid": self.loadgen_pid,
            "dir": self.dir.display().to_string(),
            "exited": self.exited,
            "bench": self.bench_steps,
            "verify": self.verify,
            "refused": serde_json::from_str::<serde_json::Value>(&self.refused).unwrap_or_default(),
            "agreement": self.agreement.map(|(position, h, agree, asked)| serde_json::json!({
                "position": position,
                "state_hash": h.to_hex(),
                "agree": agree,
                "asked": asked,
            })),
        });
        if let (Some(obj), Some(serde_json::Value::Object(w))) = (v.as_object_mut(), &self.wan) {
            for (k, x) in w {
                obj.insert(k.clone(), x.clone());
            }
        }
        v.to_string()
    }
}

/// Why the devnet failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// A sibling binary is missing.
    #[error(
        "{0} not found next to cvx-devnet: build them together with `cargo build --release --locked -p cvx-devnet -p cvx-peer -p cvx-signer -p cvx-loadgen`"
    )]
    Missing(PathBuf),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A child failed.
    #[error("{0}")]
    Child(String),
}

/// Parameters of the devnet's network (short times, as in simulations).
#[must_use]
pub fn devnet_params() -> Params {
    Params {
        min_stake: Amount::new(1_000).unwrap_or(Amount::ZERO),
        fee: Amount::new(1).unwrap_or(Amount::ZERO),
        max_block_txs: 1024,
        min_block_time_ms: 5,
        max_block_backdate_ms: 10_000,
        max_future_ms: 1_000,
        proposal_hold_ms: 100,
        // An idle peer makes an empty block after half of this (the consensus machine's
        // heartbeat), so an idle devnet still moves and reaches agreement.
        decay_grace_ms: 4_000,
        decay_time_ms: 3_600_000,
        decay_floor_ppm: 100_000,
    }
}

/// Default account count for the demo traffic.
pub const DEFAULT_ACCOUNTS: usize = 2000;

impl Summary {
    /// Violations the checker found (`--netns`; 0 otherwise).
    #[must_use]
    pub fn violations(&self) -> usize {
        self.wan
            .as_ref()
            .and_then(|w| w["violations"].as_array().map(Vec::len))
            .unwrap_or(0)
    }
}
