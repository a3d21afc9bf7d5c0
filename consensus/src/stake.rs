//! Stake weights with decay, in integer fixed point (deterministic on every machine).
//!
//! A peer keeps its full stake as weight for `decay_grace_ms` after its newest finalized
//! block; after that the weight is `stake · max(floor, e^(−(Δ − grace) / decay_time))`
//! with `floor = decay_floor_ppm / 10^6`. `e^(−x)` is computed at a scale of 10^18:
//! the integer part of `x` by repeated multiplication with `e^(−1)`, the fraction by 24
//! Taylor terms (error below 10^−17).

use cvx_protocol::Timestamp;
use cvx_protocol::ledger::{Params, PeerRecord};

/// Fixed-point scale of decay factors.
pub const SCALE: u128 = 1_000_000_000_000_000_000;
/// `e^(−1) · 10^18`, rounded down.
const E_INV: u128 = 367_879_441_171_442_321;

/// `e^(−num/den) · 10^18` for `den > 0`.
#[must_use]
pub fn exp_neg(num: u64, den: u64) -> u128 {
    let den = den.max(1);
    let whole = num / den;
    let frac = u128::from(num % den);
    let mut f = SCALE;
    for _ in 0..whole.min(64) {
        f = f * E_INV / SCALE;
    }
    if whole >= 64 {
        return 0;
    }
    // e^(−frac/den) = Σ (−frac/den)^k / k!
    let d = u128::from(den);
    let mut term = SCALE;
    let mut pos = SCALE;
    let mut neg = 0u128;
    for k in 1..=24u128 {
        term = term * frac / (d * k);
        if term == 0 {
            break;
        }
        if k % 2 == 1 {
            neg += term;
        } else {
            pos += term;
        }
    }
    f * pos.saturating_sub(neg) / SCALE
}

/// The effective stake (weight) of `peer` at `now`.
#[must_use]
pub fn effective_stake(peer: &PeerRecord, now: Timestamp, params: &Params) -> u64 {
    let stake = u128::from(peer.stake.get());
    let idle = now.0.saturating_sub(peer.last_block_time.0);
    if idle <= params.decay_grace_ms {
        return peer.stake.get();
    }
    let f = exp_neg(idle - params.decay_grace_ms, params.decay_time_ms);
    let floor = u128::from(params.decay_floor_ppm) * (SCALE / 1_000_000);
    let w = stake * f.max(floor) / SCALE;
    // w <= stake <= u64::MAX.
    u64::try_from(w).unwrap_or(u64::MAX)
}

/// True when `weight` is strictly more than 0.67 of `total`.
#[must_use]
pub fn above_threshold(weight: u128, total: u128) -> bool {
    weight * 100 > total * 67
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_known_values() {
        assert_eq!(exp_neg(0, 10), SCALE);
        let one = exp_neg(10, 10);
        assert!(one.abs_diff(E_INV) < 10, "{one}");
        // e^-0.5 = 0.6065306597126334
        let half = exp_neg(5, 10);
        assert!(half.abs_diff(606_530_659_712_633_400) < 1_000, "{half}");
        // e^-2.5 = 0.0820849986238988
        let x = exp_neg(25, 10);
        assert!(x.abs_diff(82_084_998_623_898_800) < 1_000, "{x}");
        assert_eq!(exp_neg(1000, 1), 0);
    }

    #[test]
    fn threshold_is_strictly_more_than_067() {
        assert!(!above_threshold(67, 100));
        assert!(above_threshold(68, 100));
        assert!(!above_threshold(0, 0));
    }
}

#[cfg(test)]
mod decay_tests {
    use super::*;
    use cvx_protocol::ledger::PeerRecord;
    use cvx_protocol::{Address, Amount};

    fn rec(stake: u64, last: u64) -> PeerRecord {
        PeerRecord {
            key: crate::merge::tests::key(1),
            controller: Address(0),
            stake: Amount::new(stake).unwrap(),
            host: None,
            last_block_time: Timestamp(last),
        }
    }

    fn params() -> Params {
        Params {
            min_stake: Amount::new(1).unwrap(),
            fee: Amount::ZERO,
            max_block_txs: 10,
            min_block_time_ms: 1,
            max_block_backdate_ms: 1,
            max_future_ms: 1,
            proposal_hold_ms: 100,
            decay_grace_ms: 1_000,
            decay_time_ms: 2_000,
            decay_floor_ppm: 100_000,
        }
    }

    #[test]
    fn rule_decayed_stake_full_in_grace_then_exponential_then_floor() {
        let p = params();
        assert_eq!(
            effective_stake(&rec(1_000_000, 0), Timestamp(1_000), &p),
            1_000_000,
            "within grace"
        );
        // One decay time after grace: stake / e.
        let w = effective_stake(&rec(1_000_000, 0), Timestamp(3_000), &p);
        assert!(w.abs_diff(367_879) <= 1, "{w}");
        // Far out: the floor (10%).
        assert_eq!(
            effective_stake(&rec(1_000_000, 0), Timestamp(100_000), &p),
            100_000
        );
        // Monotone.
        let mut prev = u64::MAX;
        for t in (0..20_000).step_by(250) {
            let w = effective_stake(&rec(1_000_000, 0), Timestamp(t), &p);
            assert!(w <= prev);
            prev = w;
        }
    }
}
