//! `kanban`: a kanban host for fleets of agent workers. The binary's library.
//!
//! The rooms, from the leaves up:
//! - [`model`]: the shared vocabulary (statuses, outcomes, kinds, the records); imports nothing else.
//! - [`lifecycle`] and [`breaker`]: the card's rules as pure functions.
//! - [`clock`], [`digest`], [`process`]: time, content digests, process identity and signals.
//! - [`store`]: the board's database, the only code that writes SQL; [`board`]: where things live on disk
//!   and `board.toml`.
//! - [`policy`]: the WebAssembly runtime, the only code that touches wasmtime; [`policies`]: the one host
//!   that asks a board's policies, with their safe defaults and quarantine.
//! - [`worker`]: starting supervisors, workers and goal judges; [`workspace`]: where workers work.
//! - [`ops`]: the commands layer, every change to a card with its side effects; [`dispatch`]: the tick and
//!   the daemon.
//! - [`cli`] and [`views`]: the front end (parse and render) and the JSON documents it shows; [`web`]: the
//!   other front end, `kanban serve`'s HTTP API and live events, on the same commands and documents.

pub mod board;
pub mod breaker;
pub mod cli;
pub mod clock;
pub mod digest;
pub mod dispatch;
pub mod history;
pub mod lifecycle;
pub mod model;
pub mod ops;
pub mod policies;
pub mod policy;
pub mod process;
pub mod recurring;
pub mod store;
pub mod views;
pub mod web;
pub mod worker;
pub mod workspace;
