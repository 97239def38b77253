//! The audit chain in one file, appended with group commit: a record is durable (written and
//! `fsync`ed) when `append` returns, and a busy broker pays one `fsync` per batch.
//!
//! Crash safety: a record is acknowledged only after its batch is synced, so a crash can leave at
//! most an unfinished last line, which was never acknowledged. Opening the log cuts that line off
//! and continues the chain from the last whole record; a last whole line that is not a valid
//! record stops the broker (fail closed: run `broker audit verify`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::chain::{Chain, GENESIS, Item, Line, sha256_hex};
use super::signing::{CheckpointFile, Signer};
use super::{AppendFuture, AuditLog, Entry, Event, LogError};
use crate::durable::{GroupCommit, MAX_BATCH_BYTES, PAD, data_end, unpadded};

pub struct FileAuditLog {
    /// The log file (its path is the writer's).
    file: Arc<GroupCommit<Chain>>,
    checkpoint_path: PathBuf,
    checkpoint_lock: Mutex<()>,
}

impl std::fmt::Debug for FileAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileAuditLog").field("path", &self.path()).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read the audit log '{path}': {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the last record of the audit log '{path}' is not valid ({reason}); run `broker audit verify` before starting again")]
    BadTail { path: String, reason: String },
}

/// How far back from its end opening a log looks.
const TAIL_WINDOW: u64 = 1 << 20;

/// The last whole line of a log, after cutting off what a crash left unfinished: an unfinished
/// last line, or a batch torn inside the padding (see [`torn_from`]). The padding goes too; the
/// writer lays it again.
fn recover_tail(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let end = data_end(&f, len)?;
    let window = end.min(TAIL_WINDOW);
    let base = end - window;
    f.seek(SeekFrom::Start(base))?;
    let mut tail = vec![0; usize::try_from(window).map_err(std::io::Error::other)?];
    f.read_exact(&mut tail)?;
    let Some(last_nl) = tail.iter().rposition(|b| *b == b'\n') else {
        if end > window {
            return Err(std::io::Error::other("the last line is longer than 1 MiB"));
        }
        if end > 0 {
            tracing::warn!(bytes = end, "audit log: cutting off an unfinished first line left by a crash");
        }
        cut(&f, len, 0)?;
        return Ok(None);
    };
    let mut whole = last_nl + 1;
    if whole < tail.len() {
        tracing::warn!(
            bytes = tail.len() - whole,
            "audit log: cutting off an unfinished last line left by a crash"
        );
    }
    if let Some(from) = torn_from(&tail[..whole], base == 0) {
        let kept = keep_torn(path, base + from as u64, &tail[from..whole])?;
        tracing::warn!(bytes = whole - from, kept = %kept.display(), "audit log: cutting off a batch a crash tore inside the padding");
        whole = from;
    }
    cut(&f, len, base + whole as u64)?;
    let Some(body) = whole.checked_sub(1).and_then(|nl| tail.get(..nl)) else {
        return Ok(None);
    };
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    match body.get(start..) {
        Some(line) if start > 0 || base == 0 => Ok(Some(line.to_vec())),
        _ => Err(std::io::Error::other("the last line is longer than 1 MiB")),
    }
}

/// Shortens the `len`-byte log to `to` bytes, durably, if it is longer.
fn cut(f: &File, len: u64, to: u64) -> std::io::Result<()> {
    if to < len {
        f.set_len(to)?;
        f.sync_all()?;
    }
    Ok(())
}

/// Where a batch torn by a power loss begins in `lines` (whole lines, the first one whole only
/// if `starts_at_line`), if there is one. A batch overwrites padding, so a torn one holds a
/// stretch of it (a sector not written: spaces, or zeros where the padding itself was lost)
/// between lines that were; it is the last batch, and no larger than a batch can be. The first
/// line that is not a record of the chain starts it, if that line holds such a stretch and the
/// rest fits in a batch. A bad line without one is not a torn write and stays, for opening to
/// refuse and `broker audit verify` to report.
fn torn_from(lines: &[u8], starts_at_line: bool) -> Option<usize> {
    let mut at = if starts_at_line {
        0
    } else {
        lines.iter().position(|b| *b == b'\n')? + 1
    };
    let mut last_seq = None;
    while let Some(len) = lines.get(at..).and_then(|rest| rest.iter().position(|b| *b == b'\n')) {
        let line = lines.get(at..at + len)?;
        let next = match head_of(line) {
            Ok((seq, _, _)) if last_seq.is_none_or(|s: u64| seq == s + 1) => Some(seq),
            _ => None,
        };
        if next.is_none() {
            let rest = lines.len() - at;
            return (rest <= 2 * MAX_BATCH_BYTES && holds_lost_sector(line)).then_some(at);
        }
        last_seq = next;
        at += len + 1;
    }
    None
}

