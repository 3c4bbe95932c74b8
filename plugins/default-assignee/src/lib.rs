//! `builtin:default-assignee`: a routing policy that gives every unassigned ready card to one profile.
//!
//! Config (`[policies.config]`): `assignee`, a profile name; blank or missing means leave cards unassigned.
//! The plugin does not check that the profile exists: the host reports a card routed to an unknown profile as
//! `skipped_nonspawnable`, which makes the mistake visible where the operator looks.

wit_bindgen::generate!({ path: "../../wit", world: "routing-policy" });

use kanban::policy::types::{Context, PluginInfo, PolicyKind};
use plugin_support::Config;

const KNOWN_KEYS: &[&str] = &["assignee"];

/// The profile to route every card to, if any.
fn assignee_from_config(config: &str) -> Result<Option<String>, String> {
    Config::parse(config, KNOWN_KEYS)?.non_blank_string("assignee")
}

struct DefaultAssignee;

impl exports::kanban::policy::plugin::Guest for DefaultAssignee {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "default-assignee".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PolicyKind::Routing,
        }
    }

    fn validate_config(config: String) -> Result<(), String> {
        assignee_from_config(&config).map(drop)
    }
}

impl exports::kanban::policy::routing::Guest for DefaultAssignee {
    fn route(ctx: Context) -> Option<String> {
        // The host validated the config when it loaded the board; failing here is a host bug, and a trap is
        // recorded as a policy error (the card stays unassigned: the routing safe default).
        assignee_from_config(&ctx.config).unwrap_or_else(|err| panic!("{err}"))
    }
}

export!(DefaultAssignee);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_blank_assignee_is_none() {
        assert_eq!(assignee_from_config("{}").unwrap(), None);
        assert_eq!(assignee_from_config(r#"{"assignee": ""}"#).unwrap(), None);
        assert_eq!(assignee_from_config(r#"{"assignee": "  "}"#).unwrap(), None);
    }

    #[test]
    fn assignee_is_trimmed() {
        assert_eq!(assignee_from_config(r#"{"assignee": " coder "}"#).unwrap().as_deref(), Some("coder"));
    }

    #[test]
    fn wrong_type_and_unknown_keys_name_the_key() {
        let err = assignee_from_config(r#"{"assignee": 3}"#).unwrap_err();
        assert!(err.starts_with("config.assignee: must be a string"), "{err}");
        let err = assignee_from_config(r#"{"asignee": "coder"}"#).unwrap_err();
        assert_eq!(err, "config.asignee: unknown key (known: assignee)");
    }
}
