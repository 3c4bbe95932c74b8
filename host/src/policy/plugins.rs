//! The plugin store: installed components, content-addressed by sha256 under `<home>/plugins/`.
//!
//! `blobs/<sha256>.wasm` holds the bytes; `index.json` maps names to hashes. A board's `plugin = ...`
//! resolves through here (`builtin:NAME`, an installed name, or a pinned `sha256:HEX`), and every load
//! re-hashes the bytes, so a blob changed on disk is refused rather than run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::runtime::PolicyEngine;
use super::{PolicyError, builtins};
use crate::board::{Home, write_atomic};
use crate::digest::sha256_hex;

#[derive(Debug, thiserror::Error)]
pub enum PluginStoreError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} {error}")]
    Plugin { path: String, error: PolicyError },
    #[error("plugin '{0}' is not installed (see `kanban plugin list`)")]
    NotInstalled(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the plugin index {path} is unreadable: {error}")]
    Index { path: PathBuf, error: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Installed {
    pub name: String,
    pub sha256: String,
    pub kind: String,
    /// The plugin's own version (from `describe`).
    pub version: String,
    /// The kanban:policy package version it was built against.
    pub wit_version: String,
    pub installed_at: i64,
    pub size: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    plugins: BTreeMap<String, Installed>,
}

fn root(home: &Home) -> PathBuf {
    home.root().join("plugins")
}

fn blob_path(home: &Home, sha256: &str) -> PathBuf {
    root(home).join("blobs").join(format!("{sha256}.wasm"))
}

fn index_path(home: &Home) -> PathBuf {
    root(home).join("index.json")
}

fn read_index(home: &Home) -> Result<Index, PluginStoreError> {
    let path = index_path(home);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| PluginStoreError::Index { path, error: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
        Err(error) => Err(PluginStoreError::Io { path, error }),
    }
}

fn write_index(home: &Home, index: &Index) -> Result<(), PluginStoreError> {
    let text = serde_json::to_string_pretty(index).expect("the index serializes");
    write_atomic(&index_path(home), text.as_bytes())
        .map_err(|e| PluginStoreError::Invalid(format!("cannot write the plugin index: {e}")))
}

fn builtin_sha(name: &str, bytes: &[u8]) -> String {
    static SHAS: OnceLock<std::sync::Mutex<BTreeMap<String, String>>> = OnceLock::new();
    let mut shas = SHAS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    shas.entry(name.to_string()).or_insert_with(|| sha256_hex(bytes)).clone()
}

/// A plugin's bytes, known to match their sha256.
pub enum PluginBytes {
    /// Read (and checked) already, or embedded in the binary.
    InMemory(Vec<u8>),
    /// A stored blob whose file is unchanged since its bytes were last checked (its
    /// [fingerprint](crate::digest::fingerprint) is the one recorded then), so it was not read: a load that
    /// finds the compiled artifact in the cache never needs the bytes.
    Stored { path: PathBuf, sha256: String },
}

impl PluginBytes {
    /// The bytes. A stored blob is read now and checked against its hash again.
    pub fn read(&self) -> Result<std::borrow::Cow<'_, [u8]>, PolicyError> {
        match self {
            PluginBytes::InMemory(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
            PluginBytes::Stored { path, sha256 } => {
                let bytes = std::fs::read(path).map_err(|_| PolicyError::NotInstalled)?;
                let actual = sha256_hex(&bytes);
                if actual != *sha256 {
                    return Err(PolicyError::HashMismatch { expected: sha256.clone(), actual });
                }
                Ok(std::borrow::Cow::Owned(bytes))
            }
        }
    }
}

/// Where the fingerprint of a stored blob is kept once its bytes were checked against `sha256`.
fn verified_path(home: &Home, sha256: &str) -> PathBuf {
    home.root().join("cache").join("verified").join(sha256)
}

/// Resolve a board's plugin reference to `(sha256, bytes)`, checking the bytes against their hash: a
/// stored blob is hashed unless its file is unchanged since it was last hashed (then it is not read).
pub fn resolve(home: &Home, reference: &str) -> Result<(String, PluginBytes), PolicyError> {
    if let Some(name) = reference.strip_prefix("builtin:") {
        let (_, bytes) = builtins::get(name).ok_or(PolicyError::NotInstalled)?;
        return Ok((builtin_sha(name, bytes), PluginBytes::InMemory(bytes.to_vec())));
    }
    let sha256 = match reference.strip_prefix("sha256:") {
        Some(hex) => hex.to_string(),
        None => {
            let index = read_index(home).map_err(|e| PolicyError::Invalid { detail: e.to_string() })?;
            index.plugins.get(reference).ok_or(PolicyError::NotInstalled)?.sha256.clone()
        }
    };
    let path = blob_path(home, &sha256);
    let fingerprint = crate::digest::fingerprint(&path).ok_or(PolicyError::NotInstalled)?;
    let record = verified_path(home, &sha256);
    if std::fs::read_to_string(&record).is_ok_and(|recorded| recorded.trim() == fingerprint.text) {
        return Ok((sha256.clone(), PluginBytes::Stored { path, sha256 }));
    }
    let bytes = PluginBytes::Stored { path: path.clone(), sha256: sha256.clone() }.read()?.into_owned();
    // Checked: remember the file as it is now (best effort; without the record the next load hashes again).
    if fingerprint.settled
        && let Some(dir) = record.parent()
        && std::fs::create_dir_all(dir).is_ok()
        && let Err(e) = write_atomic(&record, fingerprint.text.as_bytes())
    {
        tracing::debug!(error = %e, "could not record a verified plugin blob");
    }
    Ok((sha256, PluginBytes::InMemory(bytes)))
}

/// Install a component: check it is a policy component this host can load (and run `describe`), store
/// it by hash, and record `name → hash`. Nothing is stored if any check fails.
pub fn install(
    engine: &mut PolicyEngine,
    home: &Home,
    path: &Path,
    name: Option<&str>,
    now: i64,
) -> Result<Installed, PluginStoreError> {
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|error| PluginStoreError::Io { path: path.to_path_buf(), error })?;
    let refuse = |error: PolicyError| PluginStoreError::Plugin { path: shown.clone(), error };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(refuse(PolicyError::Invalid { detail: "is not a WebAssembly file".into() }));
    }
    if bytes[4..8] != [0x0d, 0x00, 0x01, 0x00] {
        return Err(refuse(PolicyError::Invalid {
            detail: "is a core WebAssembly module, not a component (build it for wasm32-wasip2)".into(),
        }));
    }
    let sha256 = sha256_hex(&bytes);
    let size = bytes.len() as u64;
    let bytes = PluginBytes::InMemory(bytes);
    let component = engine.component(&sha256, &bytes).map_err(&refuse)?;
    let shape = engine.shape(&component).map_err(&refuse)?;
    let mut policy =
        super::Loaded::from_component(component, &sha256, shape.kind, &format!("sha256:{sha256}"), None);
    let info = policy.describe(engine, now).map_err(&refuse)?;
    if info.kind != shape.kind {
        return Err(refuse(PolicyError::BadOutput {
            detail: format!("describe() says {} but it exports {}", info.kind, shape.kind),
        }));
    }
    let name = name.map(str::to_string).unwrap_or_else(|| info.name.clone());
    if !crate::board::is_valid_slug(&name) {
        return Err(PluginStoreError::Invalid(format!(
            "'{name}' is not a usable plugin name: use lowercase letters, digits, '-' and '_' (pass --name)"
        )));
    }
    let blob = blob_path(home, &sha256);
    let blobs = blob.parent().expect("blobs dir");
    std::fs::create_dir_all(blobs)
        .map_err(|error| PluginStoreError::Io { path: blobs.to_path_buf(), error })?;
    write_atomic(&blob, &bytes.read().map_err(&refuse)?)
        .map_err(|e| PluginStoreError::Invalid(format!("cannot store the plugin: {e}")))?;
    let installed = Installed {
        name: name.clone(),
        sha256,
        kind: shape.kind.as_str().to_string(),
        version: info.version,
        wit_version: shape.version,
        installed_at: now,
        size,
    };
    let mut index = read_index(home)?;
    index.plugins.insert(name, installed.clone());
    write_index(home, &index)?;
    Ok(installed)
}

