//! Built-in policies: the respawn guard's rate-limit cooldown and the default-assignee router.

use super::{GuardDecision, GuardInput, PolicyError, RespawnGuard, RouteInput, Router};

/// Reject config keys the policy does not know, naming the key.
fn check_keys(config: &toml::Table, known: &[&str], plugin: &str) -> Result<(), String> {
    for key in config.keys() {
        if !known.contains(&key.as_str()) {
            return Err(format!("config.{key}: unknown key for {plugin} (known: {})", known.join(", ")));
        }
    }
    Ok(())
}

/// `builtin:respawn-guard`: after a rate-limited run (exit 75), defer the next spawn for the cooldown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespawnGuardRules {
    pub rate_limit_cooldown_seconds: i64,
}

impl Default for RespawnGuardRules {
    fn default() -> Self {
        RespawnGuardRules { rate_limit_cooldown_seconds: 300 }
    }
}

impl RespawnGuardRules {
    pub fn from_config(config: &toml::Table) -> Result<Self, String> {
        check_keys(config, &["rate_limit_cooldown_seconds"], "builtin:respawn-guard")?;
        let mut rules = RespawnGuardRules::default();
        if let Some(value) = config.get("rate_limit_cooldown_seconds") {
            rules.rate_limit_cooldown_seconds = value
                .as_integer()
                .filter(|v| *v >= 0)
                .ok_or("config.rate_limit_cooldown_seconds: must be a non-negative integer")?;
        }
        Ok(rules)
    }
}

impl RespawnGuard for RespawnGuardRules {
    fn name(&self) -> &str {
        "builtin:respawn-guard"
    }

    fn decide(&mut self, input: &GuardInput) -> Result<GuardDecision, PolicyError> {
        if let Some(last) = input.runs.first()
            && last.outcome.as_deref() == Some("rate_limited")
        {
            let ended = last.ended_at.unwrap_or(last.started_at);
            let until = ended + self.rate_limit_cooldown_seconds;
            if input.now < until {
                return Ok(GuardDecision::Defer {
                    reason: format!("rate limited; cooling down until {until} ({}s left)", until - input.now),
                    retry_after: Some(until),
                });
            }
        }
        Ok(GuardDecision::Allow)
    }
}

/// `builtin:default-assignee`: give unassigned ready cards to one profile. A blank assignee means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultAssignee {
    pub assignee: Option<String>,
}

impl DefaultAssignee {
    pub fn from_config(config: &toml::Table) -> Result<Self, String> {
        check_keys(config, &["assignee"], "builtin:default-assignee")?;
        let assignee = match config.get("assignee") {
            None => None,
            Some(value) => Some(
                value
                    .as_str()
                    .ok_or("config.assignee: must be a string (a profile name, or \"\" for none)")?,
            ),
        };
        Ok(DefaultAssignee {
            assignee: assignee.map(str::trim).filter(|a| !a.is_empty()).map(str::to_string),
        })
    }
}

impl Router for DefaultAssignee {
    fn name(&self) -> &str {
        "builtin:default-assignee"
    }

    fn route(&mut self, _input: &RouteInput) -> Result<Option<String>, PolicyError> {
        Ok(self.assignee.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Run, Task};

    fn run(outcome: &str, ended: i64) -> Run {
        Run {
            id: 1,
            task_id: "t_1".into(),
            profile: None,
            status: "ended".into(),
            outcome: Some(outcome.into()),
            error: None,
            summary: None,
            metadata: None,
            exit_code: Some(75),
            claim_lock: None,
            worker_pid: None,
            started_at: ended - 10,
            ended_at: Some(ended),
            last_heartbeat_at: None,
            supervisor_pid: None,
            supervisor_start: None,
            worker_start: None,
            exit_signal: None,
            exited_at: None,
            turn: 1,
        }
    }

    fn task() -> Task {
        crate::store::Task {
            id: "t_1".into(),
            title: "x".into(),
            body: String::new(),
            status: "ready".into(),
            assignee: Some("coder".into()),
            priority: 0,
            tenant: None,
            created_by: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            completed_at: None,
            workspace_kind: "scratch".into(),
            workspace_path: None,
            branch_name: None,
            idempotency_key: None,
            max_runtime_seconds: None,
            max_retries: None,
            consecutive_failures: 0,
            last_failure_error: None,
            goal_mode: false,
            goal_max_turns: None,
            goal_turn: 0,
            session_id: None,
            result: None,
            claim_lock: None,
            claim_expires: None,
            worker_pid: None,
            last_heartbeat_at: None,
            current_run_id: None,
            block_kind: None,
            block_reason: None,
            block_sticky: false,
            protocol_violations: 0,
        }
    }

    #[test]
    fn cooldown_defers_until_it_passes() {
        let mut guard = RespawnGuardRules::default();
        let task = task();
        let runs = [run("rate_limited", 1000)];
        let at = |now| guard.clone().decide(&GuardInput { task: &task, runs: &runs, now }).unwrap();
        assert!(matches!(at(1299), GuardDecision::Defer { retry_after: Some(1300), .. }));
        assert_eq!(at(1300), GuardDecision::Allow);
        let crashed = [run("crashed", 1000)];
        assert_eq!(
            guard.decide(&GuardInput { task: &task, runs: &crashed, now: 1001 }).unwrap(),
            GuardDecision::Allow
        );
    }

    #[test]
    fn configs_are_checked_by_key() {
        let table = |s: &str| s.parse::<toml::Table>().unwrap();
        assert_eq!(
            RespawnGuardRules::from_config(&table("rate_limit_cooldown_seconds = 5"))
                .unwrap()
                .rate_limit_cooldown_seconds,
            5
        );
        assert!(
            RespawnGuardRules::from_config(&table("rate_limit_cooldown = 5"))
                .unwrap_err()
                .contains("config.rate_limit_cooldown")
        );
        assert!(RespawnGuardRules::from_config(&table("rate_limit_cooldown_seconds = -1")).is_err());
        assert_eq!(DefaultAssignee::from_config(&table("assignee = \" \"")).unwrap().assignee, None);
        assert!(
            DefaultAssignee::from_config(&table("assignee = 3")).unwrap_err().contains("config.assignee")
        );
    }
}
