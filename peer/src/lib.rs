//! cvx-peer (placeholder; its issue fills it).
