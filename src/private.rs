//! Owner-only files and folders for everything that holds client documents
//! or reports (the embedded store, exports, validation reports): they hold
//! health data, and an operator's laptop or bastion host has other users.
//!
//! Modes are set explicitly after creation, so they are 0600 / 0700 whatever
//! the umask. What already exists is not changed behind the operator's back:
//! a file or folder others can read gets a warning naming the `chmod` that
//! fixes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Mode of a file the tool writes: read and write for its owner only.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a folder the tool creates: its owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` and its missing parents as owner-only folders. An existing
/// `path` is kept as it is, with a warning if other users can read it.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        warn_if_shared(path);
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            create_dir_all(parent)?;
        }
    }
    match fs::create_dir(path) {
        Ok(()) => set_mode(path, DIR_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates (or truncates) a file that only its owner can read, even when it
/// existed before with a wider mode.
pub fn create_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    let file = options.open(path)?;
    set_file_mode(&file, FILE_MODE)?;
    Ok(file)
}

/// Writes `bytes` to an owner-only file (see [`create_file`]).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let mut file = create_file(path)?;
    file.write_all(bytes.as_ref())?;
    file.sync_all()
}

/// Creates an empty owner-only file if none exists, so that a program that
/// copies the mode of its main file to its companions (SQLite's `-wal` and
/// `-shm`) creates them owner-only too. An existing file is left as it is.
pub fn create_new_file(path: &Path) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    match options.open(path) {
        Ok(file) => set_file_mode(&file, FILE_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The mode bits of `path` that let other users in (group or others), if any.
pub fn shared_bits(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        Some(mode).filter(|m| m & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Warns (on stderr, through the log) when other users can read `path`,
/// with the command that fixes it. Returns whether it warned.
pub fn warn_if_shared(path: &Path) -> bool {
    let Some(mode) = shared_bits(path) else {
        return false;
    };
    let fix = if path.is_dir() {
        format!("chmod -R go-rwx '{}'", path.display())
    } else {
        format!("chmod go-rwx '{}'", path.display())
    };
    tracing::warn!(
        "{} is readable by other users (mode {mode:03o}) and holds client data: run `{fix}`",
        path.display()
    );
    true
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_folders_and_files_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&tmp.path().join(dir)), 0o700, "{dir}");
        }
        let file = deep.join("f.json");
        write(&file, b"{}").unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_rewritten_file_loses_its_wider_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("old.jsonl");
        fs::write(&file, b"old").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        write(&file, b"new").unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"new");
    }

    #[test]
    fn an_existing_file_is_not_touched_by_create_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("store.db");
        fs::write(&file, b"data").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        create_new_file(&file).unwrap();
        assert_eq!(mode(&file), 0o640);
        assert_eq!(fs::read(&file).unwrap(), b"data");
        assert_eq!(shared_bits(&file), Some(0o640));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(shared_bits(&file), None);
    }
}
