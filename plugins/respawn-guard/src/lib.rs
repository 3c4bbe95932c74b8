//! `builtin:respawn-guard`: may the dispatcher spawn a worker for this ready card now?
//!
//! Five rules, checked in this order; the first that defers wins, otherwise the spawn is allowed. Each rule's
//! window comes from the config and 0 turns the rule off. The guard only ever defers: it never blocks a card,
//! because repeated failures already trip the host's circuit breaker, and a deferral that always ends lets
//! the breaker see them.
//!
//! 1. `rate_limit_cooldown_seconds` (300): the newest run was `rate_limited` less than this long ago.
//! 2. `auth_error_defer_seconds` (600): the newest run's error, or the card's last failure, reads like an
//!    auth, quota or billing problem (whole words, see [`AUTH_TERMS`]), and the newest run ended less than
//!    this long ago.
//! 3. `crash_backoff_base_seconds` (5), `crash_backoff_cap_seconds` (300), `crash_backoff_jitter_percent`
//!    (20): the newest run ended with a counted failure (crashed, timed out, spawn failed, configuration
//!    error) and the card's failure counter is at `n` >= 1: wait `min(cap, base * 2^(n-1))` from when that
//!    run ended, less a jitter of up to that percent drawn from the card and the run (so it repeats for the
//!    same attempt and spreads different cards apart). A person's `unblock` or `reclaim` resets the counter,
//!    and with it the backoff.
//! 4. `recent_success_seconds` (3600): a run completed less than this long ago.
//! 5. `pr_link_window_seconds` (86400): a comment newer than this links a pull request (GitHub) or merge
//!    request (GitLab).
//!
//! Every deferral carries `retry-after`: the time at which its rule stops applying.

use kanban_policy::config::non_negative;
use kanban_policy::guard::{Decision, Deferral, Guard};
use kanban_policy::text::{self, excerpt};
use kanban_policy::{Context, Outcome};
use serde::Deserialize;

/// Words and phrases that mark an auth, quota or billing failure. Matched case-insensitively on whole words:
/// any character that is not a letter or digit separates words, so `insufficient_quota`, `HTTP 403:` and
/// `rate-limit` match, while `author`, `authority` and `4290` do not.
pub const AUTH_TERMS: &[&str] = &[
    "auth",
    "authentication",
    "unauthorized",
    "unauthorised",
    "forbidden",
    "quota",
    "billing",
    "401",
    "403",
    "429",
    "insufficient credits",
    "rate limit",
];

/// The guard's windows, in seconds; 0 turns a rule off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    #[serde(deserialize_with = "non_negative")]
    pub rate_limit_cooldown_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub auth_error_defer_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub crash_backoff_base_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub crash_backoff_cap_seconds: i64,
    #[serde(deserialize_with = "percent")]
    pub crash_backoff_jitter_percent: i64,
    #[serde(deserialize_with = "non_negative")]
    pub recent_success_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub pr_link_window_seconds: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            rate_limit_cooldown_seconds: 300,
            auth_error_defer_seconds: 600,
            crash_backoff_base_seconds: 5,
            crash_backoff_cap_seconds: 300,
            crash_backoff_jitter_percent: 20,
            recent_success_seconds: 3600,
            pr_link_window_seconds: 86400,
        }
    }
}

impl Rules {
    /// The decision for `ctx`: the first rule that defers, else allow.
    pub fn decide(&self, ctx: &Context) -> Decision {
        let rules = [
            Self::rate_limited,
            Self::auth_trouble,
            Self::crash_backoff,
            Self::recent_success,
            Self::linked_pull_request,
        ];
        rules.iter().find_map(|rule| rule(self, ctx)).map_or(Decision::Allow, Decision::Defer)
    }

    fn rate_limited(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.rate_limit_cooldown_seconds;
        let newest = ctx.latest_run().filter(|run| run.outcome() == Some(Outcome::RateLimited))?;
        let until = ctx.still_within(newest.ended_or_started_at(), window)?;
        Some(defer(format!("rate limited; cooling down {}", text::until(ctx.now, until)), until))
    }

