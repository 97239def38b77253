//! Hosted data: a provider city without its own API uploads a dataset's records (CSV or JSON) to
//! the broker, which keeps them encrypted at rest and serves them through the same decide →
//! enforce → log path as fetched data.
//!
//! Each upload is sealed with AES-256-GCM (ring) under the broker's data key, a fresh random
//! nonce, and the dataset id, its publisher's municipality key and the media type as associated
//! data, so a file copied to another dataset's name, or read for a dataset of another publisher,
//! does not decrypt. Files are replaced atomically: a reader sees the old upload or the new one,
//! never a torn one. A withdrawn dataset's upload is deleted ([`HostedStore::remove`]).

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::catalog::DatasetId;
use crate::enforce::Format;
use crate::identity::Ags;

/// Version 2: the publisher is part of the associated data (version 1 files are not read).
const MAGIC: &[u8] = b"KDRH2";

#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    #[error("hosted data cannot be {action} ({path}): {reason}")]
    Io {
        action: &'static str,
        path: String,
        reason: String,
    },
    #[error("the hosted data of '{0}' does not decrypt: it was altered or belongs elsewhere")]
    Corrupt(DatasetId),
}

/// Where hosted uploads live, each bound to its dataset and that dataset's publisher.
pub trait HostedStore: Send + Sync {
    fn put(&self, dataset: &DatasetId, publisher: &Ags, format: Format, bytes: &[u8]) -> Result<(), HostedError>;
    /// The latest upload, or `None` if there is none; [`HostedError::Corrupt`] if the stored one
    /// was not made for this dataset of this publisher.
    fn get(&self, dataset: &DatasetId, publisher: &Ags) -> Result<Option<(Format, Vec<u8>)>, HostedError>;
    /// Deletes the dataset's upload (none is fine).
    fn remove(&self, dataset: &DatasetId) -> Result<(), HostedError>;
    /// Copies the uploads of `datasets` (those that have one), sealed as they are stored, into
    /// `dir` (created), one `<dataset>.sealed` each; returns the datasets copied.
    fn backup_to(&self, dir: &Path, datasets: &[DatasetId]) -> Result<Vec<DatasetId>, HostedError>;
}

/// Encrypted files in a directory, one per dataset.
pub struct FileHostedStore {
    dir: PathBuf,
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileHostedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHostedStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl FileHostedStore {
    /// `key` is the 32-byte data key.
    pub fn new(dir: &Path, key: &[u8]) -> Result<Self, HostedError> {
        let io = |reason: String| HostedError::Io {
            action: "stored",
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(e.to_string()))?;
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| io("the data key is not 32 bytes".into()))?;
        Ok(Self {
            dir: dir.to_owned(),
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    fn path(&self, dataset: &DatasetId) -> PathBuf {
        self.dir.join(format!("{dataset}.sealed"))
    }

    fn aad(dataset: &DatasetId, publisher: &Ags, format: Format) -> Vec<u8> {
        format!("{dataset}\0{publisher}\0{}", format.media_type()).into_bytes()
    }
}

impl HostedStore for FileHostedStore {
    fn put(&self, dataset: &DatasetId, publisher: &Ags, format: Format, bytes: &[u8]) -> Result<(), HostedError> {
        let path = self.path(dataset);
        let io = |reason: String| HostedError::Io {
            action: "stored",
            path: path.display().to_string(),
            reason,
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| io("no randomness".into()))?;
        let mut sealed = bytes.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(dataset, publisher, format)),
                &mut sealed,
            )
            .map_err(|_| io("encryption failed".into()))?;
        let media = format.media_type().as_bytes();
        let mut file = Vec::with_capacity(MAGIC.len() + 1 + media.len() + NONCE_LEN + sealed.len());
        file.extend_from_slice(MAGIC);
        file.push(u8::try_from(media.len()).map_err(|_| io("media type too long".into()))?);
        file.extend_from_slice(media);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        crate::fsutil::write_atomic(&path, &file, 0o600).map_err(|e| io(e.to_string()))
    }

    fn get(&self, dataset: &DatasetId, publisher: &Ags) -> Result<Option<(Format, Vec<u8>)>, HostedError> {
        let path = self.path(dataset);
        let file = match std::fs::read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(HostedError::Io {
                    action: "read",
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let corrupt = || HostedError::Corrupt(dataset.clone());
        let rest = file.strip_prefix(MAGIC).ok_or_else(corrupt)?;
        let (&len, rest) = rest.split_first().ok_or_else(corrupt)?;
        let media = rest.get(..usize::from(len)).ok_or_else(corrupt)?;
        let format = std::str::from_utf8(media)
            .ok()
            .and_then(Format::from_media_type)
            .ok_or_else(corrupt)?;
        let rest = &rest[usize::from(len)..];
        let nonce: [u8; NONCE_LEN] = rest.get(..NONCE_LEN).and_then(|n| n.try_into().ok()).ok_or_else(corrupt)?;
        let mut sealed = rest[NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(dataset, publisher, format)),
                &mut sealed,
            )
            .map_err(|_| corrupt())?;
        Ok(Some((format, plain.to_vec())))
    }

    fn backup_to(&self, dir: &Path, datasets: &[DatasetId]) -> Result<Vec<DatasetId>, HostedError> {
        let io = |path: &Path, e: std::io::Error| HostedError::Io {
            action: "backed up",
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut copied = Vec::new();
        for id in datasets {
            let from = self.path(id);
            // Files are replaced by renaming, so a read sees one whole upload.
            let bytes = match std::fs::read(&from) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&from, e)),
            };
            let to = dir.join(format!("{id}.sealed"));
            crate::fsutil::write_new(&to, &bytes, 0o600).map_err(|e| io(&to, e))?;
            copied.push(id.clone());
        }
        Ok(copied)
    }