/// Whether `line` holds a sector's worth (512 bytes) of padding or zeros in a row.
fn holds_lost_sector(line: &[u8]) -> bool {
    let mut run = 0;
    line.iter().any(|b| {
        run = if *b == PAD || *b == 0 { run + 1 } else { 0 };
        run >= 512
    })
}

/// Keeps the bytes of a torn batch beside the log (`<log>.torn-<offset>`) before they are cut
/// off: nothing is destroyed on the broker's own judgement.
fn keep_torn(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".torn-{offset}"));
    let kept = path.with_file_name(name);
    crate::fsutil::write_atomic(&kept, bytes, 0o600)?;
    Ok(kept)
}

/// The chain head after `line`.
fn head_of(line: &[u8]) -> Result<(u64, String, bool), String> {
    let line: Line<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let entry: Entry = serde_json::from_str(line.entry.get()).map_err(|e| e.to_string())?;
    if !matches!(entry.event, Event::Anchor(_)) && sha256_hex(line.entry.get().as_bytes()) != line.hash {
        return Err(format!("record {} does not match its hash", entry.seq));
    }
    Ok((entry.seq, line.hash, matches!(entry.event, Event::Checkpoint(_) | Event::Anchor(_))))
}

impl FileAuditLog {
    /// Opens (or starts) the log at `path`; checkpoints are signed with `signer` and the latest
    /// is kept in `<path>.checkpoint.json`.
    pub fn open(path: &Path, signer: Arc<Signer>) -> Result<Self, OpenError> {
        let io = |source| OpenError::Io {
            path: path.display().to_string(),
            source,
        };
        let (seq, head, signed_head) = match recover_tail(path).map_err(io)? {
            None => (0, GENESIS.to_owned(), true),
            Some(line) => head_of(&line).map_err(|reason| OpenError::BadTail {
                path: path.display().to_string(),
                reason,
            })?,
        };
        let chain = Chain {
            seq,
            head,
            signed_head,
            last_checkpoint: None,
            signer,
        };
        Ok(Self {
            file: GroupCommit::with_writer(path, chain, "audit-writer").map_err(io)?,
            checkpoint_path: checkpoint_path(path),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// The trail of a stopped broker in its state directory `dir` (`audit.jsonl`), signed with
    /// the key there, which must exist (`broker backup` and `broker audit rotate-key` without a
    /// running broker).
    pub fn open_stopped(dir: &Path) -> Result<Self, String> {
        let signer = Signer::open_existing(&dir.join(super::signing::KEY_FILE)).map_err(|e| format!("the audit key: {e}"))?;
        Self::open(&dir.join("audit.jsonl"), Arc::new(signer)).map_err(|e| e.to_string())
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn checkpoint_path(&self) -> &Path {
        &self.checkpoint_path
    }

    /// The key that signs this trail's checkpoints.
    pub fn signer(&self) -> Arc<Signer> {
        self.file.framing().signer
    }

    /// Tells `observer` of every batch written from now on (the metrics' batch sizes and
    /// `fsync` latency).
    pub fn observe_batches(&self, observer: crate::durable::BatchObserver) {
        self.file.observe(observer);
    }

    /// Whether the trail can take records now: the last batch did not fail, and the file can be
    /// opened for appending (each batch opens it again, so a file that became unwritable since
    /// is noticed before a request fails on it). Nothing is written.
    pub fn writable(&self) -> Result<(), String> {
        if self.file.last_batch_failed() {
            return Err("the last batch of records could not be written".into());
        }
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path())
            .map(drop)
            .map_err(|e| format!("'{}' cannot be opened for appending: {e}", self.path().display()))
    }

    fn err(&self, source: std::io::Error) -> LogError {
        LogError {
            path: self.path().display().to_string(),
            source,
        }
    }

    /// Signs the chain head (if anything was added since the last checkpoint) and keeps the
    /// signature in the chain and in the checkpoint file.
    pub fn checkpoint(&self) -> Result<(), LogError> {
        let _one_at_a_time = self.checkpoint_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.file.submit(Item::Checkpoint).map_err(|e| self.err(e))?;
        if let Some(cp) = self.file.framing().last_checkpoint {
            let bytes = serde_json::to_vec_pretty(&cp).map_err(|e| self.err(e.into()))?;
            crate::fsutil::write_atomic(&self.checkpoint_path, &bytes, 0o644).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Copies the trail, up to and including a checkpoint signed now, to `to` (a new file), and
    /// returns that checkpoint. Records appended meanwhile follow the checkpoint in the trail and
    /// are not copied: the copy ends at a signature, whatever the traffic.
    ///
    /// With the checkpoint comes the key that signs after it (the one that signed it, or the
    /// next key if it is a rotation's confirmation, which the copy then holds), read under the
    /// same lock as a key rotation takes: a rotation finishing during the copy does not make
    /// the backup claim a key the copied trail does not introduce.
    pub fn snapshot_to(&self, to: &Path) -> Result<(CheckpointFile, Arc<Signer>), LogError> {
        let (cp, signer) = {
            let _one_at_a_time = self.checkpoint_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.file.submit(Item::Checkpoint).map_err(|e| self.err(e))?;
            let framing = self.file.framing();
            let cp = match framing.last_checkpoint {
                Some(cp) => cp,
                // Opened with a checkpoint as its last record: the file beside it signs that one.
                None => serde_json::from_slice(&std::fs::read(&self.checkpoint_path).map_err(|e| self.err(e))?)
                    .map_err(|e| self.err(e.into()))?,
            };
            (cp, framing.signer)
        };
        copy_through(self.path(), &cp.hash, to).map_err(|e| self.err(e))?;
        Ok((cp, signer))
    }

    /// Records `event` (the rotation to `next`; `None` when the trail has it already but an
    /// interruption left it unconfirmed), has the current key sign a checkpoint over it, and
    /// signs with `next` from then on (see [`super::rotate`]) — one batch: written whole or not
    /// at all, and the key changes only with it. Other checkpoints wait meanwhile.
    pub fn rotate_signer(&self, event: Option<Event>, next: Arc<Signer>) -> Result<(), LogError> {
        let _one_at_a_time = self.checkpoint_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let record = event.map(|e| serde_json::to_vec(&e)).transpose().map_err(|e| self.err(e.into()))?;
        self.file.submit(Item::Rotation { record, next }).map_err(|e| self.err(e))?;
        if let Some(cp) = self.file.framing().last_checkpoint {
            let bytes = serde_json::to_vec_pretty(&cp).map_err(|e| self.err(e.into()))?;
            crate::fsutil::write_atomic(&self.checkpoint_path, &bytes, 0o644).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Removes the records older than `before` (by their time), keeping verification of the
    /// rest: the new file starts with an anchor the broker signs over the last removed record.
    /// Returns how many records were removed.
    pub fn prune(&self, before: OffsetDateTime) -> Result<u64, LogError> {
        self.file
            .exclusive(|path, chain| {
                let mut chain = chain.clone();
                let removed = rewrite_without_prefix(path, before, &chain.signer)?;
                if removed > 0 {
                    chain.signed_head = false;
                }
                Ok((chain, removed))
            })
            .map_err(|e| self.err(e))
    }
}

impl FileAuditLog {
    /// The time of the oldest record that is not an anchor (what pruning would remove first).
    pub fn oldest_time(&self) -> std::io::Result<Option<String>> {
        let mut reader = match File::open(self.path()) {
            Ok(file) => BufReader::new(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 && line.last() == Some(&b'\n') {
            let text = line.get(..line.len() - 1).unwrap_or_default();
            if !text.iter().all(u8::is_ascii_whitespace) {
                let parsed: Line<'_> = serde_json::from_slice(text).map_err(std::io::Error::other)?;
                let entry: Entry = serde_json::from_str(parsed.entry.get()).map_err(std::io::Error::other)?;
                match entry.event {
                    Event::Anchor(_) | Event::Checkpoint(_) => {}
                    Event::Decision(d) => return Ok(Some(d.time)),
                    Event::Admin(a) => return Ok(Some(a.time)),
                }
            }
            line.clear();
        }
        Ok(None)
    }
}

/// Copies the lines of the log at `from` up to and including the one whose hash is `hash` to a
/// new file `to`, synced. The log only grows behind that line (pruning replaces the file, and
/// the open handle keeps reading the old one), so no lock is needed.
fn copy_through(from: &Path, hash: &str, to: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(File::open(from)?);
    let mut out = std::io::BufWriter::new(std::fs::OpenOptions::new().write(true).create_new(true).open(to)?);
    let prefix = format!("{{\"hash\":\"{hash}\"");
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Err(std::io::Error::other(format!("the signed record {hash} is not in the trail")));
        }
        out.write_all(&line)?;
        if line.starts_with(prefix.as_bytes()) {
            break;
        }
    }
    out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
}

/// The entries of the log at `path` (none if there is no file), without checking the chain.
pub fn read_entries(path: &Path) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for_each_entry(path, &mut |e| entries.push(e))?;
    Ok(entries)
}

/// Hands each entry of the log at `path` to `f`, oldest first, one line in memory at a time.
/// An unfinished last line is a batch being written right now and is left out.
pub fn for_each_entry(path: &Path, f: &mut dyn FnMut(Entry)) -> std::io::Result<()> {
    let mut reader = match File::open(path) {
        Ok(file) => BufReader::new(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        let text = line.get(..line.len() - 1).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        let parsed: Line<'_> = serde_json::from_slice(text).map_err(std::io::Error::other)?;
        f(serde_json::from_str(parsed.entry.get()).map_err(std::io::Error::other)?);
    }
}

/// `<log>.checkpoint.json` beside the log.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".checkpoint.json");
    log.with_file_name(name)
}

/// The time of an entry, if it has one.
fn entry_time(entry: &Entry) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(super::export::entry_time(entry), &Rfc3339).ok()
}

fn rewrite_without_prefix(path: &Path, before: OffsetDateTime, signer: &Signer) -> std::io::Result<u64> {
    let reader = match File::open(path) {
        Ok(f) => BufReader::new(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut last_pruned: Option<(u64, String)> = None;
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut removed = 0u64;
    for line in reader.split(b'\n') {
        let line = line?;
        // Empty, or the padding after the last line.
        if unpadded(&line).is_empty() {
            continue;
        }
        if !kept.is_empty() {
            kept.push(line);
            continue;
        }
        let parsed: Line<'_> = serde_json::from_slice(&line).map_err(std::io::Error::other)?;
        let entry: Entry = serde_json::from_str(parsed.entry.get()).map_err(std::io::Error::other)?;
        if entry_time(&entry).is_some_and(|t| t < before) {
            last_pruned = Some((entry.seq, parsed.hash.clone()));
            if !matches!(entry.event, Event::Anchor(_)) {
                removed += 1;
            }
        } else {
            kept.push(line);
        }
    }
    let Some((seq, hash)) = last_pruned.filter(|_| removed > 0) else {
        return Ok(0);
    };
    let anchor = Event::Anchor(signer.sign(seq, &hash));
    let mut entry = format!("{{\"seq\":{seq},\"prev\":\"\",").into_bytes();
    let event = serde_json::to_vec(&anchor).map_err(std::io::Error::other)?;
    entry.extend_from_slice(event.get(1..).unwrap_or_default());
    let mut out = format!("{{\"hash\":\"{hash}\",\"entry\":").into_bytes();
    out.extend_from_slice(&entry);
    out.extend_from_slice(b"}\n");
    for line in kept {
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    let tmp = path.with_extension("pruning");
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        d.sync_all()?;
    }
    Ok(removed)
}

impl AuditLog for FileAuditLog {
    fn append(&self, event: Event) -> Result<(), LogError> {
        let bytes = serde_json::to_vec(&event).map_err(|e| self.err(e.into()))?;
        self.file.submit(Item::Event(bytes)).map_err(|e| self.err(e))
    }

    fn append_async(&self, event: Event) -> AppendFuture {
        let queued = serde_json::to_vec(&event).map(|bytes| self.file.submit_async(Item::Event(bytes)));
        // The path is only written out for an error (an Arc, not a String, per record).
        let file = self.file.clone();
        Box::pin(async move {
            let outcome = match queued {
                Ok(rx) => rx.await.unwrap_or_else(|_| Err("the audit writer stopped".into())),
                Err(e) => Err(e.to_string()),
            };
            outcome.map_err(|e| LogError {
                path: file.path().display().to_string(),
                source: std::io::Error::other(e),
            })
        })
    }

    fn entries(&self) -> Result<Vec<Entry>, LogError> {
        read_entries(self.path()).map_err(|e| self.err(e))
    }

    fn each_entry(&self, f: &mut dyn FnMut(Entry)) -> Result<(), LogError> {
        for_each_entry(self.path(), f).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AdminRecord;
    use crate::audit::chain::verify;

    fn admin(time: &str, n: u32) -> Event {
        let mut r = AdminRecord::by_broker("test", format!("record {n}"), serde_json::Value::Null);
        r.time = time.to_owned();
        Event::Admin(r)
    }

    fn check(log: &FileAuditLog, signer: &Signer) -> crate::audit::chain::Report {
        let key: crate::audit::signing::PublicKey = signer.public_hex().parse().expect("key");
        let cp: CheckpointFile = serde_json::from_slice(&std::fs::read(log.checkpoint_path()).expect("cp")).expect("cp json");
        let file = std::fs::File::open(log.path()).expect("log");
        verify(BufReader::new(file), std::slice::from_ref(&key), Some(&cp)).expect("read")
    }

    use super::super::signing::CheckpointFile;

    #[test]
    fn entries_are_read_one_at_a_time_without_the_unfinished_last_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let path = dir.path().join("audit.jsonl");
        let log = FileAuditLog::open(&path, signer).expect("open");
        for n in 0..3 {
            log.append(admin("2026-01-01T00:00:00Z", n)).expect("append");
        }
        // A batch being written: its line has no newline yet.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"hash\":\"ab"))
            .expect("partial");
        let mut seen = Vec::new();
        log.each_entry(&mut |e| seen.push(e.seq)).expect("each");
        let whole: Vec<u64> = log.entries().expect("entries").iter().map(|e| e.seq).collect();
        assert_eq!(seen, whole);
        assert_eq!(seen.len(), 3, "three whole records, the unfinished one left out");
    }

    #[test]
    fn pruning_keeps_the_rest_verifiable_behind_a_signed_anchor() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let log = FileAuditLog::open(&dir.path().join("audit.jsonl"), signer.clone()).expect("open");
        for n in 0..5 {
            log.append(admin("2020-01-01T00:00:00Z", n)).expect("old");
        }
        log.checkpoint().expect("checkpoint");
        for n in 5..8 {
            log.append(admin("2026-01-01T00:00:00Z", n)).expect("new");
        }
        log.checkpoint().expect("checkpoint");
        let before = OffsetDateTime::parse("2025-01-01T00:00:00Z", &Rfc3339).expect("t");
        // The five old records go; pruning stops at the first younger record (the checkpoint,
        // signed now).
        let removed = log.prune(before).expect("prune");
        assert_eq!(removed, 5);
        let report = check(&log, &signer);
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.pruned_through, Some(5));
        // Appending after pruning continues the chain.
        log.append(admin("2026-02-01T00:00:00Z", 9)).expect("after");
        log.checkpoint().expect("checkpoint");
        let report = check(&log, &signer);
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.last_seq, Some(12));
        // A reopened log (after a restart) continues from the same head.
        drop(log);
        let log = FileAuditLog::open(&dir.path().join("audit.jsonl"), signer.clone()).expect("reopen");
        log.append(admin("2026-03-01T00:00:00Z", 10)).expect("after restart");
        log.checkpoint().expect("checkpoint");
        assert!(check(&log, &signer).ok());
    }

    #[test]
    fn an_unfinished_last_line_is_cut_off_on_open_and_the_chain_continues() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let path = dir.path().join("audit.jsonl");
        let log = FileAuditLog::open(&path, signer.clone()).expect("open");
        log.append(admin("2026-01-01T00:00:00Z", 1)).expect("a");
        drop(log);
        // The crash came while the next line was written over the padding.
        let text = std::fs::read(&path).expect("read");
        overwrite(&path, unpadded(&text).len(), b"{\"hash\":\"00");
        let log = FileAuditLog::open(&path, signer.clone()).expect("reopen");
        log.append(admin("2026-01-01T00:00:01Z", 2)).expect("b");
        log.checkpoint().expect("cp");
        let report = check(&log, &signer);
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.records, report.torn_tail_bytes), (3, 0));
    }

    /// A log of six records of about 1.7 KB each and where each line starts.
    fn six_records(dir: &Path, signer: &Arc<Signer>) -> (PathBuf, Vec<usize>) {
        let path = dir.join("audit.jsonl");
        let log = FileAuditLog::open(&path, signer.clone()).expect("open");
        for n in 1..=6 {
            let detail = serde_json::json!({ "note": "x".repeat(1500) });
            log.append(Event::Admin(AdminRecord::by_broker("test", format!("record {n}"), detail)))
                .expect("append");
        }
        drop(log);
        let text = std::fs::read(&path).expect("read");
        let data = unpadded(&text);
        let starts = std::iter::once(0)
            .chain(data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1))
            .collect();
        (path, starts)
    }

