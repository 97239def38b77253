//! Small file helpers shared by the PKI and the stores: atomic replacement and private files.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` so that readers see either the old or the new file, never a torn one:
/// write to a sibling temp file, fsync, rename over the target. `mode` sets the permissions the
/// file has from its first byte on (0o600 for private keys).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is filtered by the umask on creation; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            d.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to a new file `path` (an existing one is an error) with `mode`, synced.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Syncs the directory `dir` (so that the names of files just created in it are durable).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Reads a file, naming it in the error so the operator knows which one is missing or unreadable.
pub fn read_named(path: &Path, what: &str) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(|source| FileError {
        what: what.to_owned(),
        path: path.display().to_string(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the {what} file '{path}': {source}")]
pub struct FileError {
    pub what: String,
    pub path: String,
    #[source]
    pub source: io::Error,
}
