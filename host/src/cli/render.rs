//! Text and JSON rendering for people and scripts. JSON shapes are the contract in `docs/cli.md`.

use std::io::Write;

use serde::Serialize;

use crate::store::{Attachment, Event, Run, Task};

/// Print one JSON document on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// UTC `YYYY-MM-DD HH:MM:SS` for a unix timestamp (civil-from-days, no time-zone database needed).
pub fn time(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

pub fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

pub fn task_line(task: &Task) -> String {
    format!(
        "{}  {:<9}  {:>4}  {:<12}  {}",
        task.id,
        task.status,
        task.priority,
        task.assignee.as_deref().unwrap_or("-"),
        task.title
    )
}

pub fn task_table(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "no cards\n".into();
    }
    let mut out = format!("{:<10}  {:<9}  {:>4}  {:<12}  {}\n", "ID", "STATUS", "PRI", "ASSIGNEE", "TITLE");
    for task in tasks {
        out.push_str(&task_line(task));
        out.push('\n');
    }
    out
}

pub fn event_line(event: &Event) -> String {
    let payload = match &event.payload {
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        other => format!(" {other}"),
    };
    format!(
        "#{:<6} {}  {:<10}  {}{}",
        event.id,
        time(event.created_at),
        event.task_id.as_deref().unwrap_or("-"),
        event.kind,
        payload
    )
}

pub fn run_line(run: &Run) -> String {
    format!(
        "run {:<5} {}  {:<8}  {:<18}  profile={}  exit={}{}",
        run.id,
        time(run.started_at),
        run.status,
        run.outcome.as_deref().unwrap_or("-"),
        opt(&run.profile),
        run.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        run.error.as_deref().map(|e| format!("  error={e}")).unwrap_or_default(),
    )
}

pub fn attachment_line(att: &Attachment) -> String {
    format!(
        "{:<5} {:<32} {:>10} bytes  sha256:{}",
        att.id,
        att.stored_name,
        att.size,
        &att.sha256[..att.sha256.len().min(16)]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_800_000_000), "2027-01-15 08:00:00");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00");
    }
}
