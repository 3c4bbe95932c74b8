//! The policy host: the one way the rest of the host asks a board's policies anything.
//!
//! Four typed entry points, one per kind ([`PolicyHost::route`], [`PolicyHost::guard`],
//! [`PolicyHost::diagnose`], [`PolicyHost::decompose`]), and behind them one code path for what every
//! kind shares: load the board's policies on first need (a tick with nothing to ask never builds a
//! wasmtime engine), skip a quarantined policy, call, and on any failure (a trap, a timeout, garbage, a
//! plugin that would not load or whose config it rejects, a route to no profile) apply the kind's safe
//! default, report the failure with its typed kind, and record it as a `policy_error` event and against
//! the policy's health. [`PolicyHost::finish`] writes what the session learned: the events, and each
//! policy's tick for quarantine (three failing ticks in a row quarantine it). A dry run writes nothing and
//! changes no quarantine; it only reports.
//!
//! The safe defaults: a guard allows (or defers, when the board set `on_error = "defer"` for it); a router
//! leaves the card unassigned; diagnostics give one error finding naming the plugin; decomposition leaves
//! the card in triage with the reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::json;

use crate::board::{Board, Home};
use crate::model::EventKind;
use crate::model::{
    CardFacts, CardHistory, DecomposePlan, Finding, GuardDecision, OnError, PolicyKey, PolicyKind, Severity,
    Task,
};
use crate::policy::context::{self, COMMENTS, EVENTS, RUNS};
use crate::policy::{BoardPolicies, Policy, PolicyContext, PolicyError, PolicyRuntime, World, key_of};
use crate::store::{PolicyTick, Store, StoreError};

/// Failing ticks in a row before a policy is quarantined on a board.
pub const QUARANTINE_AFTER: i64 = 3;

/// A policy failure, as reported (`dispatch --json`'s `policy_errors`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyFailure {
    pub policy: String,
    /// The card being decided when the policy failed (none for a policy that failed to load).
    pub task_id: Option<String>,
    /// The typed kind: `out_of_fuel`, `memory`, `panic`, `trap`, `bad_config`, `bad_output`,
    /// `hash_mismatch`, `not_installed`, `quarantined`, ...
    pub error_kind: String,
    pub error: String,
}

/// What a decomposition came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decomposed {
    Plan {
        plan: DecomposePlan,
        policy: String,
    },
    /// The policy failed (or is quarantined): the card stays in triage, with this reason.
    Failed {
        reason: String,
        policy: String,
    },
}

/// One session of asking a board's policies (a tick, or one `kanban diagnostics` / `decompose`).
pub struct PolicyHost<'a> {
    runtime: &'a mut PolicyRuntime,
    home: &'a Home,
    board: &'a Board,
    kinds: &'a [PolicyKind],
    dry_run: bool,
    loaded: Option<BoardPolicies>,
    quarantined: BTreeMap<PolicyKey, i64>,
    /// Every policy asked (or failing to load) this session, with its first error.
    health: BTreeMap<PolicyKey, Option<String>>,
    failures: Vec<PolicyFailure>,
    /// `policy_error` events to write: (card, payload).
    events: Vec<(Option<String>, serde_json::Value)>,
    /// Facts read ahead for cards about to be asked about (see [`PolicyHost::prefetch`]).
    prefetched: HashMap<String, CardHistory>,
    /// Policies called this session (a quarantined one is skipped, not called); added to the runtime's
    /// count when the session finishes.
    calls: u64,
}

