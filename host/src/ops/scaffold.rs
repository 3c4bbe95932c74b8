//! `kanban plugin new`: write a plugin project that builds and installs as it is, in Rust, Python or
//! JavaScript, for any of the four policy kinds.
//!
//! The templates are real files under `host/templates/plugin/` (one folder per language, one sample rule per
//! kind, the same rule in every language), embedded in the binary and filled in by plain string replacement
//! of `{{name}}`, `{{crate_name}}`, `{{kind}}`, `{{world}}`, `{{wasm}}`, `{{config}}` and `{{rule}}`. What a
//! project needs from the repository comes embedded too: the WIT package (`wit/policy.wit`) for Python and
//! JavaScript, the Rust guest SDK (`plugins/kanban-policy`, vendored under `vendor/`) for Rust, and the
//! lockfiles of the docs examples, so a generated project builds with the toolchain versions the examples
//! are tested with.
//!
//! Nothing is half-written: the files go into a temporary folder beside the target, which is renamed into
//! place at the end (or, when the target is an empty folder that exists, has its entries renamed into it).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::PolicyKind;

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "'{0}' is not a valid plugin name: use lowercase letters, digits and '-', starting with a letter \
         (e.g. my-guard)"
    )]
    InvalidName(String),
    #[error("'{0}' cannot be a plugin name: it is reserved in Rust or clashes with a crate the project uses")]
    ReservedName(String),
    #[error("{} exists and is not empty: pick another --dir, or remove it first", .0.display())]
    NotEmpty(PathBuf),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: io::Error },
}

impl ScaffoldError {
    /// A refusal of what was asked (exit 2), rather than a failure to write.
    pub fn is_usage(&self) -> bool {
        !matches!(self, ScaffoldError::Io { .. })
    }
}

/// The language of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn display(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

/// One file of a project: its path inside the project (with `/`), its text, whether it is a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub text: String,
    pub executable: bool,
}

/// A project to write, and what to run next.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub kind: PolicyKind,
    pub lang: Lang,
    pub files: Vec<File>,
    /// The component the build writes, relative to the project.
    pub wasm: String,
    /// A config for the sample rule, as `--config` takes it.
    pub sample_config: &'static str,
}

impl Project {
    /// The commands to run in the project folder, each with what it is for: test, build, try, install.
    pub fn next_commands(&self) -> Vec<(String, &'static str)> {
        let (test, build) = match self.lang {
            Lang::Rust => ("cargo test", "cargo build --target wasm32-wasip2 --release".to_string()),
            Lang::Python => ("python3 -m unittest -v", "./build.sh".to_string()),
            Lang::Js => ("node --test", "./build.sh".to_string()),
        };
        vec![
            (test.to_string(), "the sample rule's unit tests, natively"),
            (build, "builds the component"),
            ("kanban plugin context ID > context.json".to_string(), "a real card's context, as a fixture"),
            (
                format!(
                    "kanban plugin run {} --context context.json --config '{}'",
                    self.wasm, self.sample_config
                ),
                "one call, with its decision and cost",
            ),
            (format!("kanban plugin install {}", self.wasm), "then name it in a board's [[policies]]"),
        ]
    }

    /// "a routing plugin in Rust".
    pub fn describe(&self) -> String {
        format!("a {} plugin in {}", self.kind, self.lang.display())
    }
}

/// A plugin name: lowercase letters, digits and `-`, starting with a letter; usable as a Cargo package,
/// an npm package and a plugin name.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    if !valid {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    if RESERVED.contains(&name) {
        return Err(ScaffoldError::ReservedName(name.to_string()));
    }
    Ok(())
}

/// Names Cargo refuses for a package with a library (Rust's keywords and built-in crates), and the crates a
/// generated project depends on.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "kanban-policy",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "pub",
    "ref",
    "return",
    "self",
    "serde",
    "serde-json",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "wit-bindgen",
    "yield",
];

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../templates/plugin/", $path))
    };
}

/// The WIT package, as the repository has it.
const WIT: &str = include_str!("../../../wit/policy.wit");

