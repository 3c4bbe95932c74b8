//! The command line: every command and flag is defined here, once, with its help text (which doubles as the
//! reference in `docs/cli.md`). Handlers live in one module per command group; they parse nothing and own no
//! SQL. Errors leave here as `anyhow` with context; [`exit_code`] maps them to the contract's 0/1/2.

mod boards;
mod cards;
mod demo;
mod dispatch;
mod gc;
mod import;
mod notify;
mod policies;
mod recurring;
mod render;
mod scope;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::board::{Board, BoardError, ConfigError, Home};
use crate::ops::input as values;
use crate::store::{Store, StoreError};

pub use crate::ops::input::UsageError;

/// Some items of a bulk command failed (each was already reported): exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} failed")]
pub struct BulkFailure {
    pub failed: usize,
    pub total: usize,
}

/// Map an error to the exit code of the CLI contract: 2 for usage and config errors, 1 for the rest.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() || cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<BoardError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::ops::pause::PauseError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::ops::migrate::MigrateError>() {
            return e.exit_code();
        }
    }
    1
}

#[derive(Debug, Parser)]
#[command(
    name = "kanban",
    version,
    about = "A kanban host for fleets of agent workers",
    long_about = "A kanban board of cards in an embedded SQLite store. Workers report back through this same \
                  binary (complete, block, comment, heartbeat).\n\nKANBAN_NOW=<unix seconds> overrides the clock \
                  for every command (for tests and simulations).",
    propagate_version = true
)]
pub struct Cli {
    /// Home folder [default: $XDG_DATA_HOME/kanban or ~/.local/share/kanban]
    #[arg(long, global = true, env = "KANBAN_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Board to use [default: the current board (`board switch`), else `default`]
    #[arg(long, global = true, env = "KANBAN_BOARD", value_name = "SLUG")]
    pub board: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, inspect, switch and remove boards
    #[command(subcommand)]
    Board(BoardCommand),
    /// Create a card
    Create(Box<CreateArgs>),
    /// Create cards from a JSON Lines file, one card per line, all or nothing in one transaction
    Import(ImportArgs),
    /// List cards (archived ones only with --archived or --status archived)
    List(ListArgs),
    /// Recurring cards: a card created by the dispatcher at each occurrence of a cron expression
    #[command(subcommand)]
    Recurring(RecurringCommand),
    /// Show one card with its parents, children, comments, events, runs and attachments
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a card's assignee (a profile name, or `none`)
    Assign { id: String, profile: String },
    /// Add a comment to a card
    Comment {
        id: String,
        text: String,
        #[arg(long)]
        author: Option<String>,
    },
    /// Make PARENT a dependency of CHILD (self-links and cycles are refused)
    Link { parent: String, child: String },
    /// Remove a dependency
    Unlink { parent: String, child: String },
    /// Change a card's title, body or priority, or reset its failure counter
    Edit(EditArgs),
    /// Block a card (sticky until `unblock`; an operator's --kind transient may recover by itself). A running
    /// card's worker is stopped first
    Block {
        id: String,
        reason: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<BlockKind>,
    },
    /// Unblock cards: back to ready (or todo while a parent is open); resets the failure counter
    Unblock {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Park a card on purpose (status scheduled)
    Schedule { id: String, reason: Option<String> },
    /// Move triage, scheduled or todo cards to ready
    Promote {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Promote a todo card even while a parent is open
        #[arg(long)]
        force: bool,
        /// Report what would change and change nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Mark cards done (refused while a parent is open); a running card's worker is stopped first. Approves a
    /// card in review
    Complete {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        result: Option<String>,
        #[arg(long)]
        summary: Option<String>,
    },
    /// Archive cards (soft delete; a running card's worker is stopped first); with --rm, delete archived cards
    /// for good
    Archive {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Delete already-archived cards, their comments, runs and attachments
        #[arg(long)]
        rm: bool,
    },
    /// Requeue a running card: ends its run as reclaimed, stops its worker, resets the failure counter
    Reclaim {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Stop exactly this run (refused if it is no longer the card's current run) [default: the current run]
        #[arg(long, value_name = "RUN")]
        run: Option<i64>,
    },
    /// Send a card to the review lane (a worker finishing its turn, or a person); its reviewer's worker is
    /// dispatched with the card's context and this summary
    Review {
        id: String,
        /// The profile that reviews it [default: the card's reviewer, else the board's [review] reviewer]
        #[arg(long, value_name = "PROFILE")]
        reviewer: Option<String>,
        /// What was done, for the reviewer (stored as the card's result)
        #[arg(long)]
        summary: Option<String>,
    },
    /// Send a card in review back to its implementer (ready again; the failure counter is untouched)
    RequestChanges { id: String, reason: String },
    /// Give a card to another profile (resets the failure counter)
    Reassign {
        id: String,
        profile: String,
        /// Requeue the card first if it is running (its worker is stopped)
        #[arg(long)]
        reclaim: bool,
    },
    /// Attach a file to a card (25 MiB at most)
    Attach {
        id: String,
        path: PathBuf,
        /// Name to store it under (reduced to a safe file name)
        #[arg(long)]
        name: Option<String>,
    },
    /// List a card's attachments
    Attachments {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an attachment and its file
    AttachRm { attachment_id: i64 },
    /// Print the event log (all cards, or one), optionally following new events
    Events {
        id: Option<String>,
        /// Only events after this event id
        #[arg(long, value_name = "EVENT_ID")]
        since: Option<i64>,
        /// Keep printing new events until interrupted
        #[arg(long)]
        follow: bool,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// List a card's runs (attempts)
    Runs {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Counts by status and assignee
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// List the hosts working the board: id, last seen, running workers, capacity and labels
    Hosts {
        #[arg(long)]
        json: bool,
    },
    /// Report that the worker on a running card is alive: stamps the heartbeat and extends the claim
    Heartbeat {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Print a card's worker log (stdout and stderr of its workers)
    Log {
        id: String,
        /// Only the last BYTES bytes
        #[arg(long, value_name = "BYTES")]
        tail: Option<u64>,
    },
    /// Print the context a worker of this card is given (KANBAN_CONTEXT)
    Context { id: String },
    /// Run one dispatcher tick on the board: settle finished workers, then spawn ready cards
    Dispatch {
        /// Report what the spawn phase would do and spawn nothing
        #[arg(long)]
        dry_run: bool,
        /// Wait for the spawned workers to exit and settle their outcome before returning
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Tick every board (or --board) until SIGINT or SIGTERM
    Daemon {
        /// Seconds between ticks
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        interval: f64,
        /// Stop when nothing is running and nothing is waiting to be dispatched
        #[arg(long)]
        until_idle: bool,
        /// Stop after N ticks
        #[arg(long, value_name = "N")]
        max_ticks: Option<u64>,
        /// Also serve the web board and its API on ADDR, as `kanban serve --listen ADDR` does (docs/api.md),
        /// with the daemon's tick metrics; the first line printed is the URL
        #[arg(long, value_name = "ADDR")]
        serve: Option<std::net::SocketAddr>,
        /// With --serve: require `Authorization: Bearer TOKEN`, TOKEN read from FILE (as `serve --token-file`)
        #[arg(long, value_name = "FILE", requires = "serve")]
        token_file: Option<PathBuf>,
        /// With --serve: refuse every request that would change something
        #[arg(long, requires = "serve")]
        read_only: bool,
    },
    /// Pause the dispatcher on the board, or for one profile: nothing new is spawned (running workers
    /// finish) until `kanban resume`. Pausing again updates the reason
    Pause {
        /// Pause only this profile of the board (as assignee and as reviewer)
        #[arg(long, value_name = "PROFILE")]
        profile: Option<String>,
        /// Why, for whoever finds the board paused
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Lift a pause of the board, or of one profile (refused if it is not paused)
    Resume {
        /// Resume this profile's pause [default: the board's own pause]
        #[arg(long, value_name = "PROFILE")]
        profile: Option<String>,
    },
    /// The board's notifications ([[notify]] in board.toml): the delivery log, and a delivery pass by hand
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Show the dispatcher at work on a demo board: success, rate limit, crash loop, wedged worker
    Demo,
    /// Install, list, inspect, remove and verify policy plugins (WebAssembly components)
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Ask a candidate policy about the decisions the board made, and see where it would have differed
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the board's diagnostics policies over its cards and print the findings
    Diagnostics {
        /// Only this card
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// Only findings at least this severe
        #[arg(long, value_parser = ["info", "warning", "error", "critical"])]
        severity: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Split triage cards into children with the board's decomposition policy
    Decompose {
        id: Option<String>,
        /// Every triage card on the board
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove old events, logs and workspaces the board no longer needs (see docs/operations.md)
    #[command(
        long_about = "Remove what the board no longer needs once it is older than --older-than: heartbeat, \
                      claim-extension, health and earlier gc events on any card; every event of a card deleted \
                      for good (its `deleted` tombstone stays); the worker logs and context files of done, \
                      archived and deleted cards; and their leftover scratch workspaces. The state-change \
                      history of every existing card is kept, and a card that is not finished keeps \
                      everything. A real run records a `gc` event with the counts."
    )]
    Gc {
        /// Only what is older than this (seconds, or 30s, 5m, 2h, 1d)
        #[arg(long, value_parser = values::parse_duration, default_value = "30d", value_name = "DUR")]
        older_than: i64,
        /// Report what would be removed and remove nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Serve the boards' HTTP API and live events (docs/api.md) until SIGINT or SIGTERM; the first line
    /// printed is the URL
    Serve {
        /// Address to listen on (port 0 picks a free port). Any address but loopback requires a token
        #[arg(long, default_value = "127.0.0.1:7777", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Require `Authorization: Bearer TOKEN` on every request, TOKEN read from FILE [default on a
        /// non-loopback address: a generated token, saved to <home>/serve.token and printed once]
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Refuse every request that would change something (POST, PATCH, DELETE)
        #[arg(long)]
        read_only: bool,
    },
    /// Internal: supervise the worker of one claimed run (started by the dispatcher)
    #[command(hide = true)]
    Supervise {
        id: String,
        #[arg(long)]
        run: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// The outbox, newest first: every delivery with its status, attempts and last error
    Log {
        /// Only deliveries in this state
        #[arg(long, value_parser = ["pending", "delivered", "failed"])]
        status: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver what is due now, once (the daemon does this continuously; this is for cron and checks)
    Deliver {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a component (checked against the policy worlds; stored by sha256)
    Install {
        path: PathBuf,
        /// Name to refer to it by in board.toml [default: the name it describes itself with]
        #[arg(long)]
        name: Option<String>,
    },
    /// List installed plugins
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one installed plugin
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed plugin
    Rm { name: String },
    /// Re-hash every installed plugin and report any that changed on disk
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print the context record a policy would get about a card now, as JSON (a fixture for a plugin's tests)
    Context { id: String },
    /// Call a plugin once on a card (or a saved context) and print its decision, fuel used, time and memory
    Run {
        /// A component file, or a plugin as board.toml names it (builtin:NAME, an installed name, sha256:HEX)
        plugin: String,
        /// The card to decide about, as the board stands now
        #[arg(long, value_name = "ID", required_unless_present = "context", conflicts_with = "context")]
        card: Option<String>,
        /// A context record saved by `kanban plugin context` (or written by hand)
        #[arg(long, value_name = "FILE")]
        context: Option<PathBuf>,
        /// The policy's config, as [policies.config] would give it (a JSON object)
        #[arg(long, value_name = "JSON", default_value = "{}")]
        config: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a new plugin project (Rust, Python or JavaScript) that builds and installs as it is
    #[command(
        long_about = "Write a new plugin project to --dir (default ./NAME): a sample rule of the kind with its \
                      config checks and unit tests, the build (the Rust SDK vendored, or the WIT package and a \
                      build.sh with the toolchain pinned), and a README with the commands to test, build, try \
                      and install it. A folder that exists and is not empty is refused, and nothing is left \
                      half-written. Needs no home or board."
    )]
    New(NewArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits and '-', starting with a letter); also its package name
    pub name: String,
    /// The policy kind: respawn-guard, routing, diagnostics or decompose
    #[arg(long, value_parser = parse_policy_kind, value_name = "KIND")]
    pub kind: crate::model::PolicyKind,
    /// The language of the project
    #[arg(long, value_enum, default_value_t = PluginLang::Rust)]
    pub lang: PluginLang,
    /// Where to write it [default: ./NAME]
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PluginLang {
    Rust,
    Python,
    Js,
}

fn parse_policy_kind(text: &str) -> Result<crate::model::PolicyKind, String> {
    crate::model::PolicyKind::parse(text).ok_or_else(|| {
        format!("'{text}' is not a policy kind (possible: {})", crate::model::PolicyKind::names().join(", "))
    })
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replay the board's recorded spawn decisions (guards) or assignments (routers) with a candidate
    /// plugin, each card rebuilt as it stood then, and report where the candidate decides differently
    #[command(
        long_about = "Replay the board's history with a candidate policy before turning it on. For a respawn \
                      guard, every spawn decision the board recorded in the window (each claim, each deferral \
                      and each block by a guard) is asked again; for a router, every assignment a routing \
                      policy made. Each time the card is rebuilt from the event log as it stood just before \
                      the decision (its runs, events, comments, counters, block and assignee as of then), with \
                      the running counts of that moment and the board's config of today. A diagnostics plugin \
                      is asked about every card as it stood --at a moment, beside the board's own diagnostics \
                      policies. The report counts the decisions by verdict (same, would_defer, would_block, \
                      would_allow, would_assign, would_find, would_miss, would_differ, error) and lists every \
                      one that differs. Nothing is written."
    )]
    Replay {
        /// The candidate: a component file, or a plugin as board.toml names it (builtin:NAME, an installed
        /// name, sha256:HEX)
        #[arg(long, value_name = "PLUGIN")]
        plugin: String,
        /// The kind to replay; the candidate must be of it [default: the candidate's kind]
        #[arg(long, value_parser = ["respawn-guard", "routing", "diagnostics"])]
        kind: Option<String>,
        /// Guards and routers: how far back to go (seconds, or 30s, 5m, 2h, 7d)
        #[arg(long, value_parser = values::parse_duration, default_value = "7d", value_name = "DUR")]
        since: i64,
        /// Diagnostics: the board as it stood this long ago [default: now]
        #[arg(long, value_parser = values::parse_duration, value_name = "DUR")]
        at: Option<i64>,
        /// The candidate's config, as [policies.config] would give it (a JSON object)
        #[arg(long, value_name = "JSON", default_value = "{}")]
        config: String,
        /// List every decision, not only those the candidate would change
        #[arg(long)]
        all: bool,
        /// With --json: each listed decision with the context record the candidate was handed
        #[arg(long, requires = "json")]
        contexts: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecurringCommand {
    /// Add a schedule: the dispatcher creates a card (as `create` would) at each occurrence of --cron in --tz
    Add(Box<RecurringAddArgs>),
    /// List the board's schedules with their next occurrence
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule (the cards it created stay)
    Rm { id: i64 },
}

#[derive(Debug, Args)]
pub struct RecurringAddArgs {
    /// The title of each card
    pub title: String,
    /// Five fields: minute hour day-of-month month day-of-week (or @hourly, @daily, @weekly, ...)
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// The IANA time zone the expression is read in (DST included)
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub tz: String,
    /// Missed occurrences after downtime: latest (the newest only), all (each, at most 100), none
    #[arg(long, value_parser = parse_catch_up, default_value = "latest", value_name = "RULE")]
    pub catch_up: crate::model::CatchUp,
    /// Skip an occurrence while the card of the previous one is neither done nor archived
    #[arg(long)]
    pub skip_if_open: bool,
    #[arg(long)]
    pub body: Option<String>,
    #[command(flatten)]
    pub card: CardFields,
    #[arg(long)]
    pub json: bool,
}

/// The fields of a new card that `create` and `recurring add` (for each card it makes) share.
#[derive(Debug, Args)]
pub struct CardFields {
    #[arg(long, value_name = "PROFILE")]
    pub assignee: Option<String>,
    /// Higher is dispatched first
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    #[arg(long)]
    pub tenant: Option<String>,
    /// scratch, dir:PATH, worktree or worktree:PATH
    #[arg(long, value_parser = values::parse_workspace, value_name = "KIND")]
    pub workspace: Option<values::WorkspaceSpec>,
    /// Seconds, or 30s, 5m, 2h, 1d
    #[arg(long, value_parser = values::parse_duration, value_name = "DUR")]
    pub max_runtime: Option<i64>,
    /// Breaker limit for the card
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..), value_name = "N")]
    pub max_retries: Option<i64>,
    /// A goal card: a judge decides after each turn whether it is done
    #[arg(long)]
    pub goal: bool,
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..), value_name = "N", requires = "goal")]
    pub goal_max_turns: Option<i64>,
}

fn parse_catch_up(text: &str) -> Result<crate::model::CatchUp, String> {
    crate::model::CatchUp::parse(text).ok_or_else(|| {
        format!("'{text}' is not a catch-up rule (possible: {})", crate::model::CatchUp::names().join(", "))
    })
}

#[derive(Debug, Subcommand)]
pub enum BoardCommand {
    /// Create a board with a commented board.toml
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// Absolute path inherited by dir/worktree cards
        #[arg(long, value_name = "PATH")]
        default_workdir: Option<PathBuf>,
        /// Keep the board's cards in this PostgreSQL database (postgres://...), shared by every host that
        /// creates the board with the same URL, instead of a SQLite file in the board's folder
        #[arg(long, value_name = "URL", env = "KANBAN_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
    /// List boards
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a board's settings and card counts
    Show {
        slug: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Make SLUG the current board of this home
    Switch { slug: String },
    /// Remove a board: moves it to <home>/archive/, or deletes it with --delete
    Rm {
        slug: String,
        #[arg(long)]
        delete: bool,
    },
    /// Set (or, without PATH, clear) the board's default workdir
    SetDefaultWorkdir { slug: String, path: Option<PathBuf> },
    /// Validate board.toml (exit 2 naming the key at fault)
    Check { slug: Option<String> },
    /// Write the board (database snapshot, board.toml, attachments, its installed plugins) to one archive
    Export {
        slug: String,
        /// The archive file to write
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Move the board's cards, runs, events and the rest of its database to another engine: a SQLite board
    /// into PostgreSQL, or a PostgreSQL board back into a SQLite file
    ///
    /// Every table is copied with its ids, in one transaction, and read back: row counts and a sha256 per
    /// table must match before the board's folder is switched to the new store. The store it leaves is
    /// kept: the SQLite file in <home>/archive/<slug>.<time>.sqlite/, or the PostgreSQL schema left as it
    /// is (its database.url moved to <home>/archive/<slug>.<time>.postgres/). Refused while a card is
    /// running (stop the daemons first) or when the destination schema already holds a board.
    /// board.toml, attachment files, workspaces, logs and plugins stay where they are.
    Migrate {
        /// The board to move (it must exist)
        slug: String,
        /// Where to: a postgres:// or postgresql:// URL (for a SQLite board), or `sqlite` (for a PostgreSQL
        /// board)
        #[arg(long, value_name = "URL|sqlite", env = "KANBAN_DATABASE_URL", hide_env_values = true)]
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a board from an archive written by `board export`, checking every digest first
    Import {
        file: PathBuf,
        /// Import under this slug instead of the one in the archive
        #[arg(long = "as", value_name = "SLUG")]
        as_slug: Option<String>,
        /// Replace an existing board of that slug (it is moved to <home>/archive/)
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub title: String,
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the body from a file, or `-` for stdin
    #[arg(long, value_name = "PATH|-")]
    pub body_file: Option<PathBuf>,
    /// A card this one waits on (repeatable)
    #[arg(long = "parent", value_name = "ID")]
    pub parents: Vec<String>,
    /// Create in triage (a raw idea awaiting decomposition)
    #[arg(long, conflicts_with = "initial_status")]
    pub triage: bool,
    #[arg(long)]
    pub branch: Option<String>,
    /// Creating again with the same key returns the existing card
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub card: CardFields,
    #[arg(long, value_enum)]
    pub initial_status: Option<InitialStatus>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON Lines: one card per line, with the fields of `kanban create` (see docs/cli.md); `-` reads stdin
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
    /// Print the ids of the cards, in line order, as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_status, value_name = "STATUS")]
    pub status: Option<crate::model::Status>,
    /// A profile name, or `none` for unassigned cards
    #[arg(long)]
    pub assignee: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// Include archived cards
    #[arg(long)]
    pub archived: bool,
    #[arg(long, value_enum, default_value_t = SortKey::Created)]
    pub sort: SortKey,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub id: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub body: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Set the failure counter back to 0
    #[arg(long)]
    pub reset_failures: bool,
}

fn parse_status(text: &str) -> Result<crate::model::Status, String> {
    crate::model::Status::parse(text).ok_or_else(|| {
        format!("'{text}' is not a status (possible: {})", crate::model::Status::names().join(", "))
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitialStatus {
    Running,
    Blocked,
}

impl InitialStatus {
    pub fn status(self) -> crate::model::Status {
        match self {
            InitialStatus::Running => crate::model::Status::Running,
            InitialStatus::Blocked => crate::model::Status::Blocked,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BlockKind {
    Dependency,
    #[value(name = "needs_input", alias = "needs-input")]
    NeedsInput,
    Capability,
    Transient,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Dependency => "dependency",
            BlockKind::NeedsInput => "needs_input",
            BlockKind::Capability => "capability",
            BlockKind::Transient => "transient",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortKey {
    Created,
    Priority,
    Status,
    Assignee,
    Title,
    Updated,
}

/// What every command needs: the home and which board was asked for.
pub struct Invocation {
    pub home: Home,
    pub board_flag: Option<String>,
}

impl Invocation {
    pub fn board(&self) -> anyhow::Result<Board> {
        let slug = self.home.pick_board(self.board_flag.as_deref());
        Ok(self.home.open_board(&slug)?)
    }

    pub fn open(&self) -> anyhow::Result<(Board, Store)> {
        let board = self.board()?;
        let store = board.open_store()?;
        Ok((board, store))
    }

    /// Open for a worker's report: a broken board.toml is a warning (defaults apply), not a refusal.
    pub fn open_for_report(&self) -> anyhow::Result<(Board, Store)> {
        let slug = self.home.pick_board(self.board_flag.as_deref());
        let (board, config_error) = self.home.open_board_for_report(&slug)?;
        if let Some(err) = config_error {
            eprintln!("kanban: warning: {err}; recording this report with default settings");
        }
        let store = board.open_store()?;
        Ok((board, store))
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // `plugin new` writes a project folder and nothing else: it needs no home (and creates none).
    if let Command::Plugin(PluginCommand::New(args)) = cli.command {
        return policies::plugin_new(args);
    }
    let inv = Invocation { home: Home::resolve(cli.home)?, board_flag: cli.board.filter(|b| !b.is_empty()) };
    scope::WorkerScope::check_command(&cli.command)?;
    match cli.command {
        Command::Board(cmd) => boards::run(&inv, cmd),
        cmd @ (Command::Dispatch { .. }
        | Command::Daemon { .. }
        | Command::Pause { .. }
        | Command::Resume { .. }
        | Command::Demo
        | Command::Supervise { .. }) => dispatch::run(&inv, cmd),
        Command::Plugin(cmd) => policies::plugin(&inv, cmd),
        Command::Policy(cmd) => policies::policy(&inv, cmd),
        Command::Diagnostics { task, severity, json } => policies::diagnostics(&inv, task, severity, json),
        Command::Decompose { id, all, json } => policies::decompose(&inv, id, all, json),
        Command::Gc { older_than, dry_run, json } => gc::run(&inv, older_than, dry_run, json),
        Command::Import(args) => import::run(&inv, args),
        Command::Notify(cmd) => notify::run(&inv, cmd),
        Command::Recurring(cmd) => recurring::run(&inv, cmd),
        Command::Serve { listen, token_file, read_only } => {
            let options = crate::web::ServeOptions { listen, board: inv.board_flag, token_file, read_only };
            crate::web::serve(inv.home, options)
        }
        other => cards::run(&inv, other),
    }
}
