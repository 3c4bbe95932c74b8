//! The tick's view of the board's policies: loaded on first need (a tick with nothing to spawn never
//! builds a wasmtime engine), asked through [`TickPolicies::route`] and [`TickPolicies::guard`], with
//! every failure reported and replaced by the kind's safe default, and each policy's tick recorded for
//! quarantine.

use std::collections::BTreeMap;

use serde_json::json;

use super::{PolicyFailure, TickReport};
use crate::board::{Board, Home, PolicyKind};
use crate::policy::{BoardPolicies, GuardDecision, PolicyError, PolicyRuntime, context};
use crate::store::{Store, StoreError, Task};

/// Failing ticks in a row before a policy is quarantined on a board.
pub const QUARANTINE_AFTER: i64 = 3;

/// A policy call that failed.
struct Failed<'a> {
    policy: &'a str,
    key: Option<String>,
    task_id: &'a str,
    error: &'a PolicyError,
}

pub struct TickPolicies<'a> {
    runtime: &'a mut PolicyRuntime,
    home: &'a Home,
    loaded: Option<BoardPolicies>,
    /// Health key → (reference, first error this tick) for every policy asked this tick.
    asked: BTreeMap<String, (String, Option<String>)>,
    quarantined: BTreeMap<String, i64>,
    reported_load_failures: bool,
}