impl<'a> PolicyHost<'a> {
    /// A session over the policies of `kinds` on `board`. Nothing is loaded until a question is asked.
    pub fn new(
        runtime: &'a mut PolicyRuntime,
        home: &'a Home,
        board: &'a Board,
        kinds: &'a [PolicyKind],
        dry_run: bool,
    ) -> PolicyHost<'a> {
        PolicyHost {
            runtime,
            home,
            board,
            kinds,
            dry_run,
            loaded: None,
            quarantined: BTreeMap::new(),
            health: BTreeMap::new(),
            failures: Vec::new(),
            events: Vec::new(),
            prefetched: HashMap::new(),
            calls: 0,
        }
    }

    /// Read the histories of these cards now, in one snapshot: a tick about to ask about many cards pays
    /// four queries for them all instead of five each.
    pub fn prefetch(&mut self, store: &mut Store, ids: &[String]) -> Result<(), StoreError> {
        let wanted: Vec<String> =
            ids.iter().filter(|id| !self.prefetched.contains_key(*id)).cloned().collect();
        if !wanted.is_empty() {
            self.prefetched.extend(store.card_histories(&wanted, RUNS, EVENTS, COMMENTS)?);
        }
        Ok(())
    }

    /// Whether a card's facts were read ahead.
    pub fn prefetched(&self, id: &str) -> bool {
        self.prefetched.contains_key(id)
    }

    /// Does the board have any policy of `kind` (configured, or a built-in default)?
    pub fn has(&self, kind: PolicyKind) -> bool {
        match kind {
            PolicyKind::Routing => self.board.config.policies.iter().any(|p| p.kind == PolicyKind::Routing),
            _ => true,
        }
    }

    /// The context record of one card, built from one bounded read; the same record serves every policy
    /// asked about the card (only `config` changes per policy). `running` counts running cards per profile.
    pub fn context(
        &self,
        store: &mut Store,
        task_id: &str,
        running: &BTreeMap<String, usize>,
        now: i64,
    ) -> Result<PolicyContext, StoreError> {
        let facts = store.card_facts(task_id, RUNS, EVENTS, COMMENTS)?;
        Ok(self.record(facts, running, now))
    }

    /// [`PolicyHost::context`] for a card the caller holds (a tick's candidate), with its history read
    /// ahead by [`PolicyHost::prefetch`] when it was.
    pub fn context_of(
        &mut self,
        store: &mut Store,
        task: &Task,
        running: &BTreeMap<String, usize>,
        now: i64,
    ) -> Result<PolicyContext, StoreError> {
        match self.prefetched.remove(&task.id) {
            Some(history) => Ok(self.record(CardFacts::new(task.clone(), history), running, now)),
            None => self.context(store, &task.id, running, now),
        }
    }

    /// Bring a card's record up to date within a session: its assignee (the router may just have chosen
    /// one), the profiles' running counts, and `now`.
    pub fn refresh(
        &self,
        ctx: &mut PolicyContext,
        assignee: Option<&str>,
        running: &BTreeMap<String, usize>,
        now: i64,
    ) {
        ctx.card.assignee = assignee.map(str::to_string);
        ctx.board.profiles = context::profile_loads(self.board, running);
        ctx.now = now;
    }

    /// The context record from facts already read.
    pub fn record(&self, facts: CardFacts, running: &BTreeMap<String, usize>, now: i64) -> PolicyContext {
        context::record(self.board, facts, running, now)
    }

    fn ensure_loaded(&mut self, store: &mut Store) -> Result<(), StoreError> {
        if self.loaded.is_some() {
            return Ok(());
        }
        let loaded = match self.runtime.engine() {
            Ok(engine) => BoardPolicies::load(engine, self.home, self.board, self.kinds),
            Err(error) => {
                self.fail("runtime", None, None, &error);
                BoardPolicies::default()
            }
        };
        let mut keys: Vec<PolicyKey> = Vec::new();
        keys.extend(loaded.guards.iter().map(Policy::key));
        keys.extend(loaded.router.iter().map(Policy::key));
        keys.extend(loaded.diagnosers.iter().map(Policy::key));
        keys.extend(loaded.decomposer.iter().map(Policy::key));
        keys.extend(loaded.failures.iter().map(|f| key_of(f.entry, &f.reference, "")));
        for key in keys {
            if let Some(failures) = store.policy_quarantined(&key, &self.board.config_hash, !self.dry_run)? {
                self.quarantined.insert(key, failures);
            }
        }
        // A policy that cannot even load fails once per session, board-wide, and counts toward quarantine;
        // once quarantined it is reported as such, and no longer recorded.
        for failure in loaded.failures.clone() {
            let key = key_of(failure.entry, &failure.reference, "");
            match self.quarantined.get(&key) {
                Some(failures) => {
                    let error = PolicyError::Quarantined { failures: *failures };
                    self.fail(&failure.reference, None, None, &error);
                }
                None => self.fail(&failure.reference, Some(key), None, &failure.error),
            }
        }
        self.loaded = Some(loaded);
        Ok(())
    }

    /// Record one failure: reported, an event (on the card, or board-wide), and against the policy's
    /// health unless it was not even asked (`key` = None).
    fn fail(&mut self, policy: &str, key: Option<PolicyKey>, task_id: Option<&str>, error: &PolicyError) {
        self.failures.push(PolicyFailure {
            policy: policy.to_string(),
            task_id: task_id.map(str::to_string),
            error_kind: error.kind().to_string(),
            error: format!("{policy} {error}"),
        });
        if !matches!(error, PolicyError::Quarantined { .. }) {
            self.events.push((
                task_id.map(str::to_string),
                json!({"policy": policy, "error_kind": error.kind(), "error": error.to_string()}),
            ));
        }
        if let Some(key) = key {
            self.health
                .entry(key)
                .or_insert(None)
                .get_or_insert_with(|| format!("{}: {error}", error.kind()));
        }
    }

    /// Ask one policy, through the one path: skip it if quarantined, note that it was asked, call, and turn
    /// a failure into a reported, recorded error.
    fn ask<W: World, R>(
        quarantined: &BTreeMap<PolicyKey, i64>,
        health: &mut BTreeMap<PolicyKey, Option<String>>,
        calls: &mut u64,
        policy: &mut Policy<W>,
        call: impl FnOnce(&mut Policy<W>) -> Result<R, PolicyError>,
    ) -> Result<R, (PolicyError, Option<PolicyKey>)> {
        let key = policy.key();
        if let Some(failures) = quarantined.get(&key) {
            return Err((PolicyError::Quarantined { failures: *failures }, None));
        }
        health.entry(key.clone()).or_insert(None);
        *calls += 1;
        call(policy).map_err(|e| (e, Some(key)))
    }

    /// Who takes an unassigned card: `Some((profile, policy))`, or `None` to leave it unassigned (no
    /// router, it said none, or it failed: the safe default).
    pub fn route(
        &mut self,
        store: &mut Store,
        ctx: &mut PolicyContext,
    ) -> Result<Option<(String, String)>, StoreError> {
        if !self.has(PolicyKind::Routing) {
            return Ok(None);
        }
        self.ensure_loaded(store)?;
        let Ok(engine) = self.runtime.engine() else { return Ok(None) };
        let engine = &*engine;
        let Some(router) = self.loaded.as_mut().and_then(|l| l.router.as_mut()) else { return Ok(None) };
        let (name, key) = (router.name().to_string(), router.key());
        let result =
            Self::ask(&self.quarantined, &mut self.health, &mut self.calls, router, |p| p.route(engine, ctx));
        let card = ctx.card.id.clone();
        match result {
            Ok(Some(profile)) if self.board.config.profiles.contains_key(&profile) => {
                Ok(Some((profile, name)))
            }
            Ok(Some(profile)) => {
                let error = PolicyError::BadOutput {
                    detail: format!("routed to '{profile}', which is not a profile of this board"),
                };
                self.fail(&name, Some(key), Some(&card), &error);
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err((error, key)) => {
                self.fail(&name, key, Some(&card), &error);
                Ok(None)
            }
        }
    }

    /// May this card be spawned now? Every guard is asked in order; the first that defers or blocks wins.
    /// A failing guard allows, unless the board set `on_error = "defer"` for it (or a guard it listed could
    /// not load and fails closed). Returns the verdict and the policy that gave it.
    pub fn guard(
        &mut self,
        store: &mut Store,
        ctx: &mut PolicyContext,
    ) -> Result<(GuardDecision, String), StoreError> {
        self.ensure_loaded(store)?;
        let card = ctx.card.id.clone();
        let closed_load_failure = self.loaded.as_ref().is_some_and(|l| {
            l.failures.iter().any(|f| f.kind == PolicyKind::RespawnGuard && f.on_error == OnError::Defer)
        });
        if closed_load_failure {
            let reason = "a respawn guard failed to load and fails closed".to_string();
            return Ok((GuardDecision::Defer { reason, retry_after: None }, "runtime".into()));
        }
        let Ok(engine) = self.runtime.engine() else { return Ok((GuardDecision::Allow, String::new())) };
        let engine = &*engine;
        let Some(loaded) = self.loaded.as_mut() else { return Ok((GuardDecision::Allow, String::new())) };
        let mut failed: Vec<(String, Option<PolicyKey>, PolicyError)> = Vec::new();
        let mut verdict = (GuardDecision::Allow, String::new());
        for guard in loaded.guards.iter_mut() {
            let name = guard.name().to_string();
            match Self::ask(&self.quarantined, &mut self.health, &mut self.calls, guard, |p| {
                p.decide(engine, ctx)
            }) {
                Ok(GuardDecision::Allow) => {}
                Ok(decision) => {
                    verdict = (decision, name);
                    break;
                }
                Err((error, key)) => {
                    let fail_closed = guard.on_error == OnError::Defer;
                    let kind = error.kind();
                    failed.push((name.clone(), key, error));
                    if fail_closed {
                        let reason = format!("respawn guard {name} failed ({kind}); it fails closed");
                        verdict = (GuardDecision::Defer { reason, retry_after: None }, name);
                        break;
                    }
                }
            }
        }
        for (name, key, error) in failed {
            self.fail(&name, key, Some(&card), &error);
        }
        Ok(verdict)
    }

    /// The findings of every diagnostics policy about one card. A failing (or quarantined) policy gives one
    /// error finding naming it, in place of its findings.
    pub fn diagnose(
        &mut self,
        store: &mut Store,
        ctx: &mut PolicyContext,
    ) -> Result<Vec<Finding>, StoreError> {
        self.ensure_loaded(store)?;
        let card = ctx.card.id.clone();
        let mut findings = Vec::new();
        let Ok(engine) = self.runtime.engine() else { return Ok(findings) };
        let engine = &*engine;
        let Some(loaded) = self.loaded.as_mut() else { return Ok(findings) };
        let mut failed = Vec::new();
        for diagnoser in loaded.diagnosers.iter_mut() {
            let name = diagnoser.name().to_string();
            match Self::ask(&self.quarantined, &mut self.health, &mut self.calls, diagnoser, |p| {
                p.diagnose(engine, ctx)
            }) {
                Ok(found) => findings.extend(found),
                Err((error, key)) => {
                    findings.push(error_finding(Some(&card), &name, &error));
                    failed.push((name, key, error));
                }
            }
        }
        for (name, key, error) in failed {
            self.fail(&name, key, Some(&card), &error);
        }
        Ok(findings)
    }

    /// Board-level findings: diagnostics policies that could not load, and quarantined policies.
    pub fn board_findings(&mut self, store: &mut Store) -> Result<Vec<Finding>, StoreError> {
        self.ensure_loaded(store)?;
        let mut findings: Vec<Finding> = self
            .loaded
            .iter()
            .flat_map(|l| l.failures.iter())
            .filter(|f| f.kind == PolicyKind::Diagnostics)
            .map(|f| error_finding(None, &f.reference, &f.error))
            .collect();
        // Only quarantines that hold for the board as it is configured now (an edited board.toml lifts them).
        let current =
            store.quarantined_policies()?.into_iter().filter(|q| q.config_hash == self.board.config_hash);
        for q in current {
            let reference = q.key.reference.clone();
            findings.push(Finding {
                task_id: None,
                policy: reference.clone(),
                rule: "plugin-quarantined".into(),
                severity: Severity::Error,
                title: format!("plugin {reference} is quarantined on this board"),
                detail: format!(
                    "it failed {} ticks in a row (since {}); last error: {}. The dispatcher applies its safe default until it is reinstalled or board.toml is edited.",
                    q.failures,
                    crate::clock::utc(q.since),
                    q.last_error.unwrap_or_default()
                ),
                actions: vec![format!("kanban plugin install PATH --name {reference}"), "kanban board check".into()],
            });
        }
        Ok(findings)
    }

    /// How a triage card splits, from the board's decomposition policy (a failure leaves it in triage).
    pub fn decompose(
        &mut self,
        store: &mut Store,
        ctx: &mut PolicyContext,
    ) -> Result<Decomposed, StoreError> {
        self.ensure_loaded(store)?;
        let card = ctx.card.id.clone();
        let load_failure = self
            .loaded
            .as_ref()
            .and_then(|l| l.failures.iter().find(|f| f.kind == PolicyKind::Decompose))
            .map(|f| (f.reference.clone(), f.error.clone()));
        if let Some((policy, error)) = load_failure {
            return Ok(Decomposed::Failed { reason: format!("{policy} {error}"), policy });
        }
        let engine = match self.runtime.engine() {
            Ok(engine) => &*engine,
            Err(error) => {
                return Ok(Decomposed::Failed { reason: error.to_string(), policy: "runtime".into() });
            }
        };
        let Some(decomposer) = self.loaded.as_mut().and_then(|l| l.decomposer.as_mut()) else {
            return Ok(Decomposed::Failed {
                reason: "no decomposition policy".into(),
                policy: String::new(),
            });
        };
        let name = decomposer.name().to_string();
        match Self::ask(&self.quarantined, &mut self.health, &mut self.calls, decomposer, |p| {
            p.decompose(engine, ctx)
        }) {
            Ok(plan) => Ok(Decomposed::Plan { plan, policy: name }),
            Err((error, key)) => {
                let reason = format!("{name} {error}");
                self.fail(&name, key, Some(&card), &error);
                Ok(Decomposed::Failed { reason, policy: name })
            }
        }
    }

    /// The failures of this session so far.
    pub fn failures(&self) -> &[PolicyFailure] {
        &self.failures
    }

    /// End the session: unless it was a dry run, write its `policy_error` events and each policy's tick
    /// for quarantine (one transaction each). Returns the failures, for the caller's report.
    pub fn finish(self, store: &mut Store, now: i64) -> Result<Vec<PolicyFailure>, StoreError> {
        self.runtime.calls += self.calls;
        if self.dry_run {
            return Ok(self.failures);
        }
        let events: Vec<(Option<String>, EventKind, serde_json::Value)> =
            self.events.into_iter().map(|(task, payload)| (task, EventKind::PolicyError, payload)).collect();
        store.record_events(&events, now)?;
        let ticks: Vec<PolicyTick> =
            self.health.into_iter().map(|(key, error)| PolicyTick { key, error }).collect();
        let quarantined =
            store.record_policy_ticks(&ticks, QUARANTINE_AFTER, &self.board.config_hash, now)?;
        let names: BTreeSet<&str> = quarantined.iter().map(|k| k.reference.as_str()).collect();
        for name in names {
            tracing::warn!(board = %self.board.slug, policy = %name, "policy quarantined after {QUARANTINE_AFTER} failing ticks in a row");
        }
        Ok(self.failures)
    }
}

/// The diagnostics safe default: one error finding naming the plugin that failed.
pub fn error_finding(task_id: Option<&str>, policy: &str, error: &PolicyError) -> Finding {
    Finding {
        task_id: task_id.map(str::to_string),
        policy: policy.to_string(),
        rule: "policy-error".into(),
        severity: Severity::Error,
        title: format!("diagnostics plugin {policy} failed"),
        detail: format!("{policy} {error}"),
        actions: vec!["kanban plugin verify".into(), "kanban board check".into()],
    }
}
