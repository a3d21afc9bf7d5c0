//! The Prometheus text exposition of the peer's gauges and counters (`/metrics`).

use std::sync::atomic::Ordering;

use super::MainLoop;

impl MainLoop {
    pub(super) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let st = self.status();
        let stats = self.peer.stats();
        let sh = &self.ctx.shared;
        let mut m = String::new();
        let mut g = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                m,
                "# HELP cvx_peer_{name} {help}\n# TYPE cvx_peer_{name} {kind}\ncvx_peer_{name} {v}"
            );
        };
        g(
            "proposal",
            "Proposal point of the own order.",
            "gauge",
            st.proposal,
        );
        g(
            "consensus",
            "Consensus point of the own order.",
            "gauge",
            st.consensus,
        );
        g(
            "finality",
            "Finality point (blocks executed).",
            "gauge",
            st.finality,
        );
        g(
            "in_consensus",
            "1 while the peer can take part in consensus (else clients get NETWORK).",
            "gauge",
            u64::from(st.in_consensus),
        );
        g(
            "signer_up",
            "1 while the signer session is up (connected, not locked); 0 while the peer cannot sign.",
            "gauge",
            u64::from(self.ctx.signer.is_up()),
        );
        g(
            "connections_outgoing",
            "Outgoing connections (count only: the list is never revealed).",
            "gauge",
            u64::from(st.outgoing),
        );
        g(
            "connections_incoming",
            "Incoming connections.",
            "gauge",
            u64::from(st.incoming),
        );
        g(
            "mempool",
            "Transactions waiting for a block.",
            "gauge",
            self.peer.mempool_len() as u64,
        );
        g(
            "finalized_tx_total",
            "Transactions finalized since start.",
            "counter",
            self.finalized_tx,
        );
        g(
            "frames_in_total",
            "Frames received.",
            "counter",
            sh.frames_in.load(Ordering::Relaxed),
        );
        g(
            "belief_orders_sent_total",
            "Orders sent in beliefs (deltas: only what a connection does not hold).",
            "counter",
            sh.belief_orders_sent.load(Ordering::Relaxed),
        );
        g(
            "belief_orders_saved_total",
            "Orders that whole beliefs would have sent on top of the deltas.",
            "counter",
            sh.belief_orders_saved.load(Ordering::Relaxed),
        );
        g(
            "ingress_refused_total",
            "Client transactions refused at ingress (FORMAT, SEQUENCE, SIGNATURE, LOAD, NETWORK...).",
            "counter",
            sh.refused_ingress.load(Ordering::Relaxed),
        );
        g(
            "state_synced_from",
            "Position this peer joined at by state sync (0: it did not join by state sync).",
            "gauge",
            self.synced_from,
        );
        g(
            "start_position",
            "Ledger height this process started at (0: genesis; else its store or a state sync).",
            "gauge",
            self.start_position,
        );
        g(
            "blocks_executed_total",
            "Blocks executed by this process (never the history before its start position).",
            "counter",
            self.executed,
        );
        g(
            "gc_runs_total",
            "Store garbage collections completed.",
            "counter",
            self.gc.runs.load(Ordering::Relaxed),
        );
        g(
            "gc_bytes_reclaimed_total",
            "Store bytes reclaimed by garbage collection.",
            "counter",
            self.gc.reclaimed.load(Ordering::Relaxed),
        );
        g(
            "store_bytes",
            "Bytes used in the store file (records and index).",
            "gauge",
            sh.store.stats().map_or(0, |s| s.used_bytes),
        );
        g(
            "state_nodes_served_total",
            "State-tree nodes served to syncing peers.",
            "counter",
            sh.state_nodes_served.load(Ordering::Relaxed),
        );
        g(
            "state_requests_limited_total",
            "State requests answered LOAD (a connection over its per-second budget).",
            "counter",
            sh.state_requests_limited.load(Ordering::Relaxed),
        );
        g(
            "orders_signed_total",
            "Own orders signed.",
            "counter",
            stats.orders_signed,
        );
        g(
            "blocks_signed_total",
            "Own blocks signed.",
            "counter",
            stats.blocks_signed,
        );
        g(
            "orders_accepted_total",
            "Orders accepted from other peers.",
            "counter",
            stats.orders_accepted,
        );
        g(
            "unlinkable_total",
            "Merges that found an order they could not line up.",
            "counter",
            stats.unlinkable,
        );
        g(
            "bad_signer_signatures_total",
            "Signatures from the signer that did not verify.",
            "counter",
            stats.bad_signer_signatures,
        );
        let _ = writeln!(
            m,
            "# HELP cvx_peer_signer_refusals_total Signer refusals by code.\n# TYPE cvx_peer_signer_refusals_total counter"
        );
        for (code, n) in &stats.refusals {
            let _ = writeln!(m, "cvx_peer_signer_refusals_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            m,
            "# HELP cvx_peer_dropped_total Inputs dropped by the consensus machine, by reason.\n# TYPE cvx_peer_dropped_total counter"
        );
        for (why, n) in &stats.dropped {
            let _ = writeln!(m, "cvx_peer_dropped_total{{reason=\"{why:?}\"}} {n}");
        }
        m
    }
}
