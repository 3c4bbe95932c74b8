//! Portable boards: `kanban board export` writes one board to a single archive file, `kanban board import`
//! builds a board from one.
//!
//! The archive is an uncompressed tar: `manifest.json` first, then `board/board.toml`, `board/kanban.db` (an
//! online snapshot, see [`crate::store::Store::snapshot_to`]), `board/attachments/...` and
//! `plugins/<sha256>.wasm` for every installed plugin the board's `[[policies]]` name. The manifest lists
//! every other member with its size and sha256. Worker logs and workspaces are not carried.
//!
//! Import reads the archive twice. The first pass checks the manifest and every member against it and
//! writes nothing; the second extracts into a staging folder under `<home>/boards/`, checking every digest
//! again, settles the attempts that were running on the exporting host, installs the plugins and renames
//! the folder into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::board::{BoardConfig, BoardError, Home, check_slug};
use crate::lifecycle::Action;
use crate::model::{Outcome, RunStatus};
use crate::policy::plugins::{self, Installed};
use crate::store::{SCHEMA_VERSION, Store, header_schema_version};

/// The archive format's name in its manifest.
pub const FORMAT: &str = "kanban-board";
/// The archive format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

const MANIFEST: &str = "manifest.json";
const TOML: &str = "board/board.toml";
const DB: &str = "board/kanban.db";
const ATTACHMENTS: &str = "board/attachments/";
const PLUGINS: &str = "plugins/";
/// A manifest larger than this is refused before it is parsed.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// `manifest.json`, the archive's first member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The kanban release that wrote the archive.
    pub kanban_version: String,
    /// The database's `PRAGMA user_version`.
    pub schema_version: i64,
    pub slug: String,
    pub exported_at: i64,
    /// The exporting home's host id: the running cards of the snapshot were claimed by it.
    pub host_id: String,
    pub cards: i64,
    /// Every member but the manifest, in archive order.
    pub files: Vec<FileEntry>,
    pub plugins: Vec<PluginEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// An installed plugin the board's policies name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginEntry {
    /// How board.toml names it: an installed name or `sha256:HEX`.
    pub reference: String,
    /// The installed name, if it has one (a pinned `sha256:HEX` with no name has none).
    pub name: Option<String>,
    pub sha256: String,
    pub kind: Option<String>,
    pub version: Option<String>,
    pub wit_version: Option<String>,
    /// Its member, `plugins/<sha256>.wasm`.
    pub path: String,
}

/// What `board export` did.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub slug: String,
    pub file: String,
    pub format_version: u32,
    pub schema_version: i64,
    pub cards: i64,
    /// Members besides the manifest.
    pub files: usize,
    /// The archive's size.
    pub bytes: u64,
    /// The archive's sha256.
    pub sha256: String,
    /// The plugins carried, by reference.
    pub plugins: Vec<String>,
}

/// A card that was `running` in the snapshot, taken out of `running` on import.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    pub id: String,
    pub run_id: i64,
    /// Where it went (`ready` unless the attempt had recorded an exit or was being stopped).
    pub status: Option<String>,
}

/// A plugin of the archive, as import found it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginImported {
    pub reference: String,
    pub sha256: String,
    /// `installed` (new to this home) or `present` (already here, same bytes).
    pub status: &'static str,
}

/// What `board import` did.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub slug: String,
    /// The slug the board had where it was exported.
    pub source_slug: String,
    pub path: String,
    pub file: String,
    pub format_version: u32,
    /// The archive's database schema; the board is now at this build's.
    pub schema_version: i64,
    pub cards: i64,
    pub files: usize,
    pub bytes: u64,
    pub sha256: String,
    pub released: Vec<Released>,
    pub plugins: Vec<PluginImported>,
    /// With `--force` over an existing board: where that board was moved.
    pub replaced: Option<String>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Hashing<T> {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }
    fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = Hashing::new(BufReader::new(file));
    io::copy(&mut reader, &mut io::sink()).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((reader.bytes, reader.digest()))
}

