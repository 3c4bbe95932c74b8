//! The vocabulary in SQLite: every enum is stored as its `as_str` name, and a name the host does not know
//! is a conversion error naming the value (never a silent default).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use super::{
    CatchUp, EventKind, Lane, OnError, Outcome, PolicyKind, RunStatus, Severity, Status, WorkspaceKind,
};

macro_rules! sql_by_name {
    ($($name:ident),+) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} '{text}'", stringify!($name)).into())
                })
            }
        }
    )+};
}

sql_by_name!(
    Status,
    RunStatus,
    Outcome,
    WorkspaceKind,
    Lane,
    PolicyKind,
    OnError,
    Severity,
    EventKind,
    CatchUp
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_sqlite_and_unknown_names_are_errors() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for s in Status::ALL {
            let back: Status = conn.query_row("SELECT ?1", [s], |r| r.get(0)).unwrap();
            assert_eq!(back, *s);
        }
        let err = conn.query_row("SELECT 'sideways'", [], |r| r.get::<_, Status>(0)).unwrap_err();
        assert!(err.to_string().contains("unknown Status 'sideways'"), "{err}");
    }
}
