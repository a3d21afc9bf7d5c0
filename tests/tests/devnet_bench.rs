//! `cvx-devnet --bench --json` end to end (issue 15, deliver 6): every step carries the
//! figures the issue names, the crypto ceiling follows the documented formula from the
//! same run's `verify` figures, and the last step runs at 80% of the best step before it.
//! Fields and arithmetic only: the timings themselves are benchmark output, never checked.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use cvx_systest::devnet::{devnet, serial, summary, tmp_dir};

#[test]
fn bench_prints_every_step_with_its_ceiling_and_ends_at_80_percent_of_saturation() {
    let _g = serial();
    let dir = tmp_dir("bench");
    // --duration is the length of each step with --bench; --rate is ignored by the steps.
    let v = summary(devnet(&dir, 1, 500, &["--bench"]));
    let _ = std::fs::remove_dir_all(&dir);
    let steps = v["bench"]
        .as_array()
        .unwrap_or_else(|| panic!("bench[]: {v}"));
    let offered: Vec<u64> = steps
        .iter()
        .map(|s| s["offered_tx_per_sec"].as_u64().unwrap())
        .collect();
    println!("offered per step: {offered:?}");
    assert_eq!(
        offered[..8],
        [500, 1000, 2000, 4000, 8000, 12000, 16000, 20000],
        "{v}"
    );
    assert_eq!(
        steps.len(),
        9,
        "the steps and one at 80% of saturation: {v}"
    );

    // The ceiling, from the same run's verify figures and the documented formula.
    let verify = &v["verify"];
    let sign = verify["sign_us_per_sig"].as_f64().unwrap();
    let batch = verify["batch_us_per_sig"].as_f64().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    #[allow(clippy::cast_precision_loss)]
    let ceiling = (cores as f64 * 1e6 / (sign + batch + 4.0 * batch)).round();
    for s in steps {
        for f in ["finalized", "tx_per_sec", "p50_ms", "p99_ms"] {
            assert!(s[f].is_number(), "step without {f}: {s}");
        }
        assert_eq!(
            s["ceiling_tx_per_sec"].as_f64(),
            Some(ceiling),
            "{s} {verify}"
        );
        let tps = s["tx_per_sec"].as_f64().unwrap();
        let ratio = s["ratio"].as_f64().unwrap();
        assert!(
            (ratio - (tps / ceiling * 1000.0).round() / 1000.0).abs() < 0.0015,
            "ratio = tx_per_sec / ceiling: {s}"
        );
    }

    // The last step: 80% of the highest finalized tx/s of the steps before it.
    let last = &steps[8];
    assert_eq!(last["saturation_percent"], 80, "{last}");
    let best = steps[..8]
        .iter()
        .map(|s| s["tx_per_sec"].as_f64().unwrap())
        .fold(0.0f64, f64::max);
    #[allow(clippy::cast_precision_loss)]
    let want = (best * 0.8).round().max(1.0);
    #[allow(clippy::cast_precision_loss)]
    let got = offered[8] as f64;
    // The load generator rounds the best step's unrounded figure; the summary shows it
    // to 0.1 tx/s.
    assert!(
        (got - want).abs() <= 1.0,
        "80% of {best}: want {want}, got {got}"
    );
    for s in &steps[..8] {
        assert!(s.get("saturation_percent").is_none(), "{s}");
    }
}
