//! `kanban serve`: the real binary serving a temp home, spoken to over HTTP (ureq, and a raw socket where a
//! test needs a header ureq owns or a stream it reads line by line). Every route with its error codes, the
//! security rules (Host, token, CSRF, read-only, body limit) and the live event stream with resume.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// A running `kanban serve`, stopped (SIGTERM, then waited for) when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/api/v1/`
    api: String,
    addr: String,
    agent: ureq::Agent,
    /// The CSRF token of `GET /api/v1/session` (empty when the server requires a bearer token).
    csrf: String,
    token: Option<String>,
}

impl Server {
    fn start(k: &Kanban, extra: &[&str]) -> Server {
        Self::start_on(k, "127.0.0.1:0", extra).0
    }

    /// Start on `listen`; also returns the lines printed after the URL's (read until a blank read).
    fn start_on(k: &Kanban, listen: &str, extra: &[&str]) -> (Server, BufReader<std::process::ChildStdout>) {
        let mut args = vec!["serve", "--listen", listen];
        args.extend_from_slice(extra);
        let mut child =
            k.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn serve");
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut first).expect("read the URL");
        let api =
            first.split_whitespace().next().unwrap_or_else(|| panic!("no URL in {first:?}")).to_string();
        assert!(api.starts_with("http://") && api.ends_with("/api/v1/"), "{first}");
        let port = api.trim_end_matches("/api/v1/").rsplit(':').next().unwrap().to_string();
        let addr = format!("127.0.0.1:{port}");
        let api = format!("http://{addr}/api/v1/");
        let agent = http_agent();
        let mut server = Server { child, api, addr, agent, csrf: String::new(), token: None };
        let (status, session) = server.get("session");
        if status == 200 {
            server.csrf = session["csrf"].as_str().expect("csrf").to_string();
        }
        (server, out)
    }

    fn with_token(mut self, token: &str) -> Server {
        self.token = Some(token.to_string());
        self
    }

    /// `path` under `/api/v1/`, or from the root when it starts with `/`.
    fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("http://{}{path}", self.addr)
        } else {
            format!("{}{path}", self.api)
        }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut response = response.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("read body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        Self::answer(self.auth(self.agent.get(self.url(path))).call())
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = self.auth(self.agent.get(self.url(path))).call().expect("HTTP request");
        (response.status().as_u16(), response.body_mut().read_to_string().expect("read body"))
    }

    /// A state-changing request with the CSRF token.
    fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send_raw(method, path, &body.to_string(), Some(&self.csrf))
    }

    fn send_raw(&self, method: &str, path: &str, body: &str, csrf: Option<&str>) -> (u16, Value) {
        let url = self.url(path);
        let request = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            other => panic!("no body for {other}"),
        };
        let mut request = self.auth(request).header("Content-Type", "application/json");
        if let Some(csrf) = csrf {
            request = request.header("X-Kanban-CSRF", csrf);
        }
        Self::answer(request.send(body))
    }

    /// POST raw bytes (an upload), with the CSRF token.
    fn upload(&self, path: &str, bytes: &[u8]) -> (u16, Value) {
        let request = self.auth(self.agent.post(self.url(path))).header("X-Kanban-CSRF", &self.csrf);
        Self::answer(request.send(bytes))
    }

    fn get_bytes(&self, path: &str) -> (u16, Vec<u8>, Option<String>) {
        let mut response = self.auth(self.agent.get(self.url(path))).call().expect("HTTP request");
        let disposition =
            response.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_string());
        let status = response.status().as_u16();
        let bytes = response.body_mut().with_config().limit(64 << 20).read_to_vec().expect("read body");
        (status, bytes, disposition)
    }

    fn delete(&self, path: &str) -> (u16, Value) {
        Self::answer(self.auth(self.agent.delete(self.url(path))).header("X-Kanban-CSRF", &self.csrf).call())
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, &body)
    }

    /// A raw HTTP/1.1 GET with exactly these headers (ureq always sends its own Host).
    fn raw_get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let path = if path.starts_with('/') { path.to_string() } else { format!("/api/v1/{path}") };
        let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }

    /// Open the board's event stream with extra headers; events are read with [`Stream::next_event`].
    fn stream(&self, query: &str, headers: &[(&str, &str)]) -> Stream {
        Stream(Sse::open(&self.addr, &format!("/api/v1/boards/default/events/stream{query}"), headers))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A board's event stream; events come as (id, data).
struct Stream(Sse);

impl Stream {
    /// The next event's (id, data), waiting at most `limit`.
    fn next_event(&mut self, limit: Duration) -> Option<(i64, Value)> {
        self.0.next_event(limit).map(|(id, data)| (id.expect("an id before the data"), data))
    }
}

/// The error message the CLI prints for `args`, without `kanban: `.
fn cli_error(k: &Kanban, args: &[&str]) -> String {
    let stderr = k.fails(args, 1);
    stderr.trim_end().strip_prefix("kanban: ").unwrap_or(&stderr).to_string()
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or_else(|| panic!("no error in {v}"))
}

#[test]
fn serve_prints_its_url_lists_boards_and_refuses_unknown_ones() {
    let k = Kanban::new();
    k.create("one", &[]);
    k.ok(&["board", "create", "other"]);
    let all = Server::start(&k, &[]);
    let (status, boards) = all.get("boards");
    assert_eq!(status, 200);
    let slugs: Vec<&str> = boards.as_array().unwrap().iter().map(|b| b["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["default", "other"]);
    // The same shape as `board list --json`.
    assert_eq!(boards, k.json(&["board", "list", "--json"]));
    let (status, cards) = all.get("boards/other/cards");
    assert_eq!((status, cards["total"].as_i64()), (200, Some(0)));
    let (status, body) = all.get("boards/nope/cards");
    assert_eq!(status, 404);
    assert!(error(&body).contains("board 'nope' not found"), "{body}");
    assert_eq!(all.get("boards/default/nothing-here").0, 404);

    let one = Server::start(&k, &["--board", "other"]);
    let (_, boards) = one.get("boards");
    assert_eq!(boards.as_array().unwrap().len(), 1);
    assert_eq!(one.get("boards/default/cards").0, 404, "a server of one board serves no other");
}

#[test]
fn cards_are_created_listed_shown_and_edited_as_the_cli_does() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let parent = k.create("parent", &[]);
    let (status, card) = s.post(
        "boards/default/cards",
        json!({"title": "from the web", "body": "text", "assignee": "coder", "priority": 5, "parents": [parent],
               "workspace": "scratch", "max_runtime": "5m", "max_retries": 2, "goal": true, "goal_max_turns": 3,
               "idempotency_key": "k1", "tenant": "acme"}),
    );
    assert_eq!(status, 201, "{card}");
    let id = card["id"].as_str().unwrap().to_string();
    // The same document as `show --json` for the card.
    assert_eq!(card, k.task(&id));
    assert_eq!(
        (card["status"].as_str(), card["max_runtime_seconds"].as_i64(), card["goal_max_turns"].as_i64()),
        (Some("todo"), Some(300), Some(3))
    );
    // The idempotency key returns the same card, 200 not 201.
    let (status, again) = s.post("boards/default/cards", json!({"title": "again", "idempotency_key": "k1"}));
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));

    // 400 names the field.
    for (body, field) in [
        (json!({"title": "x", "priority": "high"}), "priority"),
        (json!({"title": "x", "workspace": "nowhere"}), "workspace"),
        (json!({"title": "x", "max_runtime": "soon"}), "max_runtime"),
        (json!({"title": "x", "goal_max_turns": 2}), "goal_max_turns"),
        (json!({"title": "x", "colour": "red"}), "colour"),
        (json!({"body": "no title"}), "title"),
    ] {
        let (status, v) = s.post("boards/default/cards", body.clone());
        assert_eq!(status, 400, "{body} -> {v}");
        assert!(error(&v).contains(field), "{body} -> {v}");
    }
    let (status, v) = s.send_raw("POST", "boards/default/cards", "{not json", Some(&s.csrf));
    assert_eq!(status, 400, "{v}");
    // A refusal of the store: a blank title, with the CLI's message.
    let (status, v) = s.post("boards/default/cards", json!({"title": "  "}));
    assert_eq!(status, 400);
    assert_eq!(error(&v), cli_error_code(&k, &["create", "  "], 2));

    // Show: the `show --json` document; 404 for an unknown card.
    let (status, shown) = s.get(&format!("boards/default/cards/{id}"));
    assert_eq!(status, 200);
    assert_eq!(shown, k.show(&id));
    let (status, v) = s.get("boards/default/cards/t_00000000");
    assert_eq!(status, 404);
    assert_eq!(error(&v), cli_error(&k, &["show", "t_00000000"]));

    // Edit.
    let (status, edited) =
        s.send("PATCH", &format!("boards/default/cards/{id}"), &json!({"title": "renamed", "priority": 9}));
    assert_eq!(status, 200, "{edited}");
    assert_eq!((edited["title"].as_str(), edited["priority"].as_i64()), (Some("renamed"), Some(9)));
    assert_eq!(k.task(&id)["title"], "renamed");
    let (status, v) = s.send("PATCH", &format!("boards/default/cards/{id}"), &json!({"priority": []}));
    assert_eq!(status, 400);
    assert!(error(&v).starts_with("priority:"), "{v}");

    // List: filters and paging.
    for n in 0..3 {
        k.create(&format!("bulk {n}"), &["--assignee", "writer"]);
    }
    let (_, page) = s.get("boards/default/cards?limit=2");
    assert_eq!((page["total"].as_i64(), page["cards"].as_array().unwrap().len()), (Some(5), 2));
    assert_eq!(page["next_offset"].as_i64(), Some(2));
    let (_, last) = s.get("boards/default/cards?limit=2&offset=4");
    assert_eq!((last["cards"].as_array().unwrap().len(), last["next_offset"].clone()), (1, Value::Null));
    let all: Vec<Value> = k.json(&["list", "--json"]).as_array().unwrap().clone();
    let (_, whole) = s.get("boards/default/cards");
    assert_eq!(whole["cards"].as_array().unwrap(), &all, "the same cards in the same order as `list --json`");
    let (_, writers) = s.get("boards/default/cards?assignee=writer");
    assert_eq!(writers["total"].as_i64(), Some(3));
    let (_, todo) = s.get("boards/default/cards?status=todo");
    assert_eq!(todo["cards"][0]["id"].as_str(), Some(id.as_str()));
    let (_, found) = s.get("boards/default/cards?q=RENAMED");
    assert_eq!(found["total"].as_i64(), Some(1));
    for (query, field) in
        [("status=nope", "status"), ("limit=0", "limit"), ("limit=x", "limit"), ("sort=size", "sort")]
    {
        let (status, v) = s.get(&format!("boards/default/cards?{query}"));
        assert_eq!(status, 400, "{query}: {v}");
        assert!(error(&v).contains(field), "{query}: {v}");
    }
    k.ok(&["archive", &parent]);
    let (_, without) = s.get("boards/default/cards");
    let (_, with) = s.get("boards/default/cards?archived=true");
    assert_eq!((without["total"].as_i64(), with["total"].as_i64()), (Some(4), Some(5)));
}

