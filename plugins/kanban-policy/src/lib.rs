#![doc = include_str!("../README.md")]
#![allow(
    clippy::test_attr_in_doctest,
    reason = "the README's quick start shows its unit tests; they run as tests/quick_start.rs"
)]

// The export macros and the generated bindings name this crate as `kanban_policy`, which must resolve
// inside it too.
extern crate self as kanban_policy;

pub mod bindings;
pub mod config;
mod context;
pub mod decompose;
pub mod diagnostics;
mod export;
pub mod guard;
pub mod routing;
pub mod testing;
pub mod text;

pub use context::Outcome;
pub use serde_json;
pub use types::{BoardFacts, Card, Comment, Context, Event, Parent, ProfileLoad, Run};

/// The records the host hands every policy (`kanban:policy/types`), shared by all kinds.
pub mod types {
    pub use crate::bindings::plugin::kanban::policy::types::*;
}

/// What the export macros expand to. Not an API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::validate_config;
    pub use wit_bindgen;
}

#[cfg(test)]
mod tests {
    /// The crate carries its own copy of the WIT package so it builds outside the repository; in the
    /// repository the copy must be the top-level `wit/policy.wit`, byte for byte. A packaged crate has no
    /// top-level file, and nothing to compare.
    #[test]
    fn the_wit_copy_is_the_repository_s() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let top = manifest.join("../../wit/policy.wit");
        if !top.exists() {
            return;
        }
        let ours = std::fs::read(manifest.join("wit/policy.wit")).expect("read wit/policy.wit");
        let theirs = std::fs::read(&top).expect("read the repository's wit/policy.wit");
        assert!(
            ours == theirs,
            "plugins/kanban-policy/wit/policy.wit differs from wit/policy.wit: copy the top-level file over it"
        );
    }

    /// The README's quick start is `tests/quick_start.rs`, which runs (and its tests with it) as an
    /// integration test; the README must show it as it is. A packaged crate carries no tests.
    #[test]
    fn the_readme_shows_the_tested_quick_start() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let Ok(code) = std::fs::read_to_string(manifest.join("tests/quick_start.rs")) else {
            return;
        };
        let readme = std::fs::read_to_string(manifest.join("README.md")).expect("read README.md");
        assert!(
            readme.contains(&format!("```rust\n{code}```\n")),
            "README.md's quick start differs from tests/quick_start.rs: paste the file into the README"
        );
    }
}
