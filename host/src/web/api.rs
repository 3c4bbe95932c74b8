//! The routes under `/api/v1` (docs/api.md). Each one parses its request, calls the commands layer with the
//! arguments the CLI's command passes (`host/src/cli/cards.rs`), and answers with the document the CLI's
//! `--json` prints. Bodies are JSON objects with unknown keys refused; an empty body is `{}`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, App, blocking};
use crate::dispatch::{TickOptions, tick_handing_back};
use crate::lifecycle::Action;
use crate::model::Status;
use crate::ops::Desk;
use crate::ops::cards::{self, Acted, By};
use crate::ops::input as values;
use crate::store::{EditTask, ListSort, NewTask, TaskFilter};
use crate::views::{ActedView, BoardRow, CardPage};

type AppState = State<Arc<App>>;
type Body = Result<Bytes, BytesRejection>;
type Answer = Result<Response, ApiError>;

pub fn routes() -> Router<Arc<App>> {
    let card = "/api/v1/boards/{slug}/cards/{id}";
    Router::new()
        .route("/api/v1/session", get(session))
        .route("/api/v1/login", post(login))
        .route("/api/v1/boards", get(boards))
        .route("/api/v1/plugins", get(plugins))
        .route("/api/v1/boards/{slug}/cards", get(list).post(create))
        .route(card, get(show).patch(edit))
        .route(&format!("{card}/comments"), post(comment))
        .route(&format!("{card}/links"), post(link).delete(unlink))
        .route(&format!("{card}/attachments"), get(super::attachments::list).post(super::attachments::upload))
        .route(
            &format!("{card}/attachments/{{attachment}}"),
            get(super::attachments::download).delete(super::attachments::remove),
        )
        .route(&format!("{card}/runs"), get(runs))
        .route(&format!("{card}/log"), get(log))
        .route(&format!("{card}/{{action}}"), post(action))
        .route("/api/v1/boards/{slug}/stats", get(stats))
        .route("/api/v1/boards/{slug}/hosts", get(hosts))
        .route("/api/v1/boards/{slug}/events", get(events))
        .route("/api/v1/boards/{slug}/events/stream", get(super::events::stream))
        .route("/api/v1/boards/{slug}/dispatch", post(dispatch))
        .route("/api/v1/boards/{slug}/health", get(health))
        .route("/api/v1/boards/{slug}/diagnostics", get(findings).post(diagnose))
        .route(&format!("{card}/decompose"), post(decompose))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route (see docs/api.md)") })
}

fn json(status: StatusCode, value: impl serde::Serialize) -> Answer {
    let value = serde_json::to_value(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((status, Json(value)).into_response())
}

/// A request body as `T`: an empty body is `{}`; an error names the field at fault.
fn parse<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    let mut de = serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(m, _)| m).to_string();
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => ApiError::field(&path, message),
            serde_json::error::Category::Data => ApiError::bad_request(message),
            _ => ApiError::bad_request(format!("the body is not JSON: {inner}")),
        }
    })
}

/// The query string, or 400 naming the parameter at fault (`dry_run: provided string was not ...`).
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        let text = e.body_text();
        let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
        ApiError::bad_request(text)
    })
}

/// `GET /api/v1/session`: what a page of this server needs to act, the CSRF token first. Refused to a page
/// of another origin (and such a page could not read the answer anyway: no CORS header is ever sent).
async fn session(State(app): AppState, headers: HeaderMap) -> Answer {
    if app.guard.cross_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the session is only given to pages of this server",
        ));
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "csrf": app.guard.csrf,
            "read_only": app.guard.read_only,
            "board": app.only_board,
        }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

/// `POST /api/v1/login {"token"}`: on a server that requires a token, a page that knows it gets it back as
/// an `HttpOnly`, `SameSite=Strict` cookie (204), so the browser can send it (the event stream included).
/// A wrong token is 401; a server without a token has nothing to log in to (404).
async fn login(State(app): AppState, body: Body) -> Answer {
    let given: Login = parse(body)?;
    if !app.guard.has_token() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "this server requires no token"));
    }
    match app.guard.login(&given.token) {
        Some(cookie) => Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "that is not this server's token")),
    }
}

