//! Test support: the network parameters of the unit tests' genesis files (short times,
//! as on a devnet).

use cvx_protocol::Amount;
use cvx_protocol::ledger::Params;

/// Parameters with short times (the devnet's).
pub fn params() -> Params {
    Params {
        min_stake: Amount::new(1_000).unwrap_or(Amount::ZERO),
        fee: Amount::new(1).unwrap_or(Amount::ZERO),
        max_block_txs: 1024,
        min_block_time_ms: 20,
        max_block_backdate_ms: 10_000,
        max_future_ms: 1_000,
        proposal_hold_ms: 100,
        decay_grace_ms: 4_000,
        decay_time_ms: 3_600_000,
        decay_floor_ppm: 100_000,
    }
}
