//! Durable appends with group commit. Every caller's record is on disk (written and `fsync`ed)
//! when `append` returns; callers that arrive while a sync is running are written together by
//! the next one, so a busy broker pays one `fsync` per batch instead of one per request.
//!
//! How records become bytes is a [`Framing`]: plain lines, or the audit trail's hash chain. The
//! leader of a batch frames it on a copy of the framing state and keeps the copy only once the
//! batch is durable, so a failed batch leaves no trace in the chain.
//!
//! Two ways in: [`GroupCommit::submit`] blocks its thread (the first caller to find no batch
//! under way writes the next one), [`GroupCommit::submit_async`] queues the record for a writer
//! thread ([`GroupCommit::with_writer`]) and hands back a receiver. Request handlers use the
//! second: a blocking-pool hop per request cost more CPU than the record itself, and the writer
//! takes everything queued during one `fsync` into the next batch.
//!
//! A failed write fails every append of its batch; the file is cut back to its last good length
//! and reopened for the next batch, so a half-written batch never sits between good records.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

/// The outcome of an asynchronous append: `Err` carries the write error's text.
pub type Outcome = Result<(), String>;

/// Turns a batch of records into the bytes appended to the file.
pub trait Framing: Clone + Send {
    type Item: Send;
    /// Appends the batch's bytes to `out`, advancing `self` as if they were written.
    fn frame(&mut self, items: Vec<Self::Item>, out: &mut Vec<u8>);
}

/// Records that are already complete lines.
#[derive(Debug, Clone, Default)]
pub struct Lines;

impl Framing for Lines {
    type Item = Vec<u8>;
    fn frame(&mut self, items: Vec<Vec<u8>>, out: &mut Vec<u8>) {
        for i in items {
            out.extend_from_slice(&i);
        }
    }
}

/// A file of plain lines.
pub type AppendFile = GroupCommit<Lines>;

pub struct GroupCommit<F: Framing> {
    path: PathBuf,
    state: Mutex<State<F>>,
    synced: Condvar,
    /// Wakes the writer thread, if there is one.
    work: Condvar,
}

struct State<F: Framing> {
    file: Option<File>,
    framing: F,
    /// Length of the file up to its last durable batch, once known.
    good_len: Option<u64>,
    /// Records waiting for the next batch.
    pending: Vec<F::Item>,
    /// Sequence number of the last record queued, and of the last record whose batch finished.
    queued: u64,
    done: u64,
    /// Batches that failed: (first, last) sequence numbers and the error.
    failed: Vec<(u64, u64, String)>,
    /// Failures up to here were forgotten; an append this old whose outcome is unknown fails
    /// (closed), which only happens after dozens of failed batches.
    forgotten_upto: u64,
    syncing: bool,
    /// The writer thread is waiting for work: only then does a new record need to wake it (a
    /// busy writer looks at the queue again after its batch), which saves a `futex` call per
    /// record under load.
    writer_idle: bool,
    /// Asynchronous appends waiting for their batch: (sequence number, where the outcome goes).
    waiters: Vec<(u64, oneshot::Sender<Outcome>)>,
}

impl<F: Framing> std::fmt::Debug for GroupCommit<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("path", &self.path).finish_non_exhaustive()
    }
}

impl AppendFile {
    /// The file is opened (and created) by the first append.
    pub fn new(path: &Path) -> Self {
        Self::with_framing(path, Lines)
    }

    /// Appends `line` (which should end in a newline) and returns once it is durable.
    pub fn append(&self, line: &[u8]) -> std::io::Result<()> {
        self.submit(line.to_vec())
    }
}

