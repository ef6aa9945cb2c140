//! The data directory and its files: only the server's user may read them. The directory
//! is created (or tightened) to 0700 and every file in it is 0600, because the database
//! holds room codes and history and the directory may hold the token secret.
//!
//! Files that must appear whole or not at all (the secret) are written to a temp file,
//! synced and then hard-linked into place: `link(2)` fails when the name exists, so of
//! processes racing to create one file exactly one wins and the others read its file.

use crate::error::Error;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn fail(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Config(format!("{what} {}: {e}", path.display()))
}

/// Creates `dir` (and its parents) if missing and makes it 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail("creating", dir, e))?;
    // A directory made by an older server (or by hand) may be wider.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| fail("restricting", dir, e))
}

/// Makes `path` 0600: created empty if missing (so that files derived from it, such as
/// SQLite's WAL, inherit the mode), tightened if it exists.
pub fn ensure_private_file(path: &Path) -> Result<(), Error> {
    fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(|e| fail("creating", path, e))?;
    tighten(path)
}

/// Makes an existing file 0600; a missing one is fine.
pub fn tighten(path: &Path) -> Result<(), Error> {
    match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail("restricting", path, e)),
        _ => Ok(()),
    }
}

/// Creates `dir/name` holding `text`, 0600, unless it exists. The file appears complete
/// or not at all. Returns whether this call created it (false: another process did).
pub fn create_once(dir: &Path, name: &str, text: &str) -> Result<bool, Error> {
    let target = dir.join(name);
    let nonce: u64 = rand::random();
    let temp = dir.join(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&temp, &target));
    let _ = fs::remove_file(&temp);
    let created = match linked {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(fail("writing", &target, e)),
    };
    // The new name is durable once the directory is synced.
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("syncing", dir, e))?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_creation_wins_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(create_once(&dir, "s", "first").unwrap());
        assert!(!create_once(&dir, "s", "second").unwrap());
        assert_eq!(fs::read_to_string(dir.join("s")).unwrap(), "first");
        assert_eq!(fs::metadata(dir.join("s")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
    }
}
