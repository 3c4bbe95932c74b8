//! One loaded policy and its sandboxed instance, typed by the world it exports: a `Policy<Guard>` can only
//! be asked to decide, a `Policy<Router>` only to route, and so on.
//!
//! An instance is created on first use (its config validated by the plugin's own `validate-config`
//! before any decision), reused for the later calls of the same process, and dropped after any trap so the
//! next call starts clean. Each call gets fresh fuel, the wall clock pinned to the context's `now`, and
//! randomness reseeded from the plugin's hash and the card, so a policy is a deterministic function of its
//! input.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::runtime::bindings::{self, types};
use super::runtime::{self, Limits, PolicyEngine, Sandbox, SharedRng};
use super::{PluginInfo, PolicyError, RawChild, check_children, check_route, plugins, text};
use crate::board::{Home, PolicySpec};
use crate::model::{DecomposePlan, Finding, GuardDecision, OnError, PolicyKey, PolicyKind, Severity};

/// A policy world: how to instantiate a component as it, and the two functions every plugin exports.
pub trait World: Sized {
    const KIND: PolicyKind;
    fn instantiate(
        store: &mut Store<Sandbox>,
        component: &Component,
        linker: &Linker<Sandbox>,
    ) -> wasmtime::Result<Self>;
    fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<types::PluginInfo>;
    fn validate_config(
        &self,
        store: &mut Store<Sandbox>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>>;
}

pub type Guard = bindings::guard::RespawnGuardPolicy;
pub type Router = bindings::routing::RoutingPolicy;
pub type Diagnoser = bindings::diagnostics::DiagnosticsPolicy;
pub type Decomposer = bindings::decompose::DecomposePolicy;

macro_rules! world {
    ($ty:ty, $kind:expr) => {
        impl World for $ty {
            const KIND: PolicyKind = $kind;
            fn instantiate(
                store: &mut Store<Sandbox>,
                component: &Component,
                linker: &Linker<Sandbox>,
            ) -> wasmtime::Result<Self> {
                <$ty>::instantiate(store, component, linker)
            }
            fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<types::PluginInfo> {
                self.kanban_policy_plugin().call_describe(store)
            }
            fn validate_config(
                &self,
                store: &mut Store<Sandbox>,
                config: &str,
            ) -> wasmtime::Result<Result<(), String>> {
                self.kanban_policy_plugin().call_validate_config(store, config)
            }
        }
    };
}

world!(Guard, PolicyKind::RespawnGuard);
world!(Router, PolicyKind::Routing);
world!(Diagnoser, PolicyKind::Diagnostics);
world!(Decomposer, PolicyKind::Decompose);

/// One `[[policies]]` entry (or a built-in default), loaded and typed by its world.
pub struct Policy<W: World> {
    /// Index in the board's `[[policies]]` (`None` for an implicit default or a plugin being installed).
    pub entry: Option<usize>,
    /// The reference as written (`builtin:respawn-guard`, `my-guard`, `sha256:...`).
    pub reference: String,
    pub sha256: String,
    pub on_error: OnError,
    config_json: String,
    /// Run the plugin's `validate-config` on the board's config when an instance is created.
    validate_on_start: bool,
    limits: Limits,
    component: Component,
    clock: Arc<AtomicI64>,
    rng: SharedRng,
    instance: Option<(Store<Sandbox>, W)>,
    /// Bytes of stdout/stderr already logged from the current instance.
    logged: (usize, usize),
    /// What the last call cost.
    last_cost: Option<CallCost>,
}

/// What one call cost: fuel, and the largest linear memory of its instance so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CallCost {
    pub fuel_used: u64,
    pub fuel_limit: u64,
    pub peak_memory: usize,
}

impl<W: World> Policy<W> {
    /// What the last call cost (none before the first call).
    pub fn last_cost(&self) -> Option<CallCost> {
        self.last_cost
    }

    /// Give the policy this `[policies.config]` (a JSON object, as text); it is validated when the next
    /// instance starts.
    pub fn set_config(&mut self, config_json: String) {
        self.config_json = config_json;
        self.validate_on_start = true;
        self.instance = None;
    }

