//! Convex's own transactions, signed offline for a real Convex 0.8 network: the
//! emergency withdrawal `(set-peer-stake <peer-key> 0)` and coin transfers, in
//! Convex's CAD3 encoding, ready for any Convex peer's REST API
//! (docs/vault.md, "Convex network").
//!
//! * [`cad3`] — the minimal CAD3 encoder subset (and the primitives its one decoder
//!   reads), written from the documents;
//! * [`tx`] — the two typed transactions, the signed wrapper, the transaction id, the
//!   submit body, the summary and the strict decoder;
//! * [`ops`] — the commands.
//!
//! Deliberately absent: a CVM, a Convex Lisp reader, a general CAD3 decoder, any way
//! to sign bytes that were not built here from typed fields.

pub mod cad3;
pub mod ops;
pub mod tx;
