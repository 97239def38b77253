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
//!
//! **Space padding.** The file is kept padded with spaces ([`PAD`]) to the next MiB past its data,
//! the padding written and synced along with the batch that first needs it. A batch then
//! overwrites blocks the file already has, so its `fdatasync` writes the data and a cache flush,
//! not the size and block allocation too (nor, see [`identify`], fresh timestamps each time):
//! fewer device round trips per sync, and no journal commit per sync on a journaling
//! filesystem. This is why write-ahead logs (PostgreSQL's WAL, etcd's) preallocate segments. The price is the file's form: readers take the
//! spaces after the last newline for padding ([`data_end`]), and a power loss can leave a batch
//! torn *inside* the padding (some of its pages written, others still spaces), which opening the
//! audit log recognises and cuts off (see `audit::file`); batches are therefore bounded
//! ([`MAX_BATCH_BYTES`]).

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
use tokio::sync::oneshot;

/// The outcome of an asynchronous append: `Err` carries the write error's text.
pub type Outcome = Result<(), String>;

/// The padding byte after a log's data.
pub const PAD: u8 = b' ';

/// The padding reaches this far past the data (rounded up to a multiple of it).
const PAD_STEP: u64 = 1 << 20;

/// A batch takes at most this many bytes of records (and at least one record), so that a batch
/// torn by a power loss lies within the tail that opening a log examines.
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// Turns a batch of records into the bytes appended to the file.
pub trait Framing: Clone + Send {
    type Item: Send;
    /// About how many bytes `item` becomes (for [`MAX_BATCH_BYTES`]).
    fn size_hint(item: &Self::Item) -> usize;
    /// Appends the batch's bytes to `out`, advancing `self` as if they were written.
    fn frame(&mut self, items: Vec<Self::Item>, out: &mut Vec<u8>);
}

/// Records that are already complete lines.
#[derive(Debug, Clone, Default)]
pub struct Lines;

impl Framing for Lines {
    type Item = Vec<u8>;
    fn size_hint(item: &Vec<u8>) -> usize {
        item.len()
    }
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
    /// Told of every batch: its records and how long writing and `fsync` took (metrics).
    observer: std::sync::OnceLock<BatchObserver>,
    /// Whether the last batch failed (readiness: the trail is not writable now).
    last_failed: std::sync::atomic::AtomicBool,
}

/// What is told of each batch written: records in it, seconds its write and `fsync` took, and
/// whether it failed.
pub type BatchObserver = Box<dyn Fn(usize, std::time::Duration, bool) + Send + Sync>;

/// The open file: which file it is, where the data ends and how far the padding reaches.
struct Tail {
    file: File,
    id: FileId,
    end: u64,
    padded_to: u64,
}

struct State<F: Framing> {
    file: Option<Tail>,
    framing: F,
    /// Where the data ends after its last durable batch, once known.
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
            observer: std::sync::OnceLock::new(),
            last_failed: std::sync::atomic::AtomicBool::new(false),
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

    /// Tells `observer` of every batch from now on (once; a second observer is ignored).
    pub fn observe(&self, observer: BatchObserver) {
        let _ = self.observer.set(observer);
    }