    fn remove(&self, dataset: &DatasetId) -> Result<(), HostedError> {
        let path = self.path(dataset);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HostedError::Io {
                action: "deleted",
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_sealed_at_rest_and_bound_to_their_dataset() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = FileHostedStore::new(dir.path(), &[7u8; 32]).expect("store");
        let a: DatasetId = "aalen-kita-plaetze".parse().expect("id");
        let b: DatasetId = "heidenheim-einwohner-stadtteile".parse().expect("id");
        let (aalen, heidenheim): (Ags, Ags) = ("08136088".parse().expect("ags"), "08135019".parse().expect("ags"));
        let csv = b"kita,plaetze\nSonnenschein,42\n";
        store.put(&a, &aalen, Format::Csv, csv).expect("put");
        let on_disk = std::fs::read(dir.path().join("aalen-kita-plaetze.sealed")).expect("file");
        assert!(!on_disk.windows(11).any(|w| w == b"Sonnenschei"), "no plaintext at rest");
        assert_eq!(store.get(&a, &aalen).expect("get"), Some((Format::Csv, csv.to_vec())));
        assert!(
            matches!(store.get(&a, &heidenheim), Err(HostedError::Corrupt(_))),
            "an upload is bound to its publisher: the same id under another publisher does not open"
        );
        assert_eq!(store.get(&b, &heidenheim).expect("get"), None);
        std::fs::copy(
            dir.path().join("aalen-kita-plaetze.sealed"),
            dir.path().join("heidenheim-einwohner-stadtteile.sealed"),
        )
        .expect("copy");
        assert!(
            matches!(store.get(&b, &heidenheim), Err(HostedError::Corrupt(_))),
            "a copied file does not open under another name"
        );
        let mut altered = on_disk.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        std::fs::write(dir.path().join("aalen-kita-plaetze.sealed"), altered).expect("write");
        assert!(
            matches!(store.get(&a, &aalen), Err(HostedError::Corrupt(_))),
            "tampering is detected"
        );
        store.remove(&a).expect("remove");
        assert_eq!(store.get(&a, &aalen).expect("get"), None, "a removed upload is gone");
        store.remove(&a).expect("removing nothing is fine");
    }
}
