//! The circuit breaker, as pure arithmetic: given a card's counters and how its run ended, what is
//! counted, what the streaks become, and whether the card gives up.
//!
//! The limit resolves in exactly one place, [`FailureLimit::resolve`], used both by [`judge`] (which blocks
//! a card at its limit) and by ready recomputation (which lets a non-sticky blocked card recover only below
//! it), so they can never disagree. No database is needed to run any of it.

use serde::{Deserialize, Serialize};

use crate::model::{Outcome, Task};

/// Limit used when neither the card nor the board sets one.
pub const DEFAULT_FAILURE_LIMIT: i64 = 2;

pub struct FailureLimit;

impl FailureLimit {
    /// The card's `max_retries`, else the board's `failure_limit`, else [`DEFAULT_FAILURE_LIMIT`].
    pub fn resolve(card_max_retries: Option<i64>, board_failure_limit: Option<i64>) -> i64 {
        card_max_retries.or(board_failure_limit).unwrap_or(DEFAULT_FAILURE_LIMIT)
    }
}

/// The board's limits, from `[dispatch]` in board.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerLimits {
    pub board_failure_limit: i64,
    /// Exits 0 without a terminal call in a row before the breaker trips.
    pub protocol_violation_limit: i64,
    /// Requeues of a silent (wedged) worker in a row before the breaker trips.
    pub stale_reclaim_limit: i64,
}

impl Default for BreakerLimits {
    fn default() -> Self {
        BreakerLimits {
            board_failure_limit: DEFAULT_FAILURE_LIMIT,
            protocol_violation_limit: 3,
            stale_reclaim_limit: 3,
        }
    }
}

/// How one outcome treats the two streaks (protocol violations, wedged workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streak {
    /// Adds one to the streak.
    Extends,
    /// Says nothing about the worker's behaviour (a rate limit, a reclaim, the host's own fault): the
    /// streak is skipped over, neither extended nor broken.
    Neutral,
    /// Any other ending breaks the streak.
    Breaks,
}

/// The breaker's verdict on one settled run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Whether this run counts a failure.
    pub counted: bool,
    pub failures: i64,
    pub violations: i64,
    pub stale_reclaims: i64,
    /// The block, if the card gives up, stays until a person unblocks it.
    pub sticky: bool,
    pub gave_up: bool,
    /// The card's failure limit.
    pub limit: i64,
    /// Why the card gave up, for its block reason and the `gave_up` event.
    pub reason: Option<String>,
}

/// Judge a run that ended with `outcome`. `wedged` marks a requeue of a live worker that went silent (a
/// stale heartbeat or the stale timeout). `message` is the run's error, quoted in the give-up reason.
pub fn judge(task: &Task, outcome: Outcome, wedged: bool, message: &str, limits: BreakerLimits) -> Judgement {
    let streak = |extends: bool| {
        if extends {
            Streak::Extends
        } else if matches!(
            outcome,
            Outcome::RateLimited
                | Outcome::Reclaimed
                | Outcome::SpawnLost
                | Outcome::HostError
                | Outcome::Stale
        ) {
            Streak::Neutral
        } else {
            Streak::Breaks
        }
    };
    let step = |value: i64, how: Streak| match how {
        Streak::Extends => value + 1,
        Streak::Neutral => value,
        Streak::Breaks => 0,
    };
    let violations = step(task.protocol_violations, streak(outcome == Outcome::ProtocolViolation));
    let stale_reclaims = step(task.stale_reclaims, streak(wedged));
    let violation_trip =
        outcome == Outcome::ProtocolViolation && violations >= limits.protocol_violation_limit;
    let wedged_trip = wedged && stale_reclaims >= limits.stale_reclaim_limit;
    let counted = counts(outcome) || violation_trip || wedged_trip;
    let sticky = outcome == Outcome::ConfigError || violation_trip || wedged_trip;
    let failures = task.consecutive_failures + i64::from(counted);
    let limit = FailureLimit::resolve(task.max_retries, Some(limits.board_failure_limit));
    let gave_up = sticky || (counted && failures >= limit);
    let reason = gave_up.then(|| {
        if violation_trip {
            format!(
                "{violations} exits without complete or block in a row (limit {})",
                limits.protocol_violation_limit
            )
        } else if wedged_trip {
            format!(
                "{stale_reclaims} requeues of a silent worker in a row (limit {}); last: {message}",
                limits.stale_reclaim_limit
            )
        } else if outcome == Outcome::ConfigError {
            "the worker reported a configuration error (exit 78)".to_string()
        } else {
            format!("{failures} consecutive failures (limit {limit}); last: {message}")
        }
    });
    Judgement { counted, failures, violations, stale_reclaims, sticky, gave_up, limit, reason }
}

/// Does this outcome count toward the breaker by itself? (A protocol violation or a wedged worker counts
/// only at its own streak limit.)
pub fn counts(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Crashed | Outcome::TimedOut | Outcome::SpawnFailed | Outcome::ConfigError)
}