/// The Rust guest SDK, vendored into every Rust project: (path inside the crate, text).
const SDK: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../plugins/kanban-policy/Cargo.toml")),
    ("README.md", include_str!("../../../plugins/kanban-policy/README.md")),
    ("src/bindings.rs", include_str!("../../../plugins/kanban-policy/src/bindings.rs")),
    ("src/config.rs", include_str!("../../../plugins/kanban-policy/src/config.rs")),
    ("src/context.rs", include_str!("../../../plugins/kanban-policy/src/context.rs")),
    ("src/decompose.rs", include_str!("../../../plugins/kanban-policy/src/decompose.rs")),
    ("src/diagnostics.rs", include_str!("../../../plugins/kanban-policy/src/diagnostics.rs")),
    ("src/export.rs", include_str!("../../../plugins/kanban-policy/src/export.rs")),
    ("src/guard.rs", include_str!("../../../plugins/kanban-policy/src/guard.rs")),
    ("src/lib.rs", include_str!("../../../plugins/kanban-policy/src/lib.rs")),
    ("src/routing.rs", include_str!("../../../plugins/kanban-policy/src/routing.rs")),
    ("src/testing.rs", include_str!("../../../plugins/kanban-policy/src/testing.rs")),
    ("src/text.rs", include_str!("../../../plugins/kanban-policy/src/text.rs")),
    ("wit/policy.wit", include_str!("../../../plugins/kanban-policy/wit/policy.wit")),
    // The repository's formatting, so `cargo fmt` in the project leaves the vendored crate as it is.
    ("rustfmt.toml", include_str!("../../../rustfmt.toml")),
];

/// The lockfile of docs/examples/hold-guard (the same dependencies: the SDK and serde), with its package
/// renamed, so a Rust project builds with the versions the example is tested with.
const RUST_LOCK: &str = include_str!("../../../docs/examples/hold-guard/Cargo.lock");
const RUST_LOCK_NAME: &str = "name = \"hold-guard\"";

/// hold-guard's Cargo.lock for a package named `name`, its entries in Cargo's order (by name), so the first
/// build does not rewrite it.
fn cargo_lock(name: &str) -> String {
    const SEPARATOR: &str = "\n\n[[package]]\n";
    let mut blocks = RUST_LOCK.split(SEPARATOR).map(|b| b.trim_end().to_string());
    let head = blocks.next().unwrap_or_default();
    let mut packages: Vec<String> =
        blocks.map(|b| b.replacen(RUST_LOCK_NAME, &format!("name = \"{name}\""), 1)).collect();
    // A stable sort by the first line (`name = "..."`) keeps two versions of one crate in their order.
    packages.sort_by(|a, b| a.lines().next().cmp(&b.lines().next()));
    let mut lock = head;
    for package in packages {
        lock.push_str(SEPARATOR);
        lock.push_str(&package);
    }
    lock.push('\n');
    lock
}

/// The lockfile of docs/examples/label-router (jco and componentize-js, pinned), with its package renamed:
/// `npm ci` refuses a lockfile whose name is not package.json's.
const JS_LOCK: &str = include_str!("../../../docs/examples/label-router/package-lock.json");
const JS_LOCK_NAME: &str = "\"name\": \"kanban-label-router\"";

