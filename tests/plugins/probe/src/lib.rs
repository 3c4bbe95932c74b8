//! A respawn guard that reports what the sandbox lets it see, so the host's tests can check that a plugin
//! gets no filesystem, no environment, and a wall clock pinned to `context.now`.
//!
//! decide() always defers, with the reason a JSON object:
//! `{"fs": "denied" | {...what was readable...}, "fs_errors": [...], "env_count": n, "clock": secs, "ctx_now": now}`.
//! `fs` is "denied" when listing `/` and `.` and reading `/etc/hostname` all failed; otherwise it maps each
//! attempt to what it got (a listing, the file's text, or "denied").

wit_bindgen::generate!({ path: "../../../wit", world: "respawn-guard-policy" });

use std::time::{SystemTime, UNIX_EPOCH};

use exports::kanban::policy::respawn_guard::{Decision, Deferral};
use kanban::policy::types::{Context, PluginInfo, PolicyKind};
use serde_json::{Map, Value, json};

fn list(dir: &str) -> std::io::Result<Value> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(json!(names))
}

fn probe(ctx: &Context) -> Value {
    let attempts: [(&str, std::io::Result<Value>); 3] = [
        ("read_dir /", list("/")),
        ("read_dir .", list(".")),
        ("read /etc/hostname", std::fs::read_to_string("/etc/hostname").map(Value::String)),
    ];
    let mut seen = Map::new();
    let mut errors = Vec::new();
    for (what, result) in attempts {
        match result {
            Ok(value) => {
                seen.insert(what.into(), value);
            }
            Err(err) => {
                seen.insert(what.into(), json!("denied"));
                errors.push(format!("{what}: {err}"));
            }
        }
    }
    let fs = if errors.len() == seen.len() { json!("denied") } else { Value::Object(seen) };
    let clock = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    json!({
        "fs": fs,
        "fs_errors": errors,
        "env_count": std::env::vars().count(),
        "clock": clock,
        "ctx_now": ctx.now,
    })
}

struct Probe;

impl exports::kanban::policy::plugin::Guest for Probe {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::RespawnGuard,
        }
    }

    fn validate_config(_config: String) -> Result<(), String> {
        Ok(())
    }
}

impl exports::kanban::policy::respawn_guard::Guest for Probe {
    fn decide(ctx: Context) -> Decision {
        Decision::Defer(Deferral { reason: probe(&ctx).to_string(), retry_after: None })
    }
}

export!(Probe);
