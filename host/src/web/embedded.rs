//! `kanban daemon --serve`: the web server inside the daemon, on a thread of its own with its own runtime,
//! so the daemon's loop stays as it is (its ticks are synchronous) and a slow request never holds up a tick.
//! The daemon stops it when it stops, and hands its listening socket over to the new image when it
//! re-executes itself on an upgrade: the socket is kept open across the exec (its close-on-exec flag cleared
//! just before) and named in [`HANDOVER_ENV`], so the port stays the same (port 0 included) and a client
//! that connects during the restart waits in the socket's backlog instead of being refused.

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

use super::ServeOptions;
use crate::board::Home;
use crate::dispatch::daemon::TickStats;

/// The variable that passes the listening socket to the daemon's next image: `PID:FD`. Only a process
/// with that pid (the daemon itself, after `exec`) takes it; a child that inherited the variable ignores it.
pub const HANDOVER_ENV: &str = "KANBAN_SERVE_SOCKET";

/// How long stopping waits for requests in flight.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// The running server of `daemon --serve`.
pub struct Embedded {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Signalled (or dropped) when the server's thread is done.
    done: mpsc::Receiver<()>,
    /// A second handle on the listening socket, to pass on at a re-exec.
    socket: Option<std::net::TcpListener>,
}

impl Embedded {
    /// Bind (or take the socket the previous image handed over), print the URL as `kanban serve` does, and
    /// serve on a thread of its own until [`Embedded::stop`]. Fails, serving nothing, on a bad address or
    /// token file.
    pub fn start(home: &Home, options: ServeOptions, ticks: Arc<TickStats>) -> anyhow::Result<Embedded> {
        home.open_board(&home.pick_board(options.board.as_deref()))?;
        let listener = match inherited(options.listen) {
            Some(listener) => {
                tracing::info!("serving on the socket the previous image handed over");
                listener
            }
            None => super::bind(options.listen)?,
        };
        let socket = listener.try_clone()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<anyhow::Result<()>>(2);
        let (done_tx, done) = mpsc::channel();
        let home = home.clone();
        std::thread::Builder::new().name("web".into()).spawn(move || {
            let served = (|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let ready = {
                    let ready_tx = ready_tx.clone();
                    move || {
                        let _ = ready_tx.try_send(Ok(()));
                    }
                };
                let stop = async move {
                    let _ = stop_rx.await;
                };
                let served = rt.block_on(super::run(home, options, listener, Some(ticks), ready, stop));
                rt.shutdown_timeout(Duration::from_secs(5));
                served
            })();
            if let Err(e) = served {
                tracing::error!(error = %format!("{e:#}"), "the web server stopped");
                let _ = ready_tx.try_send(Err(e));
            }
            let _ = done_tx.send(());
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Embedded { stop: Some(stop_tx), done, socket: Some(socket) }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow::anyhow!("the web server stopped as it started")),
        }
    }

    /// Stop accepting, end the event streams, and wait (a while) for requests in flight.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            if self.done.recv_timeout(STOP_WAIT).is_err() {
                tracing::warn!("the web server did not stop within {STOP_WAIT:?}; leaving it");
            }
        }
    }

    /// Stop serving, but keep the listening socket open across the coming `exec`: returns the variable to
    /// set for the new image ([`HANDOVER_ENV`]).
    pub fn hand_over(mut self) -> anyhow::Result<(String, String)> {
        self.shut_down();
        let socket = self.socket.take().expect("the socket is kept until handed over");
        fcntl(&socket, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let fd = socket.into_raw_fd();
        Ok((HANDOVER_ENV.to_string(), format!("{}:{fd}", std::process::id())))
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The socket the previous image of this process handed over, if any and if it is on the address asked for
/// (any port when asked for port 0).
fn inherited(listen: SocketAddr) -> Option<std::net::TcpListener> {
    let value = std::env::var(HANDOVER_ENV).ok()?;
    let (pid, fd) = value.split_once(':')?;
    if pid.parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let fd: RawFd = fd.parse().ok()?;
    // SAFETY: only looks at the descriptor's flags; fails if it is not open.
    fcntl(unsafe { BorrowedFd::borrow_raw(fd) }, FcntlArg::F_GETFD).ok()?;
    // SAFETY: the descriptor is open, and it is this process's: its previous image (same pid) left it open
    // across the exec for this image, and nothing else here knows of it. Owned from now on.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let here = listener.local_addr().ok()?;
    if here.ip() != listen.ip() || (listen.port() != 0 && here.port() != listen.port()) {
        tracing::warn!(%here, %listen, "the handed-over socket is not on the address asked for; closing it");
        return None;
    }
    fcntl(&listener, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}