    /// Whether the last batch failed to be written (nothing since succeeded).
    pub fn last_batch_failed(&self) -> bool {
        self.last_failed.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Writes what is queued as one batch (up to [`MAX_BATCH_BYTES`]).
    fn lead_batch<'a>(&'a self, mut st: MutexGuard<'a, State<F>>) -> MutexGuard<'a, State<F>> {
        st.syncing = true;
        let mut size = 0;
        let fit = st
            .pending
            .iter()
            .take_while(|item| {
                size += F::size_hint(item);
                size <= MAX_BATCH_BYTES
            })
            .count();
        let take = fit.max(1).min(st.pending.len());
        let items: Vec<F::Item> = st.pending.drain(..take).collect();
        // Pending records are the ones after `done`, in order.
        let (first, last) = (st.done + 1, st.done + items.len() as u64);
        let mut framing = st.framing.clone();
        let mut file = st.file.take();
        let good_len = st.good_len;
        drop(st);
        let mut bytes = Vec::new();
        let records = items.len();
        framing.frame(items, &mut bytes);
        let started = std::time::Instant::now();
        let result = self.write(&mut file, good_len, &bytes);
        self.last_failed.store(result.is_err(), std::sync::atomic::Ordering::Relaxed);
        if let Some(observe) = self.observer.get() {
            observe(records, started.elapsed(), result.is_err());
        }
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

    /// Writes `batch` after the data and returns where the data ends once it is durable.
    fn write(&self, file: &mut Option<Tail>, mut good_len: Option<u64>, batch: &[u8]) -> std::io::Result<u64> {
        if file.as_ref().is_some_and(|t| !still_at(t.id, &self.path)) {
            // Moved, deleted or replaced under us: writing on would append to a file nobody
            // reads. Open what is at the path now (or fail if nothing usable is there).
            tracing::warn!(path = %self.path.display(), "the log file was replaced or removed; reopening");
            *file = None;
            good_len = None;
        }
        let tail = match file {
            Some(tail) => tail,
            None => file.insert(open_tail(&self.path, good_len)?),
        };
        let result = write_padded(tail, batch);
        if result.is_err() {
            *file = None;
        }
        result
    }
}

/// Opens the file for the next batch. After a failed batch (`good_len` known) it is cut back to
/// its last good data, wiping the batch's remains; otherwise the data ends where the padding
/// begins. The padding goes too, and is written again with the next batch.
fn open_tail(path: &Path, good_len: Option<u64>) -> std::io::Result<Tail> {
    let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)?;
    let (id, len) = identify(&file, "", AtFlags::EMPTY_PATH)?;
    let end = match good_len {
        Some(good) => good.min(len),
        None => data_end(&file, len)?,
    };
    if len > end {
        file.set_len(end)?;
    }
    Ok(Tail {
        file,
        id,
        end,
        padded_to: end,
    })
}

/// Writes `batch` at the end of the data (and fresh padding where it runs out), then syncs.
fn write_padded(tail: &mut Tail, batch: &[u8]) -> std::io::Result<u64> {
    tail.file.write_all_at(batch, tail.end)?;
    let end = tail.end + batch.len() as u64;
    if end > tail.padded_to {
        let to = (end + 1).next_multiple_of(PAD_STEP);
        let spaces = vec![PAD; usize::try_from(to - end).map_err(std::io::Error::other)?];
        tail.file.write_all_at(&spaces, end)?;
        tail.padded_to = to;
    }
    tail.file.sync_data()?;
    tail.end = end;
    Ok(end)
}

/// `bytes` without the padding at their end.
pub fn unpadded(bytes: &[u8]) -> &[u8] {
    let data = bytes.iter().rposition(|b| *b != PAD).map_or(0, |i| i + 1);
    bytes.get(..data).unwrap_or_default()
}

/// Where the data of a `len`-byte log ends: before the padding (spaces) at its end.
pub fn data_end(file: &File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 << 10];
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let chunk = buf
            .get_mut(..usize::try_from(end - from).map_err(std::io::Error::other)?)
            .unwrap_or_default();
        file.read_exact_at(chunk, from)?;
        match unpadded(chunk).len() {
            0 => end = from,
            data => return Ok(from + data as u64),
        }
    }
    Ok(0)
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

/// A file's identity: device (major, minor) and inode.
type FileId = (u32, u32, u64);

