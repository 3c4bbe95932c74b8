//! {{name}}: a routing policy for kanban.
//!
//! The dispatcher asks the board's routing policy which profile takes an unassigned ready card. This one
//! routes by the start of the card's title: with `prefixes = { "docs:" = "writer", "fix:" = "coder" }`, a
//! card titled `fix: the login redirect` goes to `coder`. Prefixes are matched without regard to case and
//! the longest matching one wins; a title no prefix matches goes to `default`, or stays unassigned. Change
//! `route` to make the rule yours; README.md has the commands to test, build and install it.

use std::collections::BTreeMap;

use kanban_policy::Context;
use kanban_policy::config::non_blank;
use kanban_policy::routing::Router;
use serde::{Deserialize, Deserializer};

/// The board's `[policies.config]` table, read by the SDK. Every error names the key at fault, and a key
/// this struct does not declare is refused, so a typo in board.toml fails `kanban board check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Title prefix = profile. Required (`config.prefixes: missing (this key is required)`).
    #[serde(deserialize_with = "prefix_table")]
    pub prefixes: BTreeMap<String, String>,
    /// The profile for a card no prefix matches; left out, such a card stays unassigned.
    #[serde(default, deserialize_with = "non_blank")]
    pub default: Option<String>,
}

/// A table of prefix = profile, with no blank prefix or profile.
fn prefix_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let table = BTreeMap::<String, String>::deserialize(deserializer)?;
    for (prefix, profile) in &table {
        if prefix.trim().is_empty() {
            return Err(serde::de::Error::custom("a prefix must not be blank"));
        }
        if profile.trim().is_empty() {
            return Err(serde::de::Error::custom(format!(
                "the profile for {prefix:?} must not be blank"
            )));
        }
    }
    Ok(table)
}

/// The exported type. It keeps no state: a new instance may serve any call.
pub struct PrefixRouter;

impl Router for PrefixRouter {
    type Config = Config;

    fn route(config: &Config, ctx: &Context) -> Option<String> {
        let title = ctx.card.title.trim_start().to_lowercase();
        let matched = config
            .prefixes
            .iter()
            .filter(|(prefix, _)| title.starts_with(&prefix.to_lowercase()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, profile)| profile.trim().to_string());
        // A profile the board does not have is refused by the host as a bad_output policy error naming it.
        matched.or_else(|| config.default.clone())
    }
}

// The component's exports: `describe` reports this crate's package name and version, `validate-config`
// reads the config into `Config`, and `route` calls `PrefixRouter::route`.
kanban_policy::export_router!(PrefixRouter);

// The logic is plain Rust: `cargo test` runs these natively, no WebAssembly needed.
#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    const CONFIG: &str =
        r#"{"prefixes": {"docs:": "writer", "fix:": "coder", "fix: ui": "designer"}}"#;

    fn route(title: &str, config: &str) -> Option<String> {
        let ctx = ContextBuilder::new(1_800_000_000)
            .card(|c| c.title(title))
            .config(config)
            .build();
        // Runs the router as the host does: the config comes from `ctx.config`.
        kanban_policy::routing::route::<PrefixRouter>(&ctx)
    }

    #[test]
    fn a_title_prefix_picks_the_profile() {
        assert_eq!(
            route("docs: explain the breaker", CONFIG).as_deref(),
            Some("writer")
        );
        assert_eq!(
            route("FIX: login redirect", CONFIG).as_deref(),
            Some("coder")
        );
        assert_eq!(
            route("fix: UI glitch", CONFIG).as_deref(),
            Some("designer"),
            "the longest prefix wins"
        );
    }

    #[test]
    fn an_unmatched_title_goes_to_the_default_or_nowhere() {
        assert_eq!(route("Rotate the certificates", CONFIG), None);
        let config = r#"{"prefixes": {"docs:": "writer"}, "default": "coder"}"#;
        assert_eq!(
            route("Rotate the certificates", config).as_deref(),
            Some("coder")
        );
    }

    #[test]
    fn a_bad_config_names_the_key() {
        let err = |json: &str| {
            kanban_policy::config::parse::<Config>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("{}"), "config.prefixes: missing (this key is required)");
        assert_eq!(
            err(r#"{"prefixes": {" ": "coder"}}"#),
            "config.prefixes: a prefix must not be blank"
        );
        assert_eq!(
            err(r#"{"prefixes": {"fix:": 1}}"#),
            "config.prefixes.fix:: must be a string, got 1"
        );
        assert_eq!(
            err(r#"{"prefixes": {}, "default": 7}"#),
            "config.default: must be a string, got 7"
        );
        assert_eq!(
            err(r#"{"prefixes": {}, "defualt": "x"}"#),
            "config.defualt: unknown key (known: prefixes, default)"
        );
    }
}
