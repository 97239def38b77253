//! `broker restore --from DIR --keys KEYDIR`: a backup back into an empty state directory, with
//! the broker stopped.
//!
//! Everything is checked before the broker's directories are touched: the manifest's signature
//! against the audit key in `KEYDIR` (a backup cannot be altered and signed again without that
//! key, nor another broker's backup restored by mistake), the files present against the
//! manifest, and then, in a staging directory *inside* the state directory, each file's hash as
//! it is copied, the trail's chain and signatures, the catalog's counts and every hosted upload's
//! decryption. Only then are the staged files renamed into place. A restore never overwrites: a
//! state directory or catalog that holds anything is refused.
//!
//! Why inside: the service user owns its state directory and nothing beside it (`/var/lib` is
//! root's), and the state directory may be a mount point or a container's volume, which cannot
//! be renamed; renames within it need neither. The catalog's directory must be on the same file
//! system as the state directory: inside it in the packaged configuration (`graph/`, its private
//! store `graph-private/` beside it, both inside). A catalog that *is* the state directory keeps
//! its private store beside it (`<state>-private`), which the restore must be able to create.

use std::path::{Path, PathBuf};

use super::{
    BackupError, CHECKPOINT, FORMAT, HOSTED, KEYS, MANIFEST, Manifest, SIGNATURE, TRAIL, copy_hashed, files_under, safe_relative,
    summarise_trail,
};
use crate::audit::signing::{CheckpointFile, PublicKey, Signer};
use crate::catalog::{CatalogBackup, DatasetCatalog, DatasetId};
use crate::config::Config;
use crate::hosted::HostedStore;

/// Where the catalog's two stores wait in the staging directory, unless the catalog lives in
/// the state directory itself (`[storage] data_dir` alone, the usual configuration).
const STAGED_GRAPH: &str = "restore-graph";

/// The staging directory's name in the state directory. What an interrupted restore left under
/// names starting with it is removed by the next restore.
const STAGING: &str = ".restoring";

/// Where the catalog's stores are staged, relative to the staging directory (the catalog's
/// own store; its private store is always staged apart, it lives beside the catalog).
struct Layout {
    graph: PathBuf,
    private: PathBuf,
}

impl Layout {
    fn of(state_dir: &Path, data_dir: &Path) -> Self {
        let graph = if state_dir == data_dir {
            PathBuf::new()
        } else {
            PathBuf::from(STAGED_GRAPH)
        };
        Self {
            graph,
            private: PathBuf::from(format!("{STAGED_GRAPH}-private")),
        }
    }
}

/// Restores the backup in `from` with the keys in `keys`; returns its manifest.
pub fn restore(config: &Config, from: &Path, keys: &Path) -> Result<Manifest, BackupError> {
    let data_dir = check_target(config)?;
    let keys = Keys::read(keys)?;
    let refused = |reason: String| BackupError::Refused {
        dir: from.display().to_string(),
        reason,
    };
    let manifest = read_manifest(from, &keys.signer).map_err(refused)?;
    check_file_set(from, &manifest).map_err(refused)?;
    let layout = Layout::of(&config.state_dir, &data_dir);
    let staging = Staging::create(&config.state_dir)?;
    copy_into(from, &manifest, &staging.path, &layout).map_err(refused)?;
    keys.install(&staging.path)?;
    check_trail(&staging.path, &manifest).map_err(refused)?;
    check_catalog_and_hosted(&staging.path, &manifest, &keys, &layout, &config.base_iri).map_err(refused)?;
    staging.commit(&config.state_dir, &data_dir, &layout)?;
    Ok(manifest)
}