/// What differs between the kinds: the world, and the sample rule in each language.
struct KindTemplates {
    world: &'static str,
    /// The README section describing the sample rule and its config.
    rule: &'static str,
    sample_config: &'static str,
    rust: &'static str,
    /// app.py, policy.py, test_policy.py.
    python: [&'static str; 3],
    /// component.js, policy.js, policy.test.js.
    js: [&'static str; 3],
}

fn kind_templates(kind: PolicyKind) -> KindTemplates {
    match kind {
        PolicyKind::RespawnGuard => KindTemplates {
            world: "respawn-guard-policy",
            rule: template!("rules/respawn-guard.md"),
            sample_config: r#"{"marker": "[hold]", "retry_after_seconds": 600}"#,
            rust: template!("rust/respawn-guard.rs"),
            python: [
                template!("python/respawn-guard/app.py"),
                template!("python/respawn-guard/policy.py"),
                template!("python/respawn-guard/test_policy.py"),
            ],
            js: [
                template!("js/respawn-guard/component.js"),
                template!("js/respawn-guard/policy.js"),
                template!("js/respawn-guard/policy.test.js"),
            ],
        },
        PolicyKind::Routing => KindTemplates {
            world: "routing-policy",
            rule: template!("rules/routing.md"),
            sample_config: r#"{"prefixes": {"fix:": "coder", "docs:": "writer"}}"#,
            rust: template!("rust/routing.rs"),
            python: [
                template!("python/routing/app.py"),
                template!("python/routing/policy.py"),
                template!("python/routing/test_policy.py"),
            ],
            js: [
                template!("js/routing/component.js"),
                template!("js/routing/policy.js"),
                template!("js/routing/policy.test.js"),
            ],
        },
        PolicyKind::Diagnostics => KindTemplates {
            world: "diagnostics-policy",
            rule: template!("rules/diagnostics.md"),
            sample_config: r#"{"min_length": 20, "severity": "warning"}"#,
            rust: template!("rust/diagnostics.rs"),
            python: [
                template!("python/diagnostics/app.py"),
                template!("python/diagnostics/policy.py"),
                template!("python/diagnostics/test_policy.py"),
            ],
            js: [
                template!("js/diagnostics/component.js"),
                template!("js/diagnostics/policy.js"),
                template!("js/diagnostics/policy.test.js"),
            ],
        },
        PolicyKind::Decompose => KindTemplates {
            world: "decompose-policy",
            rule: template!("rules/decompose.md"),
            sample_config: r#"{"sequential": true}"#,
            rust: template!("rust/decompose.rs"),
            python: [
                template!("python/decompose/app.py"),
                template!("python/decompose/policy.py"),
                template!("python/decompose/test_policy.py"),
            ],
            js: [
                template!("js/decompose/component.js"),
                template!("js/decompose/policy.js"),
                template!("js/decompose/policy.test.js"),
            ],
        },
    }
}

/// The project `kanban plugin new NAME --kind KIND --lang LANG` writes.
pub fn project(name: &str, kind: PolicyKind, lang: Lang) -> Result<Project, ScaffoldError> {
    check_name(name)?;
    let t = kind_templates(kind);
    let crate_name = name.replace('-', "_");
    let wasm = match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{crate_name}.wasm"),
        Lang::Python | Lang::Js => format!("{crate_name}.wasm"),
    };
    let fill = |text: &str| {
        text.replace("{{rule}}", t.rule.trim_end())
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{kind}}", kind.as_str())
            .replace("{{world}}", t.world)
            .replace("{{wasm}}", &wasm)
            .replace("{{config}}", t.sample_config)
    };
    let file = |path: &str, text: String| File { path: path.to_string(), text, executable: false };
    let mut files = Vec::new();
    match lang {
        Lang::Rust => {
            files.push(file("Cargo.toml", fill(template!("rust/Cargo.toml.tmpl"))));
            files.push(file("Cargo.lock", cargo_lock(name)));
            files.push(file("README.md", fill(template!("rust/README.md"))));
            files.push(file(".gitignore", template!("rust/gitignore").to_string()));
            files.push(file("src/lib.rs", fill(t.rust)));
            for (path, text) in SDK {
                files.push(file(&format!("vendor/kanban-policy/{path}"), text.to_string()));
            }
        }
        Lang::Python => {
            let [app, policy, test] = t.python;
            files.push(file("app.py", fill(app)));
            files.push(file("policy.py", fill(policy)));
            files.push(file("test_policy.py", fill(test)));
            files.push(File {
                path: "build.sh".into(),
                text: fill(template!("python/build.sh")),
                executable: true,
            });
            files.push(file("wit/policy.wit", WIT.to_string()));
            files.push(file("README.md", fill(template!("python/README.md"))));
            files.push(file(".gitignore", template!("python/gitignore").to_string()));
        }
        Lang::Js => {
            let [component, policy, test] = t.js;
            files.push(file("component.js", fill(component)));
            files.push(file("policy.js", fill(policy)));
            files.push(file("policy.test.js", fill(test)));
            files.push(file("package.json", fill(template!("js/package.json"))));
            files.push(file(
                "package-lock.json",
                JS_LOCK.replace(JS_LOCK_NAME, &format!("\"name\": \"{name}\"")),
            ));
            files.push(File {
                path: "build.sh".into(),
                text: fill(template!("js/build.sh")),
                executable: true,
            });
            files.push(file("wit/policy.wit", WIT.to_string()));
            files.push(file("README.md", fill(template!("js/README.md"))));
            files.push(file(".gitignore", template!("js/gitignore").to_string()));
        }
    }
    Ok(Project { name: name.to_string(), kind, lang, files, wasm, sample_config: t.sample_config })
}