/// The CLI's message for a failure with exit `code`, without `kanban: `.
fn cli_error_code(k: &Kanban, args: &[&str], code: i32) -> String {
    let stderr = k.fails(args, code);
    stderr.trim_end().strip_prefix("kanban: ").unwrap_or(&stderr).to_string()
}

#[test]
fn comments_links_runs_log_stats_events_and_plugins() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let a = k.create("a", &[]);
    let b = k.create("b", &[]);

    let (status, comment) =
        s.post(&format!("boards/default/cards/{a}/comments"), json!({"text": "hello", "author": "ann"}));
    assert_eq!(status, 201, "{comment}");
    assert_eq!(k.show(&a)["comments"][0], comment);
    let (status, v) = s.post(&format!("boards/default/cards/{a}/comments"), json!({}));
    assert_eq!(status, 400);
    assert!(error(&v).contains("text"), "{v}");
    assert_eq!(s.post("boards/default/cards/t_00000000/comments", json!({"text": "x"})).0, 404);

    let (status, links) = s.post(&format!("boards/default/cards/{b}/links"), json!({"parent": a}));
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["parents"][0]["id"].as_str(), Some(a.as_str()));
    assert_eq!(k.show(&b)["parents"][0]["id"].as_str(), Some(a.as_str()));
    // A cycle is refused with the CLI's message.
    let (status, v) = s.post(&format!("boards/default/cards/{b}/links"), json!({"child": a}));
    assert_eq!(status, 409, "{v}");
    assert_eq!(error(&v), cli_error(&k, &["link", &b, &a]));
    assert_eq!(s.post(&format!("boards/default/cards/{b}/links"), json!({"parent": a, "child": a})).0, 400);
    let (status, links) = s.delete(&format!("boards/default/cards/{b}/links?parent={a}"));
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["parents"], json!([]));

    let (status, runs) = s.get(&format!("boards/default/cards/{a}/runs"));
    assert_eq!((status, runs), (200, json!([])));
    assert_eq!(s.get("boards/default/cards/t_00000000/runs").0, 404);
    std::fs::create_dir_all(k.board_dir("default").join("logs")).unwrap();
    let (status, log) = s.get_text(&format!("boards/default/cards/{a}/log"));
    assert_eq!((status, log.as_str()), (200, ""), "no log yet is an empty log");
    assert_eq!(s.get("boards/default/cards/t_00000000/log").0, 404);
    let log = k.board_dir("default").join("logs").join(format!("{a}.log"));
    std::fs::write(&log, "first line\nlast line\n").unwrap();
    assert_eq!(s.get_text(&format!("boards/default/cards/{a}/log")).1, "first line\nlast line\n");
    let (status, tail) = s.get_text(&format!("boards/default/cards/{a}/log?tail=10"));
    assert_eq!((status, tail), (200, k.ok(&["log", &a, "--tail", "10"])));

    let (status, stats) = s.get("boards/default/stats");
    assert_eq!(status, 200);
    assert_eq!(stats, k.json(&["stats", "--json"]));

    let (status, events) = s.get("boards/default/events?since=2");
    assert_eq!(status, 200);
    assert_eq!(events["events"].as_array().unwrap(), &k.json_lines(&["events", "--since", "2", "--json"]));
    assert_eq!(events["next_since"], Value::Null, "one page holds them all");
    let (_, mine) = s.get(&format!("boards/default/events?card={a}&limit=1"));
    assert_eq!(mine["events"].as_array().unwrap().len(), 1);
    assert_eq!(mine["next_since"], mine["events"][0]["id"], "{mine}");
    assert_eq!(s.get("boards/default/events?card=t_00000000").0, 404);

    let (status, mut plugins) = s.get("plugins");
    assert_eq!(status, 200);
    // `plugin list --json`'s rows, each with the boards that turn it on and where it is quarantined.
    for p in plugins.as_array_mut().unwrap() {
        let p = p.as_object_mut().unwrap();
        assert_eq!(
            (p.remove("boards"), p.remove("quarantined")),
            (Some(json!([])), Some(json!([]))),
            "{p:?}"
        );
    }
    assert_eq!(plugins, k.json(&["plugin", "list", "--json"]));
}