fn target_err(path: &Path, reason: impl Into<String>) -> BackupError {
    BackupError::Target {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The catalog's directory; the state directory and the catalog's stores must be absent or
/// empty.
fn check_target(config: &Config) -> Result<PathBuf, BackupError> {
    let data_dir = config.data_dir.clone().ok_or_else(|| {
        target_err(
            &config.state_dir,
            "the configuration keeps the catalog in memory ([storage] data_dir)",
        )
    })?;
    for dir in [&config.state_dir, &data_dir, &crate::catalog::store::private_dir(&data_dir)] {
        // In the state directory, what an interrupted restore left, and a file system's
        // `lost+found` (the state directory may be a volume of its own), do not count.
        let ignored = |name: &std::ffi::OsStr| *dir == config.state_dir && (left_by_restore(name) || name == "lost+found");
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                if entries.into_iter().any(|e| !e.is_ok_and(|e| ignored(&e.file_name()))) {
                    return Err(target_err(
                        dir,
                        "it is not empty; a restore never overwrites (stop the broker and move the directory aside first)",
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(target_err(dir, e.to_string())),
        }
    }
    Ok(data_dir)
}

/// Whether `name` is what an interrupted restore leaves in the state directory.
fn left_by_restore(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(STAGING))
}

/// The keys kept apart from the backups.
struct Keys {
    dir: PathBuf,
    signer: Signer,
    data: Vec<u8>,
    bytes: Vec<(&'static str, Vec<u8>)>,
}

impl Keys {
    fn read(dir: &Path) -> Result<Self, BackupError> {
        let err = |reason: String| BackupError::Target {
            path: dir.display().to_string(),
            reason: format!("the keys: {reason}"),
        };
        let mut bytes = Vec::new();
        for name in KEYS {
            let b = std::fs::read(dir.join(name)).map_err(|e| err(format!("{name}: {e}")))?;
            if name != KEYS[0] && b.len() != 32 {
                return Err(err(format!("{name} is not 32 bytes")));
            }
            bytes.push((name, b));
        }
        let signer = Signer::open_existing(&dir.join(KEYS[0])).map_err(|e| err(e.to_string()))?;
        let data = bytes
            .iter()
            .find(|(n, _)| *n == KEYS[2])
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        Ok(Self {
            dir: dir.to_owned(),
            signer,
            data,
            bytes,
        })
    }

    fn install(&self, state: &Path) -> Result<(), BackupError> {
        for (name, bytes) in &self.bytes {
            crate::fsutil::write_new(&state.join(name), bytes, 0o600)
                .map_err(|e| target_err(&self.dir, format!("{name} could not be installed: {e}")))?;
        }
        Ok(())
    }
}

/// The manifest, if its signature is the audit key's.
fn read_manifest(from: &Path, signer: &Signer) -> Result<Manifest, String> {
    let read = |name: &str| match std::fs::read(from.join(name)) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("it is incomplete: {name} is missing")),
        Err(e) => Err(format!("{name}: {e}")),
    };
    let bytes = read(MANIFEST)?;
    let signature = String::from_utf8_lossy(&read(SIGNATURE)?).into_owned();
    let key: PublicKey = signer.public_hex().parse()?;
    if !key.verifies_manifest(&bytes, &signature) {
        // What the manifest claims (unverified): after a key rotation, an older backup needs the
        // key it was made with, which the operator finds by its public half.
        let claimed = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|m| {
                m["publicKey"]
                    .as_str()
                    .map(|k| k.chars().filter(char::is_ascii_hexdigit).take(16).collect::<String>())
            })
            .map(|k| {
                format!(
                    " (it names key {k}…; the key given is {}…)",
                    signer.public_hex().chars().take(16).collect::<String>()
                )
            })
            .unwrap_or_default();
        return Err(format!(
            "{MANIFEST} is not signed by the audit key given{claimed}: it was altered, it is the backup of another broker, or it was made with an earlier audit key"
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("{MANIFEST}: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!("it is a '{}' backup; this broker reads '{FORMAT}'", manifest.format));
    }
    Ok(manifest)
}

/// The files in `from` are exactly the manifest's.
fn check_file_set(from: &Path, manifest: &Manifest) -> Result<(), String> {
    let present = files_under(from).map_err(|e| e.to_string())?;
    if let Some(missing) = manifest.files.keys().find(|f| present.binary_search(f).is_err()) {
        return Err(format!("it is incomplete: '{missing}' is missing"));
    }
    if let Some(extra) = present.iter().find(|f| !manifest.files.contains_key(*f)) {
        return Err(format!("'{extra}' is not in the manifest"));
    }
    for part in [TRAIL, CHECKPOINT] {
        if !manifest.files.contains_key(part) {
            return Err(format!("it is incomplete: the manifest names no {part}"));
        }
    }
    Ok(())
}

/// Where a backup's file goes in the staging directory: the catalog's stores where `layout`
/// says, the rest as it is.
fn staged(rel: &str, layout: &Layout) -> Result<PathBuf, String> {
    let path = safe_relative(rel).ok_or_else(|| format!("the manifest names '{rel}'"))?;
    Ok(match path.strip_prefix("graph") {
        Ok(rest) => layout.graph.join(rest),
        Err(_) => match path.strip_prefix("graph-private") {
            Ok(rest) => layout.private.join(rest),
            Err(_) => path,
        },
    })
}

fn copy_into(from: &Path, manifest: &Manifest, staging: &Path, layout: &Layout) -> Result<(), String> {
    for (rel, want) in &manifest.files {
        let to = staging.join(staged(rel, layout)?);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let got = copy_hashed(&from.join(rel), &to, want.bytes).map_err(|e| format!("'{rel}': {e}"))?;
        if &got != want {
            return Err(format!("'{rel}' does not match the manifest (changed or damaged)"));
        }
    }
    Ok(())
}

fn check_trail(staging: &Path, manifest: &Manifest) -> Result<(), String> {
    let cp: CheckpointFile = serde_json::from_slice(&std::fs::read(staging.join(CHECKPOINT)).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{CHECKPOINT}: {e}"))?;
    if cp != manifest.trail.checkpoint {
        return Err(format!("{CHECKPOINT} is not the checkpoint the manifest names"));
    }
    let keys = super::public_keys(staging)?;
    if keys.last().map(|k| k.to_hex()) != Some(manifest.public_key.clone()) {
        return Err(format!(
            "the last key {} lists is not the key that signed the manifest",
            super::PUBLIC_KEY
        ));
    }
    let (trail, decisions) = summarise_trail(&staging.join(TRAIL), &keys, &cp)?;
    if trail != manifest.trail || decisions != manifest.decisions {
        return Err(format!(
            "the trail holds {} records and {decisions:?}; the manifest says {} and {:?}",
            trail.records, manifest.trail.records, manifest.decisions
        ));
    }
    Ok(())
}

fn check_catalog_and_hosted(staging: &Path, manifest: &Manifest, keys: &Keys, layout: &Layout, base_iri: &str) -> Result<(), String> {
    // The private store opens beside the catalog's; staged apart, it is linked there for the check.
    let graph = staging.join(&layout.graph);
    let private = crate::catalog::store::private_dir(&graph);
    if private != staging.join(&layout.private) {
        std::fs::rename(staging.join(&layout.private), &private).map_err(|e| e.to_string())?;
    }
    let result = check_opened(&graph, manifest, keys, staging, base_iri);
    if private != staging.join(&layout.private) {
        std::fs::rename(&private, staging.join(&layout.private)).map_err(|e| e.to_string())?;
    }
    result
}

fn check_opened(graph: &Path, manifest: &Manifest, keys: &Keys, staging: &Path, base_iri: &str) -> Result<(), String> {
    let catalog = crate::catalog::OxigraphCatalog::open(graph, base_iri).map_err(|e| format!("the catalog does not open: {e}"))?;
    let counts = catalog.counts().map_err(|e| e.to_string())?;
    if counts != manifest.catalog {
        return Err(format!("the catalog holds {counts:?}; the manifest says {:?}", manifest.catalog));
    }
    let hosted = crate::hosted::FileHostedStore::new(&staging.join(HOSTED), &keys.data).map_err(|e| e.to_string())?;
    for id in &manifest.hosted {
        let id: DatasetId = id.parse().map_err(|e| format!("the manifest's hosted data: {e}"))?;
        let dataset = catalog
            .dataset(&id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("hosted data for '{id}', a dataset the catalog does not have"))?;
        match hosted.get(&id, &dataset.publisher) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("it is incomplete: the hosted data of '{id}' is missing")),
            Err(_) => return Err(format!("the hosted data of '{id}' does not decrypt with {} given", KEYS[2])),
        }
    }
    Ok(())
}

/// The restore in the making (in the state directory), removed unless committed, and the
/// state directory with it if the restore made it.
struct Staging {
    path: PathBuf,
    made_state_dir: Option<PathBuf>,
    committed: bool,
}

impl Staging {
    fn create(state_dir: &Path) -> Result<Self, BackupError> {
        use std::os::unix::fs::DirBuilderExt;
        let made_state_dir = (!state_dir.exists()).then(|| state_dir.to_owned());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| target_err(state_dir, e.to_string()))?;
        // What an interrupted restore left.
        for entry in std::fs::read_dir(state_dir).map_err(|e| target_err(state_dir, e.to_string()))? {
            let entry = entry.map_err(|e| target_err(state_dir, e.to_string()))?;
            if left_by_restore(&entry.file_name()) {
                std::fs::remove_dir_all(entry.path()).map_err(|e| target_err(&entry.path(), e.to_string()))?;
            }
        }
        let path = state_dir.join(STAGING);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| target_err(&path, e.to_string()))?;
        Ok(Self {
            path,
            made_state_dir,
            committed: false,
        })
    }

    /// Moves the catalog's stores to the configured directory (both or neither), then the staged
    /// state into the state directory, entry by entry.
    fn commit(mut self, state_dir: &Path, data_dir: &Path, layout: &Layout) -> Result<(), BackupError> {
        crate::fsutil::sync_dir(&self.path).map_err(|e| target_err(&self.path, e.to_string()))?;
        if let Some(parent) = data_dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| target_err(parent, e.to_string()))?;
        }
        let private = crate::catalog::store::private_dir(data_dir);
        let mut moves = vec![(self.path.join(&layout.private), private)];
        if !layout.graph.as_os_str().is_empty() {
            moves.push((self.path.join(&layout.graph), data_dir.to_owned()));
        }
        let mut moved: Vec<&(PathBuf, PathBuf)> = Vec::new();
        for step in &moves {
            if let Err(e) = std::fs::rename(&step.0, &step.1) {
                for (staged, to) in moved {
                    let _ = std::fs::rename(to, staged);
                }
                return Err(target_err(
                    &step.1,
                    format!("the catalog could not be moved here (it must be on the state directory's file system): {e}"),
                ));
            }
            moved.push(step);
        }
        // From here on the state directory fills: a failure leaves part of it, named.
        self.committed = true;
        let entries = std::fs::read_dir(&self.path).map_err(|e| target_err(&self.path, e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| halfway(state_dir, e))?;
            std::fs::rename(entry.path(), state_dir.join(entry.file_name())).map_err(|e| halfway(state_dir, e))?;
        }
        std::fs::remove_dir(&self.path).map_err(|e| halfway(state_dir, e))?;
        for dir in [Some(state_dir), data_dir.parent()].into_iter().flatten() {
            let _ = crate::fsutil::sync_dir(dir);
        }
        Ok(())
    }
}

/// A restore that stopped while filling the state directory.
fn halfway(state_dir: &Path, e: std::io::Error) -> BackupError {
    target_err(
        state_dir,
        format!("the restore stopped half-way ({e}): empty the state directory and the catalog's and restore again"),
    )
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
            if let Some(dir) = &self.made_state_dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}
