//! Files shoal writes: private (mode 0600) and replaced atomically.
//!
//! A file is written to a temporary file with an unpredictable name beside it, created
//! exclusively (`O_CREAT|O_EXCL`, so an existing file or a planted symlink is never written
//! through) with mode 0600, flushed to disk, then renamed over the target. A reader (HAProxy
//! on restart) sees the old file or the new one, never half of one; a crash leaves at most
//! a stray temporary file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file shoal creates: read and write for its owner only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` atomically with mode 0600 (see the module docs).
///
/// # Errors
/// When the temporary file cannot be created or written, or the rename fails (the
/// temporary file is then removed).
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path)?;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .open(&tmp)?;
        // The mode given to open is filtered by the umask; 0600 is never widened by it,
        // but make it exact.
        f.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` empty with mode 0600 if it does not exist, and narrows it to 0600 if it
/// does (for files another library writes in place, such as the SQLite journal, whose
/// `-wal` and `-shm` files SQLite creates with the database file's mode).
///
/// # Errors
/// When the file cannot be created or its mode cannot be changed.
pub fn ensure_private(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(path)?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_MODE))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// `.<name>.<random>.tmp` in the directory of `path`.
fn temp_beside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{hex}.tmp"));
    Ok(path.with_file_name(tmp_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_write_is_private_and_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("haproxy.cfg");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(mode(&p), 0o600);
        // Nothing is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("haproxy.cfg")]);
    }

    #[test]
    fn temp_names_are_unpredictable() {
        let p = Path::new("/x/haproxy.cfg");
        let (a, b) = (temp_beside(p).unwrap(), temp_beside(p).unwrap());
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("/x")));
        // The old fixed name is not used.
        assert_ne!(a, p.with_extension("tmp"));
    }

    #[test]
    fn a_planted_symlink_at_the_target_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let p = dir.path().join("haproxy.cfg");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_private_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn ensure_private_creates_and_narrows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.db");
        ensure_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
    }
}
