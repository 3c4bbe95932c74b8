//! The one SQL surface the store is written against, over two drivers: SQLite (embedded, the default) and
//! PostgreSQL (one database shared by a fleet of hosts).
//!
//! The store's statements are written once, in the SQL both engines speak (`ON CONFLICT DO NOTHING`,
//! `RETURNING id`, `IS NOT DISTINCT FROM`, `COALESCE`), with SQLite's `?N` placeholders. Values go in and
//! come out as rusqlite's [`ToSql`]/[`FromSql`], so the vocabulary's conversions ([`crate::model`]) serve
//! both. For PostgreSQL, [`to_postgres`] rewrites the placeholders and the few SQLite function names, and
//! [`PgParam`]/[`PgCell`] carry each value in the type the server expects (the server infers a
//! placeholder's type from its use; an integer goes out as `int8`, `int4`, `bool` or text as asked).
//!
//! Write transactions are serialized per board on both engines: SQLite's `BEGIN IMMEDIATE` write lock, and
//! a per-board advisory transaction lock on PostgreSQL. So every compare-and-set, cap count and claim the
//! store makes sees the same serial history on both, across processes and across hosts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type, to_sql_checked};
use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, Value, ValueRef};

use super::{Result, StoreError};

/// The values of a statement's placeholders, in order (`params![...]`).
pub(crate) type Params<'p> = &'p [&'p dyn ToSql];

/// One open transaction on either engine.
pub(crate) enum Tx<'c> {
    Lite(rusqlite::Transaction<'c>),
    Pg(PgTx<'c>),
}

pub(crate) struct PgTx<'c> {
    pub(super) tx: RefCell<postgres::Transaction<'c>>,
    /// Prepared statements by their SQLite text, kept for the connection's life.
    pub(super) cache: &'c RefCell<HashMap<String, postgres::Statement>>,
}

/// One row of a result, on either engine. `get` converts with rusqlite's [`FromSql`], so a column reads
/// the same whichever engine produced it.
pub(crate) enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Values(&'r [Value]),
}

impl Row<'_> {
    pub(crate) fn get<T: FromSql>(&self, i: usize) -> rusqlite::Result<T> {
        match self {
            Row::Lite(row) => row.get(i),
            Row::Values(values) => {
                let value = values.get(i).ok_or(rusqlite::Error::InvalidColumnIndex(i))?;
                T::column_result(ValueRef::from(value)).map_err(|e| match e {
                    FromSqlError::InvalidType => {
                        rusqlite::Error::InvalidColumnType(i, format!("column {i}"), value.data_type())
                    }
                    other => rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(other)),
                })
            }
        }
    }
}

