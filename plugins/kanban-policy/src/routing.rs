//! Routing: which profile takes an unassigned ready card?
//!
//! Implement [`Router`] and export it with [`export_router!`](crate::export_router).

use serde::de::DeserializeOwned;

use crate::config::ConfigError;
use crate::types::Context;

/// A routing policy.
pub trait Router {
    /// The policy's `[policies.config]` table; see [`crate::config`].
    type Config: DeserializeOwned + 'static;

    /// A profile name for the unassigned ready card in `ctx`, or `None` to leave it unassigned.
    fn route(config: &Self::Config, ctx: &Context) -> Option<String>;

    /// The answer when the config handed in with the call does not read (a host bug: it checked the config
    /// when it loaded the board). The default panics with the message, which the host records as a policy
    /// error; the card stays unassigned.
    fn config_error(error: ConfigError) -> Option<String> {
        panic!("{error}")
    }
}

/// One `route` call as the component makes it: `ctx.config` read into the router's config (once per
/// instance while it does not change), then [`Router::route`].
pub fn route<R: Router>(ctx: &Context) -> Option<String> {
    crate::export::with_config(&ctx.config, R::config_error, |config| R::route(config, ctx))
}

/// Export a [`Router`] as the component's `routing-policy` world. `describe` reports the crate's Cargo
/// package name and version unless `name = "..."` and/or `version = "..."` are given.
#[macro_export]
macro_rules! export_router {
    ($router:ty $(, name = $name:expr)? $(, version = $version:expr)? $(,)?) => {
        const _: () = {
            struct __KanbanPolicyExport;

            $crate::__export_plugin!(
                __KanbanPolicyExport,
                Routing,
                <$router as $crate::routing::Router>::Config,
                name = $crate::__first!($($name,)? env!("CARGO_PKG_NAME")),
                version = $crate::__first!($($version,)? env!("CARGO_PKG_VERSION"))
            );

            impl $crate::bindings::routing::exports::kanban::policy::routing::Guest for __KanbanPolicyExport {
                fn route(ctx: $crate::Context) -> ::std::option::Option<::std::string::String> {
                    $crate::routing::route::<$router>(&ctx)
                }
            }

            $crate::bindings::plugin::export!(__KanbanPolicyExport with_types_in $crate::bindings::plugin);
            $crate::bindings::routing::export!(__KanbanPolicyExport with_types_in $crate::bindings::routing);
        };
    };
}
