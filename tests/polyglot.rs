//! Policies written with the real component toolchains of other languages: Python (componentize-py) and
//! JavaScript (jco / componentize-js) guests installed and deciding on a real board, hostile ones bounded,
//! and the projects `kanban plugin new` writes built for all three languages.
//!
//! The Python and JavaScript components are built by `tests/plugins-polyglot/build.sh OUT_DIR` (pinned
//! toolchains from PyPI and npm, about a minute) and found through `KANBAN_POLYGLOT_DIR=OUT_DIR`. So that
//! `cargo test` needs no Python or Node, every test here is `#[ignore]`d with the reason; `.ci/run` builds
//! the components and runs this target with `--ignored`, where a missing component or toolchain fails.

mod common;

#[path = "polyglot/guests.rs"]
mod guests;
#[path = "polyglot/new_projects.rs"]
mod new_projects;

use std::path::PathBuf;

/// A component built by tests/plugins-polyglot/build.sh (e.g. "hostile_py.wasm").
pub fn built(name: &str) -> PathBuf {
    let dir = std::env::var_os("KANBAN_POLYGLOT_DIR").unwrap_or_else(|| {
        panic!(
            "KANBAN_POLYGLOT_DIR is not set: build the components with tests/plugins-polyglot/build.sh DIR"
        )
    });
    let path = PathBuf::from(dir).join(name);
    assert!(path.exists(), "{} is missing: run tests/plugins-polyglot/build.sh", path.display());
    path
}
