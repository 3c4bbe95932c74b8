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

/// UTC `YYYY-MM-DD HH:MM:SS` for a unix timestamp (civil-from-days, no time-zone database needed).
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A span of seconds for people: `45s`, `3m`, `2h 5m`, `3d 4h`.
pub fn span(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 if secs % 3600 / 60 == 0 => format!("{}h", secs / 3600),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ if secs % 86_400 / 3600 == 0 => format!("{}d", secs / 86_400),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn spans() {
        assert_eq!(span(3), "3s");
        assert_eq!(span(120), "2m");
        assert_eq!(span(7200), "2h");
        assert_eq!(span(7500), "2h 5m");
        assert_eq!(span(3 * 86_400 + 4 * 3600), "3d 4h");
        assert_eq!(span(-5), "0s");
    }
}
