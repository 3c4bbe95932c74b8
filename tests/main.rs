//! The black-box suite: the real `kanban` binary, a temporary home, small worker scripts. One test binary
//! with a module per area (one link on a 2-core machine, one place to look); helpers live in `common`.
//! The long-running variants with targets of their own: `crash_consistency` (with the chaos soak) and `fuzz`.

mod common;

mod boards;
mod cards;
mod contract;
mod dispatch;
mod durability;
mod faults;
mod fleet;
mod gc;
mod host_faults;
mod hosts;
mod import;
mod migrate;
mod migrations;
mod notify;
mod pause;
mod plugin_new;
mod policies;
mod policy_failures;
mod portable;
mod postgres;
mod recurring;
mod replay;
mod review;
mod stops;
mod web;
mod web_daemon;
mod workers;
