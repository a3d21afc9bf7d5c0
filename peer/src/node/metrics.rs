//! `/metrics`: the peer's gauges, counters and histograms on prometheus-client, in the
//! OpenMetrics text format.
//!
//! Values the loop already holds (points, counts, the machine's statistics) are encoded
//! from a fresh registry at each scrape (`Const*` metrics: no second copy to keep in
//! step); the histograms and the signer outcomes are [`Instruments`] updated where they
//! happen. Every name of the hand-written exposition it replaced is kept (counters get
//! their `_total` from the encoder), so dashboards and tests keep working.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cvx_protocol::policy::Refusal;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::MainLoop;

/// Label sets of a family.
type Labels = Vec<(String, String)>;

/// Metrics updated where things happen (cheap clones share the values).
#[derive(Clone, Debug)]
pub(super) struct Instruments {
    /// Seconds from a client's submission to this peer until its transaction is
    /// finalized here.
    pub(super) finality_latency: Histogram,
    /// Seconds from handing a request to the signer task until its answer.
    pub(super) signer_round_trip: Histogram,
    /// Signer requests by outcome: `signed`, `refused` (with the refusal `code`),
    /// `failed` (transport: unreachable, timed out, queue full).
    pub(super) signer: Family<Labels, Counter>,
}

/// What became of one sign request, for [`Instruments::signer_outcome`].
#[derive(Debug)]
pub(super) enum SignerOutcome<'a> {
    /// The signer signed.
    Signed,
    /// The signer refused, with its code.
    Refused(&'a Refusal),
    /// No answer: the session was down, timed out or broke (the request is held and
    /// asked again once the session is up).
    Failed,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Instruments {
    pub(super) fn new() -> Self {
        let s = Self {
            // 50 ms .. ~51 s
            finality_latency: Histogram::new(exponential_buckets(0.05, 2.0, 11)),
            // 100 µs .. ~3.3 s
            signer_round_trip: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            signer: Family::default(),
        };
        // Present from the start (at 0), so alert rules always find them.
        for o in ["signed", "failed"] {
            let _ = s.signer.get_or_create(&labels(&[("outcome", o)]));
        }
        s
    }

    /// Count one signer answer and its round trip.
    pub(super) fn signer_outcome(&self, outcome: &SignerOutcome<'_>, round_trip: Option<Duration>) {
        if let Some(d) = round_trip {
            self.signer_round_trip.observe(d.as_secs_f64());
        }
        let l = match outcome {
            SignerOutcome::Signed => labels(&[("outcome", "signed")]),
            SignerOutcome::Refused(r) => labels(&[("outcome", "refused"), ("code", r.code.name())]),
            SignerOutcome::Failed => labels(&[("outcome", "failed")]),
        };
        self.signer.get_or_create(&l).inc();
    }
}

/// Free and total bytes of the file system holding `dir` (None if it cannot be read).
fn disk(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    // c_ulong and fsblkcnt_t are u64 on the 64-bit Linux targets cvx supports.
    let unit = s.fragment_size().max(1);
    Some((
        s.blocks_available().saturating_mul(unit),
        s.blocks().saturating_mul(unit),
    ))
}

/// A registry under construction.
struct Out(Registry);

impl Out {
    fn gauge(&mut self, name: &str, help: &str, v: u64) {
        let help = help.trim_end_matches('.');
        self.0.register(
            name,
            help,
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)),
        );
    }

    /// `name` without `_total` (the encoder appends it).
    fn counter(&mut self, name: &str, help: &str, v: u64) {
        let help = help.trim_end_matches('.');
        self.0.register(name, help, ConstCounter::new(v));
    }
}

impl MainLoop {
    /// True while the peer is ready to serve clients: it takes part in consensus and its
    /// signer session is up.
    pub(super) fn ready(&self) -> bool {
        self.ctx.shared.in_consensus.load(Ordering::Relaxed) && self.ctx.signer.is_up()
    }

