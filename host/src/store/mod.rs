//! The board's durable state: the only code that writes SQL.
//!
//! Every state change is one `BEGIN IMMEDIATE` transaction ([`Store::write`]) that loads the card, asks the
//! rules ([`crate::lifecycle`], [`crate::breaker`]) what the change is, writes it with a compare-and-set on
//! what it read, appends its events, and commits. The store decides no rule itself: it loads, checks by
//! compare-and-set, appends and commits. Callers never hold a transaction across a process spawn or a
//! plugin call. This module knows nothing of board.toml, processes or plugins: limits and "now" are passed
//! in.

mod backup;
mod cards;
mod conn;
mod copy;
pub(crate) mod db;
mod gc;
mod notify;
mod pauses;
mod pg;
mod policy;
mod recurring;
pub(crate) mod rows;
mod runs;
mod schema;
mod shared;
#[cfg(test)]
pub(crate) mod testing;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use db::Tx;

pub use backup::{Snapshot, header_schema_version};
pub use cards::{
    Applied, BatchCard, BatchError, Created, EditTask, EventTally, ListSort, NewTask, ParentRef, RunSpan,
    Stats, TaskDetail, TaskFilter, new_task_id,
};
pub use conn::{BUSY_TIMEOUT, check_not_torn, open_connection, quarantine};
pub use copy::{BoardRows, CopyError, TableDigest, check_same, file_digests};
pub use gc::{EventPrune, FilesRemoved};
pub use notify::{Attempt, Delivery};
pub use pauses::Paused;
pub use pg::{redacted as redacted_url, schema_of};
pub use policy::{PolicyTick, Quarantined};
pub use recurring::{NewSchedule, Occurrence, card_of};
pub use runs::{HostSeen, HostSign, RunningCard, Settled};
pub use schema::SCHEMA_VERSION;
pub use shared::{SharedConfig, SharedPlugin};

/// The longest a follower of a PostgreSQL board waits for a push before it reads the events again.
pub const PUSH_REREAD: std::time::Duration = std::time::Duration::from_secs(5);

/// Who holds a claim: `lock` is `<hostname>:<pid>` of the dispatcher (for people), `host` the host id that
/// decides whether a claim is this host's to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub lock: String,
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// What was not found, e.g. "card t_12345678" or "attachment 9".
    #[error("{0} not found")]
    NotFound(String),
    /// The request is well-formed but the card's state does not allow it.
    #[error("{0}")]
    Refused(String),
    /// The request itself is bad (blank title, malformed value): a usage error.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "database {path} is corrupt ({detail}); a copy was quarantined at {backup}; restore the board from a \
         backup or move the file away to start empty"
    )]
    Corrupt { path: PathBuf, backup: PathBuf, detail: String },
    #[error(
        "database {path} is torn: its header says {expected} bytes but the file has {actual} (truncated after \
         an extend); refusing to continue"
    )]
    Torn { path: PathBuf, expected: u64, actual: u64 },
    // The SQLite error is part of the message, not a `source`: anyhow's `{:#}` would print it twice.
    #[error("database {path}: {error}")]
    Sqlite { path: PathBuf, error: rusqlite::Error },
    #[error(
        "database {path} has schema version {found}, newer than this kanban understands ({supported}); \
         upgrade kanban instead of opening it with an older build"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error(
        "database {path} is locked by another process and stayed locked for {} ms (the busy timeout); \
         nothing was written; retry, or find the holder with `fuser {path}`",
        waited.as_millis()
    )]
    Locked { path: PathBuf, waited: std::time::Duration },
    #[error(
        "database {path} cannot be written: {reason}; kanban writes beside the database (its write-ahead log) \
         even to read, so {dir} must be writable"
    )]
    ReadOnly { path: PathBuf, dir: PathBuf, reason: String },
    #[error(
        "database {path}: no space left on the device; the change was not made and nothing committed was lost; \
         free some space and retry"
    )]
    DiskFull { path: PathBuf },
    /// A SQLite error raised inside a transaction body; [`Store::write`] attaches the path.
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    /// A PostgreSQL error (the fleet store): the server's message, or why the connection failed. Part of
    /// the message, not a `source` (its own source repeats it).
    #[error("PostgreSQL: {}", pg_message(.0))]
    Postgres(postgres::Error),
    /// The connection to PostgreSQL went away where it cannot simply be replaced.
    #[error("PostgreSQL: {0}")]
    ConnectionLost(String),
    #[error("{context}: {error}")]
    Io { context: String, error: std::io::Error },
}