    fn auth_trouble(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.auth_error_defer_seconds;
        if window == 0 {
            return None;
        }
        let newest = ctx.latest_run();
        let (term, error) =
            [newest.and_then(|run| run.error.as_deref()), ctx.card.last_failure_error.as_deref()]
                .into_iter()
                .flatten()
                .find_map(|error| auth_term(error).map(|term| (term, error)))?;
        // The failure happened when the newest run ended; a card with no run carries its failure time as its
        // last update.
        let failed_at = newest.map_or(ctx.card.updated_at, |run| run.ended_or_started_at());
        let until = ctx.still_within(failed_at, window)?;
        Some(defer(
            format!(
                "the last failure looks like an auth, quota or billing problem (\"{term}\" in \"{}\"); \
                 waiting {}",
                excerpt(error, 120),
                text::until(ctx.now, until)
            ),
            until,
        ))
    }

    fn crash_backoff(&self, ctx: &Context) -> Option<Deferral> {
        let (base, cap) = (self.crash_backoff_base_seconds, self.crash_backoff_cap_seconds);
        let failures = ctx.card.consecutive_failures;
        if base == 0 || cap == 0 || failures < 1 {
            return None;
        }
        let newest = ctx.latest_run().filter(|run| run.outcome().is_some_and(|o| COUNTED.contains(&o)))?;
        let delay = backoff(base, cap, failures, self.crash_backoff_jitter_percent, &ctx.card.id, newest.id);
        let until = ctx.still_within(newest.ended_or_started_at(), delay)?;
        Some(defer(
            format!(
                "{} {failures} time{} in a row; backing off {}",
                newest.outcome().map_or("failed".to_string(), |o| o.to_string().replace('_', " ")),
                if failures == 1 { "" } else { "s" },
                text::until(ctx.now, until)
            ),
            until,
        ))
    }

    fn recent_success(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.recent_success_seconds;
        let ended = ctx
            .runs
            .iter()
            .filter(|run| run.outcome() == Some(Outcome::Completed))
            .filter_map(|run| run.ended_at)
            .max()?;
        let until = ctx.still_within(ended, window)?;
        let ago = ctx.seconds_since(ended).max(0);
        Some(defer(
            format!("completed {} ago; not respawning {}", text::duration(ago), text::until(ctx.now, until)),
            until,
        ))
    }

    fn linked_pull_request(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.pr_link_window_seconds;
        ctx.newest_comments().into_iter().find_map(|comment| {
            let until = ctx.still_within(comment.created_at, window)?;
            let url = comment.pull_request_url()?;
            Some(defer(format!("an open pull request is linked: {url}"), until))
        })
    }
}

/// Outcomes the host counts as a failure of the card: the ones a backoff follows.
const COUNTED: [Outcome; 4] =
    [Outcome::Crashed, Outcome::TimedOut, Outcome::SpawnFailed, Outcome::ConfigError];

/// The backoff after the `failures`-th counted failure in a row, in seconds: `base * 2^(failures-1)`, capped
/// at `cap`, less up to `jitter_percent` of it, drawn from the card and the run (FNV-1a), so one attempt
/// always gets the same delay and cards that failed together spread apart.
pub fn backoff(base: i64, cap: i64, failures: i64, jitter_percent: i64, card: &str, run: i64) -> i64 {
    let exponent = (failures - 1).clamp(0, 40) as u32;
    let full = base.saturating_mul(1_i64 << exponent).min(cap);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in card.bytes().chain(run.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let fraction = (hash % 10_000) as i64; // 0..10,000, in units of 0.01%
    full - full * jitter_percent * fraction / 1_000_000
}

/// A whole percentage, 0 to 100.
fn percent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = non_negative(deserializer)?;
    if value > 100 {
        return Err(serde::de::Error::custom(format!("must be at most 100, got {value}")));
    }
    Ok(value)
}

fn defer(reason: String, retry_after: i64) -> Deferral {
    Deferral { reason, retry_after: Some(retry_after) }
}

