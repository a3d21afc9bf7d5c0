//! The signing policy: a pure function from (watermark, request, time) to a decision.
//!
//! cvx-signer holds the peer key and asks [`Policy::decide`] before every signature; a
//! compromised peer process can send any request, so these rules are what stands between
//! it and an equivocation. The rules (each has named tests in `tests/policy_table.rs`):
//!
//! * every request names the network; another network is refused (`WRONG_NETWORK`);
//! * the value must name the signer's own key as proposer / peer / responder (`WRONG_KEY`);
//! * an identical repeat of the last signed block or order is allowed, watermark unchanged
//!   (Ed25519 is deterministic, so the same signature comes back);
//! * blocks: timestamps strictly increase (`BLOCK_NOT_NEWER`), are at most
//!   `now + max_future_skew_ms` (`BLOCK_FUTURE`), and declare at most `max_block_txs`
//!   transactions (`BLOCK_TOO_MANY_TX`);
//! * orders: points consistent `checkpoint <= finality <= consensus <= proposal <= length`
//!   (`ORDER_INCONSISTENT`); timestamps strictly increase (`ORDER_NOT_NEWER`) and are at
//!   most `now + skew` (`ORDER_FUTURE`); consensus and finality never decrease
//!   (`CONSENSUS_REGRESSED`, `FINALITY_REGRESSED`); and the order's chain value at the
//!   previously signed consensus point equals the one recorded then (`PREFIX_CONFLICT`),
//!   so two signed orders never disagree about a consensus prefix. When the order's
//!   checkpoint is above the recorded point, the request carries the block ids in between
//!   (`bridge`) so the signer can link the two (`PREFIX_UNKNOWN` when it cannot);
//! * challenge responses: only over a 32-byte token bound to the challenger's key (not
//!   the signer's own) and the network; an all-zero token is refused.
//!
//! Transactions are never signed by the peer key: [`SignRequest`] has no such variant.

mod decide;
mod refuse;
mod request;
mod watermark;

pub use decide::{Decision, Policy, PolicyParams, blocks_conflict, orders_conflict};
pub use refuse::{Refusal, RefuseCode};
pub use request::{MAX_BRIDGE, Request, SignRequest};
pub use watermark::{BlockMark, OrderMark, Watermark};
