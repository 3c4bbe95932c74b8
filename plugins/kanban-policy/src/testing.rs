//! Contexts for native unit tests: build the facts a host would hand a policy in plain Rust, call the policy,
//! and check its answer with `cargo test` on your machine; no WebAssembly, no host.
//!
//! ```
//! use kanban_policy::testing::ContextBuilder;
//!
//! const NOW: i64 = 1_800_000_000;
//! let ctx = ContextBuilder::new(NOW)
//!     .card(|c| c.title("Fix the login redirect").status("ready").assignee("coder"))
//!     .run(|r| r.outcome("rate_limited").ended_ago(100)) // the newest run first, as the host lists them
//!     .run(|r| r.outcome("crashed").error("exit status 1").ended_ago(4000))
//!     .comment(|c| c.author("alice").body("PR: https://github.com/acme/web/pull/42").ago(600))
//!     .event(|e| e.kind("blocked").payload(r#"{"reason": "needs a key"}"#).ago(7200))
//!     .profile("coder", 1, Some(2))
//!     .config(r#"{"cooldown_seconds": 60}"#)
//!     .build();
//! assert_eq!(ctx.runs[0].ended_at, Some(NOW - 100));
//! assert_eq!(ctx.runs[0].id, 2, "ids count down, newest first");
//! ```
//!
//! Everything not set has a plain default: a `ready` card `t_00000001` on board `test` with failure limit
//! 2, created and updated at `now`; runs, events and comments at `now`; config `{}`.

use std::fmt::Display;

use crate::types::{BoardFacts, Card, Comment, Context, Event, Parent, ProfileLoad, Run};

/// Builds a [`Context`]; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    now: i64,
    card: Card,
    runs: Vec<RunBuilder>,
    events: Vec<EventBuilder>,
    comments: Vec<CommentBuilder>,
    parents: Vec<Parent>,
    board: BoardFacts,
    config: String,
}

impl ContextBuilder {
    /// A context whose clock reads `now` (unix seconds).
    pub fn new(now: i64) -> ContextBuilder {
        ContextBuilder {
            now,
            card: Card {
                id: "t_00000001".into(),
                title: String::new(),
                body: String::new(),
                status: "ready".into(),
                assignee: None,
                priority: 0,
                tenant: None,
                workspace_kind: "scratch".into(),
                workspace_path: None,
                consecutive_failures: 0,
                last_failure_error: None,
                max_retries: None,
                block_kind: None,
                block_reason: None,
                block_sticky: false,
                created_at: now,
                updated_at: now,
            },
            runs: Vec::new(),
            events: Vec::new(),
            comments: Vec::new(),
            parents: Vec::new(),
            board: BoardFacts { slug: "test".into(), profiles: Vec::new(), failure_limit: 2 },
            config: "{}".into(),
        }
    }

    /// Set the card's fields: `.card(|c| c.title("x").status("blocked"))`.
    pub fn card(mut self, edit: impl FnOnce(CardBuilder) -> CardBuilder) -> ContextBuilder {
        self.card = edit(CardBuilder { now: self.now, card: self.card }).card;
        self
    }

    /// Add a run. Add them newest first, as the host lists them; a run given no id gets one that keeps
    /// that order (the last run added is id 1).
    pub fn run(mut self, edit: impl FnOnce(RunBuilder) -> RunBuilder) -> ContextBuilder {
        self.runs.push(edit(RunBuilder::new(self.now)));
        self
    }

    /// Add an event. An event given no id gets its position (1, 2, ...): add them in the order they
    /// happened.
    pub fn event(mut self, edit: impl FnOnce(EventBuilder) -> EventBuilder) -> ContextBuilder {
        self.events.push(edit(EventBuilder::new(self.now)));
        self
    }

    /// Add a comment. A comment given no id gets its position (1, 2, ...).
    pub fn comment(mut self, edit: impl FnOnce(CommentBuilder) -> CommentBuilder) -> ContextBuilder {
        self.comments.push(edit(CommentBuilder::new(self.now)));
        self
    }

    /// Add a parent the card waits on.
    pub fn parent(mut self, id: &str, title: &str, status: &str) -> ContextBuilder {
        self.parents.push(Parent { id: id.into(), title: title.into(), status: status.into() });
        self
    }

    /// Add a profile of the board, with how many of its cards run and its cap.
    pub fn profile(mut self, name: &str, running: u32, cap: Option<u32>) -> ContextBuilder {
        self.board.profiles.push(ProfileLoad { name: name.into(), running, cap });
        self
    }

    /// The board's slug (default `test`).
    pub fn board(mut self, slug: &str) -> ContextBuilder {
        self.board.slug = slug.into();
        self
    }