async fn boards(State(app): AppState) -> Answer {
    let rows = blocking(move || Ok(BoardRow::list(&app.home, app.only_board.as_deref())?)).await?;
    json(StatusCode::OK, rows)
}

/// One plugin of `GET plugins`: `kanban plugin list --json`'s row, the boards whose `board.toml` turns it on,
/// and where it is quarantined.
#[derive(serde::Serialize)]
struct PluginUse {
    #[serde(flatten)]
    entry: crate::policy::plugins::PluginEntry,
    boards: Vec<String>,
    quarantined: Vec<QuarantineRow>,
}

#[derive(serde::Serialize)]
struct QuarantineRow {
    board: String,
    since: i64,
    failures: i64,
    last_error: Option<String>,
}

async fn plugins(State(app): AppState) -> Answer {
    let list = blocking(move || {
        let installed = crate::policy::plugins::list(&app.home).map_err(anyhow::Error::from)?;
        let mut list: Vec<PluginUse> = crate::policy::plugins::with_builtins(installed)
            .into_iter()
            .map(|entry| PluginUse { entry, boards: Vec::new(), quarantined: Vec::new() })
            .collect();
        for row in BoardRow::list(&app.home, app.only_board.as_deref())? {
            let board = app.board(&row.slug)?;
            for spec in &board.config.policies {
                if let Some(p) = list.iter_mut().find(|p| p.entry.name == spec.plugin)
                    && !p.boards.contains(&row.slug)
                {
                    p.boards.push(row.slug.clone());
                }
            }
            for q in board.open_store()?.quarantined_policies()? {
                if let Some(p) = list.iter_mut().find(|p| p.entry.name == q.key.reference) {
                    p.quarantined.push(QuarantineRow {
                        board: row.slug.clone(),
                        since: q.since,
                        failures: q.failures,
                        last_error: q.last_error,
                    });
                }
            }
        }
        Ok(list)
    })
    .await?;
    json(StatusCode::OK, list)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    /// A profile, or `none` for unassigned cards.
    assignee: Option<String>,
    tenant: Option<String>,
    /// Text the card's id, title or body contains (any case).
    q: Option<String>,
    #[serde(default)]
    archived: bool,
    sort: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

/// Most cards one page of `GET cards` holds.
const MAX_PAGE: usize = 1000;

/// `GET cards`: the cards `kanban list` would print with the same filters, a page at a time.
async fn list(
    State(app): AppState,
    Path(slug): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::field(
                "status",
                format!("'{text}' is not a status (possible: {})", Status::names().join(", ")),
            )
        })?),
    };
    let sort = match q.sort.as_deref().unwrap_or("created") {
        "created" => ListSort::Created,
        "priority" => ListSort::Priority,
        "status" => ListSort::Status,
        "assignee" => ListSort::Assignee,
        "title" => ListSort::Title,
        "updated" => ListSort::Updated,
        other => {
            return Err(ApiError::field(
                "sort",
                format!(
                    "'{other}' is not a sort key (possible: created, priority, status, assignee, title, updated)"
                ),
            ));
        }
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::field("limit", format!("must be 1 to {MAX_PAGE}")));
    }
    let filter =
        TaskFilter { include_archived: q.archived, status, assignee: q.assignee, tenant: q.tenant, sort };
    let text = q.q.map(|t| t.to_lowercase()).filter(|t| !t.is_empty());
    let offset = q.offset;
    let (cards, total, children) = app
        .on_board(slug, move |desk| {
            let (mut cards, mut total) = (Vec::new(), 0usize);
            desk.store.for_each_task(&filter, |task| {
                let hit = text.as_deref().is_none_or(|t| {
                    task.id.contains(t)
                        || task.title.to_lowercase().contains(t)
                        || task.body.to_lowercase().contains(t)
                });
                if hit {
                    if total >= offset && cards.len() < limit {
                        cards.push(task);
                    }
                    total += 1;
                }
                Ok(())
            })?;
            let ids: Vec<String> = cards.iter().map(|c| c.id.clone()).collect();
            let children = desk.store.child_counts(&ids)?;
            Ok((cards, total, children))
        })
        .await?;
    let next_offset = (offset + cards.len() < total).then_some(offset + cards.len());
    json(
        StatusCode::OK,
        serde_json::json!({
            "cards": cards,
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": next_offset,
            // For each card of the page that has children: its children done, of all.
            "children": children
                .into_iter()
                .map(|(id, (done, total))| (id, serde_json::json!({ "done": done, "total": total })))
                .collect::<serde_json::Map<_, _>>(),
        }),
    )
}

