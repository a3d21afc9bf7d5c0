//! The state machine's settings: what the host may tune per peer (network rules come from
//! the genesis).
use cvx_protocol::PublicKey;
use cvx_protocol::consensus::MAX_ORDER_BLOCKS;
use cvx_protocol::ledger::Genesis;

/// Settings of one peer's state machine (network rules come from the genesis).
#[derive(Clone, Debug)]
pub struct Config {
    /// The network.
    pub genesis: Genesis,
    /// This peer's public key (its signer holds the private half).
    pub key: PublicKey,
    /// Most block ids an own order lists above its checkpoint (`..=MAX_ORDER_BLOCKS`).
    pub max_order_blocks: usize,
    /// Transactions per own block (at most `params.max_block_txs`; match the signer's
    /// `PolicyParams::max_block_txs`).
    pub block_tx_cap: u32,
    /// Resend the belief at least this often.
    pub rebroadcast_ms: u64,
    /// Re-run the merge at least this often (time-dependent rules: decay, future blocks).
    pub merge_interval_ms: u64,
    /// Pending transactions held at most.
    pub max_mempool: usize,
    /// Produce an empty block when the own stake would otherwise start to decay.
    pub heartbeat: bool,
    /// Own blocks signed but not yet in the own order, at most.
    pub max_own_pending: usize,
    /// The pace of own blocks under load: a block is made once this long has passed
    /// since the last one (never sooner than the network's `min_block_time_ms`).
    pub block_interval_ms: u64,
    /// While the load is light, a block goes out early: as soon as `min_block_time_ms`
    /// has passed, if at most this many transactions wait and the last own block held
    /// at most this many. Under load more wait, and blocks keep the `block_interval_ms`
    /// pace (fewer, larger blocks; fewer proposal splits). 0: never early.
    pub early_block_txs: usize,
    /// Early blocks only while the own blocks reach finality within this long (a moving
    /// average from each own block's timestamp to its execution here). On a slow network
    /// (WAN round trips) an order round spans many blocks, more blocks mean more proposal
    /// splits, and the few ms an early block saves are a small share of the latency.
    pub early_block_max_final_ms: u64,
    /// At least this long between two merges (and so between two own orders): bounds
    /// the order rate and batches incoming beliefs.
    pub min_order_gap_ms: u64,
    /// Finalized blocks kept listed above the checkpoint (so peers a little behind can
    /// line orders up without fetching ids); the checkpoint trails finality by this.
    pub keep_finalized: u64,
}

impl Config {
    /// Defaults for `genesis` and `key`.
    #[must_use]
    pub fn new(genesis: Genesis, key: PublicKey) -> Self {
        let cap = genesis.params.max_block_txs.min(1024);
        Self {
            genesis,
            key,
            max_order_blocks: MAX_ORDER_BLOCKS,
            block_tx_cap: cap,
            rebroadcast_ms: 200,
            merge_interval_ms: 20,
            max_mempool: 100_000,
            heartbeat: true,
            max_own_pending: 4,
            block_interval_ms: 20,
            early_block_txs: 4,
            early_block_max_final_ms: 100,
            min_order_gap_ms: 10,
            keep_finalized: 64,
        }
    }
}
