//! Moving a board between engines, so nobody is locked in: `kanban board migrate SLUG --to postgres://...`
//! copies a SQLite board into its schema in a PostgreSQL database, `--to sqlite` copies a PostgreSQL board
//! back into a file in its folder.
//!
//! This file owns the order of the move: the locks, the refusals, the archive and the switch of the board's
//! folder from one engine to the other. The rows are copied and checked by the store ([`Store::copy_in`]:
//! every table, same keys, one write transaction, read back and compared table by table before it commits).
//! It never writes into a store that holds a row, never deletes the store it copied from, and never leaves a
//! folder that does not open.
//!
//! Either way the move is:
//! 1. the board's tick lock (its folder's lock file, and on PostgreSQL the database's), so no dispatcher of
//!    this host or another ticks it meanwhile;
//! 2. the source's write lock, held until the switch ([`Store::hold_for_copy`]), so no write lands in the
//!    source after it was read; a card running, or an attempt not over, refuses the move here;
//! 3. the copy into the empty destination, verified before it commits (a refusal or a mismatch rolls it
//!    back: the destination is left empty);
//! 4. the switch. A folder opens PostgreSQL exactly when it holds `database.url` ([`Board::open_store`]), so
//!    the order is chosen for a crash at any point to leave a board that opens, on the engine that holds
//!    every committed write:
//!    - to PostgreSQL: snapshot the file into the archive and check it, commit the copy, then write
//!      `database.url` (the switch), then move `kanban.db` out into the archive. A crash before the switch
//!      leaves the SQLite board as it was (and a copy in the schema that a retry refuses to overwrite); after
//!      it, the board opens PostgreSQL, and a `kanban.db` still in the folder is not opened.
//!    - to SQLite: build the file under a staging name in the folder, check it, rename it to `kanban.db`
//!      (the board still opens PostgreSQL: `database.url` is there), then move `database.url` into the
//!      archive (the switch). A crash between the two leaves both; the board opens PostgreSQL, which holds
//!      every write, and a retry asks for the stray `kanban.db` to be moved away.
//!
//! A command that had opened the SQLite file before the switch and was waiting for its write lock writes
//! into the moved file after it: hence "stop the daemons first", and the moved file is kept, never deleted.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::board::{Board, BoardError, Home, check_slug, write_private};
use crate::store::{self, BoardRows, CopyError, Store, TableDigest};

/// Where `--to` says the board goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Postgres(String),
    Sqlite,
}

impl Destination {
    /// `sqlite`, or a `postgres://` / `postgresql://` URL.
    pub fn parse(text: &str) -> Result<Destination, MigrateError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sqlite") {
            Ok(Destination::Sqlite)
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Destination::Postgres(text.to_string()))
        } else {
            Err(MigrateError::BadDestination(store::redacted_url(text)))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("--to must be a postgres:// or postgresql:// URL, or `sqlite`, got '{0}'")]
    BadDestination(String),
    #[error("board '{slug}' is already in {engine}{hint}")]
    Already { slug: String, engine: &'static str, hint: &'static str },
    #[error("board '{slug}' is being ticked by a dispatcher{place}; stop the daemons first")]
    Ticking { slug: String, place: &'static str },
    #[error(
        "board '{slug}' is not quiet: {} card(s) running or with an attempt not over ({}); stop the daemons \
         first and let those cards finish (or stop them), then migrate",
        ids.len(),
        ids.join(", ")
    )]
    Busy { slug: String, ids: Vec<String> },
    #[error(
        "board '{slug}' cannot move to {database}: its schema {schema} there already holds a board ({table} \
         has {rows} row(s)); migrate never overwrites: drop the schema (DROP SCHEMA \"{schema}\" CASCADE) if \
         nothing needs it, or use another database"
    )]
    NotEmpty { slug: String, database: String, schema: String, table: &'static str, rows: i64 },
    #[error(
        "board '{slug}' is in PostgreSQL but its folder also holds {}: left by an interrupted migrate, or \
         written by a command that opened the board during one; move it away, then migrate",
        path.display()
    )]
    StrayFile { slug: String, path: PathBuf },
    // The copy's error is part of the message, not a `source` (anyhow's `{:#}` would print it twice).
    #[error("board '{slug}': {stage}: {error}; nothing was switched, the board is still in {engine}")]
    Copy { slug: String, stage: &'static str, engine: &'static str, error: Box<CopyError> },
}

impl MigrateError {
    /// Exit code at the CLI edge: 2 for a `--to` that names no engine, 1 for a refusal.
    pub fn exit_code(&self) -> u8 {
        match self {
            MigrateError::BadDestination(_) => 2,
            _ => 1,
        }
    }
}

