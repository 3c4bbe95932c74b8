//! The projects `kanban plugin new` writes, built as their READMEs say with the real toolchains (cargo for
//! wasm32-wasip2, componentize-py, jco), their unit tests run natively, installed into a home and called
//! once with `kanban plugin run` on the context of a real card.
//!
//! The builds share what can be shared between runs: with `KANBAN_POLYGLOT_DIR` set, cargo's target folder
//! lives in `$KANBAN_POLYGLOT_DIR/new-projects/` and the host's compile cache is `$KANBAN_POLYGLOT_DIR/cache`
//! (the one tests/polyglot/guests.rs uses), so a second run mostly reuses them; without it, both are under
//! the test's temporary folder. The projects themselves are written afresh every time. Each build and
//! install prints its time on stderr (`--nocapture` to see it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::common::*;

const KINDS: [&str; 4] = ["respawn-guard", "routing", "diagnostics", "decompose"];

/// The card every plugin decides about: a marked title with a prefix, and a checklist in its body.
const TITLE: &str = "[hold] fix: Migrate billing";
const BODY: &str = "- [ ] write the migration\n- [ ] switch the reads";

/// What a test builds in: a fresh folder for the projects, cargo's target folder and the compile cache.
struct Work {
    _temp: tempfile::TempDir,
    projects: PathBuf,
    cargo_target: PathBuf,
    cache: PathBuf,
}

impl Work {
    fn new() -> Work {
        let temp = tempfile::tempdir().expect("temp dir");
        let shared =
            std::env::var_os("KANBAN_POLYGLOT_DIR").map_or_else(|| temp.path().join("shared"), PathBuf::from);
        let cache = shared.join("cache");
        std::fs::create_dir_all(&cache).expect("create the shared compile cache");
        let cargo_target = shared.join("new-projects").join("cargo-target");
        let projects = temp.path().join("projects");
        Work { _temp: temp, projects, cargo_target, cache }
    }

    /// `kanban plugin new NAME --kind KIND --lang LANG` into the projects folder; the project's path.
    fn new_project(&self, k: &Kanban, lang: &str, kind: &str) -> (String, PathBuf) {
        let name = format!("new-{lang}-{kind}");
        let dir = self.projects.join(&name);
        k.ok(&["plugin", "new", &name, "--kind", kind, "--lang", lang, "--dir", dir.to_str().unwrap()]);
        (name, dir)
    }
}

/// A home with one card, its context saved as a fixture (as the READMEs say), and the compile cache shared.
fn home_with_fixture(work: &Work) -> (Kanban, PathBuf) {
    let k = Kanban::new();
    // `--body=` because the body starts with a dash.
    let id = k.create(TITLE, &[&format!("--body={BODY}")]);
    let fixture = k.home().join("context.json");
    std::fs::write(&fixture, k.ok(&["plugin", "context", &id])).unwrap();
    // The host caches compiled components under <home>/cache/wasm by sha256: one cache for every home here.
    std::os::unix::fs::symlink(&work.cache, k.home().join("cache")).unwrap();
    (k, fixture)
}

/// Run `program args` in `dir`, assert it succeeds, return its stdout.
fn run(dir: &Path, cmd: &mut Command) -> String {
    let out = cmd.current_dir(dir).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} in {} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn cargo(target_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    cmd
}

/// The config each kind's sample rule is called with.
fn sample_config(kind: &str) -> Value {
    match kind {
        "respawn-guard" => json!({"marker": "[hold]", "retry_after_seconds": 600}),
        "routing" => json!({"prefixes": {"[hold]": "writer", "[hold] fix:": "coder"}}),
        "diagnostics" => json!({"min_length": 100, "severity": "error"}),
        "decompose" => json!({"sequential": true, "assignee": "coder"}),
        other => panic!("no kind {other}"),
    }
}

/// Check the decision of each kind's sample rule on the fixture's card, with `sample_config`.
fn check_decision(kind: &str, now: i64, d: &Value) {
    match kind {
        "respawn-guard" => {
            let want = json!({"decision": "defer", "reason": "held: the title contains [hold]", "retry_after": now + 600});
            assert_eq!(d, &want);
        }
        // The longest prefix wins.
        "routing" => assert_eq!(d, &json!({"assignee": "coder"})),
        "diagnostics" => {
            let findings = d["findings"].as_array().unwrap_or_else(|| panic!("no findings: {d}"));
            assert_eq!(findings.len(), 1, "{d}");
            assert_eq!(findings[0]["rule"], "short-body", "{d}");
            assert_eq!(findings[0]["severity"], "error", "{d}");
            assert_eq!(findings[0]["title"], "the card's body is short", "{d}");
        }
        "decompose" => {
            let children = d["children"].as_array().unwrap_or_else(|| panic!("no children: {d}"));
            let titles: Vec<&str> = children.iter().map(|c| c["title"].as_str().unwrap()).collect();
            assert_eq!(titles, ["write the migration", "switch the reads"], "{d}");
            assert_eq!(children[0]["assignee"], "coder", "{d}");
            assert_eq!(children[0]["depends_on"], json!([]), "{d}");
            assert_eq!(children[1]["depends_on"], json!([0]), "{d}");
            assert!(children[0]["body"].as_str().unwrap().starts_with("Part of t_"), "{d}");
        }
        other => panic!("no kind {other}"),
    }
}

