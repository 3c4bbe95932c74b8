//! `kanban plugin new`: the project files for every language and kind, and the refusals. The real builds of
//! the projects (cargo, componentize-py, jco) are in the polyglot target (tests/polyglot/new_projects.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;

const KINDS: [&str; 4] = ["respawn-guard", "routing", "diagnostics", "decompose"];

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `dir`, as paths relative to it with `/`.
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
}

/// The SDK's files, vendored as plugins/kanban-policy has them, plus the repository's rustfmt.toml.
const SDK_FILES: [&str; 14] = [
    "Cargo.toml",
    "README.md",
    "src/bindings.rs",
    "src/config.rs",
    "src/context.rs",
    "src/decompose.rs",
    "src/diagnostics.rs",
    "src/export.rs",
    "src/guard.rs",
    "src/lib.rs",
    "src/routing.rs",
    "src/testing.rs",
    "src/text.rs",
    "wit/policy.wit",
];

/// The files of a project in each language.
fn expected_files(lang: &str) -> BTreeSet<String> {
    let own: &[&str] = match lang {
        "rust" => &["Cargo.toml", "Cargo.lock", "README.md", ".gitignore", "src/lib.rs"],
        "python" => &[
            "app.py",
            "policy.py",
            "test_policy.py",
            "build.sh",
            "wit/policy.wit",
            "README.md",
            ".gitignore",
        ],
        "js" => &[
            "component.js",
            "policy.js",
            "policy.test.js",
            "package.json",
            "package-lock.json",
            "build.sh",
            "wit/policy.wit",
            "README.md",
            ".gitignore",
        ],
        other => panic!("no language {other}"),
    };
    let mut files: BTreeSet<String> = own.iter().map(|f| f.to_string()).collect();
    if lang == "rust" {
        files.extend(SDK_FILES.iter().map(|f| format!("vendor/kanban-policy/{f}")));
        files.insert("vendor/kanban-policy/rustfmt.toml".to_string());
    }
    files
}

