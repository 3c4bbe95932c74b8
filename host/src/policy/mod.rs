//! The board's policies: WebAssembly components behind the narrow interface the dispatcher asks through.
//!
//! The tick never decides *whether* to spawn a card or *who* takes an unassigned one by itself: it asks the
//! board's respawn guards and router, and `kanban diagnostics` / `decompose` ask the diagnostics and
//! decomposition policies. Each policy is a component (built in, or installed by a user) running in the
//! sandbox of [`runtime`]. It sees only the [`context`] the host builds and returns a decision, which the
//! host validates. A failure of any kind (trap, fuel, memory, panic, bad output, rejected config) becomes
//! a typed [`PolicyError`] and the kind's safe default: guard → allow (or defer, if the board says
//! `on_error = "defer"`), routing → unassigned, diagnostics → one error finding, decomposition → the card
//! stays in triage.

pub mod builtins;
pub mod context;
pub mod plugins;
pub mod runtime;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use wasmtime::Store;

use crate::board::{Board, Home, PolicyKind, PolicySpec};
use runtime::bindings::{self, types};
use runtime::{Limits, PolicyEngine, Sandbox};

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

/// A diagnostics finding, as the host validated it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub task_id: Option<String>,
    pub policy: String,
    pub rule: String,
    pub severity: String,
    pub title: String,
    pub detail: String,
    pub actions: Vec<String>,
}

/// A child card a decomposition policy asked for: as the plugin returned it, and after [`check_children`],
/// as the host validated it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSpec {
    pub title: String,
    pub body: String,
    pub assignee: Option<String>,
    pub priority: i64,
    pub workspace: Option<(String, Option<String>)>,
    pub depends_on: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecomposePlan {
    Children(Vec<ChildSpec>),
    Leave(String),
}

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

/// The instance of one policy: created on first use in a tick, reused for the tick's later calls, and
/// dropped after any trap so the next call starts clean.
enum Instance {
    Guard(Store<Sandbox>, bindings::guard::RespawnGuardPolicy),
    Diagnostics(Store<Sandbox>, bindings::diagnostics::DiagnosticsPolicy),
    Routing(Store<Sandbox>, bindings::routing::RoutingPolicy),
    Decompose(Store<Sandbox>, bindings::decompose::DecomposePolicy),
}

impl Instance {
    fn store(&mut self) -> &mut Store<Sandbox> {
        match self {
            Instance::Guard(s, _)
            | Instance::Diagnostics(s, _)
            | Instance::Routing(s, _)
            | Instance::Decompose(s, _) => s,
        }
    }
}

/// One `[[policies]]` entry, loaded.
pub struct LoadedPolicy {
    /// Index in the board's `[[policies]]` (or `None` for an implicit default).
    pub index: Option<usize>,
    /// The reference as written (`builtin:respawn-guard`, `my-guard`, `sha256:...`).
    pub reference: String,
    pub kind: PolicyKind,
    pub sha256: String,
    pub on_error_defer: bool,
    config_json: String,
    limits: Limits,
    component: wasmtime::component::Component,
    clock: Arc<AtomicI64>,
    instance: Option<Instance>,
    /// Bytes of stdout/stderr already logged from the current instance.
    logged: (usize, usize),
}

impl LoadedPolicy {
    /// Load one policy: resolve the plugin, check its hash and world, compile it (cached).
    pub fn load(
        engine: &mut PolicyEngine,
        home: &Home,
        index: Option<usize>,
        spec: &PolicySpec,
    ) -> Result<LoadedPolicy, PolicyError> {
        let (sha256, bytes) = plugins::resolve(home, &spec.plugin)?;
        let component = engine.component(&sha256, &bytes)?;
        let shape = engine.shape(&component)?;
        if shape.kind != spec.kind {
            return Err(PolicyError::WrongWorld {
                detail: format!(
                    "it is a {} plugin, but the board uses it as {}",
                    kind_name(shape.kind),
                    kind_name(spec.kind)
                ),
            });
        }
        let config_json = serde_json::to_string(&spec.config)
            .map_err(|e| PolicyError::Invalid { detail: e.to_string() })?;
        let limits = Limits {
            fuel: spec.fuel.unwrap_or(runtime::DEFAULT_FUEL),
            memory_bytes: spec
                .memory_mib
                .map(|m| (m as usize) << 20)
                .unwrap_or(runtime::DEFAULT_MEMORY_BYTES),
        };
        Ok(LoadedPolicy {
            index,
            reference: spec.plugin.clone(),
            kind: spec.kind,
            sha256,
            on_error_defer: spec.on_error.as_deref() == Some("defer"),
            config_json,
            limits,
            component,
            clock: Arc::new(AtomicI64::new(0)),
            instance: None,
            logged: (0, 0),
        })
    }

