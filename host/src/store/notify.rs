//! The notification outbox. A trigger (see `schema.rs`) copies every event of a routed kind into
//! `notify_outbox` in the transaction that appends the event; this file keeps the routes in step with
//! board.toml, leases due deliveries to one deliverer at a time, and records how each attempt went.
//! Delivery itself (HTTP, commands) is the caller's.

use rusqlite::params;
use serde::Serialize;

use super::db::Row;
use super::{Result, Store};

const PENDING: &str = "'pending'";
const DELIVERED: &str = "'delivered'";
const FAILED: &str = "'failed'";

/// One (event, target) row of the outbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub task_id: Option<String>,
    pub run_id: Option<i64>,
    pub kind: String,
    /// The event's payload, as JSON.
    pub payload: serde_json::Value,
    pub event_at: i64,
    /// The target's spec, as JSON (`webhook` or `command`, `timeout_seconds`, `max_attempts`).
    pub target: serde_json::Value,
    /// `pending`, `delivered` or `failed` (gave up after `max_attempts`; kept, never dropped).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Failed; try again at this time.
    Retry {
        error: String,
        at: i64,
    },
    /// Failed for the last time.
    GiveUp {
        error: String,
    },
}

const COLUMNS: &str = "id, event_id, task_id, run_id, kind, payload, event_at, target, status, attempts, \
                       next_attempt_at, last_error, delivered_at";

fn read(r: &Row) -> rusqlite::Result<Delivery> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    };
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        task_id: r.get(2)?,
        run_id: r.get(3)?,
        kind: r.get(4)?,
        payload: json(5)?,
        event_at: r.get(6)?,
        target: json(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_at: r.get(10)?,
        last_error: r.get(11)?,
        delivered_at: r.get(12)?,
    })
}

impl Store {
    /// Make `notify_routes` exactly `routes` (`(event kind, target spec JSON)`). Writes only when they
    /// differ; returns whether they did.
    pub fn sync_notify_routes(&mut self, routes: &[(String, String)]) -> Result<bool> {
        let mut wanted: Vec<(String, String)> = routes.to_vec();
        wanted.sort();
        wanted.dedup();
        let current: Vec<(String, String)> = self.read(|tx| {
            tx.query_map("SELECT kind, target FROM notify_routes ORDER BY kind, target", &[], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })?;
        if current == wanted {
            return Ok(false);
        }
        self.write(|tx| {
            tx.execute("DELETE FROM notify_routes", &[])?;
            for (kind, target) in &wanted {
                tx.execute(
                    "INSERT INTO notify_routes (kind, target) VALUES (?1, ?2)",
                    params![kind, target],
                )?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Lease up to `limit` pending deliveries due at `now` for `lease` seconds: a deliverer that dies
    /// mid-attempt leaves its lease to expire, and the row is delivered again (at least once).
    pub fn lease_deliveries(&mut self, now: i64, lease: i64, limit: usize) -> Result<Vec<Delivery>> {
        self.write(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM notify_outbox
                 WHERE status = {PENDING} AND next_attempt_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                 ORDER BY next_attempt_at, id LIMIT ?2"
            );
            let due: Vec<Delivery> = tx.query_map(&sql, params![now, limit as i64], read)?;
            for d in &due {
                tx.execute("UPDATE notify_outbox SET lease_until = ?1 WHERE id = ?2", params![now + lease, d.id])?;
            }
            Ok(due)
        })
    }

    /// Record one attempt of delivery `id`.
    pub fn record_attempt(&mut self, id: i64, attempt: &Attempt, now: i64) -> Result<()> {
        self.write(|tx| {
            match attempt {
                Attempt::Delivered => tx.execute(
                    &format!(
                        "UPDATE notify_outbox SET status = {DELIVERED}, attempts = attempts + 1, delivered_at = ?1,
                           lease_until = NULL, last_error = NULL WHERE id = ?2 AND status = {PENDING}"
                    ),
                    params![now, id],
                )?,
                Attempt::Retry { error, at } => tx.execute(
                    &format!(
                        "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?1, next_attempt_at = ?2,
                           lease_until = NULL WHERE id = ?3 AND status = {PENDING}"
                    ),
                    params![error, at, id],
                )?,
                Attempt::GiveUp { error } => tx.execute(
                    &format!(
                        "UPDATE notify_outbox SET status = {FAILED}, attempts = attempts + 1, last_error = ?1,
                           lease_until = NULL WHERE id = ?2 AND status = {PENDING}"
                    ),
                    params![error, id],
                )?,
            };
            Ok(())
        })
    }

    /// The outbox, newest first: every delivery, or those with `status`, at most `limit`.
    pub fn deliveries(&mut self, status: Option<&str>, limit: usize) -> Result<Vec<Delivery>> {
        self.read(|tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM notify_outbox WHERE (CAST(?1 AS TEXT) IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
            );
            tx.query_map(&sql, params![status, limit as i64], read)
        })
    }

    /// When the next pending delivery is due, if any.
    pub fn next_delivery_at(&mut self) -> Result<Option<i64>> {
        self.read(|tx| {
            Ok(tx
                .query_opt(
                    &format!("SELECT min(next_attempt_at) FROM notify_outbox WHERE status = {PENDING}"),
                    &[],
                    |r| r.get::<Option<i64>>(0),
                )?
                .flatten())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTask;

    #[test]
    fn routed_events_enter_the_outbox_in_their_transaction_and_are_leased_once() {
        let (_dir, mut store) = crate::store::testing::store();
        let target = r#"{"command":["true"]}"#.to_string();
        assert!(store.sync_notify_routes(&[("created".into(), target.clone())]).unwrap());
        assert!(!store.sync_notify_routes(&[("created".into(), target.clone())]).unwrap(), "unchanged");
        let (task, _) = store.create_task(&NewTask { title: "a".into(), ..NewTask::default() }, 100).unwrap();
        store.add_comment(&task.id, None, "not routed", 101).unwrap();
        let all = store.deliveries(None, 10).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!((all[0].kind.as_str(), all[0].task_id.as_deref()), ("created", Some(task.id.as_str())));

        let leased = store.lease_deliveries(100, 30, 10).unwrap();
        assert_eq!(leased.len(), 1);
        assert!(store.lease_deliveries(100, 30, 10).unwrap().is_empty(), "leased to one deliverer");
        assert_eq!(store.lease_deliveries(130, 30, 10).unwrap().len(), 1, "an expired lease is taken again");
        store.record_attempt(leased[0].id, &Attempt::Retry { error: "503".into(), at: 200 }, 131).unwrap();
        assert!(store.lease_deliveries(199, 30, 10).unwrap().is_empty(), "not due before its retry");
        let again = store.lease_deliveries(200, 30, 10).unwrap();
        store.record_attempt(again[0].id, &Attempt::GiveUp { error: "503".into() }, 200).unwrap();
        let failed = store.deliveries(Some("failed"), 10).unwrap();
        assert_eq!((failed[0].attempts, failed[0].last_error.as_deref()), (2, Some("503")));
        assert_eq!(store.next_delivery_at().unwrap(), None);

        assert!(store.sync_notify_routes(&[]).unwrap());
        store.add_comment(&task.id, None, "after", 300).unwrap();
        store.create_task(&NewTask { title: "b".into(), ..NewTask::default() }, 300).unwrap();
        assert_eq!(store.deliveries(None, 10).unwrap().len(), 1, "no route, no delivery");
    }
}
