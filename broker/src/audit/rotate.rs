//! Rotating the audit key without breaking the chain (`broker audit rotate-key`).
//!
//! A key is replaced when it may be known to someone else, or on schedule. The chain goes on:
//! the trail records `audit-key-rotated` naming the new public key, and a checkpoint signed by the
//! **old** key covers that record, so the new key is introduced by the key before it; from then
//! on checkpoints are signed by the new key ([`super::chain::verify`] follows the rotations, and
//! `audit-signing.pub` lists every key, oldest first, for anchors of pruned logs).
//!
//! What a rotation cannot do: make records signed by a compromised key trustworthy again. A board
//! that kept earlier checkpoints (or the published transparency figures) can compare; the runbook
//! says to hand the new public key to the board on a second channel.
//!
//! Crash safety: the new key is written to `audit-signing.key.next` first (atomically); the
//! rotation is recorded and confirmed in one batch of the trail (the key changes with it); then
//! the file is renamed over the old key and the public key listed. A broker does not start while
//! `.next` exists, and running the command again finishes the rotation: recording it only if the
//! trail does not have it yet, confirming it if a torn write left the record without its
//! checkpoint.

use std::path::Path;
use std::sync::Arc;

use super::file::FileAuditLog;
use super::signing::{KEY_FILE, Signer, list_public_key};
use super::{AdminRecord, Event};

/// The action of the record that introduces a new key.
pub const ROTATED: &str = "audit-key-rotated";
/// The new key while a rotation is under way.
pub const NEXT_KEY: &str = "audit-signing.key.next";

#[derive(Debug, thiserror::Error)]
#[error("the audit key could not be rotated ({step}): {reason}")]
pub struct RotateError {
    step: &'static str,
    reason: String,
}

fn err(step: &'static str) -> impl Fn(String) -> RotateError {
    move |reason| RotateError { step, reason }
}

/// Rotates the key of `log`, whose key files are in `dir` (the state directory). Returns the new
/// public key (hex).
pub fn rotate(log: &FileAuditLog, dir: &Path) -> Result<String, RotateError> {
    let next_path = dir.join(NEXT_KEY);
    let (signer, pkcs8) = match std::fs::read(&next_path) {
        // An earlier rotation stopped half-way: it is finished with the key it chose.
        Ok(bytes) => (
            Signer::from_pkcs8(&bytes, &next_path).map_err(|e| err("the interrupted rotation's key")(e.to_string()))?,
            bytes,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (signer, doc) = Signer::generate().map_err(|e| err("a new key")(e.to_string()))?;
            // Whole or not at all: a key file cut short by a crash would stop the broker's start
            // and this command alike.
            crate::fsutil::write_atomic(&next_path, &doc, 0o600).map_err(|e| err("writing the new key aside")(e.to_string()))?;
            (signer, doc)
        }
        Err(e) => return Err(err("the interrupted rotation's key")(e.to_string())),
    };
    let public = signer.public_hex();
    let old = log.signer().public_hex();
    if old != public {
        let record = || {
            Event::Admin(AdminRecord::by_broker(
                ROTATED,
                "audit-signing-key",
                serde_json::json!({ "publicKey": public, "previousKey": old }),
            ))
        };
        let done = match recorded(log, &public)? {
            Recorded::No => log.rotate_signer(Some(record()), Arc::new(signer)),
            // A torn write kept the record but not its checkpoint: the old key confirms it now.
            Recorded::Unconfirmed => log.rotate_signer(None, Arc::new(signer)),
            // Interrupted after the batch (the key file not yet replaced): the old key signs
            // nothing more — the records after the confirmation are the new key's to sign.
            Recorded::Confirmed => Ok(()),
        };
        done.map_err(|e| err("recording the rotation")(e.to_string()))?;
    }
    crate::fsutil::write_atomic(&dir.join(KEY_FILE), &pkcs8, 0o600).map_err(|e| err("putting the new key in place")(e.to_string()))?;
    list_public_key(dir, &public).map_err(|e| err("listing the new public key")(e.to_string()))?;
    std::fs::remove_file(&next_path).map_err(|e| err("removing the key set aside")(e.to_string()))?;
    Ok(public)
}

/// How far the trail has the rotation to a key.
#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    No,
    /// The record, with no checkpoint after it.
    Unconfirmed,
    /// The record and a checkpoint after it (the old key's, which the writer signs in the
    /// rotation's batch).
    Confirmed,
}

/// Whether the trail already records the rotation to `public`, and confirms it.
fn recorded(log: &FileAuditLog, public: &str) -> Result<Recorded, RotateError> {
    let mut found = Recorded::No;
    super::file::for_each_entry(log.path(), &mut |e| match &e.event {
        Event::Admin(a) if a.action == ROTATED && a.detail["publicKey"] == public => found = Recorded::Unconfirmed,
        Event::Checkpoint(_) if found == Recorded::Unconfirmed => found = Recorded::Confirmed,
        _ => {}
    })
    .map_err(|e| err("reading the trail")(e.to_string()))?;
    Ok(found)
}
