//! Rows to records: every table is read by column name. A reader resolves each column's index once per
//! statement ([`TaskReader::new`]), so reading a row costs no name lookups, and adding a column means
//! adding it to the schema and to the record, nowhere else. The select lists are derived from the schema
//! ([`columns`]), so they cannot drift from it.

use std::sync::OnceLock;

use serde_json::Value;

use super::db::Row;
use super::schema;
use crate::model::{Attachment, Comment, Event, Run, Task};

/// `id, <every column of the table>` in schema order, for `SELECT {} FROM table`.
pub(crate) fn columns(table: &str) -> &'static str {
    static LISTS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        schema::TABLES
            .iter()
            .map(|t| {
                let mut names: Vec<&str> = Vec::new();
                if !matches!(t.key, schema::Key::Composite(_)) {
                    names.push("id");
                }
                names.extend(t.columns.iter().map(|(n, _)| *n));
                (t.name, names.join(", "))
            })
            .collect()
    });
    lists
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, cols)| cols.as_str())
        .expect("a table of the schema")
}

pub(crate) fn task_columns() -> &'static str {
    columns("tasks")
}

pub(crate) fn run_columns() -> &'static str {
    columns("task_runs")
}

pub(crate) fn event_columns() -> &'static str {
    columns("task_events")
}

pub(crate) fn comment_columns() -> &'static str {
    columns("task_comments")
}

pub(crate) fn attachment_columns() -> &'static str {
    columns("task_attachments")
}

/// A JSON text column; a legacy row holding plain text stays visible as a string rather than failing.
fn json_text(r: &Row, i: usize) -> rusqlite::Result<Value> {
    let raw: String = r.get(i)?;
    Ok(serde_json::from_str(&raw).unwrap_or(Value::String(raw)))
}

fn opt_json_text(r: &Row, i: usize) -> rusqlite::Result<Option<Value>> {
    let raw: Option<String> = r.get(i)?;
    Ok(raw.map(|m| serde_json::from_str(&m).unwrap_or(Value::String(m))))
}

fn text_or_empty(r: &Row, i: usize) -> rusqlite::Result<String> {
    Ok(r.get::<Option<String>>(i)?.unwrap_or_default())
}

/// Declare a reader: one index per field, found by the field's name in the statement's columns. A field
/// may name a conversion `fn(&Row, usize) -> rusqlite::Result<T>`; the others use `FromSql`.
macro_rules! reader {
    ($reader:ident => $record:ident { $($field:ident $(=> $convert:expr)?),+ $(,)? }) => {
        pub(crate) struct $reader {
            $($field: usize,)+
        }

        impl $reader {
            /// The columns this reader reads, by name.
            #[cfg(test)]
            pub(crate) const FIELDS: &'static [&'static str] = &[$(stringify!($field),)+];

            /// Resolve each field's column in a statement's column names.
            pub(crate) fn new(names: &[&str]) -> rusqlite::Result<Self> {
                let index = |name: &str| {
                    names
                        .iter()
                        .position(|n| n.eq_ignore_ascii_case(name))
                        .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_string()))
                };
                Ok($reader { $($field: index(stringify!($field))?,)+ })
            }

            pub(crate) fn read(&self, r: &Row<'_>) -> rusqlite::Result<$record> {
                Ok($record { $($field: reader!(@get r, self.$field $(, $convert)?),)+ })
            }
        }
    };
    (@get $r:ident, $i:expr) => { $r.get($i)? };
    (@get $r:ident, $i:expr, $convert:expr) => { $convert($r, $i)? };
}

reader!(TaskReader => Task {
    id, title, body => text_or_empty, status, assignee, priority, tenant, created_by, created_at, updated_at,
    started_at, completed_at, workspace_kind, workspace_path, branch_name, idempotency_key,
    max_runtime_seconds, max_retries, consecutive_failures, last_failure_error, goal_mode, goal_max_turns,
    goal_turn, session_id, result, claim_lock, claim_host, claim_expires, worker_pid, last_heartbeat_at,
    current_run_id, block_kind, block_reason, block_sticky, protocol_violations, stale_reclaims, reviewer,
    parents_waived,
});

reader!(RunReader => Run {
    id, task_id, profile, status, outcome, error, summary, metadata => opt_json_text, exit_code, claim_lock,
    worker_pid, started_at, ended_at, last_heartbeat_at, supervisor_pid, supervisor_start, worker_start,
    exit_signal, exited_at, turn, lane, workspace, host_id, stop_requested_at, stop_action => opt_json_text,
    swept_at,
});

reader!(EventReader => Event { id, task_id, run_id, kind, payload => json_text, created_at });

reader!(CommentReader => Comment { id, task_id, author, body, created_at });

reader!(AttachmentReader => Attachment { id, task_id, name, stored_name, size, sha256, created_at });

/// Run `sql` and read every row with a reader made for the statement.
macro_rules! query_all {
    ($tx:expr, $reader:ident, $sql:expr, $params:expr) => {{
        let mut rows = Vec::new();
        $tx.for_each(&$sql, $params, $crate::store::rows::$reader::new, |reader, r| {
            rows.push(reader.read(r)?);
            Ok(())
        })?;
        rows
    }};
}

/// Run `sql` and read its one optional row.
macro_rules! query_one {
    ($tx:expr, $reader:ident, $sql:expr, $params:expr) => {{
        let mut first = None;
        $tx.for_each(&$sql, $params, $crate::store::rows::$reader::new, |reader, r| {
            if first.is_none() {
                first = Some(reader.read(r)?);
            }
            Ok(())
        })?;
        first
    }};
}

pub(crate) use {query_all, query_one};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column of every table is read into its record, and every field of a record is a column:
    /// adding a column to the schema without the record (or the other way round) fails here.
    #[test]
    fn readers_cover_every_column() {
        let sorted = |names: &[&str]| {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let column_names = |table: &str| sorted(&columns(table).split(", ").collect::<Vec<_>>());
        assert_eq!(sorted(TaskReader::FIELDS), column_names("tasks"));
        assert_eq!(sorted(RunReader::FIELDS), column_names("task_runs"));
        assert_eq!(sorted(EventReader::FIELDS), column_names("task_events"));
        assert_eq!(sorted(CommentReader::FIELDS), column_names("task_comments"));
        assert_eq!(sorted(AttachmentReader::FIELDS), column_names("task_attachments"));
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        for table in ["tasks", "task_runs", "task_events", "task_comments", "task_attachments"] {
            conn.prepare(&format!("SELECT {} FROM {table}", columns(table))).unwrap();
        }
    }
}
