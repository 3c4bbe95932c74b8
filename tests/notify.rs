//! Notifications (issue 15, item 1): `[[notify]]` routes events to a webhook or a command from a durable
//! outbox, at least once. A real HTTP receiver on 127.0.0.1 (a thread of the test) checks what arrives:
//! the signature, the headers, retries of a failing endpoint, a delivery cut off by `kill -9`, and a hung
//! endpoint that must not hold up the tick.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::*;

/// One request the receiver took: its headers (lowercase names) and body.
#[derive(Debug, Clone)]
struct Request {
    headers: BTreeMap<String, String>,
    raw: Vec<u8>,
    body: Value,
}

/// How the receiver answers: a status, after holding the request this long.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    hold: Duration,
}

/// A webhook endpoint on 127.0.0.1: records every request, answers as told.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Request>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer { status: 200, hold: Duration::ZERO }));
        let (g, a) = (got.clone(), answer.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (g, a) = (g.clone(), a.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut headers = BTreeMap::new();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap(); // request line
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.trim().split_once(':') {
                            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                        }
                    }
                    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    g.lock().unwrap().push(Request { headers, raw: body, body: parsed });
                    let answer = *a.lock().unwrap();
                    std::thread::sleep(answer.hold);
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        answer.status
                    );
                });
            }
        });
        Receiver { url, got, answer }
    }

    fn answer(&self, status: u16, hold: Duration) {
        *self.answer.lock().unwrap() = Answer { status, hold };
    }

    fn got(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    fn kinds(&self) -> Vec<String> {
        self.got().iter().map(|r| r.body["event"]["kind"].as_str().unwrap_or_default().to_string()).collect()
    }
}

/// A board routing `kinds` to `target` (TOML of the entry's target keys), synced by one tick.
fn board(f: &Fleet, kinds: &[&str], target: &str) {
    let script = f.script("worker.sh", "\"$KANBAN_BIN\" complete \"$KANBAN_TASK\"");
    let on: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
    f.write_board(&format!(
        "{}\n[[notify]]\non = [{}]\n{target}\n",
        f.profile("p", &script, &[]),
        on.join(", ")
    ));
    f.dispatch(&[]); // a real tick syncs the routes
}

fn log(f: &Fleet) -> Vec<Value> {
    f.json(&["notify", "log", "--json"]).as_array().unwrap().clone()
}

#[test]
fn routed_events_reach_a_webhook_signed_and_the_log_shows_them_delivered() {
    let f = Fleet::new();
    let hook = Receiver::start();
    board(&f, &["created", "blocked"], &format!("webhook = {:?}", hook.url));
    let id = f.create("needs a human", &[]);
    f.ok(&["block", &id, "waiting on legal"]);
    f.ok(&["comment", &id, "not routed"]);
    let pass = f.json(&["notify", "deliver", "--json"]);
    assert_eq!(pass["delivered"], 2, "{pass}");
    assert_eq!(hook.kinds(), vec!["created", "blocked"]);

    let key = std::fs::read_to_string(f.board_dir("default").join("notify.key")).unwrap();
    for request in hook.got() {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.trim().as_bytes()).unwrap();
        mac.update(&request.raw);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(request.headers["x-kanban-signature"], want, "{request:?}");
        assert_eq!(request.body["board"], "default");
        assert_eq!(request.body["event"]["task_id"], id.as_str());
        assert_eq!(request.headers["x-kanban-event"], request.body["event"]["kind"].as_str().unwrap());
        assert_eq!(request.headers["x-kanban-delivery"], request.body["delivery"].to_string());
    }
    assert_eq!(hook.got()[1].body["event"]["payload"]["reason"], "waiting on legal", "{:?}", hook.got());
    let entries = log(&f);
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{entries:?}");
    // Nothing is delivered twice once delivered.
    assert_eq!(f.json(&["notify", "deliver", "--json"])["delivered"], 0);
    assert_eq!(hook.got().len(), 2);
}

#[test]
fn a_failing_endpoint_is_retried_with_backoff_and_kept_as_failed_after_its_last_attempt() {
    let f = Fleet::new();
    let hook = Receiver::start();
    hook.answer(503, Duration::ZERO);
    board(&f, &["created"], &format!("webhook = {:?}\nmax_attempts = 3", hook.url));
    f.create("a", &[]);
    let pass = f.json(&["notify", "deliver", "--json"]);
    assert_eq!(pass["retrying"], 1, "{pass}");
    let entry = log(&f)[0].clone();
    assert_eq!(entry["status"], "pending");
    assert_eq!(entry["attempts"], 1);
    assert!(entry["last_error"].as_str().unwrap().contains("HTTP 503"), "{entry}");
    let first_retry = entry["next_attempt_at"].as_i64().unwrap() - f.now();
    assert!((8..=10).contains(&first_retry), "{entry}");
    // Not due yet: nothing is sent.
    assert_eq!(f.json(&["notify", "deliver", "--json"])["retrying"], 0);
    assert_eq!(hook.got().len(), 1);
    f.advance(first_retry);
    assert_eq!(f.json(&["notify", "deliver", "--json"])["retrying"], 1);
    let second_retry = log(&f)[0]["next_attempt_at"].as_i64().unwrap() - f.now();
    assert!(second_retry > first_retry, "backoff grows: {first_retry} then {second_retry}");
    f.advance(second_retry);
    assert_eq!(f.json(&["notify", "deliver", "--json"])["failed"], 1);
    let entry = log(&f)[0].clone();
    assert_eq!((entry["status"].as_str(), entry["attempts"].as_i64()), (Some("failed"), Some(3)), "{entry}");
    assert_eq!(hook.got().len(), 3);
    let text = f.ok(&["notify", "log", "--status", "failed"]);
    assert!(text.contains("failed") && text.contains("HTTP 503"), "{text}");
}