    /// The card's breaker limit (default 2, the host's default).
    pub fn failure_limit(mut self, limit: i64) -> ContextBuilder {
        self.board.failure_limit = limit;
        self
    }

    /// The policy's config: JSON text, or a `serde_json::Value` (`serde_json::json!({"a": 1})`).
    pub fn config(mut self, json: impl Display) -> ContextBuilder {
        self.config = json.to_string();
        self
    }

    pub fn build(self) -> Context {
        let count = self.runs.len() as i64;
        Context {
            card: self.card,
            runs: self.runs.into_iter().zip(0..).map(|(run, i)| run.build(count - i)).collect(),
            events: self.events.into_iter().zip(1..).map(|(event, i)| event.build(i)).collect(),
            comments: self.comments.into_iter().zip(1..).map(|(comment, i)| comment.build(i)).collect(),
            parents: self.parents,
            board: self.board,
            now: self.now,
            config: self.config,
        }
    }
}

/// The card of a [`ContextBuilder`].
#[derive(Debug, Clone)]
pub struct CardBuilder {
    now: i64,
    card: Card,
}

impl CardBuilder {
    pub fn id(mut self, id: &str) -> Self {
        self.card.id = id.into();
        self
    }

    pub fn title(mut self, title: &str) -> Self {
        self.card.title = title.into();
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.card.body = body.into();
        self
    }

    /// triage, todo, scheduled, ready, running, blocked, review, done or archived.
    pub fn status(mut self, status: &str) -> Self {
        self.card.status = status.into();
        self
    }

    pub fn assignee(mut self, profile: &str) -> Self {
        self.card.assignee = Some(profile.into());
        self
    }

    pub fn priority(mut self, priority: i64) -> Self {
        self.card.priority = priority;
        self
    }

    pub fn tenant(mut self, tenant: &str) -> Self {
        self.card.tenant = Some(tenant.into());
        self
    }

    /// The workspace kind (scratch, dir or worktree) and path.
    pub fn workspace(mut self, kind: &str, path: Option<&str>) -> Self {
        self.card.workspace_kind = kind.into();
        self.card.workspace_path = path.map(str::to_string);
        self
    }

    pub fn consecutive_failures(mut self, failures: i64) -> Self {
        self.card.consecutive_failures = failures;
        self
    }

    pub fn last_failure_error(mut self, error: &str) -> Self {
        self.card.last_failure_error = Some(error.into());
        self
    }

    pub fn max_retries(mut self, retries: i64) -> Self {
        self.card.max_retries = Some(retries);
        self
    }

    /// Block the card: its status becomes `blocked`, with the block's kind, reason and stickiness.
    pub fn blocked(mut self, kind: &str, reason: &str, sticky: bool) -> Self {
        self.card.status = "blocked".into();
        self.card.block_kind = Some(kind.into());
        self.card.block_reason = Some(reason.into());
        self.card.block_sticky = sticky;
        self
    }

    pub fn created_at(mut self, at: i64) -> Self {
        self.card.created_at = at;
        self
    }

    pub fn updated_at(mut self, at: i64) -> Self {
        self.card.updated_at = at;
        self
    }

    /// Last updated `seconds` before now.
    pub fn updated_ago(self, seconds: i64) -> Self {
        let now = self.now;
        self.updated_at(now - seconds)
    }
}

/// A run of a [`ContextBuilder`]. Its status is `ended` once it has an end time, else `running`, unless set;
/// it starts when it ends (or now) unless told otherwise.
#[derive(Debug, Clone)]
pub struct RunBuilder {
    now: i64,
    id: Option<i64>,
    profile: Option<String>,
    status: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    exit_code: Option<i64>,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl RunBuilder {
    fn new(now: i64) -> Self {
        RunBuilder {
            now,
            id: None,
            profile: None,
            status: None,
            outcome: None,
            error: None,
            exit_code: None,
            started_at: None,
            ended_at: None,
        }
    }

    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }

    pub fn profile(mut self, profile: &str) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// running, exited or ended.
    pub fn status(mut self, status: &str) -> Self {
        self.status = Some(status.into());
        self
    }

    /// completed, blocked, crashed, rate_limited, ...: see [`Outcome`](crate::Outcome).
    pub fn outcome(mut self, outcome: &str) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    pub fn error(mut self, error: &str) -> Self {
        self.error = Some(error.into());
        self
    }

    pub fn exit_code(mut self, code: i64) -> Self {
        self.exit_code = Some(code);
        self
    }

    pub fn started_at(mut self, at: i64) -> Self {
        self.started_at = Some(at);
        self
    }

    pub fn ended_at(mut self, at: i64) -> Self {
        self.ended_at = Some(at);
        self
    }

    /// Started `seconds` before now.
    pub fn started_ago(self, seconds: i64) -> Self {
        let now = self.now;
        self.started_at(now - seconds)
    }

