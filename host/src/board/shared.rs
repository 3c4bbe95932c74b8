//! A board kept in PostgreSQL shares its configuration and its plugins with every host that works it.
//!
//! The database holds the board's `board.toml` text (the shared copy) and, for each plugin name its
//! policies use, a pin: the sha256 and the bytes. Each host keeps its own `board.toml` in the board's
//! folder, editable as on any board, and `board.toml.synced`: the sha256 of the shared copy it last took or
//! gave. Every load of the board ([`super::Home::open_board`], so every command and every tick) settles the
//! two before the config is read:
//!
//! - the host's copy is the shared one: nothing to do;
//! - the host's copy is unchanged since it last synced: it takes the shared copy (another host published);
//! - the host's copy changed and the shared one did not: the host's copy is checked (it must parse and
//!   validate) and published, a compare-and-set on the shared copy's sha256, with a `config_published`
//!   event;
//! - both changed: the shared copy wins, and the host's edit is kept beside it as `board.toml.local-<time>`,
//!   with a warning, so nothing is lost and no host runs a config the others do not.
//!
//! Then the plugins: a name this host has installed and the board has not pinned, or installed later than
//! the pin, is published (a `plugin_published` event); a name pinned and missing here, or pinned to a later
//! install, is fetched, checked against its sha256, and installed here. A `sha256:HEX` reference's bytes
//! travel the same way. Every load of a plugin re-hashes its bytes as on any board.

use std::fs;
use std::path::Path;

use super::config::BoardConfig;
use super::{BoardError, Home, Result, io, write_atomic};
use crate::digest::sha256_hex;
use crate::policy::plugins::{self, Installed};
use crate::store::{SharedConfig, SharedPlugin, Store};

/// The sha256 of the shared config this host's `board.toml` was last synced with.
pub const SYNCED_FILE: &str = "board.toml.synced";

/// Settle the board's `board.toml` and plugins with the database's (see the module's docs).
pub(super) fn sync(home: &Home, dir: &Path, slug: &str, url: &str) -> Result<()> {
    let mut store = Store::open_postgres(url, slug)?;
    let (shared, pins) = store.shared_state()?;
    let host = home.host_id()?;
    let now = crate::clock::now();
    let text = sync_config(&mut store, dir, shared, &host, now)?;
    // The plugins of a config this host cannot read are not its to settle: the load reports the config.
    if let Ok(config) = BoardConfig::parse(&text, &dir.join("board.toml")) {
        sync_plugins(home, &mut store, &config, &pins, &host, now)?;
    }
    store.close()?;
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
    }
}

/// Settle `board.toml`; the text this host runs with.
fn sync_config(
    store: &mut Store,
    dir: &Path,
    shared: Option<SharedConfig>,
    host: &str,
    now: i64,
) -> Result<String> {
    let path = dir.join("board.toml");
    let synced_path = dir.join(SYNCED_FILE);
    let local = read_optional(&path)?;
    let synced = read_optional(&synced_path)?.map(|s| s.trim().to_string());
    let local_sha = local.as_deref().map(|t| sha256_hex(t.as_bytes()));
    let mark = |sha: &str| -> Result<()> {
        if synced.as_deref() != Some(sha) {
            write_atomic(&synced_path, format!("{sha}\n").as_bytes())?;
        }
        Ok(())
    };
    let take = |shared: &SharedConfig| -> Result<String> {
        write_atomic(&path, shared.body.as_bytes())?;
        write_atomic(&synced_path, format!("{}\n", shared.sha256).as_bytes())?;
        Ok(shared.body.clone())
    };
    let shared = match shared {
        Some(shared) => shared,
        None => {
            // The first host to load the board publishes its copy.
            let text = local.ok_or_else(|| {
                BoardError::Invalid(format!(
                    "{} is missing and the board has no shared config",
                    path.display()
                ))
            })?;
            BoardConfig::parse(&text, &path)?;
            let sha = local_sha.expect("read");
            if store.publish_config(&text, &sha, None, host, now)? {
                mark(&sha)?;
                return Ok(text);
            }
            // Another host published first: take its copy.
            let shared = store.shared_state()?.0.expect("published");
            return take(&shared);
        }
    };
    if local_sha.as_deref() == Some(shared.sha256.as_str()) {
        mark(&shared.sha256)?;
        return Ok(shared.body);
    }
    let edited = local.is_some() && synced.is_some() && local_sha != synced;
    if !edited {
        return take(&shared);
    }
    let text = local.expect("edited");
    let sha = local_sha.expect("edited");
    if synced.as_deref() == Some(shared.sha256.as_str()) {
        // Only this host's copy changed: check it, then publish it if the shared copy is still the one it
        // was edited from.
        BoardConfig::parse(&text, &path)?;
        if store.publish_config(&text, &sha, Some(&shared.sha256), host, now)? {
            tracing::info!(path = %path.display(), sha256 = %sha, "published board.toml to the fleet");
            mark(&sha)?;
            return Ok(text);
        }
    }
    // Both changed: the shared copy wins; this host's edit is kept beside it.
    let shared = store.shared_state()?.0.unwrap_or(shared);
    let kept = dir.join(format!("board.toml.local-{now}"));
    write_atomic(&kept, text.as_bytes())?;
    tracing::warn!(
        kept = %kept.display(),
        by = %shared.updated_by,
        "board.toml changed here and in the fleet since this host last synced: the fleet's copy is in \
         board.toml, this host's edit is kept aside; make it again"
    );
    eprintln!(
        "warning: {} changed on this host and in the fleet (host {}) since this host last synced: the \
         fleet's copy is in place, yours is kept as {}",
        path.display(),
        shared.updated_by,
        kept.display()
    );
    take(&shared)
}

