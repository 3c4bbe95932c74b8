//! The board's policies as WebAssembly components: loading them, calling them in the sandbox, and
//! checking what they return. The one module (with [`runtime`]) that touches wasmtime.
//!
//! A policy is a component (built in, or installed by a user) exporting one of the worlds of
//! `wit/policy.wit`. It sees only the [`context`] record the caller hands it and returns a decision, which
//! this module validates. A failure of any kind (trap, fuel, memory, panic, bad output, rejected config)
//! becomes a typed [`PolicyError`]. Which safe default applies, quarantine and the audit events are the
//! policy host's job (`crate::policies`), not this module's: it knows nothing of the store.

pub mod builtins;
pub mod context;
mod instance;
pub mod plugins;
pub mod runtime;

pub use instance::{CallCost, Decomposer, Diagnoser, Guard, Loaded, Policy, Router, World};
/// The record every policy call gets (see [`context`]).
pub use runtime::bindings::types::Context as PolicyContext;

use crate::board::{Board, Home, PolicySpec};
use crate::model::{ChildSpec, OnError, PolicyKey, PolicyKind, WorkspaceKind};
use runtime::PolicyEngine;

/// Why a policy call failed. Every variant maps to the policy kind's safe default.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("ran out of fuel ({fuel} units) before deciding")]
    OutOfFuel { fuel: u64 },
    #[error("hit its memory limit ({limit} bytes)")]
    Memory { limit: usize },
    #[error("panicked: {message}")]
    Panic { message: String },
    #[error("trapped: {detail}")]
    Trap { detail: String },
    #[error("cannot be linked: {detail}")]
    Link { detail: String },
    #[error("rejected its config: {message}")]
    BadConfig { message: String },
    #[error("returned an unusable decision: {detail}")]
    BadOutput { detail: String },
    #[error(
        "stored plugin does not match its hash (expected sha256:{expected}, found sha256:{actual}); reinstall it"
    )]
    HashMismatch { expected: String, actual: String },
    #[error(
        "was built against kanban:policy@{plugin_version}, which this host (kanban:policy@{host_version}) cannot \
         load: the major version (for 0.x, the minor version) must match"
    )]
    Incompatible { plugin_version: String, host_version: String },
    #[error("is not a policy plugin: {detail}")]
    WrongWorld { detail: String },
    #[error("{detail}")]
    Invalid { detail: String },
    #[error("is not installed (see `kanban plugin list`)")]
    NotInstalled,
    #[error(
        "is quarantined on this board after failing {failures} ticks in a row; reinstall it or edit board.toml"
    )]
    Quarantined { failures: i64 },
    #[error("the policy runtime failed: {0}")]
    Engine(String),
}

impl PolicyError {
    /// A short stable name for the error kind (event payloads, JSON).
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::OutOfFuel { .. } => "out_of_fuel",
            PolicyError::Memory { .. } => "memory",
            PolicyError::Panic { .. } => "panic",
            PolicyError::Trap { .. } => "trap",
            PolicyError::Link { .. } => "link",
            PolicyError::BadConfig { .. } => "bad_config",
            PolicyError::BadOutput { .. } => "bad_output",
            PolicyError::HashMismatch { .. } => "hash_mismatch",
            PolicyError::Incompatible { .. } => "incompatible",
            PolicyError::WrongWorld { .. } => "wrong_world",
            PolicyError::Invalid { .. } => "invalid",
            PolicyError::NotInstalled => "not_installed",
            PolicyError::Quarantined { .. } => "quarantined",
            PolicyError::Engine(_) => "engine",
        }
    }
}

/// What `describe` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: PolicyKind,
}

/// Longest text a policy may return in one field (reasons, titles, bodies are capped, not truncated
/// silently: a longer one is a bad output).
pub const MAX_TEXT: usize = 16 * 1024;
/// Most findings or children one call may return.
pub const MAX_ITEMS: usize = 200;

