//! Whole-board copies between stores, the store's half of `kanban board migrate`: every row of every table
//! of [`TABLES`], read in one transaction and written in one, under the same keys, and a digest per table
//! that is the same on both engines for the same rows, so a copy can be checked before anything relies on
//! it.
//!
//! What is copied is decided by the schema alone: a table or column added to [`TABLES`] is carried with no
//! change here. Each table's id generator is carried too (SQLite's `sqlite_sequence`, PostgreSQL's identity
//! sequences), so an id a deleted row once had (a pruned event, a card removed for good) is never handed out
//! again on the other engine. This module never decides whether a board may move or where its files go
//! ([`crate::ops::migrate`] does), and never writes into a store that holds any row.

use std::cmp::Ordering;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::db::Tx;
use super::schema::{Key, TABLES, Table};
use super::{Result, Store, StoreError, conn};

/// Every row of a board as one transaction read it, each table's rows in key order.
pub struct BoardRows {
    tables: Vec<TableRows>,
}

struct TableRows {
    table: &'static Table,
    columns: Vec<Column>,
    /// Where the key's columns are in `columns`.
    key: Vec<usize>,
    /// In key order, values normalized ([`normalize`]).
    rows: Vec<Vec<Value>>,
    /// The last value the table's id generator handed out, where the store keeps one (`None`: never used,
    /// or no generator).
    high_water: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Integer,
    Text,
}

struct Column {
    name: &'static str,
    affinity: Affinity,
}

/// One table's rows and their digest: sha256 over the table's name, its columns and every row in key
/// order, each value tagged with its type (see [`feed`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    pub table: &'static str,
    pub rows: u64,
    pub sha256: String,
}

/// Why a copy was refused or did not verify. A refused copy wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination already holds rows: a copy never overwrites or merges.
    #[error("table {table} already holds {rows} row(s)")]
    NotEmpty { table: &'static str, rows: i64 },
    /// A value the destination's typed column cannot hold as it is (SQLite is dynamically typed).
    #[error("table {table}, row {key}, column {column}: {problem}")]
    Value { table: &'static str, key: String, column: &'static str, problem: String },
    /// What was read back is not what was written.
    #[error("table {table} differs after the copy: {detail}")]
    Mismatch { table: &'static str, detail: String },
}

/// The columns a copy carries, key first: `id` (when the key is one), the `tasks` table's `rowid` (which
/// orders cards created in the same second: SQLite's implicit one, a column on PostgreSQL), then the
/// table's columns in schema order.
fn columns(table: &Table) -> Vec<Column> {
    let mut out = Vec::with_capacity(table.columns.len() + 2);
    match table.key {
        Key::IntegerId => out.push(Column { name: "id", affinity: Affinity::Integer }),
        Key::TextId => out.push(Column { name: "id", affinity: Affinity::Text }),
        Key::Composite(_) => {}
    }
    if table.name == "tasks" {
        out.push(Column { name: "rowid", affinity: Affinity::Integer });
    }
    for (name, decl) in table.columns {
        let affinity = if decl.starts_with("INTEGER") { Affinity::Integer } else { Affinity::Text };
        out.push(Column { name, affinity });
    }
    out
}

fn key_positions(table: &Table, columns: &[Column]) -> Vec<usize> {
    let names: Vec<&str> = match table.key {
        Key::IntegerId | Key::TextId => vec!["id"],
        Key::Composite(keys) => keys.split(',').map(str::trim).collect(),
    };
    names
        .iter()
        .map(|name| columns.iter().position(|c| c.name == *name).expect("a key column is a column"))
        .collect()
}

/// The column a table's ids are generated for, if any.
fn generated(table: &Table) -> Option<&'static str> {
    match table.key {
        Key::IntegerId => Some("id"),
        _ if table.name == "tasks" => Some("rowid"),
        _ => None,
    }
}

