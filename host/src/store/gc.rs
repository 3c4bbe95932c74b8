//! Garbage collection of old events: the store's half of `kanban gc`.
//!
//! The audit trail of state changes is kept for every card that still exists. What goes is what nobody
//! reads once it is old: liveness noise (heartbeats, claim extensions, health warnings, earlier gc
//! records) and the events of cards deleted for good with `archive --rm` (their `deleted` tombstone stays,
//! so the event log still says which card went and when). Event ids are `AUTOINCREMENT`, so a pruned id is
//! never reused and `events --follow` cannot miss a later event.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::cards::append_event;
use super::db::Tx;
use super::{Result, Store};
use crate::model::EventKind;

/// Event kinds that only say "still alive" or "this happened to the host": pruned on any card once old.
const NOISE_KINDS: &[EventKind] =
    &[EventKind::Heartbeat, EventKind::ClaimExtended, EventKind::DispatcherHealth, EventKind::Gc];

/// The events a gc removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventPrune {
    pub deleted: u64,
    pub by_kind: BTreeMap<String, u64>,
}

/// What the caller already removed from disk, recorded in the `gc` event beside the event counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilesRemoved {
    pub logs: u64,
    pub workspaces: u64,
    pub bytes: u64,
}

/// The rows a prune with this cutoff selects. `?1` is the cutoff; noise kinds are inlined as literals
/// from [`NOISE_KINDS`] (constants, never user input).
fn selection() -> String {
    let kinds = NOISE_KINDS.iter().map(|k| k.sql()).collect::<Vec<_>>().join(", ");
    let deleted = EventKind::Deleted.sql();
    format!(
        "FROM task_events e WHERE e.created_at < ?1 AND (
             e.kind IN ({kinds})
             OR (e.task_id IS NOT NULL AND e.kind <> {deleted}
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id)))"
    )
}

impl Store {
    /// Count, and unless `dry_run` delete, the events older than `cutoff` that gc may remove. A real run
    /// records one board-level `gc` event with the counts in the same transaction.
    pub fn prune_events(
        &mut self,
        cutoff: i64,
        older_than: i64,
        files: &FilesRemoved,
        dry_run: bool,
        now: i64,
    ) -> Result<EventPrune> {
        let sql = selection();
        let count = |tx: &Tx| -> Result<EventPrune> {
            let by_kind: BTreeMap<String, u64> = tx
                .query_map(
                    &format!("SELECT e.kind, count(*) {sql} GROUP BY e.kind"),
                    rusqlite::params![cutoff],
                    |r| Ok((r.get::<String>(0)?, r.get::<u64>(1)?)),
                )?
                .into_iter()
                .collect();
            Ok(EventPrune { deleted: by_kind.values().sum(), by_kind })
        };
        if dry_run {
            return self.read(|tx| count(tx));
        }
        self.write(|tx| {
            let prune = count(tx)?;
            let deleted = tx.execute(
                &format!("DELETE FROM task_events WHERE id IN (SELECT e.id {sql})"),
                rusqlite::params![cutoff],
            )?;
            debug_assert_eq!(deleted as u64, prune.deleted);
            append_event(
                tx,
                None,
                None,
                EventKind::Gc,
                json!({
                    "older_than_seconds": older_than,
                    "cutoff": cutoff,
                    "events_deleted": prune.deleted,
                    "events_by_kind": prune.by_kind,
                    "logs_deleted": files.logs,
                    "workspaces_deleted": files.workspaces,
                    "bytes_freed": files.bytes,
                }),
                now,
            )?;
            Ok(prune)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerLimits;
    use crate::lifecycle::{Action, Actor};
    use crate::model::Status;
    use crate::store::NewTask;

    fn store() -> (tempfile::TempDir, Store) {
        crate::store::testing::store()
    }

    fn kinds(store: &mut Store, task: &str) -> Vec<String> {
        store.events(Some(task), None).unwrap().into_iter().map(|e| e.kind).collect()
    }

    #[test]
    fn prunes_old_noise_and_deleted_cards_but_keeps_the_audit_trail() {
        let (_dir, mut store) = store();
        let new = |title: &str| NewTask { title: title.into(), ..Default::default() };
        let kept = store.create_task(&new("kept"), 100).unwrap().0.id;
        let gone = store.create_task(&new("gone"), 100).unwrap().0.id;
        store.record_event(Some(&kept), EventKind::Heartbeat, json!({}), 100).unwrap();
        store.record_event(Some(&kept), EventKind::Heartbeat, json!({}), 5_000).unwrap(); // recent: stays
        store.record_event(None, EventKind::DispatcherHealth, json!({}), 100).unwrap();
        store.apply(&gone, Actor::Operator, &Action::Archive, BreakerLimits::default(), 100).unwrap();
        store.delete_archived(&gone, 200).unwrap();

        let dry = store.prune_events(1_000, 900, &FilesRemoved::default(), true, 6_000).unwrap();
        let want: BTreeMap<String, u64> =
            [("archived", 1), ("created", 1), ("dispatcher_health", 1), ("heartbeat", 1)]
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
        assert_eq!(dry.by_kind, want);
        assert_eq!(dry.deleted, 4);
        assert_eq!(
            kinds(&mut store, &kept),
            ["created", "heartbeat", "heartbeat"],
            "a dry run deletes nothing"
        );

        let real = store.prune_events(1_000, 900, &FilesRemoved::default(), false, 6_000).unwrap();
        assert_eq!(real, dry);
        assert_eq!(kinds(&mut store, &kept), ["created", "heartbeat"]);
        assert_eq!(kinds(&mut store, &gone), ["deleted"], "the tombstone of a deleted card stays");
        let all = store.events(None, None).unwrap();
        let gc = all.last().unwrap();
        assert_eq!(gc.kind, "gc");
        assert_eq!(gc.payload["events_deleted"], 4);

        // Nothing left to prune; the earlier gc record is recent, so it stays too.
        let again = store.prune_events(1_000, 900, &FilesRemoved::default(), false, 6_001).unwrap();
        assert_eq!(again.deleted, 0);
    }

    #[test]
    fn task_status_is_none_for_unknown_cards() {
        let (_dir, mut store) = store();
        let id = store.create_task(&NewTask { title: "x".into(), ..Default::default() }, 1).unwrap().0.id;
        assert_eq!(store.task_status(&id).unwrap(), Some(Status::Ready));
        assert_eq!(store.task_status("t_00000000").unwrap(), None);
    }
}
