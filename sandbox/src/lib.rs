//! cvx-sandbox (placeholder; its issue fills it).
