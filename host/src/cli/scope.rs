//! Inside a worker (`KANBAN_TASK` set) the CLI acts for that one card, by an allow-list: the worker may
//! read anything, create cards, and report on its own card (complete, block, heartbeat, comment, attach,
//! review, request changes). Every other command is refused, whatever new commands are added later: a
//! worker cannot delete its board, remove a plugin, run, pause or resume the dispatcher or change another
//! card.

use anyhow::bail;

use super::{BoardCommand, Command, NotifyCommand, PluginCommand, RecurringCommand};

/// The worker a command line runs inside of, if any.
pub(super) struct WorkerScope {
    pub task: String,
    pub run: Option<i64>,
}

impl WorkerScope {
    pub fn from_env() -> Option<WorkerScope> {
        let task = std::env::var("KANBAN_TASK").ok().filter(|t| !t.is_empty())?;
        let run = std::env::var("KANBAN_RUN_ID").ok().and_then(|r| r.parse().ok());
        Some(WorkerScope { task, run })
    }

    /// The one check of every command line against the worker's scope, run by [`super::run`] before any
    /// command group's handler.
    pub fn check_command(command: &Command) -> anyhow::Result<()> {
        let Some(scope) = WorkerScope::from_env() else { return Ok(()) };
        match allowed(command) {
            Allowed::Always => Ok(()),
            Allowed::OwnCard(ids) => match ids.iter().find(|id| **id != scope.task) {
                Some(other) => bail!("worker is scoped to task {}; refusing to modify {other}", scope.task),
                None => Ok(()),
            },
            Allowed::Never(name) => bail!(
                "worker is scoped to task {}; `kanban {name}` is not allowed inside a worker (workers may read, create \
                 cards, and report on their own card)",
                scope.task
            ),
        }
    }

    /// The run a report from this worker on card `id` must match.
    pub fn attempt(&self, id: &str) -> Option<i64> {
        if id == self.task { self.run } else { None }
    }
}

enum Allowed<'a> {
    Always,
    /// Allowed only on the worker's own card.
    OwnCard(Vec<&'a str>),
    Never(&'static str),
}

fn allowed(command: &Command) -> Allowed<'_> {
    use Allowed::{Always, Never, OwnCard};
    match command {
        // Reading.
        Command::List(_)
        | Command::Show { .. }
        | Command::Attachments { .. }
        | Command::Events { .. }
        | Command::Runs { .. }
        | Command::Stats { .. }
        | Command::Hosts { .. }
        | Command::Log { .. }
        | Command::Context { .. } => Always,
        Command::Board(
            BoardCommand::List { .. } | BoardCommand::Show { .. } | BoardCommand::Check { .. },
        ) => Always,
        Command::Plugin(
            PluginCommand::List { .. }
            | PluginCommand::Show { .. }
            | PluginCommand::Verify { .. }
            | PluginCommand::Context { .. }
            // Writes a project folder, touches no home or board.
            | PluginCommand::New(_),
        ) => Always,
        Command::Recurring(RecurringCommand::List { .. }) => Always,
        Command::Promote { dry_run: true, .. } => Always,
        Command::Notify(NotifyCommand::Log { .. }) => Always,
        // Creating cards (one, or a file of them).
        Command::Create(_) | Command::Import(_) => Always,
        // Reports on its own card. (`attach-rm` is checked against the card of the attachment by the store.)
        Command::Complete { ids, .. } => OwnCard(ids.iter().map(String::as_str).collect()),
        Command::Block { id, .. }
        | Command::Heartbeat { id, .. }
        | Command::Comment { id, .. }
        | Command::Attach { id, .. }
        | Command::Review { id, .. }
        | Command::RequestChanges { id, .. } => OwnCard(vec![id.as_str()]),
        Command::AttachRm { .. } => Always,
        // The supervisor runs inside no worker; a worker starting one is refused like everything else.
        other => Never(name(other)),
    }
}

/// The command's name as typed.
fn name(command: &Command) -> &'static str {
    match command {
        Command::Board(b) => match b {
            BoardCommand::Create { .. } => "board create",
            BoardCommand::Rm { .. } => "board rm",
            BoardCommand::Switch { .. } => "board switch",
            BoardCommand::SetDefaultWorkdir { .. } => "board set-default-workdir",
            BoardCommand::Export { .. } => "board export",
            BoardCommand::Import { .. } => "board import",
            BoardCommand::Migrate { .. } => "board migrate",
            _ => "board",
        },
        Command::Plugin(p) => match p {
            PluginCommand::Install { .. } => "plugin install",
            PluginCommand::Rm { .. } => "plugin rm",
            _ => "plugin",
        },
        Command::Notify(NotifyCommand::Deliver { .. }) => "notify deliver",
        Command::Recurring(r) => match r {
            RecurringCommand::Add(_) => "recurring add",
            RecurringCommand::Rm { .. } => "recurring rm",
            RecurringCommand::List { .. } => "recurring list",
        },
        Command::Assign { .. } => "assign",
        Command::Link { .. } => "link",
        Command::Unlink { .. } => "unlink",
        Command::Edit(_) => "edit",
        Command::Unblock { .. } => "unblock",
        Command::Schedule { .. } => "schedule",
        Command::Promote { .. } => "promote",
        Command::Archive { .. } => "archive",
        Command::Reclaim { .. } => "reclaim",
        Command::Reassign { .. } => "reassign",
        Command::Dispatch { .. } => "dispatch",
        Command::Daemon { .. } => "daemon",
        Command::Serve { .. } => "serve",
        Command::Pause { .. } => "pause",
        Command::Resume { .. } => "resume",
        Command::Demo => "demo",
        Command::Diagnostics { .. } => "diagnostics",
        Command::Policy(_) => "policy replay",
        Command::Decompose { .. } => "decompose",
        Command::Gc { .. } => "gc",
        Command::Supervise { .. } => "supervise",
        _ => "this command",
    }
}