    fn new(component: Component, sha256: &str, reference: &str, entry: Option<usize>) -> Policy<W> {
        Policy {
            entry,
            reference: reference.to_string(),
            sha256: sha256.to_string(),
            on_error: OnError::Allow,
            config_json: "{}".into(),
            validate_on_start: false,
            limits: Limits::default(),
            component,
            clock: Arc::new(AtomicI64::new(0)),
            rng: SharedRng::default(),
            instance: None,
            logged: (0, 0),
            last_cost: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.reference
    }

    pub fn kind(&self) -> PolicyKind {
        W::KIND
    }

    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    /// The key this policy's health is kept under on its board.
    pub fn key(&self) -> PolicyKey {
        super::key_of(self.entry, &self.reference, &self.sha256)
    }

    fn instantiate(
        &mut self,
        engine: &PolicyEngine,
        now: i64,
    ) -> Result<&mut (Store<Sandbox>, W), PolicyError> {
        if self.instance.is_none() {
            let mut store = engine.new_store(self.limits, self.clock.clone(), self.rng.clone());
            store.set_fuel(self.limits.fuel).map_err(|e| PolicyError::Engine(e.to_string()))?;
            let link = |e: wasmtime::Error| PolicyError::Link {
                detail: super::runtime::first_line(&format!("{e:#}")),
            };
            let bindings = W::instantiate(&mut store, &self.component, engine.linker()).map_err(link)?;
            self.instance = Some((store, bindings));
            self.logged = (0, 0);
            if self.validate_on_start {
                // A config the plugin rejects never reaches a decision: the caller applies the safe default.
                let config = self.config_json.clone();
                let verdict = self.call(now, "", |store, b| b.validate_config(store, &config));
                match verdict {
                    Ok(Ok(())) => {}
                    Ok(Err(message)) => {
                        self.instance = None;
                        return Err(PolicyError::BadConfig { message: super::cap_message(message) });
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.instance.as_mut().expect("set above"))
    }

    /// Run one call with fresh fuel, the clock pinned to `now` and randomness seeded from the plugin and
    /// `seed` (the card's id), log what the plugin printed, and turn a failure into a typed error
    /// (dropping the instance).
    fn call<R>(
        &mut self,
        now: i64,
        seed: &str,
        f: impl FnOnce(&mut Store<Sandbox>, &W) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        self.clock.store(now, Ordering::Relaxed);
        self.rng.reseed(&self.sha256, seed);
        let fuel = self.limits.fuel;
        let (store, bindings) =
            self.instance.as_mut().ok_or_else(|| PolicyError::Engine("no instance".into()))?;
        store.set_fuel(fuel).map_err(|e| PolicyError::Engine(e.to_string()))?;
        let result = f(store, bindings);
        self.last_cost = Some(CallCost {
            fuel_used: fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
            fuel_limit: fuel,
            peak_memory: store.data().peak_memory(),
        });
        let (stdout, stderr) = runtime::output(store);
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
                let error = runtime::classify(err, new_err, self.limits);
                self.instance = None;
                Err(error)
            }
        }
    }

    /// Instantiate if needed, then call.
    fn ask<R>(
        &mut self,
        engine: &PolicyEngine,
        now: i64,
        seed: &str,
        f: impl FnOnce(&mut Store<Sandbox>, &W) -> wasmtime::Result<R>,
    ) -> Result<R, PolicyError> {
        self.instantiate(engine, now)?;
        self.call(now, seed, f)
    }

    /// The plugin's own description of itself.
    pub fn describe(&mut self, engine: &PolicyEngine, now: i64) -> Result<PluginInfo, PolicyError> {
        let info = self.ask(engine, now, "", |store, b| b.describe(store))?;
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

    /// Ask the plugin to check its board config.
    pub fn validate_config(&mut self, engine: &PolicyEngine, now: i64) -> Result<(), PolicyError> {
        let config = self.config_json.clone();
        let validate_on_start = std::mem::replace(&mut self.validate_on_start, false);
        let verdict = self.ask(engine, now, "", |store, b| b.validate_config(store, &config));
        self.validate_on_start = validate_on_start;
        verdict?.map_err(|message| PolicyError::BadConfig { message: super::cap_message(message) })
    }

    /// The context record for this policy: the shared record with this policy's config.
    fn with_config(&self, ctx: &mut types::Context) {
        if ctx.config != self.config_json {
            ctx.config.clone_from(&self.config_json);
        }
    }
}

impl Policy<Guard> {
    pub fn decide(
        &mut self,
        engine: &PolicyEngine,
        ctx: &mut types::Context,
    ) -> Result<GuardDecision, PolicyError> {
        use bindings::guard::exports::kanban::policy::respawn_guard::Decision;
        self.with_config(ctx);
        let card = ctx.card.id.clone();
        let decision = self.ask(engine, ctx.now, &card, |store, b| {
            b.kanban_policy_respawn_guard().call_decide(store, ctx)
        })?;
        Ok(match decision {
            Decision::Allow => GuardDecision::Allow,
            Decision::Defer(d) => {
                GuardDecision::Defer { reason: text("defer reason", d.reason)?, retry_after: d.retry_after }
            }
            Decision::Block(reason) => GuardDecision::Block { reason: text("block reason", reason)? },
        })
    }
}

impl Policy<Router> {
    pub fn route(
        &mut self,
        engine: &PolicyEngine,
        ctx: &mut types::Context,
    ) -> Result<Option<String>, PolicyError> {
        self.with_config(ctx);
        let card = ctx.card.id.clone();
        let choice =
            self.ask(engine, ctx.now, &card, |store, b| b.kanban_policy_routing().call_route(store, ctx))?;
        check_route(choice)
    }
}

impl Policy<Diagnoser> {
    pub fn diagnose(
        &mut self,
        engine: &PolicyEngine,
        ctx: &mut types::Context,
    ) -> Result<Vec<Finding>, PolicyError> {
        use bindings::diagnostics::exports::kanban::policy::diagnostics::Severity as WitSeverity;
        self.with_config(ctx);
        let card = ctx.card.id.clone();
        let found = self.ask(engine, ctx.now, &card, |store, b| {
            b.kanban_policy_diagnostics().call_diagnose(store, ctx)
        })?;
        if found.len() > super::MAX_ITEMS {
            return Err(PolicyError::BadOutput {
                detail: format!("{} findings (at most {})", found.len(), super::MAX_ITEMS),
            });
        }
        found
            .into_iter()
            .map(|f| {
                Ok(Finding {
                    task_id: Some(card.clone()),
                    policy: self.reference.clone(),
                    rule: text("rule", f.rule)?,
                    severity: match f.severity {
                        WitSeverity::Info => Severity::Info,
                        WitSeverity::Warning => Severity::Warning,
                        WitSeverity::Error => Severity::Error,
                        WitSeverity::Critical => Severity::Critical,
                    },
                    title: text("title", f.title)?,
                    detail: text("detail", f.detail)?,
                    actions: f.actions.into_iter().map(|a| text("action", a)).collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }
}

impl Policy<Decomposer> {
    pub fn decompose(
        &mut self,
        engine: &PolicyEngine,
        ctx: &mut types::Context,
    ) -> Result<DecomposePlan, PolicyError> {
        use bindings::decompose::exports::kanban::policy::decompose::Plan;
        self.with_config(ctx);
        let card = ctx.card.id.clone();
        let plan = self
            .ask(engine, ctx.now, &card, |store, b| b.kanban_policy_decompose().call_decompose(store, ctx))?;
        match plan {
            Plan::Leave(reason) => Ok(DecomposePlan::Leave(text("reason", reason)?)),
            Plan::Children(children) => check_children(
                children
                    .into_iter()
                    .map(|c| RawChild {
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

/// A loaded policy of any kind.
pub enum Loaded {
    Guard(Policy<Guard>),
    Router(Policy<Router>),
    Diagnoser(Policy<Diagnoser>),
    Decomposer(Policy<Decomposer>),
}

/// Apply `$body` to the typed policy inside a [`Loaded`], whatever its kind.
macro_rules! each_kind {
    ($loaded:expr, $p:ident => $body:expr) => {
        match $loaded {
            Loaded::Guard($p) => $body,
            Loaded::Router($p) => $body,
            Loaded::Diagnoser($p) => $body,
            Loaded::Decomposer($p) => $body,
        }
    };
}

impl Loaded {
    /// A policy of `kind` for an already compiled component, with an empty config and default limits.
    pub fn from_component(
        component: Component,
        sha256: &str,
        kind: PolicyKind,
        reference: &str,
        entry: Option<usize>,
    ) -> Loaded {
        match kind {
            PolicyKind::RespawnGuard => Loaded::Guard(Policy::new(component, sha256, reference, entry)),
            PolicyKind::Routing => Loaded::Router(Policy::new(component, sha256, reference, entry)),
            PolicyKind::Diagnostics => Loaded::Diagnoser(Policy::new(component, sha256, reference, entry)),
            PolicyKind::Decompose => Loaded::Decomposer(Policy::new(component, sha256, reference, entry)),
        }
    }

    /// Load one policy of a board: resolve the plugin, check its hash and world, compile it (cached). Its
    /// config is validated by the plugin when its instance starts.
    pub fn load(
        engine: &mut PolicyEngine,
        home: &Home,
        entry: Option<usize>,
        spec: &PolicySpec,
    ) -> Result<Loaded, PolicyError> {
        let (sha256, bytes) = plugins::resolve(home, &spec.plugin)?;
        let component = engine.component(&sha256, &bytes)?;
        let shape = engine.shape(&component)?;
        if shape.kind != spec.kind {
            return Err(PolicyError::WrongWorld {
                detail: format!("it is a {} plugin, but the board uses it as {}", shape.kind, spec.kind),
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
        let mut loaded = Loaded::from_component(component, &sha256, spec.kind, &spec.plugin, entry);
        each_kind!(&mut loaded, p => {
            p.config_json = config_json;
            p.limits = limits;
            p.on_error = spec.on_error();
            p.validate_on_start = true;
        });
        Ok(loaded)
    }

    pub fn kind(&self) -> PolicyKind {
        each_kind!(self, p => p.kind())
    }

    pub fn describe(&mut self, engine: &PolicyEngine, now: i64) -> Result<PluginInfo, PolicyError> {
        each_kind!(self, p => p.describe(engine, now))
    }

    pub fn validate_config(&mut self, engine: &PolicyEngine, now: i64) -> Result<(), PolicyError> {
        each_kind!(self, p => p.validate_config(engine, now))
    }
}