/// `GET cards/{id}`: the `show --json` document.
async fn show(State(app): AppState, Path((slug, id)): Path<(String, String)>) -> Answer {
    let doc = app
        .on_board(slug, move |desk| {
            let page = CardPage::read(desk.store, &id)?;
            serde_json::to_value(page.view(desk.board)).map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    json(StatusCode::OK, doc)
}

/// A duration as `create --max-runtime` takes it: seconds, or `30s`, `5m`, `2h`, `1d`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Duration {
    Seconds(i64),
    Text(String),
}

/// `POST cards`: the options of `kanban create` (the keys of an import line, docs/cli.md "kanban import").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    #[serde(default)]
    body: String,
    assignee: Option<String>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    triage: bool,
    initial_status: Option<String>,
    tenant: Option<String>,
    workspace: Option<String>,
    branch: Option<String>,
    idempotency_key: Option<String>,
    max_runtime: Option<Duration>,
    max_retries: Option<i64>,
    #[serde(default)]
    goal: bool,
    goal_max_turns: Option<i64>,
    /// Who the card is from [default: `web`].
    created_by: Option<String>,
}

impl CreateBody {
    /// The card `kanban create` would build from the same options, with its usage checks.
    fn into_new_task(self) -> Result<NewTask, ApiError> {
        let workspace = match &self.workspace {
            Some(spec) => Some(values::parse_workspace(spec).map_err(|e| ApiError::field("workspace", e))?),
            None => None,
        };
        let max_runtime = match self.max_runtime {
            None => None,
            Some(Duration::Seconds(n)) => Some(n),
            Some(Duration::Text(t)) => {
                Some(values::parse_duration(&t).map_err(|e| ApiError::field("max_runtime", e))?)
            }
        };
        if self.max_retries.is_some_and(|n| n < 0) {
            return Err(ApiError::field("max_retries", "must be 0 or more"));
        }
        if self.goal_max_turns.is_some_and(|n| n < 1) {
            return Err(ApiError::field("goal_max_turns", "must be 1 or more"));
        }
        if self.goal_max_turns.is_some() && !self.goal {
            return Err(ApiError::field("goal_max_turns", "needs \"goal\": true"));
        }
        let initial_status = match self.initial_status.as_deref() {
            None => None,
            Some("running") => Some(Status::Running),
            Some("blocked") => Some(Status::Blocked),
            Some(other) => {
                return Err(ApiError::field(
                    "initial_status",
                    format!("'{other}' is not one of running, blocked"),
                ));
            }
        };
        if self.triage && initial_status.is_some() {
            return Err(ApiError::field("triage", "cannot be used with initial_status"));
        }
        Ok(NewTask {
            title: self.title,
            body: self.body,
            assignee: self.assignee,
            priority: self.priority,
            parents: self.parents,
            triage: self.triage,
            tenant: self.tenant,
            workspace_kind: workspace.as_ref().map(|w| w.kind),
            workspace_path: workspace.and_then(|w| w.path).map(|p| p.display().to_string()),
            branch_name: self.branch,
            idempotency_key: self.idempotency_key,
            max_runtime_seconds: max_runtime,
            max_retries: self.max_retries,
            goal_mode: self.goal,
            goal_max_turns: self.goal_max_turns,
            initial_status,
            created_by: Some(self.created_by.unwrap_or_else(|| "web".into())),
        })
    }
}

