//! `kanban gc`: remove what a board no longer needs once it is old.
//!
//! - **Events**: liveness noise and the events of cards deleted for good ([`Store::prune_events`]); the
//!   state-change history of every existing card is kept.
//! - **Logs**: the card's log, its backup, its context file and its runs' exit files (named by
//!   `Board::card_files` and `Board::exit_file`) of cards that are done, archived or deleted for good.
//!   Only regular files with exactly those names; anything else in `logs/` is not ours.
//! - **Workspaces**: `workspaces/<id>` of scratch cards that are done, archived or deleted for good (the
//!   completion or archive cleanup should have removed them; gc retries). Every deletion goes through
//!   [`workspace::may_delete_scratch`], the one function that decides what the host may delete.
//!
//! "Old" means last modified (files, folders) or recorded (events) before `now - older_than`. A card that
//! is not finished keeps everything, whatever its age. The card's status is read again right before each
//! deletion, so a card that changed meanwhile keeps its files.

use std::path::{Path, PathBuf};

use serde::Serialize;

use anyhow::Context as _;

use crate::board::Board;
use crate::model::{Status, WorkspaceKind};
use crate::store::{EventPrune, FilesRemoved, Store};
use crate::workspace;

/// One file or folder gc removed (or would remove).
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub task: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Something gc looked at and left in place, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub board: String,
    pub dry_run: bool,
    pub older_than_seconds: i64,
    pub cutoff: i64,
    pub events_deleted: u64,
    pub events_by_kind: std::collections::BTreeMap<String, u64>,
    pub logs: Vec<Removed>,
    pub workspaces: Vec<Removed>,
    pub kept: Vec<Kept>,
    pub bytes_freed: u64,
}

/// Statuses whose leftovers gc may remove (`None`, a card deleted for good, counts too).
fn finished(status: Option<Status>) -> bool {
    status.is_none_or(Status::is_closed)
}

/// `t_` + 8 lowercase hex: the only names gc considers.
fn task_id_of(name: &str) -> Option<&str> {
    let id = name.get(..10)?;
    let hex = id.strip_prefix("t_")?;
    hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()).then_some(id)
}

/// The card a file of the logs folder belongs to, for exactly the names the host writes there.
fn log_owner<'a>(board: &Board, name: &'a str) -> Option<&'a str> {
    let id = task_id_of(name)?;
    let files = board.card_files(id);
    let ours = [&files.log, &files.log_backup, &files.context]
        .iter()
        .any(|path| path.file_name().is_some_and(|n| n == name))
        || name[10..]
            .strip_prefix(".run-")
            .and_then(|rest| rest.strip_suffix(".exit"))
            .and_then(|run| run.parse::<i64>().ok())
            .is_some_and(|run| board.exit_file(id, run).file_name().is_some_and(|n| n == name));
    ours.then_some(id)
}

fn modified(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Bytes under `path`, not following symlinks.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum()).unwrap_or(0)
}

/// Entries of a folder the host created, sorted by name; a missing folder has none.
fn entries(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut out: Vec<(String, PathBuf)> =
        read.flatten().filter_map(|e| e.file_name().to_str().map(|n| (n.to_string(), e.path()))).collect();
    out.sort();
    Ok(out)
}

/// Run gc on one board at `now`. With `dry_run` nothing is deleted and no event is recorded; the report
/// says what a real run would remove.
pub fn run(
    board: &Board,
    store: &mut Store,
    older_than: i64,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<GcReport> {
    let cutoff = now.saturating_sub(older_than);
    let mut report = GcReport {
        board: board.slug.clone(),
        dry_run,
        older_than_seconds: older_than,
        cutoff,
        events_deleted: 0,
        events_by_kind: Default::default(),
        logs: Vec::new(),
        workspaces: Vec::new(),
        kept: Vec::new(),
        bytes_freed: 0,
    };

    for (name, path) in entries(&board.logs_dir())? {
        let Some(task) = log_owner(board, &name) else { continue };
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if modified(&meta) >= cutoff || !finished(store.task_status(task)?) {
            continue;
        }
        if !meta.is_file() {
            report.kept.push(Kept { path, reason: "not a regular file".into() });
            continue;
        }
        let bytes = meta.len();
        if !dry_run && let Err(e) = std::fs::remove_file(&path) {
            report.kept.push(Kept { path, reason: format!("delete failed: {e}") });
            continue;
        }
        report.logs.push(Removed { task: task.to_string(), path, bytes });
    }

    for (name, path) in entries(&board.workspaces_dir())? {
        let Some(task) = task_id_of(&name).filter(|id| id.len() == name.len()) else { continue };
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if modified(&meta) >= cutoff {
            continue;
        }
        match store.task_status(task)? {
            status if !finished(status) => continue,
            Some(_) if store.get_task(task)?.workspace_kind != WorkspaceKind::Scratch => {
                report.kept.push(Kept { path, reason: "the card's workspace is not scratch".into() });
                continue;
            }
            _ => {}
        }
        let real = match workspace::may_delete_scratch(board, &path) {
            Ok(real) => real,
            Err(e) => {
                let reason = match e {
                    workspace::WorkspaceError::Refused { reason, .. } => reason,
                    other => other.to_string(),
                };
                report.kept.push(Kept { path, reason });
                continue;
            }
        };
        let bytes = size_of(&real);
        if !dry_run {
            // Read again right before deleting: a card that came back (an id reused) keeps its files.
            if !finished(store.task_status(task)?) {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(&real) {
                report.kept.push(Kept { path, reason: format!("delete failed: {e}") });
                continue;
            }
        }
        report.workspaces.push(Removed { task: task.to_string(), path, bytes });
    }

    let files = FilesRemoved {
        logs: report.logs.len() as u64,
        workspaces: report.workspaces.len() as u64,
        bytes: report.logs.iter().chain(&report.workspaces).map(|r| r.bytes).sum(),
    };
    let EventPrune { deleted, by_kind } = store.prune_events(cutoff, older_than, &files, dry_run, now)?;
    report.events_deleted = deleted;
    report.events_by_kind = by_kind;
    report.bytes_freed = files.bytes;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_host_writes_are_considered() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::board::Home::resolve(Some(dir.path().to_path_buf())).unwrap();
        let board = home.create_board("b", None, None).unwrap();
        let log_owner = |name| log_owner(&board, name);
        assert_eq!(log_owner("t_0123abcd.log"), Some("t_0123abcd"));
        assert_eq!(log_owner("t_0123abcd.log.1"), Some("t_0123abcd"));
        assert_eq!(log_owner("t_0123abcd.context.md"), Some("t_0123abcd"));
        assert_eq!(log_owner("t_0123abcd.run-12.exit"), Some("t_0123abcd"));
        for other in [
            "t_0123abcd.run-x.exit",
            "t_0123abcd.run-1.exit.tmp",
            "t_0123abcd.log.2",
            "t_0123ABCD.log",
            "t_0123abc.log",
            "x_0123abcd.log",
            "notes.txt",
            "t_0123abcd",
            "t_0123abcd.logx",
            "t_é123abcd.log",
        ] {
            assert_eq!(log_owner(other), None, "{other}");
        }
        assert_eq!(task_id_of("t_0123abcd"), Some("t_0123abcd"));
        assert_eq!(task_id_of("t_012"), None);
    }
}
