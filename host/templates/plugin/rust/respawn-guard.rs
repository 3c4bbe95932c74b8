//! {{name}}: a respawn-guard policy for kanban.
//!
//! Before the dispatcher spawns a worker for a ready card, it asks every respawn guard on the board: may I
//! spawn this card now? This guard answers "not now" for a card whose title contains a marker (`[hold]` by
//! default), and tells the dispatcher when to ask again if `retry_after_seconds` is set. Change `decide` to
//! make the rule yours; README.md has the commands to test, build and install it.

use kanban_policy::Context;
use kanban_policy::config::non_negative;
use kanban_policy::guard::{Decision, Guard};
use serde::{Deserialize, Deserializer};

/// The board's `[policies.config]` table, read by the SDK. Every error names the key at fault
/// (`config.marker: must not be empty`), and a key this struct does not declare is refused, so a typo in
/// board.toml fails `kanban board check`. A key left out takes its value from `Config::default()`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Text that holds a card back when its title contains it (case-sensitive).
    #[serde(deserialize_with = "non_empty")]
    pub marker: String,
    /// Ask again this many seconds later; 0 gives no time (the dispatcher asks on every tick anyway).
    #[serde(deserialize_with = "non_negative")]
    pub retry_after_seconds: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            marker: "[hold]".to_string(),
            retry_after_seconds: 0,
        }
    }
}

/// A string that is not empty; the SDK puts the key in front of the message.
fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(text)
}

/// The exported type. It keeps no state: a new instance may serve any call.
pub struct MarkerGuard;

impl Guard for MarkerGuard {
    type Config = Config;

    fn decide(config: &Config, ctx: &Context) -> Decision {
        if !ctx.card.title.contains(&config.marker) {
            return Decision::Allow;
        }
        // Time comes only from the host: `ctx.now` (unix seconds). A plugin has no clock of its own.
        let retry_after =
            (config.retry_after_seconds > 0).then(|| ctx.now + config.retry_after_seconds);
        Decision::defer(
            format!("held: the title contains {}", config.marker),
            retry_after,
        )
    }
}

// The component's exports: `describe` reports this crate's package name and version, `validate-config`
// reads the config into `Config`, and `decide` calls `MarkerGuard::decide`.
kanban_policy::export_guard!(MarkerGuard);

// The logic is plain Rust: `cargo test` runs these natively, no WebAssembly needed.
#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    const NOW: i64 = 1_800_000_000;

    fn decide(title: &str, config: &str) -> Decision {
        let ctx = ContextBuilder::new(NOW)
            .card(|c| c.title(title))
            .config(config)
            .build();
        // Runs the guard as the host does: the config comes from `ctx.config`.
        kanban_policy::guard::decide::<MarkerGuard>(&ctx)
    }

    #[test]
    fn a_marked_title_is_held_back() {
        assert_eq!(
            decide("[hold] Migrate the billing tables", "{}"),
            Decision::defer("held: the title contains [hold]", None)
        );
        assert_eq!(decide("Migrate the billing tables", "{}"), Decision::Allow);
    }

    #[test]
    fn the_marker_and_the_retry_time_come_from_the_config() {
        let config = r#"{"marker": "WIP", "retry_after_seconds": 600}"#;
        assert_eq!(
            decide("WIP: tidy", config),
            Decision::defer("held: the title contains WIP", Some(NOW + 600))
        );
        assert_eq!(decide("[hold] tidy", config), Decision::Allow);
    }

    #[test]
    fn a_bad_config_names_the_key() {
        let err = |json: &str| {
            kanban_policy::config::parse::<Config>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(r#"{"marker": ""}"#), "config.marker: must not be empty");
        assert_eq!(
            err(r#"{"marker": 1}"#),
            "config.marker: must be a string, got 1"
        );
        assert_eq!(
            err(r#"{"retry_after_seconds": -1}"#),
            "config.retry_after_seconds: must be a non-negative integer, got -1"
        );
        assert_eq!(
            err(r#"{"markr": "x"}"#),
            "config.markr: unknown key (known: marker, retry_after_seconds)"
        );
    }
}
