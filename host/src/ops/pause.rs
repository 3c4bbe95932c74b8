//! Pausing and resuming the dispatcher on a board, or for one of its profiles: a paused scope spawns
//! nothing new (the tick's plan holds its cards back) while running workers finish and are settled as
//! usual. The pause is state in the board's store, so every dispatcher, and a daemon started later, sees it.
//! This file checks the profile against board.toml and words the refusals; it never touches a process.

use super::Desk;
use crate::model::{Finding, Pause, Severity};
use crate::store::Paused;

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// `--profile` names no profile of the board: a usage error.
    #[error("board '{board}' has no profile '{profile}' (defined: {defined})")]
    UnknownProfile { board: String, profile: String, defined: String },
    /// Nothing to resume.
    #[error("{what} is not paused{hint}")]
    NotPaused { what: String, hint: String },
}

impl PauseError {
    /// Exit code at the CLI edge: 2 for a profile the board does not have, 1 for nothing to resume.
    pub fn exit_code(&self) -> u8 {
        match self {
            PauseError::UnknownProfile { .. } => 2,
            PauseError::NotPaused { .. } => 1,
        }
    }
}

fn unknown_profile(desk: &Desk, profile: &str) -> PauseError {
    let defined = desk.board.config.profile_names().join(", ");
    PauseError::UnknownProfile {
        board: desk.board.slug.clone(),
        profile: profile.to_string(),
        defined: if defined.is_empty() { "none".into() } else { defined },
    }
}

/// Pause the board (`profile` none) or one of its profiles. Pausing what is already paused updates the
/// reason and keeps the time the pause started. A blank reason is no reason.
pub fn pause(
    desk: &mut Desk,
    profile: Option<&str>,
    reason: Option<&str>,
    by: Option<&str>,
) -> anyhow::Result<Paused> {
    if let Some(name) = profile
        && !desk.board.config.profiles.contains_key(name)
    {
        return Err(unknown_profile(desk, name).into());
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let paused = desk.store.pause(profile, reason, by, crate::clock::now())?;
    tracing::info!(board = %desk.board.slug, profile = ?profile, reason = ?reason, updated = paused.updated, "paused");
    Ok(paused)
}

/// Lift the pause of the board (`profile` none) or of one profile; returns the pause lifted. A profile
/// that is paused can be resumed even if board.toml no longer defines it.
pub fn resume(desk: &mut Desk, profile: Option<&str>, by: Option<&str>) -> anyhow::Result<Pause> {
    if let Some(lifted) = desk.store.resume(profile, by, crate::clock::now())? {
        tracing::info!(board = %desk.board.slug, profile = ?profile, "resumed");
        return Ok(lifted);
    }
    let slug = &desk.board.slug;
    let others = desk.store.pauses()?;
    let err = match profile {
        Some(name) if !desk.board.config.profiles.contains_key(name) => unknown_profile(desk, name),
        Some(name) => PauseError::NotPaused {
            what: format!("profile '{name}' of board '{slug}'"),
            hint: if others.iter().any(|p| p.profile.is_none()) {
                format!(" (the whole board is paused: `kanban --board {slug} resume`)")
            } else {
                String::new()
            },
        },
        None => {
            let profiles: Vec<&str> = others.iter().filter_map(|p| p.profile.as_deref()).collect();
            PauseError::NotPaused {
                what: format!("board '{slug}'"),
                hint: if profiles.is_empty() {
                    String::new()
                } else {
                    format!(" (paused profiles: {}; resume them with --profile)", profiles.join(", "))
                },
            }
        }
    };
    Err(err.into())
}

/// The board-level diagnostics finding of each pause: a warning, since a pause left on by mistake
/// starves the board as surely as a broken worker.
pub fn findings(board: &str, pauses: &[Pause]) -> Vec<Finding> {
    pauses
        .iter()
        .map(|p| {
            let (rule, title, resume) = match &p.profile {
                None => (
                    "board-paused",
                    format!("board {board} is paused"),
                    format!("kanban --board {board} resume"),
                ),
                Some(profile) => (
                    "profile-paused",
                    format!("profile {profile} is paused"),
                    format!("kanban --board {board} resume --profile {profile}"),
                ),
            };
            let who = p.paused_by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default();
            let why = p.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
            Finding {
                task_id: None,
                policy: "host".into(),
                rule: rule.into(),
                severity: Severity::Warning,
                title,
                detail: format!(
                    "paused since {}{who}{why}. The dispatcher spawns nothing new for it; running workers finish.",
                    crate::clock::utc(p.paused_at)
                ),
                actions: vec![resume],
            }
        })
        .collect()
}
