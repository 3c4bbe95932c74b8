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

wit_bindgen::generate!({ path: "../../wit", world: "respawn-guard-policy" });

use exports::kanban::policy::respawn_guard::{Decision, Deferral};
use kanban::policy::types::{Context, PluginInfo, PolicyKind};
use plugin_support::{Config, excerpt};

const KNOWN_KEYS: &[&str] = &[
    "rate_limit_cooldown_seconds",
    "auth_error_defer_seconds",
    "recent_success_seconds",
    "pr_link_window_seconds",
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub rate_limit_cooldown_seconds: i64,
    pub auth_error_defer_seconds: i64,
    pub recent_success_seconds: i64,
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
    pub fn from_config(json: &str) -> Result<Rules, String> {
        let config = Config::parse(json, KNOWN_KEYS)?;
        let default = Rules::default();
        Ok(Rules {
            rate_limit_cooldown_seconds: config
                .non_negative_int("rate_limit_cooldown_seconds", default.rate_limit_cooldown_seconds)?,
            auth_error_defer_seconds: config
                .non_negative_int("auth_error_defer_seconds", default.auth_error_defer_seconds)?,
            recent_success_seconds: config
                .non_negative_int("recent_success_seconds", default.recent_success_seconds)?,
            pr_link_window_seconds: config
                .non_negative_int("pr_link_window_seconds", default.pr_link_window_seconds)?,
        })
    }

    /// The decision for `ctx`: the first rule that defers, else allow.
    pub fn decide(&self, ctx: &Context) -> Decision {
        let rules = [Self::rate_limited, Self::auth_trouble, Self::recent_success, Self::linked_pull_request];
        rules.iter().find_map(|rule| rule(self, ctx)).map_or(Decision::Allow, Decision::Defer)
    }

    fn rate_limited(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.rate_limit_cooldown_seconds;
        let newest = ctx.runs.first().filter(|run| run.outcome.as_deref() == Some("rate_limited"))?;
        let until = still_within(newest.ended_at.unwrap_or(newest.started_at), window, ctx.now)?;
        Some(defer(format!("rate limited; cooling down until {until} ({}s left)", until - ctx.now), until))
    }

    fn auth_trouble(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.auth_error_defer_seconds;
        if window == 0 {
            return None;
        }
        let newest = ctx.runs.first();
        let (term, error) =
            [newest.and_then(|run| run.error.as_deref()), ctx.card.last_failure_error.as_deref()]
                .into_iter()
                .flatten()
                .find_map(|error| auth_term(error).map(|term| (term, error)))?;
        // The failure happened when the newest run ended; a card with no run carries its failure time as its
        // last update.
        let failed_at = newest.map_or(ctx.card.updated_at, |run| run.ended_at.unwrap_or(run.started_at));
        let until = still_within(failed_at, window, ctx.now)?;
        Some(defer(
            format!(
                "the last failure looks like an auth, quota or billing problem (\"{term}\" in \"{}\"); \
                 waiting until {until} ({}s left)",
                excerpt(error, 120),
                until - ctx.now
            ),
            until,
        ))
    }

    fn recent_success(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.recent_success_seconds;
        let ended = ctx
            .runs
            .iter()
            .filter(|run| run.outcome.as_deref() == Some("completed"))
            .filter_map(|run| run.ended_at)
            .max()?;
        let until = still_within(ended, window, ctx.now)?;
        let ago = (ctx.now - ended).max(0);
        Some(defer(
            format!("completed {ago}s ago; not respawning until {until} ({}s left)", until - ctx.now),
            until,
        ))
    }

    fn linked_pull_request(&self, ctx: &Context) -> Option<Deferral> {
        let window = self.pr_link_window_seconds;
        let mut comments: Vec<_> = ctx.comments.iter().collect();
        comments.sort_by_key(|comment| std::cmp::Reverse((comment.created_at, comment.id)));
        comments.into_iter().find_map(|comment| {
            let until = still_within(comment.created_at, window, ctx.now)?;
            let url = pull_request_url_in(&comment.body)?;
            Some(defer(format!("an open pull request is linked: {url}"), until))
        })
    }
}