/// A plugin a board can name: built in, or installed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginEntry {
    /// `builtin:NAME` or the installed name.
    pub name: String,
    /// `builtin` or `installed`.
    pub source: &'static str,
    pub kind: String,
    pub version: String,
    pub wit_version: String,
    pub sha256: String,
    pub size: u64,
    pub installed_at: Option<i64>,
}

/// The built-ins first, then the installed plugins.
pub fn with_builtins(installed: Vec<Installed>) -> Vec<PluginEntry> {
    let host = super::runtime::WIT_VERSION;
    let builtins = builtins::BUILTINS.iter().map(|(name, kind, bytes)| PluginEntry {
        name: format!("builtin:{name}"),
        source: "builtin",
        kind: kind.as_str().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        wit_version: format!("{}.{}.{}", host.0, host.1, host.2),
        sha256: builtin_sha(name, bytes),
        size: bytes.len() as u64,
        installed_at: None,
    });
    builtins
        .chain(installed.into_iter().map(|p| PluginEntry {
            name: p.name,
            source: "installed",
            kind: p.kind,
            version: p.version,
            wit_version: p.wit_version,
            sha256: p.sha256,
            size: p.size,
            installed_at: Some(p.installed_at),
        }))
        .collect()
}

pub fn list(home: &Home) -> Result<Vec<Installed>, PluginStoreError> {
    Ok(read_index(home)?.plugins.into_values().collect())
}

