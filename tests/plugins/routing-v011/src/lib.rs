//! A minimal router built against `kanban:policy@0.1.1` (a copy of the WIT in this crate's `wit/` with only the
//! version changed), so the host's tests can check its version rule: same major, and for 0.x the same minor.
//! It routes every card to `coder`.

wit_bindgen::generate!({ path: "wit", world: "routing-policy" });

use kanban::policy::types::{Context, PluginInfo, PolicyKind};

struct Router;

impl exports::kanban::policy::plugin::Guest for Router {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "routing-v011".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::Routing,
        }
    }

    fn validate_config(_config: String) -> Result<(), String> {
        Ok(())
    }
}

impl exports::kanban::policy::routing::Guest for Router {
    fn route(_ctx: Context) -> Option<String> {
        Some("coder".into())
    }
}

export!(Router);
