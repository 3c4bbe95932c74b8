//! Policy runtime benchmark: `cargo bench --bench policy`.
//!
//! - one respawn-guard decision inside a tick (instance reused), per call;
//! - the first call in a fresh engine: with the compiled cache warm on disk, and cold;
//! - `kanban dispatch --dry-run` as a whole process, warm and cold cache.
//!
//! Prints medians; asserts nothing.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kanban::board::{Home, PolicyKind, write_atomic};
use kanban::policy::runtime::PolicyEngine;
use kanban::policy::{LoadedPolicy, builtins, context};
use kanban::store::NewTask;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::resolve(Some(dir.path().to_path_buf())).unwrap();
    let board = home.create_board("bench", None, None).unwrap();
    write_atomic(&board.toml_path(), b"[profiles.coder]\ncommand = [\"true\"]\n").unwrap();
    let board = home.open_board("bench").unwrap();
    let mut store = board.open_store().unwrap();
    let now = 1_800_000_000;
    let (task, _) = store
        .create_task(
            &NewTask { title: "bench".into(), assignee: Some("coder".into()), ..NewTask::default() },
            now,
        )
        .unwrap();
    for i in 0..5 {
        store.add_comment(&task.id, Some("bench"), &format!("comment {i}"), now).unwrap();
    }
    let spec = builtins::default_spec(PolicyKind::RespawnGuard);
    let cache = dir.path().join("cache/wasm");
    println!("| measurement | median |");
    println!("|---|---|");

    // Warm the disk cache, then time a fresh engine's first call against it.
    let mut cold_first = Vec::new();
    let mut warm_first = Vec::new();
    for round in 0..11 {
        if round % 2 == 0 {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let start = Instant::now();
        let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
        let mut guard = LoadedPolicy::load(&mut engine, &home, None, &spec).unwrap();
        let ctx =
            context::build(&board, &mut store, &task.id, &BTreeMap::new(), guard.config_json(), now).unwrap();
        guard.decide(&engine, &ctx).unwrap();
        if round % 2 == 0 { cold_first.push(start.elapsed()) } else { warm_first.push(start.elapsed()) }
    }
    println!("| first guard call, fresh engine, compiled cache warm | {} |", ms(median(warm_first)));
    println!("| first guard call, fresh engine, cache cold (compiles) | {} |", ms(median(cold_first)));

    // One decision with the instance reused, as inside a tick (context built once, as the tick does per card).
    let mut engine = PolicyEngine::new(Some(cache.clone())).unwrap();
    let mut guard = LoadedPolicy::load(&mut engine, &home, None, &spec).unwrap();
    let ctx =
        context::build(&board, &mut store, &task.id, &BTreeMap::new(), guard.config_json(), now).unwrap();
    guard.decide(&engine, &ctx).unwrap();
    let batches: Vec<Duration> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..1000 {
                guard.decide(&engine, &ctx).unwrap();
            }
            start.elapsed() / 1000
        })
        .collect();
    println!("| one guard decision, instance reused (per call) | {} |", us(median(batches)));
    let builds: Vec<Duration> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..100 {
                context::build(&board, &mut store, &task.id, &BTreeMap::new(), guard.config_json(), now)
                    .unwrap();
            }
            start.elapsed() / 100
        })
        .collect();
    println!("| building a card's context from the store (per card) | {} |", us(median(builds)));
    store.close().unwrap();

    let dispatch = |clear: bool| -> Duration {
        if clear {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kanban"))
            .arg("--home")
            .arg(dir.path())
            .args(["--board", "bench", "dispatch", "--dry-run", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        start.elapsed()
    };
    dispatch(false);
    let warm: Vec<Duration> = (0..11).map(|_| dispatch(false)).collect();
    let cold: Vec<Duration> = (0..5).map(|_| dispatch(true)).collect();
    println!("| kanban dispatch --dry-run (process, one ready card), cache warm | {} |", ms(median(warm)));
    println!("| kanban dispatch --dry-run (process, one ready card), cache cold | {} |", ms(median(cold)));
}
