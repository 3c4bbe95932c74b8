//! Schema and migrations.
//!
//! The schema is data: each table is a list of columns, and migration means "make the file match the list".
//! That makes every migration additive and idempotent: missing tables are created, missing columns added,
//! a table whose primary-key shape drifted from an older release is rebuilt with its rows kept, and indexes
//! are created last, after every column they need exists. It all runs in one transaction, so a crash leaves
//! either the old file or the new one.

use rusqlite::{Connection, Transaction};

/// Bumped whenever [`TABLES`] or [`INDEXES`] change. Files at this version skip the migration entirely, so
/// opening a board stays cheap for the short-lived commands workers run.
pub const SCHEMA_VERSION: i64 = 11;

pub struct Table {
    pub name: &'static str,
    /// The primary key clause, part of the table's shape: a mismatch triggers a rebuild.
    pub key: Key,
    /// `(name, declaration)`. Every non-key column must be addable with `ALTER TABLE ADD COLUMN`, so it is
    /// nullable or has a default.
    pub columns: &'static [(&'static str, &'static str)],
}

pub enum Key {
    /// `id INTEGER PRIMARY KEY AUTOINCREMENT` (rowid alias).
    IntegerId,
    /// `id TEXT PRIMARY KEY`.
    TextId,
    /// A composite key over the named columns.
    Composite(&'static str),
}

pub const TABLES: &[Table] = &[
    Table {
        name: "tasks",
        key: Key::TextId,
        columns: &[
            ("title", "TEXT NOT NULL DEFAULT ''"),
            ("body", "TEXT NOT NULL DEFAULT ''"),
            ("status", "TEXT NOT NULL DEFAULT 'ready'"),
            ("assignee", "TEXT"),
            ("priority", "INTEGER NOT NULL DEFAULT 0"),
            ("tenant", "TEXT"),
            ("created_by", "TEXT"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
            ("updated_at", "INTEGER NOT NULL DEFAULT 0"),
            ("started_at", "INTEGER"),
            ("completed_at", "INTEGER"),
            ("workspace_kind", "TEXT NOT NULL DEFAULT 'scratch'"),
            ("workspace_path", "TEXT"),
            ("branch_name", "TEXT"),
            ("idempotency_key", "TEXT"),
            ("max_runtime_seconds", "INTEGER"),
            ("max_retries", "INTEGER"),
            ("consecutive_failures", "INTEGER NOT NULL DEFAULT 0"),
            ("last_failure_error", "TEXT"),
            ("goal_mode", "INTEGER NOT NULL DEFAULT 0"),
            ("goal_max_turns", "INTEGER"),
            ("goal_turn", "INTEGER NOT NULL DEFAULT 0"),
            ("session_id", "TEXT"),
            ("result", "TEXT"),
            ("claim_lock", "TEXT"),
            ("claim_expires", "INTEGER"),
            ("worker_pid", "INTEGER"),
            ("last_heartbeat_at", "INTEGER"),
            ("current_run_id", "INTEGER"),
            ("block_kind", "TEXT"),
            ("block_reason", "TEXT"),
            ("block_sticky", "INTEGER NOT NULL DEFAULT 0"),
            // Exits 0 without complete/block, in a row (the protocol-violation breaker).
            ("protocol_violations", "INTEGER NOT NULL DEFAULT 0"),
            // The host id of the dispatcher holding the claim (claim_lock names its hostname and pid).
            ("claim_host", "TEXT"),
            // Requeues of a silent (wedged) worker in a row (the wedged-worker breaker).
            ("stale_reclaims", "INTEGER NOT NULL DEFAULT 0"),
            // The profile the review lane dispatches the card to.
            ("reviewer", "TEXT"),
            // `promote --force` waived the open-parent check, completion included.
            ("parents_waived", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    Table {
        name: "task_links",
        key: Key::Composite("parent_id, child_id"),
        columns: &[
            ("parent_id", "TEXT NOT NULL"),
            ("child_id", "TEXT NOT NULL"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    Table {
        name: "task_comments",
        key: Key::IntegerId,
        columns: &[
            ("task_id", "TEXT NOT NULL DEFAULT ''"),
            ("author", "TEXT"),
            ("body", "TEXT NOT NULL DEFAULT ''"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    Table {
        name: "task_events",
        key: Key::IntegerId,
        columns: &[
            ("task_id", "TEXT"),
            ("run_id", "INTEGER"),
            ("kind", "TEXT NOT NULL DEFAULT ''"),
            ("payload", "TEXT NOT NULL DEFAULT '{}'"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    Table {
        name: "task_runs",
        key: Key::IntegerId,
        columns: &[
            ("task_id", "TEXT NOT NULL DEFAULT ''"),
            ("profile", "TEXT"),
            ("status", "TEXT NOT NULL DEFAULT 'running'"),
            ("outcome", "TEXT"),
            ("error", "TEXT"),
            ("summary", "TEXT"),
            ("metadata", "TEXT"),
            ("exit_code", "INTEGER"),
            ("claim_lock", "TEXT"),
            ("worker_pid", "INTEGER"),
            ("started_at", "INTEGER NOT NULL DEFAULT 0"),
            ("ended_at", "INTEGER"),
            ("last_heartbeat_at", "INTEGER"),
            // Supervision facts: pid plus start time identify a process, so a recycled pid is never signalled.
            ("supervisor_pid", "INTEGER"),
            ("supervisor_start", "INTEGER"),
            ("worker_start", "INTEGER"),
            ("exit_signal", "INTEGER"),
            ("exited_at", "INTEGER"),
            ("turn", "INTEGER NOT NULL DEFAULT 1"),
            // The lane it was dispatched from (`work` from ready, `review` from review).
            ("lane", "TEXT NOT NULL DEFAULT 'work'"),
            // The directory the worker ran in, and the host that claimed it.
            ("workspace", "TEXT"),
            ("host_id", "TEXT"),
            // A requested stop: when (real wall-clock seconds) and what the card does once the attempt's
            // processes are gone (a lifecycle action as JSON).
            ("stop_requested_at", "INTEGER"),
            ("stop_action", "TEXT"),
            // When the tick stopped watching the ended attempt's session for leftovers (its supervisor
            // gone and the session empty, or the run older than the sweep's window).
            ("swept_at", "INTEGER"),
        ],
    },
    // The dispatchers working this board, by host id: their last sign of life. A claim naming a host whose
    // sign of life is older than the claim's expiry is reclaimed by any live host.
    Table {
        name: "hosts",
        key: Key::TextId,
        columns: &[
            ("hostname", "TEXT NOT NULL DEFAULT ''"),
            ("pid", "INTEGER"),
            ("started_at", "INTEGER NOT NULL DEFAULT 0"),
            ("last_seen", "INTEGER NOT NULL DEFAULT 0"),
            // Its `[host]` settings as of its last tick: labels (space-separated) and capacity.
            ("labels", "TEXT NOT NULL DEFAULT ''"),
            ("max_workers", "INTEGER"),
        ],
    },
    // Failing ticks in a row per policy (keyed by entry, reference and plugin hash), and quarantine.
    Table {
        name: "policy_health",
        key: Key::TextId,
        columns: &[
            ("failures", "INTEGER NOT NULL DEFAULT 0"),
            ("quarantined_at", "INTEGER"),
            // The policy it is about: its [[policies]] entry (NULL for an implicit default), its reference as
            // written, and the sha256 of the bytes that ran.
            ("entry", "INTEGER"),
            ("reference", "TEXT NOT NULL DEFAULT ''"),
            ("sha256", "TEXT NOT NULL DEFAULT ''"),
            ("config_hash", "TEXT NOT NULL DEFAULT ''"),
            ("last_error", "TEXT"),
            ("updated_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    // The latest diagnostics findings per card (replaced by each `kanban diagnostics` run), so `show` can
    // print them without running a policy.
    Table {
        name: "task_findings",
        key: Key::IntegerId,
        columns: &[
            ("task_id", "TEXT"),
            ("policy", "TEXT NOT NULL DEFAULT ''"),
            ("rule", "TEXT NOT NULL DEFAULT ''"),
            ("severity", "TEXT NOT NULL DEFAULT 'info'"),
            ("title", "TEXT NOT NULL DEFAULT ''"),
            ("detail", "TEXT NOT NULL DEFAULT ''"),
            ("actions", "TEXT NOT NULL DEFAULT '[]'"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
    // Pauses (`kanban pause`): the whole board (`profile = ''`) or one of its profiles spawns nothing new
    // until resumed. State, not memory, so a pause survives the daemon.
    Table {
        name: "pauses",
        key: Key::Composite("profile"),
        columns: &[
            ("profile", "TEXT NOT NULL"),
            ("reason", "TEXT"),
            ("paused_at", "INTEGER NOT NULL DEFAULT 0"),
            ("paused_by", "TEXT"),
        ],
    },
    // `[[notify]]` of board.toml as rows the outbox trigger reads: which event kinds go to which target
    // (the target's spec as JSON). Synced from board.toml by every tick.
    Table {
        name: "notify_routes",
        key: Key::Composite("kind, target"),
        columns: &[("kind", "TEXT NOT NULL"), ("target", "TEXT NOT NULL")],
    },
    // The outbox: one row per (event, target), written by a trigger in the transaction that appends the
    // event, drained by the daemon. Delivered rows stay (the log), failed ones too (never dropped).
    Table {
        name: "notify_outbox",
        key: Key::IntegerId,
        columns: &[
            ("event_id", "INTEGER NOT NULL DEFAULT 0"),
            ("task_id", "TEXT"),
            ("run_id", "INTEGER"),
            ("kind", "TEXT NOT NULL DEFAULT ''"),
            ("payload", "TEXT NOT NULL DEFAULT '{}'"),
            ("event_at", "INTEGER NOT NULL DEFAULT 0"),
            ("target", "TEXT NOT NULL DEFAULT ''"),
            ("status", "TEXT NOT NULL DEFAULT 'pending'"),
            ("attempts", "INTEGER NOT NULL DEFAULT 0"),
            ("next_attempt_at", "INTEGER NOT NULL DEFAULT 0"),
            ("lease_until", "INTEGER"),
            ("last_error", "TEXT"),
            ("delivered_at", "INTEGER"),
        ],
    },
    // Recurring schedules (`kanban recurring add`): the tick creates a card from `card` (JSON) at each
    // occurrence of `cron` in the zone `tz`, one per occurrence by an idempotency key, and advances `next_at`
    // in the same transaction. `next_at` NULL: the expression never fires again.
    Table {
        name: "recurring",
        key: Key::IntegerId,
        columns: &[
            ("cron", "TEXT NOT NULL DEFAULT ''"),
            ("tz", "TEXT NOT NULL DEFAULT 'UTC'"),
            ("catch_up", "TEXT NOT NULL DEFAULT 'latest'"),
            ("skip_if_open", "INTEGER NOT NULL DEFAULT 0"),
            ("card", "TEXT NOT NULL DEFAULT '{}'"),
            ("next_at", "INTEGER"),
            ("last_occurrence", "INTEGER"),
            ("last_task_id", "TEXT"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
            ("created_by", "TEXT"),
        ],
    },
    Table {
        name: "task_attachments",
        key: Key::IntegerId,
        columns: &[
            ("task_id", "TEXT NOT NULL DEFAULT ''"),
            ("name", "TEXT NOT NULL DEFAULT ''"),
            ("stored_name", "TEXT NOT NULL DEFAULT ''"),
            ("size", "INTEGER NOT NULL DEFAULT 0"),
            ("sha256", "TEXT NOT NULL DEFAULT ''"),
            ("created_at", "INTEGER NOT NULL DEFAULT 0"),
        ],
    },
];

/// Indexes and triggers, created after every table has every column. `IF NOT EXISTS` keeps them idempotent.
pub const INDEXES: &[&str] = &[
    // The idempotency key is enforced here, not by a racy lookup; archived cards free their key.
    "CREATE UNIQUE INDEX IF NOT EXISTS tasks_idempotency_key ON tasks(idempotency_key)
       WHERE idempotency_key IS NOT NULL AND status <> 'archived'",
    "CREATE INDEX IF NOT EXISTS tasks_dispatch_order ON tasks(status, priority DESC, created_at)",
    // `list` in its default order (created_at, rowid) reads this index instead of sorting the board.
    "CREATE INDEX IF NOT EXISTS tasks_created ON tasks(created_at)",
    "CREATE INDEX IF NOT EXISTS task_links_child ON task_links(child_id)",
    "CREATE INDEX IF NOT EXISTS task_events_task ON task_events(task_id, id)",
    "CREATE INDEX IF NOT EXISTS task_events_run ON task_events(run_id)",
    "CREATE INDEX IF NOT EXISTS task_runs_task ON task_runs(task_id, id)",
    "CREATE INDEX IF NOT EXISTS task_runs_status ON task_runs(status) WHERE status <> 'ended'",
    // Ended attempts whose sessions the tick still watches for leftovers.
    "CREATE INDEX IF NOT EXISTS task_runs_unswept ON task_runs(ended_at) WHERE status = 'ended' AND swept_at IS NULL",
    "CREATE INDEX IF NOT EXISTS task_comments_task ON task_comments(task_id, id)",
    "CREATE INDEX IF NOT EXISTS task_attachments_task ON task_attachments(task_id, id)",
    "CREATE INDEX IF NOT EXISTS task_findings_task ON task_findings(task_id)",
    "CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox(next_attempt_at) WHERE status = 'pending'",
    // Every event of a routed kind enters the outbox in the transaction that appends it, whatever path
    // appended it: no front end can forget a notification.
    "CREATE TRIGGER IF NOT EXISTS notify_outbox_fill AFTER INSERT ON task_events
       WHEN EXISTS (SELECT 1 FROM notify_routes WHERE kind = NEW.kind)
     BEGIN
       INSERT INTO notify_outbox (event_id, task_id, run_id, kind, payload, event_at, target, next_attempt_at)
       SELECT NEW.id, NEW.task_id, NEW.run_id, NEW.kind, NEW.payload, NEW.created_at, target, NEW.created_at
         FROM notify_routes WHERE kind = NEW.kind;
     END",
    // The tick reads only the schedules that are due: a board of schedules none of which is due costs one
    // index probe.
    "CREATE INDEX IF NOT EXISTS recurring_due ON recurring(next_at) WHERE next_at IS NOT NULL",
];

/// Bring the file to [`SCHEMA_VERSION`]. A no-op (one pragma read) when it is already there. A file from a
/// newer release is left untouched; the version found is returned so the caller can refuse it.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<i64> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(version);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the write lock.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        apply(&tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(version.max(SCHEMA_VERSION))
}

fn apply(tx: &Transaction) -> rusqlite::Result<()> {
    for table in TABLES {
        let existing = columns_of(tx, table.name)?;
        if existing.is_empty() {
            tx.execute_batch(&create_sql(table, table.name))?;
            continue;
        }
        if !key_matches(tx, table)? {
            rebuild(tx, table, &existing)?;
            continue;
        }
        for (name, decl) in table.columns {
            if !existing.iter().any(|c| c == name) {
                tx.execute_batch(&format!("ALTER TABLE {} ADD COLUMN {name} {decl}", table.name))?;
            }
        }
    }
    for index in INDEXES {
        tx.execute_batch(index)?;
    }
    Ok(())
}

fn create_sql(table: &Table, name: &str) -> String {
    let mut cols: Vec<String> = Vec::new();
    match table.key {
        Key::IntegerId => cols.push("id INTEGER PRIMARY KEY AUTOINCREMENT".into()),
        Key::TextId => cols.push("id TEXT PRIMARY KEY".into()),
        Key::Composite(_) => {}
    }
    cols.extend(table.columns.iter().map(|(n, d)| format!("{n} {d}")));
    if let Key::Composite(keys) = table.key {
        cols.push(format!("PRIMARY KEY ({keys})"));
    }
    format!("CREATE TABLE {name} (\n  {}\n)", cols.join(",\n  "))
}

fn columns_of(tx: &Transaction, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = tx.prepare("SELECT name FROM pragma_table_info(?1)")?;
    stmt.query_map([table], |r| r.get(0))?.collect()
}

/// Does the table's primary key have the shape the current schema expects?
fn key_matches(tx: &Transaction, table: &Table) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare("SELECT name, type, pk FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?;
    let pk: Vec<(String, String)> = stmt
        .query_map([table.name], |r| Ok((r.get(0)?, r.get::<_, String>(1)?.to_ascii_uppercase())))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match table.key {
        Key::IntegerId => pk.len() == 1 && pk[0].0 == "id" && pk[0].1 == "INTEGER",
        Key::TextId => pk.len() == 1 && pk[0].0 == "id" && pk[0].1 == "TEXT",
        Key::Composite(keys) => {
            let want: Vec<&str> = keys.split(',').map(str::trim).collect();
            pk.len() == want.len() && pk.iter().zip(&want).all(|(have, want)| have.0 == *want)
        }
    })
}

/// Rebuild a table whose key drifted: new table, copy the columns both shapes share, swap. Rows are copied in
/// their original order (`rowid`), so a legacy event log keeps its sequence under new integer ids. Indexes on
/// the old table go with it and are recreated by [`apply`] afterwards.
fn rebuild(tx: &Transaction, table: &Table, existing: &[String]) -> rusqlite::Result<()> {
    let staging = format!("{}__rebuild", table.name);
    tx.execute_batch(&format!("DROP TABLE IF EXISTS {staging}"))?;
    tx.execute_batch(&create_sql(table, &staging))?;
    let shared: Vec<&str> =
        table.columns.iter().map(|(n, _)| *n).filter(|n| existing.iter().any(|c| c == n)).collect();
    let cols = shared.join(", ");
    // NOT NULL columns take their default where the legacy row had NULL, instead of failing the rebuild.
    let values: Vec<String> = shared
        .iter()
        .map(|name| {
            let decl = table.columns.iter().find(|(n, _)| n == name).map(|(_, d)| *d).unwrap_or("");
            match decl.split_once("DEFAULT ") {
                Some((_, default)) => format!("IFNULL({name}, {default})"),
                None => (*name).to_string(),
            }
        })
        .collect();
    let values = values.join(", ");
    let order = if existing.iter().any(|c| c == "created_at") { "created_at, rowid" } else { "rowid" };
    let moved = tx.execute(
        &format!("INSERT INTO {staging} ({cols}) SELECT {values} FROM {} ORDER BY {order}", table.name),
        [],
    )?;
    tx.execute_batch(&format!(
        "DROP TABLE {name}; ALTER TABLE {staging} RENAME TO {name};",
        name = table.name
    ))?;
    tracing::info!(table = table.name, rows = moved, "rebuilt table with drifted primary key");
    Ok(())
}
