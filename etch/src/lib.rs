//! cvx-etch (placeholder; filled by the etch issue).
