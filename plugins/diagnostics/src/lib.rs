//! `builtin:diagnostics`: findings about one card, each with a severity and the commands an operator would
//! run next. Every rule yields at most one finding; the findings come in the order of [`rule_ids`].
//!
//! | rule id | fires when | severity |
//! |---|---|---|
//! | `repeated-failures` | `consecutive-failures` >= `repeated_failures` (2), or at the breaker limit | warning; error at the limit |
//! | `repeated-crashes` | at least `repeated_crashes` (3) of the card's runs crashed | error |
//! | `stuck-in-blocked` | blocked for at least `blocked_stuck_seconds` (86400) | warning |
//! | `block-unblock-cycling` | `cycle_count` (3) blocked→unblocked transitions within `cycle_window_seconds` (86400) | warning |
//! | `stranded-in-ready` | ready for at least `stranded_ready_seconds` (1800) | warning |
//! | `running-with-open-parents` | running while a parent is neither done nor archived | error |
//!
//! `disabled_rules` (a list of rule ids) turns rules off. The plugin only reads the context: it has no
//! clock but `context.now`.

use kanban_policy::config::{non_negative, positive, string_list};
use kanban_policy::diagnostics::{Diagnostics, Finding, Severity};
use kanban_policy::text::{duration, excerpt};
use kanban_policy::{Context, Outcome};
use serde::Deserialize;

/// One rule: at most one finding.
type Check = fn(&Rules, &Context) -> Option<Finding>;

/// Every rule id with its check, in the order findings are reported.
const CHECKS: [(Rule, Check); 6] = [
    (Rule::RepeatedFailures, Rules::check_repeated_failures),
    (Rule::RepeatedCrashes, Rules::check_repeated_crashes),
    (Rule::StuckInBlocked, Rules::check_stuck_in_blocked),
    (Rule::BlockUnblockCycling, Rules::check_block_unblock_cycling),
    (Rule::StrandedInReady, Rules::check_stranded_in_ready),
    (Rule::RunningWithOpenParents, Rules::check_running_with_open_parents),
];

/// A rule, named in config (`disabled_rules`) by its id: the variant in kebab case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    RepeatedFailures,
    RepeatedCrashes,
    StuckInBlocked,
    BlockUnblockCycling,
    StrandedInReady,
    RunningWithOpenParents,
}

impl Rule {
    /// The rule's id, as findings and the config name it.
    pub fn id(self) -> &'static str {
        match self {
            Rule::RepeatedFailures => "repeated-failures",
            Rule::RepeatedCrashes => "repeated-crashes",
            Rule::StuckInBlocked => "stuck-in-blocked",
            Rule::BlockUnblockCycling => "block-unblock-cycling",
            Rule::StrandedInReady => "stranded-in-ready",
            Rule::RunningWithOpenParents => "running-with-open-parents",
        }
    }
}

/// Every rule id, in the order findings are reported.
pub fn rule_ids() -> Vec<&'static str> {
    CHECKS.iter().map(|(rule, _)| rule.id()).collect()
}

/// Event kinds that put a card in `blocked`.
const BLOCKING_KINDS: &[&str] = &["blocked", "gave_up"];

/// Event kinds that (re)make a card ready.
const READYING_KINDS: &[&str] = &[
    "created",
    "ready",
    "promoted",
    "unblocked",
    "recovered",
    "reclaimed",
    "rate_limited",
    "crashed",
    "protocol_violation",
    "stale",
    "timed_out",
];

/// The thresholds, from the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    #[serde(deserialize_with = "positive")]
    pub repeated_failures: i64,
    #[serde(deserialize_with = "positive")]
    pub repeated_crashes: i64,
    #[serde(deserialize_with = "non_negative")]
    pub blocked_stuck_seconds: i64,
    #[serde(deserialize_with = "positive")]
    pub cycle_count: i64,
    #[serde(deserialize_with = "non_negative")]
    pub cycle_window_seconds: i64,
    #[serde(deserialize_with = "non_negative")]
    pub stranded_ready_seconds: i64,
    #[serde(deserialize_with = "string_list")]
    pub disabled_rules: Vec<Rule>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            repeated_failures: 2,
            repeated_crashes: 3,
            blocked_stuck_seconds: 86400,
            cycle_count: 3,
            cycle_window_seconds: 86400,
            stranded_ready_seconds: 1800,
            disabled_rules: Vec::new(),
        }
    }
}

