//! cvx-vault (placeholder; its issue fills it).
