//! The built-in policies: components from `plugins/`, compiled to wasm32-wasip2 by `build.rs` and
//! embedded in the binary. They run in the same sandbox as any installed plugin.

use crate::board::PolicySpec;
use crate::model::{BUILTIN_POLICIES, PolicyKind};

/// `(name, kind, component bytes)` of every built-in, referenced in board.toml as `builtin:NAME`.
pub const BUILTINS: &[(&str, PolicyKind, &[u8])] = &[
    (
        "respawn-guard",
        PolicyKind::RespawnGuard,
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/kanban_plugin_respawn_guard.wasm")),
    ),
    (
        "diagnostics",
        PolicyKind::Diagnostics,
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/kanban_plugin_diagnostics.wasm")),
    ),
    (
        "default-assignee",
        PolicyKind::Routing,
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/kanban_plugin_default_assignee.wasm")),
    ),
    (
        "checklist-decompose",
        PolicyKind::Decompose,
        include_bytes!(concat!(env!("OUT_DIR"), "/plugins/kanban_plugin_checklist_decompose.wasm")),
    ),
];

pub fn get(name: &str) -> Option<(PolicyKind, &'static [u8])> {
    BUILTINS.iter().find(|(n, _, _)| *n == name).map(|(_, kind, bytes)| (*kind, *bytes))
}

/// The built-in a kind falls back to when the board lists none of that kind (and `kanban decompose` on a
/// board without a decomposition policy).
pub fn default_spec(kind: PolicyKind) -> PolicySpec {
    let name =
        BUILTIN_POLICIES.iter().find(|(_, k)| *k == kind).map(|(n, _)| *n).expect("a built-in per kind");
    PolicySpec {
        kind,
        plugin: format!("builtin:{name}"),
        config: toml::Table::new(),
        fuel: None,
        memory_mib: None,
        on_error: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_components_are_exactly_the_named_built_ins() {
        let embedded: Vec<_> = super::BUILTINS.iter().map(|(n, k, _)| (*n, *k)).collect();
        assert_eq!(embedded, crate::model::BUILTIN_POLICIES);
    }
}
