//! Content digests: the one place the host turns bytes into a sha256 name (plugin blobs, board.toml's
//! hash, attachments, export manifests).

use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file's identity and last change as the kernel keeps them: device, inode, size, and modification and
/// status-change times to the nanosecond. Any write to the file, or its replacement by another file,
/// changes it (the status-change time, ctime, cannot be set back from user space), so a file whose
/// fingerprint is the one recorded when its bytes were last verified still has those bytes and need not be
/// read and hashed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub text: String,
    /// Whether the file's last change is old enough to record. The kernel stamps files with a coarse clock
    /// (a few milliseconds), so a write in the same tick as the last one can leave every field unchanged;
    /// like git's index ("racy git"), only a file changed more than [`SETTLE_SECONDS`] ago is recorded, so
    /// any later write gets a later ctime.
    pub settled: bool,
}

/// How long a file must be unchanged before its fingerprint is recorded.
pub const SETTLE_SECONDS: u64 = 2;

/// The fingerprint of the file at `path`, or `None` when it cannot be read.
pub fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let changed =
        std::time::Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().clamp(0, 999_999_999) as u32);
    Some(Fingerprint {
        text: format!(
            "{}:{}:{}:{}.{:09}:{}.{:09}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ),
        settled: changed + std::time::Duration::from_secs(SETTLE_SECONDS) < now,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_write_changes_a_file_s_fingerprint_even_with_its_size_and_mtime_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let before = super::fingerprint(&path).unwrap();
        assert_eq!(super::fingerprint(&path).unwrap(), before);
        assert!(!before.settled, "just written");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"abd").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        assert_ne!(super::fingerprint(&path).unwrap(), before, "the ctime moved");
        assert_eq!(super::fingerprint(&dir.path().join("none")), None);
    }
}
