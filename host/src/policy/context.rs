//! The context record handed to every policy call: the card and its recent history, the board's facts,
//! `now`, and the policy's config. Built here and nowhere else, so every policy kind sees the same shape.

use std::collections::BTreeMap;

use super::runtime::bindings::types;
use crate::board::Board;
use crate::breaker::FailureLimit;
use crate::store::{Store, StoreError, TaskDetail};

/// Newest runs, newest events, newest comments handed to a policy.
pub const RUNS: usize = 20;
pub const EVENTS: usize = 200;
pub const COMMENTS: usize = 50;

/// Build the context for `task_id`. `running` counts running cards per profile.
pub fn build(
    board: &Board,
    store: &mut Store,
    task_id: &str,
    running: &BTreeMap<String, usize>,
    config_json: &str,
    now: i64,
) -> Result<types::Context, StoreError> {
    let detail = store.task_detail(task_id)?;
    Ok(from_detail(board, detail, running, config_json, now))
}

pub fn from_detail(
    board: &Board,
    detail: TaskDetail,
    running: &BTreeMap<String, usize>,
    config_json: &str,
    now: i64,
) -> types::Context {
    let TaskDetail { task: t, parents, comments, events, runs, .. } = detail;
    let d = &board.config.dispatch;
    let card = types::Card {
        id: t.id.clone(),
        title: t.title.clone(),
        body: t.body.clone(),
        status: t.status.clone(),
        assignee: t.assignee.clone(),
        priority: t.priority,
        tenant: t.tenant.clone(),
        workspace_kind: t.workspace_kind.clone(),
        workspace_path: t.workspace_path.clone(),
        consecutive_failures: t.consecutive_failures,
        last_failure_error: t.last_failure_error.clone(),
        max_retries: t.max_retries,
        block_kind: t.block_kind.clone(),
        block_reason: t.block_reason.clone(),
        block_sticky: t.block_sticky,
        created_at: t.created_at,
        updated_at: t.updated_at,
    };
    let runs = runs
        .into_iter()
        .rev()
        .take(RUNS)
        .map(|r| types::Run {
            id: r.id,
            profile: r.profile,
            status: r.status,
            outcome: r.outcome,
            error: r.error,
            exit_code: r.exit_code,
            started_at: r.started_at,
            ended_at: r.ended_at,
        })
        .collect();
    let skip = events.len().saturating_sub(EVENTS);
    let events = events
        .into_iter()
        .skip(skip)
        .map(|e| types::Event {
            id: e.id,
            kind: e.kind,
            payload: e.payload.to_string(),
            created_at: e.created_at,
        })
        .collect();
    let skip = comments.len().saturating_sub(COMMENTS);
    let comments = comments
        .into_iter()
        .skip(skip)
        .map(|c| types::Comment { id: c.id, author: c.author, body: c.body, created_at: c.created_at })
        .collect();
    let parents =
        parents.into_iter().map(|p| types::Parent { id: p.id, title: p.title, status: p.status }).collect();
    let profiles = board
        .config
        .profiles
        .iter()
        .map(|(name, profile)| types::ProfileLoad {
            name: name.clone(),
            running: running.get(name).copied().unwrap_or(0) as u32,
            cap: profile.max_in_progress.or(d.max_in_progress_per_profile),
        })
        .collect();
    types::Context {
        card,
        runs,
        events,
        comments,
        parents,
        board: types::BoardFacts {
            slug: board.slug.clone(),
            profiles,
            failure_limit: FailureLimit::resolve(t.max_retries, Some(d.failure_limit)),
        },
        now,
        config: config_json.to_string(),
    }
}