/// The waiting reasons of `GET health`, as {why: [card ids]}.
fn waiting(health: &Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for w in health["waiting"].as_array().unwrap() {
        let cards = strings(&w["cards"]);
        assert_eq!(w["count"].as_u64(), Some(cards.len() as u64), "{w}");
        out.insert(w["why"].as_str().unwrap().to_string(), cards);
    }
    out
}

/// A card whose profile requires labels no live host has waits as `no_host`, until a host with them ticks;
/// the hosts carry their labels and capacity.
#[test]
fn health_names_cards_no_live_host_can_run() {
    let f = Fleet::new();
    let k = &f.k;
    let sleeper = f.script("sleep.sh", "sleep 30");
    f.write_board(&format!("{}requires = [\"gpu\"]\n", f.profile("trainer", &sleeper, &[])));
    let s = Server::start(k, &[]);
    let id = k.create("train", &["--assignee", "trainer"]);
    k.ok(&["dispatch", "--dry-run"]);
    let (status, health) = s.get("boards/default/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(waiting(&health), [("no_host".to_string(), vec![id.clone()])].into(), "{health}");
    assert_eq!(
        (health["hosts"][0]["labels"].clone(), health["hosts"][0]["running"].clone()),
        (json!([]), json!(0))
    );

    std::fs::write(k.home().join("config.toml"), "[host]\nlabels = [\"gpu\"]\nmax_workers = 2\n").unwrap();
    k.ok(&["dispatch", "--dry-run"]);
    let (_, health) = s.get("boards/default/health");
    assert_eq!(waiting(&health), [("next_tick".to_string(), vec![id])].into(), "{health}");
    assert_eq!(health["hosts"][0]["labels"], json!(["gpu"]), "{health}");
    assert_eq!(health["hosts"][0]["max_workers"], 2, "{health}");
    let (status, hosts) = s.get("boards/default/hosts");
    assert_eq!((status, &hosts), (200, &k.json(&["hosts", "--json"])));
    assert_eq!(hosts, health["hosts"]);
}

#[test]
fn health_says_who_ticked_last_and_why_each_ready_card_waits() {
    let f = Fleet::new();
    let k = &f.k;
    k.ok(&["plugin", "install", hold_guard_plugin().to_str().unwrap(), "--name", "hold-guard"]);
    let sleeper = f.script("sleep.sh", "sleep 60");
    f.write_board(&format!(
        "{}max_in_progress = 1\n\n[[policies]]\nkind = \"respawn-guard\"\nplugin = \"hold-guard\"\n[policies.config]\nmarker = \"[hold]\"\n",
        f.profile("coder", &sleeper, &[])
    ));
    let s = Server::start(k, &[]);
    let held = k.create("ship it [hold]", &["--assignee", "coder", "--priority", "5"]);
    let first = k.create("first", &["--assignee", "coder"]);
    let second = k.create("second", &["--assignee", "coder"]);
    let nobody = k.create("nobody's", &[]);
    let ghost = k.create("ghost's", &["--assignee", "ghost"]);

    let (status, health) = s.get("boards/default/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["hosts"], json!([]), "no tick yet");
    assert_eq!((health["running"].as_u64(), health["max_in_progress"].as_u64()), (Some(0), Some(8)));
    assert_eq!(health["ready"], 5);
    let want = [
        ("next_tick", vec![held.clone(), first.clone(), second.clone()]),
        ("unassigned", vec![nobody.clone()]),
        ("unknown_profile", vec![ghost.clone()]),
    ];
    assert_eq!(waiting(&health), want.iter().map(|(w, c)| (w.to_string(), c.clone())).collect());

    // A real tick: the guard holds the [hold] card, `first` runs, `second` waits for coder's one slot.
    let report = f.dispatch(&[]);
    assert_eq!(report["spawned"][0]["task_id"], first.as_str(), "{report}");
    let (_, health) = s.get("boards/default/health");
    let host = &health["hosts"][0];
    assert_eq!(host["id"].as_str().unwrap().len(), 18, "{health}");
    assert!((k.now() - host["last_seen"].as_i64().unwrap()).abs() < 60, "{health}");
    assert_eq!(health["running"], 1);
    assert_eq!(health["profiles"], json!([{"profile": "coder", "running": 1, "cap": 1, "ready": 2}]));
    let want = [
        ("guarded", vec![held.clone()]),
        ("profile_capped", vec![second.clone()]),
        ("unassigned", vec![nobody.clone()]),
        ("unknown_profile", vec![ghost.clone()]),
    ];
    assert_eq!(waiting(&health), want.iter().map(|(w, c)| (w.to_string(), c.clone())).collect());

    // A pause holds everything of its profile, first.
    k.ok(&["pause", "--profile", "coder", "--reason", "lunch"]);
    let (_, health) = s.get("boards/default/health");
    assert_eq!(health["pauses"][0]["profile"], "coder", "{health}");
    assert_eq!(waiting(&health)["paused"], vec![held.clone(), second.clone()]);
    assert_eq!(s.get("boards/nope/health").0, 404);

    // The plugins view: which boards turn a plugin on.
    let (_, plugins) = s.get("plugins");
    let hold = plugins.as_array().unwrap().iter().find(|p| p["name"] == "hold-guard").expect("hold-guard");
    assert_eq!((&hold["boards"], &hold["quarantined"]), (&json!(["default"]), &json!([])), "{hold}");
}

#[test]
fn diagnostics_are_read_and_run_decompose_splits_triage_and_tiles_count_children() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let (status, stored) = s.get("boards/default/diagnostics");
    assert_eq!((status, stored), (200, json!({"board": "default", "findings": []})));
    k.ok(&["pause", "--reason", "freeze"]);
    let (status, ran) = s.post("boards/default/diagnostics", json!({}));
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["findings"][0]["rule"], "board-paused", "{ran}");
    assert_eq!(ran, k.json(&["diagnostics", "--json"]), "the same run as the CLI's");
    assert_eq!(s.get("boards/default/diagnostics").1, ran, "stored, read back without a run");
    assert_eq!(s.post("boards/default/diagnostics", json!({"x": 1})).0, 400);

    let parent = k.create("steps", &["--triage", "--body=- [ ] one\n- [ ] two\n"]);
    let plain = k.create("plain", &[]);
    let (status, split) = s.post(&format!("boards/default/cards/{parent}/decompose"), json!({}));
    assert_eq!(status, 200, "{split}");
    let children = strings(&split["children"]);
    assert_eq!(children.len(), 2, "{split}");
    let (status, v) = s.post(&format!("boards/default/cards/{plain}/decompose"), json!({}));
    assert_eq!(status, 409, "{v}");
    assert!(error(&v).contains("only triage cards are decomposed"), "{v}");
    assert_eq!(s.post("boards/default/cards/t_00000000/decompose", json!({})).0, 404);

    // The list carries "N/M children done" for the cards of its page that have children (cards that wait
    // on them: each part of the split is a parent of the card it was split from).
    let kid = k.create("kid", &["--parent", &plain]);
    k.create("kid 2", &["--parent", &plain]);
    let (_, page) = s.get("boards/default/cards?limit=1000");
    let mut want = serde_json::Map::new();
    want.insert(plain.clone(), json!({"done": 0, "total": 2}));
    for part in &children {
        want.insert(part.clone(), json!({"done": 0, "total": 1}));
    }
    assert_eq!(page["children"], Value::Object(want), "{page}");
    for card in [&plain, &kid] {
        let (status, done) = s.post(&format!("boards/default/cards/{card}/complete"), json!({}));
        assert_eq!(status, 200, "{done}");
    }
    let (_, page) = s.get("boards/default/cards?status=done");
    let mut want = serde_json::Map::new();
    want.insert(plain.clone(), json!({"done": 1, "total": 2}));
    assert_eq!(page["children"], Value::Object(want), "only the page's cards: {page}");
}

