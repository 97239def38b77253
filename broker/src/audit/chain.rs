//! The chain's line format and its verification.
//!
//! One record per line: `{"hash":"<sha-256 hex>","entry":{"seq":n,"prev":"<hash of n-1>",
//! "type":…,…}}`. The hash is over the exact bytes of `entry` as written, so verification never
//! re-serialises anything (no canonical-JSON question). The first record has `seq` 1 and a `prev`
//! of 64 zeros, unless the log was pruned: then its first line is an `anchor` standing for the
//! last pruned record, whose hash the broker signed when it pruned.
//!
//! **Architecture Invariant:** [`verify`] needs only the log, the broker's public key and
//! (optionally) the checkpoint file; it runs offline, without the broker or its store.

use std::io::BufRead;
use std::sync::Arc;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Signed;
use super::signing::{CheckpointFile, PublicKey, Signer};
use crate::durable::{Framing, unpadded};
use crate::hex::encode as hex;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// What the writer queues: an event already serialised (a JSON object), or a checkpoint, which
/// can only be signed once its place in the chain is known.
#[derive(Debug)]
pub enum Item {
    Event(Vec<u8>),
    Checkpoint,
    /// A change of key ([`super::rotate`]): the rotation's record (none when the trail has it
    /// already), a checkpoint the current key signs over it, and the next key signing from then
    /// on — in one batch, so that the record is never written without its confirmation or the
    /// key changed without both.
    Rotation {
        record: Option<Vec<u8>>,
        next: Arc<Signer>,
    },
}

/// The chain head while writing.
#[derive(Clone)]
pub struct Chain {
    pub seq: u64,
    pub head: String,
    /// Whether the last record is a checkpoint (nothing new to sign).
    pub signed_head: bool,
    /// The checkpoint of the last batch that had one, for the checkpoint file.
    pub last_checkpoint: Option<CheckpointFile>,
    pub signer: Arc<Signer>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("seq", &self.seq).field("head", &self.head).finish()
    }
}

impl Chain {
    /// Appends one line for `event` (a serialised JSON object).
    fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        self.seq += 1;
        let mut entry = format!("{{\"seq\":{},\"prev\":\"{}\"", self.seq, self.head).into_bytes();
        match event.get(1..) {
            Some(rest) if rest.len() > 1 => {
                entry.push(b',');
                entry.extend_from_slice(rest);
            }
            _ => entry.push(b'}'),
        }
        self.head = sha256_hex(&entry);
        out.extend_from_slice(b"{\"hash\":\"");
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b"\",\"entry\":");
        out.extend_from_slice(&entry);
        out.extend_from_slice(b"}\n");
    }
}

impl Framing for Chain {
    type Item = Item;

    fn size_hint(item: &Item) -> usize {
        // The line adds the hash, the sequence number and the previous hash to the event.
        const LINE: usize = 180;
        match item {
            Item::Event(bytes) => bytes.len() + LINE,
            Item::Checkpoint => 400,
            Item::Rotation { record, .. } => record.as_ref().map_or(0, |r| r.len() + LINE) + 400,
        }
    }

    fn frame(&mut self, items: Vec<Item>, out: &mut Vec<u8>) {
        for item in items {
            match item {
                Item::Event(bytes) => {
                    self.push(&bytes, out);
                    self.signed_head = false;
                }
                Item::Checkpoint => self.sign_head(out),
                Item::Rotation { record, next } => {
                    if let Some(record) = record {
                        self.push(&record, out);
                        self.signed_head = false;
                    }
                    self.sign_head(out);
                    self.signer = next;
                }
            }
        }
    }
}

impl Chain {
    /// A checkpoint over the head, unless the head is one.
    fn sign_head(&mut self, out: &mut Vec<u8>) {
        if self.signed_head {
            return;
        }
        let signed = self.signer.sign(self.seq, &self.head);
        let event = serde_json::to_vec(&super::Event::Checkpoint(signed)).unwrap_or_default();
        self.push(&event, out);
        // The file's checkpoint covers the checkpoint record itself, so that cutting
        // just that record is noticed too.
        self.last_checkpoint = Some(CheckpointFile {
            seq: self.seq,
            hash: self.head.clone(),
            signed: self.signer.sign(self.seq, &self.head),
        });
        self.signed_head = true;
    }
}