/// The first of [`AUTH_TERMS`] that occurs in `text` as whole words.
pub fn auth_term(text: &str) -> Option<&'static str> {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    AUTH_TERMS.iter().copied().find(|term| {
        let term: Vec<&str> = term.split(' ').collect();
        words.windows(term.len()).any(|window| window.iter().zip(&term).all(|(word, t)| word == t))
    })
}

struct RespawnGuard;

impl Guard for RespawnGuard {
    type Config = Rules;

    fn decide(rules: &Rules, ctx: &Context) -> Decision {
        // The SDK parses the config once per instance (the host keeps one for all the calls of a tick). A
        // config that fails to parse panics, which the host records as a policy error (the guard's safe
        // default then applies).
        rules.decide(ctx)
    }
}

kanban_policy::export_guard!(RespawnGuard, name = "respawn-guard");

#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;
    use kanban_policy::{Comment, Run};

    const NOW: i64 = 1_800_000_000;

    fn context() -> Context {
        ContextBuilder::new(NOW)
            .card(|c| {
                c.id("t_0000abcd")
                    .title("Fix the login redirect")
                    .status("ready")
                    .assignee("coder")
                    .created_at(NOW - 100_000)
                    .updated_at(NOW - 50_000)
            })
            .board("web")
            .build()
    }

    fn from_config(json: &str) -> Result<Rules, String> {
        kanban_policy::config::parse(json).map_err(String::from)
    }

    fn run(id: i64, outcome: &str, ended_ago: i64, error: Option<&str>) -> Run {
        Run {
            id,
            profile: Some("coder".into()),
            status: "ended".into(),
            outcome: Some(outcome.into()),
            error: error.map(str::to_string),
            exit_code: None,
            started_at: NOW - ended_ago - 30,
            ended_at: Some(NOW - ended_ago),
        }
    }

    fn comment(id: i64, ago: i64, body: &str) -> Comment {
        Comment { id, author: Some("alice".into()), body: body.into(), created_at: NOW - ago }
    }

    fn deferral(decision: Decision) -> Deferral {
        match decision {
            Decision::Defer(deferral) => deferral,
            other => panic!("expected a deferral, got {other:?}"),
        }
    }

    fn is_allow(decision: &Decision) -> bool {
        matches!(decision, Decision::Allow)
    }

    #[test]
    fn a_quiet_card_is_allowed() {
        let mut ctx = context();
        ctx.runs = vec![run(1, "crashed", 10, Some("segfault"))];
        assert!(is_allow(&Rules::default().decide(&ctx)));
    }

    #[test]
    fn rate_limited_newest_run_defers_for_the_cooldown() {
        let mut ctx = context();
        ctx.runs = vec![run(2, "rate_limited", 100, None), run(1, "crashed", 1000, None)];
        let d = deferral(Rules::default().decide(&ctx));
        assert_eq!(d.retry_after, Some(NOW + 200));
        assert_eq!(d.reason, format!("rate limited; cooling down for 3m (until {})", text::utc(NOW + 200)));

        ctx.runs[0].ended_at = None; // started 130 s ago
        assert_eq!(deferral(Rules::default().decide(&ctx)).retry_after, Some(NOW + 170));

        ctx.runs = vec![run(2, "rate_limited", 300, None)];
        assert!(is_allow(&Rules::default().decide(&ctx)), "the cooldown has passed");

        ctx.runs = vec![run(3, "crashed", 10, None), run(2, "rate_limited", 20, None)];
        assert!(is_allow(&Rules::default().decide(&ctx)), "only the newest run counts");

        ctx.runs = vec![run(2, "rate_limited", 100, None)];
        let off = Rules { rate_limit_cooldown_seconds: 0, ..Rules::default() };
        assert!(is_allow(&off.decide(&ctx)));
    }

    #[test]
    fn auth_terms_match_whole_words_only() {
        for text in [
            "401 Unauthorized",
            "HTTP 403: Forbidden",
            "error code: insufficient_quota",
            "Billing hard limit reached",
            "status=429",
            "Insufficient   Credits on the account",
            "hit the Rate-Limit",
            "AUTH failed",
            "Authentication required",
            "unauthorised",
        ] {
            assert!(auth_term(text).is_some(), "{text:?} should match");
        }
        for text in
            ["author unknown", "no authority", "exit 4290", "rate limited", "credits insufficient", "oauth"]
        {
            assert_eq!(auth_term(text), None, "{text:?} should not match");
        }
        assert_eq!(auth_term("got 403 then quota"), Some("quota"), "the first term in list order");
    }

    #[test]
    fn auth_trouble_defers_from_the_failure_and_never_blocks() {
        let mut ctx = context();
        ctx.runs = vec![run(4, "crashed", 60, Some("API said: 401 Unauthorized"))];
        let d = deferral(Rules::default().decide(&ctx));
        assert_eq!(d.retry_after, Some(NOW + 540));
        assert!(d.reason.contains("\"unauthorized\" in \"API said: 401 Unauthorized\""), "{}", d.reason);

        ctx.runs = vec![run(4, "crashed", 600, Some("401"))];
        assert!(is_allow(&Rules::default().decide(&ctx)), "the deferral ends so the breaker can count");

        ctx.runs = vec![run(5, "crashed", 60, Some("segfault"))];
        ctx.card.last_failure_error = Some("quota exceeded".into());
        assert_eq!(deferral(Rules::default().decide(&ctx)).retry_after, Some(NOW + 540));

        ctx.runs.clear();
        ctx.card.updated_at = NOW - 100;
        assert_eq!(
            deferral(Rules::default().decide(&ctx)).retry_after,
            Some(NOW + 500),
            "no run: the card's update"
        );

        ctx.card.last_failure_error = Some("the author field is missing".into());
        assert!(is_allow(&Rules::default().decide(&ctx)));
    }

    #[test]
    fn recent_success_defers_within_the_window() {
        let mut ctx = context();
        ctx.runs = vec![
            run(3, "crashed", 10, None),
            run(2, "completed", 1200, None),
            run(1, "completed", 3000, None),
        ];
        let d = deferral(Rules::default().decide(&ctx));
        assert!(d.reason.starts_with("completed 20m ago; not respawning for 40m (until "), "{}", d.reason);
        assert_eq!(d.retry_after, Some(NOW + 2400));
        ctx.runs = vec![run(2, "completed", 3600, None)];
        assert!(is_allow(&Rules::default().decide(&ctx)));
    }

    #[test]
    fn pull_request_links_in_recent_comments_defer() {
        let mut ctx = context();
        ctx.comments = vec![
            comment(1, 90_000, "old: https://github.com/acme/web/pull/1"),
            comment(2, 600, "Opened [the PR](https://github.com/acme/web/pull/42/files?w=1)."),
        ];
        let d = deferral(Rules::default().decide(&ctx));
        assert_eq!(d.reason, "an open pull request is linked: https://github.com/acme/web/pull/42");
        assert_eq!(d.retry_after, Some(NOW - 600 + 86400));

        ctx.comments.truncate(1);
        assert!(is_allow(&Rules::default().decide(&ctx)), "outside the window");
    }

    #[test]
    fn rules_are_checked_in_order() {
        let mut ctx = context();
        ctx.runs = vec![run(2, "rate_limited", 10, Some("429 rate limit")), run(1, "completed", 20, None)];
        ctx.comments = vec![comment(1, 5, "https://github.com/o/r/pull/1")];
        assert!(deferral(Rules::default().decide(&ctx)).reason.starts_with("rate limited"));
        let rules = Rules { rate_limit_cooldown_seconds: 0, ..Rules::default() };
        assert!(deferral(rules.decide(&ctx)).reason.starts_with("the last failure looks like an auth"));
        let rules = Rules { auth_error_defer_seconds: 0, ..rules };
        assert!(deferral(rules.decide(&ctx)).reason.starts_with("completed 20s ago"));
        let rules = Rules { recent_success_seconds: 0, ..rules };
        assert!(deferral(rules.decide(&ctx)).reason.starts_with("an open pull request"));
        let rules = Rules { pr_link_window_seconds: 0, ..rules };
        assert!(is_allow(&rules.decide(&ctx)));
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(from_config("{}").unwrap(), Rules::default());
        let rules =
            from_config(r#"{"rate_limit_cooldown_seconds": 0, "pr_link_window_seconds": 60}"#).unwrap();
        assert_eq!(rules.rate_limit_cooldown_seconds, 0);
        assert_eq!(rules.pr_link_window_seconds, 60);
        let err = from_config(r#"{"cooldown": 1}"#).unwrap_err();
        assert_eq!(
            err,
            "config.cooldown: unknown key (known: rate_limit_cooldown_seconds, auth_error_defer_seconds, \
             crash_backoff_base_seconds, crash_backoff_cap_seconds, crash_backoff_jitter_percent, \
             recent_success_seconds, pr_link_window_seconds)"
        );
        let err = from_config(r#"{"recent_success_seconds": "1h"}"#).unwrap_err();
        assert!(err.starts_with("config.recent_success_seconds: must be a non-negative integer"), "{err}");
    }

    #[test]
    fn a_counted_failure_backs_off_exponentially_with_a_jitter_that_repeats_per_attempt() {
        let mut ctx = context();
        ctx.card.consecutive_failures = 1;
        ctx.runs = vec![run(7, "crashed", 0, Some("segfault"))];
        let first = deferral(Rules::default().decide(&ctx));
        let wait = first.retry_after.unwrap() - NOW;
        assert!((4..=5).contains(&wait), "base 5 s less up to 20%: {wait}");
        assert!(first.reason.starts_with("crashed 1 time in a row; backing off"), "{}", first.reason);
        assert_eq!(deferral(Rules::default().decide(&ctx)), first, "the same attempt, the same delay");

        // The third failure in a row: 5 * 2^2 = 20 s, less up to 20%.
        ctx.card.consecutive_failures = 3;
        ctx.runs = vec![run(9, "timed_out", 0, None)];
        let wait = deferral(Rules::default().decide(&ctx)).retry_after.unwrap() - NOW;
        assert!((16..=20).contains(&wait), "{wait}");
        // Capped.
        ctx.card.consecutive_failures = 30;
        let wait = deferral(Rules::default().decide(&ctx)).retry_after.unwrap() - NOW;
        assert!((240..=300).contains(&wait), "{wait}");
        // Counted from when the run ended: passed.
        ctx.card.consecutive_failures = 1;
        ctx.runs = vec![run(7, "crashed", 6, None)];
        assert!(is_allow(&Rules::default().decide(&ctx)));
    }

    #[test]
    fn no_backoff_without_a_counted_failure_or_when_switched_off() {
        let mut ctx = context();
        ctx.runs = vec![run(7, "crashed", 0, None)];
        assert!(is_allow(&Rules::default().decide(&ctx)), "a person reset the counter (unblock, reclaim)");
        ctx.card.consecutive_failures = 1;
        for outcome in ["reclaimed", "stale", "protocol_violation", "spawn_lost", "host_error"] {
            ctx.runs = vec![run(7, outcome, 0, None)];
            assert!(is_allow(&Rules::default().decide(&ctx)), "{outcome} is not a counted failure");
        }
        ctx.runs = vec![run(7, "crashed", 0, None)];
        let off = Rules { crash_backoff_base_seconds: 0, ..Rules::default() };
        assert!(is_allow(&off.decide(&ctx)));
    }

    #[test]
    fn jitter_spreads_cards_and_stays_within_its_percent() {
        let delays: std::collections::BTreeSet<i64> =
            (0..50).map(|i| backoff(100, 1000, 1, 20, &format!("t_{i:08x}"), 1)).collect();
        assert!(delays.len() > 10, "different cards get different delays: {delays:?}");
        assert!(delays.iter().all(|d| (80..=100).contains(d)), "{delays:?}");
        assert_eq!(backoff(100, 1000, 1, 0, "t_x", 1), 100, "no jitter");
        assert_eq!(backoff(100, 1000, 5, 0, "t_x", 1), 1000, "capped");
        assert_eq!(
            from_config(r#"{"crash_backoff_jitter_percent": 101}"#).unwrap_err(),
            "config.crash_backoff_jitter_percent: must be at most 100, got 101"
        );
    }
}
