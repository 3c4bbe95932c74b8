//! A respawn guard that misbehaves on purpose, so the host's tests can check that the sandbox holds: fuel
//! and memory limits trap, a panic is recorded, an oversized answer is refused, and sleeping does not stall
//! the dispatcher.
//!
//! Config: `{"mode": M}` (missing means `allow`), M one of:
//! - `allow`: allow;
//! - `loop`: spin forever (needs the fuel or deadline limit);
//! - `alloc`: allocate and touch 1 MiB chunks forever (needs the memory limit);
//! - `panic`: panic with "hostile plugin panicked on purpose";
//! - `huge`: defer with a 64 MiB reason;
//! - `sleep`: sleep an hour, then allow.

wit_bindgen::generate!({ path: "../../../wit", world: "respawn-guard-policy" });

use std::hint::black_box;
use std::time::Duration;

use exports::kanban::policy::respawn_guard::{Decision, Deferral};
use kanban::policy::types::{Context, PluginInfo, PolicyKind};

const MODES: &[&str] = &["allow", "loop", "alloc", "panic", "huge", "sleep"];

fn mode(config: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(config).map_err(|err| format!("config: not JSON: {err}"))?;
    let object = value.as_object().ok_or("config: must be an object")?;
    if let Some(key) = object.keys().find(|key| *key != "mode") {
        return Err(format!("config.{key}: unknown key (known: mode)"));
    }
    match object.get("mode") {
        None => Ok("allow".into()),
        Some(serde_json::Value::String(mode)) if MODES.contains(&mode.as_str()) => Ok(mode.clone()),
        Some(other) => Err(format!("config.mode: must be one of {}, got {other}", MODES.join(", "))),
    }
}

struct Hostile;

impl exports::kanban::policy::plugin::Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::RespawnGuard,
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        mode(&config).map(drop)
    }
}

impl exports::kanban::policy::respawn_guard::Guest for Hostile {
    fn decide(ctx: Context) -> Decision {
        match mode(&ctx.config).unwrap_or_else(|err| panic!("{err}")).as_str() {
            "loop" => {
                let mut counter = 0u64;
                loop {
                    counter = black_box(counter.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    for byte in chunk.iter_mut().step_by(4096) {
                        *byte = 1;
                    }
                    hoard.push(black_box(chunk));
                }
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "huge" => Decision::Defer(Deferral { reason: "x".repeat(64 << 20), retry_after: None }),
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                Decision::Allow
            }
            _ => Decision::Allow,
        }
    }
}

export!(Hostile);