/// A line as written.
#[derive(Deserialize)]
pub struct Line<'a> {
    pub hash: String,
    #[serde(borrow)]
    pub entry: &'a RawValue,
}

/// The fields of an entry verification looks at.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    #[serde(default)]
    prev: String,
    #[serde(rename = "type")]
    kind: String,
    time: Option<String>,
    signature: Option<String>,
    /// An administrative record's action (a key rotation is one).
    action: Option<String>,
    detail: Option<Box<RawValue>>,
}

impl Head {
    /// The key an `audit-key-rotated` record introduces; `None` for any other record.
    fn rotated_to(&self) -> Option<Result<PublicKey, String>> {
        if self.kind != "admin" || self.action.as_deref() != Some(super::rotate::ROTATED) {
            return None;
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Detail {
            public_key: String,
        }
        let detail = self.detail.as_ref().map(|d| serde_json::from_str::<Detail>(d.get()));
        Some(match detail {
            Some(Ok(d)) => d.public_key.parse(),
            _ => Err("it names no public key".into()),
        })
    }

    fn signed(&self) -> Option<Signed> {
        Some(Signed {
            time: self.time.clone()?,
            signature: self.signature.clone()?,
        })
    }
}

/// The first record that is not as the broker wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breach {
    /// The record that is bad or missing.
    pub seq: u64,
    /// 1-based line of the file where it was noticed.
    pub line: u64,
    pub message: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_hash: Option<String>,
    /// Checkpoints in the chain whose signature verified.
    pub checkpoints: u64,
    /// Key rotations, each confirmed by the key before it.
    pub key_rotations: u64,
    /// The last record covered by a valid signature.
    pub last_signed_seq: Option<u64>,
    /// Bytes of an unfinished last line (a write cut by a crash: never acknowledged).
    pub torn_tail_bytes: u64,
    pub pruned_through: Option<u64>,
    pub breach: Option<Breach>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.breach.is_none()
    }
}

struct Walk<'k> {
    /// The keys the verifier trusts (`audit-signing.pub`, oldest first).
    keys: &'k [PublicKey],
    /// The key signing now: the one of the first signature found, then each key a confirmed
    /// rotation introduces.
    current: Option<PublicKey>,
    /// The key a rotation record introduced, until the next checkpoint (by the key before it)
    /// confirms it.
    pending: Option<PublicKey>,
    report: Report,
    expect_seq: u64,
    expect_prev: String,
    line: u64,
    want: Option<(u64, String)>,
    want_seen: bool,
}