/// `POST cards`: 201 with the new card, or 200 with the card that already holds the idempotency key.
async fn create(State(app): AppState, Path(slug): Path<String>, body: Body) -> Answer {
    let new = parse::<CreateBody>(body)?.into_new_task()?;
    let (task, created) = app.on_board(slug, move |desk| Ok(cards::create(desk, new)?)).await?;
    json(if created { StatusCode::CREATED } else { StatusCode::OK }, task)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    title: Option<String>,
    body: Option<String>,
    priority: Option<i64>,
    #[serde(default)]
    reset_failures: bool,
}

/// `PATCH cards/{id}`: `kanban edit`; answers with the card.
async fn edit(State(app): AppState, Path((slug, id)): Path<(String, String)>, body: Body) -> Answer {
    let b: EditBody = parse(body)?;
    let edit =
        EditTask { title: b.title, body: b.body, priority: b.priority, reset_failures: b.reset_failures };
    let task = app.on_board(slug, move |desk| Ok(cards::edit(desk, &id, &edit)?)).await?;
    json(StatusCode::OK, task)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    text: String,
    author: Option<String>,
}

/// `POST cards/{id}/comments`: `kanban comment`; 201 with the comment.
async fn comment(State(app): AppState, Path((slug, id)): Path<(String, String)>, body: Body) -> Answer {
    let b: CommentBody = parse(body)?;
    let author = b.author.unwrap_or_else(|| "web".into());
    let comment =
        app.on_board(slug, move |desk| Ok(cards::comment(desk, &id, Some(&author), &b.text)?)).await?;
    json(StatusCode::CREATED, comment)
}

/// The other end of a link: `{"parent": ID}` (ID becomes a parent of the card) or `{"child": ID}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    parent: Option<String>,
    child: Option<String>,
}

impl LinkBody {
    /// (parent, child) for the card `id`.
    fn pair(self, id: String) -> Result<(String, String), ApiError> {
        match (self.parent, self.child) {
            (Some(parent), None) => Ok((parent, id)),
            (None, Some(child)) => Ok((id, child)),
            _ => Err(ApiError::bad_request("parent or child: give exactly one")),
        }
    }
}

/// `POST cards/{id}/links`: `kanban link`; answers with the card's parents and children.
async fn link(State(app): AppState, Path((slug, id)): Path<(String, String)>, body: Body) -> Answer {
    let (parent, child) = parse::<LinkBody>(body)?.pair(id.clone())?;
    let links = app.on_board(slug, move |desk| {
        cards::link(desk, &parent, &child)?;
        links_of(desk, &id)
    });
    json(StatusCode::OK, links.await?)
}

/// `DELETE cards/{id}/links?parent=ID` (or `?child=ID`): `kanban unlink`.
async fn unlink(
    State(app): AppState,
    Path((slug, id)): Path<(String, String)>,
    q: Result<Query<LinkBody>, QueryRejection>,
) -> Answer {
    let (parent, child) = query(q)?.pair(id.clone())?;
    let links = app.on_board(slug, move |desk| {
        cards::unlink(desk, &parent, &child)?;
        links_of(desk, &id)
    });
    json(StatusCode::OK, links.await?)
}

fn links_of(desk: &mut Desk, id: &str) -> Result<Value, ApiError> {
    let parents = desk.store.parents(id)?;
    let children = desk.store.children(id)?;
    Ok(serde_json::json!({ "parents": parents, "children": children }))
}

/// `GET cards/{id}/runs`: `kanban runs --json`.
async fn runs(State(app): AppState, Path((slug, id)): Path<(String, String)>) -> Answer {
    let runs = app
        .on_board(slug, move |desk| {
            desk.store.require_task(&id)?;
            Ok(desk.store.runs(&id)?)
        })
        .await?;
    json(StatusCode::OK, runs)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    tail: Option<u64>,
}

/// What `GET cards/{id}/log` sends at most (its last bytes).
const MAX_LOG: u64 = 1024 * 1024;

