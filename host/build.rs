//! Builds the built-in policy plugins (`plugins/`, a separate workspace) for wasm32-wasip2 and puts the
//! components in OUT_DIR, where `policy::builtins` embeds them. A fresh clone needs nothing beyond the
//! Rust toolchain: the wasm target is added with rustup if it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: &[&str] = &[
    "kanban_plugin_respawn_guard",
    "kanban_plugin_diagnostics",
    "kanban_plugin_default_assignee",
    "kanban_plugin_checklist_decompose",
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", plugins.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir.join("target");
    ensure_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host target, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the built-in plugins");
    assert!(status.success(), "building the built-in plugins (plugins/) for {TARGET} failed");
    let dest = out_dir.join("plugins");
    std::fs::create_dir_all(&dest).unwrap();
    for name in PLUGINS {
        let built = target_dir.join(TARGET).join("release").join(format!("{name}.wasm"));
        copy_if_changed(&built, &dest.join(format!("{name}.wasm")));
    }
}

fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(to, bytes).unwrap();
    }
}

/// Add the wasm32-wasip2 target if rustup does not have it yet.
fn ensure_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET))
        .unwrap_or(false);
    if !installed {
        println!(
            "cargo:warning=adding the {TARGET} target with rustup (needed for the built-in policy plugins)"
        );
        let ok = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not add the {TARGET} target: run `rustup target add {TARGET}`");
    }
}