/// Settle the plugins the config names (see the module's docs). A plugin that cannot be settled is
/// logged and left: loading it reports it as a policy error, as on any board.
fn sync_plugins(
    home: &Home,
    store: &mut Store,
    config: &BoardConfig,
    pins: &[SharedPlugin],
    host: &str,
    now: i64,
) -> Result<()> {
    for spec in &config.policies {
        let reference = spec.plugin.as_str();
        if reference.starts_with("builtin:") {
            continue;
        }
        if let Some(sha256) = reference.strip_prefix("sha256:") {
            match plugins::blob_bytes(home, sha256) {
                Some(bytes) => store.share_blob(sha256, &bytes)?,
                None => fetch(home, store, sha256, None)?,
            }
            continue;
        }
        let local = plugins::show(home, reference).ok();
        let pin = pins.iter().find(|p| p.name == reference);
        match (local, pin) {
            (Some(local), pin)
                if pin.is_none_or(|p| p.sha256 != local.sha256 && local.installed_at > p.installed_at) =>
            {
                publish(home, store, &local, host, now)?;
            }
            (local, Some(pin)) if local.as_ref().is_none_or(|l| l.sha256 != pin.sha256) => {
                let entry = Installed {
                    name: pin.name.clone(),
                    sha256: pin.sha256.clone(),
                    kind: pin.kind.clone(),
                    version: pin.version.clone(),
                    wit_version: pin.wit_version.clone(),
                    installed_at: pin.installed_at,
                    size: pin.size as u64,
                };
                fetch(home, store, &pin.sha256, Some(&entry))?;
            }
            // The same bytes here and in the fleet, or a name nobody installed (its load reports it).
            _ => {}
        }
    }
    Ok(())
}

/// Pin this host's install of a plugin for the fleet.
fn publish(home: &Home, store: &mut Store, local: &Installed, host: &str, now: i64) -> Result<()> {
    let Some(bytes) = plugins::blob_bytes(home, &local.sha256) else {
        tracing::warn!(plugin = %local.name, "the installed plugin's blob is missing or changed; not published");
        return Ok(());
    };
    let shared = SharedPlugin {
        name: local.name.clone(),
        sha256: local.sha256.clone(),
        kind: local.kind.clone(),
        version: local.version.clone(),
        wit_version: local.wit_version.clone(),
        installed_at: local.installed_at,
        size: local.size as i64,
        published_by: host.to_string(),
    };
    if store.publish_plugin(&shared, &bytes, now)? {
        tracing::info!(plugin = %local.name, sha256 = %local.sha256, "published a plugin to the fleet");
    }
    Ok(())
}

/// Fetch the bytes of `sha256` from the database, check them, and store them here (under `entry`'s name
/// when it has one).
fn fetch(home: &Home, store: &mut Store, sha256: &str, entry: Option<&Installed>) -> Result<()> {
    let Some(bytes) = store.shared_blob(sha256)? else {
        tracing::warn!(sha256, "the board pins a plugin whose bytes no host has published");
        return Ok(());
    };
    let stored = match entry {
        Some(entry) => plugins::adopt_pinned(home, entry, &bytes),
        None => plugins::store_blob(home, sha256, &bytes),
    };
    match stored {
        Ok(()) => {
            tracing::info!(
                sha256,
                plugin = entry.map(|e| e.name.as_str()),
                "installed a plugin the fleet pins"
            );
        }
        Err(e) => tracing::warn!(sha256, error = %e, "a plugin the fleet pins could not be installed here"),
    }
    Ok(())
}