impl Tx<'_> {
    /// Which engine this is, for the rare statement that must be spelled differently.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Pg(_))
    }

    /// Run one statement; how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: Params) -> Result<usize> {
        match self {
            Tx::Lite(tx) => Ok(tx.prepare_cached(sql)?.execute(params)?),
            Tx::Pg(pg) => {
                let stmt = pg.prepare(sql)?;
                let args = pg_params(params)?;
                Ok(pg.tx.borrow_mut().execute(&stmt, &pg_refs(&args))? as usize)
            }
        }
    }

    /// Run statements without placeholders (DDL, `DELETE FROM x; DELETE FROM y`).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Tx::Lite(tx) => Ok(tx.execute_batch(sql)?),
            Tx::Pg(pg) => Ok(pg.tx.borrow_mut().batch_execute(&to_postgres(sql))?),
        }
    }

    /// Call `each` on every row, in order, with the statement's column names resolved once by `start`.
    pub(crate) fn for_each<S>(
        &self,
        sql: &str,
        params: Params,
        start: impl FnOnce(&[&str]) -> rusqlite::Result<S>,
        mut each: impl FnMut(&S, &Row) -> Result<()>,
    ) -> Result<()> {
        match self {
            Tx::Lite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let state = start(&stmt.column_names())?;
                let mut rows = stmt.query(params)?;
                while let Some(row) = rows.next()? {
                    each(&state, &Row::Lite(row))?;
                }
                Ok(())
            }
            Tx::Pg(pg) => {
                let stmt = pg.prepare(sql)?;
                let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
                let state = start(&names)?;
                let args = pg_params(params)?;
                let rows = pg.tx.borrow_mut().query(&stmt, &pg_refs(&args))?;
                let mut values = Vec::with_capacity(names.len());
                for row in &rows {
                    values.clear();
                    for i in 0..row.len() {
                        values.push(row.try_get::<_, PgCell>(i)?.0);
                    }
                    each(&state, &Row::Values(&values))?;
                }
                Ok(())
            }
        }
    }

    /// Every row, read by `read`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        params: Params,
        mut read: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.for_each(
            sql,
            params,
            |_| Ok(()),
            |_, row| {
                out.push(read(row)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The first row, if there is one.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        params: Params,
        read: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Tx::Lite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let mut rows = stmt.query(params)?;
                match rows.next()? {
                    Some(row) => Ok(Some(read(&Row::Lite(row))?)),
                    None => Ok(None),
                }
            }
            Tx::Pg(_) => {
                let mut read = Some(read);
                let mut out = None;
                self.for_each(
                    sql,
                    params,
                    |_| Ok(()),
                    |_, row| {
                        if let Some(read) = read.take() {
                            out = Some(read(row)?);
                        }
                        Ok(())
                    },
                )?;
                Ok(out)
            }
        }
    }

    /// The one row a statement must return (an aggregate, `INSERT ... RETURNING`).
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: Params,
        read: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, read)?.ok_or(StoreError::Sql(rusqlite::Error::QueryReturnedNoRows))
    }
}

impl PgTx<'_> {
    fn prepare(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(stmt) = self.cache.borrow().get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.tx.borrow_mut().prepare(&to_postgres(sql))?;
        self.cache.borrow_mut().insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

fn pg_params(params: Params) -> Result<Vec<PgParam>> {
    params
        .iter()
        .map(|p| {
            let value = match p.to_sql()? {
                rusqlite::types::ToSqlOutput::Borrowed(v) => Value::from(v),
                rusqlite::types::ToSqlOutput::Owned(v) => v,
                other => {
                    return Err(StoreError::Invalid(format!("a value PostgreSQL cannot take: {other:?}")));
                }
            };
            Ok(PgParam(value))
        })
        .collect()
}

fn pg_refs(args: &[PgParam]) -> Vec<&(dyn PgToSql + Sync)> {
    args.iter().map(|a| a as &(dyn PgToSql + Sync)).collect()
}

/// The store's SQLite text in PostgreSQL's spelling: `?N` placeholders become `$N` (outside quoted
/// strings), and `json_each(x)`, the one table-valued JSON function the store uses, becomes
/// `json_array_elements_text(x)` (both yield a `value` column).
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut anonymous = 0;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
                        out.push(d);
                    }
                } else {
                    anonymous += 1;
                    out.push_str(&anonymous.to_string());
                }
            }
            _ => out.push(c),
        }
    }
    out.replace("json_each(", "json_array_elements_text(")
}

/// A value sent to PostgreSQL in whatever type the server inferred for its placeholder.
#[derive(Debug)]
struct PgParam(Value);

