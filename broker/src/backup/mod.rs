//! Backup and restore (`broker backup`, `broker restore`): a consistent copy of what the broker
//! keeps, taken while it serves, and a restore that believes nothing it has not checked.
//!
//! **What a backup holds**: the catalog (both RocksDB stores, `Store::backup` checkpoints), the
//! hosted uploads as they are stored (sealed), the audit trail up to a checkpoint signed for the
//! backup, that checkpoint, the audit public key, the keeper's list of recorded revocations, and
//! `manifest.json` naming every file with its size and SHA-256 and what the parts hold (records,
//! decisions, members, datasets), signed with the audit key (`manifest.sig`).
//!
//! **What it does not hold: the keys** (`audit-signing.key`, `pseudonym.key`, `hosted.key`). A
//! backup next to its keys protects nothing (the hosted uploads are encrypted under `hosted.key`),
//! and the keys do not change: the operator keeps them apart once (runbook §5), a restore takes
//! them from there.
//!
//! **Consistency without stopping**: the parts are taken in the order that keeps the broker's
//! rule "no change without its record" true in the copy. The catalog first (every change in it
//! was recorded before it was made, so its record is in the trail taken after it); then the
//! uploads of the datasets in that catalog; then the trail, up to a checkpoint signed at that
//! moment, so every request answered before the backup began is in it. Counters are no part of
//! their own: the broker derives usage counts, tallies and privacy budgets from the trail when it
//! starts (`exchange::Ledgers::from_trail`), so after a restore they continue from the copy.
//!
//! **A restore checks before it writes**: the manifest's signature against the key the operator
//! supplies; the set of files (nothing missing, nothing added); each file's hash while it is
//! copied into a staging directory beside the target; the trail's chain and signatures; the
//! staged catalog's counts; that every hosted upload decrypts. Only then is the staged state
//! moved into place. A refused backup leaves nothing behind.

mod make;
mod restore;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::chain;
use crate::audit::signing::{CheckpointFile, PublicKey};
use crate::catalog::CatalogCounts;

pub use make::{Source, run};
pub use restore::restore;

/// The form of a backup this broker writes and reads.
pub const FORMAT: &str = "kdr-backup/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
/// The keys a restore needs, kept apart from the backups.
pub const KEYS: [&str; 3] = ["audit-signing.key", "pseudonym.key", "hosted.key"];
/// The files of the trail in a backup (and in the state directory).
const TRAIL: &str = "audit.jsonl";
const CHECKPOINT: &str = "audit.jsonl.checkpoint.json";
const PUBLIC_KEY: &str = "audit-signing.pub";
const REVOCATIONS: &str = "audit-revocations.json";
const HOSTED: &str = "hosted";
/// Where the running broker makes a backup, in its state directory, for `broker backup` to copy.
const AREA: &str = "backups";

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub created: String,
    pub broker_version: String,
    /// The audit key's public half (hex), which signs the manifest and the trail.
    pub public_key: String,
    pub trail: TrailSummary,
    pub decisions: DecisionCounts,
    pub catalog: CatalogCounts,
    /// The datasets whose hosted upload is in `hosted/`.
    pub hosted: Vec<String>,
    /// Every file but the manifest and its signature, by its path (with `/`).
    pub files: BTreeMap<String, FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrailSummary {
    pub records: u64,
    pub last_seq: u64,
    /// The checkpoint the copy ends with.
    pub checkpoint: CheckpointFile,
}

/// The decisions in the trail: what the broker's counters start from after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionCounts {
    pub permits: u64,
    pub denies: u64,
    pub delivered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is being made right now; try again when it is done")]
    Busy,
    #[error("the backup could not be made: {0}")]
    Failed(String),
    #[error("the backup in '{dir}' is refused: {reason}. Nothing was restored")]
    Refused { dir: String, reason: String },
    #[error("cannot restore into '{path}': {reason}. Nothing was restored")]
    Target { path: String, reason: String },
}

fn failed(what: &str) -> impl Fn(String) -> BackupError + '_ {
    move |reason| BackupError::Failed(format!("{what}: {reason}"))
}

