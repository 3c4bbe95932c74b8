//! The web board in a real browser: headless Chromium driven through `chromedriver` (WebDriver) by
//! fantoccini, against the real binary's `kanban serve` on a temp home. Each test starts its own server,
//! chromedriver and browser; they run one at a time (two browsers at once only slow a small machine down).
//!
//! Chromium and chromedriver come from the distribution's packages (`apt-get install -y chromium
//! chromium-driver`; `.ci/run` installs them when missing). Without them these tests fail and say so.
//! `KANBAN_CHROMEDRIVER` and `KANBAN_CHROMIUM` name other binaries.
//!
//! Screenshots are saved under `<target dir>/browser-artifacts/` (`board.png`, `board-10k.png`, ...).
//!
//! Drag and drop: WebDriver's pointer actions do not drive HTML5 drag and drop in Chromium, so [`drag`]
//! dispatches the events a real drag fires (`dragstart`, `dragenter`, `dragover`, `drop`, `dragend`, with
//! one script-made `DataTransfer`) from a small test-only script; the page's handlers are the ones a mouse
//! drag runs.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use common::*;

/// One browser at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the page gets to show a change.
const PAGE_LIMIT: Duration = Duration::from_secs(20);

fn tool(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: the browser tests need Chromium and chromedriver from the distribution \
         (`apt-get install -y chromium chromium-driver`, which .ci/run does), or {var} naming it",
        path.display()
    );
    path
}

