//! Notifications: `[[notify]]` entries of board.toml deliver events of chosen kinds to a webhook (an HTTP
//! POST of a JSON payload signed with HMAC-SHA256 of the board's secret) or a command (the payload on its
//! stdin). The store's outbox holds every (event, target) from the transaction that appended the event;
//! this file keeps the routes in step with board.toml and delivers what is due, at least once: a delivery
//! is leased to one deliverer, retried with exponential backoff and jitter, and kept as `failed` after its
//! last attempt, never dropped. Delivery runs beside the tick (the daemon's notifier thread, or `kanban
//! notify deliver`), never inside it, so a broken endpoint cannot slow the tick.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::board::{Board, NotifySpec};
use crate::store::{Attempt, Delivery, Store};

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Kanban-Signature";
/// How many due deliveries one pass leases at most.
const BATCH: usize = 32;
/// The longest wait between two attempts.
const MAX_BACKOFF: i64 = 3600;

/// A target's spec as the outbox stores it: everything a deliverer needs, whatever board.toml says later.
fn target_json(spec: &NotifySpec) -> String {
    let mut target = json!({"timeout_seconds": spec.timeout_seconds, "max_attempts": spec.max_attempts});
    if let Some(url) = &spec.webhook {
        target["webhook"] = json!(url);
    }
    if let Some(command) = &spec.command {
        target["command"] = json!(command);
    }
    target.to_string()
}

/// Make the board's routes match its `[[notify]]` entries (a write only when they changed). Events
/// appended from then on enter the outbox.
pub fn sync_routes(board: &Board, store: &mut Store) -> anyhow::Result<bool> {
    let routes: Vec<(String, String)> = board
        .config
        .notify
        .iter()
        .flat_map(|spec| {
            let target = target_json(spec);
            spec.on.iter().map(move |kind| (kind.clone(), target.clone()))
        })
        .collect();
    Ok(store.sync_notify_routes(&routes)?)
}

/// The board's signing secret, made on first use (32 random bytes, hex, mode 0600, in the board folder).
pub fn secret(board: &Board) -> anyhow::Result<String> {
    let path = board.notify_key_path();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim().to_string();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    let key = hex::encode(bytes);
    let tmp = path.with_file_name(format!(".notify.key.{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(key.as_bytes())?;
        file.sync_all()?;
    }
    // Two deliverers making it at once: the first link wins, and both read the winner's.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
    Ok(std::fs::read_to_string(&path)?.trim().to_string())
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON document a target receives.
pub fn payload(board: &Board, d: &Delivery) -> Value {
    json!({
        "delivery": d.id,
        "board": board.slug,
        "attempt": d.attempts + 1,
        "event": {
            "id": d.event_id,
            "kind": d.kind,
            "task_id": d.task_id,
            "run_id": d.run_id,
            "created_at": d.event_at,
            "payload": d.payload,
        },
    })
}

/// The wait before attempt `attempts + 1` after a failure: 10 s doubling, at most an hour, less up to
/// a fifth drawn from the delivery (so retries of many deliveries spread apart).
pub fn backoff(delivery: i64, attempts: i64) -> i64 {
    let full = (10_i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF);
    let spread = delivery.wrapping_mul(2_654_435_761).rem_euclid(1000); // 0..1000
    full - full * spread / 5000
}

/// What one pass delivered.
#[derive(Debug, Default, Serialize)]
pub struct Pass {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// Deliver what is due on the board now. Each attempt is recorded as it ends.
pub fn deliver_due(board: &Board, store: &mut Store, now: i64) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    if store.next_delivery_at()?.is_none_or(|at| at > now) {
        return Ok(pass); // a read, no write, when nothing is due
    }
    // A lease outlives the longest attempt, so a live deliverer is never overtaken.
    let due = store.lease_deliveries(now, 300 + 30, BATCH)?;
    if due.is_empty() {
        return Ok(pass);
    }
    let secret = secret(board)?;
    for d in due {
        let result = attempt(board, &secret, &d);
        let max_attempts = d.target["max_attempts"].as_i64().unwrap_or(8);
        let now = crate::clock::now();
        let outcome = match result {
            Ok(()) => {
                pass.delivered += 1;
                Attempt::Delivered
            }
            Err(error) if d.attempts + 1 >= max_attempts => {
                tracing::warn!(board = %board.slug, delivery = d.id, %error, "notification failed for the last time");
                pass.failed += 1;
                Attempt::GiveUp { error }
            }
            Err(error) => {
                tracing::info!(board = %board.slug, delivery = d.id, %error, "notification failed; will retry");
                pass.retrying += 1;
                Attempt::Retry { error, at: now + backoff(d.id, d.attempts) }
            }
        };
        store.record_attempt(d.id, &outcome, now)?;
    }
    Ok(pass)
}

/// One attempt: `Ok` when the target took it (HTTP 2xx, or exit 0), else what went wrong, in one line.
fn attempt(board: &Board, secret: &str, d: &Delivery) -> Result<(), String> {
    let body = payload(board, d).to_string();
    let timeout = Duration::from_secs(d.target["timeout_seconds"].as_u64().unwrap_or(10).clamp(1, 300));
    if let Some(url) = d.target["webhook"].as_str() {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("kanban/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let response = agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Kanban-Delivery", d.id.to_string())
            .header("X-Kanban-Event", d.kind.as_str())
            .header(SIGNATURE_HEADER, signature(secret, body.as_bytes()))
            .send(body.as_bytes())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        return if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url}: HTTP {}", status.as_u16()))
        };
    }
    if let Some(command) = d.target["command"].as_array() {
        let argv: Vec<String> = command.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
        return run_command(&argv, &body, secret, timeout);
    }
    Err(format!("the outbox row names no webhook and no command: {}", d.target))
}

fn run_command(argv: &[String], body: &str, secret: &str, timeout: Duration) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .env("KANBAN_NOTIFY_SIGNATURE", signature(secret, body.as_bytes()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading its input is its own business; its exit status decides.
        let _ = stdin.write_all(body.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{program} exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_to_an_hour_and_spreads() {
        assert!((8..=10).contains(&backoff(1, 0)));
        assert!((16..=20).contains(&backoff(1, 1)));
        assert!((2880..=3600).contains(&backoff(1, 30)));
        let spread: std::collections::BTreeSet<i64> = (0..50).map(|d| backoff(d, 3)).collect();
        assert!(spread.len() > 10, "{spread:?}");
    }
}
