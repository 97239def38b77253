//! The broker's audit key and signed checkpoints.
//!
//! A hash chain shows that records were not changed *relative to each other*; whoever can write
//! the file could still rewrite it from the first changed record on, or cut its end. A checkpoint
//! is the broker's Ed25519 signature over the chain head (sequence number and hash) at a moment:
//! rewriting a signed part needs the private key, and cutting it is noticed because the latest
//! checkpoint is also kept beside the log (`audit.checkpoint.json`). Records after the last
//! checkpoint are protected by the chain alone until the next one (interval and shutdown).
//!
//! The private key (PKCS#8, mode 0600) stays in the state directory; the public key
//! (`audit-signing.pub`, hex) is all a board needs to verify.

use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::Signed;
use crate::hex::{decode as unhex, encode as hex};

/// What a checkpoint signs: the record `seq` whose hash is `hash`, at `time`.
pub fn message(seq: u64, hash: &str, time: &str) -> Vec<u8> {
    format!("kdr-audit-checkpoint/v1\n{seq}\n{hash}\n{time}\n").into_bytes()
}

/// The private key's file in the state directory.
pub const KEY_FILE: &str = "audit-signing.key";
/// The public keys' file: one hex key a line, oldest first.
pub const PUBLIC_FILE: &str = "audit-signing.pub";

/// Makes sure `<dir>/audit-signing.pub` lists `public` (hex): kept as it is if it does, the key
/// added as the last line if not.
pub fn list_public_key(dir: &Path, public: &str) -> std::io::Result<()> {
    let path = dir.join(PUBLIC_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if text.lines().any(|l| l.trim() == public) {
        return Ok(());
    }
    let mut listed: String = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    listed.push_str(public);
    listed.push('\n');
    crate::fsutil::write_atomic(&path, listed.as_bytes(), 0o644)
}

/// The keys of an `audit-signing.pub` file, oldest first (at least one).
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<PublicKey>, String>>()?;
    if keys.is_empty() {
        return Err("it holds no public key".into());
    }
    Ok(keys)
}

/// What a backup's signature signs: the SHA-256 of its manifest, in a message no checkpoint
/// can be mistaken for.
fn manifest_message(manifest: &[u8]) -> Vec<u8> {
    format!("kdr-backup-manifest/v1\n{}\n", super::chain::sha256_hex(manifest)).into_bytes()
}

/// The latest checkpoint, kept beside the log so that a cut end is noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointFile {
    pub seq: u64,
    pub hash: String,
    #[serde(flatten)]
    pub signed: Signed,
}

pub struct Signer {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("public", &self.public_hex()).finish()
    }
}

impl Signer {
    /// The key in `<dir>/audit-signing.key`, created on first use; `<dir>/audit-signing.pub` lists
    /// it (after the keys it replaced, see [`super::rotate`]). A rotation left unfinished stops
    /// here: which key signs would be a guess.
    pub fn open_or_create(dir: &Path) -> std::io::Result<Self> {
        if dir.join(super::rotate::NEXT_KEY).exists() {
            return Err(std::io::Error::other(
                "an audit key rotation was interrupted; run `broker audit rotate-key` again to finish it",
            ));
        }
        let path = dir.join(KEY_FILE);
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (_, doc) = Self::generate()?;
                crate::fsutil::write_atomic(&path, &doc, 0o600)?;
                doc
            }
            Err(e) => return Err(e),
        };
        let signer = Self::from_pkcs8(&pkcs8, &path)?;
        list_public_key(dir, &signer.public_hex())?;
        Ok(signer)
    }

    /// A new key and its PKCS#8 document.
    pub fn generate() -> std::io::Result<(Self, Vec<u8>)> {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| std::io::Error::other("no randomness for the audit key"))?;
        let signer = Self::from_pkcs8(doc.as_ref(), Path::new("a new key"))?;
        Ok((signer, doc.as_ref().to_vec()))
    }

    pub fn from_pkcs8(pkcs8: &[u8], path: &Path) -> std::io::Result<Self> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| std::io::Error::other(format!("{} is not an Ed25519 key: {e}", path.display())))?;
        Ok(Self { key })
    }

    /// The key in the PKCS#8 file at `path`, which must exist (a restore's key, kept apart
    /// from the backup).
    pub fn open_existing(path: &Path) -> std::io::Result<Self> {
        Self::from_pkcs8(&std::fs::read(path)?, path)
    }

    /// Signs a backup's manifest (its exact bytes), hex.
    pub fn sign_manifest(&self, manifest: &[u8]) -> String {
        hex(self.key.sign(&manifest_message(manifest)).as_ref())
    }

    pub fn public_hex(&self) -> String {
        hex(self.key.public_key().as_ref())
    }

    pub fn sign(&self, seq: u64, hash: &str) -> Signed {
        let time = super::now_rfc3339();
        let signature = hex(self.key.sign(&message(seq, hash, &time)).as_ref());
        Signed { time, signature }
    }
}

/// A public key, parsed from its hex form.
#[derive(Debug, Clone)]
pub struct PublicKey(Vec<u8>);

impl std::str::FromStr for PublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = unhex(s.trim()).ok_or("the public key is not hex")?;
        if bytes.len() != 32 {
            return Err(format!("an Ed25519 public key has 32 bytes, this one {}", bytes.len()));
        }
        Ok(Self(bytes))
    }
}

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Whether `signature` (hex) is this key's signature of a backup manifest.
    pub fn verifies_manifest(&self, manifest: &[u8], signature: &str) -> bool {
        let Some(sig) = unhex(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&manifest_message(manifest), &sig)
            .is_ok()
    }

    pub fn verifies(&self, seq: u64, hash: &str, signed: &Signed) -> bool {
        let Some(sig) = unhex(&signed.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message(seq, hash, &signed.time), &sig)
            .is_ok()
    }
}