impl PgToSql for PgParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(i), &Type::INT8) => PgToSql::to_sql(&i, ty, out),
            (Value::Integer(i), &Type::INT4) => PgToSql::to_sql(&i32::try_from(*i)?, ty, out),
            (Value::Integer(i), &Type::INT2) => PgToSql::to_sql(&i16::try_from(*i)?, ty, out),
            (Value::Integer(i), &Type::BOOL) => PgToSql::to_sql(&(*i != 0), ty, out),
            (Value::Integer(i), &Type::FLOAT8) => PgToSql::to_sql(&(*i as f64), ty, out),
            (Value::Integer(i), &Type::NUMERIC) => {
                // A whole number in NUMERIC's base-10000 form (the server infers NUMERIC for `? + 0.5`).
                numeric_from_i64(*i, out);
                Ok(IsNull::No)
            }
            (Value::Integer(i), t) if is_text(t) => {
                PgToSql::to_sql(&i.to_string().as_str(), &Type::TEXT, out)
            }
            (Value::Real(f), &Type::FLOAT8) => PgToSql::to_sql(&f, ty, out),
            (Value::Real(f), &Type::FLOAT4) => PgToSql::to_sql(&(*f as f32), ty, out),
            (Value::Real(f), t) if is_text(t) => PgToSql::to_sql(&f.to_string().as_str(), &Type::TEXT, out),
            (Value::Text(s), t) if is_text(t) => PgToSql::to_sql(&s.as_str(), &Type::TEXT, out),
            (Value::Text(s), &Type::JSON) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(s), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Blob(b), &Type::BYTEA) => PgToSql::to_sql(&b.as_slice(), ty, out),
            (value, ty) => Err(format!("cannot send {value:?} as PostgreSQL type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN)
}

fn numeric_from_i64(value: i64, out: &mut postgres::types::private::BytesMut) {
    let mut digits = Vec::new();
    let mut rest = value.unsigned_abs();
    while rest > 0 {
        digits.push((rest % 10_000) as i16);
        rest /= 10_000;
    }
    digits.reverse();
    let weight = digits.len() as i16 - 1;
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.max(0).to_be_bytes());
    out.extend_from_slice(&(if value < 0 { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// A value read from PostgreSQL as the SQLite value it stands for: integers of every width, booleans (as
/// 0/1, as SQLite stores them) and whole NUMERICs (`sum` of integers) are integers; text and JSON are text.
struct PgCell(Value);

impl<'a> PgFromSql<'a> for PgCell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        let value = match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.to_string()),
            Type::JSON => Value::Text(std::str::from_utf8(raw)?.to_string()),
            _ => Value::Text(String::from_sql(&Type::TEXT, raw)?),
        };
        Ok(PgCell(value))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(PgCell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// NUMERIC's binary form: digit count, weight, sign, display scale, then base-10000 digits. A value with
/// no fractional digits is an integer, as SQLite's `sum` of integers is.
fn numeric(raw: &[u8]) -> std::result::Result<Value, Box<dyn StdError + Sync + Send>> {
    let word = |at: usize| -> std::result::Result<u16, Box<dyn StdError + Sync + Send>> {
        raw.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "short NUMERIC".into())
    };
    let (count, weight, sign, scale) = (word(0)? as usize, word(2)? as i16, word(4)?, word(6)?);
    if sign == 0xC000 {
        return Ok(Value::Null); // NaN
    }
    let mut whole: i128 = 0;
    let mut value: f64 = 0.0;
    for k in 0..count {
        let digit = word(8 + 2 * k)?;
        let power = i32::from(weight) - k as i32;
        value += f64::from(digit) * 10_000f64.powi(power);
        if power >= 0 {
            whole += i128::from(digit) * 10_000i128.pow(power as u32);
        }
    }
    let negative = sign == 0x4000;
    if scale == 0 {
        let whole = if negative { -whole } else { whole };
        return Ok(Value::Integer(i64::try_from(whole)?));
    }
    Ok(Value::Real(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_strings_only() {
        assert_eq!(
            to_postgres(
                "SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d IN (SELECT value FROM json_each(?12))"
            ),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d IN (SELECT value FROM json_array_elements_text($12))"
        );
        assert_eq!(to_postgres("VALUES (?, ?, 'it''s ?')"), "VALUES ($1, $2, 'it''s ?')");
    }

    #[test]
    fn numerics_decode_to_integers_when_whole() {
        let mut out = postgres::types::private::BytesMut::new();
        for n in [0i64, 7, 10_000, 123_456_789, -42, i64::MAX] {
            out.clear();
            numeric_from_i64(n, &mut out);
            assert_eq!(numeric(&out).unwrap(), Value::Integer(n), "{n}");
        }
    }
}
