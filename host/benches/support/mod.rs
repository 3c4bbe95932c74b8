//! Shared by the benches: sizes from the environment, sample statistics, and the report each bench prints
//! and writes into its own section of `docs/performance.md`.
//!
//! Each bench owns the part of the file between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; the rest
//! of the file (the prose) is left alone. `KANBAN_BENCH_DOCS=0` prints without touching the file, and so
//! does an unoptimized run (`cargo test --benches`, which CI runs with tiny sizes as a smoke test).

// Each bench is its own crate and uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A list of sizes such as `1000,10000` from the environment.
pub fn env_sizes(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => {
            v.split(',').map(|s| s.trim().parse().expect("sizes are comma-separated integers")).collect()
        }
        Err(_) => default.to_vec(),
    }
}

/// Median and 90th percentile of a set of samples.
#[derive(Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub p90: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        Stats {
            median: samples[samples.len() / 2],
            p90: samples[(samples.len() * 9 / 10).min(samples.len() - 1)],
        }
    }

    pub fn ms(&self) -> String {
        format!("median {}, p90 {}", ms(self.median), ms(self.p90))
    }
}

/// `100000` as `100,000`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

/// Time one closure call.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

/// Run the built `kanban` binary against `home` and return how long the whole process took. Panics (with
/// its stderr) if it fails: a benchmark of a failing command measures nothing.
pub fn run_kanban(home: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kanban"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("KANBAN_BOARD")
        .env_remove("KANBAN_NOW")
        .output()
        .expect("run kanban");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "kanban {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

/// One bench's table: printed as it fills, then written into its section of `docs/performance.md`.
pub struct Report {
    name: &'static str,
    command: String,
    setup: String,
    rows: Vec<(String, String)>,
}

impl Report {
    /// `setup` says what was measured on (sizes, runs); it heads the section.
    pub fn new(name: &'static str, setup: impl Into<String>) -> Report {
        let report = Report {
            name,
            command: format!("cargo bench --bench {name}"),
            setup: setup.into(),
            rows: vec![],
        };
        println!("{}: {}\n\n| measurement | result |\n|---|---|", report.command, report.setup);
        report
    }

    pub fn row(&mut self, measurement: impl Into<String>, result: impl Into<String>) {
        let (measurement, result) = (measurement.into(), result.into());
        println!("| {measurement} | {result} |");
        self.rows.push((measurement, result));
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "`{}`: {}.\nMachine: {}.\n\n| measurement | result |\n|---|---|\n",
            self.command,
            self.setup,
            machine()
        );
        for (measurement, result) in &self.rows {
            out.push_str(&format!("| {measurement} | {result} |\n"));
        }
        out
    }

    /// Replace this bench's section of `docs/performance.md` (unless `KANBAN_BENCH_DOCS=0`).
    pub fn publish(self) {
        if std::env::var("KANBAN_BENCH_DOCS").is_ok_and(|v| v == "0") {
            return;
        }
        if cfg!(debug_assertions) {
            // `cargo test --benches` runs the suite unoptimized as a smoke test; its numbers mean nothing.
            println!("\n(debug build: docs/performance.md left alone; `cargo bench` writes it)");
            return;
        }
        let path = docs_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let updated = replace_section(&text, self.name, &self.markdown())
            .unwrap_or_else(|| panic!("{} has no <!-- bench:{} --> section", path.display(), self.name));
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, updated).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
        println!("\nwrote the {} section of {}", self.name, path.display());
    }
}

fn docs_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/performance.md")
}

/// `text` with everything between the section's markers replaced by `body`; `None` if a marker is missing.
fn replace_section(text: &str, name: &str, body: &str) -> Option<String> {
    let (open, close) = (format!("<!-- bench:{name} -->\n"), format!("<!-- /bench:{name} -->"));
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(format!("{}{body}{}", &text[..start], &text[end..]))
}

/// The CPU, core count and date, so a reader knows what the numbers were measured on.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, release build, {date}")
}

/// Resident and peak resident memory of a process, in KiB, from `/proc/PID/status`.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The PostgreSQL server the fleet rows run against; without it the bench fails, saying so.
pub fn database_url() -> String {
    std::env::var("KANBAN_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL rows need a server: set KANBAN_TEST_DATABASE_URL (`.ci/postgres start DIR` starts \
             a throwaway one and prints it)"
        )
    })
}

/// A connection of the bench's own to board `slug`'s schema, to set it up and watch it without going
/// through what is measured.
pub fn pg_board(url: &str, slug: &str) -> postgres::Client {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute(&format!("SET search_path TO \"kanban_{slug}\"")).unwrap();
    client
}

/// A slug no earlier run against the same server used.
pub fn fresh_slug(prefix: &str) -> String {
    let mut id = [0u8; 5];
    getrandom::fill(&mut id).unwrap();
    format!("{prefix}-{}", hex::encode(id))
}
