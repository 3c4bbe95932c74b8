//! The one source of "now" for the whole host.
//!
//! Every timestamp the host writes comes from [`now`], so `KANBAN_NOW=<unix seconds>` moves the clock for
//! every command at once (tests and simulations use it instead of sleeping). Nothing else may read the
//! system clock for a stored time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable that pins the clock, in unix seconds.
pub const NOW_ENV: &str = "KANBAN_NOW";

/// The longest duration any setting or flag may name: 100 years. Times are unix seconds in an `i64`, and
/// the host adds durations to them (`now + claim_ttl`); with both bounded the sums can never overflow.
pub const MAX_DURATION_SECONDS: i64 = 100 * 366 * 86_400;

/// The latest `KANBAN_NOW` accepted: the start of the year 10000.
pub const MAX_NOW: i64 = 253_402_300_800;

/// Current time in unix seconds, honouring `KANBAN_NOW`.
///
/// A malformed or out-of-range `KANBAN_NOW` (not between 0 and [`MAX_NOW`]) is ignored with a warning rather
/// than failing every command: the variable is a testing aid, and a worker inheriting a stray value must
/// still be able to report back.
pub fn now() -> i64 {
    if let Ok(raw) = std::env::var(NOW_ENV) {
        match raw.trim().parse::<i64>() {
            Ok(secs) if (0..=MAX_NOW).contains(&secs) => return secs,
            _ => tracing::warn!(value = %raw, "ignoring malformed or out-of-range {NOW_ENV}"),
        }
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
