//! Decomposition: how does a triage card split into child cards?
//!
//! Implement [`Decomposer`] and export it with [`export_decomposer!`](crate::export_decomposer).

use serde::de::DeserializeOwned;

pub use crate::bindings::decompose::exports::kanban::policy::decompose::{Child, Plan, WorkspaceOverride};
use crate::config::ConfigError;
use crate::types::Context;

/// A decomposition policy.
pub trait Decomposer {
    /// The policy's `[policies.config]` table; see [`crate::config`].
    type Config: DeserializeOwned + 'static;

    /// The children of the triage card in `ctx`, or why it stays in triage.
    fn decompose(config: &Self::Config, ctx: &Context) -> Plan;

    /// The answer when the config handed in with the call does not read (a host bug: it checked the config
    /// when it loaded the board). The default panics with the message, which the host records as a policy
    /// error; the card stays in triage.
    fn config_error(error: ConfigError) -> Plan {
        panic!("{error}")
    }
}

/// One `decompose` call as the component makes it: `ctx.config` read into the policy's config (once per
/// instance while it does not change), then [`Decomposer::decompose`].
pub fn decompose<D: Decomposer>(ctx: &Context) -> Plan {
    crate::export::with_config(&ctx.config, D::config_error, |config| D::decompose(config, ctx))
}

/// Export a [`Decomposer`] as the component's `decompose-policy` world. `describe` reports the crate's
/// Cargo package name and version unless `name = "..."` and/or `version = "..."` are given.
#[macro_export]
macro_rules! export_decomposer {
    ($policy:ty $(, name = $name:expr)? $(, version = $version:expr)? $(,)?) => {
        const _: () = {
            struct __KanbanPolicyExport;

            $crate::__export_plugin!(
                __KanbanPolicyExport,
                Decompose,
                <$policy as $crate::decompose::Decomposer>::Config,
                name = $crate::__first!($($name,)? env!("CARGO_PKG_NAME")),
                version = $crate::__first!($($version,)? env!("CARGO_PKG_VERSION"))
            );

            impl $crate::bindings::decompose::exports::kanban::policy::decompose::Guest for __KanbanPolicyExport {
                fn decompose(ctx: $crate::Context) -> $crate::decompose::Plan {
                    $crate::decompose::decompose::<$policy>(&ctx)
                }
            }

            $crate::bindings::plugin::export!(__KanbanPolicyExport with_types_in $crate::bindings::plugin);
            $crate::bindings::decompose::export!(__KanbanPolicyExport with_types_in $crate::bindings::decompose);
        };
    };
}
