//! Making a backup: in the running broker (its admin listener's `POST /backup`), or, when no
//! broker runs, in the `broker backup` process itself; then copied out of the state directory.
//!
//! The running broker writes the backup into `<state_dir>/backups/<time>` (the catalog's
//! checkpoint is hard links there, on the same file system, and costs no copy), and
//! `broker backup --to DIR` copies it, checking every file against the manifest, and removes it.
//! The directory is never taken from the answer of whoever listens on the admin port: only its
//! name, checked to be a time stamp, under the configured state directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{
    AREA, BackupError, CHECKPOINT, FORMAT, HOSTED, MANIFEST, Manifest, PUBLIC_KEY, REVOCATIONS, SIGNATURE, TRAIL, digest_file, failed,
    files_under, signed_manifest, summarise_trail,
};
use crate::audit::file::FileAuditLog;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::hosted::HostedStore;

/// The parts of a broker a backup is taken from.
pub struct Source {
    catalog: Arc<dyn Catalog>,
    audit: Arc<FileAuditLog>,
    hosted: Arc<dyn HostedStore>,
    state_dir: PathBuf,
    /// One backup at a time.
    running: Mutex<()>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

impl Source {
    pub fn new(catalog: Arc<dyn Catalog>, audit: Arc<FileAuditLog>, hosted: Arc<dyn HostedStore>, state_dir: &Path) -> Self {
        Self {
            catalog,
            audit,
            hosted,
            state_dir: state_dir.to_owned(),
            running: Mutex::new(()),
        }
    }

    /// Makes a backup in `<state_dir>/backups/<time>` (removing what an earlier one left there)
    /// and returns its name and manifest. Blocks for as long as the copy takes; requests go on.
    ///
    /// A backup that fails is removed at once. Earlier ones are removed only once they are an
    /// hour old: a `broker backup` may still be copying one out (it removes it when done).
    pub fn create(&self) -> Result<(String, Manifest), BackupError> {
        let _one = self.running.try_lock().map_err(|_| BackupError::Busy)?;
        let area = self.state_dir.join(AREA);
        private_dir(&area).map_err(|e| failed("the backup area")(e.to_string()))?;
        remove_stale(&area).map_err(|e| failed("the backup area")(e.to_string()))?;
        let name = stamp();
        let dir = area.join(&name);
        // Two in the same second: the second one waits its turn.
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&dir)
        };
        made.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Busy,
            _ => failed("the backup directory")(e.to_string()),
        })?;
        match self.take(&dir) {
            Ok(manifest) => Ok((name, manifest)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The parts, in the order that keeps "no change without its record" (module docs).
    fn take(&self, dir: &Path) -> Result<Manifest, BackupError> {
        let (catalog, datasets) = self.catalog.backup_to(dir).map_err(|e| failed("the catalog")(e.to_string()))?;
        let hosted = self
            .hosted
            .backup_to(&dir.join(HOSTED), &datasets)
            .map_err(|e| failed("the hosted data")(e.to_string()))?;
        // The key that signed the copy's last checkpoint, not the key now: a rotation may have
        // finished since.
        let (cp, signer) = self
            .audit
            .snapshot_to(&dir.join(TRAIL))
            .map_err(|e| failed("the audit trail")(e.to_string()))?;
        let write =
            |name: &str, bytes: &[u8]| crate::fsutil::write_new(&dir.join(name), bytes, 0o600).map_err(|e| failed(name)(e.to_string()));
        write(
            CHECKPOINT,
            &serde_json::to_vec_pretty(&cp).map_err(|e| failed(CHECKPOINT)(e.to_string()))?,
        )?;
        // Every key the trail was signed with (a rotated trail needs the earlier ones), up to
        // the copy's: a key listed since belongs to records the copy does not hold.
        let public = signer.public_hex();
        crate::audit::signing::list_public_key(&self.state_dir, &public).map_err(|e| failed(PUBLIC_KEY)(e.to_string()))?;
        let listed = std::fs::read_to_string(self.state_dir.join(PUBLIC_KEY)).map_err(|e| failed(PUBLIC_KEY)(e.to_string()))?;
        write(PUBLIC_KEY, keys_through(&listed, &public).as_bytes())?;
        match std::fs::read(self.state_dir.join(REVOCATIONS)) {
            Ok(bytes) => write(REVOCATIONS, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(REVOCATIONS)(e.to_string())),
        }
        let keys = super::public_keys(dir).map_err(failed("the audit keys"))?;
        let (trail, decisions) = summarise_trail(&dir.join(TRAIL), &keys, &cp).map_err(failed("the trail copy"))?;
        let mut files = std::collections::BTreeMap::new();
        for rel in files_under(dir).map_err(|e| failed("the backup directory")(e.to_string()))? {
            let digest = digest_file(&dir.join(&rel)).map_err(|e| failed(&rel)(e.to_string()))?;
            files.insert(rel, digest);
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            created: crate::audit::now_rfc3339(),
            broker_version: env!("CARGO_PKG_VERSION").into(),
            public_key: signer.public_hex(),
            trail,
            decisions,
            catalog,
            hosted: hosted.iter().map(ToString::to_string).collect(),
            files,
        };
        let (bytes, signature) = signed_manifest(&manifest, &signer)?;
        write(SIGNATURE, signature.as_bytes())?;
        // The manifest last: a backup without one is incomplete.
        write(MANIFEST, &bytes)?;
        crate::fsutil::sync_dir(dir).map_err(|e| failed("the backup directory")(e.to_string()))?;
        Ok(manifest)
    }
}

/// The lines of `listed` (public keys, oldest first) up to and including `key`.
fn keys_through(listed: &str, key: &str) -> String {
    let mut out = String::new();
    for line in listed.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == key {
            break;
        }
    }
    out
}

