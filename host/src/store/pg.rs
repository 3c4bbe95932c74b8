//! A board in a shared PostgreSQL database: one schema per board (`kanban_<slug>`), the same tables,
//! columns and indexes as the SQLite file ([`super::schema::TABLES`]), and the same statements
//! ([`super::db`]). Writers of a board are serialized by a transaction-scoped advisory lock keyed by the
//! board, taken first in every write transaction: the count-then-claim of a tick, a worker's `complete` and
//! another host's tick queue on it exactly as they queue on SQLite's write lock, so caps and
//! compare-and-sets hold across hosts. Readers take a repeatable-read snapshot and never wait.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, NoTls};
use sha2::{Digest, Sha256};

use super::db::{PgTx, Tx};
use super::schema::{INDEXES, Key, SCHEMA_VERSION, TABLES, Table};
use super::{Engine, Result, Store, StoreError};

pub(super) struct PgBoard {
    client: Client,
    url: String,
    schema: String,
    lock_key: i64,
    cache: RefCell<HashMap<String, postgres::Statement>>,
    /// When the connection last answered: one idle longer than [`IDLE_CHECK`] is checked before use.
    last_used: Instant,
    /// This connection holds the board's tick lock: losing it must end the tick, not reconnect.
    tick_locked: bool,
    /// This connection listens on the board's event channel.
    listening: bool,
}

/// The server ends a session idle for [`IDLE_TIMEOUT`]; a connection idle half that long is checked (one
/// empty query) before its next transaction, and replaced if it is gone.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// `idle_session_timeout` and `idle_in_transaction_session_timeout` of every session.
const IDLE_TIMEOUT: &str = "60s";