    pub(super) fn metrics(&self) -> String {
        let st = self.status();
        let stats = self.peer.stats();
        let sh = &self.ctx.shared;
        let mut o = Out(Registry::with_prefix("cvx_peer"));
        o.gauge("proposal", "Proposal point of the own order.", st.proposal);
        o.gauge(
            "consensus",
            "Consensus point of the own order.",
            st.consensus,
        );
        o.gauge("finality", "Finality point (blocks executed).", st.finality);
        o.gauge(
            "finality_stalled_seconds",
            "Seconds since the finality point last advanced.",
            crate::clock::now().0.saturating_sub(self.stall.1) / 1000,
        );
        o.gauge(
            "in_consensus",
            "1 while the peer can take part in consensus (else clients get NETWORK).",
            u64::from(st.in_consensus),
        );
        o.gauge(
            "signer_up",
            "1 while the signer session is up (connected, not locked); 0 while the peer cannot sign.",
            u64::from(self.ctx.signer.is_up()),
        );
        o.gauge(
            "ready",
            "1 while the peer is ready for clients: in consensus and its signer session up.",
            u64::from(self.ready()),
        );
        o.gauge(
            "connections_outgoing",
            "Outgoing connections (count only: the list is never revealed).",
            u64::from(st.outgoing),
        );
        o.gauge(
            "connections_incoming",
            "Incoming connections.",
            u64::from(st.incoming),
        );
        o.gauge(
            "outgoing_target",
            "Outgoing connections the peer aims for: target_outgoing, or fewer when fewer staked peers are known.",
            self.settings
                .target_outgoing
                .min(self.candidates().len()) as u64,
        );
        o.gauge(
            "mempool",
            "Transactions waiting for a block.",
            self.peer.mempool_len() as u64,
        );
        o.counter(
            "finalized_tx",
            "Transactions finalized since start.",
            self.finalized_tx,
        );
        o.counter(
            "frames_in",
            "Frames received.",
            sh.frames_in.load(Ordering::Relaxed),
        );
        o.counter(
            "belief_orders_sent",
            "Orders sent in beliefs (deltas: only what a connection does not hold).",
            sh.belief_orders_sent.load(Ordering::Relaxed),
        );
        o.counter(
            "belief_orders_saved",
            "Orders that whole beliefs would have sent on top of the deltas.",
            sh.belief_orders_saved.load(Ordering::Relaxed),
        );
        o.counter(
            "ingress_refused",
            "Client transactions refused at ingress (FORMAT, SEQUENCE, SIGNATURE, LOAD, NETWORK...).",
            sh.refused_ingress.load(Ordering::Relaxed),
        );
        o.gauge(
            "state_synced_from",
            "Position this peer joined at by state sync (0: it did not join by state sync).",
            self.synced_from,
        );
        o.gauge(
            "start_position",
            "Ledger height this process started at (0: genesis; else its store or a state sync).",
            self.start_position,
        );
        o.counter(
            "blocks_executed",
            "Blocks executed by this process (never the history before its start position).",
            self.executed,
        );
        o.counter(
            "gc_runs",
            "Store garbage collections completed.",
            self.gc.runs.load(Ordering::Relaxed),
        );
        o.counter(
            "gc_bytes_reclaimed",
            "Store bytes reclaimed by garbage collection.",
            self.gc.reclaimed.load(Ordering::Relaxed),
        );
        o.gauge(
            "store_bytes",
            "Bytes used in the store file (records and index).",
            sh.store.stats().map_or(0, |s| s.used_bytes),
        );
        if let Some((free, size)) = disk(&self.settings.data_dir) {
            o.gauge(
                "store_disk_free_bytes",
                "Bytes available to the peer on the file system of its data_dir.",
                free,
            );
            o.gauge(
                "store_disk_size_bytes",
                "Size of the file system of the peer's data_dir.",
                size,
            );
        }
        o.counter(
            "state_nodes_served",
            "State-tree nodes served to syncing peers.",
            sh.state_nodes_served.load(Ordering::Relaxed),
        );
        o.counter(
            "state_requests_limited",
            "State requests answered LOAD (a connection over its per-second budget).",
            sh.state_requests_limited.load(Ordering::Relaxed),
        );
        o.counter(
            "signature_checks",
            "Transaction signatures verified by this process, at ingress and at execution (one per signature in a batch): about one per finalized transaction, since no signature is verified twice.",
            sh.state().verified().verifications(),
        );
        o.counter(
            "frames_dropped",
            "Frames dropped because a connection's write queue was full (frames or bytes).",
            sh.write.dropped.load(Ordering::Relaxed),
        );
        let queues = Family::<Labels, Gauge>::default();
        for (name, n) in self.queue_lengths() {
            queues
                .get_or_create(&labels(&[("queue", name)]))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        o.0.register(
            "queue_length",
            "Entries in each bounded queue, map and cache (docs/operations.md, Memory limits)",
            queues,
        );
        o.counter("orders_signed", "Own orders signed.", stats.orders_signed);
        o.counter("blocks_signed", "Own blocks signed.", stats.blocks_signed);
        o.counter(
            "orders_accepted",
            "Orders accepted from other peers.",
            stats.orders_accepted,
        );
        o.counter(
            "unlinkable",
            "Merges that found an order they could not line up.",
            stats.unlinkable,
        );
        o.counter(
            "proposals_held",
            "Merges whose vote chose other blocks below the own proposal, kept by the hold rule (proposal splits).",
            stats.proposals_held,
        );
        o.counter(
            "bad_signer_signatures",
            "Signatures from the signer that did not verify.",
            stats.bad_signer_signatures,
        );
        let refusals = Family::<Labels, Counter>::default();
        for (code, n) in &stats.refusals {
            refusals
                .get_or_create(&labels(&[("code", code)]))
                .inc_by(*n);
        }
        o.0.register(
            "signer_refusals",
            "Signer refusals seen by the consensus machine, by code (transport failures count as STATE_UNAVAILABLE here; see signer_requests_total)",
            refusals,
        );
        let dropped = Family::<Labels, Counter>::default();
        for (why, n) in &stats.dropped {
            dropped
                .get_or_create(&labels(&[("reason", &format!("{why:?}"))]))
                .inc_by(*n);
        }
        o.0.register(
            "dropped",
            "Inputs dropped by the consensus machine, by reason",
            dropped,
        );
        o.0.register(
            "signer_requests",
            "Signer requests by outcome: signed, refused (by code), failed (transport)",
            self.metrics.signer.clone(),
        );
        o.0.register(
            "signer_round_trip_seconds",
            "Seconds from handing a request to the signer task until its answer",
            self.metrics.signer_round_trip.clone(),
        );
        o.0.register(
            "finality_latency_seconds",
            "Seconds from a client's submission to this peer until its transaction is finalized here",
            self.metrics.finality_latency.clone(),
        );
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &o.0);
        text
    }
}