impl Walk<'_> {
    fn breach(&mut self, seq: u64, message: String) {
        self.report.breach = Some(Breach {
            seq,
            line: self.line,
            message,
        });
    }

    /// Checks one complete line; false once the chain is broken.
    fn step(&mut self, bytes: &[u8]) -> bool {
        let Ok(line) = serde_json::from_slice::<Line<'_>>(bytes) else {
            let seq = self.expect_seq;
            self.breach(
                seq,
                format!("record {seq} is unreadable (line {} is not an audit record)", self.line),
            );
            return false;
        };
        let Ok(head) = serde_json::from_str::<Head>(line.entry.get()) else {
            let seq = self.expect_seq;
            self.breach(
                seq,
                format!("record {seq} is unreadable (line {} lacks seq, prev or type)", self.line),
            );
            return false;
        };
        if self.line == 1 && head.kind == "anchor" {
            return self.anchor(&head, &line.hash);
        }
        if head.seq != self.expect_seq {
            let (want, got) = (self.expect_seq, head.seq);
            let msg = if got > want {
                format!("record {want} is missing or out of place: line {} holds record {got}", self.line)
            } else {
                format!(
                    "record {got} at line {} is out of order or repeated (record {want} was expected)",
                    self.line
                )
            };
            self.breach(want.min(got), msg);
            return false;
        }
        if sha256_hex(line.entry.get().as_bytes()) != line.hash {
            self.breach(
                head.seq,
                format!(
                    "record {} (line {}) was altered: its content does not match its hash",
                    head.seq, self.line
                ),
            );
            return false;
        }
        if head.prev != self.expect_prev {
            let seq = head.seq;
            let msg = format!(
                "record {seq} (line {}) does not link to record {}: that record was altered or replaced",
                self.line,
                seq.saturating_sub(1)
            );
            self.breach(seq.saturating_sub(1).max(1), msg);
            return false;
        }
        if head.kind == "checkpoint" && !self.checkpoint(&head) {
            return false;
        }
        match head.rotated_to() {
            Some(Ok(key)) => self.pending = Some(key),
            Some(Err(why)) => {
                self.breach(head.seq, format!("the key rotation in record {} is unusable: {why}", head.seq));
                return false;
            }
            None => {}
        }
        self.accept(head.seq, line.hash);
        true
    }

    /// Whether `signed` is the current key's signature of record `seq` with `hash` (before the
    /// first signature: any trusted key's, which becomes the current one).
    fn signed_by_current(&mut self, seq: u64, hash: &str, signed: &Signed) -> bool {
        match &self.current {
            Some(key) => key.verifies(seq, hash, signed),
            None => match self.keys.iter().find(|k| k.verifies(seq, hash, signed)) {
                Some(key) => {
                    self.current = Some(key.clone());
                    true
                }
                None => false,
            },
        }
    }

    fn anchor(&mut self, head: &Head, hash: &str) -> bool {
        let valid = head.signed().is_some_and(|s| self.signed_by_current(head.seq, hash, &s));
        if !valid {
            self.breach(
                head.seq,
                format!("the anchor of the pruned log (record {}) is not signed by this key", head.seq),
            );
            return false;
        }
        self.report.pruned_through = Some(head.seq);
        self.report.last_signed_seq = Some(head.seq);
        self.expect_seq = head.seq;
        self.accept(head.seq, hash.to_owned());
        true
    }

    fn checkpoint(&mut self, head: &Head) -> bool {
        let covered = head.seq - 1;
        let valid = head.signed().is_some_and(|s| self.signed_by_current(covered, &head.prev, &s));
        if !valid {
            let message = match &self.pending {
                Some(_) => format!(
                    "checkpoint record {} (line {}) is not signed by the key before the rotation it should confirm",
                    head.seq, self.line
                ),
                None => format!("checkpoint record {} (line {}) is not signed by this key", head.seq, self.line),
            };
            self.breach(head.seq, message);
            return false;
        }
        if let Some(next) = self.pending.take() {
            self.current = Some(next);
            self.report.key_rotations += 1;
        }
        self.report.checkpoints += 1;
        self.report.last_signed_seq = Some(covered);
        true
    }

    fn accept(&mut self, seq: u64, hash: String) {
        if let Some((want_seq, want_hash)) = &self.want
            && *want_seq == seq
        {
            self.want_seen = true;
            if *want_hash == hash {
                self.report.last_signed_seq = Some(seq);
            } else {
                self.report.breach = Some(Breach {
                    seq,
                    line: self.line,
                    message: format!("record {seq} (line {}) differs from the one the checkpoint file signed", self.line),
                });
            }
        }
        self.report.records += 1;
        self.report.first_seq.get_or_insert(seq);
        self.report.last_seq = Some(seq);
        self.expect_seq = seq + 1;
        self.expect_prev.clone_from(&hash);
        self.report.last_hash = Some(hash);
    }
}

