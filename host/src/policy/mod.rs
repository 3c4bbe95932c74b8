//! The board's policies, behind the narrow interface the dispatcher asks through.
//!
//! The tick never decides *whether* to spawn a card or *who* takes an unassigned one by itself: it asks the
//! board's respawn guards ([`RespawnGuard`]) and router ([`Router`]). Today the implementations are the
//! built-ins below, compiled into the host; the WebAssembly plugin runtime plugs in behind the same traits.
//! A policy sees only what it is handed (the card, its recent runs, the profiles, `now`) and returns a
//! decision; an error becomes a `policy_errors` entry and the kind's safe default (guard: allow; router:
//! leave unassigned).

mod builtin;

use crate::board::{BoardConfig, PolicyKind, PolicySpec};
use crate::store::{Run, Task};

pub use builtin::{DefaultAssignee, RespawnGuardRules};

/// What a respawn guard decided for one card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardDecision {
    Allow,
    /// Not now. `retry_after` is a unix time when asking again makes sense.
    Defer {
        reason: String,
        retry_after: Option<i64>,
    },
    /// Block the card (sticky) with a reason for the operator.
    Block {
        reason: String,
    },
}

/// The facts a guard gets.
pub struct GuardInput<'a> {
    pub task: &'a Task,
    /// Newest first.
    pub runs: &'a [Run],
    pub now: i64,
}

/// The facts a router gets.
pub struct RouteInput<'a> {
    pub task: &'a Task,
    /// Profiles of the board with their running counts.
    pub profiles: &'a [(String, usize)],
    pub now: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{policy}: returned an unusable decision: {detail}")]
    BadOutput { policy: String, detail: String },
}

pub trait RespawnGuard {
    fn name(&self) -> &str;
    fn decide(&mut self, input: &GuardInput) -> Result<GuardDecision, PolicyError>;
}

pub trait Router {
    fn name(&self) -> &str;
    /// A profile name, or `None` to leave the card unassigned.
    fn route(&mut self, input: &RouteInput) -> Result<Option<String>, PolicyError>;
}

/// The policies one board runs, loaded from its `[[policies]]`.
pub struct BoardPolicies {
    pub guards: Vec<Box<dyn RespawnGuard>>,
    pub router: Option<Box<dyn Router>>,
}

/// Names of the plugins built into this host, for messages.
pub const BUILTINS: &[(&str, PolicyKind)] =
    &[("builtin:respawn-guard", PolicyKind::RespawnGuard), ("builtin:default-assignee", PolicyKind::Routing)];

/// Check one `[[policies]]` entry: a known plugin of the right kind with a config it accepts. The message
/// names the key at fault, relative to the entry (the caller prefixes `policies[i]`).
pub fn validate(spec: &PolicySpec) -> Result<(), String> {
    let known = BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some((_, kind)) = BUILTINS.iter().find(|(name, _)| *name == spec.plugin) else {
        return Err(format!("plugin: '{}' is not available in this build (available: {known})", spec.plugin));
    };
    if *kind != spec.kind {
        return Err(format!(
            "kind: '{}' is a {} plugin, not {}",
            spec.plugin,
            kind_name(*kind),
            kind_name(spec.kind)
        ));
    }
    match spec.kind {
        PolicyKind::RespawnGuard => RespawnGuardRules::from_config(&spec.config).map(|_| ()),
        PolicyKind::Routing => DefaultAssignee::from_config(&spec.config).map(|_| ()),
        _ => unreachable!("no built-in of this kind"),
    }
}

pub fn kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::RespawnGuard => "respawn-guard",
        PolicyKind::Diagnostics => "diagnostics",
        PolicyKind::Routing => "routing",
        PolicyKind::Decompose => "decompose",
    }
}

impl BoardPolicies {
    /// Build the board's policies. The config was validated when board.toml was loaded. A board that lists
    /// no respawn guard still runs the built-in one with its defaults (the rate-limit cooldown must not
    /// vanish because a router was configured).
    pub fn load(config: &BoardConfig) -> BoardPolicies {
        let mut guards: Vec<Box<dyn RespawnGuard>> = Vec::new();
        let mut router: Option<Box<dyn Router>> = None;
        for spec in &config.policies {
            match spec.kind {
                PolicyKind::RespawnGuard => {
                    if let Ok(rules) = RespawnGuardRules::from_config(&spec.config) {
                        guards.push(Box::new(rules));
                    }
                }
                PolicyKind::Routing => {
                    if let Ok(route) = DefaultAssignee::from_config(&spec.config) {
                        router = Some(Box::new(route));
                    }
                }
                PolicyKind::Diagnostics | PolicyKind::Decompose => {}
            }
        }
        if !config.policies.iter().any(|p| p.kind == PolicyKind::RespawnGuard) {
            guards.push(Box::new(RespawnGuardRules::default()));
        }
        BoardPolicies { guards, router }
    }
}