pub fn show(home: &Home, name: &str) -> Result<Installed, PluginStoreError> {
    read_index(home)?.plugins.remove(name).ok_or_else(|| PluginStoreError::NotInstalled(name.to_string()))
}

/// Forget a plugin name; its blob goes too unless another name still uses it.
pub fn remove(home: &Home, name: &str) -> Result<Installed, PluginStoreError> {
    let mut index = read_index(home)?;
    let removed =
        index.plugins.remove(name).ok_or_else(|| PluginStoreError::NotInstalled(name.to_string()))?;
    write_index(home, &index)?;
    if !index.plugins.values().any(|p| p.sha256 == removed.sha256) {
        let _ = std::fs::remove_file(blob_path(home, &removed.sha256));
    }
    Ok(removed)
}

#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub name: String,
    pub sha256: String,
    /// "ok", "missing" or "tampered".
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
}

/// Re-hash every installed plugin.
pub fn verify(home: &Home) -> Result<Vec<Verified>, PluginStoreError> {
    let mut out = Vec::new();
    for p in read_index(home)?.plugins.into_values() {
        let (status, actual) = match std::fs::read(blob_path(home, &p.sha256)) {
            Err(_) => ("missing", None),
            Ok(bytes) => {
                let actual = sha256_hex(&bytes);
                if actual == p.sha256 { ("ok", None) } else { ("tampered", Some(actual)) }
            }
        };
        out.push(Verified { name: p.name, sha256: p.sha256, status: status.into(), actual_sha256: actual });
    }
    Ok(out)
}

/// Whether a blob with this hash is stored (for export of a pinned `sha256:HEX` reference).
pub fn blob_bytes(home: &Home, sha256: &str) -> Option<Vec<u8>> {
    std::fs::read(blob_path(home, sha256)).ok().filter(|bytes| sha256_hex(bytes) == sha256)
}

/// Store a plugin carried by a board archive (`kanban board import`): its blob, checked against its hash,
/// and, when it has a name, `name → hash` in the index. A name already installed with the same hash is
/// left as it is; a name installed with a different hash is refused, never replaced. The bytes are not
/// loaded here: every load re-hashes them, and `kanban board check` loads each policy of the board.
pub fn adopt(
    home: &Home,
    entry: Option<&Installed>,
    sha256: &str,
    bytes: &[u8],
) -> Result<(), PluginStoreError> {
    let mut index = read_index(home)?;
    if let Some(entry) = entry
        && let Some(existing) = index.plugins.get(&entry.name)
        && existing.sha256 != sha256
    {
        return Err(PluginStoreError::Invalid(format!(
            "plugin '{}' is already installed with sha256 {}, not {sha256}; refusing to replace it",
            entry.name, existing.sha256
        )));
    }
    store_blob(home, sha256, bytes)?;
    if let Some(entry) = entry
        && !index.plugins.contains_key(&entry.name)
    {
        index.plugins.insert(entry.name.clone(), entry.clone());
        write_index(home, &index)?;
    }
    Ok(())
}

/// Install a plugin as a shared board pins it for every host (see [`crate::board`]'s sync): its blob,
/// checked against its hash, and `name → hash` in the index, replacing what the name meant here.
pub fn adopt_pinned(home: &Home, entry: &Installed, bytes: &[u8]) -> Result<(), PluginStoreError> {
    store_blob(home, &entry.sha256, bytes)?;
    let mut index = read_index(home)?;
    if index.plugins.get(&entry.name) != Some(entry) {
        index.plugins.insert(entry.name.clone(), entry.clone());
        write_index(home, &index)?;
    }
    Ok(())
}

/// Store `bytes` as the blob of `sha256`, after checking they hash to it; a blob already stored is kept.
pub fn store_blob(home: &Home, sha256: &str, bytes: &[u8]) -> Result<(), PluginStoreError> {
    let actual = sha256_hex(bytes);
    if actual != sha256 {
        return Err(PluginStoreError::Invalid(format!("plugin blob {sha256} hashes to {actual}")));
    }
    if blob_bytes(home, sha256).is_none() {
        let blob = blob_path(home, sha256);
        let blobs = blob.parent().expect("blobs dir");
        std::fs::create_dir_all(blobs)
            .map_err(|error| PluginStoreError::Io { path: blobs.to_path_buf(), error })?;
        write_atomic(&blob, bytes)
            .map_err(|e| PluginStoreError::Invalid(format!("cannot store the plugin: {e}")))?;
    }
    Ok(())
}
