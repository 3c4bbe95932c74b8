//! Online snapshots of a board database, for `kanban board export`.
//!
//! A snapshot is taken with SQLite's online backup API on the store's own connection: one step copies every
//! page inside one read transaction, so it is the database as of one commit, while a daemon or a worker
//! keeps writing (in WAL mode a reader blocks no writer). The copy is turned into a single self-contained
//! file (rollback journal, no `-wal` beside it) before it is closed.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{Result, Store, StoreError, conn};

/// What a snapshot holds, read from the copy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The copy's `PRAGMA user_version`.
    pub schema_version: i64,
    /// Cards in the copy.
    pub cards: i64,
}

/// How long a snapshot waits, in all, for a lock it cannot take (another process checkpointing, say).
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(30);

impl Store {
    /// Copy a consistent snapshot of this database to `dest`, which must not exist yet.
    pub fn snapshot_to(&self, dest: &Path) -> Result<Snapshot> {
        if dest.exists() {
            return Err(StoreError::Invalid(format!("{} already exists", dest.display())));
        }
        let super::Engine::Lite(source) = &self.conn else {
            return Err(StoreError::Invalid(
                "a board in PostgreSQL is backed up with pg_dump, not exported as a file (docs/fleet.md)"
                    .into(),
            ));
        };
        let mut copy = Connection::open(dest).map_err(|e| conn::classify(dest, e))?;
        {
            let backup = Backup::new(source, &mut copy).map_err(|e| conn::classify(&self.path, e))?;
            let began = std::time::Instant::now();
            loop {
                // -1: every page in one step, so the copy is one read transaction's view of the source.
                match backup.step(-1).map_err(|e| conn::classify(&self.path, e))? {
                    StepResult::Done => break,
                    // More, Busy, Locked (and anything a later SQLite adds): wait and step again.
                    _ => {
                        if began.elapsed() > SNAPSHOT_PATIENCE {
                            return Err(StoreError::Locked {
                                path: self.path.clone(),
                                waited: began.elapsed(),
                            });
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        let read = |copy: &Connection| -> rusqlite::Result<Snapshot> {
            // One file, nothing beside it: the archive carries exactly this file.
            let _mode: String = copy.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
            Ok(Snapshot {
                schema_version: copy.pragma_query_value(None, "user_version", |r| r.get(0))?,
                cards: copy.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))?,
            })
        };
        let snapshot = read(&copy).map_err(|e| conn::classify(dest, e))?;
        copy.close().map_err(|(_, e)| conn::classify(dest, e))?;
        Ok(snapshot)
    }
}

/// The schema version (`PRAGMA user_version`) written in a database file's header, read from its first
/// 100 bytes without opening it: big-endian at offset 60. `None` if `header` is not a SQLite header.
pub fn header_schema_version(header: &[u8]) -> Option<i64> {
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return None;
    }
    let bytes: [u8; 4] = header[60..64].try_into().ok()?;
    Some(i64::from(i32::from_be_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_one_file_with_the_schema_version_in_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("kanban.db")).unwrap();
        store
            .write(|tx| tx.execute("INSERT INTO task_comments (task_id, body) VALUES ('x', 'y')", &[]))
            .unwrap();
        let dest = dir.path().join("copy.db");
        let snap = store.snapshot_to(&dest).unwrap();
        assert_eq!(snap, Snapshot { schema_version: super::super::SCHEMA_VERSION, cards: 0 });
        assert!(!dir.path().join("copy.db-wal").exists());
        let header = std::fs::read(&dest).unwrap();
        assert_eq!(header_schema_version(&header), Some(super::super::SCHEMA_VERSION));
        assert_eq!(header_schema_version(b"not a database"), None);
        assert!(store.snapshot_to(&dest).is_err(), "an existing file is never overwritten");
    }
}
