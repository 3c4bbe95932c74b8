//! # hold-guard: a respawn-guard plugin for kanban, as a tutorial
//!
//! Before the dispatcher spawns a worker for a ready card, it asks every respawn guard on the board: *may I
//! spawn this card now?* This guard answers "not now" for any card whose title or body contains a marker,
//! `[hold]` by default, so you can put a card on hold by editing its text:
//!
//! ```text
//! kanban edit t_1a2b3c4d --title "[hold] Migrate the billing tables"
//! ```
//!
//! ## What a plugin is
//!
//! A plugin is a WebAssembly *component* that exports one of the worlds in kanban's WIT package
//! (`wit/policy.wit`, `kanban:policy@0.1.0`). This one exports `respawn-guard-policy`:
//!
//! - `plugin.describe()`: its name, version and kind, read at `kanban plugin install`;
//! - `plugin.validate-config(config)`: checks the board's `[policies.config]` table (as a JSON string) and
//!   returns an error naming the key at fault; `kanban board check` and every board load call it;
//! - `respawn-guard.decide(ctx)`: the decision for one card: `allow`, `defer` (not now, with a reason and an
//!   optional time to ask again), or `block` (sticky until a human unblocks the card).
//!
//! The `kanban-policy` crate (`plugins/kanban-policy` in the kanban repository) does the WebAssembly part:
//! it carries the bindings, turns the config into our `Settings` struct (so `validate-config` comes for
//! free), and `export_guard!` wires our guard to the exports. What is left for us is the decision.
//!
//! ## What a plugin can see
//!
//! Only its arguments. `ctx` holds the card, its recent runs, events and comments, its parents, facts about
//! the board, the time (`ctx.now`, unix seconds) and the policy's config. The host runs the plugin with no
//! filesystem, no network, no environment variables and no clock of its own (the wall clock reads `ctx.now`),
//! and with bounded CPU and memory. So a plugin is a pure function of its input: easy to test, and safe to
//! run on every tick. If it traps, panics or runs out of time, the host records the error and applies the
//! guard's safe default (allow, unless the board chose to fail closed).
//!
//! ## Build, install, enable
//!
//! ```sh
//! rustup target add wasm32-wasip2
//! cargo build --target wasm32-wasip2 --release
//! kanban plugin install target/wasm32-wasip2/release/hold_guard.wasm --name hold-guard
//! ```
//!
//! Then turn it on in one board's `board.toml`:
//!
//! ```toml
//! [[policies]]
//! kind = "respawn-guard"
//! plugin = "hold-guard"
//! [policies.config]
//! marker = "[hold]"
//! ```
//!
//! and check the file with `kanban board check`.

use kanban_policy::Context;
use kanban_policy::guard::{Decision, Guard};
use serde::{Deserialize, Deserializer};

/// The plugin's settings: the board's `[policies.config]` table, read by the SDK. Every error names the key
/// at fault, as `config.<key>: ...`, so the operator knows which line of board.toml to fix.
///
/// - `deny_unknown_fields`: a key we do not know (`markr = ...`, a typo) is refused at `kanban board check`
///   instead of being silently ignored (`config.markr: unknown key (known: marker)`).
/// - `default`: a key left out takes its value from `Settings::default()`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// A `String` field refuses anything but a string (`config.marker: must be a string, got 1`); our
    /// own rule on top refuses the empty string.
    #[serde(deserialize_with = "non_empty")]
    marker: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { marker: "[hold]".to_string() }
    }
}

/// A string that is not empty. The SDK puts the key in front of our message: `config.marker: must not be
/// empty`.
fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let marker = String::deserialize(deserializer)?;
    if marker.is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(marker)
}

/// The type we export. It has no state: a new instance may serve each call, so never keep anything here
/// between calls.
struct HoldGuard;

impl Guard for HoldGuard {
    type Config = Settings;

    /// The decision itself: a plain function of the settings and the card, easy to unit-test. The host has
    /// already validated the config (at `board check` and when it loaded the board); should it ever hand
    /// over one that does not read, the SDK panics with the message, and the host records it and applies
    /// the guard's safe default.
    fn decide(settings: &Settings, ctx: &Context) -> Decision {
        let card = &ctx.card;
        if card.title.contains(&settings.marker) || card.body.contains(&settings.marker) {
            // No time to come back: the hold lasts until someone removes the marker, and the dispatcher asks
            // again on every tick anyway.
            Decision::defer(format!("held: the card is marked {}", settings.marker), None)
        } else {
            Decision::Allow
        }
    }
}

// Wire `HoldGuard` to the component's exports. `describe` reports this crate's Cargo package name
// (`hold-guard`, the name `kanban plugin install` suggests) and version; the kind is respawn-guard, which must
// match the `kind` of the [[policies]] entry that uses the plugin.
kanban_policy::export_guard!(HoldGuard);

// The logic is plain Rust, so `cargo test` runs these on your machine (no WebAssembly needed).
#[cfg(test)]
mod tests {
    use super::*;
    use kanban_policy::testing::ContextBuilder;

    fn context(title: &str, body: &str) -> Context {
        ContextBuilder::new(1_800_000_000).card(|c| c.id("t_1a2b3c4d").title(title).body(body)).build()
    }

    fn settings(config: &str) -> Result<Settings, String> {
        kanban_policy::config::parse(config).map_err(String::from)
    }

    #[test]
    fn a_marked_card_is_held() {
        let settings = settings("{}").unwrap();
        for (title, body) in [("[hold] Migrate", ""), ("Migrate", "Wait for the freeze.\n[hold]")] {
            match HoldGuard::decide(&settings, &context(title, body)) {
                Decision::Defer(d) => assert_eq!(d.reason, "held: the card is marked [hold]"),
                other => panic!("expected a deferral, got {other:?}"),
            }
        }
        assert_eq!(HoldGuard::decide(&settings, &context("Migrate", "")), Decision::Allow);
    }

    #[test]
    fn the_marker_is_configurable() {
        let settings = settings(r#"{"marker": "WIP"}"#).unwrap();
        assert_eq!(HoldGuard::decide(&settings, &context("[hold] x", "")), Decision::Allow);
        assert!(matches!(HoldGuard::decide(&settings, &context("WIP x", "")), Decision::Defer(_)));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err = |json: &str| settings(json).err().unwrap();
        assert_eq!(err(r#"{"markr": "x"}"#), "config.markr: unknown key (known: marker)");
        assert_eq!(err(r#"{"marker": ""}"#), "config.marker: must not be empty");
        assert_eq!(err(r#"{"marker": 1}"#), "config.marker: must be a string, got 1");
    }

    /// `guard::decide` runs the guard as the host does: the config comes from `ctx.config`.
    #[test]
    fn the_config_comes_with_the_context() {
        let ctx =
            ContextBuilder::new(0).card(|c| c.title("WIP: tidy")).config(r#"{"marker": "WIP"}"#).build();
        assert_eq!(
            kanban_policy::guard::decide::<HoldGuard>(&ctx),
            Decision::defer("held: the card is marked WIP", None)
        );
    }
}