/// Removes a path on drop unless disarmed: the temporary files of an export or the staging folder of an
/// import that did not finish.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn require_board(home: &Home, slug: &str) -> anyhow::Result<()> {
    check_slug(slug)?;
    let slugs = home.board_slugs()?;
    if !slugs.iter().any(|s| s == slug) {
        let known = if slugs.is_empty() { "none".to_string() } else { slugs.join(", ") };
        return Err(BoardError::NotFound { slug: slug.to_string(), known }.into());
    }
    Ok(())
}

/// Every regular file under `dir`, as paths relative to it, sorted. Anything else (a symlink, a socket)
/// is skipped: only files the host stored are carried.
fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let entries = match fs::read_dir(&here) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", here.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", here.display()))?;
            let kind =
                entry.file_type().with_context(|| format!("cannot stat {}", entry.path().display()))?;
            let child = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(child);
            } else if kind.is_file() {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Export board `slug` to `out`. The archive is written beside `out` under a temporary name, synced and
/// renamed, so `out` is either the whole archive or untouched. An existing `out` is refused unless `force`.
pub fn export(home: &Home, slug: &str, out: &Path, force: bool, now: i64) -> anyhow::Result<Exported> {
    require_board(home, slug)?;
    let board = home.open_board(slug)?;
    if out.is_dir() {
        bail!("{} is a folder; name the archive file to write", out.display());
    }
    if out.exists() && !force {
        bail!("{} already exists; pass --force to replace it", out.display());
    }
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} names no file", out.display()))?
        .to_string();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let pid = std::process::id();
    let work = parent.join(format!(".{name}.export-{pid}"));
    let tmp = parent.join(format!(".{name}.tmp-{pid}"));
    let _ = fs::remove_dir_all(&work); // only this process uses these names
    fs::create_dir(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let _work_guard = Cleanup(Some(work.clone()));

    // The database first: its snapshot is the board's state; the files around it are read after.
    let snapshot_path = work.join("kanban.db");
    let snapshot = {
        let store = board.open_store()?;
        let snapshot = store.snapshot_to(&snapshot_path)?;
        store.close()?;
        snapshot
    };

    // (member, source file)
    let mut members: Vec<(String, PathBuf)> =
        vec![(TOML.to_string(), board.toml_path()), (DB.to_string(), snapshot_path)];
    let attachments = board.attachments_dir();
    for rel in walk(&attachments)? {
        let Some(text) = rel.to_str() else {
            bail!("attachment file {} has a name that is not UTF-8", attachments.join(&rel).display());
        };
        members.push((format!("{ATTACHMENTS}{text}"), attachments.join(&rel)));
    }

    let mut plugin_entries = Vec::new();
    let mut plugin_bytes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for spec in &board.config.policies {
        let reference = spec.plugin.as_str();
        if reference.starts_with("builtin:") || !seen.insert(reference.to_string()) {
            continue;
        }
        let (name, sha256, meta) = match reference.strip_prefix("sha256:") {
            Some(hex) => (None, hex.to_string(), None),
            None => {
                let installed = plugins::show(home, reference)?;
                (Some(installed.name.clone()), installed.sha256.clone(), Some(installed))
            }
        };
        let bytes = plugins::blob_bytes(home, &sha256).with_context(|| {
            format!("plugin '{reference}' ({sha256}) is missing or tampered in this home; see `kanban plugin verify`")
        })?;
        let path = format!("{PLUGINS}{sha256}.wasm");
        plugin_entries.push(PluginEntry {
            reference: reference.to_string(),
            name,
            sha256: sha256.clone(),
            kind: meta.as_ref().map(|m| m.kind.clone()),
            version: meta.as_ref().map(|m| m.version.clone()),
            wit_version: meta.as_ref().map(|m| m.wit_version.clone()),
            path: path.clone(),
        });
        plugin_bytes.insert(path, bytes);
    }

    let mut files = Vec::new();
    for (member, source) in &members {
        let (size, sha256) = hash_file(source)?;
        files.push(FileEntry { path: member.clone(), size, sha256 });
    }
    for (path, bytes) in &plugin_bytes {
        if !files.iter().any(|f| &f.path == path) {
            files.push(FileEntry {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: crate::digest::sha256_hex(bytes),
            });
        }
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        kanban_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: snapshot.schema_version,
        slug: slug.to_string(),
        exported_at: now,
        host_id: home.host_id()?,
        cards: snapshot.cards,
        files,
        plugins: plugin_entries,
    };

    let _ = fs::remove_file(&tmp);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let tmp_guard = Cleanup(Some(tmp.clone()));
    let mut builder = tar::Builder::new(Hashing::new(BufWriter::new(file)));
    let header = |size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(now.max(0) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let write_err = || format!("cannot write {}", tmp.display());
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    builder
        .append_data(&mut header(manifest_bytes.len() as u64), MANIFEST, manifest_bytes.as_slice())
        .with_context(write_err)?;
    let sources: BTreeMap<&str, &PathBuf> = members.iter().map(|(m, p)| (m.as_str(), p)).collect();
    for entry in &manifest.files {
        if let Some(bytes) = plugin_bytes.get(&entry.path) {
            builder
                .append_data(&mut header(entry.size), &entry.path, bytes.as_slice())
                .with_context(write_err)?;
            continue;
        }
        let source = sources[entry.path.as_str()];
        let opened = File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut reader = Hashing::new(BufReader::new(opened).take(entry.size));
        builder.append_data(&mut header(entry.size), &entry.path, &mut reader).with_context(write_err)?;
        if reader.bytes != entry.size || reader.digest() != entry.sha256 {
            bail!("{} changed while it was exported; nothing was written, retry", source.display());
        }
    }
    let hashing = builder.into_inner().with_context(write_err)?;
    let digest = hashing.digest();
    let bytes = hashing.bytes;
    let file = hashing.inner.into_inner().map_err(|e| e.into_error()).with_context(write_err)?;
    file.sync_all().with_context(write_err)?;
    drop(file);
    if force {
        fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
        std::mem::forget(tmp_guard);
    } else {
        // A link never replaces a file created meanwhile; the temporary name goes with the guard.
        fs::hard_link(&tmp, out).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!("{} already exists; pass --force to replace it", out.display())
            }
            _ => anyhow::Error::new(e).context(format!("cannot write {}", out.display())),
        })?;
        drop(tmp_guard);
    }
    sync_dir(&parent);
    Ok(Exported {
        slug: slug.to_string(),
        file: out.display().to_string(),
        format_version: FORMAT_VERSION,
        schema_version: snapshot.schema_version,
        cards: snapshot.cards,
        files: manifest.files.len(),
        bytes,
        sha256: digest,
        plugins: manifest.plugins.iter().map(|p| p.reference.clone()).collect(),
    })
}