/// Install `wasm` (it describes itself as `name`, of `kind`) and call it by that name on the fixture.
fn install_and_run(k: &Kanban, wasm: &Path, name: &str, kind: &str, fixture: &Path) {
    let installed = k.ok(&["plugin", "install", wasm.to_str().unwrap()]);
    assert!(installed.starts_with(&format!("Installed {name} ({kind} plugin 0.1.0")), "{installed}");
    let config = sample_config(kind);
    let run = k.json(&[
        "plugin",
        "run",
        name,
        "--context",
        fixture.to_str().unwrap(),
        "--config",
        &config.to_string(),
        "--json",
    ]);
    assert_eq!(run["kind"], kind, "{run}");
    check_decision(kind, k.now(), &run["decision"]);
    // The plugin's own validate-config refuses a bad config, naming the key.
    let err = k.fails(
        &["plugin", "run", name, "--context", fixture.to_str().unwrap(), "--config", r#"{"nope": 1}"#],
        1,
    );
    assert!(err.contains("config.nope: unknown key"), "{err}");
}

/// Rust: all four kinds are formatted, build for wasm32-wasip2 outside the repository (the SDK vendored),
/// install, and decide; the routing project's unit tests pass natively.
#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn rust_projects_build_install_and_decide() {
    let work = Work::new();
    let (k, fixture) = home_with_fixture(&work);
    let target = &work.cargo_target;
    for kind in KINDS {
        let started = Instant::now();
        let (name, dir) = work.new_project(&k, "rust", kind);
        // As written, the project is formatted as `cargo fmt` would (its vendored SDK by its own rustfmt.toml).
        run(&dir, &mut cargo(target, &["fmt", "--check"]));
        if kind == "routing" {
            let tests = run(&dir, &mut cargo(target, &["test"]));
            assert!(tests.contains("test result: ok. 3 passed"), "{tests}");
        }
        let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
        run(&dir, &mut cargo(target, &["build", "--target", "wasm32-wasip2", "--release"]));
        // The lockfile pins everything the build needs, in Cargo's own form.
        assert_eq!(
            std::fs::read_to_string(dir.join("Cargo.lock")).unwrap(),
            lock,
            "{kind}: cargo changed Cargo.lock"
        );
        let wasm = target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        let built = started.elapsed();
        install_and_run(&k, &wasm, &name, kind, &fixture);
        eprintln!("rust {kind}: generate + build {built:.1?}, + install + run {:.1?}", started.elapsed());
    }
}

/// Python: the four projects' unit tests pass; the respawn guard and the decomposition build with
/// componentize-py, install and decide.
#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn python_projects_test_build_install_and_decide() {
    let work = Work::new();
    let (k, fixture) = home_with_fixture(&work);
    let mut projects = Vec::new();
    for kind in KINDS {
        let (name, dir) = work.new_project(&k, "python", kind);
        let mut unittest = Command::new("python3");
        unittest.args(["-m", "unittest", "-v"]).env("PYTHONDONTWRITEBYTECODE", "1");
        run(&dir, &mut unittest);
        projects.push((kind, name, dir));
    }
    for (kind, name, dir) in
        projects.iter().filter(|(kind, ..)| ["respawn-guard", "decompose"].contains(kind))
    {
        let started = Instant::now();
        run(dir, &mut Command::new(dir.join("build.sh")));
        let built = started.elapsed();
        let wasm = dir.join(format!("{}.wasm", name.replace('-', "_")));
        install_and_run(&k, &wasm, name, kind, &fixture);
        eprintln!("python {kind}: generate + build {built:.1?}, + install + run {:.1?}", started.elapsed());
    }
}

/// JavaScript: the four projects' unit tests pass; the router and the decomposition build with jco, install
/// and decide.
#[test]
#[ignore = "needs Python/JS toolchains: KANBAN_POLYGLOT_DIR=DIR after tests/plugins-polyglot/build.sh DIR"]
fn js_projects_test_build_install_and_decide() {
    let work = Work::new();
    let (k, fixture) = home_with_fixture(&work);
    let mut projects = Vec::new();
    for kind in KINDS {
        let (name, dir) = work.new_project(&k, "js", kind);
        run(&dir, Command::new("node").arg("--test"));
        projects.push((kind, name, dir));
    }
    for (kind, name, dir) in projects.iter().filter(|(kind, ..)| ["routing", "decompose"].contains(kind)) {
        let started = Instant::now();
        run(dir, &mut Command::new(dir.join("build.sh")));
        let built = started.elapsed();
        let wasm = dir.join(format!("{}.wasm", name.replace('-', "_")));
        install_and_run(&k, &wasm, name, kind, &fixture);
        eprintln!("js {kind}: generate + build {built:.1?}, + install + run {:.1?}", started.elapsed());
    }
}
