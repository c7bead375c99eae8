//! The wall clock, read in one place: the policy crate never reads it, so the gateway
//! (and the desktop app) pass these values in. Never used to measure durations (that is
//! `Instant`'s job).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    (now_ms() / 1000) as i64
}

/// The next midnight, local time (UTC where the local offset cannot be read), for grants
/// that last "today".
pub fn end_of_day_ms() -> u64 {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let midnight = now.replace_time(time::Time::MIDNIGHT) + time::Duration::days(1);
    (midnight.unix_timestamp() as u64) * 1000
}
