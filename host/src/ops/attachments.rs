//! Attachment files: stored under the card's attachments folder with a safe, unique name, streamed with a
//! size cap and a sha256, recorded in the store, and removed with their rows. Never a path outside the
//! card's own folder.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};

use super::Desk;
use crate::board::Board;
use crate::model::Attachment;

/// Largest file an attachment may be.
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

/// A name that is not usable as an attachment name (a usage error).
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a usable attachment name")]
pub struct BadName(pub String);

/// An attachment over [`MAX_ATTACHMENT_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("{what} is {size} bytes; attachments are capped at 25 MiB ({MAX_ATTACHMENT_BYTES} bytes)")]
pub struct TooBig {
    pub what: String,
    pub size: u64,
}

/// Reduce a user-supplied name to one safe file name: the last path component, with anything but letters,
/// digits, `.`, `-`, `_` and spaces replaced. `..`, `.` and empty names are refused.
pub fn safe_name(name: &str) -> Result<String, BadName> {
    let last = name.rsplit(['/', '\\']).find(|part| !part.is_empty()).unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' })
        .take(200)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return Err(BadName(name.to_string()));
    }
    Ok(cleaned)
}

/// `report.txt`, then `report-1.txt`, `report-2.txt`, ...
fn suffixed(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
        _ => format!("{name}-{n}"),
    }
}

/// Where an attachment's file is.
pub fn path_of(board: &Board, att: &Attachment) -> PathBuf {
    board.card_files(&att.task_id).attachments.join(&att.stored_name)
}

/// Attach a file from disk (checked to be a regular file within the cap before reading).
pub fn attach_file(desk: &mut Desk, id: &str, path: &Path, name: Option<&str>) -> anyhow::Result<Attachment> {
    desk.store.require_task(id)?;
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > MAX_ATTACHMENT_BYTES {
        return Err(TooBig { what: path.display().to_string(), size: meta.len() }.into());
    }
    let wanted = name
        .map(str::to_string)
        .unwrap_or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let source = fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    attach_stream(desk, id, &wanted, source, &path.display().to_string())
}

/// Attach whatever `source` yields, under `wanted` made safe, streaming it with the size cap and hashing it
/// on the way. The file is created with `create_new` (two concurrent attaches never overwrite each other)
/// and removed again if anything fails, so nothing is left half-written. `what` names the source in
/// errors.
pub fn attach_stream(
    desk: &mut Desk,
    id: &str,
    wanted: &str,
    source: impl Read,
    what: &str,
) -> anyhow::Result<Attachment> {
    desk.store.require_task(id)?;
    let safe = safe_name(wanted)?;
    let dir = desk.board.card_files(id).attachments;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (stored_name, mut file) = (0..10_000)
        .find_map(|n| {
            let candidate = suffixed(&safe, n);
            match fs::OpenOptions::new().write(true).create_new(true).open(dir.join(&candidate)) {
                Ok(f) => Some(Ok((candidate, f))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e)),
            }
        })
        .ok_or_else(|| anyhow::anyhow!("no free name for {safe} in {}", dir.display()))?
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let target = dir.join(&stored_name);
    let copied = (|| -> anyhow::Result<(u64, String)> {
        // Read at most one byte past the cap: a stream (or a growing file) is cut off there.
        let mut limited = source.take(MAX_ATTACHMENT_BYTES + 1);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = limited.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > MAX_ATTACHMENT_BYTES {
                return Err(TooBig { what: what.to_string(), size }.into());
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        file.sync_all()?;
        Ok((size, hex::encode(hasher.finalize())))
    })();
    let recorded = copied.and_then(|(size, sha)| {
        Ok(desk.store.add_attachment(id, wanted, &stored_name, size as i64, &sha, crate::clock::now())?)
    });
    if recorded.is_err() {
        let _ = fs::remove_file(&target); // created above by create_new: ours to remove
    }
    recorded
}

/// Remove an attachment's row, then its file. `only_task` (a worker's scope) refuses other cards'.
pub fn remove(desk: &mut Desk, attachment_id: i64, only_task: Option<&str>) -> anyhow::Result<Attachment> {
    let att = desk.store.remove_attachment(attachment_id, only_task, crate::clock::now())?;
    remove_files(desk.board, &att.task_id.clone(), std::slice::from_ref(&att));
    Ok(att)
}

/// Remove attachment files after their rows are gone. Only names inside the card's own attachments folder
/// are touched; a name that would leave it (it cannot, by construction) is skipped with a warning.
pub fn remove_files(board: &Board, task_id: &str, attachments: &[Attachment]) {
    let dir = board.card_files(task_id).attachments;
    for att in attachments {
        if safe_name(&att.stored_name).ok().as_deref() != Some(att.stored_name.as_str()) {
            tracing::warn!(name = %att.stored_name, "not removing an attachment with an unsafe stored name");
            continue;
        }
        let path = dir.join(&att.stored_name);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an attachment file");
        }
    }
    let _ = fs::remove_dir(&dir); // only succeeds when empty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_escape() {
        assert_eq!(safe_name("../../evil.txt").unwrap(), "evil.txt");
        assert_eq!(safe_name("/etc/passwd").unwrap(), "passwd");
        assert_eq!(safe_name("a\\b\\c.md").unwrap(), "c.md");
        assert_eq!(safe_name("we$ird name?.txt").unwrap(), "we_ird name_.txt");
        for bad in ["..", ".", "", "/", "../.."] {
            assert!(safe_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collision_suffixes() {
        assert_eq!(suffixed("report.txt", 0), "report.txt");
        assert_eq!(suffixed("report.txt", 1), "report-1.txt");
        assert_eq!(suffixed("README", 2), "README-2");
        assert_eq!(suffixed(".env", 1), ".env-1");
    }
}
