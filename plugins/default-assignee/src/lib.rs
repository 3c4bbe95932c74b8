//! `builtin:default-assignee`: a routing policy that gives every unassigned ready card to one profile.
//!
//! Config (`[policies.config]`): `assignee`, a profile name; blank or missing means leave cards unassigned.
//! The plugin does not check that the profile exists: the host reports a card routed to an unknown profile as
//! `skipped_nonspawnable`, which makes the mistake visible where the operator looks.

use kanban_policy::Context;
use kanban_policy::config::non_blank;
use kanban_policy::routing::Router;
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The profile to route every card to, if any.
    #[serde(deserialize_with = "non_blank")]
    pub assignee: Option<String>,
}

struct DefaultAssignee;

impl Router for DefaultAssignee {
    type Config = Settings;

    fn route(settings: &Settings, _: &Context) -> Option<String> {
        // A config that fails to parse panics (the SDK's default): the host validated it when it loaded the
        // board, so this is a host bug, and a trap is recorded as a policy error (the card stays
        // unassigned: the routing safe default).
        settings.assignee.clone()
    }
}

kanban_policy::export_router!(DefaultAssignee, name = "default-assignee");

#[cfg(test)]
mod tests {
    use super::*;

    /// The profile to route every card to, if any.
    fn assignee_from_config(config: &str) -> Result<Option<String>, String> {
        kanban_policy::config::parse::<Settings>(config)
            .map(|settings| settings.assignee)
            .map_err(String::from)
    }

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

    #[test]
    fn every_card_goes_to_the_configured_profile() {
        use kanban_policy::testing::ContextBuilder;
        let ctx = ContextBuilder::new(0).config(r#"{"assignee": "coder"}"#).build();
        assert_eq!(kanban_policy::routing::route::<DefaultAssignee>(&ctx).as_deref(), Some("coder"));
        let ctx = ContextBuilder::new(0).build();
        assert_eq!(kanban_policy::routing::route::<DefaultAssignee>(&ctx), None);
    }
}
