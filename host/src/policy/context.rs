//! The context record handed to every policy call: the card and its recent history, the board's facts,
//! `now`, and the policy's config. Built here and nowhere else, from facts the caller read
//! ([`CardFacts`]), so every policy kind sees the same shape and this module never reads the store. The
//! record is built once per card per tick; only `config` differs between the policies asked about it.

use std::collections::BTreeMap;

use super::runtime::bindings::types;
use crate::board::Board;
use crate::breaker::FailureLimit;
use crate::model::CardFacts;

/// Newest runs, newest events, newest comments handed to a policy (the store reads exactly these many).
pub const RUNS: i64 = 20;
pub const EVENTS: i64 = 200;
pub const COMMENTS: i64 = 50;

/// The record for one card, with an empty `config` (set per policy). `running` counts running cards per
/// profile.
pub fn record(
    board: &Board,
    facts: CardFacts,
    running: &BTreeMap<String, usize>,
    now: i64,
) -> types::Context {
    let CardFacts { task: t, runs, events, comments, parents } = facts;
    let d = &board.config.dispatch;
    let failure_limit = FailureLimit::resolve(t.max_retries, Some(d.failure_limit));
    let card = types::Card {
        id: t.id,
        title: t.title,
        body: t.body,
        status: t.status.as_str().to_string(),
        assignee: t.assignee,
        priority: t.priority,
        tenant: t.tenant,
        workspace_kind: t.workspace_kind.as_str().to_string(),
        workspace_path: t.workspace_path,
        consecutive_failures: t.consecutive_failures,
        last_failure_error: t.last_failure_error,
        max_retries: t.max_retries,
        block_kind: t.block_kind,
        block_reason: t.block_reason,
        block_sticky: t.block_sticky,
        created_at: t.created_at,
        updated_at: t.updated_at,
    };
    let runs = runs
        .into_iter()
        .map(|r| types::Run {
            id: r.id,
            profile: r.profile,
            status: r.status.as_str().to_string(),
            outcome: r.outcome.map(|o| o.as_str().to_string()),
            error: r.error,
            exit_code: r.exit_code,
            started_at: r.started_at,
            ended_at: r.ended_at,
        })
        .collect();
    let events = events
        .into_iter()
        .map(|e| types::Event {
            id: e.id,
            kind: e.kind,
            payload: e.payload.to_string(),
            created_at: e.created_at,
        })
        .collect();
    let comments = comments
        .into_iter()
        .map(|c| types::Comment { id: c.id, author: c.author, body: c.body, created_at: c.created_at })
        .collect();
    let parents = parents
        .into_iter()
        .map(|p| types::Parent { id: p.id, title: p.title, status: p.status.as_str().to_string() })
        .collect();
    let profiles = profile_loads(board, running);
    types::Context {
        card,
        runs,
        events,
        comments,
        parents,
        board: types::BoardFacts { slug: board.slug.clone(), profiles, failure_limit },
        now,
        config: String::new(),
    }
}

/// Each profile of the board with its running count and cap.
pub fn profile_loads(board: &Board, running: &BTreeMap<String, usize>) -> Vec<types::ProfileLoad> {
    let d = &board.config.dispatch;
    board
        .config
        .profiles
        .iter()
        .map(|(name, profile)| types::ProfileLoad {
            name: name.clone(),
            running: running.get(name).copied().unwrap_or(0) as u32,
            cap: profile.max_in_progress.or(d.max_in_progress_per_profile),
        })
        .collect()
}
