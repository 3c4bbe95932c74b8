//! Diagnostics: what is wrong with this card, and what would an operator run next?
//!
//! Implement [`Diagnostics`] and export it with [`export_diagnostics!`](crate::export_diagnostics).

use serde::de::DeserializeOwned;

pub use crate::bindings::diagnostics::exports::kanban::policy::diagnostics::{Finding, Severity};
use crate::config::ConfigError;
use crate::types::Context;

/// A diagnostics policy.
pub trait Diagnostics {
    /// The policy's `[policies.config]` table; see [`crate::config`].
    type Config: DeserializeOwned + 'static;

    /// The findings about the card in `ctx`; none when it is healthy.
    fn diagnose(config: &Self::Config, ctx: &Context) -> Vec<Finding>;

    /// The answer when the config handed in with the call does not read (a host bug: it checked the config
    /// when it loaded the board). The default panics with the message, which the host reports as an error
    /// finding naming the plugin.
    fn config_error(error: ConfigError) -> Vec<Finding> {
        panic!("{error}")
    }
}

/// One `diagnose` call as the component makes it: `ctx.config` read into the policy's config (once per
/// instance while it does not change), then [`Diagnostics::diagnose`].
pub fn diagnose<D: Diagnostics>(ctx: &Context) -> Vec<Finding> {
    crate::export::with_config(&ctx.config, D::config_error, |config| D::diagnose(config, ctx))
}

/// Export a [`Diagnostics`] policy as the component's `diagnostics-policy` world. `describe` reports the
/// crate's Cargo package name and version unless `name = "..."` and/or `version = "..."` are given.
#[macro_export]
macro_rules! export_diagnostics {
    ($policy:ty $(, name = $name:expr)? $(, version = $version:expr)? $(,)?) => {
        const _: () = {
            struct __KanbanPolicyExport;

            $crate::__export_plugin!(
                __KanbanPolicyExport,
                Diagnostics,
                <$policy as $crate::diagnostics::Diagnostics>::Config,
                name = $crate::__first!($($name,)? env!("CARGO_PKG_NAME")),
                version = $crate::__first!($($version,)? env!("CARGO_PKG_VERSION"))
            );

            impl $crate::bindings::diagnostics::exports::kanban::policy::diagnostics::Guest
                for __KanbanPolicyExport
            {
                fn diagnose(ctx: $crate::Context) -> ::std::vec::Vec<$crate::diagnostics::Finding> {
                    $crate::diagnostics::diagnose::<$policy>(&ctx)
                }
            }

            $crate::bindings::plugin::export!(__KanbanPolicyExport with_types_in $crate::bindings::plugin);
            $crate::bindings::diagnostics::export!(
                __KanbanPolicyExport with_types_in $crate::bindings::diagnostics
            );
        };
    };
}