/// What `board migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    pub slug: String,
    /// `sqlite` or `postgresql`.
    pub from: &'static str,
    pub to: &'static str,
    /// The PostgreSQL database, without its password.
    pub database: String,
    /// The board's schema in it.
    pub schema: String,
    /// The SQLite file: the archived copy of the board (to PostgreSQL), or its new database (to SQLite).
    pub sqlite: String,
    /// The folder under `<home>/archive/` that keeps what the board left behind.
    pub archive: String,
    /// Each table's rows and digest, the same in both stores.
    pub tables: Vec<TableDigest>,
    /// Row counts and digests were read back from both stores and matched (always true: a mismatch fails).
    pub verified: bool,
    /// Things that did not go as planned once the board was switched (it was, and it opens).
    pub warnings: Vec<String>,
}

const SQLITE: &str = "sqlite";
const POSTGRES: &str = "postgresql";
/// The SQLite file being built in the board's folder on the way back (only `migrate` uses the name, under
/// the board's tick lock).
const STAGING: &str = "kanban.db.migrating";
/// A SQLite database's files: the database and, in WAL mode, its log and shared index.
const SQLITE_FILES: [&str; 3] = ["kanban.db", "kanban.db-wal", "kanban.db-shm"];

/// Move board `slug` to `to`. See the module's documentation for the order and what a crash leaves.
pub fn migrate(home: &Home, slug: &str, to: &Destination, now: i64) -> anyhow::Result<Migrated> {
    let board = open_board(home, slug)?;
    let migrated = match (to, board.database.clone()) {
        (Destination::Postgres(url), None) => to_postgres(home, &board, url, now)?,
        (Destination::Sqlite, Some(url)) => to_sqlite(home, &board, &url, now)?,
        (Destination::Postgres(_), Some(_)) => {
            return Err(MigrateError::Already {
                slug: slug.to_string(),
                engine: "PostgreSQL",
                hint: " (to move it to another database, migrate it to sqlite first)",
            }
            .into());
        }
        (Destination::Sqlite, None) => {
            return Err(MigrateError::Already { slug: slug.to_string(), engine: "SQLite", hint: "" }.into());
        }
    };
    // The archive's record of what was moved and verified, beside what the board left.
    let record = Path::new(&migrated.archive).join("migrate.json");
    let json = serde_json::to_vec_pretty(&migrated).expect("the report serializes");
    if let Err(e) = fs::write(&record, json) {
        tracing::warn!(file = %record.display(), error = %e, "cannot write the migration's record");
    }
    Ok(migrated)
}

/// The board, which must exist (`default` is not created by migrating it).
fn open_board(home: &Home, slug: &str) -> anyhow::Result<Board> {
    check_slug(slug)?;
    let slugs = home.board_slugs()?;
    if !slugs.iter().any(|s| s == slug) {
        let known = if slugs.is_empty() { "none".to_string() } else { slugs.join(", ") };
        return Err(BoardError::NotFound { slug: slug.to_string(), known }.into());
    }
    Ok(home.open_board(slug)?)
}

fn hold_tick_lock(board: &Board) -> anyhow::Result<nix::fcntl::Flock<File>> {
    crate::dispatch::try_lock(board)?
        .ok_or_else(|| MigrateError::Ticking { slug: board.slug.clone(), place: "" }.into())
}

fn refuse_busy(slug: &str, rows: &BoardRows) -> Result<(), MigrateError> {
    let ids = rows.busy_cards();
    if ids.is_empty() { Ok(()) } else { Err(MigrateError::Busy { slug: slug.to_string(), ids }) }
}

fn copy_failed(slug: &str, stage: &'static str, engine: &'static str, error: CopyError) -> anyhow::Error {
    match error {
        // A store error is reported as itself (its exit code, its message).
        CopyError::Store(e) => anyhow::Error::new(e).context(format!("board '{slug}': {stage}")),
        error => MigrateError::Copy { slug: slug.to_string(), stage, engine, error: Box::new(error) }.into(),
    }
}

fn not_empty(slug: &str, url: &str, table: &'static str, rows: i64) -> anyhow::Error {
    MigrateError::NotEmpty {
        slug: slug.to_string(),
        database: store::redacted_url(url),
        schema: store::schema_of(slug),
        table,
        rows,
    }
    .into()
}

/// A folder of its own under `<home>/archive/`, removed again unless the move completes.
struct Archive {
    path: PathBuf,
    keep: bool,
}

impl Archive {
    /// `<home>/archive/<slug>.<now>.<engine>` (`.N` added if taken), created here so no other move gets it.
    fn reserve(home: &Home, slug: &str, now: i64, engine: &str) -> anyhow::Result<Archive> {
        let dir = home.root().join("archive");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut path = dir.join(format!("{slug}.{now}.{engine}"));
        let mut n = 1;
        loop {
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Archive { path, keep: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    path = dir.join(format!("{slug}.{now}.{engine}.{n}"));
                    n += 1;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        }
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path); // ours: created by `reserve`, under a name no one else got
        }
    }
}

