//! Opening a board database safely.
//!
//! Owns the connection pragmas, corruption quarantine and the torn-extend check. Every connection the host
//! makes goes through [`open_connection`], so the durability settings can never be forgotten on one path.
//! Nothing here decides card semantics.

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use sha2::{Digest, Sha256};

use super::StoreError;

/// How long a writer waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment override of [`BUSY_TIMEOUT`], in milliseconds (for tests and for operators who would rather
/// fail fast than queue behind a long backup).
pub const BUSY_TIMEOUT_ENV: &str = "KANBAN_BUSY_TIMEOUT_MS";

/// The busy timeout in force: [`BUSY_TIMEOUT`] unless `KANBAN_BUSY_TIMEOUT_MS` says otherwise.
pub fn busy_timeout() -> Result<Duration, StoreError> {
    match std::env::var(BUSY_TIMEOUT_ENV) {
        Err(_) => Ok(BUSY_TIMEOUT),
        Ok(text) if text.is_empty() => Ok(BUSY_TIMEOUT),
        Ok(text) => text.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
            StoreError::Invalid(format!(
                "{BUSY_TIMEOUT_ENV} must be a whole number of milliseconds, not '{text}'"
            ))
        }),
    }
}

/// The busy timeout of this process in microseconds, for [`wait_for_lock`] (a plain function: SQLite's
/// callback carries no context).
static BUSY_BUDGET_MICROS: AtomicU64 = AtomicU64::new(BUSY_TIMEOUT.as_micros() as u64);

thread_local! {
    /// When the current wait for a lock began.
    static WAIT_BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// SQLite's busy handler; `count` is how many times it has been called in this wait. A writer here holds
/// the lock for one short transaction (a few statements and a WAL fsync, about a millisecond), so wait in
/// short steps, 0.1 ms growing to 2 ms, until the busy timeout is spent. SQLite's own schedule grows to
/// 100 ms a step and leaves the lock idle while a burst of supervisors queues on it.
fn wait_for_lock(count: i32) -> bool {
    let now = Instant::now();
    let began = WAIT_BEGAN.with(|cell| {
        let began = if count == 0 { now } else { cell.get().unwrap_or(now) };
        cell.set(Some(began));
        began
    });
    let budget = Duration::from_micros(BUSY_BUDGET_MICROS.load(Ordering::Relaxed));
    if now.duration_since(began) >= budget {
        return false;
    }
    let step = Duration::from_micros((100 * (u64::from(count.unsigned_abs()) + 1)).min(2_000));
    std::thread::sleep(step.min(budget - now.duration_since(began)));
    true
}

/// Pragmas applied to every connection, in order. `journal_mode` is persistent in the file, the others are
/// per connection, so they are re-applied on every open.
const PRAGMAS: &[(&str, &str)] = &[
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("secure_delete", "ON"),
    ("cell_size_check", "ON"),
    ("wal_autocheckpoint", "100"),
    ("foreign_keys", "OFF"),
    // Up to 64 MiB of page cache (SQLite's default is 2 MiB), grown only as pages are read: a tick that
    // reads the facts of thousands of cards would otherwise read the same index pages from the file again.
    ("cache_size", "-65536"),
];

/// Open (creating if needed) the database at `path` with the durability pragmas applied.
///
/// A file that SQLite reports as corrupt or not a database is copied to a content-addressed quarantine file
/// and the open fails with [`StoreError::Corrupt`]; the original stays in place for the operator.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    check_not_torn(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    BUSY_BUDGET_MICROS.store(busy_timeout()?.as_micros() as u64, Ordering::Relaxed);
    conn.busy_handler(Some(wait_for_lock)).map_err(|e| classify(path, e))?;
    for (name, value) in PRAGMAS {
        // journal_mode returns a row; the others return nothing. pragma_update handles both.
        conn.pragma_update(None, name, value).map_err(|e| classify(path, e))?;
    }
    Ok(conn)
}

/// Turn a SQLite error into a store error, quarantining the file when SQLite says it is damaged.
pub fn classify(path: &Path, err: rusqlite::Error) -> StoreError {
    let code = err.sqlite_error_code();
    if matches!(code, Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)) {
        return match quarantine(path) {
            Ok(backup) => StoreError::Corrupt { path: path.to_path_buf(), backup, detail: err.to_string() },
            Err(io) => StoreError::Io {
                context: format!(
                    "database {} is corrupt ({err}) and could not be quarantined",
                    path.display()
                ),
                error: io,
            },
        };
    }
    if matches!(code, Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) {
        return StoreError::Locked {
            path: path.to_path_buf(),
            waited: busy_timeout().unwrap_or(BUSY_TIMEOUT),
        };
    }
    if matches!(
        code,
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::DiskFull | ErrorCode::SystemIoFailure)
    ) && let Some(fault) = storage_fault(path, code == Some(ErrorCode::DiskFull))
    {
        return fault;
    }
    StoreError::Sqlite { path: path.to_path_buf(), error: err }
}