impl Rules {
    /// The findings for `ctx`, in the order of [`rule_ids`].
    pub fn diagnose(&self, ctx: &Context) -> Vec<Finding> {
        CHECKS
            .iter()
            .filter(|(rule, _)| !self.disabled_rules.contains(rule))
            .filter_map(|(_, check)| check(self, ctx))
            .collect()
    }

    fn check_repeated_failures(&self, ctx: &Context) -> Option<Finding> {
        let card = &ctx.card;
        let (failures, limit) = (card.consecutive_failures, ctx.board.failure_limit);
        let at_limit = limit > 0 && failures >= limit;
        if failures <= 0 || !(failures >= self.repeated_failures || at_limit) {
            return None;
        }
        let id = &card.id;
        let last_error =
            card.last_failure_error.as_deref().map_or("none recorded".to_string(), |e| quote(e, 300));
        let (severity, title) = if at_limit {
            (
                Severity::Error,
                format!("failed {failures} times in a row: the circuit breaker tripped (limit {limit})"),
            )
        } else {
            (Severity::Warning, format!("failed {failures} times in a row (the breaker trips at {limit})"))
        };
        let mut actions = vec![
            format!("kanban log {id}  # what the worker printed"),
            format!("kanban runs {id}  # each attempt's outcome and error"),
        ];
        if card.status == "blocked" {
            actions.push(format!(
                "kanban unblock {id} --reason \"...\"  # once the cause is fixed; resets the counter"
            ));
        }
        Some(Finding {
            rule: "repeated-failures".into(),
            severity,
            title,
            detail: format!(
                "consecutive failures: {failures}, breaker limit: {limit}. Last error: {last_error}."
            ),
            actions,
        })
    }

    fn check_repeated_crashes(&self, ctx: &Context) -> Option<Finding> {
        let crashes: Vec<_> = ctx.runs.iter().filter(|run| run.outcome() == Some(Outcome::Crashed)).collect();
        let count = crashes.len();
        if (count as i64) < self.repeated_crashes {
            return None;
        }
        let exit_codes: Vec<String> = crashes
            .iter()
            .map(|run| run.exit_code.map_or("signal or unknown".to_string(), |code| code.to_string()))
            .collect();
        let newest_error = crashes.iter().find_map(|run| run.error.as_deref());
        let id = &ctx.card.id;
        Some(Finding {
            rule: "repeated-crashes".into(),
            severity: Severity::Error,
            title: format!("the worker crashed {count} times"),
            detail: format!(
                "{count} of the card's {} recorded runs crashed (exit codes, newest first: {}). Newest crash error: {}.",
                ctx.runs.len(),
                exit_codes.join(", "),
                newest_error.map_or("none recorded".to_string(), |e| quote(e, 300)),
            ),
            actions: vec![
                format!("kanban log {id}  # the crash output"),
                format!("kanban runs {id}  # every attempt with its exit code"),
                "check the profile's command in board.toml (kanban board check)".to_string(),
            ],
        })
    }

    fn check_stuck_in_blocked(&self, ctx: &Context) -> Option<Finding> {
        let card = &ctx.card;
        if card.status != "blocked" {
            return None;
        }
        let since = ctx.latest_event(BLOCKING_KINDS).map_or(card.updated_at, |event| event.created_at);
        let age = ctx.now - since;
        if age < self.blocked_stuck_seconds {
            return None;
        }
        let id = &card.id;
        let kind = card.block_kind.as_deref().unwrap_or("unspecified");
        let sticky = if card.block_sticky { "sticky: only `kanban unblock` lifts it" } else { "not sticky" };
        let reason = card.block_reason.as_deref().map_or("none given".to_string(), |r| quote(r, 300));
        Some(Finding {
            rule: "stuck-in-blocked".into(),
            severity: Severity::Warning,
            title: format!("blocked for {}", duration(age)),
            detail: format!("Blocked since {since} (kind {kind}, {sticky}). Reason: {reason}."),
            actions: vec![
                format!("kanban show {id}  # the block and the latest comments"),
                format!("kanban unblock {id} --reason \"...\"  # when the blocker is resolved"),
                format!("kanban schedule {id} \"...\"  # park it on purpose"),
                format!("kanban archive {id}  # if it is no longer wanted"),
            ],
        })
    }

