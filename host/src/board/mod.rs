//! Home and board layout.
//!
//! Owns where things live on disk (`<home>/boards/<slug>/{board.toml,kanban.db,workspaces/,attachments/,logs/}`),
//! which board a command means, and creating or removing a board folder. It deletes only folders it can
//! prove are boards under this home.

pub mod config;
mod shared;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use crate::model::PolicyKind;
pub use config::{
    BoardConfig, ConfigError, DispatchConfig, HomeConfig, HostConfig, HostProfile, NotifySpec, PolicySpec,
    Profile,
};

use crate::store::{Store, StoreError};

/// The board used when nothing else names one; created on first use.
pub const DEFAULT_BOARD: &str = "default";

/// The file in a board's folder that names its PostgreSQL database (`board create --database`).
pub const DATABASE_FILE: &str = "database.url";
/// The environment variable naming the PostgreSQL database new boards are made in (`board create
/// --database`, and the default board when it is made on first use).
pub const DATABASE_ENV: &str = "KANBAN_DATABASE_URL";

/// The board's PostgreSQL URL, if its folder names one.
fn read_database(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(DATABASE_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let url = text.trim();
            if url.is_empty() {
                return Err(BoardError::Invalid(format!(
                    "{} is empty: it must hold a postgres:// URL",
                    path.display()
                )));
            }
            Ok(Some(url.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BoardError::Io { context: format!("cannot read {}", path.display()), error: e }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("invalid board slug '{0}': use 1-64 of a-z, 0-9, '-' and '_', starting with a letter or digit")]
    BadSlug(String),
    #[error("board '{slug}' not found (boards: {known})")]
    NotFound { slug: String, known: String },
    #[error("board '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {error}")]
    Io { context: String, error: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BoardError {
    pub fn exit_code(&self) -> u8 {
        match self {
            BoardError::BadSlug(_) | BoardError::Config(_) | BoardError::Invalid(_) => 2,
            BoardError::Store(e) => e.exit_code(),
            _ => 1,
        }
    }
}

type Result<T, E = BoardError> = std::result::Result<T, E>;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BoardError {
    let context = context.into();
    move |error| BoardError::Io { context, error }
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`
pub fn is_valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

pub fn check_slug(slug: &str) -> Result<()> {
    if is_valid_slug(slug) { Ok(()) } else { Err(BoardError::BadSlug(slug.to_string())) }
}

/// The kanban home folder.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `explicit` (from `--home` or `KANBAN_HOME`), else the platform data dir. Created on first use.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Home> {
        let root = match explicit {
            Some(dir) => dir,
            None => default_home().ok_or_else(|| {
                BoardError::Invalid("cannot find a home folder: set --home or KANBAN_HOME".into())
            })?,
        };
        fs::create_dir_all(&root).map_err(io(format!("cannot create home {}", root.display())))?;
        // Workers run in their own workspace and find the board through KANBAN_HOME and the paths in
        // board.toml, so a relative `--home ./x` must not stay relative to the caller's directory.
        let root =
            std::path::absolute(&root).map_err(io(format!("cannot resolve home {}", root.display())))?;
        Ok(Home { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn boards_dir(&self) -> PathBuf {
        self.root.join("boards")
    }

    pub fn board_dir(&self, slug: &str) -> PathBuf {
        self.boards_dir().join(slug)
    }

    /// `<home>/config.toml`: this host's settings ([`HomeConfig`]); the defaults when the file is absent.
    pub fn config(&self) -> Result<HomeConfig> {
        let path = self.root.join("config.toml");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(HomeConfig::parse(&text, &path)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HomeConfig::default()),
            Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
        }
    }

    fn current_file(&self) -> PathBuf {
        self.root.join("current")
    }

    /// This host's stable identity: `h_` + 16 hex, drawn once and kept in `<home>/host-id`, so it survives
    /// hostname changes (a container restarted under a new name). Claims name it; a dispatcher acts on
    /// (signals, reaps) only the claims of its own host.
    pub fn host_id(&self) -> Result<String> {
        let path = self.root.join("host-id");
        let valid = |text: &str| {
            let id = text.trim();
            (id.len() == 18
                && id.starts_with("h_")
                && id[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
            .then(|| id.to_string())
        };
        if let Some(id) = fs::read_to_string(&path).ok().as_deref().and_then(valid) {
            return Ok(id);
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| BoardError::Invalid(format!("no random source: {e}")))?;
        let id = format!("h_{}", hex::encode(bytes));
        // Written whole to a file of its own, then published by a hard link, which never replaces an existing
        // file: a reader sees no file or a complete one, and processes starting at once agree on the first.
        let tmp = self.root.join(format!(".host-id.{id}.{}", std::process::id()));
        let written =
            fs::OpenOptions::new().write(true).create_new(true).open(&tmp).and_then(|mut file| {
                file.write_all(format!("{id}\n").as_bytes()).and_then(|()| file.sync_all())
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(BoardError::Io { context: format!("cannot write {}", tmp.display()), error: e });
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text =
                    fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))?;
                valid(&text).ok_or_else(|| {
                    BoardError::Invalid(format!(
                        "{} holds no valid host id; remove it to draw a new one",
                        path.display()
                    ))
                })
            }
            Err(e) => Err(BoardError::Io { context: format!("cannot create {}", path.display()), error: e }),
        }
    }

    /// The board named by `board switch`, if it was set.
    pub fn current_board(&self) -> Option<String> {
        let text = fs::read_to_string(self.current_file()).ok()?;
        let slug = text.trim();
        is_valid_slug(slug).then(|| slug.to_string())
    }

    /// Which board a command means: `explicit` (`--board` / `KANBAN_BOARD`), else current, else default.
    pub fn pick_board(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_string)
            .or_else(|| self.current_board())
            .unwrap_or_else(|| DEFAULT_BOARD.to_string())
    }

    pub fn switch_board(&self, slug: &str) -> Result<()> {
        check_slug(slug)?;
        self.require_board(slug)?;
        write_atomic(&self.current_file(), format!("{slug}\n").as_bytes())
    }

    /// Slugs of every board, sorted.
    pub fn board_slugs(&self) -> Result<Vec<String>> {
        let dir = self.boards_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(BoardError::Io { context: format!("cannot list {}", dir.display()), error: e });
            }
        };
        let mut slugs: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_valid_slug(name) && self.board_dir(name).join("board.toml").is_file())
            .collect();
        slugs.sort();
        Ok(slugs)
    }

    fn require_board(&self, slug: &str) -> Result<PathBuf> {
        let dir = self.board_dir(slug);
        if dir.join("board.toml").is_file() {
            Ok(dir)
        } else {
            let known = self.board_slugs()?.join(", ");
            Err(BoardError::NotFound {
                slug: slug.to_string(),
                known: if known.is_empty() { "none".into() } else { known },
            })
        }
    }

    /// Create a board: folders, a commented `board.toml` and an empty database, built in a staging folder
    /// and renamed into place so a crash never leaves half a board.
    pub fn create_board(
        &self,
        slug: &str,
        name: Option<&str>,
        default_workdir: Option<&Path>,
    ) -> Result<Board> {
        self.create_board_in(slug, name, default_workdir, None)
    }

    /// [`Home::create_board`] with the board's cards in the PostgreSQL database at `database` (a board
    /// schema of its own, created there if new, joined if another host made it) instead of a SQLite file.
    pub fn create_board_in(
        &self,
        slug: &str,
        name: Option<&str>,
        default_workdir: Option<&Path>,
        database: Option<&str>,
    ) -> Result<Board> {
        check_slug(slug)?;
        if let Some(url) = database
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(BoardError::Invalid(format!(
                "--database must be a postgres:// or postgresql:// URL, got '{}'",
                crate::store::redacted_url(url)
            )));
        }
        if let Some(dir) = default_workdir
            && !dir.is_absolute()
        {
            return Err(BoardError::Invalid(format!(
                "--default-workdir must be an absolute path, got '{}'",
                dir.display()
            )));
        }
        let dir = self.board_dir(slug);
        if dir.exists() {
            return Err(BoardError::Exists(slug.to_string()));
        }
        let boards = self.boards_dir();
        fs::create_dir_all(&boards).map_err(io(format!("cannot create {}", boards.display())))?;
        let staging = boards.join(format!(".creating-{slug}-{}", std::process::id()));
        let built = (|| -> Result<()> {
            for sub in ["workspaces", "attachments", "logs"] {
                fs::create_dir_all(staging.join(sub))
                    .map_err(io(format!("cannot create {}", staging.display())))?;
            }
            let toml = config::template(name.unwrap_or(slug), default_workdir);
            write_atomic(&staging.join("board.toml"), toml.as_bytes())?;
            match database {
                // The URL may hold a password: readable by this user only.
                Some(url) => {
                    Store::open_postgres(url, slug)?.close()?;
                    write_private(&staging.join(DATABASE_FILE), format!("{url}\n").as_bytes())?;
                }
                None => Store::open(&staging.join("kanban.db"))?.close()?,
            }
            Ok(())
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging); // ours: created above under a name only this process uses
            return Err(e);
        }
        if let Err(e) = fs::rename(&staging, &dir) {
            let _ = fs::remove_dir_all(&staging);
            if dir.exists() {
                return Err(BoardError::Exists(slug.to_string()));
            }
            return Err(BoardError::Io {
                context: format!("cannot create board {}", dir.display()),
                error: e,
            });
        }
        self.load_board(slug)
    }

    /// Load a board's config. The default board is created on first use; any other must exist.
    pub fn open_board(&self, slug: &str) -> Result<Board> {
        check_slug(slug)?;
        if slug == DEFAULT_BOARD && !self.board_dir(slug).join("board.toml").exists() {
            // Made where `board create` would make it: in the database `KANBAN_DATABASE_URL` names, if any.
            let database = std::env::var(DATABASE_ENV).ok().filter(|url| !url.trim().is_empty());
            match self.create_board_in(slug, Some("Default"), None, database.as_deref()) {
                Ok(board) => return Ok(board),
                Err(BoardError::Exists(_)) => {} // created by a concurrent command
                Err(e) => return Err(e),
            }
        }
        self.load_board(slug)
    }

    /// Open board `slug`'s store, on whichever engine it is kept, without loading (or settling) its config:
    /// for reading another board's cards in passing (a host counting its workers on every board). `None`
    /// for a SQLite board whose file is not there (opening would make an empty one).
    pub fn open_board_store(&self, slug: &str) -> Result<Option<Store>> {
        let dir = self.require_board(slug)?;
        Ok(match read_database(&dir)? {
            Some(url) => Some(Store::open_postgres(&url, slug)?),
            None if dir.join("kanban.db").is_file() => Some(Store::open(&dir.join("kanban.db"))?),
            None => None,
        })
    }

    /// Like [`Home::open_board`], but a `board.toml` that fails to parse or validate gives the board with
    /// default settings and the error, instead of failing. For the worker protocol (complete, block,
    /// heartbeat, comment): a worker's report must not be lost because an operator broke the config
    /// while it ran.
    pub fn open_board_for_report(&self, slug: &str) -> Result<(Board, Option<ConfigError>)> {
        match self.open_board(slug) {
            Ok(board) => Ok((board, None)),
            Err(BoardError::Config(err)) => {
                let dir = self.require_board(slug)?;
                let board = Board {
                    slug: slug.to_string(),
                    dir,
                    config: BoardConfig::default(),
                    config_hash: String::new(),
                    database: read_database(&self.board_dir(slug))?,
                    opened: Opened::default(),
                };
                Ok((board, Some(err)))
            }
            Err(other) => Err(other),
        }
    }

    fn load_board(&self, slug: &str) -> Result<Board> {
        let dir = self.require_board(slug)?;
        let database = read_database(&dir)?;
        let opened = Opened::default();
        if let Some(url) = &database {
            // The connection that settled the config is the one the command goes on with.
            let store = shared::sync(self, &dir, slug, url)?;
            *opened.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
        }
        let toml_path = dir.join("board.toml");
        let text =
            fs::read_to_string(&toml_path).map_err(io(format!("cannot read {}", toml_path.display())))?;
        let config = BoardConfig::parse(&text, &toml_path)?;
        let config_hash = crate::digest::sha256_hex(text.as_bytes());
        Ok(Board { slug: slug.to_string(), dir, config, config_hash, database, opened })
    }

    /// Remove a board. Without `delete` the folder moves to `<home>/archive/`; with it, the folder is
    /// deleted. Only a real folder under this home's `boards/` holding a `board.toml` is ever deleted; a
    /// symlinked board loses its link, never its target.
    pub fn remove_board(&self, slug: &str, delete: bool, now: i64) -> Result<Option<PathBuf>> {
        check_slug(slug)?;
        let dir = self.require_board(slug)?;
        if self.current_board().as_deref() == Some(slug) {
            let _ = fs::remove_file(self.current_file());
        }
        let meta = fs::symlink_metadata(&dir).map_err(io(format!("cannot stat {}", dir.display())))?;
        if meta.file_type().is_symlink() {
            fs::remove_file(&dir).map_err(io(format!("cannot remove link {}", dir.display())))?;
            return Ok(None);
        }
        if delete {
            fs::remove_dir_all(&dir).map_err(io(format!("cannot delete {}", dir.display())))?;
            return Ok(None);
        }
        let archive = self.root.join("archive");
        fs::create_dir_all(&archive).map_err(io(format!("cannot create {}", archive.display())))?;
        let mut target = archive.join(format!("{slug}.{now}"));
        let mut n = 1;
        while target.exists() {
            target = archive.join(format!("{slug}.{now}.{n}"));
            n += 1;
        }
        fs::rename(&dir, &target).map_err(io(format!(
            "cannot move {} to {}",
            dir.display(),
            target.display()
        )))?;
        Ok(Some(target))
    }

    /// Set or clear `[board] default_workdir`, keeping the file's comments and layout.
    pub fn set_default_workdir(&self, slug: &str, workdir: Option<&Path>) -> Result<Board> {
        if let Some(dir) = workdir
            && !dir.is_absolute()
        {
            return Err(BoardError::Invalid(format!(
                "default workdir must be an absolute path, got '{}'",
                dir.display()
            )));
        }
        let board = self.load_board(slug)?;
        let path = board.toml_path();
        let text = fs::read_to_string(&path).map_err(io(format!("cannot read {}", path.display())))?;
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            BoardError::Config(ConfigError { path: path.clone(), message: e.to_string() })
        })?;
        let section =
            doc.entry("board").or_insert(toml_edit::table()).as_table_like_mut().ok_or_else(|| {
                BoardError::Config(ConfigError {
                    path: path.clone(),
                    message: "board: must be a table".into(),
                })
            })?;
        match workdir {
            Some(dir) => {
                section.insert("default_workdir", toml_edit::value(dir.display().to_string()));
            }
            None => {
                section.remove("default_workdir");
            }
        }
        let new_text = doc.to_string();
        BoardConfig::parse(&new_text, &path)?; // never write a file we would refuse to read
        write_atomic(&path, new_text.as_bytes())?;
        self.load_board(slug)
    }
}

fn default_home() -> Option<PathBuf> {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(data).join("kanban"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(home).join(".local/share/kanban"))
}

/// Write a file by writing a sibling temporary file, syncing it, and renaming it over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_new(path, bytes, 0o666)
}

/// Write a temporary file created with `mode` (less the umask), sync it, and rename it over `path`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io(format!("cannot write {}", path.display())))
}

/// [`write_atomic`] for a file only its owner may read (mode 0600 from its creation).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_new(path, bytes, 0o600)
}

/// The files of one card (see [`Board::card_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFiles {
    /// The worker's stdout and stderr, appended turn after turn.
    pub log: PathBuf,
    /// The log's one rotated backup.
    pub log_backup: PathBuf,
    /// The context file handed to the worker (`KANBAN_CONTEXT`).
    pub context: PathBuf,
    /// The card's attachments folder.
    pub attachments: PathBuf,
    /// The card's scratch workspace.
    pub scratch: PathBuf,
}

/// One board: its folder and parsed config.
#[derive(Debug, Clone)]
pub struct Board {
    pub slug: String,
    pub dir: PathBuf,
    pub config: BoardConfig,
    /// sha256 of board.toml as loaded: a changed file "reloads" the board (lifts plugin quarantines).
    pub config_hash: String,
    /// The PostgreSQL database that holds the board's cards (`board create --database`), shared by the
    /// hosts of a fleet; `None` for the board's own SQLite file.
    pub database: Option<String>,
    /// The connection loading a PostgreSQL board opened (to settle its config), for the first
    /// [`Board::open_store`] to take: one connection a command, not two.
    opened: Opened,
}

/// A store opened while loading a board, handed to its first [`Board::open_store`]; clones share it.
#[derive(Clone, Default)]
struct Opened(std::sync::Arc<std::sync::Mutex<Option<Store>>>);

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened")
    }
}

impl Board {
    /// `board 'B' has no profile 'P' (defined: ...)` when `assignee` is not a profile of the board: a card
    /// that will not be dispatched, which every front end warns about.
    pub fn unknown_profile(&self, assignee: Option<&str>) -> Option<String> {
        let name = assignee.filter(|name| !self.config.profiles.contains_key(*name))?;
        let known = self.config.profile_names().join(", ");
        Some(format!(
            "board '{}' has no profile '{name}' (defined: {})",
            self.slug,
            if known.is_empty() { "none" } else { &known }
        ))
    }

    pub fn toml_path(&self) -> PathBuf {
        self.dir.join("board.toml")
    }
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("kanban.db")
    }
    /// The secret that signs the board's notifications (made on first use, mode 0600).
    pub fn notify_key_path(&self) -> PathBuf {
        self.dir.join("notify.key")
    }
    pub fn workspaces_dir(&self) -> PathBuf {
        self.dir.join("workspaces")
    }
    pub fn attachments_dir(&self) -> PathBuf {
        self.dir.join("attachments")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// Every path that belongs to one card, named in this one place.
    pub fn card_files(&self, task_id: &str) -> CardFiles {
        let logs = self.logs_dir();
        CardFiles {
            log: logs.join(format!("{task_id}.log")),
            log_backup: logs.join(format!("{task_id}.log.1")),
            context: logs.join(format!("{task_id}.context.md")),
            attachments: self.attachments_dir().join(task_id),
            scratch: self.workspaces_dir().join(task_id),
        }
    }
    /// The durable record of one run's worker exit, written by its supervisor before the store is told
    /// (`<id>.run-<run>.exit` in the logs folder).
    pub fn exit_file(&self, task_id: &str, run_id: i64) -> PathBuf {
        self.logs_dir().join(format!("{task_id}.run-{run_id}.exit"))
    }
    pub fn name(&self) -> &str {
        self.config.board.name.as_deref().unwrap_or(&self.slug)
    }
    /// The file that names the board's PostgreSQL database, when it has one.
    pub fn database_path(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }
    pub fn open_store(&self) -> Result<Store, StoreError> {
        if let Some(store) = self.opened.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Ok(store);
        }
        match &self.database {
            Some(url) => Store::open_postgres(url, &self.slug),
            None => Store::open(&self.db_path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rule() {
        for ok in ["a", "default", "my-board_2", "0x", &"a".repeat(64)] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "A", "a b", "a/b", "..", &"a".repeat(65), "é"] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn processes_drawing_the_host_id_at_once_agree_and_never_read_a_half_written_file() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
            let ids: Vec<String> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8).map(|_| s.spawn(|| home.host_id().unwrap())).collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
            let files: Vec<_> =
                std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            assert!(files.iter().all(|f| !f.to_string_lossy().starts_with(".host-id")), "{files:?}");
        }
    }
}