/// Why the filesystem under a database refuses a write, when that is the reason SQLite failed: the folder
/// is read-only (a read-only mount, or no write permission), or the device is out of space. SQLite's own
/// codes cannot tell these apart reliably (opening the shared-memory file on a full disk is an I/O error,
/// on a read-only mount "unable to open"), so the host asks the filesystem.
fn storage_fault(path: &Path, sqlite_says_full: bool) -> Option<StoreError> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    use nix::unistd::{AccessFlags, access};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stats = statvfs(dir).ok();
    let read_only = if stats.is_some_and(|s| s.flags().contains(FsFlags::ST_RDONLY)) {
        Some("the file system is mounted read-only".to_string())
    } else {
        access(dir, AccessFlags::W_OK).err().map(|errno| errno.desc().to_lowercase())
    };
    if let Some(reason) = read_only {
        return Some(StoreError::ReadOnly { path: path.to_path_buf(), dir: dir.to_path_buf(), reason });
    }
    let out_of_space = stats.is_some_and(|s| s.blocks_available() == 0 || s.files_available() == 0);
    (sqlite_says_full || out_of_space).then(|| StoreError::DiskFull { path: path.to_path_buf() })
}

/// One read-only descriptor per database file, opened once per process and never closed.
///
/// SQLite locks its files with POSIX advisory locks, and closing *any* descriptor of a file releases *all*
/// of the process's locks on it. Opening the database with `std::fs::File` to read its header and then
/// closing it would silently drop the locks of every SQLite connection in this process, and concurrent
/// writers would corrupt the file. So the host reads the file only through these descriptors, with
/// positioned reads, and keeps them open for the life of the process (one per board: bounded).
fn db_file(path: &Path) -> std::io::Result<Option<std::sync::Arc<File>>> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex, OnceLock};
    type ByInode = HashMap<(u64, u64), Arc<File>>;
    static FILES: OnceLock<Mutex<ByInode>> = OnceLock::new();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let key = (meta.dev(), meta.ino());
    let mut files = FILES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(file) = files.get(&key) {
        return Ok(Some(file.clone()));
    }
    let file = Arc::new(File::open(path)?);
    files.insert(key, file.clone());
    Ok(Some(file))
}

/// Read a whole database file through its never-closed descriptor.
fn read_db_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let Some(file) = db_file(path)? else {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "database file is gone"));
    };
    let len = file.metadata()?.len();
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// Copy a damaged database to `<db>.corrupt.<sha256 prefix>.bak`.
///
/// The name is derived from the bytes, so opening the same damaged file again finds the existing backup
/// instead of making another one. The copy goes through a temporary file and a rename so a crash mid-copy
/// never leaves a partial backup under the final name.
pub fn quarantine(path: &Path) -> std::io::Result<PathBuf> {
    let bytes = read_db_file(path)?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let backup = sibling(path, &format!(".corrupt.{}.bak", &digest[..16]));
    if !backup.exists() {
        let tmp = sibling(path, &format!(".corrupt.{}.tmp", &digest[..16]));
        std::fs::write(&tmp, &bytes)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &backup)?;
        // The caller reports the quarantine in its error; this line is for KANBAN_LOG=info traces.
        tracing::info!(db = %path.display(), backup = %backup.display(), "quarantined corrupt database");
    }
    Ok(backup)
}