fn text(field: &str, value: String) -> Result<String, PolicyError> {
    if value.len() > MAX_TEXT {
        return Err(PolicyError::BadOutput {
            detail: format!("{field} is {} bytes (at most {MAX_TEXT})", value.len()),
        });
    }
    Ok(value)
}

/// A child card exactly as a decomposition plugin returned it, before [`check_children`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawChild {
    pub title: String,
    pub body: String,
    pub assignee: Option<String>,
    pub priority: i64,
    /// `(kind, path)` as the plugin wrote them.
    pub workspace: Option<(String, Option<String>)>,
    pub depends_on: Vec<usize>,
}

/// Check a decomposition plan exactly as a plugin returned it, and normalise it: between 1 and
/// [`MAX_ITEMS`] children; titles not blank (trimmed); text fields within [`MAX_TEXT`]; a blank assignee
/// means none; a workspace is `scratch`, `dir` or `worktree` with an absolute path if any; a child depends
/// only on earlier siblings, so the plan is acyclic and can be created in order. Anything else is
/// [`PolicyError::BadOutput`] naming the child.
pub fn check_children(children: Vec<RawChild>) -> Result<Vec<ChildSpec>, PolicyError> {
    if children.is_empty() || children.len() > MAX_ITEMS {
        return Err(PolicyError::BadOutput {
            detail: format!("{} children (between 1 and {MAX_ITEMS})", children.len()),
        });
    }
    let bad = |detail: String| PolicyError::BadOutput { detail };
    let n = children.len();
    children
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let title = text("title", c.title)?;
            if title.trim().is_empty() {
                return Err(bad(format!("child {i} has a blank title")));
            }
            for &d in &c.depends_on {
                if d >= n || d == i {
                    return Err(bad(format!("child {i} depends on {d}, not a sibling")));
                }
                if d > i {
                    return Err(bad(format!(
                        "child {i} depends on a later sibling; list dependencies first"
                    )));
                }
            }
            let workspace = match c.workspace {
                None => None,
                Some((kind, path)) => {
                    let Some(kind) = WorkspaceKind::parse(&kind) else {
                        return Err(bad(format!(
                            "child {i}: unknown workspace kind '{}'",
                            cap_message(kind)
                        )));
                    };
                    if path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                        return Err(bad(format!("child {i}: workspace path must be absolute")));
                    }
                    Some((kind, path.map(|p| text("workspace path", p)).transpose()?))
                }
            };
            let assignee = c.assignee.map(|a| text("assignee", a)).transpose()?;
            Ok(ChildSpec {
                title: title.trim().to_string(),
                body: text("body", c.body)?,
                assignee: assignee.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()),
                priority: c.priority,
                workspace,
                depends_on: c.depends_on,
            })
        })
        .collect()
}

/// A router's answer: trimmed, and a blank answer means "no opinion". An answer longer than [`MAX_TEXT`] is
/// [`PolicyError::BadOutput`]; whether it names a profile is the policy host's check.
pub fn check_route(choice: Option<String>) -> Result<Option<String>, PolicyError> {
    let choice = choice.map(|p| text("assignee", p)).transpose()?;
    Ok(choice.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()))
}

fn cap_message(message: String) -> String {
    if message.len() <= 2000 {
        return message;
    }
    let mut end = 2000;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// A policy that could not be loaded, kept so the caller can report it and apply the safe default.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub entry: Option<usize>,
    pub reference: String,
    pub kind: PolicyKind,
    pub on_error: OnError,
    pub error: PolicyError,
}

/// The process's policy runtime. The wasmtime engine is created on first use, so commands that never run
/// a policy never pay for one.
pub struct PolicyRuntime {
    engine: Option<PolicyEngine>,
    cache_dir: std::path::PathBuf,
    /// Policy calls made through this runtime by finished sessions (see [`PolicyRuntime::calls`]).
    pub(crate) calls: u64,
}

