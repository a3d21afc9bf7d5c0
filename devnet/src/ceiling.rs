//! The crypto ceiling of a benchmark run: how many transactions per second the machine's
//! cores could finalize if they did nothing but the signature work one transaction costs,
//! from the same run's micro-measurements (`cvx-loadgen verify-bench`).
//!
//! ```text
//! ceiling_tx_per_sec = cores × 10^6 / (sign_us + batch_us + peers × batch_us)
//! ratio              = finalized tx_per_sec / ceiling_tx_per_sec
//! ```
//!
//! Per transaction, as issue 15 defines the ceiling: the client signs it once
//! (`sign_us_per_sig`), the peer it is submitted to verifies it once at ingress, in a batch
//! of the connection's buffered submissions (`batch_us_per_sig`: at saturation every
//! connection has submissions buffered), and every peer verifies it in a block batch
//! (`batch_us_per_sig`). All of that runs on the same `cores` (the devnet's processes share
//! the machine). Since the cofactored rule the submitting peer's ingress check counts at
//! execution, so the peers do one batch check fewer than the formula counts; the formula
//! is kept as defined, so ratios stay comparable (docs/operations.md, "Crypto ceiling").
//! Until 2026-12-07 the ingress term was `single_us_per_sig` (strict single verification,
//! as before ingress batching), which put the ceiling lower and the ratio higher.

use serde_json::Value;

/// The ceiling (tx/s) from a `verify-bench` report, `peers` peers and `cores` cores; `None`
/// when the report lacks a figure or the figures sum to zero.
#[must_use]
pub fn ceiling_tx_per_sec(verify: &Value, peers: usize, cores: usize) -> Option<f64> {
    let sign = verify["sign_us_per_sig"].as_f64()?;
    let batch = verify["batch_us_per_sig"].as_f64()?;
    #[allow(clippy::cast_precision_loss)] // peer and core counts are small
    let per_tx = sign + batch + peers as f64 * batch;
    #[allow(clippy::cast_precision_loss)]
    (per_tx > 0.0).then(|| cores as f64 * 1e6 / per_tx)
}

/// Add `ceiling_tx_per_sec` and `ratio` (finalized `tx_per_sec` / ceiling) to every
/// benchmark step.
pub fn annotate_steps(steps: &mut [Value], verify: &Value, peers: usize, cores: usize) {
    let Some(c) = ceiling_tx_per_sec(verify, peers, cores) else {
        return;
    };
    for st in steps {
        let tps = st["tx_per_sec"].as_f64().unwrap_or(0.0);
        if let Some(o) = st.as_object_mut() {
            o.insert("ceiling_tx_per_sec".into(), Value::from(c.round()));
            o.insert(
                "ratio".into(),
                Value::from((tps / c * 1000.0).round() / 1000.0),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ceiling_follows_the_documented_formula() {
        // The issue's figures: sign 14, single 39, batch 12.7, four peers, two cores; the
        // ingress check is a batch check (single verification is not part of the ceiling).
        let v =
            json!({"sign_us_per_sig": 14.0, "single_us_per_sig": 39.0, "batch_us_per_sig": 12.7});
        let c = ceiling_tx_per_sec(&v, 4, 2).expect("figures");
        assert!((c - 2e6 / (14.0 + 5.0 * 12.7)).abs() < 1e-6, "{c}");
        let mut steps = vec![json!({"offered_tx_per_sec": 1000, "tx_per_sec": 12903.0})];
        annotate_steps(&mut steps, &v, 4, 2);
        assert_eq!(steps[0]["ceiling_tx_per_sec"], json!(25806.0));
        assert_eq!(steps[0]["ratio"], json!(0.5));
        assert!(ceiling_tx_per_sec(&json!({"single_us_per_sig": 1.0}), 4, 2).is_none());
        assert!(ceiling_tx_per_sec(&json!({"sign_us_per_sig": 1.0}), 4, 2).is_none());
    }
}