    fn overwrite(path: &Path, at: usize, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
        f.write_all_at(bytes, at as u64).expect("write");
    }

    #[test]
    fn a_batch_torn_inside_the_padding_is_cut_off_kept_beside_the_log_and_the_chain_continues() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let (path, starts) = six_records(dir.path(), &signer);
        // A power loss: records 5 and 6 were one batch, and a sector in record 5 was never
        // written (it still holds padding); the sector with record 6's end was.
        let five = starts[4];
        overwrite(&path, five + 700, &[PAD; 600]);
        let log = FileAuditLog::open(&path, signer.clone()).expect("opens after cutting the torn batch");
        let seqs: Vec<u64> = log.entries().expect("entries").iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let kept = std::fs::read(dir.path().join(format!("audit.jsonl.torn-{five}"))).expect("the torn bytes are kept");
        assert_eq!(kept.len(), starts[6] - five);
        log.append(admin("2026-01-01T00:00:00Z", 7)).expect("append");
        log.checkpoint().expect("checkpoint");
        let report = check(&log, &signer);
        assert!(report.ok(), "{report:?}");
        assert_eq!(
            (report.last_seq, report.torn_tail_bytes),
            (Some(6), 0),
            "records 5 (new) and 6 (the checkpoint)"
        );
    }

    #[test]
    fn a_bad_line_without_lost_padding_in_it_is_not_cut_as_a_torn_batch() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let (path, starts) = six_records(dir.path(), &signer);
        // Record 5 altered (its hash's first digit), not torn: left for verification to report.
        overwrite(&path, starts[4] + 9, b"x");
        let before = std::fs::read(&path).expect("read");
        let log = FileAuditLog::open(&path, signer.clone()).expect("the last line is a record");
        drop(log);
        let after = std::fs::read(&path).expect("read");
        assert_eq!(after[..starts[6]], before[..starts[6]], "nothing cut");
        assert!(
            std::fs::read_dir(dir.path())
                .expect("dir")
                .all(|e| !e.expect("entry").file_name().to_string_lossy().contains(".torn-"))
        );
    }

    #[test]
    fn a_last_line_that_is_not_a_record_stops_the_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"hash\":\"00\",\"entry\":{\"seq\":1,\"prev\":\"\",\"type\":\"admin\"}}\n").expect("write");
        assert!(matches!(FileAuditLog::open(&path, signer), Err(OpenError::BadTail { .. })));
    }
}
