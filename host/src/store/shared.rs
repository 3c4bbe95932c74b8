//! What the hosts of a shared (PostgreSQL) board share besides its cards: the board's configuration (the
//! text `board.toml` holds) and the plugins its policies name, pinned by name to a sha256 with their bytes.
//! The store keeps them and compares-and-sets; deciding which copy wins is the board's
//! ([`crate::board`]'s sync). These tables exist only in a board's PostgreSQL schema.

use rusqlite::params;
use serde_json::json;

use super::cards::append_event;
use super::{Result, Store, StoreError};
use crate::model::EventKind;

/// The board's shared configuration, as last published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfig {
    pub body: String,
    pub sha256: String,
    pub updated_at: i64,
    /// The host id that published it.
    pub updated_by: String,
}

/// A plugin name pinned for every host of the board: the installed record of the host that published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPlugin {
    pub name: String,
    pub sha256: String,
    pub kind: String,
    pub version: String,
    pub wit_version: String,
    pub installed_at: i64,
    pub size: i64,
    pub published_by: String,
}

impl Store {
    fn require_shared(&self) -> Result<()> {
        if self.is_shared() {
            Ok(())
        } else {
            Err(StoreError::Invalid("only a board kept in PostgreSQL shares its configuration".into()))
        }
    }

    /// The shared configuration and every pinned plugin, read in one snapshot.
    pub fn shared_state(&mut self) -> Result<(Option<SharedConfig>, Vec<SharedPlugin>)> {
        self.require_shared()?;
        self.read(|tx| {
            let config = tx.query_opt(
                "SELECT body, sha256, updated_at, updated_by FROM shared_config WHERE name = 'board.toml'",
                params![],
                |r| {
                    Ok(SharedConfig {
                        body: r.get(0)?,
                        sha256: r.get(1)?,
                        updated_at: r.get(2)?,
                        updated_by: r.get(3)?,
                    })
                },
            )?;
            let plugins = tx.query_map(
                "SELECT name, sha256, kind, version, wit_version, installed_at, size, published_by
                   FROM shared_plugins ORDER BY name",
                params![],
                |r| {
                    Ok(SharedPlugin {
                        name: r.get(0)?,
                        sha256: r.get(1)?,
                        kind: r.get(2)?,
                        version: r.get(3)?,
                        wit_version: r.get(4)?,
                        installed_at: r.get(5)?,
                        size: r.get(6)?,
                        published_by: r.get(7)?,
                    })
                },
            )?;
            Ok((config, plugins))
        })
    }

    /// Publish `body` as the board's configuration if the shared copy is still `expected` (its sha256, or
    /// none yet), with a board event. `false`, and nothing written, when another host published first.
    pub fn publish_config(
        &mut self,
        body: &str,
        sha256: &str,
        expected: Option<&str>,
        host: &str,
        now: i64,
    ) -> Result<bool> {
        self.require_shared()?;
        self.write(|tx| {
            let changed = match expected {
                None => tx.execute(
                    "INSERT INTO shared_config (name, body, sha256, updated_at, updated_by)
                     VALUES ('board.toml', ?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                    params![body, sha256, now, host],
                )?,
                Some(previous) => tx.execute(
                    "UPDATE shared_config SET body = ?1, sha256 = ?2, updated_at = ?3, updated_by = ?4
                      WHERE name = 'board.toml' AND sha256 = ?5",
                    params![body, sha256, now, host, previous],
                )?,
            };
            if changed == 1 {
                let payload = json!({ "sha256": sha256, "previous": expected, "host": host });
                append_event(tx, None, None, EventKind::ConfigPublished, payload, now)?;
            }
            Ok(changed == 1)
        })
    }

    /// Pin `plugin.name` to `plugin.sha256` for every host, storing the bytes if the database lacks them,
    /// unless the pin is already newer (a later install elsewhere) or the same. `false` when nothing
    /// changed.
    pub fn publish_plugin(&mut self, plugin: &SharedPlugin, bytes: &[u8], now: i64) -> Result<bool> {
        self.require_shared()?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO shared_blobs (sha256, bytes) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
                params![plugin.sha256, bytes],
            )?;
            let changed = tx.execute(
                "INSERT INTO shared_plugins
                   (name, sha256, kind, version, wit_version, installed_at, size, published_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, kind = excluded.kind,
                   version = excluded.version, wit_version = excluded.wit_version,
                   installed_at = excluded.installed_at, size = excluded.size,
                   published_by = excluded.published_by
                 WHERE shared_plugins.installed_at < excluded.installed_at
                   AND shared_plugins.sha256 <> excluded.sha256",
                params![
                    plugin.name,
                    plugin.sha256,
                    plugin.kind,
                    plugin.version,
                    plugin.wit_version,
                    plugin.installed_at,
                    plugin.size,
                    plugin.published_by
                ],
            )?;
            if changed == 1 {
                let payload = json!({
                    "plugin": plugin.name, "sha256": plugin.sha256, "version": plugin.version,
                    "host": plugin.published_by,
                });
                append_event(tx, None, None, EventKind::PluginPublished, payload, now)?;
            }
            Ok(changed == 1)
        })
    }

    /// Store the bytes of a plugin a board pins by `sha256:HEX`, if the database lacks them.
    pub fn share_blob(&mut self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.require_shared()?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO shared_blobs (sha256, bytes) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
                params![sha256, bytes],
            )?;
            Ok(())
        })
    }

    /// The bytes the database holds for `sha256`, unchecked (the caller hashes them).
    pub fn shared_blob(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.require_shared()?;
        self.read(|tx| {
            tx.query_opt("SELECT bytes FROM shared_blobs WHERE sha256 = ?1", params![sha256], |r| r.get(0))
        })
    }
}
