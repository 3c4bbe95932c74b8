//! What the built-in plugins share: reading a policy's config with errors that name the key ([`Config`]),
//! and shortening card text for a reason or a finding ([`excerpt`]). Plain Rust, no WIT types, so it
//! builds and tests on any target.

mod config;
mod text;

pub use config::Config;
pub use text::excerpt;
