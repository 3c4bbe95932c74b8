//! Policies per language: `KANBAN_POLYGLOT_DIR=DIR cargo bench --bench polyglot`, DIR built by
//! `tests/plugins-polyglot/build.sh DIR`. The three examples of docs/plugins.md: the Rust hold-guard (built
//! here from docs/examples/hold-guard), the Python business-hours guard and the JavaScript label router.
//!
//! For each: the component's size; installing it with no compiled cache (`kanban plugin install`, whole
//! process: it compiles); loading it as a command does with the cache warm (read and verify the plugin,
//! load its compiled artifact, in a fresh engine); one decision with the instance reused; the instance's
//! memory and fuel. Then a dry-run tick over 1,000 ready cards with the Python guard, whole process.
//!
//! Without KANBAN_POLYGLOT_DIR only the Rust rows run. Prints medians and writes them into
//! `docs/performance.md`; asserts nothing.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kanban::board::{Home, write_atomic};
use kanban::policy::runtime::PolicyEngine;
use kanban::policy::{Loaded, PolicyContext, context, plugins};
use kanban::store::NewTask;
use support::{Report, Stats, env_usize, run_kanban, us};

/// A guard or router example and the config it is enabled with.
struct Example {
    language: &'static str,
    name: &'static str,
    file: PathBuf,
    config: &'static str,
}