impl<F: Framing> GroupCommit<F> {
    /// `framing` is the state after the file's current content (e.g. the chain head).
    pub fn with_framing(path: &Path, framing: F) -> Self {
        Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                file: None,
                framing,
                good_len: None,
                pending: Vec::new(),
                queued: 0,
                done: 0,
                failed: Vec::new(),
                forgotten_upto: 0,
                syncing: false,
                writer_idle: false,
                waiters: Vec::new(),
            }),
            synced: Condvar::new(),
            work: Condvar::new(),
        }
    }

    /// Like [`Self::with_framing`], with a writer thread (named `name`) for
    /// [`Self::submit_async`]. The thread ends once the last other reference is gone.
    pub fn with_writer(path: &Path, framing: F, name: &str) -> std::io::Result<Arc<Self>>
    where
        F: 'static,
    {
        let gc = Arc::new(Self::with_framing(path, framing));
        let weak = Arc::downgrade(&gc);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_queued(&weak))?;
        Ok(gc)
    }

    /// Queues `item` for the writer thread; the receiver gets the outcome once its batch is
    /// durable (or failed). Without a writer thread, the next [`Self::submit`] takes it along.
    pub fn submit_async(&self, item: F::Item) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        st.pending.push(item);
        st.queued += 1;
        let mine = st.queued;
        st.waiters.push((mine, tx));
        let wake = st.writer_idle;
        drop(st);
        if wake {
            self.work.notify_one();
        }
        rx
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State<F>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The framing state after every durable batch (e.g. the chain head).
    pub fn framing(&self) -> F {
        self.lock().framing.clone()
    }

    /// Queues `item` and returns once it is durable.
    pub fn submit(&self, item: F::Item) -> std::io::Result<()> {
        let mut st = self.lock();
        st.pending.push(item);
        st.queued += 1;
        let mine = st.queued;
        loop {
            if st.done >= mine {
                return match st.failed.iter().find(|(a, b, _)| (*a..=*b).contains(&mine)) {
                    Some((_, _, e)) => Err(std::io::Error::other(e.clone())),
                    None if mine <= st.forgotten_upto => Err(std::io::Error::other("outcome of this append is unknown")),
                    None => Ok(()),
                };
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st = self.lead_batch(st);
        }
    }

    /// Writes everything queued so far as one batch.
    fn lead_batch<'a>(&'a self, mut st: MutexGuard<'a, State<F>>) -> MutexGuard<'a, State<F>> {
        st.syncing = true;
        let items = std::mem::take(&mut st.pending);
        let (first, last) = (st.done + 1, st.queued);
        let mut framing = st.framing.clone();
        let mut file = st.file.take();
        let good_len = st.good_len;
        drop(st);
        let mut bytes = Vec::new();
        framing.frame(items, &mut bytes);
        let result = self.write(&mut file, good_len, &bytes);
        let outcome: Outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        let mut st = self.lock();
        st.syncing = false;
        st.done = last;
        match result {
            Ok(len) => {
                st.file = file;
                st.framing = framing;
                st.good_len = Some(len);
            }
            Err(e) => st.failed.push((first, last, e.to_string())),
        }
        let (answered, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiters).into_iter().partition(|(n, _)| *n <= last);
        st.waiters = waiting;
        for (_, tx) in answered {
            // A receiver that is gone gave up on the answer; the record is written all the same.
            let _ = tx.send(outcome.clone());
        }
        if st.failed.len() > 64 {
            let dropped: Vec<_> = st.failed.drain(..32).collect();
            st.forgotten_upto = dropped.last().map_or(st.forgotten_upto, |(_, b, _)| *b);
        }
        self.synced.notify_all();
        if !st.pending.is_empty() && st.writer_idle {
            self.work.notify_one();
        }
        st
    }

    /// Runs `f` while no batch is being written, with the file closed; `f` may replace the file
    /// (e.g. rewrite it without a pruned prefix) and must return the framing state after it.
    pub fn exclusive<R>(&self, f: impl FnOnce(&Path, &F) -> std::io::Result<(F, R)>) -> std::io::Result<R> {
        let mut st = self.lock();
        while st.syncing {
            st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.syncing = true;
        st.file = None;
        let framing = st.framing.clone();
        drop(st);
        let result = f(&self.path, &framing);
        let mut st = self.lock();
        st.syncing = false;
        st.good_len = None;
        let out = result.map(|(framing, r)| {
            st.framing = framing;
            r
        });
        self.synced.notify_all();
        out
    }

    /// Appends `batch` and returns the file's new length once it is durable.
    fn write(&self, file: &mut Option<File>, mut good_len: Option<u64>, batch: &[u8]) -> std::io::Result<u64> {
        if file.as_ref().is_some_and(|f| !still_at(f, &self.path)) {
            // Moved, deleted or replaced under us: writing on would append to a file nobody
            // reads. Open what is at the path now (or fail if nothing usable is there).
            tracing::warn!(path = %self.path.display(), "the log file was replaced or removed; reopening");
            *file = None;
            good_len = None;
        }
        if file.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(&self.path)?;
            if let Some(len) = good_len
                && f.metadata()?.len() > len
            {
                // The remains of a failed batch.
                f.set_len(len)?;
            }
            *file = Some(f);
        }
        let Some(f) = file.as_mut() else {
            return Err(std::io::Error::other("log file not open"));
        };
        let result = f.write_all(batch).and_then(|()| f.sync_data());
        if result.is_err() {
            *file = None;
        }
        result?;
        f_len(file)
    }
}

/// The writer thread: writes whatever is queued, one batch per `fsync`, until the log is gone.
fn write_queued<F: Framing>(weak: &Weak<GroupCommit<F>>) {
    while let Some(gc) = weak.upgrade() {
        let mut st = gc.lock();
        if st.pending.is_empty() || st.syncing {
            // Woken by a new record or a finished batch; the timeout only notices the end.
            st.writer_idle = true;
            let (mut st, _) = gc
                .work
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(PoisonError::into_inner);
            st.writer_idle = false;
            continue;
        }
        drop(gc.lead_batch(st));
    }
}

/// Whether `f` is still the file at `path`.
fn still_at(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn f_len(file: &Option<File>) -> std::io::Result<u64> {
    match file {
        Some(f) => Ok(f.metadata()?.len()),
        None => Err(std::io::Error::other("log file not open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_appends_all_land_whole_and_in_fewer_syncs() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Arc::new(AppendFile::new(&dir.path().join("log")));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        f.append(format!("{t}-{i}\n").as_bytes()).expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let text = std::fs::read_to_string(dir.path().join("log")).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 800);
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 800, "every line once, none torn");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_thread_answers_queued_appends_once_they_are_durable() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let f = AppendFile::with_writer(&path, Lines, "test-writer").expect("writer");
        let pending: Vec<_> = (0..300).map(|i| f.submit_async(format!("{i}\n").into_bytes())).collect();
        // A blocking append meanwhile takes its turn like any other.
        f.append(b"sync\n").expect("sync append");
        for rx in pending {
            rx.await.expect("answered").expect("durable");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 301);

        // A failed batch fails its waiters; the file is not left with a half batch.
        std::fs::remove_file(&path).expect("rm");
        std::fs::create_dir(&path).expect("a directory where the file should be");
        let failed = f.submit_async(b"lost\n".to_vec()).await.expect("answered");
        assert!(failed.is_err(), "{failed:?}");
        let weak = Arc::downgrade(&f);
        drop(f);
        for _ in 0..50 {
            if weak.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the writer thread keeps the log alive after its last user is gone");
    }

    #[test]
    fn a_failed_write_fails_its_appends() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        std::fs::create_dir(&path).expect("a directory where the file should be");
        let f = AppendFile::new(&path);
        assert!(f.append(b"x\n").is_err());
        std::fs::remove_dir(&path).expect("rm");
        f.append(b"y\n").expect("works again once the path is writable");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "y\n");
    }
}
