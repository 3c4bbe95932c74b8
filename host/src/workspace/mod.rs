//! Where a worker works, and the one function that decides whether a path may be deleted.
//!
//! - `scratch`: `<board>/workspaces/<task_id>`, created for the run, deleted when the card completes or is
//!   archived.
//! - `dir:<abs>`: the operator's directory; never deleted.
//! - `worktree[:<repo>]`: `git worktree add <repo>/.worktrees/<task_id>` on `--branch` or `wt/<task_id>`;
//!   removed only when clean and pushed.
//!
//! The host never deletes a path it cannot prove it owns: [`may_delete_scratch`] allows only a directory
//! strictly below the board's managed `workspaces/` root (resolved through symlinks), never the root
//! itself. Anything else is refused with a log line and the files stay.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::Board;
use crate::model::{Task, WorkspaceKind};

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error(
        "card {task} has a {kind} workspace but no path (set --workspace {kind}:/abs/path or the board's default_workdir)"
    )]
    NoPath { task: String, kind: WorkspaceKind },
    #[error("git worktree for {task} in {repo}: {message}")]
    Git { task: String, repo: PathBuf, message: String },
    #[error("refusing to delete {path}: {reason}")]
    Refused { path: PathBuf, reason: String },
}

/// The directory a card's worker runs in (whether or not it exists yet).
pub fn path_for(board: &Board, task: &Task) -> Result<PathBuf, WorkspaceError> {
    match task.workspace_kind {
        WorkspaceKind::Dir => task
            .workspace_path
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| WorkspaceError::NoPath { task: task.id.clone(), kind: WorkspaceKind::Dir }),
        WorkspaceKind::Worktree => {
            let repo = task.workspace_path.as_ref().map(PathBuf::from).ok_or_else(|| {
                WorkspaceError::NoPath { task: task.id.clone(), kind: WorkspaceKind::Worktree }
            })?;
            Ok(repo.join(".worktrees").join(&task.id))
        }
        WorkspaceKind::Scratch => Ok(board.card_files(&task.id).scratch),
    }
}

/// The branch a worktree card works on.
pub fn branch_for(task: &Task) -> String {
    task.branch_name.clone().unwrap_or_else(|| format!("wt/{}", task.id))
}

/// Make sure the card's workspace exists and return it.
pub fn prepare(board: &Board, task: &Task) -> Result<PathBuf, WorkspaceError> {
    let path = path_for(board, task)?;
    match task.workspace_kind {
        WorkspaceKind::Worktree => {
            if !path.exists() {
                let repo = PathBuf::from(task.workspace_path.as_deref().unwrap_or_default());
                add_worktree(&repo, &path, &branch_for(task), &task.id)?;
            }
        }
        _ => std::fs::create_dir_all(&path)
            .map_err(|error| WorkspaceError::Io { path: path.clone(), error })?,
    }
    Ok(path)
}

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn add_worktree(repo: &Path, path: &Path, branch: &str, task: &str) -> Result<(), WorkspaceError> {
    let fail = |message: String| WorkspaceError::Git { task: task.into(), repo: repo.into(), message };
    let path_arg = path.to_string_lossy().into_owned();
    let branch_exists =
        git(repo, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")]).is_ok();
    let args: Vec<&str> = if branch_exists {
        vec!["worktree", "add", &path_arg, branch]
    } else {
        vec!["worktree", "add", "-b", branch, &path_arg]
    };
    git(repo, &args).map(|_| ()).map_err(fail)
}

/// What cleanup did with a card's workspace.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleanup {
    Deleted(PathBuf),
    Kept { path: PathBuf, reason: String },
    Nothing,
}

