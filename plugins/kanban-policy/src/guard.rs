//! Respawn guards: may the dispatcher spawn a worker for this ready card now?
//!
//! Implement [`Guard`] and export it with [`export_guard!`](crate::export_guard):
//!
//! ```
//! use kanban_policy::Context;
//! use kanban_policy::config::NoConfig;
//! use kanban_policy::guard::{Decision, Guard};
//!
//! struct NoFridays;
//!
//! impl Guard for NoFridays {
//!     type Config = NoConfig;
//!
//!     fn decide(_: &NoConfig, ctx: &Context) -> Decision {
//!         // 1970-01-01 was a Thursday.
//!         if (ctx.now.div_euclid(86400) + 4) % 7 == 5 {
//!             Decision::defer("no deploys on Fridays", None)
//!         } else {
//!             Decision::Allow
//!         }
//!     }
//! }
//!
//! kanban_policy::export_guard!(NoFridays);
//! # fn main() {}
//! ```

use serde::de::DeserializeOwned;

pub use crate::bindings::respawn_guard::exports::kanban::policy::respawn_guard::{Decision, Deferral};
use crate::config::ConfigError;
use crate::types::Context;

/// A respawn guard.
pub trait Guard {
    /// The guard's `[policies.config]` table; see [`crate::config`]. [`NoConfig`](crate::config::NoConfig)
    /// for none.
    type Config: DeserializeOwned + 'static;

    /// The decision for the card in `ctx`: allow, defer (not now) or block (until a human unblocks it).
    fn decide(config: &Self::Config, ctx: &Context) -> Decision;

    /// The answer when the config handed in with the call does not read. The host checked it when it
    /// loaded the board, so this is a host bug; the default panics with the message, which the host records
    /// as a policy error before applying the guard's safe default (allow, or defer with
    /// `on_error = "defer"`).
    fn config_error(error: ConfigError) -> Decision {
        panic!("{error}")
    }
}

/// One `decide` call as the component makes it: `ctx.config` read into the guard's config (once per
/// instance while it does not change), then [`Guard::decide`]. Native tests can call it to run a guard
/// exactly as the host would.
pub fn decide<G: Guard>(ctx: &Context) -> Decision {
    crate::export::with_config(&ctx.config, G::config_error, |config| G::decide(config, ctx))
}

impl Decision {
    /// Not now, with the reason the dispatcher reports, and optionally the unix time after which asking
    /// again makes sense.
    pub fn defer(reason: impl Into<String>, retry_after: Option<i64>) -> Decision {
        Decision::Defer(Deferral { reason: reason.into(), retry_after })
    }

    /// Block the card (sticky until a human unblocks it), with the reason.
    pub fn block(reason: impl Into<String>) -> Decision {
        Decision::Block(reason.into())
    }
}

/// Export a [`Guard`] as the component's `respawn-guard-policy` world.
///
/// `describe` reports the crate's Cargo package name and version unless `name = "..."` and/or
/// `version = "..."` are given: `export_guard!(MyGuard, name = "my-guard")`.
#[macro_export]
macro_rules! export_guard {
    ($guard:ty $(, name = $name:expr)? $(, version = $version:expr)? $(,)?) => {
        const _: () = {
            struct __KanbanPolicyExport;

            $crate::__export_plugin!(
                __KanbanPolicyExport,
                RespawnGuard,
                <$guard as $crate::guard::Guard>::Config,
                name = $crate::__first!($($name,)? env!("CARGO_PKG_NAME")),
                version = $crate::__first!($($version,)? env!("CARGO_PKG_VERSION"))
            );

            impl $crate::bindings::respawn_guard::exports::kanban::policy::respawn_guard::Guest
                for __KanbanPolicyExport
            {
                fn decide(ctx: $crate::Context) -> $crate::guard::Decision {
                    $crate::guard::decide::<$guard>(&ctx)
                }
            }

            $crate::bindings::plugin::export!(__KanbanPolicyExport with_types_in $crate::bindings::plugin);
            $crate::bindings::respawn_guard::export!(
                __KanbanPolicyExport with_types_in $crate::bindings::respawn_guard
            );
        };
    };
}
