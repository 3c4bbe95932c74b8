//! The shared vocabulary: the words every room of the house speaks (card and run states, outcomes,
//! workspace kinds, policy kinds and the decisions policies return).
//!
//! A leaf: it imports nothing from the rest of the crate, so the store, the policy runtime, the board's
//! configuration and the dispatcher can all depend on it without depending on each other. Each enum is
//! stored and printed by its `as_str` name (the JSON and SQL spelling of the CLI contract), and read back
//! with `parse`; [`sql`] maps them to and from SQLite. Status strings appear nowhere else in the host
//! outside the migrations.

use serde::{Deserialize, Serialize};

/// Declare a string-backed enum: `as_str`, `parse`, `ALL`, `Display`, and serde by name.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used in JSON, SQL and messages.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The name as an SQL string literal (`'ready'`), for queries that compare with a constant.
            pub const fn sql(self) -> &'static str {
                match self {
                    $($name::$variant => concat!("'", $text, "'"),)+
                }
            }

            /// Read a name back; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Every name, in declaration order (for clap's possible values and messages).
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

mod policy;
mod rows;
mod sql;

pub use policy::{ChildSpec, DecomposePlan, Finding, GuardDecision, PolicyKey, Severity};
pub use rows::{Attachment, CardFacts, CardHistory, Comment, Event, Pause, Run, Schedule, Task, Template};

named_enum! {
    /// A card's place in its lifecycle, in lifecycle order (the `status` sort uses this order).
    pub enum Status {
        /// A raw idea awaiting decomposition.
        Triage => "triage",
        /// Waiting on open parents.
        Todo => "todo",
        /// Parked on purpose.
        Scheduled => "scheduled",
        /// Dispatchable (the work lane).
        Ready => "ready",
        /// Claimed; a worker is (or is about to be) live.
        Running => "running",
        /// Needs a human, or the breaker tripped.
        Blocked => "blocked",
        /// Waiting for the review lane (a reviewer's worker, or a person).
        Review => "review",
        Done => "done",
        /// Soft-deleted.
        Archived => "archived",
    }
}

impl Status {
    /// A parent in a closed status no longer holds its children back.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Done | Status::Archived)
    }

    /// The statuses a dispatcher claims from, one per lane.
    pub fn is_dispatchable(self) -> bool {
        matches!(self, Status::Ready | Status::Review)
    }
}

named_enum! {
    /// Where one attempt (run) stands.
    pub enum RunStatus {
        /// The attempt is live (or its supervisor is starting it).
        Running => "running",
        /// The worker exited and its supervisor recorded how; the next tick classifies it.
        Exited => "exited",
        /// Its end is decided (the outcome is recorded) and its processes are being stopped; the card
        /// moves on only once none of them is left.
        Stopping => "stopping",
        /// Over.
        Ended => "ended",
    }
}

impl RunStatus {
    /// Still the card's open attempt.
    pub fn is_open(self) -> bool {
        !matches!(self, RunStatus::Ended)
    }
}

named_enum! {
    /// What a recurring schedule does with the occurrences a dispatcher missed while it was down.
    pub enum CatchUp {
        /// Create only the newest missed occurrence.
        Latest => "latest",
        /// Create every missed occurrence (the newest 100).
        All => "all",
        /// Create none: only occurrences the tick finds on time.
        None => "none",
    }
}

named_enum! {
    /// How a run ended.
    pub enum Outcome {
        /// The worker (or a person, or the goal judge) completed the card.
        Completed => "completed",
        /// The worker (or a person, or the goal judge) blocked the card.
        Blocked => "blocked",
        /// The worker asked for review; the card went to the review lane.
        ReviewRequested => "review_requested",
        /// A reviewer sent the card back to its implementer.
        ChangesRequested => "changes_requested",
        /// A person archived the running card.
        Archived => "archived",
        /// Exit 0 without a terminal call.
        ProtocolViolation => "protocol_violation",
        /// Exit 75 (EX_TEMPFAIL): a rate limit or quota wall. Requeued; no failure counted.
        RateLimited => "rate_limited",
        /// Exit 78 (EX_CONFIG): bad credentials or model. The breaker trips at once, sticky.
        ConfigError => "config_error",
        /// Any other exit code or a signal, or gone without a recorded exit.
        Crashed => "crashed",
        /// Stopped for running past `max_runtime`.
        TimedOut => "timed_out",
        /// Requeued: no heartbeat for the stale timeout.
        Stale => "stale",
        /// Requeued: by a person, or by the dispatcher (a dead worker after its claim expired, a stale
        /// heartbeat, a lost host).
        Reclaimed => "reclaimed",
        /// The worker could not be started (workspace or exec failure).
        SpawnFailed => "spawn_failed",
        /// The dispatcher claimed the card but died before a supervisor started.
        SpawnLost => "spawn_lost",
        /// The host failed, not the card (its own supervisor could not start): requeued uncounted.
        HostError => "host_error",
    }
}

