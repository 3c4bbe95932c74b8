//! The store the store's own tests run against: the embedded SQLite file by default, or, with
//! `KANBAN_TEST_STORE=postgres`, a fresh board schema in the PostgreSQL database at
//! `KANBAN_TEST_DATABASE_URL` (`.ci/run` starts one and runs the store's tests on both). The same tests
//! on both engines are the store's conformance suite.

use super::Store;

/// The engine asked for by `KANBAN_TEST_STORE`.
pub(crate) fn wants_postgres() -> bool {
    match std::env::var("KANBAN_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("KANBAN_TEST_STORE must be sqlite or postgres, not '{other}'"),
    }
}

/// The test database's URL; a clear failure (never a silent skip) when it is not set.
pub(crate) fn database_url() -> String {
    std::env::var("KANBAN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "KANBAN_TEST_STORE=postgres needs KANBAN_TEST_DATABASE_URL (a PostgreSQL server for tests: \
             `.ci/postgres start DIR` starts one and prints its URL)"
        )
    })
}

/// A new, empty board on the engine under test; the folder holds what a board keeps beside its store.
pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let (dir, board) = shared();
    (dir, board.open())
}

/// A new, empty board that several connections open, as several processes or hosts do.
pub(crate) fn shared() -> (tempfile::TempDir, SharedBoard) {
    let dir = tempfile::tempdir().unwrap();
    let board = if wants_postgres() {
        SharedBoard::Postgres { url: database_url(), slug: format!("test_{}", hex::encode(rand_bytes())) }
    } else {
        SharedBoard::Sqlite(dir.path().join("kanban.db"))
    };
    (dir, board)
}

#[derive(Clone)]
pub(crate) enum SharedBoard {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, slug: String },
}

impl SharedBoard {
    /// One more connection to the board.
    pub(crate) fn open(&self) -> Store {
        match self {
            SharedBoard::Sqlite(path) => Store::open(path).unwrap(),
            SharedBoard::Postgres { url, slug } => {
                Store::open_postgres(url, slug).expect("open a board in the test database")
            }
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes
}
