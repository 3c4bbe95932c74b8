//! Recurring cards: when a schedule's occurrences fall, and which of them a tick creates. Pure: a cron
//! expression in an explicit IANA time zone (DST gaps and overlaps are the cron crate's, `croner`), and the
//! catch-up rule that decides what a dispatcher that was down does with the occurrences it missed. The
//! store writes what this file decides; the tick calls it with `crate::clock::now()`.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::model::CatchUp;

/// `--catch-up all` creates at most this many missed occurrences of one schedule in one tick (the newest).
pub const CATCH_UP_ALL_LIMIT: usize = 100;

/// `--catch-up none`: an occurrence found at most this late is on time and created; an older one was
/// missed and is skipped. Wide enough for a daemon's tick interval and a slow tick.
pub const ON_TIME_SECONDS: i64 = 300;

/// A bad `--cron` or `--tz`: a usage error naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "'{expr}' is not a cron expression ({why}); use 5 fields: minute hour day-of-month month day-of-week"
    )]
    Cron { expr: String, why: String },
    #[error("'{0}' is not an IANA time zone name (like UTC or Europe/Berlin)")]
    Zone(String),
    #[error("cron expression '{0}' never fires")]
    Never(String),
}

/// A parsed schedule: a standard 5-field cron expression (or an `@daily`-style nickname) in a time zone.
#[derive(Debug, Clone)]
pub struct Spec {
    cron: Cron,
    tz: Tz,
}

impl Spec {
    pub fn parse(expr: &str, tz: &str) -> Result<Spec, SpecError> {
        let zone = Tz::from_str(tz.trim()).map_err(|_| SpecError::Zone(tz.to_string()))?;
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron =
            parser.parse(expr).map_err(|e| SpecError::Cron { expr: expr.to_string(), why: e.to_string() })?;
        Ok(Spec { cron, tz: zone })
    }

    /// The zone's canonical name, as stored and shown.
    pub fn zone(&self) -> &'static str {
        self.tz.name()
    }

    fn at(&self, t: i64) -> Option<DateTime<Tz>> {
        DateTime::<Utc>::from_timestamp(t, 0).map(|d| d.with_timezone(&self.tz))
    }

    /// The first occurrence strictly after `t` (unix seconds); none if the expression never fires again.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let at = self.at(t)?;
        self.cron.find_next_occurrence(&at, false).ok().map(|d| d.timestamp())
    }

    /// The newest occurrence at or before `t`.
    pub fn latest_at_or_before(&self, t: i64) -> Option<i64> {
        let at = self.at(t)?;
        self.cron.find_previous_occurrence(&at, true).ok().map(|d| d.timestamp())
    }

    /// The first occurrence after `now`, for a new schedule; refused if there is none.
    pub fn first_after(&self, expr: &str, now: i64) -> Result<i64, SpecError> {
        self.next_after(now).ok_or_else(|| SpecError::Never(expr.to_string()))
    }
}

/// What a tick does with a schedule whose `next_at` has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The occurrences to create (oldest first).
    pub fire: Vec<i64>,
    /// Some due occurrences are not created: the catch-up rule passed over the older (or all) missed ones.
    pub passed_over: bool,
    /// The newest due occurrence, when the rule creates none of them (`none`, all of them missed).
    pub missed: Option<i64>,
    /// The schedule's next occurrence after `now` (none: it never fires again).
    pub next_at: Option<i64>,
}

/// The occurrences due at `now` of a schedule whose next occurrence was `next_at`, by its catch-up rule:
/// `latest` the newest due one, `all` every due one (the newest [`CATCH_UP_ALL_LIMIT`]), `none` only one
/// that is on time ([`ON_TIME_SECONDS`]). Nothing when `next_at` is still in the future.
pub fn due(spec: &Spec, next_at: i64, now: i64, catch_up: CatchUp) -> Due {
    if next_at > now {
        return Due { fire: Vec::new(), passed_over: false, missed: None, next_at: Some(next_at) };
    }
    let newest = spec.latest_at_or_before(now).filter(|t| *t >= next_at).unwrap_or(next_at);
    let next = spec.next_after(now);
    let fire = match catch_up {
        CatchUp::Latest => vec![newest],
        CatchUp::None if now - newest <= ON_TIME_SECONDS => vec![newest],
        CatchUp::None => Vec::new(),
        CatchUp::All => {
            let mut fire = vec![newest];
            while fire.len() < CATCH_UP_ALL_LIMIT {
                let last = *fire.last().expect("one at least");
                match spec.latest_at_or_before(last - 1) {
                    Some(t) if t >= next_at => fire.push(t),
                    _ => break,
                }
            }
            fire.reverse();
            fire
        }
    };
    let passed_over = fire.first().is_none_or(|first| *first > next_at);
    let missed = fire.is_empty().then_some(newest);
    Due { fire, passed_over, missed, next_at: next }
}