/// Classify a recorded exit of a run whose card is still running on it (no terminal call was made).
pub fn outcome_of_exit(exit_code: Option<i64>, signal: Option<i64>) -> Outcome {
    match (exit_code, signal) {
        (Some(0), None) => Outcome::ProtocolViolation,
        (Some(75), None) => Outcome::RateLimited,
        (Some(78), None) => Outcome::ConfigError,
        _ => Outcome::Crashed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::task;

    const LIMITS: BreakerLimits =
        BreakerLimits { board_failure_limit: 2, protocol_violation_limit: 3, stale_reclaim_limit: 3 };

    #[test]
    fn card_beats_board_beats_default() {
        assert_eq!(FailureLimit::resolve(Some(5), Some(3)), 5);
        assert_eq!(FailureLimit::resolve(None, Some(3)), 3);
        assert_eq!(FailureLimit::resolve(None, None), DEFAULT_FAILURE_LIMIT);
        assert_eq!(FailureLimit::resolve(Some(0), Some(3)), 0);
    }

    /// Feed a sequence of outcomes to one card, the way settlement would, and return the last verdict.
    fn run(outcomes: &[(Outcome, bool)]) -> Vec<Judgement> {
        let mut card = task("t_00000001");
        outcomes
            .iter()
            .map(|(outcome, wedged)| {
                let j = judge(&card, *outcome, *wedged, "why", LIMITS);
                card.consecutive_failures = j.failures;
                card.protocol_violations = j.violations;
                card.stale_reclaims = j.stale_reclaims;
                j
            })
            .collect()
    }

    #[test]
    fn crashes_count_until_the_limit() {
        let js = run(&[(Outcome::Crashed, false), (Outcome::Crashed, false)]);
        assert!(js[0].counted && !js[0].gave_up && js[0].failures == 1);
        assert!(js[1].gave_up && !js[1].sticky);
        assert_eq!(js[1].reason.as_deref(), Some("2 consecutive failures (limit 2); last: why"));
    }

    #[test]
    fn rate_limits_neither_count_nor_break_the_violation_streak() {
        use Outcome::{ProtocolViolation as Pv, RateLimited as Rl};
        let js = run(&[(Pv, false), (Rl, false), (Pv, false), (Rl, false), (Pv, false)]);
        assert_eq!(js.iter().map(|j| j.violations).collect::<Vec<_>>(), [1, 1, 2, 2, 3]);
        assert!(js[..4].iter().all(|j| !j.counted && !j.gave_up));
        assert!(js[4].gave_up && js[4].sticky && js[4].counted);
    }

    #[test]
    fn a_crash_breaks_the_violation_streak() {
        let js = run(&[
            (Outcome::ProtocolViolation, false),
            (Outcome::ProtocolViolation, false),
            (Outcome::Crashed, false),
        ]);
        assert_eq!(js[2].violations, 0);
    }

    #[test]
    fn wedged_workers_trip_the_breaker_at_their_limit() {
        let js = run(&[(Outcome::Reclaimed, true), (Outcome::Stale, true), (Outcome::Reclaimed, true)]);
        assert!(js[..2].iter().all(|j| !j.counted && !j.gave_up));
        assert_eq!(js[2].stale_reclaims, 3);
        assert!(js[2].gave_up && js[2].sticky && js[2].counted);
        assert!(js[2].reason.as_deref().unwrap().starts_with("3 requeues of a silent worker in a row"));
        // A manual reclaim (not wedged) neither extends nor breaks the streak; a crash breaks it.
        let js = run(&[(Outcome::Reclaimed, true), (Outcome::Reclaimed, false), (Outcome::Crashed, false)]);
        assert_eq!(js.iter().map(|j| j.stale_reclaims).collect::<Vec<_>>(), [1, 1, 0]);
    }

    #[test]
    fn exit_78_gives_up_at_once_sticky() {
        let j = &run(&[(Outcome::ConfigError, false)])[0];
        assert!(j.counted && j.gave_up && j.sticky);
    }

    #[test]
    fn host_faults_never_count() {
        let js =
            run(&[(Outcome::HostError, false), (Outcome::HostError, false), (Outcome::SpawnLost, false)]);
        assert!(js.iter().all(|j| !j.counted && !j.gave_up && j.failures == 0));
    }

    #[test]
    fn exits_classify() {
        assert_eq!(outcome_of_exit(Some(0), None), Outcome::ProtocolViolation);
        assert_eq!(outcome_of_exit(Some(75), None), Outcome::RateLimited);
        assert_eq!(outcome_of_exit(Some(78), None), Outcome::ConfigError);
        assert_eq!(outcome_of_exit(Some(1), None), Outcome::Crashed);
        assert_eq!(outcome_of_exit(None, Some(9)), Outcome::Crashed);
    }
}