/// A PostgreSQL error with its cause ("error connecting to server: Connection refused", "db error: ERROR:
/// ..."): the client's own text names only the kind.
fn pg_message(error: &postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> StoreError {
        StoreError::Postgres(error)
    }
}

impl StoreError {
    /// Exit code at the CLI edge: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            StoreError::Invalid(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One open board database.
pub struct Store {
    conn: Engine,
    path: PathBuf,
}

/// The engine under a store: the board's own SQLite file, or its schema in a shared PostgreSQL database.
enum Engine {
    Lite(Connection),
    Pg(Box<pg::PgBoard>),
}

impl Store {
    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = open_connection(path)?;
        // Reads run the same statements for every card of a tick; keep them compiled.
        conn.set_prepared_statement_cache_capacity(64);
        let found = schema::migrate(&mut conn).map_err(|e| conn::classify(path, e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
        }
        Ok(Store { conn: Engine::Lite(conn), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `body` in one write transaction and commit it: `BEGIN IMMEDIATE` on SQLite; on PostgreSQL a
    /// transaction that first takes the board's advisory lock, so writers are serialized the same way.
    ///
    /// On failure the transaction is rolled back and the body's own error is returned: a rollback error
    /// (for example "no transaction is active" after SQLite already rolled back) is logged, never reported in
    /// place of the cause. After a SQLite commit the file is checked for a torn extend.
    pub(crate) fn write<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        match &mut self.conn {
            Engine::Lite(conn) => {
                let tx = Tx::Lite(
                    conn.transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(|e| conn::classify(&path, e))?,
                );
                let outcome = body(&tx);
                let Tx::Lite(tx) = tx else { unreachable!("a SQLite transaction") };
                match outcome {
                    Ok(value) => {
                        tx.commit().map_err(|e| conn::classify(&path, e))?;
                        check_not_torn_settled(&path)?;
                        Ok(value)
                    }
                    Err(err) => {
                        if let Err(rollback) = tx.rollback() {
                            tracing::warn!(error = %rollback, cause = %err, "rollback after a failed transaction also failed");
                        }
                        Err(attach_path(&path, err))
                    }
                }
            }
            Engine::Pg(board) => board.write(body),
        }
    }

    /// Run `body` in a read transaction, so multi-query reads see one snapshot.
    pub(crate) fn read<T>(&mut self, body: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        match &mut self.conn {
            Engine::Lite(conn) => {
                let tx = Tx::Lite(
                    conn.transaction_with_behavior(TransactionBehavior::Deferred)
                        .map_err(|e| conn::classify(&path, e))?,
                );
                let value = body(&tx).map_err(|e| attach_path(&path, e))?;
                let Tx::Lite(tx) = tx else { unreachable!("a SQLite transaction") };
                // Ending a read-only transaction cannot lose anything; report a failure anyway rather than
                // hide it.
                tx.commit().map_err(|e| conn::classify(&path, e))?;
                Ok(value)
            }
            Engine::Pg(board) => board.read(body),
        }
    }

    /// The store is a board schema in a shared PostgreSQL database (a fleet), not a file of this host.
    pub fn is_shared(&self) -> bool {
        matches!(self.conn, Engine::Pg(_))
    }

    /// On a shared (PostgreSQL) board, take the board's tick lock for this connection's life, without
    /// waiting; `false` when another dispatcher, on any host, holds it. A SQLite board's tick lock is its
    /// folder's lock file (the dispatcher's), so this is `true`.
    pub fn try_tick_lock(&mut self) -> Result<bool> {
        match &mut self.conn {
            Engine::Lite(_) => Ok(true),
            Engine::Pg(board) => board.try_tick_lock(),
        }
    }

    /// Wait for new events of the board: on SQLite, `poll` (the caller reads again after it); on
    /// PostgreSQL until another connection appends some (they are pushed: `LISTEN`/`NOTIFY`), or at most
    /// [`PUSH_REREAD`] (a caller reads again then anyway, in case a push was lost with a connection).
    /// `true` when new events were pushed.
    pub fn wait_for_events(&mut self, poll: std::time::Duration) -> Result<bool> {
        match &mut self.conn {
            Engine::Lite(_) => {
                std::thread::sleep(poll);
                Ok(false)
            }
            Engine::Pg(board) => board.wait_for_events(PUSH_REREAD),
        }
    }

    /// Close the connection, reporting any error instead of swallowing it in `Drop`.
    pub fn close(self) -> Result<()> {
        let path = self.path;
        match self.conn {
            Engine::Lite(conn) => conn.close().map_err(|(_, e)| conn::classify(&path, e)),
            Engine::Pg(board) => board.close(),
        }
    }
}

fn attach_path(path: &Path, err: StoreError) -> StoreError {
    match err {
        StoreError::Sql(e) => conn::classify(path, e),
        other => other,
    }
}

/// The torn-extend check after a commit. Another process may be mid-checkpoint (SQLite writes page 1, with
/// the new size, before the pages that extend the file), so a short file is re-read a few times before it
/// is called torn. A truly torn file stays short.
fn check_not_torn_settled(path: &Path) -> Result<()> {
    let mut attempt = 0;
    loop {
        match check_not_torn(path) {
            Err(StoreError::Torn { .. }) if attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[test]
    fn opening_and_closing_thousands_of_times_leaks_no_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        Store::open(&db).unwrap().close().unwrap();
        let before = open_fds();
        for i in 0..3000 {
            let mut store = Store::open(&db).unwrap();
            if i % 100 == 0 {
                store
                    .write(|tx| {
                        tx.execute("INSERT INTO task_comments (task_id, body) VALUES ('x', 'y')", &[])
                    })
                    .unwrap();
            }
            if i % 2 == 0 {
                store.close().unwrap();
            } else {
                drop(store);
            }
        }
        // Other tests run in parallel threads and open their own files; allow their noise, not a leak of
        // one descriptor per open (which would be thousands).
        let after = open_fds();
        assert!(after <= before + 20, "descriptors grew from {before} to {after}");
    }

    #[test]
    fn a_failed_transaction_reports_its_own_error_not_the_rollback_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        // The body ends the transaction itself, so the wrapper's rollback fails with "no transaction is
        // active"; the caller must still see the body's error.
        let err = store
            .write(|tx| {
                tx.execute_batch("ROLLBACK")?;
                Err::<(), _>(StoreError::Refused("the original cause".into()))
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "the original cause");
        // And a SQL error from the body keeps its message, with the database named.
        let err = store
            .write(|tx| {
                tx.execute_batch("INSERT INTO no_such_table VALUES (1)")?;
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("no_such_table"), "{err}");
        assert!(err.to_string().contains("kanban.db"), "{err}");
    }

    #[test]
    fn a_failed_transaction_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        let _ = store.write(|tx| {
            tx.execute("INSERT INTO task_comments (task_id, body) VALUES ('x', 'y')", &[])?;
            Err::<(), _>(StoreError::Refused("no".into()))
        });
        let n: i64 =
            store.read(|tx| tx.query_row("SELECT count(*) FROM task_comments", &[], |r| r.get(0))).unwrap();
        assert_eq!(n, 0);
    }
}