/// The identity and size of the file at `path` (relative to `dir`), asking `statx` for nothing
/// else.
///
/// Nothing else: on Linux ≥ 6.13 asking for a file's timestamps (as `std::fs::metadata`
/// does) marks them queried, so that the next write stamps a fine-grained new time, which dirties
/// the inode, which the next `fdatasync` then writes (on ext4 without a journal, always; with
/// one, as a journal commit). A write+sync loop on this VM: 145 µs and 42 µs CPU a sync without
/// a stat in between, 198 and 65 with one.
fn identify(dir: impl AsFd, path: impl AsRef<Path>, flags: AtFlags) -> std::io::Result<(FileId, u64)> {
    let st = statx(dir, path.as_ref(), flags, StatxFlags::INO | StatxFlags::SIZE)?;
    Ok(((st.stx_dev_major, st.stx_dev_minor, st.stx_ino), st.stx_size))
}

/// Whether the file `id` is still the one at `path` (the open file's identity is taken once,
/// at open: one `statx` per batch, and one that leaves the timestamps alone).
fn still_at(id: FileId, path: &Path) -> bool {
    identify(CWD, path, AtFlags::empty()).is_ok_and(|(now, _)| now == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The file's data, without its padding.
    fn data(path: &Path) -> String {
        let bytes = std::fs::read(path).expect("read");
        String::from_utf8(unpadded(&bytes).to_vec()).expect("utf8")
    }

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
        let text = data(&dir.path().join("log"));
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
        assert_eq!(data(&path).lines().count(), 301);

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
    fn the_file_is_padded_past_its_data_and_a_reopened_log_continues_right_after_the_data() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let f = AppendFile::new(&path);
        f.append(b"one\n").expect("append");
        f.append(b"two\n").expect("append");
        let len = std::fs::metadata(&path).expect("meta").len();
        assert_eq!(len, PAD_STEP, "padded to the next MiB");
        let file = File::open(&path).expect("open");
        assert_eq!(data_end(&file, len).expect("end"), 8);
        drop(f);
        let f = AppendFile::new(&path);
        f.append(b"three\n").expect("append after reopening");
        assert_eq!(data(&path), "one\ntwo\nthree\n");
    }

    /// Lines that remember the size of every batch they framed.
    #[derive(Clone, Default)]
    struct Counted(Arc<Mutex<Vec<usize>>>);

    impl Framing for Counted {
        type Item = Vec<u8>;
        fn size_hint(item: &Vec<u8>) -> usize {
            item.len()
        }
        fn frame(&mut self, items: Vec<Vec<u8>>, out: &mut Vec<u8>) {
            self.0.lock().expect("lock").push(items.len());
            items.iter().for_each(|i| out.extend_from_slice(i));
        }
    }

    #[test]
    fn a_batch_takes_at_most_max_batch_bytes_and_every_record_is_written_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let batches = Counted::default();
        let f = GroupCommit::with_framing(&path, batches.clone());
        let record = |i: usize| format!("{i:0>1023}\n").into_bytes();
        // Queued without a writer thread: the next blocking append writes them all.
        let queued: Vec<_> = (0..600).map(|i| f.submit_async(record(i))).collect();
        f.submit(record(600)).expect("append");
        let sizes = batches.0.lock().expect("lock").clone();
        assert_eq!(sizes, vec![256, 256, 89], "1 KiB records, 256 KiB a batch");
        for mut rx in queued {
            assert_eq!(rx.try_recv().expect("answered"), Ok(()));
        }
        let expected: String = (0..=600).map(|i| String::from_utf8(record(i)).expect("utf8")).collect();
        assert!(data(&path) == expected, "all records, in order, nothing between them");
    }

    #[test]
    fn a_log_moved_away_is_noticed_and_the_next_append_goes_to_a_new_file_at_the_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        let f = AppendFile::new(&path);
        f.append(b"before\n").expect("append");
        let moved = dir.path().join("log.1");
        std::fs::rename(&path, &moved).expect("rotate");
        f.append(b"after\n").expect("append");
        assert_eq!((data(&moved), data(&path)), ("before\n".to_owned(), "after\n".to_owned()));
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
        assert_eq!(data(&path), "y\n");
    }
}