/// Checks the trail copy at `log` against `keys` (`audit-signing.pub`) and the checkpoint it must end with, and counts
/// its records and decisions.
fn summarise_trail(log: &Path, keys: &[PublicKey], cp: &CheckpointFile) -> Result<(TrailSummary, DecisionCounts), String> {
    let file = std::fs::File::open(log).map_err(|e| e.to_string())?;
    let report = chain::verify(std::io::BufReader::new(file), keys, Some(cp)).map_err(|e| e.to_string())?;
    if let Some(b) = &report.breach {
        return Err(format!("the trail does not verify at record {}: {}", b.seq, b.message));
    }
    if report.last_seq != Some(cp.seq) || report.torn_tail_bytes > 0 {
        return Err(format!("the trail does not end with the checkpoint of record {}", cp.seq));
    }
    let tally = crate::reports::Tally::default();
    crate::audit::file::for_each_entry(log, &mut |e| {
        if let crate::audit::Event::Decision(r) = &e.event {
            tally.add(r);
        }
    })
    .map_err(|e| e.to_string())?;
    let v = tally.totals();
    let summary = TrailSummary {
        records: report.records,
        last_seq: cp.seq,
        checkpoint: cp.clone(),
    };
    Ok((
        summary,
        DecisionCounts {
            permits: v.permits,
            denies: v.denies,
            delivered: v.delivered,
        },
    ))
}

/// The keys listed in the `audit-signing.pub` in `dir`.
fn public_keys(dir: &Path) -> Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(dir.join(PUBLIC_KEY)).map_err(|e| format!("{PUBLIC_KEY}: {e}"))?;
    crate::audit::signing::parse_public_keys(&text).map_err(|e| format!("{PUBLIC_KEY}: {e}"))
}

/// SHA-256 and size of the file at `path`, read in pieces.
fn digest_file(path: &Path) -> std::io::Result<FileDigest> {
    hashed(std::fs::File::open(path)?, std::io::sink())
}

/// Copies `from` to a new file `to` (mode 0600, synced) and returns what was copied: the hash
/// is of the bytes written, not of a second read that could see other ones.
///
/// At most one byte more than the `expected` size is copied, and only from a regular file that
/// is not a link: a backup file swapped for a huge (sparse) file, `/dev/zero` or a pipe after the
/// file set was checked is refused by its size, it does not fill the disk or hang the restore.
fn copy_hashed(from: &Path, to: &Path, expected: u64) -> std::io::Result<FileDigest> {
    use std::os::unix::fs::OpenOptionsExt;
    let src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(from)?;
    if !src.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    let digest = hashed(Read::take(src, expected.saturating_add(1)), &mut dst)?;
    dst.sync_all()?;
    Ok(digest)
}

/// Reads `src` to its end, writing each piece to `out`: the SHA-256 and size of what passed.
fn hashed(mut src: impl Read, mut out: impl std::io::Write) -> std::io::Result<FileDigest> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    Ok(FileDigest {
        bytes,
        sha256: crate::hex::encode(ctx.finish().as_ref()),
    })
}

/// Every file under `dir` but the manifest and its signature, by relative path with `/`.
/// Anything that is neither a file nor a directory is an error.
fn files_under(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(name);
            } else if kind.is_file() {
                let text = name
                    .to_str()
                    .ok_or_else(|| std::io::Error::other(format!("'{}' is not a UTF-8 name", name.display())))?;
                if text != MANIFEST && text != SIGNATURE {
                    out.push(text.to_owned());
                }
            } else {
                return Err(std::io::Error::other(format!(
                    "'{}' is neither a file nor a directory",
                    name.display()
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `rel` as a path under a directory: plain names only (no `..`, no root), so that a manifest
/// cannot place a file outside the directory it is restored into.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let path = Path::new(rel);
    let plain = !rel.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| path.to_owned())
}

/// The manifest's exact bytes and their signature.
fn signed_manifest(manifest: &Manifest, signer: &crate::audit::signing::Signer) -> Result<(Vec<u8>, String), BackupError> {
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|e| failed("the manifest")(e.to_string()))?;
    let signature = signer.sign_manifest(&bytes);
    Ok((bytes, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::sha256_hex;

    #[test]
    fn a_manifest_cannot_name_a_path_outside_its_directory() {
        for bad in ["", "../etc/passwd", "/etc/passwd", "graph/../../x", "./x"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
        assert_eq!(safe_relative("graph/000012.sst"), Some(PathBuf::from("graph/000012.sst")));
    }

    #[test]
    fn a_file_digest_is_its_sha256_and_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").expect("write");
        let d = digest_file(&path).expect("digest");
        assert_eq!(d.bytes, 3);
        assert_eq!(d.sha256, sha256_hex(b"abc"));
    }
}