/// Make renames in `dir` durable before the next step relies on them.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn to_postgres(home: &Home, board: &Board, url: &str, now: i64) -> anyhow::Result<Migrated> {
    let slug = board.slug.as_str();
    let _ticks = hold_tick_lock(board)?;
    let mut source = board.open_store()?;
    // The online snapshot is taken on a second connection while the first holds the write lock.
    let snapshotter = Store::open(&board.db_path())?;
    let mut archive = Archive::reserve(home, slug, now, SQLITE)?;
    let snapshot = archive.path.join("kanban.db");
    let mut switched = None;
    let held = source.hold_for_copy(|rows| -> anyhow::Result<()> {
        refuse_busy(slug, rows)?;
        // The archive first: the file as this read saw it (no writer can commit while the lock is held),
        // checked against the rows about to be copied. (Before connecting: a PostgreSQL session left idle
        // for a minute while a large file is copied would be ended.)
        snapshotter.snapshot_to(&snapshot)?;
        store::check_same(&rows.digests(), &store::file_digests(&snapshot)?)
            .map_err(|e| copy_failed(slug, "the archived copy of the SQLite file", SQLITE, e))?;
        let mut dest = Store::open_postgres(url, slug)?;
        // Held for the connection's life: no dispatcher of any host ticks the schema while it fills.
        if !dest.try_tick_lock()? {
            return Err(MigrateError::Ticking { slug: slug.to_string(), place: " in that database" }.into());
        }
        if let Some((table, rows)) = dest.first_rows()? {
            return Err(not_empty(slug, url, table, rows));
        }
        let written = dest.copy_in(rows).map_err(|e| match e {
            CopyError::NotEmpty { table, rows } => not_empty(slug, url, table, rows),
            e => copy_failed(slug, "the copy into PostgreSQL", SQLITE, e),
        })?;
        // The switch: from here the folder opens the board in PostgreSQL.
        if let Err(e) = write_private(&board.database_path(), format!("{url}\n").as_bytes()) {
            // Not switched after all: leave the destination as empty as it was found.
            if let Err(undo) = dest.clear_copy() {
                tracing::error!(error = %undo, "cannot empty the PostgreSQL schema again after a failed switch");
            }
            return Err(e.into());
        }
        sync_dir(&board.dir);
        switched = Some(written);
        if let Err(e) = dest.close() {
            tracing::warn!(error = %e, "closing the PostgreSQL connection failed after the copy committed");
        }
        Ok(())
    });
    let mut warnings = Vec::new();
    // Once switched, the move has happened whatever fails after: the archive is kept, the rest is a warning.
    let Some(tables) = switched else {
        held?;
        unreachable!("the body returns Ok only once switched");
    };
    archive.keep = true;
    if let Err(e) = held {
        warnings.push(format!("after the switch: {e:#}"));
    }
    for (what, closed) in
        [("the SQLite board", source.close()), ("the snapshot's connection", snapshotter.close())]
    {
        if let Err(e) = closed {
            warnings.push(format!("closing {what} failed: {e}"));
        }
    }

    // The board's own file leaves the folder for the archive, kept as it is beside the verified copy.
    let original = archive.path.join("original");
    match fs::create_dir(&original) {
        Ok(()) => {
            for name in SQLITE_FILES {
                let from = board.dir.join(name);
                if from.exists()
                    && let Err(e) = fs::rename(&from, original.join(name))
                {
                    warnings.push(format!(
                        "cannot move {} to {}: {e}; the board opens PostgreSQL regardless; move the file away \
                         by hand",
                        from.display(),
                        original.display()
                    ));
                }
            }
            sync_dir(&board.dir);
        }
        Err(e) => warnings.push(format!(
            "cannot create {}: {e}; {} stays in the board's folder (not opened: the board opens PostgreSQL)",
            original.display(),
            board.db_path().display()
        )),
    }
    // The board's first load in PostgreSQL publishes its board.toml and the plugins its policies name for
    // the hosts that join it (the shared config, see crate::board's sync).
    if let Err(e) = home.open_board(slug) {
        warnings.push(format!(
            "the board's config was not published to the database yet: {e}; its next command publishes it"
        ));
    }
    Ok(Migrated {
        slug: slug.to_string(),
        from: SQLITE,
        to: POSTGRES,
        database: store::redacted_url(url),
        schema: store::schema_of(slug),
        sqlite: snapshot.display().to_string(),
        archive: archive.path.display().to_string(),
        tables,
        verified: true,
        warnings,
    })
}

