//! A respawn guard that reports what the sandbox lets it see, so the host's tests can check that a plugin
//! gets no filesystem, no environment, and a wall clock pinned to `context.now`.
//!
//! decide() always defers, with the reason a JSON object:
//! `{"fs": "denied" | {...what was readable...}, "fs_errors": [...], "env_count": n, "clock": secs, "ctx_now": now}`.
//! `fs` is "denied" when listing `/` and `.` and reading `/etc/hostname` all failed; otherwise it maps each
//! attempt to what it got (a listing, the file's text, or "denied").
//!
//! With the config `{"mode": "random"}` it reports the sandbox's randomness instead: the reason is
//! `{"draws": [a, b]}`, two u64s drawn one after the other from the WASI random source (through wasi-libc's
//! `getentropy`, one call each), so the host's tests can check that draws differ within a call and are
//! reproducible per card.

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

unsafe extern "C" {
    /// wasi-libc's `getentropy` (at most 256 bytes), backed by `wasi:random/random`.
    fn getentropy(buffer: *mut u8, len: usize) -> i32;
}

/// One u64 from the sandbox's random source.
fn draw() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for writes of its length, which is within getentropy's 256-byte limit.
    let rc = unsafe { getentropy(bytes.as_mut_ptr(), bytes.len()) };
    assert_eq!(rc, 0, "getentropy failed");
    u64::from_le_bytes(bytes)
}

fn random_mode(config: &str) -> bool {
    serde_json::from_str::<Value>(config).is_ok_and(|c| c["mode"] == "random")
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
        if random_mode(&ctx.config) {
            let draws = [draw(), draw()];
            return Decision::Defer(Deferral {
                reason: json!({ "draws": draws }).to_string(),
                retry_after: None,
            });
        }
        Decision::Defer(Deferral { reason: probe(&ctx).to_string(), retry_after: None })
    }
}

export!(Probe);
