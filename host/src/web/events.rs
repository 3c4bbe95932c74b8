//! Live events. One poller per board (started by its first client, ended when its last one leaves) reads
//! only the events newer than the last it saw, every [`POLL`] (on a PostgreSQL board, as soon as they are
//! pushed: [`crate::store::Store::wait_for_events`]), and broadcasts them to every client of that
//! board: a change made by anyone (the CLI, a worker, the daemon, another client) reaches the clients
//! within a second, and the board is never re-read. A resuming client reads what it missed from the store
//! [`PAGE`] events at a time, however many there are. A client that falls more than [`BACKLOG`] events
//! behind is dropped (the broadcast says it lagged); it reconnects with `Last-Event-ID` and reads what it
//! missed from the store, so a slow client never holds up the others.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::{ApiError, App, blocking};
use crate::board::Home;
use crate::model::Event;

/// How often a board's poller looks for new events.
pub const POLL: Duration = Duration::from_millis(200);
/// How many events a client may fall behind before it is dropped.
pub const BACKLOG: usize = 1024;
/// How many events a resuming client reads from the store at a time.
pub const PAGE: usize = 256;

type Senders = Arc<Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>>;

/// The pollers, one per board with clients.
pub struct Feeds {
    home: Home,
    /// The running pollers' channels. A poller removes its own, under this lock, when it finds no client
    /// left; a subscriber finds a channel (and joins it) or starts a poller, under the same lock.
    feeds: Senders,
    /// Flips to true when the server stops: every stream ends, so the graceful shutdown is not held open.
    stop: watch::Receiver<bool>,
}

impl Feeds {
    pub fn new(home: Home, stop: watch::Receiver<bool>) -> Feeds {
        Feeds { home, feeds: Arc::new(Mutex::new(HashMap::new())), stop }
    }

    /// Subscribe to board `slug`'s new events (those written after its poller started), starting the poller
    /// if the board has none.
    fn subscribe(&self, slug: &str) -> Result<broadcast::Receiver<Arc<Event>>, ApiError> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = feeds.get(slug) {
            return Ok(sender.subscribe());
        }
        let board = self.home.open_board(slug)?;
        let mut last = super::outside_runtime(|| board.open_store()?.last_event_id())?;
        let (sender, receiver) = broadcast::channel(BACKLOG);
        let out = sender.clone();
        let slug_owned = slug.to_string();
        let feeds_of_poller = self.feeds.clone();
        // A thread of its own, not the blocking pool: it lives as long as the board has clients and keeps
        // its store open between polls without ever holding it across an await.
        std::thread::Builder::new()
            .name(format!("events-{slug}"))
            .spawn(move || {
                let mut store: Option<crate::store::Store> = None;
                loop {
                    // SQLite is polled; a PostgreSQL board pushes its new events (this returns when it
                    // does, or after a while without any).
                    match store.as_mut().map(|s| s.wait_for_events(POLL)) {
                        None => std::thread::sleep(POLL),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(board = %slug_owned, error = %e, "cannot wait for new events; retrying");
                            store = None;
                            std::thread::sleep(POLL);
                        }
                    }
                    if out.receiver_count() == 0 {
                        // Checked again under the lock: a client may be joining right now.
                        let mut feeds = feeds_of_poller.lock().unwrap_or_else(|e| e.into_inner());
                        if out.receiver_count() == 0 {
                            if feeds.get(&slug_owned).is_some_and(|s| s.same_channel(&out)) {
                                feeds.remove(&slug_owned);
                            }
                            tracing::debug!(board = %slug_owned, "no client left; event poller stopped");
                            return;
                        }
                    }
                    // Reopened only while the board is there: opening would create a database elsewhere.
                    if store.is_none() && board.toml_path().is_file() {
                        store = board.open_store().ok();
                    }
                    let Some(open) = store.as_mut() else { continue };
                    // A page at a time, never a whole burst at once; pages until a short one, so a burst
                    // is sent in this poll.
                    loop {
                        match open.events_page(None, last, PAGE) {
                            Ok(events) => {
                                let full = events.len() == PAGE;
                                for event in events {
                                    last = event.id;
                                    // No receiver right now is fine: the next client reads the store first.
                                    let _ = out.send(Arc::new(event));
                                }
                                if !full {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(board = %slug_owned, error = %e, "cannot read new events; retrying");
                                store = None;
                                break;
                            }
                        }
                    }
                }
            })
            .map_err(|e| ApiError::internal(format!("cannot start the event poller: {e}")))?;
        feeds.insert(slug.to_string(), sender);
        Ok(receiver)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    since: Option<i64>,
}

