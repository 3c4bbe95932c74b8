//! `kanban serve`: the boards' HTTP API and live events. A front end like the CLI: it parses requests,
//! calls the commands layer ([`crate::ops`]) with the same arguments the CLI does, and renders the same
//! JSON documents ([`crate::views`], the records of [`crate::model`]). It never writes SQL and never
//! performs a side effect of its own; the store is synchronous, so every request's store work runs on the
//! blocking pool with a store opened for that request, and no connection is held across an await.
//!
//! - [`guard`]: who may ask what (Host check, bearer token, CSRF token, read-only mode).
//! - [`api`]: the routes under `/api/v1`; [`attachments`]: the streamed uploads and downloads.
//! - [`events`]: one poller per board that reads only new events and fans them out to SSE clients.
//! - [`metrics`]: `GET /metrics` in Prometheus text format.
//! - [`error`]: library errors to HTTP statuses, in one place.
//! - [`embedded`]: the server inside `kanban daemon --serve`, on a thread of its own.
//! - [`page`]: the web board (`/`, `/app.css`, `/app.js`), embedded static files.

mod api;
mod attachments;
mod embedded;
mod error;
mod events;
mod guard;
mod metrics;
mod page;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::board::{Board, BoardError, Home};
use crate::dispatch::daemon::TickStats;

pub use embedded::Embedded;
pub use error::ApiError;

/// The largest JSON request body.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// What `kanban serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Serve only this board; every board of the home when `None`.
    pub board: Option<String>,
    pub token_file: Option<PathBuf>,
    pub read_only: bool,
}

/// Everything a request may need, shared by all of them.
pub struct App {
    pub home: Home,
    pub only_board: Option<String>,
    pub host_id: String,
    pub guard: guard::Guard,
    pub feeds: events::Feeds,
    pub metrics: metrics::Metrics,
}

impl App {
    /// The board `slug`, if this server serves it and it exists (404 otherwise). Never creates a board, not
    /// even `default`: a request cannot make one appear.
    pub fn board(&self, slug: &str) -> Result<Board, ApiError> {
        let served = self.only_board.as_deref().is_none_or(|only| only == slug);
        if !served
            || crate::board::check_slug(slug).is_err()
            || !self.home.board_dir(slug).join("board.toml").is_file()
        {
            let known = match &self.only_board {
                Some(only) => only.clone(),
                None => self.home.board_slugs()?.join(", "),
            };
            let known = if known.is_empty() { "none".to_string() } else { known };
            return Err(BoardError::NotFound { slug: slug.to_string(), known }.into());
        }
        Ok(self.home.open_board(slug)?)
    }

    /// Run `work` on the blocking pool with board `slug` and a store opened for it.
    pub async fn on_board<T: Send + 'static>(
        self: &Arc<Self>,
        slug: String,
        work: impl FnOnce(&mut crate::ops::Desk) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let app = self.clone();
        blocking(move || {
            let board = app.board(&slug)?;
            let mut store = board.open_store()?;
            let mut desk = crate::ops::Desk::new(&board, &mut store, &app.host_id);
            work(&mut desk)
        })
        .await
    }
}

/// Run a short piece of blocking work from async code that cannot await (a constructor, a subscription)
/// on a thread of its own, outside the runtime: the store's PostgreSQL client runs a runtime of its own,
/// which may not be started from a thread that drives async tasks.
pub fn outside_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope.spawn(work).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Run synchronous work (the store, the file system) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal(format!("request failed: {e}")))?
}

/// Serve until SIGINT or SIGTERM. The first line on stdout is the URL (with the real port when asked for
/// port 0), so scripts and tests can read it.
pub fn serve(home: Home, options: ServeOptions) -> anyhow::Result<()> {
    // The CLI's rule for the board it would use (`--board`, else the current one): `default` is created on
    // first use, any other must exist. Requests never create a board.
    home.open_board(&home.pick_board(options.board.as_deref()))?;
    let listener = bind(options.listen)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ready = || eprintln!("kanban: serving until SIGINT or SIGTERM");
    rt.block_on(run(home, options, listener, None, ready, wait_for_stop_signal()))?;
    // In-flight blocking work (a store write) finishes; a stuck one does not keep the process alive.
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// A listening socket on `addr` (close-on-exec, non-blocking, a backlog for a burst of 1,000 clients).
/// Raises the process's open-file limit to its hard limit first: every client is a descriptor, and the
/// usual soft limit (1,024) would cap the server below 1,000 event streams.
fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use socket2::{Domain, Socket, Type};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
    }
    let bound = (|| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        std::io::Result::Ok(std::net::TcpListener::from(socket))
    })();
    bound.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Serve on `listener` until `stop` resolves: print the URL (and a generated token), call `ready`, then
/// answer requests. `ticks` are the daemon's, under `daemon --serve`.
async fn run(
    home: Home,
    options: ServeOptions,
    listener: std::net::TcpListener,
    ticks: Option<Arc<TickStats>>,
    ready: impl FnOnce(),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host_id = home.host_id()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let (guard, notice) = guard::Guard::new(&home, addr, options.token_file.as_deref(), options.read_only)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        only_board: options.board.clone(),
        host_id,
        guard,
        feeds: events::Feeds::new(home.clone(), stop_rx),
        metrics: metrics::Metrics::new(&home, options.board.as_deref(), ticks),
        home,
    });
    let which = options.board.as_deref().map(|b| format!("board {b}")).unwrap_or("every board".into());
    let only = if options.read_only { " (read-only)" } else { "" };
    // Written, not `println!`: a daemon whose stdout was closed goes on serving.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "http://{addr}/api/v1/ serving {which}{only}");
    if let Some(notice) = notice {
        let _ = writeln!(stdout, "{notice}");
    }
    let _ = stdout.flush();
    drop(stdout);
    ready();
    let router = router(app);
    let shutdown = async move {
        stop.await;
        // Ends the live streams, which would otherwise keep their connections open forever.
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut sigint), Ok(mut sigterm)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = sigint.recv() => tracing::info!("SIGINT; stopping"),
        _ = sigterm.recv() => tracing::info!("SIGTERM; stopping"),
    }
}

fn router(app: Arc<App>) -> Router {
    api::routes()
        .merge(page::routes())
        .route("/metrics", axum::routing::get(metrics::render))
        // The last layer runs first: count every request, refused ones included, then check it.
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard::check))
        .layer(axum::middleware::from_fn_with_state(app.clone(), metrics::count))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(app)
}