/// Connect to `url` with the session settings every board connection has.
fn connect(url: &str, schema: &str) -> Result<Client> {
    let mut client = Client::connect(url, NoTls)?;
    // A host that stops answering (frozen, partitioned) loses its session after a minute idle, and with it
    // the board's tick lock, or its write lock if it stopped inside a transaction. A connection kept
    // longer than that (a supervisor's, while its worker runs) is checked and replaced before its next
    // transaction ([`PgBoard::ready`]).
    client.batch_execute(&format!(
        "SET client_min_messages = warning; SET search_path TO \"{schema}\"; SET idle_session_timeout = '{IDLE_TIMEOUT}';
         SET idle_in_transaction_session_timeout = '{IDLE_TIMEOUT}'"
    ))?;
    Ok(client)
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
        let client = connect(url, &schema)?;
        let digest = Sha256::digest(schema.as_bytes());
        let lock_key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let mut board = PgBoard {
            client,
            url: url.to_string(),
            schema: schema.clone(),
            lock_key,
            cache: RefCell::new(HashMap::new()),
            last_used: Instant::now(),
            tick_locked: false,
            listening: false,
        };
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
        self.ready()?;
        let key = self.lock_key ^ 1;
        let locked = self.client.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?.get(0);
        self.tick_locked |= locked;
        Ok(locked)
    }

    /// Make sure the connection is alive before a transaction: one the server ended (idle too long, a
    /// restart, a network cut) is replaced by a new one, so a long-lived holder (a supervisor waiting on
    /// its worker, retrying to record the exit) recovers by itself. Not while it holds the tick lock: a
    /// tick whose lock went with its connection must end (the next tick starts afresh).
    fn ready(&mut self) -> Result<()> {
        let gone = self.client.is_closed()
            || (self.last_used.elapsed() > IDLE_CHECK
                && self.client.is_valid(Duration::from_secs(5)).is_err());
        if gone {
            if self.tick_locked {
                return Err(StoreError::ConnectionLost(
                    "the connection holding the board's tick lock was lost; the tick ends here".into(),
                ));
            }
            tracing::info!(schema = %self.schema, "reconnecting to the board's database");
            self.client = connect(&self.url, &self.schema)?;
            self.cache.borrow_mut().clear();
            self.listening = false;
        }
        self.last_used = Instant::now();
        Ok(())
    }

    /// Wait until another connection appends events to the board (a notification on its channel), or
    /// `timeout` passes. `true` when notified.
    pub(super) fn wait_for_events(&mut self, timeout: Duration) -> Result<bool> {
        self.ready()?;
        if !self.listening {
            self.client.batch_execute(&format!("LISTEN \"{}\"", self.schema))?;
            self.listening = true;
        }
        let notified = self.client.notifications().timeout_iter(timeout).next()?.is_some();
        // Several statements may have notified meanwhile: one wake-up reads them all.
        while self.client.notifications().iter().next()?.is_some() {}
        Ok(notified)
    }

    /// Replace a connection found closed when a transaction began on it (the server restarted, the
    /// network was cut since its last use): nothing ran on it, so the transaction can begin again.
    fn begin_again(&mut self, error: postgres::Error) -> Result<()> {
        if !self.client.is_closed() || self.tick_locked {
            return Err(error.into());
        }
        tracing::info!(schema = %self.schema, error = %error, "the board's database connection was lost; reconnecting");
        self.client = connect(&self.url, &self.schema)?;
        self.cache.borrow_mut().clear();
        self.listening = false;
        Ok(())
    }

    pub(super) fn write<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        self.ready()?;
        let error = match self.client.transaction() {
            Ok(tx) => return write_in(tx, self.lock_key, &self.cache, body),
            Err(error) => error,
        };
        self.begin_again(error)?;
        let tx = self.client.transaction()?;
        write_in(tx, self.lock_key, &self.cache, body)
    }

    pub(super) fn read<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        self.ready()?;
        let error =
            match self.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start() {
                Ok(tx) => return read_in(tx, &self.cache, body),
                Err(error) => error,
            };
        self.begin_again(error)?;
        let tx = self.client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start()?;
        read_in(tx, &self.cache, body)
    }

    pub(super) fn close(self) -> Result<()> {
        Ok(self.client.close()?)
    }

    /// Bring the board's schema to [`SCHEMA_VERSION`], additively, in one transaction under the board's
    /// lock (two hosts opening a new board at once create it once). Returns the version found.
    fn migrate(&mut self, schema: &str) -> Result<i64> {
        // Almost always the schema is current: read that without the board's lock (every command and
        // supervisor opens the board; they must not queue behind its writers just to learn it). A schema
        // not made yet fails this read, which is fine: the locked path makes it.
        let current = self.client.query_one(
            "SELECT (SELECT value FROM kanban_meta WHERE key = 'schema_version'),
                    (SELECT value FROM kanban_meta WHERE key = 'shared_version')",
            &[],
        );
        if let Ok(row) = current
            && let (Some(found), Some(shared)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
            && found >= SCHEMA_VERSION
            && shared >= SHARED_VERSION
        {
            return Ok(found);
        }
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
        let shared: i64 = tx
            .query_opt("SELECT value FROM kanban_meta WHERE key = 'shared_version'", &[])?
            .map(|row| row.get(0))
            .unwrap_or(0);
        if found < SCHEMA_VERSION || shared < SHARED_VERSION {
            tx.batch_execute(&ddl())?;
            tx.batch_execute(SHARED_DDL)?;
            tx.execute(
                "INSERT INTO kanban_meta (key, value) VALUES ('shared_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&SHARED_VERSION],
            )?;
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

/// Run `body` in write transaction `tx` after taking the board's write lock, and commit it (or roll it
/// back, returning the body's own error).
fn write_in<T>(
    mut tx: postgres::Transaction<'_>,
    lock_key: i64,
    cache: &RefCell<HashMap<String, postgres::Statement>>,
    body: impl FnOnce(&Tx) -> Result<T>,
) -> Result<T> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key])?;
    let tx = Tx::Pg(PgTx { tx: RefCell::new(tx), cache });
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

/// Run `body` in read transaction `tx` and end it.
fn read_in<T>(
    tx: postgres::Transaction<'_>,
    cache: &RefCell<HashMap<String, postgres::Statement>>,
    body: impl FnOnce(&Tx) -> Result<T>,
) -> Result<T> {
    let tx = Tx::Pg(PgTx { tx: RefCell::new(tx), cache });
    let value = body(&tx)?;
    let Tx::Pg(pg) = tx else { unreachable!("a PostgreSQL transaction") };
    pg.tx.into_inner().commit()?;
    Ok(value)
}

/// The version of the tables only a shared board has ([`SHARED_DDL`]).
const SHARED_VERSION: i64 = 1;

/// What the hosts of a board share besides its cards ([`super::shared`]): the configuration `board.toml`
/// holds, and the plugins its policies name, pinned by name, with their bytes by sha256. And the push of
/// new events: a statement that appends events notifies the channel named after the board's schema, which
/// a follower listens on ([`PgBoard::wait_for_events`]).
const SHARED_DDL: &str = "
CREATE TABLE IF NOT EXISTS shared_config (
  name TEXT PRIMARY KEY, body TEXT NOT NULL, sha256 TEXT NOT NULL,
  updated_at BIGINT NOT NULL, updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shared_plugins (
  name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, kind TEXT NOT NULL, version TEXT NOT NULL,
  wit_version TEXT NOT NULL, installed_at BIGINT NOT NULL, size BIGINT NOT NULL, published_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shared_blobs (sha256 TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM pg_notify(current_schema(), '');
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER events_notify AFTER INSERT ON task_events
  FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
";

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
