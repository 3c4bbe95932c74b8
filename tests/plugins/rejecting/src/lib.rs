//! A routing plugin that refuses every config, so the host's tests can check how a refused config is
//! reported (`kanban board check`, load). Its router never assigns anyone.

wit_bindgen::generate!({ path: "../../../wit", world: "routing-policy" });

use kanban::policy::types::{Context, PluginInfo, PolicyKind};

struct Rejecting;

impl exports::kanban::policy::plugin::Guest for Rejecting {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "rejecting".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::Routing,
        }
    }

    fn validate_config(_config: String) -> Result<(), String> {
        Err("config.assignee: this plugin rejects every config".into())
    }
}

impl exports::kanban::policy::routing::Guest for Rejecting {
    fn route(_ctx: Context) -> Option<String> {
        None
    }
}

export!(Rejecting);