/// `GET cards/{id}/log?tail=BYTES`: `kanban log --tail`, as text; at most the last MiB. Empty while the card
/// has no log yet.
async fn log(
    State(app): AppState,
    Path((slug, id)): Path<(String, String)>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Answer {
    use std::io::{Read, Seek, SeekFrom};
    let tail = query(q)?.tail.unwrap_or(MAX_LOG).min(MAX_LOG);
    let text = app
        .on_board(slug, move |desk| {
            desk.store.require_task(&id)?;
            // The path comes from the card id the store just found, never from the request.
            let path = desk.board.card_files(&id).log;
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(ApiError::internal(format!("cannot read {}: {e}", path.display()))),
            };
            let read = |file: &mut std::fs::File| -> std::io::Result<Vec<u8>> {
                let len = file.metadata()?.len();
                file.seek(SeekFrom::Start(len.saturating_sub(tail)))?;
                let mut bytes = Vec::new();
                file.take(tail).read_to_end(&mut bytes)?;
                Ok(bytes)
            };
            read(&mut file).map_err(|e| ApiError::internal(format!("cannot read {}: {e}", path.display())))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// `POST cards/{id}/{action}`: a lifecycle action, as its CLI command does it; answers with what it did
/// (docs/api.md "Acted").
async fn action(
    State(app): AppState,
    Path((slug, id, action)): Path<(String, String, String)>,
    body: Body,
) -> Answer {
    let request = ActionRequest::parse(&action, body)?;
    let answer = app
        .on_board(slug, move |desk| {
            let (acted, warnings) = request.run(desk, &id)?;
            serde_json::to_value(ActedView::new(&acted, warnings))
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    json(StatusCode::OK, answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Assign {
    /// A profile, or `none`.
    profile: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    reason: Option<String>,
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    result: Option<String>,
    summary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reclaim {
    reason: Option<String>,
    run: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reassign {
    profile: String,
    #[serde(default)]
    reclaim: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Review {
    reviewer: Option<String>,
    summary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestChanges {
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    #[serde(default)]
    force: bool,
}

/// One action with its parsed body.
enum ActionRequest {
    Assign(Assign),
    Block(Block),
    Unblock(Reason),
    Schedule(Reason),
    Promote(Promote),
    Complete(Complete),
    Archive,
    Reclaim(Reclaim),
    Reassign(Reassign),
    Review(Review),
    RequestChanges(RequestChanges),
}

/// The actions `POST cards/{id}/{action}` knows.
const ACTIONS: &str = "assign, block, unblock, schedule, promote, complete, archive, reclaim, reassign, review, request-changes";

impl ActionRequest {
    fn parse(action: &str, body: Body) -> Result<ActionRequest, ApiError> {
        Ok(match action {
            "assign" => ActionRequest::Assign(parse(body)?),
            "block" => {
                let block: Block = parse(body)?;
                if let Some(kind) = &block.kind
                    && !matches!(kind.as_str(), "dependency" | "needs_input" | "capability" | "transient")
                {
                    return Err(ApiError::field(
                        "kind",
                        format!(
                            "'{kind}' is not a block kind (possible: dependency, needs_input, capability, transient)"
                        ),
                    ));
                }
                ActionRequest::Block(block)
            }
            "unblock" => ActionRequest::Unblock(parse(body)?),
            "schedule" => ActionRequest::Schedule(parse(body)?),
            "promote" => ActionRequest::Promote(parse(body)?),
            "complete" => ActionRequest::Complete(parse(body)?),
            "archive" => {
                parse::<Empty>(body)?;
                ActionRequest::Archive
            }
            "reclaim" => ActionRequest::Reclaim(parse(body)?),
            "reassign" => ActionRequest::Reassign(parse(body)?),
            "review" => ActionRequest::Review(parse(body)?),
            "request-changes" => ActionRequest::RequestChanges(parse(body)?),
            other => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no action '{other}' (actions: {ACTIONS}, plus comments and links)"),
                ));
            }
        })
    }

    /// Do it as the CLI command does, with the warnings the CLI prints.
    fn run(self, desk: &mut Desk, id: &str) -> Result<(Acted, Vec<String>), ApiError> {
        let board = desk.board;
        // The CLI's `kanban: warning:` lines; a pending stop is in the answer's `pending`.
        let warn = |who: Option<&str>| board.unknown_profile(who).into_iter().collect::<Vec<_>>();
        let acted = match self {
            ActionRequest::Assign(a) => {
                // A person's assignment through the web board (`kanban policy replay` reads `cli` and
                // `web` as a person's, any other source as a routing policy's).
                let action = Action::Assign { assignee: Some(a.profile), source: "web".into() };
                let acted = cards::act(desk, id, By::Operator, action)?;
                let warnings = warn(acted.task.assignee.as_deref());
                return Ok((acted, warnings));
            }
            ActionRequest::Block(b) => {
                cards::block(desk, id, By::Operator, b.reason.as_deref(), b.kind.as_deref())?
            }
            ActionRequest::Unblock(r) => {
                cards::act(desk, id, By::Operator, Action::Unblock { reason: r.reason })?
            }
            ActionRequest::Schedule(r) => {
                cards::act(desk, id, By::Operator, Action::Schedule { reason: r.reason })?
            }
            ActionRequest::Promote(p) => {
                cards::act(desk, id, By::Operator, Action::Promote { force: p.force })?
            }
            ActionRequest::Complete(c) => {
                let action = Action::Complete { result: c.result, summary: c.summary };
                cards::act(desk, id, By::Operator, action)?
            }
            ActionRequest::Archive => cards::act(desk, id, By::Operator, Action::Archive)?,
            ActionRequest::Reclaim(r) => cards::reclaim(desk, id, r.run, r.reason.as_deref())?,
            ActionRequest::Reassign(r) => {
                let acted = cards::reassign(desk, id, r.profile, r.reclaim)?;
                let warnings = warn(acted.task.assignee.as_deref());
                return Ok((acted, warnings));
            }
            ActionRequest::Review(r) => {
                let action = Action::Review { reviewer: r.reviewer, summary: r.summary };
                let acted = cards::act(desk, id, By::Operator, action)?;
                let reviewer = acted.task.reviewer.clone().or_else(|| board.config.review.reviewer.clone());
                let warnings = warn(reviewer.as_deref());
                return Ok((acted, warnings));
            }
            ActionRequest::RequestChanges(r) => {
                cards::act(desk, id, By::Operator, Action::RequestChanges { reason: r.reason })?
            }
        };
        Ok((acted, Vec::new()))
    }
}

/// `GET stats`: `kanban stats --json`.
async fn stats(State(app): AppState, Path(slug): Path<String>) -> Answer {
    let stats = app.on_board(slug, |desk| Ok(desk.store.stats()?)).await?;
    json(StatusCode::OK, stats)
}

/// `GET hosts`: `kanban hosts --json`.
async fn hosts(State(app): AppState, Path(slug): Path<String>) -> Answer {
    let hosts = app.on_board(slug, |desk| Ok(desk.store.hosts()?)).await?;
    json(StatusCode::OK, hosts)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<i64>,
    /// Only this card's events.
    card: Option<String>,
    limit: Option<usize>,
}

/// Most events one `GET events` returns, and how many when not told.
const MAX_EVENTS: usize = 10_000;
const DEFAULT_EVENTS: usize = 500;

/// One page of `GET events`.
#[derive(serde::Serialize)]
struct EventPage {
    events: Vec<crate::model::Event>,
    /// The `since` of the next page; `null` on the last one.
    next_since: Option<i64>,
}

/// `GET events?since=ID&card=ID&limit=N`: `kanban events --json` a page at a time, oldest first, with the
/// `since` of the next page. Only the page is read from the store.
async fn events(
    State(app): AppState,
    Path(slug): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(ApiError::field("limit", format!("must be 1 to {MAX_EVENTS}")));
    }
    let page = app
        .on_board(slug, move |desk| {
            let card = q.card.as_deref();
            // One more than asked for: whether there is a next page, without a second query.
            let mut events = desk.store.events_page(card, q.since.unwrap_or(0), limit + 1)?;
            // As `kanban events`: a card deleted with `archive --rm` keeps its events and is accepted.
            if let Some(card) = card
                && events.is_empty()
                && desk.store.events_page(Some(card), 0, 1)?.is_empty()
            {
                desk.store.require_task(card)?;
            }
            let more = events.len() > limit;
            events.truncate(limit);
            let next_since = if more { events.last().map(|e| e.id) } else { None };
            Ok(EventPage { events, next_since })
        })
        .await?;
    json(StatusCode::OK, page)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchQuery {
    #[serde(default)]
    dry_run: bool,
}

/// `POST dispatch`: one real tick of the board ("nudge"), as `kanban dispatch --json`; with `dry_run=true`,
/// `kanban dispatch --dry-run --json`. A tick that finds another dispatcher ticking answers with
/// `skipped_locked: true`, as the CLI does.
async fn dispatch(
    State(app): AppState,
    Path(slug): Path<String>,
    q: Result<Query<DispatchQuery>, QueryRejection>,
) -> Answer {
    let dry_run = query(q)?.dry_run;
    let report = blocking(move || {
        let board = app.board(&slug)?;
        let mut runtime = crate::policy::PolicyRuntime::new(&app.home);
        let (report, started) =
            tick_handing_back(&app.home, &board, &mut runtime, TickOptions { dry_run, wait: false })?;
        wait_in_background(started);
        Ok(report)
    })
    .await?;
    json(StatusCode::OK, report)
}

/// Wait for the supervisors a nudge started, each on a thread of its own, so none stays a zombie of the
/// server. Under `daemon --serve` the daemon's reaper may collect one first; that wait then fails and is
/// only logged.
fn wait_in_background(started: Vec<crate::dispatch::Started>) {
    for (task, mut child) in started {
        let spawned = std::thread::Builder::new().name(format!("wait-{task}")).spawn(move || {
            if let Err(e) = child.wait() {
                tracing::debug!(task = %task, error = %e, "a supervisor was reaped elsewhere");
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread to wait for a supervisor; it is reaped at exit");
        }
    }
}

/// `GET health`: the dispatcher's health strip (`ops::health`): hosts seen, running against the caps, and
/// the ready cards waiting with why.
async fn health(State(app): AppState, Path(slug): Path<String>) -> Answer {
    let health = app.on_board(slug, |desk| Ok(crate::ops::health::read(desk)?)).await?;
    json(StatusCode::OK, health)
}

/// `GET diagnostics`: the findings the latest diagnostics runs stored (`kanban diagnostics --json`'s shape,
/// without running a policy).
async fn findings(State(app): AppState, Path(slug): Path<String>) -> Answer {
    let (board, findings) =
        app.on_board(slug, |desk| Ok((desk.board.slug.clone(), desk.store.all_findings()?))).await?;
    json(StatusCode::OK, serde_json::json!({ "board": board, "findings": findings }))
}

/// `POST diagnostics`: `kanban diagnostics --json`: run the board's diagnostics over every card not
/// archived, store the findings and answer with them.
async fn diagnose(State(app): AppState, Path(slug): Path<String>, body: Body) -> Answer {
    parse::<Empty>(body)?;
    let home = app.home.clone();
    let (board, findings) = app
        .on_board(slug, move |desk| {
            let mut runtime = crate::policy::PolicyRuntime::new(&home);
            let findings = crate::ops::policies::diagnose(desk, &home, &mut runtime, None)?;
            Ok((desk.board.slug.clone(), findings))
        })
        .await?;
    json(StatusCode::OK, serde_json::json!({ "board": board, "findings": findings }))
}

/// `POST cards/{id}/decompose`: `kanban decompose ID --json`: the board's decomposition policy splits a
/// triage card (`children`), or leaves it in triage with why (`left`). A card not in triage is 409.
async fn decompose(State(app): AppState, Path((slug, id)): Path<(String, String)>, body: Body) -> Answer {
    parse::<Empty>(body)?;
    let home = app.home.clone();
    let result = app
        .on_board(slug, move |desk| {
            desk.store.require_task(&id)?;
            let mut runtime = crate::policy::PolicyRuntime::new(&home);
            let mut results = crate::ops::policies::decompose(desk, &home, &mut runtime, &[id])?;
            match results.pop() {
                Some(Ok(result)) => Ok(result),
                Some(Err(refusal)) => Err(ApiError::new(StatusCode::CONFLICT, refusal)),
                None => Err(ApiError::internal("decompose answered nothing")),
            }
        })
        .await?;
    json(StatusCode::OK, result)
}
