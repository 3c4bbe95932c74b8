//! Pauses: the board, or one of its profiles, spawns nothing new until resumed. One row per paused scope
//! (`profile = ''` for the whole board); each pause and resume is one transaction with its board-level
//! event (`paused`, `resumed`). The store records; whether a profile exists is the caller's question.

use rusqlite::params;
use serde_json::json;

use super::cards::append_event;
use super::db::{Row, Tx};
use super::{Result, Store};
use crate::model::{EventKind, Pause};

/// The key of the whole board's pause in the `profile` column.
const BOARD: &str = "";

/// What [`Store::pause`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    /// The pause as it is now.
    pub pause: Pause,
    /// It was already paused: only the reason (and who set it) changed; `paused_at` is kept.
    pub updated: bool,
}

fn key(profile: Option<&str>) -> &str {
    profile.unwrap_or(BOARD)
}

fn read_pause(r: &Row) -> rusqlite::Result<Pause> {
    let profile: String = r.get(0)?;
    Ok(Pause {
        profile: (profile != BOARD).then_some(profile),
        reason: r.get(1)?,
        paused_at: r.get(2)?,
        paused_by: r.get(3)?,
    })
}

fn load_pause(tx: &Tx, profile: Option<&str>) -> Result<Option<Pause>> {
    tx.query_opt(
        "SELECT profile, reason, paused_at, paused_by FROM pauses WHERE profile = ?1",
        params![key(profile)],
        read_pause,
    )
}

impl Store {
    /// Every pause of the board: the board's own first, then the profiles' by name.
    pub fn pauses(&mut self) -> Result<Vec<Pause>> {
        self.read(|tx| {
            tx.query_map(
                "SELECT profile, reason, paused_at, paused_by FROM pauses ORDER BY profile <> '', profile",
                &[],
                read_pause,
            )
        })
    }

    /// Pause the board (`profile` none) or one profile, with a `paused` event. Pausing what is already
    /// paused updates its reason and who set it, and keeps the time it started.
    pub fn pause(
        &mut self,
        profile: Option<&str>,
        reason: Option<&str>,
        by: Option<&str>,
        now: i64,
    ) -> Result<Paused> {
        self.write(|tx| {
            let before = load_pause(tx, profile)?;
            tx.execute(
                "INSERT INTO pauses (profile, reason, paused_at, paused_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(profile) DO UPDATE SET reason = ?2, paused_by = ?4",
                params![key(profile), reason, now, by],
            )?;
            let updated = before.is_some();
            append_event(
                tx,
                None,
                None,
                EventKind::Paused,
                json!({"profile": profile, "reason": reason, "by": by, "updated": updated}),
                now,
            )?;
            let pause = load_pause(tx, profile)?.expect("written above");
            Ok(Paused { pause, updated })
        })
    }

    /// Lift the pause of the board (`profile` none) or of one profile, with a `resumed` event. Returns the
    /// pause lifted; none (and nothing written) when it was not paused.
    pub fn resume(&mut self, profile: Option<&str>, by: Option<&str>, now: i64) -> Result<Option<Pause>> {
        self.write(|tx| {
            let Some(pause) = load_pause(tx, profile)? else { return Ok(None) };
            tx.execute("DELETE FROM pauses WHERE profile = ?1", params![key(profile)])?;
            append_event(
                tx,
                None,
                None,
                EventKind::Resumed,
                json!({"profile": profile, "reason": pause.reason, "paused_at": pause.paused_at, "by": by}),
                now,
            )?;
            Ok(Some(pause))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::testing::store()
    }

    fn kinds(store: &mut Store) -> Vec<(String, serde_json::Value)> {
        store.events(None, None).unwrap().into_iter().map(|e| (e.kind, e.payload)).collect()
    }

    #[test]
    fn a_pause_is_one_row_and_one_event_and_pausing_again_keeps_its_start() {
        let (_dir, mut store) = store();
        let first = store.pause(None, Some("deploy freeze"), Some("alice"), 10).unwrap();
        assert!(!first.updated);
        assert_eq!(first.pause.profile, None);
        let again = store.pause(None, Some("still frozen"), Some("bob"), 20).unwrap();
        assert!(again.updated);
        assert_eq!(
            again.pause,
            Pause {
                profile: None,
                reason: Some("still frozen".into()),
                paused_at: 10,
                paused_by: Some("bob".into())
            }
        );
        store.pause(Some("coder"), None, None, 30).unwrap();
        let all = store.pauses().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].profile.as_deref(), all[1].profile.as_deref()), (None, Some("coder")));
        let events = kinds(&mut store);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|(k, _)| k == "paused"));
        assert_eq!(events[1].1["updated"], true);
        assert_eq!(events[2].1["profile"], "coder");
        assert!(store.events(None, None).unwrap().iter().all(|e| e.task_id.is_none()), "board-level");
    }

    #[test]
    fn resuming_lifts_only_its_own_scope_and_resuming_what_is_not_paused_writes_nothing() {
        let (_dir, mut store) = store();
        store.pause(None, Some("incident"), Some("alice"), 10).unwrap();
        store.pause(Some("coder"), Some("quota"), Some("alice"), 11).unwrap();
        assert_eq!(store.resume(Some("reviewer"), Some("bob"), 12).unwrap(), None);
        let lifted = store.resume(None, Some("bob"), 13).unwrap().unwrap();
        assert_eq!((lifted.reason.as_deref(), lifted.paused_at), (Some("incident"), 10));
        assert_eq!(store.resume(None, Some("bob"), 14).unwrap(), None);
        let left = store.pauses().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].profile.as_deref(), Some("coder"));
        let events = kinds(&mut store);
        assert_eq!(
            events.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["paused", "paused", "resumed"]
        );
        assert_eq!(events[2].1["paused_at"], 10);
        assert_eq!(events[2].1["by"], "bob");
    }
}
