use kanban_policy::config::non_negative;
use kanban_policy::guard::{Decision, Guard};
use kanban_policy::{Context, Outcome};
use serde::Deserialize;

/// The board's `[policies.config]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde(deserialize_with = "non_negative")]
    pub cooldown_seconds: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config { cooldown_seconds: 600 }
    }
}

/// Defers a card whose newest run crashed less than `cooldown_seconds` ago.
pub struct CrashCooldown;

impl Guard for CrashCooldown {
    type Config = Config;

    fn decide(config: &Config, ctx: &Context) -> Decision {
        let Some(run) = ctx.latest_run().filter(|run| run.outcome() == Some(Outcome::Crashed)) else {
            return Decision::Allow;
        };
        let crashed_at = run.ended_or_started_at();
        match ctx.still_within(crashed_at, config.cooldown_seconds) {
            Some(until) => {
                Decision::defer(format!("crashed {}s ago", ctx.seconds_since(crashed_at)), Some(until))
            }
            None => Decision::Allow,
        }
    }
}

kanban_policy::export_guard!(CrashCooldown);

#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_recent_crash_defers_until_the_cooldown_ends() {
        let ctx = ContextBuilder::new(NOW)
            .run(|r| r.outcome("crashed").ended_ago(100))
            .config(r#"{"cooldown_seconds": 300}"#)
            .build();
        // `guard::decide` runs the guard as the host would: config from `ctx.config`, then `decide`.
        let decision = kanban_policy::guard::decide::<CrashCooldown>(&ctx);
        assert_eq!(decision, Decision::defer("crashed 100s ago", Some(NOW + 200)));

        let ctx = ContextBuilder::new(NOW).run(|r| r.outcome("crashed").ended_ago(900)).build();
        assert_eq!(kanban_policy::guard::decide::<CrashCooldown>(&ctx), Decision::Allow);
    }

    #[test]
    fn a_bad_config_names_the_key() {
        let err = kanban_policy::config::parse::<Config>(r#"{"cooldown_seconds": "5m"}"#).unwrap_err();
        assert_eq!(err.to_string(), r#"config.cooldown_seconds: must be a non-negative integer, got "5m""#);
    }
}
