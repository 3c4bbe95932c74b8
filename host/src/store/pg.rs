//! A board in a shared PostgreSQL database: one schema per board (`kanban_<slug>`), the same tables,
//! columns and indexes as the SQLite file ([`super::schema::TABLES`]), and the same statements
//! ([`super::db`]). Writers of a board are serialized by a transaction-scoped advisory lock keyed by the
//! board, taken first in every write transaction: the count-then-claim of a tick, a worker's `complete` and
//! another host's tick queue on it exactly as they queue on SQLite's write lock, so caps and
//! compare-and-sets hold across hosts. Readers take a repeatable-read snapshot and never wait.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use postgres::{Client, IsolationLevel, NoTls};
use sha2::{Digest, Sha256};

use super::db::{PgTx, Tx};
use super::schema::{INDEXES, Key, SCHEMA_VERSION, TABLES, Table};
use super::{Engine, Result, Store, StoreError};

pub(super) struct PgBoard {
    client: Client,
    lock_key: i64,
    cache: RefCell<HashMap<String, postgres::Statement>>,
}

/// The schema that holds board `slug` (quoted where it is used: a slug may hold `-`).
pub fn schema_of(slug: &str) -> String {
    format!("kanban_{slug}")
}

/// The URL as it may be shown: without its password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            match user.split_once(':') {
                Some((name, _)) => format!("{}{name}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Open (creating if needed) board `slug` in the PostgreSQL database at `url`, migrating its schema.
    pub fn open_postgres(url: &str, slug: &str) -> Result<Store> {
        let schema = schema_of(slug);
        if !schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
            return Err(StoreError::Invalid(format!("board name '{slug}' cannot name a PostgreSQL schema")));
        }
        let mut client = Client::connect(url, NoTls)?;
        // A host that stops answering (frozen, partitioned) loses its session after a minute idle, and with
        // it the board's tick lock, or its write lock if it stopped inside a transaction; a live connection
        // is never idle that long (it lives for one command or one tick, and a transaction never waits on
        // a process or a plugin).
        client.batch_execute(&format!(
            "SET search_path TO \"{schema}\"; SET idle_session_timeout = '60s';
             SET idle_in_transaction_session_timeout = '60s'"
        ))?;
        let digest = Sha256::digest(schema.as_bytes());
        let lock_key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let mut board = PgBoard { client, lock_key, cache: RefCell::new(HashMap::new()) };
        let found = board.migrate(&schema)?;
        let path = PathBuf::from(format!("{}#{schema}", redacted(url)));
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path, found, supported: SCHEMA_VERSION });
        }
        Ok(Store { conn: Engine::Pg(Box::new(board)), path })
    }
}

impl PgBoard {
    /// Take the board's tick lock for this connection's life, without waiting: `false` when another
    /// dispatcher, on any host, holds it. Released when the connection closes (the tick's end, or a
    /// dead host's session ending).
    pub(super) fn try_tick_lock(&mut self) -> Result<bool> {
        let key = self.lock_key ^ 1;
        Ok(self.client.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?.get(0))
    }

    pub(super) fn write<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.lock_key])?;
        let tx = Tx::Pg(PgTx { tx: RefCell::new(tx), cache: &self.cache });
        let outcome = body(&tx);
        let Tx::Pg(pg) = tx else { unreachable!("a PostgreSQL transaction") };
        let tx = pg.tx.into_inner();
        match outcome {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = tx.rollback() {
                    tracing::warn!(error = %rollback, cause = %err, "rollback after a failed transaction also failed");
                }
                Err(err)
            }
        }
    }

    pub(super) fn read<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let tx = self.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start()?;
        let tx = Tx::Pg(PgTx { tx: RefCell::new(tx), cache: &self.cache });
        let value = body(&tx)?;
        let Tx::Pg(pg) = tx else { unreachable!("a PostgreSQL transaction") };
        pg.tx.into_inner().commit()?;
        Ok(value)
    }

    pub(super) fn close(self) -> Result<()> {
        Ok(self.client.close()?)
    }

    /// Bring the board's schema to [`SCHEMA_VERSION`], additively, in one transaction under the board's
    /// lock (two hosts opening a new board at once create it once). Returns the version found.
    fn migrate(&mut self, schema: &str) -> Result<i64> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.lock_key])?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS kanban_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);"
        ))?;
        let found: i64 = tx
            .query_opt("SELECT value FROM kanban_meta WHERE key = 'schema_version'", &[])?
            .map(|row| row.get(0))
            .unwrap_or(0);
        if found < SCHEMA_VERSION {
            tx.batch_execute(&ddl())?;
            tx.execute(
                "INSERT INTO kanban_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&SCHEMA_VERSION],
            )?;
        }
        tx.commit()?;
        Ok(found.max(SCHEMA_VERSION))
    }
}

/// A column declaration in PostgreSQL's types: SQLite's 64-bit INTEGER is BIGINT.
fn pg_decl(decl: &str) -> String {
    decl.replace("INTEGER", "BIGINT")
}

/// The whole schema as idempotent PostgreSQL DDL, derived from the same table list as SQLite's.
fn ddl() -> String {
    let mut sql = String::new();
    for table in TABLES {
        sql.push_str(&create_table(table));
        for (name, decl) in table.columns {
            sql.push_str(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {name} {};\n",
                table.name,
                pg_decl(decl)
            ));
        }
    }
    for index in INDEXES {
        // The outbox trigger is SQLite's syntax; PostgreSQL's is below.
        if !index.trim_start().starts_with("CREATE TRIGGER") {
            sql.push_str(index);
            sql.push_str(";\n");
        }
    }
    sql.push_str(OUTBOX_TRIGGER);
    sql
}

fn create_table(table: &Table) -> String {
    let mut cols: Vec<String> = Vec::new();
    match table.key {
        Key::IntegerId => cols.push("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY".into()),
        Key::TextId => cols.push("id TEXT PRIMARY KEY".into()),
        Key::Composite(_) => {}
    }
    // SQLite's implicit rowid orders cards created in the same second (their ids are random); PostgreSQL
    // has none, so the cards table carries it as a column.
    if table.name == "tasks" {
        cols.push("rowid BIGINT GENERATED BY DEFAULT AS IDENTITY".into());
    }
    cols.extend(table.columns.iter().map(|(n, d)| format!("{n} {}", pg_decl(d))));
    if let Key::Composite(keys) = table.key {
        cols.push(format!("PRIMARY KEY ({keys})"));
    }
    format!("CREATE TABLE IF NOT EXISTS {} (\n  {}\n);\n", table.name, cols.join(",\n  "))
}

/// The outbox fill of SQLite's `notify_outbox_fill` trigger: every event of a routed kind enters the
/// outbox in the transaction that appends it.
const OUTBOX_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION notify_outbox_fill() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO notify_outbox (event_id, task_id, run_id, kind, payload, event_at, target, next_attempt_at)
  SELECT NEW.id, NEW.task_id, NEW.run_id, NEW.kind, NEW.payload, NEW.created_at, target, NEW.created_at
    FROM notify_routes WHERE kind = NEW.kind;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER notify_outbox_fill AFTER INSERT ON task_events
  FOR EACH ROW EXECUTE FUNCTION notify_outbox_fill();
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(redacted("postgres://kanban:s3cret@db:5432/k"), "postgres://kanban:***@db:5432/k");
        assert_eq!(redacted("postgres://kanban@db/k"), "postgres://kanban@db/k");
        assert_eq!(redacted("host=db user=kanban"), "host=db user=kanban");
    }
}