#[test]
fn actions_move_cards_and_refusals_carry_the_cli_message() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let id = k.create("card", &[]);
    let act = |action: &str, body: Value| s.post(&format!("boards/default/cards/{id}/{action}"), body);

    let (status, v) = act("assign", json!({"profile": "ghost"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["task"]["assignee"], "ghost");
    assert!(v["warnings"][0].as_str().unwrap().contains("has no profile 'ghost'"), "{v}");
    let (status, v) = act("block", json!({"reason": "waiting", "kind": "needs_input"}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("blocked")), "{v}");
    assert_eq!(act("block", json!({"kind": "sometimes"})).0, 400);
    let (status, v) = act("unblock", json!({}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("ready")), "{v}");
    let (status, v) = act("schedule", json!({"reason": "later"}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("scheduled")), "{v}");
    let (status, v) = act("promote", json!({}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("ready")), "{v}");
    let (status, v) = act("reassign", json!({"profile": "writer"}));
    assert_eq!((status, v["task"]["assignee"].as_str()), (200, Some("writer")), "{v}");
    let (status, v) = act("review", json!({"summary": "look"}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("review")), "{v}");
    let (status, v) = act("request-changes", json!({"reason": "not yet"}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("ready")), "{v}");
    assert_eq!(act("request-changes", json!({})).0, 400, "reason is required");

    // 409: the CLI's refusal, word for word.
    let (status, v) = act("reclaim", json!({}));
    assert_eq!(status, 409, "{v}");
    assert_eq!(error(&v), cli_error(&k, &["reclaim", &id]));
    let (status, v) = act("request-changes", json!({"reason": "again"}));
    assert_eq!(status, 409, "{v}");
    assert_eq!(error(&v), cli_error(&k, &["request-changes", &id, "again"]));

    let (status, v) = act("complete", json!({"result": "shipped"}));
    assert_eq!(
        (status, v["task"]["status"].as_str(), v["task"]["result"].as_str()),
        (200, Some("done"), Some("shipped"))
    );
    let (status, v) = act("archive", json!({}));
    assert_eq!((status, v["task"]["status"].as_str()), (200, Some("archived")), "{v}");
    assert_eq!(v["stopped_worker"], false);
    assert_eq!(act("archive", json!({"rm": true})).0, 400, "unknown keys are refused");
    let (status, v) = act("fly", json!({}));
    assert_eq!(status, 404);
    assert!(error(&v).contains("no action 'fly'"), "{v}");
    assert_eq!(s.post("boards/default/cards/t_00000000/complete", json!({})).0, 404);

    // The dispatcher's dry run changes nothing (the real tick: `a_nudge_ticks_...`).
    let ready = k.create("ready one", &[]);
    let (status, report) = s.post("boards/default/dispatch?dry_run=true", json!({}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report, k.json(&["dispatch", "--dry-run", "--json"]));
    assert_eq!(k.status(&ready), "ready");
    let (status, v) = s.post("boards/default/dispatch?dry_run=maybe", json!({}));
    assert_eq!(status, 400);
    assert!(error(&v).starts_with("dry_run: "), "the parameter at fault comes first: {v}");
}

/// The processes whose parent is `pid` and which have exited but were not waited for.
fn zombies_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: the comm may hold spaces, so read after its closing parenthesis.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            out.push(stat);
        }
    }
    out
}