/// The same value as both engines hand it back: a number in a TEXT column is its text (PostgreSQL's
/// typed column stores it so; SQLite keeps what it was given), everything else as read.
fn normalize(value: Value, affinity: Affinity) -> Value {
    match (value, affinity) {
        (Value::Integer(i), Affinity::Text) => Value::Text(i.to_string()),
        (Value::Real(f), Affinity::Text) => Value::Text(f.to_string()),
        (value, _) => value,
    }
}

/// SQLite's order of values: NULL, numbers, text (bytewise), blobs. Sorting in Rust, not by `ORDER BY`,
/// keeps both engines' orders the same whatever PostgreSQL's collation is.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => (*x as f64).total_cmp(y),
        (Value::Real(x), Value::Integer(y)) => x.total_cmp(&(*y as f64)),
        (Value::Real(x), Value::Real(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// One value into the digest: a type tag, then a fixed-width or length-prefixed body, so no two different
/// rows feed the same bytes.
fn feed(hasher: &mut Sha256, value: &Value) {
    match value {
        Value::Null => hasher.update(b"N"),
        Value::Integer(i) => {
            hasher.update(b"I");
            hasher.update(i.to_be_bytes());
        }
        Value::Real(f) => {
            hasher.update(b"R");
            hasher.update(f.to_bits().to_be_bytes());
        }
        Value::Text(s) => {
            hasher.update(b"T");
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Blob(b) => {
            hasher.update(b"B");
            hasher.update((b.len() as u64).to_be_bytes());
            hasher.update(b);
        }
    }
}

/// A table's digest, fed row by row.
struct TableHasher {
    table: &'static str,
    hasher: Sha256,
    rows: u64,
}

impl TableHasher {
    fn new(table: &Table, columns: &[Column]) -> TableHasher {
        let mut hasher = Sha256::new();
        hasher.update(table.name.as_bytes());
        for column in columns {
            hasher.update(b"\0");
            hasher.update(column.name.as_bytes());
        }
        hasher.update(b"\n");
        TableHasher { table: table.name, hasher, rows: 0 }
    }

    fn row<'v>(&mut self, values: impl IntoIterator<Item = &'v Value>) {
        for value in values {
            feed(&mut self.hasher, value);
        }
        self.rows += 1;
    }

    fn finish(self) -> TableDigest {
        TableDigest { table: self.table, rows: self.rows, sha256: hex::encode(self.hasher.finalize()) }
    }
}

impl TableRows {
    fn digest(&self) -> TableDigest {
        let mut hasher = TableHasher::new(self.table, &self.columns);
        for row in &self.rows {
            hasher.row(row);
        }
        hasher.finish()
    }

    fn key_text(&self, row: &[Value]) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|&i| match &row[i] {
                Value::Text(s) => s.clone(),
                Value::Integer(n) => n.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        parts.join("/")
    }

    /// The value the generated column must continue from: past every row's, and past the source's
    /// generator (ids of deleted rows are not handed out again).
    fn next_high_water(&self) -> Option<(&'static str, i64)> {
        let column = generated(self.table)?;
        let at = self.columns.iter().position(|c| c.name == column)?;
        let highest = self.rows.iter().filter_map(|row| match row[at] {
            Value::Integer(n) => Some(n),
            _ => None,
        });
        let value = highest.chain(self.high_water).max().unwrap_or(0);
        (value > 0).then_some((column, value))
    }

    fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl BoardRows {
    /// Each table's row count and digest, in schema order.
    pub fn digests(&self) -> Vec<TableDigest> {
        self.tables.iter().map(TableRows::digest).collect()
    }

    /// Cards that are running, or have an attempt that is not over (running, exited, stopping): a board
    /// with any is not quiet.
    pub fn busy_cards(&self) -> Vec<String> {
        let mut ids = self.cards_where("tasks", "id", |status| status == "running");
        ids.extend(self.cards_where("task_runs", "task_id", |status| status != "ended"));
        ids.sort();
        ids.dedup();
        ids
    }

    /// The cards (named by `card_column`) of the rows of `table` whose `status` is `busy`.
    fn cards_where(&self, table: &str, card_column: &str, busy: impl Fn(&str) -> bool) -> Vec<String> {
        let Some(t) = self.tables.iter().find(|t| t.table.name == table) else { return Vec::new() };
        let (Some(status), Some(card)) = (t.column_index("status"), t.column_index(card_column)) else {
            return Vec::new();
        };
        t.rows
            .iter()
            .filter_map(|row| match (&row[status], &row[card]) {
                (Value::Text(s), Value::Text(id)) if busy(s) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// Values a PostgreSQL column cannot hold: text in an integer column, bytes in a text one, a NUL
    /// character in text. Checked before anything is written, naming the row.
    fn check_for_postgres(&self) -> std::result::Result<(), CopyError> {
        for t in &self.tables {
            for row in &t.rows {
                for (column, value) in t.columns.iter().zip(row) {
                    let problem = match (column.affinity, value) {
                        (_, Value::Null) => None,
                        (Affinity::Integer, Value::Integer(_)) => None,
                        (Affinity::Integer, other) => Some(format!(
                            "{other:?} in an INTEGER column; PostgreSQL's BIGINT holds integers only"
                        )),
                        (Affinity::Text, Value::Text(s)) if s.contains('\0') => {
                            Some("text with a NUL character, which PostgreSQL's TEXT cannot hold".to_string())
                        }
                        (Affinity::Text, Value::Blob(b)) => Some(format!(
                            "{} bytes in a TEXT column; PostgreSQL's TEXT holds text only",
                            b.len()
                        )),
                        (Affinity::Text, _) => None,
                    };
                    if let Some(problem) = problem {
                        return Err(CopyError::Value {
                            table: t.table.name,
                            key: t.key_text(row),
                            column: column.name,
                            problem,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Read every table, in the transaction `tx` (so one snapshot of the board).
fn read_all(tx: &Tx) -> Result<BoardRows> {
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let columns = columns(table);
        let key = key_positions(table, &columns);
        let list: Vec<&str> = columns.iter().map(|c| c.name).collect();
        let mut rows =
            tx.query_map(&format!("SELECT {} FROM {}", list.join(", "), table.name), &[], |row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Ok(normalize(row.get::<Value>(i)?, c.affinity)))
                    .collect::<rusqlite::Result<Vec<Value>>>()
            })?;
        rows.sort_unstable_by(|a, b| {
            key.iter().map(|&i| compare(&a[i], &b[i])).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        });
        let high_water = match generated(table) {
            Some(column) => high_water(tx, table.name, column)?,
            None => None,
        };
        tables.push(TableRows { table, columns, key, rows, high_water });
    }
    Ok(BoardRows { tables })
}

/// Each table's digest, read from the store of `tx` row by row in key order without holding the table in
/// memory: the engine sorts, in the order [`compare`] gives (text bytewise: SQLite's default collation,
/// `COLLATE "C"` on PostgreSQL).
fn digest_all(tx: &Tx) -> Result<Vec<TableDigest>> {
    TABLES
        .iter()
        .map(|table| {
            let columns = columns(table);
            let list: Vec<&str> = columns.iter().map(|c| c.name).collect();
            let order: Vec<String> = key_positions(table, &columns)
                .into_iter()
                .map(|i| match columns[i].affinity {
                    Affinity::Text if tx.is_postgres() => format!("{} COLLATE \"C\"", columns[i].name),
                    _ => columns[i].name.to_string(),
                })
                .collect();
            let sql = format!("SELECT {} FROM {} ORDER BY {}", list.join(", "), table.name, order.join(", "));
            let mut hasher = TableHasher::new(table, &columns);
            let mut row_values = Vec::with_capacity(columns.len());
            tx.for_each(
                &sql,
                &[],
                |_| Ok(()),
                |_, row| {
                    row_values.clear();
                    for (i, column) in columns.iter().enumerate() {
                        row_values.push(normalize(row.get::<Value>(i)?, column.affinity));
                    }
                    hasher.row(&row_values);
                    Ok(())
                },
            )?;
            Ok(hasher.finish())
        })
        .collect()
}

/// The last id the generator of `table.column` handed out: PostgreSQL's identity sequence, SQLite's
/// `sqlite_sequence` (kept for `AUTOINCREMENT` ids; SQLite's implicit rowid has none beyond its maximum).
fn high_water(tx: &Tx, table: &str, column: &str) -> Result<Option<i64>> {
    if tx.is_postgres() {
        tx.query_row(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence(?1, ?2)::regclass)",
            rusqlite::params![table, column],
            |r| r.get(0),
        )
    } else if column == "id" {
        tx.query_opt("SELECT seq FROM sqlite_sequence WHERE name = ?1", rusqlite::params![table], |r| {
            r.get(0)
        })
    } else {
        Ok(None)
    }
}

fn set_high_water(tx: &Tx, table: &str, column: &str, value: i64) -> Result<()> {
    if tx.is_postgres() {
        tx.query_row(
            "SELECT setval(pg_get_serial_sequence(?1, ?2)::regclass, ?3)",
            rusqlite::params![table, column, value],
            |r| r.get::<i64>(0),
        )?;
    } else if column == "id"
        && tx
            .execute("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1", rusqlite::params![table, value])?
            == 0
    {
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            rusqlite::params![table, value],
        )?;
    }
    Ok(())
}

/// The first table that holds any row, and how many.
fn first_rows(tx: &Tx) -> Result<Option<(&'static str, i64)>> {
    for table in TABLES {
        let rows: i64 = tx.query_row(&format!("SELECT count(*) FROM {}", table.name), &[], |r| r.get(0))?;
        if rows > 0 {
            return Ok(Some((table.name, rows)));
        }
    }
    Ok(None)
}

/// Triggers set aside while rows are copied, to be put back in the same transaction. The copy carries
/// the outbox rows as they are; the outbox trigger firing for each copied event would add them twice.
enum SetAside {
    /// PostgreSQL: user triggers disabled on every table (the owner of the schema may).
    Disabled,
    /// SQLite has no switch: the triggers are dropped and created again from their own text.
    Dropped(Vec<String>),
}

fn set_triggers_aside(tx: &Tx) -> Result<SetAside> {
    if tx.is_postgres() {
        let sql: String =
            TABLES.iter().map(|t| format!("ALTER TABLE {} DISABLE TRIGGER USER;\n", t.name)).collect();
        tx.execute_batch(&sql)?;
        return Ok(SetAside::Disabled);
    }
    let triggers: Vec<(String, String)> =
        tx.query_map("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    for (name, _) in &triggers {
        tx.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
    }
    Ok(SetAside::Dropped(triggers.into_iter().map(|(_, sql)| sql).collect()))
}

fn put_triggers_back(tx: &Tx, aside: SetAside) -> Result<()> {
    match aside {
        SetAside::Disabled => {
            let sql: String =
                TABLES.iter().map(|t| format!("ALTER TABLE {} ENABLE TRIGGER USER;\n", t.name)).collect();
            tx.execute_batch(&sql)
        }
        SetAside::Dropped(statements) => statements.iter().try_for_each(|sql| tx.execute_batch(sql)),
    }
}

/// Rows per `INSERT`: many at once (one round trip to PostgreSQL per batch, not per row), within both
/// engines' limits on placeholders per statement (SQLite's 32766, PostgreSQL's 65535).
fn batch_rows(columns: usize) -> usize {
    (30_000 / columns.max(1)).clamp(1, 500)
}

fn insert_rows(tx: &Tx, t: &TableRows) -> Result<()> {
    let list: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
    let width = list.len();
    for chunk in t.rows.chunks(batch_rows(width)) {
        let groups: Vec<String> = (0..chunk.len())
            .map(|r| {
                let marks: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO {} ({}) VALUES {}", t.table.name, list.join(", "), groups.join(", "));
        let params: Vec<&dyn ToSql> = chunk.iter().flatten().map(|v| v as &dyn ToSql).collect();
        tx.execute(&sql, &params)?;
    }
    Ok(())
}

/// Write every row of `board` into the empty store of `tx`, carry the id generators, and check what the
/// store now holds against what was read: the same rows, digest for digest.
fn write_all(tx: &Tx, board: &BoardRows) -> std::result::Result<Vec<TableDigest>, CopyError> {
    if let Some((table, rows)) = first_rows(tx)? {
        return Err(CopyError::NotEmpty { table, rows });
    }
    if tx.is_postgres() {
        board.check_for_postgres()?;
    }
    let aside = set_triggers_aside(tx)?;
    for t in &board.tables {
        insert_rows(tx, t)?;
    }
    put_triggers_back(tx, aside)?;
    for t in &board.tables {
        let Some((column, value)) = t.next_high_water() else { continue };
        set_high_water(tx, t.table.name, column, value)?;
        let now = high_water(tx, t.table.name, column)?;
        // SQLite keeps no generator for the implicit rowid: it continues from the largest.
        if (tx.is_postgres() || column == "id") && now != Some(value) {
            return Err(CopyError::Mismatch {
                table: t.table.name,
                detail: format!("its {column} generator is at {now:?}, expected {value}"),
            });
        }
    }
    let written = digest_all(tx)?;
    check_same(&board.digests(), &written)?;
    Ok(written)
}

/// `found` holds the same rows as `expected`, table by table; the first that differs is named.
pub fn check_same(expected: &[TableDigest], found: &[TableDigest]) -> std::result::Result<(), CopyError> {
    for want in expected {
        match found.iter().find(|f| f.table == want.table) {
            Some(have) if have == want => {}
            Some(have) => {
                return Err(CopyError::Mismatch {
                    table: want.table,
                    detail: format!(
                        "{} row(s), sha256 {} read from the source; {} row(s), sha256 {} read back",
                        want.rows, want.sha256, have.rows, have.sha256
                    ),
                });
            }
            None => return Err(CopyError::Mismatch { table: want.table, detail: "not read back".into() }),
        }
    }
    Ok(())
}

impl Store {
    /// Run `body` on every row of the board while holding the board's write lock, so no other writer
    /// commits from the read until `body` returns (it may switch the board to another store meanwhile).
    /// Nothing is written to this store.
    pub fn hold_for_copy<T, E: From<StoreError>>(
        &mut self,
        body: impl FnOnce(&BoardRows) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut outcome = None;
        self.write(|tx| {
            if tx.is_postgres() {
                // The lock is held while the other store is written, with this session idle in its
                // transaction; the pool's one-minute limit (see `Store::open_postgres`) would end it.
                tx.execute_batch("SET LOCAL idle_in_transaction_session_timeout = '30min'")?;
            }
            let rows = read_all(tx)?;
            outcome = Some(body(&rows));
            Ok(())
        })?;
        outcome.expect("the body ran")
    }

    /// Copy `board` into this store, which must hold no row, in one write transaction, and verify it by
    /// reading it back in that transaction: on any error (a refusal, a value the engine cannot hold, a
    /// mismatch) it rolls back and the store is left as empty as it was.
    pub fn copy_in(&mut self, board: &BoardRows) -> std::result::Result<Vec<TableDigest>, CopyError> {
        let mut refused = None;
        let written = self.write(|tx| match write_all(tx, board) {
            Ok(digests) => Ok(digests),
            Err(CopyError::Store(e)) => Err(e),
            Err(other) => {
                let message = other.to_string();
                refused = Some(other);
                Err(StoreError::Refused(message))
            }
        });
        written.map_err(|e| refused.take().unwrap_or(CopyError::Store(e)))
    }

    /// The first table holding any row, and how many: `None` for an empty board.
    pub fn first_rows(&mut self) -> Result<Option<(&'static str, i64)>> {
        self.read(first_rows)
    }

    /// Each table's row count and digest, read in one transaction.
    pub fn table_digests(&mut self) -> Result<Vec<TableDigest>> {
        self.read(digest_all)
    }

    /// Delete every row of every table, in one transaction: undoes a [`Store::copy_in`] whose board was
    /// not switched after all.
    pub fn clear_copy(&mut self) -> Result<()> {
        self.write(|tx| {
            let sql: String = TABLES.iter().map(|t| format!("DELETE FROM {};\n", t.name)).collect();
            tx.execute_batch(&sql)
        })
    }
}

/// Each table's row count and digest in the SQLite file at `path`, opened read-only: the file is not
/// changed, not even its journal mode (for a file in WAL mode use [`Store::table_digests`]).
pub fn file_digests(path: &Path) -> Result<Vec<TableDigest>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags).map_err(|e| conn::classify(path, e))?;
    let digests = {
        let tx = rusqlite::Transaction::new_unchecked(&db, TransactionBehavior::Deferred)
            .map_err(|e| conn::classify(path, e))?;
        let tx = Tx::Lite(tx);
        digest_all(&tx).map_err(|e| super::attach_path(path, e))?
    };
    db.close().map_err(|(_, e)| conn::classify(path, e))?;
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(rows: Vec<Vec<Value>>) -> TableDigest {
        let table = TABLES.iter().find(|t| t.name == "task_links").unwrap();
        let columns = columns(table);
        let key = key_positions(table, &columns);
        TableRows { table, columns, key, rows, high_water: None }.digest()
    }

    #[test]
    fn a_number_in_a_text_column_hashes_as_its_text_on_both_engines() {
        assert_eq!(normalize(Value::Integer(42), Affinity::Text), Value::Text("42".into()));
        assert_eq!(normalize(Value::Integer(42), Affinity::Integer), Value::Integer(42));
        assert_eq!(normalize(Value::Text("x".into()), Affinity::Text), Value::Text("x".into()));
    }

    #[test]
    fn digests_tell_types_and_boundaries_apart() {
        let row = |a: Value, b: Value| vec![Value::Text("p".into()), a, b];
        let base = digest_of(vec![row(Value::Text("ab".into()), Value::Text("c".into()))]);
        for other in [
            row(Value::Text("a".into()), Value::Text("bc".into())),
            row(Value::Text("ab".into()), Value::Null),
            row(Value::Text("ab".into()), Value::Blob(b"c".to_vec())),
            row(Value::Integer(1), Value::Text("c".into())),
        ] {
            assert_ne!(digest_of(vec![other]).sha256, base.sha256);
        }
        assert_eq!(digest_of(vec![row(Value::Text("ab".into()), Value::Text("c".into()))]), base);
    }

    #[test]
    fn keys_sort_bytewise_and_numerically_whatever_the_collation() {
        let mut keys = vec![
            Value::Text("b".into()),
            Value::Text("B".into()),
            Value::Integer(10),
            Value::Integer(9),
            Value::Null,
        ];
        keys.sort_by(compare);
        assert_eq!(
            keys,
            vec![
                Value::Null,
                Value::Integer(9),
                Value::Integer(10),
                Value::Text("B".into()),
                Value::Text("b".into())
            ]
        );
    }

    #[test]
    fn batches_stay_within_both_engines_placeholder_limits() {
        for width in [1, 3, 40, 200, 40_000] {
            let rows = batch_rows(width);
            assert!(rows >= 1 && rows * width <= 32_766.max(width), "{width} columns: {rows} rows");
        }
    }

    /// A SQLite board to copy from (SQLite's dynamic typing is the source of odd values) with: two cards
    /// made in one second in reverse id order, a card whose title is stored as a number, four events of
    /// which the last was pruned, a notify route made after the first two events, and text keys that a
    /// linguistic collation orders differently from bytes.
    fn source() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("source.db")).unwrap();
        store
            .write(|tx| {
                tx.execute_batch(
                    "INSERT INTO tasks (id, title, created_at) VALUES ('t_2', 'two', 5), ('t_1', 'one', 5);
                     INSERT INTO tasks (id, title, created_at) VALUES ('t_3', 42, 6);
                     INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_1', 'created', 5);
                     INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_2', 'created', 5);
                     INSERT INTO notify_routes (kind, target) VALUES ('created', '{}');
                     INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_3', 'created', 6);
                     INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_2', 'gc', 8);
                     DELETE FROM task_events WHERE kind = 'gc';
                     INSERT INTO pauses (profile) VALUES ('alpha'), ('Zed'), ('Ærø'), ('');",
                )
            })
            .unwrap();
        (dir, store)
    }

    fn count(store: &mut Store, table: &str) -> i64 {
        store.read(|tx| tx.query_row(&format!("SELECT count(*) FROM {table}"), &[], |r| r.get(0))).unwrap()
    }

    /// On the engine under test (`KANBAN_TEST_STORE`, see [`super::super::testing`]).
    #[test]
    fn a_copy_keeps_rows_order_and_id_generators_and_adds_no_outbox_row() {
        let (_source_dir, mut source) = source();
        let (_dest_dir, mut dest) = super::super::testing::store();
        let expected = source.table_digests().unwrap();
        // Routes first: were the outbox trigger not set aside, every copied `created` event would add an
        // outbox row to the one the source holds.
        let mut rows = source.read(read_all).unwrap();
        let routes = rows.tables.iter().position(|t| t.table.name == "notify_routes").unwrap();
        let moved = rows.tables.remove(routes);
        rows.tables.insert(0, moved);
        let written = dest.copy_in(&rows).unwrap();
        check_same(&expected, &written).unwrap();
        assert_eq!(dest.table_digests().unwrap(), expected, "read back on a connection of its own");
        assert_eq!(count(&mut dest, "notify_outbox"), 1, "the source's one outbox row, once");
        let title: String = dest
            .read(|tx| tx.query_row("SELECT title FROM tasks WHERE id = 't_3'", &[], |r| r.get(0)))
            .unwrap();
        assert_eq!(title, "42");
        let order: Vec<String> = dest
            .read(|tx| tx.query_map("SELECT id FROM tasks ORDER BY created_at, rowid", &[], |r| r.get(0)))
            .unwrap();
        assert_eq!(order, ["t_2", "t_1", "t_3"], "cards of one second keep the order they were made in");

        let next_event: i64 = dest
            .write(|tx| {
                tx.query_row(
                    "INSERT INTO task_events (task_id, kind) VALUES ('t_1', 'created') RETURNING id",
                    &[],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(
            next_event, 5,
            "the pruned event's id (4), past every copied one, is not handed out again"
        );
        assert_eq!(
            count(&mut dest, "notify_outbox"),
            2,
            "the trigger is back: a new routed event enters the outbox"
        );
        dest.write(|tx| tx.execute("INSERT INTO tasks (id, created_at) VALUES ('t_0', 5)", &[])).unwrap();
        let order: Vec<String> = dest
            .read(|tx| tx.query_map("SELECT id FROM tasks ORDER BY created_at, rowid", &[], |r| r.get(0)))
            .unwrap();
        assert_eq!(order, ["t_2", "t_1", "t_0", "t_3"], "a new card is made after the copied ones");

        let before = dest.table_digests().unwrap();
        let err = source.hold_for_copy(|rows| dest.copy_in(rows)).unwrap_err();
        assert!(matches!(err, CopyError::NotEmpty { table: "tasks", rows: 4 }), "{err}");
        assert_eq!(dest.table_digests().unwrap(), before, "a refused copy writes nothing");
    }

    #[test]
    fn a_value_postgresql_cannot_hold_is_named_before_anything_is_written() {
        let (_dir, mut source) = source();
        source.write(|tx| tx.execute("UPDATE tasks SET priority = 'high' WHERE id = 't_1'", &[])).unwrap();
        let rows = source.read(read_all).unwrap();
        let err = rows.check_for_postgres().unwrap_err();
        assert_eq!(
            err.to_string(),
            "table tasks, row t_1, column priority: Text(\"high\") in an INTEGER column; PostgreSQL's BIGINT \
             holds integers only"
        );
        let (_dest_dir, mut dest) = super::super::testing::store();
        match dest.copy_in(&rows) {
            // SQLite takes any value anywhere; the copy is exact.
            Ok(written) => assert_eq!(written, rows.digests()),
            Err(CopyError::Value { column: "priority", .. }) => {
                assert!(dest.first_rows().unwrap().is_none(), "nothing written")
            }
            Err(other) => panic!("{other}"),
        }
    }
}