/// Where screenshots go: `<target dir>/browser-artifacts/` (the test binary's `kanban` is in
/// `<target dir>/debug/`).
fn artifacts() -> PathBuf {
    let dir = Path::new(bin()).parent().and_then(Path::parent).expect("target dir").join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("mkdir browser-artifacts");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped; with its whole process group when it
/// leads one (chromedriver: the browser it started is in its group, and outlives it otherwise).
struct Proc {
    child: Child,
    group: bool,
}

impl Drop for Proc {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill, killpg};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let signal = |sig: Signal| {
            let _ = if self.group { killpg(pid, sig) } else { kill(pid, sig) };
        };
        signal(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A command on the test's home with the real clock (the page shows ages against the browser's clock).
fn real(k: &Kanban, args: &[&str]) -> Command {
    let mut cmd = k.cmd(args);
    cmd.env_remove("KANBAN_NOW");
    cmd
}

fn run_ok(k: &Kanban, args: &[&str]) -> String {
    expect_ok(&real(k, args).output().expect("spawn kanban"), &args)
}

fn run_json(k: &Kanban, args: &[&str]) -> Value {
    parse_json(&run_ok(k, args), &args)
}

/// `create TITLE <extra> --json` with the real clock; the new card's id.
fn create(k: &Kanban, title: &str, extra: &[&str]) -> String {
    let mut args = vec!["create", title];
    args.extend_from_slice(extra);
    args.push("--json");
    run_json(k, &args)["id"].as_str().expect("id").to_string()
}

fn status_of(k: &Kanban, id: &str) -> String {
    run_json(k, &["show", id, "--json"])["task"]["status"].as_str().expect("status").to_string()
}

/// `kanban serve --listen LISTEN <extra>` on the test's home; the server and its root URL
/// (`http://127.0.0.1:PORT/`).
fn serve(k: &Kanban, listen: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["serve", "--listen", listen];
    args.extend_from_slice(extra);
    let mut server =
        real(k, &args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn serve");
    let mut first = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut first).expect("read the URL");
    let server = Proc { child: server, group: false };
    let api = first.split_whitespace().next().unwrap_or_else(|| panic!("no URL in {first:?}"));
    let url = api.strip_suffix("api/v1/").unwrap_or_else(|| panic!("not the API's URL: {first}")).to_string();
    (server, url)
}

/// `kanban serve` on a free port, a chromedriver, and a headless Chromium showing the board.
struct Page {
    client: Client,
    /// `http://127.0.0.1:PORT/`
    url: String,
    /// `127.0.0.1:PORT` of the server.
    addr: String,
    _user_data: tempfile::TempDir,
    _driver: Proc,
    server: Option<Proc>,
    _alone: tokio::sync::MutexGuard<'static, ()>,
}

impl Page {
    async fn open(k: &Kanban) -> Page {
        Page::open_with(k, &[]).await
    }

    /// With more options for `kanban serve`.
    async fn open_with(k: &Kanban, serve_args: &[&str]) -> Page {
        let page = Self::launch(k, serve_args).await;
        page.wait("the board to load", "return document.body.dataset.ready === 'true'").await;
        page
    }

    /// Serve the board and point a browser at it, without waiting for the board to load.
    async fn launch(k: &Kanban, serve_args: &[&str]) -> Page {
        let alone = ALONE.lock().await;
        let chromedriver = tool("KANBAN_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("KANBAN_CHROMIUM", "/usr/bin/chromium");

        let (server, url) = serve(k, "127.0.0.1:0", serve_args);
        let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();

        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let driver = Proc { child: driver, group: true };
        let driver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PAGE_LIMIT;
        while ureq::get(format!("{driver_url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {driver_url}");
            std::thread::sleep(Duration::from_millis(100));
        }

        let user_data = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                    "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                    "--disable-crash-reporter", "--disable-breakpad",
                    format!("--user-data-dir={}", user_data.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|e| panic!("no browser session from chromedriver: {e}"));
        client.goto(&url).await.expect("open the board");
        Page {
            client,
            url,
            _user_data: user_data,
            _driver: driver,
            server: Some(server),
            addr,
            _alone: alone,
        }
    }

    /// Stop the server, run `meanwhile`, and start a new one on the same address (with a new CSRF token).
    fn restart_server(&mut self, k: &Kanban, meanwhile: impl FnOnce()) {
        drop(self.server.take());
        meanwhile();
        let (server, url) = serve(k, &self.addr, &[]);
        assert_eq!(url, self.url);
        self.server = Some(server);
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Wait until `script` returns true.
    async fn wait(&self, what: &str, script: &str) {
        self.wait_with(what, script, vec![]).await
    }

    async fn wait_with(&self, what: &str, script: &str, args: Vec<Value>) {
        let deadline = Instant::now() + PAGE_LIMIT;
        loop {
            if self.js(script, args.clone()).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let messages = self.text("#messages").await;
                panic!("timed out waiting for {what} (messages on the page: {messages:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The card's tile is in `status`'s column.
    async fn wait_in(&self, id: &str, status: &str) {
        self.wait_with(
            &format!("{id} in {status}"),
            "return !!document.querySelector(`.column[data-status=\"${arguments[1]}\"] .tile[data-id=\"${arguments[0]}\"]`)",
            vec![json!(id), json!(status)],
        )
        .await
    }

    /// The column the card's tile is in, or null.
    async fn column_of(&self, id: &str) -> Value {
        self.js(
            "const t = document.querySelector(`.tile[data-id=\"${arguments[0]}\"]`); \
             return t ? t.closest('.column').dataset.status : null",
            vec![json!(id)],
        )
        .await
    }

    async fn text(&self, css: &str) -> String {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                vec![json!(css)],
            )
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Click an element (found again until the click lands: a live update may redraw it, or cover it for
    /// a moment, between finding and clicking).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + PAGE_LIMIT;
        loop {
            let clicked = async {
                let el = self.client.find(Locator::Css(css)).await?;
                el.click().await
            };
            match clicked.await {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("cannot click {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Replace the text of a field (found again until it takes the keys: a live update may redraw it).
    async fn type_in(&self, css: &str, text: &str) {
        let deadline = Instant::now() + PAGE_LIMIT;
        loop {
            let typed = async {
                let el = self.client.find(Locator::Css(css)).await?;
                el.clear().await?;
                el.send_keys(text).await
            };
            match typed.await {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("cannot type in {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Drag the card's tile onto a column (the events a mouse drag fires; see the module's comment).
    async fn drag(&self, id: &str, status: &str) {
        self.js(
            r#"const [id, status] = arguments;
            const tile = document.querySelector(`.tile[data-id="${id}"]`);
            const column = document.querySelector(`.column[data-status="${status}"]`);
            const dt = new DataTransfer();
            const fire = (el, type) => el.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
            fire(tile, 'dragstart');
            fire(column, 'dragenter');
            fire(column, 'dragover');
            fire(column, 'drop');
            fire(tile, 'dragend');"#,
            vec![json!(id), json!(status)],
        )
        .await;
    }

    /// Open a card's drawer with the keyboard (the tile is focusable; Enter opens it).
    async fn open_card(&self, id: &str) {
        let tile = self
            .client
            .find(Locator::Css(&format!(".tile[data-id=\"{id}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no tile for {id}: {e}"));
        // WebDriver's key code for Enter.
        tile.send_keys("\u{E007}").await.expect("Enter on the tile");
        self.wait_with(
            "the drawer",
            "return !document.getElementById('drawer').hidden && document.getElementById('drawer-id').textContent === arguments[0] && !!document.getElementById('d-actions')",
            vec![json!(id)],
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    async fn close(self) {
        let Page { client, .. } = self;
        let _ = client.close().await;
    }
}

/// The whole round: create a card in the dialog, see it in its column, drag it to ready; a real tick starts
/// its worker and the open page shows it running, then done, without a reload; the drawer shows the
/// worker's log as it is written.
#[tokio::test]
async fn a_card_from_the_dialog_runs_to_done_live() {
    let f = Fleet::new();
    let script = f.script(
        "worker.sh",
        r#"echo "worker says hello from $KANBAN_TASK"
"$KANBAN_BIN" heartbeat "$KANBAN_TASK" > /dev/null
sleep 4
echo "worker finishing"
"$KANBAN_BIN" complete "$KANBAN_TASK" --result "done by the worker" > /dev/null"#,
    );
    f.write_board(&format!("[board]\nname = \"Web\"\n\n{}", f.profile("coder", &script, &[])));
    let page = Page::open(&f).await;
    let started = Instant::now();

    // The create dialog.
    page.click("#new-card").await;
    page.type_in("#create-form [name=title]", "Ship the web board").await;
    page.type_in("#create-form [name=body]", "Make it **live**.").await;
    page.type_in("#create-form [name=assignee]", "coder").await;
    page.type_in("#create-form [name=priority]", "3").await;
    page.click("#create-form [name=triage]").await;
    page.click("#create-submit").await;
    page.wait("the dialog to close", "return !document.getElementById('create-dialog').open").await;
    let cards = run_json(&f, &["list", "--json"]);
    let id = cards[0]["id"].as_str().expect("the created card").to_string();
    assert_eq!(cards[0]["title"], "Ship the web board");
    assert_eq!(cards[0]["assignee"], "coder");
    assert_eq!(cards[0]["priority"], 3);
    page.wait_in(&id, "triage").await;
    assert!(page.text(&format!(".tile[data-id=\"{id}\"]")).await.contains("Ship the web board"));

    // Drag it to ready: a promote.
    page.drag(&id, "ready").await;
    page.wait_in(&id, "ready").await;
    assert_eq!(status_of(&f, &id), "ready");

    // A real tick from the command line; the page follows through its event stream.
    let tick = real(&f, &["dispatch", "--wait", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dispatch");
    page.wait_in(&id, "running").await;
    page.wait_with(
        "the running line",
        "const t = document.querySelector(`.tile[data-id=\"${arguments[0]}\"] .running`); return !!t && /^running for \\d+s, (heartbeat \\d+s ago|no heartbeat yet)$/.test(t.textContent)",
        vec![json!(id)],
    )
    .await;
    page.wait(
        "the counts to match the tiles",
        "return [...document.querySelectorAll('.column')].every((c) => \
           c.querySelector('.count').textContent === String(c.querySelectorAll('.tile').length))",
    )
    .await;
    page.screenshot("board-running.png").await;

    // The drawer, with the log's live tail.
    page.open_card(&id).await;
    page.wait(
        "the log tail",
        "return document.getElementById('log-tail').textContent.includes('worker says hello')",
    )
    .await;
    assert!(page.text("#d-body strong").await == "live", "the body is rendered as Markdown");
    page.js("document.getElementById('d-log').scrollIntoView()", vec![]).await;
    page.screenshot("drawer-log.png").await;

    page.wait_in(&id, "done").await;
    // Every column's count settles on the tiles it holds (a count moved at once, then set by `GET stats`).
    page.wait(
        "the counts to match the tiles",
        "return [...document.querySelectorAll('.column')].every((c) => \
           c.querySelector('.count').textContent === String(c.querySelectorAll('.tile').length))",
    )
    .await;
    let out = tick.wait_with_output().expect("dispatch --wait");
    assert!(out.status.success(), "dispatch failed: {}", String::from_utf8_lossy(&out.stderr));
    page.wait(
        "the drawer to show done",
        "return document.getElementById('drawer-status').textContent === 'done'",
    )
    .await;
    page.wait(
        "the run's outcome",
        "return document.querySelector('#d-runs tbody')?.textContent.includes('completed')",
    )
    .await;
    page.wait(
        "the last log line",
        "return document.getElementById('log-tail').textContent.includes('worker finishing')",
    )
    .await;
    assert_eq!(status_of(&f, &id), "done");
    page.click("#drawer-close").await;
    page.screenshot("board.png").await;
    eprintln!("create, drag, run to done: {:?}", started.elapsed());
    page.close().await;
}

/// Block (with a reason, after the confirmation) and unblock from the drawer's buttons.
#[tokio::test]
async fn block_and_unblock_from_the_buttons() {
    let k = Kanban::new();
    let id = create(&k, "Needs a decision", &[]);
    let page = Page::open(&k).await;
    page.wait_in(&id, "ready").await;
    page.open_card(&id).await;

    page.click("#d-actions [data-action=block]").await;
    page.wait("the confirmation", "return document.getElementById('ask-dialog').open").await;
    page.type_in("#ask-input", "which database?").await;
    page.click("#ask-ok").await;
    page.wait_in(&id, "blocked").await;
    let task = run_json(&k, &["show", &id, "--json"])["task"].clone();
    assert_eq!(task["status"], "blocked");
    assert_eq!(task["block_reason"], "which database?");
    page.wait(
        "the drawer to show blocked",
        "return document.getElementById('drawer-status').textContent === 'blocked'",
    )
    .await;

    page.click("#d-actions [data-action=unblock]").await;
    page.wait_in(&id, "ready").await;
    assert_eq!(status_of(&k, &id), "ready");
    page.wait(
        "the drawer to show ready",
        "return document.getElementById('drawer-status').textContent === 'ready'",
    )
    .await;

    // Cancelling the confirmation does nothing.
    page.click("#d-actions [data-action=archive]").await;
    page.wait("the confirmation", "return document.getElementById('ask-dialog').open").await;
    page.click("#ask-cancel").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&k, &id), "ready");
    page.close().await;
}

/// A card's text is never markup: a `<script>` in a body (or a title, a comment) shows as text and never
/// runs; a `javascript:` link is not a link.
#[tokio::test]
async fn a_script_in_a_card_is_text() {
    let k = Kanban::new();
    let body = "Hello <script>window.__pwned=1</script>\n\n<img src=x onerror=\"window.__pwned=2\">\n\n\
                [click](javascript:window.__pwned=3) and [docs](https://example.org/x)";
    let id = create(&k, "<b>bold?</b>", &["--body", body]);
    run_ok(&k, &["comment", &id, "<script>window.__pwned=4</script>"]);
    let page = Page::open(&k).await;
    page.wait_in(&id, "ready").await;
    assert!(page.text(&format!(".tile[data-id=\"{id}\"] .title")).await == "<b>bold?</b>");
    assert!(
        !page.text(&format!(".tile[data-id=\"{id}\"]")).await.contains("null"),
        "no stray text in a tile"
    );
    page.open_card(&id).await;

    let shown = page.text("#d-body").await;
    assert!(shown.contains("<script>window.__pwned=1</script>"), "the script is shown as text: {shown:?}");
    assert!(shown.contains("<img src=x onerror=\"window.__pwned=2\">"), "{shown:?}");
    assert!(page.text("#d-comments").await.contains("<script>window.__pwned=4</script>"));
    let facts = page
        .js(
            "const b = document.getElementById('d-body'); return { \
               pwned: typeof window.__pwned, \
               elements: document.querySelectorAll('#drawer script, #drawer img, .tile script, .tile b').length, \
               links: [...b.querySelectorAll('a')].map(a => [a.getAttribute('href'), a.rel]), \
               visible: b.offsetHeight > 0 }",
            vec![],
        )
        .await;
    assert_eq!(facts["pwned"], "undefined", "{facts}");
    assert_eq!(facts["elements"], 0, "{facts}");
    assert_eq!(facts["links"], json!([["https://example.org/x", "noopener noreferrer"]]), "{facts}");
    assert_eq!(facts["visible"], true);
    page.screenshot("drawer-script-as-text.png").await;
    page.close().await;
}

/// A drop the server refuses leaves the tile where its card is and shows the server's message.
#[tokio::test]
async fn a_refused_drop_snaps_back_with_the_message() {
    let k = Kanban::new();
    let id = create(&k, "Already finished", &[]);
    run_ok(&k, &["complete", &id]);
    let page = Page::open(&k).await;
    page.wait_in(&id, "done").await;

    page.drag(&id, "ready").await;
    let message = format!("cannot promote card {id} while it is done");
    page.wait_with(
        "the refusal",
        "return document.getElementById('messages').textContent.includes(arguments[0])",
        vec![json!(message)],
    )
    .await;
    assert_eq!(page.column_of(&id).await, "done");
    assert!(page.js("return document.querySelector(`.tile[data-id=\"${arguments[0]}\"]`).classList.contains('snapback')", vec![json!(id)]).await == Value::Bool(true));
    assert_eq!(status_of(&k, &id), "done");

    // A column no person moves a card to.
    page.drag(&id, "running").await;
    page.wait(
        "the page's refusal",
        "return document.getElementById('messages').textContent.includes('cannot be moved to running')",
    )
    .await;
    assert_eq!(page.column_of(&id).await, "done");

    // A drop that asks first and is cancelled leaves the card too.
    let ready = create(&k, "Not yet", &[]);
    page.wait_in(&ready, "ready").await;
    page.drag(&ready, "done").await;
    page.wait("the confirmation", "return document.getElementById('ask-dialog').open").await;
    page.click("#ask-cancel").await;
    page.wait("the dialog to close", "return !document.getElementById('ask-dialog').open").await;
    assert_eq!(page.column_of(&ready).await, "ready");
    assert_eq!(status_of(&k, &ready), "ready");
    page.close().await;
}

/// 10,000 cards: each column shows its first 100 and its count, "more" loads the next 100, and the page
/// stays responsive.
#[tokio::test]
async fn ten_thousand_cards_are_paged() {
    let k = Kanban::new();
    let mut lines = String::new();
    let assignees = ["coder", "reviewer", "none"];
    for i in 0..10_000 {
        let card = match i % 10 {
            0 => json!({"title": format!("Idea {i}"), "triage": true}),
            1 => json!({"title": format!("Stuck {i}"), "initial_status": "blocked", "priority": i % 5}),
            _ => json!({"title": format!("Card {i}"), "priority": i % 7, "assignee": assignees[i % 3]}),
        };
        lines.push_str(&card.to_string());
        lines.push('\n');
    }
    let file = k.write_file("cards.jsonl", lines.as_bytes());
    let t = Instant::now();
    run_ok(&k, &["import", file.to_str().unwrap()]);
    eprintln!("import of 10,000 cards: {:?}", t.elapsed());

    let t = Instant::now();
    let page = Page::open(&k).await;
    let ready_ms = page.js("return document.body.dataset.readyMs", vec![]).await;
    eprintln!("page (server, driver and browser started) ready with 10,000 cards: {:?}", t.elapsed());
    eprintln!("page load to the first 100 cards of every column at 10,000 cards: {ready_ms} ms");
    let counts = page
        .js(
            "return Object.fromEntries([...document.querySelectorAll('.column')].map(c => \
               [c.dataset.status, [c.querySelectorAll('.tile').length, c.querySelector('.count').textContent]]))",
            vec![],
        )
        .await;
    assert_eq!(counts["ready"], json!([100, "8000"]), "{counts}");
    assert_eq!(counts["triage"], json!([100, "1000"]), "{counts}");
    assert_eq!(counts["blocked"], json!([100, "1000"]), "{counts}");
    assert_eq!(counts["done"], json!([0, "0"]), "{counts}");

    let t = Instant::now();
    page.wait(
        "the ready column's \"more\" to be enabled",
        "const b = document.querySelector('.column[data-status=ready] .more'); return !!b && !b.disabled",
    )
    .await;
    page.click(".column[data-status=ready] .more").await;
    page.wait(
        "the next 100",
        "return document.querySelectorAll('.column[data-status=ready] .tile').length === 200",
    )
    .await;
    eprintln!("\"more\" (100 more cards): {:?}", t.elapsed());
    // Still responsive: a card changed from the command line moves within the page's event delay.
    let first =
        page.js("return document.querySelector('.column[data-status=ready] .tile').dataset.id", vec![]).await;
    let first = first.as_str().expect("a ready tile").to_string();
    let t = Instant::now();
    run_ok(&k, &["block", &first, "from the CLI"]);
    page.wait_in(&first, "blocked").await;
    eprintln!("a CLI block reaching the page at 10,000 cards: {:?}", t.elapsed());
    page.wait(
        "the counts",
        "return document.querySelector('.column[data-status=blocked] .count').textContent === '1001'",
    )
    .await;
    page.screenshot("board-10k.png").await;
    page.close().await;
}

/// A phone-sized window: the columns scroll sideways, nothing is cut off.
#[tokio::test]
async fn a_phone_screen_scrolls_the_columns() {
    let k = Kanban::new();
    create(&k, "Small screen", &[]);
    let page = Page::open(&k).await;
    page.client.set_window_size(400, 800).await.expect("resize");
    page.wait(
        "horizontal scrolling",
        "const b = document.getElementById('board'); return b.scrollWidth > b.clientWidth && document.documentElement.scrollWidth <= window.innerWidth + 1",
    )
    .await;
    page.js("document.querySelector('.column[data-status=ready]').scrollIntoView({inline: 'start'})", vec![])
        .await;
    page.screenshot("board-phone.png").await;
    assert!(page.url.starts_with("http://127.0.0.1:"));
    page.close().await;
}

/// A server of several boards has a switcher; the page then shows the other board, live.
#[tokio::test]
async fn the_board_switcher_shows_another_board_live() {
    let k = Kanban::new();
    let here = create(&k, "On the default board", &[]);
    run_ok(&k, &["board", "create", "other"]);
    let other = run_json(&k, &["--board", "other", "create", "Only on other", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = Page::open(&k).await;
    page.wait_in(&here, "ready").await;
    assert_eq!(page.js("return document.getElementById('board-switch').hidden", vec![]).await, false);
    let select = page.client.find(Locator::Css("#board-select")).await.expect("the switcher");
    select.select_by_value("other").await.expect("choose the other board");
    page.wait_in(&other, "ready").await;
    assert_eq!(page.column_of(&here).await, Value::Null, "the default board's card is gone");
    assert_eq!(page.js("return location.hash", vec![]).await, "#other");
    // Its event stream is the other board's.
    let live = run_json(&k, &["--board", "other", "create", "Live on other", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    page.wait_in(&live, "ready").await;
    page.close().await;
}

/// `--read-only`: the board is shown and follows changes live, and nothing on the page can change it.
#[tokio::test]
async fn a_read_only_server_shows_the_board_and_offers_no_change() {
    let k = Kanban::new();
    let id = create(&k, "Watch only", &[]);
    let page = Page::open_with(&k, &["--read-only"]).await;
    page.wait_in(&id, "ready").await;
    assert!(page.text("#messages").await.contains("read-only"));
    let facts = page
        .js(
            "return { create: document.getElementById('new-card').disabled, \
               draggable: document.querySelector('.tile').draggable }",
            vec![],
        )
        .await;
    assert_eq!(facts, json!({"create": true, "draggable": false}));
    page.open_card(&id).await;
    let enabled = page
        .js("return [...document.querySelectorAll('#drawer-body button[type=submit], #d-actions button')].filter(b => !b.disabled).length", vec![])
        .await;
    assert_eq!(enabled, 0, "every button that changes the card is disabled");
    run_ok(&k, &["block", &id, "from the CLI"]);
    page.wait_in(&id, "blocked").await;
    page.close().await;
}

/// The drawer's forms: edit the title, comment, upload an attachment and download it back; the assignee
/// filter; a priority change re-sorts the column.
#[tokio::test]
async fn edit_comment_attach_and_filter_from_the_page() {
    let k = Kanban::new();
    let alpha = create(&k, "Alpha", &["--assignee", "coder"]);
    let beta = create(&k, "Beta", &[]);
    let page = Page::open(&k).await;
    page.wait_in(&beta, "ready").await;
    page.open_card(&alpha).await;

    page.type_in("#edit-form [name=title]", "Alpha, renamed").await;
    page.click("#edit-form button[type=submit]").await;
    page.wait_with(
        "the new title on the tile",
        "return document.querySelector(`.tile[data-id=\"${arguments[0]}\"] .title`).textContent === 'Alpha, renamed'",
        vec![json!(alpha)],
    )
    .await;
    assert_eq!(run_json(&k, &["show", &alpha, "--json"])["task"]["title"], "Alpha, renamed");

    page.type_in("#comment-form textarea", "Looks *good*").await;
    // A live update while typing keeps the text and the focus.
    run_ok(&k, &["comment", &alpha, "From the CLI", "--author", "ann"]);
    page.wait(
        "the CLI's comment",
        "return document.getElementById('d-comments').textContent.includes('From the CLI')",
    )
    .await;
    let typing = page
        .js("const t = document.querySelector('#comment-form textarea'); return [document.activeElement === t, t.value]", vec![])
        .await;
    assert_eq!(typing, json!([true, "Looks *good*"]));
    page.click("#comment-form button[type=submit]").await;
    page.wait(
        "the comment",
        "return document.getElementById('d-comments').textContent.includes('Looks good')",
    )
    .await;
    let comments = run_json(&k, &["show", &alpha, "--json"])["comments"].clone();
    assert_eq!(comments[1]["body"], "Looks *good*");
    assert_eq!(comments[1]["author"], "web");

    let file = k.write_file("notes.txt", b"attached from the browser\n");
    let input = page.client.find(Locator::Css("#d-attachments input[type=file]")).await.expect("file input");
    input.send_keys(file.to_str().unwrap()).await.expect("choose the file");
    page.click("#d-attachments .actions button").await;
    page.wait(
        "the attachment's link",
        "return document.querySelector('#d-attachments a')?.textContent === 'notes.txt'",
    )
    .await;
    let downloaded = page
        .js("return fetch(document.querySelector('#d-attachments a').href).then(r => r.text())", vec![])
        .await;
    assert_eq!(downloaded, "attached from the browser\n");
    page.click("#drawer-close").await;

    // The assignee filter: the API's `assignee`, and `none` for unassigned cards.
    page.type_in("#assignee-filter", "coder").await;
    page.wait_with(
        "only coder's card",
        "return !document.querySelector(`.tile[data-id=\"${arguments[1]}\"]`) && !!document.querySelector(`.tile[data-id=\"${arguments[0]}\"]`)",
        vec![json!(alpha), json!(beta)],
    )
    .await;
    page.type_in("#assignee-filter", "none").await;
    page.wait_with(
        "only the unassigned card",
        "return !!document.querySelector(`.tile[data-id=\"${arguments[1]}\"]`) && !document.querySelector(`.tile[data-id=\"${arguments[0]}\"]`)",
        vec![json!(alpha), json!(beta)],
    )
    .await;
    let input = page.client.find(Locator::Css("#assignee-filter")).await.expect("filter");
    input.clear().await.expect("clear the filter");
    page.js("document.getElementById('assignee-filter').dispatchEvent(new Event('input'))", vec![]).await;
    page.wait_in(&alpha, "ready").await;

    // Priority first: a CLI edit moves Beta above Alpha, live.
    let order =
        "return [...document.querySelectorAll('.column[data-status=ready] .tile')].map(t => t.dataset.id)";
    assert_eq!(page.js(order, vec![]).await, json!([alpha, beta]));
    run_ok(&k, &["edit", &beta, "--priority", "9"]);
    page.wait_with(
        "Beta first",
        "return document.querySelector('.column[data-status=ready] .tile').dataset.id === arguments[0]",
        vec![json!(beta)],
    )
    .await;
    page.close().await;
}

/// The server goes away and comes back (a restart, with a new CSRF token): the page reconnects by itself,
/// the browser's `Last-Event-ID` replays what happened meanwhile, and the next action fetches the new token.
#[tokio::test]
async fn the_page_resumes_after_the_server_restarts() {
    let k = Kanban::new();
    let id = create(&k, "Survives a restart", &[]);
    let mut page = Page::open(&k).await;
    page.wait_in(&id, "ready").await;
    page.wait("the stream", "return document.getElementById('live').textContent === 'live'").await;
    // Any event, so the browser has an event id to resume from.
    run_ok(&k, &["comment", &id, "before the restart"]);
    page.open_card(&id).await;
    page.wait(
        "the comment",
        "return document.getElementById('d-comments').textContent.includes('before the restart')",
    )
    .await;
    page.click("#drawer-close").await;

    page.restart_server(&k, || {
        run_ok(&k, &["block", &id, "while the server was down"]);
    });
    page.wait_in(&id, "blocked").await;
    page.wait("the stream", "return document.getElementById('live').textContent === 'live'").await;

    page.open_card(&id).await;
    page.click("#d-actions [data-action=unblock]").await;
    page.wait_in(&id, "ready").await;
    assert_eq!(status_of(&k, &id), "ready");
    page.close().await;
}

/// Several cards selected with the keyboard (x on a focused tile), one bulk action asked once: the cards it
/// applies to move, each refusal is shown with its card.
#[tokio::test]
async fn a_bulk_action_on_selected_cards() {
    let k = Kanban::new();
    let one = create(&k, "One", &[]);
    let two = create(&k, "Two", &[]);
    let finished = create(&k, "Finished", &[]);
    run_ok(&k, &["complete", &finished]);
    let page = Page::open(&k).await;
    page.wait_in(&finished, "done").await;
    for id in [&one, &two, &finished] {
        let tile = page.client.find(Locator::Css(&format!(".tile[data-id=\"{id}\"]"))).await.expect("tile");
        tile.send_keys("x").await.expect("x on the tile");
    }
    assert_eq!(page.text("#bulk-count").await, "3 selected");
    assert_eq!(page.js("return document.querySelectorAll('.tile.selected').length", vec![]).await, 3);
    page.click("#bulk [data-action=block]").await;
    page.wait("the question", "return document.getElementById('ask-dialog').open").await;
    page.type_in("#ask-input", "waiting on the vendor").await;
    page.click("#ask-ok").await;
    page.wait_in(&one, "blocked").await;
    page.wait_in(&two, "blocked").await;
    page.wait(
        "the summary",
        "return document.getElementById('messages').textContent.includes('Block: 2 of 3 cards')",
    )
    .await;
    let messages = page.text("#messages").await;
    assert!(messages.contains(&format!("cannot block card {finished} while it is done")), "{messages}");
    assert_eq!(page.column_of(&finished).await, "done");
    assert_eq!(page.js("return document.getElementById('bulk').hidden", vec![]).await, true);
    for id in [&one, &two] {
        assert_eq!(run_json(&k, &["show", id, "--json"])["task"]["block_reason"], "waiting on the vendor");
    }
    page.close().await;
}

/// The running column is in lanes by profile: its cards sorted by assignee (unassigned last), the first of
/// each lane showing the profile's name; a card joining the column live takes its lane.
#[tokio::test]
async fn running_cards_are_in_lanes_by_profile() {
    let k = Kanban::new();
    let running =
        |title: &str, who: &str| create(&k, title, &["--initial-status", "running", "--assignee", who]);
    let r1 = running("Review the API", "reviewer");
    let c1 = running("Write the page", "coder");
    let r2 = running("Review the page", "reviewer");
    let page = Page::open(&k).await;
    page.wait_in(&r2, "running").await;
    // [ids of the lanes in order, each a set (in a lane: oldest first, ties by id)], and the labels.
    let lanes = || async {
        let shown = page
            .js(
                "return [...document.querySelectorAll('.column[data-status=running] .tile')].map(t => [t.dataset.id, t.dataset.lane ?? null])",
                vec![],
            )
            .await;
        let shown = shown.as_array().expect("tiles").clone();
        let labels: Vec<Value> = shown.iter().map(|t| t[1].clone()).collect();
        let mut lanes: Vec<std::collections::BTreeSet<String>> = Vec::new();
        for t in &shown {
            if !t[1].is_null() {
                lanes.push(Default::default());
            }
            lanes.last_mut().expect("a lane label first").insert(t[0].as_str().unwrap().to_string());
        }
        (lanes, labels)
    };
    let set = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>();
    let (shown, labels) = lanes().await;
    assert_eq!(labels, [json!("coder"), json!("reviewer"), Value::Null]);
    assert_eq!(shown, [set(&[&c1]), set(&[&r1, &r2])]);
    let c2 = running("Write the docs", "coder");
    page.wait_in(&c2, "running").await;
    let (shown, labels) = lanes().await;
    assert_eq!(labels, [json!("coder"), Value::Null, json!("reviewer"), Value::Null]);
    assert_eq!(shown, [set(&[&c1, &c2]), set(&[&r1, &r2])]);
    page.wait(
        "the count",
        "return document.querySelector('.column[data-status=running] .count').textContent === '4'",
    )
    .await;
    page.screenshot("board-lanes.png").await;
    page.close().await;
}

/// The strip under the bar says who ticked last and why ready cards wait; a tile counts its children
/// done, live; the diagnostics view runs the board's diagnostics; the plugins view lists what is installed.
#[tokio::test]
async fn health_strip_children_counts_and_the_diagnostics_and_plugins_views() {
    let k = Kanban::new();
    let parent = create(&k, "Ship the release", &[]);
    let child = create(&k, "Announce it", &["--parent", &parent]);
    let page = Page::open(&k).await;
    page.wait_in(&parent, "ready").await;
    let tile = format!(".tile[data-id=\"{parent}\"] .kids");
    page.wait(
        "0/1 children done",
        &format!("return document.querySelector('{tile}')?.textContent === '0/1 children done'"),
    )
    .await;
    page.wait(
        "the strip to say no dispatcher ticked and one card waits unassigned",
        "const t = document.getElementById('health').textContent; \
         return t.includes('no dispatcher has ticked this board') && t.includes('1 waiting unassigned')",
    )
    .await;

    // "Tick now": one real tick through the API (no dispatcher had ticked before).
    page.click("#tick-now").await;
    page.wait(
        "the strip to name the tick it asked for",
        "return document.getElementById('health').textContent.includes('last tick')",
    )
    .await;
    run_ok(&k, &["complete", &parent]);
    run_ok(&k, &["complete", &child]);
    page.wait_in(&child, "done").await;
    page.wait(
        "1/1 children done",
        &format!("return document.querySelector('{tile}')?.textContent === '1/1 children done'"),
    )
    .await;
    page.wait(
        "the strip to name the last tick",
        "const t = document.getElementById('health').textContent; \
         return t.includes('last tick') && t.includes('nothing waiting')",
    )
    .await;

    run_ok(&k, &["pause", "--reason", "freeze"]);
    page.click("#show-diagnostics").await;
    page.wait("the diagnostics view", "return document.getElementById('diagnostics-dialog').open").await;
    page.click("#diagnostics-run").await;
    page.wait(
        "the pause finding",
        "return document.getElementById('diagnostics-list').textContent.includes('board-paused')",
    )
    .await;
    page.screenshot("diagnostics-view.png").await;
    page.click("#diagnostics-close").await;
    page.click("#show-plugins").await;
    page.wait(
        "the plugins view",
        "return document.querySelector('#plugins-list tr[data-name=\"builtin:diagnostics\"]') !== null",
    )
    .await;
    page.click("#plugins-close").await;
    page.wait(
        "the strip to show the pause",
        "return document.getElementById('health').textContent.includes('board paused: freeze')",
    )
    .await;
    page.screenshot("health-strip.png").await;
    page.close().await;
}

/// A server that requires a token: the page asks for it once, then works as on loopback (live stream
/// included, through the session cookie).
#[tokio::test]
async fn a_page_on_a_token_server_asks_for_the_token_once() {
    let k = Kanban::new();
    let token = "browser-token-0123456789abcdef";
    let file = k.write_file("token", format!("{token}\n").as_bytes());
    let id = create(&k, "Behind a token", &[]);
    let page = Page::launch(&k, &["--token-file", file.to_str().unwrap()]).await;
    page.wait("the token prompt", "return document.getElementById('ask-dialog').open").await;
    page.type_in("#ask-input", "not-the-token-0123456789").await;
    page.click("#ask-ok").await;
    page.wait(
        "a second prompt",
        "return document.getElementById('ask-dialog').open && document.getElementById('ask-text').textContent.includes('not this server')",
    )
    .await;
    page.js("document.getElementById('ask-input').value = ''; return null", vec![]).await;
    page.type_in("#ask-input", token).await;
    page.click("#ask-ok").await;
    page.wait_in(&id, "ready").await;
    // Live: a card made by the CLI appears without a reload.
    let later = create(&k, "Made by the CLI", &[]);
    page.wait_in(&later, "ready").await;
    page.close().await;
}