fn to_sqlite(home: &Home, board: &Board, url: &str, now: i64) -> anyhow::Result<Migrated> {
    let slug = board.slug.as_str();
    let _ticks = hold_tick_lock(board)?;
    for name in SQLITE_FILES {
        let path = board.dir.join(name);
        if path.exists() {
            return Err(MigrateError::StrayFile { slug: slug.to_string(), path }.into());
        }
    }
    let staging = board.dir.join(STAGING);
    let staged_files = || ["", "-wal", "-shm", "-journal"].map(|s| board.dir.join(format!("{STAGING}{s}")));
    let remove_staging = || {
        for path in staged_files() {
            let _ = fs::remove_file(path); // ours: only migrate uses the name, under the tick lock
        }
    };
    remove_staging(); // what an interrupted migrate left
    let mut source = board.open_store()?;
    if !source.try_tick_lock()? {
        return Err(MigrateError::Ticking { slug: slug.to_string(), place: " on another host" }.into());
    }
    let mut archive = Archive::reserve(home, slug, now, "postgres")?;
    let moved_url = archive.path.join(crate::board::DATABASE_FILE);
    let mut switched = None;
    let held = source.hold_for_copy(|rows| -> anyhow::Result<()> {
        refuse_busy(slug, rows)?;
        let mut dest = Store::open(&staging)?;
        let written =
            dest.copy_in(rows).map_err(|e| copy_failed(slug, "the copy into a SQLite file", POSTGRES, e))?;
        // Closing the last connection folds the WAL into the file; the file alone must hold the board.
        dest.close()?;
        let wal = board.dir.join(format!("{STAGING}-wal"));
        if wal.exists() {
            anyhow::bail!(
                "board '{slug}': {} was left beside the new file; nothing was switched",
                wal.display()
            );
        }
        let mut reread = Store::open(&staging)?;
        let found = reread.table_digests()?;
        reread.close()?;
        store::check_same(&written, &found)
            .map_err(|e| copy_failed(slug, "the new SQLite file, read back", POSTGRES, e))?;
        fs::rename(&staging, board.db_path()).with_context(|| {
            format!("cannot rename {} to {}", staging.display(), board.db_path().display())
        })?;
        sync_dir(&board.dir);
        // The switch: without database.url the folder opens kanban.db.
        if let Err(e) = fs::rename(board.database_path(), &moved_url) {
            // Not switched: the new file goes back to its staging name (and is removed with it).
            let _ = fs::rename(board.db_path(), &staging);
            return Err(e).with_context(|| {
                format!(
                    "cannot move {} to {}; nothing was switched, the board is still in PostgreSQL",
                    board.database_path().display(),
                    moved_url.display()
                )
            });
        }
        sync_dir(&board.dir);
        switched = Some(written);
        Ok(())
    });
    let Some(tables) = switched else {
        remove_staging();
        held?;
        unreachable!("the body returns Ok only once switched");
    };
    archive.keep = true;
    let mut warnings = Vec::new();
    if let Err(e) = held {
        warnings.push(format!("after the switch: {e:#}"));
    }
    if let Err(e) = source.close() {
        warnings.push(format!("closing the PostgreSQL connection failed: {e}"));
    }
    Ok(Migrated {
        slug: slug.to_string(),
        from: POSTGRES,
        to: SQLITE,
        database: store::redacted_url(url),
        schema: store::schema_of(slug),
        sqlite: board.db_path().display().to_string(),
        archive: archive.path.display().to_string(),
        tables,
        verified: true,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_names_sqlite_or_a_postgres_url_and_nothing_else() {
        assert_eq!(Destination::parse("sqlite").unwrap(), Destination::Sqlite);
        assert_eq!(Destination::parse(" SQLite ").unwrap(), Destination::Sqlite);
        assert_eq!(
            Destination::parse("postgresql://db/k").unwrap(),
            Destination::Postgres("postgresql://db/k".into())
        );
        let err = Destination::parse("mysql://u:secret@db/k").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn a_sqlite_board_refuses_to_go_to_sqlite_and_an_unknown_board_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
        home.create_board("b", None, None).unwrap();
        let err = migrate(&home, "b", &Destination::Sqlite, 1).unwrap_err();
        assert_eq!(err.to_string(), "board 'b' is already in SQLite");
        let err = migrate(&home, "default", &Destination::Sqlite, 1).unwrap_err();
        assert!(err.to_string().contains("board 'default' not found"), "{err}");
        assert!(!home.board_dir("default").exists());
        assert!(
            !home.root().join("archive").exists()
                || fs::read_dir(home.root().join("archive")).unwrap().count() == 0
        );
    }
}