/// `Some(since + window)` while `now` is before it; `None` once it has passed or when the rule is off.
fn still_within(since: i64, window: i64, now: i64) -> Option<i64> {
    let until = since.saturating_add(window);
    (window > 0 && now < until).then_some(until)
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

/// The first pull-request URL in `text`, normalised to end at its number: `https://github.com/<o>/<r>/pull/<n>`,
/// or a GitLab merge request on any host, `https://<host>/<group>/<project>/-/merge_requests/<n>`.
pub fn pull_request_url_in(text: &str) -> Option<String> {
    let is_end = |c: char| c.is_whitespace() || "<>()[]{}\"'`|,".contains(c);
    let mut rest = text;
    while let Some(start) = ["https://", "http://"].iter().filter_map(|scheme| rest.find(scheme)).min() {
        let candidate = &rest[start..];
        let end = candidate.find(is_end).unwrap_or(candidate.len());
        if let Some(url) = pull_request_url(&candidate[..end]) {
            return Some(url);
        }
        rest = &candidate[end.max(1)..];
    }
    None
}

fn pull_request_url(url: &str) -> Option<String> {
    let (scheme, after) = url.split_once("://")?;
    let (host, path) = after.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let host_lower = host.to_ascii_lowercase();
    if host_lower == "github.com" || host_lower == "www.github.com" {
        if let [owner, repo, "pull", number, ..] = segments.as_slice()
            && !owner.is_empty()
            && !repo.is_empty()
        {
            return Some(format!("{scheme}://github.com/{owner}/{repo}/pull/{}", issue_number(number)?));
        }
        return None;
    }
    let dash = segments.iter().position(|s| *s == "-")?;
    let project = &segments[..dash];
    if host.is_empty() || project.is_empty() || project.iter().any(|s| s.is_empty()) {
        return None;
    }
    match &segments[dash + 1..] {
        ["merge_requests", number, ..] => Some(format!(
            "{scheme}://{host}/{}/-/merge_requests/{}",
            project.join("/"),
            issue_number(number)?
        )),
        _ => None,
    }
}

/// `12` from `12`, or from `12.` at the end of a sentence; nothing from `12abc`.
fn issue_number(segment: &str) -> Option<&str> {
    let digits = segment.trim_end_matches(['.', ',', ';', ':', '!', '?']);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

struct RespawnGuard;

impl exports::kanban::policy::plugin::Guest for RespawnGuard {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "respawn-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::RespawnGuard,
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        Rules::from_config(&config).map(drop)
    }
}

impl exports::kanban::policy::respawn_guard::Guest for RespawnGuard {
    fn decide(ctx: Context) -> Decision {
        // The host keeps one instance for all the calls of a tick, with the same config each time: parse it
        // once. A config that fails to parse panics, which the host records as a policy error (the guard's
        // safe default then applies).
        thread_local! {
            static PARSED: std::cell::RefCell<Option<(String, Rules)>> = const { std::cell::RefCell::new(None) };
        }
        PARSED.with(|parsed| {
            let mut parsed = parsed.borrow_mut();
            if parsed.as_ref().is_none_or(|(config, _)| *config != ctx.config) {
                let rules = Rules::from_config(&ctx.config).unwrap_or_else(|err| panic!("{err}"));
                *parsed = Some((ctx.config.clone(), rules));
            }
            parsed.as_ref().map(|(_, rules)| rules.decide(&ctx)).expect("parsed above")
        })
    }
}

export!(RespawnGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use kanban::policy::types::{BoardFacts, Card, Comment, Run};

    const NOW: i64 = 1_800_000_000;

    fn context() -> Context {
        Context {
            card: Card {
                id: "t_0000abcd".into(),
                title: "Fix the login redirect".into(),
                body: String::new(),
                status: "ready".into(),
                assignee: Some("coder".into()),
                priority: 0,
                tenant: None,
                workspace_kind: "scratch".into(),
                workspace_path: None,
                consecutive_failures: 0,
                last_failure_error: None,
                max_retries: None,
                block_kind: None,
                block_reason: None,
                block_sticky: false,
                created_at: NOW - 100_000,
                updated_at: NOW - 50_000,
            },
            runs: Vec::new(),
            events: Vec::new(),
            comments: Vec::new(),
            parents: Vec::new(),
            board: BoardFacts { slug: "web".into(), profiles: Vec::new(), failure_limit: 2 },
            now: NOW,
            config: "{}".into(),
        }
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
        assert_eq!(d.reason, format!("rate limited; cooling down until {} (200s left)", NOW + 200));

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
        assert!(d.reason.starts_with("completed 1200s ago"), "{}", d.reason);
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
    fn pull_request_urls_are_recognised() {
        let cases = [
            ("see https://github.com/o/r/pull/7.", Some("https://github.com/o/r/pull/7")),
            (
                "<https://gitlab.example.com/g/sub/p/-/merge_requests/12#note_1>",
                Some("https://gitlab.example.com/g/sub/p/-/merge_requests/12"),
            ),
            (
                "https://github.com/o/r/issues/7 and https://github.com/o/r/pull/8",
                Some("https://github.com/o/r/pull/8"),
            ),
            ("https://github.com/o/r/pull/", None),
            ("https://github.com/o/r/pull/12abc", None),
            ("https://github.com/o/r/pulls", None),
            ("https://example.com/-/merge_requests/3", None),
            ("github.com/o/r/pull/3", None),
        ];
        for (text, want) in cases {
            assert_eq!(pull_request_url_in(text).as_deref(), want, "{text}");
        }
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
        assert_eq!(Rules::from_config("{}").unwrap(), Rules::default());
        let rules = Rules::from_config(r#"{"rate_limit_cooldown_seconds": 0, "pr_link_window_seconds": 60}"#)
            .unwrap();
        assert_eq!(rules.rate_limit_cooldown_seconds, 0);
        assert_eq!(rules.pr_link_window_seconds, 60);
        let err = Rules::from_config(r#"{"cooldown": 1}"#).unwrap_err();
        assert_eq!(
            err,
            "config.cooldown: unknown key (known: rate_limit_cooldown_seconds, auth_error_defer_seconds, \
             recent_success_seconds, pr_link_window_seconds)"
        );
        let err = Rules::from_config(r#"{"recent_success_seconds": "1h"}"#).unwrap_err();
        assert!(err.starts_with("config.recent_success_seconds: must be a non-negative integer"), "{err}");
    }
}
