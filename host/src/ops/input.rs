//! Input every front end reads the same way: values with a grammar of their own (durations, workspace
//! specs), and [`UsageError`], bad input found after parsing (the CLI exits 2, the HTTP API answers 400).

use std::path::PathBuf;

use crate::model::WorkspaceKind;

/// Bad input found after parsing (a bad combination or value): exit code 2 on the CLI, 400 over HTTP.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Seconds, or a number with one unit: `30s`, `5m`, `2h`, `1d`.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}' is not a duration: use seconds or 30s, 5m, 2h, 1d")),
    };
    let n: i64 =
        digits.parse().map_err(|_| format!("'{text}' is not a duration: use seconds or 30s, 5m, 2h, 1d"))?;
    if n == 0 {
        return Err("a duration must be greater than zero".into());
    }
    n.checked_mul(scale)
        .filter(|secs| *secs <= crate::clock::MAX_DURATION_SECONDS)
        .ok_or_else(|| format!("'{text}' is too long (at most 100 years)"))
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceSpec {
    pub kind: WorkspaceKind,
    pub path: Option<PathBuf>,
}

/// `scratch`, `dir:PATH`, `worktree` or `worktree:PATH`; paths must be absolute.
pub fn parse_workspace(text: &str) -> Result<WorkspaceSpec, String> {
    let (kind, path) = match text.split_once(':') {
        Some((kind, path)) => (kind, Some(path)),
        None => (text, None),
    };
    match (kind, path) {
        ("scratch", None) => Ok(WorkspaceSpec { kind: WorkspaceKind::Scratch, path: None }),
        ("worktree", None) => Ok(WorkspaceSpec { kind: WorkspaceKind::Worktree, path: None }),
        ("dir" | "worktree", Some(path)) => {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("'{}' must be an absolute path", path.display()));
            }
            let kind = if kind == "dir" { WorkspaceKind::Dir } else { WorkspaceKind::Worktree };
            Ok(WorkspaceSpec { kind, path: Some(path) })
        }
        // Without a path, `dir` takes the board's default_workdir (checked when the card is created).
        ("dir", None) => Ok(WorkspaceSpec { kind: WorkspaceKind::Dir, path: None }),
        _ => Err(format!("'{text}' is not a workspace: use scratch, dir:PATH, worktree or worktree:PATH")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        for bad in ["", "x", "5x", "m", "-5", "1.5h", "0", "5 m", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn workspaces() {
        assert_eq!(parse_workspace("scratch").unwrap().kind, WorkspaceKind::Scratch);
        assert_eq!(parse_workspace("dir:/srv/x").unwrap().path, Some(PathBuf::from("/srv/x")));
        assert_eq!(parse_workspace("worktree").unwrap().path, None);
        assert_eq!(parse_workspace("worktree:/repo").unwrap().kind, WorkspaceKind::Worktree);
        assert_eq!(parse_workspace("dir").unwrap(), WorkspaceSpec { kind: WorkspaceKind::Dir, path: None });
        for bad in ["dir:rel", "bogus", "scratch:/x", "worktree:rel"] {
            assert!(parse_workspace(bad).is_err(), "{bad}");
        }
    }
}