fn main() {
    let runs = env_usize("KANBAN_BENCH_RUNS", 11);
    let mut examples = vec![Example {
        language: "Rust",
        name: "hold-guard",
        file: hold_guard(),
        config: r#"{"marker": "[hold]"}"#,
    }];
    match std::env::var_os("KANBAN_POLYGLOT_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            examples.push(Example {
                language: "Python",
                name: "business-hours-guard",
                file: dir.join("business_hours_guard.wasm"),
                config: r#"{"hours": {"coder": [0, 24]}}"#,
            });
            examples.push(Example {
                language: "JavaScript",
                name: "label-router",
                file: dir.join("label_router.wasm"),
                config: r#"{"labels": {"web": "coder"}, "default": "coder"}"#,
            });
        }
        None => println!("KANBAN_POLYGLOT_DIR is not set: Python and JavaScript rows skipped"),
    }
    let mut report = Report::new(
        "polyglot",
        format!(
            "the docs examples in Rust (hold-guard), Python (business-hours-guard, componentize-py 0.25.1) and \
             JavaScript (label-router, jco 1.34.0), on a board with one ready card; medians of {runs} runs"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    write_atomic(&board.toml_path(), b"[profiles.coder]\ncommand = [\"true\"]\n").unwrap();
    let board = home.open_board("bench").unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;
    let (card, _) =
        store.create_task(&NewTask { title: "[web] ship it".into(), ..NewTask::default() }, now).unwrap();
    let facts = store.card_facts(&card.id, context::RUNS, context::EVENTS, context::COMMENTS).unwrap();
    let ctx = context::record(&board, facts, &BTreeMap::new(), now);
    store.close().unwrap();
    let cache = dir.path().join("cache/wasm");

    for ex in &examples {
        let bytes = std::fs::read(&ex.file).unwrap_or_else(|e| panic!("read {}: {e}", ex.file.display()));
        let lang = ex.language;
        report.row(format!("{lang}: component size"), format!("{:.1} MB", bytes.len() as f64 / 1e6));
        // Install with no compiled cache: a whole `kanban plugin install`, which compiles.
        let cold: Vec<Duration> = (0..if lang == "Rust" { runs.min(5) } else { 1 })
            .map(|_| {
                let _ = std::fs::remove_dir_all(&cache);
                run_kanban(dir.path(), &["plugin", "install", ex.file.to_str().unwrap(), "--name", ex.name])
            })
            .collect();
        report.row(
            format!("{lang}: `kanban plugin install`, no compiled cache (compiles)"),
            Stats::of(cold).ms(),
        );
        // Load as a command does with the cache warm, for a plugin installed a while ago: resolve (verify)
        // and load the artifact. Files changed in the last 2 s are hashed in full (their fingerprints are
        // not recorded yet); the first load after that records them.
        std::thread::sleep(Duration::from_millis(2100));
        let load = || {
            let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
            let (sha, bytes) = plugins::resolve(&home, ex.name).unwrap();
            engine.component(&sha, &bytes).unwrap();
        };
        let (first_load, ()) = support::time(load);
        report.row(
            format!("{lang}: load, compiled cache warm, fresh engine, first since install (hashes in full)"),
            support::ms(first_load),
        );
        let warm: Vec<Duration> = (0..runs).map(|_| support::time(load).0).collect();
        report.row(format!("{lang}: load, compiled cache warm, fresh engine"), Stats::of(warm).ms());
        // One decision, instance reused (the first call instantiates and validates the config).
        let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
        let (sha, bytes) = plugins::resolve(&home, ex.name).unwrap();
        let component = engine.component(&sha, &bytes).unwrap();
        let kind = engine.shape(&component).unwrap().kind;
        let mut policy = Loaded::from_component(component, &sha, kind, ex.name, None);
        let mut ctx: PolicyContext = ctx.clone();
        match &mut policy {
            Loaded::Guard(p) => p.set_config(ex.config.into()),
            Loaded::Router(p) => p.set_config(ex.config.into()),
            _ => unreachable!(),
        }
        let start = Instant::now();
        let mut decide = |engine: &PolicyEngine, ctx: &mut PolicyContext| match &mut policy {
            Loaded::Guard(p) => {
                p.decide(engine, ctx).unwrap();
                p.last_cost()
            }
            Loaded::Router(p) => {
                p.route(engine, ctx).unwrap();
                p.last_cost()
            }
            _ => unreachable!("the examples are a guard and a router"),
        };
        let first_cost = decide(&engine, &mut ctx).unwrap();
        let first = start.elapsed();
        report
            .row(format!("{lang}: first decision (instantiates, validates the config)"), support::ms(first));
        let per_batch = if lang == "Rust" { 1000 } else { 100 };
        let reused: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..per_batch {
                    decide(&engine, &mut ctx);
                }
                start.elapsed() / per_batch
            })
            .collect();
        let cost = decide(&engine, &mut ctx).unwrap();
        report.row(format!("{lang}: one decision, instance reused"), us(Stats::of(reused).median));
        report.row(
            format!("{lang}: memory of one instance; fuel of the first and of a later decision"),
            format!(
                "{:.1} MiB; {} / {}",
                first_cost.peak_memory.max(cost.peak_memory) as f64 / (1 << 20) as f64,
                fuel(first_cost.fuel_used),
                fuel(cost.fuel_used)
            ),
        );
    }

    // A dry-run tick over 1,000 ready cards, each asked of the Python guard.
    if let Some(py) = examples.iter().find(|e| e.language == "Python") {
        let cards = env_usize("KANBAN_BENCH_CARDS", 1000);
        let toml = format!(
            "[dispatch]\nmax_in_progress = {}\n\n[profiles.coder]\ncommand = [\"true\"]\n\n\
             [[policies]]\nkind = \"respawn-guard\"\nplugin = {:?}\n[policies.config]\nhours = {{ coder = [0, 24] }}\n",
            cards + 1,
            py.name
        );
        write_atomic(&board.toml_path(), toml.as_bytes()).unwrap();
        let mut store = board.open_store().unwrap();
        let batch: Vec<NewTask> = (0..cards)
            .map(|i| NewTask {
                title: format!("card {i}"),
                assignee: Some("coder".into()),
                ..NewTask::default()
            })
            .collect();
        store.create_tasks(&batch, now).unwrap();
        store.close().unwrap();
        let args = ["--board", "bench", "dispatch", "--dry-run", "--json"];
        run_kanban(dir.path(), &args);
        let ticks: Vec<Duration> = (0..runs.min(5)).map(|_| run_kanban(dir.path(), &args)).collect();
        report.row(
            format!("`kanban dispatch --dry-run`, {cards} ready cards, Python guard on each, whole process"),
            Stats::of(ticks).ms(),
        );
    }
    report.publish();
}

fn fuel(units: u64) -> String {
    if units >= 1_000_000 {
        format!("{:.2} M", units as f64 / 1e6)
    } else {
        format!("{:.1} k", units as f64 / 1e3)
    }
}

/// The Rust example, built as its README says.
fn hold_guard() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/test-plugins");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(target, |t| PathBuf::from(t).join("test-plugins"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("docs/examples/hold-guard/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run cargo for the hold-guard example");
    assert!(status.success(), "building docs/examples/hold-guard failed");
    target.join("wasm32-wasip2/release/hold_guard.wasm")
}
