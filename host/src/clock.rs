//! The one source of "now" for the whole host.
//!
//! Every timestamp the host writes comes from [`now`], so `KANBAN_NOW=<unix seconds>` moves the clock for
//! every command at once (tests and simulations use it instead of sleeping). Nothing else may read the
//! system clock for a stored time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Environment variable that pins the clock, in unix seconds.
pub const NOW_ENV: &str = "KANBAN_NOW";

/// Current time in unix seconds, honouring `KANBAN_NOW`.
///
/// A malformed `KANBAN_NOW` is ignored with a warning rather than failing every command: the variable is a
/// testing aid, and a worker inheriting a stray value must still be able to report back.
pub fn now() -> i64 {
    if let Ok(raw) = std::env::var(NOW_ENV) {
        match raw.trim().parse::<i64>() {
            Ok(secs) => return secs,
            Err(_) => tracing::warn!(value = %raw, "ignoring malformed {NOW_ENV}"),
        }
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
