//! {{name}}: a diagnostics policy for kanban.
//!
//! `kanban diagnostics` asks the board's diagnostics policies what is wrong with each card. This one flags a
//! card whose body is empty (or shorter than `min_length` characters): a worker gets little to go on from a
//! title alone. Finished cards (done, archived) are left alone. Change `diagnose` to make the rule yours;
//! README.md has the commands to test, build and install it.

use kanban_policy::Context;
use kanban_policy::config::positive;
use kanban_policy::diagnostics::{Diagnostics, Finding, Severity};
use serde::Deserialize;

/// The board's `[policies.config]` table, read by the SDK. Every error names the key at fault, and a key
/// this struct does not declare is refused, so a typo in board.toml fails `kanban board check`. A key left
/// out takes its value from `Config::default()`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A body shorter than this many characters (surrounding blanks aside) is flagged; 1 flags only an
    /// empty one.
    #[serde(deserialize_with = "positive")]
    pub min_length: i64,
    /// How bad the finding is: info, warning, error or critical.
    pub severity: Level,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_length: 1,
            severity: Level::Warning,
        }
    }
}

/// A severity as board.toml writes it (`config.severity: unknown value "bad" (known: info, ...)`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
    Critical,
}

impl From<Level> for Severity {
    fn from(level: Level) -> Severity {
        match level {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
            Level::Critical => Severity::Critical,
        }
    }
}

/// The exported type. It keeps no state: a new instance may serve any call.
pub struct ShortBody;

impl Diagnostics for ShortBody {
    type Config = Config;

    fn diagnose(config: &Config, ctx: &Context) -> Vec<Finding> {
        let card = &ctx.card;
        if matches!(card.status.as_str(), "done" | "archived") {
            return Vec::new();
        }
        let length = card.body.trim().chars().count() as i64;
        if length >= config.min_length {
            return Vec::new();
        }
        let title = if length == 0 {
            "the card has no body"
        } else {
            "the card's body is short"
        };
        vec![Finding {
            rule: "short-body".to_string(),
            severity: config.severity.into(),
            title: title.to_string(),
            detail: format!(
                "{} has {length} characters of body (at least {} wanted): a worker gets little to go on",
                card.id, config.min_length
            ),
            actions: vec![format!(
                "kanban edit {} --body \"what done looks like, and where to start\"",
                card.id
            )],
        }]
    }
}

// The component's exports: `describe` reports this crate's package name and version, `validate-config`
// reads the config into `Config`, and `diagnose` calls `ShortBody::diagnose`.
kanban_policy::export_diagnostics!(ShortBody);

// The logic is plain Rust: `cargo test` runs these natively, no WebAssembly needed.
#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    fn diagnose(status: &str, body: &str, config: &str) -> Vec<Finding> {
        let ctx = ContextBuilder::new(1_800_000_000)
            .card(|c| {
                c.id("t_1a2b3c4d")
                    .title("Fix the login redirect")
                    .status(status)
                    .body(body)
            })
            .config(config)
            .build();
        // Runs the policy as the host does: the config comes from `ctx.config`.
        kanban_policy::diagnostics::diagnose::<ShortBody>(&ctx)
    }

    #[test]
    fn a_card_without_a_body_is_flagged() {
        let findings = diagnose("ready", "  \n", "{}");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "short-body");
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(findings[0].title, "the card has no body");
        assert!(
            findings[0].actions[0].starts_with("kanban edit t_1a2b3c4d --body"),
            "{findings:?}"
        );
        assert!(diagnose("ready", "Redirect to /home after login.", "{}").is_empty());
        assert!(
            diagnose("done", "", "{}").is_empty(),
            "finished cards are left alone"
        );
    }

    #[test]
    fn the_length_and_severity_come_from_the_config() {
        let config = r#"{"min_length": 20, "severity": "error"}"#;
        let findings = diagnose("todo", "Fix it.", config);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].title, "the card's body is short");
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(diagnose("todo", "Redirect to /home after a login.", config).is_empty());
    }

    #[test]
    fn a_bad_config_names_the_key() {
        let err = |json: &str| {
            kanban_policy::config::parse::<Config>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"min_length": 0}"#),
            "config.min_length: must be an integer of at least 1, got 0"
        );
        assert_eq!(
            err(r#"{"severity": "bad"}"#),
            r#"config.severity: unknown value "bad" (known: info, warning, error, critical)"#
        );
        assert_eq!(
            err(r#"{"min_len": 3}"#),
            "config.min_len: unknown key (known: min_length, severity)"
        );
    }
}