/// Clean up after a card completed or was archived: delete a scratch workspace (if it may be deleted),
/// remove a worktree only if it is clean and pushed, never touch a `dir` workspace.
pub fn cleanup(board: &Board, task: &Task) -> Cleanup {
    let Ok(path) = path_for(board, task) else { return Cleanup::Nothing };
    if !path.exists() {
        return Cleanup::Nothing;
    }
    match task.workspace_kind {
        WorkspaceKind::Dir => Cleanup::Kept { path, reason: "dir workspaces are never deleted".into() },
        WorkspaceKind::Worktree => {
            let repo = PathBuf::from(task.workspace_path.as_deref().unwrap_or_default());
            match worktree_is_clean_and_pushed(&path) {
                Ok(()) => match git(&repo, &["worktree", "remove", &path.to_string_lossy()]) {
                    Ok(_) => Cleanup::Deleted(path),
                    Err(e) => Cleanup::Kept { path, reason: format!("git worktree remove failed: {e}") },
                },
                Err(reason) => Cleanup::Kept { path, reason },
            }
        }
        WorkspaceKind::Scratch => match may_delete_scratch(board, &path) {
            Ok(real) => match std::fs::remove_dir_all(&real) {
                Ok(()) => Cleanup::Deleted(real),
                Err(e) => Cleanup::Kept { path, reason: format!("delete failed: {e}") },
            },
            Err(WorkspaceError::Refused { reason, .. }) => {
                tracing::warn!(path = %path.display(), %reason, "refused to delete a scratch workspace");
                Cleanup::Kept { path, reason }
            }
            Err(e) => Cleanup::Kept { path, reason: e.to_string() },
        },
    }
}

fn worktree_is_clean_and_pushed(path: &Path) -> Result<(), String> {
    let status = git(path, &["status", "--porcelain"])?;
    if !status.trim().is_empty() {
        return Err("the worktree has uncommitted changes".into());
    }
    let unpushed = git(path, &["rev-list", "--count", "@{upstream}..HEAD"])
        .map_err(|_| "the branch has no upstream (never pushed)".to_string())?;
    if unpushed.trim() != "0" {
        return Err(format!("{} commit(s) not pushed", unpushed.trim()));
    }
    Ok(())
}

/// The one decision on deleting a scratch workspace. Allowed only for a real directory (not a symlink)
/// whose canonical path lies strictly below the board's canonical `workspaces/` root. Returns the path to
/// delete.
pub fn may_delete_scratch(board: &Board, path: &Path) -> Result<PathBuf, WorkspaceError> {
    let refuse = |reason: &str| WorkspaceError::Refused { path: path.to_path_buf(), reason: reason.into() };
    let root = board
        .workspaces_dir()
        .canonicalize()
        .map_err(|_| refuse("the board's workspaces/ root does not exist"))?;
    let meta = std::fs::symlink_metadata(path).map_err(|_| refuse("it does not exist"))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symlink; its target is not the host's to delete"));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory"));
    }
    let real = path.canonicalize().map_err(|_| refuse("it cannot be resolved"))?;
    if real == root {
        return Err(refuse("it is the workspaces/ root itself"));
    }
    if !real.starts_with(&root) {
        return Err(refuse("it is outside the board's managed workspaces/ root"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Home;

    #[test]
    fn scratch_deletion_only_strictly_below_the_managed_root() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
        let board = home.create_board("b", None, None).unwrap();
        let inside = board.workspaces_dir().join("t_00000001");
        std::fs::create_dir_all(&inside).unwrap();
        assert!(may_delete_scratch(&board, &inside).is_ok());
        for refused in [
            board.workspaces_dir(),
            board.dir.clone(),
            board.logs_dir(),
            board.attachments_dir(),
            dir.path().to_path_buf(),
            board.workspaces_dir().join(".."),
            PathBuf::from("/"),
        ] {
            assert!(may_delete_scratch(&board, &refused).is_err(), "{}", refused.display());
        }
        // A symlink inside the root pointing at the user's tree is never followed.
        let precious = tempfile::tempdir().unwrap();
        let link = board.workspaces_dir().join("t_00000002");
        std::os::unix::fs::symlink(precious.path(), &link).unwrap();
        assert!(may_delete_scratch(&board, &link).is_err());
        // A root that is itself a symlink to elsewhere: paths resolve through it, nothing outside matches.
        let outside = precious.path().join("t_x");
        std::fs::create_dir_all(&outside).unwrap();
        assert!(may_delete_scratch(&board, &outside).is_err());
        assert!(outside.exists());
    }
}