/// `path` with `suffix` appended to its file name (`kanban.db` + `-wal`, `kanban.db` + `.corrupt.X.bak`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Refuse a database file that is shorter than its own header says it is.
///
/// SQLite records the database size in pages at header offset 28, valid when the "version-valid-for" number
/// (offset 92) equals the change counter (offset 24). A file shorter than that was extended and then lost its
/// tail (a torn write the filesystem did not persist); reading on would silently drop rows, so the host stops
/// and names the file. A missing or empty file is a new database and passes.
///
/// In WAL mode the database file only grows during a checkpoint, which copies pages from the write-ahead log
/// and may write page 1 (with the new size) before the pages that extend the file. While the log holds
/// frames, a short file is therefore either a checkpoint in progress in another process or, after a crash,
/// one SQLite will finish from the log; neither is torn. So a short file is judged only when the log is
/// absent or empty, and read again after looking at the log: the log is deleted only after a complete
/// checkpoint, so a file still short then has really lost its tail.
pub fn check_not_torn(path: &Path) -> Result<(), StoreError> {
    match short_file(path)? {
        Some(_) if wal_has_frames(path) => Ok(()),
        Some(_) => match short_file(path)? {
            Some((expected, actual)) => Err(StoreError::Torn { path: path.to_path_buf(), expected, actual }),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// The write-ahead log beside `path` holds more than its 32-byte header.
fn wal_has_frames(path: &Path) -> bool {
    std::fs::metadata(sibling(path, "-wal")).is_ok_and(|m| m.len() > 32)
}

/// `(expected, actual)` sizes if the file is shorter than its valid header says; `None` if it is not (or
/// its header is not authoritative, or it does not exist yet).
fn short_file(path: &Path) -> Result<Option<(u64, u64)>, StoreError> {
    use std::os::unix::fs::FileExt;
    let io_error = |source| StoreError::Io {
        context: format!("cannot read database {}", path.display()),
        error: source,
    };
    let Some(file) = db_file(path).map_err(io_error)? else {
        return Ok(None); // a new database
    };
    let actual = file.metadata().map_err(io_error)?.len();
    let mut header = [0u8; 100];
    if actual < 100 || file.read_exact_at(&mut header, 0).is_err() {
        return Ok(None); // too short to have a header: SQLite itself reports it as not a database
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Ok(None); // not ours to judge: SQLite reports NotADatabase and the file is quarantined
    }
    let be32 = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n => u64::from(n),
    };
    let change_counter = be32(24);
    let pages = u64::from(be32(28));
    let valid_for = be32(92);
    if pages == 0 || change_counter != valid_for {
        return Ok(None); // the in-header size is not authoritative for this file
    }
    let expected = pages * page_size;
    Ok((actual < expected).then_some((expected, actual)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
    }

    #[test]
    fn every_connection_gets_the_durability_pragmas_even_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        for _ in 0..2 {
            let conn = open_connection(&db).unwrap();
            assert_eq!(pragma(&conn, "journal_mode"), "wal");
            assert_eq!(pragma(&conn, "synchronous"), "2"); // FULL
            assert_eq!(pragma(&conn, "secure_delete"), "1");
            assert_eq!(pragma(&conn, "cell_size_check"), "1");
            assert_eq!(pragma(&conn, "wal_autocheckpoint"), "100");
            assert_eq!(pragma(&conn, "cache_size"), "-65536");
            drop(conn);
        }
    }

    #[test]
    fn a_writer_waits_for_another_connections_lock_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        let first = open_connection(&db).unwrap();
        first.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        first.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)").unwrap();
        let db2 = db.clone();
        let writer = std::thread::spawn(move || {
            let second = open_connection(&db2).unwrap();
            second.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")
        });
        std::thread::sleep(Duration::from_millis(200));
        first.execute_batch("COMMIT").unwrap();
        writer.join().unwrap().expect("second writer should wait, not fail with SQLITE_BUSY");
        let n: i64 = first.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn a_truncated_file_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        {
            let conn = open_connection(&db).unwrap();
            conn.execute_batch(
                "CREATE TABLE t (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500)
                 INSERT INTO t SELECT hex(randomblob(100)) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
        }
        let len = std::fs::metadata(&db).unwrap().len();
        check_not_torn(&db).unwrap();
        std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(len - 4096).unwrap();
        let err = open_connection(&db).unwrap_err();
        assert!(matches!(err, StoreError::Torn { .. }), "{err}");
        assert!(err.to_string().contains(&db.display().to_string()));
    }

    #[test]
    fn quarantine_is_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        std::fs::write(&db, vec![7u8; 8192]).unwrap();
        let first = quarantine(&db).unwrap();
        let second = quarantine(&db).unwrap();
        assert_eq!(first, second);
        assert_eq!(std::fs::read(&first).unwrap(), vec![7u8; 8192]);
        std::fs::write(&db, vec![8u8; 8192]).unwrap();
        assert_ne!(quarantine(&db).unwrap(), first);
        let backups = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".bak"))
            .count();
        assert_eq!(backups, 2);
    }
}