/// Write `project` to `dir`, which must not exist or be an empty folder. The files are written into a
/// temporary folder beside `dir` and renamed into place at the end, so a failure leaves nothing behind.
pub fn write(project: &Project, dir: &Path) -> Result<(), ScaffoldError> {
    let io_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| ScaffoldError::Io { what, path, source }
    };
    if !is_empty_or_missing(dir).map_err(io_err("cannot read", dir))? {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let dir = std::path::absolute(dir).map_err(io_err("cannot resolve", dir))?;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    let leaf =
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| project.name.clone());
    let temp = parent.join(format!(".{leaf}.kanban-new-{}", std::process::id()));
    let result = write_files(project, &temp).and_then(|()| {
        move_into(&temp, &dir).map_err(|source| {
            // The target was checked, but something may have put files there since.
            if is_empty_or_missing(&dir).unwrap_or(true) {
                ScaffoldError::Io { what: "cannot move the project into", path: dir.clone(), source }
            } else {
                ScaffoldError::NotEmpty(dir.clone())
            }
        })
    });
    let _ = fs::remove_dir_all(&temp);
    result
}

/// Move the finished project `temp` to `dir` (on the same filesystem: `temp` is beside it). A missing `dir`
/// is one rename. An empty folder that exists gets the project's entries moved into it, each one rename,
/// rather than being replaced, so a shell inside it (`--dir .`) stays in the folder it sees; if a move
/// fails, the entries moved so far are taken out again.
fn move_into(temp: &Path, dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return fs::rename(temp, dir);
    }
    let entries = fs::read_dir(temp)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<Vec<_>>>()?;
    for (done, name) in entries.iter().enumerate() {
        if let Err(err) = fs::rename(temp.join(name), dir.join(name)) {
            for moved in &entries[..done] {
                let _ = fs::rename(dir.join(moved), temp.join(moved));
            }
            return Err(err);
        }
    }
    Ok(())
}

fn write_files(project: &Project, temp: &Path) -> Result<(), ScaffoldError> {
    let io_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| ScaffoldError::Io { what, path, source }
    };
    fs::create_dir(temp).map_err(io_err("cannot create", temp))?;
    for file in &project.files {
        let path = temp.join(&file.path);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder).map_err(io_err("cannot create", folder))?;
        }
        fs::write(&path, &file.text).map_err(io_err("cannot write", &path))?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(io_err("cannot chmod", &path))?;
        }
    }
    Ok(())
}

fn is_empty_or_missing(dir: &Path) -> io::Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(true),
        // A file (not a folder) in the way is "not empty".
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["my-guard", "a", "router2", "a-b-c"] {
            check_name(good).unwrap();
        }
        for bad in ["", "My-guard", "2fast", "-x", "my_guard", "my guard", "é"] {
            assert!(matches!(check_name(bad), Err(ScaffoldError::InvalidName(_))), "{bad}");
        }
        for reserved in ["test", "fn", "kanban-policy", "serde"] {
            assert!(matches!(check_name(reserved), Err(ScaffoldError::ReservedName(_))), "{reserved}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_in_every_project() {
        for &kind in PolicyKind::ALL {
            for lang in [Lang::Rust, Lang::Python, Lang::Js] {
                let project = project("my-plugin", kind, lang).unwrap();
                for file in &project.files {
                    if file.path.starts_with("vendor/") {
                        continue;
                    }
                    assert!(
                        !file.text.contains("{{"),
                        "{kind} {lang:?} {}: a placeholder is left",
                        file.path
                    );
                }
            }
        }
    }

    #[test]
    fn the_lockfiles_are_renamed_once() {
        assert_eq!(RUST_LOCK.matches(RUST_LOCK_NAME).count(), 1);
        assert_eq!(cargo_lock("hold-guard"), RUST_LOCK, "hold-guard's own lock comes back as it is");
        let lock = cargo_lock("aaa");
        let names: Vec<&str> = lock.lines().filter(|l| l.starts_with("name = ")).collect();
        assert_eq!(names[0], "name = \"aaa\"", "sorted first");
        assert!(names.is_sorted(), "{names:?}");
        assert!(!lock.contains("hold-guard"));
        assert_eq!(JS_LOCK.matches(JS_LOCK_NAME).count(), 2, "the lockfile's name and its root package's");
        let project = project("my-router", PolicyKind::Routing, Lang::Js).unwrap();
        let lock = &project.files.iter().find(|f| f.path == "package-lock.json").unwrap().text;
        let lock: serde_json::Value = serde_json::from_str(lock).unwrap();
        assert_eq!(lock["name"], "my-router");
        assert_eq!(lock["packages"][""]["name"], "my-router");
    }
}
