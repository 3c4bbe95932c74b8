//! `kanban gc`: print what [`crate::gc::run`] removed (or would remove).

use super::{Invocation, render};
use crate::clock;

pub fn run(inv: &Invocation, older_than: i64, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let (board, mut store) = inv.open()?;
    let report = crate::ops::gc::run(&board, &mut store, older_than, dry_run, clock::now())?;
    store.close()?;
    if json {
        return render::json(&report);
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    let kinds: Vec<String> = report.events_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "{verb} {}{}, {} and {} ({}) older than {} from board '{}'",
        plural(report.events_deleted, "event"),
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        plural(report.logs.len() as u64, "log file"),
        plural(report.workspaces.len() as u64, "workspace"),
        human_bytes(report.bytes_freed),
        render::time(report.cutoff),
        report.board,
    );
    for removed in report.logs.iter().chain(&report.workspaces) {
        println!("  {}  {}", removed.task, removed.path.display());
    }
    for kept in &report.kept {
        println!("  kept {}: {}", kept.path.display(), kept.reason);
    }
    Ok(())
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(super::plural(1, "workspace"), "1 workspace");
        assert_eq!(super::plural(0, "log file"), "0 log files");
    }
}