/// The idempotency key of a schedule's occurrence: one card per occurrence, however many dispatchers.
pub fn idempotency_key(schedule: i64, occurrence: i64) -> String {
    format!("recurring:{schedule}:{occurrence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-01-15 00:00:00 UTC, a Thursday in winter (Berlin is UTC+1).
    const JAN15: i64 = 1_768_435_200;
    // 2026-07-15 00:00:00 UTC, in summer (Berlin is UTC+2).
    const JUL15: i64 = 1_784_073_600;
    const HOUR: i64 = 3600;

    fn spec(expr: &str, tz: &str) -> Spec {
        Spec::parse(expr, tz).unwrap()
    }

    #[test]
    fn five_fields_and_nicknames_parse_and_seconds_or_bad_zones_do_not() {
        assert!(Spec::parse("0 3 * * *", "UTC").is_ok());
        assert!(Spec::parse("*/15 9-17 * * MON-FRI", "Europe/Berlin").is_ok());
        assert!(Spec::parse("@daily", "UTC").is_ok());
        assert!(matches!(Spec::parse("0 0 3 * * *", "UTC"), Err(SpecError::Cron { .. })));
        assert!(matches!(Spec::parse("61 * * * *", "UTC"), Err(SpecError::Cron { .. })));
        assert!(matches!(Spec::parse("not cron", "UTC"), Err(SpecError::Cron { .. })));
        assert_eq!(
            Spec::parse("0 3 * * *", "Mars/Olympus").unwrap_err(),
            SpecError::Zone("Mars/Olympus".into())
        );
        assert_eq!(spec("0 3 * * *", "Europe/Berlin").zone(), "Europe/Berlin");
    }

    #[test]
    fn a_zone_moves_the_occurrence_with_daylight_saving_time() {
        let berlin = spec("0 3 * * *", "Europe/Berlin");
        assert_eq!(berlin.next_after(JAN15), Some(JAN15 + 2 * HOUR), "03:00 CET is 02:00 UTC");
        assert_eq!(berlin.next_after(JUL15), Some(JUL15 + HOUR), "03:00 CEST is 01:00 UTC");
        let utc = spec("0 3 * * *", "UTC");
        assert_eq!(utc.next_after(JAN15), Some(JAN15 + 3 * HOUR));
        assert_eq!(utc.next_after(JAN15 + 3 * HOUR), Some(JAN15 + 27 * HOUR), "strictly after");
        assert_eq!(utc.latest_at_or_before(JAN15 + 3 * HOUR), Some(JAN15 + 3 * HOUR), "inclusive");
    }

    #[test]
    fn nothing_is_due_before_next_at() {
        let hourly = spec("0 * * * *", "UTC");
        let d = due(&hourly, JAN15 + HOUR, JAN15 + HOUR - 1, CatchUp::All);
        assert_eq!(d, Due { fire: vec![], passed_over: false, missed: None, next_at: Some(JAN15 + HOUR) });
    }

    #[test]
    fn on_time_every_rule_creates_the_one_occurrence() {
        let hourly = spec("0 * * * *", "UTC");
        for rule in [CatchUp::Latest, CatchUp::All, CatchUp::None] {
            let d = due(&hourly, JAN15 + HOUR, JAN15 + HOUR + 5, rule);
            assert_eq!(d.fire, vec![JAN15 + HOUR], "{rule}");
            assert!(!d.passed_over);
            assert_eq!(d.next_at, Some(JAN15 + 2 * HOUR));
        }
    }

    #[test]
    fn a_day_down_catches_up_by_the_rule() {
        let hourly = spec("0 * * * *", "UTC");
        let now = JAN15 + 25 * HOUR + 1800; // 24 occurrences missed since 01:00, the newest 30 minutes ago
        let latest = due(&hourly, JAN15 + HOUR, now, CatchUp::Latest);
        assert_eq!(latest.fire, vec![JAN15 + 25 * HOUR]);
        assert!(latest.passed_over);
        let all = due(&hourly, JAN15 + HOUR, now, CatchUp::All);
        assert_eq!(all.fire, (1..=25).map(|h| JAN15 + h * HOUR).collect::<Vec<_>>());
        assert!(!all.passed_over);
        let none = due(&hourly, JAN15 + HOUR, now, CatchUp::None);
        assert!(none.fire.is_empty() && none.passed_over);
        assert_eq!(none.missed, Some(JAN15 + 25 * HOUR));
        for d in [latest, all, none] {
            assert_eq!(d.next_at, Some(JAN15 + 26 * HOUR), "the next is in the future");
        }
    }

    #[test]
    fn catching_up_all_is_bounded_to_the_newest() {
        let minutely = spec("* * * * *", "UTC");
        let d = due(&minutely, JAN15, JAN15 + 10 * HOUR, CatchUp::All);
        assert_eq!(d.fire.len(), CATCH_UP_ALL_LIMIT);
        assert_eq!(*d.fire.last().unwrap(), JAN15 + 10 * HOUR);
        assert_eq!(d.fire[0], JAN15 + 10 * HOUR - 99 * 60);
        assert!(d.passed_over);
    }

    #[test]
    fn keys_name_the_schedule_and_the_occurrence() {
        assert_eq!(idempotency_key(7, JAN15), format!("recurring:7:{JAN15}"));
    }
}