impl PolicyRuntime {
    pub fn new(home: &Home) -> PolicyRuntime {
        PolicyRuntime { engine: None, cache_dir: home.root().join("cache").join("wasm"), calls: 0 }
    }

    pub fn engine(&mut self) -> Result<&mut PolicyEngine, PolicyError> {
        if self.engine.is_none() {
            self.engine = Some(PolicyEngine::new(Some(self.cache_dir.clone()))?);
        }
        Ok(self.engine.as_mut().expect("created above"))
    }

    /// How many times a policy was called through this runtime, by the sessions that finished (a tick's):
    /// `kanban_policy_calls_total` of `daemon --serve`.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

/// The policies one board runs, by kind: typed handles, so a guard can only be asked to decide.
#[derive(Default)]
pub struct BoardPolicies {
    pub guards: Vec<Policy<Guard>>,
    pub router: Option<Policy<Router>>,
    pub diagnosers: Vec<Policy<Diagnoser>>,
    pub decomposer: Option<Policy<Decomposer>>,
    pub failures: Vec<LoadFailure>,
}

impl BoardPolicies {
    /// Load the board's `[[policies]]` of the `kinds` asked for (the tick needs guards and routing, `kanban
    /// diagnostics` only diagnostics: compiling a component the caller will not call is wasted work). Kinds
    /// with a built-in default get it when the board lists none (respawn guard and diagnostics, so
    /// configuring a router never switches off the rate-limit cooldown; decomposition, for `kanban
    /// decompose`). A policy that fails to load is kept as a failure: the caller reports it and applies the
    /// kind's safe default. A board whose listed guards all fail to load runs the built-in guard too, so a
    /// broken plugin never takes the cooldown with it.
    pub fn load(
        engine: &mut PolicyEngine,
        home: &Home,
        board: &Board,
        kinds: &[PolicyKind],
    ) -> BoardPolicies {
        let mut specs: Vec<(Option<usize>, PolicySpec)> = board
            .config
            .policies
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, s)| kinds.contains(&s.kind))
            .map(|(i, s)| (Some(i), s))
            .collect();
        for kind in [PolicyKind::RespawnGuard, PolicyKind::Diagnostics, PolicyKind::Decompose] {
            if kinds.contains(&kind) && !specs.iter().any(|(_, s)| s.kind == kind) {
                specs.push((None, builtins::default_spec(kind)));
            }
        }
        let mut loaded = BoardPolicies::default();
        for (entry, spec) in specs {
            match Loaded::load(engine, home, entry, &spec) {
                Ok(policy) => loaded.push(policy),
                Err(error) => loaded.failures.push(LoadFailure {
                    entry,
                    reference: spec.plugin.clone(),
                    kind: spec.kind,
                    on_error: spec.on_error(),
                    error,
                }),
            }
        }
        let guards_listed = board.config.policies.iter().any(|s| s.kind == PolicyKind::RespawnGuard);
        if kinds.contains(&PolicyKind::RespawnGuard)
            && guards_listed
            && loaded.guards.is_empty()
            && let Ok(fallback) =
                Loaded::load(engine, home, None, &builtins::default_spec(PolicyKind::RespawnGuard))
        {
            loaded.push(fallback);
        }
        loaded
    }

    fn push(&mut self, policy: Loaded) {
        match policy {
            Loaded::Guard(p) => self.guards.push(p),
            Loaded::Router(p) => {
                // One router per board: the first listed decides.
                if self.router.is_none() {
                    self.router = Some(p);
                }
            }
            Loaded::Diagnoser(p) => self.diagnosers.push(p),
            Loaded::Decomposer(p) => {
                if self.decomposer.is_none() {
                    self.decomposer = Some(p);
                }
            }
        }
    }
}

/// The key a policy's health is kept under on a board.
pub fn key_of(entry: Option<usize>, reference: &str, sha256: &str) -> PolicyKey {
    PolicyKey { entry, reference: reference.to_string(), sha256: sha256.to_string() }
}