/// `GET /api/v1/boards/{slug}/events/stream?since=ID`: Server-Sent Events, one per board event, `id:` the
/// event's id and `data:` the event as JSON (docs/cli.md "Event"). `Last-Event-ID` (sent by a reconnecting
/// browser) wins over `since`; with neither, only events from now on.
pub async fn stream(
    State(app): State<Arc<App>>,
    Path(slug): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::field("Last-Event-ID", "not an event id"))?,
        ),
        None => query.since,
    };
    // Subscribe before reading the backlog: an event written in between arrives twice at most, never
    // zero times, and the id filter below drops the repeat.
    let (feeds, board) = (app.clone(), slug.clone());
    let receiver = blocking(move || {
        feeds.board(&board)?;
        feeds.feeds.subscribe(&board)
    })
    .await?;
    // The missed events are read a page at a time as the client takes them (see `next_event`).
    let client = Some(Client::new(app.clone()));
    let state = StreamState {
        backlog: VecDeque::new(),
        store: resume.map(|_| (app.clone(), slug)),
        receiver,
        last: resume.unwrap_or(0),
        stop: app.feeds.stop.clone(),
        _client: client,
    };
    let stream = futures_util::stream::unfold(state, next_event);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct StreamState {
    /// Missed events read from the store, not sent yet.
    backlog: VecDeque<Event>,
    /// Where to read the next page of missed events, while there may be more (`None` once caught up).
    store: Option<(Arc<App>, String)>,
    receiver: broadcast::Receiver<Arc<Event>>,
    /// The id of the last event sent.
    last: i64,
    stop: watch::Receiver<bool>,
    /// Counted as a connected client while the stream lives (`None` in unit tests, which have no server).
    _client: Option<Client>,
}

async fn next_event(mut state: StreamState) -> Option<(Result<SseEvent, Infallible>, StreamState)> {
    if state.backlog.is_empty()
        && let Some((app, slug)) = state.store.clone()
    {
        let after = state.last;
        let page = app.on_board(slug, move |desk| Ok(desk.store.events_page(None, after, PAGE)?)).await;
        match page {
            Ok(page) => {
                if page.len() < PAGE {
                    state.store = None;
                }
                state.backlog.extend(page);
            }
            // The board went away or cannot be read: end the stream; the client retries.
            Err(_) => return None,
        }
    }
    if let Some(event) = state.backlog.pop_front() {
        state.last = event.id;
        return Some((Ok(sse_event(&event)), state));
    }
    loop {
        if *state.stop.borrow() {
            return None;
        }
        tokio::select! {
            received = state.receiver.recv() => match received {
                Ok(event) if event.id <= state.last => continue,
                Ok(event) => {
                    state.last = event.id;
                    return Some((Ok(sse_event(&event)), state));
                }
                // Lagged: drop the client; it resumes from its Last-Event-ID. Closed: the server stops.
                Err(_) => return None,
            },
            _ = state.stop.changed() => return None,
        }
    }
}

fn sse_event(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    SseEvent::default().id(event.id.to_string()).data(data)
}

/// One connected SSE client, counted for `/metrics` while its stream lives.
struct Client(Arc<App>);

impl Client {
    fn new(app: Arc<App>) -> Client {
        app.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
        Client(app)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> Arc<Event> {
        Arc::new(Event {
            id,
            task_id: None,
            run_id: None,
            kind: "commented".into(),
            payload: serde_json::json!({}),
            created_at: 0,
        })
    }

    fn state(receiver: broadcast::Receiver<Arc<Event>>, last: i64) -> (StreamState, watch::Sender<bool>) {
        let (stop_tx, stop) = watch::channel(false);
        let backlog = VecDeque::new();
        (StreamState { backlog, store: None, receiver, last, stop, _client: None }, stop_tx)
    }

    #[tokio::test]
    async fn repeats_are_skipped_and_a_lagging_client_is_dropped_without_holding_up_the_sender() {
        let (sender, receiver) = broadcast::channel(2);
        let (s, _stop) = state(receiver, 1);
        // Event 1 was already sent (from the backlog): skipped; 2 follows.
        sender.send(event(1)).unwrap();
        sender.send(event(2)).unwrap();
        let (_, s) = next_event(s).await.expect("event 2");
        assert_eq!(s.last, 2);
        // Three more than the channel holds, while the client reads nothing: the sender never waits, and the
        // client's next read ends its stream (it resumes with Last-Event-ID).
        for id in 3..=5 {
            sender.send(event(id)).unwrap();
        }
        assert!(next_event(s).await.is_none(), "a lagging client is dropped");
    }

    #[test]
    fn a_boards_poller_stops_when_its_last_client_leaves_and_starts_again_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
        home.create_board("b", None, None).unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let feeds = Feeds::new(home.clone(), stop);
        let polling = |f: &Feeds| f.feeds.lock().unwrap().contains_key("b");
        let wait_until = |what: &str, check: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !check() {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(POLL / 4);
            }
        };
        let first = feeds.subscribe("b").unwrap();
        let second = feeds.subscribe("b").unwrap();
        drop(first);
        std::thread::sleep(POLL * 3);
        assert!(polling(&feeds), "one client is left: the poller goes on");
        drop(second);
        wait_until("the poller stops once no client is left", &|| !polling(&feeds));
        // The next client starts a poller again, and it delivers new events.
        let mut third = feeds.subscribe("b").unwrap();
        assert!(polling(&feeds));
        let mut store = home.open_board("b").unwrap().open_store().unwrap();
        let new = crate::store::NewTask { title: "after".into(), ..Default::default() };
        let (task, _) = store.create_task(&new, 1).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let event = loop {
            if let Ok(event) = third.try_recv() {
                break event;
            }
            assert!(std::time::Instant::now() < deadline, "the new poller sends the new event");
            std::thread::sleep(POLL / 4);
        };
        assert_eq!(event.task_id.as_deref(), Some(task.id.as_str()));
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_server_stops() {
        let (_sender, receiver) = broadcast::channel::<Arc<Event>>(2);
        let (s, stop) = state(receiver, 0);
        stop.send(true).unwrap();
        assert!(next_event(s).await.is_none());
    }
}