/// Removes the backups in `area` made over an hour ago (left by a `broker backup` that stopped
/// before it removed its own). Best effort: what cannot be removed now (a backup its command is
/// removing at this moment, a stray file) does not stop the next backup.
fn remove_stale(area: &Path) -> std::io::Result<()> {
    const STALE: std::time::Duration = std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(area)?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.modified().ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age < STALE) {
            continue;
        }
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
        if let Err(e) = removed {
            tracing::warn!(path = %entry.path().display(), error = %e, "an old backup could not be removed");
        }
    }
    Ok(())
}

/// A directory only the broker's user can read.
fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The backup's name: the time it was made, UTC, to the second.
fn stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn is_stamp(name: &str) -> bool {
    name.len() == 16
        && name.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// `broker backup --to DIR`: has the running broker make a backup (or makes one itself when no
/// broker runs), copies it to `to` (a new or empty directory), checking each file against the
/// manifest, and removes it from the state directory.
pub fn run(config: &Config, to: &Path) -> Result<Manifest, BackupError> {
    if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::Failed(format!(
            "'{}' is not empty; a backup goes into a new directory",
            to.display()
        )));
    }
    let name = match config.admin_listen {
        Some(addr) => ask_running(addr, &config.state_dir)?,
        None => None,
    };
    let name = match name {
        Some(name) => name,
        None => make_offline(config)?,
    };
    let made = config.state_dir.join(AREA).join(&name);
    let copied = copy_checked(&made, to, &config.state_dir);
    // Copied or not, it leaves the state directory (whose disk the trail needs).
    if let Err(e) = std::fs::remove_dir_all(&made) {
        tracing::warn!(dir = %made.display(), error = %e, "the backup was not removed from the state directory");
    }
    if copied.is_err() {
        // `to` was new or empty: what is in it is this copy's, and incomplete.
        if let Ok(entries) = std::fs::read_dir(to) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
            }
        }
    }
    copied
}

/// Asks the broker listening on `admin` for a backup; `None` if nothing listens there.
fn ask_running(admin: std::net::SocketAddr, state_dir: &Path) -> Result<Option<String>, BackupError> {
    let Some((status, json)) = crate::admin_client::post(admin, state_dir, "/backup").map_err(BackupError::Failed)? else {
        return Ok(None);
    };
    match status {
        200 => match json["backup"].as_str() {
            Some(name) if is_stamp(name) => Ok(Some(name.to_owned())),
            _ => Err(BackupError::Failed(format!(
                "the admin listener at {admin} answered something else than a backup"
            ))),
        },
        409 => Err(BackupError::Busy),
        status => Err(BackupError::Failed(format!(
            "the broker answered {status}: {}",
            json["detail"].as_str().unwrap_or("no detail")
        ))),
    }
}

