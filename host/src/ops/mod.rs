//! The commands layer: every change a front end (the CLI, the supervisor, the dispatcher, the web board)
//! makes to a card goes through here, so each one carries every side effect with it. Stopping a card's
//! worker before an action takes it out of `running`, cleaning a finished card's workspace, storing and
//! removing attachment files: written once, here, and nowhere in a front end.
//!
//! Below this layer sit the rooms that each own one thing (the store, the worker processes, the
//! workspaces, the policies); this layer composes them. Front ends parse and render, nothing more; the
//! input they share ([`input`]: durations, workspace specs, what a bad value is) is read here too.

pub mod attachments;
pub mod cards;
pub mod gc;
pub mod health;
pub mod input;
pub mod migrate;
pub mod notify;
pub mod pause;
pub mod policies;
pub mod portable;
pub mod recurring;
pub mod replay;
pub mod scaffold;
pub mod stop;
pub mod supervise;

use crate::board::{Board, Home};
use crate::store::{Claim, Store};

/// What a command needs to act on one board from this host: the board, its open store, and this host's
/// identity (which decides whose processes it may signal).
pub struct Desk<'a> {
    pub board: &'a Board,
    pub store: &'a mut Store,
    pub host_id: &'a str,
}

impl<'a> Desk<'a> {
    pub fn new(board: &'a Board, store: &'a mut Store, host_id: &'a str) -> Desk<'a> {
        Desk { board, store, host_id }
    }

    /// The claim this host puts on a card it dispatches: its hostname and pid for people, its host id for
    /// the machine.
    pub fn claim(&self) -> Claim {
        Claim {
            lock: format!("{}:{}", crate::process::hostname(), std::process::id()),
            host: self.host_id.to_string(),
        }
    }

    /// Is a claim this host's own? A claim from before host ids (no `claim_host`) is judged by hostname.
    pub fn is_local(&self, claim_host: Option<&str>, claim_lock: Option<&str>) -> bool {
        match claim_host {
            Some(host) => host == self.host_id,
            None => {
                let hostname = crate::process::hostname();
                claim_lock.and_then(|c| c.rsplit_once(':')).is_some_and(|(h, _)| h == hostname)
            }
        }
    }
}

/// This home's host id, for a [`Desk`].
pub fn host_id(home: &Home) -> anyhow::Result<String> {
    Ok(home.host_id()?)
}

/// The wall clock in real seconds, ignoring `KANBAN_NOW`: for the grace before SIGKILL, which is about real
/// processes, not about the board's time.
pub fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
