//! `builtin:respawn-guard`: may the dispatcher spawn a worker for this ready card now?
//!
//! Four rules, checked in this order; the first that defers wins, otherwise the spawn is allowed. Each rule's
//! window comes from the config and 0 turns the rule off. The guard only ever defers: it never blocks a card,
//! because repeated failures already trip the host's circuit breaker, and a deferral that always ends lets
//! the breaker see them.
//!
//! 1. `rate_limit_cooldown_seconds` (300): the newest run was `rate_limited` less than this long ago.
//! 2. `auth_error_defer_seconds` (600): the newest run's error, or the card's last failure, reads like an
//!    auth, quota or billing problem (whole words, see [`AUTH_TERMS`]), and the newest run ended less than
//!    this long ago.
//! 3. `recent_success_seconds` (3600): a run completed less than this long ago.
//! 4. `pr_link_window_seconds` (86400): a comment newer than this links a pull request (GitHub) or merge
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
    pub recent_success_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub pr_link_window_seconds: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            rate_limit_cooldown_seconds: 300,
            auth_error_defer_seconds: 600,
            recent_success_seconds: 3600,
            pr_link_window_seconds: 86400,
        }
    }
}

impl Rules {
    /// The decision for `ctx`: the first rule that defers, else allow.
    pub fn decide(&self, ctx: &Context) -> Decision {
        let rules = [Self::rate_limited, Self::auth_trouble, Self::recent_success, Self::linked_pull_request];
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
             recent_success_seconds, pr_link_window_seconds)"
        );
        let err = from_config(r#"{"recent_success_seconds": "1h"}"#).unwrap_err();
        assert!(err.starts_with("config.recent_success_seconds: must be a non-negative integer"), "{err}");
    }
}
