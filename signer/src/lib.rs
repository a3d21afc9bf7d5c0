//! cvx-signer (placeholder; its issue fills it).