/// Is `path` a member an archive may hold? Relative, plain components, under one of the known places.
fn check_member(path: &str) -> anyhow::Result<()> {
    let plain = Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    let known = path == TOML
        || path == DB
        || (path.len() > ATTACHMENTS.len() && path.starts_with(ATTACHMENTS))
        || path.strip_prefix(PLUGINS).and_then(|p| p.strip_suffix(".wasm")).is_some_and(|sha| {
            sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if !plain || !known || path.contains('\\') {
        bail!("the archive names an unexpected member '{path}'");
    }
    Ok(())
}

fn entry_path(entry: &tar::Entry<impl Read>) -> anyhow::Result<String> {
    let path = entry.path().context("the archive holds a member with an unreadable name")?;
    path.to_str().map(str::to_string).context("the archive holds a member whose name is not UTF-8")
}

/// The manifest, checked on its own.
fn read_manifest(entry: &mut tar::Entry<impl Read>, file: &Path) -> anyhow::Result<Manifest> {
    if entry_path(entry)? != MANIFEST || entry.header().entry_type() != tar::EntryType::Regular {
        bail!("{} is not a kanban board archive (its first member is not {MANIFEST})", file.display());
    }
    if entry.size() > MANIFEST_LIMIT {
        bail!("{}: {MANIFEST} is too large ({} bytes)", file.display(), entry.size());
    }
    let mut text = String::new();
    entry
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {MANIFEST} of {}", file.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: {MANIFEST} is not a valid manifest", file.display()))?;
    if manifest.format != FORMAT {
        bail!("{} is not a kanban board archive (format '{}')", file.display(), manifest.format);
    }
    if manifest.format_version > FORMAT_VERSION || manifest.format_version == 0 {
        bail!(
            "{} is archive format version {}, newer than this kanban reads ({FORMAT_VERSION}); upgrade kanban to \
             import it",
            file.display(),
            manifest.format_version
        );
    }
    if manifest.schema_version > SCHEMA_VERSION {
        bail!(
            "{} holds a database with schema version {}, newer than this kanban understands ({SCHEMA_VERSION}); \
             upgrade kanban to import it",
            file.display(),
            manifest.schema_version
        );
    }
    let mut paths = BTreeSet::new();
    for f in &manifest.files {
        check_member(&f.path)?;
        if !paths.insert(f.path.as_str()) {
            bail!("{}: {MANIFEST} lists '{}' twice", file.display(), f.path);
        }
    }
    for needed in [TOML, DB] {
        if !paths.contains(needed) {
            bail!("{}: {MANIFEST} lists no {needed}", file.display());
        }
    }
    for p in &manifest.plugins {
        let listed = manifest.files.iter().find(|f| f.path == p.path);
        if p.path != format!("{PLUGINS}{}.wasm", p.sha256) || listed.is_none_or(|f| f.sha256 != p.sha256) {
            bail!("{}: {MANIFEST} lists plugin '{}' without its file", file.display(), p.reference);
        }
        if let Some(name) = &p.name
            && !crate::board::is_valid_slug(name)
        {
            bail!("{}: {MANIFEST} names a plugin '{name}' that is not a usable name", file.display());
        }
    }
    Ok(manifest)
}