impl<'a> TickPolicies<'a> {
    pub fn new(runtime: &'a mut PolicyRuntime, home: &'a Home) -> TickPolicies<'a> {
        TickPolicies {
            runtime,
            home,
            loaded: None,
            asked: BTreeMap::new(),
            quarantined: BTreeMap::new(),
            reported_load_failures: false,
        }
    }

    fn ensure_loaded(
        &mut self,
        board: &Board,
        store: &mut Store,
        report: &mut TickReport,
    ) -> Result<(), StoreError> {
        if self.loaded.is_some() {
            return Ok(());
        }
        let loaded = match self.runtime.engine() {
            Ok(engine) => BoardPolicies::load(
                engine,
                self.home,
                board,
                &[PolicyKind::RespawnGuard, PolicyKind::Routing],
            ),
            Err(error) => {
                report.policy_errors.push(PolicyFailure {
                    policy: "runtime".into(),
                    task_id: None,
                    error: error.to_string(),
                });
                BoardPolicies { policies: Vec::new(), failures: Vec::new() }
            }
        };
        for policy in &loaded.policies {
            if let Some(failures) = store.policy_quarantined(&policy.health_key(), &board.config_hash)? {
                self.quarantined.insert(policy.health_key(), failures);
            }
        }
        self.loaded = Some(loaded);
        Ok(())
    }

    /// Report a failed call: in the tick report, as a `policy_error` event on the card, and (unless the
    /// policy was not even asked, `key` = None) against the policy's health for quarantine.
    fn record_error(
        &mut self,
        store: &mut Store,
        report: &mut TickReport,
        failure: Failed<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let Failed { policy, key, task_id, error } = failure;
        report.policy_errors.push(PolicyFailure {
            policy: policy.to_string(),
            task_id: Some(task_id.to_string()),
            error: format!("{policy} {error}"),
        });
        store.record_event(
            Some(task_id),
            "policy_error",
            json!({"policy": policy, "error_kind": error.kind(), "error": error.to_string()}),
            now,
        )?;
        if let Some(key) = key {
            let entry = self.asked.entry(key).or_insert_with(|| (policy.to_string(), None));
            entry.1.get_or_insert_with(|| format!("{}: {error}", error.kind()));
        }
        Ok(())
    }

    fn report_load_failures(&mut self, kind: PolicyKind, task_id: &str, report: &mut TickReport) -> bool {
        let Some(loaded) = &self.loaded else { return false };
        let mut defer = false;
        for failure in loaded.failures.iter().filter(|f| f.kind == kind) {
            defer |= failure.on_error_defer;
            if !self.reported_load_failures {
                report.policy_errors.push(PolicyFailure {
                    policy: failure.reference.clone(),
                    task_id: Some(task_id.to_string()),
                    error: format!("{} {}", failure.reference, failure.error),
                });
            }
        }
        self.reported_load_failures = true;
        defer
    }

    /// Ask the board's router for a profile. `None`: leave the card unassigned (no router, it said none,
    /// or it failed, which is reported).
    pub fn route(
        &mut self,
        board: &Board,
        store: &mut Store,
        task: &Task,
        running: &BTreeMap<String, usize>,
        report: &mut TickReport,
        now: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        if !board.config.policies.iter().any(|p| p.kind == PolicyKind::Routing) {
            return Ok(None);
        }
        self.ensure_loaded(board, store, report)?;
        self.report_load_failures(PolicyKind::Routing, &task.id, report);
        let engine = match self.runtime.engine() {
            Ok(engine) => &*engine,
            Err(_) => return Ok(None),
        };
        let loaded = self.loaded.as_mut().expect("loaded above");
        let Some(policy) = loaded.of_kind(PolicyKind::Routing).next() else { return Ok(None) };
        let (key, name) = (policy.health_key(), policy.name().to_string());
        if let Some(failures) = self.quarantined.get(&key) {
            let error = PolicyError::Quarantined { failures: *failures };
            report.policy_errors.push(PolicyFailure {
                policy: name.clone(),
                task_id: Some(task.id.clone()),
                error: format!("{name} {error}"),
            });
            return Ok(None);
        }
        let ctx = context::build(board, store, &task.id, running, policy.config_json(), now)?;
        let result = policy.route(engine, &ctx);
        self.asked.entry(key.clone()).or_insert_with(|| (name.clone(), None));
        match result {
            Ok(Some(profile)) => Ok(Some((profile, name))),
            Ok(None) => Ok(None),
            Err(error) => {
                let failed = Failed { policy: &name, key: Some(key), task_id: &task.id, error: &error };
                self.record_error(store, report, failed, now)?;
                Ok(None)
            }
        }
    }

    /// Ask every respawn guard. The first defer or block wins. A failing guard allows, unless the board
    /// set `on_error = "defer"` for it.
    pub fn guard(
        &mut self,
        board: &Board,
        store: &mut Store,
        task: &Task,
        running: &BTreeMap<String, usize>,
        report: &mut TickReport,
        now: i64,
    ) -> Result<(GuardDecision, String), StoreError> {
        self.ensure_loaded(board, store, report)?;
        if self.report_load_failures(PolicyKind::RespawnGuard, &task.id, report) {
            return Ok((
                GuardDecision::Defer {
                    reason: "a respawn guard failed to load and fails closed".into(),
                    retry_after: None,
                },
                "runtime".into(),
            ));
        }
        let engine = match self.runtime.engine() {
            Ok(engine) => &*engine,
            Err(_) => return Ok((GuardDecision::Allow, String::new())),
        };
        let loaded = self.loaded.as_mut().expect("loaded above");
        let mut errors = Vec::new();
        let mut verdict = (GuardDecision::Allow, String::new());
        for policy in loaded.of_kind(PolicyKind::RespawnGuard) {
            let (key, name) = (policy.health_key(), policy.name().to_string());
            let result = match self.quarantined.get(&key) {
                Some(failures) => Err(PolicyError::Quarantined { failures: *failures }),
                None => {
                    let ctx = context::build(board, store, &task.id, running, policy.config_json(), now)?;
                    self.asked.entry(key.clone()).or_insert_with(|| (name.clone(), None));
                    policy.decide(engine, &ctx)
                }
            };
            match result {
                Ok(GuardDecision::Allow) => {}
                Ok(decision) => {
                    verdict = (decision, name);
                    break;
                }
                Err(error) => {
                    let quarantined = matches!(error, PolicyError::Quarantined { .. });
                    let fail_closed = policy.on_error_defer;
                    errors.push((name.clone(), (!quarantined).then_some(key), error.clone()));
                    if fail_closed {
                        verdict = (
                            GuardDecision::Defer {
                                reason: format!(
                                    "respawn guard {name} failed ({}); it fails closed",
                                    error.kind()
                                ),
                                retry_after: None,
                            },
                            name,
                        );
                        break;
                    }
                }
            }
        }
        for (name, key, error) in errors {
            self.record_error(
                store,
                report,
                Failed { policy: &name, key, task_id: &task.id, error: &error },
                now,
            )?;
        }
        Ok(verdict)
    }

    /// Record this tick's outcome for every policy asked, quarantining repeat offenders.
    pub fn finish(self, board: &Board, store: &mut Store, now: i64) -> Result<(), StoreError> {
        for (key, (reference, error)) in self.asked {
            if store.record_policy_tick(
                &key,
                &reference,
                error.as_deref(),
                QUARANTINE_AFTER,
                &board.config_hash,
                now,
            )? {
                tracing::warn!(board = %board.slug, policy = %reference, "policy quarantined after {QUARANTINE_AFTER} failing ticks in a row");
            }
        }
        Ok(())
    }
}
