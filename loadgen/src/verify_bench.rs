//! `cvx-loadgen verify-bench`: what one signature costs under the transaction signature
//! rule, signed, verified alone and verified in a batch (the devnet's crypto ceiling is
//! computed from it, devnet/src/ceiling.rs).

use std::time::Instant;

use cvx_loadgen::Keypair;
use cvx_protocol::ledger::{Action, SignedTransaction, Transaction};
use cvx_protocol::{Address, Amount, Hash, NetworkId};

use crate::out;

/// Single against batch verification of `n` signed transactions under the transaction
/// signature rule (`cvx_protocol::cofactored`; the ingress bound a peer's CPU puts on
/// finalized tx/s).
pub(crate) fn verify_bench(n: usize) {
    use cvx_protocol::Signable as _;
    let network = NetworkId(Hash([7; 32]));
    let keys: Vec<Keypair> = (0..n as u64)
        .map(|i| Keypair::derive("bench", 1, i))
        .collect();
    let tx = |i: usize| Transaction {
        origin: Address(i as u64),
        sequence: 1,
        action: Action::Transfer {
            to: Address(0),
            amount: Amount::new(1).unwrap_or(Amount::ZERO),
        },
    };
    let sign_all = || -> Vec<SignedTransaction> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| k.sign_tx(&network, tx(i)))
            .collect()
    };
    // Each figure is the median of ROUNDS timed rounds over all n signatures, after one
    // untimed round: a single timed pass (the earlier method) caught warm-up and whatever else
    // the machine was finishing, and moved the ceiling by up to 25% between runs.
    let txs = sign_all();
    // Signing as a client does it (sign-bytes included), per transaction.
    let sign = median_us_per_item(n, || {
        std::hint::black_box(sign_all());
        true
    });
    let sbs: Vec<_> = txs.iter().map(|t| t.tx.sign_bytes(&network)).collect();
    let pks: Vec<_> = keys.iter().map(Keypair::public).collect();
    // The transaction signature rule, as a peer checks it: one by one and as one batch.
    let items: Vec<cvx_protocol::cofactored::Item<'_>> = sbs
        .iter()
        .zip(&pks)
        .zip(&txs)
        .map(|((sb, pk), t)| (sb, pk, &t.signature))
        .collect();
    let mut ok = true;
    let single = median_us_per_item(n, || {
        items
            .iter()
            .all(|(sb, pk, sig)| cvx_protocol::cofactored::verify(sb, pk, sig))
    });
    ok &= single.1;
    let batch = median_us_per_item(n, || cvx_protocol::cofactored::verify_batch(&items));
    ok &= batch.1;
    let (sign, single, batch) = (sign.0, single.0, batch.0);
    let v = serde_json::json!({
        "n": n,
        "rounds": ROUNDS,
        "all_valid": ok,
        "sign_us_per_sig": (sign * 100.0).round() / 100.0,
        "single_us_per_sig": (single * 100.0).round() / 100.0,
        "batch_us_per_sig": (batch * 100.0).round() / 100.0,
        "batch_bound_tx_per_sec_per_core": (1e6 / batch.max(0.001)).round(),
    });
    out(&format!("{v}\n"));
}

/// Timed rounds per `verify-bench` figure (their median is reported).
const ROUNDS: usize = 5;

/// Run `round` once untimed, then [`ROUNDS`] times timed; the median round's µs per item
/// (of `n`), and whether every round returned true.
fn median_us_per_item(n: usize, mut round: impl FnMut() -> bool) -> (f64, bool) {
    let mut ok = round();
    let mut us: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            ok &= round();
            #[allow(clippy::cast_precision_loss)]
            let per = t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
            per
        })
        .collect();
    us.sort_by(f64::total_cmp);
    (us[ROUNDS / 2], ok)
}