    /// A policy for an already compiled component (used by `plugin install` before anything is stored).
    pub fn from_component(
        component: wasmtime::component::Component,
        sha256: &str,
        kind: PolicyKind,
        reference: &str,
    ) -> LoadedPolicy {
        LoadedPolicy {
            index: None,
            reference: reference.to_string(),
            kind,
            sha256: sha256.to_string(),
            on_error_defer: false,
            config_json: "{}".into(),
            limits: Limits::default(),
            component,
            clock: Arc::new(AtomicI64::new(0)),
            instance: None,
            logged: (0, 0),
        }
    }

    pub fn name(&self) -> &str {
        &self.reference
    }

    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The key quarantine is tracked under: the entry, the reference and the exact bytes, so reinstalling
    /// (new bytes) starts clean.
    pub fn health_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.index.map(|i| i.to_string()).unwrap_or_else(|| "default".into()),
            self.reference,
            self.sha256
        )
    }

    /// The plugin's own description of itself.
    pub fn describe(&mut self, engine: &PolicyEngine, now: i64) -> Result<PluginInfo, PolicyError> {
        let info = self.call(engine, now, |instance| match instance {
            Instance::Guard(s, b) => b.kanban_policy_plugin().call_describe(s),
            Instance::Diagnostics(s, b) => b.kanban_policy_plugin().call_describe(s),
            Instance::Routing(s, b) => b.kanban_policy_plugin().call_describe(s),
            Instance::Decompose(s, b) => b.kanban_policy_plugin().call_describe(s),
        })?;
        Ok(PluginInfo {
            name: text("name", info.name)?,
            version: text("version", info.version)?,
            kind: match info.kind {
                types::PolicyKind::RespawnGuard => PolicyKind::RespawnGuard,
                types::PolicyKind::Diagnostics => PolicyKind::Diagnostics,
                types::PolicyKind::Routing => PolicyKind::Routing,
                types::PolicyKind::Decompose => PolicyKind::Decompose,
            },
        })
    }

    fn instantiate(&mut self, engine: &PolicyEngine) -> Result<&mut Instance, PolicyError> {
        if self.instance.is_none() {
            // The seed is derived from the plugin, so randomness is reproducible run to run.
            let seed = u64::from_str_radix(&self.sha256[..16], 16).unwrap_or(0);
            let mut store = engine.new_store(self.limits, self.clock.clone(), seed);
            store.set_fuel(self.limits.fuel).map_err(|e| PolicyError::Engine(e.to_string()))?;
            let linker = engine.linker();
            let link = |e: wasmtime::Error| PolicyError::Link { detail: format!("{e:#}") };
            let instance = match self.kind {
                PolicyKind::RespawnGuard => {
                    let b =
                        bindings::guard::RespawnGuardPolicy::instantiate(&mut store, &self.component, linker)
                            .map_err(link)?;
                    Instance::Guard(store, b)
                }
                PolicyKind::Diagnostics => {
                    let b = bindings::diagnostics::DiagnosticsPolicy::instantiate(
                        &mut store,
                        &self.component,
                        linker,
                    )
                    .map_err(link)?;
                    Instance::Diagnostics(store, b)
                }
                PolicyKind::Routing => {
                    let b =
                        bindings::routing::RoutingPolicy::instantiate(&mut store, &self.component, linker)
                            .map_err(link)?;
                    Instance::Routing(store, b)
                }
                PolicyKind::Decompose => {
                    let b = bindings::decompose::DecomposePolicy::instantiate(
                        &mut store,
                        &self.component,
                        linker,
                    )
                    .map_err(link)?;
                    Instance::Decompose(store, b)
                }
            };
            self.instance = Some(instance);
            self.logged = (0, 0);
        }
        Ok(self.instance.as_mut().expect("set above"))
    }

    /// Run one call with fresh fuel and the clock pinned to `now`, log what the plugin printed, and turn a
    /// failure into a typed error (dropping the instance).
    fn call<R>(
        &mut self,
        engine: &PolicyEngine,
        now: i64,
        f: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        self.clock.store(now, std::sync::atomic::Ordering::Relaxed);
        let fuel = self.limits.fuel;
        let instance = self.instantiate(engine)?;
        instance.store().set_fuel(fuel).map_err(|e| PolicyError::Engine(e.to_string()))?;
        let result = f(instance);
        let (stdout, stderr) = runtime::output(instance.store());
        let (new_out, new_err) =
            (&stdout[self.logged.0.min(stdout.len())..], &stderr[self.logged.1.min(stderr.len())..]);
        if !new_out.trim().is_empty() || !new_err.trim().is_empty() {
            tracing::info!(policy = %self.reference, stdout = %new_out.trim_end(), stderr = %new_err.trim_end(), "policy output");
        }
        let near_full = stdout.len().max(stderr.len()) > runtime::OUTPUT_CAP * 3 / 4;
        self.logged = (stdout.len(), stderr.len());
        match result {
            Ok(value) => {
                if near_full {
                    self.instance = None; // a fresh instance gets fresh output buffers
                }
                Ok(value)
            }
            Err(err) => {
                self.instance = None;
                Err(runtime::classify(err, new_err, self.limits))
            }
        }
    }

    /// Ask the plugin to check its board config.
    pub fn validate_config(&mut self, engine: &PolicyEngine, now: i64) -> Result<(), PolicyError> {
        let config = self.config_json.clone();
        let verdict = self.call(engine, now, |instance| match instance {
            Instance::Guard(s, b) => b.kanban_policy_plugin().call_validate_config(s, &config),
            Instance::Diagnostics(s, b) => b.kanban_policy_plugin().call_validate_config(s, &config),
            Instance::Routing(s, b) => b.kanban_policy_plugin().call_validate_config(s, &config),
            Instance::Decompose(s, b) => b.kanban_policy_plugin().call_validate_config(s, &config),
        })?;
        verdict.map_err(|message| PolicyError::BadConfig { message: cap_message(message) })
    }

    pub fn decide(
        &mut self,
        engine: &PolicyEngine,
        ctx: &types::Context,
    ) -> Result<GuardDecision, PolicyError> {
        use bindings::guard::exports::kanban::policy::respawn_guard::Decision;
        let decision = self.call(engine, ctx.now, |instance| match instance {
            Instance::Guard(s, b) => b.kanban_policy_respawn_guard().call_decide(s, ctx),
            _ => unreachable!("a guard policy holds a guard instance"),
        })?;
        Ok(match decision {
            Decision::Allow => GuardDecision::Allow,
            Decision::Defer(d) => {
                GuardDecision::Defer { reason: text("defer reason", d.reason)?, retry_after: d.retry_after }
            }
            Decision::Block(reason) => GuardDecision::Block { reason: text("block reason", reason)? },
        })
    }

    pub fn route(
        &mut self,
        engine: &PolicyEngine,
        ctx: &types::Context,
    ) -> Result<Option<String>, PolicyError> {
        let choice = self.call(engine, ctx.now, |instance| match instance {
            Instance::Routing(s, b) => b.kanban_policy_routing().call_route(s, ctx),
            _ => unreachable!("a routing policy holds a routing instance"),
        })?;
        check_route(choice)
    }

    pub fn diagnose(
        &mut self,
        engine: &PolicyEngine,
        ctx: &types::Context,
    ) -> Result<Vec<Finding>, PolicyError> {
        use bindings::diagnostics::exports::kanban::policy::diagnostics::Severity;
        let found = self.call(engine, ctx.now, |instance| match instance {
            Instance::Diagnostics(s, b) => b.kanban_policy_diagnostics().call_diagnose(s, ctx),
            _ => unreachable!("a diagnostics policy holds a diagnostics instance"),
        })?;
        if found.len() > MAX_ITEMS {
            return Err(PolicyError::BadOutput {
                detail: format!("{} findings (at most {MAX_ITEMS})", found.len()),
            });
        }
        found
            .into_iter()
            .map(|f| {
                Ok(Finding {
                    task_id: Some(ctx.card.id.clone()),
                    policy: self.reference.clone(),
                    rule: text("rule", f.rule)?,
                    severity: match f.severity {
                        Severity::Info => "info",
                        Severity::Warning => "warning",
                        Severity::Error => "error",
                        Severity::Critical => "critical",
                    }
                    .to_string(),
                    title: text("title", f.title)?,
                    detail: text("detail", f.detail)?,
                    actions: f.actions.into_iter().map(|a| text("action", a)).collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }

    pub fn decompose(
        &mut self,
        engine: &PolicyEngine,
        ctx: &types::Context,
    ) -> Result<DecomposePlan, PolicyError> {
        use bindings::decompose::exports::kanban::policy::decompose::Plan;
        let plan = self.call(engine, ctx.now, |instance| match instance {
            Instance::Decompose(s, b) => b.kanban_policy_decompose().call_decompose(s, ctx),
            _ => unreachable!("a decompose policy holds a decompose instance"),
        })?;
        match plan {
            Plan::Leave(reason) => Ok(DecomposePlan::Leave(text("reason", reason)?)),
            Plan::Children(children) => check_children(
                children
                    .into_iter()
                    .map(|c| ChildSpec {
                        title: c.title,
                        body: c.body,
                        assignee: c.assignee,
                        priority: c.priority,
                        workspace: c.workspace.map(|w| (w.kind, w.path)),
                        depends_on: c.depends_on.into_iter().map(|d| d as usize).collect(),
                    })
                    .collect(),
            )
            .map(DecomposePlan::Children),
        }
    }
}

/// Check a decomposition plan exactly as a plugin returned it, and normalise it: between 1 and
/// [`MAX_ITEMS`] children; titles not blank (trimmed); text fields within [`MAX_TEXT`]; a blank assignee
/// means none; a workspace is `scratch`, `dir` or `worktree` with an absolute path if any; a child depends
/// only on earlier siblings, so the plan is acyclic and can be created in order. Anything else is
/// [`PolicyError::BadOutput`] naming the child.
pub fn check_children(children: Vec<ChildSpec>) -> Result<Vec<ChildSpec>, PolicyError> {
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
                Some((kind, path)) if ["scratch", "dir", "worktree"].contains(&kind.as_str()) => {
                    if path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                        return Err(bad(format!("child {i}: workspace path must be absolute")));
                    }
                    Some((kind, path.map(|p| text("workspace path", p)).transpose()?))
                }
                Some((kind, _)) => {
                    return Err(bad(format!("child {i}: unknown workspace kind '{}'", cap_message(kind))));
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
/// [`PolicyError::BadOutput`]; whether it names a profile is the dispatcher's check.
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

pub fn kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::RespawnGuard => "respawn-guard",
        PolicyKind::Diagnostics => "diagnostics",
        PolicyKind::Routing => "routing",
        PolicyKind::Decompose => "decompose",
    }
}

/// A policy that could not be loaded, kept so the caller can report it and apply the safe default.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub reference: String,
    pub kind: PolicyKind,
    pub on_error_defer: bool,
    pub error: PolicyError,
}

/// The process's policy runtime. The wasmtime engine is created on first use, so commands that never run
/// a policy never pay for one.
pub struct PolicyRuntime {
    engine: Option<PolicyEngine>,
    cache_dir: std::path::PathBuf,
}

impl PolicyRuntime {
    pub fn new(home: &Home) -> PolicyRuntime {
        PolicyRuntime { engine: None, cache_dir: home.root().join("cache").join("wasm") }
    }

    pub fn engine(&mut self) -> Result<&mut PolicyEngine, PolicyError> {
        if self.engine.is_none() {
            self.engine = Some(PolicyEngine::new(Some(self.cache_dir.clone()))?);
        }
        Ok(self.engine.as_mut().expect("created above"))
    }
}

/// The policies one board runs.
pub struct BoardPolicies {
    pub policies: Vec<LoadedPolicy>,
    pub failures: Vec<LoadFailure>,
}

impl BoardPolicies {
    /// Load every `[[policies]]` entry. Kinds the board does not list get their built-in default where one
    /// exists (respawn guard and diagnostics), so configuring a router never switches off the rate-limit
    /// cooldown. A policy that fails to load is kept as a failure: the caller reports it and applies the
    /// kind's safe default.
    /// Only the `kinds` asked for are loaded (the tick needs guards and routing, `kanban diagnostics` only
    /// diagnostics): compiling a component the caller will not call is wasted work.
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
        for kind in
            [PolicyKind::RespawnGuard, PolicyKind::Diagnostics].into_iter().filter(|k| kinds.contains(k))
        {
            if !specs.iter().any(|(_, s)| s.kind == kind) {
                specs.push((None, builtins::default_spec(kind)));
            }
        }
        let mut policies = Vec::new();
        let mut failures: Vec<LoadFailure> = Vec::new();
        for (index, spec) in specs {
            match LoadedPolicy::load(engine, home, index, &spec) {
                Ok(policy) => policies.push(policy),
                Err(error) => failures.push(LoadFailure {
                    reference: spec.plugin.clone(),
                    kind: spec.kind,
                    on_error_defer: spec.on_error.as_deref() == Some("defer"),
                    error,
                }),
            }
        }
        // Every listed guard failed to load (a missing or tampered plugin): run the built-in guard too, so a
        // broken plugin never takes the rate-limit cooldown with it.
        let guards_listed = board.config.policies.iter().any(|s| s.kind == PolicyKind::RespawnGuard);
        if kinds.contains(&PolicyKind::RespawnGuard)
            && guards_listed
            && !policies.iter().any(|p: &LoadedPolicy| p.kind == PolicyKind::RespawnGuard)
            && let Ok(fallback) =
                LoadedPolicy::load(engine, home, None, &builtins::default_spec(PolicyKind::RespawnGuard))
        {
            policies.push(fallback);
        }
        BoardPolicies { policies, failures }
    }

    pub fn of_kind(&mut self, kind: PolicyKind) -> impl Iterator<Item = &mut LoadedPolicy> {
        self.policies.iter_mut().filter(move |p| p.kind == kind)
    }
}