/// "Nudge": `POST dispatch` runs one real tick, the CLI's report; the worker it starts finishes its card, and
/// the server waits for the supervisor it started (no zombie is left behind a long-lived server).
#[test]
fn a_nudge_ticks_the_board_for_real_and_leaves_no_zombie() {
    let f = Fleet::new();
    let k = &f.k;
    let worker =
        f.script("worker.sh", r#""$KANBAN_BIN" complete "$KANBAN_TASK" --result "nudged" > /dev/null"#);
    f.write_board(&f.profile("coder", &worker, &[]));
    let s = Server::start(k, &[]);
    let id = k.create("nudge me", &["--assignee", "coder"]);

    let (status, report) = s.post("boards/default/dispatch", json!({}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dry_run"], false, "{report}");
    assert_eq!(report["spawned"][0]["task_id"], id.as_str(), "{report}");
    assert!(report["spawned"][0]["run_id"].is_i64(), "a real claim opens a run: {report}");
    wait_for("the nudged worker to complete its card", || k.status(&id) == "done");
    assert_eq!(k.task(&id)["result"], "nudged");
    let server = s.child.id();
    wait_for("the server to wait for the supervisor it started", || zombies_of(server).is_empty());

    // A second nudge finds nothing to start; in read-only mode a nudge is refused like every mutation.
    let (status, report) = s.post("boards/default/dispatch", json!({}));
    assert_eq!((status, report["spawned"].as_array().map(Vec::len)), (200, Some(0)), "{report}");
    drop(s);
    let watcher = Server::start(k, &["--read-only"]);
    assert_eq!(watcher.post("boards/default/dispatch", json!({})).0, 403);
}

#[test]
fn attachments_are_uploaded_downloaded_and_removed_inside_the_cards_folder() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let id = k.create("card", &[]);
    let other = k.create("other", &[]);
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, att) =
        s.upload(&format!("boards/default/cards/{id}/attachments?name=../../evil.bin"), &bytes);
    assert_eq!(status, 201, "{att}");
    assert_eq!((att["stored_name"].as_str(), att["size"].as_i64()), (Some("evil.bin"), Some(200_000)));
    let folder = k.board_dir("default").join("attachments").join(&id);
    assert_eq!(std::fs::read(folder.join("evil.bin")).unwrap(), bytes, "stored inside the card's folder");
    let (_, listed) = s.get(&format!("boards/default/cards/{id}/attachments"));
    assert_eq!(listed, k.json(&["attachments", &id, "--json"]));
    assert_eq!(listed[0], att);

    let n = att["id"].as_i64().unwrap();
    let (status, got, disposition) = s.get_bytes(&format!("boards/default/cards/{id}/attachments/{n}"));
    assert_eq!((status, got == bytes), (200, true));
    assert!(disposition.unwrap().contains("evil.bin"));
    // Another card's path does not reach it; nor does an unknown id.
    assert_eq!(s.get_bytes(&format!("boards/default/cards/{other}/attachments/{n}")).0, 404);
    assert_eq!(s.get_bytes(&format!("boards/default/cards/{id}/attachments/999")).0, 404);
    for name in ["..", "/", ""] {
        let (status, v) = s.upload(&format!("boards/default/cards/{id}/attachments?name={name}"), b"x");
        assert_eq!(status, 400, "{name:?}: {v}");
    }
    assert_eq!(s.upload(&format!("boards/default/cards/{id}/attachments"), b"x").0, 400, "name is required");

    // Over 25 MiB: 413, and nothing is left behind. Streamed without a length, the copy stops at the cap.
    let cap = 25 * 1024 * 1024;
    let path = format!("boards/default/cards/{id}/attachments?name=big.bin");
    let mut big = std::io::Read::take(std::io::repeat(7), cap + 1);
    let request = s.agent.post(s.url(&path)).header("X-Kanban-CSRF", &s.csrf);
    let (status, v) = Server::answer(request.send(ureq::SendBody::from_reader(&mut big)));
    assert_eq!(status, 413, "{v}");
    assert!(error(&v).contains("capped at 25 MiB"), "{v}");
    assert!(!folder.join("big.bin").exists());
    // With a Content-Length over the cap, before a byte of the body is read.
    let mut socket = TcpStream::connect(&s.addr).unwrap();
    let head = format!(
        "POST /api/v1/{path} HTTP/1.1\r\nHost: {}\r\nX-Kanban-CSRF: {}\r\nContent-Length: {}\r\n\r\n",
        s.addr,
        s.csrf,
        cap + 1
    );
    socket.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 12];
    socket.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    let (status, removed) = s.delete(&format!("boards/default/cards/{other}/attachments/{n}"));
    assert_eq!(status, 404, "{removed}");
    let (status, removed) = s.delete(&format!("boards/default/cards/{id}/attachments/{n}"));
    assert_eq!((status, removed["id"].as_i64()), (200, Some(n)));
    assert!(!folder.join("evil.bin").exists());
    assert_eq!(k.json(&["attachments", &id, "--json"]), json!([]));
}