/// Checks a log: every record hashes to its stated hash, links to the one before, and comes in
/// order; checkpoints and the anchor are signed by one of `keys`, and from the first signature on
/// by the same key until a rotation record names the next one and a checkpoint by the key before
/// confirms it (`audit::rotate`); and, with the checkpoint file, the log still reaches the record
/// that file signed. The report names the first bad record.
pub fn verify(log: impl BufRead, keys: &[PublicKey], checkpoint: Option<&CheckpointFile>) -> std::io::Result<Report> {
    let mut walk = Walk {
        keys,
        current: None,
        pending: None,
        report: Report::default(),
        expect_seq: 1,
        expect_prev: GENESIS.to_owned(),
        line: 0,
        want: None,
        want_seen: false,
    };
    if let Some(cp) = checkpoint {
        if !keys.iter().any(|k| k.verifies(cp.seq, &cp.hash, &cp.signed)) {
            walk.breach(cp.seq, "the checkpoint file is not signed by this key".into());
            return Ok(walk.report);
        }
        walk.want = Some((cp.seq, cp.hash.clone()));
    }
    let mut log = log;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if log.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        walk.line += 1;
        if buf.last() != Some(&b'\n') {
            // The padding after the last line is not part of the chain (see `durable`).
            walk.report.torn_tail_bytes = unpadded(&buf).len() as u64;
            break;
        }
        if !walk.step(&buf) || walk.report.breach.is_some() {
            return Ok(walk.report);
        }
    }
    if let Some((seq, _)) = walk.want.clone()
        && !walk.want_seen
        && walk.report.pruned_through.is_none_or(|p| seq > p)
    {
        let last = walk.report.last_seq.unwrap_or(0);
        walk.line += 1;
        walk.breach(
            last + 1,
            format!(
                "records {}..={seq} are missing: the log ends at record {last}, but the checkpoint file signed record {seq}",
                last + 1
            ),
        );
    }
    Ok(walk.report)
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read '{path}': {source}")]
    Read { path: String, source: std::io::Error },
    #[error("'{path}' is not usable: {reason}")]
    Invalid { path: String, reason: String },
}

/// [`verify`] on files: the log, the public keys (hex, one a line), and the checkpoint file if
/// there is one.
pub fn verify_files(
    log: &std::path::Path,
    public_key: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
) -> Result<Report, VerifyError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| VerifyError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let invalid = |p: &std::path::Path, reason: String| VerifyError::Invalid {
        path: p.display().to_string(),
        reason,
    };
    let keys = super::signing::parse_public_keys(&String::from_utf8_lossy(&read(public_key)?)).map_err(|e| invalid(public_key, e))?;
    let checkpoint: Option<CheckpointFile> = match checkpoint {
        Some(p) => Some(serde_json::from_slice(&read(p)?).map_err(|e| invalid(p, e.to_string()))?),
        None => None,
    };
    let file = std::fs::File::open(log).map_err(|source| VerifyError::Read {
        path: log.display().to_string(),
        source,
    })?;
    verify(std::io::BufReader::new(file), &keys, checkpoint.as_ref()).map_err(|source| VerifyError::Read {
        path: log.display().to_string(),
        source,
    })
}

/// The report in a few lines for people.
pub fn describe(r: &Report) -> String {
    let mut out = String::new();
    let range = match (r.first_seq, r.last_seq) {
        (Some(a), Some(b)) => format!("records {a}..={b}"),
        _ => "no records".into(),
    };
    match &r.breach {
        None => out.push_str(&format!("OK: {} records ({range}), {} checkpoints\n", r.records, r.checkpoints)),
        Some(b) => out.push_str(&format!("FAILED at record {} (line {}): {}\n", b.seq, b.line, b.message)),
    }
    if let Some(p) = r.pruned_through {
        out.push_str(&format!("pruned through record {p} (signed anchor)\n"));
    }
    if r.key_rotations > 0 {
        out.push_str(&format!("{} key rotations, each confirmed by the key before it\n", r.key_rotations));
    }
    match (r.last_signed_seq, r.last_seq) {
        (Some(s), Some(l)) if s < l => out.push_str(&format!("records {}..={l} follow the last signature (chain only)\n", s + 1)),
        (None, Some(_)) => out.push_str("no signed checkpoint yet (chain only)\n"),
        _ => {}
    }
    if r.torn_tail_bytes > 0 {
        out.push_str(&format!(
            "an unfinished last line of {} bytes was ignored (a write cut by a crash, never acknowledged)\n",
            r.torn_tail_bytes
        ));
    }
    out
}