/// Every language and kind: the files, the name and kind filled in, the README's commands, what is printed.
#[test]
fn plugin_new_writes_a_project_for_every_language_and_kind() {
    let k = Kanban::new();
    let out = tempfile::tempdir().unwrap();
    for lang in ["rust", "python", "js"] {
        for kind in KINDS {
            let name = format!("my-{kind}");
            let crate_name = name.replace('-', "_");
            let dir = out.path().join(format!("{lang}-{kind}"));
            let args =
                ["plugin", "new", &name, "--kind", kind, "--lang", lang, "--dir", dir.to_str().unwrap()];
            let printed = k.ok(&args);
            assert_eq!(files(&dir), expected_files(lang), "{lang} {kind}");

            // What was written and what to run next.
            for file in ["README.md", ".gitignore"] {
                assert!(printed.contains(&format!("\n  {file}\n")), "{lang} {kind}: {printed}");
            }
            let wasm = match lang {
                "rust" => format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
                _ => format!("{crate_name}.wasm"),
            };
            let (test, build) = match lang {
                "rust" => ("cargo test", "cargo build --target wasm32-wasip2 --release"),
                "python" => ("python3 -m unittest", "./build.sh"),
                _ => ("node --test", "./build.sh"),
            };
            for command in [
                format!("cd {}", dir.display()),
                test.to_string(),
                build.to_string(),
                "kanban plugin context ID > context.json".to_string(),
                format!("kanban plugin run {wasm} --context context.json --config '"),
                format!("kanban plugin install {wasm}"),
            ] {
                assert!(printed.contains(&command), "{lang} {kind}: no `{command}` in\n{printed}");
            }

            // The README shows the same commands and the board.toml entry, with no placeholder left.
            let readme = read(dir.join("README.md"));
            assert!(readme.starts_with(&format!("# {name}\n")), "{readme}");
            for text in [
                test,
                build,
                &format!("kanban plugin install {wasm}"),
                &format!("kanban plugin run {wasm} --context context.json"),
                &format!("kind = \"{kind}\"\nplugin = \"{name}\""),
            ] {
                assert!(readme.contains(text), "{lang} {kind}: README.md lacks `{text}`");
            }
            for file in files(&dir) {
                if !file.starts_with("vendor/") {
                    assert!(
                        !read(dir.join(&file)).contains("{{"),
                        "{lang} {kind}: a placeholder is left in {file}"
                    );
                }
            }

            // The name, the kind and the world where each language's toolchain and `describe` read them.
            let world = format!("{kind}-policy");
            match lang {
                "rust" => {
                    let manifest = read(dir.join("Cargo.toml"));
                    assert!(manifest.contains(&format!("name = \"{name}\"")), "{manifest}");
                    assert!(
                        manifest.contains("kanban-policy = { path = \"vendor/kanban-policy\" }"),
                        "{manifest}"
                    );
                    assert!(
                        manifest.contains("kanban-policy = \"0.1\""),
                        "the crates.io switch is explained"
                    );
                    assert!(
                        manifest.contains("\n[workspace]\nexclude = [\"vendor\"]\n"),
                        "its own workspace"
                    );
                    assert!(read(dir.join("Cargo.lock")).contains(&format!("name = \"{name}\"")));
                    let lib = read(dir.join("src/lib.rs"));
                    assert!(lib.contains("kanban_policy::testing::ContextBuilder"), "{kind}: a unit test");
                    assert!(lib.contains("#[test]"), "{kind}: a unit test");
                }
                "python" => {
                    let app = read(dir.join("app.py"));
                    assert!(app.contains(&format!("PluginInfo(name=\"{name}\"")), "{app}");
                    let class = kind.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect::<String>();
                    assert!(app.contains(&format!("class {class}(exports.{class}):")), "{app}");
                    assert!(read(dir.join("test_policy.py")).contains("unittest"));
                    let build = read(dir.join("build.sh"));
                    assert!(build.contains(&format!("--world {world}")), "{build}");
                    assert!(build.contains(&format!("{crate_name}.wasm")), "{build}");
                    assert!(build.contains("COMPONENTIZE_PY_VERSION=0.25.1"), "{build}");
                    assert!(is_executable(&dir.join("build.sh")));
                }
                _ => {
                    let package: serde_json::Value =
                        serde_json::from_str(&read(dir.join("package.json"))).unwrap();
                    assert_eq!(package["name"], name.as_str());
                    assert_eq!(package["devDependencies"]["@bytecodealliance/jco"], "1.34.0");
                    assert_eq!(package["devDependencies"]["@bytecodealliance/componentize-js"], "0.22.0");
                    let lock: serde_json::Value =
                        serde_json::from_str(&read(dir.join("package-lock.json"))).unwrap();
                    assert_eq!(lock["name"], name.as_str(), "npm ci refuses a lockfile named otherwise");
                    assert_eq!(lock["packages"][""]["name"], name.as_str());
                    assert_eq!(lock["packages"][""]["devDependencies"], package["devDependencies"]);
                    let component = read(dir.join("component.js"));
                    assert!(component.contains(&format!("name: '{name}'")), "{component}");
                    let export = kind.split('-').enumerate().fold(String::new(), |acc, (i, w)| {
                        if i == 0 { w.to_string() } else { acc + &w[..1].to_uppercase() + &w[1..] }
                    });
                    assert!(component.contains(&format!("export const {export} = {{")), "{component}");
                    assert!(read(dir.join("policy.test.js")).contains("node:test"));
                    let build = read(dir.join("build.sh"));
                    assert!(
                        build.contains(&format!("--world-name {world} --disable http fetch-event")),
                        "{build}"
                    );
                    assert!(is_executable(&dir.join("build.sh")));
                }
            }
        }
    }
}

/// Without --dir the project goes to ./NAME; `plugin new` needs no home and creates nothing in it.
#[test]
fn plugin_new_writes_to_the_name_in_the_current_folder_and_needs_no_home() {
    let k = Kanban::new();
    let cwd = tempfile::tempdir().unwrap();
    let out = k
        .cmd(&["plugin", "new", "crash-cooldown", "--kind", "respawn-guard"])
        .current_dir(cwd.path())
        .output();
    let printed = expect_ok(&out.unwrap(), &"plugin new crash-cooldown");
    assert!(printed.starts_with("Wrote a respawn-guard plugin in Rust to crash-cooldown:\n"), "{printed}");
    assert_eq!(
        names(cwd.path()),
        BTreeSet::from(["crash-cooldown".to_string()]),
        "no temporary folder is left"
    );
    assert_eq!(files(&cwd.path().join("crash-cooldown")), expected_files("rust"));
    assert!(names(k.home()).is_empty(), "the home was touched: {:?}", names(k.home()));
    // An empty folder is as good as none.
    let empty = cwd.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    k.ok(&["plugin", "new", "p", "--kind", "routing", "--lang", "js", "--dir", empty.to_str().unwrap()]);
    assert_eq!(files(&empty), expected_files("js"));
    // `--dir .` in an empty folder fills that folder, not a new one in its place: a shell inside stays put.
    use std::os::unix::fs::MetadataExt;
    let here = cwd.path().join("here");
    std::fs::create_dir(&here).unwrap();
    let inode = std::fs::metadata(&here).unwrap().ino();
    let out = k
        .cmd(&["plugin", "new", "p", "--kind", "diagnostics", "--lang", "python", "--dir", "."])
        .current_dir(&here)
        .output();
    expect_ok(&out.unwrap(), &"plugin new p --dir .");
    assert_eq!(files(&here), expected_files("python"));
    assert_eq!(std::fs::metadata(&here).unwrap().ino(), inode, "the folder was replaced");
    assert_eq!(
        names(cwd.path()),
        BTreeSet::from(["crash-cooldown", "empty", "here"].map(String::from)),
        "no temporary folder is left"
    );
}