impl Outcome {
    /// Recorded by the attempt's own worker (or its judge) through a terminal call: `complete`, `block`,
    /// `review`, `request-changes`. Any other outcome that ends a run while its worker still runs means the
    /// attempt was taken away from it.
    pub fn is_report(self) -> bool {
        matches!(
            self,
            Outcome::Completed | Outcome::Blocked | Outcome::ReviewRequested | Outcome::ChangesRequested
        )
    }
}

named_enum! {
    /// What an audit event records. Settling a run records its [`Outcome`]'s name (see
    /// [`EventKind::of_outcome`]).
    pub enum EventKind {
        Created => "created",
        RunStarted => "run_started",
        Edited => "edited",
        Assigned => "assigned",
        Reassigned => "reassigned",
        Commented => "commented",
        Linked => "linked",
        Waiting => "waiting",
        Unlinked => "unlinked",
        Ready => "ready",
        Blocked => "blocked",
        Unblocked => "unblocked",
        Recovered => "recovered",
        Scheduled => "scheduled",
        Promoted => "promoted",
        Completed => "completed",
        Archived => "archived",
        Deleted => "deleted",
        Reclaimed => "reclaimed",
        ReviewRequested => "review_requested",
        ChangesRequested => "changes_requested",
        Heartbeat => "heartbeat",
        Attached => "attached",
        AttachmentRemoved => "attachment_removed",
        Claimed => "claimed",
        WorkerStarted => "worker_started",
        WorkerExited => "worker_exited",
        ClaimExtended => "claim_extended",
        StopRequested => "stop_requested",
        Stopped => "stopped",
        StopPending => "stop_pending",
        ProtocolViolation => "protocol_violation",
        RateLimited => "rate_limited",
        ConfigError => "config_error",
        Crashed => "crashed",
        TimedOut => "timed_out",
        Stale => "stale",
        SpawnFailed => "spawn_failed",
        SpawnLost => "spawn_lost",
        HostError => "host_error",
        GaveUp => "gave_up",
        /// A respawn guard deferred the card's spawn. Recorded once per streak: a tick records it unless
        /// the card's newest event already is a deferral by the same policy.
        Deferred => "deferred",
        GoalContinue => "goal_continue",
        Tip => "tip",
        DispatcherHealth => "dispatcher_health",
        Gc => "gc",
        PolicyError => "policy_error",
        PolicyQuarantined => "policy_quarantined",
        Decomposed => "decomposed",
        DecomposeLeft => "decompose_left",
        /// The board, or one of its profiles, was paused (or its pause's reason updated). Board-level.
        Paused => "paused",
        /// A pause was lifted. Board-level.
        Resumed => "resumed",
        /// A recurring schedule was added (`kanban recurring add`). Board-level.
        RecurringAdded => "recurring_added",
        /// A recurring schedule was removed. Board-level.
        RecurringRemoved => "recurring_removed",
        /// The tick created the card of a schedule's occurrence. On the new card.
        RecurringCreated => "recurring_created",
        /// The tick skipped a schedule's occurrence (`--skip-if-open`, missed by the catch-up rule, or its
        /// card could not be created). Board-level.
        RecurringSkipped => "recurring_skipped",
        /// A host published the board's configuration to the fleet (a shared board only). Board-level.
        ConfigPublished => "config_published",
        /// A host pinned a plugin name to new bytes for the fleet (a shared board only). Board-level.
        PluginPublished => "plugin_published",
    }
}

