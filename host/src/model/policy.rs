//! What policies decide, as the host validated it: a guard's verdict, a diagnostics finding, a
//! decomposition plan.

use serde::{Deserialize, Serialize};

use super::WorkspaceKind;

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

named_enum! {
    /// How bad a diagnostics finding is, least severe first.
    pub enum Severity {
        Info => "info",
        Warning => "warning",
        Error => "error",
        Critical => "critical",
    }
}

/// A diagnostics finding, as the host validated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub task_id: Option<String>,
    pub policy: String,
    pub rule: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub actions: Vec<String>,
}

/// A child card of a decomposition, as the host validated it (see `policy::check_children`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSpec {
    pub title: String,
    pub body: String,
    /// Not blank when set.
    pub assignee: Option<String>,
    pub priority: i64,
    /// An override of the root's workspace; the path is absolute when given.
    pub workspace: Option<(WorkspaceKind, Option<String>)>,
    /// Indexes of earlier siblings this child waits on.
    pub depends_on: Vec<usize>,
}

/// What a decomposition policy asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecomposePlan {
    Children(Vec<ChildSpec>),
    /// Leave the card in triage, with the reason.
    Leave(String),
}

/// Which policy of a board a health record (failing ticks, quarantine) belongs to: its `[[policies]]`
/// entry (`None` for an implicit built-in default), its reference as written, and the exact bytes it ran.
/// Reinstalling a plugin (new bytes) starts a clean record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PolicyKey {
    pub entry: Option<usize>,
    pub reference: String,
    pub sha256: String,
}

impl PolicyKey {
    /// The record's id in the store.
    pub fn id(&self) -> String {
        let entry = self.entry.map(|i| i.to_string()).unwrap_or_else(|| "default".into());
        format!("{entry}:{}:{}", self.reference, self.sha256)
    }
}