/// Stream a member through sha256, checking it against the manifest; the first 100 bytes are returned
/// (the database's header).
fn check_entry(
    entry: &mut tar::Entry<impl Read>,
    listed: &FileEntry,
    sink: &mut dyn Write,
) -> anyhow::Result<Vec<u8>> {
    if entry.header().entry_type() != tar::EntryType::Regular {
        bail!("the archive member '{}' is not a regular file", listed.path);
    }
    let mut reader = Hashing::new(entry);
    let mut head = vec![0u8; 100];
    let mut filled = 0;
    while filled < head.len() {
        let n = reader.read(&mut head[filled..]).with_context(|| format!("cannot read '{}'", listed.path))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    sink.write_all(&head).with_context(|| format!("cannot write '{}'", listed.path))?;
    io::copy(&mut reader, sink).with_context(|| format!("cannot read '{}'", listed.path))?;
    if reader.bytes != listed.size || reader.digest() != listed.sha256 {
        bail!(
            "the archive member '{}' does not match its manifest entry ({} bytes, sha256 {}; the manifest says {} \
             bytes, sha256 {}); the archive is damaged or was altered",
            listed.path,
            reader.bytes,
            reader.digest(),
            listed.size,
            listed.sha256
        );
    }
    Ok(head)
}

/// The first pass: the manifest and every member, checked; nothing written. Returns the manifest, the
/// archive's size and sha256.
fn verify(file: &Path) -> anyhow::Result<(Manifest, u64, String)> {
    let (bytes, digest) = hash_file(file)?;
    let opened = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(opened));
    let mut entries = archive.entries().with_context(|| format!("cannot read {}", file.display()))?;
    let not_tar = || format!("{} is not a kanban board archive (not a tar file)", file.display());
    let mut first = entries.next().with_context(not_tar)?.with_context(not_tar)?;
    let manifest = read_manifest(&mut first, file)?;
    drop(first);
    let listed: BTreeMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry =
            entry.with_context(|| format!("{} is damaged (a member cannot be read)", file.display()))?;
        let path = entry_path(&entry)?;
        let Some(listed) = listed.get(path.as_str()) else {
            bail!("{} holds '{path}', which its manifest does not list", file.display());
        };
        if !seen.insert(path.clone()) {
            bail!("{} holds '{path}' twice", file.display());
        }
        let head = check_entry(&mut entry, listed, &mut io::sink())?;
        if path == DB {
            match header_schema_version(&head) {
                None => bail!("{}: {DB} is not a SQLite database", file.display()),
                Some(found) if found > SCHEMA_VERSION => bail!(
                    "{} holds a database with schema version {found}, newer than this kanban understands \
                     ({SCHEMA_VERSION}); upgrade kanban to import it",
                    file.display()
                ),
                Some(found) if found != manifest.schema_version => bail!(
                    "{}: the database has schema version {found} but the manifest says {}",
                    file.display(),
                    manifest.schema_version
                ),
                Some(_) => {}
            }
        }
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.path)) {
        bail!("{} lacks '{}', which its manifest lists (truncated?)", file.display(), missing.path);
    }
    Ok((manifest, bytes, digest))
}