    fn check_block_unblock_cycling(&self, ctx: &Context) -> Option<Finding> {
        let window_start = ctx.now - self.cycle_window_seconds;
        let mut blocked = false;
        let mut cycles = 0;
        for event in ctx.events_in_order() {
            if BLOCKING_KINDS.contains(&event.kind.as_str()) {
                blocked = true;
            } else if event.kind == "unblocked" {
                if blocked && event.created_at >= window_start {
                    cycles += 1;
                }
                blocked = false;
            }
        }
        if cycles < self.cycle_count || self.cycle_window_seconds == 0 {
            return None;
        }
        let id = &ctx.card.id;
        Some(Finding {
            rule: "block-unblock-cycling".into(),
            severity: Severity::Warning,
            title: format!("blocked and unblocked {cycles} times in {}", duration(self.cycle_window_seconds)),
            detail: format!(
                "The card was unblocked {cycles} times after being blocked within the last {}: it keeps going \
                 back to work without the cause being fixed.",
                duration(self.cycle_window_seconds)
            ),
            actions: vec![
                format!("kanban events {id}  # the block and unblock reasons"),
                format!("kanban log {id}  # what the worker ran into"),
                format!("kanban schedule {id} \"...\"  # park it until the cause is fixed"),
            ],
        })
    }

    fn check_stranded_in_ready(&self, ctx: &Context) -> Option<Finding> {
        let card = &ctx.card;
        if card.status != "ready" {
            return None;
        }
        let since = ctx.latest_event(READYING_KINDS).map_or(card.updated_at, |event| event.created_at);
        let age = ctx.now - since;
        if age < self.stranded_ready_seconds {
            return None;
        }
        let id = &card.id;
        let profiles = &ctx.board.profiles;
        let profile_names = profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        let mut actions = Vec::new();
        let why = match card.assignee.as_deref() {
            None => {
                actions.push(format!("kanban assign {id} PROFILE  # profiles: {profile_names}"));
                "It has no assignee, and no routing policy gave it one.".to_string()
            }
            Some(assignee) => match ctx.board.profile(assignee) {
                None => {
                    actions.push(format!("kanban assign {id} PROFILE  # profiles: {profile_names}"));
                    format!("Its assignee '{assignee}' is not a profile of board '{}'.", ctx.board.slug)
                }
                Some(load) => match load.cap {
                    Some(cap) if load.running >= cap => {
                        format!("Profile '{assignee}' is at its cap ({} of {cap} running).", load.running)
                    }
                    _ => format!(
                        "Profile '{assignee}' has room ({} running): check that a dispatcher is running and \
                         whether a respawn guard keeps deferring the card.",
                        load.running
                    ),
                },
            },
        };
        actions.push("kanban dispatch --dry-run  # what the next tick would do with it".to_string());
        actions.push(format!("kanban show {id}"));
        Some(Finding {
            rule: "stranded-in-ready".into(),
            severity: Severity::Warning,
            title: format!("ready for {} and no worker has picked it up", duration(age)),
            detail: format!("Ready since {since}. {why}"),
            actions,
        })
    }

    fn check_running_with_open_parents(&self, ctx: &Context) -> Option<Finding> {
        if ctx.card.status != "running" {
            return None;
        }
        let open: Vec<_> = ctx.parents.iter().filter(|p| p.is_open()).collect();
        let first = open.first()?;
        let id = &ctx.card.id;
        let listed: Vec<String> =
            open.iter().map(|p| format!("{} \"{}\" ({})", p.id, excerpt(&p.title, 80), p.status)).collect();
        Some(Finding {
            rule: "running-with-open-parents".into(),
            severity: Severity::Error,
            title: format!("running while {} parent(s) are still open", open.len()),
            detail: format!(
                "A card waits on its parents, but this one is running while {} {} open; it cannot be completed \
                 until they close.",
                listed.join(", "),
                if open.len() == 1 { "is" } else { "are" }
            ),
            actions: vec![
                format!("kanban reclaim {id} --reason \"parents open\"  # requeue it; it waits in todo"),
                format!("kanban unlink {} {id}  # if it should not wait on that parent", first.id),
                format!("kanban show {id}"),
            ],
        })
    }
}

fn quote(text: &str, max: usize) -> String {
    format!("\"{}\"", excerpt(text, max))
}

struct BuiltinDiagnostics;

impl Diagnostics for BuiltinDiagnostics {
    type Config = Rules;

    fn diagnose(rules: &Rules, ctx: &Context) -> Vec<Finding> {
        // A config that fails to parse panics (the SDK's default): the host validated it when it loaded the
        // board, so this is a host bug, and a trap is reported as an error finding naming the plugin (the
        // diagnostics safe default).
        rules.diagnose(ctx)
    }
}