#[test]
fn a_command_target_gets_the_payload_on_stdin() {
    let f = Fleet::new();
    let out = f.out_dir().join("notes.jsonl");
    let command =
        format!("command = [\"sh\", \"-c\", \"cat >> {}; echo >> {}\"]", out.display(), out.display());
    board(&f, &["gave_up", "created"], &command);
    let id = f.create("x", &[]);
    assert_eq!(f.json(&["notify", "deliver", "--json"])["delivered"], 1);
    let line = std::fs::read_to_string(&out).unwrap();
    let doc: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        (doc["event"]["kind"].as_str(), doc["event"]["task_id"].as_str()),
        (Some("created"), Some(&*id))
    );
}

#[test]
fn a_delivery_cut_off_by_kill_9_is_delivered_again_and_none_is_lost() {
    let f = Fleet::new();
    let hook = Receiver::start();
    hook.answer(200, Duration::from_secs(30)); // holds the first request open
    board(&f, &["created"], &format!("webhook = {:?}\ntimeout_seconds = 60", hook.url));
    let ids: Vec<String> = (0..3).map(|i| f.create(&format!("card {i}"), &[])).collect();
    let mut deliverer = f.cmd(&["notify", "deliver"]).spawn().unwrap();
    wait_for("the first request to arrive", || !hook.got().is_empty());
    kill9(i64::from(deliverer.id()));
    let _ = deliverer.wait();
    hook.answer(200, Duration::ZERO);
    // Within its lease the cut-off delivery is not taken again; after it, it is.
    assert_eq!(f.json(&["notify", "deliver", "--json"])["delivered"], 0, "all three are leased");
    f.advance(331);
    assert_eq!(f.json(&["notify", "deliver", "--json"])["delivered"], 3);
    let delivered: std::collections::BTreeSet<String> =
        hook.got().iter().map(|r| r.body["event"]["task_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(delivered, ids.iter().cloned().collect(), "every event reached the endpoint");
    assert!(hook.got().len() >= 4, "the cut-off one was sent twice (at least once is the promise)");
    assert!(log(&f).iter().all(|d| d["status"] == "delivered"));
}

#[test]
fn a_hung_endpoint_never_holds_up_the_daemons_ticks() {
    let f = Fleet::new();
    let hook = Receiver::start();
    hook.answer(200, Duration::from_secs(120));
    board(&f, &["created", "completed"], &format!("webhook = {:?}\ntimeout_seconds = 120", hook.url));
    let first = f.create("first", &[]);
    let mut daemon = f.cmd(&["daemon", "--interval", "0.1"]).spawn().unwrap();
    wait_for("the notifier to send the first notification", || !hook.got().is_empty());
    // The endpoint holds that request for two minutes; meanwhile the daemon dispatches and settles a card.
    let second = f.create("second", &["--assignee", "p"]);
    wait_for("the card to be done while the endpoint hangs", || f.status(&second) == "done");
    assert_eq!(hook.got().len(), 1, "the notifier is still waiting on the first request");
    kill9(i64::from(daemon.id()));
    let _ = daemon.wait();
    let _ = first;
}

#[test]
fn a_hung_endpoint_of_one_board_does_not_hold_up_another_boards_notifications() {
    let f = Fleet::new();
    let hung = Receiver::start();
    hung.answer(200, Duration::from_secs(120));
    let fine = Receiver::start();
    board(&f, &["created"], &format!("webhook = {:?}\ntimeout_seconds = 120", hung.url));
    f.ok(&["board", "create", "other"]);
    let toml = format!("[[notify]]\non = [\"created\"]\nwebhook = {:?}\n", fine.url);
    std::fs::write(f.toml_path("other"), toml).unwrap();
    f.ok(&["--board", "other", "dispatch"]); // syncs its routes
    f.create("on the hung board", &[]);
    let mut daemon = f.cmd(&["daemon", "--interval", "0.1"]).spawn().unwrap();
    wait_for("the hung board's notification to be sent", || !hung.got().is_empty());
    f.ok(&["--board", "other", "create", "on the other board"]);
    wait_for("the other board's notification, while the first endpoint hangs", || fine.got().len() == 1);
    assert_eq!(fine.got()[0].body["board"], "other");
    kill9(i64::from(daemon.id()));
    let _ = daemon.wait();
}

#[test]
fn notify_config_errors_name_the_key_and_a_worker_cannot_deliver() {
    let f = Fleet::new();
    let text = format!(
        "{}\n[[notify]]\non = [\"nope\"]\nwebhook = \"http://127.0.0.1:1/\"\n",
        f.profile("p", "true", &[])
    );
    f.write_board_unchecked(&text);
    let err = f.fails(&["board", "check"], 2);
    assert!(err.contains("notify[0].on: 'nope' is not an event kind"), "{err}");
    let text = format!("{}\n[[notify]]\non = [\"created\"]\n", f.profile("p", "true", &[]));
    f.write_board_unchecked(&text);
    let err = f.fails(&["board", "check"], 2);
    assert!(err.contains("notify[0]: set exactly one of webhook and command"), "{err}");

    let f = Fleet::new();
    board(&f, &["created"], "command = [\"true\"]");
    let id = f.create("mine", &[]);
    let out = f.cmd(&["notify", "deliver"]).env("KANBAN_TASK", &id).output().unwrap();
    let err = expect_fail(&out, &"notify deliver", 1);
    assert!(err.contains("`kanban notify deliver` is not allowed inside a worker"), "{err}");
    let out = f.cmd(&["notify", "log"]).env("KANBAN_TASK", &id).output().unwrap();
    expect_ok(&out, &"notify log");
}