/// Import the board in archive `file` as `as_slug` (else the slug it was exported under). An existing
/// board of that slug is refused unless `force`, which moves it to `<home>/archive/` first.
pub fn import(
    home: &Home,
    file: &Path,
    as_slug: Option<&str>,
    force: bool,
    now: i64,
) -> anyhow::Result<Imported> {
    if let Some(slug) = as_slug {
        check_slug(slug)?;
    }
    let (manifest, bytes, digest) = verify(file)?;
    let slug = as_slug.unwrap_or(&manifest.slug).to_string();
    check_slug(&slug)?;
    let target = home.board_dir(&slug);
    if (target.exists() || fs::symlink_metadata(&target).is_ok()) && !force {
        bail!(
            "board '{slug}' already exists; import under another slug with --as NEW, or pass --force to replace \
             it (the existing board is moved to {}/archive/)",
            home.root().display()
        );
    }
    for p in &manifest.plugins {
        if let Some(name) = &p.name
            && let Ok(existing) = plugins::show(home, name)
            && existing.sha256 != p.sha256
        {
            bail!(
                "the archive's plugin '{name}' ({}) differs from the plugin of that name installed here ({}); \
                 refusing to replace it: remove or rename the installed one first",
                p.sha256,
                existing.sha256
            );
        }
    }

    // Second pass: extract into a staging folder only this process uses, checking every digest again.
    let boards = home.boards_dir();
    fs::create_dir_all(&boards).with_context(|| format!("cannot create {}", boards.display()))?;
    let staging = boards.join(format!(".importing-{slug}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut guard = Cleanup(Some(staging.clone()));
    for sub in ["workspaces", "attachments", "logs"] {
        fs::create_dir_all(staging.join(sub))
            .with_context(|| format!("cannot create {}", staging.display()))?;
    }
    let listed: BTreeMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut plugin_bytes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let opened = File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(opened));
    let changed = || format!("{} changed while it was imported; nothing was imported", file.display());
    for entry in archive.entries().with_context(changed)?.skip(1) {
        let mut entry = entry.with_context(changed)?;
        let path = entry_path(&entry)?;
        let listed = listed.get(path.as_str()).copied().with_context(changed)?;
        if path.starts_with(PLUGINS) {
            let mut buf = Vec::new();
            check_entry(&mut entry, listed, &mut buf).with_context(changed)?;
            plugin_bytes.insert(path, buf);
            continue;
        }
        let rel = path.strip_prefix("board/").expect("checked member");
        let dest = staging.join(rel);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let out = File::create(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
        let mut writer = BufWriter::new(out);
        check_entry(&mut entry, listed, &mut writer).with_context(changed)?;
        let out =
            writer.into_inner().map_err(|e| e.into_error()).with_context(|| dest.display().to_string())?;
        out.sync_all().with_context(|| format!("cannot write {}", dest.display()))?;
    }
    if plugin_bytes.len() != manifest.plugins.iter().map(|p| &p.path).collect::<BTreeSet<_>>().len() {
        bail!(changed());
    }

    // The attempts that were running belong to the exporting host's workers, which do not run here.
    let limits = fs::read_to_string(staging.join("board.toml"))
        .ok()
        .and_then(|text| BoardConfig::parse(&text, &staging.join("board.toml")).ok())
        .map(|c| c.dispatch.limits())
        .unwrap_or_default();
    let (released, cards) = release_running(&staging.join("kanban.db"), &manifest, limits, now)?;

    let mut plugin_report = Vec::new();
    for p in &manifest.plugins {
        let present = p.name.as_deref().and_then(|n| plugins::show(home, n).ok()).is_some()
            || (p.name.is_none() && plugins::blob_bytes(home, &p.sha256).is_some());
        let entry = p.name.as_ref().map(|name| Installed {
            name: name.clone(),
            sha256: p.sha256.clone(),
            kind: p.kind.clone().unwrap_or_default(),
            version: p.version.clone().unwrap_or_default(),
            wit_version: p.wit_version.clone().unwrap_or_default(),
            installed_at: now,
            size: plugin_bytes[&p.path].len() as u64,
        });
        plugins::adopt(home, entry.as_ref(), &p.sha256, &plugin_bytes[&p.path])?;
        plugin_report.push(PluginImported {
            reference: p.reference.clone(),
            sha256: p.sha256.clone(),
            status: if present { "present" } else { "installed" },
        });
    }

    let mut replaced = None;
    let was_current = home.current_board().as_deref() == Some(slug.as_str());
    if fs::symlink_metadata(&target).is_ok() {
        if !force {
            bail!("board '{slug}' was created while the archive was imported; nothing was imported");
        }
        replaced = home.remove_board(&slug, false, now)?.map(|p| p.display().to_string());
    }
    fs::rename(&staging, &target).with_context(|| format!("cannot create board {}", target.display()))?;
    guard.0 = None;
    sync_dir(&boards);
    if was_current {
        home.switch_board(&slug)?; // moving the old board aside forgot it as the current board
    }
    Ok(Imported {
        path: target.display().to_string(),
        slug,
        source_slug: manifest.slug.clone(),
        file: file.display().to_string(),
        format_version: manifest.format_version,
        schema_version: manifest.schema_version,
        cards,
        files: manifest.files.len(),
        bytes,
        sha256: digest,
        released,
        plugins: plugin_report,
        replaced,
    })
}

/// Open the staged database (migrating an older schema, as opening a board does) and end every attempt
/// that was running: requeued uncounted (`reclaimed`, `host_lost`), as the tick does for the claims of a
/// host that stopped working the board. An attempt that was being stopped is finished with the action it
/// was stopped for. Returns them with the board's card count.
fn release_running(
    db: &Path,
    manifest: &Manifest,
    limits: crate::breaker::BreakerLimits,
    now: i64,
) -> anyhow::Result<(Vec<Released>, i64)> {
    let mut store = Store::open(db)?;
    let mut released = Vec::new();
    for card in store.running_cards()? {
        let id = card.task.id.clone();
        let status = if card.run.status == RunStatus::Stopping {
            store.finish_stop(&id, card.run.id, limits, now)?.map(|a| a.transition.to)
        } else {
            let verdict = Action::Settle {
                outcome: Outcome::Reclaimed,
                error: Some("imported from another home: its worker ran on the exporting host".into()),
                detail: json!({
                    "host_lost": true,
                    "imported": true,
                    "exported_by": manifest.host_id,
                    "claim_lock": card.task.claim_lock,
                }),
                wedged: false,
            };
            store.settle(&id, card.run.id, verdict, true, limits, now)?.and_then(|s| s.status)
        };
        released.push(Released { id, run_id: card.run.id, status: status.map(|s| s.as_str().to_string()) });
    }
    let cards = store.stats()?.total;
    store.close()?;
    Ok((released, cards))
}
