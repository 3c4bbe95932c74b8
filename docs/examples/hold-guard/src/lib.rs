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

// Generate Rust bindings for the `respawn-guard-policy` world. The path is relative to this crate's
// Cargo.toml: the `wit/` folder at the top of the kanban repository. Outside the repository, copy
// `wit/policy.wit` next to your crate and point `path` at it.
//
// This creates:
// - `kanban::policy::types::*`: the records the host passes in (`Context`, `Card`, `Run`, ...) and
//   `PluginInfo` / `PolicyKind` for `describe`;
// - `exports::kanban::policy::plugin::Guest` and `exports::kanban::policy::respawn_guard::Guest`: one trait
//   per exported interface, which we implement below;
// - `export!`: the macro that wires our implementation to the component's exports.
wit_bindgen::generate!({ path: "../../../wit", world: "respawn-guard-policy" });

use exports::kanban::policy::respawn_guard::{Decision, Deferral};
use kanban::policy::types::{Context, PluginInfo, PolicyKind};
use serde_json::Value;

/// The marker used when the config does not set one.
const DEFAULT_MARKER: &str = "[hold]";

/// The config keys this plugin knows. Refusing every other key catches typos (`markr = ...`) at
/// `kanban board check` instead of silently ignoring them.
const KNOWN_KEYS: &[&str] = &["marker"];

/// The plugin's settings, read from the board's `[policies.config]` table.
struct Settings {
    marker: String,
}

impl Settings {
    /// Parse the config JSON (an object). Every error names the key at fault, as `config.<key>: ...`, so the
    /// operator knows which line of board.toml to fix.
    fn from_config(config: &str) -> Result<Settings, String> {
        let value: Value =
            serde_json::from_str(config).map_err(|err| format!("config: not valid JSON: {err}"))?;
        let Value::Object(table) = value else {
            return Err("config: must be a table".to_string());
        };
        if let Some(key) = table.keys().find(|key| !KNOWN_KEYS.contains(&key.as_str())) {
            return Err(format!("config.{key}: unknown key (known: {})", KNOWN_KEYS.join(", ")));
        }
        let marker = match table.get("marker") {
            None => DEFAULT_MARKER.to_string(),
            Some(Value::String(marker)) if !marker.is_empty() => marker.clone(),
            Some(Value::String(_)) => return Err("config.marker: must not be empty".to_string()),
            Some(other) => return Err(format!("config.marker: must be a string, got {other}")),
        };
        Ok(Settings { marker })
    }

    /// The decision itself: a plain function of the card, easy to unit-test.
    fn decide(&self, ctx: &Context) -> Decision {
        let card = &ctx.card;
        if card.title.contains(&self.marker) || card.body.contains(&self.marker) {
            Decision::Defer(Deferral {
                reason: format!("held: the card is marked {}", self.marker),
                // No time to come back: the hold lasts until someone removes the marker, and the dispatcher
                // asks again on every tick anyway.
                retry_after: None,
            })
        } else {
            Decision::Allow
        }
    }
}

/// The type we export. It has no state: a new instance may serve each call, so never keep anything here
/// between calls.
struct HoldGuard;

impl exports::kanban::policy::plugin::Guest for HoldGuard {
    fn describe() -> PluginInfo {
        PluginInfo {
            // The name `kanban plugin install` suggests and the version it records; the kind must match the
            // `kind` of the [[policies]] entry that uses this plugin.
            name: "hold-guard".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            kind: PolicyKind::RespawnGuard,
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        Settings::from_config(&config).map(|_| ())
    }
}

impl exports::kanban::policy::respawn_guard::Guest for HoldGuard {
    fn decide(ctx: Context) -> Decision {
        // The host has already validated this config (at `board check` and when it loaded the board), so a
        // failure here means something is badly wrong: panicking traps the call, and the host records the
        // message and applies the guard's safe default.
        let settings = Settings::from_config(&ctx.config).unwrap_or_else(|err| panic!("{err}"));
        settings.decide(&ctx)
    }
}

// Wire `HoldGuard` to the component's exports.
export!(HoldGuard);

// The logic is plain Rust, so `cargo test` runs these on your machine (no WebAssembly needed).
#[cfg(test)]
mod tests {
    use super::*;
    use kanban::policy::types::{BoardFacts, Card};

    fn context(title: &str, body: &str) -> Context {
        Context {
            card: Card {
                id: "t_1a2b3c4d".into(),
                title: title.into(),
                body: body.into(),
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
                created_at: 0,
                updated_at: 0,
            },
            runs: Vec::new(),
            events: Vec::new(),
            comments: Vec::new(),
            parents: Vec::new(),
            board: BoardFacts { slug: "web".into(), profiles: Vec::new(), failure_limit: 2 },
            now: 1_800_000_000,
            config: "{}".into(),
        }
    }

    #[test]
    fn a_marked_card_is_held() {
        let settings = Settings::from_config("{}").unwrap();
        for (title, body) in [("[hold] Migrate", ""), ("Migrate", "Wait for the freeze.\n[hold]")] {
            match settings.decide(&context(title, body)) {
                Decision::Defer(d) => assert_eq!(d.reason, "held: the card is marked [hold]"),
                other => panic!("expected a deferral, got {other:?}"),
            }
        }
        assert!(matches!(settings.decide(&context("Migrate", "")), Decision::Allow));
    }

    #[test]
    fn the_marker_is_configurable() {
        let settings = Settings::from_config(r#"{"marker": "WIP"}"#).unwrap();
        assert!(matches!(settings.decide(&context("[hold] x", "")), Decision::Allow));
        assert!(matches!(settings.decide(&context("WIP x", "")), Decision::Defer(_)));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let err = |json: &str| Settings::from_config(json).err().unwrap();
        assert_eq!(err(r#"{"markr": "x"}"#), "config.markr: unknown key (known: marker)");
        assert_eq!(err(r#"{"marker": ""}"#), "config.marker: must not be empty");
        assert_eq!(err(r#"{"marker": 1}"#), "config.marker: must be a string, got 1");
    }
}