/// The Rust project's vendored SDK is the repository's, byte for byte, and every project's WIT is
/// wit/policy.wit.
#[test]
fn plugin_new_vendors_the_repository_s_sdk_and_wit() {
    let k = Kanban::new();
    let out = tempfile::tempdir().unwrap();
    let wit = std::fs::read(repo().join("wit/policy.wit")).unwrap();
    let rust = out.path().join("rust");
    k.ok(&["plugin", "new", "p", "--kind", "routing", "--dir", rust.to_str().unwrap()]);
    assert!(std::fs::read(rust.join("vendor/kanban-policy/wit/policy.wit")).unwrap() == wit);
    for file in SDK_FILES {
        let ours = std::fs::read(rust.join("vendor/kanban-policy").join(file)).unwrap();
        let theirs = std::fs::read(repo().join("plugins/kanban-policy").join(file)).unwrap();
        assert!(ours == theirs, "vendor/kanban-policy/{file} differs from plugins/kanban-policy/{file}");
    }
    // `cargo fmt` in the project formats the vendored crate as the repository does: it stays as it is.
    assert!(
        std::fs::read(rust.join("vendor/kanban-policy/rustfmt.toml")).unwrap()
            == std::fs::read(repo().join("rustfmt.toml")).unwrap()
    );
    // The SDK builds on its own: it inherits nothing from the plugins workspace.
    assert!(!read(rust.join("vendor/kanban-policy/Cargo.toml")).contains(".workspace = true"));
    for lang in ["python", "js"] {
        let dir = out.path().join(lang);
        k.ok(&["plugin", "new", "p", "--kind", "decompose", "--lang", lang, "--dir", dir.to_str().unwrap()]);
        assert!(std::fs::read(dir.join("wit/policy.wit")).unwrap() == wit, "{lang}: wit/policy.wit differs");
    }
}

/// A folder with something in it, a bad name, kind or language: exit 2 naming it, and nothing written.
#[test]
fn plugin_new_refuses_a_non_empty_folder_and_bad_names_leaving_nothing_behind() {
    let k = Kanban::new();
    let out = tempfile::tempdir().unwrap();
    let taken = out.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let a_file = out.path().join("a-file");
    std::fs::write(&a_file, "mine").unwrap();
    let before = names(out.path());

    let new = |name: &str, extra: &[&str]| {
        let mut args = vec!["plugin", "new", name];
        args.extend_from_slice(extra);
        k.fails(&args, 2)
    };
    for dir in [&taken, &a_file] {
        for lang in ["rust", "python", "js"] {
            let err = new("p", &["--kind", "routing", "--lang", lang, "--dir", dir.to_str().unwrap()]);
            assert!(err.contains(&format!("{} exists and is not empty", dir.display())), "{err}");
        }
    }
    for bad in ["My-guard", "2fast", "my_guard", "ab!", "a b"] {
        let dir = out.path().join("new");
        let err = new(bad, &["--kind", "routing", "--dir", dir.to_str().unwrap()]);
        assert!(err.contains(&format!("'{bad}' is not a valid plugin name")), "{err}");
    }
    let err = new("fn", &["--kind", "routing", "--dir", out.path().join("new").to_str().unwrap()]);
    assert!(err.contains("'fn' cannot be a plugin name"), "{err}");
    let err = new("p", &["--kind", "router", "--dir", out.path().join("new").to_str().unwrap()]);
    assert!(err.contains(
        "'router' is not a policy kind (possible: respawn-guard, diagnostics, routing, decompose)"
    ));
    let err =
        new("p", &["--kind", "routing", "--lang", "go", "--dir", out.path().join("new").to_str().unwrap()]);
    assert!(
        err.contains("invalid value 'go' for '--lang <LANG>'") && err.contains("rust, python, js"),
        "{err}"
    );
    let err = new("p", &["--dir", out.path().join("new").to_str().unwrap()]);
    assert!(err.contains("--kind <KIND>"), "{err}");

    assert_eq!(names(out.path()), before, "something was left behind");
    assert_eq!(names(&taken), BTreeSet::from(["notes.txt".to_string()]));
    assert_eq!(read(taken.join("notes.txt")), "mine");
    assert_eq!(read(&a_file), "mine");
}