#[test]
fn state_changes_need_the_csrf_token_and_the_host_must_name_the_server() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    let body = r#"{"title": "x"}"#;
    let (status, v) = s.send_raw("POST", "boards/default/cards", body, None);
    assert_eq!(status, 403, "{v}");
    assert!(error(&v).contains("X-Kanban-CSRF"), "{v}");
    assert_eq!(s.send_raw("POST", "boards/default/cards", body, Some("not-the-token")).0, 403);
    assert_eq!(s.send_raw("POST", "boards/default/cards", body, Some(&s.csrf)).0, 201);
    assert_eq!(k.list_ids(&[]).len(), 1, "only the request with the token created a card");

    // The Host header: this server's address or localhost, nothing else (DNS rebinding).
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    for host in [s.addr.clone(), format!("localhost:{port}")] {
        assert_eq!(s.raw_get("boards", &[("Host", &host)]).0, 200, "{host}");
    }
    for host in ["evil.example:80".to_string(), format!("evil.example:{port}"), "127.0.0.1:1".into()] {
        let (status, text) = s.raw_get("boards", &[("Host", &host)]);
        assert_eq!(status, 403, "{host}: {text}");
        assert!(text.contains("does not name this server"), "{text}");
    }
    assert_eq!(s.raw_get("boards", &[]).0, 403, "no Host at all");
    // The session (and its CSRF token) is not handed to a page of another origin.
    assert_eq!(s.raw_get("session", &[("Host", &s.addr), ("Origin", "http://evil.example")]).0, 403);
    assert_eq!(s.raw_get("session", &[("Host", &s.addr), ("Origin", &format!("http://{}", s.addr))]).0, 200);
}

