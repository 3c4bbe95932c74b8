//! The JSON documents the host shows people and scripts, shared by every front end (the CLI's `--json`,
//! the HTTP API). Records serialize as themselves (their internal columns are skipped by decision in
//! `model`); documents that combine records are built here, once.

use std::path::PathBuf;

use serde::Serialize;

use crate::board::{Board, BoardError, Home};
use crate::model::{Attachment, Comment, Event, Finding, Run, Task};
use crate::store::{Store, StoreError, TaskDetail};

/// An attachment with the path of its file.
#[derive(Debug, Serialize)]
pub struct AttachmentView<'a> {
    #[serde(flatten)]
    pub attachment: &'a Attachment,
    pub path: PathBuf,
}

impl<'a> AttachmentView<'a> {
    pub fn new(board: &Board, attachment: &'a Attachment) -> Self {
        AttachmentView { path: crate::ops::attachments::path_of(board, attachment), attachment }
    }
}

/// `show --json`: a card with everything around it.
#[derive(Debug, Serialize)]
pub struct ShowView<'a> {
    pub task: &'a Task,
    pub parents: &'a [Task],
    pub children: &'a [Task],
    pub comments: &'a [Comment],
    pub events: &'a [Event],
    pub runs: &'a [Run],
    pub attachments: Vec<AttachmentView<'a>>,
    /// From the latest `kanban diagnostics` run (stored; `show` never runs a policy itself).
    pub findings: &'a [Finding],
}

impl<'a> ShowView<'a> {
    pub fn new(board: &Board, detail: &'a TaskDetail, findings: &'a [Finding]) -> Self {
        ShowView {
            task: &detail.task,
            parents: &detail.parents,
            children: &detail.children,
            comments: &detail.comments,
            events: &detail.events,
            runs: &detail.runs,
            attachments: detail.attachments.iter().map(|a| AttachmentView::new(board, a)).collect(),
            findings,
        }
    }
}

/// Everything `show` presents about one card, read in one place for every front end.
pub struct CardPage {
    pub detail: TaskDetail,
    pub findings: Vec<Finding>,
}

impl CardPage {
    pub fn read(store: &mut Store, id: &str) -> Result<CardPage, StoreError> {
        Ok(CardPage { detail: store.task_detail(id)?, findings: store.findings(id)? })
    }

    /// The `show --json` document.
    pub fn view<'a>(&'a self, board: &Board) -> ShowView<'a> {
        ShowView::new(board, &self.detail, &self.findings)
    }
}

/// `board list --json`: one board of the home.
#[derive(Debug, Serialize)]
pub struct BoardRow {
    pub slug: String,
    pub name: String,
    pub path: String,
    /// The home's current board (`board switch`), not a one-off `--board`.
    pub current: bool,
}

impl BoardRow {
    /// Every board of the home, or only `only` (a server started with `--board`).
    pub fn list(home: &Home, only: Option<&str>) -> Result<Vec<BoardRow>, BoardError> {
        let current = home.pick_board(None);
        let mut rows = Vec::new();
        for slug in home.board_slugs()? {
            if only.is_some_and(|only| only != slug) {
                continue;
            }
            // A board with a broken board.toml is still listed, so the operator can find and fix it.
            let name = home.open_board(&slug).map(|b| b.name().to_string()).unwrap_or_else(|_| slug.clone());
            rows.push(BoardRow {
                path: home.board_dir(&slug).display().to_string(),
                current: slug == current,
                name,
                slug,
            });
        }
        Ok(rows)
    }
}

/// What a lifecycle action did (the HTTP API's answer to an action; the CLI prints the same facts as lines).
#[derive(Debug, Serialize)]
pub struct ActedView<'a> {
    /// The card as it is now.
    pub task: &'a Task,
    /// The card's worker was stopped first.
    pub stopped_worker: bool,
    /// Why the card stays running until its worker is gone (the dispatcher finishes the stop).
    pub pending: Option<&'a str>,
    /// A workspace left in place, with the reason.
    pub kept_workspace: Option<String>,
    /// What the CLI prints as `kanban: warning: ...` (an assignee that is not a profile of the board).
    pub warnings: Vec<String>,
}

impl<'a> ActedView<'a> {
    pub fn new(acted: &'a crate::ops::cards::Acted, warnings: Vec<String>) -> Self {
        let kept_workspace = match &acted.cleanup {
            crate::workspace::Cleanup::Kept { path, reason }
                if acted.task.workspace_kind != crate::model::WorkspaceKind::Dir =>
            {
                Some(format!("{}: {reason}", path.display()))
            }
            _ => None,
        };
        ActedView {
            task: &acted.task,
            stopped_worker: acted.stopped_worker,
            pending: acted.pending.as_deref(),
            kept_workspace,
            warnings,
        }
    }
}