kanban_policy::export_diagnostics!(BuiltinDiagnostics, name = "diagnostics");

#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;
    use kanban_policy::{Event, Parent, Run};

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn context(status: &str) -> Context {
        ContextBuilder::new(NOW)
            .card(|c| {
                c.id("t_0000abcd")
                    .title("Fix the login redirect")
                    .status(status)
                    .assignee("coder")
                    .created_at(NOW - 10)
                    .updated_at(NOW - 10)
            })
            .board("web")
            .profile("coder", 0, Some(2))
            .failure_limit(3)
            .build()
    }

    fn from_config(json: &str) -> Result<Rules, String> {
        kanban_policy::config::parse(json).map_err(String::from)
    }

    fn event(id: i64, kind: &str, ago: i64) -> Event {
        Event { id, kind: kind.into(), payload: "{}".into(), created_at: NOW - ago }
    }

    fn crashed(id: i64) -> Run {
        Run {
            id,
            profile: Some("coder".into()),
            status: "ended".into(),
            outcome: Some("crashed".into()),
            error: Some("exit status 139".into()),
            exit_code: Some(139),
            started_at: NOW - 100,
            ended_at: Some(NOW - 90),
        }
    }

    fn rules_fired(ctx: &Context) -> Vec<String> {
        Rules::default().diagnose(ctx).into_iter().map(|f| f.rule).collect()
    }

    fn only(ctx: &Context, rule: &str) -> Finding {
        let findings = Rules::default().diagnose(ctx);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, rule);
        findings.into_iter().next().unwrap()
    }

    #[test]
    fn a_healthy_card_has_no_findings() {
        for status in ["triage", "todo", "ready", "running", "blocked", "done"] {
            assert!(rules_fired(&context(status)).is_empty(), "{status}");
        }
    }

    #[test]
    fn repeated_failures_warns_then_errors_at_the_limit() {
        let mut ctx = context("ready");
        ctx.card.consecutive_failures = 1;
        assert!(rules_fired(&ctx).is_empty());
        ctx.card.consecutive_failures = 2;
        ctx.card.last_failure_error = Some("exit status 1".into());
        let f = only(&ctx, "repeated-failures");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.detail.contains("\"exit status 1\""), "{}", f.detail);
        ctx.card.consecutive_failures = 3;
        ctx.card.status = "blocked".into();
        ctx.card.updated_at = NOW;
        let f = only(&ctx, "repeated-failures");
        assert_eq!(f.severity, Severity::Error);
        assert!(f.title.contains("circuit breaker tripped"));
        assert!(f.actions.iter().any(|a| a.starts_with("kanban unblock t_0000abcd")));
        // A limit below the warning threshold still reports the tripped breaker.
        ctx.board.failure_limit = 1;
        ctx.card.consecutive_failures = 1;
        assert_eq!(only(&ctx, "repeated-failures").severity, Severity::Error);
    }

    #[test]
    fn repeated_crashes_counts_crashed_runs() {
        let mut ctx = context("ready");
        ctx.runs = vec![crashed(3), crashed(2)];
        assert!(rules_fired(&ctx).is_empty());
        ctx.runs.push(crashed(1));
        let f = only(&ctx, "repeated-crashes");
        assert_eq!(f.severity, Severity::Error);
        assert!(f.detail.contains("139, 139, 139"), "{}", f.detail);
    }

    #[test]
    fn stuck_in_blocked_uses_the_newest_block_event_else_updated_at() {
        let mut ctx = context("blocked");
        ctx.card.block_reason = Some("needs the API key".into());
        ctx.events = vec![event(1, "blocked", 30 * HOUR), event(2, "gave_up", 2 * HOUR)];
        assert!(rules_fired(&ctx).is_empty(), "the newest block is 2h old");
        ctx.events = vec![event(2, "gave_up", 25 * HOUR), event(5, "commented", 60)];
        let f = only(&ctx, "stuck-in-blocked");
        assert_eq!(f.title, "blocked for 1d 1h");
        assert!(f.detail.contains("needs the API key"));
        ctx.events.clear();
        ctx.card.updated_at = NOW - 24 * HOUR;
        assert_eq!(only(&ctx, "stuck-in-blocked").severity, Severity::Warning);
    }

    #[test]
    fn cycling_counts_unblocks_that_follow_a_block_within_the_window() {
        let mut ctx = context("ready");
        ctx.events = vec![
            event(1, "blocked", 30 * HOUR),
            event(2, "unblocked", 29 * HOUR), // outside the window
            event(3, "blocked", 10 * HOUR),
            event(4, "unblocked", 9 * HOUR),
            event(5, "unblocked", 8 * HOUR), // not after a block
            event(6, "gave_up", 7 * HOUR),
            event(7, "commented", 6 * HOUR),
            event(8, "unblocked", 5 * HOUR),
        ];
        assert!(!rules_fired(&ctx).contains(&"block-unblock-cycling".to_string()), "2 cycles");
        ctx.events.push(event(10, "unblocked", 3 * HOUR));
        ctx.events.push(event(9, "blocked", 4 * HOUR)); // out of order in the list: walked by id
        let findings = Rules::default().diagnose(&ctx);
        let f = findings.iter().find(|f| f.rule == "block-unblock-cycling").expect("3 cycles");
        assert_eq!(f.title, "blocked and unblocked 3 times in 1d");
    }

    #[test]
    fn stranded_in_ready_explains_why() {
        let mut ctx = context("ready");
        ctx.events =
            vec![event(1, "created", 2 * HOUR), event(2, "promoted", 20 * 60), event(3, "commented", 10)];
        assert!(rules_fired(&ctx).is_empty());
        ctx.events[1] = event(2, "promoted", HOUR);
        let f = only(&ctx, "stranded-in-ready");
        assert_eq!(f.title, "ready for 1h and no worker has picked it up");
        assert!(f.detail.contains("has room"), "{}", f.detail);

        ctx.card.assignee = None;
        assert!(only(&ctx, "stranded-in-ready").detail.contains("no assignee"));
        ctx.card.assignee = Some("ghost".into());
        assert!(only(&ctx, "stranded-in-ready").detail.contains("'ghost' is not a profile of board 'web'"));
        ctx.card.assignee = Some("coder".into());
        ctx.board.profiles[0].running = 2;
        assert!(only(&ctx, "stranded-in-ready").detail.contains("at its cap (2 of 2 running)"));

        ctx.events.clear();
        ctx.card.updated_at = NOW - 29 * 60;
        assert!(rules_fired(&ctx).is_empty(), "falls back to updated_at");
    }

    #[test]
    fn running_with_open_parents_is_an_error() {
        let mut ctx = context("running");
        let parent =
            |id: &str, status: &str| Parent { id: id.into(), title: "Design".into(), status: status.into() };
        ctx.parents = vec![parent("t_1", "done"), parent("t_2", "archived")];
        assert!(rules_fired(&ctx).is_empty());
        ctx.parents.push(parent("t_3", "review"));
        let f = only(&ctx, "running-with-open-parents");
        assert_eq!(f.severity, Severity::Error);
        assert!(f.detail.contains("t_3 \"Design\" (review)"), "{}", f.detail);
        ctx.card.status = "todo".into();
        assert!(rules_fired(&ctx).is_empty());
    }

    #[test]
    fn disabled_rules_and_order() {
        let mut ctx = context("blocked");
        ctx.card.consecutive_failures = 3;
        ctx.runs = vec![crashed(3), crashed(2), crashed(1)];
        ctx.card.updated_at = NOW - 2 * 86400;
        assert_eq!(rules_fired(&ctx), ["repeated-failures", "repeated-crashes", "stuck-in-blocked"]);
        let rules = from_config(r#"{"disabled_rules": ["repeated-crashes"]}"#).unwrap();
        let fired: Vec<_> = rules.diagnose(&ctx).into_iter().map(|f| f.rule).collect();
        assert_eq!(fired, ["repeated-failures", "stuck-in-blocked"]);
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(from_config("{}").unwrap(), Rules::default());
        let err = from_config(r#"{"stuck_seconds": 1}"#).unwrap_err();
        assert!(err.starts_with("config.stuck_seconds: unknown key (known: repeated_failures,"), "{err}");
        let err = from_config(r#"{"cycle_count": 0}"#).unwrap_err();
        assert!(err.starts_with("config.cycle_count: must be an integer of at least 1"), "{err}");
        let err = from_config(r#"{"disabled_rules": ["nope"]}"#).unwrap_err();
        assert!(err.starts_with("config.disabled_rules[0]: unknown value \"nope\""), "{err}");
        let err = from_config(r#"{"disabled_rules": "stuck-in-blocked"}"#).unwrap_err();
        assert!(err.starts_with("config.disabled_rules: must be a list of strings"), "{err}");
    }
}