#[test]
fn a_token_file_requires_the_bearer_token_on_every_request() {
    let k = Kanban::new();
    let token = "s3cret-token-of-the-test-0123456789";
    let file = k.write_file("token", format!("{token}\n").as_bytes());
    let s = Server::start(&k, &["--token-file", file.to_str().unwrap()]);
    let (status, v) = s.get("boards");
    assert_eq!(status, 401, "{v}");
    assert!(error(&v).contains("Bearer"), "{v}");
    assert_eq!(s.raw_get("boards", &[("Host", &s.addr), ("Authorization", "Bearer wrong")]).0, 401);
    let s = s.with_token(token);
    assert_eq!(s.get("boards").0, 200);
    // With the token, no CSRF header is needed.
    assert_eq!(s.send_raw("POST", "boards/default/cards", r#"{"title": "x"}"#, None).0, 201);
    let metrics = s.raw_get("/metrics", &[("Host", &s.addr)]);
    assert_eq!(metrics.0, 401, "metrics too");

    let short = k.write_file("short", b"abc\n");
    let out = k.run(&["serve", "--listen", "127.0.0.1:0", "--token-file", short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a weak token is a usage error");
}

#[test]
fn a_page_logs_in_with_the_token_and_then_needs_the_csrf_token_like_any_page() {
    let k = Kanban::new();
    let token = "s3cret-token-of-the-test-0123456789";
    let file = k.write_file("token", format!("{token}\n").as_bytes());
    let s = Server::start(&k, &["--token-file", file.to_str().unwrap()]);
    // The page's files hold no data and are served without the token, so it can ask for it.
    let (status, html) = s.get_text("/");
    assert_eq!(status, 200);
    assert!(html.contains("/app.js"), "{html}");
    assert_eq!(s.get_text("/app.js").0, 200);
    assert_eq!(s.get("session").0, 401);

    let login = |body: &str| {
        let mut response = s
            .agent
            .post(s.url("login"))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("HTTP request");
        let cookie = response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), cookie, response.body_mut().read_to_string().unwrap())
    };
    let (status, cookie, body) = login(r#"{"token": "wrong-token-0123456789"}"#);
    assert_eq!((status, cookie), (401, None), "{body}");
    assert_eq!(login("{}").0, 400);
    let (status, cookie, _) = login(&json!({ "token": token }).to_string());
    assert_eq!(status, 204);
    let cookie = cookie.expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();

    // With the cookie, the board is read; a change needs the CSRF token of the session as well.
    let (status, session) = s.raw_get("session", &[("Host", &s.addr), ("Cookie", &pair)]);
    assert_eq!(status, 200, "{session}");
    let csrf = session.rsplit("\"csrf\":\"").next().unwrap().split('"').next().unwrap().to_string();
    let post = |headers: &[(&str, &str)]| {
        let mut request = s.agent.post(s.url("boards/default/cards")).header("Cookie", &pair);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Server::answer(request.send(r#"{"title": "from the page"}"#))
    };
    let (status, v) = post(&[]);
    assert_eq!(status, 403, "{v}");
    assert!(error(&v).contains("X-Kanban-CSRF"), "{v}");
    assert_eq!(post(&[("X-Kanban-CSRF", csrf.as_str())]).0, 201);
    let (status, _) = s.raw_get("boards", &[("Host", &s.addr), ("Cookie", "kanban_token=wrong")]);
    assert_eq!(status, 401);
    // A server without a token has nothing to log in to.
    let open = Server::start(&k, &[]);
    assert_eq!(open.post("login", json!({"token": token})).0, 404);
}

#[test]
fn a_non_loopback_address_gets_a_generated_token_saved_for_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let k = Kanban::new();
    let (s, mut out) = Server::start_on(&k, "0.0.0.0:0", &[]);
    let mut notice = String::new();
    out.read_line(&mut notice).expect("the token line");
    let saved = k.home().join("serve.token");
    let token = std::fs::read_to_string(&saved).expect("serve.token").trim().to_string();
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(notice.contains(&token) && notice.contains("serve.token"), "{notice}");
    assert_eq!(s.get("boards").0, 401);
    let s = s.with_token(&token);
    assert_eq!(s.get("boards").0, 200);
}

#[test]
fn read_only_refuses_every_change_and_bodies_are_bounded() {
    let k = Kanban::new();
    let id = k.create("card", &[]);
    let ro = Server::start(&k, &["--read-only"]);
    assert_eq!(ro.get("boards/default/cards").0, 200);
    for (method, path) in
        [("POST", "boards/default/cards".to_string()), ("PATCH", format!("boards/default/cards/{id}"))]
    {
        let (status, v) = ro.send(method, &path, &json!({"title": "x"}));
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(error(&v).contains("read-only"), "{v}");
    }
    assert_eq!(ro.post(&format!("boards/default/cards/{id}/complete"), json!({})).0, 403);
    assert_eq!(ro.delete(&format!("boards/default/cards/{id}/links?parent={id}")).0, 403);
    assert_eq!(k.status(&id), "ready");
    drop(ro);

    let s = Server::start(&k, &[]);
    let big = json!({"title": "big", "body": "x".repeat(1024 * 1024)});
    let (status, v) = s.post("boards/default/cards", big);
    assert_eq!(status, 413, "{v}");
    assert_eq!(k.list_ids(&[]).len(), 1);
}

#[test]
fn the_event_stream_pushes_cli_changes_and_resumes_after_last_event_id() {
    let k = Kanban::new();
    let id = k.create("card", &[]);
    let s = Server::start(&k, &[]);
    let mut live = s.stream("", &[]);
    k.ok(&["comment", &id, "from the cli"]);
    let (event_id, event) = live.next_event(POLL_LIMIT).expect("the comment's event");
    assert_eq!((event["kind"].as_str(), event["task_id"].as_str()), (Some("commented"), Some(id.as_str())));
    assert_eq!(event["id"].as_i64(), Some(event_id));
    // The same record as `events --json`.
    assert_eq!(&event, k.json_lines(&["events", "--json"]).last().unwrap());

    let (status, metrics) = s.get_text("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("kanban_sse_clients 1"), "{metrics}");
    assert!(metrics.contains("kanban_cards{board=\"default\",status=\"ready\"} 1"), "{metrics}");

    // More changes while no client listens; a reconnect with Last-Event-ID gets exactly those after it.
    drop(live);
    k.ok(&["block", &id, "stuck"]);
    k.ok(&["unblock", &id]);
    let after = event_id.to_string();
    let want: Vec<i64> = k
        .json_lines(&["events", "--since", &after, "--json"])
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(want.len() >= 2, "{want:?}");
    let mut resumed = s.stream("?since=1", &[("Last-Event-ID", &after)]);
    let mut got = Vec::new();
    while let Some((n, _)) = resumed.next_event(Duration::from_millis(1500)) {
        got.push(n);
    }
    assert_eq!(got, want, "exactly the events after {after}, once each");
    // And a `since` without Last-Event-ID replays from there.
    let mut from_start = s.stream("?since=0", &[]);
    assert_eq!(from_start.next_event(POLL_LIMIT).map(|(n, _)| n), Some(1));
    let (status, v) = s.get("boards/default/events/stream?since=x");
    assert_eq!(status, 400, "{v}");
}

/// `GET events` answers a page at a time with the next page's `since`; a stream resumed far behind reads
/// its backlog from the store in pages and sends every missed event once, in order.
#[test]
fn events_are_paged_and_a_long_resume_sends_every_missed_event_once() {
    let k = Kanban::new();
    let lines: String = (0..600).map(|n| format!("{{\"title\": \"card {n}\"}}\n")).collect();
    k.ok(&["create", "first"]);
    let out = k.run_stdin(&["import", "-"], lines.as_bytes());
    expect_ok(&out, &"import");
    let all: Vec<i64> =
        k.json_lines(&["events", "--json"]).iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(all.len() > 600, "{}", all.len());
    let s = Server::start(&k, &[]);

    let (status, page) = s.get("boards/default/events");
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 500, "500 by default");
    let mut paged = Vec::new();
    let mut since = 0;
    loop {
        let (status, page) = s.get(&format!("boards/default/events?since={since}&limit=250"));
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 250);
        paged.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_since"].as_i64() {
            Some(next) => {
                assert_eq!(Some(next), paged.last().copied());
                since = next;
            }
            None => break,
        }
    }
    assert_eq!(paged, all);
    for bad in ["limit=0", "limit=10001"] {
        let (status, v) = s.get(&format!("boards/default/events?{bad}"));
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(error(&v).starts_with("limit: "), "{v}");
    }

    let mut resumed = s.stream("", &[("Last-Event-ID", "1")]);
    let mut got = Vec::new();
    while let Some((n, _)) = resumed.next_event(Duration::from_millis(1500)) {
        got.push(n);
    }
    assert_eq!(got, all[1..], "every event after 1, once each, in order");
    // And live events follow the backlog on the same stream.
    let id = k.create("after the backlog", &[]);
    let (_, event) = resumed.next_event(POLL_LIMIT).expect("the live event after the backlog");
    assert_eq!(event["task_id"].as_str(), Some(id.as_str()));
}

#[test]
fn serve_stops_on_sigterm() {
    let k = Kanban::new();
    let mut s = Server::start(&k, &[]);
    let _live = s.stream("", &[]);
    let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let mut status = None;
    wait_for("serve to stop", || {
        status = s.child.try_wait().expect("wait");
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(0));
}

/// The web board's three files, with their types and a Content-Security-Policy that allows only this
/// server's own files (no inline script, no other origin, no framing); they pass the Host check like every
/// route. What the page does is tested in a real browser (tests/browser.rs).
#[test]
fn the_page_is_served_with_its_types_and_a_strict_policy() {
    let k = Kanban::new();
    let s = Server::start(&k, &[]);
    for (path, kind, needle) in [
        ("/", "text/html; charset=utf-8", r#"<script type="module" src="/app.js"></script>"#),
        ("/app.css", "text/css; charset=utf-8", ".tile"),
        ("/app.js", "text/javascript; charset=utf-8", "X-Kanban-CSRF"),
    ] {
        let mut response = s.agent.get(s.url(path)).call().expect("HTTP request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("content-type").as_deref(), Some(kind), "{path}");
        let csp = header("content-security-policy").unwrap_or_default();
        for rule in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]
        {
            assert!(csp.contains(rule), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        let text = response.body_mut().read_to_string().expect("read body");
        assert!(text.contains(needle), "{path}");
    }
    // No inline script in the page, no markup built from strings in the script.
    let (_, html) = s.get_text("/");
    assert_eq!(html.matches("<script").count(), 1, "one external module, nothing inline");
    let (_, js) = s.get_text("/app.js");
    assert!(
        !js.contains("innerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("document.write")
    );
    let (status, text) = s.raw_get("/", &[("Host", "evil.example:80")]);
    assert_eq!(status, 403, "{text}");
}

/// A board kept in PostgreSQL is served like any other: its cards over the API, its new events pushed to
/// a stream, its counts in /metrics (the server's own reads never run the database client inside the
/// async runtime).
#[test]
fn a_board_in_postgres_is_served_and_its_events_streamed() {
    let (url, slug) = (crate::postgres::database_url(), crate::postgres::fresh_slug());
    let k = Kanban::new();
    k.ok(&["board", "create", &slug, "--database", &url]);
    let created = k.json(&["--board", &slug, "create", "card in postgres", "--json"]);
    let id = created["id"].as_str().unwrap().to_string();
    let s = Server::start(&k, &["--board", &slug]);
    let (status, cards) = s.get(&format!("boards/{slug}/cards"));
    assert_eq!(status, 200, "{cards}");
    assert_eq!(cards["cards"][0]["id"].as_str(), Some(id.as_str()), "{cards}");
    let mut live = Stream(Sse::open(&s.addr, &format!("/api/v1/boards/{slug}/events/stream"), &[]));
    k.ok(&["--board", &slug, "comment", &id, "from the cli"]);
    let (_, event) = live.next_event(POLL_LIMIT).expect("the comment's event");
    assert_eq!((event["kind"].as_str(), event["task_id"].as_str()), (Some("commented"), Some(id.as_str())));
    let (status, metrics) = s.get_text("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(&format!("kanban_cards{{board=\"{slug}\",status=\"ready\"}} 1")), "{metrics}");
}