    /// Ended `seconds` before now.
    pub fn ended_ago(self, seconds: i64) -> Self {
        let now = self.now;
        self.ended_at(now - seconds)
    }

    fn build(self, default_id: i64) -> Run {
        Run {
            id: self.id.unwrap_or(default_id),
            profile: self.profile,
            status: self
                .status
                .unwrap_or_else(|| if self.ended_at.is_some() { "ended" } else { "running" }.into()),
            outcome: self.outcome,
            error: self.error,
            exit_code: self.exit_code,
            started_at: self.started_at.or(self.ended_at).unwrap_or(self.now),
            ended_at: self.ended_at,
        }
    }
}

/// An event of a [`ContextBuilder`]: kind `created` with payload `{}` at `now` unless set.
#[derive(Debug, Clone)]
pub struct EventBuilder {
    now: i64,
    id: Option<i64>,
    kind: String,
    payload: String,
    created_at: i64,
}

impl EventBuilder {
    fn new(now: i64) -> Self {
        EventBuilder { now, id: None, kind: "created".into(), payload: "{}".into(), created_at: now }
    }

    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }

    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = kind.into();
        self
    }

    /// The payload: JSON text, or a `serde_json::Value`.
    pub fn payload(mut self, json: impl Display) -> Self {
        self.payload = json.to_string();
        self
    }

    pub fn at(mut self, at: i64) -> Self {
        self.created_at = at;
        self
    }

    /// Happened `seconds` before now.
    pub fn ago(self, seconds: i64) -> Self {
        let now = self.now;
        self.at(now - seconds)
    }

    fn build(self, default_id: i64) -> Event {
        Event {
            id: self.id.unwrap_or(default_id),
            kind: self.kind,
            payload: self.payload,
            created_at: self.created_at,
        }
    }
}

/// A comment of a [`ContextBuilder`]: empty, by nobody, at `now` unless set.
#[derive(Debug, Clone)]
pub struct CommentBuilder {
    now: i64,
    id: Option<i64>,
    author: Option<String>,
    body: String,
    created_at: i64,
}

impl CommentBuilder {
    fn new(now: i64) -> Self {
        CommentBuilder { now, id: None, author: None, body: String::new(), created_at: now }
    }

    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }

    pub fn author(mut self, author: &str) -> Self {
        self.author = Some(author.into());
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }

    pub fn at(mut self, at: i64) -> Self {
        self.created_at = at;
        self
    }

    /// Written `seconds` before now.
    pub fn ago(self, seconds: i64) -> Self {
        let now = self.now;
        self.at(now - seconds)
    }

    fn build(self, default_id: i64) -> Comment {
        Comment {
            id: self.id.unwrap_or(default_id),
            author: self.author,
            body: self.body,
            created_at: self.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_plain() {
        let ctx = ContextBuilder::new(100).build();
        assert_eq!(ctx.card.id, "t_00000001");
        assert_eq!(ctx.card.status, "ready");
        assert_eq!((ctx.card.created_at, ctx.card.updated_at), (100, 100));
        assert_eq!(ctx.board.failure_limit, 2);
        assert_eq!(ctx.config, "{}");
        assert!(ctx.runs.is_empty() && ctx.events.is_empty() && ctx.comments.is_empty());
    }

    #[test]
    fn ids_and_times() {
        let ctx = ContextBuilder::new(1000)
            .card(|c| c.blocked("needs_input", "which API key?", true).updated_ago(50))
            .run(|r| r.ended_ago(10))
            .run(|r| r.id(40).started_ago(300).ended_ago(200).outcome("crashed").exit_code(139))
            .run(|r| r)
            .event(|e| e.kind("created").ago(900))
            .event(|e| e.kind("blocked"))
            .comment(|c| c.body("hi"))
            .config(serde_json::json!({"a": 1}))
            .build();
        assert_eq!(ctx.card.status, "blocked");
        assert_eq!(ctx.card.updated_at, 950);
        assert_eq!(ctx.runs.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 40, 1]);
        assert_eq!(
            (ctx.runs[0].started_at, ctx.runs[0].ended_at, ctx.runs[0].status.as_str()),
            (990, Some(990), "ended")
        );
        assert_eq!((ctx.runs[1].started_at, ctx.runs[1].ended_at), (700, Some(800)));
        assert_eq!((ctx.runs[2].started_at, ctx.runs[2].status.as_str()), (1000, "running"));
        assert_eq!(
            ctx.events.iter().map(|e| (e.id, e.created_at)).collect::<Vec<_>>(),
            [(1, 100), (2, 1000)]
        );
        assert_eq!(ctx.comments[0].id, 1);
        assert_eq!(ctx.config, r#"{"a":1}"#);
    }
}