impl EventKind {
    /// The event that records a run settled with `outcome`.
    pub fn of_outcome(outcome: Outcome) -> EventKind {
        EventKind::parse(outcome.as_str()).expect("every outcome has an event kind")
    }
}

named_enum! {
    /// Where a card's worker works.
    pub enum WorkspaceKind {
        /// `<board>/workspaces/<card>`, deleted when the card completes or is archived.
        Scratch => "scratch",
        /// An operator's directory; never deleted.
        Dir => "dir",
        /// A git worktree; removed only when clean and pushed.
        Worktree => "worktree",
    }
}

named_enum! {
    /// The lane a run was dispatched from: its card returns there when the run is requeued.
    pub enum Lane {
        /// From `ready`, to the card's assignee.
        Work => "work",
        /// From `review`, to the card's reviewer.
        Review => "review",
    }
}

impl Lane {
    /// The status a card of this lane waits in.
    pub fn waiting_status(self) -> Status {
        match self {
            Lane::Work => Status::Ready,
            Lane::Review => Status::Review,
        }
    }
}

named_enum! {
    /// The four kinds of policy a board can run.
    pub enum PolicyKind {
        RespawnGuard => "respawn-guard",
        Diagnostics => "diagnostics",
        Routing => "routing",
        Decompose => "decompose",
    }
}

/// The built-in policies by name (`builtin:NAME` in board.toml) and kind. The components themselves are
/// embedded by `policy::builtins`, which checks it holds exactly these.
pub const BUILTIN_POLICIES: &[(&str, PolicyKind)] = &[
    ("respawn-guard", PolicyKind::RespawnGuard),
    ("diagnostics", PolicyKind::Diagnostics),
    ("default-assignee", PolicyKind::Routing),
    ("checklist-decompose", PolicyKind::Decompose),
];

named_enum! {
    /// What a failing respawn guard means for the spawn.
    pub enum OnError {
        /// Fail open: the spawn goes ahead (the default).
        Allow => "allow",
        /// Fail closed: the spawn is deferred.
        Defer => "defer",
    }
}

/// Records for unit tests: a card and a run with every field at its default.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub fn task(id: &str) -> Task {
        Task {
            id: id.into(),
            title: "a card".into(),
            body: String::new(),
            status: Status::Ready,
            assignee: Some("coder".into()),
            priority: 0,
            tenant: None,
            created_by: None,
            created_at: 1,
            updated_at: 1,
            started_at: None,
            completed_at: None,
            workspace_kind: WorkspaceKind::Scratch,
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
            claim_host: None,
            claim_expires: None,
            worker_pid: None,
            last_heartbeat_at: None,
            current_run_id: None,
            block_kind: None,
            block_reason: None,
            block_sticky: false,
            protocol_violations: 0,
            stale_reclaims: 0,
            reviewer: None,
            parents_waived: false,
        }
    }

    pub fn run(id: i64, task_id: &str) -> Run {
        Run {
            id,
            task_id: task_id.into(),
            profile: Some("coder".into()),
            status: RunStatus::Running,
            outcome: None,
            error: None,
            summary: None,
            metadata: None,
            exit_code: None,
            claim_lock: None,
            worker_pid: None,
            started_at: 1,
            ended_at: None,
            last_heartbeat_at: None,
            supervisor_pid: None,
            supervisor_start: None,
            worker_start: None,
            exit_signal: None,
            exited_at: None,
            turn: 1,
            lane: Lane::Work,
            workspace: None,
            host_id: None,
            stop_requested_at: None,
            stop_action: None,
            swept_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_itself() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        for k in PolicyKind::ALL {
            assert_eq!(serde_json::from_value::<PolicyKind>(serde_json::json!(k.as_str())).unwrap(), *k);
        }
        assert_eq!(Status::parse("Ready"), None);
        assert_eq!(
            Status::names(),
            ["triage", "todo", "scheduled", "ready", "running", "blocked", "review", "done", "archived"]
        );
    }

    #[test]
    fn lanes_requeue_to_their_own_status() {
        assert_eq!(Lane::Work.waiting_status(), Status::Ready);
        assert_eq!(Lane::Review.waiting_status(), Status::Review);
        assert!(Status::Done.is_closed() && Status::Archived.is_closed() && !Status::Review.is_closed());
    }
}