/// No broker runs: the stores are opened here (a running broker holds the catalog's lock, and
/// opening it fails rather than copying under its feet).
fn make_offline(config: &Config) -> Result<String, BackupError> {
    let dir = &config.state_dir;
    if !dir.join(TRAIL).exists() {
        return Err(BackupError::Failed(format!(
            "'{}' holds no audit trail: nothing to back up",
            dir.display()
        )));
    }
    let data_dir = config.data_dir.as_ref().ok_or_else(|| {
        BackupError::Failed("the configuration keeps the catalog in memory ([storage] data_dir): nothing to back up".into())
    })?;
    let catalog = crate::catalog::OxigraphCatalog::open(data_dir, &config.base_iri)
        .map_err(|e| failed("the catalog (is the broker running without an admin listener?)")(e.to_string()))?;
    let audit = FileAuditLog::open_stopped(dir).map_err(failed("the audit trail"))?;
    let key = std::fs::read(dir.join(super::KEYS[2])).map_err(|e| failed("the data key")(e.to_string()))?;
    let hosted = crate::hosted::FileHostedStore::new(&dir.join(HOSTED), &key).map_err(|e| failed("the hosted data")(e.to_string()))?;
    let source = Source::new(Arc::new(catalog), Arc::new(audit), Arc::new(hosted), dir);
    Ok(source.create()?.0)
}

/// Copies the backup in `from` to `to`, each file checked against the manifest, signed by a key
/// the broker lists in `state_dir` (not merely by the key the manifest names).
fn copy_checked(from: &Path, to: &Path, state_dir: &Path) -> Result<Manifest, BackupError> {
    let bytes = std::fs::read(from.join(MANIFEST)).map_err(|e| failed("the backup's manifest")(e.to_string()))?;
    let signature = std::fs::read_to_string(from.join(SIGNATURE)).map_err(|e| failed("the backup's signature")(e.to_string()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| failed("the backup's manifest")(e.to_string()))?;
    let listed = super::public_keys(state_dir).map_err(failed("the broker's audit keys"))?;
    let Some(key) = listed.iter().find(|k| k.to_hex() == manifest.public_key) else {
        return Err(BackupError::Failed(
            "the backup's manifest names a key the broker does not list".into(),
        ));
    };
    if !key.verifies_manifest(&bytes, &signature) {
        return Err(BackupError::Failed(
            "the backup's manifest is not signed by the broker's audit key".into(),
        ));
    }
    private_dir(to).map_err(|e| failed("the target directory")(e.to_string()))?;
    for (rel, want) in &manifest.files {
        let rel_path = super::safe_relative(rel).ok_or_else(|| BackupError::Failed(format!("the manifest names '{rel}'")))?;
        let target = to.join(&rel_path);
        if let Some(parent) = target.parent() {
            private_dir(parent).map_err(|e| failed(rel)(e.to_string()))?;
        }
        let got = super::copy_hashed(&from.join(&rel_path), &target, want.bytes).map_err(|e| failed(rel)(e.to_string()))?;
        if &got != want {
            return Err(BackupError::Failed(format!("'{rel}' changed while it was copied")));
        }
    }
    crate::fsutil::write_new(&to.join(SIGNATURE), signature.as_bytes(), 0o600).map_err(|e| failed(SIGNATURE)(e.to_string()))?;
    crate::fsutil::write_new(&to.join(MANIFEST), &bytes, 0o600).map_err(|e| failed(MANIFEST)(e.to_string()))?;
    crate::fsutil::sync_dir(to).map_err(|e| failed("the target directory")(e.to_string()))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_time_stamp_names_a_backup_the_cli_copies() {
        assert!(is_stamp(&stamp()));
        for bad in ["../../etc", "20261203T120000Z/..", "20261203X120000Z", ""] {
            assert!(!is_stamp(bad), "{bad}");
        }
    }
}
