//! The wall clock, read in one place: the consensus machine gets time as a value.

use cvx_protocol::Timestamp;

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    )
}
